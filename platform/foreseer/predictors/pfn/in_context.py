"""The in-context forecaster: every trial of a job forecast from all of the job, in one pass.

Where :class:`~foreseer.predictors.pfn.predictor.CurveForecaster` reads one curve at a time, a
:class:`JobForecaster` puts every trial of the job (its configuration features and its curve,
summarised into the model's context bins) in one context, and asks about any trial at any epoch:
a running or paused trial's later epochs, or a configuration not yet tried. Epochs are mapped onto
the prior's horizon as the per-curve forecaster maps them (``e -> e * H / E``).

Example:
    >>> import numpy as np, torch
    >>> from foreseer.predictors.pfn.model import CurvePFN, PFNConfig
    >>> model = CurvePFN(PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=20,
    ...                            context_bins=4, features=16, job_layers=1), torch.linspace(0, 1, 21))
    >>> f = JobForecaster(model)
    >>> x = np.zeros(16)
    >>> f.forecast([(x, [0.3, 0.5])], [0, np.ones(16)], max_epochs=20, query_epochs=[[20], [20]]).logits.shape
    torch.Size([2, 1, 20])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foreseer.predictors.pfn.checkpoint import load_checkpoint
from foreseer.predictors.pfn.context import JobContext
from foreseer.predictors.pfn.header import SHIPPED
from foreseer.predictors.pfn.model import CurvePFN
from foreseer.predictors.pfn.predictor import Forecast

__all__ = ["JobForecaster"]


class JobForecaster:
    """Batched in-context forecasts from a :class:`CurvePFN` with ``features > 0``.

    Args:
        model: the in-context network, float32 or quantised.
        meta: the checkpoint's training metadata.
    """

    def __init__(self, model: CurvePFN, meta: dict[str, Any] | None = None) -> None:
        if not model.config.features:
            raise ValueError("a JobForecaster needs an in-context model (features > 0), not a per-curve one.")
        self.model = model.eval()
        self.meta = meta or {}
        self.features = model.config.features
        self.horizon = model.config.horizon

    @classmethod
    def load(cls, path: str | Path | None = None, *, quantize: bool = True) -> JobForecaster:
        """Load an in-context checkpoint (``foreseer pfn train --prior jobs``); ``None``: the one
        shipped in the package.

        Raises:
            FileNotFoundError: when the file does not exist.
            ValueError: when it holds a model of one curve at a time.
        """
        path = Path(path) if path is not None else SHIPPED["in_context"]
        if not path.exists():
            raise FileNotFoundError(f"no PFN checkpoint at {path}; pass an existing .safetensors file.")
        model, meta = load_checkpoint(path)
        if quantize:
            from foreseer.predictors.pfn.quantize import quantize_int8

            quantize_int8(model)
        return cls(model, meta)

    def forecast(
        self,
        observed: Sequence[tuple[Sequence[float], Sequence[float]]],
        asked: Sequence[int | Sequence[float]],
        max_epochs: int,
        query_epochs: Sequence[Sequence[float]],
    ) -> Forecast:
        """Forecast ``asked[b]`` at ``query_epochs[b]``, for every ``b`` at once.

        Args:
            observed: ``(features, values)`` of every trial with epochs so far (features in
                ``[0, 1]``, at most the model's width, zero-padded), values on the prior's scale
                (see :class:`CurveNormalizer`), epochs ``1..len(values)``.
            asked: per row, the index of a trial in ``observed`` (its later epochs), or the
                features of a configuration not yet tried.
            max_epochs: the job's epoch budget.
            query_epochs: epochs to forecast per row (the same count for each).

        Raises:
            ValueError: for a feature vector wider than the model's, a trial index out of range,
                mismatched queries or a trial without values.
        """
        if len(asked) != len(query_epochs):
            raise ValueError(f"{len(asked)} rows asked about but {len(query_epochs)} rows of query epochs.")
        if any(len(values) == 0 for _, values in observed):
            raise ValueError("every observed trial needs at least one value; leave out those without.")
        scale = self.horizon / max_epochs
        seen = self._padded([x for x, _ in observed])
        trials = [
            (x, np.arange(1, len(values) + 1) * scale, np.asarray(values, dtype=np.float64))
            for x, (_, values) in zip(seen, observed, strict=True)
        ]
        slot = np.array([a if _is_index(a) else -1 for a in asked], dtype=np.int64)
        if ((slot < -1) | (slot >= len(observed))).any():
            raise ValueError(f"a trial index asked about is not one of the {len(observed)} observed trials.")
        new = self._padded([a for a in asked if not _is_index(a)])
        qry_x = np.zeros((len(asked), self.features), np.float32)
        qry_x[slot >= 0] = seen[slot[slot >= 0]]
        qry_x[slot < 0] = new
        queries = np.asarray(query_epochs, dtype=np.float64)  # (B, Q)
        B, Q = queries.shape
        context = JobContext.of([trials], self.features, self.model.config.context_bins)
        qry_t = torch.from_numpy((queries * scale).astype(np.float32).reshape(1, B * Q))
        with torch.inference_mode():
            logits = self.model.forecast_jobs(
                context,
                qry_t,
                torch.from_numpy(np.repeat(qry_x, Q, axis=0))[None],
                torch.from_numpy(np.repeat(slot, Q))[None],
            )
        return Forecast(self.model, logits.reshape(B, Q, -1), queries)

    def _padded(self, features: Sequence[Sequence[float]]) -> np.ndarray:
        rows = [np.asarray(f, dtype=np.float32).ravel() for f in features]
        if any(len(r) > self.features for r in rows):
            raise ValueError(f"a configuration has more than the model's {self.features} features.")
        out = np.zeros((len(rows), self.features), np.float32)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out


def _is_index(asked: int | Sequence[float]) -> bool:
    return isinstance(asked, int | np.integer)
