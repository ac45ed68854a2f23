"""Checkpoints: the model's config and state_dict in one safetensors file; never a pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from foreseer.predictors.pfn.header import read_header
from foreseer.predictors.pfn.model import CurvePFN, PFNConfig

__all__ = ["load_checkpoint", "read_metadata", "save_checkpoint"]


def save_checkpoint(model: CurvePFN, path: Path, meta: dict[str, Any] | None = None) -> None:
    """Write ``model`` to ``path``; ``meta`` (JSON-serialisable) travels in the file's header."""
    header = {"config": json.dumps(model.config.to_dict()), "meta": json.dumps(meta or {})}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=header)
    tmp.replace(path)


def read_metadata(path: Path) -> tuple[PFNConfig, dict[str, Any]]:
    """The config and the training metadata stored in a checkpoint's header."""
    config, meta = read_header(path)
    return PFNConfig(**config), meta


def load_checkpoint(path: Path) -> tuple[CurvePFN, dict[str, Any]]:
    """Rebuild the model stored at ``path`` (in eval mode) and return it with its metadata."""
    config, meta = read_metadata(path)
    state = load_file(str(path))
    model = CurvePFN(config, state["bar.borders"])
    model.load_state_dict(state)
    model.eval()
    return model, meta
