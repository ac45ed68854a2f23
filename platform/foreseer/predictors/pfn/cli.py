"""``foreseer pfn``: train and evaluate the learning-curve PFN. torch is imported inside commands."""

from __future__ import annotations

import sys
from pathlib import Path

import click

#: The paper's prior log-likelihoods (Adriaensen et al. 2023, Table 1) at 10/20/40/80% cutoffs.
PAPER_LL = {
    "LC-PFN 3x128, 1M curves": (1.528, 1.894, 2.159, 2.279),
    "LC-PFN 3x128, 10M curves": (1.585, 1.989, 2.282, 2.431),
    "LC-PFN 12x512, 10M curves": (1.758, 2.133, 2.403, 2.519),
    "MCMC (best)": (1.642, 1.956, 2.285, 2.486),
}


@click.group("pfn")
def pfn() -> None:
    """Train and evaluate the learning-curve PFN."""


@pfn.command("train")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Run folder (resumes if present).",
)
@click.option(
    "--prior",
    type=click.Choice(["reference", "extended", "jobs"]),
    default="reference",
    show_default=True,
    help="A prior over curves, or 'jobs', the prior over jobs that trains the in-context model.",
)
@click.option(
    "--curves", type=int, default=1_000_000, show_default=True, help="Prior curves (jobs) to train on."
)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--n-targets", type=int, default=20, show_default=True, help="Query epochs per curve (job).")
@click.option(
    "--max-tokens", type=int, default=500, show_default=True, help="Most observations in a job's context."
)
@click.option(
    "--independent-jobs",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of prior jobs whose curves come one by one from the extended prior (--prior jobs only).",
)
@click.option(
    "--job-layers",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Blocks in which the in-context model's queries attend to every trial (--prior jobs only).",
)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--layers", type=int, default=3, show_default=True)
@click.option("--width", type=int, default=128, show_default=True)
@click.option("--heads", type=int, default=4, show_default=True)
@click.option("--hidden", type=int, default=256, show_default=True)
@click.option("--buckets", type=int, default=1000, show_default=True)
@click.option(
    "--context-bins",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help=(
        "Most context tokens per curve; longer contexts are summarised into this many runs "
        "(0: one token per epoch)."
    ),
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval-every", type=int, default=1000, show_default=True, help="Steps between evaluations.")
@click.option("--threads", type=int, default=1, show_default=True, help="torch CPU threads.")
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="Where the training steps run: cpu, cuda or cuda:N (a run may resume on another device).",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Start from this checkpoint's weights (fresh optimizer and schedule).",
)
def train_command(
    out_dir: Path,
    prior: str,
    curves: int,
    batch_size: int,
    n_targets: int,
    max_tokens: int,
    independent_jobs: float,
    job_layers: int,
    lr: float,
    layers: int,
    width: int,
    heads: int,
    hidden: int,
    buckets: int,
    context_bins: int,
    seed: int,
    eval_every: int,
    threads: int,
    device: str,
    init_from: str | None,
) -> None:
    """Fit a PFN to the prior; resumable; writes OUT/model.safetensors."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from foreseer.predictors.pfn.job_prior import FEATURES
    from foreseer.predictors.pfn.model import PFNConfig
    from foreseer.predictors.pfn.train import TrainConfig, train

    torch.set_num_threads(threads)
    console = Console()
    try:
        _check_device(device)
        model_config = PFNConfig(
            n_layer=layers,
            n_embd=width,
            n_head=heads,
            n_hidden=hidden,
            n_buckets=buckets,
            context_bins=context_bins,
            features=FEATURES if prior == "jobs" else 0,
            job_layers=job_layers if prior == "jobs" else 0,
        )
        config = TrainConfig(
            prior=prior,
            curves=curves,
            batch_size=batch_size,
            n_targets=n_targets,
            max_tokens=max_tokens,
            independent_jobs=independent_jobs,
            lr=lr,
            seed=seed,
            eval_every=eval_every,
            init_from=init_from,
        )  # type: ignore[arg-type]
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.3f}"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("training", total=config.steps, loss=float("nan"))

            def progress(step: int, steps: int, loss: float) -> None:
                bar.update(task, completed=step, loss=loss)

            def on_eval(step: int, ll: dict[int, float]) -> None:
                cells = "  ".join(f"{k}%: {v:.3f}" for k, v in ll.items())
                seen = f"{step * batch_size} {'jobs' if prior == 'jobs' else 'curves'}"
                bar.console.print(f"step {step} ({seen}): prior log-likelihood {cells}")

            train(out_dir, model_config, config, progress=progress, on_eval=on_eval, device=device)
    except ValueError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    console.print(f"wrote {out_dir / 'model.safetensors'}")


def _check_device(device: str) -> None:
    """Refuse a ``--device`` that is not a torch device, or CUDA where there is none."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError as e:
        raise ValueError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N.") from e
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this machine has no CUDA device; use --device cpu.")


