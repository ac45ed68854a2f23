"""The graph hypernetwork: a GNN over a network's graph that emits every weight tensor of it.

After "Graph HyperNetworks for Neural Architecture Search" (GHN-1, Zhang, Ren & Urtasun, ICLR 2019:
a gated graph network with a forward and a backward sweep, a shared decoder per node) and
"Parameter Prediction for Unseen Deep Architectures" (GHN-2, Knyazev et al., NeurIPS 2021: op and
shape embeddings, shortest-path virtual edges, a decoder whose block is tiled or sliced to any
shape, and scale normalisation). Wide layers use a low-rank decoder after LoGAH ("Predicting
774-Million-Parameter Transformers using Graph HyperNetworks with 1/100 Parameters", Zhou et al.,
2024): ``W = A @ B`` with ``A`` and ``B`` sliced or tiled to the layer's fan-out and fan-in.

Example:
    >>> from torch import nn
    >>> from foreseer.predictors.ghn.graph import GraphBatch, encode_module
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> ghn = GraphHyperNetwork(GHNConfig())
    >>> weights = ghn(GraphBatch.of([encode_module(net, (4,))]))[0]
    >>> sorted(weights), tuple(weights["0.weight"].shape)
    (['0.bias', '0.weight', '2.bias', '2.weight'], (8, 4))
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from foreseer.predictors.ghn.graph import NUM_SHAPE_FEATURES, OPS, GraphBatch, ParamSlot, Sweep

__all__ = ["GHNConfig", "GraphHyperNetwork", "predicted_forward", "predictive_mode"]


@dataclass(frozen=True)
class GHNConfig:
    """Sizes of the hypernetwork; stored beside its weights in every checkpoint.

    Attributes:
        hidden: node state size.
        rounds: forward + backward sweep pairs. One by default: on cells x digits, with a fixed
            CPU budget, one round reached higher held-out accuracy than two (more steps, about
            the same progress per step).
        max_hops: longest shortest path joined by a virtual edge (GHN-2's s_max).
        decoder_hidden: width of the decoder MLP.
        block: fan-out and fan-in of the full-rank block; wider layers use the low-rank decoder.
            96 by default: every layer of the built-in cells space (at most 96 channels) is
            predicted at full rank. A block of 32 with a rank-8 decoder above it ranked wide
            networks below narrow ones, the opposite of training: Kendall tau with trained
            accuracy 0.33 on average over meta-training seeds, against 0.65 with a block of 96
            (``benchmarks/ghn_variants.py``; the README has the numbers).
        kernel: spatial size of predicted kernels (smaller ones are centre-cropped).
        rank: rank of the low-rank decoder (32: with a block of 32, rank 8 ranked 0.09 of tau
            worse on average over 3 to 4 meta-training seeds).
        max_dim: fan-out / fan-in the low-rank factors cover before they are tiled.
        vector_len: length of predicted biases and norm parameters before they are tiled.
        beta: weights are scaled by sqrt(beta / fan_in) (GHN-2's normalisation).
    """

    hidden: int = 32
    rounds: int = 1
    max_hops: int = 3
    decoder_hidden: int = 64
    block: int = 96
    kernel: int = 3
    rank: int = 32
    max_dim: int = 128
    vector_len: int = 128
    beta: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"GHNConfig.{f.name} must be a positive number, but got {value!r}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GHNConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GHNConfig field(s) {unknown}; known: {sorted(known)}.")
        return cls(**data)


class NodeEmbedding(nn.Module):
    """Op-type embedding plus a projection of the shape features (GHN-2's node input)."""

    def __init__(self, config: GHNConfig) -> None:
        super().__init__()
        self.op = nn.Embedding(len(OPS), config.hidden)
        self.shape = nn.Linear(NUM_SHAPE_FEATURES, config.hidden)

    def forward(self, ops: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.op(ops) + self.shape(features)  # (N, hidden)


class GraphSweep(nn.Module):
    """One gated message-passing sweep in topological (or reverse) order, level by level.

    A node's message sums an MLP of each predecessor's state, real or virtual, plus an embedding of
    the path length, weighted by 1 / length (GHN-2, eq. 4, with one MLP for both kinds of edges
    told apart by the length embedding, which halves the small matrix products on a CPU); a GRU
    cell updates the node from its message.
    """

    def __init__(self, config: GHNConfig) -> None:
        super().__init__()
        d = config.hidden
        self.hops = nn.Embedding(config.max_hops + 1, d)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))
        self.gru = nn.GRUCell(d, d)

    def forward(self, h: torch.Tensor, sweep: Sweep) -> torch.Tensor:
        for nodes, sources, targets, hops, weight in sweep.steps:
            msg = self.mlp(h[sources] + self.hops(hops)) * weight[:, None]  # (E_k, hidden)
            m = torch.zeros(len(nodes), h.shape[1], dtype=h.dtype, device=h.device).index_add(0, targets, msg)
            h = h.index_copy(0, nodes, self.gru(m, h[nodes]))  # out of place: autograd needs old h
        return h


def _fit(t: torch.Tensor, size: int, dim: int, centre: bool) -> torch.Tensor:
    """Slice (from the start, or the centre for kernels) or tile ``t`` along ``dim`` to ``size``."""
    n = t.shape[dim]
    if n < size:
        t = t.repeat(*[math.ceil(size / n) if d == dim else 1 for d in range(t.dim())])
        n = t.shape[dim]
    start = (n - size) // 2 if centre else 0
    return t.narrow(dim, start, size)


def _fit_kernel(w: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``w`` of shape ``(out, in, K, K)`` to ``shape`` = ``(out, in, *kernel)`` with 0 to 2 kernel dims."""
    k = w.shape[-1] // 2
    spatial = shape[2:]
    if len(spatial) == 0:
        return w[:, :, k, k]
    if len(spatial) == 1:
        return _fit(w[:, :, k, :], spatial[0], 2, centre=True)
    return _fit(_fit(w, spatial[0], 2, centre=True), spatial[1], 3, centre=True)


class WeightDecoder(nn.Module):
    """Node state -> its parameters: a full-rank block, a low-rank pair for wide layers, vectors."""

    def __init__(self, config: GHNConfig) -> None:
        super().__init__()
        self.config = c = config
        self.mlp = nn.Sequential(nn.Linear(c.hidden + NUM_SHAPE_FEATURES, c.decoder_hidden), nn.ReLU())
        self.block = nn.Linear(c.decoder_hidden, c.block * c.block * c.kernel**2)
        self.left = nn.Linear(c.decoder_hidden, c.max_dim * c.rank)
        self.right = nn.Linear(c.decoder_hidden, c.rank * c.max_dim * c.kernel**2)
        self.vector = nn.Linear(c.decoder_hidden, 3 * c.vector_len)

    def forward(self, h: torch.Tensor, slots: list[ParamSlot]) -> list[torch.Tensor]:
        """``h``: ``(len(slots), hidden + features)``, one row per slot; returns one tensor per slot."""
        c, z = self.config, self.mlp(h)  # (S, decoder_hidden)
        out: list[torch.Tensor | None] = [None] * len(slots)
        weights = [i for i, s in enumerate(slots) if s.role == "weight"]
        small = [i for i in weights if max(slots[i].shape[:2]) <= c.block]
        wide = [i for i in weights if max(slots[i].shape[:2]) > c.block]
        vectors = [i for i, s in enumerate(slots) if s.role != "weight"]
        if small:
            blocks = self.block(z[small]).view(len(small), c.block, c.block, c.kernel, c.kernel)
            for i, b in zip(small, blocks, strict=True):
                out[i] = self._weight(b, slots[i].shape)
        if wide:
            lefts = self.left(z[wide]).view(len(wide), c.max_dim, c.rank)
            rights = self.right(z[wide]).view(len(wide), c.rank, c.max_dim, c.kernel, c.kernel)
            for i, a, b in zip(wide, lefts, rights, strict=True):
                o, n = slots[i].shape[:2]
                w = torch.einsum("or,rikl->oikl", _fit(a, o, 0, False), _fit(b, n, 1, False))
                out[i] = self._weight(w / math.sqrt(c.rank), slots[i].shape)
        if vectors:
            vecs = self.vector(z[vectors]).view(len(vectors), 3, c.vector_len)
            for i, v in zip(vectors, vecs, strict=True):
                out[i] = self._vector(v, slots[i])
        return out  # type: ignore[return-value]

    def _weight(self, w: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        w = _fit_kernel(_fit(_fit(w, shape[0], 0, False), shape[1], 1, False), shape)
        fan_in = math.prod(shape[1:])
        return w * math.sqrt(self.config.beta / fan_in)  # GHN-2's scale normalisation

    @staticmethod
    def _vector(v: torch.Tensor, slot: ParamSlot) -> torch.Tensor:
        if slot.role == "norm_weight":
            return 2 * torch.sigmoid(_fit(v[1], slot.shape[0], 0, False))
        raw = v[0] if slot.role == "bias" else v[2]
        return torch.tanh(_fit(raw, slot.shape[0], 0, False))


class GraphHyperNetwork(nn.Module):
    """Embed nodes, run ``rounds`` forward + backward sweeps, decode each node's parameters.

    Args:
        config: the sizes.
    """

    def __init__(self, config: GHNConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = NodeEmbedding(config)
        self.forward_sweep = GraphSweep(config)
        self.backward_sweep = GraphSweep(config)
        self.norm = nn.LayerNorm(config.hidden)
        self.decoder = WeightDecoder(config)

    def forward(self, batch: GraphBatch) -> list[dict[str, torch.Tensor]]:
        """Predicted parameters, ``state_dict`` name -> tensor, one mapping per graph of ``batch``."""
        device = self.embed.op.weight.device
        features = batch.features.to(device)
        h = self.embed(batch.ops.to(device), features)  # (N, hidden)
        for _ in range(self.config.rounds):
            h = self.forward_sweep(h, _to(batch.forward, device))
            h = self.backward_sweep(h, _to(batch.backward, device))
        h = torch.cat([self.norm(h), features], dim=1)  # (N, hidden + features)
        slots = [(g, s) for g, enc in enumerate(batch.graphs) for s in enc.slots]
        rows = torch.tensor([batch.offsets[g] + s.node for g, s in slots], dtype=torch.long, device=device)
        tensors = self.decoder(h[rows], [s for _, s in slots])
        out: list[dict[str, torch.Tensor]] = [{} for _ in batch.graphs]
        for (g, slot), tensor in zip(slots, tensors, strict=True):
            out[g][slot.name] = tensor
        return out

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _to(sweep: Sweep, device: torch.device) -> Sweep:
    if device.type == "cpu":
        return sweep
    return Sweep(tuple(tuple(t.to(device) for t in step) for step in sweep.steps))  # type: ignore[misc]


def predictive_mode(model: nn.Module) -> nn.Module:
    """Put ``model`` in the mode predicted weights are evaluated in: eval (no dropout) except
    normalisation layers, which use batch statistics because running statistics are not predicted."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    return model


def predicted_forward(model: nn.Module, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` with ``weights`` in place of its parameters (differentiable in ``weights``);
    parameters absent from ``weights`` keep the model's own values."""
    return torch.func.functional_call(model, weights, (x,), strict=False)
