"""Signed transactions per second through the gateway, next to raw web3.py, on real nodes; and
read requests per second from 8 clients while one client writes.

    .venv/bin/python benchmarks/chain_throughput.py [--n 300] [--rounds 3] [--nodes embedded,anvil]
        [--clients 8] [--read-seconds 5] [--only reads|writes]

For each node (the embedded node over HTTP, anvil with --hardfork cancun --prune-history), it
sends N ETH transfers and N contract calls (an ERC-20 transfer of a dataset's share token), one
at a time, each waited for until its receipt is back, through (a) our gateway and (b) raw web3.py
with the same local signing and precomputed nonce, gas and fees (the fastest honest use of
web3.py). Rounds alternate the two to spread the machine's noise; the best round counts.
Goals: embedded >= 100 tx/s, anvil >= 350 tx/s, gateway within 10% of raw web3.

Reads: ``--clients`` processes (8), each with one keep-alive HTTP connection, send pre-encoded
requests in turn (``eth_call`` of the share token's ``balanceOf``, ``eth_getBalance``,
``eth_blockNumber``, ``eth_getLogs`` of the last 100 blocks) as fast as answers come back, for
``--read-seconds``, while one more process sends ETH transfers and waits for each receipt. The
table gives reads/s (all clients together), their median and worst latency, and the writer's
tx/s meanwhile, for each node in the same run. Client processes, not threads: a Python client
would otherwise measure its own GIL. (Issue 9 measured embedded 370-490 req/s, anvil ~13,000.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from databright_dev.anvil import anvil_accounts, start_anvil

from databright.chain.deploy import deploy
from databright.chain.gateway import ContractClient, Gateway, connect
from databright.process import json_rpc_answers, launch

GOALS = {"embedded": 100.0, "anvil": 350.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, data_dir: Path) -> tuple[str, list[LocalAccount], Callable[[], object]]:
    """A node of ``kind`` on a free port, with output in ``data_dir``: (URL, accounts, stop)."""
    if kind == "anvil":
        node = start_anvil(free_port(), log=data_dir / "anvil.log")
        return node.url, anvil_accounts(6), node.stop
    from databright.node import load_dev_accounts

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = launch(
        [sys.executable, "-m", "databright.node", "--data-dir", str(data_dir), "--port", str(port)],
        name="the embedded node",
        log=data_dir / "node.log",
    )
    process.wait_ready(json_rpc_answers(url), timeout=30)
    return url, load_dev_accounts(data_dir)[:6], lambda: process.stop(timeout=30)


def share_token(gw: Gateway, data_dir: Path) -> ContractClient:
    """A dataset's share token: the contract the market calls most."""
    deployment, _ = deploy(gw, data_dir)
    market = gw.contract("DataMarket", deployment["DataMarket"])
    receipt = market.transact("create_dataset", *_dataset_args(gw))
    token = receipt.event("DatasetCreated").args["token"]
    return gw.contract("ShareToken", token)


def _dataset_args(gw: Gateway) -> list[Any]:
    digest = b"\x11" * 32
    # name, metadata, data, manifest root, examples, voting period, min voting period, quorum,
    # threshold, evaluators, cap, commit period, reveal period, evaluation fee, deposit
    return [
        "bench", digest, digest, b"\x22" * 32, 1000, 3600, 0, 2000, 5000, [gw.address], 20000,
        0, 0, 0, 0,
    ]  # fmt: skip


class Raw:
    """Raw web3.py with everything precomputed that can be: the peer we compare against."""

    def __init__(self, url: str, account: LocalAccount) -> None:
        self.w3 = Web3(Web3.HTTPProvider(url))
        self.account = account
        self.chain_id = self.w3.eth.chain_id
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        self.fees = {"maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9}
        self.nonce = self.w3.eth.get_transaction_count(account.address, "pending")

    def send(self, to: str, data: bytes, gas: int) -> None:
        tx = {
            "to": to, "value": 0 if data else 1, "data": data, "gas": gas, "nonce": self.nonce,
            "chainId": self.chain_id, "type": 2, **self.fees,
        }  # fmt: skip
        self.nonce += 1
        h = self.w3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
        r = self.w3.eth.wait_for_transaction_receipt(h, poll_latency=0.002)
        assert r["status"] == 1


def rate(n: int, fn: Callable[[int], None]) -> float:
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t)


