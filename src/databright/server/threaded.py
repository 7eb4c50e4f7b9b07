"""An ASGI app served by uvicorn from a thread of the calling process, while a block runs.

For a process whose main thread has other work while it serves: ``databright split serve``
trains while its relay answers the workers; the tests and benchmarks serve apps beside the
clients they drive. The socket is bound here, before uvicorn starts (port 0: one the OS picks,
free), so a taken port is one sentence, not a thread that died; and as ``IPPROTO_TCP``, or
asyncio does not set TCP_NODELAY on the connections it accepts and every response waits
~40 ms for a delayed ACK.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from databright.errors import NodeError

__all__ = ["serving_in_thread"]


@contextmanager
def serving_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, start_s: float = 30.0
) -> Iterator[str]:
    """Serve ``app`` on ``host:port`` from a daemon thread while the block runs; yields the
    base URL once the server accepts connections, and stops it on the way out. uvicorn leaves
    signals alone outside the main thread: Ctrl-C stays the caller's."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise NodeError(
            f"{host}:{port} cannot be listened on ({exc.strerror}); pick another --port, or "
            "stop what listens there"
        ) from None
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise NodeError(f"the server on {host}:{port} did not start; see its log")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
