"""The platform's REST API: routers, schemas, reads from the index, problem documents."""

from databright.server.api.reads import IndexReader
from databright.server.api.routers import ALL

__all__ = ["ALL", "IndexReader"]
