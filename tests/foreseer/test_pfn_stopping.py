"""PFN stopping through the StoppingPolicy interface, the job spec and the search driver."""

import numpy as np
import pytest
import torch

import foreseer as fs
from foreseer.backends.replay import simulate
from foreseer.errors import SpecError
from foreseer.ledger import Ledger
from foreseer.predictors.pfn.normalize import CurveNormalizer
from foreseer.spec import Objective
from foreseer.stopping import CurveHistory, CurveSummary, CurveView, Decision, PFNPolicy


@pytest.fixture(scope="module")
def policy():
    torch.set_num_threads(1)
    return PFNPolicy(delta=0.05, min_epoch=2)


def job(**fields):
    return fs.SearchJob(name="j", space="mlp", dataset="wine", trials=2, max_epochs=5, **fields)


def test_spec_accepts_pfn_by_name_and_with_settings():
    assert isinstance(job(stopping="pfn").stopping.build(), PFNPolicy)
    built = job(stopping={"name": "pfn", "delta": 0.01, "min_epoch": 3}).stopping.build()
    assert (built.delta, built.min_epoch, built.name) == (0.01, 3, "pfn")
    assert job(stopping=fs.PFNStopping(delta=0.01)).stopping.delta == 0.01
    with pytest.raises(SpecError, match=r"stopping\.delta: Input should be less than 1"):
        job(stopping={"name": "pfn", "delta": 1.5})


def test_policy_settings_are_validated():
    with pytest.raises(ValueError, match="delta must be in"):
        PFNPolicy(delta=0, min_epoch=2)
    with pytest.raises(ValueError, match="min_epoch must be at least 1"):
        PFNPolicy(delta=0.05, min_epoch=0)


def test_hopeless_trial_stops_and_promising_one_continues(policy):
    flat = CurveView("flat", (0.30, 0.31, 0.30, 0.31), 20)
    rising = CurveView("rising", (0.40, 0.60, 0.72, 0.80), 20)
    decisions = policy.decide([flat, rising], best=0.82, history=[flat, rising])
    by_id = {d.trial_id: d for d in decisions}
    assert by_id["flat"].stop and "pfn: P(final better than best" in by_id["flat"].reason
    assert by_id["flat"].metrics["p_improve"] < 0.05
    assert not by_id["rising"].stop and by_id["rising"].metrics["p_improve"] > 0.2
    assert by_id["rising"].metrics["forecast_final"] > 0.8
    q05, q95 = by_id["rising"].metrics["forecast_final_q05"], by_id["rising"].metrics["forecast_final_q95"]
    assert q05 < by_id["rising"].metrics["forecast_final"] < q95


def test_batched_decisions_equal_one_at_a_time(policy):
    rng = np.random.default_rng(0)
    curves = [
        CurveView(f"t{i}", tuple(np.sort(rng.uniform(0, 0.9, rng.integers(2, 19)))), 20) for i in range(8)
    ]
    together = policy.decide(curves, best=0.85, history=curves)
    alone = [policy.decide([c], best=0.85, history=curves)[0] for c in curves]
    for a, b in zip(together, alone, strict=True):
        # int8 blocks: a last-bit difference from padding can move a token by one rounding step
        assert a.stop == b.stop and a.metrics["p_improve"] == pytest.approx(b.metrics["p_improve"], abs=5e-3)


def test_no_decision_before_min_epoch_at_the_budget_or_without_a_best(policy):
    early = CurveView("a", (0.1,), 20)
    done = CurveView("b", tuple([0.1] * 20), 20)
    assert policy.decide([early, done], best=0.9, history=[early, done]) == [Decision("a"), Decision("b")]
    assert not policy.decide([CurveView("c", (0.1, 0.1), 20)], best=None)[0].stop


def test_losses_are_normalised_so_minimised_metrics_work(policy):
    # oriented: a minimised loss arrives negated
    good = CurveView("good", tuple(-v for v in (2.3, 1.2, 0.8, 0.6, 0.5, 0.45)), 30)
    stuck = CurveView("stuck", tuple(-v for v in (2.3, 2.29, 2.3, 2.3)), 30)
    decisions = policy.decide([stuck], best=-0.45, history=[good, stuck])
    assert decisions[0].stop and decisions[0].metrics["p_improve"] < 0.05
    assert decisions[0].metrics["forecast_final"] < -1.5, "the forecast is reported in the metric's own units"


