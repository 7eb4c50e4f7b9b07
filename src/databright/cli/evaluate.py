"""``databright evaluate|commit|reveal|collect-fee``: sealed evaluation from the command line.

``evaluate`` runs the evaluator service (values proposals in their commit phase and commits to
their scores, reveals the scores whose reveal phase is on); ``commit`` and ``reveal`` do one
step by hand (the opening of a commitment is kept in the data dir until its reveal);
``collect-fee`` collects an evaluator's share of a proposal's evaluation fee, or the proposer's
refund when nobody revealed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

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
    eth_exact,
    open_market,
    print_json,
    utc,
)
from databright.cli._params import parse_proposal_id
from databright.cli._text import plain, proposal_refs, ref
from databright.errors import ContractNotDeployed, NotFound, NotPermitted
from databright.market import Market
from databright.settings import get_settings

if TYPE_CHECKING:
    from databright.market.evaluator import PostedEvaluation

__all__ = ["register"]


ProposalArg = Annotated[
    str,
    typer.Argument(help="Proposal as DATASET/N (see `databright dataset show DATASET`)."),
]


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
    app.command("commit")(commit_command)
    app.command("reveal")(reveal_command)
    app.command("collect-fee")(collect_fee_command)


def commit_command(
    proposal: ProposalArg,
    score: Annotated[
        int,
        typer.Option("--score", help="Score in basis points (10000 = as useful as the data in)."),
    ],
    report: Annotated[
        Path | None, typer.Option("--report", help="The evaluation report (any file).")
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Commit to a sealed score for a proposal in its commit phase (revealed with `reveal`)."""
    pid = parse_proposal_id(proposal)
    if report is not None and not report.is_file():
        raise NotFound(f"report file {report} does not exist")
    body = report.read_bytes() if report is not None else b"{}"
    market = open_market(rpc, data_dir, account)
    with busy(f"committing a sealed score for proposal {ref(pid)}"), proposal_refs(pid):
        sealed = market.commit_evaluation(pid, score, body)
        p = market.proposal(pid)
    if json_out:
        print_json({"proposal": ref(pid), "evaluator": market.address, "score_bps": score,
                    "report_cid": sealed.report_cid, "reveal_from": p.commit_end,
                    "reveal_until": p.voting_opens})  # fmt: skip
        return
    console.print(
        f"committed a sealed score for proposal {ref(pid)}; reveal it with `databright reveal "
        f"{ref(pid)}` between {utc(p.commit_end)} and {utc(p.voting_opens)}",
        highlight=False,
        markup=False,
    )


def reveal_command(
    proposal: ProposalArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Reveal the score this account committed to for a proposal in its reveal phase."""
    pid = parse_proposal_id(proposal)
    market = open_market(rpc, data_dir, account)
    with busy(f"revealing the score for proposal {ref(pid)}"), proposal_refs(pid):
        sealed = market.reveal_evaluation(pid)
    if json_out:
        print_json({"proposal": ref(pid), "evaluator": market.address,
                    "score_bps": sealed.score_bps, "report_cid": sealed.report_cid})  # fmt: skip
        return
    console.print(
        f"revealed score {sealed.score_bps} bps for proposal {ref(pid)} (report "
        f"{sealed.report_cid})",
        highlight=False,
        markup=False,
    )


def collect_fee_command(
    proposal: ProposalArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Collect your part of a proposal's evaluation fee once voting opens."""
    pid = parse_proposal_id(proposal)
    market = open_market(rpc, data_dir, account)
    with busy(f"collecting the evaluation fee of proposal {ref(pid)}"), proposal_refs(pid):
        amount = market.collect_evaluation_fee(pid)
    if json_out:
        print_json({"proposal": ref(pid), "account": market.address, "amount_wei": int(amount)})
        return
    console.print(f"collected {eth_exact(amount)} ETH from proposal {ref(pid)}", highlight=False)


def _best_model(market: Market, dataset: int) -> Callable[[], Any] | None:
    """The dataset's best registered checkpoint, read anew for each proposal (None where the
    deployment has no model market)."""
    from databright.models import ModelMarket

    try:
        models = ModelMarket.over(market)
    except ContractNotDeployed:
        return None

    def best() -> Any:
        found = models.best(dataset)
        if found is None:
            return None
        model_id, version, _score = found
        spec, blob = models.checkpoint_of(model_id, version)
        return spec, blob, f"model {model_id} version {version}"

    return best


def evaluate_command(
    dataset: Annotated[int, typer.Option("--dataset", help="Dataset id to evaluate.")],
    validation: Annotated[
        Path,
        typer.Option(
            "--validation",
            help="The evaluator's private validation set (.npz, .csv or .parquet).",
            exists=False,
        ),
    ],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    watch: Annotated[
        bool, typer.Option("--watch/--once", help="Keep watching for new proposals.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between polls with --watch.")
    ] = 5.0,
    k: Annotated[int, typer.Option(min=1, help="Neighbours of the KNN-Shapley utility.")] = 5,
    sources: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="URL of a blob store to fetch proposals' data from (a contributor's `store "
            "serve`, an IPFS gateway); repeatable, besides $DATABRIGHT_BLOB_SOURCES.",
        ),
    ] = None,
    score_by: Annotated[
        str,
        typer.Option(
            "--score-by",
            help="What sets the score: 'valuation' (KNN-Shapley reward) or 'finetune_gain' "
            "(the accuracy the dataset's best registered model gains from the proposal). With a "
            "best model, the report holds both.",
        ),
    ] = "valuation",
    json_out: JsonOpt = False,
) -> None:
    """Value proposals with KNN-Shapley: commit to sealed scores, reveal those due."""
    # Imported here: the valuation stack (scikit-learn, torch) is slow to import.
    from databright.market.evaluator import EvaluatorService

    acct = Keystore(data_dir / "keystore").load(account)
    # Proposals come from other participants' data dirs: their blobs are fetched from these.
    urls = (*(sources or ()), *get_settings().blob_sources)
    market = Market.connect(rpc, acct, data_dir, sources=urls)
    try:
        service = EvaluatorService(
            market, dataset, validation, k=k, best_model=_best_model(market, dataset),
            score_by=score_by,
        )  # fmt: skip
    except NotPermitted as exc:
        # Name the command that grants the role, with the values to give it.
        raise NotPermitted(
            f"{exc} with `databright dataset grant-evaluator {dataset} {market.address}`"
        ) from None
    posted: list[PostedEvaluation] = []

    def show(p: PostedEvaluation) -> None:
        posted.append(p)
        if not json_out:
            flags = "; ".join(p.flags) or "no flags"
            console.print(
                f"proposal {ref(p.proposal_id)}: score {p.score_bps} bps, report {p.report_cid} "
                f"({plain(flags)})",
                highlight=False,
                markup=False,
            )

    if watch:
        if not json_out:
            console.print(f"watching dataset {dataset} every {interval:g} s (Ctrl-C stops)")
        service.watch(interval, on_posted=show)
    else:
        for p in service.run_once():
            show(p)
        if not posted and not json_out:
            console.print(f"no pending proposal of dataset {dataset} awaits an evaluation")
    if json_out:
        print_json(
            [
                {
                    "proposal": ref(p.proposal_id),
                    "score_bps": p.score_bps,
                    "report_cid": p.report_cid,
                    "flags": list(p.flags),
                }
                for p in posted
            ]
        )
