"""The stopping-policy interface: a read-only view of learning curves in, decisions out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class Decision:
    """What a policy decided for one running trial.

    Attributes:
        trial_id: the trial decided on.
        stop: stop it now.
        reason: why it stops (recorded on the trial).
        metrics: what the policy computed for this epoch, recorded with the trial's metrics
            (e.g. a forecaster's probability of beating the best so far, ``p_improve``).
    """

    trial_id: str
    stop: bool
    reason: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)


class StoppingPolicy(ABC):
    """Decides which running trials to stop early.

    A policy never changes trial state: it returns decisions and the orchestrator acts on them.
    It sees every curve recorded so far, so it needs no memory of its own and gives the same
    decisions when a job is replayed or resumed.
    """

    #: short name, recorded on every trial it stops (``stopped_by``).
    name: str

    @abstractmethod
    def decide(
        self,
        running: Sequence[CurveView],
        best: float | None,
        history: Sequence[CurveView] = (),
    ) -> list[Decision]:
        """Return one decision per curve in ``running``.

        Args:
            running: trials that just reported an epoch and may be stopped.
            best: the best value any trial has reached so far (oriented, higher is better),
                or ``None`` before the first result.
            history: every trial's curve so far (running, finished, stopped), ``running`` included.
        """
