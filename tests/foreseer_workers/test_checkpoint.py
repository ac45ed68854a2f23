"""Weights in safetensors, checkpoint directories and evaluate(), on small real networks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from foreseer_workers import build_model, evaluate, load_weights, read_trial_info, save_weights


def test_weights_round_trip_through_safetensors(wine, make_config, tmp_path):
    config = make_config()
    model = build_model(config, wine.task)
    with torch.no_grad():
        model[1].weight.add_(1.0)  # differ from a fresh build
    save_weights(model, tmp_path / "w.safetensors", metadata={"candidate": config.candidate.hash})
    fresh = build_model(config, wine.task)
    load_weights(fresh, tmp_path / "w.safetensors")
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True)
    )
    assert "2.running_mean" in load_file(tmp_path / "w.safetensors")  # buffers travel with the weights


def test_tied_weights_can_be_saved(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    model[1].weight = model[0].weight
    save_weights(model, tmp_path / "tied.safetensors")
    other = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    load_weights(other, tmp_path / "tied.safetensors")
    assert torch.equal(other[1].weight, model[0].weight)


def test_load_weights_is_strict(wine, make_config, tmp_path):
    small = build_model(make_config(), wine.task)
    save_weights(nn.Sequential(nn.Linear(2, 2)), tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match=r"other.safetensors.*does not have: '0.bias', '0.weight'"):
        load_weights(small, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="does not exist"):
        load_weights(small, tmp_path / "absent.safetensors")
    partial = {k: v for k, v in small.state_dict().items() if k != "5.bias"}
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in partial.items()}, tmp_path / "partial.safetensors")
    with pytest.raises(ValueError, match=r"lacks 1 tensor\(s\) of the model: '5.bias'"):
        load_weights(small, tmp_path / "partial.safetensors")


def test_read_trial_info_rejects_other_directories(tmp_path):
    with pytest.raises(ValueError, match=r"not a trial checkpoint directory: it lacks \['model.safetensors'"):
        read_trial_info(tmp_path)


def test_evaluate_keeps_the_mode_and_checks_its_inputs(wine, make_config):
    model = build_model(make_config(), wine.task).train()
    loss, accuracy = evaluate(model, wine.x_val, wine.y_val, batch_size=7)
    assert model.training and 0.0 <= accuracy <= 1.0 and loss > 0.0
    # Batch size does not change the result beyond float rounding, and tensors work like arrays.
    loss_t, accuracy_t = evaluate(model, torch.from_numpy(np.array(wine.x_val)), torch.tensor(wine.y_val))
    assert accuracy_t == accuracy and loss_t == pytest.approx(loss, rel=1e-6)
    with pytest.raises(ValueError, match="equal length, but got 36 and 35"):
        evaluate(model, wine.x_val, wine.y_val[:-1])
    with pytest.raises(ValueError, match="batch_size must be an integer of at least 1, but got 0"):
        evaluate(model, wine.x_val, wine.y_val, batch_size=0)


def test_data_bundle_pickles_and_prints_briefly(wine):
    clone = pickle.loads(pickle.dumps(wine))  # what Ray does to ship it to workers
    assert clone.fingerprint == wine.fingerprint and np.array_equal(clone.x_train, wine.x_train)
    assert repr(wine) == (
        f"DataBundle(name='wine', task=Task(input_shape=(13,), num_classes=3), train=106, val=36, test=36, "
        f"fingerprint='{wine.fingerprint}')"
    )
