"""``databright account new|list|balance|fund|activity``: encrypted keystores in
``<data-dir>/keystore``, the ETH they hold, and what they did in the market.

Keystores are Web3 Secret Storage JSON files (geth and MetaMask read them). Their password is
``$DATABRIGHT_PASSWORD`` when set; otherwise ``account new`` asks for one on a terminal (twice),
and without a terminal it uses the development password ``databright-dev``, which is public:
such accounts are for development chains only. Commands that sign ask for the password on a
terminal when ``$DATABRIGHT_PASSWORD`` does not open the keystore.

``fund`` sends ETH to an account; on a development chain ``--faucet`` pays from the node's
development accounts instead. ``activity`` lists an account's proposals and votes across every
dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account import Account
from eth_utils import is_address, to_checksum_address
from rich.table import Table

from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.cli import _common
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
    eth_exact,
    eth_short,
    open_market,
    print_json,
    shares_exact,
    shares_text,
    utc,
)
from databright.cli._params import ACCOUNT, ETH_AMOUNT, resolve_account
from databright.cli._text import ref, safe
from databright.errors import (
    ContractNotDeployed,
    InvalidArgument,
    KeystoreError,
    NotFound,
)
from databright.market import Market, queries
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
            f"[yellow]warning:[/yellow] {safe(problem)}", highlight=False, soft_wrap=True
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
            cells = [str(e.index), f"[red]damaged[/red] {safe(e.path.name)}"]
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
            safe(h["name"]),
            shares_text(h["shares"]),
            f"{share:.2f}%",
            eth_exact(h["claimable_wei"]),
        )
    console.print(table)


# Chains whose ETH is worthless by construction: the embedded node's and anvil's defaults.
DEV_CHAIN_IDS = (1337, 31337)
# anvil's first default account (Foundry's public test mnemonic): it funds anvil chains.
_ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def _faucet(rpc: str, data_dir: Path, node_dir: Path | None, wei: int) -> Market:
    """The market as a development account of the node that holds ``wei`` plus gas."""
    chain_id = connect(rpc).chain_id
    if chain_id not in DEV_CHAIN_IDS:
        raise InvalidArgument(
            f"--faucet pays from development accounts, and chain {chain_id} is not a "
            "development chain; fund the account from one that holds ETH with --account"
        )
    from databright.node import load_dev_accounts  # only the faucet needs it

    candidates: list[Any] = []
    try:
        candidates = list(load_dev_accounts(node_dir or data_dir))
    except (NotFound, ValueError):
        candidates = []
    if chain_id == 31337:
        candidates.append(Account.from_key(_ANVIL_KEY))
    gw = connect(rpc)
    for acct in candidates:
        if int(gw.balance(acct.address)) > wei:
            return Market.connect(rpc, acct, data_dir)
    raise NotFound(
        f"no development account of this node holds {eth_exact(wei)} ETH; give the node's data "
        "dir with --node-dir, or fund from an account of yours with --account"
    )


@app.command("fund")
def fund_command(
    target: Annotated[
        str,
        typer.Argument(
            parser=ACCOUNT, metavar=ACCOUNT.metavar, help="Recipient: address or keystore index."
        ),
    ],
    amount: Annotated[
        int,
        typer.Argument(parser=ETH_AMOUNT, metavar="ETH", help="ETH to send (e.g. 0.5)."),
    ],
    faucet: Annotated[
        bool,
        typer.Option(
            "--faucet",
            help="On a development chain: pay from the node's development accounts.",
        ),
    ] = False,
    node_dir: Annotated[
        Path | None,
        typer.Option(
            "--node-dir",
            help="With --faucet: the embedded node's data dir (default: --data-dir).",
            file_okay=False,
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Send ETH to an account (from --account, or from the node's faucet on a dev chain)."""
    to = resolve_account(data_dir, target)
    wei = int(amount)
    market = (
        _faucet(rpc, data_dir, node_dir, wei) if faucet else open_market(rpc, data_dir, account)
    )
    with busy(f"sending {eth_exact(wei)} ETH to {to}"):
        receipt = queries.send_eth(market, to, wei)  # type: ignore[arg-type]
        now = int(market.gateway.balance(to))
    if json_out:
        print_json(
            {"from": market.address, "to": to, "amount_wei": wei, "amount_eth": eth_exact(wei),
             "balance_wei": now, "faucet": faucet, "tx_hash": receipt.tx_hash}
        )  # fmt: skip
        return
    console.print(
        f"sent {eth_exact(wei)} ETH from {market.address} to {to}; it holds {eth_exact(now)} ETH",
        highlight=False,
    )


@app.command("activity")
def activity_command(
    target: Annotated[
        str | None,
        typer.Argument(
            parser=ACCOUNT,
            metavar="[ACCOUNT]",
            help="Index in the keystore or any address (default: --account).",
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: Annotated[
        str, typer.Option("--account", "-a", help="Keystore account: index or address.")
    ] = "0",
    json_out: JsonOpt = False,
) -> None:
    """An account's proposals and votes in every dataset of the market."""
    who = resolve_account(data_dir, target if target is not None else account)
    market = open_market(rpc, data_dir, None)
    with busy(f"reading the proposals and votes of {who}"):
        proposals = queries.proposals_by(market, who)
        votes = queries.votes_by(market, who)
        outcomes = {int(p.id): p for p in proposals}
        for v in votes:
            if int(v.proposal_id) not in outcomes:
                outcomes[int(v.proposal_id)] = market.proposal(v.proposal_id)
    if json_out:
        print_json(
            {
                "address": who,
                "proposals": [
                    {"proposal": ref(p.id), "dataset_id": int(p.dataset_id), "examples": p.examples,
                     "status": p.status, "outcome": p.outcome, "shares": p.shares,
                     "shares_whole": shares_exact(p.shares), "data_cid": p.data_cid}
                    for p in proposals
                ],
                "votes": [
                    {"proposal": ref(v.proposal_id), "dataset_id": int(v.dataset_id),
                     "support": v.support, "weight": v.weight,
                     "weight_shares": shares_exact(v.weight), "block_number": v.block_number,
                     "outcome": outcomes[int(v.proposal_id)].outcome}
                    for v in votes
                ],
            }
        )  # fmt: skip
        return
    if not proposals and not votes:
        console.print(f"{who} has made no proposal and cast no vote on this market")
        return
    if proposals:
        table = Table(title=f"proposals by {who}")
        for name in ("proposal", "examples", "status", "shares", "closes"):
            table.add_column(name, justify="right" if name in ("examples", "shares") else "left")
        for p in proposals:
            status = p.status if p.outcome == p.status else f"{p.status} → {p.outcome}"
            table.add_row(
                ref(p.id), str(p.examples), status, shares_text(p.shares), utc(p.deadline)
            )
        console.print(table)
    else:
        console.print(f"{who} has made no proposal")
    if votes:
        table = Table(title=f"votes by {who}")
        for name in ("proposal", "vote", "weight (shares)", "block", "outcome"):
            table.add_column(
                name, justify="right" if name.startswith(("weight", "block")) else "left"
            )
        for v in votes:
            table.add_row(
                ref(v.proposal_id),
                "yes" if v.support else "no",
                shares_text(v.weight),
                str(v.block_number),
                outcomes[int(v.proposal_id)].outcome,
            )
        console.print(table)
    else:
        console.print(f"{who} has cast no vote")
