"""Generated image classification data on disk, for tests and benchmarks that must not download.

Each class is a texture: stripes at one of several orientations and frequencies, each image with
a random phase, colour tint, brightness and pixel noise, so that a small convolutional network
needs a few epochs to tell the classes apart and a linear model cannot do it from mean colour.
Written as a folder of class sub-folders of PNG files (:func:`write_image_folder`) or as ``.npz``
shards (:func:`write_shards`) from the same generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["generate_images", "write_image_folder", "write_shards"]

#: (orientation in radians, frequency in cycles per image) of each class's stripes.
_TEXTURES = [(a, f) for f in (2.0, 4.0) for a in (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)]


def generate_images(
    n_per_class: int, *, classes: int = 4, size: int = 32, seed: int = 0, noise: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``uint8`` images ``(n, 3, size, size)`` and labels, ``n = classes * n_per_class``.

    Raises:
        ValueError: more classes than textures (8).
    """
    if not 2 <= classes <= len(_TEXTURES):
        raise ValueError(f"classes must be 2..{len(_TEXTURES)}, but got {classes}")
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij")) / size  # (2, H, W)
    images, labels = [], []
    for label in range(classes):
        angle, frequency = _TEXTURES[label]
        direction = np.array([np.cos(angle), np.sin(angle)])[:, None, None]
        for _ in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * frequency * (direction * grid).sum(0) + phase)  # (H, W)
            tint = rng.uniform(0.3, 1.0, size=(3, 1, 1))
            brightness = rng.uniform(0.3, 0.7)
            pixels = brightness + 0.25 * tint * wave + noise * rng.normal(size=(3, size, size))
            images.append(np.clip(pixels * 255, 0, 255).astype(np.uint8))
            labels.append(label)
    order = rng.permutation(len(labels))
    return np.stack(images)[order], np.asarray(labels, dtype=np.int64)[order]


def write_image_folder(
    root: str | Path, n_per_class: int, *, classes: int = 4, size: int = 32, seed: int = 0
) -> Path:
    """Write ``classes`` sub-folders ``class_0 ...`` of ``n_per_class`` PNG files each; returns ``root``."""
    from PIL import Image

    root = Path(root)
    x, y = generate_images(n_per_class, classes=classes, size=size, seed=seed)
    for i, (pixels, label) in enumerate(zip(x, y, strict=True)):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.transpose(1, 2, 0)).save(folder / f"{i:06d}.png")
    return root


def write_shards(
    root: str | Path, n_per_class: int, *, shards: int = 4, classes: int = 4, size: int = 32, seed: int = 0
) -> Path:
    """Write the same kind of images as ``shards`` ``.npz`` files (arrays ``x``, ``y``); returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    x, y = generate_images(n_per_class, classes=classes, size=size, seed=seed)
    for k, (xs, ys) in enumerate(zip(np.array_split(x, shards), np.array_split(y, shards), strict=True)):
        np.savez(root / f"shard-{k:04d}.npz", x=xs, y=ys)
    return root
