"""Record real learning curves: random candidates of the built-in spaces trained to full length.

Each setting samples candidates with Optuna's random sampler (seeded), trains each with
``foreseer_workers.run_trial`` on one thread for ``epochs`` epochs, and keeps every epoch's
``val_accuracy``, ``val_loss`` and ``train_loss``. The result is one compressed ``.npz`` (no
pickles): for setting ``S``, arrays ``S/val_accuracy``, ``S/val_loss``, ``S/train_loss`` of shape
``(candidates, epochs)``, ``S/candidates`` (JSON lines) and ``S/setting`` (JSON: the space, the
dataset and the fixed parameters, so a reader can featurize the candidates as a live job does). A
diverged trial's remaining epochs are NaN.

Run (about 25 minutes on one busy core, and the cells-digits setting's 216 candidates about as long
again): ``.venv/bin/python benchmarks/record_curves.py --out benchmarks/data/foreseer_curves.npz``;
``--only SETTING ...`` records those settings again and keeps the others in the file. A setting's
first candidates are the same at any count (seeded sampler, trial ``i`` seeded ``i``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import optuna
import torch

from foreseer_spaces import constrain, get_space, parse_overrides
from foreseer_workers import TrialConfig, load_dataset, run_trial

#: (name, space, dataset, candidates, epochs, fixed parameters)
SETTINGS = (
    ("mlp-wine", "mlp", "wine", 120, 20, {}),
    ("mlp-breast_cancer", "mlp", "breast_cancer", 120, 20, {}),
    ("mlp-digits", "mlp", "digits", 60, 20, {}),
    ("cells-digits", "cells", "digits", 216, 12, {"stem_width": 8, "cells_per_stage": 1}),
)
METRICS = ("val_accuracy", "val_loss", "train_loss")


def record(
    space_name: str, dataset: str, n: int, epochs: int, params: dict, seed: int = 0
) -> dict[str, np.ndarray]:
    data = load_dataset(dataset)
    space = get_space(space_name)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    overrides = parse_overrides(params)
    out = {m: np.full((n, epochs), np.nan, dtype=np.float32) for m in METRICS}
    candidates = []
    for i in range(n):
        trial = study.ask()
        candidate = space.sample(constrain(trial, overrides), data.task)
        candidates.append(json.dumps(candidate.to_dict(), sort_keys=True))
        rows: list[dict[str, float]] = []

        def report(metrics: dict[str, float], checkpoint_dir: str, rows: list = rows) -> None:
            rows.append(metrics)
            import shutil

            shutil.rmtree(checkpoint_dir, ignore_errors=True)

        config = TrialConfig(
            space=space, candidate=candidate, max_epochs=epochs, seed=seed + i, num_threads=1
        )
        try:
            run_trial(config, data, report)
        except Exception as e:  # a diverged or broken candidate keeps its NaN tail
            print(f"  candidate {i} ended early: {type(e).__name__}: {e}")
        for e, metrics in enumerate(rows[:epochs]):
            for m in METRICS:
                out[m][i, e] = metrics.get(m, np.nan)
        study.tell(trial, float(np.nanmax(out["val_accuracy"][i])) if rows else 0.0)
    out["candidates"] = np.array(candidates)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/data/foreseer_curves.npz"))
    parser.add_argument("--only", nargs="*", help="settings to record (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every candidate count")
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    arrays: dict[str, np.ndarray] = {}
    if args.only and args.out.exists():  # keep the settings not recorded again
        with np.load(args.out) as kept:
            arrays = {k: kept[k] for k in kept.files if k.split("/")[0] not in args.only}
    for name, space, dataset, n, epochs, params in SETTINGS:
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        out = record(space, dataset, max(2, int(n * args.scale)), epochs, params)
        out["setting"] = np.array(json.dumps({"space": space, "dataset": dataset, "params": params}))
        arrays.update({f"{name}/{k}": v for k, v in out.items()})
        print(
            f"{name}: {len(out['candidates'])} curves x {epochs} epochs "
            f"in {time.perf_counter() - start:.0f} s"
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out, **arrays)  # after every setting: an interrupted run keeps what it has
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
