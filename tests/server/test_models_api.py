"""The model market's REST API over a real node (anvil), a real uvicorn and both databases: a
small story (terms, two models, one benchmarked, a paid settlement, shares moving between
payments), then the models ranked and paged, one model's versions and benchmark, a dataset's
impact and an account's income by source, checked against the chain; problem documents for
bad requests; schemathesis over the new operations; and the indexer's model registry across
a late-given model market, a migration and a reorg."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from databright_dev.serving import serving
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from sqlalchemy import select
from sqlalchemy.orm import Session

from databright.chain.deploy import deploy, load_deployment
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import ChainIndexError
from databright.market import Governance, Market
from databright.models import ModelMarket, Split, Terms
from databright.models.market import ModelInfo, Settlement
from databright.server.api import models as models_api
from databright.server.index import IndexedModel, Indexer, open_index
from databright.server.platform import Platform, create_app
from databright.storage import DatasetSchema, validate_examples

# The API reads the index, whichever node filled it: one node keeps the file fast.
ANVIL = pytest.mark.parametrize("node", ["anvil"], indirect=True)

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=17, proposal_size=20)
SPEC = {
    "input_shape": [64],
    "classes": 10,
    "layers": [{"type": "Linear", "out_features": 16}, {"type": "ReLU"},
               {"type": "Linear", "out_features": 10}],
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.02},
    "epochs": 3,
    "batch_size": 32,
    "seed": 0,
    "holdout": 0.2,
}  # fmt: skip
OTHER_SPEC = {**SPEC, "layers": [{"type": "Linear", "out_features": 10}]}
TERMS = Terms(
    training_fee_wei=10**15 + 1,  # odd: pro-rata halves round
    margin_bps=100,
    base_price_wei=10**9,
    price_slope_wei=10**12,
    commit_period_s=60,
    reveal_period_s=60,
)
PAID = 3 * 10**19  # a direct payment over 2**64: exact only as strings
PREDICTIONS = 5


@dataclass
class Story:
    node: object
    data_dir: Path
    market: Market
    mm: ModelMarket
    ds: int
    empty_ds: int
    best: ModelInfo  # benchmarked, priced at its cap
    plain: ModelInfo  # never benchmarked
    settled: Settlement
    score_bps: int
    holder: str  # held half the shares for the first training fee only
    start: int


@pytest.fixture(scope="module")
def story(node, tmp_path_factory) -> Story:
    data_dir = tmp_path_factory.mktemp("models-api")
    start = connect(node.url).block_number() + 1
    deploy(connect(node.url, node.accounts[0]), data_dir)
    market = Market.connect(node.url, node.accounts[0], data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    evaluator, dev, serving_node, user, holder = (node.accounts[i] for i in (1, 2, 3, 4, 5))
    ds = market.create_dataset(
        "models", SCHEMA, initial,
        Governance(evaluators=(evaluator.address,), commit_period_s=60, reveal_period_s=60),
    )  # fmt: skip
    empty_ds = market.create_dataset("no-models", SCHEMA, initial, Governance())
    mm = ModelMarket.over(market)
    mm.set_terms(ds, TERMS)
    as_dev = mm.as_account(dev)

    # Half the shares are the holder's while the first training fee is paid, none afterwards.
    shares = int(market.token(ds).balanceOf(market.address))
    market.token(ds).transfer(holder.address, shares // 2)
    trained, _ = as_dev.train(ds, as_dev.load_spec(SPEC))
    best = as_dev.register(
        trained, name="mlp", price_wei=TERMS.base_price_wei, split=Split(6000, 3000, 1000),
        node=serving_node.address,
    )  # fmt: skip
    market.as_account(holder).token(ds).transfer(market.address, shares // 2)
    other, _ = as_dev.train(ds, as_dev.load_spec(OTHER_SPEC))
    plain = as_dev.register(other, name="linear", price_wei=TERMS.base_price_wei // 2)

    sealed = mm.as_account(evaluator).commit_benchmark(
        best.id, CAST.validation_X[:100], CAST.validation_y[:100]
    )
    market.gateway.advance_to(best.commit_deadline)
    mm.as_account(evaluator).reveal_benchmark(best.id, 1)
    market.gateway.advance_to(best.reveal_deadline)
    mm.finalize_benchmark(best.id)
    best = as_dev.set_price(best.id, TERMS.price_cap(sealed.score_bps))

    as_user, as_node = mm.as_account(user), mm.as_account(serving_node)
    as_user.deposit(best.id, 10 * best.price_wei)
    path, wallet = as_node.serving(best.id), as_user.wallet(best.id, durable=False)
    for i in range(PREDICTIONS):
        path.predict(CAST.validation_X[i : i + 1], wallet.pay(best.id, best.price_wei))
    settled = as_node.settle(best.id)
    market.pay(ds, PAID)
    return Story(
        node, data_dir, market, mm, ds, empty_ds, mm.model(best.id), mm.model(plain.id),
        settled, sealed.score_bps, holder.address, start,
    )  # fmt: skip


def _postgres_url(stack: ExitStack) -> str:
    """A schema of its own on the test PostgreSQL, dropped when ``stack`` closes."""
    from databright_dev.postgres import POSTGRES_URL, scratch_schema
    from sqlalchemy.exc import OperationalError

    try:
        return stack.enter_context(scratch_schema(POSTGRES_URL))
    except OperationalError as exc:
        reason = f"no PostgreSQL answers at {POSTGRES_URL} ({type(exc).__name__})"
        if os.environ.get("DATABRIGHT_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + "; CI requires it (DATABRIGHT_REQUIRE_POSTGRES=1)")
        pytest.skip(reason + "; set DATABRIGHT_TEST_POSTGRES")


def _app(server: Platform) -> FastAPI:
    """The platform's app, with the model market's routers if it does not mount them yet."""
    app = create_app(server)
    if not any(getattr(r, "path", "") == "/api/v1/models" for r in app.routes):
        for router in models_api.ALL:
            app.include_router(router, prefix="/api/v1")
    return app


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, story: Story, tmp_path_factory) -> Iterator[str]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            database_url = f"sqlite:///{tmp_path_factory.mktemp('idx') / 'index.sqlite3'}"
        else:
            database_url = _postgres_url(stack)
        yield from _serve(story, database_url)


def _serve(story: Story, database_url: str) -> Iterator[str]:
    server = Platform(story.node.url, story.data_dir, database_url=database_url, poll_s=0.1)
    if server.indexer.model_market is None:  # a platform that does not pass it yet
        model_market = load_deployment(story.data_dir, server.indexer.chain_id)["ModelMarket"]
        server.indexer = Indexer(
            server.indexer.gateway, server.indexer.market, server.engine,
            model_market=model_market,
        )  # fmt: skip
    server.start()
    try:
        with serving(_app(server)) as url:
            deadline = time.monotonic() + 60
            head = story.market.gateway.block_number()
            while True:
                status = requests.get(f"{url}/api/v1/status", timeout=10).json()["index"]
                if status["indexed_block"] >= head and status["lag"] == 0:
                    break
                assert time.monotonic() < deadline, f"the index did not catch up: {status}"
                time.sleep(0.1)
            yield url
    finally:
        server.stop()


def _get(url: str, path: str, **params) -> dict:
    answer = requests.get(url + path, params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@ANVIL
def test_models_are_ranked_by_score_then_price_and_paged(api, story: Story) -> None:
    page = _get(api, "/api/v1/models", dataset_id=story.ds)
    assert page["source"] == "index" and page["next_cursor"] is None
    assert [m["id"] for m in page["items"]] == [str(story.best.id), str(story.plain.id)]
    for item, info in zip(page["items"], (story.best, story.plain), strict=True):
        assert item == {
            "id": str(info.id),
            "dataset_id": str(story.ds),
            "owner": info.owner,
            "version": 1,
            "versions": 1,
            "score_bps": info.score_bps,
            "benchmarked": info.benchmarked,
            "price_wei": str(info.price_wei),
            "split": {"owner_bps": info.split.owner_bps, "data_bps": info.split.data_bps,
                      "node_bps": info.split.node_bps},
            "node": info.node,
            "spec_cid": info.spec_cid,
            "checkpoint_cid": info.checkpoint_cid,
            "card_cid": info.card_cid,
            "weights_root": "0x" + info.weights_root.hex(),
            "registered_block": item["registered_block"],
            "registered_at": item["registered_at"],
            "settlements": 1 if info.id == story.best.id else 0,
            "predictions_paid_wei": str(story.settled.amount_wei if info.id == story.best.id
                                        else 0),
            "to_dataset_wei": str(story.settled.data_wei if info.id == story.best.id else 0),
        }  # fmt: skip
    assert page["items"][0]["score_bps"] == story.score_bps > 0
    first = page["items"][0]
    assert first["registered_block"] >= story.start and first["registered_at"] > 0

    cheapest = _get(api, "/api/v1/models", sort="price")
    assert [m["id"] for m in cheapest["items"]] == [str(story.plain.id), str(story.best.id)]
    for sort, order in (("score", [story.best.id, story.plain.id]),
                        ("price", [story.plain.id, story.best.id])):  # fmt: skip
        one = _get(api, "/api/v1/models", sort=sort, limit=1)
        two = _get(api, "/api/v1/models", sort=sort, limit=1, cursor=one["next_cursor"])
        assert [one["items"][0]["id"], two["items"][0]["id"]] == [str(i) for i in order]
        assert two["next_cursor"] is None
    assert _get(api, "/api/v1/models", dataset_id=story.empty_ds)["items"] == []


@ANVIL
def test_one_model_shows_its_versions_benchmark_and_settlements(api, story: Story) -> None:
    body = _get(api, f"/api/v1/models/{story.best.id}")
    assert body["model"]["id"] == str(story.best.id) and body["index"]["lag"] == 0
    [version] = body["versions"]
    evaluator = story.node.accounts[1].address
    bench = version["benchmark"]
    assert version["current"] and version["checkpoint_cid"] == story.best.checkpoint_cid
    assert [c["evaluator"] for c in bench["commits"]] == [evaluator]
    [reveal] = bench["reveals"]
    assert reveal["evaluator"] == evaluator and reveal["score_bps"] == story.score_bps
    assert reveal["report_cid"].startswith("b")
    assert bench["finalized"] and bench["score_bps"] == story.score_bps and bench["best"]
    assert bench["reveal_deadline"] == story.best.reveal_deadline
    s = story.settled
    assert body["settlements"] == {
        "count": 1, "users": 1, "total_wei": str(s.amount_wei), "owner_wei": str(s.owner_wei),
        "dataset_wei": str(s.data_wei), "node_wei": str(s.node_wei),
    }  # fmt: skip
    assert s.amount_wei == PREDICTIONS * story.best.price_wei

    plain = _get(api, f"/api/v1/models/{story.plain.id}")
    [v] = plain["versions"]
    assert v["benchmark"] == {
        "commit_deadline": story.plain.commit_deadline,
        "reveal_deadline": story.plain.reveal_deadline,
        "commits": [], "reveals": [], "reopened": 0, "finalized": False, "score_bps": None,
        "best": False,
    }  # fmt: skip
    assert plain["settlements"]["count"] == 0 and plain["settlements"]["total_wei"] == "0"


@ANVIL
def test_a_datasets_impact_matches_the_chain(api, story: Story) -> None:
    body = _get(api, f"/api/v1/datasets/{story.ds}/impact")
    c = story.mm.contract
    assert body["training_fees"] == 2
    assert (
        int(body["training_revenue_wei"])
        == c.training_revenue(story.ds)
        == 2 * (TERMS.training_fee_wei)
    )
    assert int(body["prediction_revenue_wei"]) == c.prediction_revenue(story.ds)
    assert int(body["prediction_revenue_wei"]) == story.settled.data_wei
    assert body["other_dividends_wei"] == str(PAID)
    assert int(body["predictions_paid_wei"]) == c.model_revenue(story.best.id)
    assert body["best"] == {"model_id": str(story.best.id), "version": 1,
                            "score_bps": story.score_bps}  # fmt: skip
    assert body["terms"]["training_fee_wei"] == str(TERMS.training_fee_wei)
    assert body["terms"]["margin_bps"] == TERMS.margin_bps
    assert [m["model_id"] for m in body["models"]] == [str(story.best.id), str(story.plain.id)]
    assert body["models"][0]["to_dataset_wei"] == str(story.settled.data_wei)
    empty = _get(api, f"/api/v1/datasets/{story.empty_ds}/impact")
    assert empty["models"] == [] and empty["terms"] is None and empty["best"] is None
    assert empty["training_revenue_wei"] == "0" and empty["training_fees"] == 0


@ANVIL
def test_income_is_split_by_source_pro_rata_at_each_payment(api, story: Story) -> None:
    initiator = story.market.address
    fee, data = TERMS.training_fee_wei, story.settled.data_wei
    mine = _get(api, f"/api/v1/accounts/{initiator}/income")
    assert [i["dataset_id"] for i in mine["items"]] == [str(story.ds), str(story.empty_ds)]
    ours = mine["items"][0]
    theirs = _get(api, f"/api/v1/accounts/{story.holder}/income", dataset_id=story.ds)["items"]
    [held] = theirs
    # The holder had half the shares for the first fee only; the initiator the rest.
    assert held["shares"] == "0" and held["payments"] == 1
    assert abs(int(held["training_wei"]) - fee / 2) <= 1
    assert held["predictions_wei"] == held["other_wei"] == "0"
    assert abs(int(ours["training_wei"]) - (fee + fee / 2)) <= 1
    assert abs(int(ours["predictions_wei"]) - data) <= 1
    assert abs(int(ours["other_wei"]) - PAID) <= 1
    assert ours["payments"] == 4
    # What the share token owes each is what the index says they earned (to the wei).
    for account, item in ((initiator, ours), (story.holder, held)):
        assert int(item["total_wei"]) == story.market.claimable(story.ds, account)
    assert mine["items"][1] == {
        "dataset_id": str(story.empty_ds), "shares": mine["items"][1]["shares"], "payments": 0,
        "training_wei": "0", "predictions_wei": "0", "other_wei": "0", "total_wei": "0",
    }  # fmt: skip
    page = _get(api, f"/api/v1/accounts/{initiator}/income", limit=1)
    after = _get(api, f"/api/v1/accounts/{initiator}/income", limit=1, cursor=page["next_cursor"])
    assert [page["items"][0]["dataset_id"], after["items"][0]["dataset_id"]] == [
        str(story.ds), str(story.empty_ds)
    ]  # fmt: skip
    nobody = _get(api, f"/api/v1/accounts/{story.node.accounts[9].address}/income")
    assert nobody["items"] == []


@ANVIL
@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/v1/models/999", 404, "model 999 is not in the index"),
        ("/api/v1/models/0", 422, "model_id"),
        ("/api/v1/models?dataset_id=999", 404, "dataset 999"),
        ("/api/v1/models?cursor=abc", 422, "cursor"),
        ("/api/v1/models?sort=cheap", 422, "sort"),
        ("/api/v1/models?limit=0", 422, "limit"),
        ("/api/v1/datasets/999/impact", 404, "dataset 999"),
        ("/api/v1/datasets/0/impact", 422, "dataset_id"),
        ("/api/v1/accounts/0x12/income", 422, "address"),
        (f"/api/v1/accounts/0x{'ab' * 20}/income?dataset_id=999", 404, "dataset 999"),
        (f"/api/v1/accounts/0x{'ab' * 20}/income?cursor=1-2-3", 422, "cursor"),
    ],
)
def test_bad_requests_get_one_sentence_as_problem_json(api, path, status, says) -> None:
    answer = requests.get(api + path, timeout=10)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status and says.lower() in (body["detail"] + body["title"]).lower()


@ANVIL
def test_no_request_the_schema_allows_makes_the_new_operations_fail(api) -> None:
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    ours = {"/api/v1/models", "/api/v1/models/{model_id}", "/api/v1/datasets/{dataset_id}/impact",
            "/api/v1/accounts/{address}/income"}  # fmt: skip
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path in ours]
    assert len(operations) == len(ours)
    for operation in operations:

        @settings(
            max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def call(case) -> None:
            case.call_and_validate()

        call()


# --- the indexer's model registry ---------------------------------------------------------


def _registry(engine) -> dict[int, tuple]:
    with Session(engine) as s:
        return {
            m.model_id: (m.price, m.score_bps, m.benchmarked, m.settlements, m.settled_wei)
            for m in s.scalars(select(IndexedModel))
        }


@ANVIL
def test_an_index_given_the_model_market_late_replays_it_once(
    story: Story, database_url: str
) -> None:
    deployment = load_deployment(story.data_dir, story.market.gateway.chain_id)
    engine = open_index(database_url)
    gw = story.market.gateway
    old = Indexer(gw, deployment["DataMarket"], engine, start_block=story.start)
    old.sync()
    assert old.model_market is None and _registry(engine) == {}
    late = Indexer(gw, deployment["DataMarket"], engine, model_market=deployment["ModelMarket"])
    assert late.lag() > 0  # rewound to the index's start
    late.sync()
    registry = _registry(engine)
    assert registry[story.best.id] == (
        story.best.price_wei, story.score_bps, True, 1, story.settled.amount_wei
    )  # fmt: skip
    assert registry[story.plain.id][2:] == (False, 0, 0)
    # An indexer that names none keeps the recorded one; another one is refused.
    assert Indexer(gw, deployment["DataMarket"], engine).model_market == deployment["ModelMarket"]
    with pytest.raises(ChainIndexError, match="database of its own"):
        Indexer(gw, deployment["DataMarket"], engine, model_market=story.node.accounts[7].address)
    engine.dispose()


def test_migration_0004_upgrades_an_index_of_the_data_market(database_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from databright.server.index.database import MIGRATIONS

    engine = sa.create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        connection.execute(sa.text("INSERT INTO indexed_blocks VALUES (5, '0xaa', '0xbb', 1)"))
        connection.execute(
            sa.text("INSERT INTO index_state VALUES (1, '0x" + "1" * 40 + "', 0, 5, 5)")
        )
    engine.dispose()
    upgraded = open_index(database_url)
    with upgraded.connect() as c:
        state = c.execute(sa.text("SELECT indexed_block, model_market FROM index_state")).one()
        assert tuple(state) == (5, None)
        assert c.execute(sa.text("SELECT count(*) FROM indexed_models")).scalar() == 0
    with upgraded.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
        command.upgrade(config, "head")
    upgraded.dispose()


@ANVIL
def test_a_reorg_rebuilds_the_models_it_touched(story: Story, tmp_path: Path) -> None:
    """Last in the file: it forks the shared node's chain (and puts it back)."""
    deployment = load_deployment(story.data_dir, story.market.gateway.chain_id)
    gw = story.market.gateway
    engine = open_index(f"sqlite:///{tmp_path / 'reorg.sqlite3'}")
    indexer = Indexer(
        gw, deployment["DataMarket"], engine, start_block=story.start,
        model_market=deployment["ModelMarket"],
    )  # fmt: skip
    indexer.sync()
    before = _registry(engine)
    snapshot = gw.request("evm_snapshot", [], "snapshot")
    dev = ModelMarket.connect(story.node.url, story.node.accounts[2], story.data_dir)
    dev.set_price(story.best.id, 7)
    indexer.sync()
    assert _registry(engine)[story.best.id][0] == 7
    gw.request("evm_revert", [snapshot], "revert")
    gw.request("anvil_mine", ["0x3"], "mine")  # the new branch outgrows the old
    steps = indexer.sync()
    assert steps[0].rolled_back_to is not None
    assert _registry(engine) == before
    engine.dispose()
