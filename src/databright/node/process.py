"""Running the node: in this process (:class:`Node`, :func:`serve`) or detached
(:func:`start_background`), and finding, querying and stopping it (:func:`status`, :func:`stop`).

A running node holds an exclusive ``flock`` on ``<data-dir>/node.lock`` (which also holds its
pid) for as long as it lives. That lock, not the pid, is the truth about whether a node runs: the
kernel drops it when the process dies, even by ``kill -9``, so a stale ``node.json`` is recognized
without guessing from pids (which the OS reuses), and two nodes can never share a data dir.
``node.json`` tells clients where the running node listens.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from databright.atomic import atomic_write
from databright.errors import DataBrightError, NodeError
from databright.process import launch
from databright.settings import DEV_PASSWORD, get_settings

from .accounts import KEYSTORE_DIR, dev_password, write_keystore
from .dev_chain import DevChain
from .logs import FILTER_TIMEOUT_S
from .rpc import Dispatcher
from .server import RpcHTTPServer, bind

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "LOCK_FILE",
    "LOG_FILE",
    "STATUS_FILE",
    "Node",
    "NodeConfig",
    "NodeStatus",
    "default_data_dir",
    "serve",
    "start_background",
    "status",
    "stop",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8545
LOCK_FILE = "node.lock"
STATUS_FILE = "node.json"
LOG_FILE = "node.log"


def default_data_dir() -> Path:
    """``$DATABRIGHT_HOME`` if set, else ``.databright`` in the current directory."""
    return get_settings().home


@dataclass(frozen=True)
class NodeConfig:
    """How to run a node.

    ``data_dir`` defaults to ``$DATABRIGHT_HOME``, else ``.databright`` here. ``chain_id=None`` means 1337 for a new data dir and whatever it holds for an existing one;
    an explicit id that differs from the stored one is refused. ``port=0`` picks a free port.
    ``accounts`` is the number of dev accounts created at genesis (ignored afterwards).
    ``filter_timeout``: seconds after which a filter nobody polls is dropped (geth's 5 minutes).
    """

    data_dir: Path = field(default_factory=default_data_dir)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    chain_id: int | None = None
    accounts: int = 10
    filter_timeout: float = FILTER_TIMEOUT_S


@dataclass(frozen=True)
class NodeStatus:
    """A running node: ``block_number`` is None when it did not answer in time."""

    pid: int
    url: str
    chain_id: int
    block_number: int | None
    data_dir: Path


def prepare_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` if needed and make sure the node can write there (NodeError if not),
    so that a bad ``--data-dir`` is one sentence before anything starts, never a traceback."""
    advice = "pass a --data-dir you can write to"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NodeError(f"the data dir {data_dir} is a file, not a directory; {advice}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NodeError(f"cannot create the data dir {data_dir} ({reason}); {advice}") from None
    probe = data_dir / f".write-test-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NodeError(f"cannot write in the data dir {data_dir} ({reason}); {advice}") from None


# --- the lock -------------------------------------------------------------------------------


def _try_lock(path: Path) -> IO[str] | None:
    """The lock file, exclusively locked, or None if another process holds it."""
    handle = open(path, "a+")  # noqa: SIM115 - held open for the node's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _lock_holder(data_dir: Path) -> int | None:
    """The pid of the node running on ``data_dir``, or None if none runs."""
    path = data_dir / LOCK_FILE
    if not path.exists():
        return None
    handle = _try_lock(path)
    if handle is not None:
        handle.close()  # nobody held it: no node
        return None
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


# --- in-process node ------------------------------------------------------------------------


class Node:
    """The node in this process: ``start()`` serves in a background thread, ``close()`` stops.

    Usable as a context manager. :func:`serve` and the command line wrap it.
    """

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.data_dir = Path(config.data_dir).resolve()
        self.chain: DevChain | None = None
        self._server: RpcHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock: IO[str] | None = None
        self.url = ""
        self.start_block = 0

    def start(self) -> str:
        """Bind, open (or create) the chain, serve; return the URL. Raises NodeError."""
        config = self.config
        if not 0 <= config.port <= 65535:
            raise NodeError(f"port {config.port} is not a TCP port; pass --port 0..65535")
        if config.chain_id is not None and not 0 < config.chain_id < 2**63:
            raise NodeError(f"chain id {config.chain_id} is not a positive 63-bit integer")
        if config.accounts < 0:
            raise NodeError(f"cannot create {config.accounts} dev accounts")
        # Bind first: a busy port should not create or lock a data dir.
        self._server = bind(config.host, config.port)
        try:
            prepare_data_dir(self.data_dir)
            self._lock = self._acquire_lock()
            chain, keystores = DevChain.open(
                self.data_dir,
                config.chain_id,
                config.accounts,
                dev_password(),
                filter_timeout=config.filter_timeout,
            )
            self.chain = chain
            write_keystore(self.data_dir, keystores)
            self._server.dispatcher = Dispatcher(chain)
            self.url = self._server.url
            self.start_block = int(chain.head().block_number)
            self._write_status()  # before serving: whoever gets an answer finds node.json
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="databright-node",
                daemon=True,
            )
            self._thread.start()
        except BaseException:
            self.close()
            raise
        return self.url

    def _acquire_lock(self) -> IO[str]:
        path = self.data_dir / LOCK_FILE
        deadline = time.monotonic() + 0.5  # status() probes the lock for an instant
        while True:
            handle = _try_lock(path)
            if handle is not None:
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                return handle
            if time.monotonic() > deadline:
                holder = _lock_holder(self.data_dir)
                who = f" (pid {holder})" if holder else ""
                raise NodeError(
                    f"data dir {self.data_dir} is in use by another node{who}; stop it first"
                )
            time.sleep(0.05)

    def _write_status(self) -> None:
        assert self.chain is not None
        info = {
            "pid": os.getpid(),
            "url": self.url,
            "chain_id": self.chain.chain_id,
            "data_dir": str(self.data_dir),
            "started_at": int(time.time()),
        }
        target = self.data_dir / STATUS_FILE
        atomic_write(target, json.dumps(info, indent=2) + "\n")

    def close(self) -> None:
        """Stop serving, flush the store, remove node.json, release the data dir."""
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(timeout=10)
            self._server.server_close()
            dispatcher = self._server.dispatcher
            self._server = None
            if dispatcher is not None:
                with dispatcher.lock:  # let an in-flight request finish first
                    # Keep-alive connections outlive the listener; answer them plainly.
                    dispatcher.broken = "the node is shutting down"
        if self.chain is not None:
            self.chain.close()
            self.chain = None
        if self._lock is not None:
            with contextlib.suppress(FileNotFoundError):
                status_file = self.data_dir / STATUS_FILE
                if _read_status_file(self.data_dir).get("pid") == os.getpid():
                    status_file.unlink()
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(config: NodeConfig, *, announce: IO[str] | None = None) -> None:
    """Run the node in the foreground until SIGTERM or SIGINT; raises NodeError on startup."""
    stop_event = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # Installed before starting, so a signal during startup also ends in a clean close.
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop_event.set())
    node = Node(config)
    try:
        node.start()
        out = announce if announce is not None else sys.stdout
        assert node.chain is not None
        password_hint = (
            "password from $DATABRIGHT_PASSWORD"
            if get_settings().password_set
            else f"password {DEV_PASSWORD!r}"
        )
        with contextlib.suppress(OSError):  # nobody listening is no reason to stop
            print(
                f"DataBright node: chain id {node.chain.chain_id}, block {node.start_block}, "
                f"listening on {node.url}\ndata dir {node.data_dir}; dev account keystores in "
                f"{node.data_dir / KEYSTORE_DIR} ({password_hint})",
                file=out,
                flush=True,
            )
        while not stop_event.wait(0.5):
            pass
    finally:
        node.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- detached node --------------------------------------------------------------------------


