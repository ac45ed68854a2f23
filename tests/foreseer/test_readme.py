"""The README's generated tables are what ``scripts/readme_tables.py`` makes from their data."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_tables_are_up_to_date_with_their_data():
    script = ROOT / "scripts" / "readme_tables.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, (
        f"a README is out of date with its data; run `{sys.executable} scripts/readme_tables.py`\n"
        f"{result.stdout}{result.stderr}"
    )
