"""The in-context forecaster: every trial of a job forecast from all of the job, in one pass.

Where :class:`~foreseer.predictors.pfn.predictor.CurveForecaster` reads one curve at a time, a
:class:`JobForecaster` puts every observation of the job (each trial's configuration features,
epoch and value) in one context, and asks about any configuration at any epoch: a running or
paused trial's later epochs, or a configuration not yet tried. Epochs are mapped onto the prior's
horizon as the per-curve forecaster maps them (``e -> e * H / E``). A context longer than
``max_context`` observations is thinned per trial, evenly, always keeping each trial's last epoch.
A model with trial codes gets one per observed trial (a configuration asked about is that trial
when its features are the trial's, exactly) and a fresh one per configuration not yet tried.

Example:
    >>> import numpy as np, torch
    >>> from foreseer.predictors.pfn.model import CurvePFN, PFNConfig
    >>> model = CurvePFN(PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=20,
    ...                            features=16), torch.linspace(0, 1, 21))
    >>> f = JobForecaster(model)
    >>> x = np.zeros(16)
    >>> f.forecast([(x, [0.3, 0.5])], [x], max_epochs=20, query_epochs=[[20]]).logits.shape
    torch.Size([1, 1, 20])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foreseer.predictors.pfn.checkpoint import load_checkpoint
from foreseer.predictors.pfn.model import CurvePFN
from foreseer.predictors.pfn.predictor import Forecast

__all__ = ["MAX_CONTEXT", "JobForecaster"]

#: Observations a forecast's context holds at most (the issue's budget: 1,000 in one tick).
MAX_CONTEXT = 1000


class JobForecaster:
    """Batched in-context forecasts from a :class:`CurvePFN` with ``features > 0``.

    Args:
        model: the in-context network, float32 or quantised.
        meta: the checkpoint's training metadata.
        max_context: most observations in one context.
    """

    def __init__(
        self, model: CurvePFN, meta: dict[str, Any] | None = None, max_context: int = MAX_CONTEXT
    ) -> None:
        if not model.config.features:
            raise ValueError("a JobForecaster needs an in-context model (features > 0), not a per-curve one.")
        self.model = model.eval()
        self.meta = meta or {}
        self.features = model.config.features
        self.code = model.config.trial_code
        self.horizon = model.config.horizon
        self.max_context = max_context

    @classmethod
    def load(cls, path: str | Path, *, quantize: bool = True) -> JobForecaster:
        """Load an in-context checkpoint (``foreseer pfn train --prior jobs``).

        Raises:
            FileNotFoundError: when the file does not exist.
            ValueError: when it holds a model of one curve at a time.
        """
        path = Path(path)
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
        features: Sequence[Sequence[float]],
        max_epochs: int,
        query_epochs: Sequence[Sequence[float]],
    ) -> Forecast:
        """Forecast configuration ``features[b]`` at ``query_epochs[b]``, for every ``b`` at once.

        Args:
            observed: ``(features, values)`` of every trial with epochs so far, values on the
                prior's scale (see :class:`CurveNormalizer`), epochs ``1..len(values)``.
            features: the configurations asked about, ``(B, <= features)`` (zero-padded).
            max_epochs: the job's epoch budget.
            query_epochs: epochs to forecast per configuration (the same count for each).

        Raises:
            ValueError: for a feature vector wider than the model's, or mismatched queries.
        """
        if len(features) != len(query_epochs):
            raise ValueError(f"{len(features)} configurations but {len(query_epochs)} rows of query epochs.")
        scale = self.horizon / max_epochs
        keep = self._thinned([len(v) for _, v in observed])
        seen, asked = self._padded([x for x, _ in observed]), self._padded(features)
        codes = np.random.default_rng(0).standard_normal((len(seen) + len(asked), self.code), np.float32)
        whose = {row.tobytes(): i for i, row in enumerate(seen)}
        asked_codes = codes[[whose.get(row.tobytes(), len(seen) + b) for b, row in enumerate(asked)]]
        seen, asked = np.hstack([seen, codes[: len(seen)]]), np.hstack([asked, asked_codes])
        ctx_t, ctx_y, ctx_x = [], [], []
        for (_, values), epochs, x in zip(observed, keep, seen, strict=True):
            ctx_t.append((epochs + 1) * scale)
            ctx_y.append(np.asarray(values, dtype=np.float32)[epochs])
            ctx_x.append(np.repeat(x[None], len(epochs), axis=0))
        n = sum(len(t) for t in ctx_t)
        width = self.features + self.code
        t = torch.from_numpy(np.concatenate(ctx_t).astype(np.float32) if n else np.zeros(1, np.float32))
        y = torch.from_numpy(np.concatenate(ctx_y) if n else np.zeros(1, np.float32))
        x = torch.from_numpy(np.concatenate(ctx_x) if n else np.zeros((1, width), np.float32))
        queries = np.asarray(query_epochs, dtype=np.float64)  # (B, Q)
        B, Q = queries.shape
        qry_t = torch.from_numpy((queries * scale).astype(np.float32).reshape(1, B * Q))
        qry_x = torch.from_numpy(np.repeat(asked, Q, axis=0))[None]
        with torch.inference_mode():
            logits = self.model(t[None], y[None], qry_t, torch.tensor([n]), None, x[None], qry_x)
        return Forecast(self.model, logits.reshape(B, Q, -1), queries)

    def _padded(self, features: Sequence[Sequence[float]]) -> np.ndarray:
        rows = [np.asarray(f, dtype=np.float32).ravel() for f in features]
        if any(len(r) > self.features for r in rows):
            raise ValueError(f"a configuration has more than the model's {self.features} features.")
        out = np.zeros((len(rows), self.features), np.float32)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    def _thinned(self, lengths: Sequence[int]) -> list[np.ndarray]:
        """The epochs (0-based) kept of each trial: all of them, or an even share with the last."""
        total = sum(lengths)
        if total <= self.max_context:
            return [np.arange(k) for k in lengths]
        ratio = self.max_context / total
        out = []
        for k in lengths:
            m = max(1, int(k * ratio))
            out.append(np.unique(np.round(np.linspace(k - 1, 0, m)).astype(int)))
        return out
