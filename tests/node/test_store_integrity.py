"""A damaged chain store: the node refuses to start on it, and a running node whose store goes
bad stops mining and accepting transactions at the first damaged read, answering one clear
JSON-RPC error instead (issue 9 §4: it once started, mined on and took a payment while reads
failed). The damage is real: pages of a real store file overwritten with garbage."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from node_helpers import post, rpc

from databright.errors import StoreCorrupt
from databright.node import Node, NodeConfig, load_dev_accounts
from databright.node.dev_chain import STORE_FILE
from databright.node.store import KeyValueStore

STRANGER = "0x" + "22" * 20


def _transfer(url: str, account: Any, nonce: int) -> str:
    raw = account.sign_transaction(
        {
            "chainId": 1337,
            "nonce": nonce,
            "to": STRANGER,
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 10 * 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
    ).raw_transaction
    return str(rpc(url, "eth_sendRawTransaction", "0x" + raw.hex()))


def _chain_with_blocks(data_dir: Path, blocks: int = 30) -> list[Any]:
    with Node(NodeConfig(data_dir=data_dir, port=0, accounts=2)) as node:
        accounts = load_dev_accounts(data_dir)
        for nonce in range(blocks):
            _transfer(node.url, accounts[0], nonce)
    return accounts


def _damage_pages(path: Path, pages: list[int]) -> None:
    """Overwrite ``pages`` (1-based page numbers) of the file with garbage."""
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    with open(path, "r+b") as handle:
        for page in pages:
            handle.seek((page - 1) * page_size)
            handle.write(os.urandom(page_size))


def _kv_leaf_pages(path: Path) -> list[int]:
    """The leaf pages of the key-value table (blocks, receipts, state), not of the metadata."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'kv' AND pagetype = 'leaf' ORDER BY pageno"
        ).fetchall()
    return [int(row[0]) for row in rows]


def test_node_refuses_to_start_on_a_damaged_page(tmp_path: Path) -> None:
    _chain_with_blocks(tmp_path, blocks=5)
    store = tmp_path / STORE_FILE
    leaves = _kv_leaf_pages(store)
    _damage_pages(store, [leaves[len(leaves) // 2]])  # one page in the middle
    with pytest.raises(StoreCorrupt) as info:
        Node(NodeConfig(data_dir=tmp_path, port=0)).start()
    message = str(info.value)
    assert message.startswith(f"the chain store {store} is damaged (")
    assert "\n" not in message and message.endswith("to start a fresh chain")


def test_integrity_check_is_bounded_in_time(tmp_path: Path) -> None:
    store = KeyValueStore(tmp_path / "big.sqlite3")
    for start in range(0, 60_000, 10_000):
        for i in range(start, start + 10_000):
            store[i.to_bytes(32, "big")] = os.urandom(400)
        store.commit()
    assert store.check_integrity() is True
    assert store.check_integrity(budget_s=0.001) is False  # cut short, not failed
    assert store.check_integrity() is True  # and the connection still works
    store.close()


def test_running_node_stops_at_the_first_damaged_read(tmp_path: Path) -> None:
    accounts = _chain_with_blocks(tmp_path, blocks=30)
    store = tmp_path / STORE_FILE
    with Node(NodeConfig(data_dir=tmp_path, port=0)) as node:
        head = int(rpc(node.url, "eth_blockNumber"), 16)
        leaves = _kv_leaf_pages(store)
        assert len(leaves) > 5
        _damage_pages(store, leaves)  # behind the node's back
        # The start-up check left every page in the node's SQLite cache; a write by another
        # connection (to the meta table, untouched) makes it read pages from disk again.
        with sqlite3.connect(store) as other:
            other.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('touched', '1')")
        errors = []
        for number in range(head, 0, -1):  # blocks the node has not read since it started
            answer = post(
                node.url,
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_getBlockByNumber",
                    "params": [hex(number), True],
                },
            )
            if "error" in answer:
                errors.append(answer["error"])
                break
        assert errors, "no read reached a damaged page"
        (error,) = errors
        assert error["code"] == -32603
        assert error["message"].startswith("the node's chain store failed (")
        assert "stopped mining and accepting requests" in error["message"]
        # From now on nothing is mined and nothing accepted, reads included.
        refused = post(
            node.url,
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "eth_sendRawTransaction",
                "params": [
                    "0x"
                    + accounts[1]
                    .sign_transaction(
                        {
                            "chainId": 1337,
                            "nonce": 0,
                            "to": STRANGER,
                            "value": 1,
                            "gas": 21_000,
                            "gasPrice": 10 * 10**9,
                        }
                    )
                    .raw_transaction.hex()
                ],
            },
        )
        assert refused["error"] == error
        assert (
            post(node.url, {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber"})["error"]
            == error
        )
