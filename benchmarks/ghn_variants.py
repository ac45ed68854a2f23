"""Which hypernetwork configuration ranks candidates best? Variants x meta-training seeds, side by side.

Each variant (``key=value`` pairs of :class:`GHNConfig` or :class:`MetaTrainConfig` fields) is
meta-trained on cells x digits once per seed, in parallel processes of one thread each; every GHN
scores the 100 held-out candidates of ``benchmarks/ghn.py`` (accuracy with predicted weights), and
the table gives Kendall tau against their true ranking (the mean final accuracy over training seeds
in ``benchmarks/results/ghn/cells-digits-truth.json``) as mean (min to max) over seeds. One
meta-training run's ranking differs a lot from the next's, so a variant needs several seeds.

Runs are cached as JSON under ``--out``; rerunning prints the table of everything there.

Run: ``.venv/bin/python benchmarks/ghn_variants.py --variants block=32,rank=8 block=96 --seeds 0 1 2``
(290 CPU s per run; ``--processes`` runs in parallel).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
from dataclasses import fields
from pathlib import Path
from typing import Any

import optuna
import torch
from ghn import candidates_for, ranking_row, spread

from foreseer.predictors.ghn.meta_train import MetaTrainConfig, meta_train
from foreseer.predictors.ghn.model import GHNConfig
from foreseer.predictors.ghn.predictor import GHNPredictor
from foreseer_spaces import get_space
from foreseer_workers import load_dataset

TRUTH = Path("benchmarks/results/ghn/cells-digits-truth.json")


def parse_variant(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``"block=96,lr=0.004"`` -> (GHNConfig overrides, MetaTrainConfig overrides)."""
    cast = {"int": int, "float": float, "str": str}  # the fields' annotations, as strings
    sizes = {f.name: cast[str(f.type)] for f in fields(GHNConfig)}
    recipe = {f.name: cast[str(f.type)] for f in fields(MetaTrainConfig)}
    ghn: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key in sizes:
            ghn[key] = sizes[key](value)
        elif key in recipe:
            meta[key] = recipe[key](value)
        else:
            raise SystemExit(
                f"unknown field {key!r} in variant {text!r}; known: {sorted(sizes) + sorted(recipe)}"
            )
    return ghn, meta


def run(job: tuple[str, int, str]) -> None:
    variant, seed, path = job
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ghn, meta = parse_variant(variant)
    space, data = get_space("cells"), load_dataset("digits")
    result = meta_train(space, data, MetaTrainConfig(**{**meta, "seed": seed}), GHNConfig(**ghn))
    candidates = candidates_for(space, data.task, 100, MetaTrainConfig().train_archs)
    scores = GHNPredictor(result.ghn, space, data.task, cache_size=4).score(
        candidates, data.x_val, data.y_val
    )
    Path(path).write_text(
        json.dumps({"variant": variant, "seed": seed, "summary": result.summary(), "scores": scores})
    )
    print(f"{variant} seed {seed}: {result.summary()}", flush=True)


def table(out: Path) -> list[str]:
    truth = json.loads(TRUTH.read_text())
    final = [statistics.mean(c[-1] for c in row["curves"]) for row in truth]
    runs: dict[str, list[dict]] = {}
    for path in sorted(out.glob("*.json")):
        record = json.loads(path.read_text())
        runs.setdefault(record["variant"], []).append(record)
    lines = ["| variant | seeds | Kendall tau (all) | tau (top half) | top-10 kept, drop 50% "
             "| held-out accuracy | steps |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    ranked = {
        variant: [ranking_row(r["scores"], final) for r in records] for variant, records in runs.items()
    }
    for variant in sorted(ranked, key=lambda v: -statistics.mean(row[0] for row in ranked[v])):
        records, rows = runs[variant], ranked[variant]
        lines.append(f"| {variant} | {len(records)} | {spread([r[0] for r in rows], '.3f')} "
                     f"| {spread([r[1] for r in rows], '.3f')} | "
                     f"{', '.join(str(r[3]) for r in rows)} | "
                     f"{statistics.mean(r['summary']['best_val_accuracy'] for r in records):.3f} | "
                     f"{statistics.mean(r['summary']['steps'] for r in records):.0f} |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--variants", nargs="*", default=[], help="e.g. block=32,rank=8 (an empty string: the defaults)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/ghn_variants")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for variant in args.variants:
        parse_variant(variant)  # report a bad variant before anything runs
    jobs = [(v, s, str(out / f"{v.replace(',', '_').replace('=', '-') or 'defaults'}-seed{s}.json"))
            for v in args.variants for s in args.seeds]  # fmt: skip
    jobs = [job for job in jobs if not Path(job[2]).exists()]
    if jobs:
        with multiprocessing.get_context("spawn").Pool(min(args.processes, len(jobs))) as pool:
            pool.map(run, jobs, chunksize=1)
    print("\n".join(table(out)))


if __name__ == "__main__":
    main()
