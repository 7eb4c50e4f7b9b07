"""DataAccess: access prices set by a dataset's initiator, purchases paid to the shareholders as
dividends, and who has access (free datasets, buyers, the initiator, evaluators, holders now).

A positive and a negative test for every external function and every revert string; the
purchase's reentrancy guard is tested through a hostile data market whose "share token"
calls back into ``buy`` from inside ``pay``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boa
import pytest
from contracts_support import (
    CONTRACTS,
    PROFILE,
    UNIT,
    World,
    events,
    mapping_slot,
    poke,
    storage_slot,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

PRICE = 10**15
MAX_PRICE = 2**128 - 1
ZERO = "0x" + "00" * 20

# A data market that names itself as every dataset's initiator and share token; its `pay`
# calls back into the access contract's `buy` once, recording whether the reentry succeeded.
HOSTILE_MARKET = """
# pragma version ~=0.4.3
# pragma evm-version cancun

interface IDataAccess:
    def buy(dataset_id: uint256, account: address): payable

target: public(address)
reentered: public(bool)
reentry_succeeded: public(bool)
paid: public(uint256)


@external
def set_target(target_: address):
    self.target = target_


@external
@view
def hasRole(role: bytes32, account: address) -> bool:
    return True


@external
@view
def initiator_role(dataset_id: uint256) -> bytes32:
    return keccak256("initiator")


@external
@view
def is_evaluator(dataset_id: uint256, account: address) -> bool:
    return False


@external
@view
def share_token(dataset_id: uint256) -> address:
    return self


@external
@view
def balanceOf(account: address) -> uint256:
    return 0


@external
@payable
def pay():
    self.paid += msg.value
    if not self.reentered:
        self.reentered = True
        data: Bytes[100] = abi_encode(
            convert(1, uint256), self, method_id=method_id("buy(uint256,address)")
        )
        ok: bool = raw_call(self.target, data, value=msg.value, revert_on_failure=False)
        self.reentry_succeeded = ok
"""


@pytest.fixture(scope="session")
def access_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS / "DataAccess.vy"))


@pytest.fixture(scope="module")
def access(world: World, access_deployer: Any) -> Iterator[Any]:
    """The access register over the session's data market, rolled back after the module (its
    purchases pay the session's shareholders, whom other modules count on)."""
    with boa.env.anchor():
        yield access_deployer.deploy(world.market.address)


def priced(world: World, access: Any, price: int = PRICE) -> None:
    with boa.env.prank(world.initiator):
        access.set_price(world.dataset_id, price)


def buy(access: Any, buyer: str, dataset_id: int, account: str | None = None, value: int = PRICE):
    with boa.env.prank(buyer):
        access.buy(dataset_id, account or buyer, value=value)


# --- construction ------------------------------------------------------------------------------


def test_deploy_binds_the_data_market(world: World, access: Any) -> None:
    assert access.market() == world.market.address
    assert access.MAX_PRICE() == MAX_PRICE


def test_deploy_with_a_non_contract_data_market_reverts(world: World, access_deployer: Any) -> None:
    with boa.reverts("data_access: data market is not a contract"):
        access_deployer.deploy(world.alice)


# --- prices ------------------------------------------------------------------------------------


def test_the_initiator_sets_and_changes_the_price(world: World, access: Any) -> None:
    assert access.price(world.dataset_id) == 0
    priced(world, access)
    [event] = events(access, "AccessPriceSet")
    assert (event.dataset_id, event.initiator, event.price) == (
        world.dataset_id,
        world.initiator,
        PRICE,
    )
    assert access.price(world.dataset_id) == PRICE
    priced(world, access, MAX_PRICE)
    assert access.price(world.dataset_id) == MAX_PRICE
    priced(world, access, 0)  # free again
    assert access.price(world.dataset_id) == 0


@pytest.mark.parametrize("who", ["alice", "evaluator", "carol"])
def test_only_the_initiator_sets_the_price(world: World, access: Any, who: str) -> None:
    with boa.env.prank(getattr(world, who)), boa.reverts("data_access: not the initiator"):
        access.set_price(world.dataset_id, PRICE)


def test_nobody_prices_an_unknown_dataset(world: World, access: Any) -> None:
    with boa.env.prank(world.initiator), boa.reverts("data_access: not the initiator"):
        access.set_price(999, PRICE)


def test_a_price_above_the_maximum_reverts(world: World, access: Any) -> None:
    with boa.env.prank(world.initiator), boa.reverts("data_access: invalid price"):
        access.set_price(world.dataset_id, MAX_PRICE + 1)


