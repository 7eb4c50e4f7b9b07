"""Options and helpers shared by the command groups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from databright.chain.gateway import Gateway, connect
from databright.chain.keystore import Keystore
from databright.settings import DEFAULT_HOME, DEFAULT_RPC

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_RPC",
    "AccountOpt",
    "DataDirOpt",
    "JsonOpt",
    "RpcOpt",
    "console",
    "err_console",
    "gateway",
    "print_json",
]

console = Console()
err_console = Console(stderr=True)

# $DATABRIGHT_HOME and $DATABRIGHT_RPC override these through the options' envvars.
DEFAULT_DATA_DIR = DEFAULT_HOME


RpcOpt = Annotated[
    str, typer.Option("--rpc", envvar="DATABRIGHT_RPC", help="JSON-RPC URL of an EVM node.")
]
DataDirOpt = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="DATABRIGHT_HOME",
        help="Where keystores, deployments and blobs live.",
        file_okay=False,
    ),
]
AccountOpt = Annotated[
    str,
    typer.Option("--account", "-a", help="Keystore account: index (0 = first) or address."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def gateway(rpc: str, data_dir: Path, account: str | None) -> Gateway:
    acct = Keystore(data_dir / "keystore").load(account) if account is not None else None
    return connect(rpc, acct)


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))
