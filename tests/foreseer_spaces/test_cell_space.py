"""The NAS-Bench-201 cell space: its size, its networks' fidelity to NAS-Bench-201, its task checks."""

import math
from itertools import product

import pytest
import torch

from foreseer_spaces import Candidate, Task, discover_params, get_space
from foreseer_spaces.cells import EDGE_KEYS, OPS, CellNetwork, nb201_arch_string, parse_nb201_arch_string

CIFAR10 = Task((3, 32, 32), 10)


def test_the_space_has_15625_distinct_cells():
    distributions = discover_params(get_space("cells"), Task((1, 8, 8), 10), samples=8)
    edge_choices = [distributions[key].choices for key in EDGE_KEYS]
    assert all(tuple(choices) == OPS for choices in edge_choices)
    assert math.prod(len(choices) for choices in edge_choices) == 15_625
    cells = {
        nb201_arch_string(dict(zip(EDGE_KEYS, ops, strict=True)))
        for ops in product(OPS, repeat=len(EDGE_KEYS))
    }
    assert len(cells) == 15_625


def test_arch_string_round_trips():
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    arch = parse_nb201_arch_string(text)
    assert arch["edge_2_1"] == "avg_pool_3x3" and arch["edge_3_2"] == "skip_connect"
    assert nb201_arch_string(arch) == text


@pytest.mark.parametrize("text", ["|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_bad_arch_string_is_rejected(text):
    with pytest.raises(ValueError, match="NAS-Bench-201"):
        parse_nb201_arch_string(text)


@pytest.mark.parametrize(
    ("op", "classes", "params"),
    # NAS-Bench-201's own counts (C=16, N=5): its smallest and largest networks on CIFAR-10 and
    # CIFAR-100 have 0.073306 / 1.531546 and 0.079156 / 1.537396 million parameters.
    [
        ("none", 10, 73_306),
        ("nor_conv_3x3", 10, 1_531_546),
        ("none", 100, 79_156),
        ("nor_conv_3x3", 100, 1_537_396),
    ],
)
def test_parameter_counts_match_nas_bench_201(op, classes, params):
    arch = {key: op for key in EDGE_KEYS} | {"stem_width": 16, "cells_per_stage": 5}
    model = CellNetwork(arch, Task((3, 32, 32), classes))
    assert sum(p.numel() for p in model.parameters()) == params


def test_none_edges_have_no_module_and_an_empty_node_is_zero():
    space = get_space("cells")
    arch = {key: "none" for key in EDGE_KEYS} | {
        "edge_1_0": "nor_conv_1x1",
        "stem_width": 8,
        "cells_per_stage": 1,
    }
    candidate = Candidate("cells", arch)
    model = space.build(candidate, Task((1, 8, 8), 10))
    assert all("edge_2" not in name and "edge_3" not in name for name, _ in model.named_modules())
    graph = space.graph(candidate, Task((1, 8, 8), 10))
    assert sum(node.op == "zero" for node in graph.nodes) == 3 * 2  # nodes 2 and 3 of each cell
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_reductions_halve_the_resolution_twice():
    arch = {key: "skip_connect" for key in EDGE_KEYS} | {"stem_width": 8, "cells_per_stage": 1}
    graph = get_space("cells").graph(Candidate("cells", arch), Task((3, 12, 12), 5))
    add_shapes = {node.out_shape for node in graph.nodes if node.op == "add"}
    assert {(8, 12, 12), (16, 6, 6), (32, 3, 3)} <= add_shapes


@pytest.mark.parametrize("shape", [(13,), (3, 3, 8), (3, 8, 3), (8, 8)])
def test_check_task_names_what_it_needs_and_what_it_got(shape, make_trial):
    space, task = get_space("cells"), Task(shape, 3)
    with pytest.raises(ValueError, match=r"needs image inputs \(channels, height, width\)") as info:
        space.check_task(task)
    assert f"got input shape {shape}" in str(info.value)
    with pytest.raises(ValueError, match="needs image inputs"):
        space.sample(make_trial(), task)


def test_smallest_image_is_accepted():
    get_space("cells").check_task(Task((3, 4, 4), 10))


def test_build_rejects_a_candidate_of_another_space():
    with pytest.raises(ValueError, match="cannot build a candidate of space 'mlp'"):
        get_space("cells").build(Candidate("mlp", {"depth": 1}), CIFAR10)


def test_build_names_missing_parameters():
    with pytest.raises(ValueError, match="needs architecture parameters"):
        get_space("cells").build(Candidate("cells", {"stem_width": 8}), CIFAR10)
