"""What a backend's worker calls for one attempt of a trial.

A *trainable* is a picklable callable ``trainable(trial, report, *, device, scratch_dir)`` that
trains ``trial.candidate``, calls ``report(metrics, checkpoint_dir)`` after every epoch (a truthy
answer ends the attempt) and returns a :class:`~foreseer_workers.TrialOutcome`. ``trial`` carries
everything the attempt needs as plain values: its number, the candidate, the checkpoint to resume
from and the initial weights the driver predicted; the trial never reaches back into the platform.
:class:`SpaceTrainable` is Foreseer's own training loop for a search space's candidates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from foreseer_spaces import SearchSpace
    from foreseer_workers.config import TrialOutcome
    from foreseer_workers.data import DataBundle
    from foreseer_workers.streaming import StreamedData
    from foreseer_workers.training import ReportFn

__all__ = ["SpaceTrainable", "Trainable", "TrialArgs"]


class TrialArgs(Protocol):
    """What one attempt of a trial is given (the platform's ``TrialStart``)."""

    number: int
    candidate: Mapping[str, Any]
    resume_from: str | None
    init_weights: Mapping[str, Any] | None


class Trainable(Protocol):
    def __call__(
        self, trial: TrialArgs, report: ReportFn, *, device: str = "cpu", scratch_dir: str | None = None
    ) -> TrialOutcome: ...


@dataclass(frozen=True)
class SpaceTrainable:
    """Train candidates of ``space`` on ``data`` with :func:`~foreseer_workers.run_trial`.

    Attributes:
        space: the search space object (shipped to workers, so user spaces work there too).
        data: the job's dataset.
        max_epochs: every trial's epoch budget.
        seed: the job's seed; trial ``n`` is seeded with ``seed + n``.
        num_threads: torch threads per trial (one per CPU the trial was given).
        warmup_epochs: the LR warm-up of a trial that starts from predicted weights.
        precision: mixed precision on a GPU (see :data:`foreseer_workers.config.PRECISIONS`).
    """

    space: SearchSpace
    data: DataBundle | StreamedData
    max_epochs: int
    seed: int = 0
    num_threads: int = 1
    warmup_epochs: float = 1.0
    precision: str = "auto"

    def __call__(
        self, trial: TrialArgs, report: ReportFn, *, device: str = "cpu", scratch_dir: str | None = None
    ) -> TrialOutcome:
        from foreseer_spaces import Candidate
        from foreseer_workers.config import TrialConfig
        from foreseer_workers.training import run_trial

        warm = trial.init_weights is not None
        config = TrialConfig(
            space=self.space,
            candidate=Candidate.from_dict(dict(trial.candidate)),
            max_epochs=self.max_epochs,
            seed=self.seed + trial.number,
            device=device,
            num_threads=self.num_threads,
            lr_warmup_epochs=min(self.warmup_epochs, self.max_epochs) if warm else 0.0,
            scratch_dir=scratch_dir,
            precision=self.precision,
        )
        return run_trial(
            config, self.data, report, resume_from=trial.resume_from, init_weights=trial.init_weights
        )
