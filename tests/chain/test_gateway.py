"""Conformance suite for the gateway: every test runs on the embedded node and on anvil."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_account import Account

from databright.chain.artifacts import Artifact
from databright.chain.gateway import ContractClient, Gateway, connect, set_default_timeout
from databright.errors import (
    ChainError,
    ContractReverted,
    InsufficientFunds,
    InvalidArgument,
    NodeUnreachable,
    NonceTooLow,
    WrongChain,
)

COUNTER = Path(__file__).parent / "contracts" / "Counter.vy"
# Vyper 0.4 declares no custom errors; Counter.fail raises this one by hand.
TOO_BIG = {
    "type": "error",
    "name": "TooBig",
    "inputs": [{"name": "by", "type": "uint256"}, {"name": "who", "type": "address"}],
}


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


def test_connect_reads_the_proxy_settings_of_its_environment(
    node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read once when connecting (not on every request), but read: a proxy the environment
    names is used, and NO_PROXY exempts a host from it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    with pytest.raises(NodeUnreachable):
        connect(node.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert connect(node.url).chain_id == node.chain_id


class _FakeNode:
    """A real HTTP server on a free port that answers every POST with ``answer(method)``:
    ``(status, body)``, or None to hang until the server closes."""

    def __init__(self, answer: Callable[[str], tuple[int, bytes] | None]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.closing = threading.Event()
        fake = self

        class Page(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                reply = answer(json.loads(body)["method"])
                if reply is None:
                    fake.closing.wait(30)
                    return
                status, payload = reply
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


def _rpc(result: object) -> tuple[int, bytes]:
    return 200, json.dumps({"jsonrpc": "2.0", "id": 0, "result": result}).encode()


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        ((404, b"not here"), NodeUnreachable, "with HTTP 404, not JSON-RPC"),
        ((200, b"<html>\x1b[31mhello</html>"), NodeUnreachable, "its answer is not JSON-RPC"),
        ((200, b"[1, 2]"), NodeUnreachable, "no result in its answer"),
        ((200, b"null"), NodeUnreachable, "no result in its answer"),
        (_rpc("zz"), ChainError, "answered eth_chainId with a malformed result"),
        (_rpc({"a": 1}), ChainError, "answered eth_chainId with a malformed result"),
        (None, NodeUnreachable, "did not answer eth_chainId within 0.5 s"),
    ],
    ids=["404", "html", "array", "null", "not-hex", "object", "hangs"],
)
def test_connect_to_what_is_not_a_node_says_so(
    reply: tuple[int, bytes] | None, error: type[Exception], words: str
) -> None:
    fake = _FakeNode(lambda method: reply)
    try:
        started = time.monotonic()
        with pytest.raises(error) as info:
            connect(fake.url, timeout=0.5)
        assert time.monotonic() - started < 5
        message = str(info.value)
        assert words in message and fake.url in message and "\n" not in message
        assert "hello" not in message  # what the server sent is not echoed
    finally:
        fake.close()


@pytest.mark.parametrize(
    ("method", "result"),
    [
        ("eth_getBalance", "0xzz"),
        ("eth_getCode", 12),
        ("eth_getTransactionCount", None),
        ("eth_blockNumber", [1]),
        ("eth_getBlockByNumber", {"number": "0x1"}),
        ("eth_getLogs", "0x"),
    ],
)
def test_a_malformed_result_after_connecting_is_one_sentence(method: str, result: object) -> None:
    fake = _FakeNode(lambda m: _rpc("0x539" if m == "eth_chainId" else result))
    try:
        gw = connect(fake.url, timeout=2)
        read = {
            "eth_getBalance": lambda: gw.balance(Account.create().address),
            "eth_getCode": lambda: gw.code(Account.create().address),
            "eth_getTransactionCount": lambda: gw.transaction_count(Account.create().address),
            "eth_blockNumber": gw.block_number,
            "eth_getBlockByNumber": gw.block_timestamp,
            "eth_getLogs": lambda: gw.logs(Account.create().address, []),
        }[method]
        with pytest.raises(ChainError, match=f"answered {method} with a malformed result"):
            read()
    finally:
        fake.close()


def test_a_url_without_a_scheme_says_so() -> None:
    with pytest.raises(InvalidArgument, match=r"write it as http://127\.0\.0\.1:8545"):
        connect("127.0.0.1:8545")
    with pytest.raises(InvalidArgument, match="is not an http:// or https:// URL"):
        connect("ftp://example.org")


def test_the_default_timeout_is_settable_and_positive() -> None:
    from databright.chain import gateway as gateway_module

    before = gateway_module.DEFAULT_TIMEOUT_S
    try:
        set_default_timeout(0.5)
        fake = _FakeNode(lambda method: None)
        try:
            with pytest.raises(NodeUnreachable, match=r"within 0\.5 s"):
                connect(fake.url)
        finally:
            fake.close()
        with pytest.raises(InvalidArgument, match="more than 0 s"):
            set_default_timeout(0)
    finally:
        set_default_timeout(before)


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


def test_revert_carries_the_node_code_and_data(counter: ContractClient) -> None:
    with pytest.raises(ContractReverted) as ei:
        counter.transact("bump", 100)
    assert ei.value.code == 3 and ei.value.data is not None
    assert ei.value.data.startswith("0x08c379a0")  # Error(string)
    with pytest.raises(ContractReverted) as ei:
        counter.call("fail", 2)
    assert ei.value.code == 3 and ei.value.data is not None


def test_every_kind_of_revert_is_decoded(gw: Gateway, counter_artifact: Artifact) -> None:
    art = dataclasses.replace(counter_artifact, abi=[*counter_artifact.abi, TOO_BIG])
    c = gw.deploy(art)
    expected = {
        0: None,
        1: "panic 0x11 (arithmetic overflow or underflow)",
        2: f"TooBig(by=2, who='{c.address}')",
        3: "malformed revert data 0x0102",
    }
    for kind, reason in expected.items():
        # A view call; a transaction refused at its estimate; one mined and failed, replayed.
        for how in (c.call, c.transact, functools.partial(c.transact, gas=100_000)):
            with pytest.raises(ContractReverted) as ei:
                how("fail", kind)
            assert ei.value.reason == reason, (kind, str(ei.value))
            assert ei.value.code == 3
            said = f"reverted: {reason}" if reason else "reverted without a reason"
            assert str(ei.value) == f"Counter.fail {said}"
    # A connection that never saw TooBig's ABI still names its selector.
    stranger = ContractClient(connect(gw.url), counter_artifact, c.address)
    with pytest.raises(ContractReverted, match=r"Counter\.fail reverted: unknown error 0x"):
        stranger.call("fail", 2)


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


# --- pipelined submission: several transactions in flight, receipts awaited together -------


def test_submitted_transactions_are_awaited_together_in_nonce_order(
    counter: ContractClient, gw: Gateway
) -> None:
    start = gw.transaction_count()
    pending = [counter.submit("bump", i) for i in range(1, 6)]
    assert [s.tx["nonce"] for s in pending] == list(range(start, start + 5))
    receipts = gw.wait_many(pending)
    assert [r.event("Bumped").args["by"] for r in receipts] == [1, 2, 3, 4, 5]
    blocks = [r.block_number for r in receipts]
    assert blocks == sorted(blocks)  # mined in nonce order
    assert counter.call("counter") == 15
    assert gw.transaction_count() == start + 5


def test_receipts_are_polled_in_one_batch_request(counter: ContractClient, gw: Gateway) -> None:
    pending = [counter.submit("bump", 1) for _ in range(4)]
    rounds: list[int] = []
    batch = gw._receipt_batch

    def counting(hashes: list[str]) -> list[object]:
        rounds.append(len(hashes))
        return batch(hashes)

    gw._receipt_batch = counting  # type: ignore[method-assign]
    gw.wait_many(pending)
    assert rounds and rounds[0] == 4 and gw._batches  # the node answered a real batch


def test_a_revert_in_the_middle_of_a_pipeline_names_its_reason(
    counter: ContractClient, gw: Gateway
) -> None:
    counter.transact("bump", 1)  # caches the gas limit: the pipelined bumps are not estimated
    pending = [counter.submit("bump", 2), counter.submit("bump", 100), counter.submit("bump", 3)]
    with pytest.raises(ContractReverted, match="counter: too big"):
        gw.wait_many(pending)
    assert counter.call("counter") == 6  # the ones around it were mined
    assert counter.transact("bump", 4).status == 1  # and the nonce counter stayed right
    assert gw.transaction_count() == gw._nonce


def test_a_refused_submission_resyncs_the_nonce(node, counter: ContractClient) -> None:
    gw = connect(node.url, node.accounts[6])
    client = ContractClient(gw, counter.artifact, counter.address)
    first = client.submit("bump", 1)
    too_much = 10**30  # more than the account holds: the node refuses to take it
    with pytest.raises(InsufficientFunds):
        client.submit("bump", 1, value=too_much)
    assert gw._nonce is None  # asked afresh from the node on the next send
    second = client.submit("bump", 1)
    assert second.tx["nonce"] == first.tx["nonce"] + 1
    assert [r.status for r in gw.wait_many([first, second])] == [1, 1]


def test_pipelined_gas_too_small_is_resent_once(counter: ContractClient, gw: Gateway) -> None:
    counter.transact("grow", 1)  # caches a limit fit for one slot
    pending = [counter.submit("grow", 30), counter.submit("bump", 1)]
    receipts = gw.wait_many(pending)
    assert [r.status for r in receipts] == [1, 1]
    assert counter.call("slots", 29) == 30


def test_calls_in_one_batch_answer_as_single_calls(counter: ContractClient, gw: Gateway) -> None:
    counter.transact("bump", 7)
    assert counter.call_many([("counter", ()), ("slots", (0,))]) == [7, 0]
    with pytest.raises(ContractReverted, match="counter: too big"):
        counter.call_many([("counter", ()), ("bump", (100,))])
    assert gw._batches


def test_a_node_without_batches_is_asked_one_by_one(counter: ContractClient, gw: Gateway) -> None:
    provider = gw.w3.provider

    def refuse(calls: object) -> dict[str, object]:  # what a node without batches answers
        return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batch"}}

    provider.make_batch_request = refuse  # type: ignore[attr-defined]
    pending = [counter.submit("bump", 1) for _ in range(3)]
    assert [r.status for r in gw.wait_many(pending)] == [1, 1, 1]
    assert not gw._batches
    assert counter.call_many([("counter", ()), ("counter", ())]) == [3, 3]


def test_a_read_that_races_a_new_block_is_asked_again() -> None:
    """anvil sometimes fails a read of "latest" that lands as it mines a block
    (foundry-rs/foundry#10709); the gateway asks once more instead of failing."""
    calls: list[str] = []

    def answer(method: str) -> tuple[int, bytes]:
        calls.append(method)
        if method == "eth_chainId":
            return _rpc("0x1")
        if calls.count("eth_call") == 1:
            error = {"code": -32602, "message": "BlockOutOfRangeError: block height is 8 but "
                     "requested was 7"}  # fmt: skip
            return 200, json.dumps({"jsonrpc": "2.0", "id": 0, "error": error}).encode()
        return _rpc("0x" + "00" * 31 + "07")

    fake = _FakeNode(answer)
    try:
        gw = connect(fake.url)
        assert gw.call("0x" + "11" * 20, b"") == bytes(31) + b"\x07"
        assert calls.count("eth_call") == 2
    finally:
        fake.close()
