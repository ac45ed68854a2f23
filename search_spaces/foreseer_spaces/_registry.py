"""The registry of search spaces by name: built-ins, plug-ins and spaces registered at run time.

Plug-ins are entry points of the group ``foreseer.spaces`` naming a :class:`SearchSpace` subclass
(instantiated without arguments) or instance. Built-ins and plug-ins are loaded on the first lookup,
so ``import foreseer_spaces`` imports neither torch nor any plug-in.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from foreseer_spaces._base import SearchSpace

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "foreseer.spaces"
# Also declared as entry points in pyproject.toml; listed here so a source checkout that is not
# installed still has them.
_BUILTINS: dict[str, str] = {
    "cells": "foreseer_spaces.cells:CellSpace",
    "mlp": "foreseer_spaces.mlp:MLPSpace",
}

_spaces: dict[str, SearchSpace] = {}
_load_errors: dict[str, str] = {}  # entry-point name -> why it could not be loaded
_loaded = False
_lock = threading.RLock()


def _as_space(obj: Any, origin: str) -> SearchSpace:
    if isinstance(obj, type) and issubclass(obj, SearchSpace):
        obj = obj()
    if not isinstance(obj, SearchSpace):
        raise TypeError(f"{origin} must name a SearchSpace subclass or instance, but names {obj!r}.")
    if not isinstance(getattr(obj, "name", None), str) or not obj.name:
        raise TypeError(f"{origin} gives a space without a name; set the class attribute `name`.")
    return obj


def _load_builtin(target: str) -> SearchSpace:
    module_name, _, attr = target.partition(":")
    return _as_space(getattr(importlib.import_module(module_name), attr), f"built-in space {target!r}")


def _load_entry_point(ep: EntryPoint) -> None:
    try:
        space = _as_space(ep.load(), f"entry point {ep.name!r} ({ep.value})")
    except Exception as e:  # a broken plug-in must not take the other spaces down with it
        _load_errors[ep.name] = f"{type(e).__name__}: {e}"
        logger.warning("Search-space entry point %r (%s) could not be loaded: %s", ep.name, ep.value, e)
        return
    if space.name != ep.name:
        logger.warning(
            "Entry point %r gives a space named %r; it is registered as %r.", ep.name, space.name, space.name
        )
    if space.name in _spaces:
        logger.warning(
            "Entry point %r (%s) ignored: a space named %r exists already.", ep.name, ep.value, space.name
        )
        return
    _spaces[space.name] = space


def _ensure_loaded() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        for name, target in _BUILTINS.items():
            _spaces.setdefault(name, _load_builtin(target))
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if _BUILTINS.get(ep.name) != ep.value:
                _load_entry_point(ep)


def register_space(space: SearchSpace, *, replace: bool = False) -> SearchSpace:
    """Make ``space`` available to :func:`get_space` under ``space.name``.

    Args:
        space: the space to register.
        replace: replace a space registered under the same name instead of raising.

    Returns:
        ``space``, for chaining.

    Raises:
        TypeError: when ``space`` is not a :class:`SearchSpace` with a non-empty string name.
        ValueError: when a space of that name exists and ``replace`` is false.
    """
    space = _as_space(space, "register_space(space)")
    with _lock:
        _ensure_loaded()
        if space.name in _spaces and not replace:
            raise ValueError(
                f"a search space named {space.name!r} is registered already ({_spaces[space.name]!r}); "
                "choose another name or pass replace=True."
            )
        _spaces[space.name] = space
    return space


def get_space(name: str) -> SearchSpace:
    """The registered space called ``name``.

    Raises:
        ValueError: when no space has that name; the message lists the available names.

    Example:
        >>> get_space("mlp").name
        'mlp'
    """
    _ensure_loaded()
    space = _spaces.get(name)
    if space is not None:
        return space
    available = sorted(_spaces)
    message = f"unknown search space {name!r}; available spaces are {available}."
    close = difflib.get_close_matches(str(name), available, n=1)
    if close:
        message += f" Did you mean {close[0]!r}?"
    if name in _load_errors:
        message += f" The entry point {name!r} exists but could not be loaded: {_load_errors[name]}"
    raise ValueError(message)


def available_spaces() -> list[str]:
    """The names of every registered space, sorted."""
    _ensure_loaded()
    return sorted(_spaces)
