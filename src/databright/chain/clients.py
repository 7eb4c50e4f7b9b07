"""Typed contract clients, generated from the artifacts by ``databright_dev.build``.

Do not edit: run ``make artifacts``. A test fails when this file is stale.
"""

# ruff: noqa
from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Any, Final, NamedTuple, cast

from databright.chain.contract import ContractClient
from databright.chain.events import Receipt

__all__ = ['Ballot', 'ComputeMarketClient', 'ComputeMarketConstants', 'DataAccessClient', 'DataAccessConstants', 'DataMarketClient', 'DataMarketConstants', 'Dataset', 'Device', 'Escrow', 'Evaluation', 'Evidence', 'Federation', 'Job', 'Listing', 'Model', 'ModelMarketClient', 'ModelMarketConstants', 'Participant', 'Proposal', 'ProposalStatus', 'RegistryEntry', 'Sale', 'SaleStatus', 'Scorecard', 'ShareTokenClient', 'ShareTokenConstants', 'Terms', 'Version', 'WeightSaleClient', 'WeightSaleConstants']


class ComputeMarketConstants:
    """ComputeMarket's constants as the compiler folded them (those of its modules and the
    private ones too, without a leading ``_``), and the bounds of its parameters
    (``<PARAM>_MAX``). Read them here; never restate them."""

    MIN_STAKE: Final = 10_000_000_000_000_000
    UNSTAKE_DELAY: Final = 86_400
    MAX_WORKERS: Final = 8
    MAX_CLIENTS: Final = 128
    FEDERATION_OPEN: Final = 1
    FEDERATION_RUNNING: Final = 2
    FEDERATION_SETTLED: Final = 3
    FEDERATION_CANCELLED: Final = 4
    FEDERATION_RECLAIMED: Final = 5
    CLIENT: Final = 0x8000000000000000000000000000000000000000000000000000000000000000
    POSTED: Final = 0x4000000000000000000000000000000000000000000000000000000000000000
    LIVE: Final = 0x8000000000000000000000000000000000000000000000000000000000000000
    WORKERS_MAX: Final = 8  # pay_unit(workers: DynArray[address, 8])
    CLIENTS_MAX: Final = 128  # create_federation(clients: DynArray[address, 128])
    AMOUNTS_MAX: Final = 128  # settle_federation(amounts: DynArray[uint256, 128])


class DataAccessConstants:
    """DataAccess's constants as the compiler folded them (those of its modules and the
    private ones too, without a leading ``_``), and the bounds of its parameters
    (``<PARAM>_MAX``). Read them here; never restate them."""

    MAX_PRICE: Final = 0xffffffffffffffffffffffffffffffff
    BUYERS_SHIFT: Final = 128
    MASK_127: Final = 0x7fffffffffffffffffffffffffffffff
    MASK_128: Final = 0xffffffffffffffffffffffffffffffff
    LIVE: Final = 0x8000000000000000000000000000000000000000000000000000000000000000


class DataMarketConstants:
    """DataMarket's constants as the compiler folded them (those of its modules and the
    private ones too, without a leading ``_``), and the bounds of its parameters
    (``<PARAM>_MAX``). Read them here; never restate them."""

    STATUS_NONE: Final = 0
    STATUS_PENDING: Final = 1
    STATUS_ACCEPTED: Final = 2
    STATUS_REJECTED: Final = 3
    STATUS_EXPIRED: Final = 4
    BPS: Final = 10_000
    SHARE_UNIT: Final = 1_000_000_000_000_000_000
    MAX_QUALITY_CAP_BPS: Final = 1_000_000
    MAX_EXAMPLES: Final = 0xffffffff
    MAX_VOTING_PERIOD: Final = 0xffffffff
    MAX_SUPPLY: Final = 0xfffffffffffffffffffffffff
    MAX_EVALUATORS: Final = 16
    MAX_DATASETS: Final = 99_999
    MAX_FEE: Final = 0xffffffffffffffffffffffff
    MIN_SCORE: Final = -2_147_483_648
    MAX_SCORE: Final = 0x7fffffff
    MAX_PAGE: Final = 64
    INITIATOR_ROLE: Final = bytes.fromhex("390d6646d43edd98b13b372e0c994cbf8730b4df3eb901bf506abbc2ba197bac")
    EVALUATOR_ROLE: Final = bytes.fromhex("c282f182a3d436030f817c646c94165ed218aceeabd8158e0b7604b49c6ae51e")
    NOT_REGISTERED: Final = 0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
    UNITS_PER_BPS: Final = 100_000_000_000_000
    SEQ_BITS: Final = 32
    MASK_8: Final = 0xff
    MASK_16: Final = 0xffff
    MASK_32: Final = 0xffffffff
    MASK_40: Final = 0xffffffffff
    MASK_64: Final = 0xffffffffffffffff
    MASK_96: Final = 0xffffffffffffffffffffffff
    MASK_104: Final = 0xffffffffffffffffffffffffff
    MASK_160: Final = 0xffffffffffffffffffffffffffffffffffffffff
    PERIOD_SHIFT: Final = 160
    QUORUM_SHIFT: Final = 192
    THRESHOLD_SHIFT: Final = 208
    LENGTH_SHIFT: Final = 224
    CAP_SHIFT: Final = 160
    MIN_VOTING_SHIFT: Final = 192
    COUNT_SHIFT: Final = 224
    SETTLE_SHIFT: Final = 64
    OPENS_SHIFT: Final = 104
    COMMIT_END_SHIFT: Final = 144
    COMMITS_SHIFT: Final = 184
    REVEALS_SHIFT: Final = 192
    REFUNDED_BIT: Final = 0x100000000000000000000000000000000000000000000000000
    DEPOSIT_SETTLED_BIT: Final = 0x200000000000000000000000000000000000000000000000000
    REVEAL_PERIOD_SHIFT: Final = 32
    FEE_SHIFT: Final = 64
    DEPOSIT_SHIFT: Final = 160
    NO_SHIFT: Final = 104
    DEADLINE_SHIFT: Final = 208
    STATUS_SHIFT: Final = 248
    EXAMPLES_SHIFT: Final = 160
    SNAPSHOT_LENGTH_SHIFT: Final = 192
    WEIGHT_SHIFT: Final = 224
    SUPPLY_SHIFT: Final = 32
    BLOCK_SHIFT: Final = 136
    FIRST_SHIFT: Final = 200
    SUPPORT_BIT: Final = 0x100000000000000000000000000
    VOTED_BIT: Final = 0x200000000000000000000000000
    MAX_SCORES: Final = 16
    SCORE_BIAS: Final = 2_147_483_648
    INDEX_SHIFT: Final = 32
    COLLECTED_BIT: Final = 0x4000000000000000000000000000000000000000000000000000000000000000
    REVEALED_BIT: Final = 0x8000000000000000000000000000000000000000000000000000000000000000
    NAME_MAX: Final = 25  # create_dataset(name: String[25])
    EVALUATORS_MAX: Final = 16  # create_dataset(evaluators: DynArray[address, 16])


