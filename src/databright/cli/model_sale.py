"""``databright model sell|buy|sale|deliver|accept|reveal|receive|refund|sale-settle``: buying a
benchmarked checkpoint's weights outright, fairly (``WeightSale``, FairSwap).

The seller lists a version and publishes its weights manifest (``sell``, which prints the
manifest's CID for buyers); a buyer checks the manifest against the chain and pays into escrow
(``buy``); the seller delivers the weights encrypted (``deliver``, which prints the ciphertext's
CID: hand it to the buyer only); the buyer checks the ciphertext against the seller's commitment
and accepts it (``accept --cipher CID``); the seller reveals the key (``reveal``); the buyer
decrypts and verifies the weights (``receive --out FILE``), which proves a cheating seller wrong
on-chain and refunds the buyer. ``refund`` is the buyer's way out (cancel before accepting,
or the refund when no key came, then withdraw); ``sale-settle`` pays the seller.

These commands join the ``model`` group: ``register(app)`` adds them to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from databright.atomic import atomic_write
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
    safe,
)
from databright.cli._params import ETH_AMOUNT
from databright.errors import InvalidArgument
from databright.models import ModelMarket
from databright.models.weights import SaleInfo, WeightListing, WeightMarket

__all__ = ["register"]

ModelArg = Annotated[int, typer.Argument(help="Model id (see `databright model list`).")]
SaleArg = Annotated[int, typer.Argument(help="Sale id (printed by `databright model buy`).")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", help="Model version (default: its current one).")
]

_COMMANDS = ("sell", "buy", "sale", "deliver", "accept", "reveal", "receive", "refund",
             "sale-settle")  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the weight-sale commands to the ``model`` group (once, however often called)."""
    if any(c.name in _COMMANDS for c in app.registered_commands):
        return
    app.command("sell")(sell_command)
    app.command("buy")(buy_command)
    app.command("sale")(sale_command)
    app.command("deliver")(deliver_command)
    app.command("accept")(accept_command)
    app.command("reveal")(reveal_command)
    app.command("receive")(receive_command)
    app.command("refund")(refund_command)
    app.command("sale-settle")(settle_command)


def _open(rpc: str, data_dir: Path, account: str | None) -> WeightMarket:
    return WeightMarket.over(ModelMarket.over(open_market(rpc, data_dir, account)))


def _sale_json(sale: SaleInfo) -> dict[str, Any]:
    return {**sale.to_json(), "price_eth": eth_exact(sale.price_wei)}


def _listing_json(listing: WeightListing) -> dict[str, Any]:
    return {
        "model_id": listing.model_id,
        "version": listing.version,
        "listed": listing.listed,
        "seller": listing.seller,
        "price_wei": listing.price_wei,
        "price_eth": eth_exact(listing.price_wei),
        "tree_root": "0x" + listing.tree_root.hex(),
        "n_chunks": listing.n_chunks,
        "byte_length": listing.byte_length,
    }


def _show_sale(sale: SaleInfo, json_out: bool, extra: dict[str, Any] | None = None) -> None:
    body = {**_sale_json(sale), **(extra or {})}
    if json_out:
        print_json(body)
        return
    for key, value in body.items():
        console.print(f"{key:16} {safe(value)}", highlight=False)


def _version(wm: WeightMarket, model: int, version: int | None) -> int:
    return wm.models.model(model).version if version is None else version


