"""Does the graph hypernetwork earn its keep? Ranking, screening and warm starts against baselines.

For each (space, dataset) pair: ``--candidates`` held-out candidates (none in the hypernetwork's
training pool) are trained to full length from random initialisation with one fixed recipe (AdamW,
lr 3e-3, cosine, batch 64: the ranking is of architectures, as in NAS benchmarks), then, in the
same run, scored by

* the GHN: validation accuracy with predicted weights, no training (batch-norm in train mode);
* parameter count; one epoch of training (the first epoch of the run above); and SynFlow at
  initialisation (Tanaka et al., NeurIPS 2020; as a zero-cost NAS proxy, Abdelfattah et al.,
  ICLR 2021).

Reported: accuracy with predicted weights vs random initialisation; Kendall tau against the final
validation accuracy over all candidates and over the top half; how many of the true top 10 survive
when screening drops the bottom 25% / 50%; warm start (GHN weights + 5% noise + a one-epoch LR
warm-up) against random initialisation on ``--warm`` candidates: epochs to reach 95% of the run's
final accuracy, and that final accuracy; meta-training CPU time and prediction time per candidate.

Phases are cached as JSON under ``--out`` (delete a file to redo it), so an interrupted run resumes.

Run: ``.venv/bin/python benchmarks/ghn.py`` (about 40 minutes of one CPU core for the three pairs).
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
    return [Candidate(c.space, c.arch, RECIPE) for c in sample_candidates(space, task, n, seed=1234, exclude=exclude)]


def train(space: Any, data: Any, candidate: Candidate, epochs: int, init: dict | None = None, warmup: float = 0.0) -> list[float]:
    accuracies: list[float] = []

    def report(metrics: dict[str, float], path: str) -> None:
        accuracies.append(metrics["val_accuracy"])
        shutil.rmtree(path, ignore_errors=True)

    config = TrialConfig(space, candidate, max_epochs=epochs, seed=0, lr_warmup_epochs=warmup)
    outcome = run_trial(config, data, report, init_weights=init)
    return accuracies + [math.nan] * (epochs - len(accuracies)) if outcome.status != "completed" else accuracies


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
    space_name, dataset = pair.split(":")
    space, data = get_space(space_name), load_dataset(dataset)
    cands = candidates_for(space, data.task, args.candidates, MetaTrainConfig().train_archs)
    rows = []
    for i, c in enumerate(cands):
        began = time.process_time()
        curve = train(space, data, c, EPOCHS[space_name])
        rows.append({"candidate": c.to_dict(), "curve": curve, "train_cpu_s": time.process_time() - began,
                     "num_params": sum(p.numel() for p in space.build(c, data.task).parameters()),
                     "synflow": synflow(space, data, c), "random_init": random_init_accuracy(space, data, c)})  # fmt: skip
        logging.info("%s truth %d/%d: final %.3f", pair, i + 1, len(cands), curve[-1])
    path.write_text(json.dumps(rows))


def phase_meta_train(pair: str, args: argparse.Namespace, path: Path) -> tuple[Any, dict]:
    """Meta-train the pair's hypernetwork (or load it from an earlier run's checkpoint)."""
    if path.exists():
        ghn, meta = load_ghn(path)
        path.with_suffix(".json").write_text(json.dumps(meta))  # the table reads this, not the weights
        return ghn, meta
    space_name, dataset = pair.split(":")
    result = meta_train(get_space(space_name), load_dataset(dataset), MetaTrainConfig(max_seconds=args.ghn_seconds))
    save_ghn(path, result.ghn, {"summary": result.summary(), "history": result.history})
    path.with_suffix(".json").write_text(json.dumps({"summary": result.summary(), "history": result.history}))
    return result.ghn, {"summary": result.summary(), "history": result.history}


def phase_scores(pair: str, args: argparse.Namespace, path: Path) -> None:
    """GHN scores (accuracy with predicted weights) of the held-out candidates, and prediction time."""
    space, data, ghn, cands = _ghn_setup(pair, args, path)
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


def phase_warm(pair: str, args: argparse.Namespace, path: Path) -> None:
    """Training curves of the first ``--warm`` held-out candidates warm-started from the GHN."""
    space, data, ghn, cands = _ghn_setup(pair, args, path)
    predictor = GHNPredictor(ghn, space, data.task, cache_size=1)
    warm = []
    for c in cands[: args.warm]:
        init = predictor.warm_start(c, data.x_train)
        warm.append(train(space, data, c, EPOCHS[space.name], init=init, warmup=1.0))
    path.write_text(json.dumps({"warm": warm}))


def _ghn_setup(pair: str, args: argparse.Namespace, path: Path) -> tuple[Any, Any, Any, list[Candidate]]:
    space_name, dataset = pair.split(":")
    space, data = get_space(space_name), load_dataset(dataset)
    ghn, _ = phase_meta_train(pair, args, path.parent / f"{pair.replace(':', '-')}-ghn.safetensors")
    return space, data, ghn, candidates_for(space, data.task, args.candidates, MetaTrainConfig().train_archs)


def top_kept(score: list[float], final: list[float], drop: float) -> int:
    order = sorted(range(len(score)), key=lambda i: score[i], reverse=True)
    kept = set(order[: len(order) - int(len(order) * drop)])
    top = sorted(range(len(final)), key=lambda i: final[i], reverse=True)[:10]
    return sum(i in kept for i in top)


def epochs_to_95(curve: list[float], start: float) -> int:
    target = 0.95 * curve[-1]
    return next((e for e, a in enumerate([start, *curve]) if a >= target), len(curve))


def _tau(a: list[float], b: list[float]) -> str:
    tau = kendall_tau(a, b)
    return "n/a (tied)" if math.isnan(tau) else f"{tau:.3f}"


def table(pair: str, truth: list[dict], ghn: dict) -> list[str]:
    ok = [i for i, r in enumerate(truth) if not any(math.isnan(a) for a in r["curve"])]
    final = [truth[i]["curve"][-1] for i in ok]
    methods = {
        "GHN (predicted weights)": [ghn["scores"][i] for i in ok],
        "parameter count": [float(truth[i]["num_params"]) for i in ok],
        "1 epoch of training": [truth[i]["curve"][0] for i in ok],
        "SynFlow at init": [truth[i]["synflow"] for i in ok],
    }
    half = sorted(range(len(final)), key=lambda i: final[i], reverse=True)[: len(final) // 2]
    lines = [f"\n### {pair}: {len(ok)} held-out candidates, {len(truth[0]['curve'])} epochs each\n",
             "| ranker | Kendall tau (all) | tau (top half) | top-10 kept, drop 25% | top-10 kept, drop 50% |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, s in methods.items():
        lines.append(f"| {name} | {_tau(s, final)} | {_tau([s[i] for i in half], [final[i] for i in half])} "
                     f"| {top_kept(s, final, 0.25)} | {top_kept(s, final, 0.5)} |")  # fmt: skip
    rand = statistics.mean(truth[i]["random_init"] for i in ok)
    pred = statistics.mean(ghn["scores"][i] for i in ok)
    lines += ["", "| quantity | GHN | random init |", "|---|---|---|",
              f"| accuracy, no training (mean; median) | {pred:.3f}; {statistics.median(ghn['scores'][i] for i in ok):.3f} | {rand:.3f} |",
              f"| accuracy of the trained networks (mean) | {statistics.mean(final):.3f} | |"]  # fmt: skip
    warm = [(w, truth[i]) for i, w in enumerate(ghn["warm"]) if i in ok and not any(math.isnan(a) for a in w)]
    if warm:
        w_epochs = statistics.mean(epochs_to_95(w, ghn["scores"][truth.index(t)]) for w, t in warm)
        r_epochs = statistics.mean(epochs_to_95(t["curve"], t["random_init"]) for _, t in warm)
        lines += [f"| warm start ({len(warm)} candidates): epochs to 95% of final | {w_epochs:.2f} | {r_epochs:.2f} |",
                  f"| warm start: final accuracy (mean) | {statistics.mean(w[-1] for w, _ in warm):.3f} | "
                  f"{statistics.mean(t['curve'][-1] for _, t in warm):.3f} |",
                  f"| warm start: accuracy after 1 epoch (mean) | {statistics.mean(w[0] for w, _ in warm):.3f} | "
                  f"{statistics.mean(t['curve'][0] for _, t in warm):.3f} |"]  # fmt: skip
    meta = ghn["meta"]
    lines += [f"| meta-training: CPU s (steps, stop) | {meta['cpu_seconds']:.0f} ({meta['steps']}, {meta['stopped']}) | |",
              f"| prediction CPU time per candidate, ms (median; build + trace + encode + GHN, batches of {SCREEN_BATCH}) | {1000 * statistics.median(ghn['predict_s']):.1f} | |",
              f"| training time per candidate, CPU s (mean) | | {statistics.mean(truth[i]['train_cpu_s'] for i in ok):.1f} |"]  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS))
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--warm", type=int, default=30)
    parser.add_argument("--ghn-seconds", type=float, default=MetaTrainConfig().max_seconds)
    parser.add_argument("--phase", choices=("truth", "meta-train", "scores", "warm", "table", "all"), default="all")
    parser.add_argument("--out", default="benchmarks/results/ghn", help="Results folder (checkpoints are not committed).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for pair in args.pairs:
        stem = pair.replace(":", "-")
        files = {name: out / f"{stem}-{name}.json" for name in ("truth", "scores", "warm")}
        if args.phase in ("meta-train", "all"):
            phase_meta_train(pair, args, out / f"{stem}-ghn.safetensors")
        for name, phase in (("truth", phase_truth), ("scores", phase_scores), ("warm", phase_warm)):
            if args.phase in (name, "all") and not files[name].exists():
                phase(pair, args, files[name])
        if all(f.exists() for f in files.values()) and (out / f"{stem}-ghn.json").exists():
            meta = json.loads((out / f"{stem}-ghn.json").read_text())
            parts = {name: json.loads(f.read_text()) for name, f in files.items()}
            lines += table(pair, parts["truth"], {**parts["scores"], **parts["warm"], "meta": meta["summary"]})
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
