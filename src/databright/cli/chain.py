"""``databright deploy`` and ``databright up``: contracts on a chain, and a ready local chain."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    AccountOpt,
    DataDirOpt,
    JsonOpt,
    RpcOpt,
    console,
    gateway,
    print_json,
)
from databright.errors import NodeUnreachable

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy_command)
    app.command("up")(up_command)


def deploy_command(
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    redeploy: Annotated[
        bool, typer.Option(help="Deploy anew when recorded contracts are gone.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Deploy the contracts (only what the chain lacks) and record their addresses."""
    gw = gateway(rpc, data_dir, account)
    deployment, new = deploy(gw, data_dir, redeploy=redeploy)
    if json_out:
        print_json({**deployment.to_json(), "deployed_now": new})
        return
    _print_deployment(gw.chain_id, deployment.addresses, new)


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
    json_out: JsonOpt = False,
) -> None:
    """Start the embedded node if none runs, deploy, and print what a client needs."""
    started = ensure_local_node(rpc, data_dir)
    gw = gateway(rpc, data_dir, "0")
    deployment, new = deploy(gw, data_dir)
    store = Keystore(data_dir / "keystore")
    accounts = store.addresses()  # refuses, in one sentence, while a keystore file is damaged
    numbered = [(e.index, e.address) for e in store.entries() if e.address is not None]
    if json_out:
        print_json(
            {"rpc": rpc, "chain_id": gw.chain_id, "accounts": accounts, **deployment.to_json()}
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
