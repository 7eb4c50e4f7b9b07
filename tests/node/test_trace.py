"""``debug_traceTransaction`` with the call tracer: a call through a forwarding contract (a
nested CALL), a revert with its reason deep down, a create. The frames are geth's callTracer
frames; anvil would answer the same, but runs here with ``--prune-history``, which keeps no
history to replay, so these run on the embedded node only."""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_utils import keccak, to_checksum_address
from node_helpers import PROBE_BYTECODE, rpc, rpc_error

PING = "0x" + keccak(text="ping(uint256)")[:4].hex()
CALL_TRACER = {"tracer": "callTracer"}


def forwarder_bytecode(target: str) -> str:
    """Init code of a contract that forwards its calldata to ``target`` with CALL and returns or
    reverts with what came back (hand-assembled; the runtime is 46 bytes)."""
    runtime = (
        "365f5f37"  # CALLDATASIZE PUSH0 PUSH0 CALLDATACOPY
        "5f5f365f5f"  # retSize retOffset argsSize argsOffset value
        "73" + target[2:].lower() + "5af1"  # PUSH20 target GAS CALL
        "3d5f5f3e"  # RETURNDATACOPY everything
        "602a57"  # success? jump to 0x2a
        "3d5ffd"  # REVERT with the return data
        "5b3d5ff3"  # JUMPDEST RETURN with the return data
    )
    assert len(runtime) == 92
    return "0x602e600a5f39602e5ff3" + runtime


def _send(node: Any, **tx: Any) -> dict[str, Any]:
    account = node.accounts[6]
    nonce = int(rpc(node.url, "eth_getTransactionCount", account.address, "latest"), 16)
    base = {"chainId": node.chain_id, "nonce": nonce, "gas": 500_000, "gasPrice": 5 * 10**10}
    raw = account.sign_transaction({**base, **tx}).raw_transaction
    tx_hash = rpc(node.url, "eth_sendRawTransaction", "0x" + raw.hex())
    for _ in range(100):
        receipt = rpc(node.url, "eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return dict(receipt)
        time.sleep(0.05)
    raise AssertionError("no receipt")


@pytest.fixture(scope="module")
def contracts(node: Any) -> tuple[Any, str, str]:
    if node.kind == "anvil":
        pytest.skip(
            "anvil runs with --prune-history here (DESIGN.md), which keeps nothing to trace"
        )
    probe = to_checksum_address(_send(node, data=PROBE_BYTECODE)["contractAddress"])
    forwarder = to_checksum_address(_send(node, data=forwarder_bytecode(probe))["contractAddress"])
    return node, probe, forwarder


def test_nested_call_is_traced(contracts: tuple[Any, str, str]) -> None:
    node, probe, forwarder = contracts
    data = PING + (4).to_bytes(32, "big").hex()
    receipt = _send(node, to=forwarder, data=data)
    trace = rpc(node.url, "debug_traceTransaction", receipt["transactionHash"], CALL_TRACER)
    sender = node.accounts[6].address.lower()
    assert {k: trace[k] for k in ("type", "from", "to", "value", "input")} == {
        "type": "CALL",
        "from": sender,
        "to": forwarder.lower(),  # lowercase, as geth and anvil write traces
        "value": "0x0",
        "input": data,
    }
    assert int(trace["gasUsed"], 16) == int(receipt["gasUsed"], 16)
    assert int(trace["gas"], 16) == 500_000 - 21_000 - 16 * 5 - 4 * 31  # after intrinsic gas
    (child,) = trace["calls"]
    assert child["type"] == "CALL" and child["input"] == data
    assert (child["from"], child["to"]) == (forwarder.lower(), probe.lower())
    assert "error" not in trace and "error" not in child
    top_only = {**CALL_TRACER, "tracerConfig": {"onlyTopCall": True}}
    assert "calls" not in rpc(
        node.url, "debug_traceTransaction", receipt["transactionHash"], top_only
    )


def test_revert_deep_down_is_traced_with_its_reason(contracts: tuple[Any, str, str]) -> None:
    node, _, forwarder = contracts
    receipt = _send(node, to=forwarder, data=PING + (5000).to_bytes(32, "big").hex())
    assert receipt["status"] == "0x0"
    trace = rpc(node.url, "debug_traceTransaction", receipt["transactionHash"], CALL_TRACER)
    (child,) = trace["calls"]
    for frame in (trace, child):
        assert frame["error"] == "execution reverted"
        assert frame["revertReason"] == "probe: too big"
        assert frame["output"].startswith("0x08c379a0")


def test_create_is_traced(contracts: tuple[Any, str, str]) -> None:
    node, probe, _ = contracts
    receipt = _send(node, data=forwarder_bytecode(probe))
    trace = rpc(node.url, "debug_traceTransaction", receipt["transactionHash"], CALL_TRACER)
    assert trace["type"] == "CREATE"
    assert to_checksum_address(trace["to"]) == to_checksum_address(receipt["contractAddress"])
    assert trace["output"] == "0x" + forwarder_bytecode(probe)[22:]
    assert int(trace["gasUsed"], 16) == int(receipt["gasUsed"], 16)


def test_trace_refusals(contracts: tuple[Any, str, str]) -> None:
    node, _, _ = contracts
    unknown = "0x" + "ab" * 32
    assert rpc_error(node.url, "debug_traceTransaction", unknown, CALL_TRACER)["code"] in (
        -32000,
        -32602,
        -32603,
    )
    error = rpc_error(node.url, "debug_traceTransaction", unknown)
    assert error["code"] == -32602 and "callTracer" in error["message"]
    error = rpc_error(node.url, "debug_traceTransaction", unknown, {"tracer": "prestateTracer"})
    assert error["code"] == -32602 and "callTracer" in error["message"]
