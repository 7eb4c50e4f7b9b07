"""``databright split serve`` and two ``databright split worker`` processes on a free loopback
port: the coordinator computes the input stage and attests its key in software, each worker
accepts that attestation only with ``--allow-insecure-coordinator`` (pinned to the coordinator's
address), then holds one later stage and answers its messages under its keystore key over
HTTP, and the assembled checkpoint is, to the byte,
the one unsplit training gives. Every process is started by :func:`databright.process.launch`
and stopped by its PID; no chain is needed. A cheating worker (what ``split worker --cheat``
runs) is caught by an audit: the command exits with the sentence naming it and writes the
evidence; a bad command line is one sentence."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_main
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sklearn.datasets import load_digits

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.compute.market import ComputeMarket, stage_unit_id
from databright.compute.split_relay import RelayedStageWorker
from databright.compute.splitting import ScaledActivationsWorker, StageEvidence, StageWorker
from databright.compute.transport import http_transport
from databright.demo.compute import _allow_dev_coordinator, _funded, _save_dev_key
from databright.errors import NodeUnreachable
from databright.market import Market
from databright.ml.spec import ModelSpec
from databright.ml.train import train
from databright.process import ServerProcess, launch

SPEC = {
    "input_shape": [64],
    "classes": 10,
    "layers": [
        {"type": "Linear", "out_features": 24},
        {"type": "ReLU"},
        {"type": "Linear", "out_features": 16},
        {"type": "Dropout", "p": 0.1},
        {"type": "ReLU"},
        {"type": "Linear", "out_features": 10},
    ],
    "optimizer": {"type": "adam", "lr": 0.01},
    "epochs": 2,
    "batch_size": 32,
    "seed": 5,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _files(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x, y = (x[:300] / 16).astype(np.float32), y[:300]
    np.savez(tmp_path / "data.npz", x=x, y=y)
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    return x, y


def _serve_args(tmp_path: Path, workers: list[str], port: int) -> list[str]:
    return [
        "split",
        "serve",
        "--spec",
        str(tmp_path / "spec.json"),
        "--data",
        str(tmp_path / "data.npz"),
        *[a for w in workers for a in ("--worker", w)],
        "--out",
        str(tmp_path / "model.ckpt"),
        "--evidence",
        str(tmp_path / "evidence.json"),
        "--audit",
        "1.0",
        "--port",
        str(port),
    ]


def test_a_split_job_runs_as_processes_and_trains_the_unsplit_weights(tmp_path: Path) -> None:
    x, y = _files(tmp_path)
    data_dir = tmp_path / "home"
    store = Keystore(data_dir / "keystore")
    coordinator, *workers = [str(store.new()) for _ in range(3)]
    port = free_port()
    env = {"OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "databright.cli"]
    signs = ["--account", coordinator, "--data-dir", str(data_dir)]
    processes: list[ServerProcess] = []
    try:
        serve = launch(
            [*cli, *_serve_args(tmp_path, workers, port), *signs],
            name="the split coordinator",
            log=tmp_path / "serve.log",
            env=env,
        )
        processes.append(serve)
        for i, worker in enumerate(workers):
            relay = ["--relay", f"http://127.0.0.1:{port}", "--account", worker]
            attested = ["--allow-insecure-coordinator", "--coordinator-address", coordinator]
            processes.append(
                launch(
                    [
                        *cli,
                        "split",
                        "worker",
                        *relay,
                        *attested,
                        "--data-dir",
                        str(data_dir),
                        "--idle",
                        "10",  # quiet while the other worker loads its stage (imports torch)
                    ],
                    name=f"stage worker {i}",
                    log=tmp_path / f"worker{i}.log",
                    env=env,
                )
            )
        assert serve.wait(timeout=120) == 0, serve.output()
        for process in processes[1:]:
            assert process.wait(timeout=30) == 0, process.output()
    finally:
        for process in reversed(processes):
            process.stop(timeout=10)
    out = serve.output()
    assert "Traceback" not in out
    assert "stage 0 (layers 0..1): coordinator" in out
    assert f"coordinator {coordinator} (software attestation, NOT hardware-backed)" in out
    for k, worker in enumerate(workers, start=1):
        assert f"): {worker}" in out
        assert f"(stage {k})" in processes[k].output()
        assert "accepted because of --allow-insecure-coordinator" in processes[k].output()
    assert "epoch 2/2" in out and "batches audited" in out
    reference = train(ModelSpec.from_dict(SPEC), x, y)
    assert (tmp_path / "model.ckpt").read_bytes() == reference.checkpoint
    assert not (tmp_path / "evidence.json").exists()


def _answering(workers: list[RelayedStageWorker], stop: threading.Event) -> list[threading.Thread]:
    """Worker threads that answer their messages (waiting for the relay to come up)."""

    def run(worker: RelayedStageWorker) -> None:
        while not stop.is_set():
            try:
                worker.work_once()
            except NodeUnreachable:
                time.sleep(0.05)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    return threads


def _serve_honest_and_cheat(
    tmp_path: Path,
    accounts: list[LocalAccount],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, str, str]:
    """``split serve ... EXTRA`` in this process, its two stage workers threads speaking HTTP to
    it: the first honest, the second the cheater ``split worker --cheat`` runs."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workers = [
        RelayedStageWorker(a, http_transport(url, 30.0), stage_worker=stage(a.address))
        for a, stage in zip(accounts, (StageWorker, ScaledActivationsWorker), strict=True)
    ]
    stop = threading.Event()
    threads = _answering(workers, stop)
    try:
        serve = _serve_args(tmp_path, [a.address for a in accounts], port)
        return run_main(monkeypatch, capsys, *serve, *extra)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)


