"""A worker's HTTP transport: one sealed message, one ``POST``, the reply body back.

:class:`~databright.compute.worker.Worker` speaks through a
``Transport = (route, envelope, body) -> reply``; :func:`http_transport` is the one that talks to
``databright coordinator`` (:mod:`databright.server.coordinator`). The envelope goes in headers and
the body raw, exactly the bytes that were signed. A refusal comes back as the error class the
coordinator raised, with the coordinator's own sentence, so a worker behaves the same over HTTP as
in-process: 403 ``NotPermitted``, 409 ``DuplicateSubmission``, 400 ``InvalidArgument`` (or
``CheckpointMismatch``), 404 ``NotFound``, 413 ``InvalidArgument``, 429 ``RateLimited``; a
coordinator that does not answer is ``NodeUnreachable``. ``204`` (no unit for now) is an empty
reply, as :meth:`Coordinator.handle` gives. A request whose kept-alive connection the server
dropped unanswered is sent again once, on a new connection (never one that timed out: a long
poll against a hung coordinator is not repeated).

This module uses ``requests`` only: serving lives in ``databright.server``.
"""

from __future__ import annotations

import json
from typing import Final

import requests
from urllib3.exceptions import ProtocolError

from databright.compute.protocol import Envelope
from databright.compute.worker import Transport
from databright.errors import (
    CheckpointMismatch,
    DataBrightError,
    DuplicateSubmission,
    InvalidArgument,
    NodeUnreachable,
    NotFound,
    NotPermitted,
    RateLimited,
)

__all__ = ["PREFIX", "error_for", "http_transport"]

PREFIX: Final = "/compute/v1"

_BY_STATUS: Final[dict[int, type[DataBrightError]]] = {
    400: InvalidArgument,
    403: NotPermitted,
    404: NotFound,
    409: DuplicateSubmission,
    413: InvalidArgument,
    422: InvalidArgument,
    429: RateLimited,
}


def error_for(status: int, text: str, url: str) -> DataBrightError:
    """The error a refusal stands for, carrying the server's sentence (its problem ``detail``)."""
    detail, title = "", ""
    try:
        problem = json.loads(text)
        if isinstance(problem, dict):
            detail = str(problem.get("detail") or "")
            title = str(problem.get("title") or "")
    except ValueError:
        pass
    if not detail:
        detail = f"the coordinator at {url} answered HTTP {status}; check its log."
    if status == 400 and title == "Checkpoint mismatch":
        return CheckpointMismatch(detail)
    if status in (502, 503, 504):
        return NodeUnreachable(detail)
    return _BY_STATUS.get(status, DataBrightError)(detail)


def _dropped(exc: requests.ConnectionError) -> bool:
    """Whether an open connection was dropped (not refused: nothing listens then, and asking
    again is pointless)."""
    reason = exc.args[0] if exc.args else None
    return isinstance(reason, ProtocolError | ConnectionResetError | BrokenPipeError)


def _unreachable(exc: Exception, base: str, serves: str) -> NodeUnreachable:
    return NodeUnreachable(
        f"the coordinator at {base} does not answer ({type(exc).__name__}); check the URL and "
        f"that {serves} runs."
    )


def http_transport(
    base_url: str,
    timeout: float = 30.0,
    *,
    session: requests.Session | None = None,
    prefix: str = PREFIX,
    serves: str = "`databright coordinator`",
) -> Transport:
    """A transport to the coordinator at ``base_url``; ``timeout`` must exceed its long poll.
    ``prefix``: where its routes are (the federation coordinator's are elsewhere); ``serves``:
    the command a sentence names when nothing answers."""
    if timeout <= 0:
        raise InvalidArgument(f"timeout must be positive seconds, got {timeout!r}.")
    base = base_url.rstrip("/")
    http = session or requests.Session()
    http.trust_env = False  # the coordinator is reached directly, never through a proxy

    def send(route: str, envelope: Envelope, body: bytes) -> bytes:
        url = f"{base}{prefix}/{route}"
        headers = {"Content-Type": "application/octet-stream"}
        headers.update(envelope.to_headers())
        for attempt in range(2):
            try:
                reply = http.post(url, data=body, headers=headers, timeout=timeout)
                break
            except requests.ConnectionError as exc:
                # A kept-alive connection the server closed as the request went out (its idle
                # timeout) drops the request unanswered: sent again, once, on a new one. Were
                # it answered after all, the same envelope again is refused as a replay, which
                # every caller takes as a refusal of one message.
                if attempt == 0 and _dropped(exc):
                    continue
                raise _unreachable(exc, base, serves) from None
            except requests.RequestException as exc:
                raise _unreachable(exc, base, serves) from None
        if reply.status_code == 204:
            return b""
        if reply.status_code >= 400:
            raise error_for(reply.status_code, reply.text, base)
        return bytes(reply.content)

    return send
