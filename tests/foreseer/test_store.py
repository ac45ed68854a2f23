"""The job store: schema by Alembic only, beside MLflow's and Optuna's tables, older upgraded,
newer refused."""

import shutil
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from foreseer import events as ev
from foreseer.cli import main
from foreseer.store import JobStore, StoreError
from foreseer.store.journal import JobJournal
from foreseer.store.models import JobRow, TrialRow


def test_a_new_database_gets_the_newest_schema(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path}/s.db")
    assert store.revision() == store.head() == "0004"
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "foreseer_jobs",
        "foreseer_trials",
        "foreseer_epochs",
        "foreseer_schedules",
        "foreseer_firings",
        "foreseer_alembic_version",
    } <= tables
    assert "alembic_version" not in tables


def test_it_shares_a_database_with_mlflow_and_optuna_without_collision(tmp_path):
    from foreseer.tracking import Tracker

    url = f"sqlite:///{tmp_path}/shared.db"
    Tracker(url, "exp")  # MLflow's schema, with its alembic_version
    optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db")
    optuna_store = JobStore(f"sqlite:///{tmp_path}/optuna.db")
    store = JobStore(url)
    for s in (store, optuna_store):
        tables = set(inspect(s.engine).get_table_names())
        assert {"alembic_version", "foreseer_alembic_version", "foreseer_jobs"} <= tables
        assert s.revision() == s.head()
    with store.engine.connect() as connection:
        mlflow_revision = connection.execute(text("select version_num from alembic_version")).scalar()
    assert mlflow_revision != store.head(), "MLflow's history is untouched"


def test_an_older_store_is_refused_until_upgraded_and_keeps_its_rows(tmp_path):
    # store-0001.db was written at schema revision 0001, with one job and one trial in it
    shutil.copyfile(Path(__file__).with_name("data") / "store-0001.db", tmp_path / "old.db")
    url = f"sqlite:///{tmp_path}/old.db"
    with pytest.raises(StoreError, match="older than this Foreseer's '0004'.*foreseer db upgrade"):
        JobStore(url)
    result = CliRunner().invoke(main, ["db", "upgrade", "--store", url])
    assert result.exit_code == 0 and "revision 0004" in result.output, result.output
    upgraded = JobStore(url)
    with upgraded.session() as session:
        assert session.get(JobRow, "j1").name == "old"
        assert TrialRow.of_job(session, "j1")[0].retry_errors is None
        assert session.get(JobRow, "j1").cluster is None
    kinds = [e.kind for e in JobJournal(upgraded, "j1").events()]
    assert kinds[:2] == ["proposed", "started"], "the old job's trials became events, so it can be resumed"


def test_a_store_from_a_newer_foreseer_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/new.db"
    store = JobStore(url)
    with store.engine.begin() as connection:
        connection.execute(text("update foreseer_alembic_version set version_num = '0042'"))
    with pytest.raises(StoreError, match="newer Foreseer"):
        JobStore(url)


def test_the_journal_appends_typed_events_and_keeps_the_trial_rows_in_step(tmp_path):
    journal = JobJournal(JobStore(f"sqlite:///{tmp_path}/j.db"), "job1")
    journal.create_job("name", {"trials": 1})
    events = [
        ev.Proposed(
            0,
            candidate={"space": "mlp", "arch": {}, "hparams": {}},
            sampled={"params": {}, "distributions": {}},
        ),
        ev.Started(0, run_id="r0"),
        ev.Epoch(0, epoch=1, metrics={"val_accuracy": 0.5}, checkpoint="/c/epoch-0001"),
        ev.Paused(0, epoch=1, reason="waits", checkpoint="/c/epoch-0001"),
        ev.Resumed(0, epoch=1, reason="thawed"),
        ev.Retried(0, error="boom", from_epoch=1),
        ev.Epoch(0, epoch=2, metrics={"val_accuracy": 0.7}),
        ev.Stopped(0, by="asha", reason="below the cutoff"),
    ]
    for event in events:
        journal.observe(event)
    assert journal.events() == events, "resume reads back exactly what was appended"
    assert journal.epochs() == {0: [{"val_accuracy": 0.5}, {"val_accuracy": 0.7}]}
    (row,) = journal.trials()
    assert (row.state, row.stopped_by, row.reason, row.run_id) == (
        "stopped",
        "asha",
        "below the cutoff",
        "r0",
    )
    assert (row.attempts, row.retry_errors, row.resumed_from_epoch) == (2, ["boom"], 1)
    assert (row.checkpoint, row.checkpoint_epoch) == ("/c/epoch-0001", 1)
    again = JobJournal(JobStore(f"sqlite:///{tmp_path}/j.db"), "job1")
    again.observe(ev.Completed(0, reason="late"))
    assert again.events()[-1] == ev.Completed(0, reason="late"), "a new journal continues the sequence"


def test_a_store_write_to_an_unknown_column_is_an_error(tmp_path):
    journal = JobJournal(JobStore(f"sqlite:///{tmp_path}/j.db"), "job1")
    journal.create_job("name", {"trials": 1})
    with pytest.raises(KeyError, match="JobRow has no column stauts"):
        journal.update_job(stauts="running")


def test_an_unreachable_store_says_so(tmp_path):
    with pytest.raises(StoreError, match="cannot open the job store"):
        JobStore("postgresql+psycopg://nobody:secret@127.0.0.1:9/none")
