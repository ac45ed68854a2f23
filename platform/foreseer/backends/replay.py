"""The replay backend: recorded learning curves in simulated time, under the live search loop.

After Syne Tune's simulator backend: a trial is a recorded curve, each epoch takes its recorded
time (one simulated second unless told), and the same :class:`foreseer.driver.SearchDriver` that
runs a live job on Ray runs here: same ticks, same batched policy calls, same decisions. Policies
are compared on thousands of curves in seconds (``benchmarks/stopping.py``), and
:class:`RecordedTrainable` plays the same curves on Ray workers, so a test can check that both
backends give identical decisions.

Example:
    >>> import numpy as np
    >>> from foreseer.stopping import NoStoppingPolicy
    >>> curves = np.array([[0.1, 0.2, 0.3], [0.5, 0.6, 0.7]])
    >>> run = simulate(curves, [0, 1], NoStoppingPolicy(), budget=6)
    >>> run.best_so_far[-1], run.epochs_used
    (0.7, 6)
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from foreseer.backends._base import Backend, BackendEvent, Finished, Reported, TrialStart

if TYPE_CHECKING:
    from foreseer.ledger import Ledger
    from foreseer.stopping import StoppingPolicy

__all__ = ["RecordedTrainable", "ReplayBackend", "ReplayRun", "ReplaySearcher", "simulate"]


def _curve_of(trial: Any) -> int:
    return int(trial.candidate["arch"]["curve"])


class ReplayBackend(Backend):
    """Plays recorded curves as trials: the trial of candidate ``{"curve": i}`` reports
    ``curves[i, e]`` as ``metric`` after its epoch ``e + 1``.

    Args:
        curves: ``(n_curves, max_epochs)`` recorded values of ``metric`` (raw, not oriented).
        metric: the name the values are reported under.
        epoch_seconds: simulated seconds per epoch: a scalar, or an array shaped like ``curves``.
    """

    def __init__(self, curves: np.ndarray, metric: str = "val_accuracy", epoch_seconds: Any = 1.0) -> None:
        self.curves = np.asarray(curves, dtype=np.float64)
        self.metric = metric
        self.seconds = np.broadcast_to(np.asarray(epoch_seconds, dtype=np.float64), self.curves.shape)
        self._now = 0.0
        self._queue: list[tuple[float, int, BackendEvent]] = []
        self._sequence = 0
        self._progress: dict[str, tuple[int, int]] = {}  # trial id -> (curve, epochs reported)

    def elapsed(self) -> float:
        return self._now

    def start(self, trial: TrialStart) -> None:
        epochs = int(trial.resume_from.rsplit("-", 1)[1]) if trial.resume_from else 0
        self._progress[trial.trial_id] = (_curve_of(trial), epochs)
        self._next_epoch(trial.trial_id)

    def proceed(self, trial_id: str) -> None:
        curve, epochs = self._progress[trial_id]
        if epochs >= self.curves.shape[1]:
            del self._progress[trial_id]
            self._push(self._now, Finished(trial_id, "completed"))
        else:
            self._next_epoch(trial_id)

    def halt(self, trial_id: str) -> None:
        del self._progress[trial_id]

    def events(self, timeout: float | None) -> list[BackendEvent]:
        """Every event of the earliest simulated time still to come; the clock moves there."""
        if not self._queue:
            return []
        self._now = self._queue[0][0]
        out = []
        while self._queue and self._queue[0][0] == self._now:
            out.append(heapq.heappop(self._queue)[2])
        return sorted(out, key=lambda e: e.trial_id)

    def close(self) -> None:
        self._queue.clear()
        self._progress.clear()

    def _next_epoch(self, trial_id: str) -> None:
        curve, epochs = self._progress[trial_id]
        self._progress[trial_id] = (curve, epochs + 1)
        metrics = {"epoch": epochs + 1, self.metric: float(self.curves[curve, epochs])}
        checkpoint = f"replay-{trial_id}-{epochs + 1}"  # a name only: a curve needs no state
        self._push(self._now + float(self.seconds[curve, epochs]), Reported(trial_id, metrics, checkpoint))

    def _push(self, at: float, event: BackendEvent) -> None:
        heapq.heappush(self._queue, (at, self._sequence, event))
        self._sequence += 1


@dataclass(frozen=True)
class RecordedTrainable:
    """A trainable for real workers that plays recorded curves (the replay backend's trials, run
    by the Ray backend): same reports, with a real checkpoint folder per epoch."""

    curves: np.ndarray
    metric: str = "val_accuracy"

    def __call__(
        self, trial: Any, report: Any, *, device: str = "cpu", scratch_dir: str | None = None
    ) -> Any:
        from foreseer_workers import TrialOutcome

        curve = _curve_of(trial)
        start = 0
        if trial.resume_from is not None:
            with open(os.path.join(trial.resume_from, "trial.json")) as f:
                start = int(json.load(f)["epoch"])
        max_epochs = self.curves.shape[1]
        for epoch in range(start + 1, max_epochs + 1):
            if scratch_dir is not None:
                os.makedirs(scratch_dir, exist_ok=True)
            folder = tempfile.mkdtemp(prefix=f"replay-{trial.number}-", dir=scratch_dir)
            with open(os.path.join(folder, "trial.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            if report({"epoch": epoch, self.metric: float(self.curves[curve, epoch - 1])}, folder):
                return TrialOutcome("stopped", epoch)
        return TrialOutcome("completed", max_epochs)


@dataclass
class ReplayRun:
    """What one replayed search did.

    Attributes:
        best_so_far: oriented best value seen after each consumed epoch, ``(epochs_used,)``.
        trials: ``(curve index, epochs run, stopped by the policy)`` per started trial, in start order.
        policy_metrics: per curve index, the policy's metrics per decided epoch.
        ledger: the driver's ledger of the run.
        ticks: the driver's ticks (policy calls happen once per tick at most).
    """

    best_so_far: np.ndarray
    trials: list[tuple[int, int, bool]]
    policy_metrics: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    ledger: Ledger | None = None
    ticks: int = 0

    @property
    def epochs_used(self) -> int:
        return int(self.best_so_far.size)

    def epochs_to_reach(self, value: float) -> int | None:
        """Epochs consumed until the best so far first reaches ``value`` (oriented), or ``None``."""
        hit = np.flatnonzero(self.best_so_far >= value)
        return int(hit[0]) + 1 if hit.size else None


class ReplaySearcher:
    """Stands in for :class:`foreseer.searcher.CandidateSearcher`: proposes curves in a fixed order."""

    def __init__(self, order: Sequence[int]) -> None:
        self.order = list(order)
        self._next = 0

    def ask(self) -> tuple[int, Any]:
        from foreseer_spaces import Candidate

        if self._next >= len(self.order):
            raise IndexError(f"the replay order has only {len(self.order)} curves; no more to propose.")
        number, self._next = self._next, self._next + 1
        return number, Candidate("replay", {"curve": int(self.order[number])})

    def sampled(self, number: int) -> dict[str, Any]:
        return {"params": {"curve": int(self.order[number])}, "distributions": {}}

    def observe(self, event: Any) -> None:
        """Replayed curves are fixed; nothing to learn from what happens to them."""

    def restore(self, event: Any) -> None:
        """See :meth:`observe`."""


def _check(curves: np.ndarray, order: Sequence[int], max_concurrent: int, budget: int) -> None:
    if curves.ndim != 2:
        raise ValueError(f"curves must be a 2-d array (curves, epochs), but got shape {curves.shape}.")
    if max_concurrent < 1:
        raise ValueError(f"max_concurrent must be at least 1, but got {max_concurrent=}.")
    if budget < 1:
        raise ValueError(f"budget must be at least 1 epoch, but got {budget=}.")
    if len(order) and (min(order) < 0 or max(order) >= len(curves)):
        raise ValueError(
            f"order indexes curves 0..{len(curves) - 1}, but got values {min(order)}..{max(order)}."
        )


def simulate(
    curves: np.ndarray,
    order: Sequence[int],
    policy: StoppingPolicy,
    budget: int,
    max_concurrent: int = 1,
    *,
    metric: str = "val_accuracy",
    mode: str = "max",
    features: np.ndarray | None = None,
) -> ReplayRun:
    """Run the search loop over ``curves`` in simulated time until ``budget`` epochs are spent.

    Args:
        curves: ``(n_curves, max_epochs)`` recorded values of ``metric``.
        order: the sampler's order of curve indices; trials start in this order.
        policy: the stopping policy.
        budget: epochs to spend in total.
        max_concurrent: trials running at once.
        metric: the objective the curves record.
        mode: ``"max"`` or ``"min"``; the best-so-far trace is oriented (higher is better).
        features: ``(n_curves, F)`` the configurations' features, which policies then see in
            ``CurveView.features`` (as an in-context forecaster needs).

    Raises:
        ValueError: for malformed inputs.
    """
    from foreseer.driver import LoopPlan, SearchDriver
    from foreseer.ledger import Ledger
    from foreseer.spec import Objective

    curves = np.asarray(curves, dtype=np.float64)
    _check(curves, order, max_concurrent, budget)
    featurize = None if features is None else (lambda candidate: features[int(candidate.arch["curve"])])
    ledger = Ledger([Objective(metric=metric, mode=mode)], curves.shape[1], featurize)
    driver = SearchDriver(ledger, ReplaySearcher(order), policy)  # type: ignore[arg-type]
    plan = LoopPlan(trials=len(order), max_concurrent=max_concurrent, epoch_budget=budget)
    driver.run(ReplayBackend(curves, metric), plan)
    trace, best = [], -np.inf
    for record, epoch in ledger.in_order():
        value = ledger.oriented(record.metrics[epoch - 1][metric])
        best = max(best, value) if np.isfinite(value) else best
        trace.append(best)
    trials, metrics = [], {}
    for record in ledger.records():
        curve = int(record.candidate.arch["curve"])
        trials.append((curve, record.epochs, record.stopped_by == policy.name))
        if record.policy_metrics:
            metrics.setdefault(curve, []).extend(record.policy_metrics)
    return ReplayRun(np.asarray(trace), trials, metrics, ledger, driver.ticks)
