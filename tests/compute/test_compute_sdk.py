"""The compute market's SDK on a real node (both kinds): coordinators allowed by attestation,
staked devices, escrowed jobs paid per verified unit, slashing with evidence readable back by
CID, refunds; and ChainSettlement turning verdicts into payments and slashes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.compute.attestation import Claims, SoftwareProvider, report_data_for
from databright.compute.market import (
    ChainSettlement,
    ComputeMarket,
    SplitSettlement,
    measurement_digest,
    stage_unit_id,
    unit_key,
)
from databright.compute.replication import Evidence, Verdict
from databright.compute.splitting import StageEvidence
from databright.errors import (
    DuplicateSubmission,
    InsufficientFunds,
    InvalidArgument,
    NotFound,
    NotPermitted,
)
from databright.market import Market
from databright.models import ModelMarket
from databright.types import Wei

MEASUREMENT = "ab" * 32
FEE = 10**15
STAKE = 2 * 10**16
CLASS = "torch-test/avx2/t1"


def software_claims(acct: LocalAccount, bound_to: str | None = None) -> Claims:
    report = report_data_for(bound_to or acct.address)
    evidence = SoftwareProvider.attest(
        acct.key, measurement=MEASUREMENT, report_data=report, issued_at=int(time.time())
    )
    return SoftwareProvider().verify(evidence)


def funded(cm: ComputeMarket, wei: int = 10**18) -> ComputeMarket:
    acct: LocalAccount = Account.create()
    cm.market.gateway.transfer(acct.address, Wei(wei))
    return cm.as_account(acct)


@pytest.fixture
def world(node, tmp_path: Path):
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    admin = ComputeMarket.over(Market.connect(node.url, node.accounts[0], tmp_path))
    coord_acct: LocalAccount = Account.create()
    admin.market.gateway.transfer(coord_acct.address, Wei(10**18))
    coordinator = admin.as_account(coord_acct)
    admin.allow_coordinator(coord_acct.address, software_claims(coord_acct), allow_insecure=True)
    return admin, coordinator, coord_acct


def evidence_against(worker: str, unit_id: int, honest: str = "0x" + "11" * 32) -> Evidence:
    return Evidence(
        job_id=7,
        unit_id=unit_id,
        worker=worker,
        input_hash="0x" + "22" * 32,
        honest_hash=honest,
        bad_hash="0x" + "33" * 32,
        bad_envelope={"sender": worker, "signature": "0xbad"},
        bad_body_hash="0x" + "44" * 32,
        honest_envelope=None,
        distance=0.5,
    )


def test_coordinators_are_allowed_only_on_attestation(world) -> None:
    admin, coordinator, coord_acct = world
    other: LocalAccount = Account.create()
    claims = software_claims(other)
    assert not claims.hardware_backed
    with pytest.raises(NotPermitted, match="not hardware-backed"):
        admin.allow_coordinator(other.address, claims)  # insecure unless explicitly allowed
    with pytest.raises(NotPermitted, match="report data"):  # a statement made for another key
        admin.allow_coordinator(
            other.address, software_claims(other, bound_to=coord_acct.address),
            allow_insecure=True,
        )  # fmt: skip
    with pytest.raises(NotPermitted, match="only the compute market's admin"):
        coordinator.allow_coordinator(other.address, claims, allow_insecure=True)
    with pytest.raises(InvalidArgument, match="not an Ethereum address"):
        admin.allow_coordinator("0x1234", claims, allow_insecure=True)
    assert not admin.is_coordinator(other.address)
    digest = admin.allow_coordinator(other.address, claims, allow_insecure=True)
    assert digest == measurement_digest("0x" + MEASUREMENT.upper())
    assert admin.coordinator_measurement(other.address) == digest
    assert admin.coordinator_measurement(coord_acct.address) == digest
    with pytest.raises(NotPermitted, match="admin"):
        coordinator.revoke_coordinator(other.address)
    admin.revoke_coordinator(other.address)
    assert not admin.is_coordinator(other.address)
    with pytest.raises(NotFound, match="nothing to revoke"):
        admin.revoke_coordinator(other.address)


def test_a_device_stakes_and_leaves_in_two_steps(world) -> None:
    admin, _coordinator, _ = world
    worker = funded(admin)
    with pytest.raises(NotFound, match="has no device"):
        worker.request_unstake()
    with pytest.raises(InvalidArgument, match="stakes at least"):
        worker.register_device(CLASS, 1, FEE, admin.min_stake() - 1)
    with pytest.raises(InvalidArgument, match="numeric class"):
        worker.register_device("", 1, FEE, STAKE)
    device = worker.register_device(CLASS, 3, FEE, STAKE)
    assert device.registered and device.has_class(CLASS) and not device.has_class("other")
    assert (device.capabilities, device.min_fee_wei, device.stake_wei) == (3, FEE, STAKE)
    with pytest.raises(DuplicateSubmission, match="already has a device"):
        worker.register_device(CLASS, 3, FEE, STAKE)
    assert worker.add_stake(10**15).stake_wei == STAKE + 10**15
    with pytest.raises(NotPermitted, match="not asked to unstake"):
        worker.withdraw_stake()
    unstake_at = worker.request_unstake()
    with pytest.raises(DuplicateSubmission):
        worker.request_unstake()
    with pytest.raises(NotPermitted, match="locked until"):
        worker.withdraw_stake()
    admin.market.gateway.advance_to(unstake_at)
    assert worker.withdraw_stake() == STAKE + 10**15
    assert not worker.device().registered
    poor = funded(admin, 10**15)
    with pytest.raises(InsufficientFunds, match="fund the account"):
        poor.register_device(CLASS, 1, FEE, STAKE)


def test_a_job_pays_verified_units_once_slashes_with_evidence_and_refunds(world) -> None:
    admin, coordinator, coord_acct = world
    payer = funded(admin)
    w1, w2, cheater = funded(admin), funded(admin), funded(admin)
    for w in (w1, w2, cheater):
        w.register_device(CLASS, 1, FEE, STAKE)
    spec_cid = admin.market.store.put(b'{"job": "test"}')

    stranger: LocalAccount = Account.create()
    with pytest.raises(NotPermitted, match="not an allowed coordinator"):
        payer.create_job(stranger.address, 5 * FEE, 3600, spec_cid)
    with pytest.raises(InvalidArgument, match="positive amount"):
        payer.create_job(coord_acct.address, 0, 3600, spec_cid)
    with pytest.raises(InvalidArgument, match="training fee must be paid by the job's payer"):
        payer.create_job(
            coord_acct.address, 5 * FEE, 3600, spec_cid,
            training=(ModelMarket.over(admin.market), 1, spec_cid),
        )  # fmt: skip
    job = payer.create_job(coord_acct.address, 5 * FEE, 3600, spec_cid)
    assert (job.payer, job.coordinator, job.max_wei, job.paid_wei) == (
        payer.address,
        coord_acct.address,
        5 * FEE,
        0,
    )
    assert payer.remaining(job.id) == 5 * FEE
    with pytest.raises(NotFound, match="does not exist"):
        payer.job(job.id + 100)

    with pytest.raises(NotPermitted, match="only it pays"):
        payer.pay_unit(job.id, 1, [w1.address], FEE)
    with pytest.raises(InvalidArgument, match="distinct workers"):
        coordinator.pay_unit(job.id, 1, [w1.address, w1.address], FEE)
    with pytest.raises(InvalidArgument, match="asks at least"):
        coordinator.pay_unit(job.id, 1, [w1.address], FEE - 1)
    assert coordinator.pay_unit(job.id, 1, [w1.address, w2.address], FEE) == 3 * FEE
    assert coordinator.unit_paid(job.id, 1) and not coordinator.unit_paid(job.id, 2)
    with pytest.raises(DuplicateSubmission, match="paid already"):
        coordinator.pay_unit(job.id, 1, [w1.address], FEE)
    with pytest.raises(InsufficientFunds, match="escrow has"):  # 3 * FEE left, 4 asked
        coordinator.pay_unit(job.id, 2, [w1.address, w2.address, cheater.address, payer.address],
                             FEE)  # fmt: skip

    # Slashing: the bundle is stored by CID, its digest and hashes on-chain, readable back.
    ev = evidence_against(cheater.address, 2)
    with pytest.raises(NotPermitted, match="only it pays and slashes"):
        payer.slash(cheater.address, job.id, ev)
    with pytest.raises(InvalidArgument, match="evidence names"):
        coordinator.slash(w1.address, job.id, ev)
    with pytest.raises(InvalidArgument, match="no contradiction"):
        coordinator.slash(
            cheater.address, job.id, evidence_against(cheater.address, 2, honest="0x" + "33" * 32)
        )
    burned = admin.burned()
    record = coordinator.slash(cheater.address, job.id, ev)
    assert record.amount_wei == STAKE and admin.burned() == burned + STAKE
    assert cheater.device().stake_wei == 0
    back = w1.evidence(job.id, cheater.address, 2)  # anyone reads it back
    assert back == record and back.bundle["bad_envelope"] == ev.bad_envelope
    assert back.bundle["chain_job_id"] == job.id and back.bad_output == ev.bad_hash
    assert admin.contract.evidence(job.id, cheater.address, unit_key(2)).amount == STAKE
    with pytest.raises(DuplicateSubmission, match="slashed for unit 2"):
        coordinator.slash(cheater.address, job.id, ev)
    with pytest.raises(NotFound, match="was not slashed"):
        admin.evidence(job.id, w1.address, 2)
    with pytest.raises(NotPermitted, match="no staked device"):
        coordinator.pay_unit(job.id, 2, [cheater.address], FEE)

    # Close: the rest goes back to the payer; everyone withdraws what was credited.
    with pytest.raises(NotPermitted, match="payer or coordinator"):
        w1.close_job(job.id)
    assert payer.close_job(job.id) == 3 * FEE
    assert payer.remaining(job.id) == 0 and payer.job(job.id).closed
    with pytest.raises(DuplicateSubmission, match="closed already"):
        coordinator.close_job(job.id)
    with pytest.raises(InsufficientFunds, match="escrow has 0 wei"):
        coordinator.pay_unit(job.id, 3, [w1.address], FEE)
    assert payer.balance() == 3 * FEE and payer.withdraw() == 3 * FEE
    assert w1.withdraw() == FEE and w2.balance() == FEE
    with pytest.raises(NotFound, match="nothing credited"):
        w1.withdraw()

    # Reclaim: only after the expiry, only by the payer; a revoked coordinator pays nothing.
    job2 = payer.create_job(coord_acct.address, 2 * FEE, 100, spec_cid)
    with pytest.raises(NotPermitted, match="reclaim it after its expiry"):
        payer.reclaim(job2.id)
    admin.revoke_coordinator(coord_acct.address)
    with pytest.raises(NotPermitted, match="no longer allowed"):
        coordinator.pay_unit(job2.id, 1, [w1.address], FEE)
    admin.market.gateway.advance_to(job2.expiry)
    assert payer.remaining(job2.id) == 0  # expired: nothing more may be paid
    with pytest.raises(NotPermitted, match="only job"):
        w1.reclaim(job2.id)
    assert payer.reclaim(job2.id) == 2 * FEE


def test_chain_settlement_pays_the_honest_and_slashes_the_cheaters(world) -> None:
    admin, coordinator, coord_acct = world
    payer = funded(admin)
    workers = [funded(admin) for _ in range(3)]
    for w in workers:
        w.register_device(CLASS, 1, FEE, STAKE)
    a, b, bad = (w.address for w in workers)
    job = payer.create_job(coord_acct.address, 7 * FEE, 3600, admin.market.store.put(b"job"))
    with pytest.raises(NotPermitted, match="only it pays"):
        ChainSettlement(payer, job.id, FEE)
    settle = ChainSettlement(coordinator, job.id, FEE, replicas=3)
    assert settle.can_dispatch()
    # A unanimous unit: everyone paid; a disputed unit: the cheater slashed, the rest paid.
    s1 = settle(Verdict(11, "0x" + "aa" * 32, b"ck", (a, b, bad), (), False))
    assert s1.paid == (a, b, bad) and s1.slashed == () and s1.remaining_wei == 4 * FEE
    s2 = settle(Verdict(12, "0x" + "11" * 32, b"ck", (a, b), (evidence_against(bad, 12),), True))
    assert s2.paid == (a, b) and s2.slashed == (bad,) and len(s2.evidence_cids) == 1
    assert coordinator.evidence(job.id, bad, 12).evidence_cid == s2.evidence_cids[0]
    assert s2.remaining_wei == 2 * FEE and not settle.can_dispatch()  # 3 * FEE needed
    # A slashed worker that a later group calls honest is not paid (it has no stake).
    s3 = settle(Verdict(13, "0x" + "aa" * 32, b"ck", (a, bad), (), False))
    assert s3.paid == (a,) and s3.unpaid == (bad,)
    assert dict(settle.paid_per_worker()) == {a: 3 * FEE, b: 2 * FEE, bad: FEE}
    with pytest.raises(DuplicateSubmission):
        settle(Verdict(13, "0x" + "aa" * 32, b"ck", (a,), (), False))
    with pytest.raises(InvalidArgument, match="must be positive"):
        ChainSettlement(coordinator, job.id, 0)


def test_split_settlement_pays_each_epoch_and_slashes_a_caught_stage(world) -> None:
    admin, coordinator, coord_acct = world
    payer = funded(admin)
    workers = [funded(admin) for _ in range(2)]
    for w in workers:
        w.register_device(CLASS, 1, FEE, STAKE)
    good, bad = (w.address for w in workers)
    job = payer.create_job(coord_acct.address, 3 * FEE, 3600, admin.market.store.put(b"split"))
    with pytest.raises(NotPermitted, match="only it pays"):
        SplitSettlement(payer, job.id, FEE, [good, bad])
    with pytest.raises(InvalidArgument, match="distinct stage workers"):
        SplitSettlement(coordinator, job.id, FEE, [good, good])
    settle = SplitSettlement(coordinator, job.id, FEE, [good, bad])
    settle.check_can_pay(1)
    with pytest.raises(InvalidArgument, match="holds 3000000000000000 wei, less than"):
        settle.check_can_pay(2)
    first = settle.epoch_done(0)
    assert first.paid == (good, bad) and first.remaining_wei == FEE
    with pytest.raises(InvalidArgument, match="has paid an epoch already"):
        settle.check_can_pay(1)  # a job runs once
    # Caught by an audit: its stake is burned and the evidence is on chain, by CID.
    caught = StageEvidence(1, 4, 0, 1, bad, "activations", "ab" * 32, "cd" * 32, "ef" * 32)
    burned_before = admin.burned()
    record = settle.caught(caught)
    assert record.worker == bad and record.amount_wei == STAKE
    assert admin.burned() == burned_before + STAKE
    assert (record.input_hash, record.honest_output, record.bad_output) == (
        "0x" + "ab" * 32,
        "0x" + "ef" * 32,
        "0x" + "cd" * 32,
    )
    assert record.unit_id == stage_unit_id(caught)
    assert record.bundle["stage_evidence"] == caught.to_dict()
    assert coordinator.evidence(job.id, bad, stage_unit_id(caught)) == record
    with pytest.raises(DuplicateSubmission):
        settle.caught(caught)
    # An optimizer state no honest run reaches has no honest hash: zero is recorded instead.
    other = funded(admin)
    other.register_device(CLASS, 1, FEE, STAKE)
    odd = StageEvidence(1, 0, 0, 0, other.address, "an optimizer state", "ab" * 32, "cd" * 32, "")
    assert coordinator.slash_stage(job.id, odd).honest_output == "0x" + "00" * 32
    # The slashed worker is not paid for a later epoch (it has no stake).
    second = settle.epoch_done(1)
    assert second.paid == (good,) and second.unpaid == (bad,) and second.remaining_wei == 0
