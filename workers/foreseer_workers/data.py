"""Datasets for trials: load, validate, split (seeded; stratified for classification) and
standardise into a ``DataBundle``."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from foreseer_spaces import Task
from foreseer_workers.sources import BUILTINS, DataSource, read_source

logger = logging.getLogger(__name__)

_FINGERPRINT_VERSION = b"foreseer-data-v1"


def available_datasets() -> tuple[str, ...]:
    """Names of the built-in datasets (real data shipped with scikit-learn, no download)."""
    return BUILTINS


@dataclass(frozen=True, eq=False, repr=False)
class DataBundle:
    """A dataset split into train / validation / test, standardised and ready for a trial.

    Arrays are read-only views: ``x_*`` are float32 of shape ``(n, *task.input_shape)``; ``y_*`` are
    int64 labels in ``0 .. task.num_classes - 1`` for classification, float32 targets in their own
    units for regression.

    Attributes:
        name: the dataset's name (built-in name, file stem, or ``"arrays"``).
        task: input shape and number of classes (or regression), what a search space builds networks for.
        fingerprint: a stable hex digest of the content and the split settings; equal data split the
            same way gives the same fingerprint on any machine.
        classes: the original label of each class index, as strings (none for regression).
    """

    name: str
    task: Task
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    fingerprint: str
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.float32:
                raise TypeError(
                    f"DataBundle.x_{split} must be a float32 numpy array, but got {_describe(x)}."
                )
            dtype = np.float32 if self.task.kind == "regression" else np.int64
            if not isinstance(y, np.ndarray) or y.dtype != dtype or y.ndim != 1:
                raise TypeError(
                    f"DataBundle.y_{split} must be a 1-D {np.dtype(dtype)} numpy array for "
                    f"{self.task.kind}, but got {_describe(y)}."
                )
            if x.shape[1:] != self.task.input_shape or len(x) != len(y):
                raise ValueError(
                    f"DataBundle.x_{split} must have shape (len(y_{split})={len(y)}, "
                    f"*{self.task.input_shape}), but got {x.shape}."
                )
            if (
                self.task.kind == "classification"
                and len(y)
                and (y.min() < 0 or y.max() >= self.task.num_classes)
            ):
                raise ValueError(
                    f"DataBundle.y_{split} labels must lie in 0..{self.task.num_classes - 1}, "
                    f"but got values from {y.min()} to {y.max()}."
                )
            object.__setattr__(self, f"x_{split}", _read_only(x))
            object.__setattr__(self, f"y_{split}", _read_only(y))

    def __repr__(self) -> str:
        return (
            f"DataBundle(name={self.name!r}, task={self.task}, train={len(self.y_train)}, "
            f"val={len(self.y_val)}, test={len(self.y_test)}, fingerprint={self.fingerprint!r})"
        )

    @property
    def target_scale(self) -> tuple[float, float]:
        """Mean and standard deviation of the training split's regression target: a network fits
        the standardised target, and its predictions are mapped back with these."""
        if self.task.kind != "regression":
            raise ValueError(
                f"target_scale applies to regression data, but {self.name!r} is {self.task.kind}."
            )
        std = float(self.y_train.std(dtype=np.float64))
        return float(self.y_train.mean(dtype=np.float64)), std if std > 1e-12 else 1.0

    def summary(self) -> dict[str, Any]:
        """A small, JSON-friendly description (for logs and tracking params)."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "task": self.task.kind,
            "input_shape": list(self.task.input_shape),
            "num_classes": self.task.num_classes,
            "num_train": len(self.y_train),
            "num_val": len(self.y_val),
            "num_test": len(self.y_test),
        }


