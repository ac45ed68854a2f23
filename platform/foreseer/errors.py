"""Foreseer's exceptions: user input problems (``SpecError``) and job failures (``JobFailed``)."""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ForeseerError", "JobFailed", "Problem", "SpecError", "excerpt"]

#: How much of a received value an error message shows: a few items, a few levels, 160 characters.
_EXCERPT = reprlib.Repr()
_EXCERPT.maxlevel, _EXCERPT.maxstring, _EXCERPT.maxother = 3, 80, 80
_EXCERPT.maxdict = _EXCERPT.maxlist = _EXCERPT.maxtuple = _EXCERPT.maxset = 6
_EXCERPT_CHARS = 160


def excerpt(value: Any) -> str:
    """A short ``repr`` of ``value`` for an error message, whatever its size (reprlib stops at its
    limits, so even a value that expands to gigabytes costs nothing to show)."""
    text = _EXCERPT.repr(value)
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 3] + "..."


class ForeseerError(Exception):
    """Base class of Foreseer's own errors."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with user input: where, what was received, and what is accepted."""

    field: str
    message: str
    value: Any = None
    has_value: bool = False

    def __str__(self) -> str:
        received = f" (got {excerpt(self.value)})" if self.has_value else ""
        return f"{self.field}: {self.message}{received}"


class SpecError(ForeseerError, ValueError):
    """A job specification (Python or YAML) is invalid. Lists every problem at once."""

    def __init__(self, problems: Sequence[Problem], *, source: str = "job") -> None:
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        header = f"{source} is invalid ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


class JobFailed(ForeseerError, RuntimeError):
    """A job stopped because of an error in Foreseer or its infrastructure (not a failed trial)."""
