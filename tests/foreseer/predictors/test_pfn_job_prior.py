"""The prior over jobs: valid curves, configurations that matter, the shapes and noises it promises."""

import numpy as np
import pytest

from foreseer.predictors.pfn.job_prior import FEATURES, sample_job
from foreseer.predictors.pfn.prior import HORIZON


@pytest.fixture(scope="module")
def jobs():
    rng = np.random.default_rng(0)
    return [sample_job(80, rng) for _ in range(300)]


def test_a_job_is_configurations_in_the_unit_cube_padded_with_zeros_and_curves_in_it(jobs):
    for job in jobs:
        assert job.features.shape == (80, FEATURES) and job.curves.shape == (80, HORIZON)
        assert 1 <= job.dims <= FEATURES
        assert (job.features >= 0).all() and (job.features <= 1).all()
        assert not job.features[:, job.dims :].any(), "features past the job's own are padding"
        assert (job.clean >= 0).all() and (job.clean <= 1).all() and np.isfinite(job.curves).all()
    assert {job.dims for job in jobs} == set(range(1, FEATURES + 1))


def test_nearby_configurations_have_alike_curves(jobs):
    rng = np.random.default_rng(1)
    closer = []
    for job in jobs:
        final = job.clean[:, -1]
        distance = np.linalg.norm(job.features[:, None] - job.features[None], axis=2)
        np.fill_diagonal(distance, np.inf)
        nearest = np.abs(final - final[distance.argmin(axis=1)]).mean()
        anyone = np.abs(final - final[rng.permutation(len(final))]).mean()
        closer.append(nearest < anyone)
    assert np.mean(closer) > 0.85, "a configuration's nearest neighbour ends nearer than a random one"


def test_jobs_differ_in_how_well_and_how_alike_their_configurations_learn(jobs):
    best = np.array([job.clean[:, -1].max() for job in jobs])
    q1, q3 = np.quantile([job.clean[:, -1] for job in jobs], [0.25, 0.75], axis=1)
    assert best.min() < 0.6 < 0.95 < best.max()
    assert (q3 - q1).min() < 0.05 and (q3 - q1).max() > 0.4, "interquartile ranges on LCBench: 0.023 .. 0.738"


def test_curves_mostly_rise_and_the_extended_shapes_occur(jobs):
    clean = np.concatenate([job.clean for job in jobs])
    assert np.mean(clean[:, -1] >= clean[:, 0]) > 0.9
    flat = np.ptp(clean, axis=1) < 1e-9
    declines = clean[:, -1] < clean.max(axis=1) - 0.1
    jumps = (np.diff(clean, axis=1) > 0.05).sum(axis=1) == 1
    gain = clean[:, -1] - clean[:, 0]
    slow = (clean[:, 4] - clean[:, 0] < 0.1 * gain) & (gain > 0.2)
    for name, share in {"flat": flat, "declines": declines, "jumps": jumps, "slow starts": slow}.items():
        assert 0.01 < share.mean() < 0.3, f"{name}: {share.mean():.3f}"


def test_some_jobs_observe_the_accuracy_of_a_small_validation_set(jobs):
    def on_a_grid(job):
        m = np.arange(30, 3001)[:, None]
        v = job.curves[:5].ravel().astype(np.float64)
        return bool((np.abs(v * m - np.round(v * m)) < 1e-3).all(axis=1).any())

    share = np.mean([on_a_grid(job) for job in jobs])
    assert 0.15 < share < 0.45, f"{share:.2f} of jobs"


def test_a_job_is_reproducible_from_its_seed_and_refuses_no_configurations():
    a, b = sample_job(10, np.random.default_rng(7)), sample_job(10, np.random.default_rng(7))
    assert np.array_equal(a.curves, b.curves) and np.array_equal(a.features, b.features)
    assert sample_job(1, np.random.default_rng(7)).curves.shape == (1, HORIZON)
    with pytest.raises(ValueError, match="at least one configuration"):
        sample_job(0, np.random.default_rng(7))