def _read_status_file(data_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((data_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _rpc(url: str, requests: list[dict[str, Any]], timeout: float) -> list[Any]:
    body = json.dumps(requests).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answers = json.loads(response.read())
    by_id = {a.get("id"): a for a in answers}
    return [by_id.get(r["id"], {}).get("result") for r in requests]


def status(data_dir: Path | str, timeout: float = 2.0) -> NodeStatus | None:
    """The node running on ``data_dir``, or None (a stale node.json is removed)."""
    data_dir = Path(data_dir).resolve()
    pid = _lock_holder(data_dir)
    info = _read_status_file(data_dir)
    if pid is None:
        if info:
            with contextlib.suppress(OSError):
                (data_dir / STATUS_FILE).unlink()
        return None
    if not info or info.get("pid") != pid:
        return None  # starting up: locked, not listening yet
    url = str(info["url"])
    chain_id = int(info["chain_id"])
    block_number: int | None = None
    try:
        answers = _rpc(
            url,
            [
                {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
                {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId", "params": []},
            ],
            timeout,
        )
        block_number = int(answers[0], 16)
        chain_id = int(answers[1], 16)
    except (OSError, ValueError, TypeError, KeyError):
        pass
    return NodeStatus(
        pid=pid, url=url, chain_id=chain_id, block_number=block_number, data_dir=data_dir
    )


def _node_command(config: NodeConfig, data_dir: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "databright.node",
        "--data-dir",
        str(data_dir),
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--accounts",
        str(config.accounts),
    ]
    if config.chain_id is not None:
        command += ["--chain-id", str(config.chain_id)]
    return command


def start_background(config: NodeConfig, timeout: float = 30.0) -> NodeStatus:
    """Spawn ``python -m databright.node`` detached and wait until it answers RPC.

    Its output goes to ``<data-dir>/node.log``. Raises NodeError if a node already runs on the
    data dir, if the new one exits (with its last output line), or if it does not answer in time.
    """
    data_dir = Path(config.data_dir).resolve()
    running = status(data_dir)
    if running is not None:
        raise NodeError(
            f"a node already runs on {data_dir} (pid {running.pid}, {running.url}); stop it first"
        )
    prepare_data_dir(data_dir)
    process = launch(
        _node_command(config, data_dir),
        name="the node",
        log=data_dir / LOG_FILE,
        env={"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
        detach=True,  # survives the terminal that started it
    )

    def serving() -> NodeStatus | None:
        # This very process, listening and answering: not a node that ran here before.
        current = status(data_dir, timeout=1.0)
        if current is not None and current.pid == process.pid and current.block_number is not None:
            return current
        return None

    return process.wait_ready(serving, timeout)


def stop(data_dir: Path | str, timeout: float = 15.0) -> bool:
    """Stop the node running on ``data_dir`` (SIGTERM, then SIGKILL); False if none ran."""
    data_dir = Path(data_dir).resolve()
    pid = _lock_holder(data_dir)
    if pid is None:
        status(data_dir)  # clears a stale node.json
        return False
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _lock_holder(data_dir) is None:
                _reap(pid)
                status(data_dir)
                return True
            _reap(pid)
            time.sleep(0.05)
    raise NodeError(f"the node (pid {pid}) on {data_dir} did not stop; kill it by hand")


def _reap(pid: int) -> None:
    """Collect our own child's exit status, so a node we spawned does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def run_from_command_line(config: NodeConfig) -> int:
    """``python -m databright.node``: serve, or print one line and return 1."""
    try:
        serve(config)
    except DataBrightError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the handlers were installed
        return 130
    return 0
