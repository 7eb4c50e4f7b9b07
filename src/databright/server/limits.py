"""A bound on request bodies, checked before a body is read."""

from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp

from databright.server.api.problems import problem

__all__ = ["BodyLimit"]


class BodyLimit(BaseHTTPMiddleware):
    """Refuses a body over ``max_bytes`` (413) and one of unknown size (411): a chunked body
    could not be bounded before it is read.

    ``larger`` maps path patterns (regular expressions matched against the whole path) to a
    limit of their own, for the few routes whose bodies are files (a proposal's upload); the
    first pattern that matches wins."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes
        self.larger = [(re.compile(p), limit) for p, limit in (larger or {}).items()]

    def limit_for(self, path: str) -> int:
        return next((n for p, n in self.larger if p.fullmatch(path)), self.max_bytes)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        limit = self.limit_for(request.url.path)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return problem(413, "Request too large", f"request bodies are limited to {limit} bytes")
        if length is None and "chunked" in request.headers.get("transfer-encoding", "").lower():
            return problem(411, "Length required", "send the body with a Content-Length header")
        return await call_next(request)
