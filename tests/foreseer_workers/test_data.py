"""load_dataset: built-ins, files and arrays; stratified seeded splits; train-only standardisation; errors."""

from __future__ import annotations

import numpy as np
import pytest

from foreseer_workers import DataBundle, available_datasets, load_dataset

BUILTINS = [("digits", (1, 8, 8), 10, 1797), ("wine", (13,), 3, 178), ("breast_cancer", (30,), 2, 569)]


def _counts(y: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y, minlength=k)


def test_available_datasets_lists_the_builtins():
    assert set(available_datasets()) == {"digits", "wine", "breast_cancer", "diabetes"}


@pytest.mark.parametrize(("name", "shape", "num_classes", "total"), BUILTINS)
def test_builtin_loads_with_shapes_classes_and_split_sizes(name, shape, num_classes, total):
    data = load_dataset(name, val_fraction=0.2, test_fraction=0.25, seed=3)
    assert data.name == name
    assert data.task.input_shape == shape and data.task.num_classes == num_classes
    assert len(data.classes) == num_classes
    sizes = [len(data.y_train), len(data.y_val), len(data.y_test)]
    assert sum(sizes) == total
    # Rounding happens per class, so each split is within one example per class of its share.
    assert abs(sizes[1] - 0.2 * total) <= num_classes and abs(sizes[2] - 0.25 * total) <= num_classes
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (len(y), *shape)
        assert set(np.unique(y)) == set(range(num_classes))  # every class in every split
        assert not x.flags.writeable


def test_split_is_stratified(wine):
    overall = _counts(np.concatenate([wine.y_train, wine.y_val, wine.y_test]), 3)
    for y, fraction in ((wine.y_val, 0.2), (wine.y_test, 0.2), (wine.y_train, 0.6)):
        assert np.all(np.abs(_counts(y, 3) - fraction * overall) <= 1.0)


def _row_ids(data: DataBundle) -> list[np.ndarray]:
    """Recover the row ids held in feature 0 (raw value = row id) from the standardised splits.

    Standardisation is one increasing affine map, and the splits together hold ids 0..n-1, so the
    smallest value is id 0 and the largest is id n-1.
    """
    values = [data.x_train[:, 0], data.x_val[:, 0], data.x_test[:, 0]]
    everything = np.concatenate(values)
    low, high, n = everything.min(), everything.max(), len(everything)
    return [np.rint((v - low) / (high - low) * (n - 1)).astype(int) for v in values]


def test_splits_are_disjoint_cover_the_data_and_use_train_statistics():
    ids = np.arange(100)
    x = np.column_stack([ids, np.random.default_rng(0).normal(size=100)])
    data = load_dataset((x, ids % 2), seed=5)
    train, val, test = _row_ids(data)
    assert sorted(np.concatenate([train, val, test]).tolist()) == ids.tolist()
    # The validation split was scaled with the training split's mean and std, not its own.
    expected = (val - train.mean()) / train.std()
    assert np.allclose(data.x_val[:, 0], expected, atol=1e-5)
    assert not np.allclose(data.x_val[:, 0], (val - val.mean()) / val.std(), atol=1e-3)


def test_standardisation_is_fitted_on_the_training_split_only(wine, digits):
    assert np.allclose(wine.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(wine.x_train.std(axis=0), 1.0, atol=1e-4)
    assert np.abs(wine.x_val.mean(axis=0)).max() > 1e-3  # validation statistics were not used
    # Images: per channel, over examples and pixels.
    assert abs(float(digits.x_train.mean())) < 1e-5 and abs(float(digits.x_train.std()) - 1.0) < 1e-4
    assert abs(float(digits.x_val.mean())) > 1e-4


def test_constant_feature_is_centred_not_divided_by_zero():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=40), np.full(40, 7.0)])
    data = load_dataset((x, np.repeat([0, 1], 20)))
    assert np.all(np.isfinite(data.x_train)) and np.all(data.x_train[:, 1] == 0.0)


