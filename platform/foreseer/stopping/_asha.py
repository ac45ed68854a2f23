"""Asynchronous successive halving (ASHA).

After Li et al., "A System for Massively Parallel Hyperparameter Tuning" (MLSys 2020): rungs sit at
``grace_period * reduction_factor**k`` epochs; a trial reaching a rung continues only when its value
there is in the top ``1 / reduction_factor`` of the values other trials recorded at that rung.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from foreseer.spec_parts import SpecModel
from foreseer.stopping._base import Action, CurveView, Decision, StoppingPolicy


class AshaStopping(SpecModel):
    """``stopping: asha``: asynchronous successive halving (Li et al., "A System for Massively
    Parallel Hyperparameter Tuning", MLSys 2020)."""

    name: Literal["asha"] = "asha"
    #: the field holding the first epoch at which the strategy may stop a trial
    first_epoch_field: ClassVar[str] = "grace_period"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1)

    def build(self) -> AshaPolicy:
        return AshaPolicy(self.grace_period, self.reduction_factor)


class AshaPolicy(StoppingPolicy):
    """ASHA as a stateless policy: the rung records are read from the curves themselves.

    Example:
        >>> policy = AshaPolicy(grace_period=1, reduction_factor=2)
        >>> good, bad = CurveView("a", (0.9,), 9), CurveView("b", (0.1,), 9)
        >>> policy.decide([bad], best=0.9, history=[good, bad])[0].stop
        True
    """

    name = "asha"

    def __init__(self, grace_period: int, reduction_factor: float) -> None:
        if grace_period < 1:
            raise ValueError(f"grace_period must be at least 1, but got {grace_period=}.")
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be greater than 1, but got {reduction_factor=}.")
        self.grace_period = grace_period
        self.reduction_factor = reduction_factor

    def rungs(self, max_epochs: int) -> list[int]:
        """Epochs at which trials with this budget are compared, ascending, below ``max_epochs``."""
        out: list[int] = []
        k = 0
        while (rung := int(round(self.grace_period * self.reduction_factor**k))) < max_epochs:
            if not out or rung > out[-1]:
                out.append(rung)
            k += 1
        return out

    def decide(
        self,
        running: Sequence[CurveView],
        best: float | None,
        history: Sequence[CurveView] = (),
        paused: Sequence[CurveView] = (),
    ) -> list[Decision]:
        return [self._decide_one(curve, history) for curve in running]

    def _decide_one(self, curve: CurveView, history: Sequence[CurveView]) -> Decision:
        rung = curve.epoch
        if rung not in self.rungs(curve.max_epochs):
            return Decision(curve.trial_id)
        recorded = [c.values[rung - 1] for c in history if c.trial_id != curve.trial_id and c.epoch >= rung]
        recorded = [v for v in recorded if math.isfinite(v)]
        if not recorded:
            return Decision(curve.trial_id)
        cutoff = float(np.percentile(recorded, (1 - 1 / self.reduction_factor) * 100))
        value = curve.values[-1]
        if value < cutoff:
            return Decision(
                curve.trial_id,
                Action.STOP,
                reason=(
                    f"asha: {curve.as_metric(value):.4g} worse than the rung-{rung} cutoff "
                    f"{curve.as_metric(cutoff):.4g} of {len(recorded)} trials"
                ),
            )
        return Decision(curve.trial_id)
