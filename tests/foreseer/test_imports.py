"""The import rules of the platform, read from the source: Ray only under ``foreseer.backends``,
MLflow only in ``foreseer.tracking``, no import cycle between modules, nothing that reads files
through the checkout's layout or a patched ``sys.path``, and a cheap ``import foreseer``."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "platform"


def modules():
    """{dotted module name: path} of every module of the platform."""
    out = {}
    for path in sorted(PLATFORM.rglob("*.py")):
        parts = list(path.relative_to(PLATFORM).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def runtime_imports(path):
    """Every module name ``path`` imports when it runs (at the top or inside a function), with the
    line; imports only for type checkers (``if TYPE_CHECKING:``) do not count."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


MODULES = modules()


@pytest.mark.parametrize(
    "library, allowed",
    [("ray", ("foreseer.backends",)), ("mlflow", ("foreseer.tracking",))],
)
def test_a_library_is_imported_only_where_its_role_lives(library, allowed):
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, path in MODULES.items()
        if not module.startswith(allowed)
        for name, line in runtime_imports(path)
        if name == library or name.startswith(library + ".")
    ]
    assert not found, "\n".join(found)


def test_no_module_of_the_platform_imports_another_that_imports_it_back():
    graph = {}
    for module, path in MODULES.items():
        deps = set()
        for name, _ in runtime_imports(path):
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                deps.add(name)
        graph[module] = deps

    cycles, done = [], set()

    def visit(module, trail):
        if module in trail:
            cycles.append(" -> ".join([*trail[trail.index(module) :], module]))
            return
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, "\n".join(cycles)


def test_no_library_code_finds_files_through_the_checkout():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in MODULES.values()
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if ".parents[" in line or "shared/data" in line or '"shared"' in line
    ]
    assert not found, "\n".join(found)


def test_no_script_or_test_imports_through_a_patched_sys_path():
    """Benchmarks, scripts and tests import helpers as packages (``foreseer.testing``), never by
    putting a folder of the checkout on ``sys.path``."""
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for folder in ("benchmarks", "scripts", "tests", "examples")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != Path(__file__)
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if "sys.path.insert" in line or "sys.path.append" in line or "spec_from_file_location" in line
    ]
    assert not found, "\n".join(found)


def test_import_foreseer_is_cheap():
    code = "import sys, foreseer; print(sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
