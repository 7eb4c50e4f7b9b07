"""The access register's SDK on a real node (the embedded node and anvil): an initiator prices a
dataset, an outsider buys access and its price reaches the shareholders, curators have access
without buying, and every refusal is one clear sentence before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import (
    ContractNotDeployed,
    InsufficientFunds,
    InvalidArgument,
    NotFound,
    NotPermitted,
)
from databright.market import Governance, Market
from databright.market.access import MAX_PRICE, DataAccess
from databright.storage import DatasetSchema, cid_to_digest, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=7, proposal_size=30)
PRICE = 10**15


@pytest.fixture(scope="module")
def world(node: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Market, int]:
    """One deployment and one dataset per node kind; the initiator is the node's account 0
    and account 1 its evaluator."""
    data_dir = tmp_path_factory.mktemp(f"access-{node.kind}")
    deploy(connect(node.url, node.accounts[0]), data_dir)
    market = Market.connect(node.url, node.accounts[0], data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(
        "priced digits", SCHEMA, initial, Governance(evaluators=(node.accounts[1].address,))
    )
    return node, market, int(ds)


def test_a_priced_dataset_is_bought_and_pays_its_shareholders(world: Any) -> None:
    node, market, ds = world
    initiator = DataAccess.over(market)
    outsider = initiator.as_account(node.accounts[5])
    gift_giver = initiator.as_account(node.accounts[6])
    friend = Account.create().address
    evaluator = node.accounts[1].address

    assert initiator.price(ds) == 0
    status = outsider.status(ds)
    assert status.has_access and status.reason == "free"

    with pytest.raises(NotPermitted, match="initiator"):
        outsider.set_price(ds, PRICE)
    initiator.set_price(ds, PRICE)
    assert outsider.price(ds) == PRICE
    assert initiator.priced_datasets()[ds] == PRICE
    status = outsider.status(ds)
    assert not status.has_access and status.reason == "none" and status.price_wei == PRICE

    # Curators read without buying.
    assert initiator.status(ds).reason == "initiator"
    assert initiator.status(ds, evaluator).reason == "evaluator"

    claimable = market.claimable(ds)
    assert outsider.buy(ds) == PRICE
    # The initiator holds every share: the whole price is its dividend (less the share
    # token's sub-wei dust).
    assert 0 <= PRICE - (market.claimable(ds) - claimable) <= 1
    status = outsider.status(ds)
    assert status.has_access and status.reason == "bought"
    assert status.buyers == 1 and status.revenue_wei == PRICE
    with pytest.raises(InvalidArgument, match="already bought"):
        outsider.buy(ds)

    assert not gift_giver.has_access(ds, friend)
    gift_giver.buy(ds, friend)
    assert gift_giver.has_access(ds, friend) and not gift_giver.has_access(ds)

    # Bought access outlives a price change; making the data public again frees it for all.
    initiator.set_price(ds, 2 * PRICE)
    assert outsider.has_access(ds)
    initiator.set_price(ds, 0)
    assert ds not in initiator.priced_datasets()
    assert gift_giver.status(ds).reason == "free"
    with pytest.raises(InvalidArgument, match="is free"):
        gift_giver.buy(ds)


def test_the_initial_data_is_among_the_withheld_digests(world: Any) -> None:
    _, market, ds = world
    entry = market.registry(ds)[0]
    assert cid_to_digest(entry.data_cid) in DataAccess.over(market).data_digests(ds)


def test_bad_input_is_refused_in_one_sentence(world: Any, tmp_path: Path) -> None:
    node, market, ds = world
    access = DataAccess.over(market)
    unknown = market.dataset_count() + 1
    with pytest.raises(NotFound, match=f"dataset {unknown} does not exist"):
        access.price(unknown)
    with pytest.raises(NotFound):
        access.buy(unknown)
    with pytest.raises(InvalidArgument, match="between 0 and"):
        access.set_price(ds, MAX_PRICE + 1)
    with pytest.raises(InvalidArgument, match="between 0 and"):
        access.set_price(ds, -1)
    with pytest.raises(InvalidArgument, match="not an Ethereum address"):
        access.has_access(ds, "0x1234")
    access.set_price(ds, PRICE)
    try:
        penniless = access.as_account(Account.create())
        with pytest.raises(InsufficientFunds, match="fund the account"):
            penniless.buy(ds)
    finally:
        access.set_price(ds, 0)

    # A deployment recorded before the access register existed: one sentence, what to do.
    record = json.loads((market.data_dir / "deployments" / f"{node.chain_id}.json").read_text())
    del record["addresses"]["DataAccess"]
    (tmp_path / "deployments").mkdir()
    (tmp_path / "deployments" / f"{node.chain_id}.json").write_text(json.dumps(record))
    old = Market.connect(node.url, node.accounts[0], tmp_path)
    with pytest.raises(ContractNotDeployed, match="records no data access"):
        DataAccess.over(old)
