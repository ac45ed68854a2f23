"""Every way a user can mistype a job: one readable message, exit code 2, and nothing written,
from ``foreseer run`` and from ``foreseer validate`` alike."""

import sqlite3

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


CASES = [
    ("malformed-yaml", "name: [unclosed\n", "not valid YAML"),
    ("not-a-mapping", "- a\n- list\n", "must hold a mapping"),
    ("unknown-key", with_(trails=3), "did you mean 'trials'"),
    ("wrong-type", with_(trials="many"), "trials"),
    ("zero-trials", with_(trials=0), "greater than or equal to 1"),
    ("negative-trials", with_(trials=-3), "greater than or equal to 1"),
    ("zero-epochs", with_(max_epochs=0), "max_epochs"),
    ("zero-concurrency", with_(max_concurrent=0), "max_concurrent"),
    ("unknown-space", with_(space="celss"), "did you mean 'cells'"),
    ("unknown-dataset", with_(dataset="digitz"), "did you mean 'digits'"),
    ("unknown-sampler", with_(sampler="tpee"), "did you mean 'tpe'"),
    ("unknown-stopping", with_(stopping="ashaa"), "did you mean 'asha'"),
    ("bad-reduction-factor", with_(stopping={"name": "asha", "reduction_factor": 1}), "greater than 1"),
    ("unknown-metric", with_(objective={"metric": "val_acc", "mode": "max"}), "did you mean 'val_accuracy'"),
    ("unknown-mode", with_(objective={"metric": "val_loss", "mode": "up"}), "'max' or 'min'"),
    ("empty-choices", with_(space={"name": "mlp", "params": {"activation": {"choices": []}}}), "activation"),
    ("low-above-high", with_(space={"name": "mlp", "params": {"lr": {"low": 0.1, "high": 0.001}}}), "lr"),
    (
        "log-low-not-positive",
        with_(space={"name": "mlp", "params": {"lr": {"low": 0, "high": 0.1, "log": True}}}),
        "lr",
    ),
    ("unknown-parameter", with_(space={"name": "mlp", "params": {"dpeth": 2}}), "depth"),
    ("outside-the-space", with_(space={"name": "mlp", "params": {"depth": 9}}), "depth"),
    ("zero-cpus", with_(resources={"cpus": 0}), "cpus"),
    ("fractional-gpus-above-one", with_(resources={"gpus": 1.5}), "fraction of one GPU"),
    ("no-node-fits", with_(resources={"cpus": 64}), "no node of the Ray cluster"),
    ("missing-data-file", with_(dataset="nope.csv"), "nope.csv"),
    ("bad-split", with_(dataset={"name": "wine", "val_fraction": 1.5}), "val_fraction"),
    ("space-does-not-fit-data", with_(space="cells"), "image"),
    ("tracking-not-a-url", with_(tracking_uri="not a url"), "SQLAlchemy URL"),
    (
        "unreachable-tracking",
        with_(tracking_uri="postgresql+psycopg://nobody@127.0.0.1:9/none"),
        "cannot connect",
    ),
    ("unreachable-store", with_(store_uri="postgresql+psycopg://nobody@127.0.0.1:9/none"), "cannot connect"),
    ("bad-name", with_(name="has spaces"), "name"),
    (
        "stopping-with-two-objectives",
        with_(
            objective=[{"metric": "val_accuracy", "mode": "max"}, {"metric": "num_params", "mode": "min"}],
            stopping="asha",
        ),
        "single objective",
    ),
]


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("text, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_job_file_exits_2_with_a_clear_message_and_writes_nothing(
    ray_runtime, tmp_path, monkeypatch, text, words, command
):
    """``validate`` makes every check ``run`` makes: both refuse each case, with the same words."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.yaml").write_text(text)
    result = CliRunner().invoke(main, [command, "job.yaml"])
    assert result.exit_code == 2, result.output
    assert words.lower() in result.output.lower(), result.output
    assert "Traceback" not in result.output
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


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "absent.yaml"], "no such file"),
        (["run", "job.yaml", "--set", "trials"], "expected key=value"),
        (["validate", "job.yaml", "--set", "trials=0"], "trials"),
        (["show", "nope"], "no job 'nope'"),
        (["resume", "nope"], "no job 'nope'"),
    ],
)
def test_bad_command_lines_exit_2(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.yaml").write_text(with_())
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert words in result.output, result.output


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
