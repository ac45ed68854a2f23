"""The examples in the package's docstrings run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = [
    "foreseer_spaces",
    "foreseer_spaces._base",
    "foreseer_spaces._candidate",
    "foreseer_spaces._declarative",
    "foreseer_spaces._discovery",
    "foreseer_spaces._function_space",
    "foreseer_spaces._graph",
    "foreseer_spaces._hparams",
    "foreseer_spaces._registry",
    "foreseer_spaces.cells",
    "foreseer_spaces.mlp",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0
