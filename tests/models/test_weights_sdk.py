"""The weight sale's SDK (``databright.models.weights``) on a real node, both kinds: an honest
sale end to end, a cheating seller caught by the buyer's ``receive``, a delivery the buyer
refuses (cancel), a key that never comes (refund), and the one-sentence refusals."""

from __future__ import annotations

import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import (
    CheckpointMismatch,
    ContractReverted,
    InvalidArgument,
    ManifestMismatch,
    NotFound,
    NotPermitted,
)
from databright.market import Governance, Market
from databright.models import ModelMarket, Terms
from databright.models.sale import cipher_root, encrypt, key_commitment, weights_manifest
from databright.models.weights import WeightMarket
from databright.storage import DatasetSchema, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=7, proposal_size=30)
SPEC = {
    "input_shape": [64],
    "classes": 10,
    "layers": [{"type": "Linear", "out_features": 16}, {"type": "ReLU"},
               {"type": "Linear", "out_features": 10}],
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.01},
    "epochs": 1,
    "batch_size": 32,
    "seed": 0,
    "holdout": 0.2,
}  # fmt: skip
PRICE = 10**16


@dataclass
class Sold:
    """A benchmarked model listed for sale, and the parties."""

    node: Any
    seller: WeightMarket
    buyer: WeightMarket
    model_id: int
    manifest_cid: str
    checkpoint: bytes


