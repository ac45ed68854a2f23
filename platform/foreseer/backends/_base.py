"""The backend seam: the driver starts, continues, pauses and stops trials; a backend executes
that and reports what happened as typed events.

After Syne Tune's split (``syne_tune/backend``): the searcher proposes, the driver decides, the
backend executes. A trial that reports an epoch waits for the driver's answer (``proceed`` or
``halt``) before it trains the next one, so no epoch runs past a decision and a decision taken on
several trials at once (one batched PFN pass) holds for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Backend", "BackendEvent", "Crashed", "Finished", "Reported", "TrialStart"]


@dataclass(frozen=True)
class TrialStart:
    """Everything an attempt of a trial needs: it never reaches back into the platform.

    Attributes:
        trial_id: the job's stable id of the trial.
        number: the job's trial number (seeds the trial).
        candidate: the candidate, as ``Candidate.to_dict()``.
        resume_from: a checkpoint directory to continue from (a retry, a resume, a thaw).
        init_weights: predicted initial weights (name -> tensor) for a fresh trial.
    """

    trial_id: str
    number: int
    candidate: Mapping[str, Any]
    resume_from: str | None = None
    init_weights: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Reported:
    """A trial finished an epoch; it waits for :meth:`Backend.proceed` or :meth:`Backend.halt`.

    Attributes:
        trial_id: the trial.
        metrics: what the epoch measured, with ``epoch`` (1-based).
        checkpoint: the directory holding the state after this epoch, kept by the backend.
        placement: where this attempt runs (first report of each attempt only).
    """

    trial_id: str
    metrics: Mapping[str, float]
    checkpoint: str | None = None
    placement: Mapping[str, str] | None = None

    @property
    def epoch(self) -> int:
        return int(self.metrics["epoch"])


@dataclass(frozen=True)
class Finished:
    """A trial's training function returned without being halted: ``completed`` its epochs, or
    ``diverged`` (with the reason)."""

    trial_id: str
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class Crashed:
    """An attempt of a trial raised, or its worker died; the driver retries or fails it."""

    trial_id: str
    error: str


BackendEvent = Reported | Finished | Crashed


class Backend(ABC):
    """Executes a job's trials. Only the driver calls it, from one thread."""

    @abstractmethod
    def start(self, trial: TrialStart) -> None:
        """Start an attempt of ``trial`` (fresh, or from ``trial.resume_from``)."""

    @abstractmethod
    def proceed(self, trial_id: str) -> None:
        """Let a trial that reported an epoch train the next one."""

    @abstractmethod
    def halt(self, trial_id: str) -> None:
        """End the current attempt of a trial that reported an epoch (to stop or pause it): its
        checkpoints stay, its slot is free as soon as the attempt has wound down."""

    @abstractmethod
    def events(self, timeout: float | None) -> list[BackendEvent]:
        """The events that happened since the last call, waiting up to ``timeout`` seconds for at
        least one (``None``: until one happens)."""

    @abstractmethod
    def elapsed(self) -> float:
        """Seconds since the backend started: wall-clock on Ray, simulated on replay."""

    def run_task(self, fn: Callable[..., Any], *args: Any, cpus: float = 1, gpus: float = 0) -> Any:
        """Run ``fn(*args)`` as a side task (GHN meta-training) with its own resources; returns its
        result. Runs in this process unless a backend has workers of its own."""
        return fn(*args)

    def close(self) -> None:
        """End every attempt still running (a cancel or a crash of the driver loop); idempotent."""
        return None
