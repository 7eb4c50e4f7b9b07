"""The computation market on-chain, as a Python API: coordinators, devices, jobs, settlement.

``ComputeMarket.over(market)`` binds the ``ComputeMarket`` contract of the deployment a data
market client (:class:`databright.market.Market`) uses, with the same account, gateway and
content-addressed store. The contract holds only money and records; the work is scheduled and
verified off-chain by the coordinator (:mod:`databright.compute.coordinator`).

Who calls what:

- the admin (the deployer) allows coordinators whose attestation it verified
  (:meth:`ComputeMarket.allow_coordinator`, which refuses software attestation unless
  ``allow_insecure=True``, and records a digest of the attested measurement on-chain);
- workers register a staked device per account (:meth:`register_device`) and leave in two
  steps (:meth:`request_unstake`, then :meth:`withdraw_stake` a day later);
- a payer escrows a job for an allowed coordinator (:meth:`create_job`); training on a dataset
  through the market pays that dataset's training fee to its shareholders first, from the
  payer's account, because the trusted coordinator is what measures data usage;
- the coordinator pays each verified unit once (:meth:`pay_unit`) and slashes each worker a
  quorum contradicted (:meth:`slash`), storing the evidence bundle (both signed results and the
  hashes) by CID so anyone can fetch it and check it against the digests the chain records;
  :class:`ChainSettlement` does both from the coordinator's verdicts and checks the escrow
  before each dispatch;
- the payer or the coordinator closes a job (:meth:`close_job`), the payer reclaims an expired
  one (:meth:`reclaim`); earnings and refunds are pull payments (:meth:`withdraw`);
- federated training (issue 12, section 7): a payer escrows a federation for an allowed
  coordinator, naming its clients (the data owners) or letting them join
  (:meth:`create_federation`, :meth:`join_federation`); it may cancel until the coordinator
  starts training (:meth:`cancel_federation`, :meth:`start_federation`) and never after: the
  escrow then leaves only by the coordinator's payouts (:meth:`settle_federation`, which stores
  the per-round contribution scores by CID; :func:`databright.compute.federated.
  settle_contributions` builds the call from a finished run) or, unsettled, from the deadline
  on (:meth:`reclaim_federation`). Clients withdraw their payouts with :meth:`withdraw`.

Each method checks what the contract would refuse first and says it in one sentence; the
contract's own checks stay the authority (a race still ends in ``ContractReverted``).

Off-chain unit ids are the coordinator's integers; on-chain they are the same integer as a
big-endian bytes32 (:func:`unit_key`), scoped to the job by the contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from eth_utils import is_address, keccak, to_checksum_address

from databright.chain.clients import ComputeMarketClient, ComputeMarketConstants
from databright.compute.attestation import (
    Claims,
    check_report_data,
    report_data_for,
    require_hardware,
)
from databright.compute.replication import Evidence, Verdict
from databright.errors import (
    DuplicateSubmission,
    InsufficientFunds,
    InvalidArgument,
    NotFound,
    NotPermitted,
)
from databright.market.bound import BoundContract
from databright.storage import cid_to_digest, digest_to_cid
from databright.types import Address, Wei

if TYPE_CHECKING:
    from databright.compute.splitting import StageEvidence
    from databright.models.market import ModelMarket

__all__ = [
    "ChainSettlement",
    "ComputeMarket",
    "DeviceInfo",
    "FederationInfo",
    "FederationParticipant",
    "FederationSettlement",
    "FederationStatus",
    "JobInfo",
    "SlashRecord",
    "SplitSettlement",
    "UnitSettlement",
    "measurement_digest",
    "numeric_class_digest",
    "stage_unit_id",
    "unit_key",
]

ZERO32 = b"\x00" * 32

FederationStatus: TypeAlias = Literal["open", "running", "settled", "cancelled", "reclaimed"]
_FEDERATION_STATUS: dict[int, FederationStatus] = {
    ComputeMarketConstants.FEDERATION_OPEN: "open",
    ComputeMarketConstants.FEDERATION_RUNNING: "running",
    ComputeMarketConstants.FEDERATION_SETTLED: "settled",
    ComputeMarketConstants.FEDERATION_CANCELLED: "cancelled",
    ComputeMarketConstants.FEDERATION_RECLAIMED: "reclaimed",
}


def measurement_digest(measurement: str) -> bytes:
    """The bytes32 the contract records for an attested measurement: keccak-256 of its
    lowercase hex string without ``0x``, so that any spelling of one measurement matches."""
    text = measurement.lower().removeprefix("0x")
    if not text:
        raise InvalidArgument("the attested measurement is empty; attest the coordinator again")
    return bytes(keccak(text.encode()))


def numeric_class_digest(numeric_class: str) -> bytes:
    """The bytes32 a device's numeric class is recorded as (keccak-256 of the class name)."""
    if not numeric_class or len(numeric_class) > 200:
        raise InvalidArgument(
            f"a numeric class is 1..200 characters, not {len(numeric_class)}; use "
            "compute.units.local_numeric_class()"
        )
    return bytes(keccak(numeric_class.encode()))


def unit_key(unit_id: int) -> bytes:
    """The on-chain id of the coordinator's unit ``unit_id``: the integer as a bytes32."""
    if isinstance(unit_id, bool) or not isinstance(unit_id, int) or not 0 < unit_id < 2**256:
        raise InvalidArgument(f"a unit id is a positive integer below 2**256, not {unit_id!r}")
    return unit_id.to_bytes(32, "big")


