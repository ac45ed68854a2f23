"""No early stopping: every trial trains for its whole budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from foreseer.spec_parts import SpecModel
from foreseer.stopping._base import CurveView, Decision, StoppingPolicy


class NoStopping(SpecModel):
    """``stopping: none``: every trial runs to ``max_epochs``."""

    name: Literal["none"] = "none"

    def build(self) -> NoStoppingPolicy:
        return NoStoppingPolicy()


class NoStoppingPolicy(StoppingPolicy):
    """Never stops a trial; the baseline every other policy is measured against."""

    name = "none"

    def decide(
        self,
        running: Sequence[CurveView],
        best: float | None,
        history: Sequence[CurveView] = (),
        paused: Sequence[CurveView] = (),
    ) -> list[Decision]:
        return [Decision(c.trial_id) for c in running]
