"""A PostgreSQL schema of its own for a test or a benchmark, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

__all__ = ["POSTGRES_URL", "scratch_schema"]

POSTGRES_URL = os.environ.get(
    "DATABRIGHT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def scratch_schema(url: str = POSTGRES_URL, prefix: str = "t") -> Iterator[str]:
    """Create a fresh schema on the server at ``url`` and yield a URL whose connections use
    it (``search_path``); the schema and everything in it are dropped at the end. Connecting
    fails with SQLAlchemy's OperationalError where no server answers."""
    admin = sa.create_engine(url, connect_args={"connect_timeout": 3})
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as c:
            c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in url else "?"
        try:
            yield f"{url}{sep}options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as c:
                c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
