"""Summary plots drawn from a ledger: the numbers behind the lines, the markers for how trials ended."""

import math

import pytest

from foreseer import events as ev
from foreseer.ledger import Ledger
from foreseer.plots import best_so_far, best_so_far_points, summary_figures, trial_curves
from foreseer.spec import Objective
from foreseer_spaces import Candidate


def ledger_of(curves, mode="max", max_epochs=4):
    """curves: (values, how it ended) per trial, in start order."""
    ledger = Ledger([Objective("val_accuracy", mode=mode)], max_epochs)
    endings = {
        "stopped": lambda n: ev.Stopped(n, by="asha", reason="below the rung cutoff"),
        "diverged": lambda n: ev.Failed(n, reason="loss is nan"),
        "raised": lambda n: ev.Failed(n, reason="boom"),
    }
    for number, (values, ending) in enumerate(curves):
        candidate = Candidate("mlp", {"depth": 1}, {"lr": 0.1 * (number + 1)})
        ledger.observe(ev.Proposed(number, candidate=candidate.to_dict()))
        for epoch, value in enumerate(values, start=1):
            ledger.observe(ev.Epoch(number, epoch=epoch, metrics={"val_accuracy": value}))
        ledger.observe(endings.get(ending, lambda n: ev.Completed(n, reason="trained"))(number))
    return ledger


CURVES = [
    ([0.5, 0.6, 0.7, 0.8], "completed"),
    ([0.3, 0.35], "stopped"),
    ([0.9, float("nan")], "diverged"),  # a high value from a failed trial never counts as best
    ([0.6, 0.85, 0.84, 0.83], "completed"),
]


def test_best_so_far_counts_epochs_and_skips_failed_trials():
    points = best_so_far_points(ledger_of(CURVES))
    assert [p[0] for p in points] == list(range(1, 13))
    assert [p[1] for p in points] == [0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.85, 0.85, 0.85]


def test_best_so_far_when_lower_is_better():
    ledger = ledger_of([([0.9, 0.5], "completed"), ([0.7, 0.3], "completed")], mode="min", max_epochs=2)
    assert best_so_far_points(ledger) == [(1, 0.9), (2, 0.5), (3, 0.5), (4, 0.3)]


def test_best_so_far_figure_draws_the_step_line_and_the_full_budget():
    axes = best_so_far(ledger_of(CURVES)).axes[0]
    step = next(line for line in axes.lines if line.get_label() == "best so far")
    assert list(step.get_ydata())[-1] == pytest.approx(0.85)
    budget = next(line for line in axes.lines if "every trial to the end" in line.get_label())
    assert list(budget.get_xdata()) == [16, 16]  # 4 trials x 4 epochs
    assert "12 epochs used" in axes.get_title()


def test_trial_curves_mark_stopped_and_failed_trials_where_they_ended():
    ledger = ledger_of(CURVES + [([0.4], "raised")])
    axes = trial_curves(ledger).axes[0]
    ends = [line for line in axes.lines if line.get_linestyle() == "None"]
    stopped = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ends if line.get_marker() == "x"]
    failed = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ends if line.get_marker() == "X"]
    assert stopped == [(2, 0.35)]
    assert failed == [(1, 0.9), (1, 0.4)]  # the diverged trial at its last finite value
    labels = axes.get_legend().get_texts()
    assert {t.get_text() for t in labels} >= {
        "completed: 2",
        "stopped early (x): 1",
        "failed (X at the last finite value): 2",
        "best: trial 3 (0.85 at epoch 2)",
    }


def test_summary_figures_render_to_png(tmp_path):
    figures = summary_figures(ledger_of(CURVES))
    for name, figure in figures.items():
        figure.savefig(tmp_path / name)
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert not any(math.isnan(p[1]) for p in best_so_far_points(ledger_of(CURVES)))


def test_candidates_that_never_trained_draw_no_curve():
    ledger = ledger_of(CURVES)
    ledger.add("screened", 9, Candidate("mlp", {"depth": 3}, {"lr": 0.5}))
    axes = trial_curves(ledger).axes[0]
    assert axes.get_title().startswith("4 trials trained")
    assert "running: 1" not in {t.get_text() for t in axes.get_legend().get_texts()}


def test_an_empty_ledger_still_draws():
    figures = summary_figures(Ledger([Objective("val_loss", mode="min")], 5))
    assert set(figures) == {"best_so_far.png", "trial_curves.png"}


def two_objective_ledger(points, failed=()):
    """One trial per (accuracy, params) point, each one epoch long; ``failed`` numbers fail."""
    ledger = Ledger([Objective("val_accuracy", mode="max"), Objective("num_params", mode="min")], 2)
    for number, (accuracy, params) in enumerate(points):
        candidate = Candidate("mlp", {"depth": 1}, {"lr": 0.01 * (number + 1)})
        ledger.observe(ev.Proposed(number, candidate=candidate.to_dict()))
        ledger.observe(ev.Epoch(number, epoch=1, metrics={"val_accuracy": accuracy, "num_params": params}))
        ending = (
            ev.Failed(number, reason="boom") if number in failed else ev.Completed(number, reason="trained")
        )
        ledger.observe(ending)
    return ledger


def test_the_pareto_front_keeps_the_trials_no_other_beats_on_both_objectives():
    points = [(0.9, 1000), (0.8, 100), (0.85, 1000), (0.8, 100), (0.7, 50), (0.95, 5000), (0.99, 10)]
    ledger = two_objective_ledger(points, failed={6})
    # 2 is beaten by 0 (same size, less accurate); 1 and 3 tie, so neither dominates the other;
    # 6 would dominate everything but failed
    assert [r.number for r in ledger.pareto_front()] == [0, 1, 3, 4, 5]
    board = ledger.leaderboard()
    assert dict(zip(board["trial_number"], board["pareto"], strict=True)) == {
        0: True, 1: True, 2: False, 3: True, 4: True, 5: True, 6: False
    }  # fmt: skip
    assert "pareto_front.png" in summary_figures(ledger)
    assert "pareto" not in ledger_of(CURVES).leaderboard().columns, "one objective has no front"
