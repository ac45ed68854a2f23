"""Datasets for trials: load, validate, split (seeded, stratified) and standardise into a ``DataBundle``."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from foreseer_spaces import Task

logger = logging.getLogger(__name__)

_BUILTINS = ("breast_cancer", "digits", "wine")
_EXTENSIONS = (".csv", ".npz")
_FINGERPRINT_VERSION = b"foreseer-data-v1"

DataSource = Union[str, "os.PathLike[str]", tuple[Any, Any]]


def available_datasets() -> tuple[str, ...]:
    """Names of the built-in datasets (real data shipped with scikit-learn, no download)."""
    return _BUILTINS


@dataclass(frozen=True, eq=False)
class DataBundle:
    """A dataset split into train / validation / test, standardised and ready for a trial.

    Arrays are read-only views: ``x_*`` are float32 of shape ``(n, *task.input_shape)``, ``y_*`` are
    int64 labels in ``0 .. task.num_classes - 1``.

    Attributes:
        name: the dataset's name (built-in name, file stem, or ``"arrays"``).
        task: input shape and number of classes, what a search space builds networks for.
        fingerprint: a stable hex digest of the content and the split settings; equal data split the
            same way gives the same fingerprint on any machine.
        classes: the original label of each class index, as strings.
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
                raise TypeError(f"DataBundle.x_{split} must be a float32 numpy array, but got {_describe(x)}.")
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
                raise TypeError(f"DataBundle.y_{split} must be a 1-D int64 numpy array, but got {_describe(y)}.")
            if x.shape[1:] != self.task.input_shape or len(x) != len(y):
                raise ValueError(
                    f"DataBundle.x_{split} must have shape (len(y_{split})={len(y)}, "
                    f"*{self.task.input_shape}), but got {x.shape}."
                )
            if len(y) and (y.min() < 0 or y.max() >= self.task.num_classes):
                raise ValueError(
                    f"DataBundle.y_{split} labels must lie in 0..{self.task.num_classes - 1}, "
                    f"but got values from {y.min()} to {y.max()}."
                )
            object.__setattr__(self, f"x_{split}", _read_only(x))
            object.__setattr__(self, f"y_{split}", _read_only(y))

    def summary(self) -> dict[str, Any]:
        """A small, JSON-friendly description (for logs and tracking params)."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
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
) -> DataBundle:
    """Load a dataset, split it (seeded, stratified) and standardise it on the training split.

    Args:
        source: a built-in name (see :func:`available_datasets`); a path to a ``.npz`` file (arrays
            ``x`` or ``X``, and ``y``) or a ``.csv`` file (numeric features, one label column,
            optional header row); or a tuple ``(X, y)`` of arrays. ``X`` is 2-D ``(n, features)`` for
            tabular data or 4-D ``(n, channels, height, width)`` for images.
        val_fraction: share of every class that goes to the validation split.
        test_fraction: share of every class that goes to the test split.
        seed: seed of the split; the same seed gives the same split.
        target: only for ``.csv``: the label column, by header name or index (default: last column).

    Returns:
        The splits, standardised with statistics of the training split only (per feature for
        tabular data, per channel for images; constant features are centred, not scaled), and
        labels remapped to ``0..K-1``.

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
    name, x_raw, y_raw, label_names = _read_source(source, target)
    x, y, classes = _validate_arrays(x_raw, y_raw, label_names)
    train, val, test = _stratified_split(y, classes, val_fraction, test_fraction, int(seed))
    x_train, x_val, x_test = _standardise(x[train], x[val], x[test])
    fingerprint = _fingerprint(x, y, classes, val_fraction, test_fraction, int(seed))
    bundle = DataBundle(
        name=name,
        task=Task(x.shape[1:], len(classes)),
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


def _read_source(
    source: DataSource, target: str | int | None
) -> tuple[str, Any, Any, Sequence[str] | None]:
    """Return (name, X, y, names of the sorted labels or None) for any accepted source."""
    if isinstance(source, tuple):
        _reject_target(target, "a tuple of arrays")
        if len(source) != 2:
            raise ValueError(f"An array source must be a tuple (X, y), but got a tuple of {len(source)} items.")
        return "arrays", source[0], source[1], None
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            f"source must be a built-in dataset name, a path to a .npz or .csv file, or a tuple (X, y), "
            f"but got {type(source).__name__}."
        )
    if isinstance(source, str) and source in _BUILTINS:
        _reject_target(target, f"the built-in dataset {source!r}")
        return (source, *_load_builtin(source))
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in _EXTENSIONS:
        if not suffix and not path.exists():
            raise ValueError(
                f"Unknown dataset {str(source)!r}: expected one of the built-ins {list(_BUILTINS)}, "
                f"a path to a {' or '.join(_EXTENSIONS)} file, or a tuple (X, y)."
            )
        raise ValueError(
            f"Unsupported data file {str(path)!r}: the extension must be one of {list(_EXTENSIONS)}, "
            f"but got {suffix or 'none'!r}."
        )
    if not path.is_file():
        raise ValueError(f"Data file {str(path)!r} does not exist (or is not a file).")
    if suffix == ".npz":
        _reject_target(target, "a .npz file (labels are its array 'y')")
        return (path.stem, *_read_npz(path), None)
    return (path.stem, *_read_csv(path, target), None)


