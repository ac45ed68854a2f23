"""Database URLs: SQLite preparation and masking passwords before a URL is shown or recorded.

A password never leaves the process that was given it: job specs are masked before they reach
MLflow params, the job store or the terminal (:func:`mask_secrets`), and a resumed job gets the
password back from a URL the user passes again or from libpq's own sources (:func:`with_password`).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "MASK",
    "mask_secrets",
    "mask_text",
    "mask_url",
    "prepare_sqlite",
    "reachability_problem",
    "sqlite_path",
    "with_password",
]

logger = logging.getLogger(__name__)

#: What a password is replaced with (SQLAlchemy's ``hide_password`` uses the same).
MASK = "***"
# scheme://user:PASSWORD@ — greedy up to the last "@" before the path, so a password holding an
# unescaped "@" is masked whole; and ?password=… / &pwd=… query parameters.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^\s/]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<password>[^&\s#]*)", re.IGNORECASE)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for other databases and in-memory SQLite."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def prepare_sqlite(url: str) -> None:
    """Switch a SQLite database file to WAL (creating the file in its existing folder), so readers
    (the MLflow UI, ``foreseer jobs``) never block the single writer. WAL is a property of the
    file: set once, it stays."""
    path = sqlite_path(url)
    if path is None:
        return
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, safe to log or store."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return mask_text(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return mask_text(url)


def mask_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (also ``?password=``
    query parameters); for messages and values that may hold a URL anywhere.

    Example:
        >>> mask_text("cannot reach postgresql+psycopg://me:s3cret@db/foreseer")
        'cannot reach postgresql+psycopg://me:***@db/foreseer'
    """
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def mask_secrets(data: Any) -> Any:
    """A copy of ``data`` (nested dicts, lists, strings) with :func:`mask_text` applied to every string."""
    if isinstance(data, str):
        return mask_text(data)
    if isinstance(data, dict):
        return {key: mask_secrets(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(mask_secrets(value) for value in data)
    return data


def with_password(url: str, known: Iterable[str | None]) -> str:
    """Undo :func:`mask_url` for a URL read back from the job store.

    The password comes from the first URL in ``known`` (the store URL the user passed,
    ``$FORESEER_STORE``, ``$FORESEER_TRACKING_URI``) for the same user on the same host and port.
    Without one the password is dropped, so libpq falls back to ``PGPASSWORD`` or ``~/.pgpass``,
    which is how the deploy files pass it. A URL that was never masked comes back unchanged.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.password != MASK:
        return url
    for candidate in known:
        try:
            other = make_url(candidate) if candidate else None
        except ArgumentError:
            continue
        if (
            other is not None
            and other.password not in (None, MASK)
            and ((other.username, other.host, other.port) == (parsed.username, parsed.host, parsed.port))
        ):
            return parsed.set(password=other.password).render_as_string(hide_password=False)
    logger.warning(
        "no password known for %s (pass a URL with it, or set PGPASSWORD or ~/.pgpass); "
        "connecting without one",
        url,
    )
    return parsed._replace(password=None).render_as_string(hide_password=False)  # set() skips None


def reachability_problem(url: str) -> str | None:
    """Why the database at ``url`` cannot be used, or ``None``; checks without writing anything."""
    path = sqlite_path(url)
    if path is not None:
        if not path.parent.is_dir():
            return (
                f"cannot create the SQLite file {path}: the folder {path.parent} does not exist "
                "(create it first, or give a file in an existing folder)"
            )
        return None
    from sqlalchemy import create_engine

    try:
        engine = create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:  # drivers raise their own types; the message is what matters here
        first = (
            str(getattr(e, "orig", None) or e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        )
        return f"cannot connect to {mask_url(url)}: {type(e).__name__}: {first}"
    return None
