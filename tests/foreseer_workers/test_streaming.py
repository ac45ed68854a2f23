"""Image data streamed from disk: generated PNG folders and shards, indexed, split, normalised,
augmented, and trained on by run_trial exactly as data held in memory is (resume included)."""

import numpy as np
import pytest
import torch
from PIL import Image

from foreseer.testing.images import generate_images, write_image_folder, write_shards
from foreseer_spaces import Candidate
from foreseer_workers import TrialConfig, run_trial
from foreseer_workers.streaming import Augment, load_streamed
from foreseer_workers.training import TIMING_METRICS

PER_CLASS = 300


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"), PER_CLASS, size=16, seed=1)


@pytest.fixture(scope="module")
def images(folder):
    return load_streamed(images=folder, augment=Augment(crop_padding=2, flip=True), seed=0)


def test_an_image_folder_is_indexed_split_by_class_and_normalised_on_its_training_split(images, folder):
    assert images.task.input_shape == (3, 16, 16) and images.classes == (
        "class_0",
        "class_1",
        "class_2",
        "class_3",
    )
    sizes = {k: len(v) for k, v in images.splits.items()}
    assert sizes == {"train": 720, "val": 240, "test": 240}
    for split in images.splits.values():
        assert np.bincount(images.labels[split]).tolist() == [len(split) // 4] * 4, "stratified"
    assert set(np.concatenate(list(images.splits.values()))) == set(range(1200))
    x = np.stack([images.dataset("train")[i][0].numpy() for i in range(len(images.splits["train"]))])
    assert np.allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-4) and np.allclose(
        x.std(axis=(0, 2, 3)), 1, atol=1e-3
    )
    assert load_streamed(images=folder, seed=0).fingerprint == images.fingerprint
    assert load_streamed(images=folder, seed=1).fingerprint != images.fingerprint


def test_training_batches_are_shuffled_per_epoch_and_augmented_while_validation_is_not(images):
    def first_batch(split, epoch, seed=0):
        return next(iter(images.loader(split, batch_size=32, seed=seed, epoch=epoch)))

    torch.manual_seed(0)
    a = first_batch("train", 1)
    torch.manual_seed(0)
    assert torch.equal(a[0], first_batch("train", 1)[0]), "the same seed and epoch read the same batch"
    assert not torch.equal(a[1], first_batch("train", 2)[1]), "another epoch, another order"
    plain = images.dataset("train")
    augmented = images.dataset("train", augment=True)
    assert any(not torch.equal(plain[i][0], augmented[i][0]) for i in range(8))
    assert torch.equal(first_batch("val", 1)[0], first_batch("val", 2)[0]), "validation: in order, as is"
    assert len(images.loader("train", batch_size=32)) == images.num_batches("train", 32)


@pytest.mark.parametrize("kind", ["npz", "npy"])
def test_shards_hold_the_same_examples_as_the_arrays_they_were_written_from(tmp_path, kind):
    if kind == "npz":
        write_shards(tmp_path, 40, shards=3, size=8, seed=2)
    else:
        x, y = generate_images(40, size=8, seed=2)
        for k, (xs, ys) in enumerate(zip(np.array_split(x, 3), np.array_split(y, 3), strict=True)):
            np.save(tmp_path / f"part{k}_x.npy", xs)
            np.save(tmp_path / f"part{k}_y.npy", ys)
    data = load_streamed(shards=tmp_path)
    x, y = generate_images(40, size=8, seed=2)
    assert data.task.input_shape == (3, 8, 8) and len(data.labels) == 160
    assert (data.labels == y).all()
    for i in (0, 39, 40, 77, 159):  # across the shards' boundaries
        assert np.array_equal(data.source.read(i), x[i])
    batches = list(data.loader("train", batch_size=16, num_workers=1))
    assert sum(len(b[1]) for b in batches) == len(data.splits["train"])


def test_bad_folders_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_streamed(images=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="at least 2, but holds 0"):
        load_streamed(images=tmp_path / "empty")
    root = write_image_folder(tmp_path / "some-bad", 5, classes=2, size=8)
    (root / "class_0" / "broken.png").write_bytes(b"\x89PNG not really")
    assert load_streamed(images=root).skipped == 1, "an unreadable file is skipped and counted"
    Image.new("RGB", (8, 9)).save(root / "class_1" / "odd.png")
    with pytest.raises(ValueError, match=r"differ in size \(8x8 .*, 9x8 .*give image_size"):
        load_streamed(images=root)
    assert load_streamed(images=root, image_size=(8, 8)).task.input_shape == (3, 8, 8)
    with pytest.raises(ValueError, match="no .npz shards"):
        load_streamed(shards=tmp_path / "empty")


def cells(stem=8):
    arch = {
        "edge_1_0": "nor_conv_3x3", "edge_2_0": "skip_connect", "edge_2_1": "nor_conv_3x3",
        "edge_3_0": "none", "edge_3_1": "avg_pool_3x3", "edge_3_2": "nor_conv_1x1",
        "stem_width": stem, "cells_per_stage": 1,
    }  # fmt: skip
    return Candidate("cells", arch, {"lr": 3e-3, "optimizer": "adamw", "batch_size": 64})


def test_a_cells_network_learns_from_streamed_images_and_resumes_exactly(images, tmp_path):
    from foreseer_spaces import get_space

    def config(epochs, threads=1):
        return TrialConfig(get_space("cells"), cells(), max_epochs=epochs, seed=4, num_threads=threads)

    kept = []

    def keep(metrics, folder, stop_after=None):
        kept.append((metrics, folder))
        return stop_after is not None and metrics["epoch"] >= stop_after

    whole = run_trial(config(4), images, keep)
    assert whole.history[-1]["val_accuracy"] > 0.6, "well above chance (0.25)"
    kept.clear()
    run_trial(config(4), images, lambda m, f: keep(m, f, stop_after=2))
    rest = run_trial(config(4), images, keep, resume_from=kept[1][1])

    def same(history):
        return [{k: v for k, v in m.items() if k not in TIMING_METRICS} for m in history]

    assert same(whole.history[2:]) == same(rest.history), "the resumed epochs are the straight run's"
