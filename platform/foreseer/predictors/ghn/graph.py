"""A network's graph as the tensors the graph hypernetwork reads, and meta-batches of such graphs.

An :class:`foreseer_spaces.ArchGraph` (from ``space.graph(candidate, task)`` or from any
``nn.Module`` traced with ``torch.fx``, see :func:`encode_module`) becomes a :class:`GraphEncoding`:
one op index and one shape-feature vector per node, the data edges, GHN-2's shortest-path
"virtual" edges (Knyazev et al., "Parameter Prediction for Unseen Deep Architectures", NeurIPS
2021, section 4), and one :class:`ParamSlot` per parameter the hypernetwork will predict.

Parameters the hypernetwork cannot predict (those of an ``"unsupported"`` operation, or of an
unexpected name or rank) are listed in ``GraphEncoding.skipped``: their module keeps its default
initialisation, and whoever uses the prediction is told.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import torch
from torch import nn

from foreseer_spaces import ArchGraph, GraphNode

__all__ = ["OPS", "ROLES", "GraphBatch", "GraphEncoding", "ParamSlot", "encode", "encode_module"]

#: The op vocabulary (``foreseer_spaces._graph``'s); an op outside it is embedded as "unsupported".
OPS: tuple[str, ...] = (
    "input", "output", "conv", "linear", "batch_norm", "layer_norm", "relu", "gelu", "silu", "tanh",
    "sigmoid", "avg_pool", "max_pool", "dropout", "identity", "flatten", "zero", "add", "concat",
    "global_avg_pool", "unsupported",
)  # fmt: skip
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
#: What a predicted tensor is, which decides its decoder head and its scale normalisation.
ROLES: tuple[str, ...] = ("weight", "bias", "norm_weight", "norm_bias")
_WEIGHTED_OPS = ("conv", "linear")
_NORM_OPS = ("batch_norm", "layer_norm")
NUM_SHAPE_FEATURES = 10


@dataclass(frozen=True)
class ParamSlot:
    """One parameter to predict: the node that owns it, its ``state_dict`` name, shape and role."""

    node: int
    name: str
    shape: tuple[int, ...]
    role: str


@dataclass(frozen=True)
class GraphEncoding:
    """One network's graph as tensors.

    Attributes:
        ops: ``(N,)`` op indices into :data:`OPS`.
        features: ``(N, NUM_SHAPE_FEATURES)`` log-scaled output and parameter shapes.
        edges: ``(E, 2)`` data edges ``(source, target)``.
        virtual: ``(V, 2)`` pairs joined by a shortest path of length 2..``max_hops``.
        hops: ``(V,)`` those path lengths.
        forward_level: ``(N,)`` longest path from a source node; backward_level: to a sink node.
        slots: the parameters to predict.
        skipped: readable notes on operations and parameters that keep their default initialisation.
    """

    ops: torch.Tensor
    features: torch.Tensor
    edges: torch.Tensor
    virtual: torch.Tensor
    hops: torch.Tensor
    forward_level: torch.Tensor
    backward_level: torch.Tensor
    slots: tuple[ParamSlot, ...]
    skipped: tuple[str, ...]

    @property
    def num_nodes(self) -> int:
        return len(self.ops)


def _log_feature(value: int) -> float:
    return math.log2(1 + value) / 8


def _node_features(node: GraphNode) -> list[float]:
    out = list(node.out_shape)
    channels = out[0] if out else 0
    spatial = math.prod(out[1:]) if len(out) > 1 else 0
    weights = [s for name, s in node.params.items() if len(s) >= 2]
    w = weights[0] if weights else ()
    kernel = math.prod(w[2:]) if len(w) > 2 else (1 if w else 0)
    return [
        _log_feature(channels),
        _log_feature(spatial),
        _log_feature(w[0]) if w else 0.0,
        _log_feature(w[1]) if w else 0.0,
        kernel / 9,
        float(len(out)) / 3,
        float(any(len(s) == 1 for s in node.params.values())),
        float(bool(node.params)),
    ]


def _role(node: GraphNode, shape: tuple[int, ...], name: str) -> str | None:
    leaf = name.rsplit(".", 1)[-1]
    if node.op in _WEIGHTED_OPS:
        if len(shape) >= 2:
            return "weight"
        return "bias" if len(shape) == 1 else None
    if node.op in _NORM_OPS and len(shape) == 1:
        return {"weight": "norm_weight", "bias": "norm_bias"}.get(leaf)
    return None


def _slots(graph: ArchGraph) -> tuple[list[ParamSlot], list[str]]:
    slots: list[ParamSlot] = []
    skipped: list[str] = [f"{entry}: unsupported operation" for entry in graph.unsupported]
    seen: set[str] = set()
    for node in graph.nodes:
        for param, shape in node.params.items():
            name = f"{node.module}.{param}" if node.module else param
            if name in seen:  # a module called twice shares its parameters: predicted once
                continue
            seen.add(name)
            role = _role(node, tuple(shape), name)
            if role is None:
                skipped.append(
                    f"{name} {tuple(shape)} of {node.op} node {node.name!r}: keeps its default init"
                )
            else:
                slots.append(ParamSlot(node.id, name, tuple(shape), role))
    return slots, skipped


def _levels(num_nodes: int, edges: list[tuple[int, int]], reverse: bool) -> list[int]:
    level = [0] * num_nodes
    order = range(num_nodes - 1, -1, -1) if reverse else range(num_nodes)
    preds: list[list[int]] = [[] for _ in range(num_nodes)]
    for s, t in edges:
        preds[s if reverse else t].append(t if reverse else s)
    for v in order:  # node ids are topological
        level[v] = max((level[u] + 1 for u in preds[v]), default=0)
    return level


def _virtual_edges(num_nodes: int, edges: list[tuple[int, int]], max_hops: int) -> list[tuple[int, int, int]]:
    succ: list[list[int]] = [[] for _ in range(num_nodes)]
    for s, t in edges:
        succ[s].append(t)
    out = []
    for source in range(num_nodes):
        dist = {source: 0}
        queue = deque([source])
        while queue:
            u = queue.popleft()
            if dist[u] >= max_hops:
                continue
            for v in succ[u]:
                if v not in dist:
                    dist[v] = dist[u] + 1
                    queue.append(v)
        out.extend((source, v, d) for v, d in dist.items() if d >= 2)
    return out


def encode(graph: ArchGraph, *, max_hops: int = 3) -> GraphEncoding:
    """Encode ``graph`` for the hypernetwork.

    Args:
        graph: nodes in topological order (as the tracer gives them).
        max_hops: longest shortest path that gets a virtual edge (GHN-2's s_max); 1 disables them.

    Example:
        >>> from foreseer_spaces import trace
        >>> enc = encode(trace(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (4,)))
        >>> [slot.name for slot in enc.slots]
        ['0.weight', '0.bias', '2.weight', '2.bias']
    """
    edges = [(int(s), int(t)) for s, t in graph.edges]
    if any(s >= t for s, t in edges):
        raise ValueError("graph nodes must be in topological order (every edge from a lower to a higher id).")
    slots, skipped = _slots(graph)
    virtual = _virtual_edges(len(graph.nodes), edges, max_hops)
    forward, backward = (_levels(len(graph.nodes), edges, reverse=r) for r in (False, True))
    # Depth from either end tells the decoder where a node sits before message passing does.
    features = [
        [*_node_features(n), f / 64, b / 64] for n, f, b in zip(graph.nodes, forward, backward, strict=True)
    ]
    return GraphEncoding(
        ops=torch.tensor([_OP_INDEX.get(n.op, _OP_INDEX["unsupported"]) for n in graph.nodes]),
        features=torch.tensor(features, dtype=torch.float32),
        edges=torch.tensor(edges, dtype=torch.long).reshape(-1, 2),
        virtual=torch.tensor([(s, t) for s, t, _ in virtual], dtype=torch.long).reshape(-1, 2),
        hops=torch.tensor([d for _, _, d in virtual], dtype=torch.float32),
        forward_level=torch.tensor(forward),
        backward_level=torch.tensor(backward),
        slots=tuple(slots),
        skipped=tuple(skipped),
    )


def encode_module(module: nn.Module, input_shape: tuple[int, ...], *, max_hops: int = 3) -> GraphEncoding:
    """Trace any ``torch.fx``-traceable network and encode its graph (see :func:`encode`).

    Example:
        >>> enc = encode_module(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten()), (1, 8, 8))
        >>> enc.num_nodes, enc.skipped
        (5, ())
    """
    from foreseer_spaces import trace

    return encode(trace(module, tuple(input_shape)), max_hops=max_hops)


@dataclass(frozen=True)
class Sweep:
    """One direction of message passing, level by level: ``steps[k]`` is ``(nodes, sources,
    targets, hops, weight)``: the nodes updated, then one entry per incoming edge (targets index
    into ``nodes``; hops is 1 for a data edge, the path length for a virtual one; weight 1 / hops)."""

    steps: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], ...]


@dataclass(frozen=True)
class GraphBatch:
    """Several graphs as one disjoint graph: what one hypernetwork forward pass reads.

    Attributes:
        graphs: the encodings, in order.
        ops, features: concatenated node inputs, ``(N_total,)`` and ``(N_total, F)``.
        offsets: first node id of each graph.
        forward, backward: the two message-passing sweeps.
    """

    graphs: tuple[GraphEncoding, ...]
    ops: torch.Tensor
    features: torch.Tensor
    offsets: tuple[int, ...]
    forward: Sweep
    backward: Sweep

    @classmethod
    def of(cls, graphs: list[GraphEncoding] | tuple[GraphEncoding, ...]) -> GraphBatch:
        """Batch ``graphs`` (at least one)."""
        if not graphs:
            raise ValueError("a GraphBatch needs at least one graph, but got none.")
        offsets, total = [], 0
        for g in graphs:
            offsets.append(total)
            total += g.num_nodes
        shift = torch.tensor(offsets).repeat_interleave(torch.tensor([len(g.edges) for g in graphs]))
        edges = torch.cat([g.edges for g in graphs]) + shift[:, None]
        vshift = torch.tensor(offsets).repeat_interleave(torch.tensor([len(g.virtual) for g in graphs]))
        virtual = torch.cat([g.virtual for g in graphs]) + vshift[:, None]
        hops = torch.cat([g.hops for g in graphs])
        fwd = torch.cat([g.forward_level for g in graphs])
        bwd = torch.cat([g.backward_level for g in graphs])
        return cls(
            graphs=tuple(graphs),
            ops=torch.cat([g.ops for g in graphs]),
            features=torch.cat([g.features for g in graphs]),
            offsets=tuple(offsets),
            forward=_sweep(fwd, edges, virtual, hops, reverse=False),
            backward=_sweep(bwd, edges, virtual, hops, reverse=True),
        )


def _sweep(
    level: torch.Tensor, edges: torch.Tensor, virtual: torch.Tensor, hops: torch.Tensor, reverse: bool
) -> Sweep:
    # In a backward sweep messages flow against the data edges.
    src_col, dst_col = (1, 0) if reverse else (0, 1)
    sources = torch.cat([edges[:, src_col], virtual[:, src_col]])
    targets = torch.cat([edges[:, dst_col], virtual[:, dst_col]])
    hop = torch.cat([torch.ones(len(edges), dtype=torch.long), hops.long()])
    weight = 1.0 / hop
    position = torch.empty_like(level)
    steps = []
    for k in range(1, int(level.max()) + 1 if len(level) else 0):
        nodes = torch.nonzero(level == k).flatten()
        position[nodes] = torch.arange(len(nodes))
        mask = level[targets] == k
        steps.append((nodes, sources[mask], position[targets[mask]], hop[mask], weight[mask]))
    return Sweep(tuple(steps))
