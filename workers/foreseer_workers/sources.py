"""Where a dataset comes from: built-in names, .npz / .csv files or arrays, read and checked.

Every source ends up as a :class:`RawDataset`: finite float32 features and, for classification,
labels coded ``0..K-1`` with the original label of each code, or, for regression, one finite
float32 target per example. Splitting and scaling happen in :mod:`foreseer_workers.data`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, Union

import numpy as np

from foreseer_spaces import TASK_KINDS

BUILTINS = ("breast_cancer", "diabetes", "digits", "wine")
#: The built-ins that are not classification tasks. (California housing is not among them:
#: scikit-learn downloads it on first use.)
BUILTIN_TASKS = {"diabetes": "regression"}
EXTENSIONS = (".csv", ".npz")

DataSource = Union[str, "os.PathLike[str]", tuple[Any, Any]]


class RawDataset(NamedTuple):
    """A checked, unsplit dataset: ``x`` float32 ``(n, ...)``; ``y`` int64 codes with
    ``classes[code]`` (classification) or float32 targets with no classes (regression)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    kind: str = "classification"


def source_task(source: DataSource, task: str | None = None) -> str:
    """The kind of task of ``source``: ``task`` when given, else a built-in's own kind, else
    ``"classification"``."""
    if task is not None:
        if task not in TASK_KINDS:
            raise ValueError(f"task must be one of {list(TASK_KINDS)}, but got {task!r}.")
        return task
    if isinstance(source, str):
        return BUILTIN_TASKS.get(source, "classification")
    return "classification"


def read_source(source: DataSource, target: str | int | None = None, task: str | None = None) -> RawDataset:
    """Read and check any accepted source (see :func:`foreseer_workers.load_dataset`).

    Raises:
        ValueError: unknown name, missing file, unsupported extension, or arrays that are not a
            dataset of the task (length mismatch, NaN/inf, fewer than 2 classes, bad shapes).
        TypeError: a source of an unsupported type, or non-numeric features or targets.
    """
    kind = source_task(source, task)
    if isinstance(source, str) and source in BUILTINS and kind != source_task(source):
        raise ValueError(f"the built-in dataset {source!r} is a {source_task(source)} task, not {kind}.")
    name, x, y, label_names = _read(source, target)
    x = _validate_features(x)
    y = _validate_targets(y, len(x))
    if kind == "regression":
        if y.dtype.kind not in "biuf":
            raise TypeError(f"regression targets must be numbers, but got an array of dtype {y.dtype}.")
        if not np.isfinite(y).all():
            raise ValueError("regression targets must be finite, but y holds NaN/inf values.")
        return RawDataset(name, x, y.astype(np.float32), (), kind)
    codes, classes = _encode_labels(y, label_names)
    return RawDataset(name, x, codes, classes, kind)


def _read(source: DataSource, target: str | int | None) -> tuple[str, Any, Any, Sequence[str] | None]:
    """Return (name, X, y, names of the sorted labels or None) for any accepted source."""
    if isinstance(source, tuple):
        _reject_target(target, "a tuple of arrays")
        if len(source) != 2:
            raise ValueError(
                f"An array source must be a tuple (X, y), but got a tuple of {len(source)} items."
            )
        return "arrays", source[0], source[1], None
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            f"source must be a built-in dataset name, a path to a .npz or .csv file, or a tuple (X, y), "
            f"but got {type(source).__name__}."
        )
    if isinstance(source, str) and source in BUILTINS:
        _reject_target(target, f"the built-in dataset {source!r}")
        return (source, *_load_builtin(source))
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        if not suffix and not path.exists():
            raise ValueError(
                f"Unknown dataset {str(source)!r}: expected one of the built-ins {list(BUILTINS)}, "
                f"a path to a {' or '.join(EXTENSIONS)} file, or a tuple (X, y)."
            )
        raise ValueError(
            f"Unsupported data file {str(path)!r}: the extension must be one of {list(EXTENSIONS)}, "
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
        "diabetes": datasets.load_diabetes,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
    }
    bunch = loaders[name]()
    x = bunch.data
    if name == "digits":
        x = x.reshape(-1, 1, 8, 8)  # the 8x8 images as one-channel images, for image spaces
    names = getattr(bunch, "target_names", None)  # a regression set has none
    return x, bunch.target, None if names is None else [str(n) for n in names]


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files if key in ("x", "X", "y")}
            keys = sorted(archive.files)
    except (OSError, ValueError) as e:  # not a zip archive, or object arrays (which need pickle)
        raise ValueError(f"Could not read {str(path)!r} as a .npz file of numeric arrays: {e}") from e
    x_key = "x" if "x" in arrays else "X" if "X" in arrays else None
    if x_key is None or "y" not in arrays:
        raise ValueError(f"{str(path)!r} must hold the arrays 'x' (or 'X') and 'y', but holds {keys}.")
    return arrays[x_key], arrays["y"]


