"""Foreseer's exceptions: user input problems (``SpecError``) and job failures (``JobFailed``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ForeseerError", "JobFailed", "Problem", "SpecError"]


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
        received = f" (got {self.value!r})" if self.has_value else ""
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
