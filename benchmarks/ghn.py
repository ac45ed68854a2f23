"""Does the graph hypernetwork earn its keep? Ranking, screening and warm starts against baselines.

For each (space, dataset) pair: ``--candidates`` held-out candidates (none in the hypernetwork's
training pool) are trained to full length from random initialisation with one fixed recipe (AdamW,
lr 3e-3, cosine, batch 64: the ranking is of architectures, as in NAS benchmarks), once per
``--truth-seeds`` training seed; their true ranking is the mean final accuracy over the seeds (as
NAS-Bench-201 averages three), and how well one seed ranks the others' mean is reported to show
how much of the ranking training noise alone scrambles. In the same run they are scored by

* the GHN: validation accuracy with predicted weights, no training (batch-norm in train mode), for
  each of ``--ghn-seeds`` meta-training runs, since one run's ranking differs from the next's;
* parameter count; one epoch of training (the first epoch of the run above); and SynFlow at
  initialisation (Tanaka et al., NeurIPS 2020; as a zero-cost NAS proxy, Abdelfattah et al.,
  ICLR 2021).

Reported: accuracy with predicted weights vs random initialisation; Kendall tau against the final
validation accuracy over all candidates and over the top half; how many of the true top 10 survive
when screening drops the bottom 25% / 50%; warm start (GHN weights + 5% noise + a one-epoch LR
warm-up) against random initialisation on ``--warm`` candidates: epochs to reach 95% of the run's
final accuracy, and that final accuracy; meta-training CPU time and prediction time per candidate.

Phases are cached as JSON under ``--out`` (delete a file to redo it), so an interrupted run resumes.

Run: ``.venv/bin/python benchmarks/ghn.py`` (about 100 minutes of one CPU core for the three pairs,
mostly the cells truth: 100 candidates x 3 seeds x 6 CPU s, and 3 meta-trainings of 290 CPU s).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from foreseer.predictors.ghn.cache import load_ghn, save_ghn
from foreseer.predictors.ghn.meta_train import MetaTrainConfig, meta_train, sample_candidates
from foreseer.predictors.ghn.model import predictive_mode
from foreseer.predictors.ghn.predictor import GHNPredictor
from foreseer.screening import kendall_tau
from foreseer_spaces import Candidate, get_space
from foreseer_workers import TrialConfig, load_dataset, run_trial

RECIPE = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "batch_size": 64, "label_smoothing": 0.0,
          "lr_schedule": "cosine"}  # fmt: skip
EPOCHS = {"cells": 8, "mlp": 30}
PAIRS = ("cells:digits", "mlp:wine", "mlp:breast_cancer")
SCREEN_BATCH = 4  # candidates scored together, as the screening gate's default batch


def candidates_for(space: Any, task: Any, n: int, train_archs: int) -> list[Candidate]:
    """Held-out candidates: distinct from the meta-training pool (seed 0) and its early-stopping set."""
    pool = sample_candidates(space, task, train_archs, seed=0)
    held = sample_candidates(space, task, 16, seed=1, exclude={c.arch_hash for c in pool})
    exclude = {c.arch_hash for c in pool + held}
    return [
        Candidate(c.space, c.arch, RECIPE)
        for c in sample_candidates(space, task, n, seed=1234, exclude=exclude)
    ]


def train(space: Any, data: Any, candidate: Candidate, epochs: int, init: dict | None = None,
          warmup: float = 0.0, seed: int = 0) -> list[float]:  # fmt: skip
    accuracies: list[float] = []

    def report(metrics: dict[str, float], path: str) -> None:
        accuracies.append(metrics["val_accuracy"])
        shutil.rmtree(path, ignore_errors=True)

    config = TrialConfig(space, candidate, max_epochs=epochs, seed=seed, lr_warmup_epochs=warmup)
    outcome = run_trial(config, data, report, init_weights=init)
    return (
        accuracies + [math.nan] * (epochs - len(accuracies)) if outcome.status != "completed" else accuracies
    )


def synflow(space: Any, data: Any, candidate: Candidate) -> float:
    """SynFlow: sum over parameters of |theta * dR/dtheta| with R the output of |theta| on ones."""
    torch.manual_seed(0)
    model = space.build(candidate, data.task).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    out = model(torch.ones(1, *data.task.input_shape, dtype=torch.float64)).sum()
    out.backward()
    total = sum((p * p.grad).abs().sum().item() for p in model.parameters() if p.grad is not None)
    return math.log(total + 1e-30)


def random_init_accuracy(space: Any, data: Any, candidate: Candidate) -> float:
    torch.manual_seed(0)
    model = predictive_mode(space.build(candidate, data.task))
    with torch.no_grad():
        logits = model(torch.tensor(data.x_val))
    return float((logits.argmax(1) == torch.tensor(data.y_val)).float().mean())


def phase_truth(pair: str, args: argparse.Namespace, path: Path) -> None:
    """Train every held-out candidate with ``--truth-seeds`` seeds; a rerun with more seeds adds only
    the new ones."""
    space_name, dataset = pair.split(":")
    space, data = get_space(space_name), load_dataset(dataset)
    cands = candidates_for(space, data.task, args.candidates, MetaTrainConfig().train_archs)
    rows = json.loads(path.read_text()) if path.exists() else []
    if [r["candidate"] for r in rows] != [c.to_dict() for c in cands[: len(rows)]]:
        raise SystemExit(
            f"{path} holds other candidates than this run samples; move it away to start afresh."
        )
    for i, c in enumerate(cands):
        if i < len(rows) and len(rows[i]["curves"]) >= args.truth_seeds:
            continue
        if i == len(rows):
            began = time.process_time()
            curve = train(space, data, c, EPOCHS[space_name])
            rows.append({"candidate": c.to_dict(), "curves": [curve],
                         "train_cpu_s": time.process_time() - began,
                         "num_params": sum(p.numel() for p in space.build(c, data.task).parameters()),
                         "synflow": synflow(space, data, c),
                         "random_init": random_init_accuracy(space, data, c)})  # fmt: skip
        for seed in range(len(rows[i]["curves"]), args.truth_seeds):
            rows[i]["curves"].append(train(space, data, c, EPOCHS[space_name], seed=seed))
        logging.info(
            "%s truth %d/%d: final %s", pair, i + 1, len(cands), [round(k[-1], 3) for k in rows[i]["curves"]]
        )
        path.write_text(json.dumps(rows))


def phase_meta_train(pair: str, args: argparse.Namespace, path: Path, seed: int) -> Any:
    """Meta-train the pair's hypernetwork with meta-training seed ``seed`` (or load it from an
    earlier run's checkpoint); its summary goes beside it as JSON, which the table reads."""
    if path.exists():
        return load_ghn(path)[0]
    space_name, dataset = pair.split(":")
    config = MetaTrainConfig(max_seconds=args.ghn_seconds, seed=seed)
    result = meta_train(get_space(space_name), load_dataset(dataset), config)
    meta = {"summary": result.summary(), "history": result.history}
    save_ghn(path, result.ghn, meta)
    path.with_suffix(".json").write_text(json.dumps(meta))
    return result.ghn


