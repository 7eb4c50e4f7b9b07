"""Spread per-row hashing over CPU cores with ``fork``.

Hashing is the one part of ingestion that is neither I/O nor vectorisable: one ``sha256`` and
two ``keccak256`` calls per example, each holding the GIL. For a large proposal the rows are
split into contiguous ranges and the ranges after the first are hashed in forked children,
which see the parent's arrays without copying them and send back only the digests through a
pipe. The children run nothing but the hash loop (numpy, hashlib, the keccak module) and leave
with ``os._exit``; any failure there (or no ``fork`` on this platform) just means the parent
hashes that range itself, so the result never depends on whether it ran in parallel.

``DATABRIGHT_HASH_WORKERS`` sets the number of processes (``1`` turns this off); by default it
is the number of idle CPUs this process may use (by the 1-minute load average), at most 8.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Final

from databright.settings import get_settings

__all__ = ["hash_workers", "map_ranges"]

#: Below this many rows forking costs more than it saves.
MIN_PARALLEL_ROWS: Final = 50_000
_MAX_WORKERS: Final = 8


def hash_workers() -> int:
    """How many processes hash a large proposal (1 where ``fork`` is unavailable or unsafe)."""
    setting = get_settings().hash_workers
    if setting is not None:
        return setting
    # fork is only dependable on Linux (macOS system frameworks do not survive it).
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    # Only use cores that are idle: on a busy machine a forked helper competes with the other
    # work and the parent ends up waiting for it (measured slower than hashing alone). The
    # load average counts this process too, hence the + 1.
    try:
        idle = cpus - os.getloadavg()[0] + 1
    except OSError:
        idle = cpus
    return max(1, min(cpus, _MAX_WORKERS, int(idle + 0.5)))


def _child(fn: Callable[[int, int], bytes], start: int, stop: int, fd: int) -> None:
    status = 1
    try:
        out = fn(start, stop)
        view = memoryview(out)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        status = 0
    finally:
        os._exit(status)


def map_ranges(
    n: int, width: int, fn: Callable[[int, int], bytes], *, min_rows: int = MIN_PARALLEL_ROWS
) -> bytes:
    """``fn(start, stop)`` over ``[0, n)`` in contiguous ranges, results concatenated in order.

    ``fn`` must return exactly ``width`` bytes per row of its range and depend only on data that
    existed before the call (children see a snapshot of the parent's memory).
    """
    if n < min_rows:  # before asking the settings: building them costs more than small work
        return fn(0, n)
    workers = min(hash_workers(), max(1, n // max(1, min_rows // 2)))
    if workers <= 1:
        return fn(0, n)
    bounds = [n * k // workers for k in range(workers + 1)]
    pending: list[tuple[int, int, int, int]] = []  # (pid, read fd, start, stop)
    try:
        for k in range(1, workers):
            start, stop = bounds[k], bounds[k + 1]
            read_fd, write_fd = os.pipe()
            try:
                with warnings.catch_warnings():
                    # Python >= 3.12 warns about fork in threaded programs; the child only hashes.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pid = os.fork()
            except OSError:
                os.close(read_fd)
                os.close(write_fd)
                break
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                os.close(read_fd)
                _child(fn, start, stop, write_fd)
            os.close(write_fd)
            pending.append((pid, read_fd, start, stop))
        covered = pending[0][2] if pending else n
        parts = [fn(0, covered)]
        while pending:
            pid, read_fd, start, stop = pending[0]
            with os.fdopen(read_fd, "rb") as pipe:
                data = pipe.read()
            _, status = os.waitpid(pid, 0)
            pending.pop(0)
            if status != 0 or len(data) != (stop - start) * width:
                data = fn(start, stop)  # the child failed: do its share here
            parts.append(data)
            covered = stop
        if covered < n:  # fewer children than planned (a fork failed)
            parts.append(fn(covered, n))
        return b"".join(parts)
    finally:
        for pid, read_fd, _, _ in pending:  # only after an exception: stop and reap the rest
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.close(read_fd)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
