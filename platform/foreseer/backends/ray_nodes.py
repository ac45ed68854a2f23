"""Real Ray nodes for the cluster tests, each a ``ray start --block`` of its own on this machine.

Every node runs in its own session with its own short temp folder (unix socket paths are limited to
about 100 characters), token auth on with a token made for the cluster, and a marker in its
environment that every process it starts inherits (raylet, agents, workers: Ray gives workers a
process group of their own, so a process group does not hold them all). Killing a node, or the
whole cluster at teardown, kills exactly the processes that carry its marker: never ``ray stop``,
which would stop every Ray on the machine. The test process itself never connects to the cluster;
the Foreseer driver runs in a subprocess with :attr:`RayCluster.env`.

Every process of these clusters listens on 127.0.0.1 only (see :data:`JOIN_ON_LOOPBACK` for what
that takes with Ray 2.60; :meth:`RayNode.exposed` checks it), and the cluster's own token keeps
other local processes out of it.

Used as ``from foreseer.backends import ray_nodes`` by the cluster tests and
``benchmarks/cluster_submit.py``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from typing_extensions import Self

MARKER = "FORESEER_TEST_RAY_NODE"

#: Ray 2.60 keeps a node on 127.0.0.1 (it otherwise rewrites ``--node-ip-address 127.0.0.1`` to the
#: machine's network address and listens on every interface) only with
#: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which every process of these clusters gets; with it, the
#: CLI refuses to join a node to a head. This ``ray start`` lifts that refusal for the joining CLI
#: process alone, and keeps its 127.0.0.1 as it is.
JOIN_ON_LOOPBACK = """
import sys
from ray._private import ray_constants, services
from ray.scripts.scripts import main
ray_constants.ENABLE_RAY_CLUSTER = True
services.resolve_ip_for_localhost = lambda host: host
sys.argv[0] = "ray"
main()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayNode:
    """One ``ray start --block`` process and everything it started."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], temp_dir: Path) -> None:
        self.name, self.temp_dir = name, temp_dir
        self.marker = f"{name}-{secrets.token_hex(6)}"
        self.log = temp_dir.parent / f"{name}.log"
        ray_cli = ["-m", "ray.scripts.scripts"] if "--head" in args else ["-c", JOIN_ON_LOOPBACK]
        command = [sys.executable, *ray_cli, "start", "--block", *args,
                   "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                   f"--temp-dir={temp_dir}"]  # fmt: skip
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                command, env={**env, MARKER: self.marker}, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def wait_started(self, timeout: float = 120) -> None:
        """Until ``ray start`` says the node runs (it has registered with the head by then)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "Ray runtime started" in self.log.read_text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"Ray node {self.name} did not start:\n{self.log.read_text()[-3000:]}")

    def processes(self) -> list[psutil.Process]:
        """Every live process that carries this node's marker."""
        found = []
        for process in psutil.process_iter():
            try:
                if process.environ().get(MARKER) == self.marker:
                    found.append(process)
            except psutil.Error:  # gone, or another user's
                pass
        return found

    def exposed(self) -> list[tuple[str, int, str]]:
        """(address, port, process) of every socket the node listens on beyond loopback."""
        pids = {p.pid: p for p in self.processes()}
        found = []
        for c in psutil.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN and c.pid in pids:
                address = ipaddress.ip_address(c.laddr.ip)
                if not (getattr(address, "ipv4_mapped", None) or address).is_loopback:
                    found.append((c.laddr.ip, c.laddr.port, pids[c.pid].name()))
        return found

    def raylet(self) -> psutil.Process:
        return next(p for p in self.processes() if p.name() == "raylet")

    def node_id(self) -> str:
        """The node's Ray id, read from its raylet's command line."""
        for arg in self.raylet().cmdline():
            if match := re.fullmatch(r"--node_id=([0-9a-f]+)", arg):
                return match.group(1)
        raise RuntimeError(f"no --node_id on the raylet of {self.name}")

    def kill(self, timeout: float = 20) -> int:
        """SIGKILL every process of the node, as a machine that loses power; returns how many."""
        killed = 0
        deadline = time.time() + timeout
        while (processes := self.processes()) and time.time() < deadline:  # a raylet may spawn meanwhile
            for process in processes:
                try:
                    process.send_signal(signal.SIGKILL)
                    killed += 1
                except psutil.Error:
                    pass
            psutil.wait_procs(processes, timeout=5)
        self.process.wait(timeout=5)
        return killed


class RayCluster:
    """A Ray head and the nodes joined to it, all on this machine; use as a context manager.

    Args:
        head_args: extra ``ray start`` arguments of the head, e.g. ``["--num-cpus=1"]``.
        gcs_env: ``RAY_*`` system settings for the head's processes (e.g. faster health checks).
        dashboard: run the head's dashboard, which serves Ray's job submission API.
    """

    def __init__(
        self, head_args: list[str], gcs_env: dict[str, str] | None = None, *, dashboard: bool = False
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fsray-", dir="/tmp"))
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
                        RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # fmt: skip
        self.nodes: list[RayNode] = []
        try:
            self.dashboard_port = free_port()
            # the job agent's port too: another Ray on this machine may hold its default (52365)
            served = [f"--include-dashboard={str(dashboard).lower()}", "--dashboard-host=127.0.0.1",
                      f"--dashboard-port={self.dashboard_port}",
                      f"--dashboard-agent-listen-port={free_port()}"]  # fmt: skip
            self.head = self._start(
                "head", ["--head", f"--port={self.port}", *served, *head_args], gcs_env or {}
            )
        except BaseException:
            self.stop()
            raise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The job submission API's address (with ``dashboard=True``)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def add_node(self, args: list[str], *, wait: bool = True) -> RayNode:
        """Start a node joined to the head; with ``wait``, return once it has registered."""
        return self._start(f"node{len(self.nodes)}", [f"--address={self.address}", *args], {}, wait)

    def _start(self, name: str, args: list[str], extra_env: dict[str, str], wait: bool = True) -> RayNode:
        node = RayNode(name, args, {**self.env, **extra_env}, self.root / name)
        self.nodes.append(node)
        if wait:
            node.wait_started()
        return node

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.log.read_text()[-2000:]}" for n in self.nodes)

    def stop(self) -> None:
        """Kill every node, workers first (the head last), then remove the temp folders."""
        for node in reversed(self.nodes):
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
