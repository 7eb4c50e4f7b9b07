"""The platform server's index: chain events in SQL (SQLite by default, PostgreSQL at scale).

:func:`open_index` opens a database and applies the Alembic migrations; :class:`Indexer`
fills it from the chain, idempotent, resumable after a kill and safe across reorgs, with the
model market's registry (:class:`IndexedModel`), the compute market's devices, jobs and paid
units (:class:`IndexedDevice`, :class:`IndexedJob`, :class:`IndexedUnitPayment`) and the weight
sales (:class:`IndexedSale`) kept beside the events.
"""

from databright.server.index.database import open_index
from databright.server.index.indexer import DEFAULT_BATCH, Indexer, SyncStep
from databright.server.index.schema import (
    IndexedBlock,
    IndexedDevice,
    IndexedEvent,
    IndexedJob,
    IndexedModel,
    IndexedSale,
    IndexedUnitPayment,
    IndexState,
)

__all__ = [
    "DEFAULT_BATCH",
    "IndexState",
    "IndexedBlock",
    "IndexedDevice",
    "IndexedEvent",
    "IndexedJob",
    "IndexedModel",
    "IndexedSale",
    "IndexedUnitPayment",
    "Indexer",
    "SyncStep",
    "open_index",
]
