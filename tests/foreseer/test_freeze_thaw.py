"""Freeze-thaw: the policy's choices on hand-made curves, and whole searches on recorded curves in
simulated time (every epoch once, thawed trials continue where they paused, Optuna told the truth)."""

import numpy as np
import pytest

from foreseer.backends.replay import simulate
from foreseer.spec import SearchJob
from foreseer.stopping import Action, Capacity, CurveView, FreezeThawPolicy

E = 20


def curve(trial_id, *values):
    return CurveView(trial_id, tuple(values), E)


GOOD = curve("good", 0.5, 0.7, 0.8)
BAD = curve("bad", 0.1, 0.1, 0.1)
RISING = curve("rising", 0.3, 0.5, 0.65)


def actions(decisions):
    return {d.trial_id: d.action for d in decisions}


@pytest.fixture(scope="module")
def policy():
    return FreezeThawPolicy()


def test_a_hopeless_trial_gives_its_slot_to_a_promising_paused_one(policy):
    decisions = policy.decide([BAD], 0.8, [GOOD, BAD, RISING], paused=[RISING], capacity=Capacity(0, 0))
    assert actions(decisions) == {"bad": Action.STOP, "rising": Action.RESUME}
    stop = next(d for d in decisions if d.trial_id == "bad")
    assert "nothing new left" in stop.reason and set(stop.metrics) == {"acquisition", "p_improve"}


def test_with_candidates_left_a_weak_trial_is_paused_not_stopped(policy):
    decisions = policy.decide([BAD], 0.8, [GOOD, BAD], capacity=Capacity(0, 10))
    assert actions(decisions) == {"bad": Action.PAUSE}
    assert decisions[0].reason.startswith("freeze-thaw: acquisition")


def test_a_leading_trial_keeps_its_slot(policy):
    decisions = policy.decide([GOOD], 0.8, [GOOD, BAD], paused=[BAD], capacity=Capacity(0, 10))
    assert actions(decisions) == {"good": Action.CONTINUE}, "the paused bad trial stays paused"


def test_free_slots_thaw_paused_trials_that_beat_a_new_candidate(policy):
    decisions = policy.decide([], 0.8, [GOOD, BAD, RISING], paused=[BAD, RISING], capacity=Capacity(1, 0))
    assert actions(decisions) == {"rising": Action.RESUME, "bad": Action.STOP}


def test_decisions_come_only_at_the_end_of_a_step():
    policy = FreezeThawPolicy(step=3, min_epoch=2)
    assert [e for e in range(1, E) if policy.at_step(curve("x", *[0.1] * e))] == [2, 5, 8, 11, 14, 17]
    mid = curve("bad", 0.1, 0.1, 0.1)  # epoch 3: inside a step
    decisions = policy.decide([mid], 0.8, [GOOD, mid], capacity=Capacity(0, 0))
    assert actions(decisions) == {"bad": Action.CONTINUE}


def test_beyond_max_paused_the_least_promising_are_stopped():
    policy = FreezeThawPolicy(max_paused=1)
    paused = [curve("p1", 0.1, 0.12, 0.13), curve("p2", 0.3, 0.5, 0.6)]
    decisions = policy.decide([BAD], 0.8, [GOOD, BAD, *paused], paused=paused, capacity=Capacity(0, 10))
    assert actions(decisions) == {"bad": Action.STOP, "p2": Action.RESUME}, "p1 stays, the one paused"
    assert "beyond max_paused 1" in decisions[0].reason


