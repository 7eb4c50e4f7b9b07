"""Fixtures for the Vyper contract tests (titanoboa, in-process py-evm).

The contracts are compiled once per session from ``contracts/`` (the committed artifacts are
checked against the same sources by ``tests/chain/test_artifacts.py``). One market with one
standard dataset is deployed once; every test runs inside ``boa.env.anchor()`` so it starts from
that state and leaves nothing behind. Helpers live in ``contracts_support.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boa
import pytest
from contracts_support import CONTRACTS, UNIT, World, mine_block


@pytest.fixture(scope="session")
def share_token_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS / "ShareToken.vy"))


@pytest.fixture(scope="session")
def market_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS / "DataMarket.vy"))


@pytest.fixture(scope="session")
def world(share_token_deployer: Any, market_deployer: Any) -> World:
    deployer = boa.env.generate_address("deployer")
    with boa.env.prank(deployer):
        blueprint = share_token_deployer.deploy_as_blueprint()
        market = market_deployer.deploy(blueprint)
    names = ["initiator", "evaluator", "alice", "bob", "carol", "contributor"]
    accounts = {n: boa.env.generate_address(n) for n in names}
    for address in accounts.values():
        boa.env.set_balance(address, 10**24)
    w = World(
        share_token=share_token_deployer,
        market_deployer=market_deployer,
        blueprint=blueprint,
        market=market,
        token=None,
        dataset_id=0,
        **accounts,
    )
    w.dataset_id = w.create(w.initiator)
    w.token = w.token_of(w.dataset_id)
    with boa.env.prank(w.initiator):
        w.token.transfer(w.alice, 30 * UNIT)
        w.token.transfer(w.bob, 20 * UNIT)
    mine_block()  # the balances above weigh the votes of proposals made from now on
    return w


@pytest.fixture(autouse=True)
def _isolate(world: World) -> Iterator[None]:
    """Run every test from the session state and roll back afterwards."""
    with boa.env.anchor():
        yield
