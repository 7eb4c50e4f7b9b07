"""JSON-RPC 2.0 dispatch: request objects in, response objects out.

Each method is a row of :data:`METHODS`: how to read its positional parameters off the wire
(:mod:`.wire`) and which ``EthereumTester`` call answers it. The rows mirror web3's
``EthereumTesterProvider`` table (``web3.providers.eth_tester.defaults.API_ENDPOINTS``), whose
entries are one-liners over the same calls; calling eth-tester directly keeps web3 (~0.5 s of
imports) out of the node process, which tests restart many times. The dispatcher holds one
lock around each call, because the EVM is single-threaded, and commits the store before it
answers, so that a client never sees a transaction hash or receipt that a crash could take back.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from eth_tester.exceptions import BlockNotFound, FilterNotFound, TransactionNotFound
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_utils import decode_hex, encode_hex, keccak

from databright import __version__
from databright.settings import get_settings

from .dev_chain import DevChain
from .overrides import state_overrides_in
from .trace import call_trace
from .wire import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_ERROR,
    BlockHashRef,
    RpcError,
    address_in,
    block_id_in,
    block_out,
    bool_in,
    data_in,
    filter_in,
    hash_in,
    log_out,
    percentiles_in,
    quantity_in,
    quantity_out,
    receipt_out,
    to_wire,
    transaction_in,
    transaction_out,
)

__all__ = ["METHODS", "Dispatcher", "client_version"]

log = logging.getLogger(__name__)

_REQUIRED = object()
_ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def client_version() -> str:
    try:
        evm = version("py-evm")
    except PackageNotFoundError:  # pragma: no cover - py-evm is a dependency
        evm = "unknown"
    py = sys.version_info
    return f"DataBright/v{__version__}/py-evm-{evm}/python{py.major}.{py.minor}.{py.micro}"


@dataclass(frozen=True)
class Param:
    convert: Callable[[Any], Any]
    default: Any = _REQUIRED
    name: str = ""


@dataclass(frozen=True)
class Method:
    params: tuple[Param, ...]
    run: Callable[..., Any]  # (chain, *converted params) -> wire result, under the lock
    # (chain, run's result) -> wire result, after the lock is released: the slow part of a read
    # that needs the lock only to pin down what it reads (eth_getLogs).
    unlocked: Callable[[DevChain, Any], Any] | None = None


def _or_none(call: Callable[..., Any], *args: Any) -> Any:
    """``null`` for a missing block or transaction, as nodes answer (and API_ENDPOINTS does)."""
    try:
        return call(*args)
    except (BlockNotFound, TransactionNotFound, IndexError):
        return None


def _state_block(chain: DevChain, block: int | str | BlockHashRef) -> int | str:
    """Block id for state queries: auto-mining leaves nothing pending, so pending is latest."""
    resolved = chain.resolve(block)
    return "latest" if resolved == "pending" else resolved


# --- handlers ------------------------------------------------------------------------------


def _block_number(chain: DevChain) -> str:
    return quantity_out(int(chain.head().block_number))


def _balance(chain: DevChain, address: str, block: Any) -> str:
    return quantity_out(chain.tester.get_balance(address, _state_block(chain, block)))


def _nonce(chain: DevChain, address: str, block: Any) -> str:
    return quantity_out(chain.tester.get_nonce(address, _state_block(chain, block)))


def _code(chain: DevChain, address: str, block: Any) -> str:
    return str(chain.tester.get_code(address, _state_block(chain, block)))


def _storage(chain: DevChain, address: str, slot: int, block: Any) -> str:
    return str(chain.tester.get_storage_at(address, hex(slot), _state_block(chain, block)))


def _send_raw(chain: DevChain, raw: str) -> str:
    return str(chain.tester.send_raw_transaction(raw))


def _call_tx(tx: dict[str, Any]) -> dict[str, Any]:
    tx = dict(tx)
    tx.setdefault("from", _ZERO_ADDRESS)
    return tx


def _call(chain: DevChain, tx: dict[str, Any], block: Any, overrides: Any) -> str:
    return encode_hex(chain.call(_call_tx(tx), _state_block(chain, block), overrides))


def _estimate(chain: DevChain, tx: dict[str, Any], block: Any, overrides: Any) -> str:
    return quantity_out(chain.estimate_gas(_call_tx(tx), _state_block(chain, block), overrides))


def _access_list(chain: DevChain, tx: dict[str, Any], block: Any) -> Any:
    return chain.create_access_list(_call_tx(tx), _state_block(chain, block))


def _block_receipts(chain: DevChain, block: Any) -> Any:
    if isinstance(block, str) and block.startswith("0x"):  # a block hash, as geth takes it
        block = BlockHashRef(block)
    try:
        found = chain.block_receipts(block)
    except RpcError:
        return None  # an unknown block hash: null, as for a block number past the head
    if found is None:
        return None
    return [
        receipt_out(receipt, logs_bloom=bloom, log_index_offset=offset)
        for receipt, bloom, offset in found
    ]


def _block_or_hash_in(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 66:
        return hash_in(value, "block hash")
    return block_id_in(value, "block")


_CALL_TRACER_ONLY = (
    'the embedded node traces with the call tracer only: pass {"tracer": "callTracer"}'
)


def _trace_options_in(value: Any) -> bool:
    """debug_traceTransaction's options -> whether only the top call is wanted."""
    if not isinstance(value, dict) or value.get("tracer") != "callTracer":
        raise RpcError(INVALID_PARAMS, _CALL_TRACER_ONLY)
    config = value.get("tracerConfig") or {}
    if not isinstance(config, dict):
        raise RpcError(INVALID_PARAMS, "tracerConfig must be an object")
    return bool(config.get("onlyTopCall", False))


