"""Helpers for the embedded node's tests: free ports, raw JSON-RPC, node processes, a probe
contract (compiled once with Vyper 0.4.3 for cancun; source below, so no compiler runs here)."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from databright.process import ServerProcess, json_rpc_answers, launch

# pragma version ~=0.4.3
#
# event Ping:
#     sender: indexed(address)
#     value: uint256
#
# counter: public(uint256)
#
# @external
# def ping(v: uint256):
#     assert v < 1000, "probe: too big"
#     self.counter += v
#     log Ping(sender=msg.sender, value=v)
#
# @external
# @view
# def double(v: uint256) -> uint256:
#     assert v < 10, "probe: too big"
#     return v * 2
#
# @external
# @view
# def bare():
#     raise
PROBE_ABI: list[dict[str, Any]] = json.loads(
    '[{"name": "Ping", "inputs": [{"name": "sender", "type": "address", "indexed": true}, '
    '{"name": "value", "type": "uint256", "indexed": false}], "anonymous": false, '
    '"type": "event"}, {"stateMutability": "nonpayable", "type": "function", "name": "ping", '
    '"inputs": [{"name": "v", "type": "uint256"}], "outputs": []}, {"stateMutability": "view", '
    '"type": "function", "name": "double", "inputs": [{"name": "v", "type": "uint256"}], '
    '"outputs": [{"name": "", "type": "uint256"}]}, {"stateMutability": "view", '
    '"type": "function", "name": "bare", "inputs": [], "outputs": []}, {"stateMutability": '
    '"view", "type": "function", "name": "counter", "inputs": [], "outputs": [{"name": "", '
    '"type": "uint256"}]}]'
)
PROBE_BYTECODE = (
    "0x6101da610011610000396101da610000f35f3560e01c60026003821660011b6101d201601e395f51565b63"
    "773acdef81186100ee576024361034176101ce576103e760043511156100aa5760208060a052600e604052"
    "7f70726f62653a20746f6f2062696700000000000000000000000000000000000060605260408160a00160"
    "2e82825e8051806020830101601f825f03163682375050601f19601f82516020010116905090508101905063"
    "08c379a060805280600401609cfd5b5f546004358082018281106101ce57905090505f55337ffd8d0c1dc3ab"
    "254ec49463a1192bb2423b3b851adedec1aa94dcd362dc063c9d60043560405260206040a2005b638095dd0b"
    "81186101ca57346101ce575f5ffd5b63eee9720681186101af576024361034176101ce576009600435111561"
    "01935760208060a052600e6040527f70726f62653a20746f6f2062696700000000000000000000000000000000"
    "000060605260408160a001602e82825e8051806020830101601f825f03163682375050601f19601f82516020"
    "01011690509050810190506308c379a060805280600401609cfd5b6004358060011b818160011c186101ce57"
    "905060405260206040f35b6361bc221a81186101ca57346101ce575f5460405260206040f35b5f5ffd5b5f80"
    "fd01ca01ca01020018855820e87ae72043a653735d3d569dbf8828acf85bf35af45a6f5f59db35288fb83051"
    "1901da810800a1657679706572830004030036"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(url: str, payload: Any, timeout: float = 10.0) -> Any:
    """POST a JSON-RPC payload (object or batch) and return the decoded answer (or None)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def rpc(url: str, method: str, *params: Any) -> Any:
    """Call one method; return ``result`` or raise AssertionError with the error object."""
    answer = post(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    if "error" in answer:
        raise AssertionError(f"{method} failed: {answer['error']}")
    return answer["result"]


def rpc_error(url: str, method: str, *params: Any) -> dict[str, Any]:
    """Call one method that must fail; return its error object."""
    answer = post(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert "error" in answer, f"{method} unexpectedly succeeded: {answer}"
    return dict(answer["error"])


def spawn_node(data_dir: Path, port: int, *extra: str) -> ServerProcess:
    """``python -m databright.node`` as the fixtures elsewhere run it; its output (stdout and
    stderr together) is kept outside the data dir, for :meth:`ServerProcess.output`."""
    command = [
        sys.executable,
        "-m",
        "databright.node",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    return launch(command, name="the node", env={"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})


def wait_ready(url: str, process: ServerProcess, timeout: float = 30.0) -> None:
    process.wait_ready(json_rpc_answers(url, "eth_blockNumber"), timeout)


def finish(process: ServerProcess) -> int:
    """Stop a node process by pid (SIGTERM, then SIGKILL) and reap it; return its exit status."""
    return process.stop(timeout=15)


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``databright ARGS`` through ``databright.cli.main`` in this process: what ``python -m
    databright.cli`` runs, without a fresh interpreter's seconds of imports. Returns the exit
    status, stdout and stderr."""
    from databright.cli import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["databright", *args])
    monkeypatch.delenv("DATABRIGHT_DEBUG", raising=False)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    out, err = capsys.readouterr()
    return code, out, err
