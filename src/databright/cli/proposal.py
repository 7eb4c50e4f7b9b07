"""``databright propose|vote|finalize|reclaim-deposit``: a proposal's life, one transaction
each; ``databright proposal show|list``: a proposal with its valuation reports, and lists of
proposals across datasets.

Every command connects with ``--rpc`` to the market recorded in ``--data-dir`` (see
``databright deploy``) and signs with the keystore account ``--account`` (an index, 0 = first,
or an address). Proposals are named ``DATASET/N`` (the N-th proposal of a dataset), as every
command prints them.

A proposal file is ``.npz`` (arrays ``X``, one row per example in the dataset's feature shape,
and ``y``, the labels), ``.csv`` (UTF-8, a column per feature value and a column named ``label``)
or ``.parquet`` (the same columns); ``propose --dry-run`` checks one without proposing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

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
    proposal_problems,
    require_funds,
    shares_exact,
    shares_text,
    short_address,
    utc,
    viewer_address,
)
from databright.cli._params import ACCOUNT, parse_proposal_id, resolve_account
from databright.cli._text import proposal_refs, proposal_view, ref, safe
from databright.errors import NotFound
from databright.market import ProposalInfo, queries

__all__ = ["register"]

ProposalArg = Annotated[
    str,
    typer.Argument(help="Proposal as DATASET/N (see `databright dataset show DATASET`)."),
]

group = typer.Typer(
    name="proposal",
    help="Proposals: show one with its valuation reports, list them across datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def register(app: typer.Typer) -> None:
    app.command("propose")(propose_command)
    app.command("vote")(vote_command)
    app.command("finalize")(finalize_command)
    app.command("reclaim-deposit")(reclaim_deposit_command)
    app.add_typer(group, name="proposal")


def tally_text(p: ProposalInfo) -> str:
    votes = p.yes_votes + p.no_votes
    return (
        f"yes {shares_text(p.yes_votes)} / no {shares_text(p.no_votes)} of "
        f"{shares_text(p.snapshot_supply)} shares ({percent(votes, p.snapshot_supply)} voted)"
    )


def propose_command(
    dataset: DatasetArg,
    file: Annotated[
        Path,
        typer.Argument(
            help="Examples: .npz (arrays X and y), .csv or .parquet (a column per feature "
            "value and a column named label)."
        ),
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Only check the file and the account: nothing stored, no gas."
        ),
    ] = False,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Propose examples for a dataset: validate them, store them, register them on-chain.

    FILE is .npz (arrays X and y), .csv or .parquet (a column named label); see the README.
    """
    if dry_run:
        _dry_run(dataset, file, rpc, data_dir, account, json_out)
        return
    market = open_market(rpc, data_dir, account)
    require_funds(market, "proposing")
    with (
        busy(f"validating, storing and proposing {file} to dataset {dataset}"),
        proposal_problems(),
    ):
        p = market.propose(dataset, file)
    if json_out:
        print_json(proposal_view(p))
        return
    console.print(
        f"[green]proposal {ref(p.id)}[/green]: {p.examples} examples "
        f"from {safe(file)}, stored as {escape(p.data_cid)}"
    )
    console.print(
        f"voting open until {utc(p.deadline)}; shareholders vote with "
        f"`databright vote {ref(p.id)} --yes` (or --no)"
    )


def _dry_run(
    dataset: int, file: Path, rpc: str, data_dir: Path, account: str, json_out: bool
) -> None:
    who = viewer_address(data_dir, account)  # no password: nothing is signed
    market = open_market(rpc, data_dir, None)
    with busy(f"checking {file} against dataset {dataset}"), proposal_problems():
        checked = queries.check_proposal(market, dataset, file, who)
    if json_out:
        print_json(
            {"dataset_id": dataset, "file": str(file), "examples": checked.examples,
             "data_cid": checked.data_cid, "manifest_root": "0x" + checked.manifest_root.hex(),
             "payment_wei": int(checked.payment_wei), "contributor": who, "dry_run": True}
        )  # fmt: skip
        return
    pay = f", and {eth_exact(checked.payment_wei)} ETH sent with it" if checked.payment_wei else ""
    console.print(
        f"{safe(file)}: {checked.examples} examples fit dataset {dataset}; proposing would "
        f"store them as {escape(checked.data_cid)}{pay} (dry run: nothing stored, no gas spent)",
        highlight=False,
    )


