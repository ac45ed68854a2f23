"""Launching a job away from the caller: a background process on this machine, or the driver of a
Ray cluster through Ray's job submission API.

Either way the job is validated and recorded here first (its row in the job store, its MLflow
experiment and parent run), so it shows in ``foreseer jobs`` at once; the driver that runs it picks
it up from the store (``foreseer _work JOB``) exactly as ``foreseer resume`` would. A cluster
submission's id is derived from the job's (``foreseer-<job id>``), so Ray itself refuses to run the
same job twice.

Example:
    >>> job = load_job("examples/quickstart.yaml")  # doctest: +SKIP
    >>> launched = launch(job, cluster="http://127.0.0.1:8265")  # doctest: +SKIP
    >>> launched.job_id, launched.submission_id  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from foreseer.backends.ray_jobs import cluster_client, ray_auth_token
from foreseer.errors import JobFailed, Problem, SpecError
from foreseer.ui import is_loopback

if TYPE_CHECKING:
    from foreseer.backends.ray_jobs import JobSubmissionClient
    from foreseer.spec import SearchJob

__all__ = [
    "Launched",
    "cluster_client",
    "cluster_logs",
    "cluster_problems",
    "detached_problems",
    "ensure_submitted",
    "launch",
    "log_file",
    "on_this_machine",
    "pin_paths",
    "reconcile",
    "security_warnings",
    "spawn_detached",
    "stop_submission",
    "submission_state",
]

#: How long to wait for the job agent of a head that has just started.
AGENT_WAIT_S = 30.0
#: Ray job states after which the driver no longer runs.
RAY_ENDED = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True)
class Launched:
    """Where a launched job runs: ``cluster`` and ``submission_id`` are set for a cluster submission."""

    job_id: str
    store_url: str
    cluster: str | None = None
    submission_id: str | None = None


def launch(job: SearchJob, *, cluster: str | None = None, schedule_id: str | None = None) -> Launched:
    """Validate and record ``job``, then start its driver in the background or on ``cluster``.

    Args:
        job: the job.
        cluster: a Ray dashboard address (``http://HEAD:8265``); ``None`` runs the job in a
            background process on this machine.
        schedule_id: the schedule that fired the job, recorded with it.

    Raises:
        SpecError: the job is invalid, or its stores or files cannot be reached from where its
            driver will run; nothing was written.
        JobFailed: the cluster refused the recorded job (it is marked failed).
    """
    from foreseer.runner import check, open_records

    problems = detached_problems(job) + (cluster_problems(job, cluster) if cluster is not None else [])
    if problems:
        raise SpecError(problems)
    client = None if cluster is None else cluster_client(cluster)
    here = cluster is None or on_this_machine(cluster)
    job = pin_paths(job) if here else job
    prepared = check(job, resources=cluster is None)  # a cluster's driver checks its own nodes
    submission_id = None if cluster is None else f"foreseer-{prepared.job_id}"
    open_records(
        prepared, extra={"cluster": cluster, "submission_id": submission_id, "schedule_id": schedule_id}
    )
    if client is None:
        spawn_detached(prepared.job_id, job.store_url, job.tracking_uri)
    else:
        _submit(client, prepared.job_id, job, submission_id, here)  # type: ignore[arg-type]
    return Launched(prepared.job_id, job.store_url, cluster, submission_id)


def _submit(
    client: JobSubmissionClient, job_id: str, job: SearchJob, submission_id: str, local: bool
) -> None:
    """Start ``foreseer _work JOB`` as the cluster's driver. The URLs travel masked: a cluster
    gets its database password from its own environment (``PGPASSWORD`` or ``~/.pgpass``, a
    Kubernetes Secret), never from the submission, which Ray shows to anyone with dashboard access."""
    from foreseer.dburl import mask_url
    from foreseer.runner import open_journal
    from foreseer.store.models import utcnow

    python = shlex.quote(sys.executable) if local else "python"
    env = {"FORESEER_STORE": mask_url(job.store_url), "FORESEER_TRACKING_URI": mask_url(job.tracking_uri)}
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            client.submit_job(
                entrypoint=f"{python} -m foreseer _work {job_id}",
                submission_id=submission_id,
                runtime_env={"env_vars": env},
                metadata={"foreseer_job": job_id, "name": job.name},
            )
            return
        except Exception as e:  # the client raises RuntimeError or requests' errors
            if "No available agent" in str(e) and time.monotonic() < deadline:
                time.sleep(1.0)  # a head that has just started: its job agent is not up yet
                continue
            error = f"the cluster refused the job: {str(e).strip()}"
            open_journal(job.store_url, job_id).update_job(status="failed", ended_at=utcnow(), error=error)
            raise JobFailed(f"job {job_id} was recorded, but {error}; it is marked failed") from e


def ensure_submitted(job_id: str, job: SearchJob, cluster: str, submission_id: str) -> bool:
    """Submit a recorded job whose submitter may have died before the cluster got it (a scheduler
    daemon killed mid-launch); the submission id makes this safe to repeat. Returns False when the
    cluster already has the job.

    Raises:
        SpecError: the cluster cannot be reached.
        JobFailed: the cluster refused the job (it is marked failed).
    """
    client = cluster_client(cluster)
    try:
        client.get_job_info(submission_id)
        return False
    except RuntimeError as e:  # the client raises it for any failed request; 404: no such job
        if "status code 404" not in str(e):
            raise
    _submit(client, job_id, job, submission_id, on_this_machine(cluster))
    return True


def security_warnings(cluster: str) -> list[str]:
    """What an operator should hear before sending a job to ``cluster`` (empty when all is well)."""
    if on_this_machine(cluster) or ray_auth_token():
        return []
    return [
        (
            "no Ray auth token here ($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token): "
            f"a cluster at {cluster} "
            "that accepts jobs without one runs whatever anyone who reaches it submits. Turn token auth on "
            "(RAY_AUTH_MODE=token on every node, as deploy/ does) and give its token here."
        )
    ]


def detached_problems(job: SearchJob) -> list[Problem]:
    """What keeps ``job`` from running in a driver process of its own, which rebuilds it from the
    job store: a training function that cannot be imported by name."""
    from foreseer_workers.user import importable_name, trainable_name

    if job.trainable is None or importable_name(name := trainable_name(job.trainable)):
        return []
    return [
        Problem(
            "trainable",
            f"{name} cannot be imported by the job's own driver process (it is defined in a script run "
            "as __main__ or inside a function); move it into a module and give 'package.module:function'",
        )
    ]


def cluster_problems(job: SearchJob, cluster: str) -> list[Problem]:
    """Why the driver that ``cluster`` would run cannot use this job's stores and files."""
    from sqlalchemy.engine import make_url

    parts = urlsplit(cluster if "://" in cluster else f"http://{cluster}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            Problem("cluster", "expected the Ray dashboard's address, e.g. http://HEAD:8265", cluster, True)
        ]
    if on_this_machine(cluster):
        return []
    problems = []
    for field, url in {"tracking_uri": job.tracking_uri, "store_uri": job.store_url}.items():
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            problems.append(
                Problem(
                    field,
                    (
                        f"{url} is a file on this machine, which the job's driver on {parts.hostname} "
                        "cannot open; "
                        "use a database server both can reach, e.g. postgresql+psycopg://USER@DBHOST/foreseer"
                    ),
                )
            )
        elif parsed.host is None or is_loopback(parsed.host):
            problems.append(
                Problem(
                    field,
                    (
                        f"{parsed.host or 'localhost'} on the cluster is not this machine; give the database "
                        "server's address as the cluster sees it"
                    ),
                )
            )
    if not Path(job.workdir).is_absolute():
        problems.append(
            Problem(
                "workdir",
                (
                    f"{job.workdir!r} is relative, and the driver on the cluster runs in a folder of its "
                    "own; give an absolute path on storage every cluster node shares (e.g. /mnt/foreseer)"
                ),
            )
        )
    spec = job.dataset_spec()
    if spec is not None and spec.path is not None and not Path(spec.path).is_absolute():
        problems.append(
            Problem(
                "dataset.path",
                (
                    f"{spec.path!r} is relative to this machine; "
                    "give an absolute path that exists both here and on the cluster"
                ),
            )
        )
    if spec is None:
        problems.append(
            Problem(
                "dataset",
                "arrays given from Python do not travel to a cluster; save them as .npz on shared storage",
            )
        )
    if not isinstance(job.space, str) and hasattr(job.space, "build"):
        problems.append(
            Problem(
                "space", "a SearchSpace object does not travel to a cluster; register it as an entry point"
            )
        )
    return problems


def on_this_machine(address: str) -> bool:
    """Whether ``address`` (a URL or host) names this machine: loopback, its name or one of its addresses."""
    host = urlsplit(address if "://" in address else f"http://{address}").hostname or ""
    if is_loopback(host):
        return True
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        names.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return host in names


def pin_paths(job: SearchJob) -> SearchJob:
    """``job`` with its relative file paths made absolute, for a driver on this machine that runs
    in another folder (a background process, a local Ray cluster's driver, ``foreseer resume``)."""
    from sqlalchemy.engine import make_url

    from foreseer.dburl import sqlite_path

    def pinned(url: str | None) -> str | None:
        path = sqlite_path(url) if url else None
        if path is None or path.is_absolute():
            return url
        return make_url(url).set(database=str(path.resolve())).render_as_string(hide_password=False)

    update: dict[str, Any] = {
        "tracking_uri": pinned(job.tracking_uri),
        "store_uri": pinned(job.store_uri),
        "workdir": str(Path(job.workdir).resolve()),
    }
    spec = job.dataset_spec()
    if spec is not None and spec.path is not None:
        update["dataset"] = spec.model_copy(update={"path": str(Path(spec.path).resolve())})
    return job.model_copy(update=update)


def spawn_detached(job_id: str, store_url: str, tracking_uri: str | None = None) -> None:
    """Run a recorded job in a new background process (its own session, output to :func:`log_file`).

    The URLs travel in its environment, not its command line, which every user of the machine can
    read; they also give the stored (masked) spec its passwords back."""
    import subprocess

    path = log_file(store_url, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FORESEER_STORE": store_url}
    if tracking_uri:
        env["FORESEER_TRACKING_URI"] = tracking_uri
    with open(path, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "foreseer", "_work", job_id],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_file(store_url: str, job_id: str) -> Path:
    """Where a background job on this machine writes its output: ``foreseer-logs/`` beside a SQLite
    store, else beside the current folder."""
    from foreseer.dburl import sqlite_path

    return (
        (sqlite_path(store_url) or Path("foreseer.db")).resolve().parent / "foreseer-logs" / f"{job_id}.log"
    )


def submission_state(cluster: str, submission_id: str) -> tuple[str, str]:
    """Ray's state of a submission (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED, or UNKNOWN when
    the cluster does not answer) and its message."""
    try:
        info = cluster_client(cluster).get_job_info(submission_id)
    except (SpecError, RuntimeError) as e:
        return "UNKNOWN", str(e).splitlines()[0]
    return _state_name(info.status), info.message or ""


def _state_name(status: Any) -> str:
    return str(getattr(status, "value", status))


def reconcile(store: Any, row: Any) -> tuple[Any, str | None]:
    """``row`` (a ``JobRow``) and Ray's state of its submission (``None`` for a job not sent to a
    cluster, or one that has ended). The row is corrected when its driver ended without recording
    the end: on a cluster (it could not start, or was stopped before it could write) it is
    recorded as failed, or cancelled when it was stopped, with Ray's message; on this machine
    (killed, out of memory) as failed, once its recorded process (pid and start time) is gone."""
    from foreseer._processes import alive
    from foreseer.store.models import JobRow, utcnow

    if row.status not in ("queued", "running"):
        return row, None
    if row.submission_id is None:
        driver = row.driver or {}
        process = driver.get("process")
        if process is None or driver.get("host") != socket.gethostname() or alive(process):
            return row, None
        with store.session() as session:
            fresh = session.get(JobRow, row.id)
            if fresh.status in ("queued", "running") and fresh.driver == row.driver:
                fresh.status, fresh.ended_at = "failed", utcnow()
                fresh.error = fresh.error or (
                    f"the driver (pid {process[0]}) ended without recording the job's end (it was killed "
                    f"or crashed); `foreseer resume {row.id}` continues the job"
                )
            return fresh, None
    state, message = submission_state(row.cluster, row.submission_id)
    if state not in RAY_ENDED:
        return row, state
    with store.session() as session:
        fresh = session.get(JobRow, row.id)
        if fresh.status in ("queued", "running"):  # the driver may have recorded its end meanwhile
            fresh.status = "cancelled" if state == "STOPPED" else "failed"
            fresh.ended_at = utcnow()
            fresh.error = (
                fresh.error
                or f"the driver on the cluster ended ({state}) without recording the job's end: {message}"
            )
        return fresh, state


def cluster_logs(cluster: str, submission_id: str, write: Callable[[str], Any], follow: bool = False) -> None:
    """Hand the driver's output on the cluster to ``write``; with ``follow``, until the driver ends."""
    client = cluster_client(cluster)
    if not follow:
        write(client.get_job_logs(submission_id))
        return
    import asyncio

    async def tail() -> None:
        async for lines in client.tail_job_logs(submission_id):
            write(lines)

    asyncio.run(tail())


def stop_submission(cluster: str, submission_id: str, timeout: float = 60.0) -> str:
    """Ask the cluster to stop the driver (SIGTERM: it cancels the job and records it); returns
    Ray's state of the submission once it ended or ``timeout`` passed."""
    client = cluster_client(cluster)
    client.stop_job(submission_id)
    deadline = time.monotonic() + timeout
    while (
        state := _state_name(client.get_job_status(submission_id))
    ) not in RAY_ENDED and time.monotonic() < deadline:
        time.sleep(0.5)
    return state