def _read_csv(path: Path, target: str | int | None) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as f:
        rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"{str(path)!r} holds no rows.")
    width = len(rows[0])
    if width < 2:
        raise ValueError(
            f"{str(path)!r} must have at least 2 columns (features and a label), but has {width}."
        )
    label_col = _label_column(rows[0], target, path)
    feature_cols = [c for c in range(width) if c != label_col]
    has_header = isinstance(target, str) or not all(_is_number(rows[0][c]) for c in feature_cols)
    first = 2 if has_header else 1  # the file's row number of the first data row
    if len(rows) < first:
        raise ValueError(f"{str(path)!r} holds a header row but no data rows.")
    x = np.empty((len(rows) - first + 1, len(feature_cols)), dtype=np.float64)
    labels = []
    for i, row in enumerate(rows[first - 1 :]):
        if len(row) != width:
            raise ValueError(
                f"{str(path)!r} row {i + first} has {len(row)} columns, but the first row has {width}."
            )
        for j, c in enumerate(feature_cols):
            try:
                x[i, j] = float(row[c])
            except ValueError as e:
                raise TypeError(
                    f"{str(path)!r} row {i + first}, column {c + 1}: features must be numbers, but got "
                    f"{row[c]!r} (missing values are not supported; impute them first)."
                ) from e
        labels.append(row[label_col].strip())
    numeric = all(_is_number(v) for v in labels)  # numeric labels sort as numbers: "10" after "9"
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


def _validate_features(x: Any) -> np.ndarray:
    """X checked: numbers, 2-D or 4-D, non-empty and finite; as float32."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers, but got an array of dtype {x.dtype}.")
    if x.ndim not in (2, 4):
        raise ValueError(
            f"X must be 2-D (examples, features) or 4-D (examples, channels, height, width), "
            f"but got shape {x.shape}."
        )
    if len(x) == 0 or x[0].size == 0:
        raise ValueError(
            f"X must hold at least one example with at least one feature, but got shape {x.shape}."
        )
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argmax(bad.reshape(len(x), -1).any(axis=1)))
        raise ValueError(
            f"X must be finite, but holds {int(bad.sum())} NaN/inf value(s) (first in example {first}); "
            f"clean or impute them first."
        )
    return x


def _validate_targets(y: Any, n: int) -> np.ndarray:
    """y checked: one label or target per example of X."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D with one label per example, but got shape {y.shape}.")
    if n != len(y):
        raise ValueError(f"X and y must have the same length, but X has {n} examples and y has {len(y)}.")
    return y


def _encode_labels(y: np.ndarray, label_names: Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels as int64 codes 0..K-1 in sorted label order, and the original label of each code."""
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
    else:  # 1.0 reads "1": CSV labels are parsed as floats
        classes = tuple(
            str(int(v)) if y.dtype.kind == "f" and float(v).is_integer() else str(v) for v in values
        )
    return codes.astype(np.int64).reshape(-1), classes
