"""One connection type for every EVM node: the embedded node, anvil, or any JSON-RPC endpoint.

``connect(url, account=...)`` signs locally (eth-account with coincurve), tracks the nonce
locally and caches gas limits per contract function, so a transaction costs one
``eth_sendRawTransaction`` plus receipt polling instead of three extra round trips for nonce,
gas estimate and fees. Every node call goes through ``request``, below web3's formatters, and
its errors are translated (``databright.chain.reverts``) into the ``databright.errors``
vocabulary with one sentence saying what happened and what to do.

Why caching gas is safe: a cached limit carries 30% headroom; if a transaction still runs out
of gas, the gateway notices (failed receipt, no revert reason, gas used == limit), estimates
afresh and resends once. A transaction whose function was never estimated is estimated first,
which also surfaces a revert reason before any gas is spent.

Pipelining: ``submit`` signs with the next local nonce and sends without waiting, and
``wait_many`` awaits many transactions together (one JSON-RPC batch of receipt queries per
poll round), so several transactions of one account are in flight at once. Nonce order is
mining order: a transaction that needs an earlier one mined can follow it at once. Only a
transaction that needs an earlier one for its gas estimate must wait for it (or carry an
explicit gas limit, or share the cached limit of its function).

Batches: ``ask_batch`` sends calls of any methods in one JSON-RPC batch request (the
indexer's step is one: the head, headers and logs), optionally (``direct``) on a keep-alive
connection of the calling thread's own below requests and web3, whose layers cost a local
node's reader more CPU than the node spends answering.

ABI encoding lives in ``abi``, receipts and events in ``events``, contract clients in
``contract``; ``ContractClient``, ``Event``, ``EventDecoder`` and ``Receipt`` are importable from
here as well.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

from databright.chain.abi import ABIMismatch, constructor_data, quantity
from databright.chain.artifacts import Artifact, load_artifact
from databright.chain.contract import ContractClient
from databright.chain.events import Event, EventDecoder, Receipt
from databright.chain.reverts import RevertDecoder, node_error
from databright.errors import (
    ChainError,
    ContractNotDeployed,
    ContractReverted,
    InvalidArgument,
    NodeUnreachable,
    NonceTooLow,
    WrongChain,
)
from databright.types import Address, Wei

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "Call",
    "ContractClient",
    "Event",
    "EventDecoder",
    "Gateway",
    "Receipt",
    "Submitted",
    "connect",
    "set_default_timeout",
]

C = TypeVar("C", bound=ContractClient)
T = TypeVar("T")

GAS_HEADROOM = 1.3
#: Seconds one JSON-RPC request may take; ``connect(timeout=...)`` or the CLI's --rpc-timeout.
DEFAULT_TIMEOUT_S = 30.0
FEE_REFRESH_S = 2.0
DEFAULT_TIP = Web3.to_wei(1, "gwei")


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.ConnectionError | ConnectionError)


def _block_tag(block: int | str) -> str:
    return block if isinstance(block, str) else hex(block)


def _hex_bytes(result: Any) -> bytes:
    if result is not None and not isinstance(result, str):
        raise TypeError("not a hex string")
    return bytes(HexBytes(result or "0x"))


def _log_list(result: Any) -> list[Any]:
    if result is not None and not isinstance(result, list):
        raise TypeError("not a list")
    return list(result or [])


def _optional_dict(result: Any) -> dict[str, Any] | None:
    if result is not None and not isinstance(result, dict):
        raise TypeError("not an object")
    return result


def _timestamp(result: Any) -> int | None:
    header = _optional_dict(result)
    return None if header is None else quantity(header["timestamp"])


def _receipt(result: Any) -> dict[str, Any] | None:
    """A receipt with the fields the gateway reads checked, or None while not mined."""
    receipt = _optional_dict(result)
    if receipt is not None:
        for key in ("status", "gasUsed", "blockNumber"):
            quantity(receipt[key])
    return receipt


def _raced_a_block(response: Any, params: list[Any]) -> bool:
    """Whether a read of "latest" or "pending" failed because the node mined a block while
    answering: anvil then says "BlockOutOfRangeError: block height is N but requested was M"
    (foundry-rs/foundry#10709). Asked again, the same read answers."""
    if not isinstance(response, dict) or not isinstance(response.get("error"), dict):
        return False
    message = str(response["error"].get("message", ""))
    return "BlockOutOfRange" in message and bool(params) and params[-1] in ("latest", "pending")


def _wire_call(tx: dict[str, Any]) -> dict[str, str]:
    """A transaction's call fields in JSON-RPC form (``eth_call``, ``eth_estimateGas``)."""
    out = {k: str(tx[k]) for k in ("from", "to") if tx.get(k)}
    out["data"] = HexBytes(tx.get("data", b"")).to_0x_hex()
    for k in ("value", "gas"):
        if k in tx:
            out[k] = hex(int(tx[k]))
    return out


@dataclass(frozen=True)
class Submitted:
    """A transaction sent and not yet awaited: what ``Gateway.submit`` returns and
    ``Gateway.wait_many`` takes. ``tx`` is the signed transaction's fields (for a revert's
    replay and an out-of-gas resend)."""

    hash: str
    tx: dict[str, Any]
    what: str
    decoder: EventDecoder | None
    explicit_gas: bool


def _as_is(result: Any) -> Any:
    return result


@dataclass(frozen=True)
class Call:
    """One call of a batch (``Gateway.ask_batch``): the method and its params, what it is for
    (the words of its error, as ``ask``'s ``what``) and how its result is read (``parse``, as
    ``ask``'s; by default the result as the node sent it)."""

    method: str
    params: list[Any]
    what: str
    parse: Callable[[Any], Any] = _as_is


def _methods(calls: Sequence[Call]) -> str:
    """The methods of a batch, for a sentence: "eth_blockNumber and eth_getLogs"."""
    names = list(dict.fromkeys(c.method for c in calls)) or ["a batch"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class _HTTPStatus(Exception):
    """A direct post answered with an HTTP status other than 200."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _DirectPost:
    """JSON-RPC batches posted with http.client on a keep-alive connection of each thread's
    own (``Gateway.ask_batch``'s ``direct``): the bytes out and the bytes back, without the
    request preparing, settings merging, adapters and pools of requests (and web3's
    encoding and logging above it)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self._local = threading.local()

    def post(self, batch: list[tuple[str, list[Any]]]) -> Any:
        """The node's answer to ``batch``, ordered by request id (what web3 returns)."""
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in enumerate(batch)
            ]
        ).encode()
        for attempt in range(2):
            conn, used = self._connection()
            try:
                conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                conn.close()
                if attempt == 0 and used:  # the node closed a connection kept open: reopen
                    continue
                raise
            except BaseException:
                conn.close()  # a half-read answer must not be read as the next one's
                raise
            self._local.used = True
            if response.status != 200:
                raise _HTTPStatus(response.status)
            answer = json.loads(payload)
            if isinstance(answer, list) and all(
                isinstance(r, dict) and isinstance(r.get("id"), int) for r in answer
            ):
                answer.sort(key=lambda r: r["id"])
            return answer
        raise AssertionError("unreachable")  # the loop returns or raises

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, opened if it is not, and whether it was used before."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
        if conn.sock is None:
            self._local.used = False
            try:
                conn.connect()
            except TimeoutError as exc:  # no node answers, as a refused connection says
                conn.close()
                raise ConnectionError(str(exc)) from exc
            # http.client sends the headers and the body apart: without this the body could
            # wait for the headers' ACK (Nagle's algorithm), as urllib3 also knows.
            cast(socket.socket, conn.sock).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, bool(getattr(self._local, "used", False))


class Gateway:
    """A connection to one EVM chain, optionally with a local signing account."""

    def __init__(
        self,
        w3: Web3,
        url: str,
        chain_id: int,
        account: LocalAccount | None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.w3 = w3  # holds the HTTP provider; callers use the methods below, not w3
        self.url = url
        self.timeout = timeout  # seconds one request may take (for the messages)
        self.chain_id = chain_id
        self.account = account
        self.reverts = RevertDecoder()  # learns custom errors from every contract client
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._gas_cache: dict[tuple[str, bytes], int] = {}
        self._has_code: dict[str, bool] = {}
        self._fees: tuple[float, int, int] | None = None  # (fetched_at, max_fee, tip)
        self._batches = True  # the node answers JSON-RPC batches, until it shows otherwise
        self._direct: _DirectPost | None = None  # see ask_batch
        self._direct_checked = False  # whether the URL was looked at for ``_direct``

    # --- plumbing --------------------------------------------------------------------

    @contextlib.contextmanager
    def _transport_errors(self, method: str) -> Iterator[None]:
        """Whatever the transport meets becomes one sentence: no node, a node that does not
        answer in time, or a server that does not speak JSON-RPC (a web page, a proxy's
        error). What such a server sent is never quoted: it is not ours to print."""
        try:
            yield
        except Exception as exc:
            timed_out = isinstance(exc, TimeoutError)  # a direct post's read (see _DirectPost)
            if timed_out or (
                isinstance(exc, requests.exceptions.Timeout)
                and not isinstance(exc, requests.exceptions.ConnectTimeout)
            ):
                raise NodeUnreachable(
                    f"the node at {self.url} did not answer {method} within "
                    f"{self.timeout:g} s; check that it runs, or allow longer with --rpc-timeout"
                ) from None
            if _is_connection_error(exc):
                raise NodeUnreachable(
                    f"no Ethereum node answers at {self.url}; start one "
                    "(`databright node start`) or check the RPC URL"
                ) from None
            status = None
            if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
                status = exc.response.status_code
            elif isinstance(exc, _HTTPStatus):
                status = exc.status
            if status is not None:
                raise NodeUnreachable(
                    f"the server at {self.url} answered {method} with HTTP "
                    f"{status}, not JSON-RPC; check the RPC URL"
                ) from None
            not_rpc = requests.exceptions.RequestException | http.client.HTTPException | ValueError
            if isinstance(exc, not_rpc):
                raise NodeUnreachable(
                    f"the server at {self.url} did not answer {method} as an Ethereum JSON-RPC "
                    "node (its answer is not JSON-RPC); check the RPC URL"
                ) from None
            raise

    def request(self, method: str, params: list[Any], what: str) -> Any:
        """One JSON-RPC call below web3's formatters: the hot path of every transaction.

        web3's per-call middleware and result formatting cost about a quarter of a
        transaction's client time; sending and polling receipts need none of it. An error
        answer raises the matching ``ChainError`` carrying the node's ``code`` and ``data``.
        """
        return self._result(method, self._send(method, params), what)

    def _send(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC request's raw response (asked once more if it raced a new block)."""
        for attempt in range(2):
            with self._transport_errors(method):
                response = self.w3.provider.make_request(cast(Any, method), params)
            if attempt == 0 and _raced_a_block(response, params):
                continue
            break
        return response

    def _result(self, method: str, response: Any, what: str) -> Any:
        """The result of one JSON-RPC response, or its error raised as a ``ChainError``."""
        if not isinstance(response, dict) or not ("result" in response or "error" in response):
            raise NodeUnreachable(
                f"the server at {self.url} did not answer {method} as an Ethereum JSON-RPC "
                "node (no result in its answer); check the RPC URL"
            )
        error = response.get("error")
        if error:
            sender = self.account.address if self.account else "the sender"
            err = node_error(what, error, self.reverts, sender)
            if isinstance(err, NonceTooLow):
                self._nonce = None  # someone else used the account: resync on the next send
            raise err
        return response.get("result")

    def ask(self, method: str, params: list[Any], what: str, parse: Callable[[Any], T]) -> T:
        """``request`` whose result is read by ``parse``; a result ``parse`` cannot read (a
        quantity that is not hex, an object where a string belongs) is a ChainError."""
        return self._parse(method, self.request(method, params, what), parse)

    def _parse(self, method: str, result: Any, parse: Callable[[Any], T]) -> T:
        try:
            return parse(result)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise ChainError(
                f"the node at {self.url} answered {method} with a malformed result; "
                "check that the RPC URL points at an Ethereum node"
            ) from None

    def ask_many(
        self, method: str, params: Sequence[list[Any]], what: str, parse: Callable[[Any], T]
    ) -> list[T]:
        """``ask`` for each of ``params``, all in one JSON-RPC batch request (one request each
        where the node takes no batches); the first error, in the order given, raises as
        ``ask`` would raise it."""
        return cast(list[T], self.ask_batch([Call(method, p, what, parse) for p in params]))

    def ask_batch(
        self, calls: Sequence[Call], errors_in_place: bool = False, direct: bool = False
    ) -> list[Any]:
        """Each of ``calls`` (any methods, mixed) read by its ``parse``, in the order given,
        all in one JSON-RPC batch request: one round trip where ``ask`` each would take one
        per call (one request each where the node takes no batches). The first error, in that
        order, raises as ``ask`` would raise it; with ``errors_in_place`` an error the node
        answered to one call is returned in that call's place instead, as the ``ChainError``
        ``ask`` would raise, so the others' results are not lost (a failed transport, or an
        answer that is not JSON-RPC or cannot be read, still raises).

        ``direct``: post the batch on a keep-alive connection of this thread's own, below
        requests and web3, where the node's URL is plain http:// that no proxy stands in
        front of (else as usual). Those layers cost ~0.35 ms of CPU of a ~0.45 ms round trip
        to a local node: what a caller asking in a tight loop (the indexer) saves. For reads
        only: a batch that meets a connection the node had closed is sent again."""
        label = _methods(calls)
        if len(calls) > 1 and self._batches:
            batch = [(c.method, c.params) for c in calls]
            post = self._direct_post() if direct else None
            send = post.post if post else cast(Any, self.w3.provider).make_batch_request
            with self._transport_errors(label):
                answer = send(batch)
            # Answers are ordered by request id, which follows the order given.
            if isinstance(answer, list) and any(
                _raced_a_block(r, c.params) for r, c in zip(answer, calls, strict=False)
            ):
                with self._transport_errors(label):
                    answer = send(batch)
            if isinstance(answer, list) and len(answer) == len(calls):
                return self._answers(calls, answer, errors_in_place)
            # One answer for the whole batch: a node (or proxy) without batches.
            self._batches = False
        return self._answers(
            calls, [self._send(c.method, c.params) for c in calls], errors_in_place
        )

    def _direct_post(self) -> _DirectPost | None:
        """The direct transport of ``ask_batch`` (None: this node is reached otherwise)."""
        if not self._direct_checked:
            parts = urlsplit(self.url)
            plain = parts.scheme == "http" and parts.hostname and not parts.username
            proxied = bool(requests.utils.get_environ_proxies(self.url))
            self._direct = _DirectPost(self.url, self.timeout) if plain and not proxied else None
            self._direct_checked = True
        return self._direct

    def _answers(
        self, calls: Sequence[Call], responses: Sequence[Any], errors_in_place: bool
    ) -> list[Any]:
        """The calls' results from their responses: every error first (the first raises,
        unless ``errors_in_place``), then the results read."""
        results: list[Any] = []
        for call, response in zip(calls, responses, strict=True):
            try:
                results.append(self._result(call.method, response, call.what))
            except NodeUnreachable:
                raise
            except ChainError as err:
                if not errors_in_place:
                    raise
                results.append(err)
        return [
            r if isinstance(r, ChainError) else self._parse(c.method, r, c.parse)
            for c, r in zip(calls, results, strict=True)
        ]

    @property
    def address(self) -> Address:
        if self.account is None:
            raise ChainError("this connection has no account; pass account= to connect()")
        return Address(self.account.address)

    # --- reads -----------------------------------------------------------------------

    def block_number(self) -> int:
        return self.ask("eth_blockNumber", [], "eth_blockNumber", quantity)

    def block_timestamp(self, block: int | str = "latest") -> int:
        """The timestamp (Unix seconds) of ``block``: the chain's clock, not this machine's."""
        timestamp = self.ask(
            "eth_getBlockByNumber", [_block_tag(block), False], "eth_getBlock", _timestamp
        )
        if timestamp is None:
            raise ChainError(f"the node at {self.url} has no block {block}")
        return timestamp

    def advance_to(self, timestamp: int) -> int:
        """Mine a block at ``timestamp`` on a development chain (the embedded node and anvil;
        other nodes refuse) unless the chain's clock is already there; returns the latest
        block's timestamp."""
        if self.block_timestamp() < timestamp:
            self.request("evm_setNextBlockTimestamp", [hex(int(timestamp))], "evm_setNextBlock")
            self.request("evm_mine", [], "evm_mine")
        return self.block_timestamp()

    def balance(self, address: str | None = None) -> Wei:
        who = to_checksum_address(address) if address else self.address
        return Wei(self.ask("eth_getBalance", [who, "latest"], "eth_getBalance", quantity))

    def code(self, address: str) -> bytes:
        """The runtime code at ``address`` (empty for an account without code)."""
        return self.ask(
            "eth_getCode", [to_checksum_address(address), "latest"], "eth_getCode", _hex_bytes
        )

    def has_code(self, address: str) -> bool:
        return len(self.code(address)) > 0

    def transaction_count(self, address: str | None = None, block: int | str = "pending") -> int:
        """How many transactions ``address`` (default: this account) has sent: its next nonce."""
        who = to_checksum_address(address) if address else self.address
        return self.ask(
            "eth_getTransactionCount", [who, _block_tag(block)], "eth_getTransactionCount", quantity
        )

    def call(
        self, to: str | None, data: bytes, block: int | str = "latest", what: str = "eth_call"
    ) -> bytes:
        """The raw return data of a call of ``to`` with calldata ``data`` (no transaction).

        With ``to=None`` the call runs ``data`` as initcode and returns the code a deployment
        would leave behind, immutables included: what a contract's code is checked against.
        """
        return self._eth_call({"to": to, "data": data}, block, what)

    def call_many(
        self,
        calls: Sequence[tuple[str, bytes]],
        block: int | str = "latest",
        what: str = "eth_call",
    ) -> list[bytes]:
        """``call`` of each ``(to, data)`` at ``block``, all in one batch request."""
        params = [[_wire_call({"to": to, "data": data}), _block_tag(block)] for to, data in calls]
        return self.ask_many("eth_call", params, what, _hex_bytes)

    def _eth_call(self, tx: dict[str, Any], block: int | str, what: str) -> bytes:
        return self.ask("eth_call", [_wire_call(tx), _block_tag(block)], what, _hex_bytes)

    def logs(
        self,
        address: str,
        topics: list[Any],
        from_block: int = 0,
        to_block: int | str = "latest",
        what: str = "eth_getLogs",
    ) -> list[Any]:
        """Raw logs (JSON-RPC wire form) of ``address`` matching ``topics``."""
        params = {
            "address": address,
            "fromBlock": hex(from_block),
            "toBlock": _block_tag(to_block),
            "topics": topics,
        }
        return self.ask("eth_getLogs", [params], what, _log_list)

    # --- writes ----------------------------------------------------------------------

    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self.transaction_count(self.address, "pending")
        n = self._nonce
        self._nonce = n + 1
        return n

    def _fee_fields(self) -> dict[str, int]:
        now = time.monotonic()
        if self._fees is None or now - self._fees[0] > FEE_REFRESH_S:
            base = self.ask(
                "eth_getBlockByNumber",
                ["latest", False],
                "fee lookup",
                lambda b: quantity((b or {}).get("baseFeePerGas") or 0),
            )
            try:
                tip = self.ask("eth_maxPriorityFeePerGas", [], "fee lookup", quantity)
            except NodeUnreachable:
                raise
            except ChainError:  # a node without the method (pre-EIP-1559 tooling)
                tip = DEFAULT_TIP
            # Twice the base fee survives six full blocks of base-fee growth.
            self._fees = (now, 2 * base + tip, tip)
        _, max_fee, tip = self._fees
        return {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}

    @staticmethod
    def _gas_key(tx: dict[str, Any]) -> tuple[str, bytes] | None:
        """Cache key of a call's gas limit: the contract and function. Deployments differ from
        one another too much to share a limit, so they are always estimated."""
        if not tx.get("to"):
            return None
        return (tx["to"], bytes(HexBytes(tx.get("data", b""))[:4]))

    def _gas_for(self, tx: dict[str, Any], what: str) -> int:
        if not HexBytes(tx.get("data", b"")):
            return 21_000 if not self._is_contract(tx["to"]) else self._estimate(tx, what)
        key = self._gas_key(tx)
        cached = self._gas_cache.get(key) if key else None
        return cached if cached is not None else self._estimate(tx, what)

    def _is_contract(self, to: str) -> bool:
        if to not in self._has_code:
            self._has_code[to] = self.has_code(to)
        return self._has_code[to]

    def _estimate(self, tx: dict[str, Any], what: str) -> int:
        probe = _wire_call({k: v for k, v in tx.items() if k in ("from", "to", "data", "value")})
        # "pending": the transaction will run in the next block, and the contracts tell blocks
        # apart (nothing is settled in a proposal's own block).
        estimate = self.ask("eth_estimateGas", [probe, "pending"], what, quantity)
        gas = int(estimate * GAS_HEADROOM)
        key = self._gas_key(tx)
        if key is not None and HexBytes(tx.get("data", b"")):
            self._gas_cache[key] = max(gas, self._gas_cache.get(key, 0))
        return gas

    def submit(
        self,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
        what: str = "transaction",
        decoder: EventDecoder | None = None,
        on_signed: Callable[[str, int], None] | None = None,
    ) -> Submitted:
        """Sign with the next local nonce and send one transaction without waiting for it.

        ``on_signed(tx_hash, nonce)`` runs after signing and before sending, so a caller can
        record the transaction durably before the node may have mined it. If the node refuses
        the transaction, the nonce counter is read again from the node (pending), so that a
        refusal never leaves it ahead of the chain.
        """
        if self.account is None:
            raise ChainError(f"{what} needs an account; pass account= to connect()")
        tx: dict[str, Any] = {
            "from": self.address,
            "value": value,
            "data": HexBytes(data),
            "chainId": self.chain_id,
            "type": 2,
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        with self._lock:
            tx["gas"] = gas if gas is not None else self._gas_for(tx, what)
            tx.update(self._fee_fields())
            tx["nonce"] = self._next_nonce()
            signed = self.account.sign_transaction(tx)
            try:
                if on_signed is not None:
                    on_signed(signed.hash.to_0x_hex(), tx["nonce"])
                tx_hash = self.request(
                    "eth_sendRawTransaction", [signed.raw_transaction.to_0x_hex()], what
                )
            except BaseException:
                # The node did not take the transaction (or we cannot tell): other
                # transactions may be in flight, so ask the node what it holds.
                self._nonce = None
                raise
        return Submitted(
            HexBytes(tx_hash).to_0x_hex(), tx, what, decoder, explicit_gas=gas is not None
        )

    def send(
        self,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
        what: str = "transaction",
        decoder: EventDecoder | None = None,
        on_signed: Callable[[str, int], None] | None = None,
    ) -> Receipt:
        """Sign, send and wait for one transaction; raise on revert with the reason.

        ``on_signed(tx_hash, nonce)`` runs after signing and before sending, so a caller can
        record the transaction durably before the node may have mined it.
        """
        sub = self.submit(to, data, value, gas, what, decoder, on_signed)
        return self._settle(sub, self.wait(sub.hash, what), on_signed)

    def _settle(
        self,
        sub: Submitted,
        receipt: Any,
        on_signed: Callable[[str, int], None] | None = None,
    ) -> Receipt:
        """The receipt of a mined transaction, or its revert raised with the reason; a
        transaction that ran out of a cached gas limit is estimated afresh and sent once more."""
        if quantity(receipt["status"]) == 1:
            return Receipt.from_wire(receipt, sub.decoder)
        # Failed on-chain: a revert raises with its reason; running out of gas falls through.
        self._raise_revert(sub.tx, receipt, sub.what)
        if sub.explicit_gas:
            raise ChainError(
                f"{sub.what} ran out of gas with the limit given ({sub.tx['gas']}); raise it"
            )
        key = self._gas_key(sub.tx)
        if key is not None:
            self._gas_cache.pop(key, None)
        retry = self.submit(
            sub.tx.get("to"), sub.tx["data"], sub.tx["value"], None, sub.what, sub.decoder,
            on_signed,
        )  # fmt: skip
        receipt = self.wait(retry.hash, sub.what)
        if quantity(receipt["status"]) == 1:
            return Receipt.from_wire(receipt, sub.decoder)
        self._raise_revert(retry.tx, receipt, sub.what)
        raise ChainError(f"{sub.what} ran out of gas twice; pass a larger gas limit")

    def wait_many(self, submitted: Sequence[Submitted], timeout: float = 120.0) -> list[Receipt]:
        """The receipts of transactions sent with ``submit``, in the order given, once all
        are mined; the first that reverted (in that order) raises with its reason.

        All are awaited before anything is raised, so that the node and the nonce counter
        agree again when the caller hears of the failure. Each poll round asks for every
        missing receipt in one JSON-RPC batch request.
        """
        raw = self._receipts([s.hash for s in submitted], timeout)
        return [self._settle(s, r) for s, r in zip(submitted, raw, strict=True)]

    def _receipts(self, hashes: Sequence[str], timeout: float) -> list[Any]:
        found: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        delay = 0.0
        while True:
            missing = [h for h in dict.fromkeys(hashes) if h not in found]
            if not missing:
                return [found[h] for h in hashes]
            for h, receipt in zip(missing, self._receipt_batch(missing), strict=True):
                if receipt is not None:
                    found[h] = receipt
            if len(found) == len(set(hashes)):
                continue
            if time.monotonic() > deadline:
                late = next(h for h in hashes if h not in found)
                raise ChainError(
                    f"transaction {late} was not mined within {timeout:.0f} s; "
                    "the node may be stalled"
                )
            time.sleep(delay)
            delay = min(0.2, delay * 2 or 0.002)

    def _receipt_batch(self, hashes: list[str]) -> list[Any]:
        """Receipts (None while not mined) of ``hashes``, asked in one batch request."""
        what = "eth_getTransactionReceipt"
        return self.ask_many(what, [[h] for h in hashes], what, _receipt)

    def _raise_revert(self, tx: dict[str, Any], receipt: Any, what: str) -> None:
        call: dict[str, Any] = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        # Replay on the state the transaction failed in. Nodes that prune history (anvil
        # --prune-history) only keep recent state, so the failing block itself is the best
        # reachable point; the condition that reverted a transaction almost always still holds.
        for block in (quantity(receipt["blockNumber"]), "latest"):
            try:
                self._eth_call(call, block, what)
                break
            except ContractReverted:
                raise
            except ChainError:
                continue
        if quantity(receipt["gasUsed"]) < int(tx["gas"]):
            raise ContractReverted(f"{what} reverted without a reason", None)

    def wait(
        self, tx_hash: HexBytes | str, what: str = "transaction", timeout: float = 120.0
    ) -> Any:
        """The raw receipt (JSON-RPC wire form) of a transaction, once mined."""
        hex_hash = HexBytes(tx_hash).to_0x_hex()
        deadline = time.monotonic() + timeout
        delay = 0.0
        while True:
            receipt = self.ask("eth_getTransactionReceipt", [hex_hash], what, _receipt)
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise ChainError(
                    f"{what} {hex_hash} was not mined within {timeout:.0f} s; the node may be stalled"
                )
            time.sleep(delay)
            delay = min(0.2, delay * 2 or 0.002)

    def transfer(self, to: str, value: Wei) -> Receipt:
        return self.send(to_checksum_address(to), value=value, what=f"transfer to {to}")

    # --- contracts -------------------------------------------------------------------

    def deploy(
        self,
        name: str | Artifact,
        *args: Any,
        value: int = 0,
        on_signed: Callable[[str, int], None] | None = None,
    ) -> ContractClient:
        artifact = load_artifact(name) if isinstance(name, str) else name
        what = f"deploy {artifact.name}"
        try:
            data = constructor_data(artifact.abi, artifact.bytecode, args)
        except ABIMismatch as exc:
            raise ChainError(
                f"{what}: the arguments do not fit the contract's ABI ({exc})"
            ) from None
        receipt = self.send(None, data, value=value, what=what, on_signed=on_signed)
        assert receipt.contract_address is not None
        return ContractClient(self, artifact, receipt.contract_address)

    def deploy_blueprint(
        self, name: str, on_signed: Callable[[str, int], None] | None = None
    ) -> Address:
        """Deploy ``name`` as an ERC-5202 blueprint (initcode stored, not runnable)."""
        artifact = load_artifact(name)
        receipt = self.send(
            None,
            HexBytes(artifact.blueprint_bytecode),
            what=f"deploy {name} blueprint",
            on_signed=on_signed,
        )
        assert receipt.contract_address is not None
        return receipt.contract_address

    def bind(self, cls: type[C], address: str, check_code: bool = False) -> C:
        """A typed client (``databright.chain.clients``) of the contract at ``address``."""
        client = self.contract(cls.__name__.removesuffix("Client"), address, check_code)
        return cls(self, client.artifact, client.address)

    def contract(self, name: str, address: str, check_code: bool = False) -> ContractClient:
        artifact = load_artifact(name)
        if check_code and not self.has_code(address):
            raise ContractNotDeployed(
                f"no {name} contract at {address} on chain {self.chain_id}; the node was "
                "reset or the address is wrong: join a live market with `databright join`"
            )
        return ContractClient(self, artifact, Address(to_checksum_address(address)))


def connect(
    url: str,
    account: LocalAccount | str | None = None,
    chain_id: int | None = None,
    timeout: float | None = None,
) -> Gateway:
    """Connect to the EVM JSON-RPC node at ``url``.

    ``account`` is a LocalAccount or a hex private key; ``chain_id``, when given, must match the
    node's (protects against signing for the wrong network). ``timeout`` bounds each request
    (default ``DEFAULT_TIMEOUT_S``): a node that hangs is reported, not waited on forever.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        hint = f"; write it as http://{url}" if not parts.scheme or "://" not in url else ""
        raise InvalidArgument(f"RPC URL {url!r} is not an http:// or https:// URL{hint}")
    timeout = DEFAULT_TIMEOUT_S if timeout is None else float(timeout)
    # The environment's proxy settings are read once, here, not on every request: requests
    # looks them up per call (proxy_bypass and all), which was ~0.2 ms of each node call.
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:  # what trust_env would have read for an https node with a private CA
        session.verify = bundle
    provider = Web3.HTTPProvider(
        url,
        request_kwargs={"timeout": timeout},
        session=session,
        exception_retry_configuration=None,
    )
    gw = Gateway(Web3(provider), url, 0, None, timeout)
    node_chain_id = gw.ask("eth_chainId", [], f"connecting to {url}", quantity)
    if chain_id is not None and node_chain_id != chain_id:
        raise WrongChain(
            f"the node at {url} serves chain {node_chain_id}, not {chain_id}; check the RPC URL"
        )
    gw.chain_id = node_chain_id
    gw.account = Account.from_key(account) if isinstance(account, str) else account
    return gw


def set_default_timeout(seconds: float) -> None:
    """How long one request of every later ``connect()`` without ``timeout=`` may take (the
    CLI's --rpc-timeout; the SDK passes ``timeout=`` instead)."""
    global DEFAULT_TIMEOUT_S
    if not seconds > 0:
        raise InvalidArgument(f"an RPC timeout must be more than 0 s, not {seconds}")
    DEFAULT_TIMEOUT_S = float(seconds)
