"""Learning-curve PFN inference: time of one call for 32 running trials, and what it costs in quality.

Paths of the shipped model (:class:`CurveForecaster`), all timed in one process and interleaved
call by call, so the ratios hold under a shared machine's varying load:

- ``fp32, every epoch``: one context token per observed epoch, as Foreseer's first model had (the
  shipped model fed that way, for the time only): the 1.00x reference;
- ``int8, every epoch``: the same with the blocks in int8 (``foreseer...pfn.quantize``);
- ``fp32, bins`` and ``int8, bins`` (the default): the context summarised into the model's
  ``context_bins`` tokens (``foreseer...pfn.context``), as the model was trained.

Each trial has observed 5, 20, 50 or 100 epochs of a 100-epoch budget (reference-prior curves);
one call = ``forecast`` + ``prob_above`` (against the best last value, as ``PFNPolicy`` does).
Quality of the binned paths: log-likelihood at the 10/20/40/80% cutoffs on fresh prior curves
(through ``forecast``), the largest change of ``prob_above`` of int8 against fp32 on 1,024 prior
curves, and (``--real``) the final-value forecast MAE on the real curve sets of ``foreseer pfn eval``.

Run: ``.venv/bin/python benchmarks/pfn_inference.py [--calls 50] [--curves 5000] [--real] [--warm-malloc]``
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import resource
import time

import numpy as np
import torch

# the stopping benchmark's curve sets (this script's folder is on sys.path when run)
from stopping import LCBENCH, RECORDED

from foreseer.predictors.pfn.evaluate import forecast_table, load_curve_sets, prior_log_likelihood
from foreseer.predictors.pfn.model import attention_mask
from foreseer.predictors.pfn.predictor import CurveForecaster
from foreseer.predictors.pfn.prior import sample_curves
from foreseer.predictors.pfn.quantize import quantize_int8

EPOCHS = (5, 20, 50, 100)
TRIALS = 32
BUDGET = 100
CUTOFFS = (10, 20, 40, 80)
BASELINE = "fp32, every epoch"
BINNED = ("fp32, bins", "int8, bins")


def every_epoch(f: CurveForecaster) -> CurveForecaster:
    """The same weights fed one token per epoch (a model config without bins)."""
    model = copy.copy(f.model)
    model.config = dataclasses.replace(model.config, context_bins=0)
    return CurveForecaster(model, f.meta)


def variants() -> dict[str, CurveForecaster]:
    fp32 = CurveForecaster.load(quantize=False)
    if not fp32.model.config.context_bins:
        raise SystemExit(
            "the shipped model has no context bins; this benchmark compares bins against every epoch"
        )
    int8 = CurveForecaster(quantize_int8(copy.deepcopy(fp32.model)), fp32.meta)
    return {
        BASELINE: every_epoch(fp32),
        "int8, every epoch": every_epoch(int8),
        "fp32, bins": fp32,
        "int8, bins": int8,
    }


def one_call(f: CurveForecaster, curves: np.ndarray) -> np.ndarray:
    best = float(curves[:, -1].max())
    return f.forecast(list(curves), BUDGET).prob_above(np.full(len(curves), best))


def timings(
    fs: dict[str, CurveForecaster], calls: int, warmup: int = 5
) -> tuple[dict[int, dict[str, list[float]]], dict[int, dict[str, float]]]:
    """Seconds per call, variants interleaved call by call; and minor page faults per call."""
    curves = sample_curves(TRIALS, np.random.default_rng(1))
    out: dict[int, dict[str, list[float]]] = {}
    faults: dict[int, dict[str, float]] = {}
    for e in EPOCHS:
        batch = curves[:, :e]
        out[e] = {name: [] for name in fs}
        faults[e] = dict.fromkeys(fs, 0.0)
        for i in range(warmup + calls):
            for name, f in fs.items():
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                one_call(f, batch)
                if i >= warmup:
                    out[e][name].append(time.perf_counter() - start)
                    faults[e][name] += (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls
    return out, faults


def overheads(f: CurveForecaster, calls: int) -> str:
    """Median ms of the parts of one fp32 call around the network, and no_grad against inference_mode."""
    curves = sample_curves(TRIALS, np.random.default_rng(1))
    header = [
        "inputs (context bins, padding)",
        "attention mask",
        "network, no_grad",
        "network, inference_mode",
    ]
    rows = [
        [f"{e} epochs", *(f"{ms:.3f}" for ms in _overhead_row(f, curves[:, :e], calls))] for e in EPOCHS[1:3]
    ]
    return markdown(f"around the fp32 network, {TRIALS} trials, median ms", ["", *header], rows)


def _overhead_row(f: CurveForecaster, batch: np.ndarray, calls: int) -> list[float]:
    ctx, qry_t, _ = f.inputs(list(batch), BUDGET)

    def network(mode: type) -> None:
        with mode():
            f.model.predict(ctx, qry_t)

    parts = [
        lambda: f.inputs(list(batch), BUDGET),
        lambda: attention_mask(ctx.length, ctx.t.shape[1], 1),
        lambda: network(torch.no_grad),
        lambda: network(torch.inference_mode),
    ]
    times: list[list[float]] = [[] for _ in parts]
    for _ in range(calls):
        for t, fn in zip(times, parts, strict=True):
            start = time.perf_counter()
            fn()
            t.append(time.perf_counter() - start)
    return [float(np.median(t) * 1000) for t in times]


def max_dp(fs: dict[str, CurveForecaster], n: int = 1024) -> dict[str, float]:
    """Largest |change of prob_above| of the binned paths against fp32 bins over ``n`` prior curves."""
    curves = sample_curves(n, np.random.default_rng(2))
    worst = dict.fromkeys(BINNED, 0.0)
    for e in EPOCHS[:-1]:
        for i in range(0, n, TRIALS):
            batch = curves[i : i + TRIALS, :e]
            ref = one_call(fs["fp32, bins"], batch)
            for name in BINNED:
                f = fs[name]
                worst[name] = max(worst[name], float(np.abs(one_call(f, batch) - ref).max()))
    return worst


def markdown(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def timing_table(
    times: dict[int, dict[str, list[float]]], faults: dict[int, dict[str, float]], dp: dict[str, float]
) -> str:
    rows = []
    for name in times[EPOCHS[0]]:
        cells = [name]
        for e in EPOCHS:
            t = np.asarray(times[e][name]) * 1000
            ref = np.median(times[e][BASELINE]) * 1000
            cells.append(f"{np.median(t):.2f} / {t.min():.2f} ({ref / np.median(t):.2f}×)")
        pf = " / ".join(f"{faults[e][name]:.0f}" for e in EPOCHS)
        rows.append([*cells, f"{dp[name]:.3f}" if name in dp else "—", pf])
    calls = len(times[EPOCHS[0]][BASELINE])
    title = (
        f"one call for {TRIALS} trials, ms, median / min of {calls} calls "
        f"({torch.get_num_threads()} thread; × = speed-up of the median against {BASELINE})"
    )
    header = ["variant", *(f"{e} epochs" for e in EPOCHS), "max abs Δp vs fp32 bins", "page faults per call"]
    return markdown(title, header, rows)


def quality_table(fs: dict[str, CurveForecaster], n_curves: int) -> str:
    curves = sample_curves(n_curves, np.random.default_rng(2024))
    rows = []
    ref: dict[int, float] | None = None
    for name in BINNED:
        ll = prior_log_likelihood(fs[name], curves, CUTOFFS)
        ref = ref or ll
        rows.append([name, *(f"{ll[p]:.4f} ({ll[p] - ref[p]:+.4f})" for p in CUTOFFS)])
    title = f"log-likelihood on {n_curves:,} fresh reference-prior curves (change against fp32 bins)"
    return markdown(title, ["variant", *(f"{p}%" for p in CUTOFFS)], rows)


def real_table(fs: dict[str, CurveForecaster]) -> str:
    rows = []
    sets = load_curve_sets(LCBENCH, RECORDED, per_set=100)
    for name in BINNED:
        for title, table in forecast_table(fs[name], sets):
            curve_set = title.split(":")[0]
            rows.append([name, curve_set, *(f"{r['pfn_mae']:.4f} ({r['coverage_90']:.3f})" for r in table)])
    title = "final-value forecast MAE (90% coverage) on the real curve sets of `foreseer pfn eval`"
    return markdown(title, ["variant", "set", *(f"{p}%" for p in CUTOFFS)], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50, help="timed calls per variant and epoch count")
    parser.add_argument("--curves", type=int, default=5000, help="prior curves for the likelihood; 0: skip")
    parser.add_argument("--real", action="store_true", help="also the MAE on the real curve sets")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--warm-malloc",
        action="store_true",
        help="allocate and free 24 MiB first: glibc then keeps freed blocks below that size instead of "
        "returning them to the OS, so calls stop page-faulting (as in a process that freed such a block)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.warm_malloc:
        del_me = torch.empty(24 << 20, dtype=torch.uint8)
        del del_me
    fs = variants()
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)", flush=True)
    times, faults = timings(fs, args.calls)
    print(f"load average after the timing: {os.getloadavg()[0]:.2f}\n", flush=True)
    print(timing_table(times, faults, max_dp(fs)), flush=True)
    print(overheads(fs["fp32, bins"], args.calls), flush=True)
    if args.curves:
        print(quality_table(fs, args.curves), flush=True)
    if args.real:
        print(real_table(fs), flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