def test_the_ledger_keeps_the_summary_a_scan_of_every_curve_gives():
    """The driver's history carries a summary kept as epochs arrive; it must equal the summary
    computed from scratch, non-finite values and all, and choose the same normaliser as a fit."""
    rng = np.random.default_rng(3)
    ledger = Ledger([Objective("val_loss", "min")], max_epochs=6)
    for number in range(40):
        ledger.add(f"t{number}", number, None)  # type: ignore[arg-type]
    for _ in range(150):
        number = int(rng.integers(40))
        loss = float(rng.choice([np.nan, np.inf, rng.uniform(0.1, 3.0)], p=[0.05, 0.05, 0.9]))
        if ledger.get(f"t{number}").epochs < 6:
            ledger.record_epoch(f"t{number}", {"val_loss": loss})
    history = ledger.curves()
    scanned = CurveSummary.of(c.values for c in history)
    assert history.summary == scanned, "the first medians, lows and highs agree"
    assert scanned.low < scanned.high < 0, "losses arrive negated, non-finite values left out"
    fitted = CurveNormalizer.fit([c.values for c in history])
    kept = CurveNormalizer.from_bounds(scanned.low, scanned.high, scanned.first_median)
    assert (kept.kind, kept.lo, kept.hi) == pytest.approx((fitted.kind, fitted.lo, fitted.hi))


def test_decisions_from_the_kept_summary_equal_those_from_the_curves(policy):
    rng = np.random.default_rng(4)
    curves = [
        CurveView(f"t{i}", tuple(-np.sort(rng.uniform(0.2, 2.5, rng.integers(1, 9)))[::-1]), 10)
        for i in range(12)
    ]
    best = max(c.best for c in curves)
    plain = policy.decide(curves, best=best, history=curves)
    kept = policy.decide(curves, best=best, history=CurveHistory(curves))
    assert plain == kept


def test_stopped_trials_go_through_the_driver_with_p_improve_each_epoch(policy):
    rng = np.random.default_rng(1)
    t = np.arange(1, 21)
    finals = rng.uniform(0.3, 0.95, 12)
    curves = finals[:, None] * (1 - np.exp(-t / rng.uniform(1, 4, (12, 1)))) + rng.normal(0, 0.005, (12, 20))
    run = simulate(curves, list(range(12)), policy, budget=12 * 20)
    ledger, trace = run.ledger, run.best_so_far
    records = ledger.records()
    stopped = [r for r in records if r.state == "stopped"]
    assert stopped and all(r.stopped_by == "pfn" and r.reason.startswith("pfn:") for r in stopped)
    assert ledger.epochs_used() < 12 * 20
    assert trace[-1] > np.median(curves[:, -1]), "stopping keeps a better-than-median trial"
    for r in records[1:]:
        epochs = [m["epoch"] for m in r.policy_metrics]
        assert epochs == list(range(2, min(r.epochs, 19) + 1)), (
            "p_improve is recorded every epoch from min_epoch"
        )
        assert all(0 <= m["p_improve"] <= 1 for m in r.policy_metrics)


@pytest.mark.parametrize(
    "stopping, message",
    [
        ({"name": "custom", "policy": "no_such_module:Policy"}, "cannot import 'no_such_module:Policy'"),
        (
            {"name": "custom", "policy": "foreseer.stopping:AshaPolicy", "settings": {"grace": 1}},
            "does not accept settings",
        ),
        (
            {"name": "custom", "policy": "foreseer.spec:Objective"},
            "built a Objective, not a foreseer.stopping.StoppingPolicy",
        ),
        ({"name": "custom", "policy": "not a path"}, "String should match pattern"),
    ],
)
def test_a_custom_policy_is_imported_and_built_when_the_job_is_validated(stopping, message):
    with pytest.raises(SpecError, match=message):
        job(stopping=stopping)


def test_a_custom_policy_builds_from_its_import_path_and_settings():
    spec = job(stopping={"name": "custom", "policy": "foreseer.stopping:AshaPolicy",
                         "settings": {"grace_period": 2, "reduction_factor": 2}}).stopping  # fmt: skip
    assert spec.build().rungs(9) == [2, 4, 8]
