"""The process launcher, on a real tiny Python child: ready, early exit, timeout, stop, kill."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from databright.errors import NodeError
from databright.process import ServerProcess, json_rpc_answers, launch

# The child: says hello, installs its SIGTERM behaviour, marks itself ready, then idles.
CHILD = """
import os, pathlib, signal, sys, time
print("hello from", os.environ.get("GREETING", "nobody"), flush=True)
mode, marker = sys.argv[1], pathlib.Path(sys.argv[2])
if mode == "fail":
    print("error: port 1 on 127.0.0.1 is in use", file=sys.stderr, flush=True)
    sys.exit(1)
if mode == "silent-fail":
    os._exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "graceful":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if mode != "never-ready":
    marker.write_text("ready")
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Any]:
    """``start(mode, log=...)``: the child in ``mode``, and its ready marker; all are killed."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    started: list[ServerProcess] = []

    def start(
        mode: str = "serve", log: Path | None = None, **env: str
    ) -> tuple[ServerProcess, Path]:
        marker = tmp_path / f"ready-{len(started)}"
        process = launch(
            [sys.executable, str(script), mode, str(marker)],
            name="the child",
            log=log,
            env=env or None,
        )
        started.append(process)
        return process, marker

    yield start
    for process in started:
        process.kill()


def _ready(marker: Path) -> str | None:
    return marker.read_text() if marker.exists() else None


def test_ready_returns_the_probes_answer(child: Any, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"  # its folder is made
    process, marker = child(log=log, GREETING="the test")
    assert process.wait_ready(lambda: _ready(marker), timeout=30) == "ready"
    assert process.poll() is None and process.returncode is None
    os.kill(process.pid, 0)  # the PID is the child's own, alive
    assert process.output() == "hello from the test\n"
    assert log.read_text() == "hello from the test\n"


def test_probe_connection_errors_mean_not_yet(child: Any) -> None:
    process, marker = child()
    calls = 0

    def probe() -> bool:
        nonlocal calls
        calls += 1
        if not marker.exists():
            raise ConnectionRefusedError("not listening yet")
        return calls > 1

    assert process.wait_ready(probe, timeout=30) is True


def test_probe_failure_kills_the_process(child: Any) -> None:
    process, _ = child()

    def probe() -> bool:
        raise RuntimeError("a bug in the probe")

    with pytest.raises(RuntimeError, match="a bug in the probe"):
        process.wait_ready(probe, timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_early_exit_is_reported_with_its_last_line(child: Any, tmp_path: Path) -> None:
    process, marker = child("fail", log=tmp_path / "child.log")
    with pytest.raises(NodeError) as info:
        process.wait_ready(lambda: _ready(marker), timeout=30)
    assert (
        str(info.value) == "the child exited during startup: error: port 1 on 127.0.0.1 is in use"
    )
    assert process.returncode == 1


def test_early_exit_reports_stdout_too(child: Any) -> None:
    process, marker = child("silent-fail")  # its one line went to stdout
    with pytest.raises(NodeError, match=r"^the child exited during startup: hello from nobody$"):
        process.wait_ready(lambda: _ready(marker), timeout=30)
    assert process.returncode == 3


def test_exit_status_when_nothing_was_written(tmp_path: Path) -> None:
    process = launch([sys.executable, "-c", "import os; os._exit(4)"], name="the mute child")
    with pytest.raises(NodeError, match=r"^the mute child exited during startup: exit status 4$"):
        process.wait_ready(lambda: False, timeout=30)


def test_not_ready_in_time_is_killed(child: Any, tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    process, marker = child("never-ready", log=log)
    with pytest.raises(NodeError) as info:
        process.wait_ready(lambda: _ready(marker), timeout=0.2)
    assert str(info.value) == f"the child did not answer within 0.2 s; see {log}"
    assert process.returncode == -signal.SIGKILL


def test_not_ready_in_time_without_a_log_quotes_the_output(child: Any) -> None:
    process, marker = child("never-ready")
    with pytest.raises(NodeError, match=r"within 0.2 s \(last output: hello from nobody\)$"):
        process.wait_ready(lambda: _ready(marker), timeout=0.2)


def test_stop_sends_sigterm_first(child: Any) -> None:
    process, marker = child("graceful")
    process.wait_ready(lambda: _ready(marker), timeout=30)
    assert process.stop(timeout=30) == 0  # its SIGTERM handler ran: it exited by itself
    assert process.stop() == 0  # stopping a stopped process is a no-op


def test_stop_kills_what_ignores_sigterm(child: Any) -> None:
    process, marker = child("stubborn")
    process.wait_ready(lambda: _ready(marker), timeout=30)
    assert process.stop(timeout=0.2) == -signal.SIGKILL


def test_kill_reaps(child: Any) -> None:
    process, marker = child()
    process.wait_ready(lambda: _ready(marker), timeout=30)
    assert process.kill() == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)  # reaped: no zombie left behind
    assert process.kill() == -signal.SIGKILL


def test_context_manager_stops(child: Any) -> None:
    process, marker = child()
    with process as running:
        running.wait_ready(lambda: _ready(marker), timeout=30)
    assert process.returncode == -signal.SIGTERM


def test_log_is_appended_and_output_is_this_runs(child: Any, tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    first, marker = child(log=log, GREETING="run 1")
    first.wait_ready(lambda: _ready(marker), timeout=30)
    first.stop()
    second, marker = child(log=log, GREETING="run 2")
    second.wait_ready(lambda: _ready(marker), timeout=30)
    second.stop()
    assert log.read_text() == "hello from run 1\nhello from run 2\n"
    assert second.output() == "hello from run 2\n"
    assert second.last_line() == "hello from run 2"


def test_anonymous_log_is_kept_after_the_end(child: Any) -> None:
    process, marker = child(GREETING="nowhere")
    process.wait_ready(lambda: _ready(marker), timeout=30)
    assert process.output() == "hello from nowhere\n"  # read while it runs
    process.stop()
    assert process.output() == "hello from nowhere\n"  # and after it ended


def test_a_command_that_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match=r"^cannot start the ghost \(.*no-such-binary\): "):
        launch([str(tmp_path / "no-such-binary")], name="the ghost", log=tmp_path / "g.log")


# --- the JSON-RPC probe ----------------------------------------------------------------------


class _Answer(BaseHTTPRequestHandler):
    answer: bytes = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def rpc_server() -> Iterator[Any]:
    """``serve(answer)``: the URL of an HTTP server on a free port that answers ``answer``."""
    servers: list[HTTPServer] = []

    def serve(answer: dict[str, Any]) -> str:
        handler = type("Handler", (_Answer,), {"answer": json.dumps(answer).encode()})
        server = HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_json_rpc_probe(rpc_server: Any) -> None:
    assert json_rpc_answers(rpc_server({"jsonrpc": "2.0", "id": 1, "result": "0x539"}))() is True
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no"}}
    assert json_rpc_answers(rpc_server(error))() is False


def test_json_rpc_probe_with_nobody_listening() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = unused.getsockname()[1]
        assert json_rpc_answers(f"http://127.0.0.1:{port}")() is False
