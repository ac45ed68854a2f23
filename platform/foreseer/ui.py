"""The MLflow UI on a Foreseer tracking store, lean: one process serving requests, no job runner.

``mlflow server`` on its defaults starts 4 uvicorn workers, a job runner and 7 Huey consumers:
15 processes and about 3 GB of RSS on our 2-core machine, for a UI one person looks at. Here it
runs with ``--workers 1`` (uvicorn then serves in its own process, no supervisor) and
``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` (no job runner, no Huey consumers; those run MLflow's
GenAI jobs, which Foreseer does not use): 2 processes and about 0.5 GB (``benchmarks/tracking.py``
measures both).

The server runs in a session of its own, so stopping it stops every process it started, whatever
it started. Example::

    with UiServer(UiSettings("sqlite:///foreseer.db", port=5000)) as server:
        url = server.url           # "http://127.0.0.1:5000"
        server.wait()              # until Ctrl-C
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from foreseer.dburl import mask_text, sqlite_path

__all__ = ["UiSettings", "UiServer", "UiError", "is_loopback", "server_command", "free_port"]

logger = logging.getLogger(__name__)

#: Environment for the server: the job runner and its Huey consumers off.
LEAN_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class UiError(RuntimeError):
    """The UI server did not start or did not answer."""


@dataclass(frozen=True)
class UiSettings:
    """How to run the MLflow UI.

    Args:
        tracking_uri: the MLflow tracking store, a SQLAlchemy URL.
        host: the interface to bind; loopback unless told otherwise.
        port: the port to listen on.
        workers: request-serving processes (1 keeps uvicorn in a single process).
        job_execution: MLflow's job runner and Huey consumers (off: Foreseer does not use them).
        artifacts_destination: where artifacts logged through the server go; by default the
            ``mlartifacts`` folder beside a SQLite store, else ``./mlartifacts``.
    """

    tracking_uri: str
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    job_execution: bool = False
    artifacts_destination: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, but got {self.port=}.")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, but got {self.workers=}.")

    @property
    def url(self) -> str:
        """Where a browser on this machine reaches the UI."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else "[::1]" if self.host == "::" else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def experiment_url(self, experiment_id: str) -> str:
        """The experiment's runs table as Foreseer arranges it: the job's trials under its run,
        best first by the objective, with the objective and the trial status as columns (the view
        :meth:`foreseer.tracking.Tracker.set_runs_view` stores on the experiment)."""
        return f"{self.url}/#/experiments/{experiment_id}/runs?{RUNS_VIEW_PARAM}={RUNS_VIEW_KEY}"


#: MLflow's URL parameter naming a view saved on the experiment, and the name Foreseer saves its own
#: under (the experiment tag ``mlflow.sharedViewState.foreseer``).
RUNS_VIEW_PARAM = "viewStateShareKey"
RUNS_VIEW_KEY = "foreseer"


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_artifacts_destination(tracking_uri: str) -> str:
    """``mlartifacts`` beside a SQLite store (where :mod:`foreseer.tracking` puts artifacts),
    else ``./mlartifacts`` (MLflow's own default), as an absolute file URI."""
    path = sqlite_path(tracking_uri)
    folder = (path.resolve().parent if path is not None else Path.cwd()) / "mlartifacts"
    return folder.as_uri()


def server_command(settings: UiSettings) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow server`` command line and the environment additions for ``settings``.

    The store URL goes in the environment, not on the command line, which every user of the
    machine can read (``ps``) and which would show a database password."""
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
        "--serve-artifacts",
        "--artifacts-destination",
        settings.artifacts_destination or default_artifacts_destination(settings.tracking_uri),
    ]
    env = {"MLFLOW_BACKEND_STORE_URI": settings.tracking_uri}
    if not settings.job_execution:
        env.update(LEAN_ENV)
    return command, env


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class UiServer:
    """An ``mlflow server`` process group: :meth:`start`, :meth:`wait_ready`, :meth:`stop`."""

    def __init__(self, settings: UiSettings, log_path: str | Path | None = None) -> None:
        self.settings = settings
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.settings.url

    def start(self) -> UiServer:
        from foreseer.dburl import prepare_sqlite

        prepare_sqlite(self.settings.tracking_uri)  # WAL: the UI reads while a job writes
        command, extra = server_command(self.settings)
        # Without a log file the server's output goes where ours does (the terminal, for the CLI).
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        logger.info("starting the MLflow UI: %s", mask_text(" ".join(command)))
        self.process = subprocess.Popen(
            command,
            env={**os.environ, **extra},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,  # its own process group: one signal reaches all it starts
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        if log is not None:
            log.close()
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until ``/health`` answers; raise :class:`UiError` if the server exits or the
        timeout passes first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise UiError(f"the MLflow UI exited with code {code} before it answered{self._log_hint()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise UiError(f"the MLflow UI did not answer at {self.url} within {timeout:.0f} s{self._log_hint()}")

    def wait(self) -> int:
        """Block until the server exits; its exit code."""
        return self.process.wait() if self.process is not None else 0

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the whole process group, SIGKILL to whatever is left after ``timeout``."""
        if self.process is None:
            return
        group = self.process.pid
        _signal_group(group, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the MLflow UI did not stop within %.0f s; killing it", timeout)
        deadline = time.monotonic() + timeout
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        _signal_group(group, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait()
        self.process = None

    def __enter__(self) -> UiServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _log_hint(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
        return ":\n" + "\n".join(tail)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so a killed ``foreseer ui`` leaves no
    server behind (``mlflow server`` forwards SIGTERM to its uvicorn)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
