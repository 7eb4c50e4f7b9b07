"""``databright coordinator`` and three ``databright worker`` processes (one of them ``--cheat
lazy``) on a free loopback port: a tiny job completes through real processes and the cheater is
named. Every process is started by :func:`databright.process.launch` and stopped by its PID."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from databright.chain.keystore import Keystore
from databright.process import ServerProcess, launch

SPEC = {
    "input_shape": [6],
    "classes": 2,
    "layers": [{"type": "Linear", "out_features": 2}],
    "optimizer": {"type": "sgd", "lr": 0.1},
    "batch_size": 4,
    "seed": 3,
}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def databright() -> list[str]:
    """The command line of ``databright`` (before ``cli/__init__`` registers the compute
    commands, the same commands mounted on an app of their own)."""
    from databright.cli import app

    names = {c.name for c in app.registered_commands}
    if "coordinator" in names:
        return [sys.executable, "-m", "databright.cli"]
    shim = (
        "import typer; from databright.cli.compute import register; "
        "app = typer.Typer(); register(app); app()"
    )
    return [sys.executable, "-c", shim]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> object:
    with _NO_PROXY.open(url, timeout=2) as answer:
        return json.loads(answer.read())


@pytest.mark.slow  # four processes that each import torch: ~20 s on two busy cores
def test_coordinator_and_workers_as_processes(tmp_path: Path) -> None:
    data_dir = tmp_path / "home"
    store = Keystore(data_dir / "keystore")
    addresses = [store.new() for _ in range(3)]
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    np.savez(tmp_path / "toy.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"OMP_NUM_THREADS": "1", "DATABRIGHT_HOME": str(data_dir)}
    processes: list[ServerProcess] = []
    try:
        coordinator = launch(
            [
                *databright(),
                "coordinator",
                "--port",
                str(port),
                "--job",
                str(tmp_path / "spec.json"),
                "--data",
                str(tmp_path / "toy.npz"),
                "--units",
                "2",
                "--steps",
                "2",
                "--shard-size",
                "5",
                "--poll",
                "0.5",
            ],
            name="the coordinator",
            log=tmp_path / "coordinator.log",
            env=env,
        )
        processes.append(coordinator)
        for i, address in enumerate(addresses):
            cheat = ["--cheat", "lazy"] if i == 2 else []
            processes.append(
                launch(
                    [
                        *databright(),
                        "worker",
                        "--coordinator",
                        base,
                        # the test's coordinator is attested in software only
                        "--allow-insecure-coordinator",
                        "--account",
                        address,
                        "--units",
                        "2",
                        "--timeout",
                        "20",
                        *cheat,
                    ],
                    name=f"worker {i}",
                    log=tmp_path / f"worker{i}.log",
                    env=env,
                )
            )
        coordinator.wait_ready(lambda: get_json(f"{base}/compute/v1/status"), timeout=60)
        for worker in processes[1:]:
            assert worker.wait(timeout=60) == 0, worker.output()
            assert "2 units done" in worker.output()
        status = get_json(f"{base}/compute/v1/jobs/1")
        assert isinstance(status, dict)
        assert status["state"] == "done" and status["units_done"] == 2
        assert status["cheaters"] == [addresses[2]]
        assert set(status["exposure"]) >= set(addresses)
        assert "cheating: lazy" in processes[3].output()
    finally:
        for process in reversed(processes):
            process.stop(timeout=10)
