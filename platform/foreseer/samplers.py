"""Optuna samplers by name, used as Optuna ships them."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

__all__ = ["make_sampler"]


def make_sampler(sampler: str | Any, *, seed: int) -> optuna.samplers.BaseSampler:
    """Return the Optuna sampler a job names, seeded; an instance is returned as it is.

    Names: ``random``, ``tpe`` (multivariate, so joint choices are modelled together), ``cmaes``
    (independent TPE for categorical choices CMA-ES cannot model), ``gp``, ``nsgaii``, ``qmc``.
    """
    import optuna

    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    # multivariate TPE, constant liar, GP and QMC are flagged experimental; they are what we want.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _by_name(sampler, seed)


def _by_name(sampler: str, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if sampler == "cmaes":
        fallback = optuna.samplers.TPESampler(seed=seed)
        return optuna.samplers.CmaEsSampler(
            seed=seed, independent_sampler=fallback, warn_independent_sampling=False
        )
    if sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if sampler == "nsgaii":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"unknown sampler {sampler!r}; accepted: random, tpe, cmaes, gp, nsgaii, qmc.")
