"""User-defined spaces: a define-by-run function registered with @search_space."""

import subprocess
import sys

import cloudpickle
import pytest
import torch
from torch import nn

from foreseer_spaces import Candidate, FunctionSpace, SearchSpace, Task, constrain, get_space, search_space

TASK = Task((6,), 4)


def make_space(name: str = "user_mlp") -> FunctionSpace:
    # Defined inside a function, so cloudpickle ships it by value, as it would from a notebook.
    @search_space(name)
    def user_mlp(trial, task):
        layers, width = [nn.Flatten()], task.num_features
        for i in range(trial.suggest_int("layers", 1, 3)):
            out = trial.suggest_categorical(f"width_{i}", [8, 16])
            layers += [nn.Linear(width, out), nn.ReLU()]
            width = out
        if trial.suggest_categorical("norm", [False, True]):
            layers.append(nn.LayerNorm(width))
        layers.append(nn.Dropout(trial.suggest_float("dropout", 0.0, 0.3)))
        return nn.Sequential(*layers, nn.Linear(width, task.num_classes))

    return user_mlp


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_decorator_registers_a_search_space():
    space = make_space()
    assert isinstance(space, SearchSpace) and space.name == "user_mlp"
    assert get_space("user_mlp") is space


def test_sampling_records_every_suggestion_and_building_replays_it(make_trial):
    space = make_space()
    for seed in range(6):
        candidate = space.sample(make_trial(seed), TASK)
        layers = candidate.arch["layers"]
        assert set(candidate.arch) == {"layers", "norm", "dropout"} | {f"width_{i}" for i in range(layers)}
        model = space.build(Candidate.from_json(candidate.to_json()), TASK)
        assert sum(isinstance(m, nn.Linear) for m in model.modules()) == layers + 1
        assert shapes(model) == shapes(space.build(candidate, TASK))
        assert model(torch.randn(3, 6)).shape == (3, 4)


def test_graph_of_a_user_space(make_trial):
    space = make_space()
    candidate = space.sample(make_trial(1), TASK)
    graph = space.graph(candidate, TASK)
    assert graph.unsupported == () and graph.num_params == sum(
        p.numel() for p in space.build(candidate, TASK).parameters()
    )


def test_overrides_apply_to_user_parameters(make_trial):
    space = make_space()
    candidate = space.sample(constrain(make_trial(0), {"layers": 3, "width_2": 16}), TASK)
    assert candidate.arch["layers"] == 3 and candidate.arch["width_2"] == 16


def test_cloudpickle_round_trip_in_process(make_trial):
    space = make_space()
    candidate = space.sample(make_trial(2), TASK)
    restored = cloudpickle.loads(cloudpickle.dumps(space))
    assert restored.name == space.name
    assert shapes(restored.build(candidate, TASK)) == shapes(space.build(candidate, TASK))


def test_cloudpickle_round_trip_in_a_fresh_interpreter(make_trial, tmp_path):
    # What a Ray worker does: unpickle without this test module, then build.
    space = make_space()
    candidate = space.sample(make_trial(3), TASK)
    (tmp_path / "space.pkl").write_bytes(cloudpickle.dumps(space))
    code = (
        "import cloudpickle, sys\n"
        "from foreseer_spaces import Candidate, Task\n"
        f"space = cloudpickle.loads(open({str(tmp_path / 'space.pkl')!r}, 'rb').read())\n"
        f"model = space.build(Candidate.from_json({candidate.to_json()!r}), Task((6,), 4))\n"
        "print(sum(p.numel() for p in model.parameters()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == sum(p.numel() for p in space.build(candidate, TASK).parameters())


def test_duplicate_name_is_rejected_unless_replaced():
    make_space("twice")
    with pytest.raises(ValueError, match="'twice' is registered already"):
        make_space("twice")
    replacement = search_space("twice", replace=True)(lambda trial, task: nn.Linear(1, 2))
    assert get_space("twice") is replacement


def test_decorator_needs_a_name():
    with pytest.raises(TypeError, match=r"@search_space\('my_space'\)"):
        search_space(lambda trial, task: nn.Linear(1, 2))


def test_function_must_return_a_module(make_trial):
    space = FunctionSpace("not_a_module", lambda trial, task: trial.suggest_int("n", 1, 2))
    with pytest.raises(TypeError, match=r"must return a torch\.nn\.Module, but returned int"):
        space.sample(make_trial(), TASK)


def test_reserved_hyperparameter_names_are_rejected(make_trial):
    space = FunctionSpace("uses_lr", lambda trial, task: nn.Linear(1, int(trial.suggest_float("lr", 1, 2))))
    with pytest.raises(ValueError, match=r"\['lr'\] whose names are reserved for training hyperparameters"):
        space.sample(make_trial(), TASK)


def test_building_a_candidate_the_function_no_longer_matches():
    space = make_space()
    with pytest.raises(ValueError, match="suggests 'layers', which the candidate does not have"):
        space.build(Candidate("user_mlp", {"depth": 2}), TASK)


def test_deprecated_suggest_methods_are_refused(make_trial):
    space = FunctionSpace("old_api", lambda trial, task: nn.Linear(1, int(trial.suggest_uniform("w", 1, 2))))
    with pytest.raises(AttributeError, match="called suggest_uniform"):
        space.sample(make_trial(), TASK)