def test_beyond_max_paused_mb_the_least_promising_checkpoints_are_stopped():
    policy = FreezeThawPolicy(max_paused_mb=5)
    paused = [curve("p1", 0.1, 0.12, 0.13), curve("p2", 0.3, 0.5, 0.6)]
    sizes = {"bad": 3_000_000, "p1": 3_000_000, "p2": 3_000_000}
    capacity = Capacity(0, 10, checkpoint_bytes=sizes)
    decisions = policy.decide([BAD], 0.8, [GOOD, BAD, *paused], paused=paused, capacity=capacity)
    assert actions(decisions) == {"bad": Action.STOP, "p2": Action.RESUME}, "p1's 3 MB fit in the cap"
    assert "beyond max_paused_mb 5" in decisions[0].reason
    roomy = Capacity(0, 10, checkpoint_bytes={k: 1_000_000 for k in sizes})
    kept = policy.decide([BAD], 0.8, [GOOD, BAD, *paused], paused=paused, capacity=roomy)
    assert actions(kept) == {"bad": Action.PAUSE, "p2": Action.RESUME}, "within the cap nothing is stopped"


def test_the_driver_tells_a_scheduling_policy_what_each_checkpoint_weighs(tmp_path):
    from foreseer.driver import _dir_bytes

    folder = tmp_path / "epoch-0003"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * 1000)
    (folder / "sub" / "state.pt").write_bytes(b"x" * 24)
    assert _dir_bytes(str(folder)) == 1024 and _dir_bytes(str(tmp_path / "gone")) == 0


def test_the_same_curves_give_the_same_decisions(policy):
    args = ([BAD, RISING], 0.8, [GOOD, BAD, RISING]), {"capacity": Capacity(1, 4)}
    assert policy.decide(*args[0], **args[1]) == policy.decide(*args[0], **args[1])


def test_both_acquisitions_order_the_options_sensibly():
    for acquisition in ("mfpi_random", "ei_per_epoch"):
        policy = FreezeThawPolicy(acquisition=acquisition)
        decisions = policy.decide([GOOD, BAD], 0.8, [GOOD, BAD], capacity=Capacity(0, 0))
        assert actions(decisions)["good"] is Action.CONTINUE, acquisition
        assert actions(decisions)["bad"] is not Action.CONTINUE, acquisition


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="acquisition must be one of"):
        FreezeThawPolicy(acquisition="ucb")
    with pytest.raises(ValueError, match="delta"):
        FreezeThawPolicy(delta=1.5)
    with pytest.raises(ValueError, match="max_paused_mb must be positive"):
        FreezeThawPolicy(max_paused_mb=0)


def test_a_job_names_it_with_its_settings():
    job = SearchJob(
        name="ft", space="mlp", dataset="wine", max_epochs=10,
        stopping={"name": "freeze_thaw", "step": 2, "acquisition": "ei_per_epoch", "max_paused": 4,
                  "max_paused_mb": 500},
    )  # fmt: skip
    policy = job.stopping.build()
    assert (policy.step, policy.acquisition, policy.max_paused) == (2, "ei_per_epoch", 4)
    assert policy.max_paused_mb == 500


@pytest.fixture(scope="module")
def curves():
    rng = np.random.default_rng(0)
    t = np.arange(1, E + 1)
    finals = rng.uniform(0.3, 0.95, 40)
    rate = rng.uniform(0.5, 8, (40, 1))
    return np.clip(finals[:, None] * (1 - np.exp(-t / rate)) + rng.normal(0, 0.01, (40, E)), 0, 1)


@pytest.mark.parametrize("concurrent", [1, 4])
def test_a_search_thaws_trials_and_records_every_epoch_once(curves, concurrent):
    run = simulate(curves, range(len(curves)), FreezeThawPolicy(), budget=8 * E, max_concurrent=concurrent)
    records = run.ledger.records()
    assert sum(r.thaws for r in records) > 0, "paused trials came back"
    order = [(r.trial_id, epoch) for r, epoch in run.ledger.in_order()]
    for r in records:
        epochs = [e for t, e in order if t == r.trial_id]
        assert epochs == list(range(1, r.epochs + 1)), "a thawed trial goes on from where it paused"
        assert r.values("val_accuracy") == pytest.approx(curves[int(r.candidate.arch["curve"]), : r.epochs])
    assert run.ledger.epochs_used() == 8 * E
    assert all(r.state in ("completed", "stopped") for r in records), "nothing is left paused"
    board = run.ledger.leaderboard()
    assert board.columns.get_loc("thaws") == board.columns.get_loc("epochs") + 1
    assert board["thaws"].sum() == sum(r.thaws for r in records)


