"""``databright server`` as a user runs it: a real process on a free port, stopped by PID."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cli_helpers import run_main

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.process import launch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str):  # a readiness probe: the status once the index caught up
    def probe():
        answer = requests.get(f"{url}/api/v1/status", timeout=2)
        body = answer.json() if answer.ok else None
        return body if body and body["index"]["lag"] == 0 else None

    return probe


# One node is enough to show the command works; the API suite runs on both.
@pytest.mark.parametrize("node", ["embedded"], indirect=True)
def test_the_server_indexes_and_answers_until_stopped(node, tmp_path: Path) -> None:
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "databright.cli", "server", "--rpc", node.url,
           "--data-dir", str(tmp_path), "--port", str(port)]  # fmt: skip
    server = launch(cmd, name="the platform server", log=tmp_path / "server.log")
    try:
        status = server.wait_ready(_status(url), timeout=60)
        assert status["index"]["chain_id"] == node.chain_id
        assert requests.get(f"{url}/api/v1/datasets", timeout=10).json()["items"] == []
        assert (tmp_path / "index.sqlite3").is_file()  # the embedded default
    finally:
        server.stop()


@pytest.mark.parametrize("node", ["embedded"], indirect=True)
def test_a_taken_port_is_one_sentence(node, tmp_path: Path) -> None:
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "databright.cli", "server", "--rpc", node.url,
               "--data-dir", str(tmp_path), "--port", str(port)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "is in use" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_up_starts_node_and_server_and_down_stops_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first ``up`` as a user runs it (a process of its own); the second and ``down`` call
    the same ``main()`` in this process, which saves a fresh interpreter's imports each."""
    rpc = f"http://127.0.0.1:{_free_port()}"
    api_port = _free_port()
    base = [sys.executable, "-m", "databright.cli"]
    where = ["--data-dir", str(tmp_path)]
    up = subprocess.run(
        [*base, "up", "--rpc", rpc, *where, "--api-port", str(api_port), "--json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        api = json.loads(up.stdout)["api"]
        assert api == f"http://127.0.0.1:{api_port}"
        status = requests.get(f"{api}/api/v1/status", timeout=10).json()
        assert status["index"]["market"] == json.loads(up.stdout)["addresses"]["DataMarket"]
        code, out, err = run_main(
            monkeypatch, capsys, "up", "--rpc", rpc, *where, "--api-port", "1", "--json"
        )
        assert code == 0, err
        assert json.loads(out)["api"] == api  # found running, not started twice
    finally:
        code, out, err = run_main(monkeypatch, capsys, "down", *where, "--json")
    assert code == 0, err
    assert json.loads(out) == {"server_stopped": True, "node_stopped": True}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/api/v1/status", timeout=5)
