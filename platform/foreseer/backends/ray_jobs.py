"""Ray's job submission API, for launching a job's driver on a cluster (``foreseer.launch``): the
client, authenticated the way Ray's own CLI is. Importing this module does not import Ray."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from foreseer.errors import Problem, SpecError

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

__all__ = ["cluster_client", "ray_auth_token"]


def cluster_client(cluster: str) -> JobSubmissionClient:
    """A job submission client for ``cluster``; an unreachable cluster or a missing Ray extra is bad input."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as e:
        raise SpecError(
            [
                Problem(
                    "cluster",
                    f"submitting to a cluster needs Ray's job submission client ({e}); "
                    "install it with `pip install 'foreseer[cluster]'`",
                )
            ]
        ) from e
    token = ray_auth_token()
    try:
        return JobSubmissionClient(cluster, headers={"Authorization": f"Bearer {token}"} if token else None)
    except Exception as e:  # ConnectionError, RuntimeError, ValueError depending on what failed
        raise SpecError(
            [
                Problem(
                    "cluster",
                    f"cannot reach the Ray cluster's job API at {cluster}: {str(e).splitlines()[0]} "
                    "(give the dashboard address, e.g. http://HEAD:8265; "
                    "the head must run with the dashboard on)",
                    cluster,
                    True,
                )
            ]
        ) from e


def ray_auth_token() -> str | None:
    """The token for a Ray cluster with token auth (``RAY_AUTH_MODE=token``), found where Ray's
    own CLI looks: ``$RAY_AUTH_TOKEN``, the file ``$RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return path.read_text().strip() if path.is_file() else None
