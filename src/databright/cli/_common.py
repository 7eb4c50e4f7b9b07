"""What the command modules share: consoles, common options, how values are printed, and how a
command reaches the market (opening it, asking for a keystore's password, the spinner).

Amounts are ETH, written and shown as exact decimals; shares are shown in whole shares
(10**18 units each). A string from the chain or from another participant (a name, a CID, a
revert reason, a report) goes through ``safe`` before it is printed: printed raw, an ESC
sequence in it could move the cursor, recolour or retitle another user's terminal, a newline
could forge a line of our output, and rich would read ``[...]`` in it as markup.
"""

from __future__ import annotations

import contextlib
import json
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from databright.chain.gateway import Gateway, connect
from databright.chain.keystore import Keystore
from databright.errors import InsufficientFunds, InvalidProposal, WrongPassword
from databright.market import SHARE_UNIT, Market, ProposalInfo
from databright.settings import DEFAULT_HOME, DEFAULT_RPC, get_settings
from databright.storage import ProposalRejected
from databright.types import Address

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_RPC",
    "AccountOpt",
    "DataDirOpt",
    "DatasetArg",
    "JsonOpt",
    "RpcOpt",
    "bps_text",
    "busy",
    "console",
    "err_console",
    "eth_exact",
    "eth_short",
    "gateway",
    "interactive",
    "open_market",
    "percent",
    "plain",
    "print_error",
    "print_json",
    "proposal_json",
    "proposal_problems",
    "proposal_ref",
    "require_funds",
    "safe",
    "shares_exact",
    "shares_text",
    "short_address",
    "utc",
    "viewer_address",
]

console = Console()
err_console = Console(stderr=True)

# $DATABRIGHT_HOME and $DATABRIGHT_RPC override these through the options' envvars.
DEFAULT_DATA_DIR = DEFAULT_HOME


# --- options ---------------------------------------------------------------------------------

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
DatasetArg = Annotated[int, typer.Argument(help="Dataset id (see `databright dataset list`).")]


# --- printing --------------------------------------------------------------------------------


def plain(text: object) -> str:
    """``text`` with every control and format character (ESC, CR, LF, bidi overrides) written
    as a visible escape, so it stays on its line and changes nothing on the screen."""
    out: list[str] = []
    for ch in str(text):
        # Cc: C0/C1 controls (ESC, BEL, CR, LF, CSI); Cf: bidi overrides and zero-width
        # characters that reorder or hide what follows; Zl/Zp: Unicode line breaks.
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def safe(text: object) -> str:
    """``text`` made safe to print through a rich console: ``plain`` (no control characters)
    and rich markup escaped (``[red]`` is shown as written)."""
    return escape(plain(text))


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def print_error(exc: BaseException) -> None:
    """The one red line on stderr that a failed command ends with."""
    err_console.print(f"[red]error:[/red] {safe(exc)}", highlight=False, soft_wrap=True)


def eth_exact(wei: int) -> str:
    """Wei as an exact decimal amount of ETH, without trailing zeros (``0.5``, ``1``)."""
    with localcontext() as ctx:
        ctx.prec = 200
        text = format(Decimal(int(wei)).scaleb(-18).normalize(), "f")
    return text


def eth_short(wei: int) -> str:
    """Wei as ETH with 4 decimals, for tables."""
    return f"{Decimal(int(wei)).scaleb(-18):,.4f}"


def shares_text(units: int) -> str:
    """Share units as whole shares with 4 decimals."""
    return f"{Decimal(int(units)) / SHARE_UNIT:,.4f}"


def shares_exact(units: int) -> str:
    with localcontext() as ctx:
        ctx.prec = 200
        return format((Decimal(int(units)) / SHARE_UNIT).normalize(), "f")


def percent(part: int, whole: int) -> str:
    return "-" if whole == 0 else f"{100 * part / whole:.2f}%"


def bps_text(bps: int) -> str:
    return f"{bps / 100:.2f}%"


def short_address(address: str, me: str | None = None) -> str:
    """An address for a table: ``you`` for the viewer's own; cut to ``0x1234…abcd`` only on a
    terminal, so that what a script or a file reads is always whole."""
    if me is not None and address == me:
        return "you"
    if not console.is_terminal:
        return safe(address)
    return safe(f"{address[:6]}…{address[-4:]}")


