"""``databright access price|buy|status``: paid access to a dataset's curated data.

A dataset's initiator prices its data (``price DATASET ETH``; ``0`` makes it public again, and
``price DATASET`` alone shows the price); anyone buys access for an account (``buy``; the price
goes to the dataset's shareholders as a dividend); ``status`` says whether an account has access
and why. The platform server's gatekeeper (``GET /api/v1/datasets/{id}/data``) serves a priced
dataset's data only to a signed-in account with access. Amounts are ETH, as exact decimals.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

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
)
from databright.cli._params import ACCOUNT, ETH_AMOUNT_OR_ZERO, resolve_account
from databright.market.access import AccessStatus, DataAccess

__all__ = ["app"]

app = typer.Typer(
    help="Paid access to datasets' curated data: price, buy, status.", no_args_is_help=True
)

_REASONS = {
    "free": "the dataset is free: its data is public",
    "bought": "access was bought",
    "initiator": "it is the dataset's initiator",
    "evaluator": "it is one of the dataset's evaluators",
    "shareholder": "it holds shares of the dataset",
    "none": "it has no access",
}


def _open(rpc: str, data_dir: Path, account: str | None) -> DataAccess:
    return DataAccess.over(open_market(rpc, data_dir, account))


def _status_json(s: AccessStatus) -> dict[str, object]:
    body: dict[str, object] = asdict(s)
    body["price_eth"] = eth_exact(s.price_wei)
    body["revenue_eth"] = eth_exact(s.revenue_wei)
    return body


@app.command("price")
def price_command(
    dataset: DatasetArg,
    price: Annotated[
        str | None,
        typer.Argument(help="New access price in ETH (0: public); omit to show the price."),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Show a dataset's access price, or set it (its initiator only)."""
    if price is None:
        current = _open(rpc, data_dir, None).price(dataset)
        if json_out:
            print_json({"dataset_id": dataset, "price_wei": int(current),
                        "price_eth": eth_exact(current)})  # fmt: skip
        elif current == 0:
            console.print(f"dataset {dataset} is free: its data is public")
        else:
            console.print(
                f"access to dataset {dataset} costs [bold]{eth_exact(current)} ETH[/bold]"
            )
        return
    wei = ETH_AMOUNT_OR_ZERO.convert(price)  # a bad amount is a usage error
    access = _open(rpc, data_dir, account)
    with busy(f"setting the access price of dataset {dataset}"):
        receipt = access.set_price(dataset, wei)
    if json_out:
        print_json({"dataset_id": dataset, "price_wei": int(wei), "price_eth": eth_exact(wei),
                    "tx_hash": receipt.tx_hash})  # fmt: skip
    elif wei == 0:
        console.print(f"dataset {dataset} is free: its data is public (tx {receipt.tx_hash})")
    else:
        console.print(f"access to dataset {dataset} now costs [bold]{eth_exact(wei)} ETH[/bold] "
                      f"(tx {receipt.tx_hash})")  # fmt: skip


@app.command("buy")
def buy_command(
    dataset: DatasetArg,
    for_account: Annotated[
        str | None,
        typer.Option(
            "--for",
            parser=ACCOUNT,
            metavar="ACCOUNT",
            help="Who gets access: keystore index or any address (default: --account).",
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Buy access to a dataset's data at its price now; the price goes to its shareholders."""
    who = resolve_account(data_dir, for_account) if for_account is not None else None
    access = _open(rpc, data_dir, account)
    target = who or access.address
    with busy(f"buying access to dataset {dataset} for {target}"):
        paid = access.buy(dataset, target)
    if json_out:
        print_json({"dataset_id": dataset, "buyer": access.address, "account": target,
                    "paid_wei": int(paid), "paid_eth": eth_exact(paid)})  # fmt: skip
        return
    console.print(f"{target} has access to dataset {dataset}: paid [bold]{eth_exact(paid)} "
                  "ETH[/bold] to its shareholders")  # fmt: skip


@app.command("status")
def status_command(
    dataset: DatasetArg,
    target: Annotated[
        str | None,
        typer.Argument(
            parser=ACCOUNT,
            metavar="[ACCOUNT]",
            help="Whose access: keystore index or any address (default: --account).",
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Whether an account may download a dataset's data now, and why."""
    who = resolve_account(data_dir, target if target is not None else account)
    status = _open(rpc, data_dir, None).status(dataset, who)
    if json_out:
        print_json(_status_json(status))
        return
    price = "free" if status.price_wei == 0 else f"{eth_exact(status.price_wei)} ETH"
    verdict = "has access" if status.has_access else "has [bold]no[/bold] access"
    console.print(f"{who} {verdict} to dataset {dataset} ({_REASONS[status.reason]}); price "
                  f"{price}, {status.buyers} bought, {eth_exact(status.revenue_wei)} ETH paid "
                  "to its shareholders")  # fmt: skip
