"""Image data read from disk as trials train, for sets larger than memory: a folder of class
sub-folders of PNG/JPEG files, or a folder of ``.npz`` / ``.npy`` shards.

:func:`load_streamed` indexes the files once per job (every image header is checked; unreadable
files are skipped and counted), splits the examples (seeded, stratified by class), and computes the
per-channel mean and standard deviation on the training split. The resulting :class:`StreamedData`
is small (paths, indices and statistics, no pixels), so it travels to every worker; each trial reads
its batches with a PyTorch ``DataLoader`` (:meth:`StreamedData.loader`), with the standard
augmentation of the NAS literature when the job asks for it: a random crop of the image padded by a
few pixels, and a horizontal flip (as in NAS-Bench-201's CIFAR training, Dong & Yang 2020).

Shards: every ``*.npz`` file of the folder holds arrays ``x`` (``(n, C, H, W)``, ``uint8`` pixels or
floats) and ``y`` (``(n,)`` labels), or every pair ``NAME_x.npy`` / ``NAME_y.npy`` does; ``.npy``
shards are memory-mapped, an ``.npz`` shard is read whole when a batch first needs it (one shard at
a time per loader worker).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from foreseer_spaces import Task

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_EXTENSIONS", "Augment", "StreamedData", "load_streamed"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
#: Training examples the per-channel statistics are computed on (a seeded sample beyond it).
STATS_SAMPLE = 20_000
_FINGERPRINT_VERSION = b"foreseer-streamed-v1"


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation: pad by ``crop_padding`` pixels (zeros, after normalisation) and
    crop back to the image size at a random offset; flip horizontally with probability 0.5 when
    ``flip``. Validation and test batches are never augmented."""

    crop_padding: int = 0
    flip: bool = False

    @property
    def enabled(self) -> bool:
        return self.crop_padding > 0 or self.flip


@dataclass(frozen=True)
class _Images:
    """Example ``i`` is the image file ``root / files[i]``."""

    root: str
    files: tuple[str, ...]
    image_size: tuple[int, int] | None
    channels: int

    def read(self, i: int) -> np.ndarray:
        from PIL import Image

        with Image.open(Path(self.root) / self.files[i]) as image:
            image = image.convert("RGB" if self.channels == 3 else "L")
            if self.image_size is not None and image.size != self.image_size[::-1]:
                image = image.resize(self.image_size[::-1], Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)  # (C, H, W)


@dataclass(frozen=True)
class _Shards:
    """Example ``i`` is row ``i - starts[k]`` of shard ``k`` (the last shard whose start is <= i)."""

    root: str
    shards: tuple[tuple[str, str | None], ...]  # (x file, y file or None for an .npz)
    starts: tuple[int, ...]
    _cache: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)

    def read(self, i: int) -> np.ndarray:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return np.asarray(self._x(k)[i - self.starts[k]])

    def _x(self, k: int) -> Any:
        if k not in self._cache:
            self._cache.clear()  # one shard at a time
            x_file, y_file = self.shards[k]
            path = Path(self.root) / x_file
            if y_file is None:
                with np.load(path, allow_pickle=False) as archive:
                    self._cache[k] = archive["x"]
            else:
                self._cache[k] = np.load(path, mmap_mode="r", allow_pickle=False)
        return self._cache[k]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@dataclass(frozen=True, eq=False, repr=False)