def load_dataset(
    source: DataSource,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    target: str | int | None = None,
    task: str | None = None,
) -> DataBundle:
    """Load a dataset, split it (seeded; stratified by class for classification) and standardise
    its features on the training split.

    Args:
        source: a built-in name (see :func:`available_datasets`); a path to a ``.npz`` file (arrays
            ``x`` or ``X``, and ``y``) or a ``.csv`` file (numeric features, one label column,
            optional header row); or a tuple ``(X, y)`` of arrays. ``X`` is 2-D ``(n, features)`` for
            tabular data or 4-D ``(n, channels, height, width)`` for images.
        val_fraction: share of every class (of all examples, for regression) that goes to the
            validation split.
        test_fraction: the same for the test split.
        seed: seed of the split; the same seed gives the same split.
        target: only for ``.csv``: the label column, by header name or index (default: last column).
        task: ``"classification"`` or ``"regression"`` (``y`` is a real-valued target); by default a
            built-in's own kind (``"diabetes"`` is regression), else classification.

    Returns:
        The splits, standardised with statistics of the training split only (per feature for
        tabular data, per channel for images; constant features are centred, not scaled), and
        classification labels remapped to ``0..K-1`` (regression targets are kept as they are).

    Raises:
        ValueError: unknown name, missing file, bad arrays, bad fractions or too small a class.
        TypeError: a source of an unsupported type, or non-numeric features.

    Example:
        >>> data = load_dataset("wine", seed=1)
        >>> data.task.num_classes, data.x_train.shape[1]
        (3, 13)
    """
    _check_fractions(val_fraction, test_fraction)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, but got {seed!r}.")
    name, x, y, classes, kind = read_source(source, target, task)
    if kind == "regression":
        train, val, test = _random_split(len(y), val_fraction, test_fraction, int(seed))
    else:
        train, val, test = _stratified_split(y, classes, val_fraction, test_fraction, int(seed))
    x_train, x_val, x_test = _standardise(x[train], x[val], x[test])
    fingerprint = _fingerprint(x, y, classes, val_fraction, test_fraction, int(seed), kind)
    bundle = DataBundle(
        name=name,
        task=Task(x.shape[1:], len(classes), kind),
        x_train=x_train,
        y_train=y[train],
        x_val=x_val,
        y_val=y[val],
        x_test=x_test,
        y_test=y[test],
        fingerprint=fingerprint,
        classes=classes,
    )
    logger.debug("Loaded dataset %s", bundle.summary())
    return bundle


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for what, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 1.0:
            raise ValueError(f"{what} must be a number strictly between 0 and 1, but got {value!r}.")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be below 1 to leave a training split, but got "
            f"{val_fraction} + {test_fraction} = {val_fraction + test_fraction}."
        )


def _stratified_split(
    y: np.ndarray, classes: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (train, val, test): every class is split in the same proportions, seeded."""
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], ...] = ([], [], [])
    for k, label in enumerate(classes):
        idx = rng.permutation(np.flatnonzero(y == k))
        n_val, n_test = _class_counts(len(idx), val_fraction, test_fraction)
        if len(idx) - n_val - n_test < 1:
            needed = next(
                n for n in range(3, 10**6) if n - sum(_class_counts(n, val_fraction, test_fraction)) >= 1
            )
            raise ValueError(
                f"Class {label!r} has only {len(idx)} example(s); a stratified train/validation/test split "
                f"with val_fraction={val_fraction} and test_fraction={test_fraction} needs at least "
                f"{needed} examples of every class."
            )
        parts[0].append(idx[n_val + n_test :])
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val : n_val + n_test])
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return train, val, test


def _random_split(
    n: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (train, val, test) of ``n`` examples of a regression task, seeded."""
    n_val, n_test = _class_counts(n, val_fraction, test_fraction)
    if n - n_val - n_test < 1:
        raise ValueError(
            f"{n} example(s) cannot be split into train/validation/test with val_fraction={val_fraction} "
            f"and test_fraction={test_fraction}: at least one example must be left to train on."
        )
    order = np.random.default_rng(seed).permutation(n)
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def _class_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Validation and test sizes of a class of n examples: rounded shares, at least one each."""
    return max(1, int(np.floor(n * val_fraction + 0.5))), max(1, int(np.floor(n * test_fraction + 0.5)))


def _standardise(x_train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scale with the training split's mean and std, per feature (tabular) or per channel (images)."""
    axes = (0,) if x_train.ndim == 2 else (0, 2, 3)
    mean = x_train.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x_train.std(axis=axes, keepdims=True, dtype=np.float64)
    std = np.where(std < 1e-8, 1.0, std)  # a constant feature is only centred: dividing would blow it up
    return tuple(((a - mean) / std).astype(np.float32) for a in (x_train, *others))


def _fingerprint(
    x: np.ndarray,
    y: np.ndarray,
    classes: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    kind: str = "classification",
) -> str:
    settings: dict[str, Any] = {
        "shape": list(x.shape),
        "classes": list(classes),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "seed": seed,
    }
    if kind != "classification":  # classification fingerprints stay what they were before regression
        settings["task"] = kind
    digest = hashlib.sha256(_FINGERPRINT_VERSION)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(x, dtype="<f4").tobytes())
    digest.update(np.ascontiguousarray(y, dtype="<f4" if kind == "regression" else "<i8").tobytes())
    return digest.hexdigest()[:16]


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return type(value).__name__
