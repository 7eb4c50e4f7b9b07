"""Real HTTP servers for tests: an ASGI app served by uvicorn on a socket bound to a free port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from databright.server.threaded import serving_in_thread


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a port the OS picked) in a thread; yields its base URL."""
    with serving_in_thread(app) as url:
        yield url
