"""Wire conversion of the embedded node: JSON-RPC values <-> eth-tester's Python values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from databright.node import wire
from databright.node.wire import INVALID_PARAMS, BlockHashRef, RpcError

ADDRESS = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
HASH = "0x" + "ab" * 32


def _invalid(fn: Any, *args: Any) -> str:
    with pytest.raises(RpcError) as info:
        fn(*args)
    assert info.value.code == INVALID_PARAMS
    return info.value.message


# --- inbound ---------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_quantity_round_trips(value: int) -> None:
    assert wire.quantity_in(wire.quantity_out(value)) == value


@pytest.mark.parametrize(("text", "value"), [("0x0", 0), ("0x1a", 26), ("0x00ff", 255), (7, 7)])
def test_quantity_in_accepts_hex_and_json_integers(text: Any, value: int) -> None:
    assert wire.quantity_in(text) == value


@pytest.mark.parametrize("bad", ["0x", "1a", "0xzz", "", None, True, -1, 1.5, "0x" + "f" * 65])
def test_quantity_in_rejects_non_quantities(bad: Any) -> None:
    assert "quantity" in _invalid(wire.quantity_in, bad) or "range" in _invalid(
        wire.quantity_in, bad
    )


def test_data_in_lowercases_and_requires_even_hex() -> None:
    assert wire.data_in("0xABcd") == "0xabcd"
    assert wire.data_in("0x") == "0x"
    assert "hex bytes" in _invalid(wire.data_in, "0xabc")
    assert "hex bytes" in _invalid(wire.data_in, "abcd")
    assert "hex bytes" in _invalid(wire.data_in, 12)


def test_hash_in_needs_32_bytes() -> None:
    assert wire.hash_in(HASH.upper().replace("0X", "0x")) == HASH
    assert "32 bytes" in _invalid(wire.hash_in, "0x" + "ab" * 31)


def test_address_in_checksums_any_case() -> None:
    assert wire.address_in(ADDRESS.lower()) == ADDRESS
    assert "20-byte" in _invalid(wire.address_in, "0x1234")
    assert "20-byte" in _invalid(wire.address_in, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("latest", "latest"),
        ("pending", "pending"),
        ("safe", "safe"),
        ("0x10", 16),
        ({"blockNumber": "0x2"}, 2),
        ({"blockHash": HASH}, BlockHashRef(HASH)),
    ],
)
def test_block_id_in(value: Any, expected: Any) -> None:
    assert wire.block_id_in(value) == expected


@pytest.mark.parametrize("bad", ["newest", "0xq", {}, [], None])
def test_block_id_in_rejects(bad: Any) -> None:
    message = _invalid(wire.block_id_in, bad)
    assert "block" in message


def test_bool_in() -> None:
    assert wire.bool_in(True) is True
    assert "true or false" in _invalid(wire.bool_in, "true")


def test_transaction_in_maps_camel_case_and_hex() -> None:
    tx = wire.transaction_in(
        {
            "from": ADDRESS.lower(),
            "to": ADDRESS,
            "gas": "0x5208",
            "maxFeePerGas": "0x3b9aca00",
            "maxPriorityFeePerGas": "0x1",
            "value": "0x0",
            "input": "0xABCD",
            "type": "0x2",
            "accessList": [],
            "chainId": "0x539",
        }
    )
    assert tx == {
        "from": ADDRESS,
        "to": ADDRESS,
        "gas": 21000,
        "max_fee_per_gas": 10**9,
        "max_priority_fee_per_gas": 1,
        "value": 0,
        "data": "0xabcd",
        "chain_id": 1337,
    }


def test_transaction_in_drops_nulls() -> None:
    assert wire.transaction_in({"to": ADDRESS, "from": None, "data": None}) == {"to": ADDRESS}


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"gasPrice": "0x1", "maxFeePerGas": "0x1"}, "mixes gasPrice"),
        ({"data": "0x01", "input": "0x02"}, "differ"),
        ({"colour": "red"}, "unknown transaction field"),
        ({"blobVersionedHashes": []}, "blob"),
        ({"gas": "lots"}, "gas"),
        ("0x1234", "JSON object"),
    ],
)
def test_transaction_in_rejects(bad: Any, needle: str) -> None:
    assert needle in _invalid(wire.transaction_in, bad)


def test_filter_in_normalizes_address_and_topics() -> None:
    out = wire.filter_in(
        {
            "fromBlock": "0x1",
            "toBlock": "latest",
            "address": ADDRESS,
            "topics": [HASH, None, [HASH]],
        }
    )
    assert out == {
        "from_block": 1,
        "to_block": "latest",
        "address": [ADDRESS],
        "topics": [HASH, None, [HASH]],
        "block_hash": None,
    }
    assert wire.filter_in({"blockHash": HASH})["block_hash"] == HASH


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"blockHash": HASH, "fromBlock": "0x1"}, "blockHash together"),
        ({"topics": [None] * 5}, "at most 4"),
        ({"topics": ["0x12"]}, "topic"),
        ({"address": ["0x12"]}, "address"),
        ({"from": "0x1"}, "unknown filter field"),
    ],
)
def test_filter_in_rejects(bad: Any, needle: str) -> None:
    assert needle in _invalid(wire.filter_in, bad)


def test_percentiles_in() -> None:
    assert wire.percentiles_in(None) == []
    assert wire.percentiles_in([10, 50.5]) == [10.0, 50.5]
    assert "ascending" in _invalid(wire.percentiles_in, [50, 10])
    assert "[0, 100]" in _invalid(wire.percentiles_in, [101])


# --- outbound --------------------------------------------------------------------------


def test_to_wire_converts_recursively() -> None:
    assert wire.to_wire(
        {"gas_used": 21000, "ok": True, "ratio": 0.5, "raw": b"\x01", "items": (1, None)}
    ) == {"gasUsed": "0x5208", "ok": True, "ratio": 0.5, "raw": "0x01", "items": ["0x1", None]}
    with pytest.raises(TypeError):
        wire.to_wire(object())


def test_snake_to_camel() -> None:
    assert wire.snake_to_camel("parent_beacon_block_root") == "parentBeaconBlockRoot"
    assert wire.snake_to_camel("sha3_uncles") == "sha3Uncles"
    assert wire.snake_to_camel("hash") == "hash"


def _tester_tx(**overrides: Any) -> dict[str, Any]:
    tx: dict[str, Any] = {
        "type": "0x2",
        "hash": HASH,
        "nonce": 3,
        "block_hash": HASH,
        "block_number": 5,
        "transaction_index": 0,
        "from": ADDRESS,
        "to": ADDRESS,
        "value": 0,
        "gas": 21000,
        "data": "0x",
        "chain_id": 1337,
        "access_list": ({"address": ADDRESS, "storage_keys": (1,)},),
        "max_fee_per_gas": 2,
        "max_priority_fee_per_gas": 1,
        "gas_price": 2,
        "v": 1,
        "s": 5,
        "r": 6,
        "y_parity": 1,
    }
    tx.update(overrides)
    return tx


def test_transaction_out_renames_and_hexes() -> None:
    out = wire.transaction_out(_tester_tx())
    assert out["input"] == "0x" and "data" not in out
    assert out["blockNumber"] == "0x5" and out["transactionIndex"] == "0x0"
    assert out["type"] == "0x2" and out["yParity"] == "0x1"
    assert out["accessList"] == [{"address": ADDRESS, "storageKeys": ["0x" + "00" * 31 + "01"]}]


def test_transaction_out_contract_creation_has_null_to() -> None:
    assert wire.transaction_out(_tester_tx(to=""))["to"] is None


def test_block_out_renames_miner_and_widens_bloom() -> None:
    out = wire.block_out(
        {
            "number": 1,
            "coinbase": ADDRESS,
            "logs_bloom": 1,
            "base_fee_per_gas": 7,
            "transactions": [_tester_tx(), HASH],
        }
    )
    assert out["miner"] == ADDRESS and "coinbase" not in out
    assert out["logsBloom"] == "0x" + "00" * 255 + "01"
    assert out["baseFeePerGas"] == "0x7"
    assert out["transactions"][0]["input"] == "0x"
    assert out["transactions"][1] == HASH


def test_receipt_out_adds_bloom_and_block_wide_log_index() -> None:
    receipt = {
        "transaction_hash": HASH,
        "status": 1,
        "type": 2,
        "state_root": b"\x01",
        "contract_address": None,
        "to": ADDRESS,
        "logs": [{"type": "mined", "log_index": 0, "topics": [HASH], "data": "0x"}],
    }
    out = wire.receipt_out(receipt, logs_bloom=0, log_index_offset=3)
    assert out["status"] == "0x1" and out["type"] == "0x2"
    assert "stateRoot" not in out and out["contractAddress"] is None
    assert out["logsBloom"] == "0x" + "00" * 256
    assert out["logs"] == [{"logIndex": "0x3", "topics": [HASH], "data": "0x", "removed": False}]


def test_rpc_error_json_omits_missing_data() -> None:
    assert RpcError(-32601, "nope").to_json() == {"code": -32601, "message": "nope"}
    assert RpcError(3, "execution reverted", "0x").to_json()["data"] == "0x"