def test_same_seed_same_split_and_other_seed_other_split():
    a, b, c = (load_dataset("wine", seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_val, b.y_val)
    assert a.fingerprint == b.fingerprint
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.fingerprint != c.fingerprint


def test_fingerprint_is_stable_hex_and_tracks_settings():
    data = load_dataset("wine")
    assert len(data.fingerprint) == 16 and int(data.fingerprint, 16) >= 0
    assert load_dataset("wine").fingerprint == data.fingerprint
    assert load_dataset("wine", val_fraction=0.3).fingerprint != data.fingerprint
    x, y = np.random.default_rng(0).normal(size=(30, 2)), np.repeat([0, 1], 15)
    x2 = x.copy()
    x2[0, 0] += 1.0
    assert load_dataset((x, y)).fingerprint != load_dataset((x2, y)).fingerprint


def test_labels_are_remapped_to_consecutive_integers():
    x = np.random.default_rng(0).normal(size=(30, 4))
    data = load_dataset((x, np.repeat([9, 3, 5], 10)))
    assert data.classes == ("3", "5", "9") and data.task.num_classes == 3
    assert set(np.unique(data.y_train)) == {0, 1, 2}


def test_npz_source_with_lower_and_upper_case_keys(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), np.repeat([0, 1], 20)
    np.savez(tmp_path / "lower.npz", x=x, y=y)
    np.savez(tmp_path / "upper.npz", X=x, y=y)
    lower, upper = load_dataset(tmp_path / "lower.npz"), load_dataset(str(tmp_path / "upper.npz"))
    assert lower.name == "lower" and lower.task.input_shape == (5,)
    assert lower.fingerprint == upper.fingerprint == load_dataset((x, y)).fingerprint
    images = (
        rng.normal(size=(30, 3, 4, 4)) * np.array([1.0, 5.0, 9.0])[:, None, None]
        + np.array([0, 10, 100])[:, None, None]
    )
    np.savez(tmp_path / "images.npz", x=images, y=np.repeat([0, 1, 2], 10))
    data = load_dataset(tmp_path / "images.npz")
    assert data.task.input_shape == (3, 4, 4)
    assert np.allclose(data.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)  # per channel
    assert np.allclose(data.x_train.std(axis=(0, 2, 3)), 1.0, atol=1e-4)


def test_csv_source_with_header_string_labels_and_target(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    labels = np.repeat(["setosa", "versicolor", "virginica"], 10)
    lines = ["species,a,b,c"] + [f"{s},{r[0]},{r[1]},{r[2]}" for s, r in zip(labels, x, strict=True)]
    (tmp_path / "flowers.csv").write_text("\n".join(lines) + "\n")
    by_name = load_dataset(tmp_path / "flowers.csv", target="species")
    by_index = load_dataset(tmp_path / "flowers.csv", target=0)
    assert by_name.classes == ("setosa", "versicolor", "virginica")
    assert by_name.task.input_shape == (3,) and by_name.fingerprint == by_index.fingerprint
    assert by_name.fingerprint == load_dataset((x, labels)).fingerprint


def test_csv_without_header_uses_the_last_column(tmp_path):
    x = np.random.default_rng(0).normal(size=(24, 2))
    y = np.repeat([1, 2], 12)
    (tmp_path / "plain.csv").write_text("".join(f"{a},{b},{c}\n" for (a, b), c in zip(x, y, strict=True)))
    data = load_dataset(tmp_path / "plain.csv")
    assert (
        data.task == load_dataset((x, y)).task
        and len(data.y_train) + len(data.y_val) + len(data.y_test) == 24
    )
    assert data.classes == ("1", "2")


def test_summary_is_small_and_json_friendly(wine):
    summary = wine.summary()
    assert summary["num_train"] + summary["num_val"] + summary["num_test"] == 178
    assert summary["input_shape"] == [13] and summary["fingerprint"] == wine.fingerprint


def test_bundle_rejects_inconsistent_arrays(wine):
    with pytest.raises(TypeError, match="float32"):
        DataBundle(
            "bad",
            wine.task,
            wine.x_train.astype(np.float64),
            wine.y_train,
            wine.x_val,
            wine.y_val,
            wine.x_test,
            wine.y_test,
            "0",
        )


def _write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _npz(tmp_path, **arrays) -> str:
    np.savez(tmp_path / "bad.npz", **arrays)
    return str(tmp_path / "bad.npz")


X30 = np.random.default_rng(0).normal(size=(30, 3))
Y30 = np.repeat([0, 1, 2], 10)
NAN_X = X30.copy()
NAN_X[4, 1] = np.nan

BAD_INPUTS = {
    "unknown name": (lambda p: "mnist", {}, ValueError, r"Unknown dataset 'mnist'.*digits"),
    "missing file": (lambda p: str(p / "absent.csv"), {}, ValueError, "does not exist"),
    "unsupported extension": (lambda p: _write(p, "data.txt", "1,2\n"), {}, ValueError, r"extension.*\.txt"),
    "wrong source type": (lambda p: 42, {}, TypeError, "got int"),
    "length mismatch": (lambda p: (X30, Y30[:-1]), {}, ValueError, "X has 30 examples and y has 29"),
    "one class": (lambda p: (X30, np.zeros(30)), {}, ValueError, "at least 2 classes, but holds 1"),
    "nan in X": (lambda p: (NAN_X, Y30), {}, ValueError, r"NaN/inf value\(s\) \(first in example 4\)"),
    "3-D X": (lambda p: (X30.reshape(30, 3, 1), Y30), {}, ValueError, "2-D .* or 4-D"),
    "text X": (lambda p: (X30.astype(str), Y30), {}, TypeError, "X must hold numbers"),
    "val_fraction 0": (
        lambda p: "wine",
        {"val_fraction": 0.0},
        ValueError,
        "val_fraction must be .* got 0.0",
    ),
    "test_fraction 1": (lambda p: "wine", {"test_fraction": 1.0}, ValueError, "test_fraction must be"),
    "fractions sum to 1": (
        lambda p: "wine",
        {"val_fraction": 0.5, "test_fraction": 0.5},
        ValueError,
        r"0.5 \+ 0.5 = 1.0",
    ),
    "tiny class": (
        lambda p: (X30, np.r_[np.zeros(28), [1, 1]]),
        {},
        ValueError,
        "Class '1' has only 2 example",
    ),
    "negative seed": (lambda p: "wine", {"seed": -1}, ValueError, "seed must be"),
    "target for builtin": (lambda p: "wine", {"target": 0}, ValueError, "does not apply"),
    "npz keys": (lambda p: _npz(p, a=X30, b=Y30), {}, ValueError, r"must hold the arrays 'x'.*\['a', 'b'\]"),
    "csv text feature": (
        lambda p: _write(p, "t.csv", "a,b,y\n1,2,0\n1,oops,1\n"),
        {},
        TypeError,
        "row 3, column 2.*'oops'",
    ),
    "csv missing value": (
        lambda p: _write(p, "m.csv", "1,2,0\n1,,1\n"),
        {},
        TypeError,
        "missing values are not supported",
    ),
    "csv unknown target": (
        lambda p: _write(p, "u.csv", "a,b,y\n1,2,0\n"),
        {"target": "label"},
        ValueError,
        r"not a column.*'y'",
    ),
    "csv ragged rows": (lambda p: _write(p, "r.csv", "1,2,0\n1,1\n"), {}, ValueError, "row 2 has 2 columns"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_rejected_with_a_clear_message(case, tmp_path):
    make_source, kwargs, error, pattern = BAD_INPUTS[case]
    with pytest.raises(error, match=pattern):
        load_dataset(make_source(tmp_path), **kwargs)


def test_diabetes_is_a_regression_set_split_at_random_with_targets_in_their_units():
    data = load_dataset("diabetes", seed=3)
    assert data.task.kind == "regression" and data.task.num_outputs == 1 and data.classes == ()
    sizes = [len(data.y_train), len(data.y_val), len(data.y_test)]
    assert sum(sizes) == 442 and sizes[1:] == [88, 88]
    targets = np.concatenate([data.y_train, data.y_val, data.y_test])
    assert data.y_train.dtype == np.float32 and 25 <= targets.min() and targets.max() <= 346
    mean, std = data.target_scale
    assert mean == pytest.approx(float(data.y_train.mean()), rel=1e-6) and std > 10
    assert load_dataset("diabetes", seed=3).fingerprint == data.fingerprint
    assert load_dataset("diabetes", seed=4).fingerprint != data.fingerprint


def test_a_file_or_arrays_are_read_as_regression_when_asked(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=60)
    np.savez(tmp_path / "linear.npz", x=x, y=y)
    data = load_dataset(tmp_path / "linear.npz", task="regression")
    assert data.task.kind == "regression" and len(data.y_train) == 36
    assert load_dataset((x, y), task="regression").fingerprint == data.fingerprint
    with pytest.raises(ValueError, match="regression targets must be finite"):
        load_dataset((x, np.where(np.arange(60) == 5, np.nan, y)), task="regression")
    with pytest.raises(TypeError, match="regression targets must be numbers"):
        load_dataset((x, np.array(["a"] * 60)), task="regression")
    with pytest.raises(ValueError, match="'diabetes' is a regression task, not classification"):
        load_dataset("diabetes", task="classification")
    with pytest.raises(ValueError, match="task must be one of"):
        load_dataset("wine", task="ranking")
