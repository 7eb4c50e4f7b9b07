"""``databright model ...``: the model market from the command line, on both nodes.

One story through the CLI (terms, train, register, a sealed benchmark, a deposit, paid
predictions through a serving node over HTTP, one settlement, withdrawals, impact), then the
bad input a user meets, each answered in one sentence."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_helpers import Env, cli_json
from databright_dev.serving import serving

from databright.compute.attestation import SoftwareProvider, report_data_for
from databright.demo.cast import digits_scenario
from databright.market import Governance, Market
from databright.models import ModelMarket
from databright.server.serving import serving_app
from databright.storage import DatasetSchema, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=9, proposal_size=30)
SPEC = {
    "input_shape": [64],
    "classes": 10,
    "layers": [{"type": "Linear", "out_features": 16}, {"type": "ReLU"},
               {"type": "Linear", "out_features": 10}],
    "optimizer": {"type": "adam", "lr": 0.01},
    "epochs": 3,
    "batch_size": 32,
    "seed": 0,
}  # fmt: skip


@pytest.fixture(scope="module")
def story(node: Any, env: Env, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A dataset whose evaluator is account 1, and the files the commands read."""
    files = tmp_path_factory.mktemp(f"model-cli-{node.kind}")
    market = Market.connect(node.url, node.accounts[0], env.data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(
        "model cli", SCHEMA, initial,
        Governance(evaluators=(env.addresses[1],), commit_period_s=60, reveal_period_s=60),
    )  # fmt: skip
    (files / "spec.json").write_text(json.dumps(SPEC))
    (files / "unknown.json").write_text(json.dumps({**SPEC, "layers": [{"type": "Lambda"}]}))
    np.savez(files / "test.npz", X=CAST.validation_X[:100], y=CAST.validation_y[:100])
    np.savetxt(files / "inputs.csv", CAST.validation_X[:5], delimiter=",")
    np.savetxt(files / "wrong.csv", CAST.validation_X[:5, :10], delimiter=",")
    # The evaluator's machine attests in software only (a development setup), bound to its key.
    statement = SoftwareProvider.attest(
        node.accounts[1].key, measurement="ab" * 32,
        report_data=report_data_for(env.addresses[1]), issued_at=int(time.time()),
    )  # fmt: skip
    (files / "evidence.json").write_bytes(statement)
    return {"ds": int(ds), "files": files, "market": market}


def test_train_register_benchmark_predict_settle(env: Env, story: dict[str, Any]) -> None:
    ds, files, market = str(story["ds"]), story["files"], story["market"]
    terms = cli_json(env, "model", "terms", ds, "--training-fee", "0.001",
                     "--base-price", "0.000001", "--price-slope", "0.0001")  # fmt: skip
    assert terms["terms"]["training_fee_wei"] == 10**15
    trained = cli_json(env, "model", "train", "--dataset", ds, "--spec", str(files / "spec.json"),
                       "--account", "2")  # fmt: skip
    assert trained["examples"] == len(CAST.initial_y) and trained["checkpoint_cid"]
    model = cli_json(env, "model", "register", trained["checkpoint_cid"], "--name", "cli mlp",
                     "--price", "0.000001", "--node", env.addresses[3], "--account", "2")  # fmt: skip
    mid = str(model["id"])
    assert model["owner"] == env.addresses[2] and model["node"] == env.addresses[3]

    sealed = cli_json(env, "model", "benchmark", mid, "--test", str(files / "test.npz"),
                      "--evidence", str(files / "evidence.json"), "--account", "1")  # fmt: skip
    assert "salt" not in sealed and 0 < sealed["score_bps"] <= 10_000
    claims = json.loads(sealed["attestation"])
    assert claims["provider"] == "software" and claims["hardware_backed"] is False
    assert not sealed["attested"]
    market.gateway.advance_to(model["commit_deadline"])
    cli_json(env, "model", "benchmark", mid, "--reveal", "--account", "1")
    market.gateway.advance_to(model["reveal_deadline"])
    final = cli_json(env, "model", "benchmark", mid, "--finalize")
    assert final["score_bps"] == sealed["score_bps"] and final["best"][0] == model["id"]
    listed = cli_json(env, "model", "list", "--dataset", ds)
    assert [m["id"] for m in listed] == [model["id"]] and listed[0]["benchmarked"]

    cli_json(env, "model", "deposit", mid, "0.001")  # account 0 pays for predictions
    mm = ModelMarket.over(market).as_account(market.gateway.account)  # type: ignore[arg-type]
    node_side = ModelMarket.over(Market.connect(env.url, None, env.data_dir))
    from databright.chain.keystore import Keystore

    node_side = node_side.as_account(Keystore(env.data_dir / "keystore").load(3))
    with serving(serving_app(node_side.serving(model["id"]))) as url:
        paid = cli_json(env, "model", "predict", mid, str(files / "inputs.csv"), "--node", url)
        again = cli_json(env, "model", "predict", mid, str(files / "inputs.csv"), "--node", url)
    assert len(paid["predictions"]) == 5 and paid["paid_wei"] == 5 * 10**12
    assert again["total_wei"] == 10 * 10**12 and again["nonce"] == paid["nonce"] + 1
    assert mm.escrow(model["id"]).settled == 0

    settled = cli_json(env, "model", "settle", mid, "--account", "3")
    assert settled["amount_wei"] == 10 * 10**12 and settled["users"] == 1
    owner = cli_json(env, "model", "withdraw", "--account", "2")
    assert owner["withdrawn_wei"] == settled["owner_wei"]
    impact = cli_json(env, "model", "impact", ds)
    assert impact["training_revenue_wei"] == 10**15
    assert impact["prediction_revenue_wei"] == settled["data_wei"]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["model", "show", "999"], 5, ["model 999 does not exist"]),
        (["model", "train", "--dataset", "{ds}", "--spec", "{files}/unknown.json"], 1,
         ["unknown layer type 'Lambda'"]),
        (["model", "train", "--dataset", "{ds}", "--spec", "{files}/missing.json"], 1,
         ["cannot read the model spec"]),
        (["model", "register", "bafkreinope", "--name", "x"], 5, ["run `databright model train`"]),
        (["model", "terms", "999", "--training-fee", "0.1"], 5, ["dataset 999 does not exist"]),
        (["model", "benchmark", "1"], 2, []),
    ],
    ids=["unknown-model", "unknown-layer", "missing-spec", "untrained", "unknown-dataset",
         "benchmark-what"],
)  # fmt: skip
def test_bad_input_is_one_sentence(
    env: Env, story: dict[str, Any], fails: Any, args: list[str], code: int, words: list[str]
) -> None:
    argv = [a.format(ds=story["ds"], files=story["files"]) for a in args]
    got, line = fails(*argv, *env.opts(), usage=code == 2)
    assert got == code, line
    for word in words:
        assert word in line, line


def test_predict_refuses_inputs_of_the_wrong_shape(
    env: Env, story: dict[str, Any], fails: Any, tmp_path: Path
) -> None:
    market = story["market"]
    mm = ModelMarket.over(market)
    if mm.model_count() == 0:
        pytest.skip("needs the story's model")
    code, line = fails("model", "predict", "1", str(story["files"] / "wrong.csv"),
                       "--node", "http://127.0.0.1:9", *env.opts())  # fmt: skip
    assert code == 1 and "examples of shape (64,)" in line, line
    code, line = fails("model", "predict", "1", str(story["files"] / "inputs.csv"),
                       "--node", "http://127.0.0.1:9", *env.opts())  # fmt: skip
    assert code == 3 and "does not answer" in line, line
