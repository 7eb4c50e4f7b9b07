"""``databright account new|list|balance``: encrypted keystores in ``<data-dir>/keystore``.

Keystores are Web3 Secret Storage JSON files (geth and MetaMask read them). Their password is
``$DATABRIGHT_PASSWORD`` when set; otherwise ``account new`` asks for one on a terminal (twice),
and without a terminal it uses the development password ``databright-dev``, which is public:
such accounts are for development chains only. Commands that sign ask for the password on a
terminal when ``$DATABRIGHT_PASSWORD`` does not open the keystore.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account import Account
from eth_utils import is_address, to_checksum_address
from rich.markup import escape
from rich.table import Table

from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.cli import _common
from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    DataDirOpt,
    JsonOpt,
    RpcOpt,
    busy,
    console,
    err_console,
    eth_exact,
    eth_short,
    print_json,
    shares_exact,
    shares_text,
)
from databright.errors import (
    ContractNotDeployed,
    InvalidArgument,
    KeystoreError,
    NotFound,
)
from databright.market import Market
from databright.settings import DEV_PASSWORD, get_settings
from databright.types import Address

__all__ = ["app"]

app = typer.Typer(
    name="account",
    help="Encrypted account keystores: create, list, check balances.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

OptionalAccountOpt = Annotated[
    str | None,
    typer.Option("--account", "-a", help="Keystore account: index (0 = first) or address."),
]


def _new_password() -> str | None:
    """The new keystore's password; None means the keystore's default rule."""
    if get_settings().password_set:
        return None
    if _common.interactive():  # looked up on the module: tests replace it
        password: str = typer.prompt(
            "Password for the new keystore", hide_input=True, confirmation_prompt=True
        )
        if not password:
            raise InvalidArgument("the password must not be empty")
        return password
    err_console.print(
        "[yellow]warning:[/yellow] no terminal and DATABRIGHT_PASSWORD is unset: the keystore "
        f"is encrypted with the public development password {DEV_PASSWORD!r}; "
        "never hold real funds with it",
        highlight=False,
        soft_wrap=True,
    )
    return None


def _read_private_key(path: Path) -> bytes:
    if not path.is_file():
        raise NotFound(f"private key file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"cannot read the private key file {path} ({exc})") from None
    hex_key = text.removeprefix("0x").removeprefix("0X")
    try:
        key = bytes.fromhex(hex_key)
        if len(key) != 32:
            raise ValueError
        Account.from_key(key)  # refuses 0 and keys beyond the curve order
    except ValueError:
        # Never echo the file: it may hold a secret with a typo.
        raise KeystoreError(
            f"{path} does not hold a private key; write it as 64 hex digits (0x optional)"
        ) from None
    return key


@app.command("new")
def new_command(
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    import_key_file: Annotated[
        Path | None,
        typer.Option(
            "--import-key-file",
            help="Import the private key in this file (64 hex digits) instead of a new one.",
            dir_okay=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an account (or import a private key) into an encrypted keystore."""
    store = Keystore(data_dir / "keystore")
    key = _read_private_key(import_key_file) if import_key_file is not None else None
    if key is not None:
        address = Address(Account.from_key(key).address)
        known = [e.index for e in store.entries() if e.address == address]
        if known:
            raise InvalidArgument(
                f"account {address} already has a keystore in {store.directory} (#{known[0]})"
            )
    password = _new_password()
    with busy("encrypting the keystore"):
        address = store.new(password=password, private_key=key)
    index = max(e.index for e in store.entries() if e.address == address)
    if json_out:
        print_json(
            {
                "index": index,
                "address": address,
                "imported": key is not None,
                "keystore": str(store.directory),
            }
        )
        return
    console.print(
        f"account [bold]#{index}[/bold] {address} "
        f"({'imported' if key is not None else 'new'}) in {store.directory}"
    )
    if password is not None:
        console.print(
            "commands that sign will ask for this password; "
            "or set DATABRIGHT_PASSWORD to it for scripts"
        )


