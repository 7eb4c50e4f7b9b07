"""The chain the node serves: the store, the persistent backend and ``EthereumTester`` on top.

:class:`DevChain` opens or creates a data dir (genesis with funded dev accounts, or the stored
head; refusing damaged stores), answers what the JSON-RPC methods ask beyond eth-tester's own
calls (receipts with their extras, logs, fees, time), and commits the store once per request
that wrote. The pieces it is made of: :mod:`.backend` (py-evm through eth-tester on the
:mod:`.store`), :mod:`.logs`, :mod:`.fees`. It also installs :mod:`.trie_cache` (memoized trie
node decoding), the node's one hook into library internals.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import eth_tester.backends.pyevm.main as pyevm_main
from eth._utils.calculations import fake_exponential
from eth.abc import BlockHeaderAPI
from eth.constants import BLANK_ROOT_HASH
from eth.db.atomic import AtomicDB
from eth.exceptions import BlockNotFound as EVMBlockNotFound
from eth.exceptions import CanonicalHeadNotFound, HeaderNotFound
from eth.vm.forks.cancun.constants import BLOB_BASE_FEE_UPDATE_FRACTION, MIN_BLOB_BASE_FEE
from eth_tester.exceptions import TransactionNotFound
from eth_typing import BlockNumber, Hash32
from eth_utils import decode_hex, encode_hex, to_canonical_address, to_checksum_address

from databright.errors import NodeError, StoreCorrupt

from . import trie_cache
from .accounts import DEV_ACCOUNTS_FILE, create_dev_keys, encrypt_dev_key
from .backend import DEFAULT_CHAIN_ID, HARDFORK, DevMiningChain, PersistentBackend, chain_class
from .fees import PRIORITY_FEE_WEI, base_fee, fee_history
from .geth_errors import vm_error
from .logs import FILTER_TIMEOUT_S, LogIndex, MinedBlockTester, log_rows
from .store import CHECK_BUDGET_S, SCHEMA_VERSION, KeyValueStore
from .wire import INVALID_PARAMS, BlockHashRef, RpcError

__all__ = ["DEV_BALANCE_WEI", "STORE_FILE", "DevChain"]

log = logging.getLogger(__name__)

DEV_BALANCE_WEI = 10_000 * 10**18  # like anvil and hardhat
_LOGS_INDEXED_TO = "logs_indexed_to"  # meta key: the last block whose logs are in the index
STORE_FILE = "chain.sqlite3"


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

    def __init__(
        self,
        store: KeyValueStore,
        chain: DevMiningChain,
        meta: _Meta,
        filter_timeout: float = FILTER_TIMEOUT_S,
    ) -> None:
        trie_cache.install()
        self.store = store
        self.chain_id = meta.chain_id
        self.genesis_hash = meta.genesis_hash
        self.backend = PersistentBackend(chain, time_offset=meta.time_offset)
        self.tester = MinedBlockTester(
            backend=self.backend, auto_mine_transactions=True, filter_timeout=filter_timeout
        )
        self.logs = LogIndex(store.path)
        self._logs_indexed_to = int(store.get_meta(_LOGS_INDEXED_TO) or -1)
        if self._logs_indexed_to < int(self.head().block_number):
            # A store from before the log index (or one that lost it): index it once, now.
            self._index_new_blocks()
            self.store.commit()

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: Path,
        chain_id: int | None = None,
        accounts: int = 10,
        password: str = "",
        filter_timeout: float = FILTER_TIMEOUT_S,
        check_budget_s: float = CHECK_BUDGET_S,
    ) -> tuple[DevChain, list[dict[str, Any]]]:
        """Open the chain of ``data_dir``, creating it (genesis, dev keys) if there is none.

        Returns the chain and the encrypted keystores of its dev accounts (for the caller to
        write out). Filters nobody polls for ``filter_timeout`` seconds are dropped. Raises :class:`NodeError` for a chain id mismatch and
        :class:`StoreCorrupt` for a damaged store.
        """
        path = Path(data_dir) / STORE_FILE
        store = KeyValueStore(path)
        try:
            if store.get_meta("schema_version") is not None:
                # A damaged page refuses the start here, not at the block that happens to
                # read it (the node once mined on, and took a payment, over a broken store).
                if not store.check_integrity(check_budget_s):
                    log.warning(
                        "checked the chain store %s for %.0f s without reaching its end; "
                        "starting anyway",
                        path,
                        check_budget_s,
                    )
                return cls._reopen(store, chain_id, filter_timeout)
            if store.is_empty():
                if (Path(data_dir) / DEV_ACCOUNTS_FILE).exists():
                    # Keystores are written after genesis commits: the chain was lost.
                    raise StoreCorrupt(
                        f"data dir {data_dir} has dev keystores but its chain store is empty "
                        f"or missing; move the data dir away to start a fresh chain"
                    )
                # Nothing was ever committed (genesis is one transaction): a first start that
                # died early. Creating the chain now loses nothing.
                return cls._create(
                    store, chain_id or DEFAULT_CHAIN_ID, accounts, password, filter_timeout
                )
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
        cls,
        store: KeyValueStore,
        chain_id: int,
        accounts: int,
        password: str,
        filter_timeout: float,
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
        chain = chain_class(chain_id).from_genesis(
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
        return cls(store, cast(DevMiningChain, chain), meta, filter_timeout), keystores

    @classmethod
    def _reopen(
        cls, store: KeyValueStore, chain_id: int | None, filter_timeout: float
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
            chain = chain_class(int(stored_id))(AtomicDB(store))
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
        return cls(store, cast(DevMiningChain, chain), meta, filter_timeout), keystores

    # --- state --------------------------------------------------------------------------

    @property
    def chain(self) -> DevMiningChain:
        return cast(DevMiningChain, self.backend.chain)

    def head(self) -> BlockHeaderAPI:
        return self.chain.get_canonical_head()

    def commit(self) -> None:
        """Make everything written so far durable, in one SQLite transaction: the blocks mined
        since the last commit together with their rows in the log index."""
        if self.store.dirty:
            self._index_new_blocks()
        self.store.commit()

    def _index_new_blocks(self) -> None:
        head = int(self.head().block_number)
        if head <= self._logs_indexed_to:
            return
        for number in range(self._logs_indexed_to + 1, head + 1):
            self.store.add_logs(log_rows(self.backend, number))
        self.store.set_meta(_LOGS_INDEXED_TO, str(head))
        self._logs_indexed_to = head

    def close(self) -> None:
        self.commit()
        self.logs.close()
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
        return base_fee(self.chain.header)

    def gas_price(self) -> int:
        return self.base_fee_next() + PRIORITY_FEE_WEI

    def max_priority_fee(self) -> int:
        return PRIORITY_FEE_WEI

    # --- calls -------------------------------------------------------------------------------

    def _raw_call_args(self, transaction: Mapping[str, Any], block: Any, kind: str) -> Any:
        tester = self.tester
        # The access list is already in py-evm's form (wire.access_list_in); eth-tester's
        # validator wants another, so it goes around it.
        checked = {k: v for k, v in transaction.items() if k != "access_list"}
        tester.validator.validate_inbound_transaction(checked, txn_internal_type=kind)
        raw = dict(tester.normalizer.normalize_inbound_transaction(checked))
        if transaction.get("access_list"):
            raw["access_list"] = transaction["access_list"]
        return raw, block

    def call(
        self,
        transaction: Mapping[str, Any],
        block: Any,
        overrides: Mapping[bytes, Mapping[str, Any]] | None = None,
    ) -> bytes:
        """``eth_call``: eth-tester's checks and normalization, then the backend with
        ``overrides`` (see :mod:`.overrides`) applied to the state the call runs in."""
        raw, block = self._raw_call_args(transaction, block, "call")
        return self.backend.call(raw, block, overrides)

    def estimate_gas(
        self,
        transaction: Mapping[str, Any],
        block: Any,
        overrides: Mapping[bytes, Mapping[str, Any]] | None = None,
    ) -> int:
        raw, block = self._raw_call_args(transaction, block, "estimate")
        return self.backend.estimate_gas(raw, block, overrides)

    def create_access_list(self, transaction: Mapping[str, Any], block: Any) -> dict[str, Any]:
        raw, block = self._raw_call_args(transaction, block, "call")
        listed, gas_used, error = self.backend.create_access_list(raw, block)
        answer: dict[str, Any] = {
            "accessList": [
                {
                    "address": to_checksum_address(address),
                    "storageKeys": ["0x" + slot.to_bytes(32, "big").hex() for slot in slots],
                }
                for address, slots in listed
            ],
            "gasUsed": hex(gas_used),
        }
        if error is not None:
            answer["error"] = vm_error(error, transaction["from"]).message
        return answer

    def blob_base_fee(self) -> int:
        """The blob base fee of the next block (EIP-4844), from its excess blob gas."""
        excess = int(getattr(self.chain.header, "excess_blob_gas", 0) or 0)
        return int(fake_exponential(MIN_BLOB_BASE_FEE, excess, BLOB_BASE_FEE_UPDATE_FRACTION))

    def block_receipts(
        self, block: int | str | BlockHashRef
    ) -> list[tuple[dict[str, Any], int, int]] | None:
        """Every receipt of a canonical block, as :meth:`transaction_receipt` gives each; None
        when there is no such block."""
        resolved = self.resolve(block)
        head = int(self.head().block_number)
        if resolved == "earliest":
            number = 0
        elif isinstance(resolved, str):
            number = head
        elif resolved > head:
            return None
        else:
            number = resolved
        block_data, receipts = self.backend.block_and_receipts(number)
        out = []
        offset = 0
        for index, transaction in enumerate(block_data.transactions):
            raw = pyevm_main.serialize_transaction_receipt(
                block_data, receipts, transaction, index, False, None
            )
            receipt = self.tester.normalizer.normalize_outbound_receipt(raw)
            out.append((receipt, int(receipts[index].bloom), offset))
            offset += len(receipts[index].logs)
        return out

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

    def log_query(self, params: Mapping[str, Any]) -> tuple[int, int, list[bytes], list[Any]]:
        """An eth_getLogs filter (see :func:`wire.filter_in`) resolved against the chain as it
        is now: (first block, last block, addresses, topics), for :meth:`find_logs`."""
        addresses = [bytes(to_canonical_address(a)) for a in params.get("address") or ()]
        topics: list[Any] = list(params.get("topics") or ())
        if params.get("block_hash") is not None:
            first = last = self.block_number_of(params["block_hash"])
        else:
            # Block 0 is a valid bound: test for None, not for falsiness.
            first = self._number(_or_latest(params.get("from_block")))
            last = self._number(_or_latest(params.get("to_block")))
        if first > last:
            raise RpcError(INVALID_PARAMS, f"fromBlock {first} is after toBlock {last}")
        return first, last, addresses, topics

    def find_logs(self, query: tuple[int, int, list[bytes], list[Any]]) -> list[dict[str, Any]]:
        """The logs a :meth:`log_query` asks for, from the log index: safe to call without the
        node's lock (it reads committed blocks only, through connections of its own)."""
        return self.logs.find(*query)

    def get_logs(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.find_logs(self.log_query(params))

    # --- fees -----------------------------------------------------------------------------

    def fee_history(
        self, block_count: int, newest: int | str | BlockHashRef, percentiles: Sequence[float]
    ) -> dict[str, Any]:
        if block_count < 1:
            return {"oldest_block": 0, "base_fee_per_gas": [], "gas_used_ratio": [], "reward": []}
        return fee_history(self.chain, block_count, self._number(newest), percentiles)

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


def _check_head(chain: DevMiningChain, genesis_hash: str) -> None:
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


def _or_latest(block: Any) -> Any:
    return "latest" if block is None else block
