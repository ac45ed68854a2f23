"""Training throughput of one cells network, in images per second per trial and in all, on
generated 32×32×3 images at batch 256: held in memory against streamed from disk, with and without
augmentation; on a GPU, fp32 against automatic mixed precision, and one trial against several
sharing the GPU.

Every trial runs :func:`foreseer_workers.run_trial`, Foreseer's own training loop, in a process of
its own (as a Ray worker does), on a fixed cells candidate (NAS-Bench-201's cell with three
convolutions, stem width 16, one cell per stage). Its throughput is the training pass's
``train_examples_per_s`` (data loading included, validation not), the median over the epochs after
the first (the first warms up caches and, on CUDA, cuDNN's kernel choice). Several trials run at
once start together behind a barrier; their total is the sum of their medians. A fractional GPU
(``gpus_per_trial: 0.25``) is a share of Ray's bookkeeping, not a partition of the chip, so four
processes on one GPU are what four such trials are.

Rows, each against the first row of its table (measured in the same run):

- ``memory``: the images as tensors on the trial's device (``dataset: (X, y)`` in a job);
- ``shards``: ``.npy`` shards memory-mapped (``dataset: {shards: folder}``);
- ``png``: a folder of class folders of PNG files (``dataset: {images: folder}``), decoded with Pillow;
- ``+ augment``: random crop with 4 pixels of padding and horizontal flip;
- ``N trials``: N trials at once, each with ``--threads`` CPU threads.

Run: ``.venv/bin/python benchmarks/throughput.py [--images 8192] [--epochs 3] [--out FILE]`` (about 4
minutes on 2 cores); on a GPU add ``--device cuda --trials 1 4`` (fp32 and ``auto`` precision). The
READMEs show ``benchmarks/results/throughput/cpu.md`` (``--out`` it there, then run
``scripts/readme_tables.py``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ARCH = {
    "edge_1_0": "nor_conv_3x3", "edge_2_0": "skip_connect", "edge_2_1": "nor_conv_3x3",
    "edge_3_0": "skip_connect", "edge_3_1": "avg_pool_3x3", "edge_3_2": "nor_conv_1x1",
    "stem_width": 16, "cells_per_stage": 1,
}  # fmt: skip
HPARAMS = {"lr": 3e-3, "optimizer": "adamw", "batch_size": 256}
CLASSES = 8


def _data(source: str, folder: Path, augment: bool, seed: int):
    from foreseer_workers import load_dataset
    from foreseer_workers.streaming import Augment, load_streamed

    if source == "memory":
        with np.load(folder / "all.npz") as arrays:
            return load_dataset((arrays["x"].astype(np.float32) / 255, arrays["y"]), seed=seed)
    aug = Augment(crop_padding=4, flip=True) if augment else Augment()
    where = {"images": str(folder / "png")} if source == "png" else {"shards": str(folder / "shards")}
    return load_streamed(**where, augment=aug, seed=seed)


def _trial(job: dict, barrier, results) -> None:
    """One trial in this process: wait for the others, train, put its per-epoch throughputs."""
    import shutil

    import torch

    from foreseer_spaces import Candidate, get_space
    from foreseer_workers import TrialConfig, run_trial

    data = _data(job["source"], Path(job["folder"]), job["augment"], seed=0)
    config = TrialConfig(
        get_space("cells"),
        Candidate("cells", ARCH, HPARAMS),
        max_epochs=job["epochs"],
        seed=job["rank"],
        device=job["device"],
        num_threads=job["threads"],
        precision=job["precision"],
        scratch_dir=job["scratch"],
    )
    rates: list[float] = []

    def report(metrics: dict[str, float], checkpoint_dir: str) -> None:
        rates.append(metrics["train_examples_per_s"])
        shutil.rmtree(checkpoint_dir, ignore_errors=True)

    if config.device.startswith("cuda"):
        torch.zeros(1, device=config.device)  # the CUDA context before the clock starts
    barrier.wait()
    outcome = run_trial(config, data, report)
    results.put((job["rank"], rates, outcome.history[0]["num_params"]))


def measure(job: dict, trials: int) -> tuple[float, float, int]:
    """(median images/s per trial, total images/s, parameters) of ``trials`` trials run at once."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(trials), ctx.Queue()
    procs = [ctx.Process(target=_trial, args=({**job, "rank": r}, barrier, results)) for r in range(trials)]
    for p in procs:
        p.start()
    got = [results.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a trial process exited with {p.exitcode}")
    per_trial = [statistics.median(rates[1:] or rates) for _, rates, _ in got]
    return statistics.median(per_trial), sum(per_trial), got[0][2]


def write_data(folder: Path, n_images: int) -> None:
    from foreseer.testing.images import generate_images, write_image_folder, write_shards

    per_class = n_images // CLASSES
    x, y = generate_images(per_class, classes=CLASSES, seed=0)
    np.savez(folder / "all.npz", x=x, y=y)
    write_image_folder(folder / "png", per_class, classes=CLASSES, seed=0)
    shards = write_shards(folder / "npz", per_class, classes=CLASSES, seed=0, shards=8)
    (folder / "shards").mkdir()
    for k, part in enumerate(sorted(shards.glob("*.npz"))):  # memory-mappable .npy pairs
        with np.load(part) as arrays:
            np.save(folder / "shards" / f"part{k}_x.npy", arrays["x"])
            np.save(folder / "shards" / f"part{k}_y.npy", arrays["y"])


def table(title: str, rows: list[tuple[str, float, float]], params: int) -> str:
    base = rows[0][2]
    lines = [
        f"#### {title} (cells network of {params:,} parameters, batch {HPARAMS['batch_size']})",
        "",
        "| | images/s per trial | images/s in all | ratio |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {one:,.0f} | {total:,.0f} | {total / base:.2f} |" for name, one, total in rows),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8192, help="generated images in all (8 classes)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per trial")
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 2], help="trials at once to compare")
    parser.add_argument("--out", type=Path, help="also write the tables here (README blocks read them)")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory(prefix="foreseer-throughput-") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        write_data(folder, args.images)
        print(f"{args.images} images written in {time.perf_counter() - began:.1f} s ({folder})", flush=True)
        job = {"folder": tmp, "epochs": args.epochs, "device": args.device, "threads": args.threads,
               "scratch": str(folder / "scratch"), "augment": False, "precision": "fp32"}  # fmt: skip
        tables = []
        sources = [("memory", "memory", False), ("shards", "shards", False), ("png", "png", False),
                   ("png + augment", "png", True)]  # fmt: skip
        rows, params = [], 0
        for name, source, augment in sources:
            one, total, params = measure({**job, "source": source, "augment": augment}, 1)
            rows.append((name, one, total))
            print(f"  {name}: {one:,.0f} images/s", flush=True)
        tables.append(table(f"Where the images come from, one trial, {args.device}", rows, params))
        if gpu:
            rows = []
            for precision in ("fp32", "auto"):
                one, total, params = measure({**job, "source": "memory", "precision": precision}, 1)
                rows.append((precision, one, total))
            tables.append(table(f"Precision, one trial, {args.device}", rows, params))
        rows = []
        precision = "auto" if gpu else "fp32"
        for trials in args.trials:
            one, total, params = measure({**job, "source": "memory", "precision": precision}, trials)
            rows.append((f"{trials} trial{'s' * (trials > 1)} at once", one, total))
            print(f"  {trials} at once: {total:,.0f} images/s in all", flush=True)
        tables.append(table(f"Trials sharing the {args.device} ({precision})", rows, params))
    text = "\n\n".join(tables)
    print("\n" + text)
    if args.out is not None:
        command = " ".join(["benchmarks/throughput.py", *sys.argv[1:]])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"{text}\n\nMeasured with `.venv/bin/python {command}`.\n")


if __name__ == "__main__":
    main()
