"""Freeze-thaw against stopping rules on recorded learning curves, in simulated time (replay backend).

The protocol of issue 13 (after ifBO, Rakotoarison et al., ICML 2024, and LC-PFN's model-selection
experiment, Adriaensen et al., NeurIPS 2023): per task, random orders of its configurations are
replayed through Foreseer's search loop under a budget of ``FULL_RUNS`` full runs, one trial at a
time. Every method sees the same orders in the same run:

- freeze-thaw (``stopping: freeze_thaw``) with each acquisition, on the shipped per-curve PFN;
  with ``--in-context CHECKPOINT`` also MFPI-random and LC-PFN stopping on that in-context PFN,
  which reads every trial's configuration (LCBench's seven hyperparameters; Foreseer's recorded
  candidates through ``foreseer_spaces.SpaceFeatures``, as a live job gives them; new candidates
  are forecast at configurations drawn from the task's pool);
- LC-PFN stopping (``stopping: pfn``, δ = 0.05), ASHA (grace 1, η 3), asynchronous Hyperband
  (ASHA brackets with grace periods 1, 3, 9, 27, trials dealt round-robin, as Ray Tune's
  ``AsyncHyperBandScheduler`` after Li et al., MLSys 2020), median stopping (grace 1, 3 samples),
  patience k = 3, 5, 10;
- no stopping, which is the random-search + full-training reference (the orders are random).

Reported per method: the median and mean speed-up (budget epochs / epochs until the best so far
first reaches no stopping's final value; an order where it never does counts as 1), the strict
speed-up (no stopping's own first-reach epoch / the method's, a miss counting as the whole budget),
the share of orders that reached it, and the final normalised regret ((oracle − found) / (oracle −
worst configuration's best), 0 is the task's best configuration, 1 its worst). The anytime regret
(the same normalisation after every epoch spent, mean over tasks and orders) is plotted.

Both PFN methods use one normaliser per task, fitted on the task's curves, so forecasts are
comparable across orders; a live job fits it from the curves seen so far.

Run: ``.venv/bin/python benchmarks/freeze_thaw.py [--orders 40] [--tasks N] [--jobs 2] [--out DIR]
[--in-context CHECKPOINT] [--methods NAME ...]`` (``--methods``: a subset, with none);
``--out benchmarks/results/freeze_thaw`` writes the tables the READMEs show and one plot per set.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

# the stopping benchmark's curve sets and baselines (this script's folder is on sys.path when run)
from stopping import FULL_RUNS, LCBENCH, RECORDED, PatiencePolicy, recorded_losses, recorded_rows

from foreseer.backends.replay import simulate
from foreseer.predictors.pfn.cache import PrefixCache
from foreseer.predictors.pfn.evaluate import lcbench_features, load_curve_sets, recorded_configurations
from foreseer.predictors.pfn.in_context import JobForecaster
from foreseer.predictors.pfn.normalize import CurveNormalizer
from foreseer.predictors.pfn.predictor import CurveForecaster
from foreseer.stopping import (
    AshaPolicy,
    CurveView,
    Decision,
    FreezeThawPolicy,
    MedianPolicy,
    NoStoppingPolicy,
    PFNPolicy,
    StoppingPolicy,
)

#: Grace periods of the asynchronous Hyperband brackets (η = 3).
HYPERBAND_GRACE = (1, 3, 9, 27)
#: Points of the anytime-regret curve, as fractions of the budget.
ANYTIME = np.linspace(0.0, 1.0, 101)[1:]


class HyperbandPolicy(StoppingPolicy):
    """Asynchronous Hyperband: trial ``n`` joins bracket ``n mod len(grace)``, an ASHA of its own
    grace period that compares it only with the trials of its bracket."""

    name = "hyperband"

    def __init__(self, grace: Sequence[int] = HYPERBAND_GRACE, reduction_factor: float = 3) -> None:
        self.brackets = [AshaPolicy(g, reduction_factor) for g in grace]

    def _bracket(self, curve: CurveView) -> int:
        return int(curve.trial_id.lstrip("t")) % len(self.brackets)

    def decide(
        self,
        running: Sequence[CurveView],
        best: float | None,
        history: Sequence[CurveView] = (),
        paused: Sequence[CurveView] = (),
    ) -> list[Decision]:
        out = []
        for curve in running:
            bracket = self._bracket(curve)
            peers = [c for c in history if self._bracket(c) == bracket]
            out.extend(self.brackets[bracket].decide([curve], best, peers))
        return out


def methods(
    forecaster: CurveForecaster,
    cache: PrefixCache,
    norm: CurveNormalizer,
    in_context: JobForecaster | None = None,
    features: np.ndarray | None = None,
) -> dict[str, StoppingPolicy]:
    extra: dict[str, StoppingPolicy] = {}
    if in_context is not None and features is not None:

        def drawn(rng: np.random.Generator, k: int) -> np.ndarray:
            return features[rng.integers(0, len(features), k)]

        extra["freeze-thaw in-context mfpi_random"] = FreezeThawPolicy(
            forecaster=in_context, normalizer=norm, new_features=drawn
        )
        extra["in-context pfn δ=0.05"] = PFNPolicy(0.05, 2, forecaster=in_context, normalizer=norm)
    return extra | {
        "freeze-thaw mfpi_random": FreezeThawPolicy(forecaster=forecaster, normalizer=norm),
        "freeze-thaw ei_per_epoch": FreezeThawPolicy(
            acquisition="ei_per_epoch", forecaster=forecaster, normalizer=norm
        ),
        "pfn δ=0.05": PFNPolicy(0.05, 2, forecaster=cache, normalizer=norm),
        "asha": AshaPolicy(1, 3),
        "hyperband": HyperbandPolicy(),
        "median": MedianPolicy(1, 3),
        "patience-3": PatiencePolicy(3),
        "patience-5": PatiencePolicy(5),
        "patience-10": PatiencePolicy(10),
        "none": NoStoppingPolicy(),
    }


_LOADED: dict[str | None, CurveForecaster | JobForecaster] = {}


def _load(checkpoint: str | None, in_context: bool = False) -> CurveForecaster | JobForecaster:
    """A forecaster loaded once per process."""
    if checkpoint not in _LOADED:
        torch.set_num_threads(1)
        kind = JobForecaster if in_context else CurveForecaster
        _LOADED[checkpoint] = kind.load(checkpoint)  # type: ignore[attr-defined]
    return _LOADED[checkpoint]


def run_task(
    curves: np.ndarray,
    orders: int,
    seed: int,
    checkpoint: str | None,
    in_context: str | None = None,
    features: np.ndarray | None = None,
    only: Sequence[str] | None = None,
) -> dict[str, dict[str, list]]:
    """Per method: per order, the final normalised regret, the epochs to reach none's final value
    (None if never), none's own first-reach epoch, and the anytime regret at ``ANYTIME``."""
    forecaster = _load(checkpoint)
    job_forecaster = _load(in_context, in_context=True) if in_context and features is not None else None
    norm = CurveNormalizer.fit(list(curves))
    cache = PrefixCache(forecaster, norm(curves), min_epoch=2)
    budget = FULL_RUNS * curves.shape[1]
    oracle = float(np.nanmax(curves))
    scale = max(oracle - float(np.nanmin(np.nanmax(curves, axis=1))), 1e-12)
    at = np.maximum(np.ceil(ANYTIME * budget).astype(int), 1)
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for _ in range(orders):
        order = rng.permutation(len(curves))
        policies = methods(forecaster, cache, norm, job_forecaster, features)  # type: ignore[arg-type]
        unknown = sorted(set(only or ()) - set(policies))
        if unknown:
            raise ValueError(
                f"no method {unknown} (the in-context ones need --in-context); methods: {list(policies)}"
            )
        policies = {k: p for k, p in policies.items() if not only or k in only or k == "none"}
        runs = {name: simulate(curves, order, p, budget, features=features) for name, p in policies.items()}
        target = runs["none"].best_so_far[-1]
        own = runs["none"].epochs_to_reach(target)
        for name, run in runs.items():
            trace = run.best_so_far
            anytime = (oracle - trace[np.minimum(at, len(trace)) - 1]) / scale
            out[name]["regret"].append(float(anytime[-1]))
            out[name]["reach"].append(run.epochs_to_reach(target))
            out[name]["own"].append(own)
            out[name]["budget"].append(budget)
            out[name]["anytime"].append(anytime)
    return {k: dict(v) for k, v in out.items()}


