"""The driver's record of every trial of a job: one source of truth for the searcher, the stopping
policy, the tracker, the progress display and the leaderboard."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from foreseer import events as ev
from foreseer.stopping import CurveHistory, CurveView, RunningSummary

if TYPE_CHECKING:
    import pandas as pd

    from foreseer.events import TrialEvent
    from foreseer.spec import Objective
    from foreseer_spaces import Candidate

__all__ = ["Ledger", "TrialRecord", "TRIAL_STATES"]

#: running: training (or waiting for a slot to continue); paused: its checkpoint kept, its slot
#: freed, until the policy resumes it; completed: reached its epoch budget; stopped: stopped early
#: by the policy (or by the job's budget); failed: diverged or raised.
TRIAL_STATES = ("running", "paused", "completed", "stopped", "failed")


@dataclass
class TrialRecord:
    """Everything the driver knows about one trial."""

    trial_id: str
    number: int
    candidate: Candidate
    metrics: list[dict[str, float]] = field(default_factory=list)
    state: str = "running"
    reason: str = ""
    stopped_by: str | None = None
    run_id: str | None = None
    attempts: int = 1
    retry_errors: list[str] = field(default_factory=list)
    thaws: int = 0
    policy_metrics: list[dict[str, float]] = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        return [m[metric] for m in self.metrics if metric in m]

    @property
    def epochs(self) -> int:
        return len(self.metrics)


class Ledger:
    """Thread-safe record of a job's trials; the driver's loop writes, any thread reads.

    Args:
        objectives: the job's objectives; the first ranks trials and drives early stopping.
        max_epochs: the epoch budget of every trial.
        featurize: maps a candidate to its features (``CurveView.features``), once per trial.
    """

    def __init__(
        self,
        objectives: Sequence[Objective],
        max_epochs: int,
        featurize: Callable[[Candidate], Sequence[float]] | None = None,
    ) -> None:
        self.objectives = list(objectives)
        self.max_epochs = max_epochs
        self.featurize = featurize
        self._maximise = self.primary.mode == "max"
        self._sign = 1 if self._maximise else -1
        self._trials: dict[str, TrialRecord] = {}
        self._order: list[tuple[str, int]] = []
        self._views: dict[str, CurveView] = {}
        self._summary = RunningSummary()
        self._best: tuple[TrialRecord, int, float] | None = None
        self._lock = threading.RLock()

    @property
    def primary(self) -> Objective:
        return self.objectives[0]

    def add(self, trial_id: str, number: int, candidate: Candidate) -> TrialRecord:
        with self._lock:
            record = TrialRecord(trial_id, number, candidate)
            self._trials[trial_id] = record
            features = tuple(float(f) for f in self.featurize(candidate)) if self.featurize else ()
            self._views[trial_id] = CurveView(trial_id, (), self.max_epochs, self._sign, features)
            return record

    def get(self, trial_id: str) -> TrialRecord:
        with self._lock:
            return self._trials[trial_id]

    def __contains__(self, trial_id: str) -> bool:
        return trial_id in self._trials

    def __len__(self) -> int:
        return len(self._trials)

    def records(self) -> list[TrialRecord]:
        """All trials in the order they started."""
        with self._lock:
            return list(self._trials.values())

    def record_epoch(self, trial_id: str, metrics: dict[str, float]) -> None:
        """Append one epoch's metrics (the ledger keeps ``metrics`` itself; do not change it after)."""
        with self._lock:
            record = self._trials[trial_id]
            record.metrics.append(metrics)
            self._order.append((trial_id, record.epochs))
            value = metrics.get(self.primary.metric, math.nan)
            view = self._views[trial_id]
            oriented = self.oriented(value)
            self._views[trial_id] = CurveView(
                trial_id, (*view.values, oriented), self.max_epochs, self._sign, view.features
            )
            self._summary.add(oriented, first=record.epochs == 1)
            best = self._best
            if (
                record.state != "failed"
                and value == value
                and (best is None or self.oriented(value) > self.oriented(best[2]))
            ):
                self._best = (record, record.epochs, value)

    def in_order(self) -> list[tuple[TrialRecord, int]]:
        """Every (trial, 1-based epoch) in the order the epochs were recorded, across trials."""
        with self._lock:
            return [(self._trials[trial_id], epoch) for trial_id, epoch in self._order]

    def observe(self, event: TrialEvent) -> None:
        """Follow the job's event stream (see :mod:`foreseer.events`)."""
        if isinstance(event, ev.Proposed):
            from foreseer_spaces import Candidate

            self.add(ev.trial_key(event.number), event.number, Candidate.from_dict(dict(event.candidate)))
            return
        trial_id = ev.trial_key(event.number)
        with self._lock:
            record = self._trials[trial_id]
            if isinstance(event, ev.Started):
                record.run_id = event.run_id or record.run_id
            elif isinstance(event, ev.Epoch):
                self.record_epoch(trial_id, dict(event.metrics))  # the ledger's own copy
            elif isinstance(event, ev.Scored):
                record.policy_metrics.append({"epoch": event.epoch, **event.metrics})
            elif isinstance(event, ev.Paused):
                record.state, record.reason = "paused", event.reason
            elif isinstance(event, ev.Resumed):
                record.state, record.reason = "running", ""
                record.thaws += 1
            elif isinstance(event, ev.Retried):
                record.attempts += 1
                record.retry_errors.append(event.error)
            elif isinstance(event, ev.Stopped):
                record.state, record.stopped_by, record.reason = "stopped", event.by, event.reason
            elif isinstance(event, ev.Failed):
                record.state, record.reason = "failed", event.reason
                self._rank_best()
            elif isinstance(event, ev.Completed):
                record.state, record.reason = "completed", event.reason

    def oriented(self, value: float) -> float:
        """``value`` of the primary objective made higher-is-better."""
        return value if self._maximise else -value

    def curve(self, record: TrialRecord) -> CurveView:
        """The trial's curve of the primary objective, oriented (kept up to date as epochs arrive)."""
        return self._views[record.trial_id]

    def curves(self) -> CurveHistory:
        """Every trial's curve, oriented, with their summary (kept as epochs arrive): a snapshot."""
        with self._lock:
            return CurveHistory(list(self._views.values()), self._summary.freeze())

    def best_epoch(self, record: TrialRecord) -> tuple[int, float] | None:
        """(1-based epoch, raw value) of the trial's best epoch on the primary objective."""
        values = record.values(self.primary.metric)
        if not values:
            return None
        index = max(range(len(values)), key=lambda i: (self.oriented(values[i]), -i))
        return index + 1, values[index]

    def best(self) -> tuple[TrialRecord, int, float] | None:
        """The best (trial, epoch, raw value) so far over every trial that did not fail."""
        return self._best

    def _rank_best(self) -> None:
        """Find the best again, over every trial, after one that held it failed."""
        with self._lock:
            found = None
            for record in self._trials.values():
                if record.state == "failed":
                    continue
                best = self.best_epoch(record)
                if best and (found is None or self.oriented(best[1]) > self.oriented(found[2])):
                    found = (record, *best)
            self._best = found

    def objective_values(self, record: TrialRecord) -> tuple[float, ...] | None:
        """The trial's value of every objective at its best epoch of the primary one (what Optuna
        is told), or ``None`` before its first epoch."""
        best = self.best_epoch(record)
        if best is None:
            return None
        row = record.metrics[best[0] - 1]
        return tuple(float(row.get(o.metric, math.nan)) for o in self.objectives)

    def pareto_front(self) -> list[TrialRecord]:
        """The trials that no other trial matches or beats on every objective while beating it on
        one (failed trials and missing values left out), in trial order; for a multi-objective job."""
        with self._lock:
            candidates = [(r, self.objective_values(r)) for r in self._trials.values() if r.state != "failed"]
        signs = [1.0 if o.mode == "max" else -1.0 for o in self.objectives]
        points = [
            (record, tuple(s * v for s, v in zip(signs, values, strict=True)))
            for record, values in candidates
            if values is not None and all(math.isfinite(v) for v in values)
        ]
        front = [r for r, p in points if not any(_dominates(q, p) for _, q in points)]
        return sorted(front, key=lambda r: r.number)

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = dict.fromkeys(TRIAL_STATES, 0)
            for record in self._trials.values():
                out[record.state] += 1
            return out

    def epochs_used(self) -> int:
        return len(self._order)

    def leaderboard(self) -> pd.DataFrame:
        """One row per trial, best first: the objectives, status, best epoch and epochs (and ``thaws``,
        how often a paused trial was resumed, once any was) first, then the
        candidate, its hyperparameters, why it ended and its MLflow run."""
        import pandas as pd

        with self._lock:
            rows = [self._row(r) for r in self._trials.values()]
        metric = self.primary.metric
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        frame["best_epoch"] = frame["best_epoch"].astype("Int64")  # a trial without a result has none
        frame["_key"] = frame[metric].map(lambda v: self.oriented(v) if v == v else float("-inf"))
        frame["_failed"] = frame["status"] == "failed"
        frame = frame.sort_values(["_failed", "_key", "trial_number"], ascending=[True, False, True])
        frame = frame.drop(columns=["_key", "_failed"]).reset_index(drop=True)
        # what a reader looks for first (and what MLflow's preview of the CSV shows): the result
        first = ["trial_number", *(o.metric for o in self.objectives), "status", "best_epoch", "epochs"]
        frame = frame[first + [c for c in frame.columns if c not in first]]
        frame.insert(0, "rank", range(1, len(frame) + 1))
        if frame["thaws"].any():  # a policy that pauses trials: how often each came back
            frame.insert(frame.columns.get_loc("epochs") + 1, "thaws", frame.pop("thaws"))
        else:
            frame = frame.drop(columns="thaws")
        if len(self.objectives) > 1:
            front = {r.number for r in self.pareto_front()}
            frame.insert(frame.columns.get_loc("status") + 1, "pareto", frame["trial_number"].isin(front))
        return frame

    def _row(self, record: TrialRecord) -> dict[str, Any]:
        best = self.best_epoch(record)
        row: dict[str, Any] = {
            "trial_number": record.number,
            "trial_id": record.trial_id,
            "candidate": record.candidate.hash,
            "architecture": ", ".join(f"{k}={v}" for k, v in record.candidate.arch.items()),
        }
        row.update({f"hp.{k}": v for k, v in record.candidate.hparams.items()})
        row["best_epoch"] = best[0] if best else None
        row[self.primary.metric] = best[1] if best else float("nan")
        for objective in self.objectives[1:]:
            values = record.values(objective.metric)
            row[objective.metric] = values[best[0] - 1] if best and values else float("nan")
        row.update(
            epochs=record.epochs,
            thaws=record.thaws,
            status=record.state,
            reason=record.reason,
            run_id=record.run_id,
        )
        return row


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and better somewhere (higher is better)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))