def phase_scores(pair: str, args: argparse.Namespace, path: Path, ghn: Any) -> None:
    """GHN scores (accuracy with predicted weights) of the held-out candidates, and prediction time."""
    space, data, cands = _setup(pair, args)
    predictor = GHNPredictor(ghn, space, data.task, cache_size=SCREEN_BATCH)
    scores, predict_s = [], []
    for start in range(0, len(cands), SCREEN_BATCH):
        chunk = cands[start : start + SCREEN_BATCH]
        predictor._cache.clear()  # time building, tracing and encoding too
        began = time.process_time()
        predictor.predict_many(chunk)
        predict_s += [(time.process_time() - began) / len(chunk)] * len(chunk)
        scores += predictor.score(chunk, data.x_val, data.y_val)
    path.write_text(json.dumps({"scores": scores, "predict_s": predict_s}))


def phase_warm(pair: str, args: argparse.Namespace, path: Path, ghn: Any) -> None:
    """Training curves of the first ``--warm`` held-out candidates warm-started from the GHN."""
    space, data, cands = _setup(pair, args)
    predictor = GHNPredictor(ghn, space, data.task, cache_size=1)
    warm = []
    for c in cands[: args.warm]:
        init = predictor.warm_start(c, data.x_train)
        warm.append(train(space, data, c, EPOCHS[space.name], init=init, warmup=1.0))
    path.write_text(json.dumps({"warm": warm}))


def _setup(pair: str, args: argparse.Namespace) -> tuple[Any, Any, list[Candidate]]:
    space_name, dataset = pair.split(":")
    space, data = get_space(space_name), load_dataset(dataset)
    return space, data, candidates_for(space, data.task, args.candidates, MetaTrainConfig().train_archs)


