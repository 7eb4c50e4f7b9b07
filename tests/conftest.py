"""Shared fixtures: real nodes (the embedded node and anvil) on free 127.0.0.1 ports.

Every chain-facing test takes ``node`` and so runs against both; nodes start once per session
and are stopped by PID. Tests that need a pristine chain take ``fresh_node`` instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from eth_account.signers.local import LocalAccount

os.environ.setdefault("OMP_NUM_THREADS", "1")

NODE_KINDS = ("embedded", "anvil")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NodeHandle:
    kind: str
    url: str
    chain_id: int
    accounts: list[LocalAccount]
    data_dir: Path
    pid: int

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(200):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            if _reap(self.pid):
                return
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        _reap(self.pid)


def _reap(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return False


def _wait_rpc(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"node exited early: {err[-2000:]}")
        try:
            r = requests.post(
                url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1
            )
            if r.ok:
                return
        except requests.exceptions.ConnectionError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"node at {url} did not answer within {timeout} s")


def start_embedded(data_dir: Path, port: int | None = None) -> NodeHandle:
    from databright.node import load_dev_accounts

    port = port or free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "databright.node",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_rpc(url, proc)
    return NodeHandle("embedded", url, 1337, load_dev_accounts(data_dir), data_dir, proc.pid)


def start_anvil_node(data_dir: Path, port: int | None = None) -> NodeHandle:
    from databright_dev.anvil import anvil_accounts, start_anvil

    node = start_anvil(port or free_port())
    return NodeHandle("anvil", node.url, node.chain_id, anvil_accounts(10), data_dir, node.pid)


def start_node(kind: str, data_dir: Path) -> NodeHandle:
    data_dir.mkdir(parents=True, exist_ok=True)
    return start_embedded(data_dir) if kind == "embedded" else start_anvil_node(data_dir)


@pytest.fixture(scope="session", params=NODE_KINDS)
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeHandle]:
    """A node shared by the session: tests must not assume a pristine chain."""
    handle = start_node(request.param, tmp_path_factory.mktemp(f"node-{request.param}"))
    yield handle
    handle.stop()


@pytest.fixture(params=NODE_KINDS)
def fresh_node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NodeHandle]:
    handle = start_node(request.param, tmp_path / "node")
    yield handle
    handle.stop()


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[object]:
    """Start extra nodes (``make(kind, name)``); all are stopped at the end of the test."""
    started: list[NodeHandle] = []

    def make(kind: str, name: str = "extra") -> NodeHandle:
        handle = start_node(kind, tmp_path / name)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.stop()


@pytest.fixture
def embedded_launcher() -> object:
    """``launch(data_dir, port=None)``: an embedded node the test stops (or kills) itself."""
    return start_embedded
