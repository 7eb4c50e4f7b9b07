"""``databright demo``: the main job of ``make run``, a whole market session on digits.

It starts the embedded node if none answers, deploys what is missing, and plays the cast of
``databright.demo.cast``: an initiator creates a dataset; eight contributors propose
(honest ones, a careless one, a copier, a poisoner, a late honest one); the evaluator service
values each proposal and posts its score and report on-chain; every shareholder votes as the
valuation advises; proposals are finalized; a model developer pays for using the dataset; and
every shareholder claims its dividend. Each run creates a new dataset, so it can run again.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    DataDirOpt,
    JsonOpt,
    RpcOpt,
    console,
    print_json,
    safe,
)
from databright.cli.chain import ensure_local_node
from databright.market import SHARE_UNIT

__all__ = ["register"]


def _print_line(line: str) -> None:
    console.print(line, highlight=False, markup=False)


def _silent(line: str) -> None:
    del line


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
    # Imported here: scikit-learn and torch take seconds to import, and every other command
    # of the CLI would pay for them.
    from databright.demo import run_session

    say = _silent if json_out else _print_line
    summary = run_session(rpc, data_dir, seed, say)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    summary["node_started"] = started
    if json_out:
        print_json(summary)
        return
    _print_report(summary)


def _eth(wei: int) -> str:
    return f"{Decimal(wei) / Decimal(10**18):.6f}"


def _print_report(s: dict[str, Any]) -> None:
    out = Console(width=max(console.width, 112))  # the report table needs ~110 columns
    table = Table(title=f"market session on dataset {s['dataset_id']} ({safe(s['dataset'])})")
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
            safe(r["contributor"]), safe(r["role"]),
            "" if r["score_bps"] is None else str(r["score_bps"]),
            f"{r['yes'] / SHARE_UNIT:.0f}/{r['no'] / SHARE_UNIT:.0f}",
            f"[{color}]{r['decision']}[/{color}]",
            f"{r['shares_minted'] / SHARE_UNIT:.2f}", _eth(r["dividend_wei"]),
            safe(", ".join(kinds)),
        )  # fmt: skip
    out.print(table)
    for r in s["proposals"]:
        out.print(f"[bold]{safe(r['contributor'])}[/bold] ({safe(r['data'])}): "
                  + safe(r["flags"] or "no flags"), highlight=False)  # fmt: skip
    m = s["model"]
    out.print(
        f"model {m['model_id']}: benchmark {m['score_bps']} bps, {m['predictions']} predictions "
        f"at {m['price_wei']} wei settled in one transaction of {m['settle_gas']} gas "
        f"({m['gas_per_prediction']:.0f} gas per prediction)",
        highlight=False,
    )
    where = Table(title="where the shareholders' wei came from")
    for col in ("source", "ETH"):
        where.add_column(col)
    where.add_row("direct payment", _eth(s["payment_wei"]))
    where.add_row("forfeited deposits", _eth(s["deposits_forfeited_wei"]))
    where.add_row("training fee (model market)", _eth(m["training_fee_wei"]))
    where.add_row("predictions (shareholders' part)", _eth(m["shareholders_wei"]))
    c = s["compute"]
    where.add_row("training fee (computation market job)", _eth(c["training_fee_wei"]))
    out.print(where)
    out.print(
        f"computation market: job {c['job_id']} trained {c['units']} units with triple "
        f"redundancy on 4 staked workers; the lazy one ({c['lazy_worker']}) was caught and "
        f"slashed {_eth(c['slashed_stake_wei'])} ETH (evidence {', '.join(c['evidence_cids'])}); "
        f"the coordinator attested in software only, allowed as insecure for development",
        highlight=False,
    )
    f = s["federation"]
    out.print(
        f"federated training: federation {f['federation_id']} {f['status']} after {f['rounds']} "
        f"rounds (validation accuracy {' -> '.join(map(str, f['accuracy']))}); the data stayed "
        f"with its {len(f['clients'])} owners, paid by contribution: the attacker "
        f"({f['attacker']}) got {_eth(f['payouts_wei'][f['attacker']])} ETH of "
        f"{_eth(f['paid_wei'])} ETH paid (scores {f['scores_cid']}); the coordinator attested "
        "in software only, accepted by the clients as insecure for development",
        highlight=False,
    )
    sp = s["split"]
    out.print(
        f"model splitting: {len(sp['workers'])} worker processes each held one stage of the "
        f"model (the coordinator the input stage, so no worker saw an example); the checkpoint "
        f"is {'byte for byte' if sp['same_as_unsplit'] else 'NOT'} unsplit training's (hold-out "
        f"accuracy {sp['holdout_accuracy']:.3f}); a cheating stage worker ({sp['cheater']}) was "
        f"caught at step {sp['caught_at_step']} and slashed on chain "
        f"({_eth(sp['slashed']['amount_wei'])} ETH of stake burned, evidence "
        f"{sp['slashed']['evidence_cid']}); each honest epoch paid every stage worker "
        f"(market job {sp['market_jobs']['honest']}); the coordinator attested in software "
        "only, accepted by the workers as insecure for development",
        highlight=False,
    )
    out.print(
        f"the model's owner withdrew {_eth(m['owner_withdrew_wei'])} ETH and the serving node "
        f"{_eth(m['node_withdrew_wei'])} ETH of the {_eth(m['settled_wei'])} ETH settled",
        highlight=False,
    )
    out.print(
        f"payment {_eth(s['payment_wei'])} ETH; claimed {_eth(s['total_claimed_wei'])} ETH; "
        f"dust {s['dust_wei']:.3f} wei; registry entries {s['registry_entries']}; "
        f"session took {s['seconds']} s"
    )
