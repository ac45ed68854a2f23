"""Screening: the gate's decisions, the online trust check, and the screened searcher on a real
Optuna study and ledger; every screener through the same contract."""

import math

import optuna
import pytest
import torch

from foreseer import events as ev
from foreseer.ledger import Ledger
from foreseer.predictors.ghn.model import GHNConfig, GraphHyperNetwork
from foreseer.predictors.ghn.predictor import GHNPredictor
from foreseer.screening import (
    GHNScreener,
    ParamCountScreener,
    ScreenedSearcher,
    Screener,
    ScreeningGate,
    kendall_tau,
)
from foreseer.searcher import CandidateSearcher
from foreseer.spec import Objective, ScreeningSpec
from foreseer_spaces import get_space
from foreseer_workers import load_dataset


class DepthScreener(Screener):
    """A real, deterministic screener for the tests: deeper MLPs score higher."""

    name = "depth"

    def score(self, candidates):
        return [float(c.arch["depth"]) + float(c.arch["width_0"]) / 1000 for c in candidates]


@pytest.fixture(scope="module")
def wine():
    return load_dataset("wine")


def _screeners(data):
    torch.manual_seed(0)
    ghn = GraphHyperNetwork(GHNConfig(hidden=8, decoder_hidden=16, block=8, max_dim=32, vector_len=32))
    space = get_space("mlp")
    return [
        GHNScreener(GHNPredictor(ghn, space, data.task), data.x_val, data.y_val),
        ParamCountScreener(space, data.task),
        DepthScreener(),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["ghn", "num_params", "depth"])
def test_every_screener_returns_one_finite_score_per_candidate(wine, index):
    torch.set_num_threads(1)
    screener = _screeners(wine)[index]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    candidates = [get_space("mlp").sample(study.ask(), wine.task) for _ in range(5)]
    scores = screener.score(candidates)
    assert len(scores) == 5 and all(math.isfinite(s) for s in scores)
    assert screener.score(candidates) == scores  # deterministic
    assert screener.score([]) == []


def test_gate_drops_the_bottom_fraction_and_never_everything():
    gate = ScreeningSpec(batch=4, drop_fraction=0.25).gate(DepthScreener())
    assert gate.split([0.3, 0.9, 0.1, 0.5]) == ([1, 3, 0], [2])
    assert ScreeningSpec(batch=4, drop_fraction=0.5).gate(DepthScreener()).split([0.3, 0.9, 0.1, 0.5]) == (
        [1, 3],
        [0, 2],
    )
    assert ScreeningGate(DepthScreener(), batch=2, drop_fraction=0.9, min_trials=8).split([0.2, 0.1]) == (
        [0],
        [1],
    )
    with pytest.raises(
        ValueError, match=r"drop_fraction must lie in \(0, 1\), but got self.drop_fraction=1.5"
    ):
        ScreeningGate(DepthScreener(), batch=4, drop_fraction=1.5, min_trials=8)


def test_trust_check_switches_screening_off_when_parameter_count_ranks_better():
    gate = ScreeningSpec(min_trials=4).gate(DepthScreener())
    # results follow parameter count, the screener's scores run the other way
    verdicts = [gate.observe(score=-i, num_params=100 * i, value=0.5 + i / 100) for i in range(6)]
    assert verdicts[:3] == [None, None, None]
    assert verdicts[3].trials == 4 and not verdicts[3].trusted and not gate.active
    assert verdicts[3].screener_tau == pytest.approx(-1) and verdicts[3].baseline_tau == pytest.approx(1)
    assert "switched off" in verdicts[3].message
    assert not gate.active  # off for the rest of the job, whatever comes next
    gate.observe(score=100, num_params=0, value=2.0)
    assert not gate.active


def test_trust_check_keeps_a_screener_that_ranks_better():
    gate = ScreeningSpec(min_trials=4).gate(DepthScreener())
    for i in range(5):
        verdict = gate.observe(score=i, num_params=[3, 1, 4, 1, 5][i], value=i / 10)
    assert verdict.trusted and gate.active and verdict.screener_tau == pytest.approx(1)


def test_kendall_tau_matches_known_values():
    assert kendall_tau([1, 2, 3], [1, 2, 3]) == pytest.approx(1)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert math.isnan(kendall_tau([1], [2]))


def _searcher(wine):
    ledger = Ledger([Objective("val_accuracy", "max")], max_epochs=2)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    return CandidateSearcher(study, get_space("mlp"), wine.task, {}, ledger), ledger, study


def test_screened_searcher_prunes_the_tail_in_optuna_and_runs_the_rest_best_first(wine):
    inner, ledger, study = _searcher(wine)
    screened = []
    searcher = ScreenedSearcher(inner, ScreeningSpec(batch=4, drop_fraction=0.5).gate(DepthScreener()),
                                on_screened=lambda n, c, s: screened.append((n, s)))  # fmt: skip
    first = [searcher.ask() for _ in range(2)]  # one refill: 4 asked, 2 screened, 2 queued
    assert len(screened) == 2 and len(study.trials) == 4
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert sorted(t.user_attrs["foreseer_number"] for t in pruned) == sorted(n for n, _ in screened)
    assert all(t.user_attrs["status"] == "screened" and "depth_score" in t.user_attrs for t in pruned)
    run_scores = [searcher.scores[n] for n, _ in first]
    assert run_scores == sorted(run_scores, reverse=True)
    assert min(run_scores) >= max(s for _, s in screened)
    searcher.ask()
    assert len(study.trials) == 8  # the queue was empty: a second batch was asked


def test_screened_searcher_feeds_completed_trials_to_the_trust_check_and_stops_screening(wine):
    inner, ledger, study = _searcher(wine)
    verdicts = []
    gate = ScreeningSpec(batch=2, drop_fraction=0.5, min_trials=3).gate(DepthScreener())
    searcher = ScreenedSearcher(inner, gate, on_verdict=verdicts.append)
    for _ in range(3):
        number, candidate = searcher.ask()
        # results anti-correlated with the screener's score, in step with parameter count
        score = searcher.scores[number]
        events = [ev.Proposed(number, candidate=candidate.to_dict())]
        for epoch in (1, 2):
            events.append(
                ev.Epoch(
                    number, epoch=epoch, metrics={"val_accuracy": 1 - score / 10, "num_params": 1000 - score}
                )
            )
        for event in [*events, ev.Completed(number, reason="trained 2 epochs")]:
            ledger.observe(event)
            searcher.observe(event)
    assert verdicts and not verdicts[-1].trusted and not gate.active
    asked = len(study.trials)
    searcher.ask()
    assert len(study.trials) == asked + 1  # asked directly, no batch, no screening
    assert searcher.sampled(number)  # everything else is the wrapped searcher's
