"""JSON-RPC wire values <-> the Python values eth-tester speaks, both directions.

eth-tester (driven through web3's ``API_ENDPOINTS`` table) already maps every RPC method onto
py-evm, but it takes and returns Python values: ``int`` quantities, snake_case keys, ``0x`` hex
strings for data, hashes and addresses. Ethereum JSON-RPC clients send and expect hex quantities
("0x1a"), camelCase keys and a few renamed fields (``input`` for ``data``, ``miner`` for
``coinbase``). This module is that translation and nothing else: no chain access, no I/O, so it
is unit-tested on its own.

Inbound converters raise :class:`RpcError` with code -32602 (invalid params) and a message that
names the bad value; outbound converters trust eth-tester's (already validated) output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_utils import is_hex_address, to_checksum_address

__all__ = [
    "EXECUTION_REVERTED",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "SERVER_ERROR",
    "BlockHashRef",
    "BlockId",
    "RpcError",
    "access_list_in",
    "address_in",
    "block_id_in",
    "block_out",
    "bool_in",
    "data_in",
    "filter_in",
    "hash_in",
    "log_out",
    "percentiles_in",
    "quantity_in",
    "quantity_out",
    "receipt_out",
    "snake_to_camel",
    "to_wire",
    "transaction_in",
    "transaction_out",
]

# JSON-RPC 2.0 codes, plus the two Ethereum nodes use: 3 for reverts (with the revert data),
# -32000 for "the node refused this" (nonce too low, insufficient funds...), as geth does.
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
SERVER_ERROR: Final = -32000
EXECUTION_REVERTED: Final = 3

BLOCK_TAGS: Final = frozenset({"latest", "earliest", "pending", "safe", "finalized"})
UINT256_MAX: Final = 2**256 - 1

_HEX_QUANTITY = re.compile(r"^0x[0-9a-fA-F]{1,64}$")
_HEX_DATA = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")


class RpcError(Exception):
    """An error to send back as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def _invalid(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


@dataclass(frozen=True)
class BlockHashRef:
    """An EIP-1898 ``{"blockHash": ...}`` block parameter; the chain resolves it."""

    block_hash: str


BlockId = int | str | BlockHashRef


# --- inbound ---------------------------------------------------------------------------


def quantity_in(value: Any, name: str = "quantity") -> int:
    """A hex quantity ("0x1a") or a plain non-negative JSON integer -> int."""
    if isinstance(value, bool):
        raise _invalid(f"{name} must be a hex quantity like 0x1a, got {value!r}")
    if isinstance(value, int):
        if 0 <= value <= UINT256_MAX:
            return value
        raise _invalid(f"{name} is out of range: {value}")
    if isinstance(value, str) and _HEX_QUANTITY.match(value):
        return int(value, 16)
    raise _invalid(f"{name} must be a hex quantity like 0x1a, got {value!r}")


def data_in(value: Any, name: str = "data") -> str:
    """Hex data with an even number of digits -> lowercase hex string."""
    if isinstance(value, str) and _HEX_DATA.match(value):
        return value.lower()
    raise _invalid(f"{name} must be 0x-prefixed hex bytes, got {_short(value)}")


def hash_in(value: Any, name: str = "hash") -> str:
    """A 32-byte hash -> lowercase hex string."""
    text = data_in(value, name)
    if len(text) != 66:
        raise _invalid(f"{name} must be 32 bytes of hex, got {_short(value)}")
    return text


def address_in(value: Any, name: str = "address") -> str:
    """A 20-byte address in any letter case -> checksummed string."""
    if isinstance(value, str) and is_hex_address(value):
        return str(to_checksum_address(value))
    raise _invalid(f"{name} must be a 20-byte 0x address, got {_short(value)}")


def bool_in(value: Any, name: str = "flag") -> bool:
    if isinstance(value, bool):
        return value
    raise _invalid(f"{name} must be true or false, got {_short(value)}")


def block_id_in(value: Any, name: str = "block") -> BlockId:
    """A block tag, a hex block number or an EIP-1898 object -> eth-tester's block id."""
    if isinstance(value, str) and value in BLOCK_TAGS:
        return value
    if isinstance(value, Mapping):
        if "blockHash" in value:
            return BlockHashRef(hash_in(value["blockHash"], "blockHash"))
        if "blockNumber" in value:
            return block_id_in(value["blockNumber"], "blockNumber")
        raise _invalid(f"{name} object needs blockHash or blockNumber")
    try:
        return quantity_in(value, name)
    except RpcError:
        raise _invalid(
            f"{name} must be a block number or one of {', '.join(sorted(BLOCK_TAGS))}, "
            f"got {_short(value)}"
        ) from None


def percentiles_in(value: Any) -> list[float]:
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _invalid("rewardPercentiles must be a list of numbers")
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not 0 <= item <= 100:
            raise _invalid(f"reward percentile must be a number in [0, 100], got {item!r}")
        if out and item < out[-1]:
            raise _invalid("rewardPercentiles must be in ascending order")
        out.append(float(item))
    return out


# camelCase wire key -> (eth-tester key, converter)
_TX_FIELDS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "from": ("from", address_in),
    "to": ("to", address_in),
    "gas": ("gas", quantity_in),
    "gasPrice": ("gas_price", quantity_in),
    "maxFeePerGas": ("max_fee_per_gas", quantity_in),
    "maxPriorityFeePerGas": ("max_priority_fee_per_gas", quantity_in),
    "value": ("value", quantity_in),
    "nonce": ("nonce", quantity_in),
    "chainId": ("chain_id", quantity_in),
    "data": ("data", data_in),
    "input": ("data", data_in),
}
# Fields clients send that mean nothing to a call: the type follows from the fee fields.
_TX_IGNORED = frozenset({"type", "hash", "v", "r", "s", "yParity"})
_TX_BLOB = frozenset({"blobVersionedHashes", "maxFeePerBlobGas", "blobs"})


