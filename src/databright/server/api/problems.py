"""Errors as ``application/problem+json`` (RFC 9457): one clear sentence, never a stack trace."""

from __future__ import annotations

import logging
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from databright.errors import (
    ChainError,
    ChainIndexError,
    DataBrightError,
    DuplicateSubmission,
    InvalidArgument,
    InvalidReceipt,
    NodeUnreachable,
    NotFound,
    NotPermitted,
    RateLimited,
)

__all__ = ["PROBLEM_TYPE", "install_problem_handlers", "problem"]

PROBLEM_TYPE: Final = "application/problem+json"
log = logging.getLogger("databright.server")

_STATUS: Final[tuple[tuple[type[BaseException], int, str], ...]] = (
    (RateLimited, 429, "Too many requests"),
    (DuplicateSubmission, 409, "Already submitted"),
    (NotFound, 404, "Not found"),
    (InvalidReceipt, 402, "Payment required"),
    (InvalidArgument, 400, "Bad request"),
    (NotPermitted, 403, "Forbidden"),
    (NodeUnreachable, 503, "Node unreachable"),
    (ChainIndexError, 503, "Index unavailable"),
    (ChainError, 502, "Chain error"),
    (DataBrightError, 400, "Bad request"),
)


def problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM_TYPE,
        headers={"X-Content-Type-Options": "nosniff"},
    )


def _first_error(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "the request is malformed"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    return f"{where or 'the request'}: {first.get('msg', 'is not valid')}"


def _answer(request: Request, status: int, title: str, detail: str) -> Response:
    """A problem document; for the web UI's pages (``app.state.problem_page``), a page."""
    page = getattr(request.app.state, "problem_page", None)
    if page is not None and request.url.path.startswith("/ui/"):
        answer: Response = page(request, status, title, detail)
        return answer
    return problem(status, title, detail)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the API can raise becomes a problem document with a fitting status."""

    @app.exception_handler(DataBrightError)
    async def _ours(request: Request, exc: DataBrightError) -> Response:
        status, title = next((s, t) for cls, s, t in _STATUS if isinstance(exc, cls))
        return _answer(request, status, title, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _answer(request, 422, "Invalid request", _first_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "the request cannot be served"
        return _answer(request, exc.status_code, detail, detail)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected %s while serving a request", type(exc).__name__, exc_info=exc)
        return _answer(
            request, 500, "Internal error", "the server failed on this request; it was logged"
        )
