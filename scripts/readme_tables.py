"""Write the README's generated tables from the data they come from, so each list lives in one place.

Today one pair: the bad inputs the suite tries (``tests/foreseer/data/bad_inputs.yaml``), rendered
between ``<!-- bad-inputs:start -->`` and ``<!-- bad-inputs:end -->``. ``tests/foreseer/test_readme.py``
fails when the README differs from what this script writes.

Run: ``.venv/bin/python scripts/readme_tables.py`` (``--check`` only compares).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BAD_INPUTS = ROOT / "tests" / "foreseer" / "data" / "bad_inputs.yaml"
START, END = "<!-- bad-inputs:start -->", "<!-- bad-inputs:end -->"


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


def render(readme: str) -> str:
    """``readme`` with the generated block replaced by a fresh rendering."""
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md has no {START} ... {END} block")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    table = bad_inputs_table(yaml.safe_load(BAD_INPUTS.read_text()))
    return f"{head}{START}\n{table}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is out of date")
    args = parser.parse_args()
    current = README.read_text()
    fresh = render(current)
    if args.check:
        sys.exit(0 if fresh == current else 1)
    README.write_text(fresh)


if __name__ == "__main__":
    main()
