"""HTTP transport for the JSON-RPC dispatcher, on the standard library's ``ThreadingHTTPServer``.

Why the standard library: the EVM is single-threaded and every request takes one lock, so an
asynchronous server would buy nothing, and ``http.server`` adds no dependency. What matters for
throughput is HTTP/1.1 keep-alive (web3's ``HTTPProvider`` reuses its connection) and
``TCP_NODELAY`` with one write per response: without them each request waits ~40 ms for a
delayed ACK and throughput collapses to ~25 requests/s.

Browser wallets and dapps need CORS: every response carries ``Access-Control-Allow-Origin: *``
and ``OPTIONS`` preflights are answered. The node holds no keys, so a web page can at worst send
already-signed transactions. To keep DNS-rebinding pages from reaching it anyway, requests whose
``Host`` is not the address the node listens on (or localhost) are refused, as geth's
``--http.vhosts`` does; listening on 0.0.0.0 accepts any host.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from databright.errors import NodeError

from .rpc import Dispatcher

__all__ = ["MAX_BODY_BYTES", "RpcHTTPServer", "bind"]

MAX_BODY_BYTES = 16 * 1024 * 1024

log = logging.getLogger(__name__)

_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Max-Age": "86400",
}
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class RpcHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    allow_reuse_address = True  # rebinding right after a restart; two listeners still fail

    def __init__(self, address: tuple[str, int], dispatcher: Dispatcher | None = None) -> None:
        super().__init__(address, _Handler)
        self.dispatcher = dispatcher
        self.allowed_hosts = (
            None if address[0] in ("0.0.0.0", "::", "") else _LOCAL_HOSTS | {address[0]}
        )

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is routine; say so in one line, not a traceback
        # (fixtures pipe the node's stderr and may never read it).
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            log.error("HTTP handler failed for %s: %s: %s", client_address, type(exc).__name__, exc)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"http://{host_text}:{port}"


class _RpcHTTPServer6(RpcHTTPServer):
    address_family = socket.AF_INET6


def bind(host: str, port: int) -> RpcHTTPServer:
    """Bind the listening socket, turning the usual failures into one-sentence NodeErrors."""
    server_class = _RpcHTTPServer6 if ":" in host else RpcHTTPServer
    try:
        return server_class((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise NodeError(
                f"port {port} on {host} is in use; stop the other process or pass --port"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise NodeError(
                f"no permission to listen on port {port} on {host}; pass a --port above 1023"
            ) from None
        raise NodeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    timeout = 300  # an idle keep-alive connection (one thread each) is dropped after this
    server: RpcHTTPServer
    server_version = "DataBright"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would cost more than the request

    def _host_allowed(self) -> bool:
        allowed = self.server.allowed_hosts
        if allowed is None:
            return True
        host = self.headers.get("Host", "")
        if host.startswith("["):
            name = host[1 : host.find("]")] if "]" in host else host
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return name.lower() in allowed

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        head = [f"{self.protocol_version} {status} {HTTPStatus(status).phrase}"]
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **_CORS_HEADERS}
        if self.close_connection:
            headers["Connection"] = "close"
        head.extend(f"{k}: {v}" for k, v in headers.items())
        # One write: header and body in the same segment (see the module docstring).
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    def _send_json_error(self, status: int, message: str) -> None:
        body = json.dumps(
            {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
        ).encode()
        self._send(status, body)

    def do_OPTIONS(self) -> None:
        requested = self.headers.get("Access-Control-Request-Headers", "Content-Type")
        self.send_response_only(HTTPStatus.NO_CONTENT)
        for key, value in _CORS_HEADERS.items():
            self.send_header(key, value)
        self.send_header("Access-Control-Allow-Headers", requested)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        # Health check for humans and load balancers; JSON-RPC itself is POST only.
        if not self._host_allowed():
            self._send_json_error(403, "host not allowed")
            return
        self._send(200, b'{"service":"databright-node","rpc":"POST JSON-RPC 2.0 here"}')

    def do_POST(self) -> None:
        if not self._host_allowed():
            self._send_json_error(403, "host not allowed")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._send_json_error(411, "Content-Length required")
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        body = self.rfile.read(length)
        dispatcher = self.server.dispatcher
        if dispatcher is None:
            self._send_json_error(503, "node is starting")
            return
        response = dispatcher.handle_body(body)
        if response is None:
            self._send(204, b"")
        else:
            self._send(200, response)
