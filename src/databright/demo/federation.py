"""The federated round of ``make run``: data that stays with its owners, trained on by them, the
owners paid by how much their updates helped.

A payer escrows ETH in a federation of the compute market for an allowed coordinator and four
named clients. Each client holds its own digits in an ``.npz`` of its own (written to
``federation-demo/`` in the data dir: they stand for data on four machines), one of them
attacks (``--attack sign_flip``: it sends minus four times its honest update). Then everything
runs as separate processes on a free loopback port: ``databright federation serve`` (the
coordinator: it starts the federation on chain as it begins, after which the payer cannot take
the escrow back, aggregates the signed updates with the trimmed mean, scores every client by
leave-one-out on its own validation set, and settles on chain with the per-round scores stored
by CID) and four ``databright federation client`` processes. The coordinator attests its key in
software only, which is not hardware-backed: each client checks that attestation before it asks
for a round and accepts it only because this development session passes
``--allow-insecure-coordinator`` (with ``--coordinator-address`` pinning the coordinator's key),
and the round says so. When the federation is settled every process is stopped by its PID and
the clients withdraw their payouts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
from eth_account.signers.local import LocalAccount
from sklearn.datasets import load_digits

from databright.chain.keystore import Keystore
from databright.compute.federated import split_iid
from databright.compute.market import ComputeMarket
from databright.demo.compute import (
    _check_running,
    _cli,
    _free_port,
    _funded,
    _get,
    _save_dev_key,
)
from databright.errors import DataBrightError
from databright.market import Market
from databright.process import ServerProcess, launch

__all__ = ["ATTACKER", "CLIENTS", "ESCROW_WEI", "ROUNDS", "run_federated_round"]

CLIENTS: Final = 4
ATTACKER: Final = 3  # the client that sends sign-flipped updates
ROUNDS: Final = 5
# One update cut from each end of every coordinate (of four): the attacker's -4x is always cut.
TRIM: Final = 0.25
ESCROW_WEI: Final = 10**16
EXAMPLES_PER_CLIENT: Final = 100
TIMEOUT_S: Final = 120.0
SPEC: Final[dict[str, Any]] = {
    "input_shape": [64],
    "classes": 10,
    "layers": [
        {"type": "Linear", "out_features": 16},
        {"type": "ReLU"},
        {"type": "Linear", "out_features": 10},
    ],
    "optimizer": {"type": "sgd", "lr": 0.3},
    "batch_size": 16,
}


def _client_data(root: Path) -> tuple[list[Path], Path]:
    """Each client's own digits (an IID share) and the coordinator's validation set."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(1).permutation(len(y))
    x, y = (x[order] / 16).astype(np.float32), y[order].astype(np.int64)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, idx in enumerate(split_iid(y[: CLIENTS * EXAMPLES_PER_CLIENT], CLIENTS)):
        np.savez(root / f"client{i}.npz", x=x[idx], y=y[idx])
        paths.append(root / f"client{i}.npz")
    np.savez(root / "validation.npz", x=x[1300:1500], y=y[1300:1500])
    return paths, root / "validation.npz"


