"""The coordinator of the computation market over HTTP (``databright coordinator``).

``POST /compute/v1/{route}`` (``attestation``, ``register``, ``next``, ``result``) carries the signed envelope in
the ``X-DataBright-*`` headers and the raw body (a framed message, safetensors inside) as it was
signed: the server does not parse or re-encode it before the signature is checked, so what is
verified is exactly what arrived. Every route goes through the same
:class:`~databright.compute.coordinator.Coordinator` calls the in-process tests use, so HTTP adds
transport and nothing else.

``next`` is a long poll: when there is no unit for the worker yet, the server asks again for up to
``poll_s`` seconds before it answers ``204 No Content``; workers therefore learn of new work within
a few milliseconds without polling hard. The envelope is verified (and its nonce spent) once, at
the start of the poll.

Errors are problem documents (``application/problem+json``) with one sentence: a bad signature or
a unit the worker may not have 403, a replayed envelope 409, a malformed message 400 (a result for
another checkpoint is 400 with the title ``Checkpoint mismatch``), an unknown route or job 404, and
a body over the limit 413 before it is read, a worker over its request quota 429, and an
attestation asked of a coordinator that has none 404. ``GET /compute/v1/jobs/{id}`` tells anyone
where a job stands (its units, cheaters and the exposure per worker included), and
``GET /compute/v1/jobs/{id}/checkpoint`` gives the weights of its current agreed checkpoint
(safetensors; units pass the optimizer state on as well: ``Coordinator.training_checkpoint``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Annotated, Any, Final

import uvicorn
from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from databright import __version__
from databright.compute.coordinator import ROUTES, Coordinator
from databright.compute.protocol import Envelope
from databright.errors import CheckpointMismatch, InvalidArgument, NotFound
from databright.server.api.problems import install_problem_handlers, problem
from databright.server.limits import BodyLimit

__all__ = [
    "CHECKPOINT_MISMATCH_TITLE",
    "MAX_BODY_BYTES",
    "MAX_POLL_INTERVAL_S",
    "POLL_INTERVAL_S",
    "coordinator_app",
    "serve_coordinator",
]

#: The largest request body: a result carries a whole checkpoint, so room for large models.
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
#: How often a long poll asks the coordinator again while it waits for a unit.
POLL_INTERVAL_S: Final = 0.02
#: The longest pause between two asks of one long poll (it backs off from POLL_INTERVAL_S).
MAX_POLL_INTERVAL_S: Final = 0.25
#: The title of a 400 that is a CheckpointMismatch (the transport maps it back to that class).
CHECKPOINT_MISMATCH_TITLE: Final = "Checkpoint mismatch"

_OCTETS: Final = "application/octet-stream"


def coordinator_app(
    coordinator: Coordinator,
    *,
    poll_s: float = 10.0,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The HTTP face of ``coordinator``; ``poll_s`` bounds how long ``next`` waits for work."""
    if not 0 <= poll_s <= 60:
        raise InvalidArgument(f"poll_s must be 0..60 seconds, got {poll_s!r}.")
    app = FastAPI(title="DataBright compute coordinator", version=__version__)
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(CheckpointMismatch)
    async def _mismatch(_request: Request, exc: CheckpointMismatch) -> JSONResponse:
        return problem(400, CHECKPOINT_MISMATCH_TITLE, str(exc))

    def next_for(envelope: Envelope, body: bytes) -> bytes | None:
        """Authenticate once, then ask for the worker's unit; None while there is none."""
        payload = coordinator.ask(envelope, body)[1]
        return None if payload is None else payload.to_body()

    @app.post("/compute/v1/{route}")
    async def message(route: Annotated[str, Path(max_length=32)], request: Request) -> Response:
        if route not in ROUTES:
            raise NotFound(f"there is no route {route!r}; use one of {', '.join(ROUTES)}.")
        envelope = Envelope.from_headers(request.headers)
        body = await request.body()
        if route != "next":
            reply = await run_in_threadpool(coordinator.handle, route, envelope, body)
            return Response(reply, media_type=_OCTETS)
        answer = await run_in_threadpool(next_for, envelope, body)
        sender = envelope.sender  # verified by next_for: a later ask needs no new signature
        deadline = time.monotonic() + poll_s
        interval = POLL_INTERVAL_S
        while answer is None and time.monotonic() < deadline:
            if await request.is_disconnected():
                return Response(status_code=204)
            await asyncio.sleep(interval)
            # back off while nothing comes: many idle workers must not keep the state busy
            interval = min(interval * 1.5, MAX_POLL_INTERVAL_S)
            payload = await run_in_threadpool(coordinator.next_unit, sender)
            answer = None if payload is None else payload.to_body()
        if answer is None:
            return Response(status_code=204)
        return Response(answer, media_type=_OCTETS)

    @app.get("/compute/v1/jobs/{job_id}")
    def job(job_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
        return dataclasses.asdict(coordinator.job_status(job_id))

    @app.get("/compute/v1/jobs/{job_id}/checkpoint")
    def checkpoint(job_id: Annotated[int, Path(ge=1)]) -> Response:
        return Response(coordinator.checkpoint(job_id), media_type=_OCTETS)

    @app.get("/compute/v1/status")
    def status() -> dict[str, Any]:
        return {"service": "databright-coordinator", "version": __version__}

    return app


def serve_coordinator(
    coordinator: Coordinator,
    host: str = "127.0.0.1",
    port: int = 8100,
    *,
    poll_s: float = 10.0,
) -> None:
    """Serve ``coordinator`` until interrupted (``databright coordinator``)."""
    uvicorn.run(
        coordinator_app(coordinator, poll_s=poll_s),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )
