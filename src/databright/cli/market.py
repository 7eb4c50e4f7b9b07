"""``databright propose|vote|finalize|pay|claim``: the data market's actions, one transaction each.

Every command connects with ``--rpc`` to the market recorded in ``--data-dir`` (see
``databright deploy``) and signs with the keystore account ``--account`` (an index, 0 = first,
or an address). Proposals are named by the id ``databright dataset show`` lists or as
``DATASET/N`` (the N-th proposal of a dataset). Amounts are ETH, written and shown as exact
decimals; shares are shown in whole shares (10**18 units each).

This module also holds what the ``account`` and ``dataset`` groups share: opening the market,
the spinner shown while the chain works, and how amounts, shares and proposals are printed.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from databright.chain.keystore import Keystore
from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    AccountOpt,
    DataDirOpt,
    JsonOpt,
    RpcOpt,
    console,
    err_console,
    print_json,
)
from databright.errors import (
    InsufficientFunds,
    InvalidAmount,
    InvalidProposal,
    InvalidProposalId,
    KeystoreError,
    NotFound,
)
from databright.market import SHARE_UNIT, Market, ProposalInfo
from databright.settings import get_settings
from databright.storage import ProposalRejected
from databright.types import Address, Wei

__all__ = ["register"]

WEI_PER_ETH = 10**18
UINT256_MAX = 2**256 - 1
SEQ_BITS = 32  # a proposal id is (dataset id << 32) | its number within the dataset


# --- parsing ---------------------------------------------------------------------------------


def parse_eth(text: str) -> Wei:
    """An amount of ETH written as a decimal (``0.5``, ``2``, ``1e-3``), exactly, in wei."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise InvalidAmount(f"{text!r} is not an amount of ETH; write a decimal number such as 0.5")
    if value <= 0:
        raise InvalidAmount(f"a payment must be a positive amount of ETH, not {text!r}")
    if value.adjusted() > 60:
        raise InvalidAmount(f"{text!r} ETH is more than any account can hold")
    with localcontext() as ctx:
        ctx.prec = 200  # exact: no rounding of a long decimal before the check below
        wei = value.scaleb(18)
    if wei != wei.to_integral_value():
        raise InvalidAmount(
            f"{text!r} ETH is not a whole number of wei; use at most 18 decimal places"
        )
    if int(wei) > UINT256_MAX:
        raise InvalidAmount(f"{text!r} ETH is more than any account can hold")
    return Wei(int(wei))


_PROPOSAL_REF = re.compile(r"(\d+)\s*/\s*(\d+)", re.ASCII)
_DIGITS = re.compile(r"\d+", re.ASCII)


def parse_proposal_id(text: str) -> int:
    """A proposal's id from its number or from ``DATASET/N``."""
    s = text.strip()
    if match := _PROPOSAL_REF.fullmatch(s):
        dataset, seq = int(match[1]), int(match[2])
        if seq >= 2**SEQ_BITS or dataset >= 2 ** (256 - SEQ_BITS):
            raise NotFound(f"proposal {text} does not exist; see `databright dataset show DATASET`")
        return (dataset << SEQ_BITS) | seq
    if _DIGITS.fullmatch(s):
        pid = int(s)
        if pid > UINT256_MAX:
            raise NotFound(f"proposal {text} does not exist; see `databright dataset show DATASET`")
        return pid
    raise InvalidProposalId(
        f"{text!r} is not a proposal; give its id or DATASET/N as `databright dataset show` lists them"
    )


# --- formatting ------------------------------------------------------------------------------


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
    return "you" if me is not None and address == me else f"{address[:6]}…{address[-4:]}"


def utc(timestamp: int) -> str:
    return datetime.fromtimestamp(int(timestamp), tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def proposal_ref(p: ProposalInfo) -> str:
    return f"{int(p.dataset_id)}/{p.sequence}"


def proposal_json(p: ProposalInfo) -> dict[str, Any]:
    return {
        "id": int(p.id),
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
            "evaluator": p.evaluation.evaluator,
            "score_bps": p.evaluation.score_bps,
            "report_cid": p.evaluation.report_cid,
        },
    }


def tally_text(p: ProposalInfo) -> str:
    votes = p.yes_votes + p.no_votes
    return (
        f"yes {shares_text(p.yes_votes)} / no {shares_text(p.no_votes)} of "
        f"{shares_text(p.snapshot_supply)} shares ({percent(votes, p.snapshot_supply)} voted)"
    )


# --- the chain at work -----------------------------------------------------------------------


