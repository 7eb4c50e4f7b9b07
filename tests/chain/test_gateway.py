"""Conformance suite for the gateway: every test runs on the embedded node and on anvil."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from databright.chain.artifacts import Artifact
from databright.chain.gateway import ContractClient, Gateway, connect
from databright.errors import (
    ChainError,
    ContractReverted,
    InsufficientFunds,
    NodeUnreachable,
    NonceTooLow,
    WrongChain,
)

COUNTER = Path(__file__).parent / "contracts" / "Counter.vy"


@pytest.fixture(scope="session")
def counter_artifact() -> Artifact:
    import vyper

    out = vyper.compile_code(
        COUNTER.read_text(),
        output_formats=["abi", "bytecode", "bytecode_runtime", "blueprint_bytecode"],
    )
    return Artifact(
        "Counter", out["abi"], out["bytecode"], out["bytecode_runtime"],
        out["blueprint_bytecode"], "test", "vyper",
    )  # fmt: skip


@pytest.fixture
def gw(node) -> Gateway:
    return connect(node.url, node.accounts[0])


@pytest.fixture
def counter(gw: Gateway, counter_artifact: Artifact) -> ContractClient:
    return gw.deploy(counter_artifact)


def test_connect_reports_chain_id(node) -> None:
    assert connect(node.url).chain_id == node.chain_id


def test_connect_refuses_wrong_chain(node) -> None:
    with pytest.raises(WrongChain, match=f"serves chain {node.chain_id}, not 5"):
        connect(node.url, chain_id=5)


def test_connect_to_dead_url_says_unreachable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NodeUnreachable, match="no Ethereum node answers at"):
        connect(f"http://127.0.0.1:{port}")


def test_transfer_moves_value(gw: Gateway, node) -> None:
    to = Account.create().address
    r = gw.transfer(to, 12345)
    assert r.status == 1 and r.gas_used == 21_000
    assert gw.balance(to) == 12345


def test_contract_write_read_and_event(counter: ContractClient, gw: Gateway) -> None:
    r = counter.transact("bump", 7)
    assert counter.call("counter") == 7
    ev = r.event("Bumped")
    assert ev.args == {"who": gw.address, "by": 7}
    logs = counter.events("Bumped", from_block=r.block_number)
    assert [e.args["by"] for e in logs] == [7]


def test_revert_reason_before_any_gas_is_spent(counter: ContractClient) -> None:
    with pytest.raises(ContractReverted, match=r"Counter\.bump reverted: counter: too big") as ei:
        counter.transact("bump", 100)
    assert ei.value.reason == "counter: too big"


def test_revert_reason_with_cached_gas(counter: ContractClient, gw: Gateway) -> None:
    counter.transact("bump", 1)  # caches the gas limit: the next bump is not estimated
    before = gw.block_number()
    with pytest.raises(ContractReverted, match="counter: too big"):
        counter.transact("bump", 100)
    assert gw.block_number() == before + 1  # it was mined and failed, the reason recovered
    counter.transact("bump", 2)  # and the nonce stays right afterwards
    assert counter.call("counter") == 3


def test_insufficient_funds(node) -> None:
    poor = connect(node.url, Account.create())
    with pytest.raises(InsufficientFunds, match="cannot pay for value plus gas"):
        poor.transfer(node.accounts[1].address, 10**18)


def test_nonce_too_low_then_resync(node) -> None:
    acct = node.accounts[3]
    a = connect(node.url, acct)
    b = connect(node.url, acct)
    a.transfer(node.accounts[4].address, 1)
    b.transfer(node.accounts[4].address, 1)  # b used the nonce a thinks is next
    with pytest.raises(NonceTooLow, match="another client used account"):
        a.transfer(node.accounts[4].address, 1)
    assert a.transfer(node.accounts[4].address, 1).status == 1


def test_unknown_function_is_refused(counter: ContractClient) -> None:
    with pytest.raises(ChainError, match="Counter has no function 'nope'"):
        counter.call("nope")


def test_write_without_account_is_refused(node, counter: ContractClient) -> None:
    ro = connect(node.url)
    with pytest.raises(ChainError, match="needs an account"):
        ro.send(counter.address)


def test_node_dies_mid_session(fresh_node, counter_artifact: Artifact) -> None:
    gw = connect(fresh_node.url, fresh_node.accounts[0])
    c = gw.deploy(counter_artifact)
    fresh_node.stop()
    with pytest.raises(NodeUnreachable, match="no Ethereum node answers"):
        c.transact("bump", 1)
    with pytest.raises(NodeUnreachable):
        c.call("counter")


def test_logs_from_block_zero_include_old_events(counter: ContractClient, gw: Gateway) -> None:
    first = counter.transact("bump", 3)
    counter.transact("bump", 4)  # a later block, so "latest" alone would miss the first
    logs = counter.events("Bumped", from_block=0)
    assert [e.block_number for e in logs][:2] == [first.block_number, first.block_number + 1]


def test_cached_gas_too_small_is_estimated_again(counter: ContractClient, gw: Gateway) -> None:
    counter.transact("grow", 1)  # caches a limit fit for one slot
    r = counter.transact("grow", 40)  # needs ~20x more: runs out once, then is re-estimated
    assert r.status == 1 and counter.call("slots", 39) == 40
    with pytest.raises(ChainError, match="ran out of gas with the limit given"):
        counter.transact("grow", 60, gas=60_000)
