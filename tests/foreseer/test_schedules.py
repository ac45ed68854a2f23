"""Schedules as a user runs them: the schedule commands and their bad input, the scheduler daemon
firing a real job, the missed-run and overlap policies, daemons killed between claiming and
launching, and two daemons racing on one PostgreSQL."""

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import psutil
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from foreseer.cli import main
from foreseer.scheduling.daemon import Scheduler
from foreseer.scheduling.recovery import work_process
from foreseer.scheduling.schedules import add_schedule, as_utc, set_paused
from foreseer.spec import SearchJob
from foreseer.store import JobStore
from foreseer.store.models import FiringRow, JobRow, ScheduleRow

UTC = timezone.utc
T0 = datetime(2030, 1, 1, tzinfo=UTC)  # a synthetic clock for the in-process daemon tests
JOB = {
    "name": "wine-sched",
    "space": {"name": "mlp", "params": {"depth": 1}},
    "dataset": "wine",
    "trials": 2,
    "max_epochs": 1,
    "max_concurrent": 1,
    "sampler": "random",
    "resources": {"cpus": 1},
}


def seconds(n):
    return timedelta(seconds=n)


def write_job(folder, **fields):
    spec = {
        **JOB,
        "tracking_uri": f"sqlite:///{folder}/foreseer.db",
        "workdir": str(folder / "runs"),
        **fields,
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec))
    return folder / "job.yaml"


def rows_of(url, query):
    store = JobStore(url)
    with store.session() as session:
        rows = list(session.scalars(query))
    store.dispose()
    return rows


def firings(url, name=None):
    query = select(FiringRow).order_by(FiringRow.occurrence)
    if name is not None:
        query = query.join(ScheduleRow, ScheduleRow.id == FiringRow.schedule_id).where(
            ScheduleRow.name == name
        )
    return rows_of(url, query)


def jobs_of(url):
    return rows_of(url, select(JobRow).order_by(JobRow.created_at))


def schedules(url):
    return rows_of(url, select(ScheduleRow).order_by(ScheduleRow.name))


def wait_for(condition, timeout, step=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def kill_tree(process):
    try:
        victims = [process, *process.children(recursive=True)]
    except psutil.Error:
        return
    for victim in victims:
        try:
            victim.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(victims, timeout=10)


def stop_jobs(url):
    """Kill the background drivers of the jobs recorded in ``url`` (by job id, or by the store
    URL in their environment once the database is gone), with the Ray processes they started."""
    from foreseer._processes import kill_leftovers

    try:
        jobs = jobs_of(url)
    except Exception:  # noqa: BLE001  the test's database may be dropped already; its processes are not
        jobs = []
    ids = {job.id for job in jobs}
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline[-2:-1] == ["_work"]:
            try:
                mine = cmdline[-1] in ids or process.environ().get("FORESEER_STORE") == url
            except psutil.Error:
                continue
            if mine:
                kill_tree(process)
    for job in jobs:
        kill_leftovers(job.driver)


@pytest.fixture
def cleanup():
    """What a test started and must stop: daemons (``started``) and the jobs in ``stores``."""
    state = SimpleNamespace(started=[], stores=[])
    yield state
    for process in state.started:
        if process.poll() is None:
            kill_tree(psutil.Process(process.pid))
    for url in state.stores:
        stop_jobs(url)


def start_daemon(cleanup, folder, store_url, *args, failpoint=""):
    log_path = folder / f"daemon-{len(cleanup.started)}.log"
    with open(log_path, "w") as log:  # the daemon writes to its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "foreseer", "scheduler", "--store", store_url, *args],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FORESEER_FAILPOINT": failpoint},
        )
    process.log_path = log_path
    cleanup.started.append(process)
    return process


def stop_daemon(process, sig=signal.SIGTERM):
    process.send_signal(sig)
    code = process.wait(60)
    return code, process.log_path.read_text()


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


