"""Weights in safetensors and trial checkpoints: a directory with weights, training state and metrics.

A checkpoint directory holds three files:

* ``model.safetensors``: the model's ``state_dict`` (parameters and buffers);
* ``state.pt``: optimizer and scheduler state, the epoch and the RNG states, only tensors and plain
  containers, so it loads with ``torch.load(..., weights_only=True)``;
* ``trial.json``: the epoch, its metrics, the candidate and the data fingerprint, for people and tools.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"
TRIAL_FILE = "trial.json"
FORMAT_VERSION = 1


def save_weights(
    model: nn.Module, path: str | os.PathLike[str], *, metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``model.state_dict()`` to ``path`` as safetensors.

    Args:
        model: the network.
        path: the file to write (conventionally ``*.safetensors``).
        metadata: optional string pairs stored in the file header.

    Example:
        >>> save_weights(torch.nn.Linear(2, 2), "/tmp/linear.safetensors")
    """
    # Cloned so that tied (shared) tensors become separate entries, which safetensors requires.
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in model.state_dict().items()}
    save_file(tensors, os.fspath(path), metadata={"format": "pt", **(metadata or {})})


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load weights written by :func:`save_weights` into ``model``, in place; every tensor must match.

    Raises:
        ValueError: the file is missing, or its tensors do not match the model's names and shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Weights file {str(path)!r} does not exist.")
    assign_weights(model, load_file(os.fspath(path)), strict=True, source=str(path))


def assign_weights(
    model: nn.Module, weights: Mapping[str, Any], *, strict: bool, source: str = "init_weights"
) -> list[str]:
    """Copy ``weights`` (name -> tensor or array) into the model's parameters and buffers, in place.

    Args:
        model: the network whose ``state_dict`` names the tensors.
        weights: tensors to copy, cast to the dtype and device of the model's tensors.
        strict: when True every tensor of the model must be given; when False the missing ones keep
            their current values and are logged (at INFO) by name.
        source: how to name ``weights`` in errors and logs.

    Returns:
        Names of the model's tensors that ``weights`` did not provide.

    Raises:
        ValueError: a name that is not in the model, a shape mismatch, or (strict) a missing name.
        TypeError: a value that is neither a tensor nor an array.
    """
    state = model.state_dict()
    unexpected = sorted(set(weights) - set(state))
    if unexpected:
        raise ValueError(f"{source} holds tensor(s) the model does not have: {_short(unexpected)}.")
    tensors = {}
    for name, value in weights.items():
        try:
            tensor = torch.as_tensor(value)
        except (TypeError, RuntimeError, ValueError) as e:
            raise TypeError(
                f"{source}[{name!r}] must be a tensor or array, but got {type(value).__name__}."
            ) from e
        if tensor.shape != state[name].shape:
            raise ValueError(
                f"{source}[{name!r}] has shape {tuple(tensor.shape)}, but the model's tensor {name!r} "
                f"has shape {tuple(state[name].shape)}."
            )
        tensors[name] = tensor
    missing = [name for name in state if name not in tensors]
    if missing and strict:
        raise ValueError(f"{source} lacks {len(missing)} tensor(s) of the model: {_short(missing)}.")
    if missing:
        logger.info(
            "%s lacks %d tensor(s); they keep their initial values: %s", source, len(missing), missing
        )
    with torch.no_grad():
        for name, tensor in tensors.items():
            state[name].copy_(tensor)  # state_dict tensors share storage with the model's own
    return missing


def write_checkpoint(
    directory: str | os.PathLike[str],
    model: nn.Module,
    state: Mapping[str, Any],
    info: Mapping[str, Any],
) -> None:
    """Write the three checkpoint files into ``directory`` (which must exist)."""
    directory = Path(directory)
    save_weights(model, directory / WEIGHTS_FILE, metadata={"epoch": str(info.get("epoch", ""))})
    torch.save({"format_version": FORMAT_VERSION, **state}, directory / STATE_FILE)
    with (directory / TRIAL_FILE).open("w") as f:
        json.dump({"format_version": FORMAT_VERSION, **info}, f, indent=2, sort_keys=True)


def read_trial_info(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``trial.json`` of a checkpoint directory: epoch, metrics, candidate, data fingerprint.

    Raises:
        ValueError: ``directory`` is not a checkpoint directory.
    """
    _check_directory(directory)
    with (Path(directory) / TRIAL_FILE).open() as f:
        return json.load(f)


def read_training_state(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``state.pt`` of a checkpoint directory, loaded on the CPU with ``weights_only=True``."""
    _check_directory(directory)
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)


def _check_directory(directory: str | os.PathLike[str]) -> None:
    path = Path(directory)
    missing = [name for name in (WEIGHTS_FILE, STATE_FILE, TRIAL_FILE) if not (path / name).is_file()]
    if missing:
        raise ValueError(
            f"{str(path)!r} is not a trial checkpoint directory: it lacks {missing} "
            f"(a checkpoint holds {[WEIGHTS_FILE, STATE_FILE, TRIAL_FILE]})."
        )


def _short(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
