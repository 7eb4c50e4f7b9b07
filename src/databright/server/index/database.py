"""Opening the index: an engine for a database URL, its schema brought up to date by Alembic.

SQLite (a file in the data dir) is the embedded default; PostgreSQL is the scale backend
(``postgresql+psycopg://...``). Both run the same migrations and the same queries.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from databright.errors import ChainIndexError
from databright.sqlengine import sql_engine

__all__ = ["MIGRATIONS", "open_index"]

MIGRATIONS = Path(__file__).with_name("migrations")


def open_index(url: str) -> Engine:
    """An engine on the index at ``url`` with every migration applied."""
    try:
        engine = sql_engine(url)
    except (ArgumentError, SQLAlchemyError, ImportError) as exc:
        raise ChainIndexError(
            f"{url!r} is not a database URL this server can open ({exc}); use "
            "sqlite:///path/index.sqlite3 or postgresql+psycopg://user@host/db"
        ) from exc
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
