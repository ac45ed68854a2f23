"""Stopping policies: pure decision logic on hand-made curves, no Ray."""

import pytest

from foreseer.stopping import AshaPolicy, CurveView, MedianPolicy, NoStoppingPolicy, StoppingPolicy

ALL_POLICIES = [NoStoppingPolicy(), AshaPolicy(grace_period=1, reduction_factor=2), MedianPolicy(1, 2)]


def curve(trial_id, *values, max_epochs=9):
    return CurveView(trial_id, tuple(values), max_epochs)


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.name)
def test_contract_one_decision_per_running_trial_and_no_mutation(policy: StoppingPolicy):
    history = [curve("a", 0.9, 0.95), curve("b", 0.5, 0.52), curve("c", 0.2, 0.21), curve("d", 0.1, 0.1)]
    running = history[1:]
    before = list(history)
    decisions = policy.decide(running, best=0.95, history=history)
    assert [d.trial_id for d in decisions] == ["b", "c", "d"]
    assert history == before
    assert all(d.reason for d in decisions if d.stop)


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.name)
def test_contract_never_stops_the_first_trial_alone(policy: StoppingPolicy):
    only = curve("a", 0.1)
    assert policy.decide([only], best=0.1, history=[only])[0].stop is False


def test_no_stopping_never_stops():
    bad, good = curve("bad", 0.0, 0.0), curve("good", 1.0, 1.0)
    assert not NoStoppingPolicy().decide([bad], 1.0, [good, bad])[0].stop


def test_asha_rungs_follow_grace_period_and_reduction_factor():
    assert AshaPolicy(1, 3).rungs(20) == [1, 3, 9]
    assert AshaPolicy(2, 2).rungs(16) == [2, 4, 8]
    assert AshaPolicy(1, 2).rungs(1) == []


def test_asha_keeps_the_top_fraction_at_a_rung_and_stops_the_rest():
    policy = AshaPolicy(grace_period=2, reduction_factor=2)
    history = [curve(t, 0.0, v) for t, v in [("a", 0.9), ("b", 0.8), ("c", 0.3), ("d", 0.2)]]
    weak, strong = curve("e", 0.5, 0.25), curve("f", 0.1, 0.85)
    decisions = policy.decide([weak, strong], best=0.9, history=[*history, weak, strong])
    assert decisions[0].stop and "rung-2" in decisions[0].reason
    assert not decisions[1].stop


def test_asha_only_decides_at_rungs():
    policy = AshaPolicy(grace_period=2, reduction_factor=2)
    history = [curve("a", 0.9, 0.9, 0.9), curve("b", 0.9, 0.9, 0.9)]
    off_rung = curve("c", 0.0, 0.0, 0.0)  # epoch 3 is not a rung (2, 4, 8)
    assert not policy.decide([off_rung], 0.9, [*history, off_rung])[0].stop


def test_asha_ignores_trials_that_have_not_reached_the_rung():
    policy = AshaPolicy(grace_period=2, reduction_factor=2)
    young = curve("a", 0.99)  # one epoch, not at rung 2 yet
    at_rung = curve("b", 0.1, 0.1)
    assert not policy.decide([at_rung], 0.99, [young, at_rung])[0].stop


def test_median_stops_below_the_median_running_average():
    policy = MedianPolicy(grace_period=2, min_samples=3)
    peers = [curve("a", 0.6, 0.8), curve("b", 0.5, 0.7), curve("c", 0.4, 0.6)]  # running averages .7 .6 .5
    below, above = curve("d", 0.55, 0.58), curve("e", 0.3, 0.65)
    stopped = policy.decide([below], 0.8, [*peers, below])[0]
    assert stopped.stop and "median" in stopped.reason
    assert not policy.decide([above], 0.8, [*peers, above])[0].stop


def test_median_waits_for_grace_period_and_enough_peers():
    peers = [curve("a", 0.9, 0.9), curve("b", 0.9, 0.9)]
    weak = curve("c", 0.1, 0.1)
    assert not MedianPolicy(grace_period=3, min_samples=1).decide([weak], 0.9, [*peers, weak])[0].stop
    assert not MedianPolicy(grace_period=1, min_samples=3).decide([weak], 0.9, [*peers, weak])[0].stop
    assert MedianPolicy(grace_period=1, min_samples=2).decide([weak], 0.9, [*peers, weak])[0].stop


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: AshaPolicy(grace_period=0, reduction_factor=3), "grace_period"),
        (lambda: AshaPolicy(grace_period=1, reduction_factor=1), "reduction_factor"),
        (lambda: MedianPolicy(grace_period=1, min_samples=0), "min_samples"),
    ],
)
def test_bad_settings_are_rejected_with_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_stop_reasons_give_a_minimised_metric_in_its_own_units():
    """Losses arrive negated (higher is better inside the policies); a reason shows them as losses."""

    def loss(trial_id, losses):
        return CurveView(trial_id, tuple(-v for v in losses), 10, sign=-1)

    peers = [loss(f"p{i}", (1.0, 0.8, 0.7)) for i in range(3)]
    bad = loss("bad", (2.0, 1.9, 1.8))
    (median,) = MedianPolicy(grace_period=1, min_samples=3).decide([bad], None, [*peers, bad])
    assert median.stop and "best 1.8 worse than the median running average 0.8333" in median.reason
    rung = [loss(f"r{i}", (0.5,)) for i in range(3)]
    (asha,) = AshaPolicy(1, 2).decide([loss("slow", (2.5,))], None, [*rung, loss("slow", (2.5,))])
    assert asha.stop and "asha: 2.5 worse than the rung-1 cutoff 0.5" in asha.reason
