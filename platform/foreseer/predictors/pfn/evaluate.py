"""Forecast quality on real curve sets: the PFN's median forecast of the final value against
last-value and power-law-fit baselines, and the coverage of its 90% interval; the likelihood of
prior curves and the time of one call, both through the forecaster's own inference path.

Curve sets, given by path: LCBench via the YAHPO surrogate (accuracy in percent; the benchmarks
use the development copy beside the checkout) and the curves Foreseer records
(``benchmarks/data/foreseer_curves.npz``, written by ``benchmarks/record_curves.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from foreseer.predictors.pfn.normalize import CurveNormalizer
from foreseer.predictors.pfn.predictor import CurveForecaster

if TYPE_CHECKING:
    from foreseer.predictors.pfn.in_context import JobForecaster

__all__ = [
    "COVERAGE_EPOCHS",
    "COVERAGE_TITLE",
    "LCBENCH_FEATURES",
    "coverage_table",
    "forecast_errors",
    "forecast_table",
    "in_context_ms",
    "in_context_tables",
    "inference_ms",
    "job_log_likelihood",
    "lcbench_features",
    "load_curve_sets",
    "power_law_forecast",
    "prior_log_likelihood",
]

logger = logging.getLogger(__name__)

CUTOFFS = (10, 20, 40, 80)
#: LCBench's hyperparameters (YAHPO's names) and the ranges its configurations were drawn from,
#: with whether each was drawn on a log scale: the features an in-context model reads.
LCBENCH_FEATURES = {
    "batch_size": (16, 512, True),
    "learning_rate": (1e-4, 1e-1, True),
    "max_dropout": (0.0, 1.0, False),
    "max_units": (64, 1024, True),
    "momentum": (0.1, 0.99, False),
    "num_layers": (1, 5, False),
    "weight_decay": (1e-5, 1e-1, True),
}


def load_curve_sets(
    lcbench: Path | None, recorded: Path | None, per_set: int | None = None, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """Curve sets as ``{set: {group: (n, epochs) val-accuracy fractions}}``; a file that is
    ``None`` or missing is skipped."""
    out: dict[str, dict[str, np.ndarray]] = {}
    rng = np.random.default_rng(seed)
    if lcbench is not None and lcbench.exists():
        data = np.load(lcbench)
        acc = data["val_accuracy"] / 100.0
        out["lcbench"] = {str(name): acc[i] for i, name in enumerate(data["task_names"])}
    if recorded is not None and recorded.exists():
        data = np.load(recorded)
        groups = sorted({k.split("/")[0] for k in data.files})
        curves = {g: data[f"{g}/val_accuracy"] for g in groups}
        out["foreseer"] = {g: c[np.isfinite(c).all(axis=1)] for g, c in curves.items()}
    if per_set is not None:
        for groups in out.values():
            for g, c in groups.items():
                groups[g] = c[rng.permutation(len(c))[:per_set]]
    return out


def power_law_forecast(curves: np.ndarray, cut: int, horizon: int) -> np.ndarray:
    """Least-squares fit of ``a - b * t**-c`` to epochs ``1..cut`` (grid over ``c``), at ``horizon``."""
    t = np.arange(1, cut + 1, dtype=np.float64)
    y = curves[:, :cut].astype(np.float64)
    best_err = np.full(len(y), np.inf)
    best_pred = y[:, -1].copy()
    if cut < 3:
        return best_pred
    for c in (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
        x = t**-c
        xm, ym = x.mean(), y.mean(axis=1)
        var = ((x - xm) ** 2).sum()
        slope = ((x - xm) * (y - ym[:, None])).sum(axis=1) / var
        intercept = ym - slope * xm
        err = ((intercept[:, None] + slope[:, None] * x - y) ** 2).sum(axis=1)
        better = err < best_err
        best_err[better] = err[better]
        best_pred[better] = (intercept + slope * horizon**-c)[better]
    return best_pred


def forecast_errors(forecaster: CurveForecaster, curves: np.ndarray, pct: int) -> dict[str, float]:
    """Mean absolute error of final-value forecasts from the first ``pct``% of epochs, and coverage."""
    horizon = curves.shape[1]
    cut = max(1, pct * horizon // 100)
    norm = CurveNormalizer.fit(list(curves))
    final = curves[:, -1]
    fc = forecaster.forecast([norm(c[:cut]) for c in curves], horizon)
    q05, q50, q95 = norm.inverse(fc.quantiles([0.05, 0.5, 0.95])[:, -1].T)
    return {
        "pfn_mae": float(np.abs(q50 - final).mean()),
        "last_value_mae": float(np.abs(curves[:, cut - 1] - final).mean()),
        "power_law_mae": float(
            np.abs(np.clip(power_law_forecast(curves, cut, horizon), 0, 1) - final).mean()
        ),
        "coverage_90": float(((final >= q05) & (final <= q95)).mean()),
    }


def forecast_table(
    forecaster: CurveForecaster, sets: dict[str, dict[str, np.ndarray]]
) -> Iterator[tuple[str, list[dict[str, object]]]]:
    """One table per curve set (from :func:`load_curve_sets`): rows per cutoff, errors averaged
    over the set's groups."""
    for name, groups in sets.items():
        rows: list[dict[str, object]] = []
        for pct in CUTOFFS:
            per = [forecast_errors(forecaster, c, pct) for c in groups.values() if len(c)]
            row: dict[str, object] = {"cutoff": f"{pct}%"}
            row.update({k: float(np.mean([p[k] for p in per])) for k in per[0]})
            rows.append(row)
        n = sum(len(c) for c in groups.values())
        yield (
            f"{name}: final-value forecast error (MAE, accuracy fraction) and 90% coverage, {n} curves",
            rows,
        )


