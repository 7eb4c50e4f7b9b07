"""The methods wallets, explorers and tools call beyond the basics (issue 9 §5), on the embedded
node and anvil alike, and the lifetime of filters nobody polls (embedded only: its timeout is a
constructor argument, so the test need not wait geth's 5 minutes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from node_helpers import PROBE_BYTECODE, rpc, rpc_error

from databright.node import Node, NodeConfig, load_dev_accounts

STRANGER = "0x" + "22" * 20
PING = "0x" + keccak(text="ping(uint256)")[:4].hex()
DOUBLE = "0x" + keccak(text="double(uint256)")[:4].hex()
COUNTER = "0x" + keccak(text="counter()")[:4].hex()


def _word(value: int) -> str:
    return value.to_bytes(32, "big").hex()


def _send(url: str, chain_id: int, account: Any, **tx: Any) -> dict[str, Any]:
    """Sign locally, send, and return the receipt (both nodes mine at once)."""
    base = {
        "chainId": chain_id,
        "nonce": int(rpc(url, "eth_getTransactionCount", account.address, "latest"), 16),
        "gas": 1_000_000,
        "maxFeePerGas": 50 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    raw = account.sign_transaction({**base, **tx}).raw_transaction
    tx_hash = rpc(url, "eth_sendRawTransaction", "0x" + raw.hex())
    for _ in range(100):
        receipt = rpc(url, "eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return dict(receipt)
        time.sleep(0.05)
    raise AssertionError(f"no receipt for {tx_hash}")


@pytest.fixture(scope="module")
def probe(node: Any) -> tuple[Any, str, dict[str, Any]]:
    """(node, probe address, receipt of a ping(3) on it)."""
    account = node.accounts[7]
    deployed = _send(node.url, node.chain_id, account, data=PROBE_BYTECODE)
    address = to_checksum_address(deployed["contractAddress"])  # anvil's is lowercase
    ping = _send(node.url, node.chain_id, account, to=address, data=PING + _word(3))
    assert ping["status"] == "0x1"
    return node, address, ping


def test_block_receipts_are_the_receipts_of_the_block(probe: Any) -> None:
    node, _, ping = probe
    receipts = rpc(node.url, "eth_getBlockReceipts", ping["blockNumber"])
    assert ping in receipts
    assert rpc(node.url, "eth_getBlockReceipts", ping["blockHash"]) == receipts
    assert rpc(node.url, "eth_getBlockReceipts", hex(10**9)) is None


def test_create_access_list_lists_the_slots_a_call_touches(probe: Any) -> None:
    node, address, _ = probe
    sender = node.accounts[7].address
    tx = {"from": sender, "to": address, "data": PING + _word(2)}
    answer = rpc(node.url, "eth_createAccessList", tx)
    # ping reads and writes the counter (slot 0) of the probe itself; nothing else is touched.
    listed = [
        {"address": to_checksum_address(e["address"]), "storageKeys": e["storageKeys"]}
        for e in answer["accessList"]
    ]
    assert listed == [{"address": address, "storageKeys": ["0x" + _word(0)]}]
    # The gas it reports is what the call uses with the list: what an estimate with it gives
    # (ping refunds nothing, so used and needed agree but for the 63/64 margin).
    with_list = {**tx, "accessList": listed}
    used = int(answer["gasUsed"], 16)
    assert used <= int(rpc(node.url, "eth_estimateGas", with_list), 16) <= used * 64 // 63 + 2300
    assert int(rpc(node.url, "eth_estimateGas", tx), 16) != used  # the list changes the cost


def test_create_access_list_of_a_plain_transfer_is_empty(node: Any) -> None:
    tx = {"from": node.accounts[7].address, "to": STRANGER, "value": "0x1"}
    answer = rpc(node.url, "eth_createAccessList", tx)
    assert answer == {"accessList": [], "gasUsed": hex(21_000)}


def test_blob_base_fee_and_coinbase(node: Any) -> None:
    assert rpc(node.url, "eth_blobBaseFee") == "0x1"  # no blobs ever: the minimum
    assert int(rpc(node.url, "eth_coinbase"), 16) == 0 or node.kind == "anvil"


def test_call_with_state_overrides(probe: Any) -> None:
    node, address, _ = probe
    call = {"to": address, "data": COUNTER}
    stored = int(rpc(node.url, "eth_call", call, "latest"), 16)
    assert stored >= 3
    diff = {address: {"stateDiff": {"0x" + _word(0): "0x" + _word(42)}}}
    assert int(rpc(node.url, "eth_call", call, "latest", diff), 16) == 42
    # The override lived only in that call.
    assert int(rpc(node.url, "eth_call", call, "latest"), 16) == stored
    # A balance the sender lacks, and code where there is none.
    code = rpc(node.url, "eth_getCode", address, "latest")
    elsewhere = Account.create().address
    overrides = {STRANGER: {"balance": hex(10**18)}, elsewhere: {"code": code}}
    doubled = {"from": STRANGER, "to": elsewhere, "data": DOUBLE + _word(3), "value": "0x0"}
    assert int(rpc(node.url, "eth_call", doubled, "latest", overrides), 16) == 6
    paid = {"from": STRANGER, "to": STRANGER, "value": hex(10**17)}
    assert (
        rpc_error(node.url, "eth_call", paid, "latest")["message"]
        .lower()
        .startswith("insufficient funds")
    )
    assert rpc(node.url, "eth_call", paid, "latest", overrides) == "0x"
    assert int(rpc(node.url, "eth_estimateGas", paid, "latest", overrides), 16) == 21_000


def test_bad_state_overrides_are_invalid_params(node: Any) -> None:
    call = {"to": STRANGER}
    for overrides in (
        [1],
        {"0x12": {}},
        {STRANGER: {"balanse": "0x1"}},
        {STRANGER: {"state": {}, "stateDiff": {}}},
    ):
        error = rpc_error(node.url, "eth_call", call, "latest", overrides)
        assert error["code"] in (-32602, -32000), error  # anvil says -32602 or -32000


def test_pending_transaction_filter_sees_sent_transactions(probe: Any) -> None:
    node, address, _ = probe
    filter_id = rpc(node.url, "eth_newPendingTransactionFilter")
    receipt = _send(node.url, node.chain_id, node.accounts[7], to=address, data=PING + _word(1))
    assert receipt["transactionHash"] in rpc(node.url, "eth_getFilterChanges", filter_id)
    assert rpc(node.url, "eth_uninstallFilter", filter_id) is True


# --- filters nobody polls expire ---------------------------------------------------------------


@pytest.fixture
def short_lived_filters(tmp_path: Any) -> Iterator[tuple[str, list[Any]]]:
    with Node(NodeConfig(data_dir=tmp_path, port=0, accounts=1, filter_timeout=0.5)) as node:
        yield node.url, load_dev_accounts(tmp_path)


def test_filters_nobody_polls_expire(short_lived_filters: tuple[str, list[Any]]) -> None:
    url, (account,) = short_lived_filters
    polled = rpc(url, "eth_newBlockFilter")
    abandoned = [
        rpc(url, "eth_newBlockFilter"),
        rpc(url, "eth_newFilter", {"fromBlock": "latest"}),
        rpc(url, "eth_newPendingTransactionFilter"),
    ]
    for _ in range(4):
        time.sleep(0.2)
        rpc(url, "eth_getFilterChanges", polled)  # polling keeps a filter alive
    receipt = _send(url, 1337, account, to=STRANGER, value=1)
    assert receipt["blockHash"] in rpc(url, "eth_getFilterChanges", polled)
    for filter_id in abandoned:
        error = rpc_error(url, "eth_getFilterChanges", filter_id)
        assert error == {"code": -32000, "message": "filter not found"}
        assert rpc(url, "eth_uninstallFilter", filter_id) is False
    time.sleep(0.7)
    assert rpc_error(url, "eth_getFilterLogs", polled)["message"] == "filter not found"


def test_bad_access_list_is_invalid_params(short_lived_filters: tuple[str, list[Any]]) -> None:
    url, _ = short_lived_filters
    for access_list in ({}, [1], [{"address": "0x12"}], [{"address": STRANGER, "storageKeys": 1}]):
        error = rpc_error(url, "eth_call", {"to": STRANGER, "accessList": access_list})
        assert error["code"] == -32602, error
        assert "accessList" in error["message"] or "storage key" in error["message"], error
