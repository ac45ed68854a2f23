"""Batches and measures for the in-context PFN, which is trained on the prior over jobs.

A training example is one job (``job_prior.sample_job``) as a search would have seen it part-way:
each configuration observed for its own number of epochs (freeze-thaw-like: many for a few, few
for many, none for some; or all to one cutoff), at most ``max_tokens`` observations in all; the
queries are later epochs of the observed configurations and any epoch of the unobserved ones.
Each observed trial's curve is summarised into the model's context bins, exactly as at inference.
One observation budget per batch, drawn in ``1..max_tokens``.

:func:`evaluate_jobs` is the issue's likelihood table: on fresh prior jobs whose configurations are
all observed up to a cutoff, the mean log-likelihood of every later epoch, for the in-context model
and, on the same curves one at a time, for a per-curve model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from foreseer.predictors.pfn.context import JobContext, bin_context
from foreseer.predictors.pfn.job_prior import FEATURES, sample_job
from foreseer.predictors.pfn.model import CurvePFN
from foreseer.predictors.pfn.prior import HORIZON, sample_curves

__all__ = ["JobBatch", "evaluate_jobs", "job_batch"]


@dataclass(frozen=True)
class JobBatch:
    """The observed trials and the queries of a batch of jobs.

    Attributes:
        context: every observed trial's tokens and configuration.
        qry_t, qry_y: ``(B, Q)`` query epochs and their observed values.
        qry_x: ``(B, Q, FEATURES)`` the configuration asked about.
        qry_trial: ``(B, Q)`` its trial slot in ``context``, or -1 for one not observed.
    """

    context: JobContext
    qry_t: torch.Tensor
    qry_y: torch.Tensor
    qry_x: torch.Tensor
    qry_trial: torch.Tensor

    def logits(self, model: CurvePFN) -> torch.Tensor:
        """The model's bucket logits ``(B, Q, n_buckets)`` for the batch's queries."""
        return model.forecast_jobs(self.context, self.qry_t, self.qry_x, self.qry_trial)

    def to(self, device: torch.device | str) -> JobBatch:
        """The same batch on ``device``."""
        return JobBatch(
            self.context.to(device),
            self.qry_t.to(device),
            self.qry_y.to(device),
            self.qry_x.to(device),
            self.qry_trial.to(device),
        )


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


def _batch(
    jobs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]], bins: int
) -> JobBatch:
    """A batch of ``(features, curves, seen, asked, later)`` per job: configuration ``i`` observed
    for ``seen[i]`` epochs, queries ``(asked[j], later[j])``."""
    trials, slots = [], []
    for x, curves, seen, _, _ in jobs:
        observed = np.flatnonzero(seen)
        trials.append([(x[i], np.arange(1.0, seen[i] + 1), curves[i, : seen[i]]) for i in observed])
        slot = np.full(len(x), -1)
        slot[observed] = np.arange(len(observed))
        slots.append(slot)
    qry_t = np.stack([later for *_, later in jobs]).astype(np.float32)
    qry_y = np.stack([curves[asked, later - 1] for _, curves, _, asked, later in jobs])
    qry_x = np.stack([x[asked] for x, _, _, asked, _ in jobs]).astype(np.float32)
    qry_trial = np.stack([slot[asked] for slot, (*_, asked, _) in zip(slots, jobs, strict=True)])
    return JobBatch(
        JobContext.of(trials, FEATURES, bins),
        torch.from_numpy(qry_t),
        torch.from_numpy(qry_y.astype(np.float32)),
        torch.from_numpy(qry_x),
        torch.from_numpy(qry_trial),
    )


def job_batch(
    rng: np.random.Generator,
    batch_size: int,
    n_targets: int,
    max_tokens: int,
    bins: int,
    max_configs: int = 64,
    independent: float = 0.0,
) -> JobBatch:
    """A training batch of ``batch_size`` prior jobs of 2..``max_configs`` configurations each,
    each trial's context summarised into at most ``bins`` tokens. A share ``independent`` of the
    jobs have curves drawn one by one from the per-curve model's (extended) prior, which their
    configurations do not inform: what the model must still forecast as well as the per-curve
    model does, from each curve alone."""
    budget = int(rng.integers(1, max_tokens + 1))
    jobs = []
    for _ in range(batch_size):
        n = int(rng.integers(2, max_configs + 1))
        job = sample_job(n, rng)
        curves = sample_curves(n, rng, "extended") if rng.uniform() < independent else job.curves
        seen = _observed(n, budget, rng)
        asked = rng.integers(0, n, n_targets)
        later = seen[asked] + 1 + np.floor(rng.uniform(size=n_targets) * (HORIZON - seen[asked])).astype(int)
        jobs.append((job.features, curves, seen, asked, later))
    return _batch(jobs, bins)


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
    out: dict[str, dict[int, float]] = {"in-context": {}}
    if per_curve is not None:
        out["per-curve"] = {}
    for pct in cutoffs:
        cut = pct * HORIZON // 100
        later = np.arange(cut + 1, HORIZON + 1)
        total = {k: 0.0 for k in out}
        for job in jobs:
            seen = np.full(configs, cut)
            asked = np.repeat(np.arange(configs), len(later))
            batch = _batch(
                [(job.features, job.curves, seen, asked, np.tile(later, configs))], model.config.context_bins
            )
            total["in-context"] += model.bar.log_prob(batch.logits(model), batch.qry_y).mean().item()
            if per_curve is not None:
                epochs = [np.arange(1.0, cut + 1)] * configs
                context = bin_context(epochs, list(job.curves[:, :cut]), per_curve.config.context_bins)
                logits = per_curve.predict(context, torch.from_numpy(later).float().expand(configs, -1))
                target = torch.from_numpy(job.curves[:, cut:])
                total["per-curve"] += per_curve.bar.log_prob(logits, target).mean().item()
        for k in out:
            out[k][pct] = total[k] / n_jobs
    model.train(was)
    return out
