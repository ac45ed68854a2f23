"""Fixtures shared by the search-space tests."""

import optuna
import pytest


@pytest.fixture
def make_trial():
    """Factory: a fresh trial of an in-memory study sampled by a seeded random sampler."""

    def make(seed: int = 0) -> optuna.Trial:
        return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()

    return make