def utc(timestamp: int) -> str:
    return datetime.fromtimestamp(int(timestamp), tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def proposal_ref(p: ProposalInfo) -> str:
    return f"{int(p.dataset_id)}/{p.sequence}"


def proposal_json(p: ProposalInfo) -> dict[str, Any]:
    return {
        "id": proposal_ref(p),  # DATASET/N everywhere; the packed integer is the chain's
        "ref": proposal_ref(p),
        "dataset_id": int(p.dataset_id),
        "sequence": p.sequence,
        "contributor": p.contributor,
        "data_cid": p.data_cid,
        "manifest_root": "0x" + p.manifest_root.hex(),
        "manifest_cid": p.manifest_cid,
        "examples": p.examples,
        "deadline": p.deadline,
        "deadline_utc": utc(p.deadline),
        "commit_end": p.commit_end,
        "voting_opens": p.voting_opens,
        "snapshot_block": p.snapshot_block,
        "settle_from": p.settle_from,
        "status": p.status,
        "outcome": p.outcome,
        "yes_votes": p.yes_votes,
        "no_votes": p.no_votes,
        "snapshot_supply": p.snapshot_supply,
        "yes_shares": shares_exact(p.yes_votes),
        "no_shares": shares_exact(p.no_votes),
        "quality_weight_bps": p.quality_weight_bps,
        "shares": p.shares,  # minted: 0 unless accepted
        "shares_whole": shares_exact(p.shares),
        "prospective_shares": p.prospective_shares,  # what acceptance mints
        "evaluation": None
        if p.evaluation is None
        else {
            "commits": p.evaluation.commits,
            "reveals": p.evaluation.reveals,
            "score_bps": p.evaluation.score_bps,  # the median of the revealed scores
            "quality_weight_bps": p.evaluation.quality_weight_bps,
        },
    }


# --- reaching the market ---------------------------------------------------------------------


def gateway(rpc: str, data_dir: Path, account: str | None) -> Gateway:
    acct = Keystore(data_dir / "keystore").load(account) if account is not None else None
    return connect(rpc, acct)


@contextlib.contextmanager
def busy(what: str) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while ``what`` runs (nothing on a pipe)."""
    if not err_console.is_terminal:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        progress.add_task(safe(what), total=None)
        yield


def interactive() -> bool:
    """Whether a person can answer a password prompt."""
    return sys.stdin.isatty()


def _load_account(store: Keystore, which: str) -> LocalAccount:
    """Decrypt an account; on a terminal, ask for the password when the default one fails."""
    try:
        return store.load(which)
    except WrongPassword:
        # Only a wrong password is worth a prompt: a damaged or altered file stays refused.
        if get_settings().password_set or not interactive():
            raise
    password = typer.prompt(f"Password of account {store.resolve(which)}", hide_input=True)
    return store.load(which, password)


def open_market(rpc: str, data_dir: Path, account: str | None) -> Market:
    """The market on the node at ``rpc``, signing as ``account`` (None: read-only)."""
    store = Keystore(data_dir / "keystore")
    if account is not None:
        store.resolve(account)  # a wrong --account fails before anything else happens
    # Blobs this data dir lacks come from the participants' stores named in the settings.
    market = Market.connect(rpc, None, data_dir, sources=get_settings().blob_sources)
    if account is None:
        return market
    return market.as_account(_load_account(store, account))


def require_funds(market: Market, what: str) -> None:
    """Refuse early when the account cannot pay any gas.

    ``create_dataset`` and ``propose`` store the data before they send the transaction, so a
    transaction refused for want of ETH would leave the blobs behind.
    """
    if market.gateway.balance() == 0:
        raise InsufficientFunds(
            f"{what} needs gas but account {market.address} holds no ETH; fund it first"
        )


def viewer_address(data_dir: Path, account: str | None) -> Address | None:
    """Whose view a read-only command shows: ``--account`` if given, else account 0 if any."""
    store = Keystore(data_dir / "keystore")
    if account is not None:
        return store.resolve(account)
    known = store.addresses()
    return known[0] if known else None


@contextlib.contextmanager
def proposal_problems() -> Iterator[None]:
    """Show the first few problems of a refused file on the one error line.

    The SDK's message names the first problem and points at ``.problems`` (a Python
    attribute) for the others; a command line user gets up to three, then a count.
    """
    try:
        yield
    except ProposalRejected as exc:
        if exc.problem_count <= 1:
            raise
        first = exc.problems[0]
        shown = [str(first)]
        for p in exc.problems[1:3]:
            shown.append(f"row {p.row}: {p.message}" if p.file == first.file and p.row else str(p))
        more = exc.problem_count - len(shown)
        message = "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")
        raise InvalidProposal(message) from None
