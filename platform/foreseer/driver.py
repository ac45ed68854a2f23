"""The search loop: one tick = the backend's trial events in, decisions out.

The driver owns the loop for every backend (Ray workers, or recorded curves in simulated time).
On every tick it records what the backend reported, asks the stopping policy **once** about every
trial that is waiting for an answer (one batched PFN forward pass for all of them), writes each
decision to the journal before it acts on it, and tells the backend to continue, stop or pause
those trials, or to resume paused ones. Then it fills free slots: resumed trials first, then new
candidates from the searcher. It never imports Ray.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foreseer import _failpoints
from foreseer.backends._base import Crashed, Finished, Reported, TrialStart
from foreseer.stopping import Action

if TYPE_CHECKING:
    from foreseer_spaces import Candidate

    from foreseer.backends._base import Backend, BackendEvent
    from foreseer.ledger import Ledger, TrialRecord
    from foreseer.searcher import CandidateSearcher
    from foreseer.stopping import Decision, StoppingPolicy
    from foreseer.store.journal import JobJournal
    from foreseer.tracking import Tracker

__all__ = ["BEST_WEIGHTS", "LoopPlan", "SearchDriver", "trial_key"]

logger = logging.getLogger(__name__)

BEST_WEIGHTS = "model.safetensors"
#: Keys of a report that are bookkeeping, not metrics.
_NOT_METRICS = ("epoch",)

WarmStart = Callable[["Candidate", int], Any]


def trial_key(number: int) -> str:
    """The stable id of a job's trial ``number``: the same across retries and resumes."""
    return f"t{number:04d}"


@dataclass(frozen=True)
class LoopPlan:
    """How long the loop runs and how wide.

    Attributes:
        trials: trials the job trains in all (those recorded before a resume included).
        max_concurrent: trials training at once.
        max_retries: restarts of a crashed trial from its last checkpoint.
        time_budget_s: end the search after this many seconds of the backend's clock.
        epoch_budget: end the search once this many epochs are recorded (replay benchmarks).
        poll_s: longest wait for an event before the loop checks for a cancel or the budget.
    """

    trials: int
    max_concurrent: int = 1
    max_retries: int = 0
    time_budget_s: float | None = None
    epoch_budget: int | None = None
    poll_s: float = 0.5


