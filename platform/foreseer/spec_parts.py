"""The parts of a job specification: objective, resources, space, data, screening (each stopping
strategy's spec lives with its policy in :mod:`foreseer.stopping`).

Each is a frozen pydantic model that rejects unknown keys; :class:`foreseer.spec.SearchJob`
puts them together.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from foreseer_workers.metrics import TRIAL_METRICS

if TYPE_CHECKING:
    from foreseer.screening import Screener, ScreeningGate

__all__ = [
    "DatasetSpec",
    "GHNBudget",
    "Objective",
    "Resources",
    "ScreeningSpec",
    "SpaceSpec",
    "SpecModel",
    "did_you_mean",
]


class SpecModel(BaseModel):
    """Base of every spec model: frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Objective(SpecModel):
    """The metric a search optimises and its direction.

    ``metric`` is one of :data:`TRIAL_METRICS` (what Foreseer's own training reports), whose
    direction is known, or, for a job with its own training function, any metric that function
    reports; then ``mode`` must be given.

    Example:
        >>> Objective("val_loss").mode
        'min'
        >>> Objective("val_rmse", mode="min").mode
        'min'
    """

    metric: str = "val_accuracy"
    mode: Literal["max", "min"] = "max"

    def __init__(self, metric: str = "val_accuracy", mode: str | None = None, **data: Any) -> None:
        super().__init__(metric=metric, **({} if mode is None else {"mode": mode}), **data)

    @model_validator(mode="before")
    @classmethod
    def _known_direction(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") is None and isinstance(data.get("metric"), str):
            metric = data["metric"]
            if metric not in TRIAL_METRICS:
                raise ValueError(
                    f"{metric!r} is not a metric Foreseer's training reports ({', '.join(TRIAL_METRICS)})"
                    f"{did_you_mean(metric, TRIAL_METRICS)}; for a metric of your own training "
                    "function give its direction too: {metric: ..., mode: min or max}"
                )
            data = {**data, "mode": TRIAL_METRICS[metric]}
        return data


class Resources(SpecModel):
    """What one trial needs. Fractional GPUs let several trials share one device.

    Example:
        >>> Resources(cpus=1, gpus=0.25).gpus
        0.25
    """

    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0)

    @field_validator("gpus")
    @classmethod
    def _whole_gpus_above_one(cls, gpus: float) -> float:
        if gpus > 1 and gpus != int(gpus):
            raise ValueError(
                "a trial may use a fraction of one GPU (0 < gpus <= 1) or whole GPUs (2, 3, ...)"
            )
        return gpus