def transaction_in(value: Any) -> dict[str, Any]:
    """A call object of eth_call / eth_estimateGas -> eth-tester's transaction dict."""
    if not isinstance(value, Mapping):
        raise _invalid("transaction must be a JSON object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in _TX_BLOB:
            raise _invalid("blob transactions are not supported by the embedded node")
        if key in _TX_IGNORED or item is None:
            continue
        if key == "accessList":
            access_list = access_list_in(item)
            if access_list:  # an empty list changes nothing: keep the plainest transaction
                out["access_list"] = access_list
            continue
        field = _TX_FIELDS.get(key)
        if field is None:
            raise _invalid(f"unknown transaction field {key!r}")
        target, convert = field
        if key == "input" and "data" in value and value["data"] != item:
            raise _invalid("transaction has both data and input, and they differ")
        out[target] = convert(item, key)
    if "gas_price" in out and ("max_fee_per_gas" in out or "max_priority_fee_per_gas" in out):
        raise _invalid("transaction mixes gasPrice with maxFeePerGas/maxPriorityFeePerGas")
    return out


def access_list_in(value: Any) -> list[tuple[bytes, list[int]]]:
    """An EIP-2930 access list -> [(canonical address, [slot, ...]), ...]."""
    if not isinstance(value, list):
        raise _invalid("accessList must be a list of {address, storageKeys} objects")
    out: list[tuple[bytes, list[int]]] = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise _invalid("accessList must be a list of {address, storageKeys} objects")
        address = bytes.fromhex(address_in(entry.get("address"), "accessList address")[2:])
        keys = entry.get("storageKeys") or []
        if not isinstance(keys, list):
            raise _invalid("accessList storageKeys must be a list of 32-byte hashes")
        out.append((address, [int(hash_in(key, "storage key"), 16) for key in keys]))
    return out


def _topic_in(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [hash_in(item, "topic") if item is not None else None for item in value]
    return hash_in(value, "topic")


def filter_in(value: Any) -> dict[str, Any]:
    """An eth_getLogs / eth_newFilter filter object -> snake_case dict.

    Keys: ``from_block``, ``to_block`` (block ids), ``address`` (list of checksummed addresses
    or None), ``topics`` (list of None | hash | list of hashes), ``block_hash``.
    """
    if not isinstance(value, Mapping):
        raise _invalid("filter must be a JSON object")
    unknown = set(value) - {"fromBlock", "toBlock", "address", "topics", "blockHash"}
    if unknown:
        raise _invalid(f"unknown filter field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {
        "from_block": None,
        "to_block": None,
        "address": None,
        "topics": None,
        "block_hash": None,
    }
    if value.get("blockHash") is not None:
        if value.get("fromBlock") is not None or value.get("toBlock") is not None:
            raise _invalid("filter cannot have blockHash together with fromBlock/toBlock")
        out["block_hash"] = hash_in(value["blockHash"], "blockHash")
    for wire_key, key in (("fromBlock", "from_block"), ("toBlock", "to_block")):
        if value.get(wire_key) is not None:
            out[key] = block_id_in(value[wire_key], wire_key)
    address = value.get("address")
    if isinstance(address, list):
        out["address"] = [address_in(item) for item in address]
    elif address is not None:
        out["address"] = [address_in(address)]
    topics = value.get("topics")
    if topics is not None:
        if not isinstance(topics, list) or len(topics) > 4:
            raise _invalid("topics must be a list of at most 4 entries")
        out["topics"] = [_topic_in(item) for item in topics]
    return out


# --- outbound --------------------------------------------------------------------------


def quantity_out(value: int) -> str:
    return hex(value)


def snake_to_camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_wire(value: Any) -> Any:
    """Generic outbound conversion: ints -> hex, bytes -> hex, snake_case keys -> camelCase."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {snake_to_camel(str(k)): to_wire(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [to_wire(item) for item in value]
    raise TypeError(f"cannot put {type(value).__name__} on the wire")


def _bloom_out(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return "0x" + value.to_bytes(256, "big").hex()
    return value


def _hash32_out(value: Any) -> str:
    if isinstance(value, int):
        return "0x" + value.to_bytes(32, "big").hex()
    return str(value)


def transaction_out(tx: Mapping[str, Any]) -> dict[str, Any]:
    """eth-tester transaction -> wire: ``data`` is ``input``, contract creation has ``to: null``."""
    out = dict(tx)
    if "data" in out:
        out["input"] = out.pop("data")
    if out.get("to") in ("", b""):
        out["to"] = None
    if "access_list" in out:
        out["access_list"] = [
            {
                "address": entry["address"],
                "storageKeys": [_hash32_out(k) for k in entry.get("storage_keys", ())],
            }
            for entry in out["access_list"]
        ]
    wire: dict[str, Any] = to_wire(out)
    return wire


def block_out(block: Mapping[str, Any]) -> dict[str, Any]:
    """eth-tester block -> wire: ``coinbase`` is ``miner``, the bloom is 256 bytes of hex."""
    out = dict(block)
    if "coinbase" in out:
        out["miner"] = out.pop("coinbase")
    out["logs_bloom"] = _bloom_out(out.get("logs_bloom"))
    transactions = out.pop("transactions", [])
    wire: dict[str, Any] = to_wire(out)
    wire["transactions"] = [
        transaction_out(tx) if isinstance(tx, Mapping) else tx for tx in transactions
    ]
    return wire


def log_out(log: Mapping[str, Any], log_index_offset: int = 0) -> dict[str, Any]:
    """eth-tester log -> wire; ``log_index_offset`` turns its per-receipt index block-wide."""
    out = {k: v for k, v in log.items() if k != "type"}
    out["log_index"] = int(out.get("log_index", 0)) + log_index_offset
    out.setdefault("removed", False)
    wire: dict[str, Any] = to_wire(out)
    return wire


def receipt_out(
    receipt: Mapping[str, Any], logs_bloom: int | None = None, log_index_offset: int = 0
) -> dict[str, Any]:
    """eth-tester receipt -> wire, adding ``logsBloom`` and block-wide log indexes.

    eth-tester's receipts lack ``logsBloom`` and number logs per receipt; geth and anvil number
    them per block. The pre-Byzantium ``state_root`` field is dropped (``status`` is there).
    """
    out = {k: v for k, v in receipt.items() if k not in ("state_root", "logs")}
    if out.get("to") in ("", b""):
        out["to"] = None
    if logs_bloom is not None:
        out["logs_bloom"] = _bloom_out(logs_bloom)
    wire: dict[str, Any] = to_wire(out)
    wire["logs"] = [log_out(log, log_index_offset) for log in receipt.get("logs", ())]
    return wire


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
