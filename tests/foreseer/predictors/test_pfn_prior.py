"""The learning-curve priors: constraints of the reference prior, shapes of the extended one."""

import time

import numpy as np
import pytest

from foreseer.predictors.pfn.prior import HORIZON, extended_curves, reference_curves, sample_curves


def test_reference_curves_satisfy_the_acceptance_rule():
    y = reference_curves(2000, np.random.default_rng(0))
    assert y.shape == (2000, HORIZON)
    assert np.isfinite(y).all() and (y >= 0).all() and (y <= 1).all()
    assert (y[:, -1] > y[:, 0]).all()


def test_noise_scale_follows_log_normal_minus_four():
    rng = np.random.default_rng(1)
    clean = reference_curves(4000, np.random.default_rng(1))
    noisy = sample_curves(4000, np.random.default_rng(1))
    # same rng stream: the clean curves are the noisy ones minus their noise
    residual_sd = (noisy - clean).std(axis=1)
    assert np.median(np.log(residual_sd)) == pytest.approx(-4.0, abs=0.15)
    del rng


def test_prior_is_vectorised_fast():
    rng = np.random.default_rng(2)
    start = time.perf_counter()
    sample_curves(20_000, rng)
    rate = 20_000 / (time.perf_counter() - start)
    assert rate > 5_000, f"{rate:.0f} curves/s"


def test_extended_prior_has_the_reference_failure_modes():
    y = extended_curves(5000, np.random.default_rng(3))
    assert (y >= 0).all() and (y <= 1).all()
    flat = np.ptp(y, axis=1) < 1e-9
    declines_late = y[:, -1] < y.max(axis=1) - 0.1
    slow_start = (y[:, 9] - y[:, 0] < 0.02) & (y[:, -1] - y[:, 9] > 0.2)
    for name, mask in {"flat": flat, "late decline": declines_late, "slow start": slow_start}.items():
        assert mask.mean() > 0.03, f"{name}: {mask.mean():.3f}"
    reference = reference_curves(5000, np.random.default_rng(3))
    assert (np.ptp(reference, axis=1) < 1e-9).mean() == 0


def test_unknown_prior_is_refused():
    with pytest.raises(ValueError, match="prior must be one of"):
        sample_curves(3, np.random.default_rng(0), "bogus")  # type: ignore[arg-type]
