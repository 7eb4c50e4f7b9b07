"""``databright server``: the platform server (index, REST API, blob gateway) for a market."""

from __future__ import annotations

import errno
import socket
from typing import Annotated

import typer

from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    DataDirOpt,
    RpcOpt,
    busy,
    console,
)
from databright.errors import NodeError
from databright.server.platform import Platform, serve_platform
from databright.settings import get_settings

__all__ = ["check_free", "register"]


def register(app: typer.Typer) -> None:
    app.command("server")(server_command)


def check_free(host: str, port: int) -> None:
    """Refuse a taken port in one sentence before anything starts (uvicorn would exit 1)."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc})"
            raise NodeError(
                f"{host}:{port} {why}; pick another with --port, or stop what listens there"
            ) from exc


def server_command(
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the API.")] = 8000,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL of the index (default: $DATABRIGHT_DATABASE_URL, else SQLite "
            "in the data dir; postgresql+psycopg://... at scale).",
        ),
    ] = None,
) -> None:
    """Index the market's events into SQL and serve the REST API and the blob gateway."""
    check_free(host, port)
    with busy("opening the index"):
        settings = get_settings()
        url = database_url or settings.database_url
        platform = Platform(rpc, data_dir, url, sources=settings.blob_sources)
    base = f"http://{host}:{port}"
    console.print(f"UI    {base}/ui/")
    console.print(f"API   {base}/api/v1/status")
    console.print(f"docs  {base}/docs")
    console.print(f"blobs {base}/ipfs/{{cid}}")
    console.print("Ctrl-C stops the server.")
    serve_platform(platform, data_dir, host, port)
