"""The development chain: py-evm through eth-tester, on the SQLite store.

eth-tester's ``PyEVMBackend`` builds its py-evm chain in ``setup_tester_chain`` on
``eth.db.get_db_backend()``, an in-memory ``AtomicDB``. :class:`PersistentBackend` is a
``PyEVMBackend`` whose chain is built instead on ``AtomicDB(KeyValueStore(...))`` and, on
restart, re-opened from the stored canonical head rather than from genesis. Everything else
(validation, normalization, serialization, filters) stays eth-tester's.

What the backend changes, and why:

* transaction and receipt lookups use py-evm's tx-hash index (eth-tester scans every block);
* ``eth_sendRawTransaction`` checks the chain id, and rewords py-evm's refusals the way geth
  words them ("nonce too low: ...", "insufficient funds for gas * price + value: ..."), since
  clients (ours included) recognize errors by those words;
* ``eth_call`` and ``eth_estimateGas`` run in py-evm's "costless" state, so that calls from
  unfunded addresses work (as on geth and anvil), and a revert raises an :class:`RpcError`
  carrying the raw revert data (eth-tester keeps only the decoded string);
* gas estimates are exact (eth-tester rounds up to a multiple of 21000);
* each block's timestamp is taken when its first transaction arrives (eth-tester freezes it
  when the previous block was mined), plus an offset ``evm_increaseTime`` can move.
* a sent transaction is executed and mined as its block in one pass on one VM (see
  ``PersistentBackend._mine_transaction``), and its receipts are kept for the receipt request
  that follows.

:class:`DevChain` also installs :mod:`.trie_cache` (memoized trie node decoding), the node's one
hook into library internals.

:class:`DevChain` owns the store, the backend and the ``EthereumTester`` on top, opens or creates
a data dir (refusing damaged ones), and commits the store once per request that wrote.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import eth_tester.backends.pyevm.main as pyevm_main
from eth.abc import BlockAPI, BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI, StateAPI
from eth.chains.base import MiningChain
from eth.constants import BLANK_ROOT_HASH
from eth.db.atomic import AtomicDB
from eth.estimators.gas import _get_computation_error
from eth.exceptions import (
    BlockNotFound as EVMBlockNotFound,
)
from eth.exceptions import (
    CanonicalHeadNotFound,
    HeaderNotFound,
    OutOfGas,
    Revert,
    VMError,
)
from eth.exceptions import (
    TransactionNotFound as EVMTransactionNotFound,
)
from eth.vm.forks import CancunVM
from eth.vm.spoof import SpoofTransaction
from eth_bloom import BloomFilter
from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import PyEVMBackend
from eth_tester.constants import ZERO_ADDRESS_HEX
from eth_tester.exceptions import TransactionNotFound
from eth_typing import BlockNumber, Hash32
from eth_utils import ValidationError as EVMValidationError
from eth_utils import decode_hex, encode_hex, to_canonical_address, to_checksum_address
from eth_utils.toolz import assoc

from databright.errors import NodeError, StoreCorrupt

from . import trie_cache
from .accounts import DEV_ACCOUNTS_FILE, create_dev_keys, encrypt_dev_key
from .store import SCHEMA_VERSION, KeyValueStore
from .wire import EXECUTION_REVERTED, INVALID_PARAMS, SERVER_ERROR, BlockHashRef, RpcError

__all__ = [
    "DEFAULT_CHAIN_ID",
    "DEV_BALANCE_WEI",
    "HARDFORK",
    "STORE_FILE",
    "DevChain",
    "PersistentBackend",
]

DEFAULT_CHAIN_ID = 1337
HARDFORK = "cancun"  # the fork anvil runs with in this project (--hardfork cancun)
DEV_BALANCE_WEI = 10_000 * 10**18  # like anvil and hardhat
PRIORITY_FEE_WEI = 10**9
_RECENT_BLOCKS = 64
STORE_FILE = "chain.sqlite3"
_FEE_FIELDS = ("gas_price", "max_fee_per_gas", "max_priority_fee_per_gas")
_ERROR_SELECTOR = bytes.fromhex("08c379a0")


# --- py-evm chain --------------------------------------------------------------------------


def _estimate_gas_exact(
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
            raise _rejected(f"gas required exceeds allowance ({cap})")
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


class _DevMiningChain(MiningChain):
    vm_configuration = ((BlockNumber(0), CancunVM),)
    chain_id = DEFAULT_CHAIN_ID
    gas_estimator = staticmethod(_estimate_gas_exact)

    def create_header_from_parent(
        self, parent_header: BlockHeaderAPI, **header_params: Any
    ) -> BlockHeaderAPI:
        # Keep the gas limit constant, as eth-tester does.
        return super().create_header_from_parent(
            parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
        )

    def get_transaction_builder(self) -> Any:
        return self.get_vm().get_transaction_builder()


def _chain_class(chain_id: int) -> type[_DevMiningChain]:
    return cast(
        type[_DevMiningChain],
        _DevMiningChain.configure(__name__="DataBrightDevChain", chain_id=chain_id),
    )


# --- eth-tester backend --------------------------------------------------------------------


def _rejected(message: str) -> RpcError:
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


def _vm_error(error: BaseException, address: str) -> RpcError:
    if isinstance(error, Revert):
        data = error.args[0] if error.args and isinstance(error.args[0], bytes) else b""
        return revert_error(data)
    if isinstance(error, EVMValidationError):
        return _rejection(str(error), address)
    return _rejected(f"execution failed: {type(error).__name__} {error}".strip())


_NONCE = re.compile(r"Invalid transaction nonce: Expected (\d+), but got (\d+)")
_GAS_FUNDS = re.compile(r"cannot afford txn gas (\d+) with account balance (\d+)")
_FUNDS = re.compile(r"\(has (\d+), needs (\d+)\)")
_BASE_FEE = re.compile(
    r"max fee per gas \((\d+)\) is lower than block's base fee per gas \((\d+)\)"
)
_GAS_LIMIT = re.compile(r"Transaction exceeds gas limit")


def _rejection(message: str, address: str) -> RpcError:
    """py-evm's refusal of a transaction, reworded as geth words it (clients match on it)."""
    if match := _NONCE.search(message):
        state, sent = int(match[1]), int(match[2])
        if sent < state:
            return _rejected(f"nonce too low: address {address}, tx: {sent} state: {state}")
        return _rejected(
            f"nonce too high: address {address}, tx: {sent} state: {state} "
            f"(the embedded node mines every transaction at once and keeps no queue)"
        )
    if (match := _GAS_FUNDS.search(message)) or (match := _FUNDS.search(message)):
        want, have = (match[1], match[2]) if match.re is _GAS_FUNDS else (match[2], match[1])
        return _rejected(
            f"insufficient funds for gas * price + value: address {address} have {have} want {want}"
        )
    if match := _BASE_FEE.search(message):
        return _rejected(
            f"max fee per gas less than block base fee: address {address}, "
            f"maxFeePerGas: {match[1]}, baseFee: {match[2]}"
        )
    if _GAS_LIMIT.search(message):
        return _rejected(f"exceeds block gas limit: {message}")
    return _rejected(f"invalid transaction: {message}")