def _reject_target(target: str | int | None, what: str) -> None:
    if target is not None:
        raise ValueError(f"target selects the label column of a .csv file; it does not apply to {what}.")


def _load_builtin(name: str) -> tuple[np.ndarray, np.ndarray, Sequence[str]]:
    from sklearn import datasets

    loaders = {
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
    }
    bunch = loaders[name]()
    x = bunch.data
    if name == "digits":
        x = x.reshape(-1, 1, 8, 8)  # the 8x8 images as one-channel images, for image spaces
    return x, bunch.target, [str(n) for n in bunch.target_names]


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            keys = list(arrays.files)
            x_key = "x" if "x" in keys else "X" if "X" in keys else None
            if x_key is None or "y" not in keys:
                raise ValueError(
                    f"{str(path)!r} must hold the arrays 'x' (or 'X') and 'y', but holds {sorted(keys)}."
                )
            return arrays[x_key], arrays["y"]
    except ValueError as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"Could not read {str(path)!r} as a .npz of numeric arrays: {e}") from e
    except OSError as e:
        raise ValueError(f"Could not read {str(path)!r} as a .npz file: {e}") from e


def _read_csv(path: Path, target: str | int | None) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{str(path)!r} holds no rows.")
    width = len(rows[0])
    if width < 2:
        raise ValueError(f"{str(path)!r} must have at least 2 columns (features and a label), but has {width}.")
    label_col = _label_column(rows[0], target, path)
    feature_cols = [c for c in range(width) if c != label_col]
    has_header = isinstance(target, str) or not all(_is_number(rows[0][c]) for c in feature_cols)
    body = rows[1:] if has_header else rows
    if not body:
        raise ValueError(f"{str(path)!r} holds a header row but no data rows.")
    x = np.empty((len(body), len(feature_cols)), dtype=np.float64)
    labels = []
    for r, row in enumerate(body, start=2 if has_header else 1):
        if len(row) != width:
            raise ValueError(f"{str(path)!r} row {r} has {len(row)} columns, but the first row has {width}.")
        for j, c in enumerate(feature_cols):
            try:
                x[r - (2 if has_header else 1), j] = float(row[c])
            except ValueError as e:
                raise TypeError(
                    f"{str(path)!r} row {r}, column {c + 1}: features must be numbers, but got {row[c]!r} "
                    f"(missing values are not supported; impute them first)."
                ) from e
        labels.append(row[label_col].strip())
    numeric = all(_is_number(v) for v in labels)
    return x, np.array([float(v) for v in labels]) if numeric else np.array(labels)


def _label_column(first_row: list[str], target: str | int | None, path: Path) -> int:
    width = len(first_row)
    if target is None:
        return width - 1
    if isinstance(target, str):
        names = [cell.strip() for cell in first_row]
        if target not in names:
            raise ValueError(f"target {target!r} is not a column of {str(path)!r}; its header has {names}.")
        return names.index(target)
    if isinstance(target, bool) or not isinstance(target, int) or not -width <= target < width:
        raise ValueError(
            f"target must be a column name or an index in [{-width}, {width - 1}] for {str(path)!r}, "
            f"but got {target!r}."
        )
    return target % width


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _validate_arrays(
    x: Any, y: Any, label_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Check X and y and return (X as float32, y as int64 codes 0..K-1, original label of each code)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers, but got an array of dtype {x.dtype}.")
    if x.ndim not in (2, 4):
        raise ValueError(
            f"X must be 2-D (examples, features) or 4-D (examples, channels, height, width), "
            f"but got shape {x.shape}."
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D with one label per example, but got shape {y.shape}.")
    if len(x) != len(y):
        raise ValueError(f"X and y must have the same length, but X has {len(x)} examples and y has {len(y)}.")
    if len(x) == 0 or x[0].size == 0:
        raise ValueError(f"X must hold at least one example with at least one feature, but got shape {x.shape}.")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argmax(bad.reshape(len(x), -1).any(axis=1)))
        raise ValueError(
            f"X must be finite, but holds {int(bad.sum())} NaN/inf value(s) (first in example {first}); "
            f"clean or impute them first."
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y must not contain NaN/inf labels.")
    try:
        values, codes = np.unique(y, return_inverse=True)
    except TypeError as e:
        raise TypeError(f"y must hold labels of one comparable type, but got dtype {y.dtype}.") from e
    if len(values) < 2:
        raise ValueError(f"y must hold at least 2 classes, but holds {len(values)} ({values.tolist()}).")
    if label_names is not None:
        classes = tuple(label_names[int(v)] for v in values)
    else:
        classes = tuple(str(int(v)) if y.dtype.kind == "f" and float(v).is_integer() else str(v) for v in values)
    return x, codes.astype(np.int64).reshape(-1), classes


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
            needed = next(n for n in range(3, 10**6) if n - sum(_class_counts(n, val_fraction, test_fraction)) >= 1)
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
    x: np.ndarray, y: np.ndarray, classes: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> str:
    settings = {
        "shape": list(x.shape),
        "classes": list(classes),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "seed": seed,
    }
    digest = hashlib.sha256(_FINGERPRINT_VERSION)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(x, dtype="<f4").tobytes())
    digest.update(np.ascontiguousarray(y, dtype="<i8").tobytes())
    return digest.hexdigest()[:16]


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return type(value).__name__
