"""The platform server: the index kept up to date in the background, the REST API over it,
and the blob gateway, in one process.

:class:`Platform` owns the pieces (database engine, indexer thread, a read-only market client
for what must be read live from the chain, the blob store); :func:`create_app` builds the
FastAPI app over it. While the node does not answer, the indexer waits and retries, and every
answer read from the index says it is stale.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from databright import __version__
from databright.chain.deploy import load_deployment
from databright.chain.gateway import connect
from databright.errors import ChainError, DataBrightError
from databright.market.market import Market
from databright.server.api import access as access_routes
from databright.server.api import auth, routers, uploads
from databright.server.api import compute as compute_routes
from databright.server.api import models as model_routes
from databright.server.api.forum import Forum
from databright.server.api.page_cache import PageCache
from databright.server.api.problems import install_problem_handlers
from databright.server.api.reads import IndexReader
from databright.server.api.schemas import IndexStatus
from databright.server.background import holding_server_lock
from databright.server.gateway import blob_router
from databright.server.index import Indexer, IndexState, open_index
from databright.server.limits import BodyLimit
from databright.server.ui import install_ui

__all__ = [
    "FOLLOW_MIN_S",
    "FOLLOW_S",
    "MAX_BODY_BYTES",
    "Platform",
    "create_app",
    "follow_pause",
    "serve_platform",
]

log = logging.getLogger("databright.server")

#: The largest request body accepted (the API's bodies are small JSON documents).
MAX_BODY_BYTES = 64 * 1024
#: The longest the indexer waits, caught up, while the chain was moving a moment ago, and the
#: shortest (see :func:`follow_pause`).
FOLLOW_S = 0.05
FOLLOW_MIN_S = 0.001


def follow_pause(found_blocks: bool, since_block_s: float, poll_s: float) -> float:
    """How long the indexer waits, caught up, before its next step: none after a step that
    found new blocks (a chain mining hundreds a second, as anvil does, has more by then: a
    pause would let them pile up); while the chain moved less than ``poll_s`` ago, half as
    long as it has been since it last did (at least ``FOLLOW_MIN_S``, at most ``FOLLOW_S``),
    so a chain mining every few milliseconds is looked at again within one (a fixed
    ``FOLLOW_S`` let 20 of anvil's blocks pile up each time the indexer caught up) and one
    that stopped is asked less and less often; else ``poll_s`` (a quiet chain is not asked
    twenty times a second)."""
    if found_blocks:
        return 0.0
    if since_block_s >= poll_s:
        return poll_s
    return min(FOLLOW_S, poll_s, max(FOLLOW_MIN_S, since_block_s / 2))


class Platform:
    """Everything the server serves, for the market recorded in ``data_dir`` on ``rpc_url``."""

    def __init__(
        self,
        rpc_url: str,
        data_dir: Path,
        database_url: str | None = None,
        sources: Sequence[str] = (),
        poll_s: float = 0.5,
    ) -> None:
        self.market = Market.connect(rpc_url, None, data_dir, sources=sources)
        url = database_url or f"sqlite:///{Path(data_dir).resolve() / 'index.sqlite3'}"
        self.engine = open_index(url)
        deployment = load_deployment(Path(data_dir), self.market.gateway.chain_id)
        self.indexer = Indexer(
            connect(rpc_url),
            self.market.contract.address,
            self.engine,
            model_market=deployment.addresses.get("ModelMarket"),
            compute_market=deployment.addresses.get("ComputeMarket"),
            weight_sale=deployment.addresses.get("WeightSale"),
            data_access=deployment.addresses.get("DataAccess"),
        )
        self.reader = IndexReader(self.engine)
        self.page_cache = PageCache()
        self.forum = Forum(self.engine, self.market)
        self.poll_s = poll_s
        self.node_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the indexer in the background ------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._index, name="indexer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.engine.dispose()

    def _index(self) -> None:
        last_block = float("-inf")  # when a step last found new blocks
        while not self._stop.is_set():
            moving = False
            try:
                steps = self.indexer.sync(max_steps=5)
                self.node_error = None
                caught_up = steps[-1].lag == 0
                moving = any(step.to_block >= step.from_block for step in steps)
            except ChainError as exc:
                self.node_error = str(exc)
                caught_up = True
            except DataBrightError as exc:  # the database: keep trying, say why in the status
                self.node_error = str(exc)
                caught_up = True
            except Exception:  # never let the thread die silently: log, wait, retry
                log.exception("the indexer failed; retrying")
                caught_up = True
            now = time.monotonic()
            if moving:
                last_block = now
            if caught_up:
                self._stop.wait(follow_pause(moving, now - last_block, self.poll_s))

    def known_status(self) -> tuple[tuple[int, str | None], IndexStatus] | None:
        """The index's version and freshness as this process's indexer last left them, read
        from memory (None while it does not know): a request for a page already kept under
        that version needs no query at all."""
        known = self.indexer.known_version()
        if known is None:
            return None
        indexed, block_hash, head = known
        return (indexed, block_hash), self._status(indexed, head)

    def status(self, state: IndexState | None = None) -> IndexStatus:
        """How fresh the index is; ``state``: where indexing stands, as a request's own
        snapshot read it (None: read it now)."""
        state = self.indexer.state() if state is None else state
        return self._status(state.indexed_block, state.head_block)

    def _status(self, indexed: int, head: int) -> IndexStatus:
        # The indexer's chain and market are the index's own (it refuses an index of others).
        return IndexStatus(
            chain_id=self.indexer.chain_id,
            market=self.indexer.market,
            indexed_block=indexed,
            head_block=head,
            lag=max(0, head - indexed),
            stale=self.node_error is not None,
            node_error=self.node_error,
        )


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Everything alive once the server starts (the imported modules, the platform) lives as
    # long as the server: out of the collector's generations with it. A full collection over
    # them took 90-110 ms here, a pause every request in flight then waited out (the API
    # benchmark's p99).
    gc.collect()
    gc.freeze()
    yield


def create_app(platform: Platform) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="DataBright platform API",
        version=__version__,
        description=(
            "Datasets, proposals, shareholders and account histories of a DataBright market. "
            "Lists come from the server's index of chain events (each page says how fresh it "
            "is); what must be exact at this moment (a proposal's live state, claimable "
            "dividends) is read from the chain and marked so. Blobs are served at /ipfs/{cid} "
            "as an IPFS trustless gateway."
        ),
    )
    app.state.platform = platform
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, larger=uploads.BODY_LIMITS)
    install_problem_handlers(app)
    for router in (
        *routers.ALL,
        *model_routes.ALL,
        *auth.ALL,
        *uploads.ALL,
        *compute_routes.ALL,
        *access_routes.ALL,
    ):
        app.include_router(router, prefix="/api/v1")
    # Priced datasets' data is served by the gatekeeper only, never by the public gateway.
    gatekeeper = access_routes.gatekeeper(platform)
    app.include_router(blob_router(platform.market.store, withheld=gatekeeper.withheld))
    install_ui(app)

    @app.get("/", include_in_schema=False)
    def about() -> JSONResponse:
        return JSONResponse({"service": "databright platform", "docs": "/docs", "ui": "/ui/"})

    return app


def serve_platform(
    platform: Platform, data_dir: Path, host: str = "127.0.0.1", port: int = 8000
) -> None:
    """Index and serve until interrupted or sent SIGTERM (``databright server``), holding the
    data dir's server lock (one server per data dir; ``databright down`` finds it)."""
    with holding_server_lock(data_dir, f"http://{host}:{port}"):
        platform.start()
        try:
            uvicorn.run(create_app(platform), host=host, port=port, log_level="warning")
        finally:
            platform.stop()
