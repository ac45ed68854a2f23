"""Foreseer: joint architecture + hyperparameter search on Ray and Optuna, tracked in MLflow.

Example:
    >>> import foreseer as fs
    >>> job = fs.SearchJob(name="digits-cells", space="cells", dataset="digits", trials=8, max_epochs=5)
    >>> result = fs.submit(job).wait()  # doctest: +SKIP
    >>> result.leaderboard().head()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foreseer.errors import ForeseerError, JobFailed, Problem, SpecError
from foreseer.spec import (
    AshaStopping,
    CustomStopping,
    DatasetSpec,
    FreezeThawStopping,
    MedianStopping,
    NoStopping,
    Objective,
    PFNStopping,
    Resources,
    SearchJob,
    SpaceSpec,
    load_job,
)

if TYPE_CHECKING:
    from foreseer.api import BestTrial, JobHandle, JobStatus, resume, submit

__version__ = "0.1.0"

__all__ = [
    "AshaStopping",
    "BestTrial",
    "CustomStopping",
    "DatasetSpec",
    "ForeseerError",
    "FreezeThawStopping",
    "JobFailed",
    "JobHandle",
    "JobStatus",
    "MedianStopping",
    "NoStopping",
    "Objective",
    "PFNStopping",
    "Problem",
    "Resources",
    "SearchJob",
    "SpaceSpec",
    "SpecError",
    "load_job",
    "resume",
    "submit",
]

_LAZY = {"submit", "resume", "JobHandle", "JobStatus", "BestTrial"}


def __getattr__(name: str) -> Any:
    # the API pulls in Ray, Optuna and MLflow only when a job is actually submitted
    if name in _LAZY:
        from foreseer import api

        return getattr(api, name)
    raise AttributeError(f"module 'foreseer' has no attribute {name!r}")
