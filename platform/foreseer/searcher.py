"""Candidates from Optuna: ask for one per free slot, tell the outcome.

Trials stopped early are told to Optuna as PRUNED and failed ones as FAIL, never as COMPLETE:
out of the box Ray Tune's Optuna integration reports every ended trial as complete, which feeds
TPE the truncated curves of stopped trials as if they were final results.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from foreseer_spaces import Candidate, SearchSpace, Task

    from foreseer.ledger import Ledger, TrialRecord

__all__ = ["CandidateSearcher"]

logger = logging.getLogger(__name__)


class CandidateSearcher:
    """Wraps an Optuna study with the job's space: ``ask`` samples a candidate, ``tell`` closes it.

    Args:
        study: the job's Optuna study (its directions match the job's objectives).
        space: the search space candidates are sampled from (define-by-run).
        task: the task the networks are built for (user spaces may depend on it).
        overrides: parsed parameter overrides that fix or narrow sampled parameters.
        ledger: the job's ledger, read to settle outcomes.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        task: Task,
        overrides: Mapping[str, Any],
        ledger: Ledger,
    ) -> None:
        self.study = study
        self.space = space
        self.task = task
        self.overrides = dict(overrides)
        self.ledger = ledger
        self._open: dict[int, optuna.Trial] = {}

    def ask(self) -> tuple[int, Candidate]:
        """Sample a new candidate; returns the Optuna trial number and the candidate."""
        from foreseer_spaces import constrain

        trial = self.study.ask()
        candidate = self.space.sample(constrain(trial, self.overrides), self.task)
        trial.set_user_attr("candidate", candidate.to_dict())
        trial.set_user_attr("candidate_hash", candidate.hash)
        self._open[trial.number] = trial
        return trial.number, candidate

    def report(self, number: int, epoch: int, value: float) -> None:
        """Record an intermediate value of the primary objective (single-objective studies only)."""
        trial = self._open.get(number)
        if trial is not None and len(self.study.directions) == 1 and value == value:
            trial.report(value, step=epoch)

    def tell(self, record: TrialRecord) -> None:
        """Close the Optuna trial of a settled record: COMPLETE, PRUNED or FAIL."""
        import optuna

        trial = self._open.pop(record.number, None)
        if trial is None:
            return
        trial.set_user_attr("status", record.state)
        trial.set_user_attr("reason", record.reason)
        best = self.ledger.best_epoch(record)
        if record.state == "stopped":
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif record.state == "completed" and best is not None:
            epoch = best[0]
            values = [record.metrics[epoch - 1][o.metric] for o in self.ledger.objectives]
            self.study.tell(trial, values if len(values) > 1 else values[0])
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        logger.debug("told optuna trial %d: %s", record.number, record.state)