def test_the_price_follows_the_initiator_hand_over(world: World, access: Any) -> None:
    with boa.env.prank(world.initiator):
        world.market.transfer_initiator(world.dataset_id, world.carol)
    with boa.env.prank(world.carol):
        world.market.accept_initiator(world.dataset_id)
    with boa.env.prank(world.initiator), boa.reverts("data_access: not the initiator"):
        access.set_price(world.dataset_id, PRICE)
    with boa.env.prank(world.carol):
        access.set_price(world.dataset_id, PRICE)
    assert access.price(world.dataset_id) == PRICE


# --- buying ------------------------------------------------------------------------------------


def test_buying_pays_the_shareholders_pro_rata(world: World, access: Any) -> None:
    priced(world, access)
    before = {a: world.token.claimable(a) for a in (world.initiator, world.alice, world.bob)}
    paid_before = world.token.total_paid()
    buy(access, world.carol, world.dataset_id)
    [event] = events(access, "AccessBought")
    assert (event.dataset_id, event.buyer, event.account, event.amount) == (
        world.dataset_id,
        world.carol,
        world.carol,
        PRICE,
    )
    assert world.token.total_paid() - paid_before == PRICE
    assert boa.env.get_balance(access.address) == 0  # nothing stays here
    # 50 / 30 / 20 shares of 100, to the wei (claims round down; the dust waits).
    gains = [world.token.claimable(a) - before[a] for a in before]
    for gain, part in zip(gains, (50, 30, 20), strict=True):
        assert PRICE * part // 100 - 1 <= gain <= PRICE * part // 100
    assert access.bought(world.dataset_id, world.carol)
    assert access.revenue(world.dataset_id) == PRICE and access.buyers(world.dataset_id) == 1


def test_buying_for_another_account_gives_it_access(world: World, access: Any) -> None:
    priced(world, access)
    buy(access, world.carol, world.dataset_id, account=world.contributor)
    [event] = events(access, "AccessBought")
    assert (event.buyer, event.account) == (world.carol, world.contributor)
    assert access.has_access(world.dataset_id, world.contributor)
    assert not access.bought(world.dataset_id, world.carol)
    assert not access.has_access(world.dataset_id, world.carol)


@pytest.mark.parametrize("value", [0, PRICE - 1, PRICE + 1])
def test_a_wrong_payment_reverts(world: World, access: Any, value: int) -> None:
    priced(world, access)
    with boa.reverts("data_access: wrong price"):
        buy(access, world.carol, world.dataset_id, value=value)
    assert not access.bought(world.dataset_id, world.carol)


def test_a_price_change_before_the_purchase_refuses_the_old_price(
    world: World, access: Any
) -> None:
    priced(world, access)
    priced(world, access, 2 * PRICE)  # lands first: the buyer is refused, never overcharged
    with boa.reverts("data_access: wrong price"):
        buy(access, world.carol, world.dataset_id, value=PRICE)


def test_a_free_dataset_sells_nothing(world: World, access: Any) -> None:
    with boa.reverts("data_access: dataset is free"):
        buy(access, world.carol, world.dataset_id, value=0)
    priced(world, access)
    priced(world, access, 0)
    with boa.reverts("data_access: dataset is free"):
        buy(access, world.carol, world.dataset_id, value=PRICE)


def test_access_is_bought_once(world: World, access: Any) -> None:
    priced(world, access)
    buy(access, world.carol, world.dataset_id)
    with boa.reverts("data_access: access already bought"):
        buy(access, world.carol, world.dataset_id)
    with boa.reverts("data_access: access already bought"):
        buy(access, world.alice, world.dataset_id, account=world.carol)
    assert access.buyers(world.dataset_id) == 1


def test_buying_for_the_zero_address_reverts(world: World, access: Any) -> None:
    priced(world, access)
    with boa.reverts("data_access: zero account"):
        buy(access, world.carol, world.dataset_id, account=ZERO)


def test_bought_access_outlives_a_price_change(world: World, access: Any) -> None:
    priced(world, access)
    buy(access, world.carol, world.dataset_id)
    priced(world, access, 5 * PRICE)
    assert access.has_access(world.dataset_id, world.carol)


