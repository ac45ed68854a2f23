"""The shipped checkpoints, and a checkpoint's header (its model config and training metadata)
read without torch, so a job spec can check a checkpoint up front and cheaply.

A safetensors file starts with an 8-byte little-endian header length and a JSON header whose
``__metadata__`` holds string entries; a Foreseer PFN checkpoint keeps ``config`` and ``meta``
there (``checkpoint.save_checkpoint``).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

__all__ = ["SHIPPED", "read_header"]

_CHECKPOINTS = Path(__file__).parent / "checkpoints"
#: The checkpoints shipped in the package, by the model a stopping spec names (``model:``).
SHIPPED = {
    "per_curve": _CHECKPOINTS / "lcpfn_3x128.safetensors",
    "in_context": _CHECKPOINTS / "jobpfn_3x128.safetensors",
}

#: A header longer than this is not a PFN checkpoint's (its models have a few dozen tensors).
_MAX_HEADER = 10_000_000


def read_header(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``(config, meta)`` dicts in the header of the PFN checkpoint at ``path``.

    Raises:
        ValueError: when the file is not a safetensors file holding a Foreseer PFN checkpoint.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > _MAX_HEADER:
                raise ValueError
            header = json.loads(f.read(length))
        metadata = header.get("__metadata__") or {}
        config = json.loads(metadata["config"])
        meta = json.loads(metadata.get("meta", "{}"))
    except (OSError, ValueError, KeyError, struct.error, AttributeError) as e:
        raise ValueError(
            f"{path} is not a Foreseer PFN checkpoint (a .safetensors file written by foreseer pfn train)."
        ) from e
    return config, meta
