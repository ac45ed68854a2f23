"""Typed trial events: the one stream a job's history is made of.

The driver emits an event for everything that happens to a trial; the job store's journal appends
it (durably, first), then the ledger, the MLflow tracker, the Optuna study and the best-weights
keeper observe it. Resume replays the journal's events into a fresh ledger and study, so what the
store holds is the whole truth of a job.

Example:
    >>> Stopped(3, by="asha", reason="below the rung cutoff").kind
    'stopped'
    >>> event_from_row("epoch", 3, {"epoch": 1, "metrics": {"val_accuracy": 0.5}}).epoch
    1
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

__all__ = [
    "Completed",
    "Epoch",
    "Failed",
    "Paused",
    "Proposed",
    "Resumed",
    "Retried",
    "Scored",
    "Started",
    "Stopped",
    "TrialEvent",
    "TrialObserver",
    "ENDED",
    "event_from_row",
    "trial_key",
]


def trial_key(number: int) -> str:
    """The stable id of a job's trial ``number``: the same across retries and resumes."""
    return f"t{number:04d}"


@dataclass(frozen=True)
class TrialEvent:
    """Something that happened to trial ``number`` of a job."""

    kind: ClassVar[str]
    number: int

    def payload(self) -> dict[str, Any]:
        """The event's fields other than the trial number, JSON-ready."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "number"}


@dataclass(frozen=True)
class Proposed(TrialEvent):
    """The searcher proposed a candidate; ``sampled`` is what Optuna sampled (params, distributions)."""

    kind = "proposed"
    candidate: Mapping[str, Any] = field(default_factory=dict)
    sampled: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Started(TrialEvent):
    """An attempt started: fresh (``from_epoch`` 0) or from the checkpoint after ``from_epoch``."""

    kind = "started"
    run_id: str | None = None
    from_epoch: int = 0


@dataclass(frozen=True)
class Epoch(TrialEvent):
    """An epoch's metrics, and the checkpoint taken after it."""

    kind = "epoch"
    epoch: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    checkpoint: str | None = None


@dataclass(frozen=True)
class Scored(TrialEvent):
    """What the stopping policy computed at an epoch (e.g. the PFN's ``p_improve``)."""

    kind = "scored"
    epoch: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Paused(TrialEvent):
    """The policy paused the trial: its slot is free, its checkpoint kept."""

    kind = "paused"
    epoch: int = 0
    reason: str = ""
    checkpoint: str | None = None


@dataclass(frozen=True)
class Resumed(TrialEvent):
    """The policy resumed a paused trial; it continues from the checkpoint after ``epoch``."""

    kind = "resumed"
    epoch: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Retried(TrialEvent):
    """An attempt crashed; the trial restarts from the checkpoint after ``from_epoch``."""

    kind = "retried"
    error: str = ""
    from_epoch: int = 0


@dataclass(frozen=True)
class Stopped(TrialEvent):
    """The trial ended early: stopped by the policy ``by``, or by the job's ``budget``."""

    kind = "stopped"
    by: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Failed(TrialEvent):
    """The trial diverged, or crashed more often than the job retries."""

    kind = "failed"
    reason: str = ""


@dataclass(frozen=True)
class Completed(TrialEvent):
    """The trial trained all its epochs."""

    kind = "completed"
    reason: str = ""


#: The events that settle a trial.
ENDED = (Stopped, Failed, Completed)

_KINDS: dict[str, type[TrialEvent]] = {
    cls.kind: cls
    for cls in (Proposed, Started, Epoch, Scored, Paused, Resumed, Retried, Stopped, Failed, Completed)
}


def event_from_row(kind: str, number: int, payload: Mapping[str, Any]) -> TrialEvent:
    """The event a journal row holds."""
    try:
        cls = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown trial event kind {kind!r}; known: {', '.join(_KINDS)}") from None
    return cls(number, **payload)


class TrialObserver(Protocol):
    """Follows a job's event stream."""

    def observe(self, event: TrialEvent) -> None: ...
