"""Mixed JSON-RPC batches (``Gateway.ask_batch``) on both nodes, and the direct transport a
polling caller (the indexer) posts them on, against a fake node that misbehaves on purpose."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from web3 import Web3

from databright.chain.gateway import Call, Gateway, connect
from databright.errors import ChainError, NodeUnreachable

Answer = Callable[[str, list[Any]], Any]


class _Error:
    """What a fake node answers a call with as a JSON-RPC error."""

    def __init__(self, message: str) -> None:
        self.message = message


def _chain(method: str, params: list[Any]) -> Any:
    """A fake chain: chain id 1, head 7, any block a header of its number."""
    if method == "eth_chainId":
        return "0x1"
    if method == "eth_blockNumber":
        return "0x7"
    if method == "eth_getBlockByNumber":
        return {"number": params[0], "hash": "0x" + "11" * 32}
    return _Error(f"no method {method}")


class _FakeNode:
    """An HTTP/1.1 JSON-RPC server on a free port that answers each call with ``answer``,
    batches too (in reverse order: ids say which is which). It counts connections and
    posts; ``drop`` closes each connection after its answer without saying so, as a node's
    idle timeout does; ``reply`` replaces the answer to a batch with ``(status, body)``, or
    None to hang."""

    def __init__(self, answer: Answer = _chain) -> None:
        self.connections = 0
        self.posts = 0
        self.drop = False
        self.reply: Callable[[], tuple[int, bytes] | None] | None = None
        self.closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                fake.connections += 1

            def do_POST(self) -> None:
                fake.posts += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if isinstance(body, list) and fake.reply is not None:
                    reply = fake.reply()
                    if reply is None:
                        fake.closing.wait(30)
                        return
                    status, payload = reply
                elif isinstance(body, list):
                    status, payload = 200, json.dumps([fake.one(c) for c in body][::-1]).encode()
                else:
                    status, payload = 200, json.dumps(fake.one(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.close_connection = fake.drop

            def log_message(self, *args: object) -> None:
                pass

        self.answer = answer
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def one(self, call: dict[str, Any]) -> dict[str, Any]:
        result = self.answer(call["method"], call.get("params", []))
        if isinstance(result, _Error):
            return {
                "jsonrpc": "2.0",
                "id": call["id"],
                "error": {"code": -32601, "message": result.message},
            }
        return {"jsonrpc": "2.0", "id": call["id"], "result": result}

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[_FakeNode]:
    node = _FakeNode()
    yield node
    node.close()


def _head_and_block(block: int) -> list[Call]:
    return [
        Call("eth_blockNumber", [], "the head", lambda r: int(r, 16)),
        Call("eth_getBlockByNumber", [hex(block), False], "a header"),
        Call("eth_chainId", [], "the chain id", lambda r: int(r, 16)),
    ]


@pytest.mark.parametrize("direct", [False, True], ids=["web3", "direct"])
def test_a_batch_of_several_methods_is_one_request(node, direct: bool) -> None:
    gw = connect(node.url)
    batches: list[int] = []
    many = gw.w3.provider.make_batch_request

    def counted(batch: list[Any]) -> Any:
        batches.append(len(batch))
        return many(batch)

    gw.w3.provider.make_batch_request = counted  # type: ignore[method-assign]
    head, block, chain = gw.ask_batch(_head_and_block(0), direct=direct)
    assert head == gw.block_number() and chain == node.chain_id
    assert block["number"] == "0x0" and block["hash"].startswith("0x")
    assert batches == ([] if direct else [3])
    assert gw.ask_many("eth_chainId", [[], []], "ids", lambda r: int(r, 16)) == [chain, chain]


def test_an_error_in_a_batch_raises_or_takes_its_calls_place(node) -> None:
    gw = connect(node.url)
    calls = [*_head_and_block(0)[:1], Call("databright_noSuchMethod", [], "a missing method")]
    with pytest.raises(ChainError, match="a missing method failed"):
        gw.ask_batch(calls)
    head, missing = gw.ask_batch(calls, errors_in_place=True, direct=True)
    assert head == gw.block_number()
    assert isinstance(missing, ChainError) and "a missing method failed" in str(missing)


def test_direct_batches_share_one_kept_open_connection_in_order(fake: _FakeNode) -> None:
    gw = connect(fake.url)
    opened = fake.connections  # connect()'s, through requests
    for block in range(5):
        assert gw.ask_batch(_head_and_block(block), direct=True)[:2] == [
            7,
            {"number": hex(block), "hash": "0x" + "11" * 32},
        ]  # answered in reverse, put back in order
    assert fake.connections == opened + 1


def test_a_connection_the_node_closed_is_opened_again(fake: _FakeNode) -> None:
    gw = connect(fake.url)
    fake.drop = True
    posts = fake.posts
    for _ in range(3):
        assert gw.ask_batch(_head_and_block(1), direct=True)[0] == 7
    assert fake.posts == posts + 3  # each batch answered once: none was lost or doubled


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        ((404, b"not here"), "answered eth_blockNumber, eth_getBlockByNumber and eth_chainId "
         "with HTTP 404, not JSON-RPC"),
        ((200, b"<html>hello</html>"), "its answer is not JSON-RPC"),
        (None, "did not answer eth_blockNumber, eth_getBlockByNumber and eth_chainId within 0.5 s"),
    ],
    ids=["404", "html", "hangs"],
)  # fmt: skip
def test_what_a_direct_batch_meets_is_one_sentence(
    fake: _FakeNode, reply: tuple[int, bytes] | None, words: str
) -> None:
    gw = connect(fake.url, timeout=0.5)
    fake.reply = lambda: reply
    with pytest.raises(NodeUnreachable) as info:
        gw.ask_batch(_head_and_block(1), direct=True)
    message = str(info.value)
    assert words in message and fake.url in message and "\n" not in message
    assert "hello" not in message  # what the server sent is not echoed
    fake.reply = None
    assert gw.ask_batch(_head_and_block(1), direct=True)[0] == 7  # and the next one works


def test_a_direct_batch_to_a_node_that_is_gone_says_so(fake: _FakeNode) -> None:
    gw = connect(fake.url)
    fake.close()
    with pytest.raises(NodeUnreachable, match="no Ethereum node answers at"):
        gw.ask_batch(_head_and_block(1), direct=True)


def test_a_node_without_batches_is_asked_one_by_one_when_direct(fake: _FakeNode) -> None:
    gw = connect(fake.url)
    error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "no batch"}}
    fake.reply = lambda: (200, json.dumps(error).encode())
    assert gw.ask_batch(_head_and_block(3), direct=True)[:2] == [
        7,
        {"number": "0x3", "hash": "0x" + "11" * 32},
    ]
    assert not gw._batches


def test_direct_posts_only_to_a_plain_http_node_without_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    def direct(url: str) -> bool:
        return Gateway(Web3(), url, 1, None)._direct_post() is not None

    assert direct("http://127.0.0.1:8545")
    assert not direct("https://rpc.example.org")  # TLS: requests' certificates and bundle
    assert not direct("http://user:secret@127.0.0.1:8545")  # credentials: requests' auth
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert not direct("http://10.1.2.3:8545")  # the proxy requests would go through
    monkeypatch.setenv("NO_PROXY", "10.1.2.3")
    assert direct("http://10.1.2.3:8545")


def test_each_thread_posts_on_a_connection_of_its_own(fake: _FakeNode) -> None:
    gw = connect(fake.url)
    opened = fake.connections
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            for _ in range(20):
                assert gw.ask_batch(_head_and_block(2), direct=True)[0] == 7
        except BaseException as exc:  # reported below: an assert in a thread is lost
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and fake.connections == opened + 3


def test_the_direct_connection_sends_without_delay(fake: _FakeNode) -> None:
    gw = connect(fake.url)
    gw.ask_batch(_head_and_block(2), direct=True)
    post = gw._direct_post()
    assert post is not None
    sock = post._connection()[0].sock
    assert sock is not None and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
