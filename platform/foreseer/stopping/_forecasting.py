"""What the PFN-based policies share: which forecaster a checkpoint holds, and a job's trials as
the in-context forecaster reads them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from foreseer.predictors.pfn.header import SHIPPED, read_header
from foreseer.stopping._base import CurveView

if TYPE_CHECKING:
    from foreseer.predictors.pfn.in_context import JobForecaster
    from foreseer.predictors.pfn.normalize import CurveNormalizer
    from foreseer.predictors.pfn.predictor import CurveForecaster


#: The shipped PFNs a stopping spec's ``model`` may name.
MODELS = tuple(SHIPPED)


def shipped_or(checkpoint: str | None, model: str) -> str | Path | None:
    """The checkpoint a spec asks for: its own file, or the shipped ``model`` (``None`` for the
    per-curve one, which the forecaster loads by default)."""
    if checkpoint is not None or model == "per_curve":
        return checkpoint
    return SHIPPED[model]


def checkpoint_file(value: str | None) -> str | None:
    """A spec's ``checkpoint``: ``None`` (the shipped one) or a PFN checkpoint file."""
    if value is None:
        return value
    if not Path(value).is_file():
        raise ValueError(
            f"no PFN checkpoint at {value!r}; give a .safetensors file written by foreseer pfn train, "
            "or leave checkpoint out for the one shipped in the package"
        )
    read_header(value)
    return value


def holds_in_context(checkpoint: str | Path | None) -> bool:
    """Whether ``checkpoint`` holds the in-context model (``None``: the shipped per-curve one)."""
    return checkpoint is not None and read_header(checkpoint)[0].get("features", 0) > 0


def observed_trials(
    views: Iterable[CurveView], norm: CurveNormalizer
) -> tuple[list[tuple[tuple[float, ...], list[float]]], dict[str, int]]:
    """Every trial of ``views`` with values, as ``(features, values on the PFN's scale)`` for
    :meth:`JobForecaster.forecast`, and each trial's index among them (a later view of a trial
    replaces an earlier one).

    Raises:
        ValueError: when a trial has no features (the job gives them to a policy that reads them).
    """
    latest: dict[str, CurveView] = {}
    for view in views:
        if view.values:
            latest[view.trial_id] = view
    known: Sequence[CurveView] = list(latest.values())
    if any(not c.features for c in known):
        raise ValueError("the in-context forecaster needs every trial's features (CurveView.features).")
    values = norm.curves([c.values for c in known])
    return [(c.features, v) for c, v in zip(known, values, strict=True)], {
        c.trial_id: i for i, c in enumerate(known)
    }


def is_in_context(forecaster: object) -> bool:
    from foreseer.predictors.pfn.in_context import JobForecaster

    return isinstance(forecaster, JobForecaster)


def load_forecaster(checkpoint: str | Path | None, in_context: bool) -> CurveForecaster | JobForecaster:
    """The forecaster of ``checkpoint`` (``None``: the shipped per-curve one)."""
    if in_context:
        from foreseer.predictors.pfn.in_context import JobForecaster

        return JobForecaster.load(checkpoint)  # type: ignore[arg-type]
    from foreseer.predictors.pfn.predictor import CurveForecaster

    return CurveForecaster.load(checkpoint)
