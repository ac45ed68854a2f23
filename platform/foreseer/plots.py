"""Summary plots of a job for its parent run in MLflow: the best so far against epochs consumed,
every trial's learning curve with how it ended, and for a multi-objective job its Pareto front.

Figures are built on :class:`matplotlib.figure.Figure` directly (Agg canvas, no ``pyplot``): no
global figure registry to leak into, no display needed, safe from any thread.

Example:
    >>> from foreseer_spaces import Candidate
    >>> from foreseer.ledger import Ledger
    >>> from foreseer.spec import Objective
    >>> ledger = Ledger([Objective("val_accuracy", mode="max")], max_epochs=3)
    >>> record = ledger.add("t0", 0, Candidate("mlp", {"depth": 1}, {"lr": 0.1}))
    >>> for value in (0.5, 0.7, 0.8):
    ...     ledger.record_epoch("t0", {"val_accuracy": value})
    >>> sorted(summary_figures(ledger))
    ['best_so_far.png', 'trial_curves.png']
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from foreseer.ledger import Ledger, TrialRecord

__all__ = ["best_so_far", "best_so_far_points", "pareto_front", "summary_figures", "trial_curves"]

#: How each way of ending is drawn: (colour, line style, end marker, legend label).
STYLES = {
    "completed": ("tab:blue", "-", None, "completed"),
    "stopped": ("tab:orange", "-", "x", "stopped early (x)"),
    "failed": ("tab:red", ":", "X", "failed (X at the last finite value)"),
    "running": ("tab:gray", "--", ">", "running"),
}


def summary_figures(ledger: Ledger) -> dict[str, Figure]:
    """Every summary plot of a job, by artifact file name, ready for ``Tracker.log_figure``."""
    figures = {"best_so_far.png": best_so_far(ledger), "trial_curves.png": trial_curves(ledger)}
    if len(ledger.objectives) > 1:
        figures["pareto_front.png"] = pareto_front(ledger)
    return figures


def best_so_far_points(ledger: Ledger) -> list[tuple[int, float]]:
    """(epochs consumed, best value so far) after every epoch, failed trials excluded.

    Epochs are counted in the order they were recorded across all trials, so concurrent trials
    count as they ran.
    """
    sign = 1.0 if ledger.primary.mode == "max" else -1.0
    points: list[tuple[int, float]] = []
    best = -math.inf
    for consumed, (record, value) in enumerate(_values_in_order(ledger), start=1):
        usable = record.state != "failed"
        if usable and math.isfinite(value) and sign * value > best:
            best = sign * value
        if math.isfinite(best):
            points.append((consumed, sign * best))
    return points


def _values_in_order(ledger: Ledger) -> list[tuple[TrialRecord, float]]:
    metric = ledger.primary.metric
    return [(r, r.metrics[e - 1].get(metric, math.nan)) for r, e in ledger.in_order()]


def best_so_far(ledger: Ledger) -> Figure:
    """The best value of the primary objective against the epochs the job has consumed, with
    every epoch's value behind it and the budget of running every trial to the end."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure()
    metric = ledger.primary.metric
    values = [value for _, value in _values_in_order(ledger)]
    consumed = len(values)
    xs = [i for i, v in enumerate(values, start=1) if math.isfinite(v)]
    ys = [v for v in values if math.isfinite(v)]
    axes.scatter(xs, ys, s=6, color="tab:gray", alpha=0.35, label="every epoch", linewidths=0)
    points = best_so_far_points(ledger)
    if points:
        steps, values = zip(*points, strict=True)
        axes.step(steps, values, where="post", color="tab:green", linewidth=2, label="best so far")
        axes.annotate(f"{values[-1]:.4g}", (steps[-1], values[-1]), textcoords="offset points", xytext=(4, 4))
    full = ledger.max_epochs * len(ledger.records())
    if full:
        axes.axvline(
            full, color="black", linestyle="--", linewidth=1, label=f"every trial to the end ({full})"
        )
    axes.set_xlabel("epochs consumed")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(metric)
    axes.set_title(f"best {metric} so far ({ledger.primary.mode}), {consumed} epochs used")
    axes.legend(loc="best", fontsize="small")
    return figure


