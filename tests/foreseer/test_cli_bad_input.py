"""Every way a user can mistype a job: one readable message, exit code 2, and nothing written,
from ``foreseer run`` and from ``foreseer validate`` alike."""

import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from foreseer.cli import main

pytestmark = pytest.mark.ray  # `run` checks resources against the (real, local) Ray cluster

GOOD = {"name": "bad-input", "space": "mlp", "dataset": "wine", "trials": 2, "max_epochs": 1}


def with_(**fields):
    return yaml.safe_dump({**GOOD, **fields})


def newer_store(folder):
    from foreseer.store import JobStore

    store = JobStore(f"sqlite:///{folder}/newer.db")
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE foreseer_alembic_version SET version_num = '9999'")
    store.dispose()
    return f"sqlite:///{folder}/newer.db"


BAD_INPUTS = yaml.safe_load((Path(__file__).parent / "data" / "bad_inputs.yaml").read_text())


def image_folder(kind, root):
    """An image folder of a kind ``bad_inputs.yaml`` names (``images:``), made under ``root``."""
    from PIL import Image

    from foreseer.testing.images import write_image_folder

    folder = root / kind
    if kind == "missing":
        return folder
    folder.mkdir()
    if kind == "good":
        write_image_folder(folder, 3, classes=2, size=8)
    elif kind == "unreadable":
        write_image_folder(folder, 3, classes=2, size=8)
        for path in (folder / "class_1").iterdir():
            path.write_bytes(b"not a png")
    elif kind == "mixed-sizes":
        write_image_folder(folder, 3, classes=2, size=8)
        Image.new("RGB", (12, 10)).save(folder / "class_0" / "wide.png")
    return folder


def job_file_text(case, images_root=None):
    """The job file of one case of ``bad_inputs.yaml``."""
    if "images" in case:
        dataset = {"images": str(image_folder(case["images"], images_root))}
        return with_(**case.get("job", {}), dataset=dataset)
    if "text" in case:
        return case["text"]
    if case.get("make") == "deep":
        return "name: deep\nspace: " + "[" * 5000 + "]" * 5000 + "\n"
    if case.get("make") == "oversized":
        return with_() + "# " + "x" * (1 << 20) + "\n"
    return with_(**case["job"])


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("case", BAD_INPUTS["job_files"], ids=[c["case"] for c in BAD_INPUTS["job_files"]])
def test_bad_job_file_exits_2_with_a_clear_message_and_writes_nothing(
    ray_runtime, tmp_path, tmp_path_factory, monkeypatch, case, command
):
    """``validate`` makes every check ``run`` makes: both refuse each case, with the same words,
    in a message of a few short lines whatever the input's size."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.yaml").write_text(job_file_text(case, tmp_path_factory.mktemp("images")))
    result = CliRunner().invoke(main, [command, "job.yaml"])
    assert result.exit_code == 2, result.output
    assert case["says"].lower() in result.output.lower(), result.output
    assert "Traceback" not in result.output
    assert len(result.output) < 1000, f"{len(result.output)} characters: {result.output[:300]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml"], "nothing written"


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_store_written_by_a_newer_foreseer_is_refused(ray_runtime, tmp_path, monkeypatch, command):
    url = newer_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.yaml").write_text(with_(store_uri=url, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"))
    result = CliRunner().invoke(main, [command, "job.yaml"])
    assert result.exit_code == 2 and "newer Foreseer" in result.output, result.output
    with sqlite3.connect(tmp_path / "newer.db") as connection:
        assert connection.execute("select count(*) from foreseer_jobs").fetchone() == (0,)
    assert not (tmp_path / "mlflow.db").exists()


def two_jobs(folder):
    """A store holding two jobs whose ids share the prefix ``62``."""
    from foreseer.store import JobStore
    from foreseer.store.models import JobRow

    store = JobStore(f"sqlite:///{folder}/foreseer.db")
    with store.session() as session, session.begin():
        for suffix in ("a", "b"):
            session.add(JobRow(id="62" + suffix * 10, name=f"job-{suffix}", spec={}, status="failed"))
    store.dispose()


@pytest.mark.parametrize(
    "case", BAD_INPUTS["command_lines"], ids=[c["case"] for c in BAD_INPUTS["command_lines"]]
)
def test_bad_command_lines_exit_2_and_read_only_commands_create_no_store(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    if case["in"] == "two-jobs":
        two_jobs(tmp_path)
    elif case["in"] == "job-file":
        (tmp_path / "job.yaml").write_text(with_())

    def files():
        return sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm")))

    before = files()
    result = CliRunner().invoke(main, case["args"])
    assert result.exit_code == 2, result.output
    assert case["says"] in result.output, result.output
    assert "Traceback" not in result.output
    assert files() == before, "nothing written (an existing store's SQLite side files aside)"


def test_a_unicode_job_name_is_accepted(ray_runtime, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.yaml").write_text(with_(name="análisis-日本"))
    result = CliRunner().invoke(main, ["validate", "job.yaml"])
    assert result.exit_code == 0, result.output


def test_naming_another_stopping_strategy_drops_the_old_ones_settings(ray_runtime, tmp_path, monkeypatch):
    """The README's own example: a median job switched to ASHA from the command line."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.yaml").write_text(with_(stopping={"name": "median", "min_samples": 4}))
    result = CliRunner().invoke(
        main, ["validate", "job.yaml", "--set", "trials=8", "--set", "stopping.name=asha"]
    )
    assert result.exit_code == 0, result.output
    kept = CliRunner().invoke(main, ["validate", "job.yaml", "--set", "stopping.min_samples=5"])
    assert kept.exit_code == 0, "setting a field of the same strategy keeps the others"


@pytest.mark.parametrize("command", ["run", "validate"])
def test_each_problem_of_a_job_file_is_one_line_without_the_whole_job_echoed(
    ray_runtime, tmp_path, monkeypatch, command
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.yaml").write_text(with_(trials=0, stopping={"name": "asha", "reduction_factor": 1}))
    result = CliRunner().invoke(main, [command, "job.yaml"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [
        "job file 'job.yaml' is invalid (2 problems):",
        "  - trials: Input should be greater than or equal to 1 (got 0)",
        "  - stopping.reduction_factor: Input should be greater than 1 (got 1)",
    ], result.output