def stage_unit_id(evidence: StageEvidence) -> int:
    """The on-chain unit id under which a split job's audited stage is slashed: keccak of the
    split job, stage, step and micro-batch (a split job has no work units; the chain keeps one
    slash per job, worker and unit id)."""
    where = [evidence.job_id, evidence.stage, evidence.step, evidence.micro]
    raw = keccak(json.dumps(where, separators=(",", ":")).encode())
    return int.from_bytes(raw, "big") or 1


def _hash32(value: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidArgument(f"the {what} {value!r} is not a 0x-prefixed 32-byte hash")
    return raw


def _address(value: str, what: str) -> Address:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidArgument(f"the {what} {value!r} is not an Ethereum address; give 0x + 40 hex")
    return Address(to_checksum_address(value))


@dataclass(frozen=True)
class DeviceInfo:
    """A worker's device as the contract holds it (``registered`` False: none)."""

    owner: Address
    numeric_class: bytes
    capabilities: int
    min_fee_wei: int
    stake_wei: int
    unstake_at: int
    registered_at: int

    @property
    def registered(self) -> bool:
        return self.registered_at != 0

    def has_class(self, numeric_class: str) -> bool:
        return self.numeric_class == numeric_class_digest(numeric_class)


@dataclass(frozen=True)
class JobInfo:
    id: int
    payer: Address
    coordinator: Address
    max_wei: int
    remaining_wei: int  # what is left in the escrow (at close: what the payer got back)
    expiry: int
    spec_digest: bytes
    closed: bool

    @property
    def paid_wei(self) -> int:
        return self.max_wei - self.remaining_wei


@dataclass(frozen=True)
class SlashRecord:
    """A slash as the chain records it, with the evidence bundle fetched by its CID and
    checked against the chain's hashes (``bundle`` is what the coordinator stored)."""

    job_id: int
    worker: Address
    unit_id: int
    input_hash: str
    honest_output: str
    bad_output: str
    evidence_cid: str
    amount_wei: int
    slashed_at: int
    bundle: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class FederationInfo:
    """A federation as the contract holds it. ``paid_wei`` and ``scores_cid`` are set once it
    is settled; ``started_at`` once the coordinator started training (0: not yet)."""

    id: int
    payer: Address
    coordinator: Address
    amount_wei: int
    paid_wei: int
    deadline: int
    spec_digest: bytes
    scores_cid: str | None
    clients: int
    open_joining: bool
    status: FederationStatus
    started_at: int

    @property
    def escrowed_wei(self) -> int:
        """What the contract still holds for it: all of it while open or running, else 0."""
        return self.amount_wei if self.status in ("open", "running") else 0

    @property
    def refund_wei(self) -> int:
        """What went back to the payer (0 while open or running)."""
        if self.status == "settled":
            return self.amount_wei - self.paid_wei
        return self.amount_wei if self.status in ("cancelled", "reclaimed") else 0


@dataclass(frozen=True)
class FederationParticipant:
    """A client's place in a federation: a client at all, its payout posted, the payout."""

    federation_id: int
    client: Address
    joined: bool
    posted: bool
    payout_wei: int


@dataclass(frozen=True)
class FederationSettlement:
    """What :meth:`ComputeMarket.settle_federation` posted: each client's payout, the refund
    credited to the payer, and the CID of the evidence (the per-round scores)."""

    federation_id: int
    payouts: Mapping[Address, int]
    paid_wei: int
    refund_wei: int
    scores_cid: str


@dataclass(frozen=True)
class UnitSettlement:
    """What :class:`ChainSettlement` did with one verdict."""

    unit_id: int
    paid: tuple[str, ...]
    fee_each_wei: int
    unpaid: tuple[str, ...]  # honest but not payable (no stake left: slashed elsewhere)
    slashed: tuple[str, ...]
    evidence_cids: tuple[str, ...]
    remaining_wei: int


class ComputeMarket(BoundContract[ComputeMarketClient]):
    """The compute market's SDK for one account (see the module docstring)."""

    DEPLOYMENT_KEY = "ComputeMarket"
    CLIENT = ComputeMarketClient
    WHAT = "compute market"

    def _require_funds(self, value: int, what: str) -> None:
        balance = self.market.gateway.balance()
        if balance < value:
            raise InsufficientFunds(
                f"{self.address} holds {balance} wei but needs {value} wei (plus gas) to {what}; "
                "fund the account first"
            )

    # --- admin: coordinators ------------------------------------------------------------

    def allow_coordinator(
        self, coordinator: str, claims: Claims, *, allow_insecure: bool = False
    ) -> bytes:
        """Allow a coordinator whose attestation ``claims`` were verified by a provider of
        :mod:`databright.compute.attestation`: they must be hardware-backed (unless
        ``allow_insecure``, for development only) and bind the coordinator's address in their
        report data. Records the measurement's digest on-chain and returns it."""
        who = _address(coordinator, "coordinator")
        require_hardware(claims, allow_insecure=allow_insecure)
        check_report_data(claims, report_data_for(who))
        owner = to_checksum_address(self.contract.owner())
        if owner != self.address:
            raise NotPermitted(
                f"only the compute market's admin {owner} allows coordinators, not "
                f"{self.address}; ask the admin"
            )
        digest = measurement_digest(claims.measurement)
        self.contract.allow_coordinator(who, digest)
        return digest

    def revoke_coordinator(self, coordinator: str) -> None:
        who = _address(coordinator, "coordinator")
        if not self.is_coordinator(who):
            raise NotFound(f"{who} is not an allowed coordinator; there is nothing to revoke")
        owner = to_checksum_address(self.contract.owner())
        if owner != self.address:
            raise NotPermitted(
                f"only the compute market's admin {owner} revokes coordinators, not "
                f"{self.address}; ask the admin"
            )
        self.contract.revoke_coordinator(who)

    def is_coordinator(self, coordinator: str) -> bool:
        return bool(self.contract.is_coordinator(_address(coordinator, "coordinator")))

    def coordinator_measurement(self, coordinator: str) -> bytes:
        """The recorded measurement digest (32 zero bytes: not allowed)."""
        return bytes(self.contract.coordinator_measurement(_address(coordinator, "coordinator")))

    # --- devices ------------------------------------------------------------------------

    def min_stake(self) -> Wei:
        return Wei(int(self.contract.MIN_STAKE()))

    def register_device(
        self, numeric_class: str, capabilities: int, min_fee_wei: int, stake_wei: int
    ) -> DeviceInfo:
        """Register this account's device, staking ``stake_wei`` (at least ``min_stake()``)."""
        digest = numeric_class_digest(numeric_class)
        if capabilities < 0 or min_fee_wei < 0:
            raise InvalidArgument(
                f"capabilities ({capabilities}) and the minimum fee ({min_fee_wei} wei) must not "
                "be negative"
            )
        least = self.min_stake()
        if stake_wei < least:
            raise InvalidArgument(
                f"a device stakes at least {least} wei, not {stake_wei}; stake more"
            )
        if self.device().registered:
            raise DuplicateSubmission(
                f"{self.address} already has a device; add stake to it or leave first"
            )
        self._require_funds(stake_wei, "stake a device")
        self.contract.register_device(
            digest, int(capabilities), int(min_fee_wei), value=int(stake_wei)
        )
        return self.device()

    def device(self, owner: str | None = None) -> DeviceInfo:
        who = _address(owner, "device owner") if owner else self.address
        d = self.contract.device(who)
        return DeviceInfo(
            who,
            bytes(d.numeric_class),
            int(d.capabilities),
            int(d.min_fee),
            int(d.stake),
            int(d.unstake_at),
            int(d.registered_at),
        )

    def _own_device(self) -> DeviceInfo:
        d = self.device()
        if not d.registered:
            raise NotFound(f"{self.address} has no device; register one first")
        return d

    def add_stake(self, amount_wei: int) -> DeviceInfo:
        self._own_device()
        if amount_wei <= 0:
            raise InvalidArgument(f"added stake must be positive, not {amount_wei} wei")
        self._require_funds(amount_wei, "add stake")
        self.contract.add_stake(value=int(amount_wei))
        return self.device()

    def request_unstake(self) -> int:
        """Announce that this device leaves; returns when its stake may be withdrawn."""
        if self._own_device().unstake_at:
            raise DuplicateSubmission(
                f"{self.address} already asked to unstake; withdraw the stake once its time comes"
            )
        self.contract.request_unstake()
        return self.device().unstake_at

    def withdraw_stake(self) -> Wei:
        """Take the whole remaining stake back and delete the device (after the delay)."""
        d = self._own_device()
        if not d.unstake_at:
            raise NotPermitted(
                f"{self.address} has not asked to unstake; call request_unstake first"
            )
        now = self.market.gateway.block_timestamp()
        if now < d.unstake_at:
            raise NotPermitted(
                f"{self.address}'s stake is locked until {d.unstake_at} (chain time {now}) so "
                "the coordinator can slash it; withdraw it then"
            )
        receipt = self.contract.withdraw_stake()
        return Wei(int(receipt.event("StakeWithdrawn").args["amount"]))

    # --- jobs ---------------------------------------------------------------------------

    def create_job(
        self,
        coordinator: str,
        max_wei: int,
        expiry_s: int,
        spec_cid: str,
        *,
        training: tuple[ModelMarket, int, str] | None = None,
    ) -> JobInfo:
        """Escrow ``max_wei`` for a job run by an allowed coordinator, expiring ``expiry_s``
        seconds from the chain's now; ``spec_cid`` is the stored job spec.

        ``training=(model_market, dataset_id, model_spec_cid)``: the job trains a model on a
        dataset, so this payer first pays the dataset's training fee for that spec (once; the
        model market's ``pay_training_fee``), as the paper asks of training through the market.
        """
        who = _address(coordinator, "coordinator")
        if max_wei <= 0:
            raise InvalidArgument(f"a job escrows a positive amount, not {max_wei} wei")
        if expiry_s <= 0:
            raise InvalidArgument(f"a job's expiry must be in the future, not in {expiry_s} s")
        digest = cid_to_digest(spec_cid)
        if not self.is_coordinator(who):
            raise NotPermitted(
                f"{who} is not an allowed coordinator; ask the admin to allow its attested "
                "measurement or pick an allowed one"
            )
        if training is not None:
            model_market, dataset_id, model_spec_cid = training
            if model_market.address != self.address:
                raise InvalidArgument(
                    f"the training fee must be paid by the job's payer {self.address}, not by "
                    f"{model_market.address}; pass the payer's model market client"
                )
            terms = model_market.terms(dataset_id)
            if terms is None:
                raise NotFound(
                    f"dataset {dataset_id} has no model-market terms, so no training fee to pay; "
                    "its initiator sets them first (`databright model terms`)"
                )
            fee = terms.training_fee_wei
            if not model_market.training_paid(dataset_id, model_spec_cid):
                self._require_funds(fee + max_wei, "pay the training fee and escrow the job")
            model_market.pay_training_fee(dataset_id, model_spec_cid)
        self._require_funds(max_wei, "escrow the job")
        expiry = self.market.gateway.block_timestamp() + int(expiry_s)
        receipt = self.contract.create_job(who, int(max_wei), expiry, digest, value=int(max_wei))
        return self.job(int(receipt.event("JobCreated").args["job_id"]))

    def job(self, job_id: int) -> JobInfo:
        j = self.contract.job(int(job_id))
        if int(j.expiry) == 0:
            raise NotFound(f"compute job {job_id} does not exist; list jobs by their ids from 1")
        return JobInfo(
            int(job_id),
            Address(to_checksum_address(j.payer)),
            Address(to_checksum_address(j.coordinator)),
            int(j.max_amount),
            int(j.remaining),
            int(j.expiry),
            bytes(j.spec_digest),
            bool(j.closed),
        )

    def remaining(self, job_id: int) -> Wei:
        """What the job may still pay: 0 once closed or expired (checked before dispatch)."""
        self.job(job_id)
        return Wei(int(self.contract.remaining(int(job_id))))

    def close_job(self, job_id: int) -> Wei:
        """Close a job (its payer or coordinator); the rest is credited to the payer."""
        job = self.job(job_id)
        if self.address not in (job.payer, job.coordinator):
            raise NotPermitted(
                f"only job {job_id}'s payer or coordinator closes it, not {self.address}"
            )
        if job.closed:
            raise DuplicateSubmission(f"job {job_id} is closed already; nothing is left in it")
        receipt = self.contract.close_job(int(job_id))
        return Wei(int(receipt.event("JobClosed").args["refund"]))

    def reclaim(self, job_id: int) -> Wei:
        """The payer closes its expired job, whatever became of the coordinator."""
        job = self.job(job_id)
        if self.address != job.payer:
            raise NotPermitted(f"only job {job_id}'s payer {job.payer} reclaims it")
        if job.closed:
            raise DuplicateSubmission(f"job {job_id} is closed already; nothing is left in it")
        now = self.market.gateway.block_timestamp()
        if now < job.expiry:
            raise NotPermitted(
                f"job {job_id} runs until {job.expiry} (chain time {now}); close it instead or "
                "reclaim it after its expiry"
            )
        receipt = self.contract.reclaim(int(job_id))
        return Wei(int(receipt.event("JobClosed").args["refund"]))

    # --- the coordinator's side ---------------------------------------------------------

    def _check_coordinator_of(self, job: JobInfo) -> None:
        if job.coordinator != self.address:
            raise NotPermitted(
                f"job {job.id} is run by coordinator {job.coordinator}, not {self.address}; "
                "only it pays and slashes"
            )
        if not self.is_coordinator(self.address):
            raise NotPermitted(
                f"coordinator {self.address} is no longer allowed (revoked); it may only close "
                "its jobs"
            )

    def unit_paid(self, job_id: int, unit_id: int) -> bool:
        return bool(self.contract.unit_paid(int(job_id), unit_key(unit_id)))

    def pay_unit(self, job_id: int, unit_id: int, workers: Sequence[str], fee_each: int) -> Wei:
        """Pay each worker that produced a verified unit's agreed result ``fee_each`` from the
        job's escrow, once per unit; returns what is left in the escrow."""
        job = self.job(job_id)
        self._check_coordinator_of(job)
        who: list[str] = [_address(w, "worker") for w in workers]
        if not 1 <= len(who) <= int(self.contract.MAX_WORKERS()) or len(set(who)) != len(who):
            raise InvalidArgument(
                f"a unit pays 1 to 8 distinct workers, not {len(who)} ({len(set(who))} distinct)"
            )
        if fee_each <= 0:
            raise InvalidArgument(f"the fee per worker must be positive, not {fee_each} wei")
        if self.unit_paid(job_id, unit_id):
            raise DuplicateSubmission(
                f"unit {unit_id} of job {job_id} is paid already; a unit is paid once"
            )
        left = self.remaining(job_id)
        if fee_each * len(who) > left:
            raise InsufficientFunds(
                f"job {job_id}'s escrow has {left} wei left (closed or expired jobs: 0), not the "
                f"{fee_each * len(who)} wei this unit costs; stop dispatching and close the job"
            )
        least = self.min_stake()
        for w in who:
            d = self.device(w)
            if d.stake_wei < least:
                raise NotPermitted(f"worker {w} has no staked device; only staked devices are paid")
            if d.min_fee_wei > fee_each:
                raise InvalidArgument(
                    f"worker {w} asks at least {d.min_fee_wei} wei per unit, more than "
                    f"{fee_each}; raise the fee or give its units to others"
                )
        receipt = self.contract.pay_unit(int(job_id), unit_key(unit_id), who, int(fee_each))
        return Wei(int(receipt.event("UnitPaid").args["remaining"]))

    def pay_staked(
        self, job_id: int, unit_id: int, workers: Sequence[str], fee_each: int
    ) -> tuple[tuple[str, ...], tuple[str, ...], Wei]:
        """Pay unit ``unit_id`` to those of ``workers`` still staked (a slashed worker has no
        stake left and is not paid): who was paid, who was not, and what the escrow keeps."""
        least = self.min_stake()
        payable: list[str] = []
        unpaid: list[str] = []
        for w in workers:
            who = str(to_checksum_address(w))
            (payable if self.device(who).stake_wei >= least else unpaid).append(who)
        left = self.remaining(job_id)
        if payable:
            left = self.pay_unit(job_id, unit_id, payable, fee_each)
        return tuple(payable), tuple(unpaid), left

    def slash(self, worker: str, job_id: int, evidence: Evidence) -> SlashRecord:
        """Burn the stake of a worker a quorum contradicted: the evidence bundle (both signed
        results, the hashes) is stored by CID and its digest recorded with the hashes."""
        who = _address(worker, "worker")
        if to_checksum_address(evidence.worker) != who:
            raise InvalidArgument(
                f"the evidence names worker {evidence.worker}, not {who}; slash the worker it names"
            )
        bundle = {"chain_job_id": int(job_id), **evidence.to_dict()}
        return self._slash(who, job_id, evidence.unit_id, bundle)

    def slash_stage(self, job_id: int, evidence: StageEvidence) -> SlashRecord:
        """Burn the stake of a split-training stage worker an audit caught
        (:class:`~databright.compute.splitting.StageEvidence`), under
        :func:`stage_unit_id`: the chain records the stage's input hash, the recomputed
        (honest) hash and the worker's; a state no honest optimizer can hold has no honest
        hash and records zero there. The bundle stored by CID holds the whole evidence."""
        who = _address(evidence.worker, "worker")

        def hex32(value: str) -> str:
            # an empty hash (no honest state exists) is recorded as zero; a malformed one is
            # refused in one sentence by _slash's _hash32
            return "0x" + (
                (value if isinstance(value, str) else "?").removeprefix("0x") or "00" * 32
            )

        bundle = {
            "chain_job_id": int(job_id),
            "kind": "split stage",
            "unit_id": stage_unit_id(evidence),
            "input_hash": hex32(evidence.input_hash),
            "honest_hash": hex32(evidence.recomputed_hash),
            "bad_hash": hex32(evidence.worker_hash),
            "stage_evidence": evidence.to_dict(),
        }
        return self._slash(who, job_id, stage_unit_id(evidence), bundle)

    def _slash(
        self, who: Address, job_id: int, unit_id: int, bundle: dict[str, Any]
    ) -> SlashRecord:
        """Slash ``who`` for ``unit_id`` with the hashes of ``bundle`` (``input_hash``,
        ``honest_hash``, ``bad_hash``), storing the bundle by CID first."""
        job = self.job(job_id)
        self._check_coordinator_of(job)
        if not self.device(who).registered:
            raise NotFound(f"worker {who} has no device (it withdrew or never staked)")
        input_hash = _hash32(bundle["input_hash"], "input hash")
        honest = _hash32(bundle["honest_hash"], "honest output hash")
        bad = _hash32(bundle["bad_hash"], "bad output hash")
        if honest == bad:
            raise InvalidArgument(
                f"the evidence against {who} gives one hash for the honest and the bad output; "
                "there is no contradiction to slash for"
            )
        key = unit_key(unit_id)
        if int(self.contract.evidence(int(job_id), who, key).slashed_at):
            raise DuplicateSubmission(
                f"{who} is slashed for unit {unit_id} of job {job_id} already"
            )
        cid = self.market.store.put(json.dumps(bundle, sort_keys=True).encode())
        self.contract.slash(who, int(job_id), key, input_hash, honest, bad, cid_to_digest(cid))
        return self.evidence(job_id, who, unit_id)

    def evidence(self, job_id: int, worker: str, unit_id: int) -> SlashRecord:
        """A slash's on-chain record and its evidence bundle, fetched by CID (the store checks
        the bytes against it) and checked against the hashes the chain records."""
        who = _address(worker, "worker")
        e = self.contract.evidence(int(job_id), who, unit_key(unit_id))
        if not int(e.slashed_at):
            raise NotFound(f"{who} was not slashed for unit {unit_id} of job {job_id}")
        cid = digest_to_cid(bytes(e.evidence_cid))
        bundle = json.loads(self.market.store.get(cid))
        chain = {
            "input_hash": bytes(e.input_hash),
            "honest_hash": bytes(e.honest_output),
            "bad_hash": bytes(e.bad_output),
        }
        for name, value in chain.items():
            if _hash32(str(bundle.get(name, "")), name) != value:
                raise InvalidArgument(
                    f"the evidence bundle {cid} disagrees with the chain on {name}; the "
                    "coordinator stored inconsistent evidence"
                )
        return SlashRecord(
            int(job_id),
            who,
            int(unit_id),
            "0x" + bytes(e.input_hash).hex(),
            "0x" + bytes(e.honest_output).hex(),
            "0x" + bytes(e.bad_output).hex(),
            cid,
            int(e.amount),
            int(e.slashed_at),
            bundle,
        )

    # --- federations (federated training paid by contribution) -----------------------------

    def max_clients(self) -> int:
        return int(self.contract.MAX_CLIENTS())

    def create_federation(
        self,
        coordinator: str,
        amount_wei: int,
        deadline_s: int,
        spec_cid: str,
        clients: Sequence[str] = (),
        *,
        open_joining: bool = False,
    ) -> FederationInfo:
        """Escrow ``amount_wei`` for federated training run by an allowed coordinator, which
        must post the payouts within ``deadline_s`` seconds of the chain's now; ``spec_cid``
        is the stored training spec. ``clients`` are the data owners named now; with
        ``open_joining`` others may join until the start. This payer may cancel only until
        the coordinator starts training."""
        who = _address(coordinator, "coordinator")
        if isinstance(amount_wei, bool) or not isinstance(amount_wei, int) or amount_wei <= 0:
            raise InvalidArgument(f"a federation escrows a positive amount, not {amount_wei!r} wei")
        if isinstance(deadline_s, bool) or not isinstance(deadline_s, int) or deadline_s <= 0:
            raise InvalidArgument(
                f"a federation's deadline must be in the future, not in {deadline_s!r} s"
            )
        digest = cid_to_digest(spec_cid)
        named = self._clients(clients)
        if not named and not open_joining:
            raise InvalidArgument(
                "a federation needs clients: name at least one or pass open_joining=True"
            )
        if not self.is_coordinator(who):
            raise NotPermitted(
                f"{who} is not an allowed coordinator; ask the admin to allow its attested "
                "measurement or pick an allowed one"
            )
        self._require_funds(amount_wei, "escrow the federation")
        deadline = self.market.gateway.block_timestamp() + int(deadline_s)
        receipt = self.contract.create_federation(
            who, int(amount_wei), deadline, digest, list(named), bool(open_joining),
            value=int(amount_wei),
        )  # fmt: skip
        return self.federation(int(receipt.event("FederationCreated").args["federation_id"]))

    def _clients(self, clients: Sequence[str]) -> list[Address]:
        if isinstance(clients, str):
            raise InvalidArgument("clients is a list of addresses, not one string")
        named = [_address(c, "client") for c in clients]
        if len(set(named)) != len(named):
            raise InvalidArgument(
                f"the clients hold {len(named) - len(set(named))} repeated address(es); name "
                "each client once"
            )
        most = self.max_clients()
        if len(named) > most:
            raise InvalidArgument(f"a federation has at most {most} clients, not {len(named)}")
        return named

    def federation(self, federation_id: int) -> FederationInfo:
        f = self.contract.federation(int(federation_id))
        if int(f.deadline) == 0:
            raise NotFound(
                f"federation {federation_id} does not exist; federations are numbered from 1"
            )
        scores = bytes(f.scores_cid)
        return FederationInfo(
            int(federation_id),
            Address(to_checksum_address(f.payer)),
            Address(to_checksum_address(f.coordinator)),
            int(f.amount),
            int(f.paid),
            int(f.deadline),
            bytes(f.spec_digest),
            digest_to_cid(scores) if scores != ZERO32 else None,
            int(f.clients),
            bool(f.open_joining),
            _FEDERATION_STATUS[int(f.status)],
            int(f.started_at),
        )

    def participant(self, federation_id: int, client: str | None = None) -> FederationParticipant:
        """A client's place in a federation (this account's by default)."""
        who = _address(client, "client") if client else self.address
        self.federation(federation_id)
        p = self.contract.participant(int(federation_id), who)
        return FederationParticipant(
            int(federation_id), who, bool(p.joined), bool(p.posted), int(p.payout)
        )

    def join_federation(self, federation_id: int) -> FederationParticipant:
        """Join an open federation that lets clients join, as this account."""
        f = self.federation(federation_id)
        if f.status != "open":
            raise NotPermitted(
                f"federation {federation_id} is {f.status}; clients join only before training "
                "starts"
            )
        if not f.open_joining:
            raise NotPermitted(
                f"federation {federation_id} pays only the clients its payer named; ask "
                f"{f.payer} to name you in a new one"
            )
        self._before_deadline(f, "join it")
        if self.participant(federation_id).joined:
            raise DuplicateSubmission(
                f"{self.address} is a client of federation {federation_id} already"
            )
        if f.clients >= self.max_clients():
            raise NotPermitted(f"federation {federation_id} is full ({f.clients} clients)")
        self.contract.join_federation(int(federation_id))
        return self.participant(federation_id)

    def _before_deadline(self, f: FederationInfo, what: str) -> None:
        now = self.market.gateway.block_timestamp()
        if now >= f.deadline:
            raise NotPermitted(
                f"federation {f.id}'s deadline {f.deadline} has passed (chain time {now}); it is "
                f"too late to {what}, and its payer may reclaim the escrow"
            )

    def _check_coordinator_of_federation(self, f: FederationInfo) -> None:
        if f.coordinator != self.address:
            raise NotPermitted(
                f"federation {f.id} is run by coordinator {f.coordinator}, not {self.address}; "
                "only it starts training and posts payouts"
            )
        if not self.is_coordinator(self.address):
            raise NotPermitted(
                f"coordinator {self.address} is no longer allowed (revoked); its federations "
                "end at their deadline, when the payer reclaims them"
            )

    def start_federation(self, federation_id: int) -> FederationInfo:
        """The coordinator starts training: the clients are fixed and the payer can no longer
        take the escrow back before the deadline."""
        f = self.federation(federation_id)
        self._check_coordinator_of_federation(f)
        if f.status != "open":
            raise NotPermitted(f"federation {federation_id} is {f.status}, not open; start it once")
        self._before_deadline(f, "start training")
        if f.clients == 0:
            raise NotPermitted(
                f"federation {federation_id} has no clients yet; wait for clients to join"
            )
        self.contract.start_federation(int(federation_id))
        return self.federation(federation_id)

    def settle_federation(
        self,
        federation_id: int,
        payouts: Mapping[str, int],
        evidence: Mapping[str, Any],
    ) -> FederationSettlement:
        """Post a running federation's final payouts (client -> wei, at most the escrow in
        all; clients not listed get nothing, the rest goes back to the payer). ``evidence``
        (the per-round contribution scores the payouts follow from, as JSON) is stored by CID
        and its digest recorded with the payouts so anyone can fetch and check it."""
        f = self.federation(federation_id)
        self._check_coordinator_of_federation(f)
        if f.status != "running":
            raise NotPermitted(
                f"federation {federation_id} is {f.status}; payouts are posted once, for a "
                "running federation"
            )
        self._before_deadline(f, "post payouts")
        clients = self._clients(list(payouts))
        amounts: list[int] = []
        for client, amount in zip(clients, payouts.values(), strict=True):
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
                raise InvalidArgument(
                    f"the payout of {client} must be a whole number of wei, at least 0, not "
                    f"{amount!r}"
                )
            amounts.append(int(amount))
        if sum(amounts) > f.amount_wei:
            raise InvalidArgument(
                f"the payouts add up to {sum(amounts)} wei, more than federation "
                f"{federation_id}'s escrow of {f.amount_wei} wei; scale them down"
            )
        for client in clients:
            if not self.participant(federation_id, client).joined:
                raise NotPermitted(
                    f"{client} is not a client of federation {federation_id}; only its clients "
                    "are paid"
                )
        try:
            body = json.dumps(dict(evidence), sort_keys=True, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"the evidence must be a JSON object of finite numbers, lists and strings ({exc})"
            ) from None
        cid = self.market.store.put(body)
        receipt = self.contract.settle_federation(
            int(federation_id), list(clients), amounts, cid_to_digest(cid)
        )
        settled = receipt.event("FederationSettled").args
        return FederationSettlement(
            int(federation_id),
            dict(zip(clients, amounts, strict=True)),
            int(settled["paid"]),
            int(settled["refund"]),
            cid,
        )

    def federation_evidence(self, federation_id: int) -> dict[str, Any]:
        """The evidence a settled federation's payouts follow from, fetched by its CID (the
        store checks the bytes against it)."""
        f = self.federation(federation_id)
        if f.scores_cid is None:
            raise NotFound(
                f"federation {federation_id} is {f.status}; only a settled one has evidence"
            )
        body = json.loads(self.market.store.get(f.scores_cid))
        if not isinstance(body, dict):
            raise InvalidArgument(
                f"the evidence {f.scores_cid} of federation {federation_id} is not a JSON object"
            )
        return body

    def cancel_federation(self, federation_id: int) -> Wei:
        """Cancel a federation before training starts (its payer or coordinator); the whole
        escrow is credited to the payer. Refused once training started."""
        f = self.federation(federation_id)
        if self.address not in (f.payer, f.coordinator):
            raise NotPermitted(
                f"only federation {federation_id}'s payer or coordinator cancels it, not "
                f"{self.address}"
            )
        if f.status == "running":
            raise NotPermitted(
                f"federation {federation_id}'s training started at {f.started_at}; its escrow "
                "is the clients' now and leaves only by the coordinator's payouts, or by "
                f"reclaim_federation after the deadline {f.deadline} if none are posted"
            )
        if f.status != "open":
            raise DuplicateSubmission(
                f"federation {federation_id} is {f.status} already; nothing is left in it"
            )
        receipt = self.contract.cancel_federation(int(federation_id))
        return Wei(int(receipt.event("FederationClosed").args["refund"]))

    def reclaim_federation(self, federation_id: int) -> Wei:
        """The payer takes back the whole escrow of a federation the coordinator did not
        settle by its deadline."""
        f = self.federation(federation_id)
        if self.address != f.payer:
            raise NotPermitted(f"only federation {federation_id}'s payer {f.payer} reclaims it")
        if f.status not in ("open", "running"):
            raise DuplicateSubmission(
                f"federation {federation_id} is {f.status} already; nothing is left in it"
            )
        now = self.market.gateway.block_timestamp()
        if now < f.deadline:
            meanwhile = "cancel it instead" if f.status == "open" else "wait for the payouts"
            raise NotPermitted(
                f"federation {federation_id} runs until its deadline {f.deadline} (chain time "
                f"{now}); {meanwhile} or reclaim it after the deadline"
            )
        receipt = self.contract.reclaim_federation(int(federation_id))
        return Wei(int(receipt.event("FederationClosed").args["refund"]))

    # --- money --------------------------------------------------------------------------

    def balance(self, account: str | None = None) -> Wei:
        """Earnings and refunds credited to an account and not yet withdrawn."""
        who = _address(account, "account") if account else self.address
        return Wei(int(self.contract.balance_of(who)))

    def withdraw(self) -> Wei:
        if self.balance() == 0:
            raise NotFound(f"{self.address} has nothing credited in the compute market")
        receipt = self.contract.withdraw()
        return Wei(int(receipt.event("Withdrawn").args["amount"]))

    def burned(self) -> Wei:
        return Wei(int(self.contract.burned()))


class ChainSettlement:
    """Settles a coordinator's verdicts on-chain for one job: call it with each
    :class:`~databright.compute.replication.Verdict` as the coordinator returns it. It slashes
    the unit's cheaters (evidence by CID) and pays its honest, still-staked workers
    ``fee_each``. The coordinator must ask :meth:`can_dispatch` before handing out more work,
    so an escrow that cannot pay another unit stops the job (Akash's leases ran past theirs).

    ``compute_market`` must be the job's coordinator's client."""

    def __init__(
        self, compute_market: ComputeMarket, job_id: int, fee_each: int, replicas: int = 3
    ) -> None:
        job = compute_market.job(job_id)
        compute_market._check_coordinator_of(job)
        if fee_each <= 0 or replicas < 1:
            raise InvalidArgument(
                f"the fee per worker ({fee_each} wei) and the replicas per unit ({replicas}) "
                "must be positive"
            )
        self.market = compute_market
        self.job_id = int(job_id)
        self.fee_each = int(fee_each)
        self.replicas = int(replicas)
        self.settled: list[UnitSettlement] = []

    def can_dispatch(self) -> bool:
        """Whether the escrow can still pay a full group for one more unit."""
        return self.market.remaining(self.job_id) >= self.fee_each * self.replicas

    def __call__(self, verdict: Verdict) -> UnitSettlement:
        slashed: list[str] = []
        cids: list[str] = []
        for evidence in verdict.cheaters:
            record = self.market.slash(evidence.worker, self.job_id, evidence)
            slashed.append(record.worker)
            cids.append(record.evidence_cid)
        payable, unpaid, left = self.market.pay_staked(
            self.job_id, verdict.unit_id, verdict.honest, self.fee_each
        )
        outcome = UnitSettlement(
            verdict.unit_id,
            payable,
            self.fee_each,
            unpaid,
            tuple(slashed),
            tuple(cids),
            int(left),
        )
        self.settled.append(outcome)
        return outcome

    def paid_per_worker(self) -> Mapping[str, int]:
        out: dict[str, int] = {}
        for s in self.settled:
            for w in s.paid:
                out[w] = out.get(w, 0) + s.fee_each_wei
        return out


class SplitSettlement:
    """Settles a split-training job on-chain (``databright split serve --market-job``): each
    finished epoch is a unit (id: the epoch's number, from 1) that pays every stage worker
    still staked ``fee_each``; a worker an audit caught is slashed with its
    :class:`~databright.compute.splitting.StageEvidence` (:meth:`ComputeMarket.slash_stage`).
    Ask :meth:`check_can_pay` before the first epoch: an escrow that cannot pay every epoch
    refuses the job before it starts. ``compute_market`` must be the job's coordinator's client."""

    def __init__(
        self, compute_market: ComputeMarket, job_id: int, fee_each: int, workers: Sequence[str]
    ) -> None:
        job = compute_market.job(job_id)
        compute_market._check_coordinator_of(job)
        who = [_address(w, "stage worker") for w in workers]
        if fee_each <= 0 or not who or len(set(who)) != len(who):
            raise InvalidArgument(
                f"a split settlement pays a positive fee ({fee_each} wei) to distinct stage "
                f"workers ({len(who)} given, {len(set(who))} distinct)"
            )
        self.market = compute_market
        self.job_id = int(job_id)
        self.fee_each = int(fee_each)
        self.workers = tuple(who)
        self.settled: list[UnitSettlement] = []
        self.slashed: list[SlashRecord] = []

    def check_can_pay(self, epochs: int) -> None:
        """Refuse, in one sentence, a run of ``epochs`` this job cannot pay in full: a split
        job cannot stop half way and hand back a model, a unit pays at most ``MAX_WORKERS``
        workers, and a job whose first epoch is paid has run already."""
        cm, fee, workers = self.market, self.fee_each, self.workers
        most = int(cm.contract.MAX_WORKERS())
        if len(workers) > most:
            raise InvalidArgument(
                f"a market job pays at most {most} workers a unit, and {len(workers)} stage "
                "workers are named; split the model into fewer stages"
            )
        if cm.unit_paid(self.job_id, 1):
            raise InvalidArgument(
                f"market job {self.job_id} has paid an epoch already (a split job runs once); "
                "create a new market job for this run"
            )
        due = fee * len(workers) * epochs
        left = cm.remaining(self.job_id)
        if left < due:
            raise InvalidArgument(
                f"market job {self.job_id} holds {left} wei, less than the {due} wei that "
                f"{epochs} epochs pay {len(workers)} stage workers at {fee} wei; fund a larger "
                "job or lower the fee per epoch"
            )

    def epoch_done(self, epoch: int) -> UnitSettlement:
        """Pay the stage workers still staked for epoch ``epoch`` (from 0), once."""
        payable, unpaid, left = self.market.pay_staked(
            self.job_id, epoch + 1, self.workers, self.fee_each
        )
        outcome = UnitSettlement(epoch + 1, payable, self.fee_each, unpaid, (), (), int(left))
        self.settled.append(outcome)
        return outcome

    def caught(self, evidence: StageEvidence) -> SlashRecord:
        """Slash the stage worker an audit caught, with the audit's evidence."""
        record = self.market.slash_stage(self.job_id, evidence)
        self.slashed.append(record)
        return record
