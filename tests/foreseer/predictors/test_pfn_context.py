"""Summarised contexts: bins of consecutive epochs, a binned model's training and warm start, and
its forecasts never seeing more than ``context_bins`` tokens."""

import numpy as np
import pytest
import torch

from foreseer.predictors.pfn.checkpoint import read_metadata, save_checkpoint
from foreseer.predictors.pfn.context import bin_context
from foreseer.predictors.pfn.model import CurvePFN, PFNConfig
from foreseer.predictors.pfn.predictor import CurveForecaster
from foreseer.predictors.pfn.train import TrainConfig, evaluate_prior, make_borders, train

TINY = PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=50)
BINNED = PFNConfig(n_layer=1, n_embd=16, n_head=2, n_hidden=32, n_buckets=50, context_bins=4)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_short_curves_stay_raw_and_long_ones_become_equal_runs():
    rng = np.random.default_rng(0)
    short, long = rng.uniform(size=3), rng.uniform(size=10)
    ctx = bin_context([np.arange(1.0, 4.0), np.arange(1.0, 11.0)], [short, long], bins=4)
    assert ctx.length.tolist() == [3, 4] and ctx.t.shape == (2, 4)
    np.testing.assert_allclose(ctx.y[0, :3], short, rtol=1e-6)
    assert ctx.stats[0].abs().sum() == 0, "a raw point has no spread and log count 0"
    runs = [long[0:2], long[2:5], long[5:7], long[7:10]]  # starts floor(k * 10 / 4) = 0, 2, 5, 7
    np.testing.assert_allclose(ctx.y[1], [r.mean() for r in runs], rtol=1e-5)
    np.testing.assert_allclose(ctx.t[1], [1.5, 4.0, 6.5, 9.0], rtol=1e-6)
    np.testing.assert_allclose(ctx.stats[1, :, 0], [r.std() * 10 for r in runs], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ctx.stats[1, :, 1], np.log([2, 3, 2, 3]), rtol=1e-6)
    raw = bin_context([np.arange(1.0, 11.0)], [long], bins=0)
    assert raw.length.tolist() == [10] and raw.stats.abs().sum() == 0
    with pytest.raises(ValueError, match="at least one point"):
        bin_context([np.arange(1.0, 2.0), np.array([])], [np.ones(1), np.array([])], bins=4)
    with pytest.raises(ValueError, match="bins must be 0"):
        bin_context([np.arange(1.0, 2.0)], [np.ones(1)], bins=-1)
    with pytest.raises(ValueError, match="context_bins must be 0 or positive"):
        PFNConfig(context_bins=-2)


def test_a_binned_model_trains_warm_starts_from_a_raw_one_and_forecasts_from_bins(tmp_path):
    torch.manual_seed(0)
    raw = CurvePFN(TINY, make_borders(TINY.n_buckets))
    save_checkpoint(raw, tmp_path / "raw.safetensors", {"curves_seen": 640, "train_seconds": 2.0})
    config = TrainConfig(
        prior="extended",
        curves=64 * 60,
        batch_size=64,
        n_targets=10,
        lr=3e-3,
        eval_every=10**9,
        init_from=str(tmp_path / "raw.safetensors"),
    )
    model = train(tmp_path / "binned", BINNED, config)
    assert torch.equal(model.bar.borders, raw.bar.borders), "a warm start keeps the checkpoint's buckets"
    _, meta = read_metadata(tmp_path / "binned" / "model.safetensors")
    assert meta["curves_seen"] == 64 * 60 + 640 and meta["warm_started_from"]["curves_seen"] == 640
    after = evaluate_prior(model, n_curves=300, cutoffs=(40,), prior="extended")
    before = evaluate_prior(CurvePFN(BINNED, raw.bar.borders), n_curves=300, cutoffs=(40,), prior="extended")
    assert after[40] > before[40] + 0.1

    forecaster = CurveForecaster(model)
    curves = [np.linspace(0.1, 0.7, 30), np.linspace(0.2, 0.4, 3)]
    context, qry_t, _ = forecaster.inputs(curves, 30)
    assert context.length.tolist() == [4, 3], "a 30-epoch context reaches the model as 4 tokens"
    with torch.no_grad():
        direct = model(context.t, context.y, qry_t, context.length, context.stats)  # (B, Q, K)
    torch.testing.assert_close(forecaster.forecast(curves, 30).logits, direct)

    wider = PFNConfig(n_layer=1, n_embd=32, n_head=2, n_hidden=32, n_buckets=50, context_bins=4)
    with pytest.raises(ValueError, match="another shape"):
        train(tmp_path / "wider", wider, config)
