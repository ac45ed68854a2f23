"""Fitting a :class:`CurvePFN` to a prior, resumably, and measuring it on fresh prior curves.

Each step draws a batch of curves from the prior and one cutoff ``T ~ U{1..H-1}`` for the batch
(as in LC-PFN); the context is epochs ``<= T`` (summarised into ``context_bins`` tokens when the
model has them, exactly as at inference) and ``n_targets`` later epochs are sampled as queries;
the loss is the bar distribution's negative log-likelihood of their noisy values.
With ``prior="jobs"`` a batch is whole jobs of the prior over jobs instead, and the model is the
in-context one (``features > 0``): see ``job_train.py``.
AdamW, linear warm-up then cosine decay, gradient clipping at 1.0.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from foreseer.predictors.pfn.bar import equal_mass_borders
from foreseer.predictors.pfn.checkpoint import read_metadata, save_checkpoint
from foreseer.predictors.pfn.context import Context, bin_context
from foreseer.predictors.pfn.job_prior import FEATURES, sample_job
from foreseer.predictors.pfn.job_train import evaluate_jobs, job_batch
from foreseer.predictors.pfn.model import CurvePFN, PFNConfig
from foreseer.predictors.pfn.prior import HORIZON, sample_curves

__all__ = ["EVAL_CUTOFFS", "TrainConfig", "evaluate_prior", "make_borders", "train"]

logger = logging.getLogger(__name__)

#: Cutoffs (percent of the horizon) of the paper's likelihood table.
EVAL_CUTOFFS = (10, 20, 40, 80)
STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        prior: ``"reference"`` or ``"extended"`` (curves), or ``"jobs"`` (the prior over jobs, for
            the in-context model).
        curves: total prior curves (jobs, for ``"jobs"``) to train on.
        batch_size: curves (jobs) per step.
        n_targets: query epochs sampled per curve (per job).
        max_tokens: most observations in a job's context (``"jobs"`` only).
        independent_jobs: share of a batch's jobs whose curves come one by one from the extended
            per-curve prior, uninformed by their configurations (``"jobs"`` only).
        lr: peak learning rate.
        warmup: fraction of steps of linear warm-up.
        weight_decay: AdamW weight decay.
        seed: seeds the prior draws.
        eval_every: steps between progress evaluations.
        save_every: steps between resumable checkpoints.
        init_from: a checkpoint whose weights (and bucket borders) start the run: a warm start with a
            fresh schedule, possibly on the other prior or with context bins added.
    """

    prior: Literal["reference", "extended", "jobs"] = "reference"
    curves: int = 1_000_000
    batch_size: int = 64
    n_targets: int = 20
    max_tokens: int = 500
    independent_jobs: float = 0.0
    lr: float = 1e-3
    warmup: float = 0.02
    weight_decay: float = 0.0
    seed: int = 0
    eval_every: int = 500
    save_every: int = 200
    init_from: str | None = None

    @property
    def steps(self) -> int:
        return max(1, self.curves // self.batch_size)


def make_borders(n_buckets: int, prior: str = "reference", seed: int = 12345) -> torch.Tensor:
    """Equal-mass bucket borders from 20,000 noisy prior curves (all epochs)."""
    return torch.from_numpy(_borders(n_buckets, prior, seed).copy())


@functools.lru_cache(maxsize=4)
def _borders(n_buckets: int, prior: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if prior == "jobs":
        curves = np.concatenate([sample_job(100, rng).curves for _ in range(200)])
    else:
        curves = sample_curves(20_000, rng, prior)  # type: ignore[arg-type]
    return equal_mass_borders(curves.ravel(), n_buckets)


def prior_context(y: np.ndarray, bins: int) -> Context:
    """Context tokens of curves ``y`` ``(B, T)`` observed at epochs ``1..T``."""
    epochs = np.arange(1, y.shape[1] + 1, dtype=np.float64)
    return bin_context([epochs] * len(y), list(y), bins)


def _batch(
    rng: np.random.Generator, config: TrainConfig, bins: int
) -> tuple[Context, torch.Tensor, torch.Tensor]:
    y = sample_curves(config.batch_size, rng, config.prior)  # (B, H)
    cutoff = int(rng.integers(1, HORIZON))
    n_q = min(config.n_targets, HORIZON - cutoff)
    later = np.argsort(rng.random((config.batch_size, HORIZON - cutoff)), axis=1)[:, :n_q] + cutoff
    qry_t = torch.from_numpy(later + 1).float()  # (B, Q)
    qry_y = torch.from_numpy(np.take_along_axis(y, later, axis=1))  # (B, Q)
    return prior_context(y[:, :cutoff], bins), qry_t, qry_y


def _lr_at(step: int, config: TrainConfig) -> float:
    warm = max(1, int(config.warmup * config.steps))
    if step < warm:
        return config.lr * (step + 1) / warm
    progress = (step - warm) / max(1, config.steps - warm)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate_prior(
    model: CurvePFN,
    n_curves: int = 10_000,
    prior: str = "reference",
    cutoffs: Sequence[int] = EVAL_CUTOFFS,
    seed: int = 2024,
    batch_size: int = 500,
) -> dict[int, float]:
    """Mean log-likelihood of all epochs after each cutoff, on fresh noisy prior curves.

    Cutoffs are in percent of the horizon; context = epochs up to the cutoff, targets = all later.
    """
    was_training = model.training
    model.eval()
    curves = sample_curves(n_curves, np.random.default_rng(seed), prior)  # type: ignore[arg-type]
    t = torch.arange(1, HORIZON + 1, dtype=torch.float32)
    bins = model.config.context_bins
    out: dict[int, float] = {}
    for pct in cutoffs:
        cut = pct * HORIZON // 100
        total = 0.0
        for i in range(0, n_curves, batch_size):
            y = curves[i : i + batch_size]
            logits = model.predict(prior_context(y[:, :cut], bins), t[cut:].expand(len(y), -1))
            total += model.bar.log_prob(logits, torch.from_numpy(y[:, cut:])).mean(1).sum().item()
        out[pct] = total / n_curves
    model.train(was_training)
    return out


def train(
    out_dir: Path,
    model_config: PFNConfig,
    config: TrainConfig,
    progress: Callable[[int, int, float], None] | None = None,
    on_eval: Callable[[int, dict[int, float]], None] | None = None,
    device: str = "cpu",
) -> CurvePFN:
    """Train (or resume training in ``out_dir``) and write ``out_dir/model.safetensors``.

    Args:
        out_dir: holds the resumable state and the final checkpoint.
        model_config: the model's shape (must match a state being resumed).
        config: the training settings (must match a state being resumed).
        progress: called after each step with ``(step, steps, loss)``.
        on_eval: called with ``(step, log-likelihood by cutoff)`` at each periodic evaluation
            (which runs on the CPU).
        device: where the steps run (``"cuda"`` on a GPU); the prior is drawn on the CPU and a
            run may resume on another device.
    """
    jobs = config.prior == "jobs"
    if jobs != (model_config.features > 0) or (jobs and model_config.features != FEATURES):
        raise ValueError(
            f"the prior over jobs trains the in-context model (features={FEATURES}) and only it; got "
            f"prior={config.prior!r} with features={model_config.features}."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    init = _init_state(Path(config.init_from)) if config.init_from else None
    borders = init["bar.borders"] if init is not None else make_borders(model_config.n_buckets, config.prior)
    model = CurvePFN(model_config, borders)
    if init is not None:
        _warm_start(model, init)  # replaced by the saved state when a run resumes
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, seconds = _resume(out_dir, model, optimizer, model_config, config, device)
    if step == 0 and init is not None:
        logger.info("warm start from %s", config.init_from)
    started = time.monotonic() - seconds
    model.train()
    while step < config.steps:
        rng = np.random.default_rng([config.seed, step])  # resuming replays the same stream
        if jobs:
            bins = model_config.context_bins
            batch = job_batch(
                rng, config.batch_size, config.n_targets, config.max_tokens, bins,
                independent=config.independent_jobs,
            ).to(device)  # fmt: skip
            logits, target = batch.logits(model), batch.qry_y
        else:
            ctx, qry_t, target = _batch(rng, config, model_config.context_bins)
            target = target.to(device)
            logits = model.predict(ctx.to(device), qry_t.to(device))
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        loss = -model.bar.log_prob(logits, target).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if progress is not None:
            progress(step, config.steps, loss.item())
        if step % config.save_every == 0 or step == config.steps:
            _save_state(out_dir, model, optimizer, model_config, config, step, time.monotonic() - started)
        if on_eval is not None and (step % config.eval_every == 0 or step == config.steps):
            model.cpu()
            ll = evaluate_jobs(model, n_jobs=50)["in-context"] if jobs else evaluate_prior(model, 1000)
            model.to(device)
            on_eval(step, ll)
    save_checkpoint(
        model, out_dir / "model.safetensors", _meta(asdict(config), step, time.monotonic() - started)
    )
    return model.cpu()


def _meta(config: dict[str, Any], step: int, seconds: float) -> dict[str, Any]:
    """A checkpoint's training metadata; a warm-started run adds the curves and the time of the
    checkpoint it started from (whose own metadata is kept under ``warm_started_from``)."""
    meta: dict[str, Any] = {
        "prior": config["prior"],
        "curves_seen": step * config["batch_size"],
        "train_seconds": round(seconds, 1),
        "train_config": config,
    }
    init = Path(config["init_from"]) if config.get("init_from") else None
    if init is not None and init.exists():
        _, before = read_metadata(init)
        meta["curves_seen"] += before.get("curves_seen", 0)
        meta["train_seconds"] = round(meta["train_seconds"] + before.get("train_seconds", 0.0), 1)
        meta["warm_started_from"] = before
    return meta


def _init_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.exists():
        raise ValueError(f"no checkpoint to warm-start from at {path}; pass an existing .safetensors file.")
    return load_file(str(path))


#: Embeddings a warm start may add, at zero: the summary embedding of a binned model, the
#: configuration embedding of an in-context one.
_NEW_EMBEDDINGS = {"embed.stats.weight", "embed.x.weight"}


def _is_new(name: str) -> bool:
    """Whether a warm start may add parameter ``name``: a new embedding, or a job block (which
    starts as the identity, ``Block.zero_``)."""
    return name in _NEW_EMBEDDINGS or name.startswith("job_blocks.")


def _warm_start(model: CurvePFN, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model``, which may add what :func:`_is_new` allows; what it adds
    computes nothing yet, so the warm-started model begins as the one it starts from."""
    own = model.state_dict()
    missing = set(own) - set(state)
    other = sorted(k for k in state if k not in own or state[k].shape != own[k].shape)
    if other or any(not _is_new(k) for k in missing):
        raise ValueError(
            f"the warm-start checkpoint has another shape (differing {other}, missing {sorted(missing)}); "
            "warm-start from a model of the same size."
        )
    model.load_state_dict(state, strict=False)
    with torch.no_grad():
        for name in missing & _NEW_EMBEDDINGS:
            own[name].zero_()


def _save_state(out_dir, model, optimizer, model_config, config, step, seconds) -> None:  # type: ignore[no-untyped-def]
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    tmp = out_dir / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(out_dir / STATE_FILE)
    info = {
        "step": step,
        "seconds": seconds,
        "model_config": model_config.to_dict(),
        "config": asdict(config),
    }
    (out_dir / "train_state.json").write_text(json.dumps(info, indent=2))
    logger.info("saved state at step %d", step)


def _resume(out_dir, model, optimizer, model_config, config, device="cpu") -> tuple[int, float]:  # type: ignore[no-untyped-def]
    info_path = out_dir / "train_state.json"
    if not (out_dir / STATE_FILE).exists() or not info_path.exists():
        return 0, 0.0
    info = json.loads(info_path.read_text())
    if info["model_config"] != model_config.to_dict() or info["config"] != asdict(config):
        raise ValueError(
            f"{out_dir} holds a training run with other settings ({info['model_config']}, {info['config']}); "
            "use a new output directory or the same settings to resume."
        )
    state = torch.load(out_dir / STATE_FILE, weights_only=True, map_location=device)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    logger.info("resumed at step %d", info["step"])
    return int(info["step"]), float(info["seconds"])


def export_run(run_dir: Path, path: Path) -> dict[str, object]:
    """Write the latest resumable state of a (possibly unfinished) run as a checkpoint at ``path``."""
    info_path = run_dir / "train_state.json"
    if not info_path.exists():
        raise ValueError(f"{run_dir} holds no training state (no train_state.json); train into it first.")
    info = json.loads(info_path.read_text())
    state = torch.load(run_dir / STATE_FILE, weights_only=True, map_location="cpu")["model"]
    model = CurvePFN(PFNConfig(**info["model_config"]), state["bar.borders"])
    model.load_state_dict(state)
    meta = _meta(info["config"], info["step"], info["seconds"])
    save_checkpoint(model, path, meta)
    return meta
