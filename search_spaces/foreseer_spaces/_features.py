"""Configuration features: a candidate as a fixed-width vector in ``[0, 1]``, what the in-context
learning-curve PFN reads.

After ifBO's FT-PFN (Rakotoarison et al., ICML 2024), whose configurations are their
hyperparameters normalised to ``[0, 1]``. Foreseer's spaces differ in their architecture
parameters (and a user's space has its own), so the architecture enters through cheap features
of the network built, the same for every space, and one trained model serves every space:

* the shared training hyperparameters (:data:`HPARAM_NAMES`), each normalised on the
  distribution the job samples it from (log-scaled where sampled so; a categorical by its index
  among the choices; 0 where a conditional one is absent, such as ``momentum`` for AdamW);
* the network: log parameter count, layers with weights, log mean width of those layers (each
  normalised between the least and the most of the probe, below), and the shares of its leaf
  modules that are convolutions, linear layers, normalisations, poolings, activations, and
  dropout or identity.

A :class:`SpaceFeatures` samples a probe of candidates once, with a seeded random sampler (so a
resumed job gets the same bounds), and draws "what the space may propose next" from that probe.

Example:
    >>> from foreseer_spaces import Task, get_space
    >>> space, task = get_space("mlp"), Task((13,), 3)
    >>> features = SpaceFeatures.of(space, task, probe=8)
    >>> x = features(features.probe[0])
    >>> len(x), all(0.0 <= v <= 1.0 for v in x)
    (16, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from foreseer_spaces._declarative import constrain
from foreseer_spaces._hparams import HPARAM_NAMES

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from torch import nn

    from foreseer_spaces._base import SearchSpace
    from foreseer_spaces._candidate import Candidate, Task

__all__ = ["FEATURE_NAMES", "SpaceFeatures"]

_NETWORK = ("log_params", "layers", "log_width")
#: Leaf-module kinds whose shares are features, each a tuple of class-name fragments.
_KINDS = {
    "conv": ("Conv",),
    "linear": ("Linear",),
    "norm": ("Norm",),
    "pool": ("Pool",),
    "activation": ("ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "ELU", "Mish", "Hardswish", "Softplus"),
    "passthrough": ("Dropout", "Identity"),
}
#: The features, in order.
FEATURE_NAMES: tuple[str, ...] = (*HPARAM_NAMES, *_NETWORK, *(f"share_{k}" for k in _KINDS))


def _network(model: nn.Module) -> tuple[float, float, float, list[float]]:
    """Parameter count, layers with weights, mean width of those layers, and the share of leaf
    modules of each kind of ``_KINDS``."""
    params = sum(p.numel() for p in model.parameters())
    widths = [
        m.weight.shape[0]
        for m in model.modules()
        if getattr(m, "weight", None) is not None and m.weight.dim() >= 2
    ]
    leaves = [type(m).__name__ for m in model.modules() if not any(True for _ in m.children())]
    shares = [
        sum(any(f in name for f in frags) for name in leaves) / max(1, len(leaves))
        for frags in _KINDS.values()
    ]
    return float(params), float(len(widths)), float(np.mean(widths)) if widths else 1.0, shares


def _unit(value: Any, distribution: BaseDistribution) -> float:
    """``value`` on ``distribution`` mapped onto ``[0, 1]``."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        return choices.index(value) / max(1, len(choices) - 1) if value in choices else 0.0
    low, high, v = float(distribution.low), float(distribution.high), float(value)
    if high <= low:
        return 0.0
    if getattr(distribution, "log", False):
        low, high, v = math.log(low), math.log(high), math.log(max(v, distribution.low))
    return min(1.0, max(0.0, (v - low) / (high - low)))


class SpaceFeatures:
    """Maps candidates of one job's space onto ``len(FEATURE_NAMES)`` features in ``[0, 1]``.

    Args:
        build: builds the network of a candidate.
        distributions: the distribution of each hyperparameter the job samples.
        probe: candidates the job may propose, which set the bounds of the network features and
            are what :meth:`draw` draws from.
    """

    def __init__(
        self,
        build: Callable[[Candidate], nn.Module],
        distributions: dict[str, BaseDistribution],
        probe: Sequence[Candidate],
    ) -> None:
        if not probe:
            raise ValueError("SpaceFeatures needs a probe of at least one candidate.")
        self.build, self.distributions, self.probe = build, distributions, list(probe)
        nets = [_network(build(c)) for c in self.probe]
        logs = np.array([[math.log(n[0] + 1), n[1], math.log(n[2] + 1)] for n in nets])
        self._low, self._high = logs.min(axis=0), logs.max(axis=0)
        self._probe_features = np.stack([self._features(c, n) for c, n in zip(self.probe, nets, strict=True)])

    @classmethod
    def of(
        cls,
        space: SearchSpace,
        task: Task,
        overrides: Mapping[str, Any] | None = None,
        probe: int = 64,
        seed: int = 0,
    ) -> SpaceFeatures:
        """The features of ``space`` on ``task``, probed with ``probe`` candidates of a seeded
        random sampler, sampled under ``overrides`` (a job's ``space.params``) as the job samples."""
        import optuna

        if probe < 1:
            raise ValueError(f"probe must be at least 1, but got {probe=}.")
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a probe, not a study to announce
        try:
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        finally:
            optuna.logging.set_verbosity(verbosity)
        candidates, distributions = [], {}
        for _ in range(probe):
            trial = study.ask()
            candidates.append(space.sample(constrain(trial, overrides), task))
            for name, distribution in trial.distributions.items():
                distributions.setdefault(name, distribution)
        return cls(lambda c: space.build(c, task), distributions, candidates)

    def __call__(self, candidate: Candidate) -> tuple[float, ...]:
        """The features of ``candidate`` (builds its network once)."""
        return tuple(self._features(candidate, _network(self.build(candidate))).tolist())

    def draw(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """Features ``(k, len(FEATURE_NAMES))`` of ``k`` probe candidates drawn with ``rng``: what
        the space may propose next."""
        return self._probe_features[rng.integers(0, len(self._probe_features), k)]

    def _features(self, candidate: Candidate, network: tuple[float, float, float, list[float]]) -> np.ndarray:
        hparams = [
            _unit(candidate.hparams[name], self.distributions[name])
            if name in candidate.hparams and name in self.distributions
            else 0.0
            for name in HPARAM_NAMES
        ]
        params, layers, width, shares = network
        logs = np.array([math.log(params + 1), layers, math.log(width + 1)])
        span = np.where(self._high > self._low, self._high - self._low, 1.0)
        scaled = np.clip((logs - self._low) / span, 0.0, 1.0)
        return np.array([*hparams, *scaled, *shares], dtype=np.float64)
