"""Files that are either wholly there or not at all: temp file, fsync, rename, directory fsync.

Every file DataBright writes for itself (keystores, deployment records, the node's status, blobs)
goes through here, so that a crash or a ``kill -9`` at any moment leaves the old file or the new
one, never half of one, and an aborted write leaves no temp file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "fsync_dir", "publish", "staged_file"]


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable: it is only on disk once the directory entry is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_file(directory: Path, prefix: str = ".tmp-") -> Iterator[tuple[Path, BinaryIO]]:
    """A temp file in ``directory`` (same filesystem as its target), removed unless published.

    Yields ``(path, file)``; the caller writes, then calls :func:`publish` with the path.
    """
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield tmp, f
    finally:
        # A published temp file was renamed away; anything left is an aborted write.
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def publish(tmp: Path, target: Path) -> None:
    """Rename a written, fsynced temp file onto ``target`` and make the rename durable."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def atomic_write(target: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace ``target`` with ``data`` atomically and durably; ``mode`` sets its permissions.

    Permissions are set before the rename, so a secret is never readable by others even for
    a moment.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    with staged_file(target.parent) as (tmp, f):
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        publish(tmp, target)
