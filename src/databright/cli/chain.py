"""``databright deploy``, ``join``, ``deployment`` and ``up``: a market on a chain, and a ready
local chain.

Only a new market's creator runs ``deploy``; everyone else ``join``s it, from its address
(``--market 0x...``) or from the file its creator shares (``databright deployment export``).
Both leave the same record in ``<data-dir>/deployments/<chain-id>.json``, which every other
command reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from databright.atomic import atomic_write
from databright.chain.deploy import deploy, join, load_deployment, read_shared_record
from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    AccountOpt,
    DataDirOpt,
    JsonOpt,
    RpcOpt,
    busy,
    console,
    err_console,
    gateway,
    print_json,
    safe,
)
from databright.cli.server import check_free
from databright.errors import InvalidArgument, NodeUnreachable

__all__ = ["register"]


deployment_app = typer.Typer(
    name="deployment",
    help="Show or share this data dir's market record (what `databright join FILE` reads).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_command)
    app.command("join")(join_command)
    app.add_typer(deployment_app, name="deployment")
    app.command("up")(up_command)
    app.command("down")(down_command)


def deploy_command(
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    redeploy: Annotated[
        bool, typer.Option(help="Deploy anew when recorded contracts are gone.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a new market: deploy the contracts (only what the chain lacks) and record them.

    To take part in a market someone else created, use `databright join` instead.
    """
    gw = gateway(rpc, data_dir, account)
    deployment, new = deploy(gw, data_dir, redeploy=redeploy)
    if json_out:
        print_json({**deployment.to_json(), "deployed_now": new})
        return
    _print_deployment(gw.chain_id, deployment.addresses, new)
    _print_join_hint(deployment["DataMarket"])


def join_command(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="A deployment file the market's creator shared (`databright deployment export`).",
            dir_okay=False,
        ),
    ] = None,
    market: Annotated[
        str | None, typer.Option("--market", help="The market's (DataMarket's) 0x address.")
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="Switch a data dir that records another market on this chain.")
    ] = False,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Join an existing market: check its contracts' code on the chain and record them here."""
    if (file is None) == (market is None):
        raise typer.BadParameter("give either a deployment FILE or --market ADDRESS, not both")
    shared = read_shared_record(file) if file is not None else None
    gw = connect(rpc)
    deployment, changed = join(gw, data_dir, market=market, shared=shared, replace=replace)
    if json_out:
        print_json({**deployment.to_json(), "changed": changed, "record": str(deployment.path)})
        return
    console.print(
        f"joined the market at {deployment['DataMarket']} on chain {gw.chain_id}"
        + ("" if changed else " (already recorded)")
        + f"; recorded in {safe(str(deployment.path))}",
        soft_wrap=True,
    )


@deployment_app.command("show")
def deployment_show(
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Show the market this data dir records for the chain at --rpc."""
    gw = connect(rpc)
    deployment = load_deployment(data_dir, gw.chain_id)
    if json_out:
        print_json(deployment.to_json())
        return
    _print_deployment(gw.chain_id, deployment.addresses, [])
    _print_join_hint(deployment["DataMarket"])


@deployment_app.command("export")
def deployment_export(
    out: Annotated[
        Path | None,
        typer.Argument(help="File to write (default: print to stdout).", dir_okay=False),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Write this data dir's market record for others to `databright join FILE`."""
    gw = connect(rpc)
    text = json.dumps(load_deployment(data_dir, gw.chain_id).to_json(), indent=2, sort_keys=True)
    if out is None:
        typer.echo(text)
        return
    try:
        atomic_write(out, text + "\n")
    except OSError as exc:
        raise InvalidArgument(
            f"cannot write {out} ({exc.strerror or exc}); choose a writable path"
        ) from None
    err_console.print(f"wrote {safe(str(out))}; share it, then others run `databright join FILE`")


def _print_join_hint(market: str) -> None:
    console.print(
        f"others join this market with `databright join --market {market}` "
        "or with the file `databright deployment export` writes",
        soft_wrap=True,  # a command to copy: never broken across lines
    )


def _print_deployment(chain_id: int, addresses: Mapping[str, str], new: list[str]) -> None:
    table = Table(title=f"contracts on chain {chain_id}")
    table.add_column("contract")
    table.add_column("address")
    table.add_column("")
    for key, addr in addresses.items():
        table.add_row(key, addr, "deployed now" if key in new else "already there")
    console.print(table)


def ensure_local_node(rpc: str, data_dir: Path) -> bool:
    """Start the embedded node in the background when nothing answers at a local ``rpc``.

    Returns True when it started one. A remote URL that does not answer is an error, not a
    reason to start something else.
    """
    from urllib.parse import urlparse

    try:
        connect(rpc)
        return False
    except NodeUnreachable:
        url = urlparse(rpc)
        if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
            raise
    from databright.node import NodeConfig, start_background

    start_background(NodeConfig(data_dir=data_dir, host="127.0.0.1", port=url.port))
    return True


def up_command(
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    api_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the platform server (API, blobs).")
    ] = 8000,
    no_server: Annotated[
        bool, typer.Option("--no-server", help="Only the node and the contracts.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Start the embedded node if none runs, deploy, start the platform server, and print
    where everything is (``databright down`` stops what this started)."""
    started = ensure_local_node(rpc, data_dir)
    gw = gateway(rpc, data_dir, "0")
    deployment, new = deploy(gw, data_dir)
    store = Keystore(data_dir / "keystore")
    accounts = store.addresses()  # refuses, in one sentence, while a keystore file is damaged
    numbered = [(e.index, e.address) for e in store.entries() if e.address is not None]
    api = None
    if not no_server:
        from databright.server.background import server_status, start_server

        if server_status(data_dir) is None:
            check_free("127.0.0.1", api_port)
        with busy("starting the platform server"):
            api = start_server(rpc, data_dir, port=api_port).url
    if json_out:
        print_json(
            {
                "rpc": rpc,
                "chain_id": gw.chain_id,
                "api": api,
                "accounts": accounts,
                **deployment.to_json(),
            }
        )
        return
    console.print(
        f"[bold]node[/bold] {rpc} (chain {gw.chain_id})"
        + (" [green]started in the background[/green]" if started else " already running")
    )
    table = Table(title="development accounts (keystore: " + str(data_dir / "keystore") + ")")
    table.add_column("#")
    table.add_column("address")
    table.add_column("balance (ETH)", justify="right")
    for i, a in numbered:  # the files' own numbers, as `-a N` reads them
        table.add_row(str(i), a, f"{gw.balance(a) / 10**18:,.4f}")
    console.print(table)
    _print_deployment(gw.chain_id, deployment.addresses, new)
    if api is not None:
        console.print(f"[bold]UI[/bold]    {api}/ui/")
        console.print(f"[bold]API[/bold]   {api}/api/v1/status")
        console.print(f"[bold]docs[/bold]  {api}/docs")
        console.print(f"[bold]blobs[/bold] {api}/ipfs/CID")
    console.print("`databright down` stops the node and the server.")


def down_command(data_dir: DataDirOpt = DEFAULT_DATA_DIR, json_out: JsonOpt = False) -> None:
    """Stop the platform server and the embedded node running on this data dir."""
    from databright.node import stop as stop_node
    from databright.server.background import stop_server

    server = stop_server(data_dir)
    node = stop_node(data_dir)
    if json_out:
        print_json({"server_stopped": server, "node_stopped": node})
        return
    console.print(f"server: {'stopped' if server else 'was not running'}")
    console.print(f"node: {'stopped' if node else 'was not running'}")