def test_a_cheating_stage_worker_is_caught_and_its_evidence_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `split serve` in this process (no interpreter's seconds of imports); its workers as
    # threads speaking HTTP to it, the second one the cheater `split worker --cheat` runs
    _files(tmp_path)
    accounts = [Account.from_key(f"0x{k + 7:064x}") for k in range(2)]
    code, out, err = _serve_honest_and_cheat(tmp_path, accounts, monkeypatch, capsys)
    cheat = accounts[1].address
    assert code == 1, out + err
    assert f"worker {cheat} returned activations at step 2" in err
    assert "Traceback" not in out + err
    (found,) = json.loads((tmp_path / "evidence.json").read_text())
    assert (found["worker"], found["step"], found["stage"], found["what"]) == (
        cheat,
        2,
        2,
        "activations",
    )
    assert not (tmp_path / "model.ckpt").exists()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (["--worker", "0x12"], "is not an Ethereum address"),
        (["--worker", "0x" + "1" * 40, "--worker", "0x" + "1" * 40], "is named twice"),
        (["--owner", "nonsense"], "is not WORKER=OWNER"),
        (["--data", "missing.npz"], "cannot read x and y"),
        (["--market-job", "1"], "give its --account"),
    ],
)
def test_a_bad_split_command_is_one_sentence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: list[str],
    words: str,
) -> None:
    _files(tmp_path)
    args = _serve_args(tmp_path, ["0x" + "2" * 40], free_port())
    if change[0] == "--data":
        args[args.index("--data") + 1] = str(tmp_path / change[1])
    else:
        args = args[:2] + change + args[2:]
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 1 and words in err, out + err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_taken_port_is_one_sentence_before_any_worker_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _files(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_main(
            monkeypatch, capsys, *_serve_args(tmp_path, ["0x" + "2" * 40], port)
        )
    assert code == 1 and f"127.0.0.1:{port} cannot be listened on" in err, out + err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "model.ckpt").exists()


def test_a_market_split_job_slashes_the_caught_worker_on_chain(
    node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The cheat test's job as a ComputeMarket job: its coordinator allowed on chain, its stage
    # workers staked; the audit's catch burns the cheater's stake, with the evidence by CID.
    _files(tmp_path)
    data_dir = tmp_path / "home"
    deploy(connect(node.url, node.accounts[0]), data_dir)
    admin = ComputeMarket.over(Market.connect(node.url, node.accounts[0], data_dir))
    coordinator, payer, *accounts = [_funded(admin.market, 10**18) for _ in range(4)]
    _save_dev_key(Keystore(data_dir / "keystore"), coordinator)
    _allow_dev_coordinator(admin, coordinator)
    for a in accounts:
        admin.as_account(a).register_device("split-test", 1, 0, 5 * 10**16)
    spec = admin.market.store.put(json.dumps(SPEC).encode())
    job = admin.as_account(payer).create_job(coordinator.address, 4 * 10**15, 3600, spec)
    market = ["--market-job", str(job.id), "--fee-per-epoch", str(10**15), "--rpc", node.url]
    signs = ["--account", coordinator.address, "--data-dir", str(data_dir)]
    code, out, err = _serve_honest_and_cheat(
        tmp_path, accounts, monkeypatch, capsys, *market, *signs
    )
    cheat, honest = accounts[1].address, accounts[0].address
    assert code == 1 and f"worker {cheat} returned activations at step 2" in err, out + err
    assert f"slashed {cheat} on chain: {5 * 10**16} wei of stake burned" in err
    assert "Traceback" not in out + err
    assert admin.device(cheat).stake_wei == 0 and admin.device(honest).stake_wei == 5 * 10**16
    (found,) = json.loads((tmp_path / "evidence.json").read_text())
    record = admin.evidence(job.id, cheat, stage_unit_id(StageEvidence(**found)))
    assert record.bundle["stage_evidence"] == found and record.amount_wei == 5 * 10**16
    assert admin.remaining(job.id) == 4 * 10**15  # caught in epoch 1: no epoch was paid
    # An escrow that cannot pay every epoch is refused before the relay even listens.
    small = admin.as_account(payer).create_job(coordinator.address, 10**15, 3600, spec)
    market[1] = str(small.id)
    serve = _serve_args(tmp_path, [a.address for a in accounts], free_port())
    code, out, err = run_main(monkeypatch, capsys, *serve, *market, *signs)
    assert "split relay" not in out
    assert code == 1 and f"market job {small.id} holds {10**15} wei, less than" in err, out + err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
