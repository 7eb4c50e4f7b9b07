"""ComputeMarket's federations: federated training paid by contribution from an escrow that its
payer cannot take back once training started (issue 12, sections 7 and 8).

The attack of section 8, a payer trying to withdraw a running federated escrow, is refused by
every door (cancel, reclaim before the deadline, the job functions, withdraw). The coordinator's
payouts are checked by a Hypothesis property (any list of clients and amounts: it settles exactly
when every entry is a distinct client and the sum fits the escrow, and then credits add up to the
escrow with nobody paid twice) and by a state machine over many federations (money in equals
money out plus holdings). Pull withdrawals, the deadline reclaim, refusals of everyone but the
allowed coordinator, reentrant receivers and the gas of a settlement are tested too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boa
import pytest
from contracts_support import CONTRACTS, HELPERS, PROFILE, World, cid, events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

AMOUNT = 10**18
DURATION = 3_600
MEASUREMENT = cid(0x3EA5)
SPEC = cid(0x5BEC)
SCORES = cid(0x5C0E)
ZERO = "0x" + "00" * 20
OPEN, RUNNING, SETTLED, CANCELLED, RECLAIMED = 1, 2, 3, 4, 5
MAX_CLIENTS = 128


@dataclass
class Fed:
    """A compute market deployed by `admin` with `coord` allowed; `payer` funds federations,
    `clients` are data owners, `rogue` was never allowed, `outsider` is nobody's client."""

    cm: Any
    admin: str
    coord: str
    rogue: str
    payer: str
    outsider: str
    clients: list[str]

    def create(
        self,
        clients: list[str] | None = None,
        amount: int = AMOUNT,
        duration: int = DURATION,
        open_joining: bool = False,
        coord: str | None = None,
        payer: str | None = None,
    ) -> int:
        with boa.env.prank(payer or self.payer):
            return int(
                self.cm.create_federation(
                    coord or self.coord,
                    amount,
                    boa.env.timestamp + duration,
                    SPEC,
                    self.clients[:3] if clients is None else clients,
                    open_joining,
                    value=amount,
                )
            )

    def start(self, federation_id: int, sender: str | None = None) -> None:
        with boa.env.prank(sender or self.coord):
            self.cm.start_federation(federation_id)

    def running(self, clients: list[str] | None = None, amount: int = AMOUNT) -> int:
        f = self.create(clients, amount)
        self.start(f)
        return f

    def settle(
        self,
        federation_id: int,
        clients: list[str],
        amounts: list[int],
        sender: str | None = None,
        scores: bytes = SCORES,
    ) -> int:
        with boa.env.prank(sender or self.coord):
            return int(self.cm.settle_federation(federation_id, clients, amounts, scores))


@pytest.fixture(scope="session")
def federated_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS / "ComputeMarket.vy"))


@pytest.fixture(scope="module")
def fed(world: World, federated_deployer: Any) -> Iterator[Fed]:
    """The compute market, rolled back after the module so other modules never see it."""
    with boa.env.anchor():
        names = ["admin", "coord", "rogue", "payer", "outsider"]
        acc = {n: boa.env.generate_address(f"fed-{n}") for n in names}
        clients = [boa.env.generate_address(f"fed-client{i}") for i in range(5)]
        for a in [*acc.values(), *clients]:
            boa.env.set_balance(a, 10**24)
        with boa.env.prank(acc["admin"]):
            cm = federated_deployer.deploy()
            cm.allow_coordinator(acc["coord"], MEASUREMENT)
        yield Fed(cm=cm, clients=clients, **acc)


# --- create and join -------------------------------------------------------------------------


def test_create_federation_escrows_the_amount_and_names_its_clients(fed: Fed) -> None:
    cm, named = fed.cm, fed.clients[:3]
    f = fed.create()
    (e,) = events(cm, "FederationCreated")
    assert (e.federation_id, e.payer, e.coordinator, e.amount, e.spec_digest, e.open_joining) == (
        f, fed.payer, fed.coord, AMOUNT, SPEC, False,
    )  # fmt: skip
    assert [(j.federation_id, j.client) for j in events(cm, "FederationJoined")] == [
        (f, c) for c in named
    ]
    got = cm.federation(f)
    assert (got.payer, got.coordinator, got.amount, got.paid, got.spec_digest) == (
        fed.payer, fed.coord, AMOUNT, 0, SPEC,
    )  # fmt: skip
    assert (got.clients, got.open_joining, got.status, got.started_at) == (3, False, OPEN, 0)
    assert got.deadline == boa.env.timestamp + DURATION and got.scores_cid == b"\x00" * 32
    assert cm.federation_count() == 1 and boa.env.get_balance(cm.address) == AMOUNT
    assert all(cm.participant(f, c) == (True, False, 0) for c in named)
    assert cm.participant(f, fed.outsider) == (False, False, 0)
    assert cm.participant(f + 1, named[0]) == (False, False, 0)  # scoped to its federation


