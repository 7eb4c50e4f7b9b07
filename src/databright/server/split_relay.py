"""The split-training relay over HTTP: stage workers pull their messages and post their replies.

``POST /compute/v1/attestation``, ``POST /compute/v1/split-next`` and ``POST
/compute/v1/split-reply`` carry the signed envelope in the ``X-DataBright-*`` headers and the raw
body as it was signed, like the coordinator's routes (:mod:`databright.server.coordinator`), so
:class:`~databright.compute.split_relay.RelayedStageWorker` speaks through the same
:func:`~databright.compute.transport.http_transport`. Every route goes to
:meth:`SplitRelay.handle`: ``attestation`` answers a worker's challenge with the coordinator's
evidence and signature (what the worker checks before it pulls anything), ``split-next`` waits up
to its ``poll_s`` for a message (a long poll, run in the thread pool); an empty reply is ``204 No
Content``. Errors are problem documents with one sentence (a reply from the wrong worker 403, a
replayed envelope 409, a malformed body 400, an unknown route or a relay without attestation
404, a body over the limit 413).

A separate app rather than routes on the coordinator's: a split job is driven by the process that
runs :class:`~databright.compute.splitting.SplitTraining`, which serves this app beside it.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import FastAPI, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from databright import __version__
from databright.compute.protocol import Envelope
from databright.compute.split_relay import RELAY_ROUTES, SplitRelay
from databright.errors import NotFound
from databright.server.api.problems import install_problem_handlers
from databright.server.limits import BodyLimit

__all__ = ["MAX_RELAY_BODY_BYTES", "split_relay_app"]

#: The largest message: a stage's weights at load time are the largest a worker sends back.
MAX_RELAY_BODY_BYTES: Final = 64 * 1024 * 1024


def split_relay_app(relay: SplitRelay, *, max_body_bytes: int = MAX_RELAY_BODY_BYTES) -> FastAPI:
    """The HTTP face of ``relay``."""
    app = FastAPI(title="DataBright split-training relay", version=__version__)
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.post("/compute/v1/{route}")
    async def message(route: Annotated[str, Path(max_length=32)], request: Request) -> Response:
        if route not in RELAY_ROUTES:
            raise NotFound(f"there is no route {route!r}; use one of {', '.join(RELAY_ROUTES)}.")
        envelope = Envelope.from_headers(request.headers)
        body = await request.body()
        reply = await run_in_threadpool(relay.handle, route, envelope, body)
        if not reply:
            return Response(status_code=204)
        return Response(reply, media_type="application/octet-stream")

    return app