def _trace_transaction(chain: DevChain, tx_hash: str, only_top_call: bool | None) -> Any:
    if only_top_call is None:  # no options: geth's opcode logger, which is not here
        raise RpcError(INVALID_PARAMS, _CALL_TRACER_ONLY)
    try:
        return call_trace(chain.backend, decode_hex(tx_hash), only_top_call)
    except TransactionNotFound:
        raise RpcError(SERVER_ERROR, f"transaction {tx_hash} not found") from None


def _fee_history(chain: DevChain, count: int, newest: Any, percentiles: list[float]) -> Any:
    return to_wire(chain.fee_history(count, newest, percentiles))


def _receipt(chain: DevChain, tx_hash: str) -> Any:
    found = chain.transaction_receipt(tx_hash)
    if found is None:
        return None
    receipt, bloom, offset = found
    return receipt_out(receipt, logs_bloom=bloom, log_index_offset=offset)


def _transaction(chain: DevChain, tx_hash: str) -> Any:
    tx = _or_none(chain.tester.get_transaction_by_hash, tx_hash)
    return None if tx is None else transaction_out(tx)


def _block(chain: DevChain, block: Any, full: bool) -> Any:
    if isinstance(block, str) and block.startswith("0x"):
        return _or_none(chain.tester.get_block_by_hash, block, full)
    return _or_none(chain.tester.get_block_by_number, chain.resolve(block), full)


def _block_by_number(chain: DevChain, block: Any, full: bool) -> Any:
    found = _block(chain, block, full)
    return None if found is None else block_out(found)


def _block_by_hash(chain: DevChain, block_hash: str, full: bool) -> Any:
    found = _block(chain, block_hash, full)
    return None if found is None else block_out(found)


def _tx_count(chain: DevChain, block: Any) -> Any:
    found = _block(chain, block, False)
    return None if found is None else quantity_out(len(found["transactions"]))


def _tx_by_index(chain: DevChain, block: Any, index: int) -> Any:
    found = _block(chain, block, True)
    if found is None or index >= len(found["transactions"]):
        return None
    return transaction_out(found["transactions"][index])


def _log_query(chain: DevChain, params: dict[str, Any]) -> Any:
    return chain.log_query(params)


def _logs_found(chain: DevChain, query: Any) -> Any:
    return chain.find_logs(query)


