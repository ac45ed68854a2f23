"""Foreseer's search spaces: sample a candidate, build it as an ``nn.Module``, trace its graph.

Importing this package imports neither torch nor optuna; they are imported by the modules that
use them (the built-in spaces are loaded on the first :func:`get_space`).

Example:
    >>> import optuna
    >>> from foreseer_spaces import Task, constrain, get_space
    >>> space, task = get_space("cells"), Task((3, 32, 32), 10)
    >>> trial = constrain(optuna.create_study().ask(), {"stem_width": 16, "lr": {"high": 0.1}})
    >>> candidate = space.sample(trial, task)
    >>> model, graph = space.build(candidate, task), space.graph(candidate, task)
"""

from typing import Any

from foreseer_spaces._base import ArchGraph, GraphNode, SearchSpace, TrialLike
from foreseer_spaces._candidate import TASK_KINDS, Candidate, JsonScalar, Task
from foreseer_spaces._declarative import ParamOverride, constrain, parse_overrides
from foreseer_spaces._discovery import check_override_names, discover_param_names, discover_params
from foreseer_spaces._features import FEATURE_NAMES, SpaceFeatures
from foreseer_spaces._function_space import FunctionSpace, search_space
from foreseer_spaces._hparams import HPARAM_NAMES, sample_hparams
from foreseer_spaces._registry import ENTRY_POINT_GROUP, available_spaces, get_space, register_space


def __getattr__(name: str) -> Any:
    # trace needs torch; import it on first use so that importing this package stays cheap.
    if name == "trace":
        from foreseer_spaces._graph import trace

        return trace
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ENTRY_POINT_GROUP",
    "FEATURE_NAMES",
    "HPARAM_NAMES",
    "TASK_KINDS",
    "ArchGraph",
    "Candidate",
    "FunctionSpace",
    "GraphNode",
    "JsonScalar",
    "ParamOverride",
    "SearchSpace",
    "SpaceFeatures",
    "Task",
    "TrialLike",
    "available_spaces",
    "check_override_names",
    "constrain",
    "discover_param_names",
    "discover_params",
    "get_space",
    "parse_overrides",
    "register_space",
    "sample_hparams",
    "search_space",
    "trace",
]
