"""The federated coordinator over HTTP (``databright federation serve``).

``POST /federation/v1/{route}`` (``attestation``, ``round``, ``update``) carries the signed
envelope in the ``X-DataBright-*`` headers and the raw body as it was signed; the server hands
both, untouched, to :meth:`~databright.compute.federation.FederationCoordinator.handle`, the call
the in-process tests make, so what is verified is exactly what arrived and HTTP adds transport
and nothing else. ``attestation`` answers a client's challenge with the coordinator's evidence
and signature, which a client checks before it asks for a round. ``GET /federation/v1/status`` tells anyone where the run stands: the round, who has sent
this round, and each closed round's accuracy, dropped clients and contribution scores (what the
payouts will follow from).

Errors are problem documents (``application/problem+json``) with one sentence: a bad signature,
an unlisted client, a stale round or a changed update 403, a replayed envelope 409, a
malformed or wrongly shaped update 400, an unknown route or a coordinator without attestation
404, a body over the limit 413 before it is read.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import uvicorn
from fastapi import FastAPI, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from databright import __version__
from databright.compute.federation import FEDERATION_ROUTES, FederationCoordinator
from databright.compute.protocol import Envelope
from databright.errors import NotFound
from databright.server.api.problems import install_problem_handlers
from databright.server.limits import BodyLimit

__all__ = ["MAX_BODY_BYTES", "federation_app", "serve_federation"]

#: The largest request body: an update is one model's worth of float32 numbers.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024

_OCTETS: Final = "application/octet-stream"


def federation_app(
    coordinator: FederationCoordinator, *, max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    """The HTTP face of ``coordinator``."""
    app = FastAPI(title="DataBright federated coordinator", version=__version__)
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.post("/federation/v1/{route}")
    async def message(route: Annotated[str, Path(max_length=32)], request: Request) -> Response:
        if route not in FEDERATION_ROUTES:
            raise NotFound(
                f"there is no route {route!r}; use one of {', '.join(FEDERATION_ROUTES)}."
            )
        envelope = Envelope.from_headers(request.headers)
        body = await request.body()
        reply = await run_in_threadpool(coordinator.handle, route, envelope, body)
        return Response(reply, media_type=_OCTETS)

    @app.get("/federation/v1/status")
    def status() -> dict[str, Any]:
        return {
            "service": "databright-federation",
            "version": __version__,
            **coordinator.status(),
        }

    return app


def serve_federation(
    coordinator: FederationCoordinator, host: str = "127.0.0.1", port: int = 8200
) -> None:
    """Serve ``coordinator`` until interrupted."""
    uvicorn.run(
        federation_app(coordinator), host=host, port=port, log_level="warning", access_log=False
    )