@contextlib.contextmanager
def busy(what: str) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while ``what`` runs (nothing on a pipe)."""
    if not err_console.is_terminal:
        yield
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        progress.add_task(escape(what), total=None)
        yield


def interactive() -> bool:
    """Whether a person can answer a password prompt."""
    return sys.stdin.isatty()


def _load_account(store: Keystore, which: str) -> LocalAccount:
    """Decrypt an account; on a terminal, ask for the password when the default one fails."""
    try:
        return store.load(which)
    except KeystoreError:
        if get_settings().password_set or not interactive():
            raise
    password = typer.prompt(f"Password of account {store.resolve(which)}", hide_input=True)
    return store.load(which, password)


def open_market(rpc: str, data_dir: Path, account: str | None) -> Market:
    """The market on the node at ``rpc``, signing as ``account`` (None: read-only)."""
    store = Keystore(data_dir / "keystore")
    if account is not None:
        store.resolve(account)  # a wrong --account fails before anything else happens
    market = Market.connect(rpc, None, data_dir)
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


# --- commands --------------------------------------------------------------------------------

DatasetArg = Annotated[int, typer.Argument(help="Dataset id (see `databright dataset list`).")]
ProposalArg = Annotated[
    str,
    typer.Argument(help="Proposal id, or DATASET/N (see `databright dataset show DATASET`)."),
]


def register(app: typer.Typer) -> None:
    app.command("propose")(propose_command)
    app.command("vote")(vote_command)
    app.command("finalize")(finalize_command)
    app.command("pay")(pay_command)
    app.command("claim")(claim_command)


def propose_command(
    dataset: DatasetArg,
    file: Annotated[Path, typer.Argument(help="Examples: .npz (X, y), .csv or .parquet.")],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Propose examples for a dataset: validate them, store them, register them on-chain."""
    market = open_market(rpc, data_dir, account)
    require_funds(market, "proposing")
    with (
        busy(f"validating, storing and proposing {file} to dataset {dataset}"),
        proposal_problems(),
    ):
        p = market.propose(dataset, file)
    if json_out:
        print_json(proposal_json(p))
        return
    console.print(
        f"[green]proposal {proposal_ref(p)}[/green] (id {int(p.id)}): {p.examples} examples "
        f"from {escape(str(file))}, stored as {p.data_cid}"
    )
    console.print(
        f"voting open until {utc(p.deadline)}; shareholders vote with "
        f"`databright vote {proposal_ref(p)} --yes` (or --no)"
    )


def vote_command(
    proposal: ProposalArg,
    support: Annotated[
        bool, typer.Option("--yes/--no", help="Vote for (--yes) or against (--no).")
    ],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Vote on a pending proposal with your shares at its snapshot."""
    pid = parse_proposal_id(proposal)
    market = open_market(rpc, data_dir, account)
    with busy(f"voting {'yes' if support else 'no'} on proposal {proposal}"):
        receipt = market.vote(pid, support)
        p = market.proposal(pid)
    weight = int(receipt.event("VoteCast").args["weight"])
    if json_out:
        print_json(
            {
                "proposal": proposal_json(p),
                "voter": market.address,
                "support": support,
                "weight": weight,
                "weight_shares": shares_exact(weight),
                "tx_hash": receipt.tx_hash,
            }
        )
        return
    console.print(
        f"voted [bold]{'yes' if support else 'no'}[/bold] with {shares_text(weight)} shares "
        f"on proposal {proposal_ref(p)}"
    )
    console.print(f"tally: {tally_text(p)}")
    if p.outcome == "pending":
        console.print(f"outcome still open; voting closes {utc(p.deadline)}")
    else:
        console.print(
            f"outcome settled: [bold]{p.outcome}[/bold]; "
            f"`databright finalize {proposal_ref(p)}` records it"
        )


def finalize_command(
    proposal: ProposalArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Settle a proposal whose outcome is final: accepted ones enter the registry and mint shares."""
    pid = parse_proposal_id(proposal)
    market = open_market(rpc, data_dir, account)
    with busy(f"finalizing proposal {proposal}"):
        p = market.finalize(pid)
    if json_out:
        print_json(proposal_json(p))
        return
    if p.status == "accepted":
        console.print(
            f"proposal {proposal_ref(p)} [green]accepted[/green]: {p.examples} examples entered "
            f"dataset {int(p.dataset_id)}, {shares_text(p.shares)} shares minted to {p.contributor}"
        )
    else:
        console.print(
            f"proposal {proposal_ref(p)} [yellow]{p.status}[/yellow] ({tally_text(p)}); "
            "its examples may be proposed again"
        )


def pay_command(
    dataset: DatasetArg,
    amount: Annotated[str, typer.Argument(help="ETH to pay, as a decimal (e.g. 0.5).")],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Pay ETH to a dataset's shareholders, split pro rata to their shares now."""
    wei = parse_eth(amount)
    market = open_market(rpc, data_dir, account)
    with busy(f"paying {eth_exact(wei)} ETH to dataset {dataset}"):
        receipt = market.pay(dataset, wei)
    if json_out:
        print_json(
            {
                "dataset_id": dataset,
                "payer": market.address,
                "amount_wei": int(wei),
                "amount_eth": eth_exact(wei),
                "tx_hash": receipt.tx_hash,
            }
        )
        return
    console.print(
        f"paid [bold]{eth_exact(wei)} ETH[/bold] to the shareholders of dataset {dataset} "
        f"(tx {receipt.tx_hash})"
    )


def claim_command(
    dataset: DatasetArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Withdraw your dividends from a dataset."""
    market = open_market(rpc, data_dir, account)
    with busy(f"claiming dividends from dataset {dataset}"):
        amount = market.claim(dataset)
    if json_out:
        print_json(
            {
                "dataset_id": dataset,
                "account": market.address,
                "claimed_wei": int(amount),
                "claimed_eth": eth_exact(amount),
            }
        )
        return
    console.print(
        f"claimed [bold]{eth_exact(amount)} ETH[/bold] from dataset {dataset} to {market.address}"
    )
