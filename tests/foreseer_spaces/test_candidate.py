"""Candidate identity: content hashes that are stable, order-free and survive JSON."""

import json

import pytest

from foreseer_spaces import Candidate, Task

ARCH = {"depth": 2, "width_0": 64, "width_1": 32, "activation": "relu", "dropout": 0.1, "residual": True}
HPARAMS = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}


def test_hash_is_pinned():
    # Changing the canonical form or the digest changes every stored candidate id: do it on purpose.
    candidate = Candidate("mlp", ARCH, HPARAMS)
    assert candidate.hash == "1063de6d4b04b653"
    assert candidate.arch_hash == "9f055cb259981b9b"


def test_hash_ignores_key_order():
    reordered = Candidate("mlp", dict(reversed(list(ARCH.items()))), dict(reversed(list(HPARAMS.items()))))
    original = Candidate("mlp", ARCH, HPARAMS)
    assert reordered.hash == original.hash
    assert reordered == original and hash(reordered) == hash(original)


def test_json_round_trip_keeps_value_and_hash():
    candidate = Candidate("mlp", ARCH, HPARAMS)
    restored = Candidate.from_json(json.dumps(json.loads(candidate.to_json())))
    assert restored == candidate and restored.hash == candidate.hash
    assert Candidate.from_dict(candidate.to_dict()) == candidate


def test_different_hparams_change_hash_but_not_arch_hash():
    a = Candidate("mlp", ARCH, HPARAMS)
    b = Candidate("mlp", ARCH, {**HPARAMS, "lr": 0.02})
    assert a.hash != b.hash
    assert a.arch_hash == b.arch_hash
    assert Candidate("cells", ARCH, HPARAMS).arch_hash != a.arch_hash


def test_types_are_part_of_the_identity():
    assert Candidate("mlp", {"residual": True}).hash != Candidate("mlp", {"residual": 1}).hash


@pytest.mark.parametrize("value", [[1, 2], {"a": 1}, (1,), object()])
def test_non_scalar_param_is_rejected(value):
    with pytest.raises(TypeError, match="'width' must be a JSON scalar"):
        Candidate("mlp", {"width": value})
    with pytest.raises(TypeError, match="'lr' must be a JSON scalar"):
        Candidate("mlp", {}, {"lr": value})


def test_arch_is_a_copy():
    arch = dict(ARCH)
    candidate = Candidate("mlp", arch)
    arch["depth"] = 4
    assert candidate.arch["depth"] == 2


def test_empty_space_name_is_rejected():
    with pytest.raises(ValueError, match="non-empty string"):
        Candidate("", ARCH)


@pytest.mark.parametrize(
    ("shape", "classes", "match"),
    [((), 3, "input_shape"), ((3, 0, 4), 3, "input_shape"), ((13,), 1, "num_classes must be at least 2")],
)
def test_task_validates(shape, classes, match):
    with pytest.raises(ValueError, match=match):
        Task(shape, classes)


def test_task_properties():
    assert Task((3, 8, 8), 10).is_image and Task((3, 8, 8), 10).num_features == 192
    assert not Task((13,), 3).is_image
