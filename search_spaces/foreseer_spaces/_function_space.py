"""User-defined spaces: a define-by-run function ``fn(trial, task) -> nn.Module`` as a search space."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from foreseer_spaces._base import SearchSpace, TrialLike
from foreseer_spaces._candidate import Candidate, JsonScalar, Task

if TYPE_CHECKING:
    from torch import nn

SpaceFunction = Callable[[Any, Task], "nn.Module"]


class _RecordingTrial:
    """Passes every call to ``trial`` and keeps the value of each ``suggest_*`` by name."""

    def __init__(self, trial: TrialLike) -> None:
        self._trial = trial
        self.params: dict[str, JsonScalar] = {}

    def _before(self, name: str) -> None:
        """Called before each suggestion; a hook for :class:`_ReplayTrial`."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self._before(name)
        value = self._trial.suggest_int(name, low, high, step=step, log=log)
        self.params[name] = value
        return value

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        self._before(name)
        value = self._trial.suggest_float(name, low, high, step=step, log=log)
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self._before(name)
        value = self._trial.suggest_categorical(name, choices)
        self.params[name] = value
        return value

    def __getattr__(self, attr: str) -> Any:
        if attr == "_trial":  # not set yet (copy, unpickling): do not recurse
            raise AttributeError(attr)
        if attr.startswith("suggest_"):
            # The deprecated suggest_uniform & co. would bypass the record and break the replay.
            raise AttributeError(
                f"a search-space function may call suggest_int, suggest_float or suggest_categorical, "
                f"but called {attr}."
            )
        return getattr(self._trial, attr)


class _ReplayTrial(_RecordingTrial):
    """Answers every suggestion from a candidate's architecture (through Optuna's ``FixedTrial``)."""

    def __init__(self, space: str, candidate: Candidate) -> None:
        from optuna.trial import FixedTrial

        super().__init__(FixedTrial(dict(candidate.arch)))
        self._space = space
        self._candidate = candidate

    def _before(self, name: str) -> None:
        if name not in self._candidate.arch:
            raise ValueError(
                f"space {self._space!r} suggests {name!r}, which the candidate does not have; has the "
                f"function changed since the candidate was sampled? candidate: {self._candidate!r}"
            )


def _check_module(value: Any, name: str) -> None:
    from torch import nn

    if not isinstance(value, nn.Module):
        raise TypeError(
            f"search-space function {name!r} must return a torch.nn.Module, "
            f"but returned {type(value).__name__}."
        )


class FunctionSpace(SearchSpace):
    """A search space defined by a function ``fn(trial, task) -> nn.Module`` (Optuna's define-by-run).

    Sampling runs ``fn`` and keeps what it suggested (the network built meanwhile is discarded);
    building runs ``fn`` again with a trial that answers every suggestion from the candidate. ``fn``
    must therefore build the same network for the same answers. The space pickles with cloudpickle
    (``fn`` by value when it is defined in ``__main__`` or locally), so it can be shipped to workers.
    Usually made with the :func:`search_space` decorator.

    Args:
        name: the space's name, as recorded in every candidate.
        fn: the define-by-run function.
    """

    def __init__(self, name: str, fn: SpaceFunction) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a search space's name must be a non-empty string, but got {name!r}.")
        if not callable(fn):
            raise TypeError(
                f"a search space's function must be callable, but got {type(fn).__name__} {fn!r}."
            )
        self.name = name
        self.fn = fn

    def sample_arch(self, trial: TrialLike, task: Task) -> dict[str, JsonScalar]:
        recorder = _RecordingTrial(trial)
        _check_module(self.fn(recorder, task), self.name)
        return dict(recorder.params)

    def build(self, candidate: Candidate, task: Task) -> nn.Module:
        self._check_candidate(candidate)
        module = self.fn(_ReplayTrial(self.name, candidate), task)
        _check_module(module, self.name)
        return module

    def __repr__(self) -> str:
        qualname = getattr(self.fn, "__qualname__", repr(self.fn))
        return f"FunctionSpace(name={self.name!r}, fn={qualname})"


def search_space(name: str, *, replace: bool = False) -> Callable[[SpaceFunction], FunctionSpace]:
    """Decorator: turn ``fn(trial, task) -> nn.Module`` into a registered :class:`FunctionSpace`.

    Args:
        name: the space's name, used by :func:`get_space` and recorded in every candidate.
        replace: replace a space registered under the same name instead of raising.

    Raises:
        TypeError: when used without a name (``@search_space`` instead of ``@search_space("name")``).
        ValueError: when a space of that name exists and ``replace`` is false.

    Example:
        >>> from torch import nn
        >>> from foreseer_spaces import get_space
        >>> @search_space("tiny_mlp", replace=True)
        ... def tiny_mlp(trial, task):
        ...     width = trial.suggest_int("width", 8, 64, log=True)
        ...     return nn.Sequential(nn.Flatten(), nn.Linear(task.num_features, width), nn.ReLU(),
        ...                          nn.Linear(width, task.num_outputs))
        >>> get_space("tiny_mlp") is tiny_mlp
        True
    """
    from foreseer_spaces._registry import register_space

    if not isinstance(name, str):
        raise TypeError(
            f"search_space needs the space's name, as in @search_space('my_space'), but got {name!r}."
        )

    def decorate(fn: SpaceFunction) -> FunctionSpace:
        space = FunctionSpace(name, fn)
        register_space(space, replace=replace)
        return space

    return decorate