def run_federated_round(
    market: Market, coordinator: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """Run a federation of ``CLIENTS`` client processes (one attacking) under ``coordinator``,
    an allowed coordinator whose key is in the data dir's keystore; ``market`` is a funded
    account's client (it funds the payer and the clients)."""
    admin = ComputeMarket.over(market)
    keystore = Keystore(market.data_dir / "keystore")
    payer_acct = _funded(market, ESCROW_WEI + 10**17)
    clients: list[LocalAccount] = [_funded(market, 10**16) for _ in range(CLIENTS)]
    for acct in clients:
        _save_dev_key(keystore, acct)
    payer = admin.as_account(payer_acct)
    root = market.data_dir / "federation-demo"
    data, validation = _client_data(root)
    spec_cid = market.store.put(json.dumps(SPEC).encode())
    federation = payer.create_federation(
        coordinator, ESCROW_WEI, 3600, spec_cid, [c.address for c in clients]
    )
    fid = federation.id
    say(f"federation {fid}: {ESCROW_WEI} wei escrowed by {payer_acct.address} for "
        f"{CLIENTS} clients, each training on its own {EXAMPLES_PER_CLIENT} digits "
        f"(client {ATTACKER} sends sign-flipped updates)")  # fmt: skip

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    common = ["--data-dir", str(market.data_dir), "--rpc", market.gateway.url]
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "400"}
    processes: list[ServerProcess] = []
    try:
        serve = launch(
            [
                *_cli(), "federation", "serve", str(fid), "--validation", str(validation),
                "--account", coordinator, "--rounds", str(ROUNDS), "--local-epochs", "3",
                "--trim", str(TRIM),
                "--port", str(port), "--database-url", f"sqlite:///{root / 'state.sqlite3'}",
                *common,
            ],
            name="the federation coordinator", log=root / "serve.log", env=env,
        )  # fmt: skip
        processes.append(serve)
        serve.wait_ready(lambda: _get(f"{base}/federation/v1/status"), timeout=TIMEOUT_S)
        for i, (acct, path) in enumerate(zip(clients, data, strict=True)):
            attack = ["--attack", "sign_flip"] if i == ATTACKER else []
            client = launch(
                [
                    *_cli(), "federation", "client", "--coordinator", base,
                    "--account", acct.address, "--data", str(path), "--poll", "0.1",
                    "--data-dir", str(market.data_dir), "--allow-insecure-coordinator",
                    "--coordinator-address", coordinator, *attack,
                ],
                name=f"client {i}", log=root / f"client{i}.log", env=env,
            )  # fmt: skip
            processes.append(client)
        say(f"  coordinator process pid {serve.pid} at {base}/federation/v1; client processes "
            f"pid {', '.join(str(p.pid) for p in processes[1:])}; training started on chain, "
            "so the payer can no longer take the escrow back; the clients accepted the "
            "coordinator's software attestation (NOT hardware-backed) with "
            "--allow-insecure-coordinator (development only)")  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        while admin.federation(fid).status != "settled":
            # the clients leave once the last round is done; a failure is said at once
            _check_running([serve, *(p for p in processes[1:] if p.poll() not in (None, 0))])
            if time.monotonic() >= deadline:
                raise DataBrightError(
                    f"federation {fid} was not settled within {TIMEOUT_S:g} s; see {root}"
                )
            time.sleep(0.2)
        status = json.loads(_get(f"{base}/federation/v1/status"))
    finally:
        for p in reversed(processes):
            p.stop(timeout=10)
    evidence = admin.federation_evidence(fid)
    settled = admin.federation(fid)
    payouts = {c.address: int(admin.participant(fid, c.address).payout_wei) for c in clients}
    withdrawn = {}
    for acct in clients:
        me = admin.as_account(acct)
        withdrawn[acct.address] = int(me.withdraw()) if me.balance() else 0
    accuracy = [round(float(r["accuracy"]), 3) for r in status["history"]]
    say(f"  {ROUNDS} rounds, validation accuracy {' -> '.join(map(str, accuracy))}; payouts "
        + ", ".join(f"{a} {w} wei" for a, w in payouts.items())
        + f" (the attacker {clients[ATTACKER].address} got {payouts[clients[ATTACKER].address]}); "
        f"scores {settled.scores_cid}; processes "
        f"{', '.join(str(p.pid) for p in processes)} stopped")  # fmt: skip
    return {
        "federation_id": fid,
        "status": settled.status,
        "payer": payer_acct.address,
        "coordinator": coordinator,
        "coordinator_attestation": "software",
        "allowed_as_insecure": True,
        "escrow_wei": ESCROW_WEI,
        "rounds": len(status["history"]),
        "accuracy": accuracy,
        "clients": [c.address for c in clients],
        "attacker": clients[ATTACKER].address,
        "payouts_wei": payouts,
        "withdrawn_wei": withdrawn,
        "paid_wei": int(settled.paid_wei),
        "scores_cid": settled.scores_cid,
        "contributions": [float(v) for v in evidence["contributions"]],
        "processes": {
            "coordinator": serve.pid,
            "clients": {p.name: p.pid for p in processes[1:]},
            "all_stopped": all(p.returncode is not None for p in processes),
            "logs": str(root),
        },
    }
