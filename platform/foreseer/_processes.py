"""Processes a job leaves behind: who the driver is, which local Ray processes it started, and
clearing them away after the driver was killed (SIGKILL gives it no chance to stop Ray itself;
Ray's reaper takes most of the node down, but not every agent)."""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import Any

import psutil

__all__ = ["alive", "describe_driver", "kill_leftovers", "pid_of", "terminate"]

logger = logging.getLogger(__name__)


def _identity(process: psutil.Process) -> list[Any]:
    return [process.pid, process.create_time()]


def describe_driver(started_ray: bool) -> dict[str, Any]:
    """The driver process, and the local Ray processes it started (to clear them after a crash)."""
    me = psutil.Process()
    children = me.children(recursive=True) if started_ray else []
    return {"host": socket.gethostname(), "process": _identity(me), "ray": [_identity(p) for p in children]}


def alive(identity: list[Any] | None) -> bool:
    """Whether the process ``[pid, create_time]`` still runs on this host (a reused pid does not count)."""
    if not identity:
        return False
    try:
        return abs(psutil.Process(identity[0]).create_time() - identity[1]) < 1e-3
    except psutil.Error:
        return False


def kill_leftovers(driver: dict[str, Any] | None) -> int:
    """Kill the Ray processes a dead driver had started on this host; returns how many were alive."""
    if not driver or driver.get("host") != socket.gethostname() or alive(driver.get("process")):
        return 0
    killed = 0
    for identity in driver.get("ray", []):
        if alive(identity):
            try:
                psutil.Process(identity[0]).kill()
                killed += 1
            except psutil.Error:
                pass
    if killed:
        logger.warning(
            "killed %d Ray processes left behind by the crashed driver (pid %s)", killed, driver["process"][0]
        )
    return killed


def pid_of(driver: dict[str, Any] | None) -> int | None:
    """The driver's pid while it still runs, else ``None``."""
    return driver["process"][0] if driver and alive(driver.get("process")) else None


def terminate(pid: int) -> None:
    """Ask a driver to stop: it cancels its job and records it as cancelled."""
    os.kill(pid, signal.SIGTERM)
