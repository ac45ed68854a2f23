"""The package surface: cheap to import, everything in __all__ resolves."""

from __future__ import annotations

import subprocess
import sys

import foreseer_workers


def test_import_does_not_pull_in_torch_or_sklearn():
    code = (
        "import sys, foreseer_workers; "
        "heavy = [m for m in ('torch', 'sklearn', 'ray', 'foreseer') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_name_resolves():
    assert sorted(foreseer_workers.__all__) == foreseer_workers.__all__
    for name in foreseer_workers.__all__:
        assert getattr(foreseer_workers, name) is not None
    assert set(foreseer_workers.__all__) <= set(dir(foreseer_workers))
