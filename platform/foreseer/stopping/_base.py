"""The stopping-policy interface: a read-only view of learning curves in, decisions out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class CurveView:
    """A read-only view of one trial's learning curve.

    Attributes:
        trial_id: the trial this curve belongs to.
        values: the objective after each epoch, oriented so that higher is better
            (a minimised metric arrives negated).
        max_epochs: the epoch budget of the trial.
    """

    trial_id: str
    values: tuple[float, ...]
    max_epochs: int

    @property
    def epoch(self) -> int:
        """Epochs completed so far."""
        return len(self.values)

    @property
    def best(self) -> float:
        """Best value so far (``-inf`` before the first epoch)."""
        return max(self.values, default=float("-inf"))


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
        object.__setattr__(self, "action", Action(self.action))

    @property
    def stop(self) -> bool:
        """True when the trial is to stop now."""
        return self.action is Action.STOP


class StoppingPolicy(ABC):
    """Decides which trials to stop early, pause or resume.

    A policy never changes trial state: it returns decisions and the driver acts on them. It sees
    every curve recorded so far, so it needs no memory of its own and gives the same decisions when
    a job is replayed or resumed. The driver asks it once per tick, for every trial that reported
    in that tick, so a model-based policy decides them all in one batch.
    """

    #: short name, recorded on every trial it stops (``stopped_by``).
    name: str

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
            history: every trial's curve so far (running, paused, finished, stopped).
            paused: trials paused earlier, each with its checkpoint kept.
        """
