"""The node's one-pass mining of a sent transaction gives the very block py-evm's own
``MiningChain.apply_transaction`` + ``mine_block`` gives: same header (hence same hash, state
root, receipts root, bloom, gas), same receipts; a refused transaction changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from eth._utils.address import generate_contract_address
from eth.db.atomic import AtomicDB
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_canonical_address, to_checksum_address
from node_helpers import PROBE_BYTECODE

import databright.node.backend as node_backend
from databright.node.backend import PersistentBackend, chain_class
from databright.node.dev_chain import DEV_BALANCE_WEI
from databright.node.store import KeyValueStore
from databright.node.wire import RpcError

CHAIN_ID = 1337
MIX_HASH = b"\x07" * 32
PING = "0x773acdef"  # ping(uint256)


def _accounts() -> list[LocalAccount]:
    return [Account.from_key(bytes([i + 1]) * 32) for i in range(2)]


def _genesis_chain(db: Any) -> Any:
    import eth_tester.backends.pyevm.main as pyevm_main

    state = {
        to_canonical_address(a.address): {
            "balance": DEV_BALANCE_WEI,
            "nonce": 0,
            "code": b"",
            "storage": {},
        }
        for a in _accounts()
    }
    params = pyevm_main.get_default_genesis_params()
    return chain_class(CHAIN_ID).from_genesis(db, params, state)


def _transactions(chain: Any) -> list[bytes]:
    alice, bob = _accounts()
    probe = to_checksum_address(generate_contract_address(to_canonical_address(alice.address), 0))
    base = int(chain.header.base_fee_per_gas)
    fees = {"maxFeePerGas": 4 * base + 10**9, "maxPriorityFeePerGas": 10**9}

    def sign(account: LocalAccount, nonce: int, **tx: Any) -> bytes:
        tx = {"chainId": CHAIN_ID, "type": 2, "nonce": nonce, "value": 0, **fees, **tx}
        return bytes(account.sign_transaction(tx).raw_transaction)

    def ping(value: int) -> str:
        return PING + value.to_bytes(32, "big").hex()

    return [
        sign(alice, 0, to=None, data=PROBE_BYTECODE, gas=500_000),  # create
        sign(alice, 1, to=bob.address, value=10**18, gas=21_000, data=b""),  # transfer
        sign(bob, 0, to=probe, data=ping(7), gas=100_000),  # storage write + log
        sign(alice, 2, to=probe, data=ping(5), gas=100_000),  # warm slot, second writer
        sign(bob, 1, to=probe, data=ping(5000), gas=100_000),  # reverts: status 0
        sign(alice, 3, to=probe, data=ping(1), gas=22_000),  # out of gas: status 0
    ]


def test_one_pass_mining_matches_py_evm(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_backend.os, "urandom", lambda n: MIX_HASH[:n])
    reference = _genesis_chain(AtomicDB())
    store = KeyValueStore(tmp_path / "chain.sqlite3")
    backend = PersistentBackend(_genesis_chain(AtomicDB(store)))
    raws = _transactions(reference)
    timestamp = int(reference.header.timestamp) + 12
    statuses = []
    for number, raw in enumerate(raws, start=1):
        timestamp += 1
        tx = reference.get_transaction_builder().decode(raw)
        reference.header = reference.header.copy(timestamp=timestamp)
        reference.apply_transaction(tx)
        expected = reference.mine_block(mix_hash=MIX_HASH)

        backend.next_timestamp = timestamp
        backend.send_raw_transaction(raw)
        assert backend.mine_blocks(1) == (expected.hash,)  # the auto-mine: no second block
        store.commit()

        head = backend.chain.get_canonical_head()
        assert head == expected.header, f"block {number}"
        mined, receipts = backend.block_and_receipts(number)
        assert mined.transactions == expected.transactions
        stored = tuple(
            backend.chain.get_canonical_block_by_number(number).get_receipts(backend.chain.chaindb)
        )
        assert receipts == stored == tuple(expected.get_receipts(reference.chaindb))
        assert backend.chain.header == reference.header  # the next pending block too
        statuses.append(int.from_bytes(receipts[0].state_root, "big"))  # Byzantium status
    assert statuses == [1, 1, 1, 1, 0, 0]  # success, revert and out-of-gas all covered
    assert reference.get_canonical_head().state_root == head.state_root
    store.close()


def test_refused_transaction_changes_nothing(tmp_path: Any) -> None:
    store = KeyValueStore(tmp_path / "chain.sqlite3")
    backend = PersistentBackend(_genesis_chain(AtomicDB(store)))
    store.commit()
    raws = _transactions(backend.chain)
    backend.send_raw_transaction(raws[0])
    backend.mine_blocks(1)
    store.commit()
    head, pending = backend.chain.get_canonical_head(), backend.chain.header
    with pytest.raises(RpcError, match="nonce too low"):
        backend.send_raw_transaction(raws[0])
    assert not store.dirty
    assert backend.chain.get_canonical_head() == head and backend.chain.header == pending
    # No block is left over for the next auto-mine to claim: it mines an empty block.
    (empty,) = backend.mine_blocks(1)
    assert backend.chain.get_canonical_head().hash == empty
    assert backend.chain.get_canonical_head().block_number == head.block_number + 1
    store.close()
