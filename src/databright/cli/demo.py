"""``databright demo``: the main job of ``make run``, a whole market session on digits.

It starts the embedded node if none answers, deploys what is missing, and plays the cast of
``databright.market.scenario``: an initiator creates a dataset; eight contributors propose
(honest ones, a careless one, a copier, a poisoner, a late honest one); the evaluator service
values each proposal and posts its score and report on-chain; every shareholder votes as the
valuation advises; proposals are finalized; a model developer pays for using the dataset; and
every shareholder claims its dividend. Each run creates a new dataset, so it can run again.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account import Account
from rich.console import Console
from rich.table import Table

from databright.chain.deploy import deploy
from databright.chain.keystore import Keystore
from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    DataDirOpt,
    JsonOpt,
    RpcOpt,
    console,
    gateway,
    print_json,
)
from databright.cli.chain import ensure_local_node
from databright.errors import DataBrightError
from databright.market import SHARE_UNIT, Governance, Market
from databright.storage import DatasetSchema, validate_examples
from databright.types import Wei

__all__ = ["register"]

# Voters accept a proposal judged at least half as useful per example as the data already in.
ACCEPT_BPS = 5000
PAYMENT_WEI = Wei(10**18)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)


def demo_command(
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the scenario's data.")] = 7,
    json_out: JsonOpt = False,
) -> None:
    """Run a whole data-market session on scikit-learn's digits and print its report."""
    t0 = time.monotonic()
    started = ensure_local_node(rpc, data_dir)
    summary = run_session(rpc, data_dir, seed, quiet=json_out)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    summary["node_started"] = started
    if json_out:
        print_json(summary)
        return
    _print_report(summary)


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        console.print(msg, highlight=False)


def run_session(rpc: str, data_dir: Path, seed: int, quiet: bool = False) -> dict[str, Any]:
    # Imported here: scikit-learn and torch take seconds to import, and every other command
    # of the CLI would pay for them.
    from databright.market.evaluator import EvaluatorService
    from databright.market.scenario import digits_scenario

    keystore = Keystore(data_dir / "keystore")
    cast = digits_scenario(seed)
    needed = 2 + len(cast.contributions)
    if len(keystore.addresses()) < needed:
        raise DataBrightError(
            f"the session needs {needed} funded accounts in {keystore.directory}, found "
            f"{len(keystore.addresses())}; use the embedded node's data dir"
        )
    accounts = [keystore.load(i) for i in range(needed)]
    initiator, evaluator_acct, contributors = accounts[0], accounts[1], accounts[2:]

    deployment, new = deploy(gateway(rpc, data_dir, "0"), data_dir)
    _say(quiet, f"[bold]market[/bold] DataMarket at {deployment['DataMarket']}"
         + (f" (deployed now: {', '.join(new)})" if new else ""))  # fmt: skip

    market = Market.connect(rpc, initiator, data_dir)
    # One client per account: two clients of one account would race for its nonces.
    clients = {initiator.address: market}
    for acct in accounts[1:]:
        clients[acct.address] = market.as_account(acct)
    schema = DatasetSchema(
        task="classification", feature_shape=(64,), dtype="float32", labels=cast.labels,
        name="digits 8x8",
    )  # fmt: skip
    name = f"digits #{market.dataset_count() + 1}"
    initial = validate_examples(cast.initial_X, cast.initial_y, schema, source="initial data")
    dataset_id = market.create_dataset(
        name, schema, initial,
        Governance(voting_period_s=3600, quorum_bps=2000, threshold_bps=5000,
                   quality_cap_bps=20_000, evaluators=(evaluator_acct.address,)),
    )  # fmt: skip
    _say(quiet, f"[bold]dataset {dataset_id}[/bold] {name!r}: {len(initial)} initial examples, "
         f"initiator {initiator.address}")  # fmt: skip

    validation = validate_examples(
        cast.validation_X, cast.validation_y, schema, source="validation"
    )
    evaluator = EvaluatorService(clients[evaluator_acct.address], dataset_id, validation)

    rows: list[dict[str, Any]] = []
    for contribution, acct in zip(cast.contributions, contributors, strict=True):
        me = clients[acct.address]
        examples = validate_examples(
            contribution.X, contribution.y, schema, source=contribution.name
        )
        try:
            proposal = me.propose(dataset_id, examples)
        except DataBrightError as exc:
            rows.append(_row(contribution, acct.address, None, None, "refused", str(exc)))
            _say(quiet, f"  {contribution.name:8} refused at proposal: {exc}")
            continue
        posted = evaluator.evaluate(proposal)
        support = posted.score_bps >= ACCEPT_BPS
        # Every shareholder at the snapshot votes as the valuation advises.
        for voter in [initiator, *contributors]:
            if market.contract.call("ballot", proposal.id, voter.address)[0]:
                continue
            weight = market.token(dataset_id).balance_at(voter.address, proposal.sequence)
            if weight == 0 or market.proposal(proposal.id).outcome != "pending":
                continue
            clients[voter.address].vote(proposal.id, support)
        final = market.finalize(proposal.id)
        rows.append(_row(contribution, acct.address, final, posted.score_bps, final.status,
                         "; ".join(posted.flags)))  # fmt: skip
        _say(quiet, f"  {contribution.name:8} ({contribution.role:8}) proposal {final.sequence}: "
             f"score {posted.score_bps:6d} bps -> {final.status:8} "
             f"{final.shares / SHARE_UNIT:8.2f} shares")  # fmt: skip

    # A model developer pays for training on the dataset; shareholders claim their dividends.
    buyer = Account.create()
    market.gateway.transfer(buyer.address, Wei(2 * PAYMENT_WEI))
    market.as_account(buyer).pay(dataset_id, PAYMENT_WEI)
    _say(quiet, f"[bold]payment[/bold] {buyer.address} paid 1 ETH to dataset {dataset_id}")
    claimed: dict[str, int] = {}  # address -> wei
    for acct in [initiator, *contributors]:
        me = clients[acct.address]
        if me.claimable(dataset_id) > 0:
            claimed[acct.address] = int(me.claim(dataset_id))
    holders: dict[str, int] = {h.address: h.shares for h in market.shareholders(dataset_id)}
    for row in rows:
        row["dividend_wei"] = claimed.get(row["address"], 0)
        row["shares_held"] = holders.get(row["address"], 0)
    token = market.token(dataset_id)
    return {
        "rpc": rpc,
        "chain_id": market.gateway.chain_id,
        "dataset_id": dataset_id,
        "dataset": name,
        "initiator": {
            "address": initiator.address,
            "shares": holders.get(initiator.address, 0),
            "dividend_wei": claimed.get(initiator.address, 0),
        },
        "evaluator": evaluator_acct.address,
        "payment_wei": PAYMENT_WEI,
        "total_claimed_wei": int(token.total_claimed()),
        "dust_wei": int(token.dust()) / token.MAGNITUDE(),  # the token keeps dust magnified
        "registry_entries": market.dataset(dataset_id).registry_length,
        "proposals": rows,
    }


