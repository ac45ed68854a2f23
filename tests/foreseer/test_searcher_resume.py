"""The searcher across a resume and against duplicates, on the real loop with real Optuna samplers
and the mlp space, trials played by the replay backend (so a job runs in milliseconds and can be
"killed" after every single event of its journal).

A kill leaves the journal with a prefix of the events the uninterrupted run would have written
(the journal is written before anything acts on an event), so killing at event ``k`` is: rebuild a
fresh ledger, searcher and driver from ``events[:k]``, as ``foreseer resume`` does, and go on.
"""

import numpy as np
import optuna
import pytest

from foreseer import events as ev
from foreseer.backends.replay import ReplayBackend
from foreseer.driver import LoopPlan, SearchDriver
from foreseer.ledger import Ledger
from foreseer.samplers import make_sampler
from foreseer.screening import ParamCountScreener, ScreenedSearcher
from foreseer.searcher import DUPLICATE_ASKS, CandidateSearcher, SearchExhausted
from foreseer.spec import Objective, ScreeningSpec
from foreseer.stopping import AshaPolicy, NoStoppingPolicy
from foreseer_spaces import Candidate, get_space, parse_overrides
from foreseer_workers import load_dataset

EPOCHS = 3
SPACE = get_space("mlp")
TASK = load_dataset("wine", seed=0).task


class NumberedReplay(ReplayBackend):
    """Trial ``n`` plays curve ``n % len(curves)``: the replay backend for real candidates."""

    def start(self, trial):
        epochs = int(trial.resume_from.rsplit("-", 1)[1]) if trial.resume_from else 0
        self._progress[trial.trial_id] = (trial.number % len(self.curves), epochs)
        self._next_epoch(trial.trial_id)


class Journal(list):
    """Keeps the events in order, as the job store's journal does."""

    def observe(self, event):
        self.append(event)


def curves():
    rng = np.random.default_rng(0)
    finals = rng.uniform(0.3, 0.95, (7, 1))
    return finals * (1 - np.exp(-np.arange(1, EPOCHS + 1) / rng.uniform(0.5, 2, (7, 1))))


class SizedReplay(NumberedReplay):
    """Each epoch also reports the network's size, which the screening's trust check reads."""

    def _push(self, at, event):
        if hasattr(event, "metrics"):
            event.metrics["num_params"] = float(self.sizes[event.trial_id])
        super()._push(at, event)

    def start(self, trial):
        self.sizes = getattr(self, "sizes", {})
        network = SPACE.build(Candidate.from_dict(trial.candidate), TASK)
        self.sizes[trial.trial_id] = sum(p.numel() for p in network.parameters())
        super().start(trial)


def build(history=(), *, sampler="tpe", seed=11, policy=None, overrides=None, screening=None, screened=None):
    """A fresh job's loop: ledger, searcher and driver, rebuilt from ``history`` as resume does;
    with ``screening`` (a :class:`ScreeningSpec`) the searcher screens by parameter count, and
    passes each screened-out trial number to ``screened.append``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ledger = Ledger([Objective("val_accuracy", "max")], EPOCHS)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed=seed))
    searcher = CandidateSearcher(study, SPACE, TASK, parse_overrides(overrides or {}), ledger)
    if screening is not None:
        gate = screening.gate(ParamCountScreener(SPACE, TASK))
        searcher = ScreenedSearcher(searcher, gate, on_screened=lambda n, c, s: screened.append(n))
    journal = Journal(history)
    for event in history:
        ledger.observe(event)
    driver = SearchDriver(ledger, searcher, policy or NoStoppingPolicy(), journal=journal)
    driver.restore(list(history))
    return driver, journal


def run(driver, trials, max_concurrent, backend=NumberedReplay):
    driver.run(backend(curves()), LoopPlan(trials=trials, max_concurrent=max_concurrent))


def proposals(events):
    return [(e.number, e.candidate) for e in events if isinstance(e, ev.Proposed)]


def test_a_job_killed_after_any_event_resumes_to_the_candidates_of_an_uninterrupted_run():
    """One trial at a time, no stopping: the order of events is fixed, so every candidate of the
    resumed job must be the uninterrupted run's, whichever event the kill came after. 14 trials:
    past TPE's 10 random start-up trials, into its model-based proposals."""
    trials = 14
    driver, full = build()
    run(driver, trials, max_concurrent=1)
    expected = proposals(full)
    assert len({str(c) for _, c in expected}) == trials
    for k in range(len(full)):
        driver, journal = build(full[:k])
        run(driver, trials, max_concurrent=1)
        assert proposals(journal) == expected, f"killed after event {k} ({type(full[k - 1]).__name__})"


