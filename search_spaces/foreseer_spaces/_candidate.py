"""Candidates (one point of a search space) and the task a candidate is built for."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

JsonScalar = bool | int | float | str | None
_SCALARS = (bool, int, float, str, type(None))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _frozen_copy(params: Mapping[str, Any], what: str) -> dict[str, JsonScalar]:
    out: dict[str, JsonScalar] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise TypeError(f"{what} names must be strings, but got {key!r}.")
        if not isinstance(value, _SCALARS):
            raise TypeError(
                f"{what} {key!r} must be a JSON scalar (bool, int, float, str or None), "
                f"but got {type(value).__name__} {value!r}."
            )
        out[key] = value
    return out


@dataclass(frozen=True, eq=False)
class Candidate:
    """One point of a search space: an architecture plus its training hyperparameters.

    Both parts are flat mappings of JSON scalars, so a candidate round-trips through JSON
    and two equal candidates hash identically whatever order their keys were added in.

    Example:
        >>> c = Candidate("mlp", {"depth": 2}, {"lr": 0.01})
        >>> Candidate.from_json(c.to_json()) == c
        True
    """

    space: str
    arch: Mapping[str, JsonScalar]
    hparams: Mapping[str, JsonScalar] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.space, str) or not self.space:
            raise ValueError(f"Candidate.space must be a non-empty string, but got {self.space!r}.")
        object.__setattr__(self, "arch", _frozen_copy(self.arch, "architecture parameter"))
        object.__setattr__(self, "hparams", _frozen_copy(self.hparams, "hyperparameter"))

    @cached_property
    def hash(self) -> str:
        """A stable content hash (16 hex digits) of the space name, architecture and hyperparameters."""
        return hashlib.sha256(_canonical(self.to_dict()).encode()).hexdigest()[:16]

    @property
    def arch_hash(self) -> str:
        """A stable content hash of the architecture alone (same network, any hyperparameters)."""
        payload = {"space": self.space, "arch": dict(self.arch)}
        return hashlib.sha256(_canonical(payload).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "arch": dict(self.arch), "hparams": dict(self.hparams)}

    def to_json(self) -> str:
        return _canonical(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        return cls(data["space"], data.get("arch", {}), data.get("hparams", {}))

    @classmethod
    def from_json(cls, text: str) -> Candidate:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candidate):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        return (
            f"Candidate(space={self.space!r}, hash={self.hash}, arch={dict(self.arch)}, "
            f"hparams={dict(self.hparams)})"
        )


#: The kinds of task a network is built for.
TASK_KINDS = ("classification", "regression")


@dataclass(frozen=True)
class Task:
    """What a network is built for: the shape of one input example, and either the number of
    classes (classification) or one real-valued target (regression, ``num_classes`` 0).

    Example:
        >>> Task(input_shape=(1, 8, 8), num_classes=10).is_image
        True
        >>> Task((10,), kind="regression").num_outputs
        1
    """

    input_shape: tuple[int, ...]
    num_classes: int = 0
    kind: str = "classification"

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.input_shape)
        if not shape or any(d <= 0 for d in shape):
            raise ValueError(
                f"Task.input_shape must be non-empty with positive sizes, but got {self.input_shape!r}."
            )
        if self.kind not in TASK_KINDS:
            raise ValueError(f"Task.kind must be one of {list(TASK_KINDS)}, but got {self.kind!r}.")
        if self.kind == "classification" and self.num_classes < 2:
            raise ValueError(f"Task.num_classes must be at least 2, but got {self.num_classes}.")
        if self.kind == "regression" and self.num_classes != 0:
            raise ValueError(f"a regression Task has no classes, but got num_classes={self.num_classes}.")
        object.__setattr__(self, "input_shape", shape)

    def __repr__(self) -> str:
        if self.kind == "classification":
            return f"Task(input_shape={self.input_shape}, num_classes={self.num_classes})"
        return f"Task(input_shape={self.input_shape}, kind={self.kind!r})"

    @property
    def num_outputs(self) -> int:
        """Outputs of the network's last layer: one logit per class, or the one regression target."""
        return self.num_classes if self.kind == "classification" else 1

    @property
    def is_image(self) -> bool:
        """True for (channels, height, width) inputs."""
        return len(self.input_shape) == 3

    @property
    def num_features(self) -> int:
        """Number of input values of one example once flattened."""
        n = 1
        for d in self.input_shape:
            n *= d
        return n
