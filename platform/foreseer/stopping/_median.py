"""The median stopping rule.

After Golovin et al., "Google Vizier: A Service for Black-Box Optimization" (KDD 2017): stop a trial
at epoch ``t`` when its best value so far is worse than the median of the other trials' running
averages up to ``t``. Here every other trial that has reached ``t`` counts, finished or not, so the
rule acts in an asynchronous search before any trial has finished.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from foreseer.spec_parts import SpecModel
from foreseer.stopping._base import Action, CurveView, Decision, StoppingPolicy


class MedianStopping(SpecModel):
    """``stopping: median``: the median stopping rule (Golovin et al., "Google Vizier", KDD 2017)."""

    name: Literal["median"] = "median"
    #: the field holding the first epoch at which the strategy may stop a trial
    first_epoch_field: ClassVar[str] = "grace_period"
    grace_period: int = Field(1, ge=1)
    min_samples: int = Field(3, ge=1)

    def build(self) -> MedianPolicy:
        return MedianPolicy(self.grace_period, self.min_samples)


class MedianPolicy(StoppingPolicy):
    """Stops a trial whose best value trails the median running average of its peers."""

    name = "median"

    def __init__(self, grace_period: int, min_samples: int) -> None:
        if grace_period < 1:
            raise ValueError(f"grace_period must be at least 1, but got {grace_period=}.")
        if min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, but got {min_samples=}.")
        self.grace_period = grace_period
        self.min_samples = min_samples

    def decide(
        self,
        running: Sequence[CurveView],
        best: float | None,
        history: Sequence[CurveView] = (),
        paused: Sequence[CurveView] = (),
    ) -> list[Decision]:
        return [self._decide_one(curve, history) for curve in running]

    def _decide_one(self, curve: CurveView, history: Sequence[CurveView]) -> Decision:
        t = curve.epoch
        if t < self.grace_period or t >= curve.max_epochs:
            return Decision(curve.trial_id)
        averages = [sum(c.values[:t]) / t for c in history if c.trial_id != curve.trial_id and c.epoch >= t]
        if len(averages) < self.min_samples:
            return Decision(curve.trial_id)
        median = statistics.median(averages)
        if curve.best < median:
            return Decision(
                curve.trial_id,
                Action.STOP,
                reason=f"median: best {curve.as_metric(curve.best):.4g} worse than the median running "
                f"average {curve.as_metric(median):.4g} of {len(averages)} trials at epoch {t}",
            )
        return Decision(curve.trial_id)