def trial_curves(ledger: Ledger) -> Figure:
    """One learning curve per trial on the primary objective, coloured by how it ended: early
    stopped trials end in an ``x`` at the stop point, failed ones are dotted and end in an ``X``."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure()
    records = [r for r in ledger.records() if r.epochs]  # a candidate screened out never trained
    alpha = max(0.15, min(0.9, 3 / math.sqrt(max(len(records), 1))))
    counts = dict.fromkeys(STYLES, 0)
    for record in records:
        state = record.state if record.state in STYLES else "running"
        counts[state] += 1
        _curve(axes, record, ledger, STYLES[state], alpha)
    best = ledger.best()
    if best is not None:
        record, epoch, value = best
        axes.plot(
            range(1, record.epochs + 1),
            record.values(ledger.primary.metric),
            color="tab:green",
            linewidth=2.5,
            label=f"best: trial {record.number} ({value:.4g} at epoch {epoch})",
        )
    for state, (colour, style, marker, label) in STYLES.items():
        if counts[state]:
            axes.plot([], [], color=colour, linestyle=style, marker=marker, label=f"{label}: {counts[state]}")
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ledger.primary.metric)
    axes.set_xlim(0.8, ledger.max_epochs + 0.2)
    axes.set_title(f"{len(records)} trials trained, {ledger.primary.metric} per epoch")
    if records:
        axes.legend(loc="best", fontsize="small")
    return figure


def pareto_front(ledger: Ledger) -> Figure:
    """Every trial by its first two objectives (at its best epoch of the primary one), the trials
    of the Pareto front over all objectives joined by a line and labelled with their numbers."""
    figure, axes = _figure()
    primary, second = ledger.objectives[0], ledger.objectives[1]
    front = ledger.pareto_front()
    on_front = {r.number for r in front}
    others = [
        values
        for r in ledger.records()
        if r.state != "failed"
        and r.number not in on_front
        and (values := ledger.objective_values(r)) is not None
    ]
    if others:
        axes.scatter(
            [v[1] for v in others], [v[0] for v in others], s=18, color="tab:gray", alpha=0.6,
            label=f"dominated: {len(others)}",
        )  # fmt: skip
    points = sorted((ledger.objective_values(r), r.number) for r in front)  # type: ignore[type-var]
    if points:
        xs, ys = [v[1] for v, _ in points], [v[0] for v, _ in points]
        axes.plot(xs, ys, color="tab:green", marker="o", linewidth=1.5, label=f"Pareto front: {len(points)}")
        for (_, number), x, y in zip(points, xs, ys, strict=True):
            axes.annotate(str(number), (x, y), textcoords="offset points", xytext=(4, 4), fontsize="small")
    xs_all = [v[1] for v in others] + [v[1] for v, _ in points]
    if xs_all and min(xs_all) > 0 and max(xs_all) > 100 * min(xs_all):  # parameter counts span decades
        axes.set_xscale("log")
    axes.set_xlabel(f"{second.metric} ({second.mode})")
    axes.set_ylabel(f"{primary.metric} ({primary.mode})")
    more = f", front over all {len(ledger.objectives)} objectives" if len(ledger.objectives) > 2 else ""
    axes.set_title(f"{primary.metric} against {second.metric}, trial numbers on the front{more}")
    if points or others:
        axes.legend(loc="best", fontsize="small")
    return figure


def _curve(axes: Axes, record: TrialRecord, ledger: Ledger, style: tuple, alpha: float) -> None:
    colour, line, marker, _ = style
    finite = [(i + 1, v) for i, v in enumerate(record.values(ledger.primary.metric)) if math.isfinite(v)]
    if not finite:
        return
    epochs, values = zip(*finite, strict=True)
    axes.plot(epochs, values, color=colour, linestyle=line, linewidth=1, alpha=alpha)
    if marker is not None:
        axes.plot(epochs[-1], values[-1], color=colour, marker=marker, markersize=8, linestyle="none")


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.grid(True, alpha=0.3)
    return figure, axes
