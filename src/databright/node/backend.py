"""The persistent backend: eth-tester's py-evm backend over a chain kept in the node's store.

eth-tester's ``PyEVMBackend`` builds its py-evm chain in ``setup_tester_chain`` on
``eth.db.get_db_backend()``, an in-memory ``AtomicDB``. :class:`PersistentBackend` is a
``PyEVMBackend`` whose chain (a :class:`DevMiningChain`) is built instead on
``AtomicDB(KeyValueStore(...))`` and, on restart, re-opened from the stored canonical head rather
than from genesis (:mod:`.dev_chain` does both). Everything else (validation, normalization,
serialization, filters) stays eth-tester's.

What the backend changes, and why:

* transaction and receipt lookups use py-evm's tx-hash index (eth-tester scans every block);
* ``eth_sendRawTransaction`` checks the chain id, and rewords py-evm's refusals the way geth
  words them (:mod:`.geth_errors`), since clients (ours included) recognize errors by those words;
* ``eth_call`` and ``eth_estimateGas`` run in py-evm's "costless" state, so that calls from
  unfunded addresses work (as on geth and anvil), and a revert raises an :class:`RpcError`
  carrying the raw revert data (eth-tester keeps only the decoded string);
* gas estimates are exact (:mod:`.gas`; eth-tester rounds up to a multiple of 21000);
* each block's timestamp is taken when its first transaction arrives (eth-tester freezes it
  when the previous block was mined), plus an offset ``evm_increaseTime`` can move.
* a sent transaction is executed and mined as its block in one pass on one VM (see
  ``PersistentBackend._mine_transaction``), and its receipts are kept for the receipt request
  that follows.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, cast

import eth_tester.backends.pyevm.main as pyevm_main
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI, StateAPI
from eth.chains.base import MiningChain
from eth.constants import BLANK_ROOT_HASH
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth.exceptions import VMError
from eth.vm.forks import CancunVM
from eth.vm.spoof import SpoofTransaction
from eth_tester.backends.pyevm.main import PyEVMBackend
from eth_tester.exceptions import TransactionNotFound
from eth_typing import BlockNumber, Hash32
from eth_utils import ValidationError as EVMValidationError
from eth_utils import encode_hex, to_checksum_address
from eth_utils.toolz import assoc

from .gas import estimate_gas_exact
from .geth_errors import rejected, rejection, vm_error
from .overrides import apply_state_overrides
from .wire import INVALID_PARAMS, RpcError

__all__ = ["DEFAULT_CHAIN_ID", "HARDFORK", "DevMiningChain", "PersistentBackend", "chain_class"]

DEFAULT_CHAIN_ID = 1337
HARDFORK = "cancun"  # the fork anvil runs with in this project (--hardfork cancun)
_RECENT_BLOCKS = 64


class DevMiningChain(MiningChain):
    """py-evm's mining chain as the node runs it: cancun from genesis, exact gas estimates."""

    vm_configuration = ((BlockNumber(0), CancunVM),)
    chain_id = DEFAULT_CHAIN_ID
    gas_estimator = staticmethod(estimate_gas_exact)

    def create_header_from_parent(
        self, parent_header: BlockHeaderAPI, **header_params: Any
    ) -> BlockHeaderAPI:
        # Keep the gas limit constant, as eth-tester does.
        return super().create_header_from_parent(
            parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
        )

    def get_transaction_builder(self) -> Any:
        return self.get_vm().get_transaction_builder()


def chain_class(chain_id: int) -> type[DevMiningChain]:
    """:class:`DevMiningChain` for ``chain_id`` (py-evm configures the chain id on the class)."""
    return cast(
        type[DevMiningChain],
        DevMiningChain.configure(__name__="DataBrightDevChain", chain_id=chain_id),
    )


