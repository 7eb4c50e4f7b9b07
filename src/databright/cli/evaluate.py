"""``databright evaluate``: the evaluator service as a command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from databright.chain.keystore import Keystore
from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    AccountOpt,
    DataDirOpt,
    JsonOpt,
    RpcOpt,
    console,
    print_json,
)
from databright.market import Market

if TYPE_CHECKING:
    from databright.market.evaluator import PostedEvaluation

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)


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
    json_out: JsonOpt = False,
) -> None:
    """Value pending proposals with KNN-Shapley and post score + report on-chain."""
    # Imported here: the valuation stack (scikit-learn, torch) is slow to import.
    from databright.market.evaluator import EvaluatorService

    acct = Keystore(data_dir / "keystore").load(account)
    market = Market.connect(rpc, acct, data_dir)
    service = EvaluatorService(market, dataset, validation, k=k)
    posted: list[PostedEvaluation] = []

    def show(p: PostedEvaluation) -> None:
        posted.append(p)
        if not json_out:
            flags = "; ".join(p.flags) or "no flags"
            console.print(
                f"proposal {p.proposal_id}: score {p.score_bps} bps, report {p.report_cid} "
                f"({flags})",
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
                    "proposal_id": p.proposal_id,
                    "score_bps": p.score_bps,
                    "report_cid": p.report_cid,
                    "flags": list(p.flags),
                }
                for p in posted
            ]
        )
