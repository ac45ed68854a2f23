"""How the driver's loop scales: time per tick and memory with 10, 100 and 1,000 trials running at
once, 10,000 trials in all, one policy call (one PFN forward pass) per tick.

On the replay backend the trials are synthetic curves in simulated time, so what is measured is
the driver itself: events in, the ledger, the event stream, one batched policy call, decisions
out. On local Ray the trials are trivial (``RecordedTrainable``: a report and a tiny checkpoint
per epoch, one actor per running trial); an actor is a process of ~100 MB, so Ray runs only as
many at once as this machine holds. The baseline of each row is the same loop with no stopping
(``none``): the PFN's share of a tick is the difference.

Run: ``.venv/bin/python benchmarks/scale.py [--trials 10000] [--epochs 10] [--ray 8 32]``.
Target: <= 50 ms per tick with 1,000 running trials (PFN stopping) on a 2-core machine.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from foreseer.backends.replay import RecordedTrainable, ReplayBackend, ReplaySearcher
from foreseer.driver import LoopPlan, SearchDriver
from foreseer.ledger import Ledger
from foreseer.spec import Objective, Resources
from foreseer.stopping import NoStoppingPolicy, PFNPolicy


def curves(n: int, epochs: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1)
    finals = rng.uniform(0.2, 0.95, (n, 1))
    return finals * (1 - np.exp(-t / rng.uniform(0.5, 4, (n, 1)))) + rng.normal(0, 0.01, (n, epochs))


def policies() -> dict:
    return {"none": NoStoppingPolicy(), "pfn": PFNPolicy(delta=0.05, min_epoch=2)}


def run_loop(
    make_backend, data: np.ndarray, policy, running: int, trials: int, *, traced: bool, repeat: int = 1
) -> dict:
    """Time ``repeat`` runs of the loop and keep the median (this machine's timings vary by up to
    a third from one run to the next); with ``traced``, run it once more under tracemalloc for the
    driver's peak Python memory (tracing slows allocations, so the timed runs are not traced)."""

    def once() -> tuple[SearchDriver, float]:
        ledger = Ledger([Objective("val_accuracy", "max")], data.shape[1])
        driver = SearchDriver(ledger, ReplaySearcher(range(trials)), policy)  # type: ignore[arg-type]
        began = time.perf_counter()
        driver.run(make_backend(), LoopPlan(trials=trials, max_concurrent=running, poll_s=1.0))
        return driver, time.perf_counter() - began

    runs = [once() for _ in range(repeat)]
    driver, seconds = runs[0][0], float(np.median([s for _, s in runs]))
    peak = float("nan")
    if traced:
        tracemalloc.start()
        once()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {"ticks": driver.ticks, "ms_per_tick": 1000 * seconds / driver.ticks, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--running", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--ray", type=int, nargs="*", default=[8, 32], help="running trials on local Ray")
    parser.add_argument("--ray-trials", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the median is shown")
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console()
    table = Table(
        title=f"driver loop: {args.epochs} epochs per trial, one policy call per tick, one CPU thread"
    )
    for column in (
        "backend",
        "running",
        "trials",
        "policy",
        "ticks",
        "ms / tick",
        "ratio to none",
        "peak MiB",
    ):
        table.add_column(column, justify="right")
    rows: list[tuple] = []
    for running in args.running:
        data = curves(args.trials, args.epochs)
        base = None
        for name, policy in policies().items():
            r = run_loop(
                lambda data=data: ReplayBackend(data),
                data,
                policy,
                running,
                args.trials,
                traced=True,
                repeat=args.repeat,
            )
            base = base or r["ms_per_tick"]
            rows.append(
                ("replay", running, args.trials, name, r["ticks"], r["ms_per_tick"], base, r["peak_mib"])
            )
    if args.ray:
        from foreseer.backends.ray_actors import RayBackend
        from foreseer.backends.ray_runtime import ensure_ray

        ensure_ray()
        for running in args.ray:
            data = curves(args.ray_trials, args.epochs)
            base = None
            for name, policy in policies().items():
                with tempfile.TemporaryDirectory() as folder:
                    backend = partial(
                        RayBackend, RecordedTrainable(data), Resources(cpus=0.01), Path(folder), running
                    )
                    r = run_loop(backend, data, policy, running, args.ray_trials, traced=False)
                base = base or r["ms_per_tick"]
                rows.append(
                    ("ray", running, args.ray_trials, name, r["ticks"], r["ms_per_tick"], base, r["peak_mib"])
                )
    for backend, running, trials, name, ticks, ms, base, mib in rows:
        row = (
            backend,
            str(running),
            f"{trials:,}",
            name,
            f"{ticks:,}",
            f"{ms:.2f}",
            f"{ms / base:.2f}",
            f"{mib:.0f}",
        )
        table.add_row(*row)
    console.print(table)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(
        f"driver process peak RSS {rss:,.0f} MiB (peak MiB: the driver's Python heap under tracemalloc; "
        "Ray actors are processes of their own)"
    )


if __name__ == "__main__":
    main()
