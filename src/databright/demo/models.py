"""The model-market round of ``make run``: the curated dataset trains a model that pays it back.

After the data market's round, the dataset's initiator sets its terms (a training fee, a price
curve capped by benchmark score); a developer trains a small network on the curated data
(verified against the chain), registers it (paying the training fee to the shareholders); the
evaluator benchmarks it on its held-out split, sealed and then revealed; the developer raises
its price to what its score allows; a user deposits and pays for 1,000 predictions with signed
cumulative receipts, each checked by the serving node before it answers; the node settles the
latest receipt in one transaction, which splits the money among the model's owner, the
dataset's shareholders (as dividends) and the node; owner and node withdraw.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.market import Market
from databright.ml.spec import ModelSpec
from databright.models import ModelMarket, Split, Terms
from databright.types import Wei

__all__ = ["PREDICTIONS", "TERMS", "run_model_round"]

PREDICTIONS = 1000
TERMS = Terms(
    training_fee_wei=10**17,  # 0.1 ETH to the shareholders per (developer, spec)
    margin_bps=100,
    base_price_wei=10**12,
    price_slope_wei=10**14,  # a perfect model may charge 0.000101 ETH per prediction
    commit_period_s=60,
    reveal_period_s=60,
)
SPLIT = Split(owner_bps=6000, data_bps=3000, node_bps=1000)


def demo_spec() -> ModelSpec:
    """The developer's network: a small MLP for 8x8 digits (shipped with the package)."""
    raw = resources.files("databright.demo").joinpath("digits_mlp.json").read_bytes()
    return ModelSpec.from_json(raw)


def _funded(market: Market, wei: int) -> LocalAccount:
    acct: LocalAccount = Account.create()
    market.gateway.transfer(acct.address, Wei(wei))
    return acct


def run_model_round(
    market: Market,
    evaluator_market: Market,
    dataset_id: int,
    test: tuple[np.ndarray, np.ndarray],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Play the model market on ``dataset_id``; ``market`` is the initiator's client (it funds
    the new accounts), ``evaluator_market`` the evaluator's; ``test`` is the evaluator's
    held-out split (features, class indices) that the developer never sees."""
    initiator = ModelMarket.over(market)
    initiator.set_terms(dataset_id, TERMS)
    say(f"model market: dataset {dataset_id} asks a training fee of "
        f"{TERMS.training_fee_wei} wei; price cap {TERMS.base_price_wei} wei + "
        f"{TERMS.price_slope_wei} wei x score")  # fmt: skip

    developer = initiator.as_account(_funded(market, 10**18))
    node = initiator.as_account(_funded(market, 10**17))
    user = initiator.as_account(_funded(market, 10**18))
    evaluator = ModelMarket(evaluator_market, initiator.contract).as_account(
        evaluator_market.gateway.account  # type: ignore[arg-type]
    )

    trained, _ = developer.train(dataset_id, demo_spec())
    say(f"  developer trained on {trained.examples} verified examples: holdout accuracy "
        f"{trained.metrics['holdout_accuracy']:.3f}, checkpoint {trained.checkpoint_cid}")  # fmt: skip
    model = developer.register(
        trained, name="digits-mlp", price_wei=TERMS.base_price_wei, split=SPLIT, node=node.address
    )
    say(f"  model {model.id} registered (training fee {TERMS.training_fee_wei} wei paid to the "
        "shareholders)")  # fmt: skip

    x_test, y_test = test
    sealed = evaluator.commit_benchmark(model.id, x_test, y_test)
    market.gateway.advance_to(model.commit_deadline)
    evaluator.reveal_benchmark(model.id, model.version)
    market.gateway.advance_to(model.reveal_deadline)
    model = initiator.finalize_benchmark(model.id)
    best = initiator.best(dataset_id)
    price = TERMS.price_cap(model.score_bps)
    model = developer.set_price(model.id, price)
    say(f"  evaluator benchmarked it on {len(y_test)} held-out examples: {model.score_bps} bps "
        f"(revealed {sealed.score_bps}; not hardware-attested); best checkpoint {best}; price "
        f"raised to {price} wei per prediction")  # fmt: skip

    owed = PREDICTIONS * model.price_wei
    user.deposit(model.id, owed + owed // 10)
    serving = node.serving(model.id)
    # A session of a thousand requests: atomic replaces without an fsync each (12 ms).
    wallet = user.wallet(model.id, durable=False)
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(x_test), PREDICTIONS)
    correct = 0
    for i in rows:
        receipt = wallet.pay(model.id, model.price_wei)
        label = serving.predict(x_test[i : i + 1], receipt)
        correct += int(label[0] == y_test[i])
    say(f"  user paid for {PREDICTIONS} predictions with {PREDICTIONS} signed receipts "
        f"(accuracy on them {correct / PREDICTIONS:.3f}), no transaction each")  # fmt: skip

    settled = node.settle(model.id)
    say(f"  node settled once: {settled.amount_wei} wei in {settled.gas_used} gas "
        f"({settled.gas_used / PREDICTIONS:.0f} gas per prediction): owner {settled.owner_wei}, "
        f"shareholders {settled.data_wei}, node {settled.node_wei}")  # fmt: skip
    owner_paid = developer.withdraw()
    node_paid = node.withdraw()
    return {
        "model_id": model.id,
        "spec_cid": trained.spec_cid,
        "checkpoint_cid": model.checkpoint_cid,
        "card_cid": model.card_cid,
        "holdout_accuracy": trained.metrics["holdout_accuracy"],
        "score_bps": model.score_bps,
        "price_wei": model.price_wei,
        "training_fee_wei": TERMS.training_fee_wei,
        "predictions": PREDICTIONS,
        "settled_wei": settled.amount_wei,
        "settle_gas": settled.gas_used,
        "gas_per_prediction": settled.gas_used / PREDICTIONS,
        "owner_wei": settled.owner_wei,
        "shareholders_wei": settled.data_wei,
        "node_wei": settled.node_wei,
        "owner_withdrew_wei": int(owner_paid),
        "node_withdrew_wei": int(node_paid),
    }