def prior_log_likelihood(
    forecaster: CurveForecaster, curves: np.ndarray, cutoffs: tuple[int, ...] = CUTOFFS, batch_size: int = 250
) -> dict[int, float]:
    """Mean log-likelihood of every epoch after each cutoff (percent of the horizon) of ``curves``.

    Unlike :func:`~foreseer.predictors.pfn.train.evaluate_prior`, which calls the network, this goes
    through :meth:`CurveForecaster.forecast`, so the forecaster's context cap and int8 layers count.

    Args:
        forecaster: the forecaster to score.
        curves: ``(n, H)`` noisy curves on the prior's scale (e.g. from ``prior.sample_curves``).
        cutoffs: context = the first ``pct`` percent of the ``H`` epochs, targets = all later.
        batch_size: curves per forward pass.
    """
    n, horizon = curves.shape
    out: dict[int, float] = {}
    for pct in cutoffs:
        cut = pct * horizon // 100
        queries = np.arange(cut + 1, horizon + 1, dtype=np.float64)
        total = 0.0
        for i in range(0, n, batch_size):
            chunk = curves[i : i + batch_size]
            fc = forecaster.forecast(
                list(chunk[:, :cut]),
                horizon,
                query_epochs=np.broadcast_to(queries, (len(chunk), queries.size)),
            )
            with torch.inference_mode():
                y = torch.from_numpy(np.ascontiguousarray(chunk[:, cut:], dtype=np.float32))
                total += forecaster.model.bar.log_prob(fc.logits, y).mean(1).sum().item()
        out[pct] = total / n
    return out


