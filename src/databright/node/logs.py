"""Logs and filters: ``eth_getLogs`` from the store's log index, and eth-tester's filters fed
from mined blocks only.

:func:`log_rows` turns a mined block's receipts into rows of the store's ``logs`` table (logs
numbered per block, as geth and anvil number them); :class:`LogIndex` answers ``eth_getLogs``
from that table through its own read-only SQLite connections, so a query over thousands of blocks
neither decodes their receipts nor holds the node's lock while it runs (before the index, a
full-range query over 3,000 blocks took 4.3 s here and stalled every other client as long).
:class:`MinedBlockTester` is the ``EthereumTester`` the node runs: its log filters see each mined
block once.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_tester import EthereumTester
from eth_tester.constants import ZERO_ADDRESS_HEX
from eth_typing import BlockNumber
from eth_utils import decode_hex, to_checksum_address

from .backend import PersistentBackend
from .store import LogRow

__all__ = ["FILTER_TIMEOUT_S", "LogIndex", "MinedBlockTester", "log_rows"]


FILTER_TIMEOUT_S = 300.0  # geth drops a filter nobody polled for 5 minutes


class MinedBlockTester(EthereumTester):  # type: ignore[misc]
    """``EthereumTester`` that feeds log filters from mined blocks only (every transaction is
    mined at once; eth-tester would also feed them the pending receipt, twice over), skips
    re-reading each mined block when no filter wants it, and drops filters nobody polled for
    ``filter_timeout`` seconds, as geth does: an abandoned filter would otherwise be fed every
    block forever (measured: 84 -> 64 tx/s with a few hundred of them) and grow without bound.
    """

    def __init__(self, *args: Any, filter_timeout: float = FILTER_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filter_timeout = filter_timeout
        self._filter_polled: dict[int, float] = {}  # filter id -> when last created or polled

    # --- filter lifetimes -----------------------------------------------------------------

    def _touch(self, filter_id: int) -> int:
        self._filter_polled[filter_id] = time.monotonic()
        return filter_id

    def expire_filters(self) -> None:
        """Forget every filter not polled within ``filter_timeout`` seconds."""
        if not self._filter_polled:
            return
        deadline = time.monotonic() - self.filter_timeout
        for filter_id, polled in list(self._filter_polled.items()):
            if polled < deadline:
                del self._filter_polled[filter_id]
                for filters in (
                    self._log_filters,
                    self._block_filters,
                    self._pending_transaction_filters,
                ):
                    filters.pop(filter_id, None)

    def create_block_filter(self) -> Any:
        self.expire_filters()
        return self._touch(super().create_block_filter())

    def create_pending_transaction_filter(self) -> Any:
        self.expire_filters()
        return self._touch(super().create_pending_transaction_filter())

    def create_log_filter(self, *args: Any, **kwargs: Any) -> Any:
        self.expire_filters()
        return self._touch(super().create_log_filter(*args, **kwargs))

    def get_only_filter_changes(self, filter_id: int) -> Any:
        self.expire_filters()
        changes = super().get_only_filter_changes(filter_id)
        self._touch(filter_id)
        return changes

    def get_all_filter_logs(self, filter_id: int) -> Any:
        self.expire_filters()
        logs = super().get_all_filter_logs(filter_id)
        self._touch(filter_id)
        return logs

    def delete_filter(self, filter_id: int) -> None:
        self.expire_filters()
        super().delete_filter(filter_id)
        self._filter_polled.pop(filter_id, None)

    def _handle_filtering_for_transaction(self, transaction_hash: str) -> None:
        raw_hash = self.normalizer.normalize_inbound_transaction_hash(transaction_hash)
        for pending_filter in self._pending_transaction_filters.values():
            pending_filter.add(raw_hash)

    def mine_blocks(self, num_blocks: int = 1, coinbase: str = ZERO_ADDRESS_HEX) -> Any:
        self.expire_filters()
        if self._block_filters or self._log_filters:
            return super().mine_blocks(num_blocks, coinbase)
        self.validator.validate_inbound_account(coinbase)
        raw_coinbase = self.normalizer.normalize_inbound_account(coinbase)
        raw_hashes = self.backend.mine_blocks(num_blocks, raw_coinbase)
        return [self.normalizer.normalize_outbound_block_hash(h) for h in raw_hashes]


def log_rows(backend: PersistentBackend, number: int) -> list[LogRow]:
    """The rows of the log index for canonical block ``number`` (none for a block whose bloom
    is empty, without reading its receipts)."""
    header = backend.chain.get_canonical_block_header_by_number(BlockNumber(number))
    if not header.bloom:
        return []
    block, receipts = backend.block_and_receipts(number)
    rows: list[LogRow] = []
    for tx_index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
        for log in receipt.logs:
            topics: list[Any] = [t.to_bytes(32, "big") for t in log.topics[:4]]
            topics += [None] * (4 - len(topics))
            rows.append(
                (
                    number,
                    len(rows),
                    tx_index,
                    bytes(tx.hash),
                    bytes(header.hash),
                    bytes(log.address),
                    len(log.topics),
                    *topics,
                    bytes(log.data),
                )
            )
    return rows


class LogIndex:
    """Read-only queries of the store's ``logs`` table, safe from any thread.

    Each query takes a connection of its own from a small pool (SQLite's WAL lets readers run
    beside the one writer, and each sees only committed blocks).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            with self._guard:
                self._all.append(conn)
            return conn

    def find(
        self, first: int, last: int, addresses: Sequence[bytes], topics: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """The logs of blocks ``first..last`` from one of ``addresses`` (any, if empty) whose
        topics match ``topics`` position by position (None: any; a list: any of them); a log
        with fewer topics than ``topics`` has positions does not match, as on geth. Each log
        is the JSON-RPC object (camelCase keys, hex values)."""
        where = ["block BETWEEN ? AND ?"]
        args: list[Any] = [first, last]
        if addresses:
            where.append(f"address IN ({', '.join('?' * len(addresses))})")
            args.extend(addresses)
        for position, wanted in enumerate(topics):
            choices = [] if wanted is None else (wanted if isinstance(wanted, list) else [wanted])
            choices = [decode_hex(choice) for choice in choices if choice]
            if choices:
                where.append(f"topic{position} IN ({', '.join('?' * len(choices))})")
                args.extend(choices)
        if topics:
            where.append("ntopics >= ?")
            args.append(len(topics))
        sql = f"SELECT * FROM logs WHERE {' AND '.join(where)} ORDER BY block, log_index"
        conn = self._connection()
        try:
            rows = conn.execute(sql, args).fetchall()
        finally:
            self._idle.put(conn)
        return [_log_entry(row) for row in rows]

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()


def _log_entry(row: Sequence[Any]) -> dict[str, Any]:
    """A row as the JSON-RPC log object itself: built here directly, since a big query spends
    most of its time turning rows into answers."""
    number, log_index, tx_index, tx_hash, block_hash, address, ntopics, *rest = row
    return {
        "address": to_checksum_address(address),
        "topics": ["0x" + topic.hex() for topic in rest[: min(ntopics, 4)]],
        "data": "0x" + rest[4].hex(),
        "blockNumber": hex(number),
        "blockHash": "0x" + block_hash.hex(),
        "transactionHash": "0x" + tx_hash.hex(),
        "transactionIndex": hex(tx_index),
        "logIndex": hex(log_index),
        "removed": False,
    }
