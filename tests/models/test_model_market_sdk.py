"""The model market's SDK end to end on a real node: terms, training fee, training on verified
data, registration, a sealed benchmark, paid predictions with receipts, one settlement, and
where the money went."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eth_account import Account

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import (
    CheckpointMismatch,
    ContractReverted,
    InvalidArgument,
    InvalidModelSpec,
    InvalidReceipt,
    NotFound,
)
from databright.market import Governance, Market
from databright.models import ModelMarket, Split, Terms
from databright.models.receipts import sign_receipt
from databright.models.sale import weights_root
from databright.storage import DatasetSchema, cid_to_digest, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=5, proposal_size=30)
SPEC = {
    "input_shape": [64],
    "classes": 10,
    "layers": [{"type": "Linear", "out_features": 32}, {"type": "ReLU"},
               {"type": "Linear", "out_features": 10}],
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.01},
    "epochs": 5,
    "batch_size": 32,
    "seed": 0,
    "holdout": 0.2,
}  # fmt: skip
TERMS = Terms(
    training_fee_wei=10**15,
    margin_bps=100,
    base_price_wei=10**9,
    price_slope_wei=10**12,
    commit_period_s=60,
    reveal_period_s=60,
)


@pytest.fixture
def world(node, tmp_path: Path):
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    evaluator = node.accounts[1]
    ds = market.create_dataset(
        "digits", SCHEMA, initial,
        Governance(evaluators=(evaluator.address,), commit_period_s=60, reveal_period_s=60),
    )  # fmt: skip
    mm = ModelMarket.over(market)
    return node, market, mm, ds


def test_a_model_pays_its_dataset_from_training_and_predictions(world) -> None:
    node, market, mm, ds = world
    with pytest.raises(NotFound, match="no model-market terms"):
        mm.pay_training_fee(ds, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
    mm.set_terms(ds, TERMS)
    assert mm.terms(ds) == TERMS
    dev = mm.as_account(node.accounts[2])
    evaluator = mm.as_account(node.accounts[1])
    serving_node = mm.as_account(node.accounts[3])
    user = mm.as_account(node.accounts[4])

    trained, result = dev.train(ds, dev.load_spec(SPEC))
    assert trained.examples == len(CAST.initial_y)
    assert result.metrics["holdout_accuracy"] > 0.3
    # Training is deterministic: the same spec on the same verified data, the same bytes.
    again, _ = dev.train(ds, dev.load_spec(SPEC))
    assert again.checkpoint_cid == trained.checkpoint_cid

    claimable_before = market.claimable(ds)
    with pytest.raises(InvalidArgument, match="unbenchmarked model may charge at most"):
        dev.register(trained, name="m", price_wei=TERMS.base_price_wei + 1)
    model = dev.register(
        trained, name="mlp", price_wei=TERMS.base_price_wei, split=Split(6000, 3000, 1000),
        node=serving_node.address,
    )  # fmt: skip
    # The initiator holds every share: the whole training fee is its dividend (but the wei the
    # share token's pro-rata division keeps as dust for the next payment).
    assert 0 <= TERMS.training_fee_wei - (market.claimable(ds) - claimable_before) <= 1
    assert model.owner == dev.address and model.dataset_id == ds and not model.benchmarked
    assert dev.training_paid(ds, trained.spec_cid)
    spec, blob = mm.checkpoint_of(model.id)
    assert spec.to_json() == dev.load_spec(SPEC).to_json() and len(blob) > 0

    x_test, y_test = CAST.validation_X[:200], CAST.validation_y[:200]
    with pytest.raises(ContractReverted):
        dev.commit_benchmark(model.id, x_test, y_test)  # the owner never scores its own model
    sealed = evaluator.commit_benchmark(model.id, x_test, y_test)
    with pytest.raises(ContractReverted):
        evaluator.reveal_benchmark(model.id, 1)  # still the commit phase
    market.gateway.advance_to(model.commit_deadline)
    evaluator.reveal_benchmark(model.id, 1)
    market.gateway.advance_to(model.reveal_deadline)
    model = mm.finalize_benchmark(model.id)
    assert model.benchmarked and model.score_bps == sealed.score_bps > 0
    assert mm.best(ds) == (model.id, 1, model.score_bps)
    cap = TERMS.price_cap(model.score_bps)
    with pytest.raises(InvalidArgument, match="may charge at most"):
        dev.set_price(model.id, cap + 1)
    model = dev.set_price(model.id, cap)
    assert [m.id for m in mm.models(ds)] == [model.id]

    # Paid predictions: a deposit, a receipt per request, one settlement.
    user.deposit(model.id, 50 * cap)
    serving = serving_node.serving(model.id)
    wallet = user.wallet(model.id, durable=False)
    answers = []
    for i in range(20):
        answers.append(int(serving.predict(x_test[i : i + 1], wallet.pay(model.id, cap))[0]))
    assert np.mean(np.array(answers) == y_test[:20]) > 0.3
    with pytest.raises(InvalidReceipt):  # signed by someone else than the user it names
        forged = sign_receipt(Account.create(), mm.domain, model.id, 30 * cap, 99)
        serving.predict(x_test[:1], type(forged)(model.id, user.address, 30 * cap, 99,
                                                 forged.signature))  # fmt: skip
    with pytest.raises(InvalidReceipt):  # a receipt that pays nothing more
        serving.predict(x_test[:1], wallet.last(model.id))
    with pytest.raises(InvalidReceipt):  # beyond the deposit
        wallet.pay(model.id, 100 * cap)

    claimable_before = market.claimable(ds)
    settled = serving_node.settle(model.id)
    assert settled.users == 1 and settled.amount_wei == 20 * cap
    assert settled.owner_wei + settled.data_wei + settled.node_wei == 20 * cap
    assert settled.data_wei == 20 * cap * 3000 // 10_000
    assert 0 <= settled.data_wei - (market.claimable(ds) - claimable_before) <= 1
    assert serving_node.settle(model.id).users == 0  # nothing twice
    assert user.escrow(model.id).settled == 20 * cap
    assert dev.earnings() == settled.owner_wei
    assert dev.withdraw() == settled.owner_wei and dev.earnings() == 0
    assert serving_node.withdraw() == settled.node_wei

    impact = mm.impact(ds)
    assert impact.training_revenue_wei == TERMS.training_fee_wei
    assert impact.prediction_revenue_wei == settled.data_wei
    assert impact.models[0]["predictions_paid_wei"] == 20 * cap
    income = mm.income(ds)  # the initiator's: the only shareholder
    assert income == {"training_wei": TERMS.training_fee_wei, "predictions_wei": settled.data_wei}


def test_bad_input_is_refused_in_one_sentence(world) -> None:
    _node, _market, mm, ds = world
    with pytest.raises(NotFound, match="model 7 does not exist"):
        mm.model(7)
    with pytest.raises(InvalidModelSpec):
        mm.load_spec({**SPEC, "layers": [{"type": "Lambda"}]})
    mm.set_terms(ds, TERMS)
    wrong = {**SPEC, "classes": 3, "layers": [{"type": "Linear", "out_features": 3}]}
    with pytest.raises(InvalidModelSpec):
        mm.train(ds, mm.load_spec(wrong))
    with pytest.raises(InvalidArgument, match="split"):
        Split(5000, 5000, 1)
    trained, result = mm.train(ds, mm.load_spec(SPEC))
    model = mm.register(trained, name="x")
    with pytest.raises(InvalidArgument, match="deposit must be positive"):
        mm.deposit(model.id, 0)
    with pytest.raises(NotFound, match="model 99 does not exist"):
        mm.settle(99)
    # A model registered with a weights root that is not its checkpoint's is refused before
    # it is served or benchmarked: the chain's record, not the store, is what counts.
    lying = mm.contract.register_model(
        ds, cid_to_digest(trained.spec_cid), cid_to_digest(trained.checkpoint_cid),
        b"\x01" * 32, cid_to_digest(model.card_cid), 0, 6000, 3000, 1000, mm.address,
    )  # fmt: skip
    lying_id = int(lying.event("ModelRegistered").args["model_id"])
    with pytest.raises(CheckpointMismatch, match="does not match the weights root"):
        mm.checkpoint_of(lying_id)
    # Bytes that are not the spec's tensors under a consistent root are refused too.
    junk = b"not a checkpoint"
    junk_cid = mm.market.store.put(junk)
    junk_model = mm.contract.register_model(
        ds, cid_to_digest(trained.spec_cid), cid_to_digest(junk_cid), weights_root(junk),
        cid_to_digest(model.card_cid), 0, 6000, 3000, 1000, mm.address,
    )  # fmt: skip
    with pytest.raises(CheckpointMismatch):
        mm.checkpoint_of(int(junk_model.event("ModelRegistered").args["model_id"]))
    assert result.checkpoint == mm.checkpoint_of(model.id)[1]
