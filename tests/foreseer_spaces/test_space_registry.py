"""The registry: built-ins, the foreseer.spaces entry points, registration and lookup errors."""

import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points

import pytest

from foreseer_spaces import (
    ENTRY_POINT_GROUP,
    SearchSpace,
    _registry,
    available_spaces,
    get_space,
    register_space,
)
from foreseer_spaces.cells import CellSpace
from foreseer_spaces.mlp import MLPSpace


class ToySpace(SearchSpace):
    name = "toy"

    def sample_arch(self, trial, task):
        return {"n": trial.suggest_int("n", 1, 2)}

    def build(self, candidate, task):
        from torch import nn

        return nn.Linear(task.num_features, task.num_classes)


def test_entry_point_group_exposes_the_builtin_spaces():
    points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert ENTRY_POINT_GROUP == "foreseer.spaces"
    assert points["cells"].load() is CellSpace and points["mlp"].load() is MLPSpace


def test_builtins_are_available():
    assert {"cells", "mlp"} <= set(available_spaces()) and available_spaces() == sorted(available_spaces())
    assert isinstance(get_space("cells"), CellSpace) and isinstance(get_space("mlp"), MLPSpace)


def test_unknown_name_lists_the_available_spaces_with_a_did_you_mean():
    with pytest.raises(ValueError) as info:
        get_space("cell")
    assert str(info.value).startswith(
        f"unknown search space 'cell'; available spaces are {available_spaces()}."
    )
    assert "Did you mean 'cells'?" in str(info.value)


def test_register_and_reject_duplicates():
    space = register_space(ToySpace())
    assert get_space("toy") is space
    with pytest.raises(ValueError, match=r"'toy' is registered already .*pass replace=True"):
        register_space(ToySpace())
    replacement = register_space(ToySpace(), replace=True)
    assert get_space("toy") is replacement


def test_builtin_names_are_protected_too():
    with pytest.raises(ValueError, match="'mlp' is registered already"):
        register_space(MLPSpace())


def test_only_search_spaces_register():
    with pytest.raises(TypeError, match="must name a SearchSpace subclass or instance"):
        register_space(object())


def test_entry_point_may_name_an_instance(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin.py").write_text(
        "from foreseer_spaces.mlp import MLPSpace\n"
        "class Other(MLPSpace):\n"
        "    name = 'other_toy'\n"
        "SPACE = Other()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    _registry._load_entry_point(EntryPoint("other_toy", "toy_plugin:SPACE", ENTRY_POINT_GROUP))
    assert get_space("other_toy").name == "other_toy"


def test_a_broken_plugin_is_reported_not_fatal(caplog):
    _registry._load_entry_point(EntryPoint("broken", "no_such_module_xyz:Space", ENTRY_POINT_GROUP))
    assert "could not be loaded" in caplog.text
    with pytest.raises(
        ValueError, match="The entry point 'broken' exists but could not be loaded: ModuleNotFoundError"
    ):
        get_space("broken")
    assert "mlp" in available_spaces()


def test_importing_the_package_imports_neither_torch_nor_optuna():
    code = "import sys, foreseer_spaces; print(sorted({'torch', 'optuna'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
