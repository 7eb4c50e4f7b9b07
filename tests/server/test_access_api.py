"""The gatekeeper over a real anvil and a real uvicorn: a signed-in buyer downloads a priced
dataset's data; nobody else does (401 without a session, 402 without access on chain now); the
public gateway refuses a priced dataset's blobs and keeps serving a free one's; a free dataset
needs no sign-in; and a gateway that cannot read the chain refuses rather than guesses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from databright_dev.serving import serving
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import NotFound
from databright.market import Market
from databright.market.access import DataAccess
from databright.server.api.access import Gatekeeper, gatekeeper
from databright.server.api.auth import SiweMessage
from databright.server.gateway import blob_router
from databright.server.platform import Platform, create_app
from databright.storage import DatasetSchema, cid_for_bytes, validate_examples

# The gatekeeper asks the chain, not the index: one node (anvil) and SQLite keep it fast.
ANVIL = pytest.mark.parametrize("node", ["anvil"], indirect=True)
SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=11, proposal_size=30)
PRICE = 10**15
DATA_PATH = "/api/v1/datasets/{dataset_id}/data"
ZERO = "0x" + "00" * 20


@dataclass
class Site:
    url: str
    node: Any
    market: Market  # the initiator's
    access: DataAccess  # the initiator's
    priced: int
    free: int


@pytest.fixture(scope="module")
def site(node: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("gatekeeper")
    deploy(connect(node.url, node.accounts[0]), data_dir)
    market = Market.connect(node.url, node.accounts[0], data_dir)
    half = len(CAST.initial_y) // 2
    datasets = []
    for name, rows in (("priced", slice(0, half)), ("free", slice(half, None))):
        initial = validate_examples(CAST.initial_X[rows], CAST.initial_y[rows], SCHEMA, source=name)
        datasets.append(int(market.create_dataset(name, SCHEMA, initial)))
    access = DataAccess.over(market)
    access.set_price(datasets[0], PRICE)
    access.as_account(node.accounts[5]).buy(datasets[0])
    server = Platform(node.url, data_dir, database_url=f"sqlite:///{data_dir / 'index.sqlite3'}")
    gatekeeper(server).ttl_s = 0.0  # each request sees the chain as it is (tests change prices)
    try:
        with serving(create_app(server)) as url:
            yield Site(url, node, market, access, *datasets)
    finally:
        server.stop()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def signed_in(url: str, account: Any, chain_id: int) -> requests.Session:
    """A browser session signed in with Ethereum as ``account``."""
    browser = requests.Session()
    nonce = browser.get(f"{url}/api/v1/auth/nonce", timeout=10).json()["nonce"]
    text = SiweMessage(
        domain=urlsplit(url).netloc,
        address=account.address,
        statement="Sign in to DataBright.",
        uri=f"{url}/",
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=_iso(time.time()),
    ).text()
    signature = Account.sign_message(encode_defunct(text=text), account.key).signature
    answer = browser.post(
        f"{url}/api/v1/auth/siwe",
        json={"message": text, "signature": signature.to_0x_hex()},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return browser


def problem(answer: requests.Response, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert words in answer.json()["detail"], answer.json()


def data_cid(site: Site, dataset_id: int) -> str:
    return site.market.registry(dataset_id)[0].data_cid


@ANVIL
def test_a_signed_in_buyer_downloads_the_priced_data(site: Site) -> None:
    buyer = signed_in(site.url, site.node.accounts[5], site.node.chain_id)
    status = buyer.get(f"{site.url}/api/v1/datasets/{site.priced}/access", timeout=10).json()
    assert status["source"] == "chain" and status["has_access"] and status["reason"] == "bought"
    assert status["price_wei"] == str(PRICE) and status["buyers"] == "1"

    data = buyer.get(f"{site.url}/api/v1/datasets/{site.priced}/data", timeout=10)
    assert data.status_code == 200, data.text
    body = data.json()
    assert body["account"] == site.node.accounts[5].address
    [entry] = body["entries"]
    assert entry["data_cid"] == data_cid(site, site.priced)
    blob = buyer.get(site.url + entry["url"], timeout=10)
    assert blob.status_code == 200, blob.text
    assert blob.headers["content-type"] == "application/octet-stream"
    assert "no-store" in blob.headers["cache-control"]
    # What was paid for is what the chain recorded: the bytes hash to the CID it names.
    assert cid_for_bytes(blob.content) == entry["data_cid"]
    assert site.market.store.get(entry["data_cid"]) == blob.content


@ANVIL
def test_without_a_session_a_priced_dataset_answers_401(site: Site) -> None:
    base = f"{site.url}/api/v1/datasets/{site.priced}"
    problem(requests.get(f"{base}/data", timeout=10), 401, "sign in with Ethereum")
    cid = data_cid(site, site.priced)
    problem(requests.get(f"{base}/data/{cid}", timeout=10), 401, "sign in with Ethereum")
    status = requests.get(f"{base}/access", timeout=10).json()
    assert status["account"] is None and not status["has_access"] and status["reason"] == "none"


@ANVIL
def test_a_signed_in_account_without_access_answers_402(site: Site) -> None:
    outsider = signed_in(site.url, site.node.accounts[6], site.node.chain_id)
    base = f"{site.url}/api/v1/datasets/{site.priced}"
    problem(outsider.get(f"{base}/data", timeout=10), 402, "has no access")
    # Whether a blob belongs to the dataset is not told either.
    for cid in (
        data_cid(site, site.priced),
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    ):
        problem(outsider.get(f"{base}/data/{cid}", timeout=10), 402, "has no access")
    status = outsider.get(f"{base}/access", timeout=10).json()
    assert not status["has_access"] and status["reason"] == "none"


@ANVIL
def test_access_through_shares_is_checked_at_each_request(site: Site) -> None:
    holder_key = site.node.accounts[7]
    holder = signed_in(site.url, holder_key, site.node.chain_id)
    base = f"{site.url}/api/v1/datasets/{site.priced}"
    token = site.market.token(site.priced)
    token.transfer(holder_key.address, 1)  # one share unit: a shareholder now
    try:
        assert holder.get(f"{base}/data", timeout=10).status_code == 200
        assert holder.get(f"{base}/access", timeout=10).json()["reason"] == "shareholder"
    finally:
        site.market.as_account(holder_key).token(site.priced).transfer(
            site.node.accounts[0].address, 1
        )
    problem(holder.get(f"{base}/data", timeout=10), 402, "has no access")  # sold: no access


@ANVIL
def test_the_public_gateway_refuses_a_priced_blob_and_serves_a_free_one(site: Site) -> None:
    priced, free = data_cid(site, site.priced), data_cid(site, site.free)
    for fmt in ("raw", "car"):
        refused = requests.get(f"{site.url}/ipfs/{priced}?format={fmt}", timeout=10)
        assert refused.status_code == 403, refused.headers
        assert f"/api/v1/datasets/{site.priced}/data" in refused.json()["error"]["message"]
        assert refused.content.find(site.market.store.get(priced)[:64]) < 0
        served = requests.get(f"{site.url}/ipfs/{free}?format={fmt}", timeout=10)
        assert served.status_code == 200, served.text
    # Public again at price 0, withheld again once priced (the gatekeeper reads it anew).
    site.access.set_price(site.priced, 0)
    try:
        assert requests.get(f"{site.url}/ipfs/{priced}?format=raw", timeout=10).status_code == 200
    finally:
        site.access.set_price(site.priced, PRICE)
    assert requests.get(f"{site.url}/ipfs/{priced}?format=raw", timeout=10).status_code == 403


@ANVIL
def test_a_free_dataset_needs_no_sign_in(site: Site) -> None:
    base = f"{site.url}/api/v1/datasets/{site.free}"
    status = requests.get(f"{base}/access", timeout=10).json()
    assert status["has_access"] and status["reason"] == "free" and status["price_wei"] == "0"
    data = requests.get(f"{base}/data", timeout=10)
    assert data.status_code == 200 and data.json()["account"] is None
    [entry] = data.json()["entries"]
    blob = requests.get(site.url + entry["url"], timeout=10)
    assert blob.status_code == 200 and cid_for_bytes(blob.content) == entry["data_cid"]
    # The free dataset's gatekeeper serves its own blobs only, not the priced one's.
    priced = data_cid(site, site.priced)
    problem(requests.get(f"{base}/data/{priced}", timeout=10), 404, "not a data blob")


@ANVIL
def test_unknown_datasets_and_blobs_are_404(site: Site) -> None:
    buyer = signed_in(site.url, site.node.accounts[5], site.node.chain_id)
    unknown = site.market.dataset_count() + 1
    for path in ("access", "data", f"data/{data_cid(site, site.priced)}"):
        problem(buyer.get(f"{site.url}/api/v1/datasets/{unknown}/{path}", timeout=10), 404,
                "does not exist")  # fmt: skip
    base = f"{site.url}/api/v1/datasets/{site.priced}/data"
    problem(buyer.get(f"{base}/not-a-cid", timeout=10), 404, "not a data blob")
    other = cid_for_bytes(b"not proposed to any dataset")
    problem(buyer.get(f"{base}/{other}", timeout=10), 404, "not a data blob")
    assert requests.get(f"{base}/x", timeout=10).status_code == 401  # sign-in comes first


@pytest.mark.parametrize("kind", ["anvil"])
def test_a_gateway_that_cannot_read_the_chain_fails_closed(
    kind: str, node_factory: Any, tmp_path: Path
) -> None:
    node = node_factory(kind)
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    initial = validate_examples(CAST.initial_X[:20], CAST.initial_y[:20], SCHEMA, source="x")
    ds = int(market.create_dataset("priced", SCHEMA, initial))
    DataAccess.over(market).set_price(ds, PRICE)
    cid = market.registry(ds)[0].data_cid
    seen = Gatekeeper(market, ttl_s=0.0)
    assert seen.withheld(cid) == ds
    node.stop()
    app = FastAPI()
    app.include_router(blob_router(market.store, withheld=Gatekeeper(market).withheld))
    app.include_router(blob_router(market.store, withheld=seen.withheld), prefix="/seen")
    with serving(app) as url:
        # Never read: the gateway cannot tell, so it refuses (503), never serves.
        blind = requests.get(f"{url}/ipfs/{cid}?format=raw", timeout=30)
        assert blind.status_code == 503 and "try again" in blind.json()["error"]["message"]
        # Read before: the last answer stands while the chain is away.
        assert requests.get(f"{url}/seen/ipfs/{cid}?format=raw", timeout=30).status_code == 403


@ANVIL
def test_no_request_the_schema_allows_makes_the_gatekeeper_fail(site: Site) -> None:
    """schemathesis over the gatekeeper's operations as the OpenAPI document states them (the
    whole API's run, in test_api, covers them too once create_app wires them)."""
    schema = schemathesis.openapi.from_url(f"{site.url}/openapi.json")
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path.startswith("/api/v1/datasets/{dataset_id}/") and "access" in
        " ".join(result.ok().definition.raw.get("tags", []))
    ]  # fmt: skip
    assert {o.path for o in operations} == {
        "/api/v1/datasets/{dataset_id}/access",
        DATA_PATH,
        DATA_PATH + "/{cid}",
    }
    for operation in operations:

        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            case.call_and_validate()

        call()


