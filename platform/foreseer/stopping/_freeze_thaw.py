"""Freeze-thaw: pause trials instead of killing them, and give each slot to the best bet of all.

After Swersky et al., "Freeze-Thaw Bayesian Optimization" (2014), and ifBO (Rakotoarison,
Adriaensen, Mallik et al., "In-Context Freeze-Thaw Bayesian Optimization for Hyperparameter
Optimization", ICML 2024). A trial trains ``step`` epochs at a time. When it reaches the end of a
step, and whenever a slot frees, the policy ranks every option for the slots in play: each trial
that just finished a step (continue it), each paused trial (thaw it from its checkpoint) and a new
candidate from the sampler. The best ones get the slots; a trial that loses its slot is paused,
not stopped, so the search can come back to it once it has learnt more.

Options are ranked by an acquisition on the learning-curve PFN's forecast, one forward pass for
all of them:

- ``mfpi_random`` (ifBO's MFPI-random): draw a horizon ``h`` of 1..``max_epochs`` epochs and a
  threshold a little above the best value so far (by ``10^U(-4, -1)`` of the headroom left on the
  PFN's scale); an option's value is the probability that its curve, ``h`` epochs on, lies above
  the threshold. The draw is seeded by the epochs observed so far, so a replayed or resumed job
  decides the same.
- ``ei_per_epoch``: expected improvement over the best so far ``h`` epochs on (the same draw of
  ``h``, capped at the trial's budget), divided by the epochs it takes to get there, so continuing,
  thawing and starting anew are priced per epoch spent alike.

The per-curve PFN sees one curve at a time, so a new candidate is forecast as the job's typical
start: curves of one epoch at the quantiles of the first-epoch values seen so far, their
probabilities averaged. The in-context PFN (a :class:`JobForecaster`) reads every trial's
configuration and curve at once; a new candidate is then forecast at configurations drawn from the
search space (``new_features``), and every option from all the job has seen. Paused trials
beyond ``max_paused`` are stopped, those least likely to beat the best first (the oldest among
equals). Once the sampler has nothing left, a paused trial is thawed only while
P(final > best) > ``delta``; the rest are stopped when the search ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from foreseer.spec_parts import SpecModel
from foreseer.stopping._base import (
    Action,
    Capacity,
    CurveHistory,
    CurveSummary,
    CurveView,
    Decision,
    StoppingPolicy,
)
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
    from collections.abc import Callable

    from foreseer.predictors.pfn.in_context import JobForecaster
    from foreseer.predictors.pfn.normalize import CurveNormalizer
    from foreseer.predictors.pfn.predictor import CurveForecaster, Forecast

__all__ = ["ACQUISITIONS", "FreezeThawPolicy", "FreezeThawStopping"]

ACQUISITIONS = ("mfpi_random", "ei_per_epoch")
#: First-epoch quantiles a new candidate is forecast from.
_NEW_QUANTILES = 8
_EI_QUANTILES = np.linspace(0.025, 0.975, 20)


class FreezeThawStopping(SpecModel):
    """``stopping: freeze_thaw``: pause trials instead of stopping them, and at each step give the
    slots to the trials (running, paused or new) the PFN's forecast favours (after ifBO,
    Rakotoarison et al., ICML 2024).

    ``model`` picks the shipped PFN: ``per_curve`` (each trial's curve alone) or ``in_context``
    (every trial's curve and configuration at once); ``checkpoint``, a PFN ``.safetensors`` file of
    either kind, replaces it.
    """

    name: Literal["freeze_thaw"] = "freeze_thaw"
    #: the field holding the first epoch at which the strategy may pause a trial
    first_epoch_field: ClassVar[str] = "min_epoch"
    step: int = Field(1, ge=1, le=1000)
    min_epoch: int = Field(1, ge=1)
    acquisition: Literal[ACQUISITIONS] = "mfpi_random"  # type: ignore[valid-type]
    max_paused: int = Field(32, ge=1, le=10_000)
    max_paused_mb: float | None = Field(None, gt=0)
    delta: float = Field(0.05, gt=0, lt=1)
    model: Literal[MODELS] = "per_curve"  # type: ignore[valid-type]
    checkpoint: str | None = None

    _checkpoint = field_validator("checkpoint")(checkpoint_file)

    def build(self) -> FreezeThawPolicy:
        return FreezeThawPolicy(
            step=self.step,
            min_epoch=self.min_epoch,
            acquisition=self.acquisition,
            max_paused=self.max_paused,
            max_paused_mb=self.max_paused_mb,
            delta=self.delta,
            checkpoint=shipped_or(self.checkpoint, self.model),
        )


@dataclass(frozen=True)
class _Option:
    """One use of a slot: continue or thaw ``curve``, or (``curve is None``) start a new candidate."""

    curve: CurveView | None
    value: float  # the acquisition
    p_final: float  # P(final value > best so far); 1 for a new candidate
    rank: int  # among equal values: 0 continue (no restart), 1 thaw, 2 new


class FreezeThawPolicy(StoppingPolicy):
    """Freeze-thaw scheduling on the learning-curve PFN's forecasts.

    Args:
        step: epochs a trial trains between two decisions about it.
        min_epoch: the first epoch at which a trial may be paused.
        acquisition: ``"mfpi_random"`` or ``"ei_per_epoch"`` (see the module's notes).
        max_paused: paused trials kept (each keeps its checkpoint); beyond it the least promising
            are stopped.
        max_paused_mb: the most disk the paused trials' checkpoints may take (``None``: no cap);
            beyond it the least promising are stopped, the oldest among equals.
        delta: once no new candidate is left, thaw a paused trial only while P(final > best) > delta.
        checkpoint: a PFN checkpoint (per-curve or in-context), or ``None`` for the per-curve one
            shipped in the package.
        forecaster: a loaded forecaster (overrides ``checkpoint``): a per-curve
            :class:`CurveForecaster`, or an in-context :class:`JobForecaster`, which reads
            ``CurveView.features``.
        normalizer: a fixed map onto the PFN's scale; ``None`` chooses one at every decision from
            the curves seen (what a live job does).
        seed: seeds the acquisition's random draws (with the epochs observed so far).
        new_features: ``(rng, k) -> (k, F)`` features of ``k`` configurations the search space may
            propose next; needed with an in-context forecaster (a job gives it through
            :meth:`use_features`).

    Example:
        >>> from foreseer.stopping import Capacity
        >>> policy = FreezeThawPolicy()
        >>> good, bad = CurveView("a", (0.5, 0.7, 0.8), 20), CurveView("b", (0.1, 0.1, 0.1), 20)
        >>> [d.action.value for d in policy.decide([bad], 0.8, [good, bad], capacity=Capacity(0, 5))]
        ['pause']
    """

    name = "freeze_thaw"
    schedules = True

    def __init__(
        self,
        step: int = 1,
        min_epoch: int = 1,
        acquisition: str = "mfpi_random",
        max_paused: int = 32,
        max_paused_mb: float | None = None,
        delta: float = 0.05,
        checkpoint: str | Path | None = None,
        forecaster: CurveForecaster | JobForecaster | None = None,
        normalizer: CurveNormalizer | None = None,
        seed: int = 0,
        new_features: Callable[[np.random.Generator, int], np.ndarray] | None = None,
    ) -> None:
        if step < 1 or min_epoch < 1 or max_paused < 1:
            raise ValueError(
                f"step, min_epoch and max_paused must be at least 1: {step=}, {min_epoch=}, {max_paused=}."
            )
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {list(ACQUISITIONS)}, but got {acquisition!r}.")
        if max_paused_mb is not None and max_paused_mb <= 0:
            raise ValueError(f"max_paused_mb must be positive or None, but got {max_paused_mb=}.")
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), but got {delta=}.")
        self.in_context = self.reads_features = (
            is_in_context(forecaster) if forecaster is not None else holds_in_context(checkpoint)
        )
        self.step, self.min_epoch, self.acquisition = step, min_epoch, acquisition
        self.max_paused, self.max_paused_mb, self.delta, self.seed = max_paused, max_paused_mb, delta, seed
        self._checkpoint, self._forecaster, self.normalizer = checkpoint, forecaster, normalizer
        self.new_features = new_features

    @property
    def forecaster(self) -> CurveForecaster | JobForecaster:
        """The forecaster, loaded on first use (so building a policy stays cheap)."""
        if self._forecaster is None:
            self._forecaster = load_forecaster(self._checkpoint, self.in_context)
        return self._forecaster

    def use_features(self, draw: Callable[[np.random.Generator, int], np.ndarray]) -> None:
        self.new_features = draw

    def at_step(self, curve: CurveView) -> bool:
        """Whether ``curve`` just finished a step, so its slot is in play."""
        e = curve.epoch
        return self.min_epoch <= e < curve.max_epochs and (e - self.min_epoch) % self.step == 0

    def decide(
        self,
        running: Sequence[CurveView],
        best: float | None,
        history: Sequence[CurveView] = (),
        paused: Sequence[CurveView] = (),
        capacity: Capacity | None = None,
    ) -> list[Decision]:
        capacity = capacity or Capacity(free=0, new=0)
        stepped = [c for c in running if self.at_step(c)]
        going = [Decision(c.trial_id) for c in running if not self.at_step(c)]
        if best is None or not (stepped or paused):
            return going + [Decision(c.trial_id) for c in stepped]
        seen = history or running
        firsts = [c.values[0] for c in seen if c.values and math.isfinite(c.values[0])]
        options = self._options(stepped, paused, firsts, best, seen, capacity.new > 0)
        chosen = self._allocate(options, len(stepped) + capacity.free, capacity.new)
        answers = {d.trial_id: d for d in [*going, *self._answer(options, chosen, capacity, best)]}
        order = [c.trial_id for c in running] + [c.trial_id for c in paused]
        return [answers[t] for t in order if t in answers]

    # -- forecasts -----------------------------------------------------------------------------

    def _options(
        self,
        stepped: list[CurveView],
        paused: Sequence[CurveView],
        firsts: list[float],
        best: float,
        seen: Sequence[CurveView],
        new_allowed: bool,
    ) -> list[_Option]:
        """Every option with its acquisition: continue each of ``stepped``, thaw each of ``paused``,
        and (when allowed and the job has first epochs to go by) start a new candidate."""
        from foreseer.predictors.pfn.normalize import CurveNormalizer

        norm = self.normalizer
        if norm is None:
            summary = (
                seen.summary if isinstance(seen, CurveHistory) else CurveSummary.of(c.values for c in seen)
            )
            norm = CurveNormalizer.from_bounds(summary.low, summary.high, summary.first_median)
        curves = [*stepped, *paused]
        max_epochs = max(c.max_epochs for c in curves)
        rng = np.random.default_rng([self.seed, sum(c.epoch for c in seen)])
        horizon = int(rng.integers(1, max_epochs + 1))
        best_n = float(norm([best])[0])
        threshold = best_n + max(1.0 - best_n, 1e-3) * 10 ** rng.uniform(-4, -1)
        starts: list
        if self.in_context:
            if self.new_features is None:
                raise ValueError(
                    "an in-context forecaster needs new_features: draws of what the space proposes."
                )
            starts = list(self.new_features(rng, _NEW_QUANTILES)) if new_allowed else []
        else:
            quantiles = (np.arange(_NEW_QUANTILES) + 0.5) / _NEW_QUANTILES
            starts = np.quantile(firsts, quantiles).tolist() if new_allowed and firsts else []
        budgets = np.asarray([c.max_epochs for c in curves] + [max_epochs] * len(starts))
        epochs = np.asarray([c.epoch for c in curves] + [0] * len(starts))
        queries = np.stack([np.minimum(epochs + horizon, budgets), budgets], axis=1)
        rows = len(curves) + len(starts)
        forecast = self._forecast(curves, starts, seen, norm, budgets, queries)
        p_final = forecast.prob_above([best_n] * rows, query=1)
        if self.acquisition == "mfpi_random":
            value = forecast.prob_above([threshold] * rows, query=0)
        else:  # expected improvement h epochs on, per epoch it takes
            ahead = forecast.quantiles(_EI_QUANTILES.tolist())[:, 0]  # (B, quantiles)
            value = np.maximum(ahead - best_n, 0.0).mean(axis=1) / np.maximum(queries[:, 0] - epochs, 1)
        options = [
            _Option(c, float(v), float(p), 0 if i < len(stepped) else 1)
            for i, (c, v, p) in enumerate(zip(curves, value.tolist(), p_final.tolist(), strict=False))
        ]
        if starts:
            options.append(_Option(None, float(np.mean(value[len(curves) :])), 1.0, 2))
        return options

    def _forecast(
        self,
        curves: list[CurveView],
        starts: list,
        seen: Sequence[CurveView],
        norm: CurveNormalizer,
        budgets: np.ndarray,
        queries: np.ndarray,
    ) -> Forecast:
        """One forward pass for every option: ``curves`` then the new candidate's ``starts``
        (first-epoch values, or configurations' features for the in-context model)."""
        if not self.in_context:
            values = norm.curves([c.values for c in curves]) + [[v] for v in norm(starts).tolist()]
            return self.forecaster.forecast(values, budgets.tolist(), query_epochs=queries.tolist())  # type: ignore[call-arg]
        observed, index = observed_trials([*seen, *curves], norm)
        asked = [index.get(c.trial_id, c.features) for c in curves] + starts
        return self.forecaster.forecast(observed, asked, int(budgets.max()), queries.tolist())  # type: ignore[call-arg]

    # -- slots ---------------------------------------------------------------------------------

    def _allocate(self, options: list[_Option], slots: int, new: int) -> set[str]:
        """The trials given a slot: the best ``slots`` options, a new candidate counting as many
        times as the searcher has candidates left."""
        ranked = sorted(options, key=lambda o: (-o.value, o.rank))
        chosen: set[str] = set()
        for option in ranked:
            if slots <= 0:
                break
            if option.curve is None:  # every remaining slot that a new candidate beats the rest for
                take = min(slots, new)
                slots -= take
                continue
            if new == 0 and option.p_final <= self.delta:
                continue  # nothing new to try, and this one will not beat the best
            chosen.add(option.curve.trial_id)
            slots -= 1
        return chosen

    def _answer(
        self, options: list[_Option], chosen: set[str], capacity: Capacity, best: float
    ) -> list[Decision]:
        """Continue or resume the chosen; pause the other stepped trials; stop what is hopeless or
        beyond ``max_paused`` or ``max_paused_mb``."""
        new = capacity.new
        fresh = next((o.value for o in options if o.curve is None), None)
        top = max((o.value for o in options), default=0.0)
        # the trials without a slot, by trial id, the least promising first (the oldest among equals)
        kept = sorted(
            (
                (o.curve.trial_id, o)
                for o in options
                if o.curve is not None and o.curve.trial_id not in chosen
            ),
            key=lambda item: (item[1].p_final, item[0]),
        )
        stop: dict[str, str] = {}  # trial -> why, appended to its reason
        if new == 0:  # nothing new to try: a trial that will not beat the best is done
            stop = {
                t: f" <= delta {self.delta}, nothing new left" for t, o in kept if o.p_final <= self.delta
            }
        left = [t for t, _ in kept if t not in stop]
        while len(left) > self.max_paused:
            stop[left.pop(0)] = f", one of the least promising beyond max_paused {self.max_paused}"
        if self.max_paused_mb is not None:
            sizes = capacity.checkpoint_bytes
            while left and sum(sizes.get(t, 0) for t in left) > self.max_paused_mb * 1e6:
                stop[left.pop(0)] = (
                    f", one of the least promising beyond max_paused_mb {self.max_paused_mb:g}"
                )
        out = []
        for o in options:
            if o.curve is None:
                continue
            c, trial_id = o.curve, o.curve.trial_id
            metrics = {"acquisition": o.value, "p_improve": o.p_final}
            m = c.as_metric
            if trial_id in chosen:
                action = Action.CONTINUE if o.rank == 0 else Action.RESUME
                reason = (
                    "" if o.rank == 0 else f"freeze-thaw: thawed, acquisition {o.value:.3g} (best option)"
                )
            elif trial_id in stop:
                action = Action.STOP
                reason = (
                    f"freeze-thaw: P(final better than best {m(best):.4g}) = {o.p_final:.3g} at epoch "
                    f"{c.epoch}{stop[trial_id]}"
                )
            elif o.rank == 0:
                action = Action.PAUSE
                rival = "a new candidate" if fresh is not None and fresh >= top else "another trial"
                reason = (
                    f"freeze-thaw: acquisition {o.value:.3g} at epoch {c.epoch}, below {top:.3g} of {rival}"
                )
            else:
                continue  # stays paused
            out.append(Decision(trial_id, action, reason, metrics if o.rank == 0 else {}))
        return out