# ----------------------------------------------------------------------------- the commands


def test_add_list_pause_resume_remove(tmp_path):
    job = write_job(tmp_path, tracking_uri="postgresql+psycopg://me:s3cret@db.invalid/mlflow")
    store = f"sqlite:///{tmp_path}/schedules.db"
    added = cli(
        "schedule",
        "add",
        job,
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Europe/Paris",
        "--store",
        store,
        "--name",
        "nightly",
        "--missed",
        "run-once",
        "--set",
        "trials=3",
    )
    assert added.exit_code == 0, added.output
    lines = added.output.splitlines()
    assert "schedule 'nightly' (" in lines[0] and "missed: run-once, overlap: skip" in lines[0]
    runs = [line.strip() for line in lines[2:5]]
    assert len(runs) == 3 and all(r.endswith(("03:00:00 CET", "03:00:00 CEST")) for r in runs)

    [row] = schedules(store)
    assert row.spec["trials"] == 3 and row.next_run_at is not None
    assert (
        "s3cret" not in str(row.spec)
        and row.spec["tracking_uri"] == "postgresql+psycopg://me:***@db.invalid/mlflow"
    )
    assert row.spec["store_uri"] == store, "the fired jobs are recorded beside the schedule"

    listed = cli("schedule", "list", "--store", store)
    assert listed.exit_code == 0 and "nightly" in listed.output and "0 3 * * *" in listed.output
    assert "Europe/Paris" in listed.output and "run-once/skip" in listed.output
    assert cli("schedule", "pause", "nightly", "--store", store).output == "schedule 'nightly' paused\n"
    assert "yes" in cli("schedule", "list", "--store", store).output
    resumed = cli("schedule", "resume", "nightly", "--store", store)
    assert resumed.exit_code == 0 and "next run" in resumed.output
    assert cli("schedule", "show", "nightly", "--store", store).exit_code == 0
    assert cli("schedule", "remove", "nightly", "--store", store).exit_code == 0
    assert "nightly" not in cli("schedule", "list", "--store", store).output


BAD = [
    ("bad-cron", ["--cron", "0 3 * *"], "has 4 fields"),
    ("bad-cron-field", ["--cron", "0 25 * * *"], "hour field '25': 25 is out of range 0-23"),
    ("never", ["--cron", "0 0 31 2 *"], "never fires"),
    (
        "bad-timezone",
        ["--cron", "0 3 * * *", "--timezone", "Europe/Pariss"],
        "unknown time zone 'Europe/Pariss'",
    ),
    (
        "bad-missed",
        ["--cron", "0 3 * * *", "--missed", "catch-up"],
        "missed: unknown policy; accepted: skip, run-once",
    ),
    (
        "bad-overlap",
        ["--cron", "0 3 * * *", "--overlap", "queue"],
        "overlap: unknown policy; accepted: skip, allow",
    ),
    ("bad-name", ["--cron", "0 3 * * *", "--name", "has spaces"], "name: must be"),
    ("duplicate", ["--cron", "0 4 * * *", "--name", "taken"], "a schedule with this name exists"),
    ("bad-job", ["--cron", "0 3 * * *", "--set", "trials=0"], "trials"),
    (
        "other-store",
        ["--cron", "0 3 * * *", "--set", "store_uri=sqlite:///elsewhere.db"],
        "a scheduled job is recorded beside",
    ),
    ("relative-cluster", ["--cron", "0 3 * * *", "--cluster", "ftp://head"], "dashboard"),
]


