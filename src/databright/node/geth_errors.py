"""Errors worded as geth words them, since clients (ours included) recognize errors by them.

* a revert is JSON-RPC error code 3, ``execution reverted: <reason>`` (the reason decoded from
  an ``Error(string)`` payload) and the raw revert data, as geth and anvil send it;
* py-evm's refusals of a transaction ("Invalid transaction nonce: Expected 5, but got 3") become
  geth's -32000 sentences ("nonce too low: address A, tx: 3 state: 5").
"""

from __future__ import annotations

import re

from eth.exceptions import Revert
from eth_utils import ValidationError as EVMValidationError
from eth_utils import encode_hex

from .wire import EXECUTION_REVERTED, SERVER_ERROR, RpcError

__all__ = ["rejected", "rejection", "revert_error", "vm_error"]

_ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)

_NONCE = re.compile(r"Invalid transaction nonce: Expected (\d+), but got (\d+)")
_GAS_FUNDS = re.compile(r"cannot afford txn gas (\d+) with account balance (\d+)")
_FUNDS = re.compile(r"\(has (\d+), needs (\d+)\)")
_BASE_FEE = re.compile(
    r"max fee per gas \((\d+)\) is lower than block's base fee per gas \((\d+)\)"
)
_GAS_LIMIT = re.compile(r"Transaction exceeds gas limit")


def rejected(message: str) -> RpcError:
    """A refusal: geth's generic server error code with ``message``."""
    return RpcError(SERVER_ERROR, message)


def revert_error(data: bytes) -> RpcError:
    """The error geth and anvil send for a revert: code 3, reason in the message, raw data."""
    message = "execution reverted"
    if data[:4] == _ERROR_SELECTOR:
        try:
            from eth_abi import abi

            (reason,) = abi.decode(["string"], data[4:])
            message = f"execution reverted: {reason}"
        except Exception:  # undecodable reason: keep the generic message and the raw data
            pass
    return RpcError(EXECUTION_REVERTED, message, encode_hex(data) if data else None)


def vm_error(error: BaseException, address: str) -> RpcError:
    """The error for a call or estimate from ``address`` that py-evm failed with ``error``."""
    if isinstance(error, Revert):
        data = error.args[0] if error.args and isinstance(error.args[0], bytes) else b""
        return revert_error(data)
    if isinstance(error, EVMValidationError):
        return rejection(str(error), address)
    return rejected(f"execution failed: {type(error).__name__} {error}".strip())


def rejection(message: str, address: str) -> RpcError:
    """py-evm's refusal of a transaction, reworded as geth words it (clients match on it)."""
    if match := _NONCE.search(message):
        state, sent = int(match[1]), int(match[2])
        if sent < state:
            return rejected(f"nonce too low: address {address}, tx: {sent} state: {state}")
        return rejected(
            f"nonce too high: address {address}, tx: {sent} state: {state} "
            f"(the embedded node mines every transaction at once and keeps no queue)"
        )
    if (match := _GAS_FUNDS.search(message)) or (match := _FUNDS.search(message)):
        want, have = (match[1], match[2]) if match.re is _GAS_FUNDS else (match[2], match[1])
        return rejected(
            f"insufficient funds for gas * price + value: address {address} have {have} want {want}"
        )
    if match := _BASE_FEE.search(message):
        return rejected(
            f"max fee per gas less than block base fee: address {address}, "
            f"maxFeePerGas: {match[1]}, baseFee: {match[2]}"
        )
    if _GAS_LIMIT.search(message):
        return rejected(f"exceeds block gas limit: {message}")
    return rejected(f"invalid transaction: {message}")