class SearchDriver:
    """The loop and the driver's reactions to trial events.

    Args:
        ledger: the job's ledger.
        searcher: proposes candidates and receives outcomes.
        policy: the stopping policy.
        tracker: the MLflow writer, or ``None`` to track nothing (replay benchmarks).
        best_dir: where the best weights seen so far are kept, or ``None``.
        journal: the job store's journal, or ``None`` to keep nothing durable.
        warm_start: ``(candidate, number) -> weights`` for fresh trials, computed here on the
            driver and passed to the trial as an argument; ``None`` for default initialisation.
    """

    def __init__(
        self,
        ledger: Ledger,
        searcher: CandidateSearcher,
        policy: StoppingPolicy,
        tracker: Tracker | None = None,
        best_dir: Path | None = None,
        journal: JobJournal | None = None,
        warm_start: WarmStart | None = None,
    ) -> None:
        self.ledger = ledger
        self.searcher = searcher
        self.policy = policy
        self.tracker = tracker
        self.best_dir = best_dir
        self.journal = journal
        self.warm_start = warm_start
        self.ticks = 0
        self._active: set[str] = set()
        self._paused: dict[str, str | None] = {}
        self._starts: deque[tuple[str, str | None]] = deque()
        self._checkpoint: dict[str, str] = {}
        self._kept: tuple[str, int] | None = None

    # -- what a resume hands over --------------------------------------------------------------

    def restore_finished(self, record: TrialRecord) -> None:
        """A trial settled before a resume: the searcher learns its outcome, nothing else happens."""
        self.searcher.tell(record)

    def queue_resumed(self, trial_id: str, checkpoint: str | None) -> None:
        """Continue this unfinished trial from ``checkpoint``, before any new candidate."""
        self._starts.append((trial_id, checkpoint))
        if checkpoint is not None:
            self._checkpoint[trial_id] = checkpoint

    def restore_paused(self, trial_id: str, checkpoint: str | None) -> None:
        """A trial that was paused when the job stopped: it waits for the policy to resume it."""
        self._paused[trial_id] = checkpoint
        if checkpoint is not None:
            self._checkpoint[trial_id] = checkpoint

    # -- the loop ------------------------------------------------------------------------------

    def run(self, backend: Backend, plan: LoopPlan, cancelled: threading.Event | None = None) -> None:
        """Run the search on ``backend`` until ``plan``'s trials have ended, its budget is spent or
        ``cancelled`` is set. A cancel leaves the trials in flight unfinished, so resume continues
        them; every other end settles every trial."""
        cancelled = cancelled or threading.Event()
        try:
            while not cancelled.is_set():
                if self._out_of_budget(backend, plan):
                    self._end_in_flight(backend)
                    break
                self.fill(backend, plan)
                if not self._active:
                    break
                self.tick(backend, backend.events(plan.poll_s), plan)
            else:
                return
            self._settle_paused()
        finally:
            backend.close()
            if self.tracker is not None:
                self.tracker.flush()

    def tick(self, backend: Backend, events: Sequence[BackendEvent], plan: LoopPlan) -> None:
        """Record ``events``, then decide for every trial waiting for an answer, all at once."""
        self.ticks += 1
        waiting: list[tuple[TrialRecord, dict[str, float]]] = []
        freed = False
        for event in events:
            record = self.ledger.get(event.trial_id)
            if isinstance(event, Reported):
                waiting.append((record, self._reported(record, event, plan)))
            elif isinstance(event, Finished):
                self._finished(record, event)
                freed = True
            elif isinstance(event, Crashed):
                freed |= self._crashed(backend, record, event, plan)
        if waiting or (freed and self._paused):
            self._decide(backend, waiting)

    def _out_of_budget(self, backend: Backend, plan: LoopPlan) -> bool:
        if plan.epoch_budget is not None and self.ledger.epochs_used() >= plan.epoch_budget:
            return True
        return plan.time_budget_s is not None and backend.elapsed() >= plan.time_budget_s

    def fill(self, backend: Backend, plan: LoopPlan) -> None:
        """Start trials until every slot is taken: resumed and thawed ones first, then new ones."""
        while len(self._active) < plan.max_concurrent:
            init_weights = None
            if self._starts:
                trial_id, checkpoint = self._starts.popleft()
                record = self.ledger.get(trial_id)
            elif len(self.ledger.records()) < plan.trials:
                number, candidate = self.searcher.ask()
                record = self.ledger.add(trial_key(number), number, candidate)
                checkpoint = None
                if self.journal is not None:
                    self.journal.trial_proposed(number, candidate.to_dict(), self.searcher.sampled(number))
                if self.warm_start is not None:
                    init_weights = self.warm_start(candidate, number)
            else:
                return
            self._start(backend, record, checkpoint, init_weights)

    def _start(self, backend: Backend, record: TrialRecord, checkpoint: str | None, init_weights: Any) -> None:
        if self.tracker is not None and record.run_id is None:
            record.run_id = self.tracker.start_trial(record)
            if self.journal is not None:
                self.journal.update_trial(record.number, run_id=record.run_id)
        self._active.add(record.trial_id)
        candidate = record.candidate.to_dict()
        backend.start(TrialStart(record.trial_id, record.number, candidate, checkpoint, init_weights))

    # -- events --------------------------------------------------------------------------------

    def _reported(self, record: TrialRecord, event: Reported, plan: LoopPlan) -> dict[str, float]:
        """Record one epoch (once, even when an attempt reports it again); returns its metrics."""
        if event.placement:
            self._placed(record, event.placement)
        if event.checkpoint is not None:
            self._checkpoint[record.trial_id] = event.checkpoint
        epoch = event.epoch
        full = plan.epoch_budget is not None and self.ledger.epochs_used() >= plan.epoch_budget
        if epoch <= record.epochs or full:
            return {}
        metrics = {k: float(v) for k, v in event.metrics.items() if k not in _NOT_METRICS}
        if self.journal is not None:
            self.journal.record_epoch(record.number, epoch, metrics, checkpoint=event.checkpoint)
        self.ledger.record_epoch(record.trial_id, metrics)
        _failpoints.hit("epoch-recorded")
        self.searcher.report(record.number, epoch, metrics.get(self.ledger.primary.metric, math.nan))
        self._keep_best(record, epoch, event.checkpoint)
        return metrics

    def _placed(self, record: TrialRecord, placement: dict[str, str] | Any) -> None:
        """Tag the trial's run with where this attempt runs; warn when the trial was given a GPU it
        cannot use."""
        if placement.get("device") == "cpu" and placement.get("gpus"):
            logger.warning(
                "trial %d was given GPU %s on host %s, but CUDA is not available there: it trains on CPU",
                record.number, placement["gpus"], placement.get("hostname", "?"),
            )  # fmt: skip
        if self.tracker is not None and record.run_id is not None:
            self.tracker.tag_trial(record.run_id, {f"foreseer.{k}": v for k, v in placement.items()})

    def _finished(self, record: TrialRecord, event: Finished) -> None:
        if event.status == "diverged":
            self.ledger.mark_diverged(record.trial_id, event.reason or "diverged")
        self._settle(record)

    def _crashed(self, backend: Backend, record: TrialRecord, event: Crashed, plan: LoopPlan) -> bool:
        """Retry the trial from its last checkpoint, or fail it; returns True when its slot is free."""
        if record.attempts > plan.max_retries:
            self._settle(record, event.error)
            return True
        record.attempts += 1
        record.retry_errors.append(event.error)
        checkpoint = self._checkpoint.get(record.trial_id)
        from_epoch = _checkpoint_epoch(checkpoint) or 0
        logger.warning(
            "trial %d failed (%s); retry %d from epoch %d",
            record.number, event.error, record.attempts - 1, from_epoch,
        )  # fmt: skip
        if self.journal is not None:
            self.journal.update_trial(
                record.number, attempts=record.attempts, retry_errors=list(record.retry_errors),
                resumed_from_epoch=from_epoch,
            )  # fmt: skip
        backend.start(TrialStart(record.trial_id, record.number, record.candidate.to_dict(), checkpoint))
        return False

    # -- decisions -----------------------------------------------------------------------------

    def _decide(self, backend: Backend, waiting: list[tuple[TrialRecord, dict[str, float]]]) -> None:
        """One policy call for every waiting trial (and the paused ones), then act on each answer."""
        asked = [r for r, metrics in waiting if metrics and r.epochs < self.ledger.max_epochs]
        paused = [self.ledger.curve(self.ledger.get(t)) for t in self._paused]
        decisions: dict[str, Decision] = {}
        if asked or paused:
            best = self.ledger.best()
            for decision in self.policy.decide(
                [self.ledger.curve(r) for r in asked],
                self.ledger.oriented(best[2]) if best else None,
                self.ledger.curves(),
                paused=paused,
            ):
                decisions[decision.trial_id] = decision
        for record, metrics in waiting:
            decision = decisions.pop(record.trial_id, None)
            if decision is not None and decision.metrics and metrics:
                self.ledger.record_policy_metrics(record.trial_id, decision.metrics)
                metrics = {**metrics, **decision.metrics}
            if self.tracker is not None and record.run_id is not None and metrics:
                self.tracker.log_metrics(record.run_id, metrics, step=record.epochs)
            self._act(backend, record, decision)
        for decision in decisions.values():  # resume decisions for paused trials
            if decision.action is Action.RESUME and decision.trial_id in self._paused:
                self._resume(self.ledger.get(decision.trial_id), decision)

    def _act(self, backend: Backend, record: TrialRecord, decision: Decision | None) -> None:
        action = decision.action if decision is not None else Action.CONTINUE
        if action is Action.CONTINUE or record.epochs >= self.ledger.max_epochs:
            backend.proceed(record.trial_id)
        elif action is Action.STOP:
            self.ledger.mark_stopped(decision, self.policy.name)  # type: ignore[arg-type]
            if self.journal is not None:  # written before the trial stops: a crash now still stops it
                self.journal.update_trial(record.number, stopped_by=self.policy.name, reason=record.reason)
            backend.halt(record.trial_id)
            logger.info("trial %d stopped: %s", record.number, record.reason)
            self._settle(record)
        elif action is Action.PAUSE:
            self._pause(backend, record, decision)  # type: ignore[arg-type]
        else:
            raise ValueError(
                f"policy {self.policy.name!r} answered trial {record.trial_id} with {action.value!r}; "
                "a running trial can continue, stop or pause."
            )

    def _pause(self, backend: Backend, record: TrialRecord, decision: Decision) -> None:
        checkpoint = self._checkpoint.get(record.trial_id)
        self.ledger.mark_paused(record.trial_id, decision.reason)
        if self.journal is not None:
            self.journal.update_trial(record.number, state="paused", reason=record.reason, checkpoint=checkpoint)
        backend.halt(record.trial_id)
        self._active.discard(record.trial_id)
        self._paused[record.trial_id] = checkpoint
        if self.tracker is not None and record.run_id is not None:
            self.tracker.log_metrics(record.run_id, {"paused": 1.0}, step=record.epochs)
            self.tracker.tag_trial(record.run_id, {"foreseer.status": "paused"})
        logger.info("trial %d paused after epoch %d: %s", record.number, record.epochs, decision.reason)

    def _resume(self, record: TrialRecord, decision: Decision) -> None:
        checkpoint = self._paused.pop(record.trial_id)
        self.ledger.mark_resumed(record.trial_id)
        if self.journal is not None:
            self.journal.update_trial(record.number, state="running", reason="", resumed_from_epoch=record.epochs)
        if self.tracker is not None and record.run_id is not None:
            self.tracker.log_metrics(record.run_id, {"paused": 0.0}, step=record.epochs)
            self.tracker.tag_trial(record.run_id, {"foreseer.status": "running"})
        self._starts.append((record.trial_id, checkpoint))
        logger.info("trial %d resumed after epoch %d: %s", record.number, record.epochs, decision.reason)

    # -- ends ----------------------------------------------------------------------------------

    def _settle(self, record: TrialRecord, error: str | None = None) -> None:
        """Settle the trial's final state, journal it, tell the searcher, close its run."""
        record = self.ledger.finalize(record.trial_id, error)
        self._active.discard(record.trial_id)
        if self.journal is not None:
            self.journal.update_trial(record.number, state=record.state, reason=record.reason, stopped_by=record.stopped_by)
        self.searcher.tell(record)
        if self.tracker is not None:
            self.tracker.end_trial(record)
            best = self.ledger.best()
            if best is not None:
                self.tracker.log_summary({"best_so_far": best[2]}, step=self.ledger.epochs_used())
        logger.info("trial %d %s (%s)", record.number, record.state, record.reason)
        _failpoints.hit("trial-ended")

    def _end_in_flight(self, backend: Backend) -> None:
        """The budget is spent: the trials in flight end where they are."""
        for trial_id in sorted(self._active):
            self._settle(self.ledger.get(trial_id))
        backend.close()

    def _settle_paused(self) -> None:
        """The search is over: trials still paused end as stopped by the policy that paused them."""
        for trial_id in list(self._paused):
            self.ledger.mark_resumed(trial_id)
            record = self.ledger.get(trial_id)
            record.stopped_by = self.policy.name
            record.reason = f"paused after epoch {record.epochs} and not resumed before the search ended"
            self._settle(record)
        self._paused.clear()

    def _keep_best(self, record: TrialRecord, epoch: int, checkpoint: str | None) -> None:
        """Copy the weights of the best epoch so far out of the trial's rotating checkpoints."""
        best = self.ledger.best()
        if self.best_dir is None or best is None or checkpoint is None:
            return
        if (best[0].trial_id, best[1]) != (record.trial_id, epoch) or self._kept == (record.trial_id, epoch):
            return
        source = Path(checkpoint) / BEST_WEIGHTS
        if not source.is_file():
            return
        self.best_dir.mkdir(parents=True, exist_ok=True)
        weights = f"model-{record.trial_id}-e{epoch}.safetensors"
        shutil.copyfile(source, self.best_dir / weights)
        summary = {
            "trial_id": record.trial_id,
            "trial_number": record.number,
            "epoch": epoch,
            self.ledger.primary.metric: best[2],
            "candidate": record.candidate.to_dict(),
            "weights": weights,
        }
        # best.json names its weights file and is replaced atomically: a crash leaves the previous
        # best or the new one, never a mix of the two
        (self.best_dir / "best.json.tmp").write_text(json.dumps(summary, indent=2))
        (self.best_dir / "best.json.tmp").replace(self.best_dir / "best.json")
        for old in self.best_dir.glob("model-*.safetensors"):
            if old.name != weights:
                old.unlink()
        self._kept = (record.trial_id, epoch)


def _checkpoint_epoch(path: str | None) -> int | None:
    if path is None:
        return None
    try:
        return int(json.loads((Path(path) / "trial.json").read_text())["epoch"])
    except (OSError, KeyError, ValueError):
        return None
