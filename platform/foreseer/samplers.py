"""Optuna samplers by name, used as Optuna ships them: the one registry of sampler names.

``SAMPLERS`` maps each name a job may give (``sampler: tpe``) to the function that builds it from
the job's seed; the spec's validation, its error messages and :func:`make_sampler` all read it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

__all__ = ["SAMPLERS", "make_sampler"]


def _random(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    """Multivariate, grouped TPE with the constant liar, so joint architecture choices are modelled
    together and concurrent trials do not all ask for the same point."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


def _cmaes(seed: int) -> optuna.samplers.BaseSampler:
    """CMA-ES for numbers, with independent TPE for the categorical choices CMA-ES cannot model."""
    import optuna

    fallback = optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.CmaEsSampler(
        seed=seed, independent_sampler=fallback, warn_independent_sampling=False
    )


def _gp(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=seed)


def _nsgaii(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


def _qmc(seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


#: Every sampler a job may name, with the function that builds it from the job's seed.
SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "random": _random,
    "tpe": _tpe,
    "cmaes": _cmaes,
    "gp": _gp,
    "nsgaii": _nsgaii,
    "qmc": _qmc,
}


def make_sampler(sampler: str | Any, *, seed: int) -> optuna.samplers.BaseSampler:
    """Return the Optuna sampler a job names, seeded; an instance is returned as it is.

    Raises:
        ValueError: for a name that is not in :data:`SAMPLERS`.
    """
    import optuna

    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    build = SAMPLERS.get(sampler)
    if build is None:
        raise ValueError(f"unknown sampler {sampler!r}; accepted: {', '.join(SAMPLERS)}.")
    # multivariate TPE, constant liar, GP and QMC are flagged experimental; they are what we want.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return build(seed)