def test_create_federation_refusals(fed: Fed) -> None:
    cm, now, c = fed.cm, boa.env.timestamp, fed.clients
    with boa.reverts("compute_market: coordinator not allowed"):
        fed.create(coord=fed.rogue)
    with boa.env.prank(fed.payer):
        with boa.reverts("compute_market: zero amount"):
            cm.create_federation(fed.coord, 0, now + 1, SPEC, c[:1], False)
        with boa.reverts("compute_market: value is not the amount"):
            cm.create_federation(fed.coord, AMOUNT, now + 1, SPEC, c[:1], False, value=AMOUNT - 1)
        with boa.reverts("compute_market: deadline in the past"):
            cm.create_federation(fed.coord, AMOUNT, now, SPEC, c[:1], False, value=AMOUNT)
        with boa.reverts("compute_market: empty spec"):
            cm.create_federation(fed.coord, AMOUNT, now + 1, b"\x00" * 32, c[:1], False,
                                 value=AMOUNT)  # fmt: skip
    with boa.reverts("compute_market: no clients"):
        fed.create(clients=[])
    with boa.reverts("compute_market: client joined"):
        fed.create(clients=[c[0], c[1], c[0]])
    with boa.reverts("compute_market: zero client"):
        fed.create(clients=[c[0], ZERO])
    assert cm.federation_count() == 0


def test_clients_join_an_open_federation_until_the_start(fed: Fed) -> None:
    cm, c = fed.cm, fed.clients
    f = fed.create(clients=[], open_joining=True)  # no client named: all of them join
    for client in c[:2]:
        with boa.env.prank(client):
            cm.join_federation(f)
        (e,) = events(cm, "FederationJoined")
        assert (e.federation_id, e.client) == (f, client)
    assert cm.federation(f).clients == 2 and cm.participant(f, c[1]).joined
    with boa.env.prank(c[0]), boa.reverts("compute_market: client joined"):
        cm.join_federation(f)
    fed.start(f)
    with boa.env.prank(c[2]), boa.reverts("compute_market: federation not open"):
        cm.join_federation(f)  # the clients are fixed once training started
    assert not cm.participant(f, c[2]).joined


def test_join_refusals(fed: Fed) -> None:
    cm, c = fed.cm, fed.clients
    named = fed.create()
    with boa.env.prank(c[4]):
        with boa.reverts("compute_market: joining closed"):
            cm.join_federation(named)
        with boa.reverts("compute_market: federation not open"):
            cm.join_federation(named + 1)  # no such federation
    late = fed.create(open_joining=True)
    boa.env.time_travel(seconds=DURATION)
    with boa.env.prank(c[4]), boa.reverts("compute_market: federation expired"):
        cm.join_federation(late)
    full = fed.create(clients=[boa.env.generate_address(f"m{i}") for i in range(MAX_CLIENTS)],
                      open_joining=True)  # fmt: skip
    assert cm.federation(full).clients == MAX_CLIENTS
    with boa.env.prank(c[4]), boa.reverts("compute_market: too many clients"):
        cm.join_federation(full)


# --- start ---------------------------------------------------------------------------------


def test_start_fixes_the_clients_and_records_the_time(fed: Fed) -> None:
    cm = fed.cm
    f = fed.create()
    fed.start(f)
    (e,) = events(cm, "FederationStarted")
    assert (e.federation_id, e.clients) == (f, 3)
    got = cm.federation(f)
    assert (got.status, got.started_at) == (RUNNING, boa.env.timestamp)


def test_start_refusals(fed: Fed) -> None:
    cm = fed.cm
    f = fed.create()
    for sender in (fed.payer, fed.rogue, fed.clients[0]):
        with boa.reverts("compute_market: not the coordinator"):
            fed.start(f, sender)
    empty_open = fed.create(clients=[], open_joining=True)
    with boa.reverts("compute_market: no clients"):
        fed.start(empty_open)
    fed.start(f)
    with boa.reverts("compute_market: federation not open"):
        fed.start(f)
    late = fed.create()
    boa.env.time_travel(seconds=DURATION)
    with boa.reverts("compute_market: federation expired"):
        fed.start(late)
    other = fed.create(duration=10 * DURATION)
    with boa.env.prank(fed.admin):
        cm.revoke_coordinator(fed.coord)
    with boa.reverts("compute_market: coordinator not allowed"):
        fed.start(other)


# --- the attack: a payer trying to withdraw a running federated escrow --------------------------


