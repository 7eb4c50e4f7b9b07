"""What the evaluator's score pays for, driven through ``value_proposal`` (no chain)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier

from databright.market.evaluator import default_method, value_proposal
from databright.valuation import RewardPolicy, Utility


@pytest.fixture(scope="module")
def market():
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    return {
        "val": (x[:300], y[:300]),
        "acc": (x[300:700], y[300:700], np.repeat(np.arange(10), 40)),
        "pool": (x[700:], y[700:]),
    }


def _value(m, new, *, earlier=(), acc=None, key="proposal-new", policy=None):
    utility = Utility(KNeighborsClassifier(n_neighbors=5), *m["val"])
    return value_proposal(
        default_method(5),
        utility,
        acc or m["acc"],
        new,
        key=key,
        title="test",
        earlier=earlier,
        policy=policy,
    )


def test_clean_proposal_is_paid_and_the_report_says_why(market) -> None:
    px, py = market["pool"]
    score, body, png = _value(market, (px[:40], py[:40]))
    assert score > 5_000
    doc = json.loads(json.dumps(body, allow_nan=False))
    ours = next(p for p in doc["proposals"] if p["proposal"] == "proposal-new")
    assert ours["weight_bps"] == score and ours["examples"] == 40
    rw = doc["reward"]
    assert rw["score_bps"] == score and len(rw["examples"]) == 40
    assert rw["counts"]["paid"] >= 38
    assert all(e["reason"] for e in rw["examples"])
    assert png.startswith(b"\x89PNG")


def test_a_copy_of_an_earlier_pending_proposal_earns_nothing(market) -> None:
    px, py = market["pool"]
    first = (px[:30], py[:30])
    jittered = np.clip(px[:30] + np.random.default_rng(1).normal(0, 0.02, (30, 64)), 0, 1)
    alone, _, _ = _value(market, (jittered, py[:30]))
    assert alone > 5_000  # the pending original is not accepted data...
    score, body, _ = _value(
        market, (jittered, py[:30]), earlier=[(*first, "proposal-1")], key="proposal-2"
    )
    assert score == 0  # ...but it is earlier data
    assert body["reward"]["counts"]["copy"] == 30
    assert {e["original"] for e in body["reward"]["examples"]} == {"proposal-1"}
    ours = next(p for p in body["proposals"] if p["proposal"] == "proposal-2")
    assert ours["copies"] == 30 and ours["flags"][0]["original"] == "proposal-1"


def test_two_overlapping_proposals_count_the_overlap_once(market) -> None:
    px, py = market["pool"]
    a = (px[:40], py[:40])
    b = (np.vstack([px[:15], px[40:65]]), np.concatenate([py[:15], py[40:65]]))
    score_b, body, _ = _value(market, b, earlier=[a])
    assert (
        15 <= body["reward"]["counts"]["copy"] <= 17
    )  # the 15 repeats (a stray near match may join)
    fresh, _, _ = _value(market, (px[40:65], py[40:65]))
    assert score_b < fresh


def test_jittered_and_brightened_copies_of_accepted_data_earn_nothing(market) -> None:
    ax, ay, _ = market["acc"]
    rng = np.random.default_rng(2)
    for made in (np.clip(ax[:40] + rng.normal(0, 0.05, (40, 64)), 0, 1), ax[:40] * 0.9):
        score, body, _ = _value(market, (made, ay[:40]))
        assert score == 0 and body["reward"]["counts"]["copy"] == 40


def test_backdoor_hidden_in_a_clean_batch_is_not_carried(market) -> None:
    px, py = market["pool"]
    x, y = px[:36].copy(), py[:36].copy()
    bad = np.flatnonzero(y != 7)[:4]
    x[bad[:, None], [0, 7, 56, 63]] = 1.0
    y[bad] = 7
    clean, _, _ = _value(market, (px[:36], py[:36]))
    score, body, _ = _value(market, (x, y))
    rows = {e["row"]: e for e in body["reward"]["examples"]}
    assert all(rows[int(i)]["status"] != "paid" for i in bad)
    assert score < 5_000 < clean
    ours = next(p for p in body["proposals"] if p["proposal"] == "proposal-new")
    assert {f["kind"] for f in ours["flags"]} & {"poisoning", "mislabelled"}


def test_earlier_data_earns_more_per_example(market) -> None:
    px, py = market["pool"]
    ax, ay, origin = market["acc"]
    new = (px[:40], py[:40])
    small = (ax[:100], ay[:100], origin[:100] * 0)
    early, eb, _ = _value(market, new, acc=small)
    late, lb, _ = _value(market, new, acc=(ax, ay, origin * 0 + np.arange(400) // 100))
    assert eb["reward"]["premium"] == pytest.approx(2.0)
    assert lb["reward"]["premium"] == pytest.approx(1.25)
    assert early > late
    flat, fb, _ = _value(market, new, acc=small, policy=RewardPolicy(early_premium=False))
    assert fb["reward"]["premium"] == 1.0 and flat < early


# ---- the service hands earlier pending proposals to value_proposal ------------------------


def test_service_compares_a_proposal_with_earlier_pending_ones(node, tmp_path) -> None:
    from databright.chain.deploy import deploy
    from databright.chain.gateway import connect
    from databright.demo.cast import digits_scenario
    from databright.market import Governance, Market
    from databright.market.evaluator import EvaluatorService
    from databright.storage import DatasetSchema, validate_examples

    schema = DatasetSchema(
        task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
    )
    cast = digits_scenario(seed=3, proposal_size=30)
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    evaluator = node.accounts[2]
    initial = validate_examples(cast.initial_X, cast.initial_y, schema, source="initial")
    ds = market.create_dataset(
        "pending",
        schema,
        initial,
        # sealed scores need a commit phase; both proposals are valued inside it
        Governance(evaluators=(evaluator.address,), commit_period_s=600, reveal_period_s=600),
    )
    alice = cast.contributions[0]
    first = market.as_account(node.accounts[1]).propose(
        ds, validate_examples(alice.X, alice.y, schema, source="alice")
    )
    jitter = np.random.default_rng(0).normal(0, 0.02, alice.X.shape).astype(np.float32)
    copy = market.as_account(node.accounts[5]).propose(
        ds,
        validate_examples(np.clip(alice.X + jitter, 0, 1), alice.y, schema, source="copy"),
    )
    validation = validate_examples(cast.validation_X, cast.validation_y, schema, source="val")
    service = EvaluatorService(market.as_account(evaluator), ds, validation)
    assert [p.id for p in service.earlier_pending(market.proposal(copy.id))] == [first.id]
    posted = {e.proposal_id: e for e in service.run_once()}
    assert posted[first.id].score_bps > 5_000
    assert posted[copy.id].score_bps == 0
    reward_doc = posted[copy.id].report["valuation"]["reward"]
    assert reward_doc["counts"]["copy"] == 30
    assert {e["original"] for e in reward_doc["examples"]} == {f"proposal-{first.sequence}"}