def bench_node(kind: str, n: int, rounds: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        url, accts, stop = start(kind, Path(tmp) / "node")
        try:
            ours = connect(url, accts[0])
            token = share_token(ours, Path(tmp))
            raw = Raw(url, accts[1])
            ours.contract("ShareToken", token.address).transact(
                "transfer", accts[1].address, 10**20
            )
            to = accts[2].address
            erc20 = raw.w3.eth.contract(address=token.address, abi=token.artifact.abi)
            call_data = bytes(HexBytes(erc20.encode_abi("transfer", args=[to, 1])))
            call_gas = int(
                ours.w3.eth.estimate_gas(
                    {"from": accts[1].address, "to": token.address, "data": call_data}
                )
                * 1.3
            )
            best: dict[str, dict[str, float]] = {
                "eth transfer": {"ours": 0.0, "raw": 0.0},
                "contract call": {"ours": 0.0, "raw": 0.0},
            }
            for _ in range(rounds):
                best["eth transfer"]["raw"] = max(
                    best["eth transfer"]["raw"], rate(n, lambda i: raw.send(to, b"", 21_000))
                )
                best["eth transfer"]["ours"] = max(
                    best["eth transfer"]["ours"], rate(n, lambda i: ours.transfer(to, 1))
                )
                # Encoding the call each time is part of any honest use of web3.py.
                best["contract call"]["raw"] = max(
                    best["contract call"]["raw"],
                    rate(
                        n,
                        lambda i: raw.send(
                            token.address,
                            bytes(HexBytes(erc20.encode_abi("transfer", args=[to, 1]))),
                            call_gas,
                        ),
                    ),
                )
                best["contract call"]["ours"] = max(
                    best["contract call"]["ours"],
                    rate(n, lambda i: token.transact("transfer", to, 1)),
                )
            return best
        finally:
            stop()


def _reader(url: str, bodies: list[bytes], seconds: float, out: Any) -> None:
    """One client: one keep-alive connection, requests in turn until time is up. Answers that
    are errors are counted apart (anvil sometimes refuses a read that races a new block)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    i = 0
    while (now := time.perf_counter()) < deadline:
        try:
            conn.request("POST", "/", bodies[i % len(bodies)], headers)
            answer = conn.getresponse().read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            continue
        finally:
            i += 1
        if b'"error"' in answer:
            errors.append(answer[:160].decode(errors="replace"))
        else:
            latencies.append(time.perf_counter() - now)
    out.put((latencies, errors))


def _writer(url: str, account: LocalAccount, to: str, stop: Any, out: Any) -> None:
    raw = Raw(url, account)
    sent = 0
    t = time.perf_counter()
    while not stop.is_set():
        raw.send(to, b"", 21_000)
        sent += 1
    out.put(sent / (time.perf_counter() - t))


def bench_reads(kind: str, clients: int, seconds: float) -> dict[str, float]:
    """Reads/s of ``clients`` client processes while one more process writes (see the module
    docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        url, accts, stop_node = start(kind, Path(tmp) / "node")
        try:
            gw = connect(url, accts[0])
            token = share_token(gw, Path(tmp))
            for _ in range(100):  # some history for eth_getLogs to read
                token.transact("transfer", accts[2].address, 1)
            holder = accts[0].address
            data = "0x70a08231" + "00" * 12 + holder[2:].lower()  # balanceOf(holder)
            requests_ = [
                ("eth_call", [{"to": token.address, "data": data}, "latest"]),
                ("eth_getBalance", [holder, "latest"]),
                ("eth_blockNumber", []),
                ("eth_getLogs", [{"fromBlock": hex(max(0, gw.block_number() - 100))}]),
            ]
            bodies = [
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": m, "params": p}).encode()
                for m, p in requests_
            ]
            ctx = multiprocessing.get_context("fork")
            out = ctx.Queue()
            stop = ctx.Event()
            writer = ctx.Process(target=_writer, args=(url, accts[1], accts[3].address, stop, out))
            writer.start()
            readers = [
                ctx.Process(target=_reader, args=(url, bodies, seconds, out))
                for _ in range(clients)
            ]
            for reader in readers:
                reader.start()
            results = [out.get(timeout=seconds + 120) for _ in readers]
            stop.set()
            write_rate = float(out.get(timeout=60))
            for process in (*readers, writer):
                process.join(timeout=30)
            latencies = [x for result, _ in results for x in result]
            errors = [e for _, result in results for e in result]
            if errors:
                print(f"{kind}: {len(errors)} reads answered with an error, e.g. {errors[0]}")
            return {
                "errors": float(len(errors)),
                "reads/s": len(latencies) / seconds,
                "median ms": statistics.median(latencies) * 1000,
                "worst ms": max(latencies) * 1000,
                "writes tx/s": write_rate,
            }
        finally:
            stop_node()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=300, help="transactions per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nodes", default="embedded,anvil")
    p.add_argument("--clients", type=int, default=8, help="reading client processes")
    p.add_argument("--read-seconds", type=float, default=5.0)
    p.add_argument("--only", choices=("reads", "writes"), default=None)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.only != "writes":
        print(
            f"{'node':9} {'clients':>7} {'reads/s':>9} {'median ms':>10} {'worst ms':>9} "
            f"{'writer tx/s':>12} {'errors':>7}"
        )
        for kind in args.nodes.split(","):
            r = bench_reads(kind, args.clients, args.read_seconds)
            print(
                f"{kind:9} {args.clients:7d} {r['reads/s']:9.0f} {r['median ms']:10.1f} "
                f"{r['worst ms']:9.0f} {r['writes tx/s']:12.0f} {r['errors']:7.0f}"
            )
        if args.only == "reads":
            return
        print()
    print(
        f"{'node':9} {'workload':14} {'gateway tx/s':>13} {'raw web3 tx/s':>14} {'ratio':>6} {'goal':>10}"
    )
    for kind in args.nodes.split(","):
        for workload, r in bench_node(kind, args.n, args.rounds).items():
            ok = r["ours"] >= GOALS[kind] and r["ours"] >= 0.9 * r["raw"]
            print(
                f"{kind:9} {workload:14} {r['ours']:13.0f} {r['raw']:14.0f} "
                f"{r['ours'] / r['raw']:6.2f} {'>= ' + str(int(GOALS[kind])):>7} {'met' if ok else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
