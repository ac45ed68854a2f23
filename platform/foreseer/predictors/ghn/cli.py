"""``foreseer ghn``: meta-train a graph hypernetwork for a (space, dataset) pair and evaluate it.

torch is imported inside the commands, so ``foreseer --help`` stays fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

EXIT_BAD_INPUT = 2


@click.group("ghn")
def ghn() -> None:
    """Meta-train and evaluate the graph hypernetwork (GHN) of a space and dataset."""


def _pair(space: str, dataset: str):  # type: ignore[no-untyped-def]
    from foreseer_spaces import get_space
    from foreseer_workers import load_dataset

    try:
        sp, data = get_space(space), load_dataset(dataset)
        sp.check_task(data.task)
    except (ValueError, KeyError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    return sp, data


@ghn.command("train")
@click.option("--space", required=True, help="Search space name, e.g. cells or mlp.")
@click.option("--dataset", required=True, help="Built-in dataset name or a .npz / .csv path.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("ghn.safetensors"), show_default=True,
              help="Checkpoint to write (config + state_dict, safetensors).")  # fmt: skip
@click.option("--max-seconds", type=float, default=290.0, show_default=True, help="CPU-second budget.")
@click.option("--max-steps", type=int, default=3000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="torch CPU threads.")
@click.option("--tracking-uri", default=None, help="Also cache it in this MLflow store for later jobs.")
def train_command(space: str, dataset: str, out: Path, max_seconds: float, max_steps: int, seed: int,
                  threads: int, tracking_uri: str | None) -> None:  # fmt: skip
    """Meta-train a GHN on SPACE x DATASET within a budget; early-stops on held-out architectures."""
    from foreseer.predictors.ghn.cache import cache_key, save_ghn
    from foreseer.predictors.ghn.meta_train import MetaTrainConfig, meta_train

    sp, data = _pair(space, dataset)
    try:
        config = MetaTrainConfig(max_seconds=max_seconds, max_steps=max_steps, seed=seed, num_threads=threads)
    except ValueError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)

    def progress(record: dict[str, float]) -> None:
        click.echo(f"step {record['step']:5.0f}  loss {record['loss']:.3f}  held-out accuracy "
                   f"{record['val_accuracy']:.3f}  {record['seconds']:.0f}s")  # fmt: skip

    result = meta_train(sp, data, config, progress=progress)
    key = cache_key(sp, data.task, data.fingerprint, result.ghn.config)
    save_ghn(out, result.ghn, {**{k.removeprefix("foreseer."): v for k, v in key.items()},
                               "summary": result.summary(), "history": result.history})  # fmt: skip
    click.echo(f"{out}: {result.steps} steps, {result.cpu_seconds:.0f} CPU s ({result.stopped}), "
               f"held-out accuracy {result.best_val_accuracy:.3f}")  # fmt: skip
    if tracking_uri:
        from foreseer.tracking import store_cached_file

        metrics = {k: float(result.summary()[k]) for k in ("steps", "cpu_seconds", "best_val_accuracy")}
        run_id = store_cached_file(tracking_uri, key, out, metrics, f"ghn-{sp.name}-{data.name}")
        click.echo(f"cached in {tracking_uri} (run {run_id})")


@ghn.command("eval")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--space", required=True)
@click.option("--dataset", required=True)
@click.option("--candidates", type=int, default=50, show_default=True, help="Unseen candidates to score.")
@click.option("--seed", type=int, default=1234, show_default=True)
def eval_command(checkpoint: str, space: str, dataset: str, candidates: int, seed: int) -> None:
    """Accuracy with predicted weights (no training) of unseen candidates, vs random init."""
    import statistics

    import torch
    from rich.console import Console
    from rich.table import Table

    from foreseer.predictors.ghn.cache import load_ghn, space_fingerprint
    from foreseer.predictors.ghn.meta_train import sample_candidates
    from foreseer.predictors.ghn.predictor import GHNPredictor

    torch.set_num_threads(1)
    sp, data = _pair(space, dataset)
    try:
        model, metadata = load_ghn(checkpoint)
    except ValueError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if metadata.get("space_fingerprint") not in (None, space_fingerprint(sp, data.task)):
        click.echo(f"warning: {checkpoint} was meta-trained for another space or task", err=True)
    predictor = GHNPredictor(model, sp, data.task, cache_size=1)
    pool = sample_candidates(sp, data.task, candidates, seed=seed)
    began = time.perf_counter()
    scores = predictor.score(pool, data.x_val, data.y_val)
    ms = 1000 * (time.perf_counter() - began) / max(1, len(pool))
    table = Table(title=f"GHN on {sp.name} x {data.name}: {len(pool)} unseen candidates")
    for column in ("accuracy, predicted weights (mean)", "median", "max", "ms per candidate"):
        table.add_column(column)
    table.add_row(
        f"{statistics.mean(scores):.3f}",
        f"{statistics.median(scores):.3f}",
        f"{max(scores):.3f}",
        f"{ms:.1f}",
    )
    Console().print(table)
