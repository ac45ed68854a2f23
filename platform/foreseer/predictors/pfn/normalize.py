"""Mapping any objective's curves onto the prior's scale: increasing values, mostly in [0, 1].

Inputs are oriented (higher is better; a minimised metric arrives negated, as in
:class:`foreseer.stopping.CurveView`). Three cases, chosen from the values seen so far:

- fractions in [0, 1] (accuracy-like): used as they are;
- percentages in [0, 100] with some value above 1: divided by 100;
- anything else (negated losses, user metrics): LC-PFN's idea of a generalised-logistic squash
  with bounds from the data (Adriaensen et al. 2023, Sec. 4): ``lo`` = the median first-epoch
  value (an untrained model), ``hi`` = the best value seen; ``u = (v - lo) / (hi - lo)`` is squashed
  by a logistic so that ``lo -> 0.15`` and ``hi -> 0.85``, leaving room for later improvement and
  keeping diverged values finite.

Every map is strictly increasing, so the probability of beating a threshold is the same in either
scale; only the shape the prior sees changes.

Example:
    >>> norm = CurveNormalizer.fit([[-2.3, -1.0, -0.7], [-2.2, -1.9]])
    >>> norm.kind
    'logistic'
    >>> bool(0 < norm([-0.7])[0] < 1)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, chain

import numpy as np

__all__ = ["CurveNormalizer"]

_SLOPE = 2 * math.log(0.85 / 0.15)


@dataclass(frozen=True)
class CurveNormalizer:
    """A strictly increasing map from oriented metric values to the prior's scale.

    Attributes:
        kind: ``"identity"``, ``"percent"`` or ``"logistic"``.
        lo: value mapped to 0.15 (``"logistic"`` only).
        hi: value mapped to 0.85 (``"logistic"`` only).
    """

    kind: str = "identity"
    lo: float = 0.0
    hi: float = 1.0

    @classmethod
    def fit(cls, curves: Sequence[Sequence[float]]) -> CurveNormalizer:
        """Choose the map from all curves seen so far (oriented values; non-finite ones ignored)."""
        arrays = [np.asarray(c, dtype=np.float64) for c in curves]
        finite = [a[np.isfinite(a)] for a in arrays]
        values = np.concatenate(finite) if finite else np.zeros(0)
        if not values.size:
            return cls("identity")
        firsts = [a[0] for a in arrays if a.size and math.isfinite(a[0])]
        first_median = float(np.median(firsts)) if firsts else math.nan
        return cls.from_bounds(float(values.min()), float(values.max()), first_median)

    @classmethod
    def from_bounds(cls, low: float, high: float, first_median: float) -> CurveNormalizer:
        """Choose the map from the lowest and highest finite values seen and the median of the
        trials' first-epoch values (``nan`` when unknown; ``low`` stands in). What :meth:`fit`
        computes from the curves, for callers that keep these summaries as values arrive."""
        if not (math.isfinite(low) and math.isfinite(high)):
            return cls("identity")
        if low >= 0 and high <= 1:
            return cls("identity")
        if low >= 0 and high <= 100:
            return cls("percent")
        lo = first_median if math.isfinite(first_median) else low
        hi = high
        if hi - lo < 1e-12:
            spread = high - low
            lo = hi - (spread if spread > 1e-12 else max(1.0, abs(hi)))
        return cls("logistic", lo, hi)

    def __call__(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        if self.kind == "identity":
            return v
        if self.kind == "percent":
            return v / 100.0
        u = (v - self.lo) / (self.hi - self.lo)
        return 1.0 / (1.0 + np.exp(np.clip(-_SLOPE * (u - 0.5), -500, 500)))

    def curves(self, curves: Sequence[Sequence[float]]) -> list[Sequence[float]]:
        """Map many curves at once: one vectorised pass over all their values, each curve given
        back as a list of floats (what :meth:`CurveForecaster.forecast` reads fastest)."""
        if self.kind == "identity":
            return list(curves)
        lengths = [len(c) for c in curves]
        flat = self(np.fromiter(chain.from_iterable(curves), dtype=np.float64, count=sum(lengths))).tolist()
        ends = list(accumulate(lengths))
        return [flat[end - n : end] for n, end in zip(lengths, ends, strict=True)]

    def inverse(self, y: Sequence[float] | np.ndarray) -> np.ndarray:
        """Back from the prior's scale to oriented metric values."""
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "identity":
            return y
        if self.kind == "percent":
            return y * 100.0
        y = np.clip(y, 1e-9, 1 - 1e-9)
        u = 0.5 + np.log(y / (1 - y)) / _SLOPE
        return self.lo + u * (self.hi - self.lo)
