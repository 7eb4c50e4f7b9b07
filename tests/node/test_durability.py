"""kill -9 the embedded node at random moments under load; nothing acknowledged may be lost.

A real node process (``python -m databright.node``) takes signed transactions from a
client that records every transaction hash the node acknowledged and every receipt it returned.
A timer kills the node with SIGKILL at a random moment, the node restarts on the same data dir,
and the test checks that the head is consistent (block numbers contiguous, parent hashes link,
the head's state loads) and that every acknowledged transaction is still there. Seed with
``DURABILITY_SEED`` to replay a run; ``DURABILITY_CYCLES`` sets the number of kills (default 6,
which keeps the suite's budget; a long run takes hundreds).

The first kill lands right after the node acknowledged the probe's deployment, before its
receipt was read (the contract-creation phase, deterministically); the others at random
moments of the steady phase (calls to the probe and plain transfers), where each restart also
recovers from the previous kill.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from node_helpers import PROBE_ABI, PROBE_BYTECODE, finish, free_port, spawn_node, wait_ready
from web3 import Web3

from databright.node import load_dev_accounts

CYCLES = int(os.environ.get("DURABILITY_CYCLES") or 6)
CHAIN_ID = 1337
PING = Web3().eth.contract(abi=PROBE_ABI).encode_abi("ping", [1])


class Client:
    """A minimal keep-alive JSON-RPC client: the test must see every failure, not retries."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        self.conn.request("POST", "/", body, {"Content-Type": "application/json"})
        answer = json.loads(self.conn.getresponse().read())
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def batch(self, method: str, params: list[list[Any]]) -> list[Any]:
        if not params:
            return []
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": method, "params": p}
                for i, p in enumerate(params)
            ]
        )
        self.conn.request("POST", "/", body, {"Content-Type": "application/json"})
        answers = sorted(json.loads(self.conn.getresponse().read()), key=lambda a: a["id"])
        assert all("result" in a for a in answers), answers
        return [a["result"] for a in answers]

    def close(self) -> None:
        self.conn.close()


def _sign(account: LocalAccount, nonce: int, **tx: Any) -> str:
    base = {
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "gas": 100_000,
        "maxFeePerGas": 3 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    return account.sign_transaction({**base, **tx}).raw_transaction.to_0x_hex()


class Ledger:
    """What the client was told, and how far the chain has been verified."""

    def __init__(self) -> None:
        self.acknowledged: list[str] = []  # tx hashes eth_sendRawTransaction returned
        self.receipted: dict[str, int] = {}  # tx hash -> block number of the receipt seen
        self.unchecked: list[str] = []
        self.verified_head = 0
        self.verified_hash: str | None = None
        self.probe: str | None = None


def _check_chain(client: Client, ledger: Ledger, sender: str, seed: int) -> int:
    head = int(client.call("eth_blockNumber"), 16)
    context = f"(seed {seed}, head {head})"
    assert head >= ledger.verified_head, f"head went back from {ledger.verified_head} {context}"
    start = max(0, ledger.verified_head)
    blocks = client.batch("eth_getBlockByNumber", [[hex(n), False] for n in range(start, head + 1)])
    if ledger.verified_hash is not None:
        assert blocks[0]["hash"] == ledger.verified_hash, f"verified block changed {context}"
    for previous, block in itertools.pairwise(blocks):
        assert int(block["number"], 16) == int(previous["number"], 16) + 1, context
        assert block["parentHash"] == previous["hash"], f"broken link {context}"
    ledger.verified_head, ledger.verified_hash = head, blocks[-1]["hash"]

    receipts = client.batch("eth_getTransactionReceipt", [[h] for h in ledger.unchecked])
    for tx_hash, receipt in zip(ledger.unchecked, receipts, strict=True):
        assert receipt is not None, f"acknowledged transaction {tx_hash} was lost {context}"
        assert receipt["status"] == "0x1", context
        if tx_hash in ledger.receipted:
            assert int(receipt["blockNumber"], 16) == ledger.receipted[tx_hash], context
    ledger.unchecked = []

    # The head's state loads and agrees with what was acknowledged (at most one transaction
    # per crash can have landed without the client hearing of it).
    nonce = int(client.call("eth_getTransactionCount", sender, "latest"), 16)
    assert len(ledger.acknowledged) <= nonce, f"nonce {nonce} behind the ledger {context}"
    int(client.call("eth_getBalance", sender, hex(head)), 16)
    if ledger.probe is not None:
        counter = client.call("eth_call", {"to": ledger.probe, "data": "0x61bc221a"}, "latest")
        assert int(counter, 16) >= 0
    return nonce


def _traffic(
    client: Client,
    ledger: Ledger,
    account: LocalAccount,
    nonce: int,
    on_ack: Callable[[], None] | None = None,
) -> None:
    """Send until the node dies; record what it acknowledged (``on_ack`` runs once, right
    after the first acknowledgement)."""
    while True:
        if ledger.probe is None:
            raw = _sign(account, nonce, data=PROBE_BYTECODE, gas=1_000_000)
        elif nonce % 2:
            raw = _sign(account, nonce, to=ledger.probe, data=PING)
        else:
            raw = _sign(account, nonce, to=account.address, value=1, gas=21000)
        try:
            tx_hash = client.call("eth_sendRawTransaction", raw)
            ledger.acknowledged.append(tx_hash)
            ledger.unchecked.append(tx_hash)
            nonce += 1
            if on_ack is not None:
                on_ack()
                on_ack = None
            receipt = client.call("eth_getTransactionReceipt", tx_hash)
        except (OSError, http.client.HTTPException):
            return
        assert receipt is not None and receipt["status"] == "0x1", receipt
        ledger.receipted[tx_hash] = int(receipt["blockNumber"], 16)
        if ledger.probe is None:
            ledger.probe = receipt["contractAddress"]


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    seed = int(os.environ.get("DURABILITY_SEED") or time.time_ns() % 10**9)
    rng = random.Random(seed)
    data_dir = tmp_path / "node"
    ledger = Ledger()
    account: LocalAccount | None = None
    kills = 0
    phases: list[str] = []  # where each kill landed
    for cycle in range(CYCLES + 1):
        port = free_port()
        process = spawn_node(data_dir, port)
        try:
            wait_ready(f"http://127.0.0.1:{port}", process)
            if account is None:
                account = load_dev_accounts(data_dir)[0]
            client = Client(port)
            nonce = _check_chain(client, ledger, account.address, seed)
            if cycle == CYCLES:
                client.close()
                break
            if cycle == 0:  # the creation phase: killed once the deployment is acknowledged
                kill = functools.partial(os.kill, process.pid, signal.SIGKILL)
                _traffic(client, ledger, account, nonce, kill)
                phases.append("creation")
            else:
                delay = rng.uniform(0.05, 0.5)
                killer = threading.Timer(delay, os.kill, (process.pid, signal.SIGKILL))
                killer.start()
                _traffic(client, ledger, account, nonce)
                killer.join()
                phases.append("steady" if ledger.probe is not None else "creation")
            client.close()
            process.wait(timeout=10)
            assert process.returncode == -signal.SIGKILL
            kills += 1
        finally:
            finish(process)
    print(
        f"seed {seed}: {len(ledger.acknowledged)} acknowledged, head {ledger.verified_head}, "
        f"kills {phases}"
    )
    assert kills == CYCLES
    assert phases[0] == "creation" and (CYCLES < 2 or "steady" in phases), (phases, seed)
    assert len(ledger.receipted) >= CYCLES, f"too little traffic to mean much (seed {seed})"
    assert set(ledger.receipted) <= set(ledger.acknowledged)