def inference_ms(forecaster: CurveForecaster, trials: int, epochs: int, repeats: int = 20) -> float:
    """Median milliseconds of one :meth:`~CurveForecaster.forecast` + ``prob_above`` call for
    ``trials`` running trials that have each observed ``epochs`` epochs of a 100-epoch budget."""
    rng = np.random.default_rng(0)
    curves = list(np.sort(rng.uniform(0, 1, (trials, epochs)), axis=1))
    forecaster.forecast(curves, 100)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forecaster.forecast(curves, 100).prob_above(np.full(trials, 0.9))
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def lcbench_features(configs: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """LCBench configurations ``(..., 7)`` as features in ``[0, 1]`` (log-scaled where drawn so)."""
    out = np.empty(configs.shape, dtype=np.float64)
    for i, name in enumerate(names):
        lo, hi, log = LCBENCH_FEATURES[str(name)]
        v = configs[..., i].astype(np.float64)
        out[..., i] = (np.log(v) - np.log(lo)) / (np.log(hi) - np.log(lo)) if log else (v - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0)


def recorded_configurations(path: Path, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The features of recorded candidates, as a live job gives them (``SpaceFeatures`` probed on
    the space, dataset and fixed parameters each group was recorded with, its ``/setting``):
    ``rows[group]`` are the rows wanted of each group."""
    import json

    from foreseer_spaces import Candidate, SpaceFeatures, get_space, parse_overrides
    from foreseer_workers import load_dataset

    out = {}
    with np.load(path) as data:
        for group, index in rows.items():
            setting = json.loads(str(data[f"{group}/setting"]))
            space, task = get_space(setting["space"]), load_dataset(setting["dataset"]).task
            features = SpaceFeatures.of(space, task, parse_overrides(setting["params"]))
            candidates = data[f"{group}/candidates"][index]
            out[group] = np.array([features(Candidate.from_json(str(c))) for c in candidates])
    return out


def job_log_likelihood(
    job_forecaster: JobForecaster,
    per_curve: CurveForecaster,
    curves: np.ndarray,
    features: np.ndarray,
    cutoffs: Sequence[int] = CUTOFFS,
    configs: int = 16,
    jobs: int = 10,
    seed: int = 0,
) -> dict[str, dict[int, float]]:
    """Mean log-likelihood of the epochs after each cutoff of real curves, on the prior's scale:
    ``jobs`` draws of ``configs`` configurations of one task, every one observed up to the cutoff;
    the in-context forecaster sees them all at once, the per-curve one each alone.

    Args:
        curves: ``(n, E)`` one task's curves (oriented; mapped with one normaliser for the task).
        features: ``(n, F)`` their configurations' features.
    """
    n, horizon = curves.shape
    norm = CurveNormalizer.fit(list(curves))
    scaled = np.stack([norm(c) for c in curves]).astype(np.float32)
    rng = np.random.default_rng(seed)
    draws = [rng.choice(n, size=min(configs, n), replace=False) for _ in range(jobs)]
    out: dict[str, dict[int, float]] = {"in-context": {}, "per-curve": {}}
    for pct in cutoffs:
        cut = max(1, pct * horizon // 100)
        later = np.arange(cut + 1, horizon + 1, dtype=np.float64)
        totals = {"in-context": 0.0, "per-curve": 0.0}
        for rows in draws:
            y = torch.from_numpy(np.ascontiguousarray(scaled[rows, cut:]))
            queries = np.broadcast_to(later, (len(rows), later.size))
            observed = [(features[r], scaled[r, :cut]) for r in rows]
            fc = job_forecaster.forecast(observed, list(range(len(rows))), horizon, queries)
            pc = per_curve.forecast(list(scaled[rows, :cut]), horizon, query_epochs=queries)
            with torch.inference_mode():
                totals["in-context"] += job_forecaster.model.bar.log_prob(fc.logits, y).mean().item()
                totals["per-curve"] += per_curve.model.bar.log_prob(pc.logits, y).mean().item()
        for k, total in totals.items():
            out[k][pct] = total / len(draws)
    return out


def in_context_ms(job_forecaster: JobForecaster, trials: int, observations: int, repeats: int = 20) -> float:
    """Median milliseconds of one freeze-thaw tick's forecast: ``trials`` running and paused trials
    with ``observations`` epochs observed among them (of a 100-epoch budget), each asked about two
    epochs, plus eight drawn new configurations, and the ``prob_above`` of the result."""
    rng = np.random.default_rng(0)
    lengths = np.maximum(1, rng.multinomial(observations - trials, np.ones(trials) / trials) + 1)
    features = rng.uniform(size=(trials + 8, 7))
    observed = [(features[i], np.sort(rng.uniform(size=k))) for i, k in enumerate(lengths)]
    asked = [*range(trials), *features[trials:]]
    queries = [[min(int(k) + 5, 100), 100] for k in lengths] + [[5, 100]] * 8
    threshold = np.full(trials + 8, 0.9)
    job_forecaster.forecast(observed, asked, 100, queries).prob_above(threshold)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        job_forecaster.forecast(observed, asked, 100, queries).prob_above(threshold)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def _mean_by_cutoff(tables: Sequence[dict[str, dict[int, float]]]) -> dict[str, dict[int, float]]:
    """The mean of per-task ``{model: {cutoff: log-likelihood}}`` tables."""
    return {
        model: {cut: float(np.mean([t[model][cut] for t in tables])) for cut in cuts}
        for model, cuts in tables[0].items()
    }


def in_context_tables(
    job_forecaster: JobForecaster,
    per_curve: CurveForecaster,
    jobs: int = 200,
    lcbench: Path | None = None,
    recorded: Path | None = None,
) -> list[tuple[str, list[dict[str, object]]]]:
    """The in-context model's tables: log-likelihood on fresh prior jobs and (given their files) on
    LCBench's and Foreseer's recorded real curves, each beside the per-curve model on the same
    curves, and the time of one tick."""
    from foreseer.predictors.pfn.job_train import evaluate_jobs

    def rows(ll: dict[str, dict[int, float]]) -> list[dict[str, object]]:
        return [{"model": name, **{f"{p}%": v for p, v in by_cut.items()}} for name, by_cut in ll.items()]

    prior = evaluate_jobs(job_forecaster.model, per_curve.model, n_jobs=jobs)
    title = f"log-likelihood on {jobs} fresh prior jobs of 16 configurations, all observed to the cutoff"
    tables = [(title, rows(prior))]
    if lcbench is not None and lcbench.exists():
        data = np.load(lcbench)
        features = lcbench_features(data["configs"], data["hp_names"])
        accuracy = data["val_accuracy"] / 100.0
        per_task = [
            job_log_likelihood(job_forecaster, per_curve, accuracy[i], features[i], jobs=5)
            for i in range(len(features))
        ]
        mean = _mean_by_cutoff(per_task)
        title = f"log-likelihood on LCBench's curves ({len(features)} tasks, 5 draws of 16 configurations)"
        tables.append((title, rows(mean)))
        rng = np.random.default_rng(0)
        names = [str(n) for n in data["task_names"]]
        pick = {name: rng.permutation(accuracy.shape[1])[:96] for name in names}
        sets = {"lcbench": {name: accuracy[i][pick[name]] for i, name in enumerate(names)}}
        known = {"lcbench": {name: features[i][pick[name]] for i, name in enumerate(names)}}
        tables.append((COVERAGE_TITLE, coverage_table(per_curve, sets, job_forecaster, known)))
    if recorded is not None and recorded.exists():
        with np.load(recorded) as data:
            groups = sorted({k.split("/")[0] for k in data.files})
            curves = {g: data[f"{g}/val_accuracy"] for g in groups}
        complete = {g: np.flatnonzero(np.isfinite(c).all(axis=1)) for g, c in curves.items()}
        features = recorded_configurations(recorded, complete)
        per_group = [
            job_log_likelihood(job_forecaster, per_curve, curves[g][complete[g]], features[g], jobs=5)
            for g in groups
        ]
        mean = _mean_by_cutoff(per_group)
        n = sum(len(r) for r in complete.values())
        title = (
            f"log-likelihood on Foreseer's recorded curves ({len(groups)} groups, {n} curves, 5 draws of 16)"
        )
        tables.append((title, rows(mean)))
    timing = [
        {"trials": trials, "observations": n, "ms per tick": in_context_ms(job_forecaster, trials, n)}
        for trials, n in ((16, 200), (64, 1000))
    ]
    title = "one freeze-thaw tick's forecast, in-context, one thread (target <= 20 ms at 64 / 1,000)"
    tables.append((title, timing))
    return tables


#: Epochs observed at which :func:`coverage_table` checks the forecast's 90% interval.
COVERAGE_EPOCHS = (1, 2, 3, 4, 6, 8, 12, 16)
COVERAGE_TITLE = "final value inside the forecast's 90% interval, by epochs observed (calibrated: 0.90)"


def coverage_table(
    forecaster: CurveForecaster,
    sets: dict[str, dict[str, np.ndarray]],
    job_forecaster: JobForecaster | None = None,
    features: dict[str, dict[str, np.ndarray]] | None = None,
    epochs: Sequence[int] = COVERAGE_EPOCHS,
    configs: int = 16,
) -> list[dict[str, object]]:
    """How often a curve's final value lies inside the forecast's 90% interval (5% to 95%
    quantile), by epochs observed: calibrated is 0.90. One row per curve set (the per-curve
    forecaster on each curve alone) and, with ``job_forecaster``, one per set with ``features``
    (the in-context forecaster, groups of ``configs`` curves of a task observed together).
    Epochs at or past a set's budget are left blank."""
    rows: list[dict[str, object]] = []
    for name, groups in sets.items():
        models = [("per-curve", None)]
        if job_forecaster is not None and features is not None and name in features:
            models.append(("in-context", job_forecaster))
        norms = {group: CurveNormalizer.fit(list(curves)) for group, curves in groups.items()}
        scaled = {group: [norms[group](c) for c in curves] for group, curves in groups.items()}
        for label, model in models:
            row: dict[str, object] = {"set": name, "model": label}
            for e in epochs:
                inside: list[bool] = []
                for group, curves in groups.items():
                    n, budget = curves.shape
                    if e >= budget:
                        continue
                    norm, values = norms[group], scaled[group]
                    if model is None:
                        fc = forecaster.forecast([c[:e] for c in values], budget)
                        low, high = norm.inverse(fc.quantiles([0.05, 0.95])[:, -1].T)
                    else:
                        x = features[name][group]  # type: ignore[index]
                        low, high = np.empty(n), np.empty(n)
                        for job in np.array_split(np.arange(n), max(1, n // configs)):
                            observed = [(x[r], values[r][:e]) for r in job]
                            fc = model.forecast(
                                observed, list(range(len(job))), budget, [[budget]] * len(job)
                            )
                            low[job], high[job] = norm.inverse(fc.quantiles([0.05, 0.95])[:, -1].T)
                    final = curves[:, -1]
                    inside.extend(((final >= low) & (final <= high)).tolist())
                row[f"epoch {e}"] = float(np.mean(inside)) if inside else ""
            rows.append(row)
    return rows