class StreamedData:
    """An image classification set on disk, split and with its per-channel statistics.

    Attributes:
        name: the folder's name.
        task: input shape ``(C, H, W)`` and number of classes.
        fingerprint: a digest of the files (relative paths and sizes), labels and split settings.
        classes: the class of each label index (the sub-folder names, or the shards' labels).
        labels: every example's label.
        splits: ``{"train", "val", "test"}`` -> example indices.
        mean, std: per-channel statistics of the training split, in ``[0, 1]`` pixel units for
            ``uint8`` images.
        augment: what training batches get.
        skipped: files left out because they could not be read.
    """

    name: str
    task: Task
    fingerprint: str
    classes: tuple[str, ...]
    labels: np.ndarray
    splits: dict[str, np.ndarray]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment
    source: _Images | _Shards
    skipped: int = 0

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return (
            f"StreamedData(name={self.name!r}, task={self.task}, {sizes}, fingerprint={self.fingerprint!r})"
        )

    def summary(self) -> dict[str, Any]:
        """A small, JSON-friendly description (for logs and tracking params)."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "task": self.task.kind,
            "input_shape": list(self.task.input_shape),
            "num_classes": self.task.num_classes,
            **{f"num_{split}": len(idx) for split, idx in self.splits.items()},
            "streamed": True,
            "skipped_files": self.skipped,
        }

    def dataset(self, split: str, *, augment: bool = False) -> Any:
        """A map-style ``torch.utils.data.Dataset`` of ``(image, label)`` of ``split``: float32
        ``(C, H, W)`` tensors normalised with the training statistics."""
        return _SplitDataset(self, self.splits[split], augment and self.augment.enabled)

    def loader(
        self,
        split: str,
        *,
        batch_size: int,
        seed: int = 0,
        epoch: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> Any:
        """The batches of ``split``. The training split is shuffled (seeded by ``seed`` and
        ``epoch``, so an epoch after a resume sees the batches it would have seen), augmented and
        drops a last batch of one (which batch norm rejects); the others are read in order."""
        import torch
        from torch.utils.data import DataLoader

        train = split == "train"
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        indices = self.splits[split]
        return DataLoader(
            self.dataset(split, augment=train),
            batch_size=batch_size,
            sampler=_Order(len(indices), self.source, indices, generator) if train else None,
            drop_last=train and len(indices) % batch_size == 1,
            num_workers=num_workers,
            pin_memory=pin_memory,
            generator=generator,
            persistent_workers=False,
        )

    def num_batches(self, split: str, batch_size: int) -> int:
        n = len(self.splits[split])
        full, rest = divmod(n, batch_size)
        return full + (1 if rest > 1 or (rest == 1 and split != "train") else 0)


class _Order:
    """A training epoch's order: random, but shard by shard for ``.npz`` shards (their shards in a
    random order, the rows of each shuffled), so that a loader reads each shard once an epoch."""

    def __init__(self, n: int, source: _Images | _Shards, indices: np.ndarray, generator: Any) -> None:
        self.n, self.source, self.indices, self.generator = n, source, indices, generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        import torch

        if not isinstance(self.source, _Shards) or self.source.shards[0][1] is not None:
            yield from torch.randperm(self.n, generator=self.generator).tolist()
            return
        shard_of = np.searchsorted(self.source.starts, self.indices, side="right") - 1
        for k in torch.randperm(len(self.source.shards), generator=self.generator).tolist():
            rows = np.flatnonzero(shard_of == k)
            yield from rows[torch.randperm(len(rows), generator=self.generator).numpy()].tolist()


class _SplitDataset:
    def __init__(self, data: StreamedData, indices: np.ndarray, augment: bool) -> None:
        self.data, self.indices, self.augment = data, indices, augment
        shape = (-1, 1, 1)
        self.mean = np.asarray(data.mean, dtype=np.float32).reshape(shape)
        self.std = np.asarray(data.std, dtype=np.float32).reshape(shape)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[Any, int]:
        import torch

        i = int(self.indices[position])
        x = torch.from_numpy((_as_float(self.data.source.read(i)) - self.mean) / self.std)
        if self.augment:
            x = _augmented(x, self.data.augment)
        return x, int(self.data.labels[i])


def _augmented(x: Any, augment: Augment) -> Any:
    import torch
    import torch.nn.functional as F

    if augment.crop_padding > 0:
        p = augment.crop_padding
        _, h, w = x.shape
        padded = F.pad(x, (p, p, p, p))
        top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
        x = padded[:, top : top + h, left : left + w]
    if augment.flip and bool(torch.rand(()) < 0.5):
        x = x.flip(-1)
    return x.contiguous()


def _as_float(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32)


def load_streamed(
    *,
    images: str | os.PathLike[str] | None = None,
    shards: str | os.PathLike[str] | None = None,
    image_size: Sequence[int] | None = None,
    channels: int = 3,
    augment: Augment = Augment(),
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> StreamedData:
    """Index an image folder (``images``) or a shard folder (``shards``), split it and compute its
    training statistics.

    Args:
        images: a folder of class sub-folders of ``.png`` / ``.jpg`` / ``.jpeg`` files.
        shards: a folder of ``.npz`` shards or ``NAME_x.npy`` / ``NAME_y.npy`` pairs.
        image_size: ``(height, width)`` every image is resized to; needed when the images of a
            folder differ in size.
        channels: 3 (RGB) or 1 (grey) for image files.
        augment: the training split's augmentation.
        val_fraction, test_fraction, seed: the split, as for :func:`foreseer_workers.load_dataset`.

    Raises:
        ValueError: a missing or empty folder, a class without a readable image, images of several
            sizes without ``image_size``, shards that disagree, or a bad split.
    """
    from foreseer_workers.data import _check_fractions, _stratified_split

    _check_fractions(val_fraction, test_fraction)
    if (images is None) == (shards is None):
        raise ValueError(
            "give exactly one of images (a folder of class folders) or shards (a folder of shards)"
        )
    size = None if image_size is None else _image_size(image_size)
    if images is not None:
        source, labels, classes, skipped, digest = _index_images(Path(images), size, channels)
        name = Path(images).name
    else:
        source, labels, classes, digest = _index_shards(Path(shards))  # type: ignore[arg-type]
        skipped, name = 0, Path(shards).name  # type: ignore[arg-type]
    train, val, test = _stratified_split(labels, classes, val_fraction, test_fraction, int(seed))
    sample = source.read(0)
    mean, std = _channel_stats(source, train, int(seed))
    settings = {
        "classes": list(classes),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "seed": int(seed),
        "image_size": list(size) if size else None,
        "channels": channels,
    }
    fingerprint = hashlib.sha256(_FINGERPRINT_VERSION)
    fingerprint.update(json.dumps(settings, sort_keys=True).encode())
    fingerprint.update(digest)
    fingerprint.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    data = StreamedData(
        name=name,
        task=Task(tuple(sample.shape), len(classes)),
        fingerprint=fingerprint.hexdigest()[:16],
        classes=classes,
        labels=labels,
        splits={"train": train, "val": val, "test": test},
        mean=mean,
        std=std,
        augment=augment,
        source=source,
        skipped=skipped,
    )
    logger.info("Indexed %s", data.summary())
    return data


def _image_size(image_size: Sequence[int]) -> tuple[int, int]:
    size = tuple(image_size)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ValueError(f"image_size must be [height, width] in pixels, but got {list(size)!r}.")
    return size  # type: ignore[return-value]


def _index_images(
    root: Path, size: tuple[int, int] | None, channels: int
) -> tuple[_Images, np.ndarray, tuple[str, ...], int, bytes]:
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"channels must be 3 (RGB) or 1 (grey), but got {channels!r}.")
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist (or is not a folder).")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise ValueError(
            f"image folder {str(root)!r} must hold one sub-folder of images per class, at least 2, "
            f"but holds {len(class_dirs)}."
        )
    files: list[str] = []
    labels: list[int] = []
    sizes: dict[tuple[int, int], str] = {}
    skipped: dict[str, int] = {}
    digest = hashlib.sha256()
    for label, folder in enumerate(class_dirs):
        found = 0
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
            try:
                with Image.open(path) as image:
                    image.verify()
                    width, height = image.size
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                skipped[folder.name] = skipped.get(folder.name, 0) + 1
                continue
            relative = str(path.relative_to(root))
            sizes.setdefault((height, width), relative)
            files.append(relative)
            labels.append(label)
            digest.update(f"{relative}\0{path.stat().st_size}\n".encode())
            found += 1
        if not found:
            bad = skipped.get(folder.name, 0)
            raise ValueError(
                f"class folder {str(folder)!r} holds no readable image"
                + (f" ({bad} file(s) could not be read)" if bad else f" ({'/'.join(IMAGE_EXTENSIONS)})")
                + "."
            )
    if skipped:
        logger.warning(
            "Skipped %d unreadable file(s) of %s: %s",
            sum(skipped.values()), root, ", ".join(f"{k}: {v}" for k, v in skipped.items()),
        )  # fmt: skip
    if size is None and len(sizes) > 1:
        (a, a_file), (b, b_file) = list(sizes.items())[:2]
        raise ValueError(
            f"the images of {str(root)!r} differ in size ({a[0]}x{a[1]} {a_file!r}, "
            f"{b[0]}x{b[1]} {b_file!r}, {len(sizes)} sizes in all); give image_size: [height, width] "
            "to resize them all."
        )
    source = _Images(str(root.resolve()), tuple(files), size, channels)
    classes = tuple(d.name for d in class_dirs)
    return source, np.asarray(labels, dtype=np.int64), classes, sum(skipped.values()), digest.digest()


def _index_shards(root: Path) -> tuple[_Shards, np.ndarray, tuple[str, ...], bytes]:
    if not root.is_dir():
        raise ValueError(f"shard folder {str(root)!r} does not exist (or is not a folder).")
    npz = sorted(root.glob("*.npz"))
    pairs = sorted(root.glob("*_x.npy"))
    if not npz and not pairs:
        raise ValueError(
            f"shard folder {str(root)!r} holds no .npz shards and no NAME_x.npy / NAME_y.npy pairs."
        )
    shards: list[tuple[str, str | None]] = []
    ys: list[np.ndarray] = []
    shapes: set[tuple[int, ...]] = set()
    digest = hashlib.sha256()
    for path in npz:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive.files or "y" not in archive.files:
                raise ValueError(
                    f"shard {str(path)!r} must hold arrays 'x' and 'y', but holds {sorted(archive.files)}."
                )
            x_shape = _npz_shape(archive, "x")
            y = np.asarray(archive["y"])
        shards.append((path.name, None))
        ys.append(_shard_labels(path, y, x_shape))
        shapes.add(x_shape[1:])
        digest.update(f"{path.name}\0{path.stat().st_size}\n".encode())
    for path in pairs:
        y_path = path.with_name(path.name.removesuffix("_x.npy") + "_y.npy")
        if not y_path.is_file():
            raise ValueError(f"shard {str(path)!r} has no labels {y_path.name!r} next to it.")
        x = np.load(path, mmap_mode="r", allow_pickle=False)
        ys.append(_shard_labels(path, np.load(y_path, allow_pickle=False), x.shape))
        shards.append((path.name, y_path.name))
        shapes.add(tuple(x.shape[1:]))
        digest.update(f"{path.name}\0{path.stat().st_size}\0{y_path.stat().st_size}\n".encode())
    if len(shapes) > 1:
        raise ValueError(f"the shards of {str(root)!r} hold images of different shapes: {sorted(shapes)}.")
    (shape,) = shapes
    if len(shape) != 3:
        raise ValueError(
            f"shards must hold images x of shape (n, channels, height, width), but x has {(None, *shape)}."
        )
    y = np.concatenate(ys)
    if y.dtype.kind not in "iu":
        raise ValueError(f"shard labels y must be integers, but are {y.dtype}.")
    values, codes = np.unique(y, return_inverse=True)
    if len(values) < 2:
        raise ValueError(
            f"the shards of {str(root)!r} hold {len(values)} class(es); a classification needs 2."
        )
    starts = tuple(int(s) for s in np.cumsum([0, *(len(v) for v in ys[:-1])]))
    source = _Shards(str(root.resolve()), tuple(shards), starts)
    return source, codes.astype(np.int64), tuple(str(v) for v in values), digest.digest()


def _npz_shape(archive: Any, key: str) -> tuple[int, ...]:
    """The shape of an array in an open ``.npz`` without reading its data."""
    from numpy.lib import format as npformat

    with archive.zip.open(f"{key}.npy") as f:
        version = npformat.read_magic(f)
        read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, _, _ = read_header(f)
    return tuple(shape)


def _shard_labels(path: Path, y: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    if y.ndim != 1 or len(y) != x_shape[0]:
        raise ValueError(
            f"shard {str(path)!r}: y must hold one label per image of x {x_shape}, but has shape {y.shape}."
        )
    return y


def _channel_stats(
    source: _Images | _Shards, train: np.ndarray, seed: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation over (a seeded sample of) the training examples,
    read in index order so that shards are read once."""
    rng = np.random.default_rng(seed)
    picked = np.sort(train if len(train) <= STATS_SAMPLE else rng.choice(train, STATS_SAMPLE, replace=False))
    total = total_sq = None
    count = 0
    for i in picked:
        x = _as_float(source.read(int(i))).astype(np.float64)
        flat = x.reshape(x.shape[0], -1)
        total = flat.sum(1) if total is None else total + flat.sum(1)
        total_sq = (flat**2).sum(1) if total_sq is None else total_sq + (flat**2).sum(1)
        count += flat.shape[1]
    mean = total / count  # type: ignore[operator]
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))  # type: ignore[operator]
    std = np.where(std < 1e-8, 1.0, std)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
