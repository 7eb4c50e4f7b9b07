"""The revert decoder and the translation of JSON-RPC errors, without a node."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from databright.chain.reverts import (
    ERROR_SELECTOR,
    PANIC_SELECTOR,
    RevertDecoder,
    decode_revert,
    node_error,
)
from databright.errors import (
    ChainError,
    ContractReverted,
    InsufficientFunds,
    NonceTooLow,
)

ALICE = "0x00000000000000000000000000000000000000A1"
TOO_BIG_ABI = [
    {
        "type": "error",
        "name": "TooBig",
        "inputs": [{"name": "by", "type": "uint256"}, {"name": "who", "type": "address"}],
    }
]
TOO_BIG = keccak(text="TooBig(uint256,address)")[:4]


def test_selectors_are_the_standard_ones() -> None:
    assert keccak(text="Error(string)")[:4] == ERROR_SELECTOR
    assert keccak(text="Panic(uint256)")[:4] == PANIC_SELECTOR


def test_error_string() -> None:
    data = ERROR_SELECTOR + encode(["string"], ["data_market: voting closed"])
    r = decode_revert("0x" + data.hex())
    assert (r.kind, r.name, r.reason) == ("error", "Error", "data_market: voting closed")
    assert r.args == ("data_market: voting closed",) and r.selector == ERROR_SELECTOR


def test_error_string_from_bytes_and_empty_string() -> None:
    assert decode_revert(ERROR_SELECTOR + encode(["string"], ["x"])).reason == "x"
    assert decode_revert(ERROR_SELECTOR + encode(["string"], [""])).reason == ""


@pytest.mark.parametrize(
    ("code", "meaning"),
    [(0x01, "assertion failed"), (0x11, "overflow"), (0x12, "by zero"), (0x32, "out of bounds")],
)
def test_panic_codes_say_what_they_mean(code: int, meaning: str) -> None:
    r = decode_revert(PANIC_SELECTOR + encode(["uint256"], [code]))
    assert r.kind == "panic" and r.args == (code,) and r.name == "Panic"
    assert r.reason is not None and r.reason.startswith(f"panic 0x{code:02x} (")
    assert meaning in r.reason


def test_unknown_panic_code_is_still_a_panic() -> None:
    r = decode_revert(PANIC_SELECTOR + encode(["uint256"], [0x99]))
    assert r.kind == "panic" and r.reason == "panic 0x99 (unknown panic code)"


def test_custom_error_from_the_abi_given() -> None:
    data = TOO_BIG + encode(["uint256", "address"], [7, ALICE])
    r = decode_revert(data, [TOO_BIG_ABI])
    assert r.kind == "custom" and r.name == "TooBig"
    assert r.args == (7, ALICE)  # addresses checksummed, as web3 gives them
    assert r.reason == f"TooBig(by=7, who='{ALICE}')"


def test_decoder_learns_abis_later() -> None:
    decoder = RevertDecoder()
    data = TOO_BIG + encode(["uint256", "address"], [7, ALICE])
    assert decoder.decode(data).kind == "unknown"
    decoder.add(TOO_BIG_ABI)
    assert decoder.decode(data).kind == "custom"


def test_unknown_selector_is_named() -> None:
    r = decode_revert("0xdeadbeef" + "00" * 32)
    assert r.kind == "unknown" and r.reason == "unknown error 0xdeadbeef"
    assert r.selector == bytes.fromhex("deadbeef") and r.name is None


@pytest.mark.parametrize("empty", ["0x", b"", ""])
def test_empty_data_is_a_revert_without_reason(empty: str | bytes) -> None:
    r = decode_revert(empty)
    assert r.kind == "empty" and r.reason is None and r.selector is None


@pytest.mark.parametrize(
    "data",
    [
        "0x0102",  # shorter than a selector
        "0x08c379a0",  # Error(string) without its string
        "0x08c379a0" + "00" * 31 + "20" + "00" * 31 + "ff",  # a string longer than the data
        "0x4e487b71" + "00" * 5,  # Panic(uint256) cut short
        "not hex",
    ],
)
def test_malformed_data_is_reported_not_raised(data: str) -> None:
    r = decode_revert(data)
    assert r.kind == "malformed" and r.reason is not None and "malformed" in r.reason


def test_malformed_custom_error() -> None:
    r = decode_revert(TOO_BIG + b"\x00" * 8, [TOO_BIG_ABI])
    assert r.kind == "malformed" and r.name == "TooBig"


def test_no_data_at_all_takes_the_nodes_message() -> None:
    decoder = RevertDecoder()
    r = decoder.decode(None, "execution reverted: counter: too big")
    assert (r.kind, r.reason) == ("error", "counter: too big")
    assert decoder.decode(None, "execution reverted").kind == "empty"
    assert decoder.decode(None, None).reason is None


def test_node_error_revert_carries_code_and_data() -> None:
    data = "0x" + (ERROR_SELECTOR + encode(["string"], ["counter: too big"])).hex()
    # The message says something else on purpose: the data decides.
    err = node_error(
        "Counter.bump",
        {"code": 3, "message": "execution reverted: whatever", "data": data},
        RevertDecoder(),
        ALICE,
    )
    assert isinstance(err, ContractReverted)
    assert str(err) == "Counter.bump reverted: counter: too big"
    assert (err.reason, err.code, err.data) == ("counter: too big", 3, data)


def test_node_error_revert_without_reason() -> None:
    err = node_error(
        "f", {"code": 3, "message": "execution reverted", "data": "0x"}, RevertDecoder(), ALICE
    )
    assert isinstance(err, ContractReverted) and err.reason is None
    assert str(err) == "f reverted without a reason" and err.code == 3


def test_node_error_nested_data_and_other_codes() -> None:
    data = "0x" + (PANIC_SELECTOR + encode(["uint256"], [0x12])).hex()
    err = node_error(
        "f",
        {"code": -32000, "message": "execution reverted", "data": {"data": data}},
        RevertDecoder(),
        ALICE,
    )
    assert isinstance(err, ContractReverted) and err.code == -32000 and err.data == data
    assert err.reason == "panic 0x12 (division or modulo by zero)"


def test_node_error_refusals() -> None:
    funds = node_error(
        "send", {"code": -32003, "message": "Insufficient funds for gas"}, RevertDecoder(), ALICE
    )
    assert isinstance(funds, InsufficientFunds) and funds.code == -32003
    assert f"account {ALICE} cannot pay" in str(funds)
    nonce = node_error("send", {"code": -32000, "message": "nonce too low"}, RevertDecoder(), ALICE)
    assert isinstance(nonce, NonceTooLow) and nonce.code == -32000
    other = node_error(
        "eth_x", {"code": -32601, "message": "method not found"}, RevertDecoder(), ALICE
    )
    assert type(other) is ChainError and other.code == -32601 and other.data is None
    assert str(other) == "eth_x failed: the node answered 'method not found'"
    plain = node_error("eth_x", "broken", RevertDecoder(), ALICE)
    assert type(plain) is ChainError and plain.code is None