@ANVIL
def test_a_deployment_without_the_access_register_keeps_every_dataset_free(
    site: Site, tmp_path: Path
) -> None:
    """A market deployed before DataAccess existed: nothing is withheld, nothing is priced."""
    record = json.loads(
        (site.market.data_dir / "deployments" / f"{site.node.chain_id}.json").read_text()
    )
    del record["addresses"]["DataAccess"]
    (tmp_path / "deployments").mkdir()
    (tmp_path / "deployments" / f"{site.node.chain_id}.json").write_text(json.dumps(record))
    keeper = Gatekeeper(Market.connect(site.node.url, None, tmp_path), ttl_s=0.0)
    assert keeper.access() is None
    assert keeper.withheld(data_cid(site, site.priced)) is None
    assert keeper.price(site.priced) == 0 and keeper.has_access(site.priced, ZERO)
    with pytest.raises(NotFound):
        keeper.price(site.market.dataset_count() + 1)


@ANVIL
def test_prices_and_purchases_are_indexed(site: Site) -> None:
    """The access register is one of the contracts the index follows: the initiator's price
    and the buyer's purchase are in their histories, with the dataset and exact amounts."""
    server = Platform(
        site.node.url,
        site.market.data_dir,
        database_url=f"sqlite:///{site.market.data_dir / 'index-access.sqlite3'}",
    )
    try:
        server.indexer.sync()
        assert server.indexer.data_access == site.access.contract.address
        buyer = site.node.accounts[5].address
        # the site's own server never starts its indexer: this one has indexed the chain
        with serving(create_app(server)) as url:
            events = requests.get(f"{url}/api/v1/accounts/{buyer}/history", timeout=10).json()
            bought = [e for e in events["items"] if e["name"] == "AccessBought"]
            assert [(e["dataset_id"], e["amount"]) for e in bought] == [
                (str(site.priced), str(PRICE))
            ]
            initiator = site.market.gateway.address
            events = requests.get(f"{url}/api/v1/accounts/{initiator}/history", timeout=10).json()
            priced = [e for e in events["items"] if e["name"] == "AccessPriceSet"]
            # the first is the fixture's; the tests before this one change prices again
            assert (priced[0]["dataset_id"], priced[0]["amount"]) == (str(site.priced), str(PRICE))
            assert {e["dataset_id"] for e in priced} <= {str(site.priced), str(site.free)}
    finally:
        server.engine.dispose()
