"""The data market as a Python API: datasets, proposals, votes, evaluations, shares, dividends.

``Market.connect(rpc_url, account, data_dir)`` combines a chain gateway (any EVM node) with the
local content-addressed store under ``<data_dir>/blobs``. Data never goes on-chain: a proposal
is validated against the dataset's schema, stored by content address, and only its data CID
(as a sha2-256 digest), manifest Merkle root, size and manifest CID go to the contract. Every
download is checked example by example against the root the chain recorded.

Views read contract state (``dataset``, ``proposal``, ``evaluation``, ``registry``,
``claimable``) and events (proposal lists, shareholders) afresh on every call, so two clients
never disagree about what the chain says. Only what can never change is kept: a dataset's
schema (fixed at creation) and the example hashes of content-addressed data.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, keccak, to_checksum_address

from databright.atomic import atomic_write
from databright.chain.clients import (
    DataMarketClient,
    DataMarketConstants,
    ProposalStatus,
    ShareTokenClient,
)
from databright.chain.clients import Proposal as ProposalView
from databright.chain.contract import ContractClient
from databright.chain.deploy import load_deployment
from databright.chain.gateway import Event, Gateway, Receipt, connect
from databright.errors import (
    BlobCorrupt,
    BlobNotFound,
    ContractNotDeployed,
    ContractReverted,
    InsufficientFunds,
    InvalidArgument,
    InvalidProposal,
    ManifestMismatch,
    NotFound,
    StorageError,
)
from databright.settings import DEFAULT_HOME
from databright.storage import (
    BlobStore,
    DatasetSchema,
    Examples,
    LocalBlobStore,
    Manifest,
    MerkleTree,
    cid_for_bytes,
    cid_to_digest,
    decode_examples,
    example_hashes,
    read_proposal,
    store_proposal,
    validate_examples,
)
from databright.storage.blobstore import cid_in_store
from databright.storage.remote import GatewaySource, SourcedBlobStore
from databright.types import UINT256_MAX, Address, DatasetId, ProposalId, Wei

__all__ = [
    "SHARE_UNIT",
    "STATUS_NAMES",
    "DatasetInfo",
    "Evaluation",
    "Governance",
    "Market",
    "ProposalInfo",
    "RegistryEntry",
    "SealedScore",
    "Shareholder",
    "proposal_commitment",
    "refuse_repeat",
]

C = TypeVar("C", bound=ContractClient)
SHARE_UNIT = DataMarketConstants.SHARE_UNIT
STATUS_NAMES = {int(s): s.name.lower() for s in ProposalStatus}
ZERO32 = b"\x00" * 32


def refuse_repeat(
    source: str, dataset_id: int, taken: bool, owner: str, contributor: str | None
) -> None:
    """The two refusals of a proposal's exact examples, in one wording wherever they are
    checked: already in the dataset (or pending there), or first proposed by another
    contributor (``contributor`` None: not checked)."""
    if taken:
        raise InvalidProposal(
            f"{source}: these exact examples are already in dataset {dataset_id} or pending there"
        )
    if contributor is not None and int(owner, 16) not in (0, int(contributor, 16)):
        raise InvalidProposal(
            f"{source}: these exact examples were first proposed by {owner}, "
            "and only that contributor may propose them"
        )


def proposal_commitment(
    contributor: str, dataset_id: int, data: bytes, root: bytes, examples: int, metadata: bytes
) -> bytes:
    """The commitment ``propose`` consumes, as the contract's ``proposal_commitment``."""
    return keccak(
        encode(
            ["address", "uint256", "bytes32", "bytes32", "uint256", "bytes32"],
            [to_checksum_address(contributor), dataset_id, data, root, examples, metadata],
        )
    )


