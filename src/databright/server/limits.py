"""A bound on request bodies, checked before a body is read."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp

from databright.server.api.problems import problem

__all__ = ["BodyLimit"]


class BodyLimit(BaseHTTPMiddleware):
    """Refuses a body over ``max_bytes`` (413) and one of unknown size (411): a chunked body
    could not be bounded before it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return problem(
                413, "Request too large", f"request bodies are limited to {self.max_bytes} bytes"
            )
        if length is None and "chunked" in request.headers.get("transfer-encoding", "").lower():
            return problem(411, "Length required", "send the body with a Content-Length header")
        return await call_next(request)
