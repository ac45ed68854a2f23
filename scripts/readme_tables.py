"""Write the READMEs' generated blocks from the data they come from, so each figure or list lives in
one place.

A block lies between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in ``README.md`` or
``benchmarks/README.md``. ``NAME`` is ``bad-inputs``, the bad inputs the suite tries
(``tests/foreseer/data/bad_inputs.yaml``) as tables, or the path of a file a benchmark wrote under
``benchmarks/results/``, copied in as it is. ``tests/foreseer/test_readme.py`` fails when a README
differs from what this script writes.

Run: ``.venv/bin/python scripts/readme_tables.py`` (``--check`` only compares).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
READMES = (ROOT / "README.md", ROOT / "benchmarks" / "README.md")
BAD_INPUTS = ROOT / "tests" / "foreseer" / "data" / "bad_inputs.yaml"
RESULTS = "benchmarks/results/"
BLOCK = re.compile(r"<!-- (?P<name>[\w./-]+):start -->\n.*?<!-- (?P=name):end -->", re.DOTALL)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def bad_inputs_table(data: dict) -> str:
    lines = [
        "| Bad job file (`foreseer run` and `validate`: exit 2, nothing written) | The message says |",
        "|---|---|",
        *(f"| {_cell(c['case'])} | {_cell(c['says'])} |" for c in data["job_files"]),
        "",
        "| Bad command line (exit 2, nothing written) | Command | The message says |",
        "|---|---|---|",
        *(
            f"| {_cell(c['case'])} | `foreseer {' '.join(c['args'])}` | {_cell(c['says'])} |"
            for c in data["command_lines"]
        ),
    ]
    return "\n".join(lines)


def block(name: str) -> str:
    """What the block ``name`` holds."""
    if name == "bad-inputs":
        return bad_inputs_table(yaml.safe_load(BAD_INPUTS.read_text()))
    path = ROOT / name
    if not name.startswith(RESULTS) or ".." in name or not path.is_file():
        raise SystemExit(f"no generated block {name!r}: give 'bad-inputs' or a file under {RESULTS}")
    return path.read_text().strip()


def render(text: str) -> str:
    """``text`` with every generated block replaced by a fresh rendering."""

    def fresh(match: re.Match[str]) -> str:
        name = match["name"]
        return f"<!-- {name}:start -->\n{block(name)}\n<!-- {name}:end -->"

    return BLOCK.sub(fresh, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a README is out of date")
    args = parser.parse_args()
    stale = []
    for readme in READMES:
        current = readme.read_text()
        if (fresh := render(current)) != current:
            stale.append(readme.relative_to(ROOT))
            if not args.check:
                readme.write_text(fresh)
    if args.check and stale:
        print("out of date: " + ", ".join(map(str, stale)))
        sys.exit(1)


if __name__ == "__main__":
    main()
