"""``databright pay|claim|dividends``: payments to a dataset's shareholders, the dividends they
claim, and the history of both.

Amounts are ETH, written and shown as exact decimals. Both commands sign with the keystore
account ``--account`` (an index, 0 = first, or an address).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
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
    print_json,
    short_address,
    utc,
)
from databright.cli._params import ACCOUNT, ETH_AMOUNT, resolve_account
from databright.market import queries

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("pay")(pay_command)
    app.command("claim")(claim_command)
    app.command("dividends")(dividends_command)


def pay_command(
    dataset: DatasetArg,
    amount: Annotated[str, typer.Argument(help="ETH to pay, as a decimal (e.g. 0.5).")],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Pay ETH to a dataset's shareholders, split pro rata to their shares now."""
    wei = ETH_AMOUNT.convert(amount)  # a bad amount is a usage error, like any bad argument
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


def dividends_command(
    target: Annotated[
        str | None,
        typer.Argument(
            parser=ACCOUNT,
            metavar="[ACCOUNT]",
            help="Whose dividends: keystore index or any address (default: --account).",
        ),
    ] = None,
    dataset: Annotated[
        int | None, typer.Option("--dataset", help="Only this dataset (default: every one).")
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Payment and dividend history: what was paid to each dataset the account holds shares
    of (or paid to), what the account claimed, and what it can claim now."""
    who = resolve_account(data_dir, target if target is not None else account)
    market = open_market(rpc, data_dir, None)
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    with busy(f"reading the payments and dividends of {who}"):
        ids = [dataset] if dataset is not None else [int(d.id) for d in market.datasets()]
        times: dict[int, int] = {}

        def when(block: int) -> int:
            if block not in times:
                times[block] = market.gateway.block_timestamp(block)
            return times[block]

        for ds in ids:
            paid = queries.payments(market, ds)
            claimed = queries.claims(market, ds, who)
            shares = market.shares_of(ds, who)
            owed = int(market.claimable(ds, who))
            if not (shares or owed or claimed or any(p.payer == who for p in paid)):
                continue  # nothing of this account's here
            for p in paid:
                rows.append({"dataset_id": ds, "kind": "payment", "account": p.payer,
                             "amount_wei": int(p.amount), "amount_eth": eth_exact(p.amount),
                             "block_number": p.block_number, "time": when(p.block_number)})  # fmt: skip
            for c in claimed:
                rows.append({"dataset_id": ds, "kind": "claim", "account": c.account,
                             "amount_wei": int(c.amount), "amount_eth": eth_exact(c.amount),
                             "block_number": c.block_number, "time": when(c.block_number)})  # fmt: skip
            summary.append({"dataset_id": ds, "shares": shares,
                            "paid_in_wei": sum(int(p.amount) for p in paid),
                            "claimed_wei": sum(int(c.amount) for c in claimed),
                            "claimable_wei": owed, "claimable_eth": eth_exact(owed)})  # fmt: skip
    rows.sort(key=lambda r: (r["block_number"], r["dataset_id"]))
    if json_out:
        print_json({"address": who, "datasets": summary, "history": rows})
        return
    if not rows and not summary:
        console.print(f"{who} has no shares, payments or dividends on this market")
        return
    table = Table(title=f"payments and dividends of {who}")
    for name in ("time", "dataset", "what", "by", "ETH"):
        table.add_column(name, justify="right" if name in ("dataset", "ETH") else "left")
    for r in rows:
        what = "paid to shareholders" if r["kind"] == "payment" else "claimed"
        table.add_row(utc(r["time"]), str(r["dataset_id"]), what,
                      short_address(r["account"], who), r["amount_eth"])  # fmt: skip
    console.print(table)
    for s in summary:
        console.print(
            f"dataset {s['dataset_id']}: {eth_exact(s['paid_in_wei'])} ETH paid in, "
            f"{eth_exact(s['claimed_wei'])} ETH claimed, {s['claimable_eth']} ETH to claim now",
            highlight=False,
        )
