"""Meta-training a hypernetwork for one (space, dataset) pair, within a budget.

GHN-2's recipe (Knyazev et al., 2021, section 4): each step samples a meta-batch of architectures
and one batch of training images, predicts every architecture's weights, and minimises the mean
cross-entropy of the predicted networks with Adam and gradient clipping. Architectures come from
the job's own space; held-out architectures scored on the validation split decide early stopping,
and the best state seen is returned.

Example:
    >>> result = meta_train(get_space("cells"), load_dataset("digits"), MetaTrainConfig(max_seconds=60))
    >>> result.best_val_accuracy > 0.5
    True
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from foreseer.predictors.ghn.graph import GraphBatch, GraphEncoding, encode
from foreseer.predictors.ghn.model import GHNConfig, GraphHyperNetwork, predicted_forward, predictive_mode
from foreseer.predictors.ghn.predictor import GHNPredictor

if TYPE_CHECKING:
    from foreseer_spaces import Candidate, SearchSpace, Task
    from foreseer_workers import DataBundle

__all__ = ["MetaTrainConfig", "MetaTrainResult", "meta_train", "sample_candidates"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetaTrainConfig:
    """The meta-training budget and recipe.

    Attributes:
        max_steps: steps at most.
        max_seconds: CPU seconds of this process at most (tracing the architecture pool counts);
            CPU time, not wall-clock, so that the budget means the same on a machine shared with
            other work. 290 by default: under the issue's cap of 5 CPU-minutes per pair, with
            room for the last held-out evaluation.
        meta_batch: architectures per step (GHN-2 uses 8).
        batch_size: training examples per step, shared by the meta-batch.
        lr, weight_decay, clip: Adam's peak learning rate (decayed to 0 along a cosine over the
            budget, steps or seconds, whichever runs out first), weight decay, gradient-norm clipping.
        train_archs: size of the pool of training architectures.
        val_archs: held-out architectures scored for early stopping.
        eval_every: steps between two held-out evaluations.
        patience: evaluations without improvement before stopping.
        seed: seeds architecture sampling, the hypernetwork's initialisation and batches.
        num_threads: CPU threads torch may use.
        device: a torch device string.
    """

    max_steps: int = 3000
    max_seconds: float = 290.0
    meta_batch: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-5
    clip: float = 5.0
    train_archs: int = 128
    val_archs: int = 16
    eval_every: int = 50
    patience: int = 6
    seed: int = 0
    num_threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("seed", "weight_decay", "device"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"MetaTrainConfig.{f.name} must be a positive number, but got {value!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MetaTrainResult:
    """A meta-trained hypernetwork and how it got there.

    Attributes:
        ghn: the hypernetwork at its best held-out evaluation.
        steps: steps taken; seconds: wall-clock seconds; cpu_seconds: process CPU seconds.
        best_val_accuracy: mean accuracy of the held-out architectures with predicted weights.
        stopped: why training ended (``"early stopping"``, ``"max_steps"``, ``"max_seconds"``).
        history: one ``{"step", "loss", "val_accuracy"}`` per evaluation.
    """

    ghn: GraphHyperNetwork
    steps: int
    seconds: float
    cpu_seconds: float
    best_val_accuracy: float
    stopped: str
    history: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        keys = ("steps", "seconds", "cpu_seconds", "best_val_accuracy", "stopped")
        return {k: getattr(self, k) for k in keys}


def sample_candidates(
    space: SearchSpace, task: Task, n: int, *, seed: int, exclude: set[str] | None = None
) -> list[Candidate]:
    """``n`` candidates of distinct architectures drawn at random (Optuna's RandomSampler), none
    whose ``arch_hash`` is in ``exclude``; fewer when the space runs out."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    seen, out = set(exclude or ()), []
    for _ in range(n * 20):
        if len(out) == n:
            break
        candidate = space.sample(study.ask(), task)
        if candidate.arch_hash not in seen:
            seen.add(candidate.arch_hash)
            out.append(candidate)
    return out


def _pool(
    space: SearchSpace, task: Task, candidates: list[Candidate], max_hops: int
) -> list[tuple[nn.Module, GraphEncoding]]:
    from foreseer_spaces import trace

    pool = []
    for candidate in candidates:
        module = space.build(candidate, task)
        pool.append((module, encode(trace(module, task.input_shape), max_hops=max_hops)))
    return pool


class _Loop:
    """The state of one meta-training run."""

    def __init__(
        self, space: SearchSpace, data: DataBundle, ghn_config: GHNConfig, config: MetaTrainConfig
    ) -> None:
        self.config, self.data, self.device = config, data, torch.device(config.device)
        self.cpu_began = time.process_time()  # the budget counts building the pool
        torch.manual_seed(config.seed)
        self.ghn = GraphHyperNetwork(ghn_config).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.ghn.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        task = data.task
        train = sample_candidates(space, task, config.train_archs, seed=config.seed)
        held = sample_candidates(
            space, task, config.val_archs, seed=config.seed + 1, exclude={c.arch_hash for c in train}
        )
        self.pool = _pool(space, task, train, ghn_config.max_hops)
        self.validator = GHNPredictor(self.ghn, space, task, cache_size=len(held))
        self.held = held
        self.x = torch.tensor(data.x_train, dtype=torch.float32, device=self.device)
        self.y = torch.tensor(data.y_train, dtype=torch.long, device=self.device)
        self.generator = torch.Generator().manual_seed(config.seed)

    def step(self, progress: float) -> float:
        c = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = c.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        picks = torch.randint(len(self.pool), (c.meta_batch,), generator=self.generator).tolist()
        idx = torch.randperm(len(self.y), generator=self.generator)[: c.batch_size].to(self.device)
        x, y = self.x[idx], self.y[idx]
        self.ghn.train()
        predicted = self.ghn(GraphBatch.of([self.pool[i][1] for i in picks]))
        loss = torch.stack(
            [F.cross_entropy(predicted_forward(predictive_mode(self.pool[i][0].to(self.device)), w, x), y)
             for i, w in zip(picks, predicted, strict=True)]
        ).mean()  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.ghn.parameters(), c.clip)
        self.optimizer.step()
        return loss.item()

    def run(self, progress: Callable[[dict[str, float]], None] | None) -> MetaTrainResult:
        """Step until the budget runs out or held-out accuracy stops improving; keep the best state."""
        config, began, cpu_began = self.config, time.perf_counter(), self.cpu_began
        best, best_state, history, losses, waited, stopped, step = -math.inf, None, [], [], 0, "max_steps", 0
        for step in range(1, config.max_steps + 1):
            used = max(step / config.max_steps, (time.process_time() - cpu_began) / config.max_seconds)
            losses.append(self.step(used))
            if step % config.eval_every and step != config.max_steps and used < 1:
                continue
            accuracy = self.evaluate()
            record = {"step": step, "loss": sum(losses) / len(losses), "val_accuracy": accuracy,
                      "seconds": time.perf_counter() - began}  # fmt: skip
            history.append(record)
            losses = []
            if progress is not None:
                progress(record)
            logger.info(
                "GHN meta-training step %d: loss %.3f, held-out accuracy %.3f", step, record["loss"], accuracy
            )
            if accuracy > best:
                best, best_state, waited = accuracy, copy.deepcopy(self.ghn.state_dict()), 0
            else:
                waited += 1
            if waited >= config.patience:
                stopped = "early stopping"
                break
            if time.process_time() - cpu_began >= config.max_seconds:
                stopped = "max_seconds"
                break
        if best_state is not None:
            self.ghn.load_state_dict(best_state)
        return MetaTrainResult(self.ghn.eval(), step, time.perf_counter() - began,
                               time.process_time() - cpu_began, best, stopped, history)  # fmt: skip

    def evaluate(self) -> float:
        self.ghn.eval()
        scores = self.validator.score(self.held, self.data.x_val, self.data.y_val)
        return sum(scores) / len(scores)


def meta_train(
    space: SearchSpace,
    data: DataBundle,
    config: MetaTrainConfig | None = None,
    ghn_config: GHNConfig | None = None,
    *,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> MetaTrainResult:
    """Meta-train a hypernetwork for ``space`` on ``data`` within ``config``'s budget.

    Args:
        space: the search space whose architectures are sampled.
        data: the dataset; the training split trains, the validation split early-stops.
        config: budget and recipe (defaults: :class:`MetaTrainConfig`).
        ghn_config: the hypernetwork's sizes (defaults: :class:`GHNConfig`).
        progress: called with each evaluation's ``{"step", "loss", "val_accuracy", "seconds"}``.
    """
    config, ghn_config = config or MetaTrainConfig(), ghn_config or GHNConfig()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        return _Loop(space, data, ghn_config, config).run(progress)
    finally:
        torch.set_num_threads(previous_threads)
