"""``foreseer ui``: the lean MLflow server command, a real server on a real store, a clean stop."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from foreseer.cli import main
from foreseer.ui import UiServer, UiSettings, free_port, is_loopback, server_command

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and /proc: Linux only")


def session_members(session_id):
    """PIDs of the live processes in a session (the server is started as a session leader)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def children(pid):
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


def test_the_server_command_is_lean_and_serves_artifacts_beside_the_store(tmp_path):
    command, env = server_command(UiSettings(f"sqlite:///{tmp_path}/store.db", port=5123))
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert "--serve-artifacts" in command
    options = command[4:]
    options.remove("--serve-artifacts")
    flags = dict(zip(options[::2], options[1::2], strict=True))
    assert flags == {
        "--host": "127.0.0.1",
        "--port": "5123",
        "--workers": "1",
        "--artifacts-destination": (tmp_path / "mlartifacts").as_uri(),
    }
    assert env == {
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/store.db",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    command, env = server_command(UiSettings("postgresql+psycopg://u:secret@h/db", job_execution=True))
    assert env == {"MLFLOW_BACKEND_STORE_URI": "postgresql+psycopg://u:secret@h/db"}
    assert not any("secret" in part for part in command), "a password never shows in the process list"


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_settings_refuse_bad_values_and_give_a_browsable_url():
    with pytest.raises(ValueError, match="port must be between 1 and 65535, but got self.port=0"):
        UiSettings("sqlite:///x.db", port=0)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        UiSettings("sqlite:///x.db", workers=0)
    assert UiSettings("sqlite:///x.db", host="0.0.0.0", port=80).url == "http://127.0.0.1:80"
    assert (
        UiSettings("sqlite:///x.db", host="::1", port=80).experiment_url("3")
        == "http://[::1]:80/#/experiments/3/runs?viewStateShareKey=foreseer"
    )


def test_a_real_server_answers_with_two_processes_and_stops_completely(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/store.db"
    MlflowClient(uri).create_experiment("seen-by-the-ui")
    server = UiServer(UiSettings(uri, port=free_port()), log_path=tmp_path / "ui.log")
    with server:
        server.wait_ready(timeout=120)
        request = urllib.request.Request(
            f"{server.url}/ajax-api/2.0/mlflow/experiments/search",
            data=json.dumps({"max_results": 10}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            names = {e["name"] for e in json.load(response)["experiments"]}
        assert "seen-by-the-ui" in names
        session = server.process.pid
        members = session_members(session)
        assert len(members) == 2, f"mlflow server + one uvicorn process, no job runner: {members}"
    started = time.monotonic()
    while session_members(session) and time.monotonic() - started < 5:
        time.sleep(0.1)
    assert session_members(session) == []


def test_cli_prints_the_url_and_ctrl_c_stops_every_process(tmp_path):
    port = free_port()
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "foreseer",
            "ui",
            "--tracking-uri",
            f"sqlite:///{tmp_path}/store.db",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "Ctrl-C" not in line and time.monotonic() < deadline and cli.poll() is None:
            line = cli.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, line
        server = children(cli.pid)
        assert len(server) == 1 and session_members(server[0]), "the server runs in a session of its own"
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=30) == 130
        assert session_members(server[0]) == []
    finally:
        if cli.poll() is None:
            cli.kill()


def test_binding_beyond_loopback_warns_about_authentication(monkeypatch):
    calls = []

    class FakeServer:
        def __init__(self, settings):
            self.url = settings.url

        def start(self):
            calls.append("start")

        def wait_ready(self):
            pass

        def wait(self):
            return 0

        def stop(self):
            calls.append("stop")

    monkeypatch.setattr("foreseer.ui.UiServer", FakeServer)
    result = CliRunner().invoke(main, ["ui", "--host", "0.0.0.0", "--port", "5999"])
    assert result.exit_code == 0, result.output
    assert "open to the network without authentication" in result.output
    assert "basic-auth" in result.output
    assert calls == ["start", "stop"]


def test_no_warning_on_loopback(monkeypatch):
    monkeypatch.setattr("foreseer.ui.UiServer.start", lambda self: self)
    monkeypatch.setattr("foreseer.ui.UiServer.wait_ready", lambda self: None)
    monkeypatch.setattr("foreseer.ui.UiServer.wait", lambda self: 0)
    result = CliRunner().invoke(main, ["ui", "--port", "5999"])
    assert result.exit_code == 0 and "warning" not in result.output
    assert "http://127.0.0.1:5999" in result.output
    assert os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION") is None, (
        "the CLI leaves its own environment alone"
    )
