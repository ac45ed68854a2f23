"""The replay backend: budgets, concurrency, and agreement with the real search driver."""

import threading

import numpy as np
import pytest

from foreseer.backends._base import Finished
from foreseer.backends.replay import ReplayBackend, ReplaySearcher, simulate
from foreseer.driver import LoopPlan, SearchDriver
from foreseer.ledger import Ledger
from foreseer.spec import Objective
from foreseer.stopping import AshaPolicy, MedianPolicy, NoStoppingPolicy


@pytest.fixture(scope="module")
def curves():
    rng = np.random.default_rng(0)
    t = np.arange(1, 16)
    finals = rng.uniform(0.2, 0.95, 40)
    return finals[:, None] * (1 - np.exp(-t / rng.uniform(1, 5, (40, 1)))) + rng.normal(0, 0.01, (40, 15))


def test_no_stopping_trains_budget_over_epochs_trials_fully(curves):
    order = list(np.random.default_rng(1).permutation(40))
    run = simulate(curves, order, NoStoppingPolicy(), budget=5 * 15)
    assert run.epochs_used == 75 and [t[1] for t in run.trials] == [15] * 5
    assert run.best_so_far[-1] == pytest.approx(curves[order[:5]].max())
    assert np.all(np.diff(run.best_so_far) >= 0)
    assert run.epochs_to_reach(run.best_so_far[-1]) <= 75


def test_concurrency_runs_slots_side_by_side_and_stops_at_the_budget(curves):
    run = simulate(curves, range(40), NoStoppingPolicy(), budget=100, max_concurrent=4)
    assert run.epochs_used == 100
    assert [t[1] for t in run.trials] == [15] * 4 + [10] * 4, "four slots advance in lockstep"


class Counting(NoStoppingPolicy):
    """Never stops; remembers how many trials each call decided on."""

    def __init__(self):
        self.calls = []

    def decide(self, running, best, history=(), paused=()):
        self.calls.append(len(running))
        return super().decide(running, best, history, paused)


def test_the_policy_is_asked_once_per_tick_about_every_trial_that_reported(curves):
    policy = Counting()
    run = simulate(curves, range(40), policy, budget=8 * 15, max_concurrent=4)
    assert policy.calls == [4] * 14 * 2, "4 trials in lockstep: one call per epoch below the last"
    assert run.ticks == 2 * 15 + 1, "one tick per simulated epoch, and one for the trials ending"


@pytest.mark.parametrize(
    "policy", [NoStoppingPolicy(), AshaPolicy(1, 3), MedianPolicy(2, 3)], ids=lambda p: p.name
)
def test_trials_start_in_the_samplers_order_until_the_budget_or_the_curves_run_out(curves, policy):
    order = list(np.random.default_rng(2).permutation(40))
    run = simulate(curves, order, policy, budget=200)
    assert run.epochs_used == 200 or len(run.trials) == 40
    assert [i for i, *_ in run.trials] == order[: len(run.trials)], "trials start in the sampler's order"
    ledger = run.ledger
    assert [(i, n, s) for i, n, s in run.trials] == [
        (int(r.candidate.arch["curve"]), r.epochs, r.stopped_by == policy.name) for r in ledger.records()
    ]


def test_stopping_saves_epochs(curves):
    order = list(range(40))
    asha = simulate(curves, order, AshaPolicy(1, 3), budget=300)
    assert len(asha.trials) > 300 // 15 and any(stopped for *_, stopped in asha.trials)


def test_malformed_inputs_are_refused(curves):
    with pytest.raises(ValueError, match="max_concurrent must be at least 1"):
        simulate(curves, [0], NoStoppingPolicy(), budget=10, max_concurrent=0)
    with pytest.raises(ValueError, match="order indexes curves 0..39"):
        simulate(curves, [40], NoStoppingPolicy(), budget=10)
    with pytest.raises(ValueError, match="2-d array"):
        simulate(curves[0], [0], NoStoppingPolicy(), budget=10)


class CancelledAt(ReplayBackend):
    """Replays the curves and sets ``cancelled`` once ``after`` trials have finished."""

    def __init__(self, curves, cancelled, after):
        super().__init__(curves)
        self.cancelled, self.after, self.finished = cancelled, after, 0

    def events(self, timeout):
        events = super().events(timeout)
        self.finished += sum(isinstance(e, Finished) for e in events)
        if self.finished >= self.after:
            self.cancelled.set()
        return events


@pytest.mark.parametrize(("after", "finished"), [(1, False), (3, True)], ids=["mid-search", "after-the-last"])
def test_a_cancel_cuts_the_search_short_only_while_work_is_left(curves, after, finished):
    ledger = Ledger([Objective(metric="val_accuracy", mode="max")], curves.shape[1])
    driver = SearchDriver(ledger, ReplaySearcher(range(3)), NoStoppingPolicy())
    cancelled = threading.Event()
    plan = LoopPlan(trials=3, max_concurrent=1)
    assert driver.run(CancelledAt(curves, cancelled, after), plan, cancelled) is finished
    assert cancelled.is_set()
    states = [r.state for r in ledger.records()]
    assert states == ["completed"] * (3 if finished else 1), "no trial starts after the cancel"
