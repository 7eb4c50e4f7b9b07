"""``debug_traceTransaction`` with geth's ``callTracer``: the tree of calls a mined transaction
made, replayed on the state before it.

py-evm keeps every message it ran as a child of the computation that ran it, so the replay needs
no hook into the interpreter: the transaction is applied again (after the transactions before it
in its block) on a throwaway copy of its parent block's state, and the computation tree is read
off. What py-evm does not record is which opcode made a call, so the type is inferred from the
message: a create is ``CREATE`` (``CREATE2`` is reported as ``CREATE`` too), a call that runs
another account's code on the caller's storage is ``DELEGATECALL`` (or ``CALLCODE`` when it
moves value), a static call below a non-static frame is ``STATICCALL``, and the rest ``CALL``.
Only the call tracer is offered; geth's default opcode logger is not. Compared by hand with anvil
1.7.1 (run without ``--prune-history``, which keeps nothing to trace) on a create, a nested call
and a revert two frames deep: the same frames, gas figures included.
"""

from __future__ import annotations

from typing import Any, cast

from eth.abc import ComputationAPI, SignedTransactionAPI
from eth.exceptions import InvalidInstruction, OutOfGas, Revert
from eth_typing import BlockNumber

from .backend import PersistentBackend
from .geth_errors import revert_error

__all__ = ["call_trace"]


def call_trace(backend: PersistentBackend, transaction_hash: bytes, only_top_call: bool) -> Any:
    """geth's ``callTracer`` frame of a mined transaction (raises eth-tester's
    TransactionNotFound for an unknown hash)."""
    number, index = backend.locate(transaction_hash)
    chain = backend.chain
    block, receipts = backend.block_and_receipts(number)
    parent = chain.get_canonical_block_header_by_number(BlockNumber(number - 1))
    vm = chain.get_vm(block.header)
    state = vm.build_state(
        chain.chaindb.db,
        block.header.copy(state_root=parent.state_root),
        cast(Any, vm).chain_context,  # on every VM, not on its interface
        vm.previous_hashes or (),
    )
    snapshot = state.snapshot()
    try:
        for earlier in block.transactions[:index]:
            state.apply_transaction(earlier)
        transaction: SignedTransactionAPI = block.transactions[index]
        computation = state.apply_transaction(transaction)
    finally:
        state.revert(snapshot)
    used = receipts[index].gas_used - (receipts[index - 1].gas_used if index else 0)
    top = _frame(computation, None, only_top_call)
    # As geth and anvil: the top frame's gas is what was left after the intrinsic cost, and the
    # gas it used is the transaction's, intrinsic cost included.
    top["gasUsed"] = hex(used)
    if top["type"] == "CREATE":  # py-evm charges the init code's words (EIP-3860) inside
        top["gas"] = hex(int(top["gas"], 16) - 2 * ((len(transaction.data) + 31) // 32))
    return top


def _call_type(computation: ComputationAPI, parent: ComputationAPI | None) -> str:
    msg = computation.msg
    if msg.is_create:
        return "CREATE"
    if parent is not None and msg.code_address != msg.storage_address:
        return "CALLCODE" if msg.should_transfer_value else "DELEGATECALL"
    if msg.is_static and (parent is None or not parent.msg.is_static):
        return "STATICCALL"
    return "CALL"


def _frame(computation: ComputationAPI, parent: ComputationAPI | None, only_top: bool) -> Any:
    msg = computation.msg
    kind = _call_type(computation, parent)
    # Addresses in lowercase, as geth and anvil write them in traces.
    frame: dict[str, Any] = {
        "type": kind,
        "from": "0x" + bytes(msg.sender).hex(),
        "to": "0x" + bytes(msg.storage_address if kind == "CREATE" else msg.code_address).hex(),
        "value": hex(msg.value),
        "gas": hex(msg.gas),
        "gasUsed": hex(computation.get_gas_used()),
        # A create's input is its init code, which py-evm runs as the message's code.
        "input": "0x" + bytes(msg.code if kind == "CREATE" else msg.data_as_bytes).hex(),
    }
    if kind == "DELEGATECALL":
        # geth: a delegate call runs on behalf of the caller's caller, with the caller's value.
        frame["from"] = "0x" + bytes(msg.storage_address).hex()
    if kind == "STATICCALL":
        del frame["value"]
    if computation.output:
        frame["output"] = "0x" + bytes(computation.output).hex()
    if computation.is_error:
        error = computation.error
        if isinstance(error, Revert):
            frame["error"] = "execution reverted"
            message = revert_error(bytes(computation.output)).message
            if message.startswith("execution reverted: "):
                frame["revertReason"] = message.removeprefix("execution reverted: ")
        elif isinstance(error, OutOfGas):
            frame["error"] = "out of gas"
        elif isinstance(error, InvalidInstruction):
            frame["error"] = "invalid opcode"
        else:
            frame["error"] = str(error) or type(error).__name__
    if not only_top and computation.children:
        frame["calls"] = [_frame(child, computation, False) for child in computation.children]
    return frame
