"""Batches and measures for the in-context PFN, which is trained on the prior over jobs.

A training example is one job (``job_prior.sample_job``) as a search would have seen it part-way:
each configuration observed for its own number of epochs (freeze-thaw-like: many for a few, few
for many, none for some; or all to one cutoff), at most ``max_tokens`` observations in all; the
queries are later epochs of the observed configurations and any epoch of the unobserved ones.
One observation budget per batch, drawn in ``1..max_tokens``, so a batch pads little (the
per-curve model draws one cutoff per batch for the same reason).

:func:`evaluate_jobs` is the issue's likelihood table: on fresh prior jobs whose configurations are
all observed up to a cutoff, the mean log-likelihood of every later epoch, for the in-context model
and, on the same curves one at a time, for a per-curve model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from foreseer.predictors.pfn.context import bin_context
from foreseer.predictors.pfn.job_prior import sample_job
from foreseer.predictors.pfn.model import CurvePFN
from foreseer.predictors.pfn.prior import HORIZON

__all__ = ["JobBatch", "evaluate_jobs", "job_batch", "with_codes"]


@dataclass(frozen=True)
class JobBatch:
    """Right-padded observations and queries of a batch of jobs.

    Attributes:
        ctx_t, ctx_y: ``(B, L)`` epoch and value of each observation.
        ctx_x: ``(B, L, FEATURES + code)`` its configuration, and its trial's random code.
        ctx_len: ``(B,)`` observations per job (may be 0).
        qry_t, qry_y: ``(B, Q)`` query epochs and their observed values.
        qry_x: ``(B, Q, FEATURES + code)`` the configuration asked about, and its code.
    """

    ctx_t: torch.Tensor
    ctx_y: torch.Tensor
    ctx_x: torch.Tensor
    ctx_len: torch.Tensor
    qry_t: torch.Tensor
    qry_y: torch.Tensor
    qry_x: torch.Tensor

    def logits(self, model: CurvePFN) -> torch.Tensor:
        """The model's bucket logits ``(B, Q, n_buckets)`` for the batch's queries."""
        return model(self.ctx_t, self.ctx_y, self.qry_t, self.ctx_len, None, self.ctx_x, self.qry_x)


def _observed(n: int, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Epochs observed per configuration, at most ``budget`` in all, each below the horizon: half
    the jobs a freeze-thaw-like spread (many short, a few long, some not started), half every
    configuration to one cutoff (what a search that runs its trials side by side has seen)."""
    if rng.uniform() < 0.5:
        seen = np.full(n, int(rng.integers(1, HORIZON)))
    else:
        skew = rng.uniform(1.0, 4.0)
        seen = np.floor((HORIZON - 1) * rng.uniform(size=n) ** skew).astype(int)
    seen[rng.uniform(size=n) < rng.uniform(0, 0.3)] = 0  # configurations not started yet
    if seen.sum() > budget:
        seen = np.floor(seen * budget / seen.sum()).astype(int)
    return seen


def with_codes(features: np.ndarray, code: int, rng: np.random.Generator) -> np.ndarray:
    """``features`` ``(n, F)`` with a random standard-normal code of width ``code`` per row."""
    return np.concatenate([features, rng.standard_normal((len(features), code))], axis=1).astype(np.float32)


