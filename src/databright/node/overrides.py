"""State overrides: the third parameter of ``eth_call`` and ``eth_estimateGas``, as geth takes it.

``{address: {"balance", "nonce", "code", "state" | "stateDiff"}}``: the call runs as if the
account held that balance, nonce and code, and (``state``) only the given storage slots or
(``stateDiff``) the given slots changed. Tools use it to simulate a call from an account that
would need funds or an approval first, or against replacement code. The overrides apply to the
throwaway state the call runs in, never to the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth.abc import StateAPI
from eth_typing import Address
from eth_utils import to_canonical_address

from .wire import RpcError, address_in, data_in, quantity_in

__all__ = ["StateOverrides", "apply_state_overrides", "state_overrides_in"]

StateOverrides = dict[bytes, dict[str, Any]]

_FIELDS = frozenset({"balance", "nonce", "code", "state", "stateDiff"})


def _slots_in(value: Any, name: str) -> dict[int, int]:
    if not isinstance(value, Mapping):
        raise RpcError(-32602, f"{name} must be an object of storage slot to value")
    return {
        quantity_in(k, f"{name} slot"): quantity_in(v, f"{name} value") for k, v in value.items()
    }


def state_overrides_in(value: Any) -> StateOverrides:
    """The wire object -> canonical address -> {balance: int, nonce: int, code: bytes,
    state: {slot: value}, state_diff: {slot: value}} (only the fields given)."""
    if not isinstance(value, Mapping):
        raise RpcError(-32602, "state overrides must be an object keyed by address")
    out: StateOverrides = {}
    for address, override in value.items():
        canonical = to_canonical_address(address_in(address, "state override address"))
        if not isinstance(override, Mapping):
            raise RpcError(-32602, f"the state override of {address} must be an object")
        unknown = set(override) - _FIELDS
        if unknown:
            raise RpcError(-32602, f"unknown state override field(s): {', '.join(sorted(unknown))}")
        if override.get("state") is not None and override.get("stateDiff") is not None:
            raise RpcError(-32602, f"the state override of {address} has both state and stateDiff")
        entry: dict[str, Any] = {}
        if override.get("balance") is not None:
            entry["balance"] = quantity_in(override["balance"], "balance")
        if override.get("nonce") is not None:
            entry["nonce"] = quantity_in(override["nonce"], "nonce")
        if override.get("code") is not None:
            entry["code"] = bytes.fromhex(data_in(override["code"], "code")[2:])
        if override.get("state") is not None:
            entry["state"] = _slots_in(override["state"], "state")
        if override.get("stateDiff") is not None:
            entry["state_diff"] = _slots_in(override["stateDiff"], "stateDiff")
        out[canonical] = entry
    return out


def apply_state_overrides(state: StateAPI, overrides: Mapping[bytes, Mapping[str, Any]]) -> None:
    """Write ``overrides`` (from :func:`state_overrides_in`) into a throwaway ``state``."""
    for raw_address, entry in overrides.items():
        address = Address(raw_address)
        if "balance" in entry:
            state.set_balance(address, entry["balance"])
        if "nonce" in entry:
            state.set_nonce(address, entry["nonce"])
        if "code" in entry:
            state.set_code(address, entry["code"])
        if "state" in entry:
            state.delete_storage(address)
            slots = entry["state"]
        else:
            slots = entry.get("state_diff", {})
        for slot, slot_value in slots.items():
            state.set_storage(address, slot, slot_value)
