"""The search-space interface and the computational graph a space hands to the graph hypernetwork."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from foreseer_spaces._candidate import Candidate, JsonScalar, Task

if TYPE_CHECKING:
    from torch import nn


class TrialLike(Protocol):
    """The part of Optuna's define-by-run trial API a space may use (``optuna.Trial`` satisfies it)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class GraphNode:
    """One operation of a network.

    Attributes:
        id: position in ``ArchGraph.nodes`` (nodes are in topological order).
        op: operation type, e.g. ``"input"``, ``"conv"``, ``"linear"``, ``"batch_norm"``, ``"relu"``,
            ``"avg_pool"``, ``"add"``, ``"flatten"``, ``"zero"``, ``"output"`` (the full vocabulary is in
            ``foreseer_spaces._graph``), or ``"unsupported"`` (listed in ``ArchGraph.unsupported``).
        name: a unique, readable name (the traced node's name).
        module: qualified name of the ``nn.Module`` that runs this operation in the built network,
            or ``None`` for functional operations (add, concat, flatten, ...).
        out_shape: shape of the output for one example (no batch dimension).
        params: the parameters this operation owns, name -> shape: the module's parameters (names
            relative to ``module``), or, for a functional op reading parameters itself
            (``F.linear(x, self.weight)``), their qualified names; empty for parameter-free operations.
    """

    id: int
    op: str
    name: str
    module: str | None
    out_shape: tuple[int, ...]
    params: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ArchGraph:
    """A network's computational graph: operation nodes in topological order and directed edges.

    Attributes:
        nodes: the operations, ``nodes[i].id == i``, in topological order.
        edges: ``(source id, target id)`` pairs, data flowing from source to target.
        unsupported: one readable entry per operation the tracer has no op type for, e.g.
            ``"blocks.0.attn (MultiheadAttention)"``; those nodes have op ``"unsupported"``. A
            consumer that needs to understand every operation (the graph hypernetwork) checks this.
    """

    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[int, int], ...]
    unsupported: tuple[str, ...] = ()

    @property
    def num_params(self) -> int:
        """Number of parameters; a module called several times (shared weights) counts once."""
        seen: set[tuple[str, str]] = set()
        total = 0
        for node in self.nodes:
            owner = node.module if node.module is not None else node.name
            for param, shape in node.params.items():
                if (owner, param) in seen:
                    continue
                seen.add((owner, param))
                n = 1
                for d in shape:
                    n *= d
                total += n
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [
                {
                    "id": n.id,
                    "op": n.op,
                    "name": n.name,
                    "module": n.module,
                    "out_shape": list(n.out_shape),
                    "params": {k: list(v) for k, v in n.params.items()},
                }
                for n in self.nodes
            ],
            "edges": [list(e) for e in self.edges],
            "unsupported": list(self.unsupported),
        }


class SearchSpace(ABC):
    """A joint architecture + hyperparameter search space.

    Subclasses define the architecture part (:meth:`sample_arch`, :meth:`build`); the training
    hyperparameters are sampled by :func:`foreseer_spaces.sample_hparams`, shared by every space.

    Example:
        >>> import optuna
        >>> from foreseer_spaces import Task, get_space
        >>> space, task = get_space("mlp"), Task((13,), 3)
        >>> candidate = space.sample(optuna.create_study().ask(), task)
        >>> model = space.build(candidate, task)
    """

    name: str

    @abstractmethod
    def sample_arch(self, trial: TrialLike, task: Task) -> dict[str, JsonScalar]:
        """Sample an architecture through the trial (define-by-run) and return its flat description.

        Args:
            trial: where every architecture choice is suggested, by a name unique within the space.
            task: the task the network is for; built-in spaces ignore it, user-defined spaces may not.
        """

    @abstractmethod
    def build(self, candidate: Candidate, task: Task) -> nn.Module:
        """Return a freshly initialised network for ``candidate`` on ``task``."""

    def check_task(self, task: Task) -> None:
        """Raise ``ValueError`` (saying what is needed) when this space cannot build networks for ``task``."""
        return None

    def sample(self, trial: TrialLike, task: Task) -> Candidate:
        """Sample a whole candidate: the architecture, then the training hyperparameters.

        Raises:
            ValueError: when ``task`` does not fit this space (see :meth:`check_task`), or when the
                architecture uses a name reserved for a training hyperparameter.
        """
        from foreseer_spaces._hparams import HPARAM_NAMES, sample_hparams

        self.check_task(task)
        arch = self.sample_arch(trial, task)
        clashes = sorted(set(arch) & set(HPARAM_NAMES))
        if clashes:
            raise ValueError(
                f"space {self.name!r} samples architecture parameter(s) {clashes} whose names are reserved "
                f"for training hyperparameters {list(HPARAM_NAMES)}; rename them in the space."
            )
        return Candidate(self.name, arch, sample_hparams(trial))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def _check_candidate(self, candidate: Candidate) -> None:
        """Raise ``ValueError`` unless ``candidate`` was sampled from a space of this name."""
        if candidate.space != self.name:
            raise ValueError(
                f"space {self.name!r} cannot build a candidate of space {candidate.space!r}; "
                f"look the space up with get_space({candidate.space!r})."
            )

    def graph(self, candidate: Candidate, task: Task) -> ArchGraph:
        """The computational graph of ``build(candidate, task)``, traced with ``torch.fx``."""
        from foreseer_spaces._graph import trace

        return trace(self.build(candidate, task), task.input_shape)
