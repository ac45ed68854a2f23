"""Int8 inference of the shipped PFN and the context cap: what they change, measured on few curves."""

import numpy as np
import pytest
import torch
from torch import nn

from foreseer.predictors.pfn.evaluate import prior_log_likelihood
from foreseer.predictors.pfn.predictor import CurveForecaster
from foreseer.predictors.pfn.prior import sample_curves
from foreseer.predictors.pfn.quantize import Int8Linear, quantize_int8


@pytest.fixture(scope="module")
def pair():
    torch.set_num_threads(1)
    return CurveForecaster.load(quantize=False), CurveForecaster.load()


def test_int8_linear_is_close_to_the_float_layer_row_by_row():
    torch.manual_seed(0)
    linear = nn.Linear(128, 384)
    x = torch.randn(50, 128) * torch.logspace(-2, 1, 50)[:, None]  # rows of very different scales
    x[3] = 0  # an all-zero row gives the bias, not NaN
    q = Int8Linear(linear)
    with torch.no_grad():
        exact, approx = linear(x), q(x)
    assert q.weight_q.dtype == torch.int8
    err = (approx - exact).norm(dim=1) / (exact - linear.bias).norm(dim=1).clamp(min=1e-9)
    assert err[np.r_[0:3, 4:50]].max() < 0.02, err.max()  # per-token scales: small rows stay precise
    assert torch.equal(approx[3], linear.bias.detach())
    # the same numbers as the int8 arithmetic written out (the layer dequantises in place)
    xs = x.abs().amax(1, keepdim=True).clamp(min=1e-12) / 127
    acc = torch.round(x / xs).int() @ q.weight_q.int()
    torch.testing.assert_close(approx, acc.float() * xs * q.weight_scale + q.bias, rtol=1e-5, atol=1e-5)


def test_load_quantises_the_blocks_only_and_leaves_the_file_float32(pair):
    fp32, int8 = pair
    assert int8.quantized and not fp32.quantized
    blocks = [m for b in int8.model.blocks for m in b.modules() if isinstance(m, (nn.Linear, Int8Linear))]
    assert blocks and all(isinstance(m, Int8Linear) for m in blocks)
    assert isinstance(int8.model.head, nn.Linear) and isinstance(int8.model.embed.y, nn.Linear)
    assert "int8" in int8.describe()
    # quantising a fresh copy again is what load does; the fp32 forecaster's model is untouched
    assert not any(isinstance(m, Int8Linear) for m in fp32.model.modules())
    assert (
        quantize_int8(CurveForecaster.load(quantize=False).model).blocks[0].ff.up.weight_q.dtype == torch.int8
    )


def test_int8_forecasts_agree_with_float32(pair):
    fp32, int8 = pair
    curves = sample_curves(64, np.random.default_rng(11))
    for epochs in (5, 20, 50):
        batch = list(curves[:, :epochs])
        best = float(curves[:, epochs - 1].max())
        p32 = fp32.forecast(batch, 100).prob_above(np.full(64, best))
        p8 = int8.forecast(batch, 100).prob_above(np.full(64, best))
        assert np.abs(p8 - p32).max() < 0.05, (epochs, np.abs(p8 - p32).max())
        m32 = fp32.forecast(batch, 100).quantiles([0.5])
        m8 = int8.forecast(batch, 100).quantiles([0.5])
        assert np.abs(m8 - m32).max() < 0.02  # measured: at most 0.016, median 0.001-0.002
    many = sample_curves(1000, np.random.default_rng(13))  # measured on 5,000: -0.0025 to -0.0047
    ll32 = prior_log_likelihood(fp32, many, (20, 80))
    ll8 = prior_log_likelihood(int8, many, (20, 80))
    assert all(abs(ll8[c] - ll32[c]) < 0.01 for c in ll32), (ll8, ll32)


def test_int8_forecast_of_a_trial_barely_depends_on_the_rest_of_the_batch(pair):
    _, int8 = pair
    rng = np.random.default_rng(12)
    curves = [c[: rng.integers(2, 40)] for c in sample_curves(16, rng)]
    batch = int8.forecast(curves, 100).prob_above(np.full(16, 0.8))
    alone = [int8.forecast([c], 100).prob_above([0.8])[0] for c in curves]
    # per-token scales: only a last-bit difference from padding can move a token by one rounding
    # step (at most 0.0005 over 480 trials; whole-tensor scales moved it by up to 0.027)
    np.testing.assert_allclose(batch, alone, atol=5e-3)


def test_threads_forecasting_at_once_get_the_answers_of_one_thread(pair):
    from concurrent.futures import ThreadPoolExecutor

    _, int8 = pair
    batches = [list(sample_curves(32, np.random.default_rng(s))[:, :e]) for s, e in ((1, 50), (2, 10))]
    alone = [int8.forecast(b, 100).logits for b in batches * 4]
    with ThreadPoolExecutor(2) as pool:  # per-thread scratch buffers: no cross-talk
        together = list(pool.map(lambda b: int8.forecast(b, 100).logits, batches * 4))
    for a, t in zip(alone, together, strict=True):
        torch.testing.assert_close(a, t)
