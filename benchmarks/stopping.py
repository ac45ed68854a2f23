"""Early stopping compared on recorded learning curves, in simulated time (replay backend).

For each curve set (LCBench via the YAHPO surrogate; Foreseer's own recorded curves) and each
task in it, random orders of the task's configurations are replayed under a budget of 20 full
runs, as in LC-PFN's model-selection experiment (Adriaensen et al., NeurIPS 2023, Sec. 5.2), once
sequentially and once Tune-style with 4 trials at a time. Every policy sees the same orders in the
same run: PFN (delta 0.05 and 0.01), no stopping, patience (several k), ASHA and median stopping.

Reported per policy: final regret (oracle best minus best found, in the objective's units:
accuracy fraction on LCBench, validation loss on the recorded curves), epochs consumed to reach
no-stopping's final regret on the same order, and the speed-up budget / those epochs (geometric
mean; an order where the policy never reaches it counts as speed-up 1). PFN forecasts use one
normaliser per task (fitted on the task's curves) so they can be precomputed; a live job refits it
from the curves seen so far. ``--forecast`` also prints the PFN's forecast-error tables.

Run: ``.venv/bin/python benchmarks/stopping.py [--tasks 8] [--orders 40] [--pool 200]``
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from foreseer.backends.replay import simulate
from foreseer.predictors.pfn.cache import PrefixCache
from foreseer.predictors.pfn.evaluate import forecast_table, load_curve_sets
from foreseer.predictors.pfn.normalize import CurveNormalizer
from foreseer.predictors.pfn.predictor import CurveForecaster
from foreseer.stopping import (
    Action,
    AshaPolicy,
    CurveView,
    Decision,
    MedianPolicy,
    NoStoppingPolicy,
    PFNPolicy,
    StoppingPolicy,
)

FULL_RUNS = 20
#: The curve sets: LCBench's development copy beside the checkout, and Foreseer's recorded curves.
LCBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "lcbench_surrogate" / "curves.npz"
RECORDED = Path(__file__).resolve().parent / "data" / "foreseer_curves.npz"


class PatiencePolicy(StoppingPolicy):
    """Stop a trial whose own best has not improved in its last ``k`` epochs (the paper's baseline)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.name = f"patience-{k}"

    def decide(
        self,
        running: Sequence[CurveView],
        best: float | None,
        history: Sequence[CurveView] = (),
        paused: Sequence[CurveView] = (),
    ) -> list[Decision]:
        out = []
        for c in running:
            stale = c.epoch > self.k and max(c.values[: -self.k]) >= max(c.values[-self.k :])
            out.append(
                Decision(c.trial_id, Action.STOP, f"no improvement in {self.k} epochs")
                if stale
                else Decision(c.trial_id)
            )
        return out


def policies(cache: PrefixCache, norm: CurveNormalizer) -> dict[str, StoppingPolicy]:
    return {
        "pfn δ=0.05": PFNPolicy(0.05, 2, forecaster=cache, normalizer=norm),
        "pfn δ=0.01": PFNPolicy(0.01, 2, forecaster=cache, normalizer=norm),
        "none": NoStoppingPolicy(),
        "patience-3": PatiencePolicy(3),
        "patience-5": PatiencePolicy(5),
        "patience-10": PatiencePolicy(10),
        "asha": AshaPolicy(1, 3),
        "median": MedianPolicy(1, 3),
    }


def run_task(
    curves: np.ndarray, forecaster: CurveForecaster, orders: int, concurrency: int, seed: int
) -> dict:
    """Per policy: lists of final regret, epochs to reach none's final regret (None if never)."""
    # one map per task so forecasts can be precomputed; a live job refits it as curves arrive
    norm = CurveNormalizer.fit(list(curves))
    cache = PrefixCache(forecaster, norm(curves), min_epoch=2)
    budget = FULL_RUNS * curves.shape[1]
    oracle = float(np.nanmax(curves))
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for _ in range(orders):
        order = rng.permutation(len(curves))
        runs = {
            name: simulate(curves, order, p, budget, concurrency) for name, p in policies(cache, norm).items()
        }
        target = runs["none"].best_so_far[-1]
        for name, run in runs.items():
            out[name]["regret"].append(oracle - run.best_so_far[-1])
            out[name]["reach"].append(run.epochs_to_reach(target))
            out[name]["budget"].append(budget)
    return out


def summarise(results: list[dict]) -> list[dict[str, object]]:
    rows = []
    for name in results[0]:
        regret = np.concatenate([r[name]["regret"] for r in results])
        reach = [x for r in results for x in r[name]["reach"]]
        budget = [x for r in results for x in r[name]["budget"]]
        reached = [x for x in reach if x is not None]
        speed = [b / x if x is not None else 1.0 for x, b in zip(reach, budget, strict=True)]
        rows.append(
            {
                "policy": name,
                "final regret": float(regret.mean()),
                "reached none's regret": f"{len(reached) / len(reach):.0%}",
                "median epochs to reach": float(np.median(reached)) if reached else math.nan,
                "speed-up (geo. mean)": float(np.exp(np.mean(np.log(speed)))),
            }
        )
    return rows


def recorded_rows(pool: int | None, seed: int = 0) -> dict[str, np.ndarray]:
    """Per recorded group, the rows :func:`recorded_losses` keeps: complete curves, a random
    ``pool`` of them (all with ``None``), in a random order."""
    data = np.load(RECORDED)
    rng = np.random.default_rng(seed)
    out = {}
    for group in sorted({k.split("/")[0] for k in data.files}):
        complete = np.flatnonzero(np.isfinite(data[f"{group}/val_loss"]).all(axis=1))
        out[group] = complete[rng.permutation(len(complete))[:pool]]
    return out


def recorded_losses(pool: int | None, seed: int = 0) -> dict[str, np.ndarray]:
    """The recorded curves' validation loss, negated (higher is better), complete curves only."""
    data = np.load(RECORDED)
    return {group: -data[f"{group}/val_loss"][rows] for group, rows in recorded_rows(pool, seed).items()}


def print_table(console: Console, title: str, rows: list[dict[str, object]]) -> None:
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column, justify="right" if column != "policy" else "left")
    for row in rows:
        table.add_row(*(_cell(k, v) for k, v in row.items()))
    console.print(table)


