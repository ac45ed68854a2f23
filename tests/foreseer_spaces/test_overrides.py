"""Declarative overrides: validation of the mapping, honouring it while sampling, checking names."""

import optuna
import pytest
import yaml

from foreseer_spaces import (
    ParamOverride,
    Task,
    check_override_names,
    constrain,
    discover_param_names,
    get_space,
    parse_overrides,
)

TABULAR, IMAGES = Task((13,), 3), Task((1, 8, 8), 10)
ACCEPTED = "a fixed value (bool, int, float or str), a range {low, high, step, log} or {choices: [...]}"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"lo": 1e-3, "high": 0.1},
            "unknown key(s) ['lo']; accepted keys are ['low', 'high', 'step', 'log', 'choices']",
        ),
        ({"choices": []}, "choices must not be empty"),
        ({"choices": "relu"}, "choices must be a list, but got str 'relu'"),
        ({"choices": [[1, 2]]}, "choice [1, 2] must be a bool, int, float or str, but got list"),
        ({"choices": [1, 1]}, "choices must be distinct"),
        ({"low": 0.1, "high": 0.01}, "low must not exceed high, but got low=0.1 > high=0.01"),
        ({"low": 0.0, "high": 0.3, "log": True}, "a log range needs low > 0, but got low=0.0"),
        ({"step": 0}, "step must be positive, but got step=0"),
        ({"low": 1e-3, "log": True, "step": 0.1}, "log and step cannot be combined"),
        ({"low": "1e-3"}, "low must be a finite number, but got str '1e-3' (YAML reads numbers like 1e-3"),
        ({"log": "yes"}, "log must be true or false, but got str 'yes'"),
        ({"choices": [1], "low": 0}, "mixes choices and a range"),
        ({}, "sets nothing"),
        (
            [1, 2],
            f"must be {ACCEPTED}, but got list [1, 2] (write {{choices: [...]}}",
        ),
        (
            None,
            f"must be {ACCEPTED}, but got NoneType None",
        ),
        (float("nan"), "the fixed value must be finite, but got nan"),
    ],
)
def test_each_bad_override_is_rejected_naming_the_parameter(spec, message):
    with pytest.raises(ValueError) as info:
        parse_overrides({"param": spec})
    assert f"'param': {message}" in str(info.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as info:
        parse_overrides({"lr": {"low": 1, "high": 0}, "depth": [1, 2], "norm": {"choices": []}, "ok": 3})
    text = str(info.value)
    assert text.startswith("3 problem(s) in the search-space overrides")
    assert "'lr':" in text and "'depth':" in text and "'norm':" in text and "'ok'" not in text


def test_yaml_overrides_parse_and_round_trip():
    text = """
    stem_width: 16
    lr: {low: 1.0e-3, high: 0.1, log: true}
    activation: {choices: [relu, gelu]}
    """
    parsed = parse_overrides(yaml.safe_load(text))
    assert [parsed[name].kind for name in ("stem_width", "lr", "activation")] == ["fixed", "range", "choices"]
    assert parse_overrides({name: o.to_spec() for name, o in parsed.items()}) == parsed


def test_param_override_validates_when_built():
    with pytest.raises(ValueError, match="invalid override of 'lr': low must not exceed high"):
        ParamOverride("lr", low=1.0, high=0.1)
    assert parse_overrides(None) == {}
    with pytest.raises(TypeError, match="overrides must be a mapping"):
        parse_overrides([("lr", 0.1)])


def test_fixed_values_are_honoured_and_recorded_in_the_trial(make_trial):
    overrides = {
        "depth": 2,
        "activation": "tanh",
        "residual": False,
        "dropout": 0.1,
        "lr": 0.05,
        "optimizer": "sgd",
    }
    trial = make_trial(0)
    candidate = get_space("mlp").sample(constrain(trial, overrides), TABULAR)
    assert {k: v for k, v in candidate.arch.items() if k in overrides} == {
        "depth": 2,
        "activation": "tanh",
        "residual": False,
        "dropout": 0.1,
    }
    assert candidate.hparams["lr"] == 0.05 and "momentum" in candidate.hparams
    assert trial.params["depth"] == 2 and trial.params["lr"] == 0.05


def test_narrowed_ranges_and_choices_are_honoured(make_trial):
    overrides = {
        "lr": {"low": 1e-3, "high": 1e-2},
        "depth": {"low": 2, "high": 3},
        "dropout": {"high": 0.2},
        "activation": {"choices": ["relu", "gelu"]},
        "width_0": {"choices": [32, 256]},
    }
    seen = {"depth": set(), "activation": set(), "width_0": set()}
    for seed in range(50):
        candidate = get_space("mlp").sample(constrain(make_trial(seed), overrides), TABULAR)
        arch = candidate.arch
        assert 1e-3 <= candidate.hparams["lr"] <= 1e-2
        assert 0.0 <= arch["dropout"] <= 0.2 and round(arch["dropout"] / 0.05, 6).is_integer()
        for name in seen:
            seen[name].add(arch[name])
    assert seen == {"depth": {2, 3}, "activation": {"relu", "gelu"}, "width_0": {32, 256}}


def test_integer_range_can_be_narrowed_to_choices(make_trial):
    values = {
        get_space("mlp")
        .sample(constrain(make_trial(s), {"depth": {"choices": [1, 4]}}), TABULAR)
        .arch["depth"]
        for s in range(20)
    }
    assert values == {1, 4}


def test_overrides_work_across_a_real_optuna_study():
    overrides = {"stem_width": 8, "edge_1_0": {"choices": ["none", "nor_conv_1x1"]}, "lr": {"high": 0.01}}
    space = get_space("cells")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    study.optimize(lambda t: space.sample(constrain(t, overrides), IMAGES).hparams["lr"], n_trials=8)
    assert {t.params["stem_width"] for t in study.trials} == {8}
    assert {t.params["edge_1_0"] for t in study.trials} <= {"none", "nor_conv_1x1"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"stem_width": 12},
            "the fixed value 12 is not among the space's choices; "
            "the space samples 'stem_width' as one of [8, 16, 24]",
        ),
        (
            {"depth": {"low": 0, "high": 9}},
            "the range [0, 9] is not inside the space's range; "
            "the space samples 'depth' as integers in [1, 4]",
        ),
        ({"depth": 2.5}, "the fixed value 2.5 must be an integer"),
        ({"activation": {"low": 1}}, "a range cannot narrow a categorical parameter"),
        (
            {"activation": {"choices": ["relu", "swish"]}},
            "choices ['swish'] are not among the space's choices",
        ),
        ({"dropout": 0.12}, "is not on the space's grid of step 0.05"),
        (
            {"lr": 1.0},
            "is outside the space's range; the space samples 'lr' as floats in [0.0001, 0.3] on a log scale",
        ),
        ({"residual": 1}, "the fixed value 1 is not among the space's choices"),
    ],
)
def test_overrides_that_do_not_fit_the_space_are_rejected(overrides, message, make_trial):
    with pytest.raises(ValueError) as info:
        get_space("mlp" if "stem_width" not in overrides else "cells").sample(
            constrain(make_trial(0), overrides), IMAGES if "stem_width" in overrides else TABULAR
        )
    assert message in str(info.value)


