"""Logs and filters: ``eth_getLogs`` over bloom-checked blocks, and eth-tester's filters fed from
mined blocks only.

:func:`find_logs` reads a block's receipts only when its header's bloom may hold a match, and
numbers logs per block, as geth and anvil do. :class:`MinedBlockTester` is the
``EthereumTester`` the node runs: its log filters see each mined block once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from eth_bloom import BloomFilter
from eth_tester import EthereumTester
from eth_tester.constants import ZERO_ADDRESS_HEX
from eth_typing import BlockNumber
from eth_utils import decode_hex, encode_hex, to_checksum_address

from .backend import PersistentBackend

__all__ = ["FILTER_TIMEOUT_S", "MinedBlockTester", "find_logs"]


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


def find_logs(
    backend: PersistentBackend,
    first: int,
    last: int,
    addresses: Sequence[bytes],
    topics: Sequence[Any],
) -> list[dict[str, Any]]:
    """The logs of canonical blocks ``first..last`` from one of ``addresses`` (any, if empty)
    whose topics match ``topics`` position by position (None: any; a list: any of them)."""
    topic_sets = [
        None if t is None else {decode_hex(x) for x in (t if isinstance(t, list) else [t]) if x}
        for t in topics
    ]
    topic_sets = [s if s else None for s in topic_sets]
    out: list[dict[str, Any]] = []
    chain = backend.chain
    for number in range(first, last + 1):
        header = chain.get_canonical_block_header_by_number(BlockNumber(number))
        if not _bloom_may_match(header.bloom, addresses, topic_sets):
            continue
        block, receipts = backend.block_and_receipts(number)
        log_index = 0
        for tx_index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
            for log in receipt.logs:
                if _log_matches(log, addresses, topic_sets):
                    out.append(
                        {
                            "address": to_checksum_address(log.address),
                            "topics": [encode_hex(t.to_bytes(32, "big")) for t in log.topics],
                            "data": encode_hex(log.data),
                            "block_number": number,
                            "block_hash": encode_hex(header.hash),
                            "transaction_hash": encode_hex(tx.hash),
                            "transaction_index": tx_index,
                            "log_index": log_index,
                            "removed": False,
                        }
                    )
                log_index += 1
    return out


def _bloom_may_match(bloom: int, addresses: Iterable[bytes], topic_sets: Sequence[Any]) -> bool:
    addresses = list(addresses)
    bloom_filter = BloomFilter(bloom)
    if addresses and not any(address in bloom_filter for address in addresses):
        return False
    for topic_set in topic_sets:
        if topic_set and not any(topic in bloom_filter for topic in topic_set):
            return False
    return True


def _log_matches(log: Any, addresses: Sequence[bytes], topic_sets: Sequence[Any]) -> bool:
    if addresses and log.address not in addresses:
        return False
    if len(topic_sets) > len(log.topics):
        return False
    for wanted, topic in zip(topic_sets, log.topics, strict=False):
        if wanted is not None and topic.to_bytes(32, "big") not in wanted:
            return False
    return True
