"""``databright federation serve`` and four ``databright federation client`` processes (one of
them attacks with ``--attack sign_flip``) on a free loopback port against a real chain: the
payer escrows with ``federation create``, the coordinator starts the federation as it begins
serving (after which the payer's attempts to take the escrow back fail in one sentence), three
rounds run through real processes (each client first checks the coordinator's software
attestation, accepted with ``--allow-insecure-coordinator``), and the coordinator settles on
chain: every client's payout
is ``payout_wei`` of the escrow by the scores, the attacker's the smallest, and a client
withdraws its payout. Every process is started by :func:`databright.process.launch` and stopped
by its PID."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import cli_json, make_env
from sklearn.datasets import load_digits

from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.compute.attestation import SoftwareProvider, report_data_for
from databright.compute.federated import check_scores_evidence, payout_wei, split_iid
from databright.compute.market import ComputeMarket
from databright.demo.federation import SPEC  # the federated round of `make run` trains it
from databright.market import Market
from databright.process import ServerProcess, launch
from databright.types import Wei

CLIENTS = 4
ATTACKER = 3
ROUNDS = 3
ESCROW_WEI = 10**17
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with _NO_PROXY.open(url, timeout=2) as answer:
        return json.loads(answer.read())


def write_data(root: Path) -> list[Path]:
    """Each client's own .npz (100 digits each) and the coordinator's validation set."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(1).permutation(len(y))
    x = (x[order] / 16).astype(np.float32)
    y = y[order].astype(np.int64)
    paths = []
    for i, idx in enumerate(split_iid(y[:400], CLIENTS)):
        np.savez(root / f"client{i}.npz", x=x[idx], y=y[idx])
        paths.append(root / f"client{i}.npz")
    np.savez(root / "validation.npz", x=x[1300:1500], y=y[1300:1500])
    return paths


# Two real processes per node kind that each import torch: one node kind keeps it under ~25 s.
@pytest.mark.parametrize("node", ["anvil"], indirect=True)
def test_a_federation_runs_as_processes_and_pays_by_contribution(
    node: Any, tmp_path: Path, fails: Callable[..., tuple[int, str]]
) -> None:
    env = make_env(node, tmp_path / "home", accounts=1)
    store = Keystore(env.data_dir / "keystore")
    coordinator, payer, *clients = [str(store.new()) for _ in range(2 + CLIENTS)]
    funder = connect(node.url, node.accounts[0])
    for address in (coordinator, payer, *clients):
        funder.transfer(address, Wei(10**18))
    admin = ComputeMarket.over(Market.connect(node.url, node.accounts[0], env.data_dir))
    claims = SoftwareProvider().verify(
        SoftwareProvider.attest(
            store.load(coordinator).key,
            measurement="cd" * 32,
            report_data=report_data_for(coordinator),
            issued_at=int(time.time()),
        )
    )
    admin.allow_coordinator(coordinator, claims, allow_insecure=True)

    data = write_data(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    created = cli_json(
        env,
        "federation",
        "create",
        "--coordinator",
        coordinator,
        "--amount",
        "0.1",
        "--spec",
        str(tmp_path / "spec.json"),
        *[a for c in clients for a in ("--client", c)],
        "--account",
        payer,
    )
    fid = str(created["id"])
    assert created["status"] == "open" and created["amount_wei"] == ESCROW_WEI

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "databright.cli", "federation"]
    chain = ["--rpc", node.url, "--data-dir", str(env.data_dir)]
    penv = {"OMP_NUM_THREADS": "1"}
    processes: list[ServerProcess] = []
    try:
        serve = launch(
            [
                *command,
                "serve",
                fid,
                "--validation",
                str(tmp_path / "validation.npz"),
                "--account",
                coordinator,
                "--rounds",
                str(ROUNDS),
                "--local-epochs",
                "2",
                "--port",
                str(port),
                *chain,
            ],
            name="the federation coordinator",
            log=tmp_path / "serve.log",
            env=penv,
        )
        processes.append(serve)
        serve.wait_ready(lambda: get_json(f"{base}/federation/v1/status"), timeout=60)

        # Training started: the payer can no longer take its escrow back, in one sentence.
        code, message = fails("federation", "cancel", fid, "--account", payer, *chain)
        assert code == 1 and "training started" in message, message
        code, message = fails("federation", "withdraw", "--account", payer, *chain)
        assert code == 5 and "nothing credited" in message, message

        for i, (client, path) in enumerate(zip(clients, data, strict=True)):
            attack = ["--attack", "sign_flip"] if i == ATTACKER else []
            processes.append(
                launch(
                    [
                        *command,
                        "client",
                        "--coordinator",
                        base,
                        "--account",
                        client,
                        "--data",
                        str(path),
                        "--poll",
                        "0.1",
                        "--data-dir",
                        str(env.data_dir),
                        "--allow-insecure-coordinator",
                        "--coordinator-address",
                        coordinator,
                        *attack,
                    ],
                    name=f"client {i}",
                    log=tmp_path / f"client{i}.log",
                    env=penv,
                )
            )
        for process in processes[1:]:
            assert process.wait(timeout=90) == 0, process.output()
            assert f"federation done after {ROUNDS} rounds" in process.output()
        assert "attacking: sign_flip" in processes[1 + ATTACKER].output()
        assert f"coordinator {coordinator} (software attestation" in serve.output()
        assert all(
            "accepted because of --allow-insecure-coordinator" in p.output() for p in processes[1:]
        )
        status = get_json(f"{base}/federation/v1/status")
        assert status["state"] == "done" and len(status["history"]) == ROUNDS

        deadline = time.monotonic() + 60  # the coordinator settles right after the last round
        while admin.federation(int(fid)).status != "settled":
            assert time.monotonic() < deadline, serve.output()
            assert serve.poll() is None, serve.output()
            time.sleep(0.3)
    finally:
        for process in reversed(processes):
            process.stop(timeout=10)

    # Paid exactly payout_wei of the escrow by the scores the coordinator published.
    evidence = admin.federation_evidence(int(fid))
    assert evidence["clients"] == clients
    assert np.allclose(evidence["contributions"], status["contributions"])
    expected = payout_wei(ESCROW_WEI, evidence["contributions"])
    assert check_scores_evidence(evidence) == dict(zip(clients, expected, strict=True))
    shown = cli_json(env, "federation", "show", fid)
    assert shown["status"] == "settled"
    assert [p["payout_wei"] for p in shown["participants"]] == expected
    assert [p["client"] for p in shown["participants"]] == clients
    assert expected[ATTACKER] == min(expected) and sum(expected) > 0
    best = clients[int(np.argmax(expected))]
    took = cli_json(env, "federation", "withdraw", "--account", best)
    assert took["withdrawn_wei"] == max(expected)