class PersistentBackend(PyEVMBackend):  # type: ignore[misc]
    """eth-tester's py-evm backend over a persistent chain (see the module docstring)."""

    def __init__(self, chain: _DevMiningChain, time_offset: int = 0) -> None:
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
            raise _rejected("blob transactions are not supported by the embedded node")
        self._refresh_pending_timestamp()
        try:
            transaction = chain.get_transaction_builder().decode(raw_transaction)
            sender = transaction.sender
        except Exception as exc:
            raise RpcError(INVALID_PARAMS, f"invalid raw transaction: {exc}") from None
        tx_chain_id = getattr(transaction, "chain_id", None)
        if tx_chain_id is not None and tx_chain_id != chain.chain_id:
            raise _rejected(
                f"invalid chain id for signer: have {tx_chain_id} want {chain.chain_id}"
            )
        try:
            # py-evm validates nonce, funds, fee and gas limit before it changes anything;
            # checking first ourselves would read the sender's account twice per transaction.
            block, receipts = self._mine_transaction(transaction)
        except EVMValidationError as exc:
            raise _rejection(str(exc), to_checksum_address(sender)) from None
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

    def _call_transaction(self, transaction: Mapping[str, Any], block_number: Any, gas: int) -> Any:
        tx = {k: v for k, v in transaction.items() if k != "nonce"}
        tx["gas"] = gas
        if not any(field in tx for field in _FEE_FIELDS):
            # Like geth: a call without a price costs nothing, so unfunded senders can call.
            tx["max_fee_per_gas"] = 0
            tx["max_priority_fee_per_gas"] = 0
        if block_number == "pending":
            block_number = "latest"
        unsigned = self._get_normalized_and_unsigned_evm_transaction(tx, block_number)
        return SpoofTransaction(unsigned, from_=transaction["from"])

    def call(self, transaction: Mapping[str, Any], block_number: Any = "latest") -> bytes:
        header = self._header_for(block_number)
        gas = min(transaction.get("gas", header.gas_limit), header.gas_limit)
        spoofed = self._call_transaction(transaction, block_number, gas)
        sender = to_checksum_address(transaction["from"])
        try:
            with self.chain.get_vm(header).in_costless_state() as state:
                computation = state.apply_transaction(spoofed)
        except (EVMValidationError, VMError) as exc:
            raise _vm_error(exc, sender) from None
        if computation.is_error:
            raise _vm_error(computation.error, sender)
        return cast(bytes, computation.output)

    def estimate_gas(self, transaction: Mapping[str, Any], block_number: Any = "latest") -> int:
        header = self._header_for(block_number)
        gas = min(transaction.get("gas", header.gas_limit), header.gas_limit)
        spoofed = self._call_transaction(transaction, block_number, gas)
        try:
            with self.chain.get_vm(header).in_costless_state() as state:
                return _estimate_gas_exact(state, spoofed, gas)
        except (EVMValidationError, VMError) as exc:
            raise _vm_error(exc, to_checksum_address(transaction["from"])) from None


