"""The job store: Foreseer's own SQL tables (jobs, trials, epochs), made and changed by Alembic only.

Any SQLAlchemy URL: SQLite by default (the same file as the MLflow store is fine: the tables are
prefixed and the migration history has its own version table), PostgreSQL on a cluster.

Example:
    >>> store = JobStore("sqlite:///:memory:")
    >>> store.revision() == store.head()
    True
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from foreseer.dburl import mask_url, prepare_sqlite, reachability_problem, sqlite_path
from foreseer.errors import ForeseerError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = ["JobStore", "StoreError", "VERSION_TABLE", "schema_problem"]

logger = logging.getLogger(__name__)

#: Foreseer's migration history; MLflow and Optuna each keep their own ``alembic_version``.
VERSION_TABLE = "foreseer_alembic_version"
_MIGRATIONS = Path(__file__).with_name("migrations")


class StoreError(ForeseerError):
    """The job store cannot be used as it is (unreachable, older or newer schema)."""


def schema_problem(url: str) -> str | None:
    """Why the job store at ``url`` cannot be used as it is (a schema older or newer than this
    Foreseer's), or ``None``; reads only, and a database that does not exist yet is fine."""
    from alembic.runtime.migration import MigrationContext

    from foreseer.dburl import sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            current = context.get_current_revision()
    except SQLAlchemyError as e:
        return f"cannot read the job store {mask_url(url)}: {e.__class__.__name__}: {e.orig or e}"
    finally:
        engine.dispose()
    return None if current is None else _revision_problem(url, current)


def _scripts() -> ScriptDirectory:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config)


def _revision_problem(url: str, current: str) -> str | None:
    """What is wrong with a store at schema revision ``current``: newer or older than this Foreseer."""
    scripts = _scripts()
    head = scripts.get_current_head()
    if current == head:
        return None
    if current not in {s.revision for s in scripts.walk_revisions()}:
        return (
            f"the job store {mask_url(url)} was written by a newer Foreseer (schema revision {current!r}, "
            f"this version knows up to {head!r}); upgrade Foreseer to use it"
        )
    return (
        f"the job store {mask_url(url)} has schema revision {current!r}, older than this Foreseer's "
        f"{head!r}; run `foreseer db upgrade --store {mask_url(url)}`"
    )


class JobStore:
    """Connects to a store, creates its schema when the database is new, and refuses a schema it
    does not know.

    Args:
        url: an SQLAlchemy URL.
        upgrade: bring an older schema up to date instead of refusing it (what ``foreseer db upgrade`` does).
        create: make the store when there is none; ``False`` for commands that only read (a
            missing SQLite file is then an error, and nothing is written).

    Raises:
        StoreError: the database is unreachable, or its schema is older (without ``upgrade``) or newer
            than this Foreseer.
    """

    def __init__(self, url: str, *, upgrade: bool = False, create: bool = True) -> None:
        self.url = url
        path = sqlite_path(url)
        if path is not None and not path.exists():
            if not create:
                raise StoreError(f"no job store at {path} (run a job here first, or pass --store URL)")
            if problem := reachability_problem(url):
                raise StoreError(problem)
        prepare_sqlite(url)
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self._check_schema(upgrade)
        except SQLAlchemyError as e:
            raise StoreError(
                f"cannot open the job store {mask_url(url)}: {e.__class__.__name__}: {e.orig or e}"
            ) from e

    def _alembic_config(self) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return config

    def head(self) -> str:
        return _scripts().get_current_head()

    def revision(self) -> str | None:
        """The schema revision of the database, or ``None`` before Foreseer's first migration."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()

    def upgrade(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Migrate the schema to ``revision`` (this Foreseer's newest by default); returns (from, to)."""
        from alembic import command

        before = self.revision()
        config = self._alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return before, self.revision()

    def _check_schema(self, upgrade: bool) -> None:
        current = self.revision()
        if current is None and not inspect(self.engine).has_table("foreseer_jobs"):
            logger.info("creating the job store schema in %s", mask_url(self.url))
            self.upgrade()
            return
        problem = _revision_problem(self.url, current or "")
        if problem is None:
            return
        if upgrade and "newer Foreseer" not in problem:
            self.upgrade()
        else:
            raise StoreError(problem)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back (and re-raises) on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
