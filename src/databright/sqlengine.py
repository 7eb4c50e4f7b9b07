"""SQLAlchemy engines as every SQL store of DataBright opens them (the index, the compute state).

SQLite files are opened in WAL mode with ``synchronous=NORMAL``, as the node's own store: a
commit survives a ``kill -9`` (the WAL is in the OS's cache) and readers never wait for the one
writer; only a power or OS crash can drop the last commits, never leave the file half-written.
The default (a rollback journal and FULL) costs several fsyncs a commit, which is most of what a
small transaction costs here: ~4 ms an indexer step, ~1 ms a compute protocol message.
PostgreSQL URLs are opened as they are.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url

__all__ = ["sql_engine"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # a wait instead of "database is locked" when two connections write at once
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sql_engine(url: str | URL, *, isolation_level: str | None = None) -> Engine:
    """An engine on ``url`` (raises SQLAlchemy's ArgumentError for a URL it cannot parse, and
    ImportError for a driver that is not installed: callers word those for their users).
    ``isolation_level``: every connection's, set once when it connects (a level asked per
    transaction is set and reset on every checkout: two more round trips on PostgreSQL)."""
    sqlite = make_url(url).get_backend_name() == "sqlite"
    options: dict[str, Any] = (
        {} if isolation_level is None else {"isolation_level": isolation_level}
    )
    # A server's connection can drop between two uses (a restart, an idle timeout): pinged on
    # each checkout. A SQLite file's cannot, and the ping cost a statement per transaction.
    engine = create_engine(url, pool_pre_ping=not sqlite, **options)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine
