"""Priors over learning curves that the PFN is fitted to.

The reference prior is LC-PFN's (Adriaensen et al., "Efficient Bayesian Learning Curve
Extrapolation using Prior-Data Fitted Networks", NeurIPS 2023): a non-negative, unnormalised
mixture of three parametric families (pow3, ilog2, janoschek), redrawn until the curve increases
overall and stays in [0, 1], plus per-curve Gaussian noise. The extended prior mixes in shapes the
reference lacks and real searches produce (slow starts with an inflection, plateaus followed by a
jump, late divergence, flat never-learning curves), the failure modes LC-PFN showed on
NAS-Bench-201.

Everything is vectorised in numpy: one call draws a whole batch.

Example:
    >>> import numpy as np
    >>> curves = sample_curves(8, np.random.default_rng(0))
    >>> curves.shape
    (8, 100)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["HORIZON", "PRIORS", "extended_curves", "reference_curves", "sample_curves"]

#: Epochs per prior curve; real curves are mapped onto this horizon.
HORIZON = 100
PRIORS = ("reference", "extended")
_T = np.arange(1, HORIZON + 1, dtype=np.float64)


def _pow3(n: int, rng: np.random.Generator) -> np.ndarray:
    c = rng.uniform(0, 1.25, (n, 1))
    a = rng.uniform(-0.6, 0.6, (n, 1))
    alpha = rng.lognormal(0.0, 2.0, (n, 1))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        return c - a * _T ** (-alpha)


def _ilog2(n: int, rng: np.random.Generator) -> np.ndarray:
    c = rng.uniform(0, 1, (n, 1))
    a = rng.uniform(-0.5, 0.5, (n, 1))
    return c - a / np.log(_T + 1)


def _janoschek(n: int, rng: np.random.Generator) -> np.ndarray:
    alpha = rng.uniform(0, 1, (n, 1))
    beta = rng.uniform(0, 2, (n, 1))
    kappa = rng.lognormal(-2.0, 1.0, (n, 1))
    delta = rng.lognormal(0.0, 0.5, (n, 1))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        return alpha - (alpha - beta) * np.exp(-kappa * _T**delta)


def _accept(y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(y).all(axis=1)
        return finite & (y[:, -1] > y[:, 0]) & (y >= 0).all(axis=1) & (y <= 1).all(axis=1)


def reference_curves(n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` noise-free curves of LC-PFN's reference prior, shape ``(n, HORIZON)``."""
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        m = max(64, int((n - have) * 5.5))  # about 21% are accepted
        w = rng.uniform(0, 1, (m, 3, 1))
        y = w[:, 0] * _pow3(m, rng) + w[:, 1] * _ilog2(m, rng) + w[:, 2] * _janoschek(m, rng)
        y = y[_accept(y)]
        out.append(y)
        have += len(y)
    return np.concatenate(out)[:n]


def _logistic(n: int, rng: np.random.Generator) -> np.ndarray:
    """Slow start then an inflection: a logistic in log-time."""
    lo = rng.uniform(0, 0.5, (n, 1))
    hi = lo + (1 - lo) * rng.uniform(0.1, 1, (n, 1))
    mid = np.log(rng.uniform(2, 80, (n, 1)))
    width = rng.uniform(0.1, 1.0, (n, 1))
    return lo + (hi - lo) / (1 + np.exp(-(np.log(_T) - mid) / width))


def _plateau_jump(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plateau then a jump, as after a learning-rate drop."""
    n = len(y)
    at = rng.integers(10, HORIZON - 5, (n, 1))
    jump = rng.uniform(0, 1, (n, 1)) * (1 - y.max(axis=1, keepdims=True)) * 0.8
    return y + jump * (_T > at)


def _diverge(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Learns, then degrades late: a slow decline or a crash to a low level."""
    n = len(y)
    at = rng.integers(5, HORIZON - 2, (n, 1))
    frac = np.clip((_T - at) / (HORIZON - at), 0, 1) ** rng.uniform(0.3, 2, (n, 1))
    floor = np.where(rng.uniform(size=(n, 1)) < 0.5, rng.uniform(0, 0.2, (n, 1)), y[:, :1])
    depth = rng.uniform(0.1, 1, (n, 1))
    return y - depth * frac * np.clip(y - floor, 0, None)


def _flat(n: int, rng: np.random.Generator) -> np.ndarray:
    """Never learns: a constant at the chance level."""
    return np.repeat(rng.uniform(0, 0.7, (n, 1)), HORIZON, axis=1)


def extended_curves(n: int, rng: np.random.Generator, p_reference: float = 0.5) -> np.ndarray:
    """Draw ``n`` noise-free curves of the extended prior, shape ``(n, HORIZON)``.

    With probability ``p_reference`` a curve is a reference curve; the rest split evenly between
    a logistic slow start, a plateau then a jump, late divergence, and a flat curve.
    """
    kind = rng.choice(5, size=n, p=[p_reference] + [(1 - p_reference) / 4] * 4)
    y = reference_curves(n, rng)
    y[kind == 1] = _logistic(int((kind == 1).sum()), rng)
    y[kind == 2] = _plateau_jump(y[kind == 2], rng)
    y[kind == 3] = _diverge(y[kind == 3], rng)
    y[kind == 4] = _flat(int((kind == 4).sum()), rng)
    return np.clip(y, 0, 1)


def sample_curves(
    n: int, rng: np.random.Generator, prior: Literal["reference", "extended"] = "reference"
) -> np.ndarray:
    """Draw ``n`` noisy curves, shape ``(n, HORIZON)``, float32.

    Noise is Gaussian per epoch with one scale per curve, ``log sigma ~ N(-4, 1)``.

    Raises:
        ValueError: for an unknown ``prior``.
    """
    if prior == "reference":
        y = reference_curves(n, rng)
    elif prior == "extended":
        y = extended_curves(n, rng)
    else:
        raise ValueError(f"prior must be one of {PRIORS}, but got {prior=!r}.")
    sigma = np.exp(rng.normal(-4.0, 1.0, (n, 1)))
    return (y + sigma * rng.standard_normal(y.shape)).astype(np.float32)