def vote_command(
    proposal: ProposalArg,
    yes: Annotated[bool, typer.Option("--yes", help="Vote for.")] = False,
    no: Annotated[bool, typer.Option("--no", help="Vote against.")] = False,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Vote on a pending proposal with your shares at the end of the block before it."""
    if yes == no:  # neither, or both: a typo must never cast the vote the user did not mean
        raise typer.BadParameter("give exactly one of --yes or --no")
    support = yes
    pid = parse_proposal_id(proposal)
    market = open_market(rpc, data_dir, account)
    with busy(f"voting {'yes' if support else 'no'} on proposal {ref(pid)}"), proposal_refs(pid):
        receipt = market.vote(pid, support)
        p = market.proposal(pid)
    weight = int(receipt.event("VoteCast").args["weight"])
    if json_out:
        print_json(
            {
                "proposal": proposal_view(p),
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
        f"on proposal {ref(p.id)}"
    )
    console.print(f"tally: {tally_text(p)}")
    if p.outcome == "pending":
        console.print(f"outcome still open; voting closes {utc(p.deadline)}")
    else:
        console.print(
            f"outcome settled: [bold]{p.outcome}[/bold]; "
            f"`databright finalize {ref(p.id)}` records it"
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
    with busy(f"finalizing proposal {ref(pid)}"), proposal_refs(pid):
        p = market.finalize(pid)
    if json_out:
        print_json(proposal_view(p))
        return
    if p.status == "accepted":
        console.print(
            f"proposal {ref(p.id)} [green]accepted[/green]: {p.examples} examples entered "
            f"dataset {int(p.dataset_id)}, {shares_text(p.shares)} shares minted to {p.contributor}"
        )
    else:
        console.print(
            f"proposal {ref(p.id)} [yellow]{p.status}[/yellow] ({tally_text(p)}); "
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
    with busy(f"reclaiming the deposit of proposal {ref(pid)}"), proposal_refs(pid):
        amount = market.reclaim_deposit(pid)
    if json_out:
        print_json({"proposal": ref(pid), "contributor": market.address, "amount_wei": int(amount)})
        return
    console.print(f"reclaimed {eth_exact(amount)} ETH from proposal {ref(pid)}", highlight=False)


def _flags_of(report: dict[str, Any] | None) -> list[str]:
    """The flags of the proposal's own entry in an evaluator's report, as ``kind: reason``."""
    ours = report.get("proposal") if report else None
    flags = ours.get("flags") if isinstance(ours, dict) else None
    if not isinstance(flags, list):
        return []
    return [
        f"{f.get('kind', '?')}: {f.get('reason', '')}" if isinstance(f, dict) else str(f)
        for f in flags
    ]


def _report_json(r: queries.RevealedReport) -> dict[str, Any]:
    ours = r.report.get("proposal") if r.report else None
    return {
        "evaluator": r.evaluator,
        "score_bps": r.score_bps,
        "report_cid": r.report_cid,
        "report_available": r.report is not None,
        "flags": _flags_of(r.report),
        "value": ours.get("value") if isinstance(ours, dict) else None,
        "copies": ours.get("copies") if isinstance(ours, dict) else None,
        "plot_cid": r.report.get("plot_cid") if r.report else None,
        "block_number": r.block_number,
        "report": r.report,
    }


@group.command("show")
def show_command(
    proposal: ProposalArg,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Write the first revealed report's plot (PNG) here.", dir_okay=False
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Show a proposal: its data, votes, evaluation, each revealed report and its flags."""
    pid = parse_proposal_id(proposal)
    market = open_market(rpc, data_dir, None)
    with busy(f"reading proposal {ref(pid)}"), proposal_refs(pid):
        p = market.proposal(pid)
        reports = queries.revealed_reports(market, pid)
        plot_written = None
        if plot is not None:
            cid = next((r.report.get("plot_cid") for r in reports if r.report), None)
            if not isinstance(cid, str):
                raise NotFound(
                    f"proposal {ref(pid)} has no revealed report with a plot yet; "
                    "reports are published when evaluators reveal"
                )
            data = market.store.get(cid)
            if data[:8] != b"\x89PNG\r\n\x1a\n":
                raise NotFound(f"the plot {cid} of proposal {ref(pid)} is not a PNG image")
            plot.write_bytes(data)
            plot_written = str(plot)
    if json_out:
        print_json(
            {**proposal_view(p), "reports": [_report_json(r) for r in reports],
             "plot_file": plot_written}
        )  # fmt: skip
        return
    console.print(
        f"[bold]proposal {ref(p.id)}[/bold] by {p.contributor}: {p.examples} examples, "
        f"data {escape(p.data_cid)}"
    )
    status = p.status if p.outcome == p.status else f"{p.status} → {p.outcome}"
    console.print(f"status: {status}; voting closes {utc(p.deadline)}; {tally_text(p)}")
    if p.status == "accepted":
        console.print(f"accepted: {shares_text(p.shares)} shares minted to the contributor")
    ev = p.evaluation
    if ev is None:
        console.print("evaluation: none committed")
    else:
        console.print(
            f"evaluation: {ev.commits} committed, {ev.reveals} revealed, median score "
            f"{ev.score_bps} bps, quality weight {ev.quality_weight_bps} bps"
        )
    for r in reports:
        console.print(
            f"report of {r.evaluator}: score {r.score_bps} bps ({escape(r.report_cid)})",
            highlight=False,
        )
        if r.report is None:
            console.print("  (report not in this store nor at any blob source)")
            continue
        ours = r.report.get("proposal")
        if isinstance(ours, dict):
            console.print(
                f"  value {safe(ours.get('value'))}, {safe(ours.get('copies'))} copies of "
                f"earlier data, method {safe(r.report.get('method'))}",
                highlight=False,
            )
        flags = _flags_of(r.report)
        if not flags:
            console.print("  no flags")
        for flag in flags:
            console.print(f"  flag {safe(flag)}", highlight=False)
    if plot_written:
        console.print(f"plot written to {safe(plot_written)}")


@group.command("list")
def list_command(
    mine: Annotated[
        bool, typer.Option("--mine", help="Only proposals by --account (the default: all).")
    ] = False,
    dataset: Annotated[
        int | None, typer.Option("--dataset", help="Only proposals of this dataset.")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by", parser=ACCOUNT, metavar=ACCOUNT.metavar, help="Only proposals by this account."
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only proposals with this status (pending, accepted, ...)."),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """List proposals across datasets: yours (--mine), someone's (--by) or a dataset's."""
    who = (
        resolve_account(data_dir, by)
        if by
        else (resolve_account(data_dir, account) if mine else None)
    )
    market = open_market(rpc, data_dir, None)
    me = viewer_address(data_dir, None)
    with busy("reading proposals"):
        if who is not None:
            found = queries.proposals_by(market, who)
            if dataset is not None:
                found = [p for p in found if int(p.dataset_id) == dataset]
        elif dataset is not None:
            found = market.proposals(dataset)
        else:
            found = [p for d in market.datasets() for p in market.proposals(d.id)]
    if status is not None:
        found = [p for p in found if status in (p.status, p.outcome)]
    if json_out:
        print_json([proposal_view(p) for p in found])
        return
    if not found:
        console.print("no proposals match")
        return
    table = Table(title="proposals" + (f" by {who}" if who else ""))
    for name in ("proposal", "by", "examples", "status", "shares"):
        table.add_column(name, justify="right" if name in ("examples", "shares") else "left")
    for p in found:
        shown = p.status if p.outcome == p.status else f"{p.status} → {p.outcome}"
        table.add_row(ref(p.id), short_address(p.contributor, me), str(p.examples), shown,
                      shares_text(p.prospective_shares))  # fmt: skip
    console.print(table)
