"""The search driver: what happens on the driver when a backend proposes, reports or ends a trial.

A backend (Ray Tune, or a replay over recorded curves) executes trials and calls these hooks with
its own trial ids; the driver maps them to the job's stable trial ids, consults the searcher and
the stopping policy, updates the ledger, and writes the journal (job store) and then the tracker
(MLflow). It never imports Ray, so the same loop runs in simulated time.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foreseer import _failpoints

if TYPE_CHECKING:
    from foreseer.ledger import Ledger, TrialRecord
    from foreseer.searcher import CandidateSearcher
    from foreseer.stopping import Decision, StoppingPolicy
    from foreseer.store.journal import JobJournal
    from foreseer.tracking import Tracker

__all__ = ["DIVERGED_KEY", "PLACEMENT_PREFIX", "REPORTED_METRICS", "SearchDriver", "trial_key"]

logger = logging.getLogger(__name__)

#: A trial's last result carries this key (with the reason) when its loss turned NaN/inf.
DIVERGED_KEY = "foreseer_diverged"
#: The first result of each attempt of a trial says where the attempt runs, in keys with this prefix
#: (``node_id``, ``hostname``, ``device``, ``gpus`` given by Ray, ``cuda_visible_devices``), written as
#: ``foreseer.<name>`` run tags. Flat keys: Ray Tune flattens nested results before its scheduler sees them.
PLACEMENT_PREFIX = "foreseer_placement_"
#: The per-epoch metrics a trial reports; anything else in a backend's result is ignored.
REPORTED_METRICS = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "epoch_seconds",
    "num_params",
)
BEST_WEIGHTS = "model.safetensors"


def trial_key(number: int) -> str:
    """The stable id of a job's trial ``number``: the same across retries and resumes."""
    return f"t{number:04d}"


