"""Candidates from Optuna: ask for one per free slot, tell the outcome.

Trials stopped early are told to Optuna as PRUNED and failed ones as FAIL, never as COMPLETE:
out of the box Ray Tune's Optuna integration reports every ended trial as complete, which feeds
TPE the truncated curves of stopped trials as if they were final results.

Trial numbers are the job's own (0, 1, 2, … in the order candidates were proposed). After a
resume the in-memory study is rebuilt from the job store, so Optuna's numbering may differ; the
job's numbers never do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from foreseer import events as ev

if TYPE_CHECKING:
    import optuna

    from foreseer.events import TrialEvent
    from foreseer.ledger import Ledger, TrialRecord
    from foreseer_spaces import Candidate, SearchSpace, Task

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
        self._next = 0
        self._open: dict[int, optuna.Trial] = {}
        self._sampled: dict[int, dict[str, Any]] = {}

    def ask(self) -> tuple[int, Candidate]:
        """Sample a new candidate; returns the job's trial number and the candidate."""
        from optuna.distributions import distribution_to_json

        from foreseer_spaces import constrain

        trial = self.study.ask()
        candidate = self.space.sample(constrain(trial, self.overrides), self.task)
        number, self._next = self._next, self._next + 1
        trial.set_user_attr("foreseer_number", number)
        trial.set_user_attr("candidate_hash", candidate.hash)
        self._open[number] = trial
        self._sampled[number] = {
            "params": dict(trial.params),
            "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        }
        return number, candidate

    def sampled(self, number: int) -> dict[str, Any]:
        """What Optuna sampled for trial ``number`` (params and distributions, JSON-ready), to store it."""
        return self._sampled[number]

    def restore(self, event: TrialEvent) -> None:
        """Follow an event recorded before a resume: know the trials proposed, and add the ended
        ones to the study with their whole history."""
        if isinstance(event, ev.Proposed):
            self._sampled[event.number] = dict(event.sampled)
            self._next = max(self._next, event.number + 1)
        elif isinstance(event, ev.ENDED):
            self.tell(self._record(event))

    def observe(self, event: TrialEvent) -> None:
        """Follow the job's events: report each epoch to Optuna, tell each ended trial."""
        if isinstance(event, ev.Epoch):
            self.report(event.number, event.epoch, event.metrics.get(self.ledger.primary.metric, math.nan))
        elif isinstance(event, ev.ENDED):
            self.tell(self._record(event))

    def _record(self, event: TrialEvent) -> TrialRecord:
        return self.ledger.get(ev.trial_key(event.number))

    def screen_out(self, number: int, score: float, screener: str) -> None:
        """Close an asked candidate that will not be trained: PRUNED in Optuna, with its score."""
        from optuna.trial import TrialState

        trial = self._open.pop(number, None)
        if trial is None:
            return
        trial.set_user_attr("status", "screened")
        trial.set_user_attr(f"{screener}_score", score)
        self.study.tell(trial, state=TrialState.PRUNED)
        self._sampled.pop(number, None)

    def report(self, number: int, epoch: int, value: float) -> None:
        """Record an intermediate value of the primary objective (single-objective studies only)."""
        trial = self._open.get(number)
        if trial is not None and len(self.study.directions) == 1 and value == value:
            trial.report(value, step=epoch)

    def tell(self, record: TrialRecord) -> None:
        """Close the Optuna trial of a settled record: COMPLETE, PRUNED or FAIL."""
        state, values = self._outcome(record)
        trial = self._open.pop(record.number, None)
        if trial is not None:
            trial.set_user_attr("status", record.state)
            self.study.tell(trial, values, state=state)
        elif record.number in self._sampled:
            self._add_finished(record, state, values)
        logger.debug("told optuna trial %d: %s", record.number, record.state)

    def _outcome(self, record: TrialRecord) -> tuple[Any, Any]:
        from optuna.trial import TrialState

        best = self.ledger.best_epoch(record)
        if record.state == "stopped":
            return TrialState.PRUNED, None
        if record.state == "completed" and best is not None:
            values = [record.metrics[best[0] - 1][o.metric] for o in self.ledger.objectives]
            return TrialState.COMPLETE, values if len(values) > 1 else values[0]
        return TrialState.FAIL, None

    def _add_finished(self, record: TrialRecord, state: Any, values: Any) -> None:
        """Add a trial that ran across a resume (no live Optuna trial) with its whole history."""
        import optuna
        from optuna.distributions import json_to_distribution

        sampled = self._sampled[record.number]
        metric = self.ledger.primary.metric
        intermediate = {}
        if len(self.study.directions) == 1:
            intermediate = {i + 1: m[metric] for i, m in enumerate(record.metrics) if metric in m}
        trial = optuna.trial.create_trial(
            params=sampled["params"],
            distributions={k: json_to_distribution(v) for k, v in sampled["distributions"].items()},
            state=state,
            value=values if not isinstance(values, list) else None,
            values=values if isinstance(values, list) else None,
            intermediate_values=intermediate,
            user_attrs={
                "foreseer_number": record.number,
                "candidate_hash": record.candidate.hash,
                "status": record.state,
            },
        )
        self.study.add_trial(trial)
