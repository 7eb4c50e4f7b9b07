"""Exact gas estimates, in fewer EVM runs than py-evm's own estimator.

eth-tester rounds estimates up to a multiple of 21000 and py-evm's exact search runs the call
~25 times; :func:`estimate_gas_exact` gives the exact smallest limit in ~10 runs.
"""

from __future__ import annotations

from typing import cast

from eth.abc import SignedTransactionAPI, StateAPI
from eth.estimators.gas import _get_computation_error
from eth.exceptions import OutOfGas
from eth.vm.spoof import SpoofTransaction

from .geth_errors import rejected

__all__ = ["estimate_gas_exact"]


def estimate_gas_exact(
    state: StateAPI, transaction: SignedTransactionAPI, cap: int | None = None
) -> int:
    """Smallest gas limit that does not fail, searched from the gas the call actually used.

    Runs once at the cap (raising its error if it fails there), then bisects between the gas
    used and an optimistic bound (used * 64/63 + stipend covers the 63/64 rule): ~10 runs instead
    of py-evm's ~25 exact or 21000-granular estimate.
    """
    cap = state.gas_limit if cap is None else cap
    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(
            cast(SignedTransactionAPI, SpoofTransaction(transaction, gas=cap))
        )
    finally:
        state.revert(snapshot)
    if computation.is_error:
        if isinstance(computation.error, OutOfGas):
            raise rejected(f"gas required exceeds allowance ({cap})")
        raise computation.error
    used = cap - computation.get_gas_remaining()
    lo = max(transaction.intrinsic_gas, used) - 1  # highest limit known (assumed) to fail
    hi = cap

    def fails(gas: int) -> bool:
        tx = cast(SignedTransactionAPI, SpoofTransaction(transaction, gas=gas))
        return _get_computation_error(state, tx) is not None

    optimistic = min(cap, (used + 2300) * 64 // 63)
    if optimistic > lo + 1 and not fails(optimistic):
        hi = optimistic
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(mid):
            lo = mid
        else:
            hi = mid
    return hi
