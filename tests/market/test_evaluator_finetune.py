"""The seed paper's valuation beside KNN-Shapley: the fine-tuning gain of the dataset's best
registered model, in every report, and the score when the evaluator is told to score by it."""

from __future__ import annotations

from pathlib import Path

import pytest

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import InvalidArgument
from databright.market import Governance, Market
from databright.market.evaluator import EvaluatorService
from databright.models import ModelMarket, Terms
from databright.storage import DatasetSchema, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=4, proposal_size=40)
SPEC = {
    "input_shape": [64],
    "classes": 10,
    "layers": [{"type": "Linear", "out_features": 32}, {"type": "ReLU"},
               {"type": "Linear", "out_features": 10}],
    "optimizer": {"type": "adam", "lr": 0.01},
    "epochs": 10,
    "batch_size": 32,
    "seed": 0,
}  # fmt: skip


def test_reports_hold_the_best_models_finetuning_gain(node, tmp_path: Path) -> None:
    if node.kind != "anvil":
        pytest.skip("one node suffices: the model market's SDK runs on both in tests/models")
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(
        "finetune", SCHEMA, initial,
        Governance(evaluators=(node.accounts[1].address,), commit_period_s=60, reveal_period_s=60),
    )  # fmt: skip
    mm = ModelMarket.over(market)
    evaluator = market.as_account(node.accounts[1])
    with pytest.raises(InvalidArgument, match="needs the dataset's best registered model"):
        EvaluatorService(evaluator, ds, CAST.validation_X[:1], score_by="finetune_gain")

    mm.set_terms(ds, Terms(commit_period_s=60, reveal_period_s=60))
    trained, _ = mm.train(ds, mm.load_spec(SPEC))
    model = mm.register(trained, name="base")
    judge = mm.as_account(node.accounts[1])
    validation = validate_examples(CAST.validation_X, CAST.validation_y, SCHEMA, source="val")
    judge.commit_benchmark(model.id, CAST.validation_X, CAST.validation_y)
    market.gateway.advance_to(model.commit_deadline)
    judge.reveal_benchmark(model.id, 1)
    market.gateway.advance_to(model.reveal_deadline)
    mm.finalize_benchmark(model.id)
    assert mm.best(ds) is not None

    def best():
        model_id, version, _ = mm.best(ds)
        spec, blob = mm.checkpoint_of(model_id, version)
        return spec, blob, f"model {model_id} version {version}"

    contributor = market.as_account(node.accounts[2])
    honest, poisoner = CAST.contributions[1], CAST.contributions[6]
    p_honest = contributor.propose(ds, validate_examples(honest.X, honest.y, SCHEMA, source="h"))
    p_poison = contributor.propose(
        ds, validate_examples(poisoner.X, poisoner.y, SCHEMA, source="p")
    )
    service = EvaluatorService(evaluator, ds, validation, best_model=best, score_by="finetune_gain")
    good = service.evaluate(p_honest)
    bad = service.evaluate(p_poison)
    for posted in (good, bad):
        gain = posted.report["valuation"]["finetune"]
        assert gain["model"] == f"model {model.id} version 1"
        assert posted.score_bps == round(gain["gain"] * 10_000 * 100)
    # Poison (3s and 5s labelled 8) costs the best model accuracy; clean data does not.
    assert bad.report["valuation"]["finetune"]["gain"] < 0
    assert good.score_bps > bad.score_bps
