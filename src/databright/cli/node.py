"""``databright node``: run, start, stop and inspect the embedded development chain.

``databright node`` (or ``databright node run``) serves in the foreground until Ctrl-C;
``start`` spawns it in the background (output in ``<data-dir>/node.log``), ``stop`` ends it,
``status`` says whether one runs (exit status 0 if so, 1 if not, like ``pgrep``). The data dir
defaults to ``.databright`` here, or ``$DATABRIGHT_HOME``. Errors are one red line on stderr
and exit status 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from databright.cli._common import JsonOpt, print_error
from databright.errors import DataBrightError
from databright.node import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    NodeConfig,
    NodeStatus,
    serve,
    start_background,
    status,
    stop,
)
from databright.settings import DEFAULT_HOME

__all__ = ["app"]

app = typer.Typer(
    name="node",
    help="Run the embedded development chain (py-evm, JSON-RPC over HTTP).",
    pretty_exceptions_enable=False,
    add_completion=False,
)

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="DATABRIGHT_HOME",
        file_okay=False,
        help="Chain, dev keystores and node files (default: ./.databright).",
    ),
]
Host = Annotated[str, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")]
ChainId = Annotated[
    int | None,
    typer.Option(
        "--chain-id", help="Chain id of a new data dir (default 1337); must match an existing one."
    ),
]
Accounts = Annotated[
    int, typer.Option("--accounts", min=1, help="Dev accounts created at genesis.")
]

DEFAULT_DIR = DEFAULT_HOME
T = TypeVar("T")


def _guard(action: Callable[[], T], as_json: bool = False) -> T:
    """Run ``action``; a DataBrightError becomes one red line and exit status 1, or, with
    ``--json``, goes on to the ``databright`` entry point, which answers it as a JSON object."""
    try:
        return action()
    except DataBrightError as exc:
        if as_json:
            raise
        print_error(exc)
        raise typer.Exit(1) from None


def _config(
    data_dir: Path, host: str, port: int, chain_id: int | None, accounts: int
) -> NodeConfig:
    return NodeConfig(data_dir=data_dir, host=host, port=port, chain_id=chain_id, accounts=accounts)


def _status_json(found: NodeStatus) -> str:
    return json.dumps(
        {
            "pid": found.pid,
            "url": found.url,
            "chain_id": found.chain_id,
            "block_number": found.block_number,
            "data_dir": str(found.data_dir),
        },
        indent=2,
    )


def _describe(found: NodeStatus) -> str:
    block = "not answering" if found.block_number is None else f"block {found.block_number}"
    return (
        f"node running: pid {found.pid}, {found.url}, chain id {found.chain_id}, {block}, "
        f"data dir {found.data_dir}"
    )


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    data_dir: DataDir = DEFAULT_DIR,
    host: Host = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    chain_id: ChainId = None,
    accounts: Accounts = 10,
) -> None:
    """Without a command: run the node in the foreground (same as ``run``)."""
    if ctx.invoked_subcommand is None:
        _guard(lambda: serve(_config(data_dir, host, port, chain_id, accounts)))


@app.command("run")
def run_command(
    data_dir: DataDir = DEFAULT_DIR,
    host: Host = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    chain_id: ChainId = None,
    accounts: Accounts = 10,
    json_out: JsonOpt = False,
) -> None:
    """Run the node in the foreground until Ctrl-C or SIGTERM (--json: errors as JSON)."""
    _guard(lambda: serve(_config(data_dir, host, port, chain_id, accounts)), json_out)


@app.command("start")
def start_command(
    data_dir: DataDir = DEFAULT_DIR,
    host: Host = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    chain_id: ChainId = None,
    accounts: Accounts = 10,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to answer.")] = 30.0,
    json_out: JsonOpt = False,
) -> None:
    """Start the node in the background and wait until it answers."""
    found = _guard(
        lambda: start_background(_config(data_dir, host, port, chain_id, accounts), timeout),
        json_out,
    )
    typer.echo(_status_json(found) if json_out else _describe(found))


@app.command("stop")
def stop_command(data_dir: DataDir = DEFAULT_DIR, json_out: JsonOpt = False) -> None:
    """Stop the node running on the data dir (SIGTERM, then SIGKILL)."""
    stopped = _guard(lambda: stop(data_dir), json_out)
    where = data_dir.resolve()
    if json_out:
        typer.echo(json.dumps({"stopped": stopped, "data_dir": str(where)}, indent=2))
    elif stopped:
        typer.echo(f"stopped the node on {where}")
    else:
        typer.echo(f"no node was running on {where}")


@app.command("status")
def status_command(data_dir: DataDir = DEFAULT_DIR, json_out: JsonOpt = False) -> None:
    """Say whether a node runs on the data dir (exit status 1 if none)."""
    found = _guard(lambda: status(data_dir), json_out)
    if found is None:
        typer.echo("null" if json_out else f"no node is running on {data_dir.resolve()}")
        raise typer.Exit(1)
    typer.echo(_status_json(found) if json_out else _describe(found))
