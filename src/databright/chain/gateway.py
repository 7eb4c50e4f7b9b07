"""One connection type for every EVM node: the embedded node, anvil, or any JSON-RPC endpoint.

``connect(url, account=...)`` signs locally (eth-account with coincurve), tracks the nonce
locally and caches gas limits per contract function, so a transaction costs one
``eth_sendRawTransaction`` plus receipt polling instead of three extra round trips for nonce,
gas estimate and fees. Errors are translated into the ``databright.errors`` vocabulary with one
sentence saying what happened and what to do.

Why caching gas is safe: a cached limit carries 30% headroom; if a transaction still runs out
of gas, the gateway notices (failed receipt, no revert reason, gas used == limit), estimates
afresh and resends once. A transaction whose function was never estimated is estimated first,
which also surfaces a revert reason before any gas is spent.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar, cast

import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.exceptions import EncodingError
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import (
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
    to_checksum_address,
)
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, MismatchedABI, Web3RPCError, Web3ValidationError

from databright.chain.artifacts import Artifact, load_artifact
from databright.errors import (
    ChainError,
    ContractNotDeployed,
    ContractReverted,
    InsufficientFunds,
    NodeUnreachable,
    NonceTooLow,
    WrongChain,
)
from databright.types import Address, Wei

__all__ = ["ContractClient", "Event", "EventDecoder", "Gateway", "Receipt", "connect"]

C = TypeVar("C", bound="ContractClient")

GAS_HEADROOM = 1.3
FEE_REFRESH_S = 2.0
DEFAULT_TIP = Web3.to_wei(1, "gwei")


@dataclass(frozen=True)
class Event:
    name: str
    args: dict[str, Any]
    address: Address
    log_index: int
    block_number: int


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    gas_used: int
    status: int
    contract_address: Address | None
    logs: tuple[Any, ...] = ()
    decoder: EventDecoder | None = field(default=None, repr=False, compare=False)

    @cached_property
    def events(self) -> tuple[Event, ...]:
        """Events this transaction emitted, decoded on first use (most callers never look)."""
        return tuple(self.decoder.decode(self.logs)) if self.decoder else ()

    def event(self, name: str) -> Event:
        """The first event called ``name`` in this receipt."""
        for e in self.events:
            if e.name == name:
                return e
        raise ChainError(f"transaction {self.tx_hash} emitted no {name} event")


class EventDecoder:
    """Decodes one contract's logs with eth-abi; built once per contract client.

    web3's ``process_log`` costs ~8 ms a log here; decoding the topics and data directly is
    two orders of magnitude cheaper and gives the same values.
    """

    def __init__(self, address: str, contract_abi: list[dict[str, Any]]) -> None:
        self.address = HexBytes(address)
        self.by_topic: dict[bytes, dict[str, Any]] = {}
        self.topics: dict[str, str] = {}
        for abi in contract_abi:
            if abi.get("type") == "event":
                topic = event_abi_to_log_topic(cast(Any, abi))
                self.by_topic[bytes(topic)] = abi
                self.topics[abi["name"]] = "0x" + bytes(topic).hex()

    def topic_of(self, name: str) -> str:
        try:
            return self.topics[name]
        except KeyError:
            raise ChainError(f"no event {name!r}") from None

    def decode(self, logs: Sequence[Any]) -> list[Event]:
        """Decode logs in JSON-RPC wire form (hex strings), as receipts carry them."""
        out = []
        for wire in logs:
            if HexBytes(wire["address"]) != self.address or not wire["topics"]:
                continue
            abi = self.by_topic.get(bytes(HexBytes(wire["topics"][0])))
            if abi is None:
                continue
            indexed = [i for i in abi["inputs"] if i.get("indexed")]
            plain = [i for i in abi["inputs"] if not i.get("indexed")]
            args: dict[str, Any] = {}
            for spec, topic in zip(indexed, wire["topics"][1:], strict=True):
                if (
                    spec["type"] in ("string", "bytes")
                    or spec["type"].endswith("]")
                    or (spec["type"].startswith("tuple"))
                ):
                    # An indexed dynamic value is stored as its keccak hash: keep the hash.
                    args[spec["name"]] = bytes(HexBytes(topic))
                    continue
                (value,) = abi_decode([spec["type"]], bytes(HexBytes(topic)))
                args[spec["name"]] = _checksummed(value, spec)
            types = [_abi_type(i) for i in plain]
            values = abi_decode(types, bytes(HexBytes(wire["data"])))
            for spec, value in zip(plain, values, strict=True):
                args[spec["name"]] = _checksummed(value, spec)
            out.append(
                Event(
                    name=abi["name"],
                    args={i["name"]: args[i["name"]] for i in abi["inputs"]},
                    address=Address(to_checksum_address(wire["address"])),
                    log_index=_q(wire["logIndex"]),
                    block_number=_q(wire["blockNumber"]),
                )
            )
        return out


def _abi_type(spec: dict[str, Any]) -> str:
    """The canonical ABI type string of one parameter (tuples spelled out)."""
    t: str = spec["type"]
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in spec["components"])
        return f"({inner}){t[len('tuple') :]}"
    return t


def _q(value: int | str) -> int:
    """A JSON-RPC quantity ("0x1a") or an int, as an int."""
    return value if isinstance(value, int) else int(value, 16)


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.ConnectionError | ConnectionError)


def _reason(exc: ContractLogicError) -> str:
    msg = exc.message or str(exc)
    for prefix in ("execution reverted: ", "execution reverted:", "execution reverted"):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
            break
    return msg.strip() or "no reason given"


class Gateway:
    """A connection to one EVM chain, optionally with a local signing account."""

    def __init__(self, w3: Web3, url: str, chain_id: int, account: LocalAccount | None) -> None:
        self.w3 = w3
        self.url = url
        self.chain_id = chain_id
        self.account = account
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._gas_cache: dict[tuple[str, bytes], int] = {}
        self._has_code: dict[str, bool] = {}
        self._fees: tuple[float, int, int] | None = None  # (fetched_at, max_fee, tip)

    # --- plumbing --------------------------------------------------------------------

    @contextlib.contextmanager
    def rpc_errors(self, what: str) -> Iterator[None]:
        """Translate node and transport failures into DataBright errors."""
        try:
            yield
        except ContractLogicError as exc:
            raise ContractReverted(f"{what} reverted: {_reason(exc)}", _reason(exc)) from None
        except (MismatchedABI, Web3ValidationError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ChainError(
                f"{what}: the arguments do not fit the contract's ABI ({first})"
            ) from None
        except Web3RPCError as exc:
            raise self._rpc_error(what, exc.message) from None
        except ValueError as exc:  # web3 raises ValueError with the RPC error dict
            if exc.args and isinstance(exc.args[0], dict) and "message" in exc.args[0]:
                raise self._rpc_error(what, str(exc.args[0]["message"])) from None
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                raise NodeUnreachable(
                    f"no Ethereum node answers at {self.url}; start one "
                    "(`databright node start`) or check the RPC URL"
                ) from None
            raise

    def _rpc_error(self, what: str, message: str) -> ChainError:
        low = message.lower()
        if "insufficient funds" in low:
            who = self.address if self.account else "the sender"
            return InsufficientFunds(
                f"{what} failed: account {who} cannot pay for value plus gas; fund it first"
            )
        if "nonce too low" in low or "nonce is too low" in low:
            self._nonce = None  # someone else used the account: resync on the next send
            return NonceTooLow(
                f"{what} failed: nonce too low, another client used account {self.address}; "
                "the nonce has been resynchronised, retry the operation"
            )
        if "execution reverted" in low:
            reason = message.split(":", 1)[1].strip() if ":" in message else "no reason given"
            return ContractReverted(f"{what} reverted: {reason}", reason)
        return ChainError(f"{what} failed: the node answered {message!r}")

    def request(self, method: str, params: list[Any], what: str) -> Any:
        """One JSON-RPC call below web3's formatters: the hot path of every transaction.

        web3's per-call middleware and result formatting cost about a quarter of a
        transaction's client time; sending and polling receipts need none of it.
        """
        with self.rpc_errors(what):
            response = self.w3.provider.make_request(cast(Any, method), params)
        error = response.get("error")
        if error:
            message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
            if isinstance(error, dict) and error.get("code") == 3:
                reason = message.split(":", 1)[1].strip() if ":" in message else "no reason given"
                raise ContractReverted(f"{what} reverted: {reason}", reason)
            raise self._rpc_error(what, message)
        return response.get("result")

    @property
    def address(self) -> Address:
        if self.account is None:
            raise ChainError("this connection has no account; pass account= to connect()")
        return Address(self.account.address)

    # --- reads -----------------------------------------------------------------------

    def block_number(self) -> int:
        with self.rpc_errors("eth_blockNumber"):
            return int(self.w3.eth.block_number)

    def balance(self, address: str | None = None) -> Wei:
        who = to_checksum_address(address) if address else self.address
        with self.rpc_errors("eth_getBalance"):
            return Wei(int(self.w3.eth.get_balance(who)))

    def has_code(self, address: str) -> bool:
        with self.rpc_errors("eth_getCode"):
            return len(self.w3.eth.get_code(to_checksum_address(address))) > 0

    # --- writes ----------------------------------------------------------------------

    def _next_nonce(self) -> int:
        if self._nonce is None:
            with self.rpc_errors("eth_getTransactionCount"):
                self._nonce = int(self.w3.eth.get_transaction_count(self.address, "pending"))
        n = self._nonce
        self._nonce = n + 1
        return n

    def _fee_fields(self) -> dict[str, int]:
        now = time.monotonic()
        if self._fees is None or now - self._fees[0] > FEE_REFRESH_S:
            with self.rpc_errors("fee lookup"):
                block = self.w3.eth.get_block("latest")
                base = int(block.get("baseFeePerGas", 0) or 0)
                try:
                    tip = int(self.w3.eth.max_priority_fee)
                except (Web3RPCError, ValueError):
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
        probe = {k: v for k, v in tx.items() if k in ("from", "to", "data", "value")}
        with self.rpc_errors(what):
            estimate = int(self.w3.eth.estimate_gas(cast(Any, probe)))
        gas = int(estimate * GAS_HEADROOM)
        key = self._gas_key(tx)
        if key is not None and HexBytes(tx.get("data", b"")):
            self._gas_cache[key] = max(gas, self._gas_cache.get(key, 0))
        return gas

    def send(
        self,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
        what: str = "transaction",
        decoder: EventDecoder | None = None,
    ) -> Receipt:
        """Sign, send and wait for one transaction; raise on revert with the reason."""
        if self.account is None:
            raise ChainError(f"{what} needs an account; pass account= to connect()")
        for attempt in range(2):
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
                    tx_hash = self.request(
                        "eth_sendRawTransaction", [signed.raw_transaction.to_0x_hex()], what
                    )
                except ChainError:
                    # The node did not take the transaction: its nonce is free again.
                    if self._nonce == tx["nonce"] + 1:
                        self._nonce = tx["nonce"]
                    raise
            receipt = self.wait(tx_hash, what)
            if _q(receipt["status"]) == 1:
                return self._receipt(receipt, decoder)
            # Failed on-chain: a revert raises with its reason; running out of gas falls through.
            self._raise_revert(tx, receipt, what)
            if gas is not None:
                raise ChainError(f"{what} ran out of gas with the limit given ({gas}); raise it")
            if attempt == 1:
                break
            key = self._gas_key(tx)
            if key is not None:
                self._gas_cache.pop(key, None)
        raise ChainError(f"{what} ran out of gas twice; pass a larger gas limit")

    def _raise_revert(self, tx: dict[str, Any], receipt: Any, what: str) -> None:
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        # Replay on the state the transaction failed in. Nodes that prune history (anvil
        # --prune-history) only keep recent state, so the failing block itself is the best
        # reachable point; the condition that reverted a transaction almost always still holds.
        for block in (_q(receipt["blockNumber"]), "latest"):
            try:
                with self.rpc_errors(what):
                    self.w3.eth.call(cast(Any, call), block)
                break
            except ContractReverted:
                raise
            except ChainError:
                continue
        if _q(receipt["gasUsed"]) < int(tx["gas"]):
            raise ContractReverted(f"{what} reverted without a reason", None)

    def wait(
        self, tx_hash: HexBytes | str, what: str = "transaction", timeout: float = 120.0
    ) -> Any:
        """The raw receipt (JSON-RPC wire form) of a transaction, once mined."""
        hex_hash = HexBytes(tx_hash).to_0x_hex()
        deadline = time.monotonic() + timeout
        delay = 0.0
        while True:
            receipt = self.request("eth_getTransactionReceipt", [hex_hash], what)
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise ChainError(
                    f"{what} {hex_hash} was not mined within {timeout:.0f} s; the node may be stalled"
                )
            time.sleep(delay)
            delay = min(0.2, delay * 2 or 0.002)

    def _receipt(self, raw: Any, decoder: EventDecoder | None) -> Receipt:
        created = raw.get("contractAddress")
        return Receipt(
            tx_hash=HexBytes(raw["transactionHash"]).to_0x_hex(),
            block_number=_q(raw["blockNumber"]),
            gas_used=_q(raw["gasUsed"]),
            status=_q(raw["status"]),
            contract_address=Address(to_checksum_address(created)) if created else None,
            logs=tuple(raw["logs"]),
            decoder=decoder,
        )

    def transfer(self, to: str, value: Wei) -> Receipt:
        return self.send(to_checksum_address(to), value=value, what=f"transfer to {to}")

    # --- contracts -------------------------------------------------------------------

    def deploy(self, name: str | Artifact, *args: Any, value: int = 0) -> ContractClient:
        artifact = load_artifact(name) if isinstance(name, str) else name
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = HexBytes(factory.constructor(*args).data_in_transaction)
        receipt = self.send(None, data, value=value, what=f"deploy {artifact.name}")
        assert receipt.contract_address is not None
        return ContractClient(self, artifact, receipt.contract_address)

    def deploy_blueprint(self, name: str) -> Address:
        """Deploy ``name`` as an ERC-5202 blueprint (initcode stored, not runnable)."""
        artifact = load_artifact(name)
        receipt = self.send(
            None, HexBytes(artifact.blueprint_bytecode), what=f"deploy {name} blueprint"
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
                f"no {name} contract at {address} on chain {self.chain_id}; "
                "deploy it with `databright deploy`"
            )
        return ContractClient(self, artifact, Address(to_checksum_address(address)))


class ContractClient:
    """A deployed contract: ``call`` for views, ``transact`` for state changes."""

    def __init__(self, gateway: Gateway, artifact: Artifact, address: Address) -> None:
        self.gateway = gateway
        self.artifact = artifact
        self.address = address
        self.decoder = EventDecoder(address, artifact.abi)
        self._functions: dict[tuple[str, int], _Function] = {}

    @property
    def contract_name(self) -> str:
        # Not ``name``: ERC-20 clients have a ``name()`` contract function.
        return self.artifact.name

    def _function(self, fn: str, nargs: int) -> _Function:
        """The ABI of ``fn`` called with ``nargs`` arguments (resolves the overloads Vyper
        emits for default arguments), prepared once per client."""
        key = (fn, nargs)
        found = self._functions.get(key)
        if found is None:
            entries = [
                e for e in self.artifact.abi if e.get("type") == "function" and e["name"] == fn
            ]
            if not entries:
                raise ChainError(f"{self.contract_name} has no function {fn!r}")
            matching = [e for e in entries if len(e["inputs"]) == nargs]
            if not matching:
                raise ChainError(f"{self.contract_name}.{fn} takes no {nargs} arguments")
            found = _Function.of(matching[0])
            self._functions[key] = found
        return found

    def _encode(self, fn: str, args: tuple[Any, ...]) -> tuple[_Function, bytes]:
        f = self._function(fn, len(args))
        try:
            return f, f.selector + abi_encode(f.input_types, args)
        except (EncodingError, TypeError, ValueError, OverflowError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ChainError(
                f"{self.contract_name}.{fn}: the arguments do not fit the contract's ABI ({first})"
            ) from None

    def call(self, fn: str, *args: Any, block: int | str = "latest") -> Any:
        """A view call, encoded and decoded here (web3's contract layer costs ~10 ms a call)."""
        f, data = self._encode(fn, args)
        tag = block if isinstance(block, str) else hex(block)
        what = f"{self.contract_name}.{fn}"
        result = self.gateway.request(
            "eth_call", [{"to": self.address, "data": "0x" + data.hex()}, tag], what
        )
        raw = HexBytes(result or "0x")
        if not f.outputs:
            return None
        try:
            decoded = abi_decode(f.output_types, raw)
        except Exception as exc:
            raise ChainError(
                f"{what} returned data that does not fit its ABI ({type(exc).__name__}); is "
                f"{self.address} really a {self.contract_name}?"
            ) from None
        values = [_checksummed(v, spec) for v, spec in zip(decoded, f.outputs, strict=True)]
        return values[0] if len(values) == 1 else tuple(values)

    def transact(self, fn: str, *args: Any, value: int = 0, gas: int | None = None) -> Receipt:
        _, data = self._encode(fn, args)
        return self.gateway.send(
            self.address,
            data,
            value=value,
            gas=gas,
            what=f"{self.contract_name}.{fn}",
            decoder=self.decoder,
        )

    def events(
        self, name: str, from_block: int = 0, to_block: int | str = "latest", **filters: Any
    ) -> list[Event]:
        """Logs of event ``name``; keyword filters match indexed arguments exactly."""
        abi = next(
            (e for e in self.artifact.abi if e.get("type") == "event" and e["name"] == name), None
        )
        if abi is None:
            raise ChainError(f"{self.contract_name} has no event {name!r}")
        topics: list[Any] = [self.decoder.topic_of(name)]
        indexed = [i for i in abi["inputs"] if i.get("indexed")]
        unknown = set(filters) - {i["name"] for i in indexed}
        if unknown:
            raise ChainError(
                f"{self.contract_name}.{name} has no indexed argument {unknown.pop()!r}"
            )
        for i in indexed:
            if i["name"] in filters:
                topics.append("0x" + abi_encode([i["type"]], [filters[i["name"]]]).hex())
            else:
                topics.append(None)
        while topics and topics[-1] is None:
            topics.pop()
        params = {
            "address": self.address,
            "fromBlock": hex(from_block),
            "toBlock": to_block if isinstance(to_block, str) else hex(to_block),
            "topics": topics,
        }
        logs = self.gateway.request(
            "eth_getLogs", [params], f"eth_getLogs {self.contract_name}.{name}"
        )
        return self.decoder.decode(logs or [])


@dataclass(frozen=True)
class _Function:
    selector: bytes
    input_types: list[str]
    output_types: list[str]
    outputs: list[dict[str, Any]]

    @classmethod
    def of(cls, abi: dict[str, Any]) -> _Function:
        return cls(
            selector=bytes(function_abi_to_4byte_selector(cast(Any, abi))),
            input_types=list(get_abi_input_types(cast(Any, abi))),
            output_types=list(get_abi_output_types(cast(Any, abi))),
            outputs=list(abi.get("outputs", [])),
        )


def _checksummed(value: Any, spec: dict[str, Any]) -> Any:
    """Decoded ABI values as web3 gives them: addresses EIP-55 checksummed, arrays as lists."""
    t: str = spec["type"]
    if t.endswith("]"):
        inner = dict(spec, type=t[: t.rindex("[")])
        return [_checksummed(v, inner) for v in value]
    if t == "tuple":
        return tuple(_checksummed(v, c) for v, c in zip(value, spec["components"], strict=True))
    if t == "address":
        return to_checksum_address(value)
    return value


def connect(
    url: str,
    account: LocalAccount | str | None = None,
    chain_id: int | None = None,
    timeout: float = 30.0,
) -> Gateway:
    """Connect to the EVM JSON-RPC node at ``url``.

    ``account`` is a LocalAccount or a hex private key; ``chain_id``, when given, must match the
    node's (protects against signing for the wrong network).
    """
    provider = Web3.HTTPProvider(
        url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
    )
    w3 = Web3(provider)
    gw = Gateway(w3, url, 0, None)
    with gw.rpc_errors(f"connecting to {url}"):
        try:
            node_chain_id = int(w3.eth.chain_id)
        except requests.exceptions.RequestException as exc:
            if _is_connection_error(exc):
                raise
            raise NodeUnreachable(
                f"the server at {url} did not answer as an Ethereum JSON-RPC node ({exc})"
            ) from None
    if chain_id is not None and node_chain_id != chain_id:
        raise WrongChain(
            f"the node at {url} serves chain {node_chain_id}, not {chain_id}; check the RPC URL"
        )
    gw.chain_id = node_chain_id
    gw.account = Account.from_key(account) if isinstance(account, str) else account
    return gw
