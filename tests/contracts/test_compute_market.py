"""ComputeMarket: coordinators allowed by measurement, staked devices, escrowed jobs paid per
verified unit, slashing with on-chain evidence, closes, reclaims, pull payments and gas.

A positive and a negative test for every external function and every revert string, reentrant
receivers, and a Hypothesis state machine checking that money in equals money out and that
nobody is paid twice for a unit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boa
import pytest
from contracts_support import CONTRACTS, HELPERS, PROFILE, World, cid, events
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

MIN_STAKE = 10**16
UNSTAKE_DELAY = 86_400
STAKE = 10**17
MIN_FEE = 10**14
FEE = 2 * 10**14
MAX = 10**16
DURATION = 3_600
UNITS = 4  # unit ids per job in the state machine
CLASS = cid(0xC1A55)
CAPS = 0b101
MEASUREMENT = cid(0x3EA5)
SPEC = cid(0x5BEC)


@dataclass
class Compute:
    """A compute market deployed by `admin`, with `coord` allowed and four staked workers
    (STAKE each, minimum fee MIN_FEE). `payer` funds jobs; `rogue` was never allowed."""

    cm: Any
    admin: str
    coord: str
    rogue: str
    payer: str
    outsider: str
    workers: list[str]

    def job(self, amount: int = MAX, duration: int = DURATION, coord: str | None = None) -> int:
        with boa.env.prank(self.payer):
            return int(
                self.cm.create_job(
                    coord or self.coord, amount, boa.env.timestamp + duration, SPEC, value=amount
                )
            )

    def pay(self, job_id: int, unit: int, workers: list[str], fee: int = FEE) -> None:
        with boa.env.prank(self.coord):
            self.cm.pay_unit(job_id, cid(unit), workers, fee)

    def slash(self, worker: str, job_id: int, unit: int, sender: str | None = None) -> None:
        with boa.env.prank(sender or self.coord):
            self.cm.slash(worker, job_id, cid(unit), cid(0x1), cid(0x2), cid(0x3), cid(0xE))


@pytest.fixture(scope="session")
def compute_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS / "ComputeMarket.vy"))


@pytest.fixture(scope="module")
def compute(world: World, compute_deployer: Any) -> Iterator[Compute]:
    """The compute market, rolled back after the module so other modules never see it."""
    with boa.env.anchor():
        names = ["admin", "coord", "rogue", "payer", "outsider"]
        acc = {n: boa.env.generate_address(f"compute-{n}") for n in names}
        workers = [boa.env.generate_address(f"compute-worker{i}") for i in range(4)]
        for a in [*acc.values(), *workers]:
            boa.env.set_balance(a, 10**24)
        with boa.env.prank(acc["admin"]):
            cm = compute_deployer.deploy()
            cm.allow_coordinator(acc["coord"], MEASUREMENT)
        for w in workers:
            with boa.env.prank(w):
                cm.register_device(CLASS, CAPS, MIN_FEE, value=STAKE)
        yield Compute(cm=cm, workers=workers, **acc)


# --- governance ------------------------------------------------------------------------------


def test_the_deployer_is_the_admin_and_allows_coordinators(compute: Compute) -> None:
    cm = compute.cm
    assert cm.owner() == compute.admin
    assert cm.is_coordinator(compute.coord)
    assert cm.coordinator_measurement(compute.coord) == MEASUREMENT
    assert not cm.is_coordinator(compute.rogue)
    with boa.env.prank(compute.admin):
        cm.allow_coordinator(compute.rogue, cid(0x77))
    (e,) = events(cm, "CoordinatorAllowed")
    assert (e.coordinator, e.measurement) == (compute.rogue, cid(0x77))
    assert cm.is_coordinator(compute.rogue)
    assert cm.coordinator_measurement(compute.rogue) == cid(0x77)


def test_only_the_admin_allows_or_revokes(compute: Compute) -> None:
    with boa.env.prank(compute.coord), boa.reverts("ownable: caller is not the owner"):
        compute.cm.allow_coordinator(compute.rogue, MEASUREMENT)
    with boa.env.prank(compute.coord), boa.reverts("ownable: caller is not the owner"):
        compute.cm.revoke_coordinator(compute.coord)


def test_allow_refuses_a_zero_coordinator_or_an_empty_measurement(compute: Compute) -> None:
    with boa.env.prank(compute.admin):
        with boa.reverts("compute_market: zero coordinator"):
            compute.cm.allow_coordinator("0x" + "00" * 20, MEASUREMENT)
        with boa.reverts("compute_market: empty measurement"):
            compute.cm.allow_coordinator(compute.rogue, b"\x00" * 32)


def test_revoke(compute: Compute) -> None:
    with boa.env.prank(compute.admin):
        compute.cm.revoke_coordinator(compute.coord)
        (e,) = events(compute.cm, "CoordinatorRevoked")
        assert e.coordinator == compute.coord
        assert not compute.cm.is_coordinator(compute.coord)
        with boa.reverts("compute_market: not a coordinator"):
            compute.cm.revoke_coordinator(compute.coord)


def test_ownership_moves_in_two_steps_and_cannot_be_renounced(compute: Compute) -> None:
    cm = compute.cm
    with boa.env.prank(compute.admin):
        cm.transfer_ownership(compute.outsider)
    assert cm.owner() == compute.admin and cm.pending_owner() == compute.outsider
    with boa.env.prank(compute.outsider):
        cm.accept_ownership()
        cm.allow_coordinator(compute.rogue, MEASUREMENT)
    assert cm.owner() == compute.outsider
    assert not hasattr(cm, "renounce_ownership")


# --- devices ---------------------------------------------------------------------------------


def test_register_device(compute: Compute) -> None:
    cm = compute.cm
    d = cm.device(compute.workers[0])
    assert (d.numeric_class, d.capabilities, d.min_fee, d.stake, d.unstake_at) == (
        CLASS, CAPS, MIN_FEE, STAKE, 0,
    )  # fmt: skip
    assert d.registered_at > 0
    assert cm.total_staked() == 4 * STAKE
    with boa.env.prank(compute.outsider):
        cm.register_device(cid(9), 0, 0, value=MIN_STAKE)
    (e,) = events(cm, "DeviceRegistered")
    assert (e.owner, e.numeric_class, e.stake) == (compute.outsider, cid(9), MIN_STAKE)
    assert boa.env.get_balance(cm.address) == 4 * STAKE + MIN_STAKE


def test_register_device_refusals(compute: Compute) -> None:
    with boa.env.prank(compute.workers[0]), boa.reverts("compute_market: device registered"):
        compute.cm.register_device(CLASS, 0, 0, value=STAKE)
    with boa.env.prank(compute.outsider):
        with boa.reverts("compute_market: empty numeric class"):
            compute.cm.register_device(b"\x00" * 32, 0, 0, value=STAKE)
        with boa.reverts("compute_market: stake too small"):
            compute.cm.register_device(CLASS, 0, 0, value=MIN_STAKE - 1)


def test_add_stake_grows_the_stake_and_cancels_an_unstake(compute: Compute) -> None:
    cm, w = compute.cm, compute.workers[0]
    with boa.env.prank(w):
        cm.request_unstake()
        cm.add_stake(value=5)
    (e,) = events(cm, "StakeAdded")
    assert (e.amount, e.stake) == (5, STAKE + 5)
    assert cm.device(w).stake == STAKE + 5 and cm.device(w).unstake_at == 0
    assert cm.total_staked() == 4 * STAKE + 5


def test_add_stake_refusals(compute: Compute) -> None:
    with boa.env.prank(compute.outsider), boa.reverts("compute_market: no device"):
        compute.cm.add_stake(value=5)
    with boa.env.prank(compute.workers[0]), boa.reverts("compute_market: zero stake"):
        compute.cm.add_stake()


def test_unstake_then_withdraw_after_the_delay(compute: Compute) -> None:
    cm, w = compute.cm, compute.workers[0]
    before = boa.env.get_balance(w)
    with boa.env.prank(w):
        with boa.reverts("compute_market: no unstake requested"):
            cm.withdraw_stake()
        cm.request_unstake()
        (e,) = events(cm, "UnstakeRequested")
        assert e.unstake_at == boa.env.timestamp + UNSTAKE_DELAY
        with boa.reverts("compute_market: unstake pending"):
            cm.request_unstake()
        boa.env.time_travel(seconds=UNSTAKE_DELAY - 1)
        with boa.reverts("compute_market: unstake delay"):
            cm.withdraw_stake()
        boa.env.time_travel(seconds=1)
        assert cm.withdraw_stake() == STAKE
    assert boa.env.get_balance(w) == before + STAKE
    assert cm.device(w).registered_at == 0 and cm.total_staked() == 3 * STAKE
    with boa.env.prank(w):  # the device is gone: it may register again
        cm.register_device(CLASS, 0, 0, value=MIN_STAKE)


def test_request_unstake_needs_a_device(compute: Compute) -> None:
    with boa.env.prank(compute.outsider), boa.reverts("compute_market: no device"):
        compute.cm.request_unstake()


# --- jobs ------------------------------------------------------------------------------------


def test_create_job_escrows_the_amount(compute: Compute) -> None:
    cm = compute.cm
    j = compute.job()
    (e,) = events(cm, "JobCreated")
    assert (e.job_id, e.payer, e.coordinator, e.max_amount) == (
        j,
        compute.payer,
        compute.coord,
        MAX,
    )
    job = cm.job(j)
    assert (job.payer, job.coordinator, job.max_amount, job.remaining, job.spec_digest) == (
        compute.payer, compute.coord, MAX, MAX, SPEC,
    )  # fmt: skip
    assert job.expiry == boa.env.timestamp + DURATION and not job.closed
    assert cm.remaining(j) == MAX and cm.job_count() == 1
    assert boa.env.get_balance(cm.address) == 4 * STAKE + MAX


def test_a_coordinator_not_allowed_cannot_take_jobs(compute: Compute) -> None:
    with boa.reverts("compute_market: coordinator not allowed"):
        compute.job(coord=compute.rogue)
    with boa.env.prank(compute.admin):
        compute.cm.revoke_coordinator(compute.coord)
    with boa.reverts("compute_market: coordinator not allowed"):
        compute.job()


def test_create_job_refusals(compute: Compute) -> None:
    cm, now = compute.cm, boa.env.timestamp
    with boa.env.prank(compute.payer):
        with boa.reverts("compute_market: zero amount"):
            cm.create_job(compute.coord, 0, now + 1, SPEC)
        with boa.reverts("compute_market: value is not the amount"):
            cm.create_job(compute.coord, MAX, now + 1, SPEC, value=MAX - 1)
        with boa.reverts("compute_market: expiry in the past"):
            cm.create_job(compute.coord, MAX, now, SPEC, value=MAX)
        with boa.reverts("compute_market: empty spec"):
            cm.create_job(compute.coord, MAX, now + 1, b"\x00" * 32, value=MAX)


def test_pay_unit_credits_each_worker(compute: Compute) -> None:
    cm, ws = compute.cm, compute.workers[:3]
    j = compute.job()
    compute.pay(j, 1, ws)
    (e,) = events(cm, "UnitPaid")
    assert (e.job_id, e.unit_id, list(e.workers), e.fee_each) == (j, cid(1), ws, FEE)
    assert e.remaining == MAX - 3 * FEE == cm.remaining(j)
    assert all(cm.balance_of(w) == FEE for w in ws) and cm.balance_of(compute.workers[3]) == 0
    assert cm.unit_paid(j, cid(1)) and not cm.unit_paid(j, cid(2))
    assert cm.job(j).remaining == MAX - 3 * FEE
    compute.pay(j, 2, ws[:1], MIN_FEE)  # exactly the minimum fee
    assert cm.balance_of(ws[0]) == FEE + MIN_FEE


def test_nobody_is_paid_twice_for_a_unit(compute: Compute) -> None:
    j = compute.job()
    compute.pay(j, 1, compute.workers[:3])
    with boa.reverts("compute_market: unit paid"):
        compute.pay(j, 1, compute.workers[:3])
    with boa.reverts("compute_market: unit paid"):
        compute.pay(j, 1, compute.workers[3:])
    with boa.reverts("compute_market: duplicate worker"):
        compute.pay(j, 2, [compute.workers[0], compute.workers[1], compute.workers[0]])
    assert compute.cm.balance_of(compute.workers[0]) == FEE
    j2 = compute.job()  # unit ids are scoped to their job
    compute.pay(j2, 1, compute.workers[:1])
    assert compute.cm.balance_of(compute.workers[0]) == 2 * FEE


def test_pay_unit_only_by_the_jobs_allowed_coordinator(compute: Compute) -> None:
    cm = compute.cm
    j = compute.job()
    with boa.env.prank(compute.admin):
        cm.allow_coordinator(compute.rogue, MEASUREMENT)
    for sender in (compute.payer, compute.rogue, compute.workers[0]):
        with boa.env.prank(sender), boa.reverts("compute_market: not the coordinator"):
            cm.pay_unit(j, cid(1), compute.workers[:1], FEE)
    with boa.env.prank(compute.coord), boa.reverts("compute_market: not the coordinator"):
        cm.pay_unit(j + 1, cid(1), compute.workers[:1], FEE)  # no such job
    with boa.env.prank(compute.admin):
        cm.revoke_coordinator(compute.coord)
    with boa.reverts("compute_market: coordinator not allowed"):
        compute.pay(j, 1, compute.workers[:1])


def test_pay_unit_refusals(compute: Compute) -> None:
    cm, ws = compute.cm, compute.workers
    j = compute.job(amount=3 * FEE)
    with boa.reverts("compute_market: no workers"):
        compute.pay(j, 1, [])
    with boa.reverts("compute_market: zero fee"):
        compute.pay(j, 1, ws[:1], 0)
    with boa.reverts("compute_market: escrow exhausted"):
        compute.pay(j, 1, ws, FEE)
    with boa.reverts("compute_market: worker not staked"):
        compute.pay(j, 1, [ws[0], compute.outsider])
    with boa.reverts("compute_market: fee below minimum"):
        compute.pay(j, 1, ws[:1], MIN_FEE - 1)
    compute.pay(j, 1, ws[:3])  # exactly the escrow
    assert cm.remaining(j) == 0
    with boa.reverts("compute_market: escrow exhausted"):
        compute.pay(j, 2, ws[:1], 1 + MIN_FEE)


def test_no_payment_after_expiry_or_close(compute: Compute) -> None:
    cm = compute.cm
    j = compute.job()
    boa.env.time_travel(seconds=DURATION)
    assert cm.remaining(j) == 0
    with boa.reverts("compute_market: job expired"):
        compute.pay(j, 1, compute.workers[:1])
    j2 = compute.job()
    with boa.env.prank(compute.payer):
        cm.close_job(j2)
    assert cm.remaining(j2) == 0
    with boa.reverts("compute_market: job closed"):
        compute.pay(j2, 1, compute.workers[:1])


# --- slashing --------------------------------------------------------------------------------


def test_slash_burns_the_stake_and_records_the_evidence(compute: Compute) -> None:
    cm, bad = compute.cm, compute.workers[2]
    j = compute.job()
    held = boa.env.get_balance(cm.address)
    compute.slash(bad, j, 1)
    (e,) = events(cm, "Slashed")
    assert (e.worker, e.job_id, e.unit_id) == (bad, j, cid(1))
    assert (e.input_hash, e.honest_output, e.bad_output, e.evidence_cid) == (
        cid(1), cid(2), cid(3), cid(0xE),
    )  # fmt: skip
    assert e.amount == STAKE
    ev = cm.evidence(j, bad, cid(1))
    assert (ev.input_hash, ev.honest_output, ev.bad_output, ev.evidence_cid, ev.amount) == (
        cid(1), cid(2), cid(3), cid(0xE), STAKE,
    )  # fmt: skip
    assert ev.slashed_at == boa.env.timestamp
    assert cm.evidence(j, compute.workers[0], cid(1)).slashed_at == 0
    assert cm.device(bad).stake == 0 and cm.burned() == STAKE
    assert cm.total_staked() == 3 * STAKE
    assert boa.env.get_balance(cm.address) == held  # burned: it stays, nobody can move it
    with boa.reverts("compute_market: worker not staked"):
        compute.pay(j, 2, [bad])
    compute.pay(j, 1, compute.workers[:2])  # the agreeing replicas are paid


def test_a_slashed_worker_is_never_paid_for_that_unit(compute: Compute) -> None:
    cm, bad = compute.cm, compute.workers[2]
    j = compute.job()
    compute.slash(bad, j, 1)
    with boa.env.prank(bad):
        cm.add_stake(value=STAKE)  # staked again: other units may pay it, this one never
    with boa.reverts("compute_market: worker slashed"):
        compute.pay(j, 1, compute.workers[:3])
    compute.pay(j, 2, [bad])
    assert cm.balance_of(bad) == FEE


def test_slash_refusals(compute: Compute) -> None:
    cm, bad = compute.cm, compute.workers[2]
    j = compute.job()
    for sender in (compute.payer, bad):
        with boa.reverts("compute_market: not the coordinator"):
            compute.slash(bad, j, 1, sender=sender)
    with boa.reverts("compute_market: no device"):
        compute.slash(compute.outsider, j, 1)
    with boa.env.prank(compute.coord):
        with boa.reverts("compute_market: outputs agree"):
            cm.slash(bad, j, cid(1), cid(1), cid(2), cid(2), cid(0xE))
        with boa.reverts("compute_market: empty evidence"):
            cm.slash(bad, j, cid(1), cid(1), cid(2), cid(3), b"\x00" * 32)
    compute.slash(bad, j, 1)
    with boa.reverts("compute_market: already slashed"):
        compute.slash(bad, j, 1)
    with boa.env.prank(compute.admin):
        cm.revoke_coordinator(compute.coord)
    with boa.reverts("compute_market: coordinator not allowed"):
        compute.slash(compute.workers[0], j, 2)


def test_a_cheater_cannot_unstake_before_it_is_slashed(compute: Compute) -> None:
    """A worker that asks to leave right after cheating is still slashable until the delay, and
    then withdraws nothing; a slash after the job expired or closed still counts."""
    cm, bad = compute.cm, compute.workers[3]
    j = compute.job()
    with boa.env.prank(bad):
        cm.request_unstake()
    boa.env.time_travel(seconds=DURATION)
    with boa.env.prank(compute.payer):
        cm.close_job(j)
    compute.slash(bad, j, 1)
    boa.env.time_travel(seconds=UNSTAKE_DELAY)
    before = boa.env.get_balance(bad)
    with boa.env.prank(bad):
        assert cm.withdraw_stake() == 0
    assert boa.env.get_balance(bad) == before and cm.device(bad).registered_at == 0
    with boa.reverts("compute_market: no device"):  # gone: nothing left to slash
        compute.slash(bad, j, 2)


# --- close, reclaim, withdraw ----------------------------------------------------------------


@pytest.mark.parametrize("closer", ["payer", "coord"])
def test_close_job_refunds_the_rest_to_the_payer(compute: Compute, closer: str) -> None:
    cm = compute.cm
    j = compute.job()
    compute.pay(j, 1, compute.workers[:3])
    with boa.env.prank(getattr(compute, closer)):
        assert cm.close_job(j) == MAX - 3 * FEE
    (e,) = events(cm, "JobClosed")
    assert (e.job_id, e.closed_by, e.refund) == (j, getattr(compute, closer), MAX - 3 * FEE)
    assert cm.job(j).closed and cm.balance_of(compute.payer) == MAX - 3 * FEE
    with boa.env.prank(compute.payer), boa.reverts("compute_market: job closed"):
        cm.close_job(j)
    boa.env.time_travel(seconds=DURATION)
    with boa.env.prank(compute.payer), boa.reverts("compute_market: job closed"):
        cm.reclaim(j)


def test_close_job_only_by_payer_or_coordinator(compute: Compute) -> None:
    j = compute.job()
    for sender in (compute.outsider, compute.workers[0], compute.admin):
        with boa.env.prank(sender), boa.reverts("compute_market: not payer or coordinator"):
            compute.cm.close_job(j)


def test_the_payer_reclaims_after_expiry_with_a_dead_coordinator(compute: Compute) -> None:
    """The coordinator paid one unit, then vanished and was revoked: after the expiry the payer
    gets the rest back without it."""
    cm = compute.cm
    j = compute.job()
    compute.pay(j, 1, compute.workers[:3])
    with boa.env.prank(compute.admin):
        cm.revoke_coordinator(compute.coord)
    with boa.env.prank(compute.payer):
        with boa.reverts("compute_market: job not expired"):
            cm.reclaim(j)
        boa.env.time_travel(seconds=DURATION)
        with boa.env.prank(compute.coord), boa.reverts("compute_market: not the payer"):
            cm.reclaim(j)
        assert cm.reclaim(j) == MAX - 3 * FEE
        before = boa.env.get_balance(compute.payer)
        assert cm.withdraw() == MAX - 3 * FEE
    assert boa.env.get_balance(compute.payer) == before + MAX - 3 * FEE
    assert cm.job(j).closed


def test_withdraw_pays_credited_balances_once(compute: Compute) -> None:
    cm, w = compute.cm, compute.workers[0]
    j = compute.job()
    compute.pay(j, 1, [w])
    before = boa.env.get_balance(w)
    with boa.env.prank(w):
        assert cm.withdraw() == FEE
        (e,) = events(cm, "Withdrawn")
        assert (e.account, e.amount) == (w, FEE)
        with boa.reverts("compute_market: nothing to withdraw"):
            cm.withdraw()
    compute.pay(j, 2, [w])  # the kept live bit: a later credit still adds up
    with boa.env.prank(w):
        assert cm.withdraw() == FEE
    assert boa.env.get_balance(w) == before + 2 * FEE
    with boa.env.prank(compute.outsider), boa.reverts("compute_market: nothing to withdraw"):
        cm.withdraw()


# --- reentrancy ------------------------------------------------------------------------------


@pytest.fixture
def attacker(compute: Compute) -> Any:
    a = boa.load(str(HELPERS / "compute_reentrant_receiver.vy"), compute.cm.address)
    boa.env.set_balance(a.address, 10**20)
    return a


def test_a_reentrant_worker_cannot_withdraw_twice(compute: Compute, attacker: Any) -> None:
    cm = compute.cm
    attacker.call(cm.register_device.prepare_calldata(CLASS, 0, 0), STAKE)
    j = compute.job()
    compute.pay(j, 1, [attacker.address])
    compute.pay(j, 2, [attacker.address])
    withdraw = cm.withdraw.prepare_calldata()
    attacker.set_reentry(withdraw)
    held = boa.env.get_balance(cm.address)
    attacker.call(withdraw)
    assert attacker.reentered() and not attacker.reentry_succeeded()
    assert attacker.received() == 2 * FEE
    assert boa.env.get_balance(cm.address) == held - 2 * FEE


def test_a_reentrant_worker_cannot_withdraw_its_stake_twice(
    compute: Compute, attacker: Any
) -> None:
    cm = compute.cm
    attacker.call(cm.register_device.prepare_calldata(CLASS, 0, 0), STAKE)
    j = compute.job()
    compute.pay(j, 1, [attacker.address])
    attacker.call(cm.request_unstake.prepare_calldata())
    boa.env.time_travel(seconds=UNSTAKE_DELAY)
    attacker.set_reentry(cm.withdraw_stake.prepare_calldata())
    attacker.call(cm.withdraw_stake.prepare_calldata())
    assert attacker.reentered() and not attacker.reentry_succeeded()
    assert attacker.received() == STAKE and cm.balance_of(attacker.address) == FEE
    attacker.set_reentry(b"")
    attacker.call(cm.withdraw.prepare_calldata())  # its earnings are still there
    assert attacker.received() == STAKE + FEE


def test_a_contract_payer_is_refunded_by_pull(compute: Compute, attacker: Any) -> None:
    """Closing sends nothing, so a payer whose receive reenters cannot interfere; it then
    withdraws its refund once."""
    cm = compute.cm
    expiry = boa.env.timestamp + DURATION
    attacker.call(cm.create_job.prepare_calldata(compute.coord, MAX, expiry, SPEC), MAX)
    j = cm.job_count()
    compute.pay(j, 1, compute.workers[:1])
    with boa.env.prank(compute.coord):
        cm.close_job(j)
    assert attacker.received() == 0
    attacker.set_reentry(cm.withdraw.prepare_calldata())
    attacker.call(cm.withdraw.prepare_calldata())
    assert attacker.received() == MAX - FEE and not attacker.reentry_succeeded()


# --- gas -------------------------------------------------------------------------------------


def test_gas_of_pay_unit_and_slash(compute_deployer: Any, record_property: Any) -> None:
    """`pay_unit` for 3 workers and `slash` as real signed transactions in a fresh chain (state
    locked around each, as benchmarks/gas.py does: titanoboa's own figure keeps warm slots)."""
    from eth_keys import keys
    from eth_utils import to_canonical_address

    key = keys.PrivateKey(b"\x6c" * 32)
    coord = key.public_key.to_checksum_address()
    with boa.swap_env(boa.Env()):
        admin, payer = boa.env.generate_address("a"), boa.env.generate_address("p")
        workers = [boa.env.generate_address(f"w{i}") for i in range(4)]
        for a in [admin, payer, coord, *workers]:
            boa.env.set_balance(a, 10**24)
        with boa.env.prank(admin):
            cm = compute_deployer.deploy()
            cm.allow_coordinator(coord, MEASUREMENT)
        for w in workers:
            with boa.env.prank(w):
                cm.register_device(CLASS, CAPS, MIN_FEE, value=STAKE)
        with boa.env.prank(payer):
            j = cm.create_job(coord, MAX, boa.env.timestamp + DURATION, SPEC, value=MAX)
        vm = boa.env.evm.vm

        def gas_of(data: bytes) -> int:
            state = vm.state
            state.lock_changes()
            tx = vm.create_unsigned_transaction(
                nonce=state.get_nonce(to_canonical_address(coord)),
                gas_price=state.base_fee,
                gas=1_000_000,
                to=to_canonical_address(cm.address),
                value=0,
                data=data,
            ).as_signed_transaction(key)
            computation = state.apply_transaction(tx)
            state.lock_changes()
            assert not computation.is_error, computation.error
            return int(type(vm).finalize_gas_used(tx, computation))

        pay_first = gas_of(cm.pay_unit.prepare_calldata(j, cid(1), workers[:3], FEE))
        pay_later = gas_of(cm.pay_unit.prepare_calldata(j, cid(2), workers[:3], FEE))
        slash = gas_of(
            cm.slash.prepare_calldata(workers[3], j, cid(3), cid(1), cid(2), cid(3), cid(0xE))
        )
        assert cm.balance_of(workers[0]) == 2 * FEE and cm.device(workers[3]).stake == 0
    record_property("pay_unit_3_workers_gas", pay_first)
    record_property("slash_gas", slash)
    print(f"pay_unit (3 workers) gas: first {pay_first:,}, later {pay_later:,}; slash {slash:,}")
    assert pay_first == pay_later  # flat: balances are live from registration
    assert pay_first <= 120_000 and slash <= 200_000


# --- state machine ---------------------------------------------------------------------------


@dataclass
class JobModel:
    payer: int
    coord: int
    max_amount: int
    expiry: int
    spent: int = 0
    closed: bool = False
    paid_units: set[int] = field(default_factory=set)


@dataclass
class DeviceModel:
    stake: int
    min_fee: int
    unstake_at: int = 0


@dataclass
class Actors:
    cm: Any
    admin: str
    coords: list[str]  # 0 allowed, 1 toggled by the machine, 2 never allowed
    payers: list[str]
    workers: list[str]


class ComputeMarketMachine(RuleBasedStateMachine):
    """Every call is predicted by a Python model: it must succeed exactly when the model says
    so, and move exactly the money the model moves."""

    actors: ClassVar[Actors]

    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        a = self.actors
        self.cm = a.cm
        self.allowed = [True, True, False]
        self.devices: dict[int, DeviceModel] = {}
        self.jobs: list[JobModel] = []
        self.slashed: set[tuple[int, int, int]] = set()  # (job, worker, unit)
        self.accounts = [*a.workers, *a.payers]
        self.credited = dict.fromkeys(self.accounts, 0)
        self.withdrawn = dict.fromkeys(self.accounts, 0)
        self.paid = dict.fromkeys(self.accounts, 0)  # fees earned, by account
        self.burned = 0
        self.next_unit = 100  # fresh unit ids for pay_verified_unit
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

    # --- rules ---------------------------------------------------------------------------------

    @initialize()
    def staked_workers_and_a_job(self) -> None:
        """Start where the market is busy: four staked devices and one long job per allowed
        coordinator, so that most steps exercise payments and slashes."""
        for w in range(4):
            self.register(w, STAKE)
        self.create_job(0, 0, MAX, 10**6)
        self.create_job(1, 1, MAX, 10**6)
        self.create_job(0, 0, 3 * FEE, 500)  # expires early: reclaims

    @rule(w=st.integers(0, 3), amount=st.sampled_from([MIN_STAKE - 1, MIN_STAKE, STAKE]))
    def register(self, w: int, amount: int) -> None:
        ok = w not in self.devices and amount >= MIN_STAKE
        self._call(ok, self.actors.workers[w], self.cm.register_device, CLASS, 0, MIN_FEE,
                   value=amount)  # fmt: skip
        if ok:
            self.devices[w] = DeviceModel(stake=amount, min_fee=MIN_FEE)
            self.money_in += amount

    @rule(w=st.integers(0, 3), amount=st.sampled_from([0, 1, MIN_STAKE]))
    def add_stake(self, w: int, amount: int) -> None:
        ok = w in self.devices and amount > 0
        self._call(ok, self.actors.workers[w], self.cm.add_stake, value=amount)
        if ok:
            self.devices[w].stake += amount
            self.devices[w].unstake_at = 0
            self.money_in += amount

    @rule(w=st.integers(0, 3))
    def request_unstake(self, w: int) -> None:
        ok = w in self.devices and self.devices[w].unstake_at == 0
        self._call(ok, self.actors.workers[w], self.cm.request_unstake)
        if ok:
            self.devices[w].unstake_at = boa.env.timestamp + UNSTAKE_DELAY

    @rule(w=st.integers(0, 3))
    def withdraw_stake(self, w: int) -> None:
        d = self.devices.get(w)
        ok = d is not None and d.unstake_at != 0 and boa.env.timestamp >= d.unstake_at
        sent = self._call(ok, self.actors.workers[w], self.cm.withdraw_stake)
        if ok:
            assert d is not None and sent == d.stake
            self.money_out += d.stake
            del self.devices[w]

    @rule(w=st.integers(0, 3))
    def leave(self, w: int) -> None:
        """A device asks to leave, waits out the delay and takes its stake (the separate rules
        rarely line up in a short run)."""
        d = self.devices.get(w)
        if d is None:
            return
        if d.unstake_at == 0:
            self.request_unstake(w)
        boa.env.time_travel(seconds=UNSTAKE_DELAY)
        self.withdraw_stake(w)

    @rule(seconds=st.sampled_from([60, 60, 1_000, UNSTAKE_DELAY]))
    def wait(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @rule()
    def toggle_coordinator(self) -> None:
        a = self.actors
        with boa.env.prank(a.admin):
            if self.allowed[1]:
                self.cm.revoke_coordinator(a.coords[1])
            else:
                self.cm.allow_coordinator(a.coords[1], MEASUREMENT)
        self.allowed[1] = not self.allowed[1]

    @rule(
        p=st.integers(0, 1),
        c=st.integers(0, 2),
        amount=st.sampled_from([0, 3 * FEE, MAX]),
        duration=st.sampled_from([500, 5_000, 10**6]),
    )
    def create_job(self, p: int, c: int, amount: int, duration: int) -> None:
        ok = self.allowed[c] and amount > 0
        expiry = boa.env.timestamp + duration
        a = self.actors
        j = self._call(ok, a.payers[p], self.cm.create_job, a.coords[c], amount, expiry, SPEC,
                       value=amount)  # fmt: skip
        if ok:
            self.jobs.append(JobModel(payer=p, coord=c, max_amount=amount, expiry=expiry))
            assert j == len(self.jobs)
            self.money_in += amount

    @rule(
        pick=st.integers(0, 20),
        own=st.sampled_from([True, True, True, False]),
        unit=st.integers(1, UNITS),
        ws=st.lists(st.integers(0, 3), min_size=0, max_size=3, unique=True),
        fee=st.sampled_from([FEE, FEE, MIN_FEE, MIN_FEE - 1]),
    )
    def pay_unit(self, pick: int, own: bool, unit: int, ws: list[int], fee: int) -> None:
        j = pick % len(self.jobs) + 1
        job = self.jobs[j - 1]
        sender = job.coord if own else (job.coord + 1) % 3
        ok = (
            sender == job.coord
            and self.allowed[sender]
            and not job.closed
            and boa.env.timestamp < job.expiry
            and unit not in job.paid_units
            and len(ws) > 0
            and job.spent + fee * len(ws) <= job.max_amount
            and len(set(ws)) == len(ws)
            and all(
                w in self.devices
                and self.devices[w].stake >= MIN_STAKE
                and fee >= self.devices[w].min_fee
                and (j, w, unit) not in self.slashed
                for w in ws
            )
        )
        a = self.actors
        self._call(ok, a.coords[sender], self.cm.pay_unit, j, cid(unit),
                   [a.workers[w] for w in ws], fee)  # fmt: skip
        if ok:
            job.paid_units.add(unit)
            job.spent += fee * len(ws)
            for w in ws:
                self.credited[a.workers[w]] += fee
                self.paid[a.workers[w]] += fee
        assert self.cm.unit_paid(j, cid(unit)) == (unit in job.paid_units)

    @rule(pick=st.integers(0, 20), n=st.integers(1, 3))
    def pay_verified_unit(self, pick: int, n: int) -> None:
        """The coordinator's usual call: a fresh unit of a job, paid to up to `n` staked
        workers (random calls alone seldom line everything up)."""
        self.next_unit += 1
        ws = [w for w, d in sorted(self.devices.items()) if d.stake >= MIN_STAKE][:n]
        self.pay_unit(pick, True, self.next_unit, ws, FEE)

    @rule(pick=st.integers(0, 20), own=st.sampled_from([True, True, False]),
          w=st.integers(0, 3), unit=st.integers(1, UNITS))  # fmt: skip
    def slash(self, pick: int, own: bool, w: int, unit: int) -> None:
        j = pick % len(self.jobs) + 1
        job = self.jobs[j - 1]
        sender = job.coord if own else (job.coord + 1) % 3
        ok = (
            sender == job.coord
            and self.allowed[sender]
            and w in self.devices
            and (j, w, unit) not in self.slashed
        )
        a = self.actors
        self._call(ok, a.coords[sender], self.cm.slash, a.workers[w], j, cid(unit), cid(1),
                   cid(2), cid(3), cid(0xE))  # fmt: skip
        if ok:
            self.slashed.add((j, w, unit))
            self.burned += self.devices[w].stake
            self.devices[w].stake = 0

    @rule(pick=st.integers(0, 20), by=st.sampled_from(["payer", "coord", "other"]))
    def close_job(self, pick: int, by: str) -> None:
        j = pick % len(self.jobs) + 1
        job = self.jobs[j - 1]
        a = self.actors
        sender = {
            "payer": a.payers[job.payer],
            "coord": a.coords[job.coord],
            "other": a.payers[1 - job.payer],
        }[by]
        ok = by != "other" and not job.closed
        refund = self._call(ok, sender, self.cm.close_job, j)
        if ok:
            assert refund == job.max_amount - job.spent
            self._refund(job)

    @rule(pick=st.integers(0, 20), own=st.sampled_from([True, True, False]))
    def reclaim(self, pick: int, own: bool) -> None:
        j = pick % len(self.jobs) + 1
        job = self.jobs[j - 1]
        p = job.payer if own else 1 - job.payer
        ok = p == job.payer and boa.env.timestamp >= job.expiry and not job.closed
        refund = self._call(ok, self.actors.payers[p], self.cm.reclaim, j)
        if ok:
            assert refund == job.max_amount - job.spent
            self._refund(job)

    def _refund(self, job: JobModel) -> None:
        job.closed = True
        self.credited[self.actors.payers[job.payer]] += job.max_amount - job.spent

    @rule(i=st.integers(0, 5))
    def withdraw(self, i: int) -> None:
        account = self.accounts[i]
        owed = self.credited[account] - self.withdrawn[account]
        sent = self._call(owed > 0, account, self.cm.withdraw)
        if owed > 0:
            assert sent == owed
            self.withdrawn[account] += owed
            self.money_out += owed

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def money_in_equals_money_out_plus_holdings(self) -> None:
        held = boa.env.get_balance(self.cm.address) - self.start
        assert held == self.money_in - self.money_out
        stakes = sum(d.stake for d in self.devices.values())
        escrows = sum(j.max_amount - j.spent for j in self.jobs if not j.closed)
        owed = sum(self.credited[a] - self.withdrawn[a] for a in self.accounts)
        assert held == stakes + escrows + owed + self.burned
        assert self.cm.burned() == self.burned

    @invariant()
    def views_match_the_model(self) -> None:
        for a in self.accounts:
            assert self.cm.balance_of(a) == self.credited[a] - self.withdrawn[a]
        for w, address in enumerate(self.actors.workers):
            d = self.cm.device(address)
            m = self.devices.get(w)
            assert (d.stake, d.unstake_at) == ((m.stake, m.unstake_at) if m else (0, 0))
        for j, job in enumerate(self.jobs, start=1):
            got = self.cm.job(j)
            assert (got.max_amount - got.remaining, got.closed) == (job.spent, job.closed)

    @invariant()
    def nobody_is_paid_beyond_its_units(self) -> None:
        """The workers earned exactly what the jobs spent: one fee per worker per paid unit (each
        `pay_unit` also checks the contract's `unit_paid` against the model's set)."""
        earned = sum(self.paid[w] for w in self.actors.workers)
        assert earned == sum(
            self.cm.job(j).max_amount - self.cm.job(j).remaining
            for j in range(1, len(self.jobs) + 1)
        )


def test_compute_market_state_machine(world: World, compute_deployer: Any) -> None:
    admin = boa.env.generate_address("inv-compute-admin")
    coords = [boa.env.generate_address(f"inv-compute-coord{i}") for i in range(3)]
    payers = [boa.env.generate_address(f"inv-compute-payer{i}") for i in range(2)]
    workers = [boa.env.generate_address(f"inv-compute-worker{i}") for i in range(4)]
    for a in [admin, *coords, *payers, *workers]:
        boa.env.set_balance(a, 10**24)
    with boa.env.prank(admin):
        cm = compute_deployer.deploy()
        cm.allow_coordinator(coords[0], MEASUREMENT)
        cm.allow_coordinator(coords[1], MEASUREMENT)
    ComputeMarketMachine.actors = Actors(cm, admin, coords, payers, workers)
    profile = settings.get_profile(PROFILE)
    if PROFILE == "databright-contracts":  # keep the default run near 10 s
        profile = settings(profile, max_examples=15)
    ComputeMarketMachine.TestCase.settings = profile
    ComputeMarketMachine.TestCase().runTest()
