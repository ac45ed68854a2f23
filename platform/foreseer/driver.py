"""The search loop: one tick = the backend's trial events in, decisions out.

The driver owns the loop for every backend (Ray workers, or recorded curves in simulated time).
On every tick it records what the backend reported, asks the stopping policy **once** about every
trial waiting for an answer (one batched PFN forward pass for all of them), emits each outcome as
a typed trial event (:mod:`foreseer.events`) before it acts on it, and tells the backend to
continue, stop or pause those trials. Then it fills free slots: resumed and thawed trials first,
then new candidates from the searcher. Every event goes to the journal first (durable), then to
the ledger, the searcher (Optuna), the tracker (MLflow) and the best-weights keeper. It never
imports Ray.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foreseer import _failpoints
from foreseer import events as ev
from foreseer.backends._base import Crashed, Finished, Reported, TrialStart
from foreseer.events import trial_key
from foreseer.searcher import SearchExhausted
from foreseer.stopping import Action, Capacity

if TYPE_CHECKING:
    from foreseer.backends._base import Backend, BackendEvent
    from foreseer.events import TrialObserver
    from foreseer.ledger import Ledger, TrialRecord
    from foreseer.searcher import CandidateSearcher
    from foreseer.stopping import Decision, StoppingPolicy
    from foreseer.store.journal import JobJournal
    from foreseer.tracking import Tracker
    from foreseer_spaces import Candidate

__all__ = ["BEST_WEIGHTS", "BestKeeper", "LoopPlan", "SearchDriver"]

logger = logging.getLogger(__name__)

BEST_WEIGHTS = "model.safetensors"
#: Keys of a report that are bookkeeping, not metrics.
_NOT_METRICS = ("epoch",)

WarmStart = Callable[["Candidate", int], Any]


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
    """The loop, and the one place that turns what happens to trials into trial events.

    Args:
        ledger: the job's ledger.
        searcher: proposes candidates; observes the events (Optuna's report and tell).
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
        from foreseer.tracking import TrackerObserver

        self.ledger = ledger
        self.searcher = searcher
        self.policy = policy
        self.tracker = tracker
        self.warm_start = warm_start
        self.ticks = 0
        observers: list[TrialObserver | None] = [
            journal,
            ledger,
            searcher,
            TrackerObserver(tracker, ledger) if tracker is not None else None,
            BestKeeper(best_dir, ledger) if best_dir is not None else None,
        ]
        self.observers = [o for o in observers if o is not None]
        self._active: set[str] = set()
        self._paused: set[str] = set()
        self._starts: deque[str] = deque()
        self._checkpoint: dict[str, str] = {}
        self.exhausted: str | None = None

    # -- what a resume hands over --------------------------------------------------------------

    def restore(self, events: Sequence[ev.TrialEvent]) -> None:
        """Continue a job from its journal's ``events`` (the ledger already holds them): the
        searcher learns its history; unfinished trials continue first, from the checkpoint of
        their last recorded epoch (or from scratch when its folder is gone); paused trials stay
        paused for the policy to resume."""
        for event in events:
            self.searcher.restore(event)
            if isinstance(event, ev.Epoch):
                self._checkpoint.pop(trial_key(event.number), None)
                if event.checkpoint is not None and Path(event.checkpoint).is_dir():
                    self._checkpoint[trial_key(event.number)] = event.checkpoint
        for record in self.ledger.records():
            if record.state == "running":
                self._starts.append(record.trial_id)
            elif record.state == "paused":
                self._paused.add(record.trial_id)

    def emit(self, event: ev.TrialEvent) -> None:
        """Hand ``event`` to every observer, the journal first."""
        for observer in self.observers:
            observer.observe(event)

    # -- the loop ------------------------------------------------------------------------------

    def run(self, backend: Backend, plan: LoopPlan, cancelled: threading.Event | None = None) -> bool:
        """Run the search on ``backend`` until ``plan``'s trials have ended, its budget is spent or
        ``cancelled`` is set. A cancel leaves the trials in flight unfinished, so resume continues
        them; every other end settles every trial. Returns whether the search finished: False when
        a cancel cut it short, True when it came after the last trial had ended."""
        cancelled = cancelled or threading.Event()
        try:
            while not cancelled.is_set():
                if self._out_of_budget(backend, plan):
                    # the running trials and those thawed but still waiting for a slot
                    for trial_id in sorted(self._active | set(self._starts)):
                        record = self.ledger.get(trial_id)
                        reason = f"ended by the job's budget after {record.epochs} epochs"
                        self._end(ev.Stopped(record.number, by="budget", reason=reason))
                    self._starts.clear()
                    break
                self.fill(backend, plan)
                if not self._active and self._paused:
                    # only paused trials are left: the policy may thaw one before the search ends
                    self._decide(backend, [], plan)
                    self.fill(backend, plan)
                if not self._active:
                    break
                self.tick(backend, backend.events(plan.poll_s), plan)
            finished = not cancelled.is_set() or not self._work_left(plan)
            if finished:
                self._settle_paused()
            return finished
        finally:
            backend.close()
            if self.tracker is not None:
                self.tracker.flush()

    def tick(self, backend: Backend, events: Sequence[BackendEvent], plan: LoopPlan) -> None:
        """Record ``events``, then decide for every trial waiting for an answer, all at once."""
        self.ticks += 1
        waiting: list[tuple[TrialRecord, bool]] = []
        freed = False
        for event in events:
            record = self.ledger.get(event.trial_id)
            if isinstance(event, Reported):
                waiting.append((record, self._reported(record, event, plan)))
            elif isinstance(event, Finished):
                if event.status == "completed":
                    self._end(ev.Completed(record.number, reason=f"trained {record.epochs} epochs"))
                else:  # diverged, or a training function that broke its protocol
                    self._end(ev.Failed(record.number, reason=event.reason or event.status))
                freed = True
            elif isinstance(event, Crashed):
                freed |= self._crashed(backend, record, event, plan)
        if waiting or (freed and self._paused):
            self._decide(backend, waiting, plan)

    def _work_left(self, plan: LoopPlan) -> bool:
        """Whether trials are running, waiting to start or paused, or more can be proposed."""
        proposable = len(self.ledger) < plan.trials and self.exhausted is None
        return bool(self._active or self._starts or self._paused) or proposable

    def _out_of_budget(self, backend: Backend, plan: LoopPlan) -> bool:
        if plan.epoch_budget is not None and self.ledger.epochs_used() >= plan.epoch_budget:
            return True
        return plan.time_budget_s is not None and backend.elapsed() >= plan.time_budget_s

    def fill(self, backend: Backend, plan: LoopPlan) -> None:
        """Start trials until every slot is taken: resumed and thawed ones first, then new ones."""
        while len(self._active) < plan.max_concurrent:
            init_weights = None
            if self._starts:
                record = self.ledger.get(self._starts.popleft())
            elif len(self.ledger) < plan.trials and self.exhausted is None:
                try:
                    number, candidate = self.searcher.ask()
                except SearchExhausted as exhausted:
                    self.exhausted = str(exhausted)
                    logger.warning("%s (%d of %d trials proposed)", exhausted, len(self.ledger), plan.trials)
                    return
                self.emit(
                    ev.Proposed(number, candidate=candidate.to_dict(), sampled=self.searcher.sampled(number))
                )
                record = self.ledger.get(trial_key(number))
                if self.warm_start is not None:
                    init_weights = self.warm_start(candidate, number)
            else:
                return
            self._start(backend, record, init_weights)

    def _start(self, backend: Backend, record: TrialRecord, init_weights: Any = None) -> None:
        """Start an attempt of ``record``: from its last checkpoint if it has one."""
        run_id = record.run_id
        if self.tracker is not None and run_id is None:
            run_id = self.tracker.start_trial(record)
        checkpoint = self._checkpoint.get(record.trial_id)
        from_epoch = record.epochs if checkpoint is not None else 0
        self.emit(ev.Started(record.number, run_id=run_id, from_epoch=from_epoch))
        self._active.add(record.trial_id)
        trial = TrialStart(
            record.trial_id, record.number, record.candidate.to_dict(), checkpoint, init_weights
        )
        backend.start(trial)

    # -- events --------------------------------------------------------------------------------

    def _reported(self, record: TrialRecord, event: Reported, plan: LoopPlan) -> bool:
        """Record one epoch, once; returns False for an epoch that is not recorded (reported again
        after a restart, or past the epoch budget)."""
        if event.placement:
            self._placed(record, event.placement)
        full = plan.epoch_budget is not None and self.ledger.epochs_used() >= plan.epoch_budget
        if event.epoch <= record.epochs or full:
            return False
        if event.checkpoint is not None:
            self._checkpoint[record.trial_id] = event.checkpoint
        metrics = {k: float(v) for k, v in event.metrics.items() if k not in _NOT_METRICS}
        self.emit(ev.Epoch(record.number, epoch=event.epoch, metrics=metrics, checkpoint=event.checkpoint))
        _failpoints.hit("epoch-recorded")
        return True

    def _placed(self, record: TrialRecord, placement: Any) -> None:
        """Tag the trial's run with where this attempt runs; warn when the trial was given a GPU it
        cannot use."""
        if placement.get("device") == "cpu" and placement.get("gpus"):
            logger.warning(
                "trial %d was given GPU %s on host %s, but CUDA is not available there: it trains on CPU",
                record.number, placement["gpus"], placement.get("hostname", "?"),
            )  # fmt: skip
        if self.tracker is not None and record.run_id is not None:
            self.tracker.tag_trial(record.run_id, {f"foreseer.{k}": v for k, v in placement.items()})

    def _crashed(self, backend: Backend, record: TrialRecord, event: Crashed, plan: LoopPlan) -> bool:
        """Retry the trial from its last checkpoint, or fail it; returns True when its slot is free."""
        if record.attempts > plan.max_retries:
            self._end(ev.Failed(record.number, reason=event.error))
            return True
        checkpoint = self._checkpoint.get(record.trial_id)
        from_epoch = record.epochs if checkpoint is not None else 0
        logger.warning(
            "trial %d failed (%s); retry %d from epoch %d",
            record.number,
            event.error,
            record.attempts,
            from_epoch,
        )
        self.emit(ev.Retried(record.number, error=event.error, from_epoch=from_epoch))
        backend.start(TrialStart(record.trial_id, record.number, record.candidate.to_dict(), checkpoint))
        return False

    # -- decisions -----------------------------------------------------------------------------

    def _decide(self, backend: Backend, waiting: list[tuple[TrialRecord, bool]], plan: LoopPlan) -> None:
        """One policy call for every waiting trial (and the paused ones), then act on each answer."""
        asked = [r for r, recorded in waiting if recorded and r.epochs < self.ledger.max_epochs]
        paused = [self.ledger.curve(self.ledger.get(t)) for t in sorted(self._paused)]
        decisions: dict[str, Decision] = {}
        if asked or paused:
            best = self.ledger.best()
            in_play = [r.trial_id for r in asked] + sorted(self._paused)
            extra = {"capacity": self._capacity(plan, in_play)} if self.policy.schedules else {}
            for decision in self.policy.decide(
                [self.ledger.curve(r) for r in asked],
                self.ledger.oriented(best[2]) if best else None,
                self.ledger.curves(),
                paused=paused,
                **extra,
            ):
                decisions[decision.trial_id] = decision
        for record, recorded in waiting:
            decision = decisions.pop(record.trial_id, None)
            if decision is not None and decision.metrics and recorded:
                self.emit(ev.Scored(record.number, epoch=record.epochs, metrics=dict(decision.metrics)))
            self._act(backend, record, decision)
        for decision in decisions.values():
            if decision.action is Action.STOP and self.policy.schedules and decision.trial_id in self._paused:
                record = self.ledger.get(decision.trial_id)
                self._paused.discard(record.trial_id)
                self._end(ev.Stopped(record.number, by=self.policy.name, reason=decision.reason))
            elif decision.action is Action.RESUME and decision.trial_id in self._paused:
                record = self.ledger.get(decision.trial_id)
                self._paused.discard(record.trial_id)
                self.emit(ev.Resumed(record.number, epoch=record.epochs, reason=decision.reason))
                self._starts.append(record.trial_id)
                logger.info(
                    "trial %d resumed after epoch %d: %s", record.number, record.epochs, decision.reason
                )

    def _capacity(self, plan: LoopPlan, in_play: Sequence[str]) -> Capacity:
        """What the search has room for besides the trials waiting for an answer, and what the
        checkpoints of the trials ``in_play`` weigh."""
        new = 0 if self.exhausted is not None else max(0, plan.trials - len(self.ledger))
        free = max(0, plan.max_concurrent - len(self._active) - len(self._starts))
        sizes = {t: _dir_bytes(self._checkpoint[t]) for t in in_play if t in self._checkpoint}
        return Capacity(free=free, new=new, checkpoint_bytes=sizes)

    def _act(self, backend: Backend, record: TrialRecord, decision: Decision | None) -> None:
        """Carry out the decision for a trial that reported; its event is journaled first."""
        action = decision.action if decision is not None else Action.CONTINUE
        if action is Action.CONTINUE or record.epochs >= self.ledger.max_epochs:
            backend.proceed(record.trial_id)
        elif action is Action.STOP:
            self._end(ev.Stopped(record.number, by=self.policy.name, reason=decision.reason))  # type: ignore[union-attr]
            backend.halt(record.trial_id)
        elif action is Action.PAUSE:
            checkpoint = self._checkpoint.get(record.trial_id)
            self.emit(
                ev.Paused(record.number, epoch=record.epochs, reason=decision.reason, checkpoint=checkpoint)
            )  # type: ignore[union-attr]
            backend.halt(record.trial_id)
            self._active.discard(record.trial_id)
            self._paused.add(record.trial_id)
            logger.info("trial %d paused after epoch %d: %s", record.number, record.epochs, record.reason)
            _failpoints.hit("trial-paused")
        else:
            raise ValueError(
                f"policy {self.policy.name!r} answered trial {record.trial_id} with {action.value!r}; "
                "a running trial can continue, stop or pause."
            )

    # -- ends ----------------------------------------------------------------------------------

    def _end(self, event: ev.TrialEvent) -> None:
        """Settle a trial with one of the ending events."""
        self.emit(event)
        record = self.ledger.get(trial_key(event.number))
        self._active.discard(record.trial_id)
        logger.info("trial %d %s (%s)", record.number, record.state, record.reason)
        _failpoints.hit("trial-ended")

    def _settle_paused(self) -> None:
        """The search is over: trials still paused end as stopped by the policy that paused them."""
        for trial_id in sorted(self._paused):
            record = self.ledger.get(trial_id)
            reason = f"paused after epoch {record.epochs} and not resumed before the search ended"
            self._end(ev.Stopped(record.number, by=self.policy.name, reason=reason))
        self._paused.clear()


@functools.lru_cache(maxsize=4096)
def _dir_bytes(path: str) -> int:
    """Bytes of the files in a checkpoint directory (one per trial and epoch, so cached by path)."""
    root = Path(path)
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0


class BestKeeper:
    """Copies the weights of the best epoch so far out of the trials' rotating checkpoints, with a
    ``best.json`` naming them, as soon as the epoch is recorded."""

    def __init__(self, best_dir: Path, ledger: Ledger) -> None:
        self.best_dir, self.ledger = best_dir, ledger
        self._kept: tuple[int, int] | None = None

    def observe(self, event: ev.TrialEvent) -> None:
        best = self.ledger.best()
        if not isinstance(event, ev.Epoch) or event.checkpoint is None or best is None:
            return
        record, epoch, value = best
        if (record.number, epoch) != (event.number, event.epoch) or self._kept == (record.number, epoch):
            return
        source = Path(event.checkpoint) / BEST_WEIGHTS
        if not source.is_file():
            return
        self.best_dir.mkdir(parents=True, exist_ok=True)
        weights = f"model-{record.trial_id}-e{epoch}.safetensors"
        shutil.copyfile(source, self.best_dir / weights)
        summary = {
            "trial_id": record.trial_id,
            "trial_number": record.number,
            "epoch": epoch,
            self.ledger.primary.metric: value,
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
        self._kept = (record.number, epoch)