def _cell(column: str, value: object) -> str:
    if not isinstance(value, float):
        return str(value)
    return f"{value:.4f}" if column == "final regret" else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="PFN checkpoint (default: the shipped one)")
    parser.add_argument("--tasks", type=int, default=None, help="first N tasks of each set (default: all)")
    parser.add_argument("--orders", type=int, default=40, help="random orders per task and setting")
    parser.add_argument("--pool", type=int, default=None, help="configurations per task to draw orders from")
    parser.add_argument("--sets", nargs="*", default=["lcbench", "foreseer"])
    parser.add_argument("--forecast", action="store_true", help="also print the forecast-error tables")
    parser.add_argument(
        "--foreseer-metric",
        default="val_loss",
        choices=["val_loss", "val_accuracy"],
        help="objective on the recorded curves (wine/breast_cancer saturate val_accuracy at 1.0)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console()
    forecaster = CurveForecaster.load(args.checkpoint)
    console.print(f"PFN: {forecaster.describe()}")
    sets = load_curve_sets(LCBENCH, RECORDED, per_set=args.pool)
    if args.foreseer_metric == "val_loss" and RECORDED.exists():
        sets["foreseer"] = recorded_losses(args.pool)
    for set_name in args.sets:
        groups = dict(list(sets.get(set_name, {}).items())[: args.tasks])
        if not groups:
            console.print(f"[yellow]curve set {set_name!r} not found; skipped[/]")
            continue
        for concurrency in (1, 4):
            start = time.perf_counter()
            results = [
                run_task(c, forecaster, args.orders, concurrency, seed=i)
                for i, c in enumerate(groups.values())
            ]
            n = sum(len(c) for c in groups.values())
            title = (
                f"{set_name}: {len(groups)} tasks ({n} curves), {args.orders} orders each, "
                f"budget {FULL_RUNS} full runs, "
                f"{concurrency} concurrent ({time.perf_counter() - start:.0f} s)"
            )
            print_table(console, title, summarise(results))
    if args.forecast:
        for title, rows in forecast_table(forecaster, {k: sets[k] for k in args.sets if k in sets}):
            print_table(console, title, rows)


if __name__ == "__main__":
    main()
