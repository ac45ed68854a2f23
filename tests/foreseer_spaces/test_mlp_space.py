"""The MLP space: conditional widths, residual projections, parts that are absent when unused."""

import pytest
import torch
from torch import nn

from foreseer_spaces import Candidate, Task, get_space

TASK = Task((13,), 3)
BASE = {"activation": "gelu", "norm": "layer", "dropout": 0.0, "residual": True}


def test_widths_are_sampled_only_for_existing_blocks(make_trial):
    space = get_space("mlp")
    for seed in range(20):
        arch = space.sample(make_trial(seed), TASK).arch
        widths = sorted(key for key in arch if key.startswith("width_"))
        assert widths == [f"width_{i}" for i in range(arch["depth"])]
        assert round(arch["dropout"] / 0.05, 6).is_integer() and 0.0 <= arch["dropout"] <= 0.5


def test_residual_is_identity_when_widths_match_and_a_projection_otherwise():
    arch = {"depth": 3, "width_0": 64, "width_1": 64, "width_2": 32, **BASE}
    model = get_space("mlp").build(Candidate("mlp", arch), TASK)
    shortcuts = [block.shortcut for block in model.blocks]
    assert shortcuts[1] is None  # 64 -> 64: identity
    assert isinstance(shortcuts[0], nn.Linear) and shortcuts[0].bias is None  # 13 -> 64
    assert isinstance(shortcuts[2], nn.Linear) and shortcuts[2].weight.shape == (32, 64)
    graph = get_space("mlp").graph(Candidate("mlp", arch), TASK)
    assert sum(node.op == "add" for node in graph.nodes) == 3


def test_unused_parts_get_no_module():
    arch = {
        "depth": 1,
        "width_0": 32,
        "activation": "relu",
        "norm": "none",
        "dropout": 0.0,
        "residual": False,
    }
    graph = get_space("mlp").graph(Candidate("mlp", arch), TASK)
    assert [node.op for node in graph.nodes] == ["input", "flatten", "linear", "relu", "linear", "output"]


@pytest.mark.parametrize(("norm", "op"), [("batch", "batch_norm"), ("layer", "layer_norm")])
def test_norms(norm, op):
    arch = {"depth": 1, "width_0": 32, **BASE, "norm": norm, "dropout": 0.25}
    graph = get_space("mlp").graph(Candidate("mlp", arch), TASK)
    assert {op, "dropout", "gelu"} <= {node.op for node in graph.nodes}


def test_any_input_is_flattened():
    arch = {"depth": 2, "width_0": 32, "width_1": 256, **BASE}
    model = get_space("mlp").build(Candidate("mlp", arch), Task((2, 3, 4), 5))
    assert model.blocks[0].linear.in_features == 24
    assert model(torch.randn(4, 2, 3, 4)).shape == (4, 5)


@pytest.mark.parametrize(
    ("arch", "match"),
    [({"depth": 0}, "integer depth >= 1"), ({"depth": 2, "width_0": 32, **BASE}, r"\['width_1'\]")],
)
def test_build_names_what_is_missing(arch, match):
    with pytest.raises(ValueError, match=match):
        get_space("mlp").build(Candidate("mlp", arch), TASK)