def study_trials(driver):
    """The Optuna study as a comparable list: each trial's number, state, status and params."""
    return [
        (t.user_attrs.get("foreseer_number"), t.state, t.user_attrs.get("status"), t.params)
        for t in driver.searcher.study.trials
    ]


def test_a_screened_job_killed_after_any_event_replays_its_screening_exactly():
    """Screening asks a batch of 4 and drops the smallest network of each batch until its trust
    check (after 3 completed trials) finds it no better than parameter count, which it is, and
    switches it off. A resume replays both phases: every candidate, every screened-out trial and
    the Optuna study end as the uninterrupted run's, and each screened-out trial reaches the
    tracker's hook (the tracker records it once)."""
    trials, spec = 9, ScreeningSpec(batch=4, drop_fraction=0.25, min_trials=3)
    screened = []
    driver, full = build(screening=spec, screened=screened)
    run(driver, trials, max_concurrent=1, backend=SizedReplay)
    assert screened and not driver.searcher.gate.active, "screened, then switched off"
    expected, expected_study = proposals(full), study_trials(driver)
    for k in range(len(full)):
        again = []
        driver, journal = build(full[:k], screening=spec, screened=again)
        run(driver, trials, max_concurrent=1, backend=SizedReplay)
        where = f"killed after event {k} ({type(full[k - 1]).__name__})"
        assert proposals(journal) == expected, where
        assert study_trials(driver) == expected_study, where
        assert sorted(set(again)) == sorted(screened), where


def test_after_a_resume_the_sampler_proposes_what_the_uninterrupted_run_proposed_next():
    """Two trials at once and ASHA: what happens after a resume depends on timing, but at each
    point where the uninterrupted run asked for a candidate, a job resumed from the events before
    it must be asked into the same candidate: the sampler's state is the uninterrupted run's."""
    trials = 16
    driver, full = build(policy=AshaPolicy(1, 2))
    run(driver, trials, max_concurrent=2)
    points = [k for k, e in enumerate(full) if isinstance(e, ev.Proposed)]
    assert len(points) == trials
    for k in points:
        driver, _ = build(full[:k], policy=AshaPolicy(1, 2))
        number, candidate = driver.searcher.ask()
        assert (number, candidate.to_dict()) == (full[k].number, dict(full[k].candidate)), f"trial {number}"


#: Everything fixed but the activation: a space of two candidates.
TWO_CANDIDATES = {
    "depth": 1,
    "width_0": 32,
    "activation": {"choices": ["relu", "tanh"]},
    "norm": "none",
    "dropout": 0.0,
    "residual": False,
    "optimizer": "adamw",
    "lr": 0.01,
    "weight_decay": 1e-4,
    "batch_size": 32,
    "label_smoothing": 0.0,
    "lr_schedule": "cosine",
}


def test_a_candidate_is_never_trained_twice_and_an_exhausted_space_ends_the_search():
    driver, journal = build(sampler="random", overrides=TWO_CANDIDATES)
    run(driver, trials=5, max_concurrent=1)
    arches = [c["arch"]["activation"] for _, c in proposals(journal)]
    assert sorted(arches) == ["relu", "tanh"], "each candidate once"
    assert driver.exhausted is not None and "exhausted" in driver.exhausted
    study = driver.searcher.study
    duplicates = [t for t in study.trials if t.user_attrs.get("status") == "duplicate"]
    assert len(duplicates) >= DUPLICATE_ASKS, "the proposals that repeated were closed, then asked again"
    told = {t.user_attrs["duplicate_of"]: t for t in duplicates}
    for earlier, trial in told.items():
        original = next(t for t in study.trials if t.user_attrs.get("foreseer_number") == earlier)
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert trial.value == original.value, "a repeat is told the earlier trial's result"
    with pytest.raises(SearchExhausted, match="exhausted"):
        driver.searcher.ask()


def test_a_resumed_job_does_not_repeat_a_candidate_it_already_has(caplog):
    """Even when the sampler cannot replay the history (here: the history comes from another
    seed, whose first proposal differs), every candidate after the resume is new to the job."""
    other, history = build(sampler="random", seed=12, overrides=TWO_CANDIDATES)
    run(other, trials=1, max_concurrent=1)
    driver, journal = build(history, sampler="random", overrides=TWO_CANDIDATES)
    assert "did not propose trial 0's candidate again" in caplog.text
    run(driver, trials=5, max_concurrent=1)
    arches = [c["arch"]["activation"] for _, c in proposals(journal)]
    assert sorted(arches) == ["relu", "tanh"]
