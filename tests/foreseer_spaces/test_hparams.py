"""The training hyperparameters every space samples."""

from foreseer_spaces import HPARAM_NAMES, Task, discover_params, get_space, sample_hparams


def test_names_and_ranges(make_trial):
    seen = set()
    for seed in range(40):
        hparams = sample_hparams(make_trial(seed))
        seen |= set(hparams)
        assert hparams["optimizer"] in ("adamw", "sgd")
        assert 1e-4 <= hparams["lr"] <= 0.3 and 1e-6 <= hparams["weight_decay"] <= 1e-2
        assert hparams["batch_size"] in (32, 64, 128) and 0.0 <= hparams["label_smoothing"] <= 0.2
        assert hparams["lr_schedule"] in ("constant", "cosine", "step")
        assert ("momentum" in hparams) == (hparams["optimizer"] == "sgd")
        if "momentum" in hparams:
            assert 0.8 <= hparams["momentum"] <= 0.99
    assert seen == set(HPARAM_NAMES)


def test_log_scales():
    distributions = discover_params(get_space("mlp"), Task((13,), 3), samples=4)
    assert distributions["lr"].log and distributions["weight_decay"].log
    assert not distributions["label_smoothing"].log


def test_every_space_samples_them(make_trial):
    candidate = get_space("mlp").sample(make_trial(3), Task((13,), 3))
    assert set(candidate.hparams) <= set(HPARAM_NAMES) and not set(candidate.arch) & set(HPARAM_NAMES)
