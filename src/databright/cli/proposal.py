"""``databright propose|vote|finalize``: a proposal's life, one transaction each.

Every command connects with ``--rpc`` to the market recorded in ``--data-dir`` (see
``databright deploy``) and signs with the keystore account ``--account`` (an index, 0 = first,
or an address). Proposals are named by the id ``databright dataset show`` lists or as
``DATASET/N`` (the N-th proposal of a dataset).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    AccountOpt,
    DataDirOpt,
    DatasetArg,
    JsonOpt,
    RpcOpt,
    busy,
    console,
    eth_exact,
    open_market,
    percent,
    print_json,
    proposal_json,
    proposal_problems,
    proposal_ref,
    require_funds,
    shares_exact,
    shares_text,
    utc,
)
from databright.cli._params import parse_proposal_id
from databright.market import ProposalInfo

__all__ = ["register"]

ProposalArg = Annotated[
    str,
    typer.Argument(help="Proposal id, or DATASET/N (see `databright dataset show DATASET`)."),
]


def register(app: typer.Typer) -> None:
    app.command("propose")(propose_command)
    app.command("vote")(vote_command)
    app.command("finalize")(finalize_command)
    app.command("reclaim-deposit")(reclaim_deposit_command)


def tally_text(p: ProposalInfo) -> str:
    votes = p.yes_votes + p.no_votes
    return (
        f"yes {shares_text(p.yes_votes)} / no {shares_text(p.no_votes)} of "
        f"{shares_text(p.snapshot_supply)} shares ({percent(votes, p.snapshot_supply)} voted)"
    )


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
        f"from {escape(str(file))}, stored as {escape(p.data_cid)}"
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
    """Vote on a pending proposal with your shares at the end of the block before it."""
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


def reclaim_deposit_command(
    proposal: ProposalArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Take back the deposit of your settled proposal (accepted or scored positive)."""
    pid = parse_proposal_id(proposal)
    market = open_market(rpc, data_dir, account)
    with busy(f"reclaiming the deposit of proposal {proposal}"):
        amount = market.reclaim_deposit(pid)
    if json_out:
        print_json({"proposal_id": pid, "contributor": market.address, "amount_wei": int(amount)})
        return
    console.print(f"reclaimed {eth_exact(amount)} ETH from proposal {proposal}", highlight=False)