def sell_command(
    model: ModelArg,
    price: Annotated[
        str | None, typer.Option("--price", help="ETH the weights cost (lists or reprices).")
    ] = None,
    unlist: Annotated[bool, typer.Option("--unlist", help="Stop selling instead.")] = False,
    version: VersionOpt = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Sell a benchmarked version's weights (its owner): lists it at --price and publishes the
    weights manifest, whose CID buyers need; --unlist stops new sales."""
    if (price is None) == (not unlist):
        raise typer.BadParameter("give exactly one of --price ETH or --unlist")
    wei = None if price is None else ETH_AMOUNT.convert(price)
    wm = _open(rpc, data_dir, account)
    v = _version(wm, model, version)
    manifest_cid = None
    if wei is None:
        with busy(f"unlisting model {model} version {v}"):
            listing = wm.unlist(model, v)
    else:
        with busy(f"listing the weights of model {model} version {v}"):
            manifest_cid = wm.publish_manifest(model, v)
            listing = wm.list(model, v, wei)
    if json_out:
        print_json({**_listing_json(listing), "manifest_cid": manifest_cid})
    elif manifest_cid is None:
        console.print(f"model {model} version {v} is no longer for sale")
    else:
        console.print(f"model {model} version {v} is for sale at {eth_exact(listing.price_wei)} "
                      f"ETH; buyers need its manifest {safe(manifest_cid)}",
                      highlight=False)  # fmt: skip


def buy_command(
    model: ModelArg,
    manifest: Annotated[str, typer.Option("--manifest", help="Weights manifest CID (seller's).")],
    version: VersionOpt = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Buy a listed version's weights: the manifest is checked against the chain, then the
    price is paid into escrow until the weights arrive."""
    wm = _open(rpc, data_dir, account)
    v = _version(wm, model, version)
    with busy(f"buying the weights of model {model} version {v}"):
        sale_id = wm.buy(model, v, manifest)
    sale = wm.sale(sale_id)
    if json_out:
        print_json(_sale_json(sale))
    else:
        console.print(f"sale {sale_id}: {eth_exact(sale.price_wei)} ETH escrowed; the seller "
                      f"must deliver by {sale.deadline} (unix time)", highlight=False)  # fmt: skip


def sale_command(
    sale_id: SaleArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """One sale: buyer, seller, model, price, status and the current phase's deadline."""
    _show_sale(_open(rpc, data_dir, None).sale(sale_id), json_out)


def deliver_command(
    sale_id: SaleArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Deliver the weights of a sale encrypted (its seller); prints the ciphertext's CID, to
    hand to the buyer only (whoever has it can decrypt once the key is revealed)."""
    wm = _open(rpc, data_dir, account)
    with busy(f"delivering sale {sale_id}"):
        cipher_cid = wm.deliver(sale_id)
    if json_out:
        print_json({**_sale_json(wm.sale(sale_id)), "cipher_cid": cipher_cid})
    else:
        console.print(f"sale {sale_id} delivered; give the buyer the ciphertext "
                      f"{safe(cipher_cid)}", highlight=False)  # fmt: skip


def accept_command(
    sale_id: SaleArg,
    cipher: Annotated[str, typer.Option("--cipher", help="Ciphertext CID (seller's).")],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Check the delivered ciphertext against the seller's commitment and accept it (the
    buyer); after that the sale cannot be cancelled."""
    wm = _open(rpc, data_dir, account)
    with busy(f"checking the delivery of sale {sale_id}"):
        if not wm.check_delivery(sale_id, cipher):
            raise InvalidArgument(
                f"the ciphertext {cipher} is not what the seller committed to for sale "
                f"{sale_id}; do not accept it: cancel with `databright model refund {sale_id}`"
            )
        sale = wm.accept(sale_id)
    if json_out:
        print_json(_sale_json(sale))
    else:
        console.print(f"sale {sale_id} accepted; the seller must reveal the key by "
                      f"{sale.deadline} (unix time)", highlight=False)  # fmt: skip


def reveal_command(
    sale_id: SaleArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Reveal the key of an accepted sale (its seller, from the data dir that delivered)."""
    wm = _open(rpc, data_dir, account)
    with busy(f"revealing the key of sale {sale_id}"):
        sale = wm.reveal_key(sale_id)
    if json_out:
        print_json(_sale_json(sale))
    else:
        console.print(f"key of sale {sale_id} revealed; the buyer may complain until "
                      f"{sale.deadline} (unix time)", highlight=False)  # fmt: skip


def receive_command(
    sale_id: SaleArg,
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the safetensors file.", dir_okay=False)
    ],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Decrypt and verify the bought weights (the buyer) and write them to --out; weights that
    are not the benchmarked ones are proven wrong on-chain and the price refunded."""
    wm = _open(rpc, data_dir, account)
    with busy(f"receiving the weights of sale {sale_id}"):
        checkpoint = wm.receive(sale_id)
    atomic_write(out, checkpoint)
    sale = wm.sale(sale_id)
    if json_out:
        print_json({**_sale_json(sale), "out": str(out), "bytes": len(checkpoint)})
    else:
        console.print(f"wrote the benchmarked weights of model {sale.model_id} version "
                      f"{sale.version} to {safe(out)} ({len(checkpoint)} bytes)",
                      highlight=False)  # fmt: skip


def refund_command(
    sale_id: SaleArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Take the money of a sale back (the buyer): cancels one not yet accepted, claims the
    refund of one whose key never came, and withdraws what is credited to you."""
    wm = _open(rpc, data_dir, account)
    sale = wm.sale(sale_id)
    with busy(f"refunding sale {sale_id}"):
        if sale.status in ("paid", "delivered"):
            sale = wm.cancel(sale_id)
        elif sale.status != "refunded":
            sale = wm.refund(sale_id)
        withdrawn = int(wm.withdraw()) if wm.balance() else 0
    extra = {"withdrawn_wei": withdrawn, "withdrawn_eth": eth_exact(withdrawn)}
    if json_out:
        _show_sale(sale, True, extra)
    else:
        console.print(f"sale {sale_id} refunded; withdrew {eth_exact(withdrawn)} ETH to "
                      f"{wm.address}", highlight=False)  # fmt: skip


def settle_command(
    sale_id: SaleArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Pay the seller of a sale: anyone after the complaint window, the buyer earlier; the
    seller also withdraws what is credited to it."""
    wm = _open(rpc, data_dir, account)
    sale = wm.sale(sale_id)
    with busy(f"settling sale {sale_id}"):
        if sale.status != "settled":
            sale = wm.settle(sale_id)
        withdrawn = int(wm.withdraw()) if sale.seller == wm.address and wm.balance() else 0
    extra = {"withdrawn_wei": withdrawn, "withdrawn_eth": eth_exact(withdrawn)}
    if json_out:
        _show_sale(sale, True, extra)
    else:
        console.print(f"sale {sale_id} settled: {eth_exact(sale.price_wei)} ETH to the seller"
                      + (f"; withdrew {eth_exact(withdrawn)} ETH" if withdrawn else ""),
                      highlight=False)  # fmt: skip
