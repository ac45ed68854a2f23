"""The search driver: what happens on the driver when a backend proposes, reports or ends a trial.

A backend (Ray Tune, or the replay backend over recorded curves) executes trials and calls these
hooks; the driver consults the searcher and the stopping policy, updates the ledger, and writes
to the tracker. It never imports Ray, so the same loop runs in simulated time.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from foreseer.ledger import Ledger, TrialRecord
    from foreseer.searcher import CandidateSearcher
    from foreseer.stopping import Decision, StoppingPolicy
    from foreseer.tracking import Tracker

__all__ = ["SearchDriver", "DIVERGED_KEY", "REPORTED_METRICS"]

logger = logging.getLogger(__name__)

#: A trial's last result carries this key (with the reason) when its loss turned NaN/inf.
DIVERGED_KEY = "foreseer_diverged"
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


class SearchDriver:
    """Driver-side reactions to trial events.

    Args:
        ledger: the job's ledger.
        searcher: proposes candidates and receives outcomes.
        policy: the stopping policy.
        tracker: the MLflow writer, or ``None`` to track nothing (replay benchmarks).
        best_dir: where the best weights seen so far are kept, or ``None``.
    """

    def __init__(
        self,
        ledger: Ledger,
        searcher: CandidateSearcher,
        policy: StoppingPolicy,
        tracker: Tracker | None = None,
        best_dir: Path | None = None,
    ) -> None:
        self.ledger = ledger
        self.searcher = searcher
        self.policy = policy
        self.tracker = tracker
        self.best_dir = best_dir
        self._latest_checkpoint: dict[str, Path] = {}
        self._kept: tuple[str, int] | None = None
        self._ended: set[str] = set()

    def propose(self, trial_id: str) -> dict[str, Any]:
        """A new trial's configuration: its candidate and the Optuna trial number."""
        number, candidate = self.searcher.ask()
        self.ledger.add(trial_id, number, candidate)
        return {"number": number, "candidate": candidate.to_dict()}

    def trial_started(self, trial_id: str) -> None:
        record = self.ledger.get(trial_id)
        if self.tracker is not None and record.run_id is None:
            record.run_id = self.tracker.start_trial(record)

    def epoch_reported(self, trial_id: str, result: dict[str, Any]) -> bool:
        """Record one epoch; return True when the policy stops the trial."""
        if DIVERGED_KEY in result:
            self.ledger.mark_diverged(trial_id, str(result[DIVERGED_KEY]))
            return False
        metrics = {k: float(result[k]) for k in REPORTED_METRICS if k in result}
        record = self.ledger.get(trial_id)
        self.ledger.record_epoch(trial_id, metrics)
        epoch = record.epochs
        primary = self.ledger.primary.metric
        self.searcher.report(record.number, epoch, metrics.get(primary, float("nan")))
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
        logger.info("trial %d stopped: %s", record.number, decision.reason)
        return True

    def _decide(self, record: TrialRecord) -> Decision:
        best = self.ledger.best()
        return self.policy.decide(
            [self.ledger.curve(record)],
            self.ledger.oriented(best[2]) if best else None,
            self.ledger.curves(),
        )[0]

    def checkpoint_saved(self, trial_id: str, path: str | Path) -> None:
        self._latest_checkpoint[trial_id] = Path(path)
        self._keep_best()

    def trial_ended(self, trial_id: str, error: str | None = None) -> TrialRecord:
        """Settle the trial, tell the searcher, close its run; safe to call twice."""
        record = self.ledger.finalize(trial_id, error)
        if trial_id in self._ended:
            return record
        self._ended.add(trial_id)
        self.searcher.tell(record)
        if self.tracker is not None:
            self.tracker.end_trial(record)
            best = self.ledger.best()
            if best is not None:
                self.tracker.log_summary({"best_so_far": best[2]}, step=self.ledger.epochs_used())
        logger.info("trial %d %s (%s)", record.number, record.state, record.reason)
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
        shutil.copyfile(checkpoint / BEST_WEIGHTS, self.best_dir / BEST_WEIGHTS)
        summary = {
            "trial_id": record.trial_id,
            "trial_number": record.number,
            "epoch": epoch,
            self.ledger.primary.metric: value,
            "candidate": record.candidate.to_dict(),
        }
        (self.best_dir / "best.json").write_text(json.dumps(summary, indent=2))
        self._kept = (record.trial_id, epoch)


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        return int(json.loads((path / "trial.json").read_text())["epoch"])
    except (OSError, KeyError, ValueError):
        return None
