"""Fixtures shared by the search-space tests."""

import optuna
import pytest


@pytest.fixture
def make_trial():
    """Factory: a fresh trial of an in-memory study sampled by a seeded random sampler."""

    def make(seed: int = 0) -> optuna.Trial:
        return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()

    return make


@pytest.fixture(autouse=True)
def restore_registry():
    """Undo whatever a test registers, so tests can reuse space names in any order."""
    from foreseer_spaces import _registry

    _registry._ensure_loaded()
    saved = dict(_registry._spaces), dict(_registry._load_errors)
    yield
    _registry._spaces.clear()
    _registry._spaces.update(saved[0])
    _registry._load_errors.clear()
    _registry._load_errors.update(saved[1])


@pytest.fixture(autouse=True)
def one_thread():
    """These networks are tiny: one intra-op thread is faster and immune to a busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
