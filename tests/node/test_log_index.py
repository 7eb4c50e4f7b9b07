"""The log index behind ``eth_getLogs``: it answers exactly what geth's filter rules select
(checked against a direct reading of the rules, on generated logs and filters), is filled in
the same transaction as each block, is rebuilt once for a store from before it, and is read
without the node's lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from node_helpers import PROBE_BYTECODE, rpc

from databright.node import Node, NodeConfig, load_dev_accounts
from databright.node.dev_chain import STORE_FILE
from databright.node.logs import LogIndex
from databright.node.rpc import METHODS
from databright.node.store import KeyValueStore

ADDRESSES = [bytes([n]) * 20 for n in (1, 2, 3)]
TOPICS = [bytes([n]) * 32 for n in (7, 8, 9)]

rows_strategy = st.lists(
    st.tuples(
        st.integers(0, 12),  # block
        st.sampled_from(ADDRESSES),
        st.lists(st.sampled_from(TOPICS), max_size=4),
    ),
    max_size=40,
)
topic_entry = st.one_of(
    st.none(),
    st.sampled_from(TOPICS).map(lambda t: "0x" + t.hex()),
    st.lists(st.sampled_from(TOPICS).map(lambda t: "0x" + t.hex()), max_size=3),
)
filter_strategy = st.tuples(
    st.integers(0, 12),
    st.integers(0, 12),
    st.lists(st.sampled_from(ADDRESSES), max_size=2, unique=True),
    st.lists(topic_entry, max_size=4),
)


def _matches(
    address: bytes, topics: list[bytes], addresses: list[bytes], wanted: list[Any]
) -> bool:
    """geth's rules, read directly: any of the addresses; per position None or empty is any,
    otherwise one of the listed topics; more positions than the log has topics: no match."""
    if addresses and address not in addresses:
        return False
    if len(wanted) > len(topics):
        return False
    for entry, topic in zip(wanted, topics, strict=False):
        choices = [] if entry is None else (entry if isinstance(entry, list) else [entry])
        if choices and "0x" + topic.hex() not in choices:
            return False
    return True


@settings(max_examples=150, deadline=None)
@given(rows=rows_strategy, query=filter_strategy)
def test_index_selects_what_the_filter_rules_select(
    tmp_path_factory: Any, rows: list[tuple[int, bytes, list[bytes]]], query: Any
) -> None:
    path = tmp_path_factory.mktemp("index") / "chain.sqlite3"
    store = KeyValueStore(path)
    per_block: dict[int, int] = {}
    stored = []
    for block, address, topics in sorted(rows, key=lambda r: r[0]):
        index = per_block.get(block, 0)
        per_block[block] = index + 1
        padded = [*topics, *[None] * (4 - len(topics))]
        tx_hash = keccak(bytes([block, index]))
        stored.append(
            (block, index, 0, tx_hash, b"\xbb" * 32, address, len(topics), *padded, b"\x01")
        )
    store.add_logs(stored)
    store.commit()
    index = LogIndex(path)
    first, last, addresses, wanted = query
    found = index.find(first, last, addresses, wanted)
    expected = [
        (row[0], row[1])
        for row in stored
        if first <= row[0] <= last
        and _matches(row[5], [t for t in row[7:11] if t], addresses, wanted)
    ]
    assert [(int(log["blockNumber"], 16), int(log["logIndex"], 16)) for log in found] == expected
    for log in found:
        row = next(
            r
            for r in stored
            if (r[0], r[1]) == (int(log["blockNumber"], 16), int(log["logIndex"], 16))
        )
        assert log["address"] == to_checksum_address(row[5])
        assert log["topics"] == ["0x" + t.hex() for t in row[7:11] if t]
        assert log["data"] == "0x01" and log["removed"] is False
    index.close()
    store.close()


def _ping_chain(data_dir: Path, pings: int) -> str:
    """A chain with the probe contract and ``pings`` blocks with one Ping log each."""
    ping = "0x" + keccak(text="ping(uint256)")[:4].hex()
    with Node(NodeConfig(data_dir=data_dir, port=0, accounts=1)) as node:
        (account,) = load_dev_accounts(data_dir)
        base = {"chainId": 1337, "gas": 300_000, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}
        raw = account.sign_transaction({**base, "nonce": 0, "data": PROBE_BYTECODE}).raw_transaction
        tx_hash = rpc(node.url, "eth_sendRawTransaction", "0x" + raw.hex())
        probe = rpc(node.url, "eth_getTransactionReceipt", tx_hash)["contractAddress"]
        for nonce in range(1, pings + 1):
            data = ping + nonce.to_bytes(32, "big").hex()
            raw = account.sign_transaction({**base, "nonce": nonce, "to": probe, "data": data})
            rpc(node.url, "eth_sendRawTransaction", "0x" + raw.raw_transaction.hex())
            rpc(node.url, "evm_mine")  # and an empty block between: no rows, no receipts read
    return str(probe)


def test_store_from_before_the_index_is_indexed_once_at_start(tmp_path: Path) -> None:
    probe = _ping_chain(tmp_path, pings=6)
    with Node(NodeConfig(data_dir=tmp_path, port=0)) as node:
        before = rpc(node.url, "eth_getLogs", {"fromBlock": "0x0", "address": probe})
    assert len(before) == 6
    assert [int(log["data"], 16) for log in before] == [1, 2, 3, 4, 5, 6]
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:  # as a store written before the index
        conn.execute("DELETE FROM logs")
        conn.execute("DELETE FROM meta WHERE k = 'logs_indexed_to'")
    with Node(NodeConfig(data_dir=tmp_path, port=0)) as node:
        assert rpc(node.url, "eth_getLogs", {"fromBlock": "0x0", "address": probe}) == before
        receipt = rpc(node.url, "eth_getTransactionReceipt", before[2]["transactionHash"])
        assert receipt["logs"] == [before[2]]
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:
        assert conn.execute("SELECT COUNT(*) FROM logs").fetchone()[0] == 6


def test_get_logs_reads_the_index_without_the_lock() -> None:
    # Only resolving the block range takes the lock; the query itself runs after it is released.
    assert METHODS["eth_getLogs"].unlocked is not None