class SearchDriver:
    """Driver-side reactions to trial events.

    Args:
        ledger: the job's ledger.
        searcher: proposes candidates and receives outcomes.
        policy: the stopping policy.
        tracker: the MLflow writer, or ``None`` to track nothing (replay benchmarks).
        best_dir: where the best weights seen so far are kept, or ``None``.
        journal: the job store's journal, or ``None`` to keep nothing durable.
    """

    def __init__(
        self,
        ledger: Ledger,
        searcher: CandidateSearcher,
        policy: StoppingPolicy,
        tracker: Tracker | None = None,
        best_dir: Path | None = None,
        journal: JobJournal | None = None,
    ) -> None:
        self.ledger = ledger
        self.searcher = searcher
        self.policy = policy
        self.tracker = tracker
        self.best_dir = best_dir
        self.journal = journal
        self.cancelling = False
        self._ids: dict[str, str] = {}
        self._resume_queue: list[tuple[str, str | None]] = []
        self._latest_checkpoint: dict[str, Path] = {}
        self._kept: tuple[str, int] | None = None
        self._ended: set[str] = set()
        self._retried: set[str] = set()

    def restore_finished(self, record: TrialRecord) -> None:
        """A trial settled before a resume: the searcher learns its outcome, nothing else happens."""
        self.searcher.tell(record)
        self._ended.add(record.trial_id)

    def queue_resumed(self, trial_id: str, checkpoint: str | None) -> None:
        """Propose this unfinished trial again, from ``checkpoint``, before any new candidate."""
        self._resume_queue.append((trial_id, checkpoint))

    def propose(self, backend_id: str) -> dict[str, Any]:
        """A new trial's configuration: its candidate, trial number, and checkpoint to resume from."""
        if self._resume_queue:
            trial_id, checkpoint = self._resume_queue.pop(0)
            record = self.ledger.get(trial_id)
        else:
            number, candidate = self.searcher.ask()
            trial_id, checkpoint = trial_key(number), None
            record = self.ledger.add(trial_id, number, candidate)
            if self.journal is not None:
                self.journal.trial_proposed(number, candidate.to_dict(), self.searcher.sampled(number))
        self._ids[backend_id] = trial_id
        return {"number": record.number, "candidate": record.candidate.to_dict(), "resume_from": checkpoint}

    def trial_started(self, backend_id: str) -> None:
        record = self.ledger.get(self._ids[backend_id])
        if self.tracker is not None and record.run_id is None:
            record.run_id = self.tracker.start_trial(record)
            if self.journal is not None:
                self.journal.update_trial(record.number, run_id=record.run_id)

    def epoch_reported(self, backend_id: str, result: dict[str, Any]) -> bool:
        """Record one epoch; return True when the policy stops the trial."""
        trial_id = self._ids[backend_id]
        self._placed(trial_id, result)
        if DIVERGED_KEY in result:
            self.ledger.mark_diverged(trial_id, str(result[DIVERGED_KEY]))
            return False
        record = self.ledger.get(trial_id)
        epoch = int(result.get("epoch", record.epochs + 1))
        if trial_id in self._retried:
            self._retried.discard(trial_id)
            self._resumed(record, epoch - 1)
        if epoch <= record.epochs:  # replayed after a retry or a resume: recorded once already
            return False
        metrics = {k: float(result[k]) for k in REPORTED_METRICS if k in result}
        if self.journal is not None:
            self.journal.record_epoch(record.number, epoch, metrics)
        self.ledger.record_epoch(trial_id, metrics)
        _failpoints.hit("epoch-recorded")
        self.searcher.report(record.number, epoch, metrics.get(self.ledger.primary.metric, float("nan")))
        self._keep_best()
        decision = self._decide(record) if epoch < self.ledger.max_epochs else None
        if decision is not None and decision.metrics:
            self.ledger.record_policy_metrics(trial_id, decision.metrics)
            metrics.update(decision.metrics)
        if self.tracker is not None and record.run_id is not None:
            self.tracker.log_metrics(record.run_id, metrics, step=epoch)
        if decision is None or not decision.stop:
            return False
        self.ledger.mark_stopped(decision, self.policy.name)
        if self.journal is not None:
            self.journal.update_trial(record.number, stopped_by=self.policy.name, reason=decision.reason)
        logger.info("trial %d stopped: %s", record.number, decision.reason)
        return True

    def _placed(self, trial_id: str, result: dict[str, Any]) -> None:
        """Tag the trial's run with where this attempt runs (if ``result`` says); warn when the trial
        was given a GPU it cannot use."""
        prefix = PLACEMENT_PREFIX
        placement = {k.removeprefix(prefix): str(v) for k, v in result.items() if k.startswith(prefix)}
        if not placement:
            return
        record = self.ledger.get(trial_id)
        if placement.get("device") == "cpu" and placement.get("gpus"):
            logger.warning(
                "trial %d was given GPU %s on host %s, but CUDA is not available there: it trains on CPU",
                record.number, placement["gpus"], placement.get("hostname", "?"),
            )
        if self.tracker is not None and record.run_id is not None:
            self.tracker.tag_trial(record.run_id, {f"foreseer.{k}": v for k, v in placement.items()})

    def _resumed(self, record: TrialRecord, epoch: int) -> None:
        """A retried trial reported again, continuing after ``epoch`` (its checkpoint's epoch).

        Tune registers an epoch's checkpoint in a step of its own after the epoch's result, so a
        trial lost in between resumes one epoch before its last recorded one; that epoch is trained
        again and not recorded twice. Further back means checkpoints were lost."""
        if self.journal is not None:
            self.journal.update_trial(record.number, resumed_from_epoch=epoch)
        if record.epochs - epoch > 1:
            logger.warning(
                "trial %d restarted after epoch %d, though %d epochs were recorded: it lost its later "
                "checkpoints",
                record.number, epoch, record.epochs,
            )
        else:
            logger.info("trial %d resumed from its checkpoint of epoch %d", record.number, epoch)

    def _decide(self, record: TrialRecord) -> Decision:
        best = self.ledger.best()
        return self.policy.decide(
            [self.ledger.curve(record)],
            self.ledger.oriented(best[2]) if best else None,
            self.ledger.curves(),
        )[0]

    def checkpoint_saved(self, backend_id: str, path: str | Path) -> None:
        trial_id = self._ids[backend_id]
        self._latest_checkpoint[trial_id] = Path(path)
        if self.journal is not None:
            record = self.ledger.get(trial_id)
            self.journal.update_trial(record.number, checkpoint=str(path), checkpoint_epoch=_checkpoint_epoch(Path(path)))
        self._keep_best()

    def trial_retried(self, backend_id: str, error: str) -> None:
        """The backend restarts a trial from its last checkpoint after ``error``."""
        record = self.ledger.get(self._ids[backend_id])
        record.attempts += 1
        record.retry_errors.append(error)
        self._retried.add(record.trial_id)
        logger.warning("trial %d failed (%s); retry %d from its last checkpoint", record.number, error, record.attempts - 1)
        if self.journal is not None:
            self.journal.update_trial(record.number, attempts=record.attempts, retry_errors=list(record.retry_errors))

    def trial_ended(self, backend_id: str, error: str | None = None) -> TrialRecord:
        """Settle the trial, tell the searcher, close its run; safe to call twice. While the job is
        being cancelled, a trial cut short stays unfinished so that resume continues it."""
        trial_id = self._ids[backend_id]
        record = self.ledger.get(trial_id)
        if trial_id in self._ended or (self.cancelling and self.ledger.interrupted(record, error)):
            return record
        record = self.ledger.finalize(trial_id, error)
        self._ended.add(trial_id)
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
        return record

    def _keep_best(self) -> None:
        """Copy the best epoch's weights out of Tune's rotating checkpoints as soon as they exist."""
        best = self.ledger.best()
        if self.best_dir is None or best is None:
            return
        record, epoch, value = best
        if self._kept == (record.trial_id, epoch):
            return
        checkpoint = self._latest_checkpoint.get(record.trial_id)
        if checkpoint is None or _checkpoint_epoch(checkpoint) != epoch:
            return
        self.best_dir.mkdir(parents=True, exist_ok=True)
        weights = f"model-{record.trial_id}-e{epoch}.safetensors"
        shutil.copyfile(checkpoint / BEST_WEIGHTS, self.best_dir / weights)
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
        self._kept = (record.trial_id, epoch)


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        return int(json.loads((path / "trial.json").read_text())["epoch"])
    except (OSError, KeyError, ValueError):
        return None
