"""Tracing networks into ArchGraphs: op types, pass-through of non-tensor values, unsupported ops."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from foreseer_spaces import trace


def ops(graph):
    return [node.op for node in graph.nodes]


def test_a_sequential_network():
    graph = trace(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (4,))
    assert ops(graph) == ["input", "linear", "relu", "linear", "output"]
    assert graph.edges == ((0, 1), (1, 2), (2, 3), (3, 4))
    assert graph.nodes[1].module == "0" and graph.nodes[1].params == {"weight": (8, 4), "bias": (8,)}
    assert [node.out_shape for node in graph.nodes] == [(4,), (8,), (8,), (2,), (2,)]
    assert graph.num_params == 4 * 8 + 8 + 8 * 2 + 2


class Functional(nn.Module):
    """Functional ops, a size() read, a concat and a spatial mean."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(5, 8))

    def forward(self, x):
        a = F.relu(self.conv(x))  # (B, 4, H, W)
        b = torch.zeros_like(a)
        h = torch.cat([a, b], dim=1).mean((2, 3))  # (B, 8)
        h = h.view(h.size(0), -1)
        return torch.tanh(F.linear(h, self.weight)) + h.sum(1, keepdim=True)


def test_functional_ops_and_pass_through_of_non_tensor_values():
    graph = trace(Functional(), (3, 6, 6))
    by_op = {node.op: node for node in graph.nodes}
    assert ops(graph)[:7] == ["input", "conv", "relu", "zero", "concat", "global_avg_pool", "flatten"]
    assert "size" not in {node.name for node in graph.nodes}
    flatten = by_op["flatten"]
    assert (by_op["global_avg_pool"].id, flatten.id) in graph.edges  # through the skipped size()
    assert by_op["concat"].out_shape == (8, 6, 6)
    assert {source for source, target in graph.edges if target == by_op["concat"].id} == {
        by_op["relu"].id,
        by_op["zero"].id,
    }
    assert by_op["linear"].module is None and by_op["linear"].params == {"weight": (5, 8)}
    assert graph.num_params == sum(p.numel() for p in Functional().parameters())
    assert graph.unsupported == ("sum_1 (Tensor.sum)",)


class WithAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h, _ = self.attn(x, x, x)  # (B, T, 8)
        return self.out(h[:, 0])


def test_unsupported_operations_are_listed_never_dropped():
    model = WithAttention()
    graph = trace(model, (5, 8))
    assert graph.unsupported[0] == "attn (MultiheadAttention)"
    assert graph.unsupported[1].startswith("getitem") and graph.unsupported[1].endswith(" (operator.getitem)")
    attn = next(node for node in graph.nodes if node.module == "attn")
    assert attn.op == "unsupported" and attn.out_shape == (5, 8)
    assert graph.num_params == sum(p.numel() for p in model.parameters())  # nested out_proj included
    # The tuple unpacking is not a node; the slice is, and it consumes the attention's output.
    assert ops(graph) == ["input", "unsupported", "unsupported", "linear", "output"]
    assert (attn.id, attn.id + 1) in graph.edges
    json.dumps(graph.to_dict())


@pytest.mark.parametrize(("size", "op"), [(1, "global_avg_pool"), (2, "unsupported")])
def test_adaptive_pooling_is_global_only_to_one_pixel(size, op):
    graph = trace(nn.Sequential(nn.Conv2d(1, 2, 1), nn.AdaptiveAvgPool2d(size), nn.Flatten()), (1, 4, 4))
    assert graph.nodes[2].op == op


def test_shared_module_counts_its_parameters_once():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 4)

        def forward(self, x):
            return self.layer(self.layer(x))

    graph = trace(Shared(), (4,))
    assert [node.module for node in graph.nodes].count("layer") == 2
    assert graph.num_params == 20


def test_every_submodule_keeps_its_mode():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5)).train()
    model[2].eval()
    trace(model, (4,))
    assert [m.training for m in model] == [True, True, False]


def test_untraceable_network_is_an_error():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ValueError, match=r"torch\.fx cannot trace DataDependent"):
        trace(DataDependent(), (3,))