def _pack(
    rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad per-job ``(t, y, x)`` rows to ``width``."""
    B = len(rows)
    t, y = np.zeros((B, width), np.float32), np.zeros((B, width), np.float32)
    x = np.zeros((B, width, rows[0][2].shape[1]), np.float32)
    length = np.zeros(B, np.int64)
    for b, (rt, ry, rx) in enumerate(rows):
        k = len(rt)
        t[b, :k], y[b, :k], x[b, :k], length[b] = rt, ry, rx, k
    return torch.from_numpy(t), torch.from_numpy(y), torch.from_numpy(x), torch.from_numpy(length)


def job_batch(
    rng: np.random.Generator,
    batch_size: int,
    n_targets: int,
    max_tokens: int,
    max_configs: int = 64,
    trial_code: int = 0,
) -> JobBatch:
    """A training batch of ``batch_size`` prior jobs of 2..``max_configs`` configurations each,
    each configuration with a random code of width ``trial_code``."""
    budget = int(rng.integers(1, max_tokens + 1))
    contexts, queries = [], []
    for _ in range(batch_size):
        n = int(rng.integers(2, max_configs + 1))
        job = sample_job(n, rng)
        x = with_codes(job.features, trial_code, rng)
        seen = _observed(n, budget, rng)
        configs = np.repeat(np.arange(n), seen)
        epochs = np.concatenate([np.arange(1, s + 1) for s in seen]) if seen.sum() else np.zeros(0, int)
        contexts.append((epochs, job.curves[configs, epochs - 1], x[configs]))
        asked = rng.integers(0, n, n_targets)
        later = seen[asked] + 1 + np.floor(rng.uniform(size=n_targets) * (HORIZON - seen[asked])).astype(int)
        queries.append((later, job.curves[asked, later - 1], x[asked]))
    ctx_t, ctx_y, ctx_x, ctx_len = _pack(contexts, max(1, max(len(c[0]) for c in contexts)))
    qry_t, qry_y, qry_x, _ = _pack(queries, n_targets)
    return JobBatch(ctx_t, ctx_y, ctx_x, ctx_len, qry_t, qry_y, qry_x)


@torch.no_grad()
def evaluate_jobs(
    model: CurvePFN,
    per_curve: CurvePFN | None = None,
    n_jobs: int = 200,
    configs: int = 16,
    cutoffs: Sequence[int] = (10, 20, 40, 80),
    seed: int = 2024,
) -> dict[str, dict[int, float]]:
    """Mean log-likelihood of the epochs after each cutoff (percent of the horizon) on ``n_jobs``
    fresh prior jobs of ``configs`` configurations, all observed up to the cutoff.

    Returns ``{"in-context": {cutoff: ll}, "per-curve": {...}}`` (the second only with
    ``per_curve``, a model of one curve at a time, asked about the same curves).
    """
    was = model.training
    model.eval()
    rng = np.random.default_rng(seed)
    jobs = [sample_job(configs, rng) for _ in range(n_jobs)]
    codes = [with_codes(job.features, model.config.trial_code, rng) for job in jobs]
    out: dict[str, dict[int, float]] = {"in-context": {}}
    if per_curve is not None:
        out["per-curve"] = {}
    for pct in cutoffs:
        cut = pct * HORIZON // 100
        later = torch.arange(cut + 1, HORIZON + 1, dtype=torch.float32)
        total = {k: 0.0 for k in out}
        for job, x in zip(jobs, codes, strict=True):
            t = np.tile(np.arange(1, cut + 1), configs)
            ctx = _pack([(t, job.curves[:, :cut].ravel(), np.repeat(x, cut, axis=0))], len(t))
            qry_x = torch.from_numpy(np.repeat(x, len(later), axis=0))[None]
            qry_t = later.repeat(configs)[None]
            target = torch.from_numpy(job.curves[:, cut:].ravel())[None]
            logits = model(ctx[0], ctx[1], qry_t, ctx[3], None, ctx[2], qry_x)
            total["in-context"] += model.bar.log_prob(logits, target).mean().item()
            if per_curve is not None:
                epochs = [np.arange(1.0, cut + 1)] * configs
                context = bin_context(epochs, list(job.curves[:, :cut]), per_curve.config.context_bins)
                logits = per_curve.predict(context, later.expand(configs, -1))
                target = torch.from_numpy(job.curves[:, cut:])
                total["per-curve"] += per_curve.bar.log_prob(logits, target).mean().item()
        for k in out:
            out[k][pct] = total[k] / n_jobs
    model.train(was)
    return out