class SpaceSpec(SpecModel):
    """A search space by name, optionally narrowed: ``params`` fixes or narrows any sampled parameter.

    Example:
        >>> SpaceSpec(name="mlp", params={"depth": 2, "lr": {"low": 1e-3, "high": 1e-1, "log": True}}).name
        'mlp'
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _valid_overrides(cls, params: dict[str, Any]) -> dict[str, Any]:
        from foreseer_spaces import parse_overrides

        parse_overrides(params)
        return params


class ScreeningSpec(SpecModel):
    """Screen candidates with the graph hypernetwork before training them (``screening: true``).

    Of every ``batch`` candidates asked from Optuna the bottom ``drop_fraction`` by GHN score is
    told to Optuna as pruned without training; screening switches itself off when, after
    ``min_trials`` completed trials, GHN scores rank results no better than parameter count.
    Off by default: a new (space, dataset) pair first costs up to 5 CPU-minutes of meta-training,
    the training time of about 45 cells trials (README, "Graph hypernetwork"), though GHN scores
    rank best on all three pairs of ``benchmarks/ghn.py`` (cells x digits: Kendall tau 0.68,
    against 0.46 for one epoch of training and 0.33 for parameter count). When on, the
    conservative ``drop_fraction`` of 0.25 kept 10, 9 to 10 and 8 to 10 of the true top 10 on those
    pairs; 0.5 kept as few as 7.
    """

    enabled: bool = False
    batch: int = Field(4, ge=2)
    drop_fraction: float = Field(0.25, gt=0, lt=1)
    min_trials: int = Field(8, ge=3)

    def gate(self, screener: Screener) -> ScreeningGate:
        """The gate that screens with ``screener`` under these settings."""
        from foreseer.screening import ScreeningGate

        return ScreeningGate(screener, self.batch, self.drop_fraction, self.min_trials)


class GHNBudget(SpecModel):
    """Meta-training budget of the graph hypernetwork, used when none is cached for the
    (space, dataset) pair; ``max_seconds`` counts CPU seconds on a CPU worker."""

    max_seconds: float = Field(290.0, gt=0)
    max_steps: int = Field(3000, ge=1)
    gpus: float = Field(0.0, ge=0)


class AugmentSpec(SpecModel):
    """Augmentation of streamed training images: a random crop of the image padded by
    ``crop_padding`` pixels, and a random horizontal flip (off unless asked for: a flip changes
    what text or digits mean)."""

    crop_padding: int = Field(0, ge=0, le=64)
    flip: bool = False


class DatasetSpec(SpecModel):
    """Where the data comes from, and its split (seeded by the job's ``seed`` unless ``seed`` is
    given here). Exactly one source:

    - ``name``: a built-in dataset; ``path``: a ``.npz`` / ``.csv`` file (both held in memory);
    - ``images``: a folder of class sub-folders of PNG/JPEG files; ``shards``: a folder of ``.npz``
      shards or ``NAME_x.npy`` / ``NAME_y.npy`` pairs (both streamed from disk as trials train, see
      :mod:`foreseer_workers.streaming`), with ``image_size`` ``[height, width]`` to resize image
      files to, ``channels`` (3 or 1) and ``augment``.

    ``task`` says whether the label column is a class or a real-valued target; by default a
    built-in's own kind (``diabetes`` is regression), else classification. Streamed images are
    classification.
    """

    name: str | None = None
    path: str | None = None
    images: str | None = None
    shards: str | None = None
    target: str | None = None
    task: Literal["classification", "regression"] | None = None
    image_size: tuple[int, int] | None = None
    channels: Literal[1, 3] = 3
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
    seed: int | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        given = [k for k in ("name", "path", "images", "shards") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'name' (a built-in dataset), 'path' (a .npz or .csv file), "
                "'images' (a folder of class folders) or 'shards' (a folder of shards), "
                f"not {given or 'none'}"
            )
        streamed = self.streamed
        for key in ("image_size", "augment", "channels"):  # a default is harmless (a stored spec holds them)
            if (
                getattr(self, key) != type(self).model_fields[key].get_default(call_default_factory=True)
                and not streamed
            ):
                raise ValueError(
                    f"'{key}' applies to streamed images ('images' or 'shards'), not to '{given[0]}'"
                )
        if self.image_size is not None and self.shards is not None:
            raise ValueError("'image_size' resizes image files; shards hold arrays of one size already")
        if streamed and self.task == "regression":
            raise ValueError("streamed images are a classification task; regression needs 'name' or 'path'")
        if self.target is not None and self.path is None:
            raise ValueError("'target' picks the label column of a .csv 'path'")
        if self.image_size is not None and min(self.image_size) < 1:
            raise ValueError(f"'image_size' must be [height, width] in pixels, not {list(self.image_size)}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave data to train on (sum < 1)")
        return self

    @property
    def streamed(self) -> bool:
        """Whether the data is read from disk as trials train (``images`` or ``shards``)."""
        return self.images is not None or self.shards is not None

    @property
    def source(self) -> str:
        return next(v for v in (self.name, self.path, self.images, self.shards) if v is not None)

    @property
    def kind(self) -> str:
        """``"classification"`` or ``"regression"``."""
        from foreseer_workers.sources import source_task

        return "classification" if self.streamed else source_task(self.source, self.task)


def did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