def top_kept(score: list[float], final: list[float], drop: float) -> int:
    order = sorted(range(len(score)), key=lambda i: score[i], reverse=True)
    kept = set(order[: len(order) - int(len(order) * drop)])
    top = sorted(range(len(final)), key=lambda i: final[i], reverse=True)[:10]
    return sum(i in kept for i in top)


def epochs_to_95(curve: list[float], start: float) -> int:
    target = 0.95 * curve[-1]
    return next((e for e, a in enumerate([start, *curve]) if a >= target), len(curve))


def _tau(tau: float) -> str:
    return "n/a (tied)" if math.isnan(tau) else f"{tau:.3f}"


def ranking_row(score: list[float], final: list[float]) -> tuple[float, float, int, int]:
    """Kendall tau over all and over the top half of ``final``, and the true top 10 kept at both drops."""
    half = sorted(range(len(final)), key=lambda i: final[i], reverse=True)[: len(final) // 2]
    return (kendall_tau(score, final), kendall_tau([score[i] for i in half], [final[i] for i in half]),
            top_kept(score, final, 0.25), top_kept(score, final, 0.5))  # fmt: skip


def seed_agreement(curves: list[list[list[float]]]) -> tuple[float, float, float, float]:
    """How well one training seed's final accuracy ranks the mean of the other seeds' (averaged over
    seeds)."""
    rows = []
    for s in range(len(curves[0])):
        others = [statistics.mean(c[k][-1] for k in range(len(c)) if k != s) for c in curves]
        rows.append(ranking_row([c[s][-1] for c in curves], others))
    return tuple(statistics.mean(r[j] for r in rows) for j in range(4))  # type: ignore[return-value]


def table(pair: str, truth: list[dict], runs: list[dict], warm: list[list[float]]) -> list[str]:
    """The pair's tables. ``runs``: one ``{"seed", "scores", "predict_s", "summary"}`` per meta-trained
    GHN."""
    seeds = min(len(r["curves"]) for r in truth)
    ok = [i for i, r in enumerate(truth) if not any(math.isnan(a) for c in r["curves"][:seeds] for a in c)]
    curves = [truth[i]["curves"][:seeds] for i in ok]
    final = [statistics.mean(c[-1] for c in cs) for cs in curves]
    ghn_rows = [ranking_row([run["scores"][i] for i in ok], final) for run in runs]
    rows = {
        "parameter count": ranking_row([float(truth[i]["num_params"]) for i in ok], final),
        "1 epoch of training (seed 0)": ranking_row([cs[0][0] for cs in curves], final),
        "SynFlow at init": ranking_row([truth[i]["synflow"] for i in ok], final),
    }
    if seeds > 1:
        rows["full training, one seed (against the other seeds' mean)"] = seed_agreement(curves)
    lines = [f"\n### {pair}: {len(ok)} held-out candidates, {len(curves[0][0])} epochs, "
             f"final accuracy averaged over {seeds} training seeds\n",
             "| ranker | Kendall tau (all) | tau (top half) | top-10 kept, drop 25% "
             "| top-10 kept, drop 50% |",
             "|---|---|---|---|---|",
             f"| GHN (predicted weights), {len(runs)} meta-training seeds: mean (min to max) | "
             + " | ".join(spread([r[j] for r in ghn_rows], ".3f") for j in (0, 1)) + " | "
             + " | ".join(", ".join(f"{r[j]:g}" for r in ghn_rows) for j in (2, 3)) + " |"]  # fmt: skip
    for name, (tau, tau_half, kept25, kept50) in rows.items():
        lines.append(f"| {name} | {_tau(tau)} | {_tau(tau_half)} | {kept25:.3g} | {kept50:.3g} |")
    first = [truth[i]["curves"][0] for i in ok]  # warm starts compare with seed 0's run from random init
    predicted = [statistics.mean(run["scores"][i] for i in ok) for run in runs]
    lines += ["", "| quantity | GHN | random init |", "|---|---|---|",
              f"| accuracy, no training (mean; median of the first GHN) | {spread(predicted, '.3f')}; "
              f"{statistics.median(runs[0]['scores'][i] for i in ok):.3f} | "
              f"{statistics.mean(truth[i]['random_init'] for i in ok):.3f} |",
              f"| accuracy of the trained networks (mean) | {statistics.mean(final):.3f} | |"]  # fmt: skip
    pairs = [
        (warm[i], k) for k, i in enumerate(ok) if i < len(warm) and not any(math.isnan(a) for a in warm[i])
    ]
    if pairs:
        w_epochs = statistics.mean(epochs_to_95(w, runs[0]["scores"][ok[k]]) for w, k in pairs)
        r_epochs = statistics.mean(epochs_to_95(first[k], truth[ok[k]]["random_init"]) for _, k in pairs)
        lines += [f"| warm start from the first GHN ({len(pairs)} candidates): epochs to 95% of final "
                  f"| {w_epochs:.2f} | {r_epochs:.2f} |",
                  f"| warm start: final accuracy (mean) "
                  f"| {statistics.mean(w[-1] for w, _ in pairs):.3f} | "
                  f"{statistics.mean(first[k][-1] for _, k in pairs):.3f} |",
                  f"| warm start: accuracy after 1 epoch (mean) "
                  f"| {statistics.mean(w[0] for w, _ in pairs):.3f} | "
                  f"{statistics.mean(first[k][0] for _, k in pairs):.3f} |"]  # fmt: skip
    cpu = [run["summary"]["cpu_seconds"] for run in runs]
    steps = [run["summary"]["steps"] for run in runs]
    stops = sorted({run["summary"]["stopped"] for run in runs})
    lines += [f"| meta-training: CPU s; steps; stopped by "
              f"| {spread(cpu, '.0f')}; {spread(steps, '.0f')}; {', '.join(stops)} | |",
              f"| prediction CPU time per candidate, ms (median; build + trace + encode + GHN, "
              f"batches of {SCREEN_BATCH}) | "
              f"{1000 * statistics.median(t for run in runs for t in run['predict_s']):.1f} | |",
              f"| training time per candidate, CPU s (mean) | "
              f"| {statistics.mean(truth[i]['train_cpu_s'] for i in ok):.1f} |"]  # fmt: skip
    return lines


def spread(values: list[float], fmt: str) -> str:
    """``mean (min to max)`` of ``values``, NaNs left out."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a (tied)"
    if len(values) == 1:
        return format(values[0], fmt)
    return (
        f"{format(statistics.mean(values), fmt)} ({format(min(values), fmt)} to {format(max(values), fmt)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS))
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--warm", type=int, default=30)
    parser.add_argument(
        "--truth-seeds", type=int, default=3, help="Training seeds averaged into the true ranking."
    )
    parser.add_argument("--ghn-seconds", type=float, default=MetaTrainConfig().max_seconds)
    parser.add_argument("--ghn-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="Meta-training seeds: one GHN each (rankings vary from one to the next); "
                             "warm starts use the first.")  # fmt: skip
    parser.add_argument(
        "--phase", choices=("truth", "meta-train", "scores", "warm", "table", "all"), default="all"
    )
    parser.add_argument(
        "--out", default="benchmarks/results/ghn", help="Results folder (checkpoints are not committed)."
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for pair in args.pairs:
        stem = pair.replace(":", "-")
        truth, warm = out / f"{stem}-truth.json", out / f"{stem}-warm.json"
        if args.phase in ("truth", "all"):
            phase_truth(pair, args, truth)
        for seed in args.ghn_seeds:
            checkpoint, scores = out / f"{stem}-ghn{seed}.safetensors", out / f"{stem}-scores{seed}.json"
            wants_warm = seed == args.ghn_seeds[0] and args.phase in ("warm", "all") and not warm.exists()
            if (
                args.phase in ("meta-train", "all")
                or (args.phase == "scores" and not scores.exists())
                or wants_warm
            ):
                ghn = phase_meta_train(pair, args, checkpoint, seed)
                if args.phase in ("scores", "all") and not scores.exists():
                    phase_scores(pair, args, scores, ghn)
                if wants_warm:
                    phase_warm(pair, args, warm, ghn)
        runs = [{"seed": seed, **json.loads((out / f"{stem}-scores{seed}.json").read_text()),
                 "summary": json.loads((out / f"{stem}-ghn{seed}.json").read_text())["summary"]}
                for seed in args.ghn_seeds
                if (out / f"{stem}-scores{seed}.json").exists()
                and (out / f"{stem}-ghn{seed}.json").exists()]  # fmt: skip
        if truth.exists() and runs:
            warm_curves = json.loads(warm.read_text())["warm"] if warm.exists() else []
            lines += table(pair, json.loads(truth.read_text()), runs, warm_curves)
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