def test_discovered_names_include_conditional_parameters():
    names = discover_param_names(get_space("mlp"), TABULAR)
    assert {"depth", "width_0", "width_3", "momentum", "lr"} <= names
    assert "width_4" not in names


def test_unknown_override_name_gets_a_did_you_mean():
    with pytest.raises(ValueError) as info:
        check_override_names(get_space("cells"), IMAGES, {"stem_widht": 16, "lr": 0.01})
    text = str(info.value)
    assert "'stem_widht' is not a parameter of space 'cells'" in text and "Did you mean 'stem_width'?" in text
    assert "Its parameters are ['batch_size', 'cells_per_stage', 'edge_1_0'," in text


def test_check_reports_names_and_values_together():
    with pytest.raises(ValueError) as info:
        check_override_names(
            get_space("mlp"), TABULAR, {"dept": 2, "activation": "swish", "lr": {"high": 0.1}}
        )
    text = str(info.value)
    assert text.startswith("2 problem(s) with the overrides of space 'mlp'")
    assert "Did you mean 'depth'?" in text and "'swish' is not among the space's choices" in text


def test_valid_overrides_pass_the_check():
    check_override_names(get_space("mlp"), TABULAR, {"depth": 2, "width_3": 64, "momentum": {"low": 0.9}})
