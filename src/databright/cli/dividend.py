"""``databright pay|claim``: payments to a dataset's shareholders and the dividends they claim.

Amounts are ETH, written and shown as exact decimals. Both commands sign with the keystore
account ``--account`` (an index, 0 = first, or an address).
"""

from __future__ import annotations

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
from databright.cli._params import ETH_AMOUNT

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("pay")(pay_command)
    app.command("claim")(claim_command)


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