@dataclass(frozen=True)
class Governance:
    """How a dataset decides: the contract checks the same bounds and refuses others."""

    voting_period_s: int = 3600
    quorum_bps: int = 2000
    threshold_bps: int = 5000
    quality_cap_bps: int = 2 * DataMarketConstants.BPS  # a proposal weighs at most double
    evaluators: tuple[str, ...] = ()
    # A proposal whose outcome is final early still stays open this long (at most the period).
    min_voting_period_s: int = 0
    # Evaluation phases before voting (both 0: no evaluation) and the fee a proposer pays the
    # evaluators who reveal.
    commit_period_s: int = 0
    reveal_period_s: int = 0
    evaluation_fee_wei: int = 0
    # Deposited with each proposal: returned if accepted or scored positive, else paid to the
    # shareholders.
    deposit_wei: int = 0


@dataclass(frozen=True)
class DatasetInfo:
    id: DatasetId
    name: str
    token: Address
    initiator: Address
    schema_cid: str
    governance: Governance
    registry_length: int
    proposal_count: int
    total_shares: int


@dataclass(frozen=True)
class Evaluation:
    """A proposal's sealed evaluation: commitments, reveals, and the median revealed score."""

    commits: int
    reveals: int
    score_bps: int  # the median of the revealed scores (0 if none)
    quality_weight_bps: int


@dataclass(frozen=True)
class SealedScore:
    """What an evaluator committed to, kept locally until its reveal (the salt is secret)."""

    proposal_id: int
    evaluator: str
    score_bps: int
    report_cid: str
    salt: str  # hex
    # Blobs the report refers to (a plot): withheld with the report until the reveal.
    attachments: tuple[str, ...] = ()

    def commitment(self) -> bytes:
        """``keccak256(abi_encode(proposal_id, evaluator, score, report_digest, salt))``, as
        the contract's ``commitment_of``."""
        return keccak(
            encode(
                ["uint256", "address", "int256", "bytes32", "bytes32"],
                [
                    self.proposal_id,
                    self.evaluator,
                    self.score_bps,
                    cid_to_digest(self.report_cid),
                    bytes.fromhex(self.salt),
                ],
            )
        )


@dataclass(frozen=True)
class ProposalInfo:
    id: ProposalId
    dataset_id: DatasetId
    contributor: Address
    data_cid: str
    manifest_root: bytes
    manifest_cid: str | None
    examples: int
    deadline: int
    commit_end: int  # evaluators commit until then, reveal until voting_opens
    voting_opens: int
    snapshot_block: int  # votes weigh balances at the end of this block (the one before)
    settle_from: int  # an outcome final before the deadline is settled from this time on
    status: str
    outcome: str
    yes_votes: int
    no_votes: int
    snapshot_supply: int
    quality_weight_bps: int
    prospective_shares: int  # what acceptance mints (examples x quality weight)
    evaluation: Evaluation | None = None

    @property
    def shares(self) -> int:
        """Shares minted to the contributor: only an accepted proposal mints."""
        return self.prospective_shares if self.status == "accepted" else 0

    @property
    def sequence(self) -> int:
        """The proposal's number within its dataset (0 is the initial data)."""
        return int(self.id) & ((1 << DataMarketConstants.SEQ_BITS) - 1)


@dataclass(frozen=True)
class RegistryEntry:
    index: int
    proposal_id: ProposalId
    contributor: Address
    data_cid: str
    manifest_root: bytes
    examples: int
    shares: int
    block_number: int


@dataclass(frozen=True)
class Shareholder:
    address: Address
    shares: int
    claimable: Wei


