"""A small SQLite key-value store for py-evm's chain database.

py-evm 0.12 ships only an in-memory database. py-evm writes through a ``DatabaseAPI`` (a dict of
bytes to bytes) wrapped in an ``AtomicDB``; :class:`KeyValueStore` is such a database backed by
one SQLite file, with a write-back buffer so that everything py-evm writes while it builds a block
(trie nodes, block body, receipts, canonical head) reaches disk in **one** SQLite transaction,
when the node calls :meth:`KeyValueStore.commit` after mining. A ``kill -9`` therefore leaves
either the block before or the block after, never half a block.

A second table holds the node's own metadata (chain id, genesis parameters, encrypted dev
keystores) as text, and a third indexes every log by address and topic (for ``eth_getLogs``,
which would otherwise decode the receipts of every block in its range), both committed in the
same transactions as the blocks.

WAL mode with ``synchronous=NORMAL``: a committed transaction survives a process crash (it is in
the WAL file, which the OS holds), but a power loss or OS crash may drop the last few committed
blocks (never corrupting the file). That is the right trade for a development chain: fsync per
block would cost more than executing the block.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth.db.backends.base import BaseDB

from databright.errors import NodeError, StoreCorrupt

__all__ = ["CHECK_BUDGET_S", "SCHEMA_VERSION", "KeyValueStore", "LogRow"]

SCHEMA_VERSION = "1"

CHECK_BUDGET_S = 10.0  # how long a start may spend checking the store (~0.2 s per 100 MB)
_CACHE_LIMIT = 200_000  # entries; trie nodes are a few hundred bytes: tens of MB at most

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
    block INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    tx_index INTEGER NOT NULL,
    tx_hash BLOB NOT NULL,
    block_hash BLOB NOT NULL,
    address BLOB NOT NULL,
    ntopics INTEGER NOT NULL,
    topic0 BLOB,
    topic1 BLOB,
    topic2 BLOB,
    topic3 BLOB,
    data BLOB NOT NULL,
    PRIMARY KEY (block, log_index)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS logs_by_address ON logs (address, block);
CREATE INDEX IF NOT EXISTS logs_by_topic0 ON logs (topic0, block);
CREATE INDEX IF NOT EXISTS logs_by_topic1 ON logs (topic1, block);
CREATE INDEX IF NOT EXISTS logs_by_topic2 ON logs (topic2, block);
"""
# One row of the log index: block, log index in the block, transaction index, transaction hash,
# block hash, address, topic count, topic0..topic3 (None past the count), data.
LogRow = tuple[int, int, int, bytes, bytes, bytes, int, Any, Any, Any, Any, bytes]


class KeyValueStore(BaseDB):
    """Bytes-to-bytes store on SQLite; writes are buffered until :meth:`commit`.

    Reads see buffered writes. Not thread-safe on its own: the node serializes all access behind
    one lock (the EVM is single-threaded anyway).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._pending: dict[bytes, bytes | None] = {}  # None marks a delete
        self._pending_meta: dict[str, str] = {}
        self._pending_logs: list[LogRow] = []
        self._cache: dict[bytes, bytes] = {}
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:  # permissions, missing dir, locked...
            raise NodeError(f"cannot open the chain store {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
            raise StoreCorrupt(
                f"the chain store {self.path} is not a readable SQLite database ({exc}); "
                f"move the data dir away to start a fresh chain"
            ) from exc

    # --- py-evm DatabaseAPI ------------------------------------------------------------

    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is None:
                raise KeyError(key)
            return value
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        value = bytes(row[0])
        self._remember(key, value)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[key] = None

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    # --- node API ----------------------------------------------------------------------

    @property
    def dirty(self) -> bool:
        """Whether there are writes not yet committed."""
        return bool(self._pending or self._pending_meta or self._pending_logs)

    def is_empty(self) -> bool:
        """Whether nothing was ever committed (pending writes aside)."""
        for table in ("kv", "meta"):
            if self._conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                return False
        return True

    def get_meta(self, key: str) -> str | None:
        if key in self._pending_meta:
            return self._pending_meta[key]
        row = self._conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._pending_meta[key] = value

    def set_meta_many(self, values: Mapping[str, str]) -> None:
        self._pending_meta.update(values)

    def add_logs(self, rows: list[LogRow]) -> None:
        """Index these logs in the same transaction as the blocks they come from."""
        self._pending_logs.extend(rows)

    def commit(self) -> None:
        """Write every buffered change in one SQLite transaction (all or nothing)."""
        if not self.dirty:
            return
        puts = [(k, v) for k, v in self._pending.items() if v is not None]
        deletes = [(k,) for k, v in self._pending.items() if v is None]
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", puts)
            conn.executemany("DELETE FROM kv WHERE k = ?", deletes)
            conn.executemany(
                "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
                list(self._pending_meta.items()),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._pending_logs,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for key, value in puts:
            self._remember(key, value)
        for (key,) in deletes:
            self._cache.pop(key, None)
        self._pending.clear()
        self._pending_meta.clear()
        self._pending_logs.clear()

    def check_integrity(self, budget_s: float = CHECK_BUDGET_S) -> bool:
        """``PRAGMA quick_check`` of the whole file, for at most ``budget_s`` seconds.

        Raises :class:`StoreCorrupt` naming the first damage found; returns True when the whole
        file was checked and False when the budget ran out first (a big store is checked as far
        as the budget goes, so a start never waits minutes). quick_check reads every page and
        checks each b-tree, but not that indexes match their tables, which this store has none
        of.
        """
        timer = threading.Timer(budget_s, self._conn.interrupt)
        timer.start()
        try:
            rows = self._conn.execute("PRAGMA quick_check(3)").fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupt" in str(exc):
                return False
            raise self._damaged(str(exc)) from exc
        except sqlite3.DatabaseError as exc:
            raise self._damaged(str(exc)) from exc
        finally:
            timer.cancel()
        problems = [str(row[0]) for row in rows if row[0] != "ok"]
        if problems:
            raise self._damaged(problems[0])
        return True

    def _damaged(self, finding: str) -> StoreCorrupt:
        return StoreCorrupt(
            f"the chain store {self.path} is damaged ({_first_line(finding)}); restore it from "
            f"a backup or move the data dir away to start a fresh chain"
        )

    def rollback(self) -> None:
        """Forget every buffered change."""
        self._pending.clear()
        self._pending_meta.clear()
        self._pending_logs.clear()

    def close(self) -> None:
        self._conn.close()

    def _remember(self, key: bytes, value: bytes) -> None:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()  # crude but O(1) amortized; the working set refills fast
        self._cache[key] = value


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown damage"
    return line if len(line) <= 200 else line[:197] + "..."
