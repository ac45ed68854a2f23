"""The job specification: what a user submits, from Python or from a YAML file.

Every field is validated when the spec is built and every problem is reported at once
(:class:`foreseer.errors.SpecError`), before anything is written anywhere.

Example:
    >>> import foreseer as fs
    >>> job = fs.SearchJob(name="wine-mlp", space="mlp", dataset="wine", trials=4, max_epochs=3)
    >>> job.objective.metric, job.objectives[0].mode
    ('val_accuracy', 'max')
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from foreseer.errors import Problem, SpecError
from foreseer.samplers import SAMPLERS
from foreseer.spec_parts import (
    DatasetSpec,
    GHNBudget,
    Objective,
    Resources,
    ScreeningSpec,
    SpaceSpec,
    SpecModel,
    did_you_mean,
)
from foreseer.stopping import (
    STOPPING_NAMES,
    AshaStopping,
    CustomStopping,
    FreezeThawStopping,
    MedianStopping,
    NoStopping,
    PFNStopping,
    StoppingSpec,
)
from foreseer_workers.config import PRECISIONS
from foreseer_workers.metrics import DEFAULT_OBJECTIVE, TRIAL_METRICS

__all__ = [
    "AshaStopping",
    "CustomStopping",
    "DatasetSpec",
    "FreezeThawStopping",
    "GHNBudget",
    "ScreeningSpec",
    "MedianStopping",
    "NoStopping",
    "PFNStopping",
    "Objective",
    "Resources",
    "SAMPLERS",
    "SearchJob",
    "SpaceSpec",
    "StoppingSpec",
    "TRIAL_METRICS",
    "load_job",
]

#: A job name: letters of any script, digits, "_", "." and "-"; it names a folder and an MLflow experiment.
_NAME_RE = re.compile(r"^[^\W_][\w.-]{0,63}$")
#: Upper bounds of a job's sizes: beyond them a value is a typo, not a plan.
MAX_TRIALS = 100_000
MAX_EPOCHS = 10_000
MAX_CONCURRENT = 10_000


class FieldProblem(ValueError):
    """A problem found across fields, reported at ``field`` (a dotted path as the user wrote it)."""

    def __init__(self, field: str, message: str, value: Any) -> None:
        super().__init__(message)
        self.field, self.value = field, value


class SearchJob(SpecModel):
    """A search job: space, dataset, objective, budget, and where it runs and records.

    Args:
        name: job name; also the MLflow experiment name.
        space: a space name (``"cells"``, ``"mlp"``, a registered user space), a :class:`SpaceSpec`
            with parameter overrides, or a ``foreseer_spaces.SearchSpace`` instance.
        dataset: a built-in dataset name (``"digits"``, ``"wine"``, ``"breast_cancer"``), a file path
            (``.npz`` / ``.csv``), a :class:`DatasetSpec`, or a tuple ``(X, y)`` of arrays.
        trainable: your own training function ``train(candidate, ctx)``, or its name
            ``"package.module:function"`` (see :mod:`foreseer_workers.user`); ``None`` trains the
            space's network with Foreseer's own loop.
        objective: one :class:`Objective`, or several for a multi-objective search (``sampler="nsgaii"``);
            by default ``val_accuracy`` for classification and ``val_rmse`` for regression.
        sampler: an Optuna sampler by name (the keys of :data:`foreseer.samplers.SAMPLERS`) or an
            ``optuna.samplers.BaseSampler`` instance.
        trials: number of trials to run (at most ``MAX_TRIALS``, 100,000).
        max_epochs: epochs a trial trains for unless stopped early (at most ``MAX_EPOCHS``, 10,000).
        stopping: a policy by name (``"none"``, ``"asha"``, ``"median"``, ``"pfn"``), or a stopping
            spec with its settings (:class:`AshaStopping`, ..., :class:`CustomStopping`).
        resources: CPUs and GPUs per trial.
        max_concurrent: trials running at once (at most ``MAX_CONCURRENT``, 10,000).
        seed: seeds the sampler, the data split default and every trial.
        time_budget_s: stop starting new trials after this many seconds.
        max_retries: times a trial that raised or whose worker died is restarted from its last
            checkpoint before it counts as failed (a diverged trial is not retried).
        tracking_uri: MLflow tracking store, any SQLAlchemy URL (SQLite file by default).
        store_uri: Foreseer's job store, any SQLAlchemy URL; the tracking store's database by default.
        artifact_location: where MLflow stores artifacts (next to a SQLite store by default).
        workdir: where trial checkpoints and job files go.
        address: Ray cluster address; ``None`` uses ``RAY_ADDRESS`` or starts a local Ray.
        screening: screen candidates with the graph hypernetwork (``true``/``false`` or a
            :class:`ScreeningSpec`).
        warm_start: start every trial from the graph hypernetwork's predicted weights (with a
            one-epoch learning-rate warm-up). Off by default: on ``benchmarks/ghn.py`` it reached 95%
            of the final accuracy in under a fifth of the epochs, but final accuracy was equal or
            slightly lower, so with a fixed ``max_epochs`` it only adds the meta-training cost.
        precision: how trials of Foreseer's own training compute on a GPU: ``auto`` (bf16 autocast
            where the GPU supports it, else fp16 with a gradient scaler), ``fp32``, ``bf16`` or
            ``fp16``. A CPU always trains in fp32; validation is always fp32.
        ghn: the hypernetwork's meta-training budget (:class:`GHNBudget`).
    """

    name: str
    space: str | SpaceSpec | Any = Field("mlp", validate_default=True)
    dataset: str | DatasetSpec | Any = Field("digits", validate_default=True)
    trainable: str | Callable[..., Any] | None = None
    objective: Annotated[
        Annotated[Objective, Tag("one")] | Annotated[list[Objective], Tag("several")],
        Discriminator(lambda v: "several" if isinstance(v, list) else "one"),
    ] = Field(default_factory=Objective)
    sampler: str | Any = "tpe"
    trials: int = Field(16, ge=1, le=MAX_TRIALS)
    max_epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    stopping: StoppingSpec = Field(default_factory=NoStopping)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: int = Field(2, ge=1, le=MAX_CONCURRENT)
    seed: int = 0
    time_budget_s: float | None = Field(None, gt=0)
    max_retries: int = Field(1, ge=0)
    tracking_uri: str = "sqlite:///foreseer.db"
    store_uri: str | None = None
    artifact_location: str | None = None
    workdir: str = "foreseer-runs"
    address: str | None = None
    screening: ScreeningSpec = Field(default_factory=ScreeningSpec)
    warm_start: bool = False
    precision: Literal[PRECISIONS] = "auto"
    ghn: GHNBudget = Field(default_factory=GHNBudget)

    @field_validator("screening", mode="before")
    @classmethod
    def _coerce_screening(cls, screening: Any) -> Any:
        return {"enabled": screening} if isinstance(screening, bool) else screening

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _NAME_RE.match(name):
            raise ValueError(
                "must be 1-64 characters of letters (any script), digits, '_', '.', '-', "
                "starting with a letter or digit"
            )
        return name

    @field_validator("space", mode="before")
    @classmethod
    def _coerce_space(cls, space: Any) -> Any:
        from foreseer_spaces import SearchSpace, get_space

        if isinstance(space, SearchSpace):
            return space
        if isinstance(space, str):
            get_space(space)
            return space
        if isinstance(space, dict | SpaceSpec):
            spec = _nested(SpaceSpec, space)
            get_space(spec.name)
            return spec
        raise ValueError(
            "must be a space name, a mapping with 'name' and 'params', or a SearchSpace, "
            f"not {type(space).__name__}"
        )

    @field_validator("dataset", mode="before")
    @classmethod
    def _coerce_dataset(cls, dataset: Any) -> Any:
        if isinstance(dataset, str):
            return _dataset_from_string(dataset)
        if isinstance(dataset, dict):
            return _nested(DatasetSpec, dataset)
        if isinstance(dataset, DatasetSpec):
            return dataset
        if isinstance(dataset, tuple) and len(dataset) == 2:
            return dataset
        raise ValueError("must be a dataset name, a file path, a mapping, or a tuple (X, y) of arrays")

    @field_validator("trainable", mode="before")
    @classmethod
    def _importable_trainable(cls, trainable: Any) -> Any:
        from foreseer_workers.user import resolve_trainable

        if trainable is not None and not isinstance(trainable, str) and not callable(trainable):
            raise ValueError(
                f"must be a function train(candidate, ctx) or its 'package.module:function' name, "
                f"not {type(trainable).__name__}"
            )
        if trainable is not None:
            resolve_trainable(trainable)
        return trainable

    @field_validator("objective", mode="before")
    @classmethod
    def _coerce_objective(cls, objective: Any) -> Any:
        if isinstance(objective, list):
            if not objective:
                raise ValueError("give at least one objective")
            return [{"metric": o} if isinstance(o, str) else o for o in objective]
        return {"metric": objective} if isinstance(objective, str) else objective

    @field_validator("sampler", mode="before")
    @classmethod
    def _known_sampler(cls, sampler: Any) -> Any:
        if isinstance(sampler, str):
            if sampler not in SAMPLERS:
                raise ValueError(
                    f"unknown sampler; accepted: {', '.join(SAMPLERS)}{did_you_mean(sampler, SAMPLERS)}, "
                    "or an optuna.samplers.BaseSampler"
                )
            return sampler
        import optuna

        if not isinstance(sampler, optuna.samplers.BaseSampler):
            raise ValueError(
                f"must be a sampler name ({', '.join(SAMPLERS)}) or an optuna.samplers.BaseSampler, "
                f"not {type(sampler).__name__}"
            )
        return sampler

    @field_validator("stopping", mode="before")
    @classmethod
    def _coerce_stopping(cls, stopping: Any) -> Any:
        if isinstance(stopping, str):
            if stopping not in STOPPING_NAMES:
                raise ValueError(
                    f"unknown stopping policy; accepted: {', '.join(STOPPING_NAMES)}"
                    f"{did_you_mean(stopping, STOPPING_NAMES)}"
                )
            return {"name": stopping}
        if isinstance(stopping, dict) and stopping.get("name") not in STOPPING_NAMES:
            raise ValueError(f"'name' must be one of {', '.join(STOPPING_NAMES)}")
        return stopping

    @field_validator("tracking_uri", "store_uri")
    @classmethod
    def _sqlalchemy_url(cls, uri: str | None) -> str | None:
        if uri is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(uri)
        except ArgumentError as e:
            raise ValueError(
                "must be an SQLAlchemy URL such as sqlite:///foreseer.db or postgresql+psycopg://user@host/db"
            ) from e
        return uri

    @model_validator(mode="after")
    def _consistent(self) -> SearchJob:
        if "objective" not in self.model_fields_set:  # the task's own default, kept in to_dict()
            object.__setattr__(self, "objective", Objective(DEFAULT_OBJECTIVE[self.task_kind]))
        if len(self.objectives) > 1 and self.stopping.name != "none":
            raise ValueError(
                "early stopping needs a single objective; use stopping: none with several objectives"
            )
        if len(self.objectives) > 1 and self.sampler in ("cmaes", "gp"):
            raise ValueError(
                f"sampler {self.sampler!r} optimises one objective; use nsgaii, tpe or random for several"
            )
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"objectives name the same metric twice: {metrics}")
        unknown = [(i, m) for i, m in enumerate(metrics) if m not in TRIAL_METRICS]
        if unknown and self.trainable is None:
            i, metric = unknown[0]
            raise FieldProblem(
                "objective.metric" if not isinstance(self.objective, list) else f"objective.{i}.metric",
                f"unknown metric; Foreseer's training reports {', '.join(TRIAL_METRICS)}"
                f"{did_you_mean(metric, TRIAL_METRICS)} (a training function of your own, "
                "trainable: ..., may report others)",
                metric,
            )
        # a setting given that can never take effect is a mistake (a default one is harmless)
        first = getattr(self.stopping, "first_epoch_field", None)
        if first in self.stopping.model_fields_set and getattr(self.stopping, first) >= self.max_epochs:
            raise FieldProblem(
                f"stopping.{first}",
                f"must be below max_epochs ({self.max_epochs}): {self.stopping.name} first stops a trial "
                f"after epoch {getattr(self.stopping, first)}, and every trial ends at max_epochs, so "
                "it would never stop one",
                getattr(self.stopping, first),
            )
        return self

    @property
    def objectives(self) -> list[Objective]:
        """The objectives as a list (one element for a single-objective search)."""
        return list(self.objective) if isinstance(self.objective, list) else [self.objective]

    @property
    def primary(self) -> Objective:
        """The objective that ranks the leaderboard and drives early stopping."""
        return self.objectives[0]

    @property
    def store_url(self) -> str:
        """Where the job store is: ``store_uri``, or the tracking store's database."""
        return self.store_uri or self.tracking_uri

    @property
    def space_name(self) -> str:
        if isinstance(self.space, str):
            return self.space
        return self.space.name

    def space_overrides(self) -> dict[str, Any]:
        return dict(self.space.params) if isinstance(self.space, SpaceSpec) else {}

    @property
    def task_kind(self) -> str:
        """``"classification"`` or ``"regression"``: what the dataset's labels are."""
        spec = self.dataset_spec()
        return "classification" if spec is None else spec.kind

    def dataset_spec(self) -> DatasetSpec | None:
        """The dataset as a spec, or ``None`` when it was given as arrays."""
        return self.dataset if isinstance(self.dataset, DatasetSpec) else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view of the job (arrays and Python objects are summarised)."""
        from foreseer_workers.user import importable_name, trainable_name

        data = self.model_dump(mode="python", exclude={"space", "dataset", "sampler", "trainable"})
        if self.trainable is not None:
            name = trainable_name(self.trainable)
            data["trainable"] = name if importable_name(name) else {"object": name}
        data["space"] = (
            self.space.model_dump()
            if isinstance(self.space, SpaceSpec)
            else (
                self.space
                if isinstance(self.space, str)
                else {"name": self.space.name, "object": type(self.space).__name__}
            )
        )
        spec = self.dataset_spec()
        data["dataset"] = (
            spec.model_dump(exclude_none=True, exclude=None if spec.streamed else {"augment", "channels"})
            if spec
            else {"arrays": [list(a.shape) for a in self.dataset]}
        )
        data["sampler"] = self.sampler if isinstance(self.sampler, str) else type(self.sampler).__name__
        return data

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> SearchJob:
        """Load a job file; ``overrides`` maps dotted keys to values (``{"trials": 8}``)."""
        return load_job(path, overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "job") -> SearchJob:
        """Validate a mapping, raising :class:`SpecError` that lists every problem, one line each
        (pydantic runs a model's own ``__init__``, so validating goes through it, not around it)."""
        keys = [k for k in data if not isinstance(k, str)]
        if keys:
            raise SpecError([Problem(str(k), "job fields are named by strings") for k in keys], source=source)
        try:
            return cls(**data)
        except SpecError as e:
            raise SpecError(e.problems, source=source) from None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise SpecError(_problems(e, data)) from None


def _dataset_from_string(text: str) -> DatasetSpec:
    from foreseer_workers import available_datasets

    if Path(text).is_dir():  # a folder: shards when it holds any, else class folders of images
        folder = Path(text)
        has_shards = any(folder.glob("*.npz")) or any(folder.glob("*_x.npy"))
        return DatasetSpec(shards=text) if has_shards else DatasetSpec(images=text)
    if text.endswith((".npz", ".csv")) or "/" in text:
        return DatasetSpec(path=text)
    if text not in available_datasets():
        names = available_datasets()
        raise ValueError(
            f"unknown dataset; built-ins: {', '.join(names)}{did_you_mean(text, names)}, "
            "a path to a .npz or .csv file, or a folder of images or shards"
        )
    return DatasetSpec(name=text)


def _nested(model: type[SpecModel], value: Any) -> Any:
    """Validate a nested spec, turning its errors into one readable ``ValueError``."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as e:
        raise ValueError("; ".join(str(p) for p in _problems(e, value, model))) from None


def _problems(error: ValidationError, data: Any, model: type[BaseModel] | None = None) -> list[Problem]:
    fields = list((model or SearchJob).model_fields)
    problems = []
    for err in error.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "union["))]
        loc = [
            p for p in loc if p not in (*STOPPING_NAMES, "str", "SpaceSpec", "DatasetSpec", "one", "several")
        ]
        where = ".".join(loc) or "job"
        message = err["msg"].removeprefix("Value error, ").removeprefix("Type error, ")
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, FieldProblem):
            problems.append(Problem(cause.field, str(cause), cause.value, True))
            continue
        if err["type"] == "extra_forbidden":
            hint = did_you_mean(loc[-1], fields) if len(loc) == 1 else ""
            message = f"unknown key{hint}"
            if len(loc) == 1:
                message += f"; accepted keys: {', '.join(fields)}"
            problems.append(Problem(where, message))
            continue
        problems.append(Problem(where, message, err.get("input"), has_value="input" in err))
    return problems


def load_job(path: str | Path, overrides: dict[str, Any] | None = None) -> SearchJob:
    """Read and validate a YAML job file.

    Args:
        path: the job file.
        overrides: dotted keys and values applied on top of the file (``{"stopping.name": "asha"}``).

    Raises:
        SpecError: the file is missing or malformed, or the job in it is invalid.
    """
    path = Path(path)
    source = f"job file {str(path)!r}"
    try:
        size = path.stat().st_size
        if size > MAX_JOB_FILE_BYTES:
            raise SpecError(
                [
                    Problem(
                        "path", f"the file is {size:,} bytes; a job file is at most {MAX_JOB_FILE_BYTES:,}"
                    )
                ],
                source=source,
            )
        data = read_yaml(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise SpecError([Problem("path", "no such file")], source=source) from None
    except yaml.YAMLError as e:
        raise SpecError([Problem("yaml", f"not valid YAML: {_shortened(str(e))}")], source=source) from None
    except ValueError as e:
        raise SpecError([Problem("yaml", str(e))], source=source) from None
    if not isinstance(data, dict):
        raise SpecError(
            [Problem("yaml", "the file must hold a mapping of job fields", data, True)], source=source
        )
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return SearchJob.from_dict(data, source=source)


#: The largest job file read: a job is a few hundred bytes, so more is a mistake (or an attack).
MAX_JOB_FILE_BYTES = 1 << 20
#: The most values a job file may expand to: YAML aliases repeat a value without repeating its
#: text, so a few hundred bytes can otherwise expand to billions ("billion laughs").
MAX_JOB_VALUES = 10_000


class _JobLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (which it would silently
    resolve to the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = lines.setdefault(key, key_node.start_mark.line)
            except TypeError:  # an unhashable key: the base class says what is wrong with it
                continue
            if first != key_node.start_mark.line:
                second = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    problem=f"the key {key!r} is given twice (lines {first + 1} and {second})"
                )
        return super().construct_mapping(node, deep)


def read_yaml(text: str) -> Any:
    """One YAML document, read safely: no duplicate keys, at most ``MAX_JOB_VALUES`` values once
    aliases are expanded, no alias that contains itself.

    Raises:
        yaml.YAMLError: the text is not valid YAML or has a duplicate key.
        ValueError: it expands to too many values, refers to itself, or nests too deeply.
    """
    loader = _JobLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_JOB_VALUES:
            raise ValueError(
                f"the document's aliases expand it to {size:,} values; a job file holds at most "
                f"{MAX_JOB_VALUES:,}"
            )
        return loader.construct_document(node)
    except RecursionError:
        raise ValueError("the document nests too deeply") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int | None]) -> int:
    """How many values ``node`` stands for once every alias is expanded; each node is counted
    once and reused, so this is linear in the document's text, not in its expansion."""
    known = sizes.get(id(node), 0)
    if known is None:
        raise ValueError("a YAML alias refers to a value that contains it")
    if known:
        return known
    sizes[id(node)] = None  # in progress
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(item, sizes) for item in node.value)
    else:
        size = 1
    sizes[id(node)] = size
    return size


def _shortened(message: str, limit: int = 400) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key; naming another strategy (``stopping.name=asha`` over a median) starts it
    from its own defaults, since the old strategy's settings mean nothing to the new one."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if isinstance(child, str):
            child = {"name": child}
        node[part] = child = dict(child or {})
        node = child
    if last == "name" and parents and node.get("name") not in (None, value):
        node.clear()
    node[last] = value
