"""Hypernetwork checkpoints (config + ``state_dict`` in safetensors) and their fingerprints.

A meta-trained hypernetwork is valid for one (space, dataset) pair: the cache key is the space
fingerprint (the space's name and class, and the graphs of a few fixed candidates, so that a
changed space gets a new key) with the dataset's own fingerprint. The MLflow side of the cache is
in :mod:`foreseer.tracking` (the only module that imports mlflow).

Example:
    >>> save_ghn("ghn.safetensors", ghn, {"space_fingerprint": "..."})
    >>> ghn, metadata = load_ghn("ghn.safetensors")
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from foreseer.predictors.ghn.model import GHNConfig, GraphHyperNetwork

if TYPE_CHECKING:
    from foreseer_spaces import SearchSpace, Task

__all__ = ["CHECKPOINT_FILE", "FORMAT", "cache_key", "load_ghn", "save_ghn", "space_fingerprint"]

CHECKPOINT_FILE = "ghn.safetensors"
FORMAT = "foreseer-ghn-v1"
_FINGERPRINT_CANDIDATES = 3


def space_fingerprint(space: SearchSpace, task: Task) -> str:
    """A stable 16-hex-digit digest of ``space`` as it builds networks for ``task``.

    Covers the space's name and class and the traced graphs of a few candidates sampled with a
    fixed seed, so editing what the space builds changes the fingerprint.
    """
    from foreseer.predictors.ghn.meta_train import sample_candidates

    graphs = [
        space.graph(c, task).to_dict()
        for c in sample_candidates(space, task, _FINGERPRINT_CANDIDATES, seed=0)
    ]
    for graph in graphs:
        for node in graph["nodes"]:
            node.pop("name", None)  # fx's node names are not part of the architecture
    payload = {"format": FORMAT, "space": space.name,
               "class": f"{type(space).__module__}.{type(space).__qualname__}",
               "task": [list(task.input_shape), task.num_classes], "graphs": graphs}  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def cache_key(space: SearchSpace, task: Task, data_fingerprint: str, config: GHNConfig) -> dict[str, str]:
    """The MLflow tags a meta-trained hypernetwork is cached under: the checkpoint format, the
    hypernetwork's sizes (new defaults meta-train afresh), the space and the dataset."""
    sizes = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    return {"foreseer.ghn_format": FORMAT, "foreseer.ghn_config": sizes,
            "foreseer.space_fingerprint": space_fingerprint(space, task),
            "foreseer.data_fingerprint": data_fingerprint}  # fmt: skip


def save_ghn(
    path: str | os.PathLike[str], ghn: GraphHyperNetwork, metadata: Mapping[str, Any] | None = None
) -> None:
    """Write ``ghn``'s config and ``state_dict`` to a safetensors file.

    Args:
        path: the file.
        ghn: the hypernetwork.
        metadata: JSON-serialisable facts stored in the header (fingerprints, meta-training summary).
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in ghn.state_dict().items()}
    header = {"format": "pt", "foreseer.format": FORMAT, "foreseer.config": json.dumps(ghn.config.to_dict())}
    header.update({f"foreseer.{k}": json.dumps(v) for k, v in (metadata or {}).items()})
    save_file(tensors, os.fspath(path), metadata=header)


def load_ghn(path: str | os.PathLike[str], device: str = "cpu") -> tuple[GraphHyperNetwork, dict[str, Any]]:
    """Read a file written by :func:`save_ghn`; returns the hypernetwork (eval mode) and its metadata.

    Raises:
        ValueError: the file is missing or is not a Foreseer hypernetwork checkpoint.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise ValueError(f"GHN checkpoint {os.fspath(path)!r} does not exist.")
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            header = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error type for a file that is not safetensors
        raise ValueError(
            f"{os.fspath(path)!r} is not a safetensors file ({e}); give a GHN checkpoint."
        ) from e
    if header.get("foreseer.format") != FORMAT:
        raise ValueError(
            f"{os.fspath(path)!r} is not a {FORMAT} checkpoint "
            f"(its format is {header.get('foreseer.format')!r}); "
            "write it with foreseer.predictors.ghn.cache.save_ghn."
        )
    ghn = GraphHyperNetwork(GHNConfig.from_dict(json.loads(header["foreseer.config"])))
    ghn.load_state_dict(load_file(os.fspath(path), device=device))
    metadata = {k.removeprefix("foreseer."): json.loads(v) for k, v in header.items()
                if k.startswith("foreseer.") and k not in ("foreseer.format", "foreseer.config")}  # fmt: skip
    return ghn.to(device).eval(), metadata
