"""A built network's computational graph, traced with ``torch.fx``, for the graph hypernetwork.

Each operation of the traced network becomes one :class:`GraphNode`; values that are not tensors
(``x.size(0)``, tuple indexing) and parameter reads are not operations, and data flowing through
them is passed on to the operations that consume them. An operation with no op type here becomes a
node of op ``"unsupported"`` and is listed in ``ArchGraph.unsupported``, so it is never dropped
silently.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import fx, nn

from foreseer_spaces._base import ArchGraph, GraphNode

logger = logging.getLogger(__name__)

# Checked in order with isinstance.
MODULE_OPS: tuple[tuple[type[nn.Module] | tuple[type[nn.Module], ...], str], ...] = (
    ((nn.Conv1d, nn.Conv2d), "conv"),
    (nn.Linear, "linear"),
    ((nn.BatchNorm1d, nn.BatchNorm2d), "batch_norm"),
    (nn.LayerNorm, "layer_norm"),
    (nn.ReLU, "relu"),
    (nn.GELU, "gelu"),
    (nn.SiLU, "silu"),
    (nn.Tanh, "tanh"),
    (nn.Sigmoid, "sigmoid"),
    (nn.AvgPool2d, "avg_pool"),
    (nn.MaxPool2d, "max_pool"),
    (nn.Dropout, "dropout"),
    (nn.Identity, "identity"),
    (nn.Flatten, "flatten"),
)

FUNCTION_OPS: dict[Callable[..., Any], str] = {
    operator.add: "add",
    operator.iadd: "add",
    torch.add: "add",
    torch.cat: "concat",
    torch.flatten: "flatten",
    torch.zeros_like: "zero",
    torch.relu: "relu",
    F.relu: "relu",
    F.gelu: "gelu",
    F.silu: "silu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.dropout: "dropout",
    F.linear: "linear",
    F.conv1d: "conv",
    F.conv2d: "conv",
    F.batch_norm: "batch_norm",
    F.layer_norm: "layer_norm",
    F.avg_pool2d: "avg_pool",
    F.max_pool2d: "max_pool",
}

METHOD_OPS: dict[str, str] = {
    "add": "add",
    "add_": "add",
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "flatten": "flatten",
    "contiguous": "identity",
}


class TensorShape(NamedTuple):
    """What shape propagation records of a tensor a node computes (batch dimension included)."""

    shape: tuple[int, ...]


def _shapes_of(value: Any) -> Any:
    """``value`` with every tensor replaced by its :class:`TensorShape`; ``None`` when it holds no tensor."""
    if isinstance(value, torch.Tensor):
        return TensorShape(tuple(value.shape))
    if isinstance(value, dict):
        shapes: Any = {k: _shapes_of(v) for k, v in value.items()}
        found = shapes.values()
    elif isinstance(value, list | tuple):
        shapes = found = [_shapes_of(v) for v in value]
    else:
        return None
    return shapes if any(v is not None for v in found) else None


class _ShapeRecorder(fx.Interpreter):
    """Runs a traced graph on the module it was traced from and stores what each node computes in
    ``node.meta["tensor_meta"]``, as torch.fx's ShapeProp does, but with no GraphModule to generate
    and compile first (a third of the tracing time of a cells network)."""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        shapes = _shapes_of(result)
        if shapes is not None:
            n.meta["tensor_meta"] = shapes
        return result


def _first_meta(meta: Any) -> TensorShape | None:
    """The first tensor's shape in a node's (possibly nested) ``tensor_meta``."""
    if isinstance(meta, TensorShape):
        return meta
    items = meta.values() if isinstance(meta, dict) else meta if isinstance(meta, list | tuple) else ()
    for item in items:
        found = _first_meta(item)
        if found is not None:
            return found
    return None


def _rank(node: Any) -> int | None:
    meta = _first_meta(node.meta.get("tensor_meta")) if isinstance(node, fx.Node) else None
    return None if meta is None else len(meta.shape)


def _is_spatial_mean(node: fx.Node) -> bool:
    rank = _rank(node.args[0])
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if rank is None or rank < 3 or dims is None:
        return False
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return sorted(d % rank for d in dims) == list(range(2, rank))


def _is_flattening(node: fx.Node) -> bool:
    # view / reshape to (batch, features): what a flatten before a classifier does.
    out = _first_meta(node.meta.get("tensor_meta"))
    source = _first_meta(node.args[0].meta.get("tensor_meta")) if isinstance(node.args[0], fx.Node) else None
    return out is not None and source is not None and len(out.shape) == 2 and out.shape[0] == source.shape[0]


def _module_op(module: nn.Module) -> str:
    for types, op in MODULE_OPS:
        if isinstance(module, types):
            return op
    if isinstance(module, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d):
        size = module.output_size
        sizes = size if isinstance(size, tuple) else (size,)
        return "global_avg_pool" if all(s == 1 for s in sizes) else "unsupported"
    return "unsupported"


def _op(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "placeholder":
        return "input"
    if node.op == "output":
        return "output"
    if node.op == "call_module":
        return _module_op(modules[str(node.target)])
    if node.op == "call_function":
        if node.target is torch.mean:
            return "global_avg_pool" if _is_spatial_mean(node) else "unsupported"
        if node.target is F.adaptive_avg_pool2d:
            out = _first_meta(node.meta.get("tensor_meta"))
            return "global_avg_pool" if out is not None and tuple(out.shape[2:]) == (1, 1) else "unsupported"
        return FUNCTION_OPS.get(node.target, "unsupported")  # type: ignore[arg-type]
    if node.target == "mean":
        return "global_avg_pool" if _is_spatial_mean(node) else "unsupported"
    if node.target in ("view", "reshape"):
        return "flatten" if _is_flattening(node) else "unsupported"
    return METHOD_OPS.get(str(node.target), "unsupported")


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"{node.target} ({type(modules[str(node.target)]).__name__})"
    if node.op == "call_method":
        return f"{node.name} (Tensor.{node.target})"
    target = node.target
    module = getattr(target, "__module__", None) or ""
    module = "operator" if module == "_operator" else module
    qualified = f"{module}.{getattr(target, '__name__', repr(target))}".lstrip(".")
    return f"{node.name} ({qualified})"


def _is_operation(node: fx.Node) -> bool:
    """Whether ``node`` is a graph node: it computes a tensor (or is the network's input or output)."""
    if node.op in ("placeholder", "output", "call_module"):
        return True
    if node.op == "get_attr" or "tensor_meta" not in node.meta:
        return False
    if node.target is operator.getitem and isinstance(node.args[0], fx.Node):
        # Picking one tensor out of a tuple moves data; indexing into a tensor is an operation.
        return isinstance(node.args[0].meta.get("tensor_meta"), TensorShape)
    return True


def _shape_propagate(module: nn.Module, graph: fx.Graph, input_shape: tuple[int, ...]) -> None:
    """Run ``graph`` in eval mode on a batch of 2, leaving every submodule's mode as it was."""
    modes = [(m, m.training) for m in module.modules()]
    first = next(module.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    try:
        module.eval()
        with torch.no_grad():
            _ShapeRecorder(module, graph=graph).run(torch.randn(2, *input_shape, device=device, dtype=dtype))
    finally:
        for m, training in modes:
            m.training = training


def _params(node: fx.Node, modules: dict[str, nn.Module], root: nn.Module, claimed: set[str]) -> dict:
    if node.op == "call_module":
        return {name: tuple(p.shape) for name, p in modules[str(node.target)].named_parameters()}
    # A functional op reading parameters directly (F.linear(x, self.weight)) owns them; shared
    # parameters are owned by their first reader only. Buffers and constants are not parameters.
    params = {}
    for source in node.all_input_nodes:
        target = str(source.target)
        if source.op != "get_attr" or target in claimed:
            continue
        try:
            params[target] = tuple(root.get_parameter(target).shape)
        except AttributeError:
            continue
        claimed.add(target)
    return params


def trace(module: nn.Module, input_shape: tuple[int, ...]) -> ArchGraph:
    """The computational graph of ``module`` for inputs of shape ``input_shape`` (no batch dimension).

    Args:
        module: a network that ``torch.fx.symbolic_trace`` can trace (no data-dependent control flow).
        input_shape: shape of one example, e.g. ``(3, 32, 32)``.

    Returns:
        One node per operation in topological order (ids are positions) and the data edges between
        them; operations without an op type are listed in ``unsupported``.

    Raises:
        ValueError: when ``torch.fx`` cannot trace ``module``.

    Example:
        >>> graph = trace(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), (4,))
        >>> [node.op for node in graph.nodes]
        ['input', 'linear', 'relu', 'linear', 'output']
    """
    try:
        graph = fx.Tracer().trace(module)
    except Exception as e:  # fx raises many types (TraceError, TypeError, NotImplementedError, ...)
        raise ValueError(
            f"torch.fx cannot trace {type(module).__name__} ({type(e).__name__}: {e}); a traceable network "
            "has no control flow that depends on tensor values."
        ) from e
    _shape_propagate(module, graph, tuple(input_shape))
    modules = dict(module.named_modules())
    ids: dict[fx.Node, int] = {}
    passed: dict[fx.Node, set[int]] = {}  # skipped node -> the graph nodes its value comes from
    nodes: list[GraphNode] = []
    edges: set[tuple[int, int]] = set()
    unsupported: list[str] = []
    claimed: set[str] = set()
    for node in graph.nodes:
        sources = set().union(*({ids[m]} if m in ids else passed[m] for m in node.all_input_nodes))
        if not _is_operation(node):
            passed[node] = sources
            continue
        op = _op(node, modules)
        if op == "unsupported":
            unsupported.append(_describe(node, modules))
        meta = _first_meta(node.meta.get("tensor_meta"))
        ids[node] = len(nodes)
        nodes.append(
            GraphNode(
                id=len(nodes),
                op=op,
                name=node.name,
                module=str(node.target) if node.op == "call_module" else None,
                out_shape=tuple(meta.shape[1:]) if meta is not None else (),
                params=_params(node, modules, module, claimed),
            )
        )
        edges.update((source, ids[node]) for source in sources)
    if unsupported:
        logger.warning(
            "%s has %d operation(s) with no graph op type: %s",
            type(module).__name__,
            len(unsupported),
            unsupported,
        )
    return ArchGraph(nodes=tuple(nodes), edges=tuple(sorted(edges)), unsupported=tuple(unsupported))