@pytest.mark.parametrize(("case", "args", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, case, args, message):
    job = write_job(tmp_path)
    store = f"sqlite:///{tmp_path}/foreseer.db"
    assert (
        cli("schedule", "add", job, "--cron", "0 3 * * *", "--name", "taken", "--store", store).exit_code == 0
    )
    result = cli("schedule", "add", job, *args, "--store", store)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert [r.name for r in schedules(store)] == ["taken"]


@pytest.mark.parametrize("command", ["pause", "resume", "remove", "show"])
def test_unknown_schedule_exits_2(tmp_path, command):
    JobStore(f"sqlite:///{tmp_path}/foreseer.db").dispose()  # a store without schedules
    result = cli("schedule", command, "nope", "--store", f"sqlite:///{tmp_path}/foreseer.db")
    assert result.exit_code == 2
    assert (
        "no schedule with this name; there are no schedules here" in result.output
        and "'nope'" in result.output
    )


def test_missing_job_file_exits_2(tmp_path):
    result = cli(
        "schedule", "add", tmp_path / "nope.yaml", "--cron", "@daily", "--store", f"sqlite:///{tmp_path}/f.db"
    )
    assert result.exit_code == 2 and "no such file" in result.output


def test_the_daemon_puts_masked_passwords_back(tmp_path, monkeypatch):
    monkeypatch.setenv("FORESEER_STORE", "postgresql+psycopg://me:s3cret@db.example:5432/foreseer")
    daemon = Scheduler(JobStore(f"sqlite:///{tmp_path}/f.db"), identity="tests/1@0")
    spec = {
        "tracking_uri": "postgresql+psycopg://me:***@db.example:5432/mlflow",
        "store_uri": "postgresql+psycopg://me:***@db.example:5432/foreseer",
        "trials": 2,
    }
    restored = daemon._with_passwords(spec)
    assert restored["store_uri"] == "postgresql+psycopg://me:s3cret@db.example:5432/foreseer"
    assert restored["tracking_uri"] == "postgresql+psycopg://me:s3cret@db.example:5432/mlflow"
    assert spec["store_uri"].count("***") == 1, "the stored spec is left masked"


# ----------------------------------------------------------------------------- policies, in process


def scheduled(url, folder, *, cron="*/10 * * * * *", dataset="wine", **policies):
    store = JobStore(url)
    job = SearchJob.from_dict(
        {**JOB, "dataset": dataset, "tracking_uri": url, "workdir": str(folder / "runs")}
    )
    row = add_schedule(store, job, cron=cron, name="policy", now=T0, **policies)
    return store, row


def test_missed_runs_skip_or_run_once(tmp_path, database_url):
    """A daemon down from T0+10 s to T0+67 s: ``skip`` records nothing for what it missed,
    ``run-once`` fires once, for the latest missed occurrence. (The job's data file is gone, so
    each launch fails at once: the firing records why.)"""
    data = tmp_path / "data.npz"
    np.savez(data, X=np.random.default_rng(0).normal(size=(60, 4)), y=np.arange(60) % 3)
    outcomes = {}
    for policy in ("skip", "run-once"):
        store, row = scheduled(database_url, tmp_path, dataset=str(data), missed=policy)
        data.unlink(missing_ok=True)
        daemon = Scheduler(store, grace=1.0, identity="tests/1@0")
        on_time = daemon.tick(now=T0 + seconds(10.4))
        assert [c.occurrence for c in on_time] == [T0 + seconds(10)]
        assert on_time[0].outcome["status"] == "failed" and "data.npz" in on_time[0].outcome["detail"]
        late = daemon.tick(now=T0 + seconds(67))
        outcomes[policy] = [(c.occurrence, c.detail) for c in late]
        with store.session() as session:
            assert as_utc(session.get(ScheduleRow, row.id).next_run_at) == T0 + seconds(70), (
                "next: the first one to come"
            )
        assert [c.occurrence for c in daemon.tick(now=T0 + seconds(70.3))] == [T0 + seconds(70)]
        fired = [as_utc(f.occurrence) for f in firings(database_url) if f.schedule_id == row.id]
        expected = [10, 70] if policy == "skip" else [10, 60, 70]
        assert fired == [T0 + seconds(s) for s in expected]
        with store.session() as session:
            session.delete(session.get(ScheduleRow, row.id))
            for firing in session.scalars(select(FiringRow).where(FiringRow.schedule_id == row.id)):
                session.delete(firing)
        store.dispose()
    assert outcomes["skip"] == []
    assert outcomes["run-once"] == [
        (
            T0 + seconds(60),
            f"run once for the occurrences missed since {(T0 + seconds(20)).isoformat()} (missed: run-once)",
        )
    ]


def test_occurrences_within_grace_all_fire(tmp_path, database_url):
    store, _ = scheduled(database_url, tmp_path, dataset=str(tmp_path / "gone.npz"))
    daemon = Scheduler(store, grace=60.0, identity="tests/1@0")
    assert [c.occurrence for c in daemon.tick(now=T0 + seconds(45))] == [
        T0 + seconds(s) for s in (10, 20, 30, 40)
    ]
    assert daemon.tick(now=T0 + seconds(45)) == []
    paused = set_paused(store, "policy", True)
    assert paused.paused and daemon.tick(now=T0 + seconds(95)) == [], "a paused schedule fires nothing"
    store.dispose()


@pytest.mark.parametrize("overlap", ["skip", "allow"])
def test_overlap_policy(tmp_path, monkeypatch, tracking_uri, cleanup, overlap):
    """The first occurrence launches a real job, whose background driver the test stops before
    it starts, so the job stays queued; the next occurrence is skipped or launched anyway."""
    monkeypatch.chdir(tmp_path)
    cleanup.stores.append(tracking_uri)
    store, row = scheduled(tracking_uri, tmp_path, overlap=overlap)
    daemon = Scheduler(store, grace=60.0, lease=30.0, identity="tests/1@0")
    first = daemon.tick(now=T0 + seconds(10.1))
    assert first[0].outcome["status"] == "launched"
    job_a = first[0].outcome["job_id"]
    kill_tree(work_process(job_a))
    second = daemon.tick(now=T0 + seconds(20.1))
    fired = firings(tracking_uri)
    assert [as_utc(f.occurrence) for f in fired] == [T0 + seconds(10), T0 + seconds(20)]
    jobs = jobs_of(tracking_uri)
    assert all(j.schedule_id == row.id for j in jobs)
    if overlap == "skip":
        assert second == [] and fired[1].status == "skipped" and fired[1].job_id is None
        assert fired[1].detail == f"job {job_a} of this schedule is still queued (overlap: skip)"
        assert [j.id for j in jobs] == [job_a]
        # a job queued longer than the lease with no driver is presumed dead and holds nothing back
        time.sleep(0.6)
        third = Scheduler(store, grace=60.0, lease=0.5, identity="tests/2@0").tick(now=T0 + seconds(30.1))
        assert third[0].outcome["status"] == "launched" and third[0].outcome["job_id"] != job_a
        kill_tree(work_process(third[0].outcome["job_id"]))
    else:
        kill_tree(work_process(second[0].outcome["job_id"]))
        assert second[0].outcome["status"] == "launched" and fired[1].status == "launched"
        assert fired[1].job_id not in (None, job_a) and {j.id for j in jobs} == {job_a, fired[1].job_id}
    store.dispose()


# ----------------------------------------------------------------------------- a daemon killed mid-firing


@pytest.mark.parametrize("tracking_uri", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("failpoint", "adopted"),
    [
        ("schedule-claimed", None),  # claimed, nothing launched: the next daemon launches it
        (
            "job-recorded",
            "had been recorded but not started; started it",
        ),  # job row written, driver never started
        ("schedule-launched", "had been launched"),  # launched, outcome never recorded
    ],
)
def test_daemon_killed_between_claim_and_record(tmp_path, tracking_uri, cleanup, failpoint, adopted):
    cleanup.stores.append(tracking_uri)
    job = write_job(tmp_path, tracking_uri=tracking_uri)
    store = JobStore(tracking_uri)
    add_schedule(
        store, SearchJob.from_dict(yaml.safe_load(job.read_text())), cron="*/2 * * * * *", name="crash"
    )
    doomed = start_daemon(cleanup, tmp_path, tracking_uri, "--poll", "0.2", failpoint=failpoint)
    assert doomed.wait(90) == -signal.SIGKILL, doomed.log_path.read_text()
    set_paused(store, "crash", True)  # only the open claim is left to fire
    [open_claim] = [f for f in firings(tracking_uri) if f.status == "claimed"]
    before = {j.id for j in jobs_of(tracking_uri)}
    assert len(before) == (0 if failpoint == "schedule-claimed" else 1)

    rescuer = Scheduler(store, identity=None)
    [claim] = rescuer.tick()
    assert claim.occurrence == as_utc(open_claim.occurrence)
    after = {as_utc(f.occurrence): f for f in firings(tracking_uri)}
    recovered = after[claim.occurrence]
    assert recovered.status == "launched" and recovered.daemon == rescuer.identity
    assert f"taken over from {open_claim.daemon}" in recovered.detail
    jobs = jobs_of(tracking_uri)
    assert len(jobs) == 1, "the occurrence launched exactly one job"
    assert recovered.job_id == jobs[0].id and jobs[0].schedule_id == recovered.schedule_id
    if adopted is None:
        assert "had been" not in recovered.detail
    else:
        assert jobs[0].id in before and adopted in recovered.detail
    assert wait_for(lambda: work_process(jobs[0].id) is not None or jobs_of(tracking_uri)[0].driver, 20), (
        "its driver runs"
    )
    assert not [f for f in firings(tracking_uri) if f.status == "claimed"]
    assert rescuer.tick() == [], "nothing left to recover or fire"
    store.dispose()


# ----------------------------------------------------------------------------- real daemons


pytest_ray = pytest.mark.ray


@pytest_ray
def test_daemon_fires_a_real_job_end_to_end(tmp_path, cleanup):
    """A real daemon process fires a real job on a seconds-level schedule; the job completes and
    shows in ``foreseer jobs``; the occurrences due while it runs are skipped (overlap: skip)."""
    store = f"sqlite:///{tmp_path}/foreseer.db"
    cleanup.stores.append(store)
    job = write_job(tmp_path)

    def foreseer(*args):
        return subprocess.run(
            [sys.executable, "-m", "foreseer", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "FORESEER_FAILPOINT": ""},
            check=False,
        )

    added = foreseer("schedule", "add", job, "--cron", "*/2 * * * * *", "--name", "e2e", "--store", store)
    assert added.returncode == 0, added.stderr
    daemon = start_daemon(cleanup, tmp_path, store, "--poll", "0.5")

    def first_job_done():
        jobs = jobs_of(store)
        return bool(jobs) and jobs[0].status in ("succeeded", "failed", "cancelled")

    assert wait_for(first_job_done, 150), daemon.log_path.read_text()
    set_paused(JobStore(store), "e2e", True)
    code, log = stop_daemon(daemon)
    assert code == 0 and "stopped" in log.splitlines()[-1]

    job_row, *later = jobs_of(store)
    assert job_row.status == "succeeded", (tmp_path / "foreseer-logs" / f"{job_row.id}.log").read_text()
    fired = firings(store, "e2e")
    assert (
        fired[0].status == "launched"
        and fired[0].job_id == job_row.id
        and job_row.schedule_id == fired[0].schedule_id
    )
    while_running = [f for f in fired[1:] if as_utc(f.occurrence) < as_utc(job_row.ended_at)]
    assert len(while_running) >= 3 and {f.status for f in while_running} == {"skipped"}
    assert all(
        f"job {job_row.id} of this schedule is still" in f.detail or "still launching" in f.detail
        for f in while_running
    )
    assert len(later) <= 1, "a next job only once the first one ended (the test pauses the schedule then)"
    steps = {
        (as_utc(b.occurrence) - as_utc(a.occurrence)).total_seconds() for a, b in itertools.pairwise(fired)
    }
    assert steps == {2.0}, "every occurrence fired once, none missing"
    assert max((as_utc(f.claimed_at) - as_utc(f.occurrence)).total_seconds() for f in fired[-3:]) < 1.5, (
        "on time"
    )
    assert f"occurrence {as_utc(fired[0].occurrence).isoformat()} launched job {job_row.id}" in log

    listed = foreseer("jobs", "--store", store)
    assert job_row.id[:7] in listed.stdout and "succeeded" in listed.stdout
    schedules = foreseer("schedule", "list", "--store", store)
    # the last firing and job as the store has them: an occurrence due just before the test paused
    # the schedule may have launched the one later job allowed above
    last_fired, last_job = firings(store, "e2e")[-1], jobs_of(store)[-1]
    assert "e2e" in schedules.stdout and f"{last_fired.status}" in schedules.stdout
    assert last_job.id in schedules.stdout
    if not later:
        assert last_fired.status == "skipped" and f"{job_row.id} succeeded" in schedules.stdout
    shown = foreseer("schedule", "show", "e2e", "--store", store)
    assert job_row.id in shown.stdout and "succeeded" in shown.stdout


@pytest_ray
@pytest.mark.postgres
def test_two_daemons_on_postgresql_fire_each_occurrence_once(tmp_path, postgres_url, cleanup):
    """Two real daemon processes against one PostgreSQL store, a schedule every 2 s for about 16 s:
    every occurrence has exactly one firing, and only one job is launched (overlap: skip)."""
    cleanup.stores.append(postgres_url)
    job = write_job(tmp_path)  # MLflow on a SQLite file here, the job store and schedules on PostgreSQL
    store = JobStore(postgres_url)
    daemons = [start_daemon(cleanup, tmp_path, postgres_url, "--poll", "0.5", "--verbose") for _ in range(2)]
    assert wait_for(lambda: all("started" in d.log_path.read_text() for d in daemons), 60)
    add_schedule(
        store, SearchJob.from_dict(yaml.safe_load(job.read_text())), cron="*/2 * * * * *", name="race"
    )
    # the first occurrence launches a real job; stopping its driver before it starts keeps the job
    # queued (it still holds the schedule: overlap skip) and spares the CPU the daemons are timed on
    assert wait_for(lambda: any(f.job_id for f in firings(postgres_url)), 60), daemons[0].log_path.read_text()
    assert wait_for(lambda: work_process(jobs_of(postgres_url)[0].id) is not None, 10)
    kill_tree(work_process(jobs_of(postgres_url)[0].id))
    assert wait_for(lambda: len(firings(postgres_url)) >= 8, 60)
    set_paused(store, "race", True)
    logs = [stop_daemon(d) for d in daemons]
    assert [code for code, _ in logs] == [0, 0], logs

    fired = firings(postgres_url)
    occurrences = [as_utc(f.occurrence) for f in fired]
    assert len(set(occurrences)) == len(occurrences)
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(occurrences)} == {2.0}, "none missing"
    assert [f.status for f in fired].count("launched") == 1 and {f.status for f in fired} == {
        "launched",
        "skipped",
    }
    jobs = jobs_of(postgres_url)
    assert [j.id for j in jobs] == [f.job_id for f in fired if f.job_id], "one job, launched once"
    claimers = {f.daemon for f in fired}
    lost = sum(
        log.count("another daemon holds its row") + log.count("another daemon claimed") for _, log in logs
    )
    print(
        f"firings by daemon: { {d: sum(f.daemon == d for f in fired) for d in claimers} }, races lost: {lost}"
    )
    assert len(claimers) == 2 or lost > 0, "both daemons raced for the occurrences"
    store.dispose()