class _Tester(EthereumTester):  # type: ignore[misc]
    """``EthereumTester`` that feeds log filters from mined blocks only (every transaction is
    mined at once; eth-tester would also feed them the pending receipt, twice over) and skips
    re-reading each mined block when no filter wants it."""

    def _handle_filtering_for_transaction(self, transaction_hash: str) -> None:
        raw_hash = self.normalizer.normalize_inbound_transaction_hash(transaction_hash)
        for pending_filter in self._pending_transaction_filters.values():
            pending_filter.add(raw_hash)

    def mine_blocks(self, num_blocks: int = 1, coinbase: str = ZERO_ADDRESS_HEX) -> Any:
        if self._block_filters or self._log_filters:
            return super().mine_blocks(num_blocks, coinbase)
        self.validator.validate_inbound_account(coinbase)
        raw_coinbase = self.normalizer.normalize_inbound_account(coinbase)
        raw_hashes = self.backend.mine_blocks(num_blocks, raw_coinbase)
        return [self.normalizer.normalize_outbound_block_hash(h) for h in raw_hashes]


# --- the chain the node serves -------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    chain_id: int
    genesis_hash: str
    time_offset: int


def _genesis_params_to_json(params: Mapping[str, Any]) -> str:
    return json.dumps(
        {k: encode_hex(v) if isinstance(v, bytes) else v for k, v in params.items()},
        sort_keys=True,
    )