def _tester_filter_params(chain: DevChain, params: dict[str, Any]) -> dict[str, Any]:
    if params["block_hash"] is not None:
        number = chain.block_number_of(params["block_hash"])
        from_block: Any = number
        to_block: Any = number
    else:
        from_block, to_block = params["from_block"], params["to_block"]
    topics = params["topics"]
    return {
        "from_block": None if from_block is None else _state_block(chain, from_block),
        "to_block": None if to_block is None else _state_block(chain, to_block),
        "address": params["address"],
        "topics": None if topics is None else list(topics),
    }


def _new_filter(chain: DevChain, params: dict[str, Any]) -> str:
    return quantity_out(chain.tester.create_log_filter(**_tester_filter_params(chain, params)))


def _new_block_filter(chain: DevChain) -> str:
    return quantity_out(chain.tester.create_block_filter())


def _new_pending_filter(chain: DevChain) -> str:
    return quantity_out(chain.tester.create_pending_transaction_filter())


def _filter_items(chain: DevChain, items: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            _, offset = chain.receipt_extras(item["transaction_hash"])
            out.append(log_out(item, offset))
        else:
            out.append(item)
    return out


def _filter_changes(chain: DevChain, filter_id: int) -> Any:
    try:
        return _filter_items(chain, chain.tester.get_only_filter_changes(filter_id))
    except FilterNotFound:
        raise RpcError(SERVER_ERROR, "filter not found") from None


def _filter_logs(chain: DevChain, filter_id: int) -> Any:
    try:
        return _filter_items(chain, chain.tester.get_all_filter_logs(filter_id))
    except FilterNotFound:
        raise RpcError(SERVER_ERROR, "filter not found") from None


def _uninstall_filter(chain: DevChain, filter_id: int) -> bool:
    try:
        chain.tester.delete_filter(filter_id)
    except FilterNotFound:
        return False
    return True


def _evm_mine(chain: DevChain, timestamp: int | None) -> str:
    if timestamp is not None:
        chain.set_next_block_timestamp(timestamp)
    chain.mine(1)
    return "0x0"


def _increase_time(chain: DevChain, seconds: int) -> str:
    return quantity_out(chain.increase_time(seconds))


def _set_next_timestamp(chain: DevChain, timestamp: int) -> None:
    chain.set_next_block_timestamp(timestamp)


def _send_transaction(chain: DevChain, *_: Any) -> None:
    raise RpcError(
        METHOD_NOT_FOUND,
        "eth_sendTransaction is not supported: the embedded node holds no keys; sign the "
        "transaction locally and send it with eth_sendRawTransaction",
    )


def _seconds_in(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return quantity_in(value, "seconds")


def _optional_quantity(value: Any) -> int | None:
    return None if value is None else quantity_in(value, "timestamp")


_LATEST = Param(block_id_in, "latest", "block")
_ADDRESS = Param(address_in, name="address")
_HASH = Param(hash_in, name="hash")
_FULL = Param(bool_in, False, "full transactions flag")
_OVERRIDES = Param(state_overrides_in, None, "state overrides")
_INDEX = Param(lambda v: quantity_in(v, "index"), name="index")
_FILTER_ID = Param(lambda v: quantity_in(v, "filter id"), name="filter id")


def _const(value: Any) -> Callable[..., Any]:
    return lambda chain: value


METHODS: dict[str, Method] = {
    "web3_clientVersion": Method((), lambda chain: client_version()),
    "web3_sha3": Method(
        (Param(data_in, name="data"),), lambda chain, data: encode_hex(keccak(decode_hex(data)))
    ),
    "net_version": Method((), lambda chain: str(chain.chain_id)),
    "net_listening": Method((), _const(True)),
    "net_peerCount": Method((), _const("0x0")),
    "eth_chainId": Method((), lambda chain: quantity_out(chain.chain_id)),
    "eth_syncing": Method((), _const(False)),
    "eth_accounts": Method((), _const([])),
    "eth_blockNumber": Method((), _block_number),
    "eth_getBalance": Method((_ADDRESS, _LATEST), _balance),
    "eth_getTransactionCount": Method((_ADDRESS, _LATEST), _nonce),
    "eth_getCode": Method((_ADDRESS, _LATEST), _code),
    "eth_getStorageAt": Method(
        (_ADDRESS, Param(lambda v: quantity_in(v, "slot"), name="slot"), _LATEST), _storage
    ),
    "eth_sendRawTransaction": Method((Param(data_in, name="raw transaction"),), _send_raw),
    "eth_sendTransaction": Method((Param(lambda v: v, None),), _send_transaction),
    "eth_call": Method((Param(transaction_in, name="transaction"), _LATEST, _OVERRIDES), _call),
    "eth_estimateGas": Method(
        (Param(transaction_in, name="transaction"), _LATEST, _OVERRIDES), _estimate
    ),
    "eth_createAccessList": Method(
        (Param(transaction_in, name="transaction"), _LATEST), _access_list
    ),
    "eth_getBlockReceipts": Method((Param(_block_or_hash_in, name="block"),), _block_receipts),
    "eth_blobBaseFee": Method((), lambda chain: quantity_out(chain.blob_base_fee())),
    "eth_coinbase": Method((), _const(_ZERO_ADDRESS)),
    "debug_traceTransaction": Method(
        (_HASH, Param(_trace_options_in, None, "tracer options")), _trace_transaction
    ),
    "eth_gasPrice": Method((), lambda chain: quantity_out(chain.gas_price())),
    "eth_maxPriorityFeePerGas": Method((), lambda chain: quantity_out(chain.max_priority_fee())),
    "eth_feeHistory": Method(
        (
            Param(lambda v: quantity_in(v, "blockCount"), name="blockCount"),
            Param(block_id_in, name="newestBlock"),
            Param(percentiles_in, None),
        ),
        _fee_history,
    ),
    "eth_getTransactionReceipt": Method((_HASH,), _receipt),
    "eth_getTransactionByHash": Method((_HASH,), _transaction),
    "eth_getBlockByNumber": Method((Param(block_id_in, name="block"), _FULL), _block_by_number),
    "eth_getBlockByHash": Method((_HASH, _FULL), _block_by_hash),
    "eth_getBlockTransactionCountByNumber": Method((Param(block_id_in, name="block"),), _tx_count),
    "eth_getBlockTransactionCountByHash": Method((_HASH,), _tx_count),
    "eth_getTransactionByBlockNumberAndIndex": Method(
        (Param(block_id_in, name="block"), _INDEX), _tx_by_index
    ),
    "eth_getTransactionByBlockHashAndIndex": Method((_HASH, _INDEX), _tx_by_index),
    "eth_getLogs": Method((Param(filter_in, name="filter"),), _log_query, _logs_found),
    "eth_newFilter": Method((Param(filter_in, name="filter"),), _new_filter),
    "eth_newBlockFilter": Method((), _new_block_filter),
    "eth_newPendingTransactionFilter": Method((), _new_pending_filter),
    "eth_getFilterChanges": Method((_FILTER_ID,), _filter_changes),
    "eth_getFilterLogs": Method((_FILTER_ID,), _filter_logs),
    "eth_uninstallFilter": Method((_FILTER_ID,), _uninstall_filter),
    "evm_mine": Method((Param(_optional_quantity, None),), _evm_mine),
    "evm_increaseTime": Method((Param(_seconds_in, name="seconds"),), _increase_time),
    "evm_setNextBlockTimestamp": Method(
        (Param(lambda v: quantity_in(v, "timestamp"), name="timestamp"),), _set_next_timestamp
    ),
}


def _convert_params(name: str, method: Method, params: Any) -> list[Any]:
    if params is None:
        params = []
    if not isinstance(params, list):
        raise RpcError(INVALID_PARAMS, f"{name} takes its parameters as a JSON array")
    if len(params) > len(method.params):
        raise RpcError(
            INVALID_PARAMS,
            f"{name} takes at most {len(method.params)} parameter(s), got {len(params)}",
        )
    out: list[Any] = []
    for position, spec in enumerate(method.params):
        if position < len(params) and params[position] is not None:
            out.append(spec.convert(params[position]))
        elif spec.default is _REQUIRED:
            label = spec.name or f"parameter {position + 1}"
            raise RpcError(INVALID_PARAMS, f"{name} is missing its {label}")
        else:
            out.append(spec.default)
    return out


class Dispatcher:
    """Answers JSON-RPC requests against one :class:`DevChain`, one at a time."""

    def __init__(self, chain: DevChain, lock: threading.Lock | None = None) -> None:
        self.chain = chain
        self.lock = lock or threading.Lock()
        self.broken: str | None = None

    def handle_body(self, body: bytes) -> bytes | None:
        """One HTTP body in (a request or a batch), the response body out (None: nothing)."""
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _dump(_error(None, RpcError(PARSE_ERROR, f"parse error: {exc}")))
        if isinstance(request, list):
            if not request:
                return _dump(_error(None, RpcError(INVALID_REQUEST, "empty batch")))
            responses = [r for r in (self.handle(item) for item in request) if r is not None]
            return _dump(responses) if responses else None
        response = self.handle(request)
        return None if response is None else _dump(response)

    def handle(self, request: Any) -> dict[str, Any] | None:
        """One request object -> its response object (None for a notification)."""
        if not isinstance(request, dict):
            return _error(None, RpcError(INVALID_REQUEST, "a request must be a JSON object"))
        request_id = request.get("id")
        is_notification = "id" not in request
        name = request.get("method")
        if request.get("jsonrpc") != "2.0" or not isinstance(name, str):
            return _error(
                request_id,
                RpcError(INVALID_REQUEST, 'a request needs "jsonrpc": "2.0" and a method name'),
            )
        try:
            result = self.call(name, request.get("params"))
        except RpcError as exc:
            return None if is_notification else _error(request_id, exc)
        if is_notification:
            return None
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    def call(self, name: str, params: Any) -> Any:
        """Run one method with wire params and return the wire result (or raise RpcError)."""
        method = METHODS.get(name)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"the method {name} does not exist/is not available")
        args = _convert_params(name, method, params)
        with self.lock:
            if self.broken is not None:
                raise RpcError(INTERNAL_ERROR, self.broken)
            error: RpcError | None = None
            try:
                result = method.run(self.chain, *args)
            except RpcError as exc:
                error = exc
            except TesterValidationError as exc:
                error = RpcError(INVALID_PARAMS, f"{name}: {exc}")
            except BlockNotFound as exc:
                error = RpcError(SERVER_ERROR, f"header not found: {exc}")
            except NotImplementedError as exc:
                error = RpcError(METHOD_NOT_FOUND, f"{name} is not supported: {exc}")
            except sqlite3.DatabaseError as exc:
                # The store is the chain: once a page reads back damaged ("database disk image
                # is malformed"), neither memory nor disk can be trusted to agree. Stop here:
                # no block is mined and no transaction accepted on top of it.
                self._break(_store_failure(exc))
                self.chain.store.rollback()
                raise RpcError(INTERNAL_ERROR, self.broken or "") from None
            except Exception as exc:
                # One line: fixtures pipe the node's stderr and may never read it.
                log.error("internal error in %s: %s: %s", name, type(exc).__name__, exc)
                if get_settings().debug:
                    log.exception("traceback")
                error = RpcError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
            # Durable before anyone hears about it; a no-op after read-only calls.
            self._commit()
            if error is not None:
                raise error
        if method.unlocked is None:
            return result
        try:
            return method.unlocked(self.chain, result)
        except sqlite3.DatabaseError as exc:
            with self.lock:
                self._break(_store_failure(exc))
            raise RpcError(INTERNAL_ERROR, self.broken or "") from None

    def _commit(self) -> None:
        try:
            self.chain.commit()
        except Exception as exc:
            # Memory is now ahead of disk: answer nothing more; a restart resumes from the last
            # committed block, which no client has been told is anything but final.
            self._break(
                f"the node could not write its chain store ({type(exc).__name__}: {exc}) and "
                f"stopped accepting requests; restart it"
            )
            raise RpcError(INTERNAL_ERROR, self.broken or "") from None

    def _break(self, reason: str) -> None:
        """Answer every later request with ``reason`` (one line in the log, too)."""
        self.broken = reason
        log.error("%s", reason)


def _store_failure(exc: sqlite3.DatabaseError) -> str:
    return (
        f"the node's chain store failed ({exc}) and the node stopped mining and accepting "
        f"requests; stop it, then restore the data dir from a backup or move it away to start "
        f"a fresh chain"
    )


def _error(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


def _dump(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