def _row(
    c: Any, address: str, p: Any, score: int | None, decision: str, note: str
) -> dict[str, Any]:
    return {
        "contributor": c.name,
        "role": c.role,
        "address": address,
        "data": c.note,
        "proposal": p.sequence if p else None,
        "score_bps": score,
        "yes": p.yes_votes if p else 0,
        "no": p.no_votes if p else 0,
        "decision": decision,
        "shares_minted": p.shares if p and p.status == "accepted" else 0,
        "flags": note,
    }


def _eth(wei: int) -> str:
    return f"{Decimal(wei) / Decimal(10**18):.6f}"


def _print_report(s: dict[str, Any]) -> None:
    out = Console(width=max(console.width, 112))  # the report table needs ~110 columns
    table = Table(title=f"market session on dataset {s['dataset_id']} ({s['dataset']})")
    for col in ("who", "role", "score bps", "yes/no", "decision", "shares", "dividend ETH",
                "flags"):  # fmt: skip
        table.add_column(col)
    init = s["initiator"]
    table.add_row("initiator", "initiator", "", "", "created",
                  f"{init['shares'] / SHARE_UNIT:.2f}", _eth(init["dividend_wei"]), "")  # fmt: skip
    for r in s["proposals"]:
        color = {"accepted": "green", "rejected": "red"}.get(r["decision"], "yellow")
        kinds = sorted({f.split(":", 1)[0] for f in r["flags"].split("; ") if f})
        table.add_row(
            r["contributor"], r["role"],
            "" if r["score_bps"] is None else str(r["score_bps"]),
            f"{r['yes'] / SHARE_UNIT:.0f}/{r['no'] / SHARE_UNIT:.0f}",
            f"[{color}]{r['decision']}[/{color}]",
            f"{r['shares_minted'] / SHARE_UNIT:.2f}", _eth(r["dividend_wei"]),
            ", ".join(kinds),
        )  # fmt: skip
    out.print(table)
    for r in s["proposals"]:
        out.print(f"[bold]{r['contributor']}[/bold] ({r['data']}): "
                      + (r["flags"] or "no flags"), highlight=False)  # fmt: skip
    out.print(
        f"payment {_eth(s['payment_wei'])} ETH; claimed {_eth(s['total_claimed_wei'])} ETH; "
        f"dust {s['dust_wei']:.3f} wei; registry entries {s['registry_entries']}; "
        f"session took {s['seconds']} s"
    )