def summarise(results: list[dict[str, dict[str, list]]]) -> list[dict[str, object]]:
    rows = []
    for name in results[0]:
        pooled = {k: [x for r in results for x in r[name][k]] for k in ("regret", "reach", "own", "budget")}
        reach, budget = pooled["reach"], pooled["budget"]
        speed = np.asarray([b / x if x is not None else 1.0 for x, b in zip(reach, budget, strict=True)])
        strict = np.asarray(
            [o / (x if x is not None else b) for x, o, b in zip(reach, pooled["own"], budget, strict=True)]
        )
        rows.append(
            {
                "method": name,
                "median speed-up": float(np.median(speed)),
                "mean speed-up": float(speed.mean()),
                "strict speed-up (median)": float(np.median(strict)),
                "reached none's final": f"{np.mean([x is not None for x in reach]):.0%}",
                "final normalised regret": float(np.mean(pooled["regret"])),
            }
        )
    return rows


def markdown(title: str, rows: list[dict[str, object]]) -> str:
    columns = list(rows[0])
    rule = "|---" + "|---:" * (len(columns) - 1) + "|"
    lines = [f"#### {title}", "", "| " + " | ".join(columns) + " |", rule]
    for row in rows:
        cells = [_cell(k, v) for k, v in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(column: str, value: object) -> str:
    if not isinstance(value, float):
        return str(value)
    return f"{value:.4f}" if column == "final normalised regret" else f"{value:.2f}"


def plot(set_name: str, curves: dict[str, np.ndarray], path: Path) -> None:
    """Mean normalised regret of each method against the budget spent, on one curve set."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    for name, curve in curves.items():
        style = "-" if name.startswith("freeze-thaw") else "--" if name in ("pfn δ=0.05", "none") else ":"
        ax.plot(ANYTIME * FULL_RUNS, curve, style, label=name, linewidth=1.6 if style == "-" else 1.2)
    ax.set_yscale("log")
    ax.set_xlabel("epochs spent, in full runs")
    ax.set_ylabel("normalised regret (mean)")
    ax.set_title(set_name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="PFN checkpoint (default: the shipped one)")
    parser.add_argument("--tasks", type=int, default=None, help="first N tasks of each set (default: all)")
    parser.add_argument("--orders", type=int, default=40, help="random orders per task")
    parser.add_argument("--sets", nargs="*", default=["lcbench", "foreseer"])
    parser.add_argument("--jobs", type=int, default=1, help="tasks replayed at once, one process each")
    parser.add_argument("--out", type=Path, help="write <set>.md and anytime_regret_<set>.png here")
    parser.add_argument(
        "--in-context", default=None, help="also freeze-thaw and pfn stopping on this in-context checkpoint"
    )
    parser.add_argument("--methods", nargs="*", help="only these methods (and none, the reference)")
    args = parser.parse_args()
    sets = load_curve_sets(LCBENCH, RECORDED)
    known: dict[str, list[np.ndarray]] = {}  # each set's configurations as features, task by task
    if LCBENCH.exists():
        data = np.load(LCBENCH)
        known["lcbench"] = list(lcbench_features(data["configs"], data["hp_names"]))
    if RECORDED.exists():  # the recorded curves' objective is the validation loss (accuracy saturates)
        sets["foreseer"] = recorded_losses(None)
        if args.in_context and "foreseer" in args.sets:
            known["foreseer"] = list(recorded_configurations(RECORDED, recorded_rows(None)).values())
    texts, anytime = [], {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for set_name in args.sets:
            groups = dict(list(sets.get(set_name, {}).items())[: args.tasks])
            if not groups:
                print(f"curve set {set_name!r} not found; skipped")
                continue
            start = time.perf_counter()
            features = known.get(set_name, [None] * len(groups))
            futures = [
                pool.submit(
                    run_task,
                    curves,
                    args.orders,
                    i,
                    args.checkpoint,
                    args.in_context,
                    features[i],
                    args.methods,
                )
                for i, curves in enumerate(groups.values())
            ]
            results = [f.result() for f in futures]
            n = sum(len(c) for c in groups.values())
            title = (
                f"{set_name}: {len(groups)} tasks ({n} curves), {args.orders} orders each, budget "
                f"{FULL_RUNS} full runs, 1 trial at a time ({time.perf_counter() - start:.0f} s)"
            )
            text = markdown(title, summarise(results))
            print(text + "\n", flush=True)
            texts.append(text)
            anytime[set_name] = {
                name: np.mean([a for r in results for a in r[name]["anytime"]], axis=0) for name in results[0]
            }
    if args.out is not None and texts:
        args.out.mkdir(parents=True, exist_ok=True)
        command = shlex.join(["benchmarks/freeze_thaw.py", *sys.argv[1:]])
        for set_name, text in zip(anytime, texts, strict=True):
            note = f"Measured with `.venv/bin/python {command}`."
            (args.out / f"{set_name}.md").write_text(f"{text}\n\n{note}\n")
            plot(set_name, anytime[set_name], args.out / f"anytime_regret_{set_name}.png")


if __name__ == "__main__":
    main()
