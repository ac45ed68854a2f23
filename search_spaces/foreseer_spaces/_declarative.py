"""Declarative overrides: fix or narrow, by name, any parameter a space samples.

An override mapping comes from Python or from a job's YAML file::

    {"stem_width": 16,                                   # fixed value
     "lr": {"low": 1e-3, "high": 0.1, "log": True},      # narrowed range (low, high, step, log)
     "activation": {"choices": ["relu", "gelu"]}}        # narrowed choices

:func:`parse_overrides` validates the mapping on its own; :func:`constrain` applies it to a trial;
:func:`foreseer_spaces.check_override_names` checks it against what a space really samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from foreseer_spaces._base import TrialLike

Scalar = bool | int | float | str
RANGE_KEYS: tuple[str, ...] = ("low", "high", "step", "log")
SPEC_KEYS: tuple[str, ...] = (*RANGE_KEYS, "choices")
_ACCEPTED = "a fixed value (bool, int, float or str), a range {low, high, step, log} or {choices: [...]}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def shown(value: Any) -> str:
    """A value with its type for an error message, with a hint for numbers YAML read as strings."""
    text = f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return text
        # PyYAML reads 1e-3 as a string: its floats need a dot (1.0e-3).
        text += " (YAML reads numbers like 1e-3 as strings; write 1.0e-3)"
    return text


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be finite, but got {value!r}"
    if not isinstance(value, Scalar):
        return f"must be a bool, int, float or str, but got {shown(value)}"
    return None


def _range_problems(low: Any, high: Any, step: Any, log: Any) -> list[str]:
    problems = []
    for key, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (not _is_number(value) or not math.isfinite(value)):
            problems.append(f"{key} must be a finite number, but got {shown(value)}")
    if log is not None and not isinstance(log, bool):
        problems.append(f"log must be true or false, but got {shown(log)}")
    if problems:
        return problems
    if low is not None and high is not None and low > high:
        problems.append(f"low must not exceed high, but got low={low!r} > high={high!r}")
    if step is not None and step <= 0:
        problems.append(f"step must be positive, but got step={step!r}")
    if log and low is not None and low <= 0:
        problems.append(f"a log range needs low > 0, but got low={low!r}")
    if log and step is not None:
        problems.append("log and step cannot be combined (Optuna samples a log range continuously)")
    return problems


def _choices_problems(choices: Any) -> list[str]:
    if isinstance(choices, str | bytes) or not isinstance(choices, list | tuple):
        return [f"choices must be a list, but got {shown(choices)}"]
    if not choices:
        return ["choices must not be empty"]
    problems = [f"choice {c!r} {p}" for c in choices if (p := _scalar_problem(c)) is not None]
    keys = [(type(c) is bool, c) for c in choices if _scalar_problem(c) is None]
    if len(set(keys)) != len(keys):
        problems.append(f"choices must be distinct, but got {list(choices)!r}")
    return problems


def _field_problems(
    value: Any = None,
    low: Any = None,
    high: Any = None,
    step: Any = None,
    log: Any = None,
    choices: Any = None,
) -> list[str]:
    """Every problem with an override's fields, each phrased without the parameter's name."""
    given = {
        "a fixed value": value is not None,
        "choices": choices is not None,
        "a range": any(v is not None for v in (low, high, step, log)),
    }
    kinds = [kind for kind, present in given.items() if present]
    if len(kinds) != 1:
        what = "sets nothing" if not kinds else f"mixes {' and '.join(kinds)}"
        return [f"{what}; give exactly one of {_ACCEPTED}"]
    if value is not None:
        problem = _scalar_problem(value)
        return [] if problem is None else [f"the fixed value {problem}"]
    if choices is not None:
        return _choices_problems(choices)
    return _range_problems(low, high, step, log)


@dataclass(frozen=True)
class ParamOverride:
    """How one sampled parameter is fixed or narrowed; exactly one of the three kinds is set.

    Attributes:
        name: the parameter's name, as the space suggests it.
        value: a fixed value (kind ``"fixed"``).
        low, high, step, log: a narrowed range (kind ``"range"``); unset bounds keep the space's.
        choices: a subset of the space's choices, or of its range (kind ``"choices"``).

    Example:
        >>> ParamOverride("lr", low=1e-3, high=0.1).kind
        'range'
    """

    name: str
    value: Scalar | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool | None = None
    choices: tuple[Scalar, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.choices, list):
            object.__setattr__(self, "choices", tuple(self.choices))
        fields = ("value", *RANGE_KEYS, "choices")
        problems = _field_problems(**{key: getattr(self, key) for key in fields})
        if not isinstance(self.name, str) or not self.name:
            problems.insert(0, f"the name must be a non-empty string, but got {self.name!r}")
        if problems:
            raise ValueError(f"invalid override of {self.name!r}: " + "; ".join(problems) + ".")

    @property
    def kind(self) -> str:
        """``"fixed"``, ``"choices"`` or ``"range"``."""
        if self.value is not None:
            return "fixed"
        return "choices" if self.choices is not None else "range"

    def to_spec(self) -> Scalar | dict[str, Any]:
        """The declarative form, as accepted by :func:`parse_overrides` (and written to YAML)."""
        if self.kind == "fixed":
            return self.value  # type: ignore[return-value]
        if self.kind == "choices":
            return {"choices": list(self.choices or ())}
        return {key: getattr(self, key) for key in RANGE_KEYS if getattr(self, key) is not None}

    def apply(self, distribution: BaseDistribution) -> BaseDistribution:
        """The distribution to sample instead of the space's ``distribution``.

        Raises:
            ValueError: when the override does not fit in ``distribution`` (a value outside its range
                or choices, a range for a categorical parameter, ...).
        """
        from foreseer_spaces._narrowing import narrow

        return narrow(self, distribution)


def _parse_one(name: Any, spec: Any) -> tuple[ParamOverride | None, list[str]]:
    if not isinstance(name, str) or not name:
        return None, [f"override names must be non-empty strings, but got {name!r}"]
    if isinstance(spec, ParamOverride):
        return replace(spec, name=name), []
    if isinstance(spec, Mapping):
        unknown = sorted(str(key) for key in spec if key not in SPEC_KEYS)
        fields = {key: spec[key] for key in SPEC_KEYS if key in spec}
        problems = [f"unknown key(s) {unknown}; accepted keys are {list(SPEC_KEYS)}"] if unknown else []
    elif not isinstance(spec, Scalar):
        hint = (
            " (write {choices: [...]} for a list of choices)" if isinstance(spec, list | tuple | set) else ""
        )
        return None, [f"must be {_ACCEPTED}, but got {shown(spec)}{hint}"]
    else:
        fields, problems = {"value": spec}, []
    problems += _field_problems(**fields)
    return (None if problems else ParamOverride(name, **fields)), problems


def parse_overrides(overrides: Mapping[str, Any] | None) -> dict[str, ParamOverride]:
    """Validate a declarative override mapping and return one :class:`ParamOverride` per parameter.

    Args:
        overrides: parameter name -> a fixed value, ``{low, high, step, log}`` (any subset) or
            ``{choices: [...]}``; :class:`ParamOverride` values are accepted as they are.

    Raises:
        ValueError: listing every problem at once, each with the parameter's name, the value
            received and what is accepted.

    Example:
        >>> parse_overrides({"stem_width": 16, "lr": {"low": 1e-3, "high": 0.1}})["lr"].kind
        'range'
    """
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise TypeError(
            f"overrides must be a mapping of parameter name -> override, but got {shown(overrides)}."
        )
    parsed: dict[str, ParamOverride] = {}
    problems: list[str] = []
    for name, spec in overrides.items():
        override, errors = _parse_one(name, spec)
        problems += [f"{name!r}: {error}" for error in errors]
        if override is not None:
            parsed[name] = override
    if problems:
        raise ValueError(
            f"{len(problems)} problem(s) in the search-space overrides:\n  - " + "\n  - ".join(problems)
        )
    return parsed


def constrain(trial: TrialLike, overrides: Mapping[str, Any] | None) -> TrialLike:
    """A trial that honours ``overrides`` and otherwise behaves as ``trial``.

    A fixed parameter is still suggested through ``trial`` (as a one-value distribution), so the
    trial's params always describe the whole candidate.

    Args:
        trial: an Optuna trial (or anything with its ``suggest_*`` methods).
        overrides: as accepted by :func:`parse_overrides`.

    Returns:
        ``trial`` itself when there are no overrides, else a proxy to pass to ``space.sample``.

    Raises:
        ValueError: from :func:`parse_overrides` when the mapping is invalid, and from a
            ``suggest_*`` call when an override does not fit what the space suggests.

    Example:
        >>> import optuna
        >>> from foreseer_spaces import Task, get_space
        >>> trial = constrain(optuna.create_study().ask(), {"depth": 2, "activation": {"choices": ["relu"]}})
        >>> get_space("mlp").sample(trial, Task((13,), 3)).arch["depth"]
        2
    """
    from foreseer_spaces._narrowing import ConstrainedTrial

    parsed = parse_overrides(overrides)
    return ConstrainedTrial(trial, parsed) if parsed else trial