def test_revenue_past_its_field_reverts(world: World, access: Any) -> None:
    priced(world, access)
    slot = mapping_slot(storage_slot(access, "_sales"), world.dataset_id)
    live = 1 << 255
    poke(access, slot, live | (2**128 - PRICE))  # one wei short of room for a purchase
    with boa.reverts("data_access: revenue overflow"):
        buy(access, world.carol, world.dataset_id)
    poke(access, slot, live | (2**128 - 1 - PRICE))
    buy(access, world.carol, world.dataset_id)
    assert access.revenue(world.dataset_id) == 2**128 - 1 and access.buyers(world.dataset_id) == 1


def test_a_reentrant_share_token_cannot_buy_twice(access_deployer: Any) -> None:
    hostile = boa.loads(HOSTILE_MARKET)
    access = access_deployer.deploy(hostile.address)
    hostile.set_target(access.address)
    buyer = boa.env.generate_address("hostile-buyer")
    boa.env.set_balance(buyer, 10 * PRICE)
    boa.env.set_balance(hostile.address, 10 * PRICE)
    with boa.env.prank(buyer):
        access.set_price(1, PRICE)
        access.buy(1, buyer, value=PRICE)
    assert hostile.reentered() and not hostile.reentry_succeeded()
    assert not access.bought(1, hostile.address)
    assert access.buyers(1) == 1 and hostile.paid() == PRICE


# --- who has access ----------------------------------------------------------------------------


def test_a_free_dataset_is_open_to_everyone(world: World, access: Any) -> None:
    for account in (world.carol, world.contributor, ZERO):
        assert access.has_access(world.dataset_id, account)
    assert access.has_access(999, world.carol)  # no price was ever set there


def test_a_priced_dataset_is_open_to_those_who_curate_it(world: World, access: Any) -> None:
    priced(world, access)
    for account in (world.initiator, world.evaluator, world.alice, world.bob):
        assert access.has_access(world.dataset_id, account), account
    for account in (world.carol, world.contributor, ZERO):
        assert not access.has_access(world.dataset_id, account), account


def test_selling_every_share_ends_access_through_shares(world: World, access: Any) -> None:
    priced(world, access)
    with boa.env.prank(world.bob):
        world.token.transfer(world.carol, 20 * UNIT)
    assert not access.has_access(world.dataset_id, world.bob)
    assert access.has_access(world.dataset_id, world.carol)  # one share unit is enough


def test_a_removed_evaluator_loses_access(world: World, access: Any) -> None:
    priced(world, access)
    with boa.env.prank(world.initiator):
        world.market.revokeRole(world.market.evaluator_role(world.dataset_id), world.evaluator)
    assert not access.has_access(world.dataset_id, world.evaluator)


# --- invariants --------------------------------------------------------------------------------


class AccessMachine(RuleBasedStateMachine):
    """Any sequence of price changes and purchases: every wei paid reaches the share token,
    revenue and buyers count exactly the purchases, and nobody pays twice."""

    world: World
    deployer: Any

    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.access = self.deployer.deploy(self.world.market.address)
        self.paid_before = self.world.token.total_paid()
        self.accounts = [self.world.carol, self.world.contributor, self.world.alice]
        self.bought: set[str] = set()
        self.total = 0

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)

    @rule(price=st.sampled_from([0, 1, PRICE, 3 * PRICE]))
    def set_price(self, price: int) -> None:
        with boa.env.prank(self.world.initiator):
            self.access.set_price(self.world.dataset_id, price)

    @rule(who=st.integers(0, 2), extra=st.sampled_from([0, 0, 1]))
    def buy(self, who: int, extra: int) -> None:
        account = self.accounts[who]
        price = self.access.price(self.world.dataset_id)
        ok = price != 0 and account not in self.bought and extra == 0
        with boa.env.prank(self.world.bob):
            if ok:
                self.access.buy(self.world.dataset_id, account, value=price)
                self.bought.add(account)
                self.total += price
            else:
                with boa.reverts():
                    self.access.buy(self.world.dataset_id, account, value=price + extra)

    @invariant()
    def every_wei_reaches_the_shareholders(self) -> None:
        d = self.world.dataset_id
        assert self.access.revenue(d) == self.total
        assert self.world.token.total_paid() - self.paid_before == self.total
        assert self.access.buyers(d) == len(self.bought)
        assert boa.env.get_balance(self.access.address) == 0
        for account in self.accounts:
            assert self.access.bought(d, account) == (account in self.bought)


def test_access_state_machine(world: World, access_deployer: Any) -> None:
    AccessMachine.world = world
    AccessMachine.deployer = access_deployer
    machine = AccessMachine.TestCase
    machine.settings = settings(settings.get_profile(PROFILE), max_examples=15)
    machine().runTest()
