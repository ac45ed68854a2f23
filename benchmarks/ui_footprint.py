"""Processes and memory of the MLflow UI server: ``mlflow server`` on its defaults against the lean
settings ``foreseer ui`` uses (``--workers 1``, ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``).

Each server starts in a session of its own on an empty SQLite store; once ``/health`` answers and
10 s have passed (the job runner starts its consumers after the server), every process in the
session is counted with its RSS and PSS (PSS shares copy-on-write pages fairly between processes).

Run: ``.venv/bin/python benchmarks/ui_footprint.py`` (Linux: reads /proc).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from foreseer.ui import UiServer, UiSettings, free_port

SETTLE_S = 10.0


def session(session_id: int) -> list[tuple[int, int, int, str]]:
    """(pid, RSS bytes, PSS bytes, command) of every live process in a session."""
    rows = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != session_id or fields[0] == "Z":
                continue
            rollup = dict(
                line.split(":", 1) for line in (entry / "smaps_rollup").read_text().splitlines()[1:]
            )
            command = (entry / "cmdline").read_text().replace("\0", " ").strip()
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        kib = lambda key, rollup=rollup: int(rollup[key].split()[0]) * 1024  # noqa: E731
        rows.append((int(entry.name), kib("Rss"), kib("Pss"), command))
    return rows


def measure(label: str, settings: UiSettings, folder: Path) -> tuple[str, float, int, int, int]:
    started = time.perf_counter()
    with UiServer(settings, log_path=folder / f"{label}.log") as server:
        server.wait_ready(timeout=300)
        ready = time.perf_counter() - started
        time.sleep(SETTLE_S)
        rows = session(server.process.pid)
    for pid, rss, _, command in rows:
        print(f"  {label:8} {pid:7} {rss / 2**20:6.0f} MiB  {command[:90]}")
    return label, ready, len(rows), sum(r[1] for r in rows), sum(r[2] for r in rows)


def main() -> None:
    if sys.platform != "linux":
        sys.exit("reads /proc: Linux only")
    with tempfile.TemporaryDirectory(prefix="foreseer-ui-footprint-") as tmp:
        folder = Path(tmp)
        uri = f"sqlite:///{folder}/mlflow.db"
        default = UiSettings(uri, port=free_port(), workers=4, job_execution=True)  # mlflow server's defaults
        lean = UiSettings(uri, port=free_port())
        results = [measure("default", default, folder), measure("lean", lean, folder)]
    print("\n| mlflow server | ready s | processes | RSS MiB | PSS MiB |\n|---|---:|---:|---:|---:|")
    for label, ready, count, rss, pss in results:
        name = (
            "defaults (4 workers, job execution on)"
            if label == "default"
            else "foreseer ui (1 worker, job execution off)"
        )
        print(f"| {name} | {ready:.1f} | {count} | {rss / 2**20:,.0f} | {pss / 2**20:,.0f} |")


if __name__ == "__main__":
    main()
