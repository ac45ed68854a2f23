"""Scoring a network on labelled data: the one definition of the validation metrics a trial
reports (loss and accuracy for classification; loss, MSE, RMSE, MAE and R² for regression), and
of its inference latency."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from collections.abc import Iterable

    from foreseer_workers.data import DataBundle
    from foreseer_workers.streaming import StreamedData

EVAL_BATCH_SIZE = 512


def score(
    model: nn.Module,
    data: DataBundle | StreamedData,
    split: str = "val",
    *,
    device: str = "cpu",
    num_workers: int = 0,
) -> dict[str, float]:
    """The metrics ``run_trial`` reports for its validation split, on ``split`` (``"val"`` or
    ``"test"``) of ``data``, named ``{split}_{metric}`` (see :mod:`foreseer_workers.metrics`);
    ``num_workers`` are the loader processes that read a streamed split.

    Example:
        >>> score(model, data, "test")
        {'test_loss': 0.08, 'test_accuracy': 0.97}
    """
    from foreseer_workers.streaming import StreamedData

    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', but got {split!r}.")
    if isinstance(data, StreamedData):
        loader = data.loader(
            split,
            batch_size=EVAL_BATCH_SIZE,
            num_workers=num_workers,
            pin_memory=torch.device(device).type == "cuda",
        )
        loss, accuracy = classification_metrics(model, loader, device=device)
        return {f"{split}_loss": loss, f"{split}_accuracy": accuracy}
    x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
    if data.task.kind == "regression":
        metrics = evaluate_regression(model, x, y, target_scale=data.target_scale, device=device)
    else:
        loss, accuracy = evaluate(model, x, y, device=device)
        metrics = {"loss": loss, "accuracy": accuracy}
    return {f"{split}_{name}": value for name, value in metrics.items()}


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Any, y: Any, *, batch_size: int = EVAL_BATCH_SIZE, device: str = "cpu"
) -> tuple[float, float]:
    """Mean cross-entropy (no label smoothing) and accuracy of ``model`` on ``(x, y)``, in eval mode.

    ``run_trial`` computes its ``val_loss`` and ``val_accuracy`` with this function and the default
    batch size, so reloading a checkpoint's weights and calling it on the same device reproduces
    them exactly.

    Args:
        model: the network; moved to ``device`` (in place) and put back in train or eval mode after.
        x: inputs, an array or tensor of shape ``(n, *input_shape)``.
        y: integer labels, shape ``(n,)``.
        batch_size: examples per forward pass.
        device: where to compute, a torch device string.

    Returns:
        ``(loss, accuracy)`` as Python floats.

    Example:
        >>> model = build_model(config, data.task)
        >>> load_weights(model, f"{checkpoint_dir}/model.safetensors")
        >>> loss, accuracy = evaluate(model, data.x_val, data.y_val)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer of at least 1, but got {batch_size!r}.")
    dev = torch.device(device)
    x, y = _to_tensor(x, torch.float32, dev), _to_tensor(y, torch.long, dev)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, but got {len(x)} and {len(y)}.")
    batches = ((x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size))
    return classification_metrics(model, batches, device=device)


@torch.no_grad()
def classification_metrics(
    model: nn.Module, batches: Iterable[Any], *, device: str = "cpu"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``(inputs, labels)`` batches (tensors, or a
    ``DataLoader``), moved to ``device``, in eval mode: what :func:`evaluate` computes."""
    dev = torch.device(device)
    was_training = model.training
    model.to(dev).eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    count = 0
    for inputs, labels in batches:
        inputs, labels = inputs.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)
        logits = model(inputs).float()  # (B, num_classes)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
        correct += (logits.argmax(dim=1) == labels).sum()
        count += len(labels)
    model.train(was_training)
    if count == 0:
        raise ValueError("there is no example to evaluate on")
    return loss_sum.item() / count, correct.item() / count


def _to_tensor(value: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    return torch.tensor(value, dtype=dtype, device=device)  # a copy: data arrays are read-only


@torch.no_grad()
def evaluate_regression(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    target_scale: tuple[float, float] = (0.0, 1.0),
    batch_size: int = EVAL_BATCH_SIZE,
    device: str = "cpu",
) -> dict[str, float]:
    """Regression metrics of ``model``, whose one output predicts the target standardised with
    ``target_scale`` (mean, std; see :attr:`DataBundle.target_scale`), on targets ``y`` in their own
    units: ``loss`` (mean squared error of the standardised target, what training minimises),
    ``mse``, ``rmse`` and ``mae`` (in the target's units) and ``r2``, in eval mode.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer of at least 1, but got {batch_size!r}.")
    dev = torch.device(device)
    x, y = _to_tensor(x, torch.float32, dev), _to_tensor(y, torch.float64, dev)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, but got {len(x)} and {len(y)}.")
    mean, std = target_scale
    was_training = model.training
    model.to(dev).eval()
    predicted = torch.cat(
        [model(x[start : start + batch_size]).double().reshape(-1) for start in range(0, len(x), batch_size)]
    )  # (n,) in standardised units
    model.train(was_training)
    error = predicted * std + mean - y
    mse = float((error**2).mean())
    total = float(((y - y.mean()) ** 2).sum())
    return {
        "loss": mse / std**2,
        "mse": mse,
        "rmse": mse**0.5,
        "mae": float(error.abs().mean()),
        "r2": 1.0 - float((error**2).sum()) / total if total > 0 else 0.0,
    }


#: Timed forward passes behind one latency figure (after as many untimed warm-up passes).
LATENCY_REPEATS = 20


@torch.no_grad()
def measure_latency(
    model: nn.Module, example: Any, *, device: str = "cpu", repeats: int = LATENCY_REPEATS
) -> float:
    """Milliseconds ``model`` takes to predict one example (a batch of 1) on ``device``, in eval
    mode: the median of ``repeats`` timed passes after as many warm-up passes. On a CPU shared with
    other trials it is noisy; compare candidates measured under the same load."""
    dev = torch.device(device)
    x = _to_tensor(example, torch.float32, dev)[None]
    was_training = model.training
    model.to(dev).eval()
    times = []
    for i in range(2 * repeats):
        began = time.perf_counter()
        model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i >= repeats:
            times.append(time.perf_counter() - began)
    model.train(was_training)
    return 1000.0 * statistics.median(times)
