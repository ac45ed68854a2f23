"""One trial: train a candidate epoch by epoch, report metrics and a checkpoint after each epoch.

``run_trial`` is what a backend runs inside a worker. It never raises for a trial that merely goes
badly (a diverging loss ends it with status ``"diverged"``); it raises only for a wrong call.

Example:
    >>> import shutil
    >>> from foreseer_spaces import Candidate, get_space
    >>> arch = {"depth": 1, "width_0": 64, "activation": "relu", "norm": "none", "dropout": 0.0,
    ...         "residual": False}
    >>> config = TrialConfig(get_space("mlp"), Candidate("mlp", arch, {"lr": 3e-3}), max_epochs=10)
    >>> outcome = run_trial(config, load_dataset("wine"), lambda metrics, path: shutil.rmtree(path))
    >>> outcome.status, outcome.history[-1]["val_accuracy"] > 0.85
    ('completed', True)
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from foreseer_spaces import Task
from foreseer_workers.checkpoint import (
    WEIGHTS_FILE,
    assign_weights,
    load_weights,
    read_training_state,
    read_trial_info,
    write_checkpoint,
)
from foreseer_workers.config import TrialConfig, TrialOutcome, resolve_precision
from foreseer_workers.data import DataBundle
from foreseer_workers.evaluation import measure_latency, score
from foreseer_workers.optim import build_optimizer, build_scheduler
from foreseer_workers.streaming import StreamedData

logger = logging.getLogger(__name__)

#: The reported metrics that are measurements of time, not results: they differ between two runs
#: that are otherwise identical.
TIMING_METRICS = ("epoch_seconds", "train_examples_per_s", "latency_ms")

ReportFn = Callable[[dict[str, float], str], Any]


class _Diverged(Exception):
    """Internal: the loss became NaN/inf; ``run_trial`` turns it into a "diverged" outcome."""


def build_model(
    config: TrialConfig, task: Task, *, init_weights: Mapping[str, Any] | None = None
) -> nn.Module:
    """Seed torch from ``config.seed``, build the candidate's network and load ``init_weights``.

    This is the network ``run_trial`` starts training from; with predicted weights it can also be
    scored with :func:`evaluate` without any training.

    Raises:
        ValueError: the space cannot handle ``task``, or ``init_weights`` does not fit the network
            (the message names the tensor). Tensors missing from ``init_weights`` keep their default
            initialisation and are logged.
    """
    config.space.check_task(task)
    torch.manual_seed(config.seed)
    model = config.space.build(config.candidate, task)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"space {config.space.name!r} built a {type(model).__name__}, but must build an nn.Module."
        )
    if init_weights is not None:
        assign_weights(model, init_weights, strict=False, source="init_weights")
    return model


def run_trial(
    config: TrialConfig,
    data: DataBundle | StreamedData,
    report: ReportFn,
    *,
    init_weights: Mapping[str, Any] | None = None,
    resume_from: str | None = None,
) -> TrialOutcome:
    """Train ``config.candidate`` on ``data``, calling ``report`` after every epoch.

    Args:
        config: what to train and how.
        data: train and validation splits (the test split is not touched), in memory or streamed
            from disk (:mod:`foreseer_workers.streaming`).
        report: called as ``report(metrics, checkpoint_dir)`` after each epoch. ``metrics`` holds
            ``epoch`` (1-based), ``train_loss`` (mean over the epoch; with label smoothing for
            classification, of the standardised target for regression), the task's validation
            metrics (:func:`~foreseer_workers.evaluation.score`), for classification
            ``train_accuracy``, and ``lr`` (of the epoch's last step), ``epoch_seconds``
            (training + validation), ``train_examples_per_s`` (the training pass's throughput, data
            loading included), ``num_params`` and ``latency_ms`` (one example's forward pass,
            measured once per attempt; see :func:`~foreseer_workers.evaluation.measure_latency`).
            ``checkpoint_dir`` is a new directory the caller owns from then on (move or delete it).
            Returning a truthy value stops the trial after that epoch (status ``"stopped"``).
        init_weights: name -> tensor loaded before training, e.g. predicted by a hypernetwork.
        resume_from: a checkpoint directory from an earlier report of the same candidate and data;
            training continues at the next epoch exactly as if it had never stopped.

    Returns:
        The outcome; a diverging loss gives status ``"diverged"`` with the reason, never an exception.

    Raises:
        ValueError: both ``init_weights`` and ``resume_from``, weights that do not fit, a checkpoint
            of another candidate or dataset, or a device that is not available.
    """
    if init_weights is not None and resume_from is not None:
        raise ValueError(
            "Pass init_weights or resume_from, not both: a resumed trial already has its weights."
        )
    if torch.device(config.device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} was requested, but CUDA is not available on this worker.")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        trial = _Trial(config, data, init_weights)
        start = trial.restore(resume_from) if resume_from is not None else 0
        return trial.run(start, report)
    finally:
        torch.set_num_threads(previous_threads)


class _Trial:
    """The state of one running trial: model, optimizer, schedule, data on the device, RNGs."""

    def __init__(
        self, config: TrialConfig, data: DataBundle | StreamedData, init_weights: Mapping[str, Any] | None
    ) -> None:
        self.config, self.data, self.device = config, data, torch.device(config.device)
        hp = config.hparams
        self.cuda = self.device.type == "cuda"
        self.amp = resolve_precision(config.precision, self.device)
        self.model = build_model(config, data.task, init_weights=init_weights).to(self.device)
        if self.cuda and data.task.is_image:
            self.model = self.model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its kernels
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        self.num_params = sum(p.numel() for p in self.model.parameters())
        self.latency_ms: float | None = None  # measured at the attempt's first epoch
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.regression = data.task.kind == "regression"
        self.streamed = isinstance(data, StreamedData)
        if isinstance(data, StreamedData):
            self.num_train = len(data.splits["train"])
            self.num_batches = data.num_batches("train", hp.batch_size)
        else:
            self.x_train = torch.tensor(data.x_train, device=self.device)
            self.y_train = torch.tensor(data.y_train, device=self.device)
            if self.regression:  # the network fits the standardised target
                mean, std = data.target_scale
                self.y_train = (self.y_train - mean) / std
            self.num_train = len(self.y_train)
            # Batches of near-equal size, so there is never a last batch of 1 (which BatchNorm rejects).
            self.num_batches = math.ceil(self.num_train / hp.batch_size)
        self.optimizer = build_optimizer(self.model.parameters(), hp)
        self.scheduler = build_scheduler(
            self.optimizer,
            hp,
            steps_per_epoch=self.num_batches,
            max_epochs=config.max_epochs,
            warmup_epochs=config.lr_warmup_epochs,
        )
        self.criterion: nn.Module = (
            nn.MSELoss() if self.regression else nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
        )

    def run(self, start_epoch: int, report: ReportFn) -> TrialOutcome:
        history: list[dict[str, float]] = []
        cand = self.config.candidate
        logger.info(
            "Trial %s: epochs %d..%d on %s", cand.hash, start_epoch + 1, self.config.max_epochs, self.device
        )
        for epoch in range(start_epoch + 1, self.config.max_epochs + 1):
            try:
                metrics = self.epoch(epoch)
            except _Diverged as e:
                logger.warning("Trial %s diverged: %s", cand.hash, e)
                return TrialOutcome("diverged", epoch - 1, str(e), tuple(history))
            history.append(metrics)
            if report(dict(metrics), self.checkpoint(metrics)):
                reason = f"stopped by the caller after epoch {epoch}"
                return TrialOutcome("stopped", epoch, reason, tuple(history))
        return TrialOutcome("completed", max(self.config.max_epochs, start_epoch), None, tuple(history))

    def epoch(self, epoch: int) -> dict[str, float]:
        began = time.perf_counter()
        train_loss, train_accuracy, lr = self.train_epoch(epoch)
        train_seconds = time.perf_counter() - began  # the loss read at the epoch's end synchronised
        val = score(
            self.model,
            self.data,
            "val",
            device=self.config.device,
            num_workers=max(0, self.config.num_threads - 1),
        )
        if self.latency_ms is None:
            data = self.data
            example = data.dataset("val")[0][0] if isinstance(data, StreamedData) else data.x_val[0]
            self.latency_ms = measure_latency(self.model, example, device=self.config.device)
        if not math.isfinite(val["val_loss"]):
            raise _Diverged(f"validation loss became {val['val_loss']} at epoch {epoch}")
        return {
            "epoch": epoch,
            "train_loss": train_loss,
            **({} if train_accuracy is None else {"train_accuracy": train_accuracy}),
            **val,
            "lr": lr,
            "epoch_seconds": time.perf_counter() - began,
            "train_examples_per_s": self.num_train / train_seconds,
            "num_params": self.num_params,
            "latency_ms": self.latency_ms,
        }

    def train_epoch(self, epoch: int) -> tuple[float, float | None, float]:
        """One pass over the shuffled training split; returns (mean loss, accuracy or ``None`` for
        regression, last LR)."""
        self.model.train()
        losses: list[torch.Tensor] = []  # per step, on the device: read once, at the epoch's end
        correct, lr, n = torch.zeros((), dtype=torch.long, device=self.device), 0.0, 0
        for x, y in self.batches(epoch):
            with torch.autocast(
                self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None
            ):
                logits = self.model(x)
                if logits.shape != (len(y), self.data.task.num_outputs):
                    raise ValueError(
                        f"space {self.config.space.name!r} built a network whose output has shape "
                        f"{tuple(logits.shape)}, but (batch, {self.data.task.num_outputs}) is needed "
                        f"({'one output for regression' if self.regression else 'one logit per class'})."
                    )
                loss = self.criterion(logits[:, 0].float() if self.regression else logits.float(), y)
            if not self.cuda and not math.isfinite(value := loss.item()):  # on a GPU: at the epoch's end
                raise _Diverged(f"training loss became {value} at epoch {epoch}, step {len(losses) + 1}")
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            losses.append(loss.detach() * len(y))
            n += len(y)
            if not self.regression:
                correct += (logits.argmax(dim=1) == y).sum()
        per_step = torch.stack(losses).tolist()
        for step, value in enumerate(per_step, start=1):
            if not math.isfinite(value):
                raise _Diverged(f"training loss became {value} at epoch {epoch}, step {step}")
        return sum(per_step) / n, None if self.regression else correct.item() / n, lr

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The training split's batches of ``epoch`` on the device, shuffled: tensors held in memory
        (the shuffle's state travels with the checkpoint), or a ``DataLoader`` over files seeded by the
        trial's seed and the epoch."""
        if not isinstance(self.data, StreamedData):
            order = torch.randperm(self.num_train, generator=self.shuffle).to(self.device)
            for idx in torch.tensor_split(order, self.num_batches):
                yield self.on_device(self.x_train[idx]), self.y_train[idx]
            return
        loader = self.data.loader(
            "train", batch_size=self.config.hparams.batch_size, seed=self.config.seed, epoch=epoch,
            num_workers=max(0, self.config.num_threads - 1), pin_memory=self.cuda,
        )  # fmt: skip
        for x, y in loader:
            yield self.on_device(x), y.to(self.device, non_blocking=True)

    def on_device(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of inputs on the device; images channels-last on a GPU (what its convolutions read
        fastest once the model is channels-last too)."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.cuda and x.ndim == 4 else x

    def checkpoint(self, metrics: dict[str, float]) -> str:
        """Write a checkpoint of the state after ``metrics['epoch']`` into a new temporary directory."""
        epoch = int(metrics["epoch"])
        cand = self.config.candidate
        if self.config.scratch_dir is not None:
            os.makedirs(self.config.scratch_dir, exist_ok=True)
        directory = tempfile.mkdtemp(
            prefix=f"foreseer-{cand.hash}-epoch{epoch:04d}-", dir=self.config.scratch_dir
        )
        state = {
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.rng_state(),
        }
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        info = {
            "epoch": epoch,
            "metrics": metrics,
            "candidate": cand.to_dict(),
            "data_fingerprint": self.data.fingerprint,
            "seed": self.config.seed,
            "max_epochs": self.config.max_epochs,
        }
        write_checkpoint(directory, self.model, state, info)
        return directory

    def restore(self, directory: str) -> int:
        """Load a checkpoint of this candidate and data; returns the epoch it was taken after."""
        info = read_trial_info(directory)
        if info["candidate"] != self.config.candidate.to_dict():
            raise ValueError(
                f"Checkpoint {directory!r} was written for candidate {info['candidate']}, "
                f"not for {self.config.candidate.to_dict()}."
            )
        if info["data_fingerprint"] != self.data.fingerprint:
            raise ValueError(
                f"Checkpoint {directory!r} was written for data {info['data_fingerprint']}, "
                f"but the trial got data {self.data.fingerprint} ({self.data.name})."
            )
        load_weights(self.model, f"{directory}/{WEIGHTS_FILE}")
        state = read_training_state(directory)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        self.set_rng_state(state["rng"])
        logger.info(
            "Trial %s resumed after epoch %d from %s", self.config.candidate.hash, state["epoch"], directory
        )
        return int(state["epoch"])

    def rng_state(self) -> dict[str, torch.Tensor]:
        state = {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def set_rng_state(self, state: Mapping[str, torch.Tensor]) -> None:
        torch.set_rng_state(state["torch"])
        self.shuffle.set_state(state["shuffle"])
        if self.device.type == "cuda" and "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], self.device)
