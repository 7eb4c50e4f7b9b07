"""Shared fixtures: real nodes (the embedded node and anvil) on free 127.0.0.1 ports.

Every chain-facing test takes ``node`` and so runs against both; nodes start once per session
(through :func:`databright.process.launch`, their output in ``node.log``/``anvil.log`` in the
data dir) and are stopped by PID. Tests that need a pristine chain take ``fresh_node`` instead.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from databright.process import ServerProcess, json_rpc_answers, launch

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
    process: ServerProcess

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop(timeout=10)


def start_embedded(data_dir: Path, port: int | None = None) -> NodeHandle:
    from databright.node import load_dev_accounts

    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    process = launch(
        [sys.executable, "-m", "databright.node", "--data-dir", str(data_dir), "--port", str(port)],
        name="the embedded node",
        log=data_dir / "node.log",
    )
    process.wait_ready(json_rpc_answers(url), timeout=60)
    return NodeHandle("embedded", url, 1337, load_dev_accounts(data_dir), data_dir, process)


def start_anvil_node(data_dir: Path, port: int | None = None) -> NodeHandle:
    from databright_dev.anvil import anvil_accounts, start_anvil

    node = start_anvil(port or free_port(), log=data_dir / "anvil.log")
    return NodeHandle("anvil", node.url, node.chain_id, anvil_accounts(10), data_dir, node.process)


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


# --- SQL databases: SQLite always, PostgreSQL where one answers (in CI it must) -------------


def _postgres_schema() -> Iterator[str]:
    """A schema of its own on the test PostgreSQL, dropped afterwards; its URL is yielded."""
    from databright_dev.postgres import POSTGRES_URL, scratch_schema
    from sqlalchemy.exc import OperationalError

    schema = scratch_schema(POSTGRES_URL)
    try:
        url = schema.__enter__()
    except OperationalError as exc:
        reason = f"no PostgreSQL answers at {POSTGRES_URL} ({type(exc).__name__})"
        if os.environ.get("DATABRIGHT_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + "; CI requires it (DATABRIGHT_REQUIRE_POSTGRES=1)")
        pytest.skip(reason + "; set DATABRIGHT_TEST_POSTGRES")
    try:
        yield url
    finally:
        schema.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite3'}"
    else:
        yield from _postgres_schema()
