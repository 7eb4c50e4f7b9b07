"""What a node's error answer means: revert data decoded, JSON-RPC errors translated.

A revert's ``data`` is ABI-encoded: ``Error(string)`` for a reason string (Vyper's
``assert x, "reason"``, Solidity's ``require``), ``Panic(uint256)`` for a Solidity panic code,
or a custom error named by its 4-byte selector in a contract's ABI. Empty data is a revert
without a reason (Vyper's bare ``assert`` and its overflow checks revert so). The reason is read
from the data, never from the node's message, which differs between nodes; only a node that
sends no data at all is taken at its word.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eth_abi import decode as abi_decode
from eth_utils import keccak
from hexbytes import HexBytes

from databright.chain.abi import abi_type, checksummed
from databright.errors import ChainError, ContractReverted, InsufficientFunds, NonceTooLow

__all__ = [
    "ERROR_SELECTOR",
    "EXECUTION_REVERTED",
    "PANIC_REASONS",
    "PANIC_SELECTOR",
    "Revert",
    "RevertDecoder",
    "RevertKind",
    "decode_revert",
    "node_error",
    "reverted",
]

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # keccak("Error(string)")[:4]
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # keccak("Panic(uint256)")[:4]
EXECUTION_REVERTED = 3  # the JSON-RPC code geth, anvil and the embedded node give a revert

# Solidity's panic codes (https://docs.soliditylang.org/en/latest/control-structures.html).
# Vyper raises no panics: its failed checks revert with empty data.
PANIC_REASONS: Mapping[int, str] = {
    0x00: "generic compiler panic",
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "value out of range for an enum",
    0x22: "storage byte array incorrectly encoded",
    0x31: "pop from an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised internal function",
}

RevertKind = Literal["error", "panic", "custom", "empty", "unknown", "malformed"]


@dataclass(frozen=True)
class Revert:
    """A decoded revert.

    ``kind``: ``error`` (``Error(string)``), ``panic`` (``Panic(uint256)``), ``custom`` (an
    error of a known ABI), ``empty`` (no data), ``unknown`` (a selector no ABI given knows) or
    ``malformed`` (not ABI-encoded as its selector says). ``reason`` is one phrase for people,
    ``None`` only when the contract gave none; ``name`` and ``args`` are the error and its
    decoded arguments.
    """

    kind: RevertKind
    data: bytes
    reason: str | None
    name: str | None = None
    args: tuple[Any, ...] = ()

    @property
    def selector(self) -> bytes | None:
        return self.data[:4] if len(self.data) >= 4 else None


@dataclass(frozen=True)
class _CustomError:
    name: str
    inputs: list[dict[str, Any]]


class RevertDecoder:
    """Decodes revert data; custom errors are known from the ABIs given (``add`` more later)."""

    def __init__(self, abis: Iterable[Sequence[Mapping[str, Any]]] = ()) -> None:
        self._errors: dict[bytes, _CustomError] = {}
        for abi in abis:
            self.add(abi)

    def add(self, abi: Sequence[Mapping[str, Any]]) -> None:
        """Learn the custom errors of one contract ABI."""
        for entry in abi:
            if entry.get("type") != "error":
                continue
            inputs = [dict(i) for i in entry.get("inputs", [])]
            signature = f"{entry['name']}({','.join(abi_type(i) for i in inputs)})"
            self._errors[keccak(text=signature)[:4]] = _CustomError(entry["name"], inputs)

    def decode(self, data: bytes | str | None, message: str | None = None) -> Revert:
        """Decode revert ``data`` (bytes or 0x-hex). ``message``, the node's text, is used only
        when the node sent no data at all (``None``): then its ``execution reverted: <reason>``
        is all there is."""
        if data is None:
            reason = _reason_in_message(message)
            return Revert("error" if reason else "empty", b"", reason, "Error" if reason else None)
        try:
            raw = bytes(HexBytes(data))
        except (ValueError, TypeError):
            text = str(data)
            return Revert("malformed", text.encode(), f"malformed revert data {text[:80]!r}")
        if not raw:
            return Revert("empty", raw, None)
        if len(raw) < 4:
            return Revert("malformed", raw, f"malformed revert data 0x{raw.hex()}")
        selector, body = raw[:4], raw[4:]
        if selector == ERROR_SELECTOR:
            decoded = _decode(["string"], body)
            if decoded is None:
                return _malformed(raw, "Error(string)")
            (text,) = decoded
            return Revert("error", raw, text, "Error", (text,))
        if selector == PANIC_SELECTOR:
            decoded = _decode(["uint256"], body)
            if decoded is None:
                return _malformed(raw, "Panic(uint256)")
            (code,) = decoded
            meaning = PANIC_REASONS.get(code, "unknown panic code")
            return Revert("panic", raw, f"panic 0x{code:02x} ({meaning})", "Panic", (code,))
        custom = self._errors.get(selector)
        if custom is None:
            return Revert("unknown", raw, f"unknown error 0x{selector.hex()}")
        decoded = _decode([abi_type(i) for i in custom.inputs], body)
        if decoded is None:
            return _malformed(raw, custom.name)
        args = tuple(checksummed(v, i) for v, i in zip(decoded, custom.inputs, strict=True))
        shown = ", ".join(
            f"{i['name']}={_show(v)}" if i.get("name") else _show(v)
            for v, i in zip(args, custom.inputs, strict=True)
        )
        return Revert("custom", raw, f"{custom.name}({shown})", custom.name, args)


def decode_revert(
    data: bytes | str | None, abis: Iterable[Sequence[Mapping[str, Any]]] = ()
) -> Revert:
    """Decode revert ``data`` once; build a ``RevertDecoder`` to decode many."""
    return RevertDecoder(abis).decode(data)


def reverted(
    what: str, revert: Revert, *, code: int | None = None, data: str | None = None
) -> ContractReverted:
    """The error for a decoded revert of ``what`` (a call or transaction)."""
    if revert.reason is None:
        return ContractReverted(f"{what} reverted without a reason", None, code=code, data=data)
    return ContractReverted(
        f"{what} reverted: {revert.reason}", revert.reason, code=code, data=data
    )


def node_error(
    what: str, error: Mapping[str, Any] | str, reverts: RevertDecoder, sender: str
) -> ChainError:
    """Translate a JSON-RPC error object (``code``, ``message``, ``data``) into the
    ``databright.errors`` vocabulary; ``sender`` names the account in the sentence."""
    if isinstance(error, Mapping):
        message = str(error.get("message", error))
        code = error.get("code") if isinstance(error.get("code"), int) else None
        raw_data = error.get("data")
    else:
        message, code, raw_data = str(error), None, None
    # Some nodes nest the revert data ({"data": {"data": "0x..."}}): take the innermost.
    while isinstance(raw_data, Mapping):
        raw_data = raw_data.get("data")
    data = raw_data if isinstance(raw_data, str) else None
    low = message.lower()
    if code == EXECUTION_REVERTED or "execution reverted" in low:
        return reverted(what, reverts.decode(data, message), code=code, data=data)
    if "insufficient funds" in low:
        return InsufficientFunds(
            f"{what} failed: account {sender} cannot pay for value plus gas; fund it first",
            code=code,
            data=data,
        )
    if "nonce too low" in low or "nonce is too low" in low:
        return NonceTooLow(
            f"{what} failed: nonce too low, another client used account {sender}; "
            "the nonce has been resynchronised, retry the operation",
            code=code,
            data=data,
        )
    return ChainError(f"{what} failed: the node answered {message!r}", code=code, data=data)


def _decode(types: list[str], body: bytes) -> tuple[Any, ...] | None:
    try:
        return tuple(abi_decode(types, body))
    except Exception:
        return None


def _malformed(raw: bytes, name: str) -> Revert:
    return Revert("malformed", raw, f"malformed {name} revert data 0x{raw.hex()[:72]}", name)


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else repr(value)


def _reason_in_message(message: str | None) -> str | None:
    """The reason a node without revert data put in its message, if any."""
    if not message:
        return None
    _, sep, tail = message.partition("execution reverted")
    if not sep:
        return None
    reason = tail.lstrip(":").strip()
    return reason or None
