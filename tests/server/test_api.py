"""The platform server over a real node, a real uvicorn and both databases: lists from the
index, live reads from the chain, problem documents for every bad request, and schemathesis
over the server's own OpenAPI document."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from databright_dev.serving import serving
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from sqlalchemy import event

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.market import Governance, Market
from databright.server.platform import Platform, create_app
from databright.storage import DatasetSchema, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=13, proposal_size=20)
PAID = 3 * 10**19  # over 2**64: exact only if amounts travel as strings


def _build_market(node, data_dir: Path) -> tuple[Market, list[int]]:
    deploy(connect(node.url, node.accounts[0]), data_dir)
    market = Market.connect(node.url, node.accounts[0], data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    datasets = [
        market.create_dataset(f"api-{i}", SCHEMA, initial, Governance(voting_period_s=60))
        for i in range(3)
    ]
    ds = datasets[0]
    for i, support in ((0, True), (1, False)):
        c = CAST.contributions[i]
        p = market.as_account(node.accounts[1]).propose(
            ds, validate_examples(c.X, c.y, SCHEMA, source=f"p{i}")
        )
        market.vote(p.id, support)
        market.gateway.advance_to(p.deadline)
        market.finalize(p.id)
    market.as_account(node.accounts[1]).propose(
        ds, validate_examples(CAST.contributions[2].X, CAST.contributions[2].y, SCHEMA, source="p2")
    )
    market.pay(ds, PAID)
    return market, datasets


def _caught_up(url: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = requests.get(f"{url}/api/v1/status", timeout=10).json()
        if status["index"]["lag"] == 0 and status["index"]["indexed_block"] >= 0:
            return status
        time.sleep(0.1)
    raise AssertionError(f"the index did not catch up: {status}")


#: Each node's platform behind the ``platform`` fixture's server, for tests that look inside.
PLATFORMS: dict[str, Platform] = {}


@pytest.fixture(scope="module")
def platform(node, tmp_path_factory) -> Iterator[tuple[str, Market, list[int]]]:
    data_dir = tmp_path_factory.mktemp(f"platform-{node.kind}")
    market, datasets = _build_market(node, data_dir)
    server = Platform(node.url, data_dir, poll_s=0.1)
    server.start()
    PLATFORMS[node.kind] = server
    with serving(create_app(server)) as url:
        _caught_up(url)
        yield url, market, datasets
    server.stop()


def test_lists_come_from_the_index_and_page_with_stable_cursors(platform, node) -> None:
    url, market, datasets = platform
    first = requests.get(f"{url}/api/v1/datasets", params={"limit": 2}, timeout=10).json()
    assert first["source"] == "index" and first["index"]["lag"] == 0
    assert [d["name"] for d in first["items"]] == ["api-0", "api-1"]
    second = requests.get(
        f"{url}/api/v1/datasets", params={"limit": 2, "cursor": first["next_cursor"]}, timeout=10
    ).json()
    assert [d["name"] for d in second["items"]] == ["api-2"] and second["next_cursor"] is None
    assert first["items"][0]["proposals"] == 4 and first["items"][0]["accepted"] == 2

    ds = datasets[0]
    proposals = requests.get(f"{url}/api/v1/datasets/{ds}/proposals", timeout=10).json()["items"]
    assert [p["ref"] for p in proposals] == [f"{ds}/0", f"{ds}/1", f"{ds}/2", f"{ds}/3"]
    assert [p["status"] for p in proposals] == ["accepted", "accepted", "rejected", "pending"]
    by_status = {
        s: [
            p["ref"]
            for p in requests.get(
                f"{url}/api/v1/datasets/{ds}/proposals", params={"status": s}, timeout=10
            ).json()["items"]
        ]
        for s in ("pending", "accepted", "rejected")
    }
    assert by_status == {"pending": [f"{ds}/3"], "accepted": [f"{ds}/0", f"{ds}/1"],
                         "rejected": [f"{ds}/2"]}  # fmt: skip
    mine = requests.get(
        f"{url}/api/v1/proposals",
        params={"contributor": node.accounts[1].address, "limit": 1},
        timeout=10,
    ).json()
    assert len(mine["items"]) == 1 and mine["next_cursor"] is not None

    holders = requests.get(f"{url}/api/v1/datasets/{ds}/shareholders", timeout=10).json()
    expected = {h.address: h.shares for h in market.shareholders(ds)}
    assert {h["address"]: int(h["shares"]) for h in holders["items"]} == expected


def test_live_reads_come_from_the_chain_and_amounts_stay_exact(platform, node) -> None:
    url, market, datasets = platform
    ds = datasets[0]
    live = requests.get(f"{url}/api/v1/proposals/{ds}/3", timeout=10).json()
    assert live["source"] == "chain" and live["status"] == "pending"
    assert live["contributor"] == node.accounts[1].address
    owed = requests.get(f"{url}/api/v1/accounts/{market.address}/claimable/{ds}", timeout=10).json()
    assert int(owed["claimable_wei"]) == market.claimable(ds) > 2**53
    history = requests.get(f"{url}/api/v1/accounts/{market.address}/history", timeout=10).json()
    paid = [e for e in history["items"] if e["name"] == "DividendPaid"]
    assert paid and paid[0]["amount"] == str(PAID)


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/v1/datasets/999/proposals", 404, "not in the index"),
        ("/api/v1/proposals/1/999", 404, "does not exist"),
        ("/api/v1/proposals/999/1", 404, "does not exist"),
        ("/api/v1/datasets?cursor=abc", 422, "cursor"),
        ("/api/v1/datasets?limit=0", 422, "limit"),
        ("/api/v1/accounts/0x12/history", 422, "address"),
        ("/api/v1/datasets/0/proposals", 422, "dataset_id"),
        ("/api/v1/nothing-here", 404, "Not Found"),
    ],
)
def test_bad_requests_get_one_sentence_as_problem_json(platform, path, status, says) -> None:
    url, *_ = platform
    answer = requests.get(url + path, timeout=10)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status and says.lower() in (body["detail"] + body["title"]).lower()
    assert "Traceback" not in answer.text


def _signed(account, market: Market, ds: int, n: int, body: str, parent: int = 0, at=None):
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from databright.chain.clients import DataMarketConstants
    from databright.server.api.forum import typed_comment

    created_at = int(time.time()) if at is None else at
    pid = (ds << DataMarketConstants.SEQ_BITS) | n
    doc = typed_comment(
        market.gateway.chain_id, market.contract.address, pid, parent, body, created_at
    )
    signed = Account.sign_message(encode_typed_data(full_message=doc), account.key)
    return {
        "author": account.address,
        "body": body,
        "parent": parent or None,
        "created_at": created_at,
        "signature": signed.signature.to_0x_hex(),
    }


def test_the_forum_keeps_comments_their_authors_signed(platform, node) -> None:
    url, market, datasets = platform
    ds = datasets[0]
    where = f"{url}/api/v1/proposals/{ds}/1/comments"
    first = _signed(node.accounts[1], market, ds, 1, "<script>alert(1)</script> looks copied")
    posted = requests.post(where, json=first, timeout=10)
    assert posted.status_code == 201, posted.text
    comment = posted.json()
    assert comment["body"] == first["body"]  # text, stored as written; pages escape it
    assert comment["proposal_ref"] == f"{ds}/1"
    from databright.chain.clients import DataMarketConstants

    snapshot = market.proposal((ds << DataMarketConstants.SEQ_BITS) | 1).snapshot_block
    weight = market.token(ds).balance_at(node.accounts[1].address, snapshot)
    assert int(comment["author_shares_at_snapshot"]) == weight
    reply = _signed(node.accounts[0], market, ds, 1, "it is not", parent=comment["id"])
    assert requests.post(where, json=reply, timeout=10).status_code == 201
    listed = requests.get(where, timeout=10).json()["items"]
    assert [(c["author"], c["parent"]) for c in listed] == [
        (node.accounts[1].address, None),
        (node.accounts[0].address, comment["id"]),
    ]
    # Refusals, each a problem document, none stored.
    forged = {**_signed(node.accounts[2], market, ds, 1, "I am 1"), "author": first["author"]}
    replay = requests.post(where, json=first, timeout=10)
    stale = _signed(node.accounts[2], market, ds, 1, "old", at=int(time.time()) - 3600)
    other = f"{url}/api/v1/proposals/{ds}/2/comments"
    wrong_thread = _signed(node.accounts[2], market, ds, 2, "x", parent=comment["id"])
    answers = {
        "forged": requests.post(where, json=forged, timeout=10),
        "replay": replay,
        "stale": requests.post(where, json=stale, timeout=10),
        "wrong thread": requests.post(other, json=wrong_thread, timeout=10),
        "no proposal": requests.post(
            f"{url}/api/v1/proposals/{ds}/99/comments",
            json=_signed(node.accounts[2], market, ds, 99, "x"),
            timeout=10,
        ),
    }
    assert {k: a.status_code for k, a in answers.items()} == {
        "forged": 400, "replay": 409, "stale": 400, "wrong thread": 404, "no proposal": 404,
    }  # fmt: skip
    assert "not" in answers["forged"].json()["detail"] and "signature" in answers["forged"].text
    assert len(requests.get(where, timeout=10).json()["items"]) == 2
    # An author who posts too often waits.
    codes = [
        requests.post(where, json=_signed(node.accounts[3], market, ds, 1, f"n{i}"), timeout=10)
        for i in range(6)
    ]
    assert [c.status_code for c in codes] == [201] * 5 + [429]


def test_oversized_bodies_are_refused(platform) -> None:
    url, *_ = platform
    answer = requests.post(f"{url}/api/v1/datasets", data=b"x" * 100_000, timeout=10)
    assert answer.status_code == 413 and "limited" in answer.json()["detail"]
    chunked = requests.post(f"{url}/api/v1/datasets", data=iter([b"x" * 10] * 3), timeout=10)
    assert chunked.status_code == 411 and "Content-Length" in chunked.json()["detail"]


def test_with_the_node_down_reads_go_on_from_the_index_marked_stale(
    node_factory, tmp_path: Path
) -> None:
    node = node_factory("embedded", "lonely")
    _build_market(node, tmp_path)
    server = Platform(node.url, tmp_path, poll_s=0.1)
    server.start()
    try:
        with serving(create_app(server)) as url:
            _caught_up(url)
            node.stop()
            deadline = time.monotonic() + 30
            while not requests.get(f"{url}/api/v1/status", timeout=10).json()["index"]["stale"]:
                assert time.monotonic() < deadline, "the server never noticed the node is down"
                time.sleep(0.1)
            page = requests.get(f"{url}/api/v1/datasets", timeout=10)
            assert page.status_code == 200 and page.json()["index"]["stale"] is True
            assert len(page.json()["items"]) == 3
            live = requests.get(f"{url}/api/v1/proposals/1/1", timeout=30)
            assert live.status_code in (502, 503)
            assert live.headers["content-type"] == "application/problem+json"
    finally:
        server.stop()


def test_no_request_the_schema_allows_makes_the_server_fail(platform) -> None:
    url, *_ = platform
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case) -> None:
            # Whether a string is a CID (its multihash, its codec) is more than a JSON schema
            # can say: a schema-valid string may still be refused, with a documented 400.
            # So is whether a comment's signature is its author's.
            unschematic = case.operation.path == "/ipfs/{cid}" or case.method == "POST"
            case.call_and_validate(
                excluded_checks=[positive_data_acceptance] if unschematic else []
            )

        call()


def test_a_kept_page_is_answered_without_a_query(platform, node) -> None:
    """Once a page is kept under the version this process's indexer last wrote, asking for it
    again costs the server no database statement (the indexer's own polling aside)."""
    url, _market, datasets = platform
    server = PLATFORMS[node.kind]
    path = f"{url}/api/v1/datasets/{datasets[0]}/proposals"
    first = requests.get(path, timeout=10).json()
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if threading.current_thread().name != "indexer":
            statements.append(statement)

    event.listen(server.engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            again = requests.get(path, timeout=10).json()
            assert again["items"] == first["items"] and again["index"]["lag"] == 0
    finally:
        event.remove(server.engine, "before_cursor_execute", count)
    assert statements == []


def test_a_cached_page_follows_the_index(platform, node) -> None:
    """Pages are kept per state of the index (page_cache): read twice, a page is the same
    bytes; once the index holds a new block, the page holds what the block brought."""
    url, market, datasets = platform
    ds = datasets[1]
    path = f"{url}/api/v1/datasets/{ds}/proposals"
    before = requests.get(path, timeout=10).json()
    assert requests.get(path, timeout=10).json()["items"] == before["items"]
    c = CAST.contributions[3]
    p = market.as_account(node.accounts[1]).propose(
        ds, validate_examples(c.X, c.y, SCHEMA, source="p3")
    )
    head = market.gateway.block_number()
    deadline = time.monotonic() + 60
    while _caught_up(url)["index"]["indexed_block"] < head:
        assert time.monotonic() < deadline, "the index did not reach the proposal's block"
        time.sleep(0.1)
    after = requests.get(path, timeout=10).json()
    assert [x["id"] for x in after["items"]] == [x["id"] for x in before["items"]] + [str(p.id)]
    assert after["index"]["indexed_block"] > before["index"]["indexed_block"]