def test_it_finds_the_best_curve_with_fewer_epochs_than_no_stopping(curves):
    """Not a benchmark (benchmarks/freeze_thaw.py is): a sanity check that pausing the weak trials
    pays on curves where the best is plain."""
    best = float(curves.max())
    order = np.random.default_rng(1).permutation(len(curves))
    run = simulate(curves, order, FreezeThawPolicy(), budget=20 * E)
    assert best - run.best_so_far[-1] < 0.02
    assert len(run.trials) > 20, "it looked at more candidates than 20 full runs could"


def tiny_in_context():
    import torch

    from foreseer.predictors.pfn.in_context import JobForecaster
    from foreseer.predictors.pfn.model import CurvePFN, PFNConfig

    torch.manual_seed(0)
    config = PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=50, features=16)
    return JobForecaster(CurvePFN(config, torch.linspace(-0.2, 1.2, 51)))


def test_with_an_in_context_forecaster_every_option_is_forecast_from_the_whole_job(curves):
    """An untrained in-context model: the plumbing, not the quality (benchmarks/freeze_thaw.py)."""
    features = np.random.default_rng(2).uniform(size=(len(curves), 3))
    drawn = []

    def new_features(rng, k):
        drawn.append(k)
        return features[rng.integers(0, len(features), k)]

    policy = FreezeThawPolicy(forecaster=tiny_in_context(), new_features=new_features)
    run = simulate(curves, range(len(curves)), policy, budget=6 * E, max_concurrent=2, features=features)
    assert run.ledger.epochs_used() == 6 * E and drawn, "new candidates were forecast at drawn configurations"
    views = run.ledger.curves()
    assert all(v.features == tuple(features[int(r.candidate.arch["curve"])]) for v, r in
               zip(views, run.ledger.records(), strict=True))  # fmt: skip
    with pytest.raises(ValueError, match="every trial's features"):
        simulate(curves, range(len(curves)), policy, budget=2 * E)
    with pytest.raises(ValueError, match="needs new_features"):
        simulate(
            curves,
            range(len(curves)),
            FreezeThawPolicy(forecaster=tiny_in_context()),
            2 * E,
            features=features,
        )


def test_pfn_stopping_on_an_in_context_forecaster_reads_every_trial_of_the_job(curves):
    from foreseer.stopping import PFNPolicy

    features = np.random.default_rng(2).uniform(size=(len(curves), 3))
    policy = PFNPolicy(delta=0.05, min_epoch=2, forecaster=tiny_in_context())
    assert policy.reads_features
    run = simulate(curves, range(len(curves)), policy, budget=6 * E, max_concurrent=2, features=features)
    assert all("p_improve" in m for ms in run.policy_metrics.values() for m in ms) and run.policy_metrics
    with pytest.raises(ValueError, match="every trial's features"):
        simulate(curves, range(len(curves)), policy, budget=2 * E)


def test_a_job_refuses_a_checkpoint_that_is_not_a_pfn_one(tmp_path):
    from foreseer.errors import SpecError

    missing = str(tmp_path / "nope.safetensors")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    for name in ("pfn", "freeze_thaw"):
        with pytest.raises((SpecError, ValueError), match="no PFN checkpoint at"):
            SearchJob(name="x", space="mlp", dataset="wine", stopping={"name": name, "checkpoint": missing})
        with pytest.raises((SpecError, ValueError), match="is not a Foreseer PFN checkpoint"):
            SearchJob(name="x", space="mlp", dataset="wine",
                      stopping={"name": name, "checkpoint": str(tmp_path / "notes.txt")})  # fmt: skip
