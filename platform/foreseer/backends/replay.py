"""The replay backend: the search loop over recorded learning curves, in simulated time.

After Syne Tune's simulator backend: trials are recorded curves, each epoch takes one tick, and
``max_concurrent`` slots run at once. The sampler's order decides which curve starts next, the
stopping policy decides after every tick for all trials that reported in it (one batched call,
so a PFN forecasts them all in one forward pass), and the run ends when ``budget`` epochs are
spent. Policies are compared on thousands of curves in seconds.

Two loops share these semantics:

- :func:`simulate` keeps its own incremental views of the curves; the benchmarks use it.
- :class:`ReplayBackend` drives the real :class:`foreseer.driver.SearchDriver` and
  :class:`foreseer.ledger.Ledger` (a replay searcher stands in for Optuna), one report at a time,
  as the Ray backend does. With one slot both give the same decisions (tested).

Example:
    >>> import numpy as np
    >>> from foreseer.stopping import NoStoppingPolicy
    >>> curves = np.array([[0.1, 0.2, 0.3], [0.5, 0.6, 0.7]])
    >>> run = simulate(curves, [0, 1], NoStoppingPolicy(), budget=6)
    >>> run.best_so_far[-1], run.epochs_used
    (0.7, 6)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foreseer.stopping import CurveView, Decision, StoppingPolicy

__all__ = ["ReplayRun", "simulate", "ReplayBackend", "ReplaySearcher"]


@dataclass
class ReplayRun:
    """What one replayed search did.

    Attributes:
        best_so_far: oriented best value seen after each consumed epoch, ``(epochs_used,)``.
        trials: ``(curve index, epochs run, stopped)`` per started trial, in start order.
        policy_metrics: per curve index, the policy's metrics per decided epoch.
    """

    best_so_far: np.ndarray
    trials: list[tuple[int, int, bool]]
    policy_metrics: dict[int, list[dict[str, float]]] = field(default_factory=dict)

    @property
    def epochs_used(self) -> int:
        return int(self.best_so_far.size)

    def epochs_to_reach(self, value: float) -> int | None:
        """Epochs consumed until the best so far first reaches ``value`` (oriented), or ``None``."""
        hit = np.flatnonzero(self.best_so_far >= value)
        return int(hit[0]) + 1 if hit.size else None


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
) -> ReplayRun:
    """Replay a search over ``curves`` (oriented, higher is better) in simulated time.

    Args:
        curves: ``(n_curves, max_epochs)`` recorded values, oriented so higher is better.
        order: the sampler's order of curve indices; trials start in this order.
        policy: the stopping policy.
        budget: epochs to spend in total.
        max_concurrent: trials running at once.

    Raises:
        ValueError: for malformed inputs.
    """
    _check(curves, order, max_concurrent, budget)
    max_epochs = curves.shape[1]
    queue = list(order)[::-1]
    running: dict[str, int] = {}  # trial id -> curve index
    views: dict[str, CurveView] = {}
    trials: list[tuple[int, int, bool]] = []
    metrics: dict[int, list[dict[str, float]]] = {}
    best_trace: list[float] = []
    best = -np.inf
    while len(best_trace) < budget and (running or queue):
        while len(running) < max_concurrent and queue:
            index = queue.pop()
            tid = f"r{len(trials):05d}"
            running[tid] = index
            views[tid] = CurveView(tid, (), max_epochs)
            trials.append((index, 0, False))
        reported = []
        for tid, index in list(running.items()):
            if len(best_trace) >= budget:
                break
            view = views[tid]
            value = float(curves[index, view.epoch])
            views[tid] = view = CurveView(tid, (*view.values, value), max_epochs)
            best = max(best, value) if np.isfinite(value) else best
            best_trace.append(best)
            reported.append(tid)
        decide = [views[t] for t in reported if views[t].epoch < max_epochs]
        decisions = (
            policy.decide(decide, best if np.isfinite(best) else None, list(views.values())) if decide else []
        )
        stop = _record(decisions, running, metrics, views)
        for tid in reported:
            if tid in stop or views[tid].epoch >= max_epochs:
                number = int(tid[1:])
                trials[number] = (running.pop(tid), views[tid].epoch, tid in stop)
    for tid, index in running.items():
        trials[int(tid[1:])] = (index, views[tid].epoch, False)
    return ReplayRun(np.asarray(best_trace), trials, metrics)


def _record(
    decisions: Sequence[Decision],
    running: dict[str, int],
    metrics: dict[int, list[dict[str, float]]],
    views: dict[str, CurveView],
) -> set[str]:
    stop = set()
    for d in decisions:
        if d.metrics:
            metrics.setdefault(running[d.trial_id], []).append(
                {"epoch": views[d.trial_id].epoch, **d.metrics}
            )
        if d.stop:
            stop.add(d.trial_id)
    return stop


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

    def report(self, number: int, epoch: int, value: float) -> None:
        """Replayed curves are fixed; nothing to learn from intermediate values."""

    def tell(self, record: Any) -> None:
        """Replayed curves are fixed; nothing to learn from outcomes."""


class ReplayBackend:
    """Runs :class:`foreseer.driver.SearchDriver` over recorded curves, one report at a time.

    Args:
        curves: ``(n_curves, max_epochs)`` recorded values of ``metric`` (raw, not oriented).
        metric: the metric's name as the driver reports it (one of ``REPORTED_METRICS``).
        mode: ``"max"`` or ``"min"``.
    """

    def __init__(self, curves: np.ndarray, metric: str = "val_accuracy", mode: str = "max") -> None:
        self.curves = np.asarray(curves, dtype=np.float64)
        self.metric = metric
        self.mode = mode

    def run(self, order: Sequence[int], policy: StoppingPolicy, budget: int, max_concurrent: int = 1):  # type: ignore[no-untyped-def]
        """Replay the search; returns the driver's ledger and the best-so-far trace."""
        from foreseer.driver import SearchDriver
        from foreseer.ledger import Ledger
        from foreseer.spec import Objective

        _check(self.curves, order, max_concurrent, budget)
        max_epochs = self.curves.shape[1]
        ledger = Ledger([Objective(metric=self.metric, mode=self.mode)], max_epochs)
        searcher = ReplaySearcher(order)
        driver = SearchDriver(ledger, searcher, policy)  # type: ignore[arg-type]
        running: dict[str, list[int]] = {}  # backend id -> [curve index, epochs reported]
        trace: list[float] = []
        started = 0
        while len(trace) < budget and (running or started < len(order)):
            while len(running) < max_concurrent and started < len(order):
                backend_id = f"b{started:05d}"
                config = driver.propose(backend_id)
                driver.trial_started(backend_id)
                running[backend_id] = [int(config["candidate"]["arch"]["curve"]), 0]
                started += 1
            for backend_id, state in list(running.items()):
                if len(trace) >= budget:
                    break
                index, done = state
                state[1] = done + 1
                value = float(self.curves[index, done])
                stopped = driver.epoch_reported(backend_id, {self.metric: value, "epoch": done + 1})
                best = ledger.best()
                trace.append(ledger.oriented(best[2]) if best else -np.inf)
                if stopped or state[1] >= max_epochs:
                    driver.trial_ended(backend_id)
                    del running[backend_id]
        for backend_id in running:
            driver.trial_ended(backend_id)
        return ledger, np.asarray(trace)
