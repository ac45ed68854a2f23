"""Learning-curve PFN stopping.

After Adriaensen et al., "Efficient Bayesian Learning Curve Extrapolation using Prior-Data Fitted
Networks" (NeurIPS 2023): from ``min_epoch`` on, stop a trial when the PFN's posterior probability
that its final value beats the best value seen so far is at most ``delta``. All running trials
are forecast in one forward pass. Each decision carries ``p_improve`` and the forecast of the final
value (median and 5%/95% quantiles, in the metric's oriented units) so they are recorded per epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from foreseer.spec_parts import SpecModel
from foreseer.stopping._base import Action, CurveHistory, CurveSummary, CurveView, Decision, StoppingPolicy
from foreseer.stopping._forecasting import (
    MODELS,
    checkpoint_file,
    holds_in_context,
    is_in_context,
    load_forecaster,
    observed_trials,
    shipped_or,
)

if TYPE_CHECKING:
    from foreseer.predictors.pfn.in_context import JobForecaster
    from foreseer.predictors.pfn.normalize import CurveNormalizer
    from foreseer.predictors.pfn.predictor import CurveForecaster, Forecast

__all__ = ["PFNPolicy", "PFNStopping"]

logger = logging.getLogger(__name__)


class PFNStopping(SpecModel):
    """``stopping: pfn``: learning-curve PFN stopping (Adriaensen et al., NeurIPS 2023): stop when
    P(final value > best so far) <= ``delta``, from ``min_epoch`` on.

    ``model`` picks the shipped PFN: ``per_curve`` (each trial's curve alone) or ``in_context``
    (each trial forecast from every trial's curve and configuration); ``checkpoint``, a PFN
    ``.safetensors`` file of either kind, replaces it.
    """

    name: Literal["pfn"] = "pfn"
    #: the field holding the first epoch at which the strategy may stop a trial
    first_epoch_field: ClassVar[str] = "min_epoch"
    delta: float = Field(0.05, gt=0, lt=1)
    min_epoch: int = Field(2, ge=1)
    model: Literal[MODELS] = "per_curve"  # type: ignore[valid-type]
    checkpoint: str | None = None

    _checkpoint = field_validator("checkpoint")(checkpoint_file)

    def build(self) -> PFNPolicy:
        return PFNPolicy(self.delta, self.min_epoch, shipped_or(self.checkpoint, self.model))


class PFNPolicy(StoppingPolicy):
    """Stops trials whose forecast says they are unlikely to beat the best so far.

    Args:
        delta: stop when ``P(y_final > best) <= delta``; in (0, 1).
        min_epoch: first epoch at which a trial may be stopped; at least 1.
        checkpoint: a PFN checkpoint, or ``None`` for the one shipped in the package. An in-context
            checkpoint forecasts each trial from every trial of the job and its configuration
            (``CurveView.features``, which the job then gives).
        forecaster: a loaded forecaster (overrides ``checkpoint``; lets callers share one): a
            per-curve :class:`CurveForecaster` or an in-context :class:`JobForecaster`.
        normalizer: a fixed map onto the prior's scale; ``None`` chooses one at every decision
            from the summary of the curves seen (what a live job does; the driver's
            :class:`CurveHistory` carries that summary, kept up to date by the ledger).

    Example:
        >>> policy = PFNPolicy(delta=0.05, min_epoch=2)
        >>> bad = CurveView("b", (0.10, 0.11, 0.11), 20)
        >>> policy.decide([bad], best=0.95, history=[bad])[0].stop
        True
    """

    name = "pfn"

    def __init__(
        self,
        delta: float,
        min_epoch: int,
        checkpoint: str | Path | None = None,
        forecaster: CurveForecaster | JobForecaster | None = None,
        normalizer: CurveNormalizer | None = None,
    ) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), but got {delta=}.")
        if min_epoch < 1:
            raise ValueError(f"min_epoch must be at least 1, but got {min_epoch=}.")
        self.delta = delta
        self.min_epoch = min_epoch
        self._checkpoint = checkpoint
        self._forecaster = forecaster
        self.normalizer = normalizer
        self.reads_features = (
            is_in_context(forecaster) if forecaster is not None else holds_in_context(checkpoint)
        )

    @property
    def forecaster(self) -> CurveForecaster | JobForecaster:
        """The forecaster, loaded on first use (so building a policy stays cheap)."""
        if self._forecaster is None:
            self._forecaster = load_forecaster(self._checkpoint, self.reads_features)
        return self._forecaster

    def decide(
        self,
        running: Sequence[CurveView],
        best: float | None,
        history: Sequence[CurveView] = (),
        paused: Sequence[CurveView] = (),
    ) -> list[Decision]:
        eligible = [c for c in running if best is not None and self.min_epoch <= c.epoch < c.max_epochs]
        if not eligible:
            return [Decision(c.trial_id) for c in running]
        from foreseer.predictors.pfn.normalize import CurveNormalizer

        norm = self.normalizer
        if norm is None:
            seen = history or running
            summary = (
                seen.summary if isinstance(seen, CurveHistory) else CurveSummary.of(c.values for c in seen)
            )
            norm = CurveNormalizer.from_bounds(summary.low, summary.high, summary.first_median)
        forecast = self._forecast(eligible, history, norm)
        threshold = float(norm([best])[0])  # type: ignore[list-item]
        p_improve = forecast.prob_above([threshold] * len(eligible))
        quantiles = norm.inverse(forecast.quantiles([0.05, 0.5, 0.95])[:, -1].T).tolist()
        by_id = {}
        for curve, p, q05, q50, q95 in zip(eligible, p_improve.tolist(), *quantiles, strict=True):
            metrics = {
                "p_improve": p,
                "forecast_final": q50,
                "forecast_final_q05": q05,
                "forecast_final_q95": q95,
            }
            stop = p <= self.delta
            reason = ""
            if stop:
                m = curve.as_metric
                lo, hi = sorted((m(q05), m(q95)))
                reason = (
                    f"pfn: P(final better than best {m(best):.4g}) = {p:.3g} <= delta {self.delta} at epoch "
                    f"{curve.epoch} (forecast final {m(q50):.4g}, 90% interval [{lo:.4g}, {hi:.4g}])"
                )
            by_id[curve.trial_id] = Decision(
                curve.trial_id, Action.STOP if stop else Action.CONTINUE, reason, metrics
            )
        return [by_id[c.trial_id] if c.trial_id in by_id else Decision(c.trial_id) for c in running]

    def _forecast(
        self, eligible: list[CurveView], history: Sequence[CurveView], norm: CurveNormalizer
    ) -> Forecast:
        """The final epoch of each of ``eligible``, in one forward pass: each curve alone, or (the
        in-context model) every trial of ``history`` and ``eligible`` in one context."""
        if not self.reads_features:
            return self.forecaster.forecast(  # type: ignore[call-arg]
                norm.curves([c.values for c in eligible]), [c.max_epochs for c in eligible]
            )
        observed, index = observed_trials([*history, *eligible], norm)
        finals = [[c.max_epochs] for c in eligible]
        asked = [index[c.trial_id] for c in eligible]
        return self.forecaster.forecast(observed, asked, max(c.max_epochs for c in eligible), finals)  # type: ignore[call-arg]