@dataclass
class Market:
    gateway: Gateway
    store: BlobStore
    contract: DataMarketClient
    data_dir: Path
    _schemas: dict[int, DatasetSchema] = field(default_factory=dict, repr=False)

    # --- connecting ------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        account: LocalAccount | str | None = None,
        data_dir: str | Path = DEFAULT_HOME,
        sources: Sequence[str] = (),
    ) -> Market:
        """Connect to the market recorded in ``data_dir`` for the chain at ``rpc_url`` (see
        ``databright join``); blobs the local store lacks are fetched from ``sources`` (URLs of
        other participants' stores or IPFS gateways) and verified against their CIDs."""
        data_dir = Path(data_dir)
        gw = connect(rpc_url, account)
        deployment = load_deployment(data_dir, gw.chain_id)
        contract = gw.bind(DataMarketClient, deployment["DataMarket"], check_code=True)
        store = SourcedBlobStore(
            LocalBlobStore(data_dir / "blobs"), [GatewaySource(url) for url in sources]
        )
        return cls(gw, store, contract, data_dir)

    @property
    def address(self) -> Address:
        return self.gateway.address

    def bind_recorded(self, key: str, client: type[C], what: str) -> C:
        """The contract recorded as ``key`` in this data dir's deployment (the model market,
        the weight sale, the compute market), bound as ``client`` and checked to hold code."""
        deployment = load_deployment(self.data_dir, self.gateway.chain_id)
        if key not in deployment.addresses:
            raise ContractNotDeployed(
                f"{deployment.path} records no {what} for chain {deployment.chain_id}; run "
                "`databright deploy` (it adds the contracts a deployment lacks) or join with a "
                "deployment file that has one (`databright join FILE`)"
            )
        return self.gateway.bind(client, deployment[key], check_code=True)

    def cid_of(self, digest: bytes) -> str:
        """The CID of the blob a ``bytes32`` digest on the chain names (raw up to 256 KiB,
        dag-pb above: the local store, then the blob sources, say which)."""
        if isinstance(self.store, SourcedBlobStore):
            return self.store.locate(bytes(digest))
        return cid_in_store(self.store, bytes(digest))

    def as_account(self, account: LocalAccount) -> Market:
        """The same market seen by another account (shares the store and the node)."""
        gw = connect(self.gateway.url, account)
        return Market(
            gw, self.store, gw.bind(DataMarketClient, self.contract.address), self.data_dir
        )

    # --- datasets --------------------------------------------------------------------

    def create_dataset(
        self,
        name: str,
        schema: DatasetSchema,
        initial: str | Path | Examples,
        governance: Governance = Governance(),
    ) -> DatasetId:
        """Create a dataset with its schema and initial data; the caller gets one share each."""
        name_max = DataMarketConstants.NAME_MAX
        if not name.strip():
            raise InvalidArgument("a dataset needs a name; give one (1 to 25 bytes)")
        if len(name.encode()) > name_max:
            raise InvalidArgument(
                f"dataset name {name!r} must be 1 to {name_max} bytes; choose a shorter name"
            )
        for e in governance.evaluators:
            if not is_address(e):
                raise InvalidArgument(f"evaluator {e!r} is not an Ethereum address")
        if (governance.commit_period_s == 0) != (governance.reveal_period_s == 0):
            raise InvalidArgument(
                "give both a commit and a reveal period for an evaluated dataset, or neither"
            )
        if governance.evaluation_fee_wei and not governance.commit_period_s:
            raise InvalidArgument("an evaluation fee needs commit and reveal periods")
        if not 0 <= governance.min_voting_period_s <= governance.voting_period_s:
            raise InvalidArgument(
                f"the minimum voting period ({governance.min_voting_period_s} s) must be between "
                f"0 and the voting period ({governance.voting_period_s} s)"
            )
        examples = self._load(initial, schema, known=set())
        self._require_gas_money("create a dataset")
        stored = store_proposal(self.store, examples, schema)
        receipt = self.contract.create_dataset(
            name,
            cid_to_digest(stored.schema_cid),
            cid_to_digest(stored.data_cid),
            stored.merkle_root,
            stored.n_examples,
            governance.voting_period_s,
            governance.min_voting_period_s,
            governance.quorum_bps,
            governance.threshold_bps,
            [to_checksum_address(e) for e in governance.evaluators],
            governance.quality_cap_bps,
            governance.commit_period_s,
            governance.reveal_period_s,
            governance.evaluation_fee_wei,
            governance.deposit_wei,
        )
        return DatasetId(int(receipt.event("DatasetCreated").args["dataset_id"]))

    def dataset_count(self) -> int:
        return self.contract.dataset_count()

    def _check_dataset(self, dataset_id: int) -> None:
        if not 1 <= int(dataset_id) <= self.dataset_count():
            raise NotFound(
                f"dataset {dataset_id} does not exist on this market; see `databright dataset list`"
            )

    def dataset(self, dataset_id: int) -> DatasetInfo:
        self._check_dataset(dataset_id)
        d = self.contract.dataset(dataset_id)
        created = self.contract.events("DatasetCreated", dataset_id=dataset_id)
        name = created[0].args["name"] if created else ""
        evaluators = tuple(created[0].args["evaluators"]) if created else ()
        return DatasetInfo(
            id=DatasetId(int(dataset_id)),
            name=name,
            token=Address(to_checksum_address(d.token)),
            initiator=Address(to_checksum_address(d.initiator)),
            schema_cid=self.cid_of(d.metadata_cid_digest),
            governance=Governance(
                voting_period_s=d.voting_period,
                quorum_bps=d.quorum_bps,
                threshold_bps=d.threshold_bps,
                quality_cap_bps=d.quality_cap_bps,
                evaluators=evaluators,
                min_voting_period_s=d.min_voting_period,
                commit_period_s=d.commit_period,
                reveal_period_s=d.reveal_period,
                evaluation_fee_wei=d.evaluation_fee,
                deposit_wei=d.deposit,
            ),
            registry_length=d.registry_length,
            proposal_count=d.proposal_count,
            total_shares=d.total_shares,
        )

    def datasets(self) -> list[DatasetInfo]:
        return [self.dataset(i) for i in range(1, self.dataset_count() + 1)]

    def schema(self, dataset_id: int) -> DatasetSchema:
        if dataset_id not in self._schemas:
            info = self.dataset(dataset_id)
            self._schemas[dataset_id] = DatasetSchema.from_json(self.store.get(info.schema_cid))
        return self._schemas[dataset_id]

    def token(self, dataset_id: int) -> ShareTokenClient:
        self._check_dataset(dataset_id)
        return self.gateway.bind(ShareTokenClient, self.contract.share_token(dataset_id))

    # --- proposals -------------------------------------------------------------------

    def _load(
        self, source: str | Path | Examples, schema: DatasetSchema, known: set[bytes]
    ) -> Examples:
        if isinstance(source, Examples):
            return validate_examples(
                source.X, source.y, schema, source=source.source, known_hashes=known
            )
        return read_proposal(source, schema, known_hashes=known)

    def check_repeat(self, dataset_id: int, examples: Examples, contributor: str | None) -> bytes:
        """Refuse, before anything is stored, examples already in the dataset (or pending
        there) or first proposed by another than ``contributor`` (None: not checked); returns
        their Merkle root."""
        root = MerkleTree(examples.hashes).root
        taken = self.contract.manifest_root_taken(int(dataset_id), root)
        owner = self.contract.root_owner(root) if not taken else ""
        refuse_repeat(examples.source, int(dataset_id), taken, owner, contributor)
        return bytes(root)

    def propose(self, dataset_id: int, source: str | Path | Examples) -> ProposalInfo:
        """Validate, store and register a proposal; returns it as the chain now sees it."""
        schema = self.schema(dataset_id)
        # Only this file is checked for repeats here: copies of other participants' data are
        # the evaluators' to find (their report flags them, worth nothing), which spares every
        # proposer from fetching and decoding the whole dataset.
        examples = self._load(source, schema, known=set())
        # Every refusal we can foresee comes before anything is stored.
        self.check_repeat(dataset_id, examples, self.address)
        self._require_gas_money("propose")
        d = self.contract.dataset(dataset_id)
        payment = d.evaluation_fee + d.deposit
        if payment and self.gateway.balance() < payment:
            raise InsufficientFunds(
                f"dataset {dataset_id} asks {payment} wei with each proposal (evaluation fee "
                f"and deposit) and account {self.address} holds less; fund it first"
            )
        stored = store_proposal(self.store, examples, schema)
        terms = (
            int(dataset_id),
            cid_to_digest(stored.data_cid),
            stored.merkle_root,
            stored.n_examples,
            cid_to_digest(stored.manifest_cid),
        )
        # Two steps, so that a copy of the propose transaction loses: commit to the terms
        # (hidden), then propose them; sent after the commitment's receipt, the proposal can
        # only land in a later block, as the contract requires.
        self.contract.commit_proposal(proposal_commitment(self.address, *terms))
        receipt = self.contract.propose(*terms, value=payment)
        event = receipt.event("ProposalCreated")
        return self.proposal(int(event.args["proposal_id"]), created=event)

    def _require_gas_money(self, what: str) -> None:
        if self.gateway.balance() == 0:
            raise InsufficientFunds(
                f"account {self.address} has no ETH to pay gas to {what}; fund it first"
            )

    def _check_proposal(self, proposal_id: int) -> None:
        pid = int(proposal_id)
        if not 0 < pid <= UINT256_MAX or self.contract.proposal_state(pid) == ProposalStatus.NONE:
            raise NotFound(
                f"proposal {proposal_id} does not exist; see `databright dataset show DATASET`"
            )

    def _on_proposal(self, proposal_id: int, action: Callable[[int], Receipt]) -> Receipt:
        """Run ``action``; only if it reverts, ask whether the proposal exists at all.

        Checking first would cost a round trip on every vote; the contract refuses an unknown
        id anyway, and this turns its refusal into a clearer one.
        """
        pid = int(proposal_id)
        if not 0 < pid <= UINT256_MAX:
            self._check_proposal(pid)
        try:
            return action(pid)
        except ContractReverted:
            self._check_proposal(pid)
            raise

    def proposal(self, proposal_id: int, created: Event | None = None) -> ProposalInfo:
        """A proposal as the chain sees it now (``created``: its ProposalCreated event, if at
        hand, saves a log query)."""
        pid = int(proposal_id)
        if not 0 < pid <= UINT256_MAX:
            self._check_proposal(pid)
        try:
            raw = self.contract.proposal(pid)
        except ContractReverted:
            self._check_proposal(pid)
            raise
        created_events = (
            [created] if created else self.contract.events("ProposalCreated", proposal_id=pid)
        )
        return self._proposal_info(pid, raw, created_events)

    def _proposal_info(self, pid: int, raw: ProposalView, created: list[Event]) -> ProposalInfo:
        manifest_cid = (
            self.cid_of(created[0].args["metadata_cid_digest"])
            if created and created[0].args["metadata_cid_digest"] != ZERO32
            else None
        )
        evaluation = self.evaluation(pid)
        data = raw.data_cid_digest
        status = raw.status
        # A settled proposal's outcome is its status: no need to ask.
        outcome = status if status != ProposalStatus.PENDING else self.contract.outcome(pid)
        return ProposalInfo(
            id=ProposalId(pid),
            dataset_id=DatasetId(raw.dataset_id),
            contributor=Address(to_checksum_address(raw.contributor)),
            # A settled-without-entry proposal's data digest is cleared on-chain; its event keeps it.
            data_cid=self.cid_of(
                data if bytes(data) != ZERO32 or not created else created[0].args["data_cid_digest"]
            ),
            manifest_root=bytes(raw.manifest_root),
            manifest_cid=manifest_cid,
            examples=raw.examples,
            deadline=raw.deadline,
            commit_end=raw.commit_end,
            voting_opens=raw.voting_opens,
            snapshot_block=raw.snapshot_block,
            settle_from=raw.settle_from,
            status=STATUS_NAMES[status],
            outcome=STATUS_NAMES[outcome],
            yes_votes=raw.yes_votes,
            no_votes=raw.no_votes,
            snapshot_supply=raw.snapshot_supply,
            quality_weight_bps=raw.quality_weight_bps,
            prospective_shares=raw.shares,
            evaluation=evaluation,
        )

    def proposals(self, dataset_id: int, status: str | None = None) -> list[ProposalInfo]:
        self._check_dataset(dataset_id)
        ids = [
            int(e.args["proposal_id"])
            for e in self.contract.events("ProposalCreated", dataset_id=dataset_id)
        ]
        out = [self.proposal(i) for i in ids]
        return [p for p in out if status is None or p.status == status]

    def load_proposal_examples(self, proposal_id: int) -> Examples:
        """A proposal's examples, each checked against the root the chain recorded."""
        p = self.proposal(proposal_id)
        return self._fetch(p.data_cid, p.manifest_root, p.dataset_id, f"proposal {proposal_id}")

    def vote(self, proposal_id: int, support: bool) -> Receipt:
        return self._on_proposal(proposal_id, lambda pid: self.contract.vote(pid, support))

    def reclaim_deposit(self, proposal_id: int) -> Wei:
        """Take back a settled proposal's deposit (accepted or scored positive); returns it."""
        receipt = self._on_proposal(proposal_id, self.contract.reclaim_deposit)
        return Wei(sum(int(e.args["amount"]) for e in receipt.events if e.name == "DepositSettled"))

    def transfer_initiator(self, dataset_id: int, new_initiator: str) -> Receipt:
        """Start handing a dataset over; ``new_initiator`` completes it with ``accept_initiator``."""
        self._check_dataset(dataset_id)
        if not is_address(new_initiator):
            raise InvalidArgument(f"{new_initiator!r} is not an Ethereum address")
        return self.contract.transfer_initiator(int(dataset_id), to_checksum_address(new_initiator))

    def accept_initiator(self, dataset_id: int) -> Receipt:
        """Become the initiator of a dataset handed over to this account."""
        self._check_dataset(dataset_id)
        return self.contract.accept_initiator(int(dataset_id))

    # --- evaluation --------------------------------------------------------------------

    def evaluation(self, proposal_id: int) -> Evaluation | None:
        """A proposal's evaluation, or None while no evaluator has committed."""
        ev = self.contract.evaluation(int(proposal_id))
        if ev.commits == 0:
            return None
        return Evaluation(ev.commits, ev.reveals, int(ev.score), ev.quality_weight_bps)

    def scorecard(self, proposal_id: int, evaluator: str | None = None) -> dict[str, object]:
        """One evaluator's part: committed, revealed (a commitment without a reveal once voting
        opens is a missed reveal), score, fee collected."""
        who = to_checksum_address(evaluator) if evaluator else self.address
        card = self.contract.scorecard(int(proposal_id), who)
        return {
            "evaluator": who,
            "committed": card.committed,
            "revealed": card.revealed,
            "score_bps": int(card.score),
            "collected": card.collected,
        }

    def _sealed_path(self, proposal_id: int) -> Path:
        return (
            self.data_dir / "sealed-scores" / str(self.gateway.chain_id)
            / f"{int(proposal_id)}-{self.address}.json"
        )  # fmt: skip

    def sealed_score(self, proposal_id: int) -> SealedScore | None:
        """This account's committed score for a proposal, as kept locally (None if none)."""
        path = self._sealed_path(proposal_id)
        if not path.is_file():
            return None
        fields = json.loads(path.read_text())
        fields["attachments"] = tuple(fields.get("attachments", ()))
        return SealedScore(**fields)

    def _withheld_dir(self, proposal_id: int) -> Path:
        return self._sealed_path(proposal_id).with_suffix(".blobs")

    def commit_evaluation(
        self,
        proposal_id: int,
        score_bps: int,
        report: bytes,
        attachments: Sequence[bytes] = (),
    ) -> SealedScore:
        """Seal a score: commit on-chain to (score, report CID, a fresh secret salt) and keep
        the opening locally (``<data_dir>/sealed-scores``) for the reveal.

        The report and its ``attachments`` (a plot) would give the score away, and this data
        dir's store may be served to others (``databright store serve``); so they are kept
        beside the opening, owner-only, and enter the store only at the reveal.
        """
        self._check_proposal(proposal_id)
        if not -(2**31) <= int(score_bps) < 2**31:
            raise InvalidArgument(f"a score must fit 32 signed bits, not {score_bps} bps")
        withheld = self._withheld_dir(proposal_id)
        cids = [self._withhold(withheld, blob) for blob in (report, *attachments)]
        sealed = SealedScore(
            int(proposal_id),
            self.address,
            int(score_bps),
            cids[0],
            secrets.token_bytes(32).hex(),
            tuple(cids[1:]),
        )
        # Kept before it is sent: a commitment whose opening is lost could never be revealed.
        # Owner-only: the salt and score are secret until the reveal.
        atomic_write(self._sealed_path(proposal_id), json.dumps(asdict(sealed)), mode=0o600)
        self._on_proposal(
            proposal_id, lambda pid: self.contract.commit_evaluation(pid, sealed.commitment())
        )
        return sealed

    @staticmethod
    def content_address(blob: bytes) -> str:
        """The CID a store gives ``blob``, without storing it."""
        return cid_for_bytes(blob)

    @staticmethod
    def _withhold(directory: Path, blob: bytes) -> str:
        cid = Market.content_address(blob)  # the address the store will give it at the reveal
        atomic_write(directory / cid, blob, mode=0o600)
        return cid

    def withheld_blob(self, proposal_id: int, cid: str) -> bytes | None:
        """A report or attachment this account sealed and has not revealed yet (None if not)."""
        path = self._withheld_dir(proposal_id) / cid
        return path.read_bytes() if path.is_file() else None

    def reveal_evaluation(self, proposal_id: int) -> SealedScore:
        """Reveal this account's committed score (during the reveal phase); the report and its
        attachments then enter the store, for anyone who reads the reveal to fetch."""
        sealed = self.sealed_score(proposal_id)
        if sealed is None:
            raise NotFound(
                f"no committed score for proposal {proposal_id} by {self.address} in "
                f"{self.data_dir}; commit from this data dir first"
            )
        self._on_proposal(
            proposal_id,
            lambda pid: self.contract.reveal_evaluation(
                pid, sealed.score_bps, cid_to_digest(sealed.report_cid), bytes.fromhex(sealed.salt)
            ),
        )
        # Only once the reveal is mined: a refused reveal (too early) must not publish them.
        for cid in (sealed.report_cid, *sealed.attachments):
            blob = self.withheld_blob(proposal_id, cid)
            if blob is not None:
                self.store.put(blob)
        return sealed

    def collect_evaluation_fee(self, proposal_id: int) -> Wei:
        """Collect this account's part of a proposal's evaluation fee once voting opens (an
        evaluator that revealed, or the proposer when nobody did); returns the amount."""
        receipt = self._on_proposal(proposal_id, self.contract.collect_evaluation_fee)
        return Wei(
            sum(int(e.args["amount"]) for e in receipt.events if e.name == "EvaluationFeePaid")
        )

    def finalize(self, proposal_id: int) -> ProposalInfo:
        self._on_proposal(proposal_id, self.contract.finalize)
        return self.proposal(proposal_id)

    # --- registry and data ---------------------------------------------------------------

    def registry(
        self, dataset_id: int, start: int = 0, count: int | None = None
    ) -> list[RegistryEntry]:
        self._check_dataset(dataset_id)
        length = self.contract.registry_length(dataset_id)
        end = length if count is None else min(length, start + count)
        out: list[RegistryEntry] = []
        page = DataMarketConstants.MAX_PAGE  # the most one `registry` call returns
        for s in range(start, end, page):
            for e in self.contract.registry(dataset_id, s, min(page, end - s)):
                out.append(
                    RegistryEntry(
                        e.index,
                        ProposalId(e.proposal_id),
                        Address(to_checksum_address(e.contributor)),
                        self.cid_of(e.data_cid_digest),
                        bytes(e.manifest_root),
                        e.examples,
                        e.shares,
                        e.block_number,
                    )
                )
        return out

    def _fetch(self, data_cid: str, root: bytes, dataset_id: int, what: str) -> Examples:
        schema = self.schema(dataset_id)
        try:
            blob = self.store.get(data_cid)
        except BlobNotFound as exc:  # name what the blob was, for the one who reads the error
            raise BlobNotFound(f"{what}: {exc}", cid=exc.cid) from exc
        except BlobCorrupt as exc:
            raise BlobCorrupt(f"{what}: {exc}", cid=exc.cid) from exc
        X, y = decode_examples(blob, schema, name=f"{what} data {data_cid}")
        hashes = example_hashes(X, y)
        if Manifest(schema.cid(), data_cid, hashes).merkle_root != bytes(root):
            raise ManifestMismatch(
                f"{what}: the data stored under {data_cid} does not match the Merkle root on "
                "chain; the store holds other data, refetch it from its contributor"
            )
        return Examples(X, y, hashes, source=what)

    def download(self, dataset_id: int) -> tuple[Examples, np.ndarray]:
        """Every accepted example and, per example, the registry index it came from; each
        entry is fetched from the blob sources if need be and verified against the chain."""
        examples, origin, missing = self.download_available(dataset_id)
        if missing:
            raise missing[0]
        return examples, origin

    def download_available(
        self, dataset_id: int
    ) -> tuple[Examples, np.ndarray, list[StorageError]]:
        """Like :meth:`download`, but an entry that no source delivers is left out and its
        error returned (one per missing entry), so that one withheld blob does not stop work
        on the rest of the dataset. At least one entry must be available."""
        parts, origin, missing = [], [], []
        for entry in self.registry(dataset_id):
            what = f"registry entry {entry.index} of dataset {dataset_id}"
            try:
                ex = self._fetch(entry.data_cid, entry.manifest_root, dataset_id, what)
            except StorageError as exc:
                missing.append(exc)
                continue
            parts.append(ex)
            origin.append(np.full(len(ex), entry.index))
        if not parts:
            raise missing[0]
        X = np.concatenate([p.X for p in parts])
        y = np.concatenate([p.y for p in parts])
        hashes = np.concatenate([p.hashes for p in parts])
        examples = Examples(X, y, hashes, source=f"dataset {dataset_id}")
        return examples, np.concatenate(origin), missing

    # --- shares and dividends ------------------------------------------------------------

    def shares_of(self, dataset_id: int, account: str | None = None) -> int:
        who = to_checksum_address(account) if account else self.address
        return self.token(dataset_id).balanceOf(who)

    def shareholders(self, dataset_id: int) -> list[Shareholder]:
        token = self.token(dataset_id)
        holders: set[str] = set()
        for e in token.events("Transfer"):
            holders.add(e.args["receiver"])
        out = []
        for h in sorted(holders):
            bal = token.balanceOf(h)
            owed = self.claimable(dataset_id, h)
            if bal or owed:
                out.append(Shareholder(Address(to_checksum_address(h)), bal, owed))
        return sorted(out, key=lambda s: -s.shares)

    def pay(self, dataset_id: int, amount: Wei) -> Receipt:
        """Pay ETH to a dataset's shareholders, pro rata to their shares now."""
        if amount <= 0:
            raise InvalidArgument(f"a payment must be positive, not {amount} wei")
        return self.token(dataset_id).pay(value=int(amount))

    def claimable(self, dataset_id: int, account: str | None = None) -> Wei:
        who = to_checksum_address(account) if account else self.address
        self._check_dataset(dataset_id)
        return Wei(self.contract.claimable(dataset_id, who))

    def claim(self, dataset_id: int) -> Wei:
        """Withdraw this account's dividends from a dataset; returns the amount paid out."""
        receipt = self.token(dataset_id).transact("claim")
        return Wei(
            sum(int(e.args["amount"]) for e in receipt.events if e.name == "DividendClaimed")
        )
