"""Both backends under the same loop: the same recorded curves played on real Ray workers
(RecordedTrainable) and in simulated time give identical decisions, and a policy's pause and
resume work on both, every epoch recorded once."""

import json

import numpy as np
import pytest

from foreseer.backends.ray_actors import RayBackend
from foreseer.backends.replay import RecordedTrainable, ReplayBackend, ReplaySearcher
from foreseer.driver import LoopPlan, SearchDriver
from foreseer.ledger import Ledger
from foreseer.spec import Objective, Resources
from foreseer.stopping import AshaPolicy, FreezeThawPolicy, MedianPolicy, NoStoppingPolicy
from foreseer.store import JobStore
from foreseer.store.journal import JobJournal
from foreseer.testing.policies import PauseThenThaw

TRIALS, EPOCHS = 6, 5


@pytest.fixture(scope="module")
def curves():
    rng = np.random.default_rng(3)
    t = np.arange(1, EPOCHS + 1)
    finals = rng.uniform(0.3, 0.95, TRIALS)
    return finals[:, None] * (1 - np.exp(-t / rng.uniform(0.5, 3, (TRIALS, 1))))


class Recording:
    """Wraps a policy and records every call: what it was shown (the slots, not the checkpoints'
    sizes: replay writes none) and what it answered."""

    def __init__(self, policy):
        self.policy, self.name, self.schedules, self.calls = policy, policy.name, policy.schedules, []

    def decide(self, running, best, history=(), paused=(), **capacity):
        decisions = self.policy.decide(running, best, history, paused, **capacity)
        self.calls.append(
            (
                [(c.trial_id, c.epoch) for c in running],
                sorted(c.trial_id for c in paused),
                {k: (c.free, c.new) for k, c in capacity.items()},
                [(d.trial_id, d.action.value, d.reason) for d in decisions],
            )
        )
        return decisions


def run_loop(backend, policy, journal=None, max_concurrent=1):
    ledger = Ledger([Objective("val_accuracy", "max")], EPOCHS)
    recording = Recording(policy)
    driver = SearchDriver(ledger, ReplaySearcher(range(TRIALS)), recording, journal=journal)
    driver.run(backend, LoopPlan(trials=TRIALS, max_concurrent=max_concurrent, poll_s=0.2))
    outcome = [(r.trial_id, r.epochs, r.state, r.stopped_by, r.reason) for r in ledger.records()]
    order = [(r.trial_id, epoch) for r, epoch in ledger.in_order()]
    return recording.calls, outcome, order


def policies():
    return [NoStoppingPolicy(), AshaPolicy(1, 2), MedianPolicy(1, 2), PauseThenThaw(), FreezeThawPolicy()]


@pytest.mark.ray
def test_ray_and_replay_take_identical_decisions_on_the_same_curves(ray_runtime, curves, tmp_path):
    for i, policy in enumerate(policies()):
        replayed = run_loop(ReplayBackend(curves), policy)
        ray_backend = RayBackend(
            RecordedTrainable(curves), Resources(cpus=1), tmp_path / f"job{i}", max_workers=1
        )
        live = run_loop(ray_backend, policy)
        assert live == replayed, policy.name
        calls, outcome, _ = live
        assert len(calls) >= TRIALS, "the policy was asked"
        if policy.name in ("asha", "median"):
            assert any(state == "stopped" for _, _, state, _, _ in outcome), f"{policy.name} stopped a trial"
        if policy.name == "freeze_thaw":
            actions = {action for *_, decided in calls for _, action, _ in decided}
            assert {"pause", "resume"} <= actions, "it paused trials and thawed them"


def test_a_paused_trial_frees_its_slot_and_resumes_from_its_checkpoint_on_replay(curves):
    calls, outcome, order = run_loop(ReplayBackend(curves), PauseThenThaw(), max_concurrent=2)
    first = [epoch for trial, epoch in order if trial == "t0000"]
    assert first == list(range(1, EPOCHS + 1)), "paused at 2, resumed at 3, every epoch once"
    paused_at = order.index(("t0000", 2))
    resumed_at = order.index(("t0000", 3))
    others = {trial for trial, _ in order[paused_at:resumed_at]}
    assert {"t0001", "t0002"} <= others, "its slot went to the next candidate while it was paused"
    assert any(paused == ["t0000"] for _, paused, _, _ in calls), "the policy saw it paused"
    assert all(state == "completed" for _, _, state, _, _ in outcome)


def test_the_last_trial_paused_is_offered_to_the_policy_before_the_search_ends(curves):
    """Nothing runs and nothing is left to propose, as after a resume whose other trials all
    ended: the policy is asked once more, sees the paused trial, and thaws it."""
    calls, outcome, order = run_loop(ReplayBackend(curves), PauseThenThaw(trial_id="t0005"))
    assert ([], ["t0005"], {}, [("t0005", "resume", "another trial completed")]) in calls
    assert [e for t, e in order if t == "t0005"] == list(range(1, EPOCHS + 1))
    assert all(state == "completed" for _, _, state, _, _ in outcome)


@pytest.mark.ray
def test_pause_and_resume_on_ray_keep_the_checkpoint_and_record_every_epoch_once(
    ray_runtime, curves, tmp_path
):
    journal = JobJournal(JobStore(f"sqlite:///{tmp_path}/jobs.db"), "job1")
    journal.create_job("thaw", {"name": "thaw"})
    backend = RayBackend(RecordedTrainable(curves), Resources(cpus=1), tmp_path / "job", max_workers=2)
    calls, outcome, order = run_loop(backend, PauseThenThaw(), journal=journal, max_concurrent=2)
    assert [e for t, e in order if t == "t0000"] == list(range(1, EPOCHS + 1))
    assert all(state == "completed" for _, _, state, _, _ in outcome)
    stored = journal.epochs()
    assert {n: len(epochs) for n, epochs in stored.items()} == dict.fromkeys(range(TRIALS), EPOCHS)
    row = next(r for r in journal.trials() if r.number == 0)
    assert (row.state, row.resumed_from_epoch) == ("completed", 2), "thawed from its epoch-2 checkpoint"
    kept = sorted(p.name for p in (tmp_path / "job" / "checkpoints" / "t0000").iterdir())
    assert kept == ["epoch-0004", "epoch-0005"]
    assert json.loads(
        (tmp_path / "job" / "checkpoints" / "t0000" / "epoch-0005" / "trial.json").read_text()
    ) == {"epoch": 5}
