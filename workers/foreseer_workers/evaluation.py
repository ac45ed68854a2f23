"""Scoring a network on labelled data: the one definition of validation loss and accuracy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH_SIZE = 512


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
    was_training = model.training
    model.to(dev).eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size]).float()  # (B, num_classes)
        labels = y[start : start + batch_size]
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
        correct += (logits.argmax(dim=1) == labels).sum()
    model.train(was_training)
    return loss_sum.item() / len(x), correct.item() / len(x)


def _to_tensor(value: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    return torch.tensor(value, dtype=dtype, device=device)  # a copy: data arrays are read-only
