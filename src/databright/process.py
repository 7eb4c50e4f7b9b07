"""Launching a server process and waiting until it answers: the one launcher behind the
embedded node's background start, anvil, the test fixtures and the benchmarks.

::

    process = launch([...], name="anvil", log=data_dir / "anvil.log")
    process.wait_ready(json_rpc_answers(url), timeout=30)  # NodeError if it dies or stalls
    ...
    process.stop()  # SIGTERM, then SIGKILL

A server is ready when a probe says so, not when a fixed time has passed; while it waits,
the launcher watches the process, so one that dies during startup is reported at once, with the
last line it wrote (the ``error: ...`` line of the node, the panic of anvil), in one
:class:`~databright.errors.NodeError` sentence.

Output (stdout and stderr together) goes to a log file, appended to, so a restart on the same
file keeps the earlier runs' output; only this run's part is read back. Without a log path it
goes to an anonymous temporary file, read back into memory once the process has ended.

The process is signalled by its own PID, never by name or by process group.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

from databright.errors import NodeError

__all__ = ["ServerProcess", "json_rpc_answers", "launch"]

T = TypeVar("T")

_OUTPUT_LIMIT = 256 * 1024  # bytes of output read back: the tail is what says what went wrong
# Probes talk to local servers: never through an HTTP proxy from the environment.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerProcess:
    """A launched child process: its PID, its output, readiness, stopping and killing.

    Usable as a context manager: leaving the block stops it.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        name: str,
        log_path: Path | None,
        log_offset: int,
        log_file: IO[bytes] | None,
    ) -> None:
        self.popen = popen
        self.name = name
        self.log_path = log_path
        self._log_offset = log_offset
        self._log_file = log_file  # the anonymous log, open until the process has ended
        self._captured: bytes | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended (``-N``: killed by signal N)."""
        return self.popen.returncode

    def poll(self) -> int | None:
        """The exit status if the process has ended, else None."""
        code = self.popen.poll()
        if code is not None:
            self._release()
        return code

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end; ``subprocess.TimeoutExpired`` if it does not in time."""
        code = self.popen.wait(timeout)
        self._release()
        return code

    def wait_ready(
        self, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05
    ) -> T:
        """Call ``probe`` until it returns something truthy, and return that.

        A probe that returns a falsy value or raises ``OSError`` (connection refused...) means
        "not yet". Raises :class:`NodeError` if the process exits first (with its last line of
        output) or if it is not ready within ``timeout`` seconds (then it is killed).
        """
        deadline = time.monotonic() + timeout
        while True:
            code = self.poll()
            if code is not None:
                reason = self.last_line() or f"exit status {code}"
                raise NodeError(f"{self.name} exited during startup: {reason}")
            try:
                answer = probe()
            except OSError:
                answer = None
            except BaseException:
                self.kill()
                raise
            if answer:
                return answer
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        self.kill()
        where = f"; see {self.log_path}" if self.log_path is not None else ""
        last = self.last_line()
        said = f" (last output: {last})" if last and self.log_path is None else ""
        raise NodeError(f"{self.name} did not answer within {timeout:g} s{where}{said}")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; return the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)  # Popen signals only a process not yet reaped
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                return self.kill()
        return self.wait()

    def kill(self) -> int:
        """SIGKILL (if it still runs) and reap; return the exit status."""
        if self.popen.poll() is None:
            self.popen.kill()
        return self.wait()

    def output(self) -> str:
        """What the process wrote since it was launched (its last 256 KiB)."""
        if self._captured is not None:
            data = self._captured
        elif self._log_file is not None:
            data = _read_tail(self._log_file.fileno(), self._log_offset)
        elif self.log_path is not None:
            try:
                with open(self.log_path, "rb") as log:
                    data = _read_tail(log.fileno(), self._log_offset)
            except OSError:
                data = b""
        else:
            data = b""
        return data.decode(errors="replace")

    def last_line(self) -> str:
        """The last non-blank line of :meth:`output`, stripped ("" if none)."""
        lines = [line.strip() for line in self.output().splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def _release(self) -> None:
        """Once the process has ended: keep what it wrote to the anonymous log, close that."""
        if self._log_file is not None:
            self._captured = _read_tail(self._log_file.fileno(), self._log_offset)
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} pid {self.pid} returncode {self.returncode}>"


def _read_tail(fd: int, offset: int) -> bytes:
    """Bytes from ``offset`` to the end (at most the last 256 KiB), without moving ``fd``."""
    size = os.fstat(fd).st_size
    start = max(offset, size - _OUTPUT_LIMIT)
    chunks = []
    while start < size:
        chunk = os.pread(fd, size - start, start)
        if not chunk:
            break
        chunks.append(chunk)
        start += len(chunk)
    return b"".join(chunks)


def launch(
    command: Sequence[str],
    *,
    name: str,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    detach: bool = False,
) -> ServerProcess:
    """Start ``command`` with its output appended to ``log``; return at once.

    ``name`` says what it is in messages ("the node", "anvil"). ``env`` is added to this
    process's environment. ``detach`` starts it in a session of its own, so that it outlives the
    terminal that started it. Standard input is empty. Raises :class:`NodeError` if the command
    cannot be started at all.
    """
    log_file: IO[bytes] | None = None
    if log is not None:
        log = Path(log)
        log.parent.mkdir(parents=True, exist_ok=True)
        sink: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed below, the child keeps its copy
        offset = sink.tell()
    else:
        sink = log_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the child ends
        offset = 0
    try:
        popen = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env is not None else None,
            start_new_session=detach,
        )
    except OSError as exc:
        sink.close()
        raise NodeError(f"cannot start {name} ({command[0]}): {exc.strerror or exc}") from None
    if log_file is None:
        sink.close()
    return ServerProcess(popen, name, log, offset, log_file)


def json_rpc_answers(
    url: str, method: str = "eth_chainId", timeout: float = 1.0
) -> Callable[[], bool]:
    """A readiness probe: whether the JSON-RPC server at ``url`` answers ``method`` with a
    result."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()

    def answers() -> bool:
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            with _NO_PROXY.open(request, timeout=timeout) as response:
                answer = json.loads(response.read())
            return isinstance(answer, dict) and "result" in answer
        return False

    return answers
