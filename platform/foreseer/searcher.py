"""Candidates from Optuna: ask for one per free slot, tell the outcome.

Trials stopped early are told to Optuna as PRUNED and failed ones as FAIL, never as COMPLETE:
out of the box Ray Tune's Optuna integration reports every ended trial as complete, which feeds
TPE the truncated curves of stopped trials as if they were final results.

A job never trains one candidate twice: a candidate whose content hash the job already has is
closed in Optuna (with the earlier trial's outcome once that has ended) and Optuna is asked again;
after ``DUPLICATE_ASKS`` duplicates in a row the space counts as exhausted (:class:`SearchExhausted`)
and the job proposes no more.

Trial numbers are the job's own (0, 1, 2, … in the order candidates were proposed). A resume
rebuilds the in-memory study by replaying the journal's events in their order: each recorded
proposal is asked of the freshly seeded sampler again, each epoch reported and each end told as it
was, so the sampler is left in the state an uninterrupted run would have, and the candidates
proposed after the resume are the ones that run would have proposed (a screened job replays its
screening too, see :class:`~foreseer.screening.ScreenedSearcher`). Should the sampler not
reproduce a recorded proposal (a sampler that is not deterministic, another Optuna version), the
rest of the history is added as finished trials instead, and the dedupe still keeps every later
candidate new.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from foreseer import events as ev

if TYPE_CHECKING:
    import optuna

    from foreseer.events import TrialEvent
    from foreseer.ledger import Ledger, TrialRecord
    from foreseer_spaces import Candidate, SearchSpace, Task

__all__ = ["CLOSED_UNSEEN", "DUPLICATE_ASKS", "CandidateSearcher", "SearchExhausted"]

logger = logging.getLogger(__name__)

#: Candidates in a row that the job already has, after which its space counts as exhausted.
DUPLICATE_ASKS = 50
#: The ``status`` of Optuna trials closed without the job training them: a repeated proposal, and
#: one a resume could not replay.
CLOSED_UNSEEN = ("duplicate", "not-replayed")


class SearchExhausted(Exception):
    """The sampler proposed only candidates the job already has, ``DUPLICATE_ASKS`` times in a row."""


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
        self._hashes: dict[str, int] = {}
        self._replaying = True

    def ask(self) -> tuple[int, Candidate]:
        """Sample a candidate the job does not have yet; returns its trial number and the candidate.

        Raises:
            SearchExhausted: the sampler proposed ``DUPLICATE_ASKS`` known candidates in a row.
        """
        trial, candidate = self._sample_new()
        number, self._next = self._next, self._next + 1
        self._open_trial(number, trial, candidate)
        return number, candidate

    def _sample_new(self) -> tuple[optuna.Trial, Candidate]:
        from foreseer_spaces import constrain

        for _ in range(DUPLICATE_ASKS):
            trial = self.study.ask()
            candidate = self.space.sample(constrain(trial, self.overrides), self.task)
            earlier = self._hashes.get(candidate.hash)
            if earlier is None:
                return trial, candidate
            self._close_duplicate(trial, earlier)
        raise SearchExhausted(
            f"the sampler proposed {DUPLICATE_ASKS} candidates in a row that the job already has; "
            "the space looks exhausted, so no more trials are proposed"
        )

    def _open_trial(self, number: int, trial: optuna.Trial, candidate: Candidate) -> None:
        from optuna.distributions import distribution_to_json

        trial.set_user_attr("foreseer_number", number)
        trial.set_user_attr("candidate_hash", candidate.hash)
        self._open[number] = trial
        self._hashes[candidate.hash] = number
        self._sampled[number] = {
            "params": dict(trial.params),
            "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        }

    def _close_duplicate(self, trial: optuna.Trial, earlier: int) -> None:
        """Close an asked trial whose candidate trial ``earlier`` has: with that trial's outcome
        once it has ended (so Optuna learns nothing false), as FAIL (ignored) while it has not."""
        from optuna.trial import TrialState

        record = self.ledger.get(ev.trial_key(earlier)) if ev.trial_key(earlier) in self.ledger else None
        state, values = TrialState.FAIL, None
        if record is not None and record.state in ("completed", "stopped", "failed"):
            state, values = self._outcome(record)
        trial.set_user_attr("status", CLOSED_UNSEEN[0])
        trial.set_user_attr("duplicate_of", earlier)
        self.study.tell(trial, values, state=state)
        logger.debug("optuna proposed trial %d's candidate again; asking again", earlier)

    def sampled(self, number: int) -> dict[str, Any]:
        """What Optuna sampled for trial ``number`` (params and distributions, JSON-ready), to store it."""
        return self._sampled[number]

    def restore(self, event: TrialEvent) -> None:
        """Follow an event recorded before a resume, in the journal's order: a proposal is asked
        of the sampler again (see the module's notes), everything else observed as it was."""
        if isinstance(event, ev.Proposed):
            self._restore_proposed(event)
        else:
            self.observe(event)

    @property
    def replaying(self) -> bool:
        """Whether a resume is still replaying the sampler exactly (see the module's notes)."""
        return self._replaying

    def _restore_proposed(self, event: ev.Proposed) -> None:
        if self._replaying:
            try:
                trial, candidate = self._sample_new()
            except SearchExhausted:
                trial, candidate = None, None
            if trial is not None and self.replays(event, self._next, candidate):
                self._next += 1
                self._open_trial(event.number, trial, candidate)
                return
            self.stop_replaying(event.number, [trial] if trial is not None else [])
        self.add_proposed(event)

    def replays(self, event: ev.Proposed, number: int, candidate: Candidate) -> bool:
        """Whether proposing ``candidate`` as trial ``number`` is what ``event`` recorded."""
        return number == event.number and candidate.hash == self._record(event).candidate.hash

    def stop_replaying(self, number: int, asked: Sequence[optuna.Trial]) -> None:
        """The sampler did not propose trial ``number``'s candidate again: close the trials it was
        just asked (``asked``) and add the rest of the history as finished trials."""
        from optuna.trial import TrialState

        self._replaying = False
        logger.warning(
            "the sampler did not propose trial %d's candidate again on resume; the rest of the "
            "history is added as finished trials (later candidates are still new to the job)",
            number,
        )
        for trial in asked:
            trial.set_user_attr("status", CLOSED_UNSEEN[1])
            self.study.tell(trial, state=TrialState.FAIL)

    def withdraw(self, number: int) -> optuna.Trial:
        """Forget open trial ``number`` before it was proposed; returns its Optuna trial, still open."""
        trial = self._open.pop(number)
        self._hashes.pop(trial.user_attrs["candidate_hash"], None)
        self._sampled.pop(number, None)
        return trial

    def add_proposed(self, event: ev.Proposed) -> None:
        """Take over a recorded proposal without asking the sampler (it is told at its end)."""
        self._sampled[event.number] = dict(event.sampled)
        self._hashes[self._record(event).candidate.hash] = event.number
        self._next = max(self._next, event.number + 1)

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