def test_a_payer_cannot_withdraw_a_running_federated_escrow(fed: Fed) -> None:
    """Issue 12, section 8. Once the coordinator started training, the payer is refused by
    every way out: cancel, reclaim before the deadline, the job functions of the same id, a
    plain withdraw; not even the coordinator's revocation lets it out before the deadline."""
    cm, payer = fed.cm, fed.payer
    f = fed.running()
    held = boa.env.get_balance(cm.address)
    with boa.env.prank(payer):
        with boa.reverts("compute_market: training started"):
            cm.cancel_federation(f)
        with boa.reverts("compute_market: deadline not reached"):
            cm.reclaim_federation(f)
        with boa.reverts("compute_market: not payer or coordinator"):
            cm.close_job(f)  # jobs and federations are numbered apart
        with boa.reverts("compute_market: not the payer"):
            cm.reclaim(f)
        with boa.reverts("compute_market: nothing to withdraw"):
            cm.withdraw()
    with boa.env.prank(fed.admin):
        cm.revoke_coordinator(fed.coord)
    boa.env.time_travel(seconds=DURATION - 12)
    with boa.env.prank(payer):
        with boa.reverts("compute_market: training started"):
            cm.cancel_federation(f)
        with boa.reverts("compute_market: deadline not reached"):
            cm.reclaim_federation(f)
    with boa.env.prank(fed.coord), boa.reverts("compute_market: training started"):
        cm.cancel_federation(f)  # nor can the coordinator hand it back outside a settlement
    assert cm.federation(f).status == RUNNING and cm.balance_of(payer) == 0
    assert boa.env.get_balance(cm.address) == held


@pytest.mark.parametrize("closer", ["payer", "coord"])
def test_before_the_start_the_payer_or_coordinator_cancels_for_a_full_refund(
    fed: Fed, closer: str
) -> None:
    cm = fed.cm
    f = fed.create()
    with boa.env.prank(getattr(fed, closer)):
        assert cm.cancel_federation(f) == AMOUNT
    (e,) = events(cm, "FederationClosed")
    assert (e.federation_id, e.closed_by, e.refund) == (f, getattr(fed, closer), AMOUNT)
    assert cm.federation(f).status == CANCELLED and cm.balance_of(fed.payer) == AMOUNT
    with boa.env.prank(fed.payer):
        with boa.reverts("compute_market: federation not open"):
            cm.cancel_federation(f)
        before = boa.env.get_balance(fed.payer)
        assert cm.withdraw() == AMOUNT
    assert boa.env.get_balance(fed.payer) == before + AMOUNT
    with boa.reverts("compute_market: federation not open"):
        fed.start(f)


def test_cancel_refusals(fed: Fed) -> None:
    f = fed.create()
    for sender in (fed.outsider, fed.clients[0], fed.admin, fed.rogue):
        with boa.env.prank(sender), boa.reverts("compute_market: not payer or coordinator"):
            fed.cm.cancel_federation(f)
    s = fed.running()
    fed.settle(s, fed.clients[:1], [1])
    with boa.env.prank(fed.payer), boa.reverts("compute_market: federation not open"):
        fed.cm.cancel_federation(s)


# --- settle --------------------------------------------------------------------------------