class DevChain:
    """The persistent chain behind the node: store + eth-tester backend + ``EthereumTester``.

    Not thread-safe: the server holds one lock around every request.
    """

    def __init__(self, store: KeyValueStore, chain: _DevMiningChain, meta: _Meta) -> None:
        trie_cache.install()
        self.store = store
        self.chain_id = meta.chain_id
        self.genesis_hash = meta.genesis_hash
        self.backend = PersistentBackend(chain, time_offset=meta.time_offset)
        self.tester = _Tester(backend=self.backend, auto_mine_transactions=True)

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: Path,
        chain_id: int | None = None,
        accounts: int = 10,
        password: str = "",
    ) -> tuple[DevChain, list[dict[str, Any]]]:
        """Open the chain of ``data_dir``, creating it (genesis, dev keys) if there is none.

        Returns the chain and the encrypted keystores of its dev accounts (for the caller to
        write out). Raises :class:`NodeError` for a chain id mismatch and
        :class:`StoreCorrupt` for a damaged store.
        """
        path = Path(data_dir) / STORE_FILE
        store = KeyValueStore(path)
        try:
            if store.get_meta("schema_version") is not None:
                return cls._reopen(store, chain_id)
            if store.is_empty():
                if (Path(data_dir) / DEV_ACCOUNTS_FILE).exists():
                    # Keystores are written after genesis commits: the chain was lost.
                    raise StoreCorrupt(
                        f"data dir {data_dir} has dev keystores but its chain store is empty "
                        f"or missing; move the data dir away to start a fresh chain"
                    )
                # Nothing was ever committed (genesis is one transaction): a first start that
                # died early. Creating the chain now loses nothing.
                return cls._create(store, chain_id or DEFAULT_CHAIN_ID, accounts, password)
            raise StoreCorrupt(
                f"the chain store {path} holds data but no chain metadata; move the data dir "
                f"away to start a fresh chain"
            )
        except sqlite3.DatabaseError as exc:
            store.close()
            raise StoreCorrupt(
                f"the chain store {path} is damaged ({exc}); move the data dir away "
                f"to start a fresh chain"
            ) from exc
        except BaseException:
            store.close()
            raise

    @classmethod
    def _create(
        cls, store: KeyValueStore, chain_id: int, accounts: int, password: str
    ) -> tuple[DevChain, list[dict[str, Any]]]:
        keys = create_dev_keys(accounts)
        keystores = [encrypt_dev_key(key, password) for key in keys]
        genesis_state = {
            to_canonical_address(key.address): {
                "balance": DEV_BALANCE_WEI,
                "nonce": 0,
                "code": b"",
                "storage": {},
            }
            for key in keys
        }
        params = pyevm_main.get_default_genesis_params()
        chain = _chain_class(chain_id).from_genesis(
            AtomicDB(store), params, cast(Any, genesis_state)
        )
        genesis_hash = encode_hex(chain.get_canonical_head().hash)
        store.set_meta_many(
            {
                "schema_version": SCHEMA_VERSION,
                "chain_id": str(chain_id),
                "hardfork": HARDFORK,
                "genesis_hash": genesis_hash,
                "genesis_params": _genesis_params_to_json(params),
                "dev_accounts": json.dumps([str(key.address) for key in keys]),
                "dev_keystores": json.dumps(keystores),
                "time_offset": "0",
                "created_at": str(int(time.time())),
            }
        )
        store.commit()
        meta = _Meta(chain_id=chain_id, genesis_hash=genesis_hash, time_offset=0)
        return cls(store, cast(_DevMiningChain, chain), meta), keystores

    @classmethod
    def _reopen(
        cls, store: KeyValueStore, chain_id: int | None
    ) -> tuple[DevChain, list[dict[str, Any]]]:
        where = store.path.parent
        version = store.get_meta("schema_version")
        stored_id = store.get_meta("chain_id")
        genesis_hash = store.get_meta("genesis_hash")
        if version is None or stored_id is None or genesis_hash is None:
            raise StoreCorrupt(
                f"the chain store in {where} has no chain metadata; move the data dir away "
                f"to start a fresh chain"
            )
        if version != SCHEMA_VERSION:
            raise StoreCorrupt(
                f"the chain store in {where} has schema version {version}, this node reads "
                f"{SCHEMA_VERSION}; move the data dir away to start a fresh chain"
            )
        if chain_id is not None and int(stored_id) != chain_id:
            raise NodeError(
                f"data dir {where} holds chain id {stored_id}, not {chain_id}; "
                f"pass --chain-id {stored_id} or use another --data-dir"
            )
        try:
            chain = _chain_class(int(stored_id))(AtomicDB(store))
            _check_head(chain, genesis_hash)
        except (CanonicalHeadNotFound, HeaderNotFound, EVMBlockNotFound, KeyError) as exc:
            raise StoreCorrupt(
                f"the chain store in {where} is damaged (head block incomplete: "
                f"{type(exc).__name__}); move the data dir away to start a fresh chain"
            ) from exc
        keystores = json.loads(store.get_meta("dev_keystores") or "[]")
        meta = _Meta(
            chain_id=int(stored_id),
            genesis_hash=genesis_hash,
            time_offset=int(store.get_meta("time_offset") or 0),
        )
        return cls(store, cast(_DevMiningChain, chain), meta), keystores

    # --- state --------------------------------------------------------------------------

    @property
    def chain(self) -> _DevMiningChain:
        return cast(_DevMiningChain, self.backend.chain)

    def head(self) -> BlockHeaderAPI:
        return self.chain.get_canonical_head()

    def commit(self) -> None:
        """Make everything written so far durable, in one SQLite transaction."""
        self.store.commit()

    def close(self) -> None:
        self.store.commit()
        self.store.close()

    def block_number_of(self, block_hash: str) -> int:
        """Resolve an EIP-1898 block hash to a canonical block number."""
        try:
            header = self.chain.get_block_header_by_hash(Hash32(decode_hex(block_hash)))
        except HeaderNotFound:
            raise RpcError(INVALID_PARAMS, f"block {block_hash} not found") from None
        canonical = self.chain.get_canonical_block_hash(header.block_number)
        if canonical != header.hash:
            raise RpcError(INVALID_PARAMS, f"block {block_hash} is not canonical")
        return int(header.block_number)

    def resolve(self, block: int | str | BlockHashRef) -> int | str:
        if isinstance(block, BlockHashRef):
            return self.block_number_of(block.block_hash)
        return block

    def _number(self, block: int | str | BlockHashRef) -> int:
        resolved = self.resolve(block)
        head = int(self.head().block_number)
        if resolved == "earliest":
            return 0
        if isinstance(resolved, str):
            return head
        if resolved > head:
            raise RpcError(INVALID_PARAMS, f"block {resolved} is beyond the head block {head}")
        return resolved

    def base_fee_next(self) -> int:
        return _base_fee(self.chain.header)

    def gas_price(self) -> int:
        return self.base_fee_next() + PRIORITY_FEE_WEI

    def max_priority_fee(self) -> int:
        return PRIORITY_FEE_WEI

    # --- receipts and logs ----------------------------------------------------------------

    def transaction_receipt(self, transaction_hash: str) -> tuple[dict[str, Any], int, int] | None:
        """A mined transaction's receipt as ``EthereumTester.get_transaction_receipt`` gives it,
        with its logs bloom and the block-wide index of its first log; None if not mined.

        Calls the backend and eth-tester's normalizer directly, without eth-tester's validators
        around them: the hash was checked on the way in (``wire.hash_in``), and the receipt is
        this node's own. One lookup serves the receipt and its extras.
        """
        try:
            number, index = self.backend.locate(decode_hex(transaction_hash))
        except TransactionNotFound:
            return None
        block, receipts = self.backend.block_and_receipts(number)
        raw = pyevm_main.serialize_transaction_receipt(
            block, receipts, block.transactions[index], index, False, None
        )
        receipt = self.tester.normalizer.normalize_outbound_receipt(raw)
        offset = sum(len(earlier.logs) for earlier in receipts[:index])
        return receipt, int(receipts[index].bloom), offset

    def receipt_extras(self, transaction_hash: str) -> tuple[int, int]:
        """(logs bloom, block-wide index of its first log) of a mined transaction's receipt."""
        number, index = self.backend.locate(decode_hex(transaction_hash))
        _, receipts = self.backend.block_and_receipts(number)
        offset = sum(len(receipt.logs) for receipt in receipts[:index])
        return int(receipts[index].bloom), offset

    def get_logs(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Logs matching an eth_getLogs filter (see :func:`wire.filter_in`), bloom-filtered."""
        addresses = [to_canonical_address(a) for a in params.get("address") or ()]
        topics: list[Any] = list(params.get("topics") or ())
        if params.get("block_hash") is not None:
            first = last = self.block_number_of(params["block_hash"])
        else:
            # Block 0 is a valid bound: test for None, not for falsiness.
            first = self._number(_or_latest(params.get("from_block")))
            last = self._number(_or_latest(params.get("to_block")))
        if first > last:
            raise RpcError(INVALID_PARAMS, f"fromBlock {first} is after toBlock {last}")
        topic_sets = [
            None if t is None else {decode_hex(x) for x in (t if isinstance(t, list) else [t]) if x}
            for t in topics
        ]
        topic_sets = [s if s else None for s in topic_sets]
        out: list[dict[str, Any]] = []
        chain = self.chain
        for number in range(first, last + 1):
            header = chain.get_canonical_block_header_by_number(BlockNumber(number))
            if not _bloom_may_match(header.bloom, addresses, topic_sets):
                continue
            block, receipts = self.backend.block_and_receipts(number)
            log_index = 0
            for tx_index, (tx, receipt) in enumerate(
                zip(block.transactions, receipts, strict=True)
            ):
                for log in receipt.logs:
                    if _log_matches(log, addresses, topic_sets):
                        out.append(
                            {
                                "address": to_checksum_address(log.address),
                                "topics": [encode_hex(t.to_bytes(32, "big")) for t in log.topics],
                                "data": encode_hex(log.data),
                                "block_number": number,
                                "block_hash": encode_hex(header.hash),
                                "transaction_hash": encode_hex(tx.hash),
                                "transaction_index": tx_index,
                                "log_index": log_index,
                                "removed": False,
                            }
                        )
                    log_index += 1
        return out

    # --- fees -----------------------------------------------------------------------------

    def fee_history(
        self, block_count: int, newest: int | str | BlockHashRef, percentiles: Sequence[float]
    ) -> dict[str, Any]:
        if block_count < 1:
            return {"oldest_block": 0, "base_fee_per_gas": [], "gas_used_ratio": [], "reward": []}
        block_count = min(block_count, 1024)
        last = self._number(newest)
        first = max(0, last - block_count + 1)
        base_fees: list[int] = []
        ratios: list[float] = []
        rewards: list[list[int]] = []
        header = None
        for number in range(first, last + 1):
            header = self.chain.get_canonical_block_header_by_number(BlockNumber(number))
            base_fees.append(_base_fee(header))
            ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
            if percentiles:
                rewards.append(self._block_rewards(header, percentiles))
        assert header is not None
        # The base fee of the block after the newest one, as geth reports.
        if last == int(self.head().block_number):
            base_fees.append(self.base_fee_next())
        else:
            base_fees.append(
                _base_fee(self.chain.get_canonical_block_header_by_number(BlockNumber(last + 1)))
            )
        history: dict[str, Any] = {
            "oldest_block": first,
            "base_fee_per_gas": base_fees,
            "gas_used_ratio": ratios,
        }
        if percentiles:
            history["reward"] = rewards
        return history

    def _block_rewards(self, header: BlockHeaderAPI, percentiles: Sequence[float]) -> list[int]:
        block = self.chain.get_block_by_header(header)
        if not block.transactions:
            return [0 for _ in percentiles]
        receipts = block.get_receipts(self.chain.chaindb)
        base_fee = _base_fee(header)
        items: list[tuple[int, int]] = []
        previous = 0
        for tx, receipt in zip(block.transactions, receipts, strict=True):
            max_fee = getattr(tx, "max_fee_per_gas", None)
            if max_fee is None:
                tip = tx.gas_price - base_fee
            else:
                tip = min(tx.max_priority_fee_per_gas, max_fee - base_fee)
            items.append((tip, receipt.gas_used - previous))
            previous = receipt.gas_used
        items.sort()
        total = sum(gas for _, gas in items) or 1
        out: list[int] = []
        for p in percentiles:
            threshold = total * p / 100
            cumulative = 0
            chosen = items[-1][0]
            for tip, gas in items:
                cumulative += gas
                if cumulative >= threshold:
                    chosen = tip
                    break
            out.append(chosen)
        return out

    # --- time -----------------------------------------------------------------------------

    def increase_time(self, seconds: int) -> int:
        self.backend.time_offset += seconds
        self.store.set_meta("time_offset", str(self.backend.time_offset))
        return int(self.backend.time_offset)

    def set_next_block_timestamp(self, timestamp: int) -> None:
        parent = self.head()
        if timestamp <= parent.timestamp:
            raise RpcError(
                INVALID_PARAMS,
                f"timestamp {timestamp} is not after the head block's {parent.timestamp}",
            )
        self.backend.next_timestamp = timestamp
        # Later blocks follow on from it.
        self.backend.time_offset = timestamp - int(time.time())
        self.store.set_meta("time_offset", str(self.backend.time_offset))

    def mine(self, blocks: int = 1) -> None:
        self.tester.mine_blocks(blocks)


def _base_fee(header: BlockHeaderAPI) -> int:
    return int(header.base_fee_per_gas or 0)


def _check_head(chain: _DevMiningChain, genesis_hash: str) -> None:
    """Fail (KeyError/HeaderNotFound...) unless the head block and its state are all there."""
    head = chain.get_canonical_head()
    if encode_hex(chain.get_canonical_block_hash(BlockNumber(0))) != genesis_hash:
        raise HeaderNotFound("genesis hash does not match the stored one")
    block = chain.get_block_by_header(head)
    block.get_receipts(chain.chaindb)
    db = chain.chaindb.db
    if head.state_root != BLANK_ROOT_HASH:
        db[head.state_root]
    if head.block_number > 0:
        chain.get_block_header_by_hash(head.parent_hash)
    for tx in block.transactions:
        chain.chaindb.get_transaction_index(tx.hash)


def _bloom_may_match(bloom: int, addresses: Iterable[bytes], topic_sets: Sequence[Any]) -> bool:
    addresses = list(addresses)
    bloom_filter = BloomFilter(bloom)
    if addresses and not any(address in bloom_filter for address in addresses):
        return False
    for topic_set in topic_sets:
        if topic_set and not any(topic in bloom_filter for topic in topic_set):
            return False
    return True


def _log_matches(log: Any, addresses: Sequence[bytes], topic_sets: Sequence[Any]) -> bool:
    if addresses and log.address not in addresses:
        return False
    if len(topic_sets) > len(log.topics):
        return False
    for wanted, topic in zip(topic_sets, log.topics, strict=False):
        if wanted is not None and topic.to_bytes(32, "big") not in wanted:
            return False
    return True


def _or_latest(block: Any) -> Any:
    return "latest" if block is None else block
