"""The local Ray that Foreseer starts listens on loopback only: no port of it is open to the network."""

import ipaddress

import psutil
import pytest

pytestmark = pytest.mark.ray


def _listening(processes):
    pids = {p.pid for p in processes}
    return [(c.laddr.ip, c.laddr.port, c.pid) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids]  # fmt: skip


def _is_loopback(ip):
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def test_every_server_of_the_local_ray_listens_on_loopback(ray_runtime):
    ray_runtime.get(ray_runtime.remote(lambda: 1).remote())  # a worker is up and listening too
    ray_processes = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    sockets = _listening(ray_processes)
    names = {psutil.Process(pid).name() for _, _, pid in sockets}
    assert {"gcs_server", "raylet"} <= names, f"the test sees Ray's servers: {sorted(names)}"
    exposed = [(ip, port, psutil.Process(pid).name()) for ip, port, pid in sockets if not _is_loopback(ip)]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert ray_runtime.util.get_node_ip_address() == "127.0.0.1"
