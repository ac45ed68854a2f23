"""What a space really samples, found by sampling it, and overrides checked against it."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from foreseer_spaces._declarative import parse_overrides

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from foreseer_spaces._base import SearchSpace
    from foreseer_spaces._candidate import Task


def discover_params(
    space: SearchSpace, task: Task, samples: int = 32, *, seed: int = 0
) -> dict[str, BaseDistribution]:
    """The distribution of every parameter ``space`` (and the shared hyperparameters) samples.

    The space is sampled ``samples`` times by a seeded random sampler in a fresh in-memory study;
    a conditional parameter sampled in none of them is missing from the result. The first
    distribution seen for each name is kept. A user-defined space builds its network at each
    sample, so lower ``samples`` for a large one.

    Raises:
        ValueError: when ``samples`` is not positive, or when ``task`` does not fit the space.

    Example:
        >>> from foreseer_spaces import Task, get_space
        >>> sorted(discover_params(get_space("mlp"), Task((13,), 3)))[:3]
        ['activation', 'batch_size', 'depth']
    """
    import optuna

    if samples < 1:
        raise ValueError(f"samples must be at least 1, but got {samples=}.")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found: dict[str, BaseDistribution] = {}
    for _ in range(samples):
        trial = study.ask()
        space.sample(trial, task)
        for name, distribution in trial.distributions.items():
            found.setdefault(name, distribution)
    return found


def discover_param_names(space: SearchSpace, task: Task, samples: int = 32) -> set[str]:
    """The names :func:`discover_params` finds: every name an override of ``space`` may use."""
    return set(discover_params(space, task, samples))


def check_override_names(
    space: SearchSpace, task: Task, overrides: Mapping[str, Any] | None, *, samples: int = 32
) -> None:
    """Check overrides against what ``space`` samples on ``task``, reporting every problem at once.

    An override must name a parameter the space samples (a misspelt name gets a did-you-mean) and
    fit in its distribution (a fixed value the space can produce, a range inside its range, choices
    among its choices). Names are found with :func:`discover_params`.

    Raises:
        ValueError: listing every problem, or from :func:`parse_overrides` when the mapping itself
            is invalid.

    Example:
        >>> from foreseer_spaces import Task, get_space
        >>> check_override_names(get_space("mlp"), Task((13,), 3), {"depth": 2, "lr": {"high": 0.1}})
    """
    parsed = parse_overrides(overrides)
    if not parsed:
        return
    distributions = discover_params(space, task, samples)
    known = sorted(distributions)
    problems = []
    for name, override in parsed.items():
        if name in distributions:
            try:
                override.apply(distributions[name])
            except ValueError as e:
                problems.append(str(e))
            continue
        problem = (
            f"{name!r} is not a parameter of space {space.name!r} (none of {samples} samples suggested it)."
        )
        close = difflib.get_close_matches(name, known, n=1)
        problems.append(problem + (f" Did you mean {close[0]!r}?" if close else ""))
    if problems:
        raise ValueError(
            f"{len(problems)} problem(s) with the overrides of space {space.name!r}:\n  - "
            + "\n  - ".join(problems)
            + f"\nIts parameters are {known}."
        )