@app.command("list")
def list_command(
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: OptionalAccountOpt = None,
    balances: Annotated[
        bool, typer.Option("--balances", help="Also show each account's ETH on the node.")
    ] = False,
    rpc: RpcOpt = DEFAULT_RPC,
    json_out: JsonOpt = False,
) -> None:
    """List the keystore's accounts (the one commands sign with is marked *)."""
    store = Keystore(data_dir / "keystore")
    entries = store.entries()
    addresses = [e.address for e in entries if e.address is not None]
    selected: Address | None = None
    if account is not None:
        selected = store.resolve(account)
    elif any(e.index == 0 and e.address is not None for e in entries):
        selected = store.resolve("0")  # the default; a damaged #0 is marked, not selected
    wei: dict[str, int] = {}
    if balances and addresses:
        gw = connect(rpc)
        with busy("reading balances"):
            wei = {a: int(gw.balance(a)) for a in addresses}
    # A damaged file keeps its number and is listed, never skipped (that would hide it).
    for problem in store.problems(entries):
        err_console.print(
            f"[yellow]warning:[/yellow] {escape(problem)}", highlight=False, soft_wrap=True
        )
    if json_out:
        rows: list[dict[str, Any]] = []
        for e in entries:
            a = e.address
            row: dict[str, Any] = {"index": e.index, "address": a, "selected": a == selected}
            if e.problem is not None:
                row["damaged"] = e.problem
            if a is not None and a in wei:
                row["balance_wei"] = wei[a]
                row["balance_eth"] = eth_exact(wei[a])
            rows.append(row)
        print_json(rows)
        return
    if not entries:
        console.print(f"no accounts in {store.directory}; create one with `databright account new`")
        return
    table = Table(title=f"accounts (keystore: {store.directory})")
    table.add_column("#", justify="right")
    table.add_column("address")
    if wei:
        table.add_column("balance (ETH)", justify="right")
    for e in entries:
        if e.address is None:
            cells = [str(e.index), f"[red]damaged[/red] {escape(e.path.name)}"]
            cells += [""] if wei else []
            table.add_row(*cells)
            continue
        a = e.address
        cells = [f"{e.index}{' *' if a == selected else ''}", a]
        if wei:
            cells.append(eth_short(wei[a]))
        table.add_row(*cells)
    console.print(table)


def _address_of(data_dir: Path, which: str) -> Address:
    if which.startswith(("0x", "0X")) and len(which) == 42:
        if not is_address(which):
            raise KeystoreError(
                f"{which!r} is not an Ethereum address (bad hex digits or checksum)"
            )
        # Any address has a balance; it need not be one of ours.
        return Address(to_checksum_address(which))
    return Keystore(data_dir / "keystore").resolve(which)


@app.command("balance")
def balance_command(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[ACCOUNT]", help="Index in the keystore or any address (default: --account)."
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: Annotated[
        str, typer.Option("--account", "-a", help="Keystore account: index or address.")
    ] = "0",
    json_out: JsonOpt = False,
) -> None:
    """Show an account's ETH and, where a market is deployed, its shares and dividends."""
    address = _address_of(data_dir, target if target is not None else account)
    gw = connect(rpc)
    with busy(f"reading the balance of {address}"):
        wei = int(gw.balance(address))
        holdings: list[dict[str, Any]] = []
        market: Market | None = None
        try:
            market = Market.connect(rpc, None, data_dir)
        except ContractNotDeployed:
            market = None  # no market here: the ETH balance is all there is
        if market is not None:
            for info in market.datasets():
                shares = market.shares_of(info.id, address)
                owed = int(market.claimable(info.id, address))
                if shares or owed:
                    holdings.append(
                        {
                            "dataset_id": int(info.id),
                            "name": info.name,
                            "shares": shares,
                            "shares_whole": shares_exact(shares),
                            "total_shares": info.total_shares,
                            "claimable_wei": owed,
                            "claimable_eth": eth_exact(owed),
                        }
                    )
    if json_out:
        print_json(
            {
                "address": address,
                "chain_id": gw.chain_id,
                "balance_wei": wei,
                "balance_eth": eth_exact(wei),
                "market": market is not None,
                "holdings": holdings,
            }
        )
        return
    console.print(f"{address}: [bold]{eth_exact(wei)} ETH[/bold] on chain {gw.chain_id}")
    if not holdings:
        if market is not None:
            console.print("no shares in any dataset")
        return
    table = Table(title="shares and dividends")
    table.add_column("dataset", justify="right")
    table.add_column("name")
    table.add_column("shares", justify="right")
    table.add_column("of total", justify="right")
    table.add_column("claimable (ETH)", justify="right")
    for h in holdings:
        share = 100 * h["shares"] / h["total_shares"] if h["total_shares"] else 0.0
        table.add_row(
            str(h["dataset_id"]),
            escape(h["name"]),
            shares_text(h["shares"]),
            f"{share:.2f}%",
            eth_exact(h["claimable_wei"]),
        )
    console.print(table)
