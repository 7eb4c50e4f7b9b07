"""A blob store as a read-only IPFS trustless gateway.

``GET /ipfs/{cid}?format=raw`` answers the block a CID names; ``?format=car`` answers a CARv1
holding every block of the DAG under it (for a blob up to 256 KiB, its one raw block). The
``Accept`` header (``application/vnd.ipld.raw`` or ``application/vnd.ipld.car``) works as
well, as the trustless gateway specification asks. Nothing else is served: no listing, no
deserialised files, no writes. A client verifies every byte against the CID it asked for, so
the gateway needs no trust, and it takes none: a CID is parsed before the store is touched.

Blobs are streamed from the store after it has checked them against their CID; a damaged blob
is answered 404 like a missing one, never sent.

A router may be given a ``withheld`` hook: the id of the priced dataset a CID belongs to, or
None. Such a blob is answered 403: it is served only by the platform's gatekeeper, to accounts
that paid for access (:mod:`databright.server.api.access`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Annotated, Any, BinaryIO, Final

import uvicorn
from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from multiformats import CID

from databright import __version__
from databright.errors import BlobCorrupt, BlobNotFound, DataBrightError, InvalidCID
from databright.storage.blobstore import BlobStore
from databright.storage.car import write_file_car
from databright.storage.cid import normalize_cid
from databright.storage.unixfs import blocks

__all__ = ["blob_gateway", "blob_router", "serve_blobs"]

RAW_TYPE: Final = "application/vnd.ipld.raw"
CAR_TYPE: Final = "application/vnd.ipld.car"
_CHUNK: Final = 1 << 20
# Content addresses never change what they name.
_IMMUTABLE: Final = "public, max-age=29030400, immutable"


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": status, "message": message}},
        status_code=status,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )


def _wanted(fmt: str | None, accept: str | None) -> str | None:
    """``raw``, ``car``, or None when the request asks for neither."""
    if fmt:
        return fmt if fmt in ("raw", "car") else None
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media == RAW_TYPE:
            return "raw"
        if media == CAR_TYPE:
            return "car"
    return None


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := f.read(_CHUNK):
            yield chunk
    finally:
        f.close()


def _car(store: BlobStore, cid: str) -> bytes:
    """The CAR of a stored blob: its one raw block, or every block of its UnixFS DAG (the
    file is checked against the CID before a byte is written)."""
    out = io.BytesIO()
    with store.open(cid) as f:
        write_file_car(out, cid, f)
    return out.getvalue()


def _root_block(store: BlobStore, cid: str) -> bytes:
    """The root block of a stored UnixFS DAG (``blocks`` yields it first)."""
    return next(block for _, block in blocks(store.get(cid)))


_ERROR: Final = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
                }
            },
        }
    }
}
_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The block (raw) or the DAG (CAR); verify it against the CID.",
        "content": {RAW_TYPE: {}, CAR_TYPE: {}},
    },
    400: {"description": "Not a CID.", "content": _ERROR},
    403: {"description": "Data of a priced dataset: see its gatekeeper.", "content": _ERROR},
    404: {"description": "This store does not hold it.", "content": _ERROR},
    406: {"description": "Neither raw nor CAR was asked for.", "content": _ERROR},
    503: {"description": "Whether the blob is withheld cannot be told now.", "content": _ERROR},
}


def blob_gateway(store: BlobStore) -> FastAPI:
    """The ASGI app serving ``store`` read-only as an IPFS trustless gateway."""
    app = FastAPI(
        title="DataBright blob gateway",
        version=__version__,
        description="A participant's blob store, read-only, as an IPFS trustless gateway.",
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/", include_in_schema=False)
    def about() -> dict[str, str]:
        return {"service": "databright blob gateway", "version": __version__}

    app.include_router(blob_router(store))
    return app


def blob_router(store: BlobStore, withheld: Callable[[str], int | None] | None = None) -> APIRouter:
    """``/ipfs/{cid}`` over ``store``, to include in any app (the platform server's too).

    ``withheld(cid)``, when given, names the priced dataset a blob belongs to (None when it
    belongs to none); such a blob is refused with 403, and a hook that cannot tell (the chain
    is unreachable) makes the answer 503: a gatekeeper fails closed.
    """
    app = APIRouter(tags=["blobs"])

    @app.head("/ipfs/{cid}", include_in_schema=False)
    @app.get("/ipfs/{cid}", responses=_RESPONSES, response_class=Response)
    def ipfs(
        cid: str,
        request: Request,
        format: Annotated[str | None, Query()] = None,  # the specification's name
        accept: Annotated[str | None, Header()] = None,
    ) -> Response:
        try:
            text = normalize_cid(cid)
        except InvalidCID as exc:
            return _problem(400, str(exc))
        if withheld is not None:
            try:
                dataset_id = withheld(text)
            except DataBrightError as exc:
                return _problem(
                    503,
                    f"cannot tell now whether {text} belongs to a priced dataset ({exc}); "
                    "try again shortly",
                )
            if dataset_id is not None:
                return _problem(
                    403,
                    f"this blob belongs to priced dataset {dataset_id}: download it through "
                    f"/api/v1/datasets/{dataset_id}/data after buying access",
                )
        kind = _wanted(format, accept)
        if kind is None:
            return _problem(
                406,
                "this is a trustless gateway: ask for ?format=raw or ?format=car (or Accept: "
                f"{RAW_TYPE} / {CAR_TYPE}) and verify the bytes against the CID",
            )
        body: bytes | None = None  # None: stream the stored file
        try:
            size = store.size(text)  # BlobNotFound before anything is built
            if kind == "car":
                body = _car(store, text)
            elif CID.decode(text).codec.name != "raw":
                body = _root_block(store, text)
        except (BlobNotFound, BlobCorrupt):
            return _problem(404, f"this store does not hold {text}")
        media, filename = (RAW_TYPE, f"{text}.bin") if kind == "raw" else (CAR_TYPE, f"{text}.car")
        headers = {
            "Cache-Control": _IMMUTABLE,
            "Etag": f'"{text}.{kind}"',
            "X-Ipfs-Path": f"/ipfs/{text}",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Vary": "Accept",
        }
        content_type = media + ("; version=1" if media == CAR_TYPE else "")
        length = size if body is None else len(body)
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=200, headers=headers, media_type=content_type)
        if body is not None:
            return Response(body, headers=headers, media_type=content_type)
        try:
            f = store.open(text)
        except (BlobNotFound, BlobCorrupt):
            return _problem(404, f"this store does not hold {text}")
        return StreamingResponse(_chunks(f), headers=headers, media_type=content_type)

    return app


def serve_blobs(store: BlobStore, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve ``store`` until interrupted (``databright store serve``)."""
    uvicorn.run(blob_gateway(store), host=host, port=port, log_level="warning", access_log=False)
