"""Database URLs: SQLite preparation and masking passwords before a URL is shown or recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["mask_url", "prepare_sqlite", "reachability_problem", "sqlite_path"]


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for other databases and in-memory SQLite."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def prepare_sqlite(url: str) -> None:
    """Create a SQLite database's folder and switch the file to WAL, so readers (the MLflow UI,
    ``foreseer jobs``) never block the single writer. WAL is a property of the file: set once, it stays."""
    path = sqlite_path(url)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe to log or store."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def reachability_problem(url: str) -> str | None:
    """Why the database at ``url`` cannot be used, or ``None``; checks without writing anything."""
    path = sqlite_path(url)
    if path is not None:
        folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
        if folder is None or not folder.is_dir():
            return f"cannot create the SQLite file {path}: {folder} is not a folder"
        return None
    from sqlalchemy import create_engine

    try:
        engine = create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:  # drivers raise their own types; the message is what matters here
        first = str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"cannot connect to {mask_url(url)}: {type(e).__name__}: {first}"
    return None
