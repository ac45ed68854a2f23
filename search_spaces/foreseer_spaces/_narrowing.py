"""How overrides turn the distribution a space suggests into the one that is sampled instead.

An override may only narrow: a fixed value must be one the space could sample, a range must lie
inside the space's range and choices must be among the space's choices (or inside its range), so a
space never builds a network from a value it was not written for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from foreseer_spaces._declarative import shown

if TYPE_CHECKING:
    from foreseer_spaces._base import TrialLike
    from foreseer_spaces._declarative import ParamOverride


def describe(distribution: BaseDistribution) -> str:
    """A short readable description, e.g. ``"floats in [0.0001, 0.3] on a log scale"``."""
    if isinstance(distribution, CategoricalDistribution):
        return f"one of {list(distribution.choices)!r}"
    assert isinstance(distribution, IntDistribution | FloatDistribution)
    kind = "integers" if isinstance(distribution, IntDistribution) else "floats"
    text = f"{kind} in [{distribution.low!r}, {distribution.high!r}]"
    if distribution.step not in (None, 1):
        text += f" by {distribution.step!r}"
    return text + (" on a log scale" if distribution.log else "")


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; a choice of True must not stand for 1.
    return (type(a) is bool) == (type(b) is bool) and a == b


def _in_range(value: Any, distribution: IntDistribution | FloatDistribution) -> str | None:
    """Why ``value`` is not a value ``distribution`` can produce, or ``None`` when it is."""
    is_int = isinstance(distribution, IntDistribution)
    if isinstance(value, bool) or not isinstance(value, int if is_int else int | float):
        return f"must be {'an integer' if is_int else 'a number'}, but got {shown(value)}"
    if not distribution.low <= value <= distribution.high:
        return "is outside the space's range"
    step = distribution.step
    if step is not None and step != 1:
        offset = (value - distribution.low) / step
        if not math.isclose(offset, round(offset), abs_tol=1e-8):
            return f"is not on the space's grid of step {step!r} from {distribution.low!r}"
    return None


def _fixed(value: Any, distribution: BaseDistribution) -> BaseDistribution:
    if isinstance(distribution, CategoricalDistribution):
        matches = [choice for choice in distribution.choices if _same(choice, value)]
        if not matches:
            raise ValueError(f"the fixed value {value!r} is not among the space's choices")
        return CategoricalDistribution([matches[0]])
    assert isinstance(distribution, IntDistribution | FloatDistribution)
    problem = _in_range(value, distribution)
    if problem is not None:
        raise ValueError(f"the fixed value {value!r} {problem}")
    # The same kind and log flag as the space's, so Optuna sees one consistent parameter.
    if isinstance(distribution, IntDistribution):
        return IntDistribution(value, value, log=distribution.log)
    return FloatDistribution(float(value), float(value), log=distribution.log)


def _choices(choices: tuple[Any, ...], distribution: BaseDistribution) -> BaseDistribution:
    if isinstance(distribution, CategoricalDistribution):
        missing = [c for c in choices if not any(_same(c, d) for d in distribution.choices)]
        if missing:
            raise ValueError(f"choices {missing!r} are not among the space's choices")
        return CategoricalDistribution([d for c in choices for d in distribution.choices if _same(c, d)])
    assert isinstance(distribution, IntDistribution | FloatDistribution)
    problems = [f"{c!r} {p}" for c in choices if (p := _in_range(c, distribution)) is not None]
    if problems:
        raise ValueError("choice " + ", choice ".join(problems))
    return CategoricalDistribution(list(choices))


def _range(override: ParamOverride, distribution: BaseDistribution) -> BaseDistribution:
    if isinstance(distribution, CategoricalDistribution):
        raise ValueError(
            "a range cannot narrow a categorical parameter; give a fixed value or {choices: [...]}"
        )
    assert isinstance(distribution, IntDistribution | FloatDistribution)
    low = distribution.low if override.low is None else override.low
    high = distribution.high if override.high is None else override.high
    log = distribution.log if override.log is None else override.log
    step = distribution.step if override.step is None else override.step
    is_int = isinstance(distribution, IntDistribution)
    if is_int and not all(_is_int(v) for v in (low, high, step)):
        raise ValueError(
            f"low, high and step must be integers, but got low={low!r}, high={high!r}, step={step!r}"
        )
    if not distribution.low <= low <= high <= distribution.high:
        raise ValueError(f"the range [{low!r}, {high!r}] is not inside the space's range")
    if log and step not in (None, 1):
        raise ValueError(f"a log scale cannot have a step, but the result has log=True and step={step!r}")
    if log and low <= 0:
        raise ValueError(f"a log scale needs low > 0, but got low={low!r}")
    if is_int:
        return IntDistribution(low, high, log=log, step=step)
    return FloatDistribution(float(low), float(high), log=log, step=step)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def narrow(override: ParamOverride, distribution: BaseDistribution) -> BaseDistribution:
    """The distribution to sample when ``override`` applies to the space's ``distribution``.

    Raises:
        ValueError: naming the parameter, the override and what the space samples, when the
            override does not fit in ``distribution``.
    """
    try:
        if override.kind == "fixed":
            return _fixed(override.value, distribution)
        if override.kind == "choices":
            return _choices(override.choices or (), distribution)
        return _range(override, distribution)
    except ValueError as e:
        raise ValueError(
            f"override {override.to_spec()!r} of {override.name!r} does not fit: {e}; "
            f"the space samples {override.name!r} as {describe(distribution)}."
        ) from e


class ConstrainedTrial:
    """Answers the suggestions that have an override from the narrowed distribution, through the
    real trial and under the same name; passes everything else to the real trial."""

    def __init__(self, trial: TrialLike, overrides: Mapping[str, ParamOverride]) -> None:
        self._trial = trial
        self._overrides = dict(overrides)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        override = self._overrides.get(name)
        if override is None:
            return self._trial.suggest_int(name, low, high, step=step, log=log)
        return self._suggest(name, override.apply(IntDistribution(low, high, step=step, log=log)))

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        override = self._overrides.get(name)
        if override is None:
            return self._trial.suggest_float(name, low, high, step=step, log=log)
        return self._suggest(name, override.apply(FloatDistribution(low, high, step=step, log=log)))

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        override = self._overrides.get(name)
        if override is None:
            return self._trial.suggest_categorical(name, choices)
        return self._suggest(name, override.apply(CategoricalDistribution(choices)))

    def _suggest(self, name: str, distribution: BaseDistribution) -> Any:
        if isinstance(distribution, IntDistribution):
            return self._trial.suggest_int(
                name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
            )
        if isinstance(distribution, FloatDistribution):
            return self._trial.suggest_float(
                name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
            )
        return self._trial.suggest_categorical(name, list(distribution.choices))  # type: ignore[attr-defined]

    def __getattr__(self, attr: str) -> Any:
        if attr == "_trial":  # not set yet (copy, unpickling): do not recurse
            raise AttributeError(attr)
        return getattr(self._trial, attr)
