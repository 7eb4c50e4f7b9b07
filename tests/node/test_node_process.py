"""Starting, refusing to start, restarting and managing the embedded node."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest
from eth.db.schema import SchemaV1
from node_helpers import finish, free_port, rpc, spawn_node, wait_ready
from typer.testing import CliRunner
from web3 import Web3

from databright.cli.node import app as node_app
from databright.errors import NodeError, NotFound, StoreCorrupt
from databright.node import (
    Node,
    NodeConfig,
    load_dev_accounts,
    start_background,
    status,
    stop,
)
from databright.node.accounts import SCRYPT_N
from databright.node.store import KeyValueStore


def _make_chain(data_dir: Path, transfers: int = 1, **config: object) -> tuple[int, str]:
    """A data dir with a few mined transfers; returns (head number, head hash)."""
    with Node(NodeConfig(data_dir=data_dir, port=0, accounts=2, **config)) as node:  # type: ignore[arg-type]
        w3 = Web3(Web3.HTTPProvider(node.url))
        sender, receiver = load_dev_accounts(data_dir)
        for nonce in range(transfers):
            raw = sender.sign_transaction(
                {
                    "chainId": w3.eth.chain_id,
                    "nonce": nonce,
                    "to": receiver.address,
                    "value": 1,
                    "gas": 21000,
                    "maxFeePerGas": 3 * 10**9,
                    "maxPriorityFeePerGas": 1,
                }
            ).raw_transaction
            w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
        head = w3.eth.get_block("latest")
        return head["number"], head["hash"].to_0x_hex()


def _run_command_line(data_dir: Path, port: int, *extra: str) -> tuple[int, str]:
    """Run the node's command line until it exits; its exit status and output."""
    process = spawn_node(data_dir, port, *extra)
    try:
        code = process.wait(timeout=60)
    finally:
        finish(process)
    return code, process.output()


# --- refusals ------------------------------------------------------------------------------


def test_busy_port_is_refused_on_the_command_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = _run_command_line(tmp_path / "d", port)
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use; stop the other process or pass --port"
    ]
    assert not (tmp_path / "d").exists()  # refused before touching the data dir


def test_other_chain_id_is_refused(tmp_path: Path) -> None:
    _make_chain(tmp_path, transfers=0)
    message = f"data dir {tmp_path} holds chain id 1337, not 5; pass --chain-id 1337 or use another --data-dir"
    with pytest.raises(NodeError) as info:
        Node(NodeConfig(data_dir=tmp_path, port=0, chain_id=5)).start()
    assert str(info.value) == message


def test_garbage_store_is_refused(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "chain.sqlite3").write_bytes(os.urandom(8192))
    with pytest.raises(StoreCorrupt, match="move the data dir away"):
        Node(NodeConfig(data_dir=tmp_path, port=0)).start()
    code, err = _run_command_line(tmp_path, free_port())
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("error: the chain store") and "move the data dir away" in lines[0]
    assert (tmp_path / "chain.sqlite3").stat().st_size == 8192  # left alone


def _delete(data_dir: Path, key: bytes) -> None:
    conn = sqlite3.connect(data_dir / "chain.sqlite3")
    with conn:
        assert conn.execute("DELETE FROM kv WHERE k = ?", (key,)).rowcount == 1
    conn.close()


def test_missing_head_block_is_refused(tmp_path: Path) -> None:
    _, head_hash = _make_chain(tmp_path, transfers=2)
    _delete(tmp_path, bytes.fromhex(head_hash[2:]))  # the head header
    with pytest.raises(StoreCorrupt, match=r"head block incomplete.*move the data dir away"):
        Node(NodeConfig(data_dir=tmp_path, port=0)).start()


def test_missing_canonical_head_is_refused(tmp_path: Path) -> None:
    _make_chain(tmp_path, transfers=0)
    _delete(tmp_path, SchemaV1.make_canonical_head_hash_lookup_key())
    with pytest.raises(StoreCorrupt, match="head block incomplete"):
        Node(NodeConfig(data_dir=tmp_path, port=0)).start()


def test_lost_store_with_keystores_is_refused(tmp_path: Path) -> None:
    _make_chain(tmp_path, transfers=0)
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"chain.sqlite3{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreCorrupt, match="dev keystores but its chain store is empty"):
        Node(NodeConfig(data_dir=tmp_path, port=0)).start()


def test_store_never_committed_is_created(tmp_path: Path) -> None:
    """A first start killed before genesis committed leaves an empty store: start afresh."""
    KeyValueStore(tmp_path / "chain.sqlite3").close()
    number, _ = _make_chain(tmp_path, transfers=1)
    assert number == 1


def test_data_dir_in_use_is_refused(tmp_path: Path) -> None:
    with (
        Node(NodeConfig(data_dir=tmp_path, port=0)),
        pytest.raises(
            NodeError, match=rf"data dir {tmp_path} is in use by another node \(pid {os.getpid()}\)"
        ),
    ):
        Node(NodeConfig(data_dir=tmp_path, port=0)).start()


# --- restarts ------------------------------------------------------------------------------


