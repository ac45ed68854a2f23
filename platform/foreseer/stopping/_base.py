"""The stopping-policy interface: a read-only view of learning curves in, decisions out."""

from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class CurveView:
    """A read-only view of one trial's learning curve.

    Attributes:
        trial_id: the trial this curve belongs to.
        values: the objective after each epoch, oriented so that higher is better
            (a minimised metric arrives negated).
        max_epochs: the epoch budget of the trial.
        sign: ``1`` when the metric is maximised, ``-1`` when minimised (its values arrive negated).
        features: the trial's configuration as features in ``[0, 1]``, when the job has a way to
            compute them (what an in-context forecaster reads); empty otherwise.
    """

    trial_id: str
    values: tuple[float, ...]
    max_epochs: int
    sign: int = 1
    features: tuple[float, ...] = ()

    def as_metric(self, value: float) -> float:
        """An oriented ``value`` in the metric's own units (a loss positive again), for messages."""
        return self.sign * value

    @property
    def epoch(self) -> int:
        """Epochs completed so far."""
        return len(self.values)

    @property
    def best(self) -> float:
        """Best value so far (``-inf`` before the first epoch)."""
        return max(self.values, default=float("-inf"))


@dataclass(frozen=True)
class CurveSummary:
    """What every curve of a job has shown so far, in oriented units (non-finite values ignored).

    Attributes:
        low: the lowest value seen (``nan`` before any).
        high: the highest value seen (``nan`` before any).
        first_median: the median of the trials' first-epoch values (``nan`` before any): the level
            of an untrained model.
    """

    low: float = math.nan
    high: float = math.nan
    first_median: float = math.nan

    @classmethod
    def of(cls, curves: Iterable[Sequence[float]]) -> CurveSummary:
        """The summary of ``curves`` (value sequences), computed from scratch."""
        summary = RunningSummary()
        for values in curves:
            for epoch, value in enumerate(values, start=1):
                summary.add(value, first=epoch == 1)
        return summary.freeze()


class RunningSummary:
    """A :class:`CurveSummary` kept up to date one value at a time (what the ledger does, so that
    a policy reads a job's summary in O(1) instead of scanning every curve each tick)."""

    def __init__(self) -> None:
        self.low, self.high = math.inf, -math.inf
        self._firsts: list[float] = []

    def add(self, value: float, *, first: bool) -> None:
        """Take one oriented value; ``first`` when it is a trial's first epoch."""
        if not math.isfinite(value):
            return
        if value < self.low:
            self.low = value
        if value > self.high:
            self.high = value
        if first:
            bisect.insort(self._firsts, value)

    def freeze(self) -> CurveSummary:
        n = len(self._firsts)
        median = (
            math.nan
            if n == 0
            else self._firsts[n // 2]
            if n % 2
            else (self._firsts[n // 2 - 1] + self._firsts[n // 2]) / 2
        )
        if self.low > self.high:
            return CurveSummary(first_median=median)
        return CurveSummary(self.low, self.high, median)


class CurveHistory(Sequence[CurveView]):
    """Every trial's curve so far (a sequence of :class:`CurveView`), with its
    :class:`CurveSummary`; the ``history`` the driver passes to :meth:`StoppingPolicy.decide`.

    Args:
        views: the curves.
        summary: their summary; computed from ``views`` when not given.
    """

    def __init__(self, views: Sequence[CurveView], summary: CurveSummary | None = None) -> None:
        self._views = views
        self.summary = summary if summary is not None else CurveSummary.of(v.values for v in views)

    def __len__(self) -> int:
        return len(self._views)

    @overload
    def __getitem__(self, index: int) -> CurveView: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[CurveView]: ...
    def __getitem__(self, index: int | slice) -> CurveView | Sequence[CurveView]:
        return self._views[index]

    def __iter__(self) -> Iterator[CurveView]:
        return iter(self._views)


class Action(str, Enum):
    """What the driver does with a trial after a decision.

    ``continue`` and ``stop`` answer a running trial that just reported an epoch; ``pause`` ends
    its attempt but keeps its checkpoint and frees its slot; ``resume`` gives a paused trial a slot
    again, continuing from that checkpoint.
    """

    CONTINUE = "continue"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class Decision:
    """What a policy decided for one trial.

    Attributes:
        trial_id: the trial decided on.
        action: continue, stop or pause a running trial; resume a paused one.
        reason: why (recorded on the trial when it stops, pauses or resumes).
        metrics: what the policy computed for this epoch, recorded with the trial's metrics
            (e.g. a forecaster's probability of beating the best so far, ``p_improve``).
    """

    trial_id: str
    action: Action = Action.CONTINUE
    reason: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if type(self.action) is not Action:  # a policy may answer "stop"; most answer Action.CONTINUE
            object.__setattr__(self, "action", Action(self.action))

    @property
    def stop(self) -> bool:
        """True when the trial is to stop now."""
        return self.action is Action.STOP


@dataclass(frozen=True)
class Capacity:
    """Room the search has besides the trials a policy is asked about, for policies that schedule
    (:attr:`StoppingPolicy.schedules`): they choose which trials hold the slots.

    Attributes:
        free: slots no trial holds or is queued for (a trial that just reported still holds its own).
        new: candidates the searcher may still propose (0 once the job's ``trials`` are all asked
            or the space is exhausted).
        checkpoint_bytes: the size on disk of the last checkpoint of each trial in play (asked
            about or paused), where it has one: what keeping it paused costs.
    """

    free: int
    new: int
    checkpoint_bytes: Mapping[str, int] = field(default_factory=dict)


class StoppingPolicy(ABC):
    """Decides which trials to stop early, pause or resume.

    A policy never changes trial state: it returns decisions and the driver acts on them. It sees
    every curve recorded so far, so it needs no memory of its own and gives the same decisions when
    a job is replayed or resumed. The driver asks it once per tick, for every trial that reported
    in that tick, so a model-based policy decides them all in one batch.
    """

    #: short name, recorded on every trial it stops (``stopped_by``).
    name: str
    #: True for a policy that decides which trials use the job's slots (freeze-thaw): the driver
    #: then also passes ``capacity=`` (a :class:`Capacity`) and takes ``stop`` for paused trials.
    schedules: bool = False
    #: True for a policy whose forecaster reads each trial's configuration (the in-context PFN):
    #: the job then gives every :class:`CurveView` its ``features`` and calls :meth:`use_features`.
    reads_features: bool = False

    def use_features(self, draw: Callable[[np.random.Generator, int], np.ndarray]) -> None:
        """Given, before the first decision, to a policy that :attr:`reads_features`:
        ``draw(rng, k)`` gives the features of ``k`` configurations the search may propose next."""
        return None

    @abstractmethod
    def decide(
        self,
        running: Sequence[CurveView],
        best: float | None,
        history: Sequence[CurveView] = (),
        paused: Sequence[CurveView] = (),
    ) -> list[Decision]:
        """Return one decision per curve in ``running``, plus ``resume`` decisions for any of
        ``paused`` that are to continue.

        Args:
            running: trials that just reported an epoch and wait for a decision (continue, stop
                or pause).
            best: the best value any trial has reached so far (oriented, higher is better),
                or ``None`` before the first result.
            history: every trial's curve so far (running, paused, finished, stopped); from the
                driver a :class:`CurveHistory`, whose ``summary`` holds the range of values seen.
            paused: trials paused earlier, each with its checkpoint kept.

        A policy whose :attr:`schedules` is True also gets ``capacity``, a :class:`Capacity`, and
        may answer a paused trial with ``stop`` as well as ``resume``.
        """
