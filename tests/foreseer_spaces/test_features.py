"""Configuration features: every space's candidates as one fixed-width vector in [0, 1]."""

import numpy as np
import optuna
import pytest

from foreseer_spaces import FEATURE_NAMES, HPARAM_NAMES, SpaceFeatures, Task, constrain, get_space

CELLS = (get_space("cells"), Task((1, 8, 8), 10))
MLP = (get_space("mlp"), Task((13,), 3))


def fixed(space, task, **params):
    """The candidate of ``params`` (the rest sampled)."""
    trial = constrain(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask(), params)
    return space.sample(trial, task)


@pytest.mark.parametrize(("space", "task"), [CELLS, MLP], ids=["cells", "mlp"])
def test_every_candidate_is_sixteen_numbers_in_the_unit_interval(space, task):
    features = SpaceFeatures.of(space, task, probe=16)
    rows = np.array([features(c) for c in features.probe])
    assert rows.shape == (16, len(FEATURE_NAMES)) == (16, 16)
    assert rows.min() >= 0.0 and rows.max() <= 1.0
    assert (rows.std(axis=0)[: len(HPARAM_NAMES)] > 0).sum() >= 5, "hyperparameters vary across the probe"
    network = [FEATURE_NAMES.index(n) for n in ("log_params", "layers", "log_width")]
    assert (rows[:, network].std(axis=0) > 0).all(), "and so do the networks"
    again = SpaceFeatures.of(space, task, probe=16)
    np.testing.assert_array_equal(
        again.draw(np.random.default_rng(0), 5), features.draw(np.random.default_rng(0), 5)
    )


def test_hyperparameters_sit_on_the_scale_they_are_sampled_on():
    space, task = MLP
    features = SpaceFeatures.of(space, task, probe=8)
    index = {n: i for i, n in enumerate(FEATURE_NAMES)}
    low = features(fixed(space, task, lr=1e-4, optimizer="adamw", batch_size=32))
    high = features(fixed(space, task, lr=0.3, optimizer="sgd", batch_size=128))
    middle = features(fixed(space, task, lr=float(np.sqrt(1e-4 * 0.3)), batch_size=64))
    assert (low[index["lr"]], high[index["lr"]]) == (0.0, 1.0)
    assert middle[index["lr"]] == pytest.approx(0.5), "log-scaled, as lr is sampled"
    assert (low[index["batch_size"]], middle[index["batch_size"]], high[index["batch_size"]]) == (
        0.0,
        0.5,
        1.0,
    )
    assert low[index["momentum"]] == 0.0 and high[index["optimizer"]] == 1.0, "AdamW has no momentum"


def test_a_bigger_network_has_bigger_network_features():
    space, task = MLP
    features = SpaceFeatures.of(space, task, probe=32)
    small = features(fixed(space, task, depth=1, width_0=32))
    big = features(fixed(space, task, depth=4, width_0=256, width_1=256, width_2=256, width_3=256))
    for name in ("log_params", "layers", "log_width"):
        i = FEATURE_NAMES.index(name)
        assert big[i] > small[i], name
    cells = SpaceFeatures.of(*CELLS, probe=4)(fixed(*CELLS))
    assert cells[FEATURE_NAMES.index("share_conv")] > 0 and small[FEATURE_NAMES.index("share_conv")] == 0


def test_a_job_probes_its_own_constrained_space():
    space, task = MLP
    features = SpaceFeatures.of(space, task, {"depth": 2}, probe=8)
    assert all(c.arch["depth"] == 2 for c in features.probe)
    with pytest.raises(ValueError, match="probe must be at least 1"):
        SpaceFeatures.of(space, task, probe=0)