class PersistentBackend(PyEVMBackend):  # type: ignore[misc]
    """eth-tester's py-evm backend over a persistent chain (see the module docstring)."""

    def __init__(self, chain: DevMiningChain, time_offset: int = 0) -> None:
        # Deliberately not calling PyEVMBackend.__init__: it would build an in-memory chain.
        self.chain = chain
        self.account_keys: tuple[Any, ...] = ()  # eth_accounts is empty: clients sign locally
        self.time_offset = time_offset
        self.next_timestamp: int | None = None
        self._head_timestamp: int | None = None
        self._recent: OrderedDict[int, tuple[BlockAPI, tuple[ReceiptAPI, ...] | None]] = (
            OrderedDict()
        )
        self._mined_by_send: bytes | None = None

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("the persistent chain cannot be reset; use a new data dir")

    def take_snapshot(self) -> Any:
        raise NotImplementedError("snapshots are not supported by the persistent chain")

    def revert_to_snapshot(self, snapshot: Any) -> None:
        raise NotImplementedError("snapshots are not supported by the persistent chain")

    # --- timestamps ---------------------------------------------------------------------

    def _refresh_pending_timestamp(self) -> None:
        """Stamp the pending block with the time its first transaction arrives."""
        chain = self.chain
        header = chain.header
        if header.gas_used or header.transaction_root != BLANK_ROOT_HASH:
            return  # already holds transactions: its time is fixed
        if self._head_timestamp is None:
            self._head_timestamp = int(chain.get_canonical_head().timestamp)
        if self.next_timestamp is not None:
            stamp = self.next_timestamp
            self.next_timestamp = None
        else:
            stamp = max(int(time.time()) + self.time_offset, self._head_timestamp + 1)
        if stamp != header.timestamp:
            chain.header = header.copy(timestamp=stamp)

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = pyevm_main.ZERO_ADDRESS) -> Any:
        # eth-tester's loop, minus its Prague-only blob accounting (this chain is cancun).
        hashes = []
        if self._mined_by_send is not None:
            # eth-tester auto-mines right after each send; that block is already mined.
            hashes.append(self._mined_by_send)
            self._mined_by_send = None
            num_blocks -= 1
        for _ in range(num_blocks):
            self._refresh_pending_timestamp()
            block = self.chain.mine_block(coinbase=coinbase, mix_hash=os.urandom(32))
            self._head_timestamp = int(block.header.timestamp)
            self._remember_block(block)
            hashes.append(block.hash)
        return tuple(hashes)

    # --- lookups ------------------------------------------------------------------------

    def _remember_block(
        self, block: BlockAPI, receipts: tuple[ReceiptAPI, ...] | None = None
    ) -> None:
        """Keep recent blocks decoded: the receipt request follows the send at once, and a
        decoded block has its senders recovered already (and its receipts, when it was mined
        here from a send). Canonical blocks never change here (no reorgs, no snapshots), so the
        cache needs no invalidation."""
        self._recent[block.number] = (block, receipts)
        if len(self._recent) > _RECENT_BLOCKS:
            self._recent.popitem(last=False)

    def block_and_receipts(self, number: int) -> tuple[BlockAPI, tuple[ReceiptAPI, ...]]:
        """A canonical block and its receipts, from the recent-block cache when possible."""
        block, receipts = self._recent.get(number, (None, None))
        if block is None:
            block = self.chain.get_canonical_block_by_number(BlockNumber(number))
        if receipts is None:
            receipts = tuple(block.get_receipts(self.chain.chaindb))
            self._recent[number] = (block, receipts)
            if len(self._recent) > _RECENT_BLOCKS:
                self._recent.popitem(last=False)
        return block, receipts

    def locate(self, transaction_hash: bytes) -> tuple[int, int]:
        """(block number, index) of a mined transaction; eth-tester's TransactionNotFound."""
        try:
            number, index = self.chain.chaindb.get_transaction_index(Hash32(transaction_hash))
        except EVMTransactionNotFound:
            raise TransactionNotFound(
                f"No transaction found for transaction hash: {encode_hex(transaction_hash)}"
            ) from None
        return int(number), index

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        number, index = self.locate(transaction_hash)
        block, _ = self.block_and_receipts(number)
        return pyevm_main.serialize_transaction(block, block.transactions[index], index, False)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        number, index = self.locate(transaction_hash)
        block, receipts = self.block_and_receipts(number)
        return pyevm_main.serialize_transaction_receipt(
            block, receipts, block.transactions[index], index, False, None
        )

    def _header_for(self, block_number: Any) -> BlockHeaderAPI:
        if block_number == "pending":
            block_number = "latest"
        return cast(
            BlockHeaderAPI, pyevm_main._get_block_by_number(self.chain, block_number).header
        )

    # --- transactions -------------------------------------------------------------------

    def send_raw_transaction(self, raw_transaction: bytes) -> bytes:
        chain = self.chain
        if raw_transaction[:1] == bytes([pyevm_main.BLOB_TX_TYPE]):
            raise rejected("blob transactions are not supported by the embedded node")
        self._refresh_pending_timestamp()
        try:
            transaction = chain.get_transaction_builder().decode(raw_transaction)
            sender = transaction.sender
        except Exception as exc:
            raise RpcError(INVALID_PARAMS, f"invalid raw transaction: {exc}") from None
        tx_chain_id = getattr(transaction, "chain_id", None)
        if tx_chain_id is not None and tx_chain_id != chain.chain_id:
            raise rejected(f"invalid chain id for signer: have {tx_chain_id} want {chain.chain_id}")
        try:
            # py-evm validates nonce, funds, fee and gas limit before it changes anything;
            # checking first ourselves would read the sender's account twice per transaction.
            block, receipts = self._mine_transaction(transaction)
        except EVMValidationError as exc:
            raise rejection(str(exc), to_checksum_address(sender)) from None
        self._head_timestamp = int(block.header.timestamp)
        self._remember_block(block, receipts)
        self._mined_by_send = block.hash
        return cast(bytes, transaction.hash)

    def _mine_transaction(
        self, transaction: SignedTransactionAPI
    ) -> tuple[BlockAPI, tuple[ReceiptAPI, ...] | None]:
        """Execute one transaction and mine it as the next block, on one VM.

        What ``MiningChain.apply_transaction`` followed by ``MiningChain.mine_block`` does
        (py-evm 0.12.1b1, which eth-tester 0.14.0b1 drives), in one pass: those two build the
        VM and its state twice, compute the state root twice, and read the pending block back
        from the database in between. Here the state is computed once, in ``finalize_block``;
        the block is the same (header, state root, receipts), validated by ``VM.mine_block`` as
        before. ``Chain.validate_block``, which ``mine_block`` also ran, is left out: it repeats
        the VM's header checks, and its seal checks are no-ops after the merge (PoS).

        Returns the block and its receipts (None where they must be read back).
        """
        chain = self.chain
        header = chain.header
        if header.transaction_root != BLANK_ROOT_HASH:
            # Not reachable while every transaction is mined at once; stay correct anyway.
            chain.apply_transaction(transaction)
            return chain.mine_block(mix_hash=os.urandom(32)), None
        vm = chain.get_vm(header)
        base_block = vm.get_block()
        new_header, receipts, _ = vm.apply_all_transactions([transaction], base_block.header)
        filled = vm.set_block_transactions_and_withdrawals(
            base_block, new_header, [transaction], receipts
        )
        block = vm.mine_block(filled, mix_hash=os.urandom(32)).block
        chain.chaindb.persist_block(block)
        chain.header = chain.create_header_from_parent(block.header)
        return block, receipts

    def _call_transaction(
        self,
        state: StateAPI,
        transaction: Mapping[str, Any],
        gas: int,
        *,
        estimate: bool,
        access_list: Sequence[tuple[bytes, Sequence[int]]] | None = None,
    ) -> tuple[SpoofTransaction, int]:
        """The unsigned transaction a call or an estimate runs, in every shape anvil accepts.

        The type follows from the fee fields, as on geth and anvil: ``gasPrice`` makes a legacy
        transaction, anything else a dynamic-fee one whose missing fees are zero (a call that
        names no price costs nothing, so unfunded senders can call). ``chainId`` is checked
        (calls) or ignored (estimates) rather than handed to py-evm, whose legacy builder has
        no such field. An estimate ignores the price (it does not change the gas) as anvil
        does; a call pays it, so an unfunded sender that names a price is refused.

        Returns the transaction and its gas limit: an estimate whose ``gas`` is below the
        transaction's intrinsic cost runs with the block's limit instead, as anvil's does.
        """
        max_fee = transaction.get("max_fee_per_gas", 0)
        tip = transaction.get("max_priority_fee_per_gas", 0)
        if not estimate and "gas_price" not in transaction and tip > max_fee:
            raise RpcError(
                INVALID_PARAMS,
                f"max priority fee per gas higher than max fee per gas: "
                f"maxPriorityFeePerGas: {tip}, maxFeePerGas: {max_fee}",
            )
        chain_id = self.chain.chain_id
        asked_chain_id = transaction.get("chain_id")
        if not estimate and asked_chain_id is not None and asked_chain_id != chain_id:
            raise rejected(f"invalid chain id for signer: have {asked_chain_id} want {chain_id}")
        sender = transaction["from"]
        common: dict[str, Any] = {
            "nonce": state.get_nonce(sender),
            "gas": gas,
            "to": transaction.get("to") or b"",
            "value": transaction.get("value", 0),
            "data": transaction.get("data", b""),
        }
        if access_list is None:
            access_list = transaction.get("access_list") or ()
        builder: Any = CancunVM.get_transaction_builder()
        if "gas_price" in transaction:
            price = 0 if estimate else transaction["gas_price"]
            if access_list:
                unsigned = builder.new_unsigned_access_list_transaction(
                    chain_id=chain_id, gas_price=price, access_list=access_list, **common
                )
            else:
                unsigned = builder.create_unsigned_transaction(gas_price=price, **common)
        else:
            if estimate:
                max_fee = tip = 0
            unsigned = builder.new_unsigned_dynamic_fee_transaction(
                chain_id=chain_id,
                max_priority_fee_per_gas=tip,
                max_fee_per_gas=max_fee,
                access_list=access_list,
                **common,
            )
        spoofed = SpoofTransaction(unsigned, from_=sender)
        intrinsic = int(spoofed.intrinsic_gas)
        if gas < intrinsic:
            if not estimate:
                raise rejected(f"intrinsic gas too low: have {gas}, want {intrinsic}")
            gas = state.gas_limit
            spoofed = SpoofTransaction(unsigned, from_=sender, gas=gas)
        if not estimate:
            # geth's rule, worded as geth words it: the sender must afford the whole limit at
            # the named price (py-evm would blame a "blob fee" here).
            price = transaction.get("gas_price", transaction.get("max_fee_per_gas", 0))
            want = gas * price + common["value"]
            have = state.get_balance(sender)
            if have < want:
                raise rejected(
                    f"insufficient funds for gas * price + value: address "
                    f"{to_checksum_address(sender)} have {have} want {want}"
                )
        return spoofed, gas

    def _run_costless(
        self,
        transaction: Mapping[str, Any],
        block_number: Any,
        overrides: Mapping[bytes, Mapping[str, Any]] | None,
        *,
        estimate: bool,
    ) -> Any:
        header = self._header_for(block_number)
        sender = to_checksum_address(transaction["from"])
        gas = min(transaction.get("gas", header.gas_limit), header.gas_limit)
        try:
            with self.chain.get_vm(header).in_costless_state() as state:
                if overrides:
                    apply_state_overrides(state, overrides)
                spoofed, gas = self._call_transaction(state, transaction, gas, estimate=estimate)
                if estimate:
                    return estimate_gas_exact(state, cast(SignedTransactionAPI, spoofed), gas)
                computation = state.apply_transaction(cast(SignedTransactionAPI, spoofed))
        except (EVMValidationError, VMError) as exc:
            raise vm_error(exc, sender) from None
        if computation.is_error:
            raise vm_error(computation.error, sender)
        return computation

    def call(
        self,
        transaction: Mapping[str, Any],
        block_number: Any = "latest",
        overrides: Mapping[bytes, Mapping[str, Any]] | None = None,
    ) -> bytes:
        computation = self._run_costless(transaction, block_number, overrides, estimate=False)
        return cast(bytes, computation.output)

    def estimate_gas(
        self,
        transaction: Mapping[str, Any],
        block_number: Any = "latest",
        overrides: Mapping[bytes, Mapping[str, Any]] | None = None,
    ) -> int:
        return int(self._run_costless(transaction, block_number, overrides, estimate=True))

    def create_access_list(
        self, transaction: Mapping[str, Any], block_number: Any = "latest"
    ) -> tuple[list[tuple[bytes, list[int]]], int, Any]:
        """``eth_createAccessList``: the accounts and slots the call touches, the gas it uses
        with that list, and the error it ends with (None when it succeeds).

        As geth's access-list tracer: every account and slot the EVM warms is recorded, except
        the sender, the recipient and the precompiles (warm anyway), whose slots still count;
        the call is then run again with the list, which is what its gas is reported for.
        """
        header = self._header_for(block_number)
        sender = transaction["from"]
        gas = min(transaction.get("gas", header.gas_limit), header.gas_limit)
        excluded = {sender, transaction.get("to") or b""}
        try:
            with self.chain.get_vm(header).in_costless_state() as state:
                excluded.update(state.computation_class.get_precompiles())
                excluded.add(state.coinbase)  # warm from the start since Shanghai
                accounts: dict[bytes, list[int]] = {}
                _record_warming(state, accounts, excluded)
                spoofed, gas = self._call_transaction(state, transaction, gas, estimate=False)
                state.apply_transaction(cast(SignedTransactionAPI, spoofed))
            listed = [(address, sorted(slots)) for address, slots in accounts.items()]
            with self.chain.get_vm(header).in_costless_state() as state:
                spoofed, gas = self._call_transaction(
                    state, transaction, gas, estimate=False, access_list=listed
                )
                computation = state.apply_transaction(cast(SignedTransactionAPI, spoofed))
        except (EVMValidationError, VMError) as exc:
            raise vm_error(exc, to_checksum_address(sender)) from None
        used = gas - computation.get_gas_remaining()
        used -= min(computation.get_gas_refund(), used // 5)  # as the block would refund it
        error = None if computation.is_success else computation.error
        return listed, used, error


def _record_warming(
    state: StateAPI, accounts: dict[bytes, list[int]], excluded: set[bytes]
) -> None:
    """Make ``state`` note in ``accounts`` every account and slot the EVM warms."""
    mark_address = state.mark_address_warm
    mark_storage = state.mark_storage_warm

    def address_warmed(address: Any) -> None:
        if address not in excluded:
            accounts.setdefault(bytes(address), [])
        mark_address(address)

    def storage_warmed(address: Any, slot: int) -> None:
        slots = accounts.setdefault(bytes(address), [])
        if slot not in slots:
            slots.append(slot)
        mark_storage(address, slot)

    # Instance attributes shadow the methods for this throwaway state only.
    state.mark_address_warm = address_warmed  # type: ignore[method-assign]
    state.mark_storage_warm = storage_warmed  # type: ignore[method-assign]