def test_settle_credits_each_client_and_the_rest_to_the_payer(fed: Fed) -> None:
    cm, c = fed.cm, fed.clients
    f = fed.running(clients=c[:4])
    held = boa.env.get_balance(cm.address)
    amounts = [AMOUNT // 2, AMOUNT // 4, 0]  # c[3] is a client but not listed: nothing
    assert fed.settle(f, c[:3], amounts) == AMOUNT // 4
    payouts = events(cm, "FederationPayout")
    assert [(p.federation_id, p.client, p.amount) for p in payouts] == [
        (f, c[i], amounts[i]) for i in range(3)
    ]
    (e,) = events(cm, "FederationSettled")
    assert (e.federation_id, e.scores_cid, e.paid, e.refund) == (
        f, SCORES, 3 * AMOUNT // 4, AMOUNT // 4,
    )  # fmt: skip
    got = cm.federation(f)
    assert (got.status, got.paid, got.scores_cid) == (SETTLED, 3 * AMOUNT // 4, SCORES)
    assert [cm.balance_of(x) for x in c[:4]] == [*amounts, 0]
    assert cm.balance_of(fed.payer) == AMOUNT // 4
    assert cm.participant(f, c[0]) == (True, True, AMOUNT // 2)
    assert cm.participant(f, c[2]) == (True, True, 0)
    assert cm.participant(f, c[3]) == (True, False, 0)
    assert boa.env.get_balance(cm.address) == held  # credited, not sent: pull payments


def test_clients_pull_their_payouts_once(fed: Fed) -> None:
    cm, c = fed.cm, fed.clients
    f = fed.running()
    fed.settle(f, c[:3], [AMOUNT // 2, AMOUNT // 2, 0])
    for client in c[:2]:
        before = boa.env.get_balance(client)
        with boa.env.prank(client):
            assert cm.withdraw() == AMOUNT // 2
            (e,) = events(cm, "Withdrawn")
            assert (e.account, e.amount) == (client, AMOUNT // 2)
            with boa.reverts("compute_market: nothing to withdraw"):
                cm.withdraw()
        assert boa.env.get_balance(client) == before + AMOUNT // 2
    for nobody in (c[2], fed.payer):  # paid 0; the whole escrow went out
        with boa.env.prank(nobody), boa.reverts("compute_market: nothing to withdraw"):
            cm.withdraw()
    assert boa.env.get_balance(cm.address) == 0


def test_only_the_allowed_coordinator_posts_payouts(fed: Fed) -> None:
    cm, c = fed.cm, fed.clients
    f = fed.running()
    with boa.env.prank(fed.admin):
        cm.allow_coordinator(fed.rogue, MEASUREMENT)  # allowed, but not this federation's
    for sender in (fed.payer, fed.rogue, c[0], fed.admin):
        with boa.reverts("compute_market: not the coordinator"):
            fed.settle(f, [c[0]], [AMOUNT], sender=sender)
    with boa.reverts("compute_market: not the coordinator"):
        fed.settle(f + 1, [c[0]], [1])  # no such federation
    with boa.env.prank(fed.admin):
        cm.revoke_coordinator(fed.coord)
    with boa.reverts("compute_market: coordinator not allowed"):
        fed.settle(f, [c[0]], [1])
    assert cm.balance_of(c[0]) == 0 and cm.federation(f).status == RUNNING


def test_settle_refusals(fed: Fed) -> None:
    c = fed.clients
    opened = fed.create()
    with boa.reverts("compute_market: federation not running"):
        fed.settle(opened, [c[0]], [1])  # no payouts before training started
    f = fed.running()
    with boa.reverts("compute_market: clients and amounts differ"):
        fed.settle(f, c[:2], [1])
    with boa.reverts("compute_market: empty scores"):
        fed.settle(f, [c[0]], [1], scores=b"\x00" * 32)
    with boa.reverts("compute_market: not a client"):
        fed.settle(f, [c[0], fed.outsider], [1, 1])
    with boa.reverts("compute_market: duplicate client"):
        fed.settle(f, [c[0], c[1], c[0]], [1, 1, 1])
    with boa.reverts("compute_market: duplicate client"):
        fed.settle(f, [c[0], c[0]], [0, 0])  # a zero payout counts as posted too
    with boa.reverts("compute_market: payouts exceed escrow"):
        fed.settle(f, c[:2], [AMOUNT, 1])
    assert fed.settle(f, c[:2], [AMOUNT - 1, 1]) == 0  # exactly the escrow
    with boa.reverts("compute_market: federation not running"):
        fed.settle(f, [c[2]], [0])  # once: nobody can be paid twice
    late = fed.running()
    boa.env.time_travel(seconds=DURATION)
    with boa.reverts("compute_market: federation expired"):
        fed.settle(late, [c[0]], [1])


def test_an_empty_settlement_returns_everything_to_the_payer(fed: Fed) -> None:
    """A coordinator whose run came to nothing (nobody helped) settles with no payouts."""
    f = fed.running()
    assert fed.settle(f, [], []) == AMOUNT
    assert fed.cm.balance_of(fed.payer) == AMOUNT and fed.cm.federation(f).paid == 0


# --- the deadline --------------------------------------------------------------------------


def test_the_payer_reclaims_after_the_deadline_when_the_coordinator_never_settles(
    fed: Fed,
) -> None:
    cm, payer = fed.cm, fed.payer
    f = fed.running()
    with boa.env.prank(fed.admin):
        cm.revoke_coordinator(fed.coord)  # the coordinator vanished and was revoked
    boa.env.time_travel(seconds=DURATION)
    with boa.env.prank(fed.clients[0]), boa.reverts("compute_market: not the payer"):
        cm.reclaim_federation(f)
    with boa.env.prank(fed.coord), boa.reverts("compute_market: not the payer"):
        cm.reclaim_federation(f)
    before = boa.env.get_balance(payer)
    with boa.env.prank(payer):
        assert cm.reclaim_federation(f) == AMOUNT
        (e,) = events(cm, "FederationClosed")
        assert (e.federation_id, e.closed_by, e.refund) == (f, payer, AMOUNT)
        with boa.reverts("compute_market: federation closed"):
            cm.reclaim_federation(f)
        assert cm.withdraw() == AMOUNT
    assert boa.env.get_balance(payer) == before + AMOUNT
    assert cm.federation(f).status == RECLAIMED


def test_reclaim_exactly_from_the_deadline_and_never_after_a_settlement(fed: Fed) -> None:
    cm = fed.cm
    f = fed.running()
    deadline = cm.federation(f).deadline
    boa.env.time_travel(seconds=deadline - boa.env.timestamp - 1)
    with boa.env.prank(fed.payer), boa.reverts("compute_market: deadline not reached"):
        cm.reclaim_federation(f)
    fed.settle(f, [fed.clients[0]], [AMOUNT // 2])  # the last second before the deadline
    boa.env.time_travel(seconds=1)
    assert boa.env.timestamp == deadline
    with boa.env.prank(fed.payer), boa.reverts("compute_market: federation closed"):
        cm.reclaim_federation(f)
    opened = fed.create()  # an unstarted federation is reclaimable too
    boa.env.time_travel(seconds=DURATION)
    with boa.env.prank(fed.payer):
        assert cm.reclaim_federation(opened) == AMOUNT
    assert cm.balance_of(fed.payer) == AMOUNT // 2 + AMOUNT


# --- reentrancy ----------------------------------------------------------------------------


@pytest.fixture
def attacker(fed: Fed) -> Any:
    a = boa.load(str(HELPERS / "compute_reentrant_receiver.vy"), fed.cm.address)
    boa.env.set_balance(a.address, 10**20)
    return a


def test_a_reentrant_client_cannot_withdraw_twice(fed: Fed, attacker: Any) -> None:
    cm = fed.cm
    f = fed.running(clients=[attacker.address, fed.clients[0]])
    fed.settle(f, [attacker.address, fed.clients[0]], [AMOUNT // 2, AMOUNT // 4])
    withdraw = cm.withdraw.prepare_calldata()
    attacker.set_reentry(withdraw)
    attacker.call(withdraw)
    assert attacker.reentered() and not attacker.reentry_succeeded()
    assert attacker.received() == AMOUNT // 2
    assert boa.env.get_balance(cm.address) == AMOUNT // 2  # the others' credits are intact


def test_a_reentrant_payer_cannot_cancel_a_running_escrow_from_its_refund(
    fed: Fed, attacker: Any
) -> None:
    """A contract payer gets a refund of another federation and, from inside that payment,
    tries to cancel its running one: the lock and the status both refuse."""
    cm, now = fed.cm, boa.env.timestamp
    create = cm.create_federation.prepare_calldata
    attacker.call(create(fed.coord, AMOUNT, now + DURATION, SPEC, fed.clients[:2], False), AMOUNT)
    first = cm.federation_count()
    attacker.call(create(fed.coord, AMOUNT, now + DURATION, SPEC, fed.clients[:2], False), AMOUNT)
    running = cm.federation_count()
    fed.start(running)
    attacker.call(cm.cancel_federation.prepare_calldata(first))
    attacker.set_reentry(cm.cancel_federation.prepare_calldata(running))
    attacker.call(cm.withdraw.prepare_calldata())
    assert attacker.reentered() and not attacker.reentry_succeeded()
    assert attacker.received() == AMOUNT and cm.federation(running).status == RUNNING
    with boa.reverts():  # and outside any payment it is refused as well
        attacker.call(cm.cancel_federation.prepare_calldata(running))


# --- the payout property --------------------------------------------------------------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    picks=st.lists(st.integers(0, 4), unique=True, max_size=5),
    fault=st.sampled_from([None, None, None, "repeat", "outsider"]),
    weights=st.lists(st.integers(0, 1_000), min_size=6, max_size=6),
    split=st.sampled_from([1, 1, 2]),
    escrow=st.sampled_from([1, 7, AMOUNT // 3, AMOUNT]),
)
def test_payouts_add_up_and_nobody_is_paid_twice(
    fed: Fed, picks: list[int], fault: str | None, weights: list[int], split: int, escrow: int
) -> None:
    """Any list of payees and amounts: settling succeeds exactly when every payee is a
    distinct client and the sum fits the escrow; then each client is credited its amount once,
    the payer the rest, the credits add up to the escrow, a second settlement is refused, and
    withdrawing everything empties the escrow. Drawn so that both outcomes are common:
    distinct clients, sometimes with one repeated or an outsider slipped in, each paid up to
    its share of the escrow (`split` 1) or of twice the escrow (`split` 2)."""
    cm, pool = fed.cm, [*fed.clients, fed.outsider]
    payees = [pool[i] for i in picks]
    if fault == "repeat" and payees:
        payees.append(payees[0])
    elif fault == "outsider":
        payees.insert(len(payees) // 2, fed.outsider)
    amounts = [split * escrow * w // (1_000 * len(payees)) for w in weights[: len(payees)]]
    with boa.env.anchor():
        f = fed.running(clients=fed.clients, amount=escrow)
        ok = (
            fed.outsider not in payees
            and len(set(payees)) == len(payees)
            and sum(amounts) <= escrow
        )
        held = boa.env.get_balance(cm.address)
        if not ok:
            with boa.reverts():
                fed.settle(f, payees, amounts)
            assert all(cm.balance_of(a) == 0 for a in [*pool, fed.payer])
            assert cm.federation(f).status == RUNNING
            return
        refund = fed.settle(f, payees, amounts)
        owed = dict(zip(payees, amounts, strict=True))
        assert refund == escrow - sum(amounts) == cm.balance_of(fed.payer)
        for client in fed.clients:
            assert cm.balance_of(client) == owed.get(client, 0)
            assert cm.participant(f, client) == (True, client in owed, owed.get(client, 0))
        credits = sum(cm.balance_of(a) for a in [*pool, fed.payer])
        assert credits == escrow == cm.federation(f).paid + refund
        with boa.reverts("compute_market: federation not running"):
            fed.settle(f, payees, amounts)
        for account in [*fed.clients, fed.payer]:
            if cm.balance_of(account):
                with boa.env.prank(account):
                    cm.withdraw()
        assert boa.env.get_balance(cm.address) == held - escrow


# --- gas -----------------------------------------------------------------------------------


def test_gas_of_a_settlement(federated_deployer: Any, record_property: Any) -> None:
    """`settle_federation` for 20 clients (the benchmark's federation) as a real signed
    transaction in a fresh chain, state locked around each as benchmarks/gas.py does."""
    from eth_keys import keys
    from eth_utils import to_canonical_address

    key = keys.PrivateKey(b"\x6d" * 32)
    coord = key.public_key.to_checksum_address()
    with boa.swap_env(boa.Env()):
        admin, payer = boa.env.generate_address("a"), boa.env.generate_address("p")
        clients = [boa.env.generate_address(f"c{i}") for i in range(20)]
        for a in [admin, payer, coord]:
            boa.env.set_balance(a, 10**24)
        with boa.env.prank(admin):
            cm = federated_deployer.deploy()
            cm.allow_coordinator(coord, MEASUREMENT)
        with boa.env.prank(payer):
            f = cm.create_federation(
                coord, AMOUNT, boa.env.timestamp + DURATION, SPEC, clients, False, value=AMOUNT
            )
        vm = boa.env.evm.vm

        def gas_of(data: bytes) -> int:
            state = vm.state
            state.lock_changes()
            tx = vm.create_unsigned_transaction(
                nonce=state.get_nonce(to_canonical_address(coord)),
                gas_price=state.base_fee,
                gas=5_000_000,
                to=to_canonical_address(cm.address),
                value=0,
                data=data,
            ).as_signed_transaction(key)
            computation = state.apply_transaction(tx)
            state.lock_changes()
            assert not computation.is_error, computation.error
            return int(type(vm).finalize_gas_used(tx, computation))

        start = gas_of(cm.start_federation.prepare_calldata(f))
        amounts = [AMOUNT // 40] * 20
        settle = gas_of(cm.settle_federation.prepare_calldata(f, clients, amounts, SCORES))
        assert cm.balance_of(clients[0]) == AMOUNT // 40
        assert cm.balance_of(payer) == AMOUNT // 2
    record_property("settle_federation_20_clients_gas", settle)
    print(f"start_federation gas {start:,}; settle_federation (20 clients) gas {settle:,}")
    # Each new payee pays for its fresh balance slot (20k): the bound is per client.
    assert start <= 60_000 and settle <= 20 * 40_000 + 100_000


# --- state machine ---------------------------------------------------------------------------


@dataclass
class FederationModel:
    payer: int
    coord: int
    amount: int
    deadline: int
    clients: set[int]
    open_joining: bool
    status: int = OPEN
    posted: dict[int, int] = field(default_factory=dict)


@dataclass
class Actors:
    cm: Any
    admin: str
    coords: list[str]  # 0 allowed, 1 toggled by the machine, 2 never allowed
    payers: list[str]
    clients: list[str]


class FederatedEscrowMachine(RuleBasedStateMachine):
    """Every call is predicted by a Python model: it must succeed exactly when the model says
    so and move exactly the money the model moves. Invariants: the contract holds what the
    open and running escrows and the unwithdrawn credits add up to; each client was credited
    exactly its posted payouts, each at most once per federation; a running escrow never
    returns to its payer before its deadline."""

    actors: ClassVar[Actors]

    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        a = self.actors
        self.cm = a.cm
        self.allowed = [True, True, False]
        self.feds: list[FederationModel] = []
        self.accounts = [*a.clients, *a.payers]
        self.credited = dict.fromkeys(self.accounts, 0)
        self.withdrawn = dict.fromkeys(self.accounts, 0)
        self.money_in = 0
        self.money_out = 0
        self.start = boa.env.get_balance(self.cm.address)

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)

    def _call(self, ok: bool, sender: str, fn: Any, *args: Any, value: int = 0) -> Any:
        with boa.env.prank(sender):
            if ok:
                return fn(*args, value=value)
            with boa.reverts():
                fn(*args, value=value)
        return None

    def _pick(self, pick: int) -> tuple[int, FederationModel]:
        f = pick % len(self.feds) + 1
        return f, self.feds[f - 1]

    @initialize()
    def two_federations(self) -> None:
        self.create(0, 0, AMOUNT, 10**6, [0, 1, 2], False)
        self.create(1, 1, AMOUNT, 5_000, [], True)

    @rule(
        p=st.integers(0, 1),
        c=st.integers(0, 2),
        amount=st.sampled_from([0, 1_000, AMOUNT]),
        duration=st.sampled_from([500, 5_000, 10**6]),
        named=st.lists(st.integers(0, 4), max_size=4),
        open_joining=st.booleans(),
    )
    def create(
        self, p: int, c: int, amount: int, duration: int, named: list[int], open_joining: bool
    ) -> None:
        a = self.actors
        ok = (
            self.allowed[c]
            and amount > 0
            and (open_joining or len(named) > 0)
            and len(set(named)) == len(named)
        )
        deadline = boa.env.timestamp + duration
        f = self._call(ok, a.payers[p], self.cm.create_federation, a.coords[c], amount, deadline,
                       SPEC, [a.clients[i] for i in named], open_joining, value=amount)  # fmt: skip
        if ok:
            self.feds.append(FederationModel(p, c, amount, deadline, set(named), open_joining))
            assert f == len(self.feds)
            self.money_in += amount

    @rule(pick=st.integers(0, 20), i=st.integers(0, 4))
    def join(self, pick: int, i: int) -> None:
        f, m = self._pick(pick)
        ok = (
            m.status == OPEN
            and m.open_joining
            and boa.env.timestamp < m.deadline
            and i not in m.clients
        )
        self._call(ok, self.actors.clients[i], self.cm.join_federation, f)
        if ok:
            m.clients.add(i)

    @rule(pick=st.integers(0, 20), own=st.sampled_from([True, True, False]))
    def start_training(self, pick: int, own: bool) -> None:
        f, m = self._pick(pick)
        c = m.coord if own else (m.coord + 1) % 3
        ok = (
            c == m.coord
            and self.allowed[c]
            and m.status == OPEN
            and boa.env.timestamp < m.deadline
            and len(m.clients) > 0
        )
        self._call(ok, self.actors.coords[c], self.cm.start_federation, f)
        if ok:
            m.status = RUNNING

    @rule(
        pick=st.integers(0, 20),
        own=st.sampled_from([True, True, True, False]),
        payees=st.lists(st.integers(0, 4), max_size=5),
        cut=st.sampled_from([1, 2, 3, 10]),
    )
    def settle(self, pick: int, own: bool, payees: list[int], cut: int) -> None:
        """Pay each payee an equal cut of 1/`cut` of the escrow (more than all of it when
        there are more payees than `cut`)."""
        f, m = self._pick(pick)
        c = m.coord if own else (m.coord + 1) % 3
        amounts = [m.amount // cut] * len(payees)
        ok = (
            c == m.coord
            and self.allowed[c]
            and m.status == RUNNING
            and boa.env.timestamp < m.deadline
            and all(i in m.clients for i in payees)
            and len(set(payees)) == len(payees)
            and sum(amounts) <= m.amount
        )
        a = self.actors
        refund = self._call(ok, a.coords[c], self.cm.settle_federation, f,
                            [a.clients[i] for i in payees], amounts, SCORES)  # fmt: skip
        if ok:
            assert refund == m.amount - sum(amounts)
            m.status = SETTLED
            for i, amount in zip(payees, amounts, strict=True):
                m.posted[i] = amount
                self.credited[a.clients[i]] += amount
            self.credited[a.payers[m.payer]] += refund

    @rule(pick=st.integers(0, 20), n=st.integers(0, 5), cut=st.sampled_from([1, 3, 10]))
    def train_and_settle(self, pick: int, n: int, cut: int) -> None:
        """The coordinator's usual course: start a federation if it is open, then pay up to
        `n` of its clients (random calls alone seldom line everything up)."""
        _, m = self._pick(pick)
        if m.status == OPEN:
            self.start_training(pick, True)
        self.settle(pick, True, sorted(m.clients)[:n], cut)

    @rule(pick=st.integers(0, 20))
    def deadline_passes(self, pick: int) -> None:
        """A coordinator that never settles: the payer reclaims once the deadline passed."""
        _, m = self._pick(pick)
        boa.env.time_travel(seconds=max(m.deadline - boa.env.timestamp, 12))
        self.reclaim(pick, True)

    @rule(pick=st.integers(0, 20), by=st.sampled_from(["payer", "coord", "other"]))
    def cancel(self, pick: int, by: str) -> None:
        f, m = self._pick(pick)
        a = self.actors
        sender = {"payer": a.payers[m.payer], "coord": a.coords[m.coord],
                  "other": a.payers[1 - m.payer]}[by]  # fmt: skip
        ok = by != "other" and m.status == OPEN
        refund = self._call(ok, sender, self.cm.cancel_federation, f)
        if ok:
            assert refund == m.amount
            m.status = CANCELLED
            self.credited[a.payers[m.payer]] += m.amount

    @rule(pick=st.integers(0, 20), own=st.sampled_from([True, True, False]))
    def reclaim(self, pick: int, own: bool) -> None:
        f, m = self._pick(pick)
        p = m.payer if own else 1 - m.payer
        ok = p == m.payer and boa.env.timestamp >= m.deadline and m.status in (OPEN, RUNNING)
        refund = self._call(ok, self.actors.payers[p], self.cm.reclaim_federation, f)
        if ok:
            assert refund == m.amount
            m.status = RECLAIMED
            self.credited[self.actors.payers[m.payer]] += m.amount

    @rule()
    def toggle_coordinator(self) -> None:
        a = self.actors
        with boa.env.prank(a.admin):
            if self.allowed[1]:
                self.cm.revoke_coordinator(a.coords[1])
            else:
                self.cm.allow_coordinator(a.coords[1], MEASUREMENT)
        self.allowed[1] = not self.allowed[1]

    @rule(seconds=st.sampled_from([60, 1_000, 5_000]))
    def wait(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @rule(i=st.integers(0, 6))
    def withdraw(self, i: int) -> None:
        account = self.accounts[i]
        owed = self.credited[account] - self.withdrawn[account]
        sent = self._call(owed > 0, account, self.cm.withdraw)
        if owed > 0:
            assert sent == owed
            self.withdrawn[account] += owed
            self.money_out += owed

    @invariant()
    def money_in_equals_money_out_plus_holdings(self) -> None:
        held = boa.env.get_balance(self.cm.address) - self.start
        assert held == self.money_in - self.money_out
        escrows = sum(m.amount for m in self.feds if m.status in (OPEN, RUNNING))
        owed = sum(self.credited[a] - self.withdrawn[a] for a in self.accounts)
        assert held == escrows + owed

    @invariant()
    def views_match_the_model(self) -> None:
        for a in self.accounts:
            assert self.cm.balance_of(a) == self.credited[a] - self.withdrawn[a]
        for f, m in enumerate(self.feds, start=1):
            got = self.cm.federation(f)
            assert (got.status, got.clients) == (m.status, len(m.clients))
            assert got.paid == sum(m.posted.values())

    @invariant()
    def clients_got_exactly_their_posted_payouts(self) -> None:
        for i, client in enumerate(self.actors.clients):
            assert self.credited[client] == sum(m.posted.get(i, 0) for m in self.feds)


def test_federated_escrow_state_machine(world: World, federated_deployer: Any) -> None:
    admin = boa.env.generate_address("inv-fed-admin")
    coords = [boa.env.generate_address(f"inv-fed-coord{i}") for i in range(3)]
    payers = [boa.env.generate_address(f"inv-fed-payer{i}") for i in range(2)]
    clients = [boa.env.generate_address(f"inv-fed-client{i}") for i in range(5)]
    for a in [admin, *coords, *payers, *clients]:
        boa.env.set_balance(a, 10**24)
    with boa.env.prank(admin):
        cm = federated_deployer.deploy()
        cm.allow_coordinator(coords[0], MEASUREMENT)
        cm.allow_coordinator(coords[1], MEASUREMENT)
    FederatedEscrowMachine.actors = Actors(cm, admin, coords, payers, clients)
    profile = settings.get_profile(PROFILE)
    if PROFILE == "databright-contracts":  # keep the default run near 10 s
        profile = settings(profile, max_examples=15)
    FederatedEscrowMachine.TestCase.settings = profile
    FederatedEscrowMachine.TestCase().runTest()
