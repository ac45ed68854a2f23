"""The graph hypernetwork: graph encoding, shapes of predicted tensors, normalisation, gradients."""

import pytest
import torch
from torch import nn

from foreseer.predictors.ghn.graph import GraphBatch, encode, encode_module
from foreseer.predictors.ghn.model import GHNConfig, GraphHyperNetwork, predicted_forward, predictive_mode
from foreseer_spaces import Candidate, Task, get_space, trace

CELL_ARCH = {
    "edge_1_0": "nor_conv_3x3", "edge_2_0": "skip_connect", "edge_2_1": "nor_conv_1x1",
    "edge_3_0": "avg_pool_3x3", "edge_3_1": "none", "edge_3_2": "nor_conv_3x3",
    "stem_width": 16, "cells_per_stage": 1,
}  # fmt: skip
MLP_ARCH = {"depth": 2, "width_0": 256, "width_1": 32, "activation": "relu", "norm": "batch", "dropout": 0.1,
            "residual": True}  # fmt: skip


class UserNet(nn.Module):
    """A user's network with ops of every kind the tracer knows, plus one it does not (PReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv1d = nn.Conv1d(8, 4, 5, padding=2)
        self.odd = nn.PReLU()
        self.norm = nn.LayerNorm(8 * 36)
        self.head = nn.Linear(8 * 36, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))  # (B, 8, 6, 6)
        h = h + self.odd(h)
        seq = self.conv1d(h.flatten(2))  # (B, 4, 36)
        h = torch.cat([h.flatten(1)[:, : 4 * 36], seq.flatten(1)], dim=1)  # (B, 288)
        return self.head(self.norm(h))


pytestmark = pytest.mark.usefixtures("one_thread")


def _ghn(**sizes: int) -> GraphHyperNetwork:
    torch.manual_seed(0)
    return GraphHyperNetwork(GHNConfig(**sizes))


def test_virtual_edges_join_nodes_up_to_max_hops_apart():
    enc = encode_module(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), (4,), max_hops=3)
    # input -> linear -> relu -> linear -> output: a chain of 5 nodes
    pairs = {
        (int(s), int(t)): int(h) for (s, t), h in zip(enc.virtual.tolist(), enc.hops.tolist(), strict=True)
    }
    assert pairs == {(0, 2): 2, (1, 3): 2, (2, 4): 2, (0, 3): 3, (1, 4): 3}
    assert enc.forward_level.tolist() == [0, 1, 2, 3, 4] and enc.backward_level.tolist() == [4, 3, 2, 1, 0]


@pytest.mark.parametrize(("space", "arch", "task"), [("cells", CELL_ARCH, Task((1, 8, 8), 10)),
                                                      ("mlp", MLP_ARCH, Task((30,), 2))])  # fmt: skip
def test_every_parameter_of_a_built_network_is_predicted_with_its_shape(space, arch, task):
    sp = get_space(space)
    model = sp.build(Candidate(space, arch, {}), task)
    enc = encode(sp.graph(Candidate(space, arch, {}), task))
    weights = _ghn()(GraphBatch.of([enc]))[0]
    params = dict(model.named_parameters())
    assert enc.skipped == ()
    assert {k: tuple(v.shape) for k, v in weights.items()} == {k: tuple(v.shape) for k, v in params.items()}
    logits = predicted_forward(predictive_mode(model), weights, torch.randn(16, *task.input_shape))
    assert logits.shape == (16, task.num_classes) and torch.isfinite(logits).all()


def test_unsupported_operation_is_named_and_keeps_its_default_init():
    net = UserNet()
    enc = encode_module(net, (3, 6, 6))
    assert any("odd (PReLU)" in note for note in enc.skipped)
    weights = _ghn()(GraphBatch.of([enc]))[0]
    assert "odd.weight" not in weights
    assert {"conv.weight", "conv1d.weight", "conv1d.bias", "bn.weight", "norm.bias", "head.weight"} <= set(
        weights
    )
    assert weights["conv1d.weight"].shape == (4, 8, 5)  # a 1-D kernel wider than the predicted 3
    out = predicted_forward(predictive_mode(net), weights, torch.randn(4, 3, 6, 6))
    assert out.shape == (4, 5)


def test_scale_normalisation_and_parameter_ranges():
    sp, task = get_space("mlp"), Task((30,), 2)
    enc = encode(sp.graph(Candidate("mlp", MLP_ARCH, {}), task))
    weights = _ghn()(GraphBatch.of([enc]))[0]
    bn_weight, bn_bias = weights["blocks.0.norm.weight"], weights["blocks.0.norm.bias"]
    assert ((bn_weight > 0) & (bn_weight < 2)).all() and (bn_bias.abs() < 1).all()
    # weights scale as sqrt(beta / fan_in): fan-in 256 gets about sqrt(30 / 256) of fan-in 30's spread
    ratio = weights["blocks.1.linear.weight"].std() / weights["blocks.0.linear.weight"].std()
    assert 0.1 < ratio < 1.0


def test_wide_layers_use_the_low_rank_decoder_and_tile_beyond_max_dim():
    sp, task = get_space("mlp"), Task((30,), 2)
    enc = encode(sp.graph(Candidate("mlp", MLP_ARCH, {}), task))
    weights = _ghn(rank=4, max_dim=128)(GraphBatch.of([enc]))[0]
    wide = weights["blocks.0.linear.weight"]  # (256, 30): wider than the block (96)
    assert torch.linalg.matrix_rank(wide.detach()) <= 4
    assert torch.equal(wide[:128], wide[128:])  # tiled past max_dim


def test_every_layer_of_the_widest_cells_network_is_predicted_at_full_rank():
    # A rank-limited decoder for wide layers made wide networks look worse than narrow ones
    # (benchmarks/ghn.py); the default block covers the cells space's widest layers, 96 channels.
    sp, task = get_space("cells"), Task((1, 8, 8), 10)
    enc = encode(
        sp.graph(Candidate("cells", {**CELL_ARCH, "stem_width": 24, "cells_per_stage": 1}, {}), task)
    )
    weights = _ghn()(GraphBatch.of([enc]))[0]
    layers = {k: w.detach() for k, w in weights.items() if w.dim() == 4 and w.shape[0] == 96}
    assert layers
    for name, w in layers.items():
        assert torch.linalg.matrix_rank(w.flatten(1)) == min(w.shape[0], w[0].numel()), name


def test_batched_prediction_equals_one_graph_at_a_time_and_gradients_reach_the_ghn():
    ghn = _ghn()
    sp, task = get_space("cells"), Task((1, 8, 8), 10)
    encs = [encode(sp.graph(Candidate("cells", {**CELL_ARCH, "stem_width": w}, {}), task)) for w in (8, 24)]
    together = ghn(GraphBatch.of(encs))
    for enc, batched in zip(encs, together, strict=True):
        alone = ghn(GraphBatch.of([enc]))[0]
        assert all(torch.allclose(alone[k], batched[k], atol=1e-5) for k in alone)
    sum(w.sum() for w in together[1].values()).backward()
    assert ghn.forward_sweep.gru.weight_hh.grad.abs().sum() > 0
    assert ghn.embed.op.weight.grad.abs().sum() > 0


def test_graph_from_trace_matches_graph_from_space():
    sp, task = get_space("cells"), Task((1, 8, 8), 10)
    candidate = Candidate("cells", CELL_ARCH, {})
    a, b = encode(sp.graph(candidate, task)), encode(trace(sp.build(candidate, task), task.input_shape))
    assert torch.equal(a.ops, b.ops) and [s.name for s in a.slots] == [s.name for s in b.slots]


def test_config_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="GHNConfig.hidden must be a positive number, but got 0"):
        GHNConfig(hidden=0)
    with pytest.raises(ValueError, match="unknown GHNConfig field"):
        GHNConfig.from_dict({"hiden": 3})