@pfn.command("export")
@click.option(
    "--run", "run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True
)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Checkpoint to write (.safetensors)."
)
def export_command(run_dir: Path, out: Path) -> None:
    """Write a training run's latest state (finished or not) as a checkpoint."""
    from foreseer.predictors.pfn.train import export_run

    try:
        meta = export_run(run_dir, out)
    except ValueError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    click.echo(f"wrote {out} ({meta['curves_seen']:,} curves seen, {meta['train_seconds']} s of training)")


@pfn.command("eval")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Checkpoint to evaluate (default: the shipped one).",
)
@click.option(
    "--curves", type=int, default=10_000, show_default=True, help="Fresh prior curves (jobs: a 50th of it)."
)
@click.option("--prior", type=click.Choice(["reference", "extended"]), default="reference", show_default=True)
@click.option(
    "--lcbench",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Also forecast LCBench's curves (the YAHPO surrogate's curves.npz).",
)
@click.option(
    "--recorded",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Also forecast Foreseer's recorded curves (benchmarks/data/foreseer_curves.npz).",
)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option(
    "--quantize/--no-quantize",
    default=True,
    show_default=True,
    help="int8 blocks (the default inference path).",
)
@click.option("--markdown", type=click.Path(path_type=Path), default=None, help="Also write the tables here.")
def eval_command(
    checkpoint: Path | None,
    curves: int,
    prior: str,
    lcbench: Path | None,
    recorded: Path | None,
    threads: int,
    quantize: bool,
    markdown: Path | None,
) -> None:
    """Prior log-likelihood beside the paper's, inference time, and forecasts of real curve sets.

    Everything goes through the forecaster's inference path, so ``--no-quantize`` changes all
    three tables. An in-context checkpoint (``--prior jobs``) gets its own tables instead: the
    likelihood of fresh prior jobs, of LCBench's and of Foreseer's recorded curves beside the
    shipped per-curve model's, and the time of one freeze-thaw tick.
    """
    import numpy as np
    import torch
    from rich.console import Console

    from foreseer.predictors.pfn.checkpoint import read_metadata
    from foreseer.predictors.pfn.evaluate import (
        COVERAGE_TITLE,
        coverage_table,
        forecast_table,
        in_context_tables,
        inference_ms,
        load_curve_sets,
        prior_log_likelihood,
    )
    from foreseer.predictors.pfn.in_context import JobForecaster
    from foreseer.predictors.pfn.predictor import CurveForecaster
    from foreseer.predictors.pfn.prior import sample_curves
    from foreseer.predictors.pfn.train import EVAL_CUTOFFS

    torch.set_num_threads(threads)
    console = Console()
    if checkpoint is not None and read_metadata(checkpoint)[0].features:
        job_forecaster = JobForecaster.load(checkpoint, quantize=quantize)
        per_curve = CurveForecaster.load(quantize=quantize)
        jobs = max(1, curves // 50)
        tables = in_context_tables(job_forecaster, per_curve, jobs, lcbench=lcbench, recorded=recorded)
        _write_tables(console, tables, markdown)
        return
    forecaster = CurveForecaster.load(checkpoint, quantize=quantize)
    # the same fresh curves as train.evaluate_prior (seed 2024)
    prior_curves = sample_curves(curves, np.random.default_rng(2024), prior)  # type: ignore[arg-type]
    ll = prior_log_likelihood(forecaster, prior_curves, EVAL_CUTOFFS)
    rows: list[dict[str, object]] = [
        {"model": f"ours ({forecaster.describe()})", **{f"{p}%": ll[p] for p in EVAL_CUTOFFS}}
    ]
    rows += [
        {"model": name, **{f"{p}%": v for p, v in zip(EVAL_CUTOFFS, row, strict=True)}}
        for name, row in PAPER_LL.items()
    ]
    tables = [(f"log-likelihood on {curves:,} fresh {prior}-prior curves (higher is better)", rows)]
    timing = [
        {"trials": 32, "epochs observed": e, "ms per call": inference_ms(forecaster, 32, e)}
        for e in (5, 20, 50)
    ]
    tables.append((f"one forward pass for 32 running trials ({threads} thread)", timing))
    if lcbench is not None or recorded is not None:
        sets = load_curve_sets(lcbench, recorded, per_set=100)
        tables += list(forecast_table(forecaster, sets))
        tables.append((COVERAGE_TITLE, coverage_table(forecaster, sets)))
    _write_tables(console, tables, markdown)


def _write_tables(
    console: object, tables: list[tuple[str, list[dict[str, object]]]], markdown: Path | None
) -> None:
    for title, table_rows in tables:
        _print_table(console, title, table_rows)
    if markdown is not None:
        markdown.write_text("\n".join(_markdown(title, table_rows) for title, table_rows in tables))
        console.print(f"wrote {markdown}")  # type: ignore[attr-defined]


def _print_table(console: object, title: str, rows: list[dict[str, object]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    console.print(table)  # type: ignore[attr-defined]


def _markdown(title: str, rows: list[dict[str, object]]) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(_cell(v) for v in row.values()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
