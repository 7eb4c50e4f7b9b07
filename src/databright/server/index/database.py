"""Opening the index: an engine for a database URL, its schema brought up to date by Alembic.

SQLite (a file in the data dir) is the embedded default; PostgreSQL is the scale backend
(``postgresql+psycopg://...``). Both run the same migrations and the same queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from databright.errors import ChainIndexError

__all__ = ["MIGRATIONS", "open_index"]

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: the API reads while the indexer writes; a busy timeout instead of "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL (as the node's store): a commit survives a kill -9 (the WAL is in the OS's cache);
    # only a power or OS crash can drop the last commits (the last batches, which the indexer
    # reads again from the chain; a comment or sign-in just made), never leave the file
    # half-written. FULL cost an fsync per indexer step, ~4 ms a commit here: as much as the
    # rest of a step following anvil's 200+ blocks a second.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_index(url: str) -> Engine:
    """An engine on the index at ``url`` with every migration applied."""
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, SQLAlchemyError, ImportError) as exc:
        raise ChainIndexError(
            f"{url!r} is not a database URL this server can open ({exc}); use "
            "sqlite:///path/index.sqlite3 or postgresql+psycopg://user@host/db"
        ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        engine.dispose()
        raise ChainIndexError(
            f"cannot open the index database at {engine.url.render_as_string(hide_password=True)}"
            f" ({str(exc.orig).strip().splitlines()[0] if exc.orig else exc}); check that it "
            "runs and the URL is right"
        ) from exc
    return engine