class ModelMarketConstants:
    """ModelMarket's constants as the compiler folded them (those of its modules and the
    private ones too, without a leading ``_``), and the bounds of its parameters
    (``<PARAM>_MAX``). Read them here; never restate them."""

    BPS: Final = 10_000
    EXIT_DELAY: Final = 86_400
    MAX_EVALUATORS: Final = 16
    MAX_PERIOD: Final = 0xffffffff
    MAX_PRICE: Final = 0xffffffffffffffffffffffffffffffff
    MAX_PAGE: Final = 64
    RECEIPT_TYPEHASH: Final = bytes.fromhex("6220153e7e0cb8a97bbb6c30f04d66419c76fd5b9c88e19023f908d77c0e09e9")
    MALLEABILITY_THRESHOLD: Final = 57_896_044_618_658_097_711_785_492_504_343_953_926_418_782_139_537_452_191_302_581_570_759_080_747_168
    BEST_VERSION_SHIFT: Final = 32
    BEST_MODEL_SHIFT: Final = 128
    MASK_32: Final = 0xffffffff
    MASK_64: Final = 0xffffffffffffffff
    MASK_96: Final = 0xffffffffffffffffffffffff
    MASK_127: Final = 0x7fffffffffffffffffffffffffffffff
    MASK_128: Final = 0xffffffffffffffffffffffffffffffff
    HIGH_SHIFT: Final = 128
    LIVE: Final = 0x8000000000000000000000000000000000000000000000000000000000000000
    MAX_SCORES: Final = 16
    SCORE_BIAS: Final = 2_147_483_648
    INDEX_SHIFT: Final = 32
    COLLECTED_BIT: Final = 0x4000000000000000000000000000000000000000000000000000000000000000
    REVEALED_BIT: Final = 0x8000000000000000000000000000000000000000000000000000000000000000
    MASK_8: Final = 0xff
    SIGNATURE_MAX: Final = 65  # settle(signature: Bytes[65])


class ShareTokenConstants:
    """ShareToken's constants as the compiler folded them (those of its modules and the
    private ones too, without a leading ``_``), and the bounds of its parameters
    (``<PARAM>_MAX``). Read them here; never restate them."""

    MAGNITUDE: Final = 0x1000000000000000000000000
    MAX_SUPPLY: Final = 0xfffffffffffffffffffffffff
    MAX_BLOCK_NUMBER: Final = 0xffffffff
    MAX_TOTAL_PAID: Final = 0xffffffffffffffffffffffffffffff
    MASK_24: Final = 0xffffff
    MASK_32: Final = 0xffffffff
    MASK_100: Final = 0xfffffffffffffffffffffffff
    MASK_120: Final = 0xffffffffffffffffffffffffffffff
    MASK_128: Final = 0xffffffffffffffffffffffffffffffff
    LIVE: Final = 0x8000000000000000000000000000000000000000000000000000000000000000
    CUR_SHIFT: Final = 100
    LEN_SHIFT: Final = 200
    PERIOD_SHIFT: Final = 224
    HISTORY_PERIOD_SHIFT: Final = 100
    PAID_SHIFT: Final = 128
    CLAIMED_SHIFT: Final = 32


class WeightSaleConstants:
    """WeightSale's constants as the compiler folded them (those of its modules and the
    private ones too, without a leading ``_``), and the bounds of its parameters
    (``<PARAM>_MAX``). Read them here; never restate them."""

    STATUS_NONE: Final = 0
    STATUS_PAID: Final = 1
    STATUS_DELIVERED: Final = 2
    STATUS_ACCEPTED: Final = 3
    STATUS_REVEALED: Final = 4
    STATUS_SETTLED: Final = 5
    STATUS_REFUNDED: Final = 6
    REFUND_CANCELLED: Final = 1
    REFUND_NOT_REVEALED: Final = 2
    REFUND_COMPLAINT: Final = 3
    CHUNK: Final = 1_024
    CHUNK_WORDS: Final = 32
    MAX_DEPTH: Final = 40
    DELIVERY_WINDOW: Final = 86_400
    REVEAL_WINDOW: Final = 86_400
    COMPLAINT_WINDOW: Final = 86_400
    CIPHER_PROOF_MAX: Final = 40  # complain(cipher_proof: DynArray[bytes32, 40])
    PLAIN_PROOF_MAX: Final = 40  # complain(plain_proof: DynArray[bytes32, 40])


class ProposalStatus(IntEnum):
    """``STATUS_*`` constants of DataMarket."""

    NONE = 0
    PENDING = 1
    ACCEPTED = 2
    REJECTED = 3
    EXPIRED = 4


class SaleStatus(IntEnum):
    """``STATUS_*`` constants of WeightSale."""

    NONE = 0
    PAID = 1
    DELIVERED = 2
    ACCEPTED = 3
    REVEALED = 4
    SETTLED = 5
    REFUNDED = 6


class Device(NamedTuple):
    """``struct Device``, as the views that return it decode it."""

    numeric_class: bytes
    capabilities: int
    min_fee: int
    stake: int
    unstake_at: int
    registered_at: int

    @classmethod
    def from_abi(cls, value: Any) -> Device:
        return cls(*value)