def test_restart_resumes_from_the_stored_head(tmp_path: Path) -> None:
    number, head_hash = _make_chain(tmp_path, transfers=3, chain_id=4242)
    accounts = load_dev_accounts(tmp_path)
    with Node(NodeConfig(data_dir=tmp_path, port=0)) as node:  # chain id comes from the store
        w3 = Web3(Web3.HTTPProvider(node.url))
        assert w3.eth.chain_id == 4242
        assert w3.eth.block_number == number == 3
        assert w3.eth.get_block("latest")["hash"].to_0x_hex() == head_hash
        assert w3.eth.get_transaction_count(accounts[0].address) == 3
        assert w3.eth.get_balance(accounts[1].address) == 10_000 * 10**18 + 3
    assert [a.address for a in load_dev_accounts(tmp_path)] == [a.address for a in accounts]


def test_command_line_sigterm_is_clean(tmp_path: Path) -> None:
    port = free_port()
    process = spawn_node(tmp_path, port)
    wait_ready(f"http://127.0.0.1:{port}", process)
    assert json.loads((tmp_path / "node.json").read_text())["pid"] == process.pid
    assert process.stop(timeout=15) == 0  # SIGTERM first: a clean exit needs no SIGKILL
    assert not (tmp_path / "node.json").exists()
    text = process.output()
    # The two-line announcement and nothing else: no error, no warning, no traceback.
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("DataBright node: chain id 1337"), text
    assert f"http://127.0.0.1:{port}" in text and "databright-dev" in text
    keys = [a.key.hex() for a in load_dev_accounts(tmp_path)]
    assert not any(key in text for key in keys)


# --- background management -----------------------------------------------------------------


def test_background_start_status_stop(tmp_path: Path) -> None:
    """``databright node start/status/stop`` on top of start_background/status/stop."""
    runner = CliRunner()
    assert status(tmp_path) is None
    port = free_port()
    args = ["--data-dir", str(tmp_path)]
    result = runner.invoke(node_app, ["start", *args, "--port", str(port), "--accounts", "1"])
    try:
        assert result.exit_code == 0, result.output
        assert f"http://127.0.0.1:{port}, chain id 1337, block 0" in result.output
        found = status(tmp_path)
        assert found is not None and found.url == f"http://127.0.0.1:{port}"
        assert rpc(found.url, "eth_chainId") == "0x539"
        result = runner.invoke(node_app, ["status", *args, "--json"])
        assert result.exit_code == 0 and json.loads(result.output)["pid"] == found.pid
        with pytest.raises(NodeError, match="a node already runs"):
            start_background(NodeConfig(data_dir=tmp_path, port=0))
    finally:
        result = runner.invoke(node_app, ["stop", *args])
    assert result.exit_code == 0 and "stopped" in result.output
    assert status(tmp_path) is None
    assert stop(tmp_path) is False
    result = runner.invoke(node_app, ["status", *args])
    assert result.exit_code == 1 and "no node is running" in result.output


def test_background_start_reports_the_childs_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(NodeError, match=rf"exited during startup: error: port {port}"):
            start_background(NodeConfig(data_dir=tmp_path, port=port), timeout=30)


def test_stale_status_file_is_detected(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "node.lock").write_text(f"{dead.pid}\n")
    (tmp_path / "node.json").write_text(
        json.dumps({"pid": dead.pid, "url": "http://127.0.0.1:1", "chain_id": 1337})
    )
    assert status(tmp_path) is None
    assert not (tmp_path / "node.json").exists()
    assert stop(tmp_path) is False


# --- dev accounts --------------------------------------------------------------------------


def test_dev_accounts_load_and_honour_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRIGHT_PASSWORD", "s3cret")
    with Node(NodeConfig(data_dir=tmp_path, port=0)):
        pass
    accounts = load_dev_accounts(tmp_path)
    assert len(accounts) == 10 and len({a.address for a in accounts}) == 10
    keystores = list((tmp_path / "keystore").glob("*.json"))
    assert len(keystores) == 10
    for keystore in keystores:  # light scrypt: what makes loading take ~0.1 s, not ~10 s
        assert json.loads(keystore.read_text())["crypto"]["kdfparams"]["n"] == SCRYPT_N
    with pytest.raises(ValueError):
        load_dev_accounts(tmp_path, password="databright-dev")
    monkeypatch.delenv("DATABRIGHT_PASSWORD")
    with pytest.raises(ValueError):
        load_dev_accounts(tmp_path)
    assert load_dev_accounts(tmp_path, password="s3cret")[0].address == accounts[0].address


def test_no_dev_accounts_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="start the node once"):
        load_dev_accounts(tmp_path)


# --- command group -------------------------------------------------------------------------


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    _make_chain(tmp_path, transfers=0)
    # A free port: the default 8545 may be serving `make run`'s node, whose refusal comes first.
    result = runner.invoke(
        node_app,
        ["run", "--data-dir", str(tmp_path), "--chain-id", "7", "--port", str(free_port())],
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: data dir {tmp_path} holds chain id 1337, not 7; pass --chain-id 1337 or use "
        f"another --data-dir"
    ]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"port": 70000}, "is not a TCP port"),
        ({"chain_id": 0}, "is not a positive 63-bit integer"),
        ({"accounts": -1}, "cannot create -1 dev accounts"),
    ],
)
def test_bad_config_is_refused(tmp_path: Path, config: dict[str, int], needle: str) -> None:
    with pytest.raises(NodeError, match=needle):
        Node(NodeConfig(data_dir=tmp_path / "d", **config)).start()  # type: ignore[arg-type]
    assert not (tmp_path / "d").exists()
