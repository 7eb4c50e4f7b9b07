"""``databright model sell|buy|sale|deliver|accept|reveal|receive|refund|sale-settle``
(``databright.cli.model_sale``): an honest weight sale from the command line with ``--json``,
and bad input answered in one sentence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Env, cli, cli_json, make_env

from databright.chain.gateway import connect
from databright.cli import model as model_cli
from databright.cli import model_sale
from databright.demo.cast import digits_scenario
from databright.market import Governance, Market
from databright.models import ModelMarket, Terms
from databright.storage import DatasetSchema, validate_examples

# The lead wires this into `model` (src/databright/cli/model.py); registering twice is a no-op.
model_sale.register(model_cli.app)

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=9, proposal_size=30)
SPEC = {
    "input_shape": [64],
    "classes": 10,
    "layers": [{"type": "Linear", "out_features": 10}],
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.01},
    "epochs": 1,
    "batch_size": 32,
    "seed": 0,
    "holdout": 0.2,
}
SELLER, BUYER = "2", "3"  # keystore indices (node accounts 2 and 3)


@dataclass
class Benchmarked:
    env: Env
    model_id: int
    checkpoint: bytes


@pytest.fixture(scope="module")
def benchmarked(node: Any, tmp_path_factory: pytest.TempPathFactory) -> Benchmarked:
    """A model of account 2, benchmarked by account 1, in a data dir with keystores 0-3."""
    env = make_env(node, tmp_path_factory.mktemp(f"cli-sale-{node.kind}"))
    market = Market.connect(node.url, node.accounts[0], env.data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(
        "digits", SCHEMA, initial, Governance(evaluators=(node.accounts[1].address,))
    )
    mm = ModelMarket.over(market)
    mm.set_terms(ds, Terms(commit_period_s=60, reveal_period_s=60))
    dev = mm.as_account(node.accounts[2])
    evaluator = mm.as_account(node.accounts[1])
    trained, _ = dev.train(ds, dev.load_spec(SPEC))
    model = dev.register(trained, name="linear")
    evaluator.commit_benchmark(model.id, CAST.validation_X[:100], CAST.validation_y[:100])
    market.gateway.advance_to(model.commit_deadline)
    evaluator.reveal_benchmark(model.id, 1)
    market.gateway.advance_to(model.reveal_deadline)
    assert mm.finalize_benchmark(model.id).benchmarked
    return Benchmarked(env, model.id, mm.checkpoint_of(model.id)[1])


def test_an_honest_weight_sale_from_the_command_line(
    benchmarked: Benchmarked, tmp_path: Path, fails: Callable[..., tuple[int, str]]
) -> None:
    env, model = benchmarked.env, str(benchmarked.model_id)
    listed = cli_json(env, "model", "sell", model, "--price", "0.01", "-a", SELLER)
    assert listed["listed"] and listed["price_wei"] == 10**16 and listed["version"] == 1
    manifest = listed["manifest_cid"]
    bought = cli_json(env, "model", "buy", model, "--manifest", manifest, "-a", BUYER)
    assert bought["status"] == "paid" and bought["price_eth"] == "0.01"
    sale = str(bought["id"])
    cipher = cli_json(env, "model", "deliver", sale, "-a", SELLER)["cipher_cid"]
    assert cli_json(env, "model", "accept", sale, "--cipher", cipher, "-a", BUYER)["status"] == (
        "accepted"
    )
    assert cli_json(env, "model", "reveal", sale, "-a", SELLER)["status"] == "revealed"
    out = tmp_path / "bought.safetensors"
    received = cli_json(env, "model", "receive", sale, "--out", str(out), "-a", BUYER)
    assert out.read_bytes() == benchmarked.checkpoint and received["bytes"] == out.stat().st_size
    settled = cli_json(env, "model", "sale-settle", sale, "-a", BUYER)  # the buyer waives
    assert settled["status"] == "settled" and settled["withdrawn_wei"] == 0
    paid = cli_json(env, "model", "sale-settle", sale, "-a", SELLER)
    assert paid["withdrawn_wei"] == 10**16
    assert cli_json(env, "model", "sale", sale)["status"] == "settled"
    assert "settled" in cli(env, "model", "sale", sale).stdout

    # Bad input: one sentence, and nothing sent.
    code, line = fails("model", "sale", "999", *env.opts())
    assert code == 5 and "sale 999 does not exist" in line
    assert not cli_json(env, "model", "sell", model, "--unlist", "-a", SELLER)["listed"]
    gw = connect(env.url)
    nonce = gw.transaction_count(env.addresses[3], "latest")
    code, line = fails("model", "buy", model, "--manifest", manifest, "-a", BUYER, *env.opts())
    assert code == 5 and f"version 1 of model {model} is not listed for sale" in line
    assert gw.transaction_count(env.addresses[3], "latest") == nonce
