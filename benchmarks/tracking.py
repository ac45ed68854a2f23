"""MLflow at the scale of a big job: writes per second and MLflow UI load times for 1,000 trials x
20 epochs, on SQLite and on PostgreSQL.

Writes go through :class:`foreseer.tracking.Tracker` exactly as the driver makes them (a parent
run; per trial a nested run with its candidate as params, one buffered metrics batch per epoch
of ``val_accuracy``, ``val_loss`` and ``train_loss``, final tags and status), with simulated
learning curves, ``concurrent`` trials interleaved like Tune runs them. Then the lean
``foreseer ui`` server is started on the store and measured three ways:

- the runs search API the experiment page calls (``runs/search``, 100 runs per page, newest first);
- the experiment page in headless Chromium until the job's parent run is listed;
- expanding the parent run until its first nested trial runs are listed.

Run: ``make bench-tracking`` or
``scripts/pg.sh run .venv/bin/python benchmarks/tracking.py [--trials 1000] [--epochs 20]``
(without ``FORESEER_TEST_PG_URL`` only SQLite is measured).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from foreseer.ledger import TrialRecord
from foreseer.testing.chromium import Chromium, chromium_path
from foreseer.tracking import Tracker
from foreseer.ui import UiServer, UiSettings, free_port
from foreseer_spaces import Candidate

EXPANDER = "button[data-component-id*='runnamecellrenderer']"


def write_job(uri: str, folder: Path, trials: int, epochs: int, concurrent: int) -> dict:
    rng = random.Random(0)
    start = time.perf_counter()
    tracker = Tracker(
        uri, "bench-1000", artifact_location=(folder / "artifacts").as_uri(), flush_interval=1.0
    )
    tracker.start_job(
        "bench", {"name": "bench-1000", "trials": trials, "max_epochs": epochs}, "bench-1000-job"
    )
    opened = time.perf_counter()
    pending = list(range(trials))
    running: list[tuple[TrialRecord, float, float]] = []
    while pending or running:
        while pending and len(running) < concurrent:
            number = pending.pop(0)
            candidate = Candidate(
                "mlp",
                {"depth": 1 + number % 4, "width_0": 32 << number % 3},
                {"lr": 10 ** rng.uniform(-4, -1), "batch_size": 64},
            )
            record = TrialRecord(f"t{number}", number, candidate)
            record.run_id = tracker.start_trial(record)
            running.append((record, rng.uniform(0.6, 0.97), rng.uniform(1.5, 4)))
        for record, top, speed in list(running):
            epoch = record.epochs + 1
            accuracy = top * (1 - math.exp(-speed * epoch / epochs))
            metrics = {"val_accuracy": accuracy, "val_loss": 1 - accuracy, "train_loss": 0.9 * (1 - accuracy)}
            record.metrics.append(metrics)
            tracker.log_metrics(record.run_id, metrics, step=epoch)
            if epoch == epochs:
                record.state, record.reason = "completed", f"trained {epochs} epochs"
                tracker.end_trial(record)
                running.remove((record, top, speed))
    tracker.end_job("FINISHED")
    elapsed = time.perf_counter() - opened
    return {
        "experiment_id": tracker.experiment_id,
        "open_s": opened - start,
        "write_s": elapsed,
        "runs_per_s": trials / elapsed,
        "metrics_per_s": tracker.metrics_written / elapsed,
    }


def search_latency(url: str, experiment_id: str, repeats: int = 5) -> float:
    """Median seconds of the runs search the experiment page makes (first page of 100)."""
    body = json.dumps(
        {
            "experiment_ids": [experiment_id],
            "max_results": 100,
            "run_view_type": "ACTIVE_ONLY",
            "order_by": ["attributes.start_time DESC"],
        }
    ).encode()
    times = []
    for _ in range(repeats):
        request = urllib.request.Request(
            f"{url}/ajax-api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"}
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:
            runs = json.load(response).get("runs", [])
        times.append(time.perf_counter() - started)
    assert len(runs) == 100, len(runs)
    return statistics.median(times)


def page_load(url: str, experiment_id: str, profile: Path, screenshot: Path | None) -> tuple[float, float]:
    """Seconds until the parent run is listed on a cold page, and then until its trials are."""
    with Chromium(profile) as browser:
        page = browser.new_page()
        started = time.perf_counter()
        page.navigate(f"{url}/#/experiments/{experiment_id}/runs")
        page.wait_for("document.body.innerText.includes('bench-1000-job')", timeout=300)
        listed = time.perf_counter() - started
        page.evaluate(f"document.querySelector({EXPANDER!r}).click()")
        expanded = page.wait_for("document.body.innerText.includes('trial-')", timeout=300)
        if screenshot is not None:
            page.screenshot(screenshot)
    return listed, expanded


def measure(name: str, uri: str, folder: Path, args: argparse.Namespace) -> dict:
    print(f"[{name}] writing {args.trials} trials x {args.epochs} epochs ...", flush=True)
    row = {"backend": name, **write_job(uri, folder, args.trials, args.epochs, args.concurrent)}
    settings = UiSettings(uri, port=free_port())
    with UiServer(settings, log_path=folder / "ui.log") as server:
        server.wait_ready(timeout=180)
        row["search_s"] = search_latency(server.url, row["experiment_id"])
        if chromium_path():
            shot = Path(args.screenshots) / f"tracking-{name}.png" if args.screenshots else None
            page_load(
                server.url, row["experiment_id"], folder / "warm-profile", None
            )  # warm the server's caches
            row["page_s"], row["expand_s"] = page_load(
                server.url, row["experiment_id"], folder / "profile", shot
            )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=4, help="trials interleaved, as Tune runs them")
    parser.add_argument("--screenshots", default=".build/artifacts", help="folder for the page screenshots")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    rows = []
    with tempfile.TemporaryDirectory(prefix="foreseer-bench-tracking-") as tmp:
        folder = Path(tmp)
        (folder / "sqlite").mkdir()
        rows.append(measure("sqlite", f"sqlite:///{folder}/sqlite/mlflow.db", folder / "sqlite", args))
        pg = os.environ.get("FORESEER_TEST_PG_URL")
        if pg:
            (folder / "postgresql").mkdir()
            rows.append(measure("postgresql", pg, folder / "postgresql", args))
        else:
            print("PostgreSQL skipped: FORESEER_TEST_PG_URL is not set (run under scripts/pg.sh run)")
    values = args.trials * args.epochs * 3
    print(
        f"\n{args.trials} trials x {args.epochs} epochs x 3 metrics = {values:,} metric values, "
        f"{args.concurrent} trials at a time; UI: lean foreseer ui (1 worker, no job runner)\n"
    )
    header = (
        "backend",
        "write s",
        "runs/s",
        "metrics/s",
        "runs/search (100) s",
        "page: parent listed s",
        "expand: trials listed s",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for r in rows:
        cells = [
            r["backend"],
            f"{r['write_s']:.1f}",
            f"{r['runs_per_s']:.1f}",
            f"{r['metrics_per_s']:,.0f}",
            f"{r['search_s']:.3f}",
            _fmt(r.get("page_s")),
            _fmt(r.get("expand_s")),
        ]
        print("| " + " | ".join(cells) + " |")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