@pytest.fixture(scope="module")
def sold(node: Any, tmp_path_factory: pytest.TempPathFactory) -> Sold:
    data_dir = tmp_path_factory.mktemp(f"weights-{node.kind}")
    deploy(connect(node.url, node.accounts[0]), data_dir)
    market = Market.connect(node.url, node.accounts[0], data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(
        "digits", SCHEMA, initial,
        Governance(evaluators=(node.accounts[1].address,), commit_period_s=60,
                   reveal_period_s=60),
    )  # fmt: skip
    mm = ModelMarket.over(market)
    mm.set_terms(ds, Terms(commit_period_s=60, reveal_period_s=60))
    dev = mm.as_account(node.accounts[2])
    evaluator = mm.as_account(node.accounts[1])
    trained, _ = dev.train(ds, dev.load_spec(SPEC))
    model = dev.register(trained, name="mlp")
    evaluator.commit_benchmark(model.id, CAST.validation_X[:100], CAST.validation_y[:100])
    market.gateway.advance_to(model.commit_deadline)
    evaluator.reveal_benchmark(model.id, 1)
    market.gateway.advance_to(model.reveal_deadline)
    assert mm.finalize_benchmark(model.id).benchmarked

    seller = WeightMarket.over(dev)
    buyer = seller.as_account(node.accounts[5])
    manifest_cid = seller.publish_manifest(model.id, 1)
    listing = seller.list(model.id, 1, PRICE)
    assert listing.listed and listing.seller == seller.address and listing.price_wei == PRICE
    _, blob = mm.checkpoint_of(model.id, 1)
    assert listing.byte_length == len(blob) and listing.n_chunks > 1
    return Sold(node, seller, buyer, model.id, manifest_cid, blob)


def _withdraw_all(wm: WeightMarket) -> int:
    before = wm.market.gateway.balance()
    amount = wm.withdraw()
    assert wm.balance() == 0
    assert wm.market.gateway.balance() > before  # gas is far below the price
    return int(amount)


def test_an_honest_sale_pays_the_seller_and_gives_the_buyer_the_benchmarked_bytes(
    sold: Sold,
) -> None:
    seller, buyer, model = sold.seller, sold.buyer, sold.model_id
    escrowed = int(buyer.contract.escrowed())
    paid_before = buyer.market.gateway.balance()
    sale_id = buyer.buy(model, 1, sold.manifest_cid)
    assert buyer.market.gateway.balance() <= paid_before - PRICE
    assert int(buyer.contract.escrowed()) == escrowed + PRICE
    sale = buyer.sale(sale_id)
    assert (sale.status, sale.buyer, sale.seller) == ("paid", buyer.address, seller.address)

    with pytest.raises(NotPermitted, match="only the seller"):
        buyer.deliver(sale_id)
    with pytest.raises(ContractReverted, match="not the seller"):
        buyer.contract.deliver(sale_id, b"\x01" * 32, b"\x02" * 32)
    cipher_cid = seller.deliver(sale_id)
    assert seller.deliver(sale_id) == cipher_cid  # a retry commits nothing new
    key_file = seller._record_path(sale_id, "seller")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert buyer.sale(sale_id).status == "delivered"
    with pytest.raises(InvalidArgument, match="was not checked"):
        buyer.accept(sale_id)
    assert buyer.check_delivery(sale_id, cipher_cid)
    assert buyer.accept(sale_id).status == "accepted"
    with pytest.raises(InvalidArgument, match="is accepted, so it cannot be cancelled"):
        buyer.cancel(sale_id)
    with pytest.raises(InvalidArgument, match="may reveal its key until"):
        buyer.refund(sale_id)
    assert seller.reveal_key(sale_id).status == "revealed"

    assert buyer.receive(sale_id) == sold.checkpoint
    with pytest.raises(InvalidArgument, match="may complain until"):
        seller.settle(sale_id)
    assert buyer.settle(sale_id).status == "settled"  # the buyer waives its window
    assert buyer.receive(sale_id) == sold.checkpoint  # still readable once settled
    assert seller.balance() == PRICE
    assert _withdraw_all(seller) == PRICE

    # A second sale settles by the clock: anyone may settle once the complaint window is over.
    sale_id = buyer.buy(model, 1, sold.manifest_cid)
    assert buyer.check_delivery(sale_id, seller.deliver(sale_id))
    buyer.accept(sale_id)
    deadline = seller.reveal_key(sale_id).deadline
    seller.market.gateway.advance_to(deadline + 1)
    assert seller.settle(sale_id).status == "settled"
    assert _withdraw_all(seller) == PRICE
    assert int(buyer.contract.escrowed()) == escrowed


def test_a_cheating_seller_is_proven_wrong_and_the_buyer_refunded(sold: Sold) -> None:
    seller, buyer = sold.seller, sold.buyer
    sale_id = buyer.buy(sold.model_id, 1, sold.manifest_cid)
    # The seller encrypts other weights (one byte off in chunk 3) and commits to them.
    altered = bytearray(sold.checkpoint)
    altered[3 * 1024 + 17] ^= 0x01
    key = secrets.token_bytes(32)
    cipher = encrypt(bytes(altered), key, sale_id)
    cid = seller.market.store.put(cipher)
    seller.contract.deliver(sale_id, cipher_root(cipher), key_commitment(key, sale_id))
    assert buyer.check_delivery(sale_id, cid)  # the ciphertext is what was committed to...
    buyer.accept(sale_id)
    seller.contract.reveal_key(sale_id, key)
    with pytest.raises(CheckpointMismatch, match=r"not the benchmarked ones \(chunk 3\)"):
        buyer.receive(sale_id)  # ...but it decrypts to other weights: complained, refunded
    assert buyer.sale(sale_id).status == "refunded"
    assert buyer.balance() == PRICE
    with pytest.raises(InvalidArgument, match="is refunded, so it cannot be settled"):
        seller.settle(sale_id)
    assert _withdraw_all(buyer) == PRICE
    with pytest.raises(InvalidArgument, match="nothing to withdraw"):
        buyer.withdraw()


def test_a_buyer_cancels_a_wrong_delivery_and_is_refunded_when_no_key_comes(sold: Sold) -> None:
    seller, buyer = sold.seller, sold.buyer
    sale_id = buyer.buy(sold.model_id, 1, sold.manifest_cid)
    seller.deliver(sale_id)
    # What the buyer is handed is not what the seller committed to: refuse it.
    other = seller.market.store.put(encrypt(sold.checkpoint, secrets.token_bytes(32), sale_id))
    assert not buyer.check_delivery(sale_id, other)
    with pytest.raises(InvalidArgument, match="was not checked"):
        buyer.accept(sale_id)
    assert buyer.cancel(sale_id).status == "refunded"
    assert buyer.balance() == PRICE

    # A seller that never reveals: the refund opens after the reveal window.
    sale_id = buyer.buy(sold.model_id, 1, sold.manifest_cid)
    assert buyer.check_delivery(sale_id, seller.deliver(sale_id))
    deadline = buyer.accept(sale_id).deadline
    buyer.market.gateway.advance_to(deadline + 1)
    with pytest.raises(ContractReverted, match="reveal too late"):
        seller.contract.reveal_key(sale_id, b"\x00" * 32)
    assert seller.refund(sale_id).status == "refunded"  # anyone may call it
    assert _withdraw_all(buyer) == 2 * PRICE


def test_bad_input_is_refused_in_one_sentence(sold: Sold, tmp_path: Path) -> None:
    seller, buyer, model = sold.seller, sold.buyer, sold.model_id
    with pytest.raises(NotFound, match="sale 999 does not exist"):
        buyer.sale(999)
    with pytest.raises(NotFound, match="model 999 does not exist"):
        buyer.buy(999, 1, sold.manifest_cid)
    with pytest.raises(NotFound, match=f"model {model} has no version 2"):
        buyer.buy(model, 2, sold.manifest_cid)
    with pytest.raises(NotPermitted, match="only its owner may sell"):
        buyer.list(model, 1, PRICE)
    with pytest.raises(InvalidArgument, match="lists these weights itself"):
        seller.buy(model, 1, sold.manifest_cid)
    # A manifest of other weights is refused before anything is paid.
    wrong = buyer.market.store.put(weights_manifest(sold.checkpoint + b"\x00"))
    nonce = buyer.market.gateway.transaction_count(buyer.address, "latest")
    with pytest.raises(ManifestMismatch, match="does not give the registered weights root"):
        buyer.buy(model, 1, wrong)
    assert buyer.market.gateway.transaction_count(buyer.address, "latest") == nonce
    # Unlisted: no new sale.
    assert not seller.unlist(model, 1).listed
    with pytest.raises(NotFound, match="is not listed for sale"):
        buyer.buy(model, 1, sold.manifest_cid)
    assert seller.list(model, 1, PRICE).listed
