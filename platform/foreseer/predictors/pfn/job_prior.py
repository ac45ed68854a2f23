"""A prior over whole search jobs: configurations and their learning curves, drawn together, so
curves of nearby configurations are alike.

After FT-PFN's prior (Rakotoarison, Adriaensen, Mallik et al., "In-Context Freeze-Thaw Bayesian
Optimization for Hyperparameter Optimization", ICML 2024), where a randomly initialised neural net
maps a configuration to the parameters of its curve. Ours, per job:

1. **Configurations.** ``n`` points in ``[0, 1]^FEATURES``: the first ``d`` features are the job's
   (``d ~ U{1..FEATURES}``), the rest are zero, as a real space's feature vector is padded. Some
   features are 0/1, like one-hot choices; some are irrelevant (the net never reads them).
2. **A random net** (two tanh layers, weights of a per-job scale, so some jobs are smooth and some
   are rugged) maps each configuration to ``N_PARAMS`` latent values. Each latent is standardised
   over the job and mixed with independent noise, ``z = sqrt(rho) g(x) + sqrt(1 - rho) e``, with
   ``rho`` per job and parameter, so how much a configuration determines its curve varies. ``z`` is
   standard normal whatever ``rho``: its CDF is uniform, and the inverse CDFs below give every
   parameter the same marginal in every job.
3. **A curve** ``y(t) = y0 + (y_inf - y0) s(t)``: the start ``y0`` and asymptote ``y_inf`` in
   ``[0, 1]``, and ``s`` a convex mixture of increasing shapes that rise from 0 at epoch 1
   towards 1: a power law (LC-PFN's pow3), an exponential (janoschek), a logarithm (ilog2) and a
   logistic in log-time (a slow start with an inflection). On top, per configuration and with
   probabilities the net also sets: never learning (flat), a plateau then a jump (as after a
   learning-rate drop), and divergence late in training (a decline or a crash), the extended
   prior's shapes in :mod:`foreseer.predictors.pfn.prior`.
4. **Observation noise**, one kind per job: Gaussian with a per-job scale (``log sigma ~ N(-4, 1)``,
   widened for some configurations), or the accuracy of a small validation set: the share of
   ``m`` examples right, ``m`` log-uniform in 30..3,000, as on wine's 36 validation rows.

Everything is vectorised in numpy over the job's configurations.

Example:
    >>> import numpy as np
    >>> job = sample_job(50, np.random.default_rng(0))
    >>> job.features.shape, job.curves.shape
    ((50, 16), (50, 100))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from foreseer.predictors.pfn.prior import HORIZON

__all__ = ["FEATURES", "N_PARAMS", "PriorJob", "sample_job"]

#: Width of a configuration's feature vector (a space with fewer features is padded with zeros).
FEATURES = 16
_T = np.arange(1, HORIZON + 1, dtype=np.float64)
_LOG_T = np.log(_T)
#: The latent parameters, in the order the net emits them.
_PARAMS = (
    "y_inf", "y0", "pow_alpha", "exp_kappa", "exp_delta", "logistic_mid", "logistic_width",
    "w_pow", "w_exp", "w_log", "w_logistic", "flat", "jump", "jump_at", "jump_size", "diverge",
    "diverge_at", "diverge_depth", "noise",
)  # fmt: skip
N_PARAMS = len(_PARAMS)
_HIDDEN = 32


@dataclass(frozen=True)
class PriorJob:
    """One job drawn from the prior.

    Attributes:
        features: ``(n, FEATURES)`` configurations in ``[0, 1]`` (zero past the job's ``dims``).
        clean: ``(n, HORIZON)`` noise-free curves in ``[0, 1]``.
        curves: ``(n, HORIZON)`` observed curves (``clean`` plus the job's noise), float32.
        dims: features the job uses.
    """

    features: np.ndarray
    clean: np.ndarray
    curves: np.ndarray
    dims: int


def _configurations(n: int, rng: np.random.Generator) -> tuple[np.ndarray, int, np.ndarray]:
    """The job's configurations, how many features it uses, and which of those the net reads."""
    dims = int(rng.integers(1, FEATURES + 1))
    x = np.zeros((n, FEATURES))
    x[:, :dims] = rng.uniform(0, 1, (n, dims))
    binary = rng.uniform(size=dims) < 0.25
    x[:, :dims][:, binary] = np.round(x[:, :dims][:, binary])
    relevant = np.zeros(FEATURES, dtype=bool)
    relevant[:dims] = rng.uniform(size=dims) < rng.uniform(0.3, 1.0)
    relevant[int(rng.integers(dims))] = True  # at least one feature matters
    return x, dims, relevant


def _latents(x: np.ndarray, relevant: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(n, N_PARAMS)`` standard-normal latents, correlated across configurations through a
    random net of ``x``."""
    n = len(x)
    scale = np.exp(rng.uniform(np.log(0.5), np.log(6.0)))  # smooth .. rugged
    w1 = rng.normal(0, scale, (FEATURES, _HIDDEN)) * relevant[:, None]
    h = np.tanh((x - 0.5) @ w1 + rng.normal(0, 1, _HIDDEN))
    w2 = rng.normal(0, 1 / np.sqrt(_HIDDEN), (_HIDDEN, _HIDDEN))
    h = np.tanh(h @ w2 + rng.normal(0, 0.5, _HIDDEN))
    g = h @ rng.normal(0, 1, (_HIDDEN, N_PARAMS))
    if n > 1:
        g = (g - g.mean(axis=0)) / np.maximum(g.std(axis=0), 1e-6)
    else:
        g = np.zeros_like(g)
    rho = rng.beta(2.0, 1.0, N_PARAMS)  # most parameters mostly set by the configuration
    rho[_PARAMS.index("y_inf")] = rng.uniform(0.6, 0.98)  # the asymptote is what a search learns
    return np.sqrt(rho) * g + np.sqrt(1 - rho) * rng.standard_normal((n, N_PARAMS))


def _shape(u: dict[str, np.ndarray]) -> np.ndarray:
    """``s(t)``: a convex mixture of increasing shapes, 0 at epoch 1, at most 1."""
    t1 = _T - 1
    alpha = np.exp(-2.0 + 3.0 * u["pow_alpha"])  # 0.14 .. 2.7
    power = 1 - _T ** (-alpha)
    kappa = np.exp(np.log(1e-3) + np.log(1e3) * u["exp_kappa"])  # 1e-3 .. 1
    delta = 0.5 + 1.5 * u["exp_delta"]
    with np.errstate(over="ignore"):
        exponential = 1 - np.exp(-kappa * t1**delta)
    logarithm = np.broadcast_to(1 - np.log(2) / np.log(_T + 1), power.shape)
    mid = np.log(2) + (np.log(80) - np.log(2)) * u["logistic_mid"]
    width = 0.1 + 0.9 * u["logistic_width"]
    logistic = 1 / (1 + np.exp(-(_LOG_T - mid) / width))
    logistic = (logistic - logistic[:, :1]) / np.maximum(1 - logistic[:, :1], 1e-9)
    weights = np.concatenate([u[k] for k in ("w_pow", "w_exp", "w_log", "w_logistic")], axis=1) ** 3
    weights /= weights.sum(axis=1, keepdims=True) + 1e-12
    shapes = np.stack([power, exponential, logarithm, logistic], axis=1)  # (n, 4, T)
    return np.clip((weights[:, :, None] * shapes).sum(axis=1), 0, 1)


def _events(y: np.ndarray, u: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Flat curves, plateau-then-jump and late divergence, each configuration's by its latents."""
    p_flat, p_jump, p_diverge = rng.uniform(0, [0.1, 0.25, 0.25])  # how often, in this job
    flat = u["flat"] < p_flat
    y = np.where(flat, y[:, :1], y)
    jump = (u["jump"] < p_jump) & ~flat
    at = 5 + np.floor(u["jump_at"] * (HORIZON - 10))
    y = y + jump * u["jump_size"] * 0.8 * (1 - y.max(axis=1, keepdims=True)) * (_T > at)
    diverge = (u["diverge"] < p_diverge) & ~flat
    start = 3 + np.floor(u["diverge_at"] * (HORIZON - 5))
    frac = np.clip((_T - start) / (HORIZON - start), 0, 1) ** rng.uniform(0.3, 2)
    floor = y[:, :1] * rng.uniform(0, 1)
    return y - diverge * u["diverge_depth"] * frac * np.clip(y - floor, 0, None)


def _noise(clean: np.ndarray, u: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The job's observation noise: Gaussian, or the accuracy of a small validation set."""
    if rng.uniform() < 0.3:
        m = int(np.exp(rng.uniform(np.log(30), np.log(3000))))
        return rng.binomial(m, np.clip(clean, 0, 1)) / m
    sigma = np.exp(rng.normal(-4.0, 1.0)) * np.exp(1.5 * (u["noise"] - 0.5))
    return clean + sigma * rng.standard_normal(clean.shape)


def sample_job(n: int, rng: np.random.Generator) -> PriorJob:
    """Draw one job of ``n`` configurations with their curves over ``HORIZON`` epochs.

    Raises:
        ValueError: ``n`` below 1.
    """
    if n < 1:
        raise ValueError(f"a job needs at least one configuration, but got {n=}.")
    x, dims, relevant = _configurations(n, rng)
    uniform = ndtr(_latents(x, relevant, rng))  # (n, N_PARAMS), each column U(0, 1)
    u = {name: uniform[:, i : i + 1] for i, name in enumerate(_PARAMS)}
    # the asymptote: high for most configurations of a job that learns, spread by the job
    top, spread = rng.uniform(0.5, 1.0), np.exp(rng.uniform(np.log(0.02), np.log(0.8)))
    y_inf = np.clip(top - spread * (1 - u["y_inf"]) ** rng.uniform(0.5, 3.0), 0.0, 1.0)
    y0 = y_inf * u["y0"] * rng.uniform(0.2, 1.0)
    clean = np.clip(_events(y0 + (y_inf - y0) * _shape(u), u, rng), 0, 1)
    curves = _noise(clean, u, rng).astype(np.float32)
    return PriorJob(features=x, clean=clean, curves=curves, dims=dims)