class Evidence(NamedTuple):
    """``struct Evidence``, as the views that return it decode it."""

    input_hash: bytes
    honest_output: bytes
    bad_output: bytes
    evidence_cid: bytes
    amount: int
    slashed_at: int

    @classmethod
    def from_abi(cls, value: Any) -> Evidence:
        return cls(*value)


class Federation(NamedTuple):
    """``struct Federation``, as the views that return it decode it."""

    payer: str
    coordinator: str
    amount: int
    paid: int
    deadline: int
    spec_digest: bytes
    scores_cid: bytes
    clients: int
    open_joining: bool
    status: int
    started_at: int

    @classmethod
    def from_abi(cls, value: Any) -> Federation:
        return cls(*value)


class Job(NamedTuple):
    """``struct Job``, as the views that return it decode it."""

    payer: str
    coordinator: str
    max_amount: int
    remaining: int
    expiry: int
    spec_digest: bytes
    closed: bool

    @classmethod
    def from_abi(cls, value: Any) -> Job:
        return cls(*value)


class Participant(NamedTuple):
    """``struct Participant``, as the views that return it decode it."""

    joined: bool
    posted: bool
    payout: int

    @classmethod
    def from_abi(cls, value: Any) -> Participant:
        return cls(*value)


class Ballot(NamedTuple):
    """``struct Ballot``, as the views that return it decode it."""

    voted: bool
    support: bool
    weight: int

    @classmethod
    def from_abi(cls, value: Any) -> Ballot:
        return cls(*value)


class Dataset(NamedTuple):
    """``struct Dataset``, as the views that return it decode it."""

    token: str
    initiator: str
    metadata_cid_digest: bytes
    voting_period: int
    min_voting_period: int
    quorum_bps: int
    threshold_bps: int
    quality_cap_bps: int
    commit_period: int
    reveal_period: int
    evaluation_fee: int
    deposit: int
    registry_length: int
    proposal_count: int
    total_shares: int

    @classmethod
    def from_abi(cls, value: Any) -> Dataset:
        return cls(*value)


class Evaluation(NamedTuple):
    """``struct Evaluation``, as the views that return it decode it."""

    commits: int
    reveals: int
    score: int
    quality_weight_bps: int

    @classmethod
    def from_abi(cls, value: Any) -> Evaluation:
        return cls(*value)


class Proposal(NamedTuple):
    """``struct Proposal``, as the views that return it decode it."""

    dataset_id: int
    sequence: int
    snapshot_block: int
    commit_end: int
    voting_opens: int
    settle_from: int
    contributor: str
    data_cid_digest: bytes
    manifest_root: bytes
    examples: int
    deadline: int
    status: int
    yes_votes: int
    no_votes: int
    snapshot_supply: int
    quality_weight_bps: int
    shares: int

    @classmethod
    def from_abi(cls, value: Any) -> Proposal:
        return cls(*value)


class RegistryEntry(NamedTuple):
    """``struct RegistryEntry``, as the views that return it decode it."""

    index: int  # type: ignore[assignment]  # a field named like a tuple method (index, count)
    proposal_id: int
    contributor: str
    data_cid_digest: bytes
    manifest_root: bytes
    examples: int
    shares: int
    block_number: int

    @classmethod
    def from_abi(cls, value: Any) -> RegistryEntry:
        return cls(*value)


class Scorecard(NamedTuple):
    """``struct Scorecard``, as the views that return it decode it."""

    committed: bool
    revealed: bool
    score: int
    collected: bool

    @classmethod
    def from_abi(cls, value: Any) -> Scorecard:
        return cls(*value)


class Escrow(NamedTuple):
    """``struct Escrow``, as the views that return it decode it."""

    deposited: int
    settled: int
    nonce: int
    exit_at: int

    @classmethod
    def from_abi(cls, value: Any) -> Escrow:
        return cls(*value)


class Model(NamedTuple):
    """``struct Model``, as the views that return it decode it."""

    owner: str
    dataset_id: int
    spec_digest: bytes
    price: int
    owner_bps: int
    data_bps: int
    node_bps: int
    node: str
    current_version: int
    versions: int
    registered_at: int

    @classmethod
    def from_abi(cls, value: Any) -> Model:
        return cls(*value)


class Terms(NamedTuple):
    """``struct Terms``, as the views that return it decode it."""

    training_fee: int
    margin_bps: int
    base_price: int
    price_slope: int
    commit_period: int
    reveal_period: int
    set: bool

    @classmethod
    def from_abi(cls, value: Any) -> Terms:
        return cls(*value)


class Version(NamedTuple):
    """``struct Version``, as the views that return it decode it."""

    checkpoint_digest: bytes
    weights_root: bytes
    card_digest: bytes
    published_at: int
    commit_deadline: int
    reveal_deadline: int
    commits: int
    reveals: int
    benchmarked: bool
    score_bps: int

    @classmethod
    def from_abi(cls, value: Any) -> Version:
        return cls(*value)


class Listing(NamedTuple):
    """``struct Listing``, as the views that return it decode it."""

    seller: str
    price: int
    tree_root: bytes
    n_chunks: int
    byte_length: int

    @classmethod
    def from_abi(cls, value: Any) -> Listing:
        return cls(*value)


class Sale(NamedTuple):
    """``struct Sale``, as the views that return it decode it."""

    buyer: str
    seller: str
    model_id: int
    version: int
    price: int
    status: int
    deadline: int
    cipher_root: bytes
    key_commitment: bytes
    key: bytes

    @classmethod
    def from_abi(cls, value: Any) -> Sale:
        return cls(*value)


