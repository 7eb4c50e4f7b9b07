"""The platform server as a background process of a data dir: started by ``databright up``,
found by its lock, stopped by its PID by ``databright down``.

The server holds an exclusive lock on ``<data-dir>/server.lock`` for as long as it runs and
writes ``server.json`` (pid, url) once it listens, so "is a server running here" is a question
the kernel answers (a crashed server's lock is gone) and a stale ``server.json`` is ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import requests

from databright.atomic import atomic_write
from databright.errors import NodeError
from databright.process import launch

__all__ = [
    "LOCK_FILE",
    "STATUS_FILE",
    "ServerStatus",
    "holding_server_lock",
    "server_status",
    "start_server",
    "stop_server",
]

LOCK_FILE: Final = "server.lock"
STATUS_FILE: Final = "server.json"
LOG_FILE: Final = "server.log"


@dataclass(frozen=True)
class ServerStatus:
    pid: int
    url: str


def _locked_by_someone(data_dir: Path) -> bool:
    path = data_dir / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def server_status(data_dir: Path | str) -> ServerStatus | None:
    """The server running on ``data_dir``, or None."""
    data_dir = Path(data_dir).resolve()
    if not _locked_by_someone(data_dir):
        return None
    try:
        info = json.loads((data_dir / STATUS_FILE).read_text())
        return ServerStatus(int(info["pid"]), str(info["url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # starting: locked, not listening yet


@contextlib.contextmanager
def holding_server_lock(data_dir: Path | str, url: str) -> Iterator[None]:
    """Held by the server process while it serves ``data_dir`` (refuses a second one)."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock: IO[bytes] = open(data_dir / LOCK_FILE, "a+b")  # noqa: SIM115 - held until the end
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeError(
                f"a platform server already runs on {data_dir}; stop it with `databright down`"
            ) from None
        atomic_write(data_dir / STATUS_FILE, json.dumps({"pid": os.getpid(), "url": url}))
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                (data_dir / STATUS_FILE).unlink()
    finally:
        lock.close()


def start_server(
    rpc: str,
    data_dir: Path | str,
    host: str = "127.0.0.1",
    port: int = 8000,
    timeout: float = 60.0,
) -> ServerStatus:
    """Spawn ``databright server`` detached, and wait until it answers; output in server.log."""
    data_dir = Path(data_dir).resolve()
    running = server_status(data_dir)
    if running is not None:
        return running
    command = [sys.executable, "-m", "databright.cli", "server", "--rpc", rpc,
               "--data-dir", str(data_dir), "--host", host, "--port", str(port)]  # fmt: skip
    process = launch(
        command,
        name="the platform server",
        log=data_dir / LOG_FILE,
        env={"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
        detach=True,
    )
    url = f"http://{host}:{port}"

    def answering() -> ServerStatus | None:
        current = server_status(data_dir)
        if current is None or current.pid != process.pid:
            return None
        return current if requests.get(f"{url}/api/v1/status", timeout=2).ok else None

    return process.wait_ready(answering, timeout)


def stop_server(data_dir: Path | str, timeout: float = 15.0) -> bool:
    """Stop the server running on ``data_dir`` (SIGTERM, then SIGKILL); False if none ran."""
    data_dir = Path(data_dir).resolve()
    running = server_status(data_dir)
    if running is None:
        return False
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(running.pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(running.pid, os.WNOHANG)
            if not _locked_by_someone(data_dir):
                return True
            time.sleep(0.05)
    raise NodeError(f"the platform server (pid {running.pid}) did not stop; kill it by hand")
