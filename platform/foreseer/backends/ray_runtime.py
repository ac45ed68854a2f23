"""The Ray runtime a job runs on: connect to a cluster or start a local Ray on loopback, and check
that a trial's resources fit a node before anything starts."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import ray

if TYPE_CHECKING:
    from foreseer.spec import Resources

__all__ = ["connected", "ensure_ray", "resource_problem", "shutdown_ray"]


#: The environment variable that keeps a Ray node on loopback (see _init_loopback_ray).
_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ensure_ray(address: str | None = None) -> bool:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local Ray on loopback with the
    dashboard off. Returns True when this call started Ray."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    # Ray's and Tune's warnings about their own internals (token auth on a loopback-only node,
    # result files of loggers we turn off) are noise to a Foreseer user; errors still show.
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        _init_loopback_ray()
    return True


def connected() -> bool:
    """Whether this process is connected to a Ray (one it started or one it joined)."""
    return ray.is_initialized()


def shutdown_ray() -> None:
    """Disconnect from Ray; a local Ray this process started stops with it."""
    ray.shutdown()


#: How long a driver of a local Ray waits for a GCS that is gone (Ray's setting, read at ``ray.init``).
_GCS_RECONNECT = "RAY_gcs_rpc_server_reconnect_timeout_s"
_GCS_GONE_S = 5


def _init_loopback_ray() -> None:
    """Start a local Ray whose every server listens on 127.0.0.1 only.

    ``_node_ip_address="127.0.0.1"`` alone does not do it: Ray maps a loopback address back to the
    machine's network address and binds its servers to every interface. It keeps to loopback only
    where it thinks clusters are off (macOS and Windows, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``),
    a setting it reads once at import; so it is switched for this start, in this process and in the
    environment of the processes Ray starts. tests/foreseer/test_ray_loopback.py checks the sockets.

    A local Ray's GCS never restarts, so the driver waits at most ``_GCS_GONE_S`` for it instead of
    Ray's 60 s: a SIGTERM to the whole process group (``timeout``, ``systemd``) stops the GCS with
    the driver, and the cancelled driver would otherwise hang a minute in ``ray.shutdown``.
    """
    from ray._private import ray_constants

    os.environ.setdefault(_GCS_RECONNECT, str(_GCS_GONE_S))

    saved = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(_LOOPBACK_SWITCH)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_LOOPBACK_SWITCH] = "0"
    try:
        ray.init(  # "local": never attach to some other Ray that happens to run on this machine
            address="local",
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved[0]
        if saved[1] is None:
            os.environ.pop(_LOOPBACK_SWITCH, None)
        else:
            os.environ[_LOOPBACK_SWITCH] = saved[1]


def resource_problem(resources: Resources, address: str | None = None) -> str | None:
    """Why no node can hold one trial's ``resources`` (the trial would wait for it forever), or
    ``None``. Asks the Ray this process is connected to; before Ray is up, a local job is checked
    against this machine (what the local Ray will offer), a cluster job once connected."""
    if ray.is_initialized():
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        where = "the Ray cluster"
    elif address or os.environ.get("RAY_ADDRESS"):
        return None
    else:
        nodes = [{"CPU": float(len(os.sched_getaffinity(0))), "GPU": float(_local_gpus())}]
        where = "this machine (the local Ray)"
    fits = any(n.get("CPU", 0) >= resources.cpus and n.get("GPU", 0) >= resources.gpus for n in nodes)
    if fits:
        return None
    largest = ", ".join(f"{n.get('CPU', 0):g} CPU / {n.get('GPU', 0):g} GPU" for n in nodes)
    return (
        f"no node of {where} can run a trial needing {resources.cpus:g} CPU and {resources.gpus:g} GPU; "
        f"its nodes have {largest}"
    )


def _local_gpus() -> int:
    """GPUs a local Ray would find: those ``CUDA_VISIBLE_DEVICES`` names, else ``nvidia-smi``'s."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return 0
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return sum(1 for line in listed.splitlines() if line.startswith("GPU "))