class ComputeMarketClient(ContractClient):
    """Typed client of ComputeMarket (generated from its artifact)."""

    def MAX_CLIENTS(self) -> int:
        return cast('int', self.call("MAX_CLIENTS"))

    def MAX_WORKERS(self) -> int:
        return cast('int', self.call("MAX_WORKERS"))

    def MIN_STAKE(self) -> int:
        return cast('int', self.call("MIN_STAKE"))

    def UNSTAKE_DELAY(self) -> int:
        return cast('int', self.call("UNSTAKE_DELAY"))

    def accept_ownership(self, gas: int | None = None) -> Receipt:
        return self.transact("accept_ownership", gas=gas)

    def add_stake(self, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("add_stake", value=value, gas=gas)

    def allow_coordinator(self, coordinator: str, measurement: bytes, gas: int | None = None) -> Receipt:
        return self.transact("allow_coordinator", coordinator, measurement, gas=gas)

    def balance_of(self, account: str) -> int:
        return cast('int', self.call("balance_of", account))

    def burned(self) -> int:
        return cast('int', self.call("burned"))

    def cancel_federation(self, federation_id: int, gas: int | None = None) -> Receipt:
        return self.transact("cancel_federation", federation_id, gas=gas)

    def close_job(self, job_id: int, gas: int | None = None) -> Receipt:
        return self.transact("close_job", job_id, gas=gas)

    def coordinator_measurement(self, coordinator: str) -> bytes:
        return cast('bytes', self.call("coordinator_measurement", coordinator))

    def create_federation(self, coordinator: str, amount: int, deadline: int, spec_digest: bytes, clients: list[str], open_joining: bool, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("create_federation", coordinator, amount, deadline, spec_digest, clients, open_joining, value=value, gas=gas)

    def create_job(self, coordinator: str, max_amount: int, expiry: int, spec_digest: bytes, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("create_job", coordinator, max_amount, expiry, spec_digest, value=value, gas=gas)

    def device(self, owner: str) -> Device:
        return Device.from_abi(self.call("device", owner))

    def evidence(self, job_id: int, worker: str, unit_id: bytes) -> Evidence:
        return Evidence.from_abi(self.call("evidence", job_id, worker, unit_id))

    def federation(self, federation_id: int) -> Federation:
        return Federation.from_abi(self.call("federation", federation_id))

    def federation_count(self) -> int:
        return cast('int', self.call("federation_count"))

    def is_coordinator(self, coordinator: str) -> bool:
        return cast('bool', self.call("is_coordinator", coordinator))

    def job(self, job_id: int) -> Job:
        return Job.from_abi(self.call("job", job_id))

    def job_count(self) -> int:
        return cast('int', self.call("job_count"))

    def join_federation(self, federation_id: int, gas: int | None = None) -> Receipt:
        return self.transact("join_federation", federation_id, gas=gas)

    def owner(self) -> str:
        return cast('str', self.call("owner"))

    def participant(self, federation_id: int, client: str) -> Participant:
        return Participant.from_abi(self.call("participant", federation_id, client))

    def pay_unit(self, job_id: int, unit_id: bytes, workers: list[str], fee_each: int, gas: int | None = None) -> Receipt:
        return self.transact("pay_unit", job_id, unit_id, workers, fee_each, gas=gas)

    def pending_owner(self) -> str:
        return cast('str', self.call("pending_owner"))

    def reclaim(self, job_id: int, gas: int | None = None) -> Receipt:
        return self.transact("reclaim", job_id, gas=gas)

    def reclaim_federation(self, federation_id: int, gas: int | None = None) -> Receipt:
        return self.transact("reclaim_federation", federation_id, gas=gas)

    def register_device(self, numeric_class: bytes, capabilities: int, min_fee: int, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("register_device", numeric_class, capabilities, min_fee, value=value, gas=gas)

    def remaining(self, job_id: int) -> int:
        return cast('int', self.call("remaining", job_id))

    def request_unstake(self, gas: int | None = None) -> Receipt:
        return self.transact("request_unstake", gas=gas)

    def revoke_coordinator(self, coordinator: str, gas: int | None = None) -> Receipt:
        return self.transact("revoke_coordinator", coordinator, gas=gas)

    def settle_federation(self, federation_id: int, clients: list[str], amounts: list[int], scores_cid: bytes, gas: int | None = None) -> Receipt:
        return self.transact("settle_federation", federation_id, clients, amounts, scores_cid, gas=gas)

    def slash(self, worker: str, job_id: int, unit_id: bytes, input_hash: bytes, honest_output: bytes, bad_output: bytes, evidence_cid: bytes, gas: int | None = None) -> Receipt:
        return self.transact("slash", worker, job_id, unit_id, input_hash, honest_output, bad_output, evidence_cid, gas=gas)

    def start_federation(self, federation_id: int, gas: int | None = None) -> Receipt:
        return self.transact("start_federation", federation_id, gas=gas)

    def total_staked(self) -> int:
        return cast('int', self.call("total_staked"))

    def transfer_ownership(self, new_owner: str, gas: int | None = None) -> Receipt:
        return self.transact("transfer_ownership", new_owner, gas=gas)

    def unit_paid(self, job_id: int, unit_id: bytes) -> bool:
        return cast('bool', self.call("unit_paid", job_id, unit_id))

    def withdraw(self, gas: int | None = None) -> Receipt:
        return self.transact("withdraw", gas=gas)

    def withdraw_stake(self, gas: int | None = None) -> Receipt:
        return self.transact("withdraw_stake", gas=gas)



class DataAccessClient(ContractClient):
    """Typed client of DataAccess (generated from its artifact)."""

    def MAX_PRICE(self) -> int:
        return cast('int', self.call("MAX_PRICE"))

    def bought(self, arg0: int, arg1: str) -> bool:
        return cast('bool', self.call("bought", arg0, arg1))

    def buy(self, dataset_id: int, account: str, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("buy", dataset_id, account, value=value, gas=gas)

    def buyers(self, dataset_id: int) -> int:
        return cast('int', self.call("buyers", dataset_id))

    def has_access(self, dataset_id: int, account: str) -> bool:
        return cast('bool', self.call("has_access", dataset_id, account))

    def market(self) -> str:
        return cast('str', self.call("market"))

    def price(self, arg0: int) -> int:
        return cast('int', self.call("price", arg0))

    def revenue(self, dataset_id: int) -> int:
        return cast('int', self.call("revenue", dataset_id))

    def set_price(self, dataset_id: int, price_: int, gas: int | None = None) -> Receipt:
        return self.transact("set_price", dataset_id, price_, gas=gas)



class DataMarketClient(ContractClient):
    """Typed client of DataMarket (generated from its artifact)."""

    def BPS(self) -> int:
        return cast('int', self.call("BPS"))

    def DEFAULT_ADMIN_ROLE(self) -> bytes:
        return cast('bytes', self.call("DEFAULT_ADMIN_ROLE"))

    def EVALUATOR_ROLE(self) -> bytes:
        return cast('bytes', self.call("EVALUATOR_ROLE"))

    def INITIATOR_ROLE(self) -> bytes:
        return cast('bytes', self.call("INITIATOR_ROLE"))

    def MAX_DATASETS(self) -> int:
        return cast('int', self.call("MAX_DATASETS"))

    def MAX_EVALUATORS(self) -> int:
        return cast('int', self.call("MAX_EVALUATORS"))

    def MAX_EXAMPLES(self) -> int:
        return cast('int', self.call("MAX_EXAMPLES"))

    def MAX_FEE(self) -> int:
        return cast('int', self.call("MAX_FEE"))

    def MAX_PAGE(self) -> int:
        return cast('int', self.call("MAX_PAGE"))

    def MAX_QUALITY_CAP_BPS(self) -> int:
        return cast('int', self.call("MAX_QUALITY_CAP_BPS"))

    def MAX_SCORE(self) -> int:
        return cast('int', self.call("MAX_SCORE"))

    def MAX_SUPPLY(self) -> int:
        return cast('int', self.call("MAX_SUPPLY"))

    def MAX_VOTING_PERIOD(self) -> int:
        return cast('int', self.call("MAX_VOTING_PERIOD"))

    def MIN_SCORE(self) -> int:
        return cast('int', self.call("MIN_SCORE"))

    def NOT_REGISTERED(self) -> int:
        return cast('int', self.call("NOT_REGISTERED"))

    def SHARE_UNIT(self) -> int:
        return cast('int', self.call("SHARE_UNIT"))

    def STATUS_ACCEPTED(self) -> int:
        return cast('int', self.call("STATUS_ACCEPTED"))

    def STATUS_EXPIRED(self) -> int:
        return cast('int', self.call("STATUS_EXPIRED"))

    def STATUS_NONE(self) -> int:
        return cast('int', self.call("STATUS_NONE"))

    def STATUS_PENDING(self) -> int:
        return cast('int', self.call("STATUS_PENDING"))

    def STATUS_REJECTED(self) -> int:
        return cast('int', self.call("STATUS_REJECTED"))

    def accept_initiator(self, dataset_id: int, gas: int | None = None) -> Receipt:
        return self.transact("accept_initiator", dataset_id, gas=gas)

    def ballot(self, proposal_id: int, voter: str) -> Ballot:
        return Ballot.from_abi(self.call("ballot", proposal_id, voter))

    def claimable(self, dataset_id: int, account: str) -> int:
        return cast('int', self.call("claimable", dataset_id, account))

    def collect_evaluation_fee(self, proposal_id: int, gas: int | None = None) -> Receipt:
        return self.transact("collect_evaluation_fee", proposal_id, gas=gas)

    def commit_evaluation(self, proposal_id: int, commitment: bytes, gas: int | None = None) -> Receipt:
        return self.transact("commit_evaluation", proposal_id, commitment, gas=gas)

    def commit_proposal(self, commitment: bytes, gas: int | None = None) -> Receipt:
        return self.transact("commit_proposal", commitment, gas=gas)

    def commitment_of(self, proposal_id: int, evaluator: str, score: int, report_cid_digest: bytes, salt: bytes) -> bytes:
        return cast('bytes', self.call("commitment_of", proposal_id, evaluator, score, report_cid_digest, salt))

    def create_dataset(self, name: str, metadata_cid_digest: bytes, data_cid_digest: bytes, manifest_root: bytes, examples: int, voting_period: int, min_voting_period: int, quorum_bps: int, threshold_bps: int, evaluators: list[str], quality_cap_bps: int, commit_period: int, reveal_period: int, evaluation_fee: int, deposit: int, gas: int | None = None) -> Receipt:
        return self.transact("create_dataset", name, metadata_cid_digest, data_cid_digest, manifest_root, examples, voting_period, min_voting_period, quorum_bps, threshold_bps, evaluators, quality_cap_bps, commit_period, reveal_period, evaluation_fee, deposit, gas=gas)

    def dataset(self, dataset_id: int) -> Dataset:
        return Dataset.from_abi(self.call("dataset", dataset_id))

    def dataset_count(self) -> int:
        return cast('int', self.call("dataset_count"))

    def evaluation(self, proposal_id: int) -> Evaluation:
        return Evaluation.from_abi(self.call("evaluation", proposal_id))

    def evaluator_role(self, dataset_id: int) -> bytes:
        return cast('bytes', self.call("evaluator_role", dataset_id))

    def finalize(self, proposal_id: int, gas: int | None = None) -> Receipt:
        return self.transact("finalize", proposal_id, gas=gas)

    def getRoleAdmin(self, arg0: bytes) -> bytes:
        return cast('bytes', self.call("getRoleAdmin", arg0))

    def grantRole(self, role: bytes, account: str, gas: int | None = None) -> Receipt:
        return self.transact("grantRole", role, account, gas=gas)

    def hasRole(self, arg0: bytes, arg1: str) -> bool:
        return cast('bool', self.call("hasRole", arg0, arg1))

    def initiator_role(self, dataset_id: int) -> bytes:
        return cast('bytes', self.call("initiator_role", dataset_id))

    def is_evaluator(self, dataset_id: int, account: str) -> bool:
        return cast('bool', self.call("is_evaluator", dataset_id, account))

    def manifest_root_taken(self, dataset_id: int, manifest_root: bytes) -> bool:
        return cast('bool', self.call("manifest_root_taken", dataset_id, manifest_root))

    def outcome(self, proposal_id: int) -> int:
        return cast('int', self.call("outcome", proposal_id))

    def pending_initiator(self, arg0: int) -> str:
        return cast('str', self.call("pending_initiator", arg0))

    def proposal(self, proposal_id: int) -> Proposal:
        return Proposal.from_abi(self.call("proposal", proposal_id))

    def proposal_commitment(self, contributor: str, dataset_id: int, data_cid_digest: bytes, manifest_root: bytes, examples: int, metadata_cid_digest: bytes) -> bytes:
        return cast('bytes', self.call("proposal_commitment", contributor, dataset_id, data_cid_digest, manifest_root, examples, metadata_cid_digest))

    def proposal_commitments(self, arg0: bytes) -> int:
        return cast('int', self.call("proposal_commitments", arg0))

    def proposal_id_of(self, dataset_id: int, sequence: int) -> int:
        return cast('int', self.call("proposal_id_of", dataset_id, sequence))

    def proposal_state(self, proposal_id: int) -> int:
        return cast('int', self.call("proposal_state", proposal_id))

    def propose(self, dataset_id: int, data_cid_digest: bytes, manifest_root: bytes, examples: int, metadata_cid_digest: bytes, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("propose", dataset_id, data_cid_digest, manifest_root, examples, metadata_cid_digest, value=value, gas=gas)

    def reclaim_deposit(self, proposal_id: int, gas: int | None = None) -> Receipt:
        return self.transact("reclaim_deposit", proposal_id, gas=gas)

    def registry(self, dataset_id: int, start: int, count: int) -> list[RegistryEntry]:
        return [RegistryEntry.from_abi(v0) for v0 in self.call("registry", dataset_id, start, count)]

    def registry_entry(self, dataset_id: int, index: int) -> RegistryEntry:
        return RegistryEntry.from_abi(self.call("registry_entry", dataset_id, index))

    def registry_length(self, dataset_id: int) -> int:
        return cast('int', self.call("registry_length", dataset_id))

    def renounceRole(self, role: bytes, account: str, gas: int | None = None) -> Receipt:
        return self.transact("renounceRole", role, account, gas=gas)

    def reveal_evaluation(self, proposal_id: int, score: int, report_cid_digest: bytes, salt: bytes, gas: int | None = None) -> Receipt:
        return self.transact("reveal_evaluation", proposal_id, score, report_cid_digest, salt, gas=gas)

    def revokeRole(self, role: bytes, account: str, gas: int | None = None) -> Receipt:
        return self.transact("revokeRole", role, account, gas=gas)

    def root_owner(self, arg0: bytes) -> str:
        return cast('str', self.call("root_owner", arg0))

    def scorecard(self, proposal_id: int, evaluator: str) -> Scorecard:
        return Scorecard.from_abi(self.call("scorecard", proposal_id, evaluator))

    def share_token(self, dataset_id: int) -> str:
        return cast('str', self.call("share_token", dataset_id))

    def share_token_blueprint(self) -> str:
        return cast('str', self.call("share_token_blueprint"))

    def supportsInterface(self, interface_id: bytes) -> bool:
        return cast('bool', self.call("supportsInterface", interface_id))

    def transfer_initiator(self, dataset_id: int, new_initiator: str, gas: int | None = None) -> Receipt:
        return self.transact("transfer_initiator", dataset_id, new_initiator, gas=gas)

    def vote(self, proposal_id: int, support: bool, gas: int | None = None) -> Receipt:
        return self.transact("vote", proposal_id, support, gas=gas)



class ModelMarketClient(ContractClient):
    """Typed client of ModelMarket (generated from its artifact)."""

    def BPS(self) -> int:
        return cast('int', self.call("BPS"))

    def EXIT_DELAY(self) -> int:
        return cast('int', self.call("EXIT_DELAY"))

    def MAX_EVALUATORS(self) -> int:
        return cast('int', self.call("MAX_EVALUATORS"))

    def MAX_PAGE(self) -> int:
        return cast('int', self.call("MAX_PAGE"))

    def MAX_PERIOD(self) -> int:
        return cast('int', self.call("MAX_PERIOD"))

    def MAX_PRICE(self) -> int:
        return cast('int', self.call("MAX_PRICE"))

    def RECEIPT_TYPEHASH(self) -> bytes:
        return cast('bytes', self.call("RECEIPT_TYPEHASH"))

    def balance_of(self, account: str) -> int:
        return cast('int', self.call("balance_of", account))

    def benchmark_commitment(self, model_id: int, version: int, evaluator: str, score_bps: int, report_digest: bytes, salt: bytes) -> bytes:
        return cast('bytes', self.call("benchmark_commitment", model_id, version, evaluator, score_bps, report_digest, salt))

    def benchmark_score(self, model_id: int, version: int, evaluator: str) -> tuple[bool, bool, int]:
        return cast('tuple[bool, bool, int]', self.call("benchmark_score", model_id, version, evaluator))

    def best(self, dataset_id: int) -> tuple[int, int, int]:
        return cast('tuple[int, int, int]', self.call("best", dataset_id))

    def commit_benchmark(self, model_id: int, version: int, commitment: bytes, gas: int | None = None) -> Receipt:
        return self.transact("commit_benchmark", model_id, version, commitment, gas=gas)

    def dataset_model_count(self, arg0: int) -> int:
        return cast('int', self.call("dataset_model_count", arg0))

    def dataset_models(self, dataset_id: int, start: int, count: int) -> list[int]:
        return cast('list[int]', self.call("dataset_models", dataset_id, start, count))

    def deposit(self, model_id: int, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("deposit", model_id, value=value, gas=gas)

    def domain_separator(self) -> bytes:
        return cast('bytes', self.call("domain_separator"))

    def eip712Domain(self) -> tuple[bytes, str, str, int, str, bytes, list[int]]:
        return cast('tuple[bytes, str, str, int, str, bytes, list[int]]', self.call("eip712Domain"))

    def escrow(self, model_id: int, user: str) -> Escrow:
        return Escrow.from_abi(self.call("escrow", model_id, user))

    def finalize_benchmark(self, model_id: int, version: int, gas: int | None = None) -> Receipt:
        return self.transact("finalize_benchmark", model_id, version, gas=gas)

    def is_benchmarked(self, model_id: int, version: int) -> bool:
        return cast('bool', self.call("is_benchmarked", model_id, version))

    def market(self) -> str:
        return cast('str', self.call("market"))

    def model(self, model_id: int) -> Model:
        return Model.from_abi(self.call("model", model_id))

    def model_count(self) -> int:
        return cast('int', self.call("model_count"))

    def model_revenue(self, model_id: int) -> int:
        return cast('int', self.call("model_revenue", model_id))

    def owner_of(self, model_id: int) -> str:
        return cast('str', self.call("owner_of", model_id))

    def pay_training_fee(self, dataset_id: int, spec_digest: bytes, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("pay_training_fee", dataset_id, spec_digest, value=value, gas=gas)

    def prediction_revenue(self, dataset_id: int) -> int:
        return cast('int', self.call("prediction_revenue", dataset_id))

    def price_cap(self, dataset_id: int, score_bps: int) -> int:
        return cast('int', self.call("price_cap", dataset_id, score_bps))

    def publish_version(self, model_id: int, checkpoint_digest: bytes, weights_root: bytes, card_digest: bytes, gas: int | None = None) -> Receipt:
        return self.transact("publish_version", model_id, checkpoint_digest, weights_root, card_digest, gas=gas)

    def receipt_digest(self, model_id: int, user: str, total: int, nonce: int) -> bytes:
        return cast('bytes', self.call("receipt_digest", model_id, user, total, nonce))

    def register_model(self, dataset_id: int, spec_digest: bytes, checkpoint_digest: bytes, weights_root: bytes, card_digest: bytes, price: int, owner_bps: int, data_bps: int, node_bps: int, node: str, gas: int | None = None) -> Receipt:
        return self.transact("register_model", dataset_id, spec_digest, checkpoint_digest, weights_root, card_digest, price, owner_bps, data_bps, node_bps, node, gas=gas)

    def request_benchmark(self, model_id: int, version: int, gas: int | None = None) -> Receipt:
        return self.transact("request_benchmark", model_id, version, gas=gas)

    def reveal_benchmark(self, model_id: int, version: int, score_bps: int, report_digest: bytes, salt: bytes, gas: int | None = None) -> Receipt:
        return self.transact("reveal_benchmark", model_id, version, score_bps, report_digest, salt, gas=gas)

    def score_of(self, model_id: int, version: int) -> int:
        return cast('int', self.call("score_of", model_id, version))

    def set_node(self, model_id: int, node: str, gas: int | None = None) -> Receipt:
        return self.transact("set_node", model_id, node, gas=gas)

    def set_price(self, model_id: int, price: int, gas: int | None = None) -> Receipt:
        return self.transact("set_price", model_id, price, gas=gas)

    def set_terms(self, dataset_id: int, training_fee: int, margin_bps: int, base_price: int, price_slope: int, commit_period: int, reveal_period: int, gas: int | None = None) -> Receipt:
        return self.transact("set_terms", dataset_id, training_fee, margin_bps, base_price, price_slope, commit_period, reveal_period, gas=gas)

    def settle(self, model_id: int, user: str, total: int, nonce: int, signature: bytes, gas: int | None = None) -> Receipt:
        return self.transact("settle", model_id, user, total, nonce, signature, gas=gas)

    def start_exit(self, model_id: int, gas: int | None = None) -> Receipt:
        return self.transact("start_exit", model_id, gas=gas)

    def terms(self, dataset_id: int) -> Terms:
        return Terms.from_abi(self.call("terms", dataset_id))

    def training_paid(self, payer: str, dataset_id: int, spec_digest: bytes) -> bool:
        return cast('bool', self.call("training_paid", payer, dataset_id, spec_digest))

    def training_revenue(self, dataset_id: int) -> int:
        return cast('int', self.call("training_revenue", dataset_id))

    def version(self, model_id: int, version: int) -> Version:
        return Version.from_abi(self.call("version", model_id, version))

    def weights_root(self, model_id: int, version: int) -> bytes:
        return cast('bytes', self.call("weights_root", model_id, version))

    def withdraw(self, gas: int | None = None) -> Receipt:
        return self.transact("withdraw", gas=gas)

    def withdraw_deposit(self, model_id: int, gas: int | None = None) -> Receipt:
        return self.transact("withdraw_deposit", model_id, gas=gas)



class ShareTokenClient(ContractClient):
    """Typed client of ShareToken (generated from its artifact)."""

    def DOMAIN_SEPARATOR(self) -> bytes:
        return cast('bytes', self.call("DOMAIN_SEPARATOR"))

    def MAGNITUDE(self) -> int:
        return cast('int', self.call("MAGNITUDE"))

    def MAX_BLOCK_NUMBER(self) -> int:
        return cast('int', self.call("MAX_BLOCK_NUMBER"))

    def MAX_SUPPLY(self) -> int:
        return cast('int', self.call("MAX_SUPPLY"))

    def MAX_TOTAL_PAID(self) -> int:
        return cast('int', self.call("MAX_TOTAL_PAID"))

    def allowance(self, arg0: str, arg1: str) -> int:
        return cast('int', self.call("allowance", arg0, arg1))

    def approve(self, spender: str, amount: int, gas: int | None = None) -> Receipt:
        return self.transact("approve", spender, amount, gas=gas)

    def balanceOf(self, arg0: str) -> int:
        return cast('int', self.call("balanceOf", arg0))

    def balance_at(self, account: str, block_number: int) -> int:
        return cast('int', self.call("balance_at", account, block_number))

    def claim(self, gas: int | None = None) -> Receipt:
        return self.transact("claim", gas=gas)

    def claimable(self, account: str) -> int:
        return cast('int', self.call("claimable", account))

    def dataset_id(self) -> int:
        return cast('int', self.call("dataset_id"))

    def decimals(self) -> int:
        return cast('int', self.call("decimals"))

    def distribute_surplus(self, gas: int | None = None) -> Receipt:
        return self.transact("distribute_surplus", gas=gas)

    def dividend_of(self, account: str) -> int:
        return cast('int', self.call("dividend_of", account))

    def dust(self) -> int:
        return cast('int', self.call("dust"))

    def eip712Domain(self) -> tuple[bytes, str, str, int, str, bytes, list[int]]:
        return cast('tuple[bytes, str, str, int, str, bytes, list[int]]', self.call("eip712Domain"))

    def last_move_block(self) -> int:
        return cast('int', self.call("last_move_block"))

    def magnified_dividend_per_share(self) -> int:
        return cast('int', self.call("magnified_dividend_per_share"))

    def market(self) -> str:
        return cast('str', self.call("market"))

    def mint(self, owner: str, amount: int, gas: int | None = None) -> Receipt:
        return self.transact("mint", owner, amount, gas=gas)

    def name(self) -> str:
        return cast('str', self.call("name"))

    def nonces(self, arg0: str) -> int:
        return cast('int', self.call("nonces", arg0))

    def owner(self) -> str:
        return cast('str', self.call("owner"))

    def pay(self, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("pay", value=value, gas=gas)

    def permit(self, owner: str, spender: str, amount: int, deadline: int, v: int, r: bytes, s: bytes, gas: int | None = None) -> Receipt:
        return self.transact("permit", owner, spender, amount, deadline, v, r, s, gas=gas)

    def symbol(self) -> str:
        return cast('str', self.call("symbol"))

    def totalSupply(self) -> int:
        return cast('int', self.call("totalSupply"))

    def total_claimed(self) -> int:
        return cast('int', self.call("total_claimed"))

    def total_paid(self) -> int:
        return cast('int', self.call("total_paid"))

    def transfer(self, to: str, amount: int, gas: int | None = None) -> Receipt:
        return self.transact("transfer", to, amount, gas=gas)

    def transferFrom(self, owner: str, to: str, amount: int, gas: int | None = None) -> Receipt:
        return self.transact("transferFrom", owner, to, amount, gas=gas)



class WeightSaleClient(ContractClient):
    """Typed client of WeightSale (generated from its artifact)."""

    def CHUNK(self) -> int:
        return cast('int', self.call("CHUNK"))

    def COMPLAINT_WINDOW(self) -> int:
        return cast('int', self.call("COMPLAINT_WINDOW"))

    def DELIVERY_WINDOW(self) -> int:
        return cast('int', self.call("DELIVERY_WINDOW"))

    def MAX_DEPTH(self) -> int:
        return cast('int', self.call("MAX_DEPTH"))

    def REFUND_CANCELLED(self) -> int:
        return cast('int', self.call("REFUND_CANCELLED"))

    def REFUND_COMPLAINT(self) -> int:
        return cast('int', self.call("REFUND_COMPLAINT"))

    def REFUND_NOT_REVEALED(self) -> int:
        return cast('int', self.call("REFUND_NOT_REVEALED"))

    def REVEAL_WINDOW(self) -> int:
        return cast('int', self.call("REVEAL_WINDOW"))

    def STATUS_ACCEPTED(self) -> int:
        return cast('int', self.call("STATUS_ACCEPTED"))

    def STATUS_DELIVERED(self) -> int:
        return cast('int', self.call("STATUS_DELIVERED"))

    def STATUS_NONE(self) -> int:
        return cast('int', self.call("STATUS_NONE"))

    def STATUS_PAID(self) -> int:
        return cast('int', self.call("STATUS_PAID"))

    def STATUS_REFUNDED(self) -> int:
        return cast('int', self.call("STATUS_REFUNDED"))

    def STATUS_REVEALED(self) -> int:
        return cast('int', self.call("STATUS_REVEALED"))

    def STATUS_SETTLED(self) -> int:
        return cast('int', self.call("STATUS_SETTLED"))

    def accept(self, sale_id: int, gas: int | None = None) -> Receipt:
        return self.transact("accept", sale_id, gas=gas)

    def balance_of(self, arg0: str) -> int:
        return cast('int', self.call("balance_of", arg0))

    def buy(self, model_id: int, version: int, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transact("buy", model_id, version, value=value, gas=gas)

    def cancel(self, sale_id: int, gas: int | None = None) -> Receipt:
        return self.transact("cancel", sale_id, gas=gas)

    def complain(self, sale_id: int, index: int, cipher_chunk: list[bytes], cipher_proof: list[bytes], plain_leaf: bytes, plain_proof: list[bytes], gas: int | None = None) -> Receipt:
        return self.transact("complain", sale_id, index, cipher_chunk, cipher_proof, plain_leaf, plain_proof, gas=gas)

    def credited(self) -> int:
        return cast('int', self.call("credited"))

    def deliver(self, sale_id: int, cipher_root: bytes, key_commitment: bytes, gas: int | None = None) -> Receipt:
        return self.transact("deliver", sale_id, cipher_root, key_commitment, gas=gas)

    def escrowed(self) -> int:
        return cast('int', self.call("escrowed"))

    def list_weights(self, model_id: int, version: int, price: int, tree_root: bytes, n_chunks: int, byte_length: int, gas: int | None = None) -> Receipt:
        return self.transact("list_weights", model_id, version, price, tree_root, n_chunks, byte_length, gas=gas)

    def listing(self, model_id: int, version: int) -> Listing:
        return Listing.from_abi(self.call("listing", model_id, version))

    def model_market(self) -> str:
        return cast('str', self.call("model_market"))

    def refund(self, sale_id: int, gas: int | None = None) -> Receipt:
        return self.transact("refund", sale_id, gas=gas)

    def reveal_key(self, sale_id: int, key: bytes, gas: int | None = None) -> Receipt:
        return self.transact("reveal_key", sale_id, key, gas=gas)

    def sale(self, sale_id: int) -> Sale:
        return Sale.from_abi(self.call("sale", sale_id))

    def sale_count(self) -> int:
        return cast('int', self.call("sale_count"))

    def settle(self, sale_id: int, gas: int | None = None) -> Receipt:
        return self.transact("settle", sale_id, gas=gas)

    def unlist(self, model_id: int, version: int, gas: int | None = None) -> Receipt:
        return self.transact("unlist", model_id, version, gas=gas)

    def withdraw(self, gas: int | None = None) -> Receipt:
        return self.transact("withdraw", gas=gas)
