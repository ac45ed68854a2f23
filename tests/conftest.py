"""Shared fixtures: one real local Ray per test session, on loopback, stopped at the end; real
databases on both backends: SQLite files and a throw-away PostgreSQL (``scripts/pg.sh``)."""

import os
import shutil
import uuid

import pytest

# Keep Ray quiet and local: no usage stats, no network address, no dashboard.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.pop("RAY_ADDRESS", None)

#: Set by ``scripts/pg.sh run`` (``make test``): the admin URL of the throw-away server, or why
#: none could be started.
PG_URL = os.environ.get("FORESEER_TEST_PG_URL")
PG_SKIP = os.environ.get("FORESEER_TEST_PG_SKIP") or (
    "no PostgreSQL for the tests: FORESEER_TEST_PG_URL is not set "
    "(`make test` or `scripts/pg.sh run <pytest command>` start a throw-away server)"
)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def ray_runtime():
    """A real local Ray runtime shared by every test that runs trials."""
    import ray

    from foreseer.backends.ray_runtime import ensure_ray

    started = ensure_ray()
    yield ray
    if started:
        ray.shutdown()


def _admin(url):
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        autocommit=True,
        connect_timeout=10,
    )


def _with_database(url, name):
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server():
    """The throw-away server's admin URL; the test is skipped, saying why, where there is none."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    try:
        with _admin(PG_URL) as connection:
            connection.execute("SELECT 1")
    except Exception as e:  # psycopg raises several types for a server it cannot reach
        pytest.skip(f"the PostgreSQL server at {PG_URL} does not answer: {e}")
    return PG_URL


class _Databases:
    """Creates fresh databases on the throw-away server and drops them afterwards."""

    def __init__(self, admin_url):
        self.admin_url = admin_url

    def create(self, template=None):
        name = f"foreseer_test_{uuid.uuid4().hex[:12]}"
        clause = f" TEMPLATE {template}" if template else ""
        with _admin(self.admin_url) as connection:
            connection.execute(f"CREATE DATABASE {name}{clause}")
        return name, _with_database(self.admin_url, name)

    def drop(self, name):
        with _admin(self.admin_url) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    databases = _Databases(postgres_server)
    name, url = databases.create()
    yield url
    databases.drop(name)


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """A fresh, empty database for one test, on each backend: a SQLite file, then a PostgreSQL
    database on the throw-away server (``postgresql+psycopg://``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def _mlflow_templates(tmp_path_factory):
    """MLflow's schema made once per backend; each test's store is a copy, which saves MLflow's
    migrations (seconds) per test."""
    templates = {}
    yield templates
    if "postgresql" in templates:
        _Databases(PG_URL).drop(templates["postgresql"])


def _mlflow_schema(url):
    from mlflow.tracking import MlflowClient

    MlflowClient(url).search_experiments()  # opening the store runs MLflow's migrations


@pytest.fixture(params=BACKENDS)
def tracking_uri(request, tmp_path, tmp_path_factory, _mlflow_templates):
    """A fresh MLflow tracking store (schema made, no experiments) for one test, on each backend."""
    if request.param == "sqlite":
        if "sqlite" not in _mlflow_templates:
            path = tmp_path_factory.mktemp("mlflow-template") / "template.db"
            _mlflow_schema(f"sqlite:///{path}")
            _mlflow_templates["sqlite"] = path
        shutil.copy(_mlflow_templates["sqlite"], tmp_path / "store.db")
        yield f"sqlite:///{tmp_path}/store.db"
        return
    databases = _Databases(request.getfixturevalue("postgres_server"))
    if "postgresql" not in _mlflow_templates:
        name, url = databases.create()
        _mlflow_schema(url)
        with _admin(PG_URL) as connection:  # a template must have no open connections
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
        _mlflow_templates["postgresql"] = name
    name, url = databases.create(template=_mlflow_templates["postgresql"])
    yield url
    databases.drop(name)
