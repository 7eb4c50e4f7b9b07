# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma nonreentrancy off
# pragma optimize codesize
# pragma experimental-codegen
"""
@title DataBright Data Market
@custom:contract-name DataMarket
@license Apache-2.0
@notice Datasets, proposals, share-weighted votes, evaluations and the
        registry of accepted data. Each dataset has its own ERC-20 share
        token, a `ShareToken` deployed from a blueprint, which also keeps
        the past balances that weigh votes and pays the dividends.

        Content addresses. Every CID is stored as `bytes32`: the sha2-256
        digest of a CIDv1 (raw or dag codec agreed off-chain). The SDK
        rebuilds the CID string from the digest; nothing else of the CID is
        kept on-chain. Manifest roots are the Merkle roots of the per-example
        hashes of a proposal's manifest.

        Ids. Datasets are numbered from 1. A proposal id is
        `(dataset_id << 32) | n`, where `n` is its number in the dataset
        (1, 2, ...); `n == 0` is the dataset's initial data, registered at
        creation as registry entry 0.

        Proposals. Anyone may propose, shares or not, and the proposer is the
        contributor who receives the shares. A proposal is bound to its
        contributor in two steps: first `commit_proposal` with
        `keccak256(abi_encode(contributor, dataset_id, data_cid_digest,
        manifest_root, examples, metadata_cid_digest))`, then, in a later
        block, `propose` with those terms, which consumes the commitment.
        Whoever copies a `propose` from the mempool (or a root from the
        chain) has no earlier commitment, so the copy loses; and the first
        contributor to propose a manifest root owns it in every dataset for
        good, so nobody else can replay an accepted root into another
        dataset, re-propose a freed one, or squat a root with junk data. Why
        commit-reveal and not only a root key bound to the sender: with
        sender-bound keys a front-runner's copy still lands first and the
        real proposal looks like the copy; the commitment hides the root
        until it is too late to copy it, for one extra 22k-gas write. A manifest root already in the
        dataset's registry or in a pending proposal is refused; a rejected or
        expired proposal frees its root.

        Votes. Vote weights are the voters' share balances at the end of the
        block before the proposal's (its snapshot block; see `ShareToken`,
        as OpenZeppelin's `getPastVotes`), weighed against the share supply
        at the end of that block. Shares borrowed in the proposal's block or
        later, a flash loan above all, weigh nothing, and the proposer cannot
        pick a moment inside a block. No delegation step, one vote per
        address, no vote with zero weight, no vote after the deadline.

        Evaluation. A proposal's life has three phases: commit, reveal (the
        dataset's `commit_period` and `reveal_period`; both 0 for a dataset
        without evaluation) and voting. Votes are cast, and outcomes
        settled, only once the evaluation is over, so the score is fixed
        before any vote counts and cannot be bent afterwards. Each evaluator
        of the dataset (an account holding `evaluator_role(dataset_id)`),
        except the proposal's contributor, may commit to one signed score in
        basis points of quality weight during the commit phase (see
        `sealed_scores` module), and reveal it with its report's digest during
        the reveal phase. The proposal's score is the median of the revealed
        scores; a commitment not revealed is visible (`scorecard`, and no
        `EvaluationRevealed`) and costs its evaluator its share of the
        evaluation fee. The quality weight is
        `min(score, quality_cap_bps) / 10_000`; without a revealed score it
        is 1.0. An accepted proposal mints `examples * weight` shares
        (10**18 units per example at weight 1). Evaluators are paid for
        their work: the proposer pays the dataset's `evaluation_fee` with
        `propose`, split equally among the evaluators who revealed (each
        collects its share with `collect_evaluation_fee`), or returned to
        the proposer if nobody revealed.
        Zero or negative scores: such a proposal gets weight 0 and mints no
        shares, but voters may still accept it and it is then registered.
        Evaluators size rewards, voters decide what enters the dataset: a
        negative score cannot veto data (a faulty or hostile evaluator could
        otherwise censor contributions), and voters see the score (events and
        `evaluation`) before voting opens. The cap is fixed at creation and
        at most `MAX_QUALITY_CAP_BPS`, so no evaluator can mint without limit.

        Finalization. Anyone may finalize once the deadline has passed, or
        earlier as soon as the outcome can no longer change, but never in
        the proposal's own block and never before the dataset's minimum
        voting period has passed. With `S` the
        snapshot supply, `yes`/`no` the weights cast, quorum `q` and
        threshold `t` in basis points: accepted iff
        `(yes + no) * 10_000 >= q * S` and `yes * 10_000 >= t * (yes + no)`;
        expired if the quorum is missed; rejected otherwise. Early: accepted
        when the quorum is met and `yes * 10_000 >= t * S` (no remaining
        vote can undo it), rejected when the quorum is met and
        `(S - no) * 10_000 < t * S` (even all remaining weight voting yes
        cannot reach the threshold): an early status is always the one the
        deadline would give. An
        acceptance that would push the share supply past `MAX_SUPPLY` is
        rejected instead, so that finalization can never be blocked.
        Accepted proposals become immutable registry entries.

        Deposits. A dataset may ask a deposit with every proposal (on top of
        the evaluation fee). It is returned (`reclaim_deposit`) when the
        proposal is accepted or its median score is positive, and forfeited
        to the shareholders, as a dividend, when it is settled otherwise: a
        spam or junk proposal costs its proposer.

        Roles. Roles are snekmate `access_control` roles scoped per dataset:
        `initiator_role(id)` (held by exactly one account, the initiator,
        admin of itself) is the admin of `evaluator_role(id)`, so the
        initiator appoints and removes evaluators. The initiator role moves
        only by a two-step hand-over (`transfer_initiator`, then
        `accept_initiator` by the new initiator): it cannot be granted,
        revoked or renounced, so a dataset always has one initiator and no
        co-initiator exists to revoke it. `set_role_admin` is not exposed:
        evaluator appointment stays with the initiator. The deployer's
        `DEFAULT_ADMIN_ROLE` is renounced in the constructor: the market has
        no owner and no account can touch another dataset's roles.

        Modules. The market composes three modules of `modules/`:
        `packing` (the layout of proposal ids and of every packed storage
        word), `tally` (ballot boxes, ballots and the outcome rule) and
        `data_registry` (the append-only registry of accepted data). Datasets,
        proposal terms, manifest roots and evaluations are kept here.

        Storage is packed by hand (Vyper does not pack): see `packing`.
        Only what must be checked on-chain or served by the views is
        stored; the rest is in events.
"""


# @dev We import and implement the `IERC165` interface,
# which is a built-in interface of the Vyper compiler.
from ethereum.ercs import IERC165
implements: IERC165


# @dev We import and implement snekmate's `IAccessControl`.
from snekmate.auth.interfaces import IAccessControl
implements: IAccessControl


# @dev The share token interface.
from interfaces import IShareToken


# @dev We import snekmate's stateless `create` module to
# recompute token addresses instead of loading them.
from snekmate.utils import create


# @dev We import and initialise snekmate's `access_control`
# module for the per-dataset initiator and evaluator roles.
from snekmate.auth import access_control
initializes: access_control


# @dev We export the read side of `access_control`; `grantRole`,
# `revokeRole` and `renounceRole` are redefined below (the
# initiator role moves only by hand-over) and `set_role_admin`
# is not exposed.
exports: (
    access_control.hasRole,
    access_control.getRoleAdmin,
    access_control.supportsInterface,
    access_control.DEFAULT_ADMIN_ROLE,
)


# @dev We import the stateless `packing` module for the
# layouts of ids and packed storage words.
from modules import packing


# @dev We import and initialise the `tally` module for the
# ballot boxes, ballots and outcomes of proposals.
from modules import tally
initializes: tally


# @dev We import and initialise the `data_registry` module
# for the append-only registry of accepted data.
from modules import data_registry
initializes: data_registry


# @dev We import and initialise the `sealed_scores` module for
# the evaluators' committed and revealed scores.
from modules import sealed_scores
initializes: sealed_scores


# @dev Proposal statuses (see `tally`).
STATUS_NONE: public(constant(uint8)) = tally.STATUS_NONE
STATUS_PENDING: public(constant(uint8)) = tally.STATUS_PENDING
STATUS_ACCEPTED: public(constant(uint8)) = tally.STATUS_ACCEPTED
STATUS_REJECTED: public(constant(uint8)) = tally.STATUS_REJECTED
STATUS_EXPIRED: public(constant(uint8)) = tally.STATUS_EXPIRED


# @dev Basis points in one (100%).
BPS: public(constant(uint256)) = tally.BPS


# @dev Share units per example at quality weight 1.0.
SHARE_UNIT: public(constant(uint256)) = 10**18


# @dev The largest quality weight cap (100x).
MAX_QUALITY_CAP_BPS: public(constant(uint256)) = 1_000_000


# @dev The largest number of examples in one proposal.
MAX_EXAMPLES: public(constant(uint256)) = 2**32 - 1


# @dev The longest voting period in seconds.
MAX_VOTING_PERIOD: public(constant(uint256)) = 2**32 - 1


# @dev The largest share supply of a dataset (as `ShareToken`).
MAX_SUPPLY: public(constant(uint256)) = 2**100 - 1


# @dev The most evaluators given at creation, and the most
# commitments per proposal.
MAX_EVALUATORS: public(constant(uint256)) = 16


# @dev The most datasets one market holds: share token symbols
# are unique up to it.
MAX_DATASETS: public(constant(uint256)) = 99_999


# @dev The largest evaluation fee or deposit in wei (96 bits).
MAX_FEE: public(constant(uint256)) = 2**96 - 1


# @dev The range of a score (32 signed bits).
MIN_SCORE: public(constant(int256)) = -(2**31)
MAX_SCORE: public(constant(int256)) = 2**31 - 1


# @dev The most registry entries returned by one `registry` page.
MAX_PAGE: public(constant(uint256)) = 64


# @dev The base of the per-dataset initiator roles.
INITIATOR_ROLE: public(constant(bytes32)) = keccak256("DATABRIGHT_INITIATOR_ROLE")


# @dev The base of the per-dataset evaluator roles.
EVALUATOR_ROLE: public(constant(bytes32)) = keccak256("DATABRIGHT_EVALUATOR_ROLE")


# @dev Value of `registry_index` in `ProposalFinalized` when the
# proposal was not registered.
NOT_REGISTERED: public(constant(uint256)) = max_value(uint256)


# @dev Share units per example per basis point of weight.
_UNITS_PER_BPS: constant(uint256) = SHARE_UNIT // BPS


# @dev The `ShareToken` blueprint (EIP-5202) that every
# dataset's token is created from.
share_token_blueprint: public(immutable(address))


# @dev The number of datasets; ids run from 1 to it.
dataset_count: public(uint256)


# @dev Dataset id => packed dataset word (token, voting period,
# quorum, threshold, registry length; see `packing`).
_datasets: HashMap[uint256, uint256]


# @dev Dataset id => packed info word (initiator, quality cap,
# minimum voting period, proposal count; see `packing`).
_dataset_info: HashMap[uint256, uint256]


# @dev Dataset id => metadata (schema) CID digest.
_dataset_metadata: HashMap[uint256, bytes32]


# @dev Proposal id => packed terms (contributor, examples,
# registry length at creation, quality weight; see `packing`).
_terms: HashMap[uint256, uint256]


# @dev Proposal id => manifest root.
_manifest_roots: HashMap[uint256, bytes32]


# @dev Dataset id => manifest root => data CID digest of the
# pending or accepted proposal holding the root (empty: free).
_root_data: HashMap[uint256, HashMap[bytes32, bytes32]]


# @dev Dataset id => packed rules word (commit and reveal
# periods, evaluation fee, deposit; see `packing`).
_dataset_rules: HashMap[uint256, uint256]


# @dev Proposal commitment => block in which it was made
# (0: none or consumed).
proposal_commitments: public(HashMap[bytes32, uint256])


# @dev Manifest root => the contributor who first proposed it,
# the only one who may propose it again, in any dataset.
root_owner: public(HashMap[bytes32, address])


# @dev Dataset id => the account the initiator hands the
# dataset over to, until it accepts (empty: none).
pending_initiator: public(HashMap[uint256, address])


# @dev A dataset as returned by `dataset`.
struct Dataset:
    token: address
    initiator: address
    metadata_cid_digest: bytes32
    voting_period: uint256
    min_voting_period: uint256
    quorum_bps: uint256
    threshold_bps: uint256
    quality_cap_bps: uint256
    commit_period: uint256
    reveal_period: uint256
    evaluation_fee: uint256
    deposit: uint256
    registry_length: uint256
    proposal_count: uint256
    total_shares: uint256


# @dev A proposal as returned by `proposal`. `data_cid_digest`
# is empty once a proposal is rejected or expired (it stays in
# `ProposalCreated`); `shares` is what acceptance mints (or
# minted) at the current quality weight. Votes weigh balances
# at the end of `snapshot_block`; an outcome final before the
# deadline is settled from `settle_from` on. Evaluators commit
# until `commit_end` and reveal until `voting_opens`.
struct Proposal:
    dataset_id: uint256
    sequence: uint256
    snapshot_block: uint256
    commit_end: uint256
    voting_opens: uint256
    settle_from: uint256
    contributor: address
    data_cid_digest: bytes32
    manifest_root: bytes32
    examples: uint256
    deadline: uint256
    status: uint8
    yes_votes: uint256
    no_votes: uint256
    snapshot_supply: uint256
    quality_weight_bps: uint256
    shares: uint256


# @dev A proposal's evaluation as returned by `evaluation`:
# the counts of commitments and reveals, the median of the
# revealed scores (0 if none) and the quality weight it sets.
struct Evaluation:
    commits: uint256
    reveals: uint256
    score: int256
    quality_weight_bps: uint256


# @dev One evaluator's part as returned by `scorecard`.
struct Scorecard:
    committed: bool
    revealed: bool
    score: int256
    collected: bool


# @dev A vote as returned by `ballot`.
struct Ballot:
    voted: bool
    support: bool
    weight: uint256


# @dev A registry entry as returned by `registry_entry` and
# `registry`.
struct RegistryEntry:
    index: uint256
    proposal_id: uint256
    contributor: address
    data_cid_digest: bytes32
    manifest_root: bytes32
    examples: uint256
    shares: uint256
    block_number: uint256


# @dev Emitted when a dataset is created.
event DatasetCreated:
    dataset_id: indexed(uint256)
    initiator: indexed(address)
    token: indexed(address)
    name: String[25]
    metadata_cid_digest: bytes32
    voting_period: uint256
    min_voting_period: uint256
    quorum_bps: uint256
    threshold_bps: uint256
    quality_cap_bps: uint256
    evaluators: DynArray[address, MAX_EVALUATORS]
    commit_period: uint256
    reveal_period: uint256
    evaluation_fee: uint256
    deposit: uint256


# @dev Emitted when a proposal is created (also for the initial
# data, with n = 0 in the proposal id).
event ProposalCreated:
    proposal_id: indexed(uint256)
    dataset_id: indexed(uint256)
    contributor: indexed(address)
    data_cid_digest: bytes32
    manifest_root: bytes32
    examples: uint256
    metadata_cid_digest: bytes32
    deadline: uint256


# @dev Emitted for each vote.
event VoteCast:
    proposal_id: indexed(uint256)
    voter: indexed(address)
    support: bool
    weight: uint256


# @dev Emitted when an evaluator commits to a score.
event EvaluationCommitted:
    proposal_id: indexed(uint256)
    evaluator: indexed(address)
    commitment: bytes32


# @dev Emitted when an evaluator reveals its score.
event EvaluationRevealed:
    proposal_id: indexed(uint256)
    evaluator: indexed(address)
    score: int256
    report_cid_digest: bytes32


# @dev Emitted when a contributor commits to a proposal.
event ProposalCommitted:
    commitment: indexed(bytes32)
    contributor: indexed(address)


# @dev Emitted when a proposal's deposit is returned to its
# contributor (`forfeited` false) or paid to the shareholders.
event DepositSettled:
    proposal_id: indexed(uint256)
    contributor: indexed(address)
    amount: uint256
    forfeited: bool


# @dev Emitted when an initiator starts handing a dataset over.
event InitiatorTransferStarted:
    dataset_id: indexed(uint256)
    initiator: indexed(address)
    new_initiator: indexed(address)


# @dev Emitted when the new initiator accepts the hand-over.
event InitiatorTransferred:
    dataset_id: indexed(uint256)
    previous_initiator: indexed(address)
    new_initiator: indexed(address)


# @dev Emitted when an evaluation fee share (or, with no
# reveal, the whole fee back to the proposer) is paid out.
event EvaluationFeePaid:
    proposal_id: indexed(uint256)
    account: indexed(address)
    amount: uint256


# @dev Emitted when a proposal is finalized (and for the initial
# data at creation). `registry_index` is `NOT_REGISTERED` unless
# the status is accepted.
event ProposalFinalized:
    proposal_id: indexed(uint256)
    dataset_id: indexed(uint256)
    status: uint8
    registry_index: uint256
    shares: uint256
    yes_votes: uint256
    no_votes: uint256


@deploy
def __init__(share_token_blueprint_: address):
    """
    @dev Stores the `ShareToken` blueprint and renounces the
         deployer's `DEFAULT_ADMIN_ROLE`, so that the market has
         no administrator.
    @param share_token_blueprint_ The 20-byte address of the
           `ShareToken` blueprint.
    """
    assert share_token_blueprint_.is_contract, "data_market: blueprint is not a contract"
    access_control.__init__()
    access_control._revoke_role(access_control.DEFAULT_ADMIN_ROLE, msg.sender)
    share_token_blueprint = share_token_blueprint_


@external
def create_dataset(
    name: String[25],
    metadata_cid_digest: bytes32,
    data_cid_digest: bytes32,
    manifest_root: bytes32,
    examples: uint256,
    voting_period: uint256,
    min_voting_period: uint256,
    quorum_bps: uint256,
    threshold_bps: uint256,
    evaluators: DynArray[address, MAX_EVALUATORS],
    quality_cap_bps: uint256,
    commit_period: uint256,
    reveal_period: uint256,
    evaluation_fee: uint256,
    deposit: uint256,
) -> uint256:
    """
    @dev Creates a dataset and its share token, registers the
         initial data as registry entry 0 and mints one share
         per initial example to the caller (the initiator).
    @notice The token's name is `name`; its symbol is derived
            from the id (see `ShareToken`), unique for every id up
            to `MAX_DATASETS`.
    @param name The maximum 25-character dataset name.
    @param metadata_cid_digest The 32-byte CID digest of the
           dataset's metadata (its schema).
    @param data_cid_digest The 32-byte CID digest of the
           initial data.
    @param manifest_root The 32-byte Merkle root of the initial
           data's manifest.
    @param examples The number of initial examples (at least 1).
    @param voting_period The voting period in seconds.
    @param min_voting_period The seconds a proposal stays open
           even when its outcome is final earlier (at most
           `voting_period`): the time holders have to see it.
    @param quorum_bps The quorum in basis points of the snapshot
           supply (1 to 10_000).
    @param threshold_bps The approval threshold in basis points
           of the votes cast (1 to 10_000).
    @param evaluators The addresses granted the evaluator role.
    @param quality_cap_bps The cap on the quality weight in basis
           points (10_000 to `MAX_QUALITY_CAP_BPS`).
    @param commit_period The seconds evaluators may commit to a
           score after a proposal (0: no evaluation).
    @param reveal_period The seconds evaluators may then reveal
           (0 exactly when `commit_period` is 0).
    @param evaluation_fee The wei a proposer pays the evaluators
           with each proposal (at most `MAX_FEE`; 0 without
           evaluation).
    @param deposit The wei a proposer deposits with each proposal
           (at most `MAX_FEE`), returned if it is accepted or scored
           positive, else paid to the shareholders.
    @return uint256 The id of the new dataset.
    """
    assert len(name) != 0, "data_market: empty name"
    assert metadata_cid_digest != empty(bytes32), "data_market: empty digest"
    assert data_cid_digest != empty(bytes32), "data_market: empty digest"
    assert manifest_root != empty(bytes32), "data_market: empty digest"
    assert examples != 0 and examples <= MAX_EXAMPLES, "data_market: invalid examples"
    assert voting_period != 0 and voting_period <= MAX_VOTING_PERIOD, "data_market: invalid voting period"
    assert min_voting_period <= voting_period, "data_market: invalid min voting period"
    assert quorum_bps != 0 and quorum_bps <= BPS, "data_market: invalid quorum"
    assert threshold_bps != 0 and threshold_bps <= BPS, "data_market: invalid threshold"
    assert quality_cap_bps >= BPS and quality_cap_bps <= MAX_QUALITY_CAP_BPS, "data_market: invalid quality cap"
    assert (commit_period == 0) == (reveal_period == 0), "data_market: invalid evaluation periods"
    assert commit_period <= MAX_VOTING_PERIOD and reveal_period <= MAX_VOTING_PERIOD, "data_market: invalid evaluation periods"
    assert evaluation_fee <= MAX_FEE and (evaluation_fee == 0 or commit_period != 0), "data_market: invalid evaluation fee"
    assert deposit <= MAX_FEE, "data_market: invalid deposit"

    dataset_id: uint256 = self.dataset_count + 1
    # Token symbols are unique up to here (see `ShareToken`).
    assert dataset_id <= MAX_DATASETS, "data_market: too many datasets"
    self.dataset_count = dataset_id
    token: address = create_from_blueprint(share_token_blueprint, name, dataset_id)
    # The market creates nothing else, and its nonce started at 1
    # (EIP-161): dataset `id`'s token is its `id`-th creation.
    assert token == create._compute_create_address(self, dataset_id), "data_market: token address mismatch"

    initiator_role: bytes32 = self._dataset_role(INITIATOR_ROLE, dataset_id)
    evaluator_role: bytes32 = self._dataset_role(EVALUATOR_ROLE, dataset_id)
    access_control._set_role_admin(initiator_role, initiator_role)
    access_control._set_role_admin(evaluator_role, initiator_role)
    access_control._grant_role(initiator_role, msg.sender)
    for evaluator: address in evaluators:
        assert evaluator != empty(address), "data_market: zero evaluator"
        access_control._grant_role(evaluator_role, evaluator)

    shares: uint256 = examples * SHARE_UNIT
    self._datasets[dataset_id] = packing._pack_dataset(token, voting_period, quorum_bps, threshold_bps, 1)
    self._dataset_info[dataset_id] = packing._pack_info(msg.sender, quality_cap_bps, min_voting_period)
    self._dataset_metadata[dataset_id] = metadata_cid_digest
    if commit_period != 0 or deposit != 0:
        self._dataset_rules[dataset_id] = packing._pack_rules(commit_period, reveal_period, evaluation_fee, deposit)

    # The initial data is proposal n = 0, accepted at creation.
    proposal_id: uint256 = packing._proposal_id(dataset_id, 0)
    tally._open(proposal_id, block.timestamp, STATUS_ACCEPTED, 0)
    self._terms[proposal_id] = packing._pack_terms(msg.sender, examples, 0, BPS)
    self._manifest_roots[proposal_id] = manifest_root
    self._root_data[dataset_id][manifest_root] = data_cid_digest
    data_registry._append(dataset_id, 0, 0, shares, 0)

    log DatasetCreated(
        dataset_id=dataset_id,
        initiator=msg.sender,
        token=token,
        name=name,
        metadata_cid_digest=metadata_cid_digest,
        voting_period=voting_period,
        min_voting_period=min_voting_period,
        quorum_bps=quorum_bps,
        threshold_bps=threshold_bps,
        quality_cap_bps=quality_cap_bps,
        evaluators=evaluators,
        commit_period=commit_period,
        reveal_period=reveal_period,
        evaluation_fee=evaluation_fee,
        deposit=deposit,
    )
    log ProposalCreated(
        proposal_id=proposal_id,
        dataset_id=dataset_id,
        contributor=msg.sender,
        data_cid_digest=data_cid_digest,
        manifest_root=manifest_root,
        examples=examples,
        metadata_cid_digest=metadata_cid_digest,
        deadline=block.timestamp,
    )
    log ProposalFinalized(
        proposal_id=proposal_id,
        dataset_id=dataset_id,
        status=STATUS_ACCEPTED,
        registry_index=0,
        shares=shares,
        yes_votes=0,
        no_votes=0,
    )
    extcall IShareToken(token).mint(msg.sender, shares)
    return dataset_id


@external
def commit_proposal(commitment: bytes32):
    """
    @dev Commits the caller to the terms of a proposal it will
         make in a later block (see `proposal_commitment`).
    @param commitment The 32-byte commitment.
    """
    assert commitment != empty(bytes32), "data_market: empty commitment"
    assert self.proposal_commitments[commitment] == 0, "data_market: already committed"
    self.proposal_commitments[commitment] = block.number
    log ProposalCommitted(commitment=commitment, contributor=msg.sender)


@external
@pure
def proposal_commitment(
    contributor: address,
    dataset_id: uint256,
    data_cid_digest: bytes32,
    manifest_root: bytes32,
    examples: uint256,
    metadata_cid_digest: bytes32,
) -> bytes32:
    """
    @dev Returns the commitment `propose` consumes.
    @notice Compute it off-chain or with a call: the terms stay
            hidden until `propose`.
    @param contributor The 20-byte contributor (the proposer).
    @param dataset_id The 32-byte dataset id.
    @param data_cid_digest The 32-byte CID digest of the data.
    @param manifest_root The 32-byte Merkle root of the manifest.
    @param examples The number of examples.
    @param metadata_cid_digest The 32-byte CID digest of the
           proposal's metadata.
    @return bytes32 The 32-byte commitment.
    """
    return keccak256(
        abi_encode(contributor, dataset_id, data_cid_digest, manifest_root, examples, metadata_cid_digest)
    )


@external
@payable
def propose(
    dataset_id: uint256,
    data_cid_digest: bytes32,
    manifest_root: bytes32,
    examples: uint256,
    metadata_cid_digest: bytes32,
) -> uint256:
    """
    @dev Proposes `examples` examples for `dataset_id`; the caller
         is the contributor and pays the dataset's evaluation fee
         plus its deposit (`msg.value`). Opens the evaluation phases, then voting for
         the dataset's period, weighed by the balances at the end of
         the previous block.
    @notice Anyone may propose, holding shares or not, from the
            block after the dataset's creation on, with a commitment
            made in an earlier block (`commit_proposal`).
    @param dataset_id The 32-byte dataset id.
    @param data_cid_digest The 32-byte CID digest of the data.
    @param manifest_root The 32-byte Merkle root of the manifest.
    @param examples The number of examples (1 to `MAX_EXAMPLES`).
    @param metadata_cid_digest The 32-byte CID digest of the
           proposal's metadata (kept in the event only).
    @return uint256 The proposal id.
    """
    dataset: uint256 = self._datasets[dataset_id]
    assert dataset != 0, "data_market: unknown dataset"
    assert data_cid_digest != empty(bytes32), "data_market: empty digest"
    assert manifest_root != empty(bytes32), "data_market: empty digest"
    assert examples != 0 and examples <= MAX_EXAMPLES, "data_market: invalid examples"
    assert self._root_data[dataset_id][manifest_root] == empty(bytes32), "data_market: manifest root taken"
    commitment: bytes32 = keccak256(
        abi_encode(msg.sender, dataset_id, data_cid_digest, manifest_root, examples, metadata_cid_digest)
    )
    committed: uint256 = self.proposal_commitments[commitment]
    assert committed != 0 and committed < block.number, "data_market: no earlier commitment"
    self.proposal_commitments[commitment] = 0
    owner: address = self.root_owner[manifest_root]
    if owner == empty(address):
        self.root_owner[manifest_root] = msg.sender
    else:
        assert owner == msg.sender, "data_market: root of another contributor"

    info: uint256 = self._dataset_info[dataset_id]
    sequence: uint256 = packing._proposal_count(info) + 1
    assert sequence <= packing.MASK_32, "data_market: too many proposals"
    # The count occupies the top 32 bits and fits (checked above).
    self._dataset_info[dataset_id] = unsafe_add(info, 1 << packing.COUNT_SHIFT)
    proposal_id: uint256 = packing._proposal_id(dataset_id, sequence)
    rules: uint256 = self._dataset_rules[dataset_id]
    assert msg.value == ((rules >> packing.FEE_SHIFT) & packing.MASK_96) + (
        rules >> packing.DEPOSIT_SHIFT
    ), "data_market: wrong payment"
    commit_end: uint256 = block.timestamp + (rules & packing.MASK_32)
    voting_opens: uint256 = commit_end + ((rules >> packing.REVEAL_PERIOD_SHIFT) & packing.MASK_32)
    # Periods < 2**32, so the deadline fits 40 bits for millennia.
    deadline: uint256 = voting_opens + packing._voting_period(dataset)
    # Votes weigh the balances at the end of the previous block,
    # against the supply then: entries registered in this block
    # are not counted.
    tally._open(
        proposal_id,
        deadline,
        STATUS_PENDING,
        packing._pack_clock(
            block.number - 1, voting_opens + packing._min_voting_period(info), voting_opens, commit_end
        ),
    )
    length: uint256 = data_registry._length_before_block(dataset_id, packing._registry_length(dataset))
    # No shares existed at the end of the previous block.
    assert length != 0, "data_market: dataset created in this block"
    self._terms[proposal_id] = packing._pack_terms(msg.sender, examples, length, BPS)
    self._manifest_roots[proposal_id] = manifest_root
    self._root_data[dataset_id][manifest_root] = data_cid_digest
    log ProposalCreated(
        proposal_id=proposal_id,
        dataset_id=dataset_id,
        contributor=msg.sender,
        data_cid_digest=data_cid_digest,
        manifest_root=manifest_root,
        examples=examples,
        metadata_cid_digest=metadata_cid_digest,
        deadline=deadline,
    )
    return proposal_id


@external
def vote(proposal_id: uint256, support: bool):
    """
    @dev Casts the caller's vote, weighted by their shares at the
         end of the proposal's snapshot block.
    @notice One vote per address, once the evaluation is over;
            reverts before, after the deadline, for a finalized
            proposal and for zero weight.
    @param proposal_id The 32-byte proposal id.
    @param support `True` to accept, `False` to reject.
    """
    # The hot paths (`vote`, `finalize`) unpack with `packing`'s
    # offsets inline: an internal call costs ~70 gas here.
    box: uint256 = tally._box(proposal_id)
    assert box >> packing.STATUS_SHIFT == convert(STATUS_PENDING, uint256), "data_market: not pending"
    assert block.timestamp < (box >> packing.DEADLINE_SHIFT) & packing.MASK_40, "data_market: voting closed"
    clock: uint256 = tally._clocks[proposal_id]
    assert block.timestamp >= (clock >> packing.OPENS_SHIFT) & packing.MASK_40, "data_market: voting not open"
    assert tally._ballot(proposal_id, msg.sender) == 0, "data_market: already voted"

    # The token of dataset `id` is the market's `id`-th `CREATE`;
    # recomputing its address is cheaper than loading it.
    token: address = create._compute_create_address(self, proposal_id >> packing.SEQ_BITS)
    weight: uint256 = staticcall IShareToken(token).balance_at(msg.sender, clock & packing.MASK_64)
    assert weight != 0, "data_market: no voting weight"

    tally._cast(proposal_id, box, msg.sender, support, weight)
    log VoteCast(proposal_id=proposal_id, voter=msg.sender, support=support, weight=weight)


@external
def commit_evaluation(proposal_id: uint256, commitment: bytes32):
    """
    @dev Commits the caller, an evaluator of the dataset, to a
         score for a proposal: `commitment` is
         `keccak256(abi_encode(proposal_id, evaluator, score,
         report_cid_digest, salt))` (see `commitment_of`).
    @notice Only during the commit phase, once per evaluator, never
            by the proposal's contributor, at most `MAX_EVALUATORS`
            per proposal.
    @param proposal_id The 32-byte proposal id.
    @param commitment The 32-byte commitment.
    """
    box: uint256 = tally._box(proposal_id)
    assert packing._status(box) == STATUS_PENDING, "data_market: not pending"
    clock: uint256 = tally._clock(proposal_id)
    assert block.timestamp < packing._commit_end(clock), "data_market: commit phase over"
    dataset_id: uint256 = packing._dataset_of(proposal_id)
    assert access_control.hasRole[self._dataset_role(EVALUATOR_ROLE, dataset_id)][
        msg.sender
    ], "data_market: not an evaluator"
    assert msg.sender != packing._contributor(self._terms[proposal_id]), "data_market: own proposal"
    assert commitment != empty(bytes32), "data_market: empty commitment"
    assert sealed_scores._commitment(proposal_id, msg.sender) == empty(bytes32), "data_market: already committed"
    assert packing._commits(clock) < MAX_EVALUATORS, "data_market: too many evaluators"
    sealed_scores._commit(proposal_id, msg.sender, commitment)
    # Fewer than 16 commitments: the count fits its 8 bits.
    tally._clocks[proposal_id] = unsafe_add(clock, 1 << packing.COMMITS_SHIFT)
    log EvaluationCommitted(proposal_id=proposal_id, evaluator=msg.sender, commitment=commitment)


@external
def reveal_evaluation(proposal_id: uint256, score: int256, report_cid_digest: bytes32, salt: bytes32):
    """
    @dev Reveals the caller's committed score, in basis points of
         quality weight, and the CID digest of its report.
    @notice Only during the reveal phase, once, matching the
            commitment.
    @param proposal_id The 32-byte proposal id.
    @param score The signed score in basis points (`MIN_SCORE` to
           `MAX_SCORE`).
    @param report_cid_digest The 32-byte CID digest of the report.
    @param salt The 32-byte salt of the commitment.
    """
    clock: uint256 = tally._clock(proposal_id)
    assert packing._status(tally._box(proposal_id)) == STATUS_PENDING, "data_market: not pending"
    assert block.timestamp >= packing._commit_end(clock), "data_market: commit phase open"
    assert block.timestamp < packing._voting_opens(clock), "data_market: reveal phase over"
    commitment: bytes32 = sealed_scores._commitment(proposal_id, msg.sender)
    assert commitment != empty(bytes32), "data_market: no commitment"
    assert sealed_scores._scorecard(proposal_id, msg.sender) == 0, "data_market: already revealed"
    assert commitment == sealed_scores._commitment_of(
        proposal_id, msg.sender, score, report_cid_digest, salt
    ), "data_market: commitment mismatch"
    assert score >= MIN_SCORE and score <= MAX_SCORE, "data_market: invalid score"
    reveals: uint256 = packing._reveals(clock)
    sealed_scores._reveal(proposal_id, msg.sender, reveals, score)
    # Reveals <= commitments < 16: the count fits its 8 bits.
    tally._clocks[proposal_id] = unsafe_add(clock, 1 << packing.REVEALS_SHIFT)
    log EvaluationRevealed(
        proposal_id=proposal_id, evaluator=msg.sender, score=score, report_cid_digest=report_cid_digest
    )


@external
@nonreentrant
def collect_evaluation_fee(proposal_id: uint256) -> uint256:
    """
    @dev Pays the caller its part of a proposal's evaluation fee
         once the evaluation is over: an equal share to each
         evaluator that revealed (the first to reveal also gets the
         division's remainder), or the whole fee back to the
         contributor if nobody revealed.
    @notice Pull payment: effects before the ETH is sent, and
            `@nonreentrant`.
    @param proposal_id The 32-byte proposal id.
    @return uint256 The amount sent, in wei.
    """
    clock: uint256 = tally._clock(proposal_id)
    assert clock != 0, "data_market: unknown proposal"
    assert block.timestamp >= packing._voting_opens(clock), "data_market: evaluation open"
    fee: uint256 = packing._fee(self._dataset_rules[packing._dataset_of(proposal_id)])
    reveals: uint256 = packing._reveals(clock)
    amount: uint256 = 0
    if reveals == 0:
        assert msg.sender == packing._contributor(self._terms[proposal_id]), "data_market: nothing to collect"
        assert clock & packing.REFUNDED_BIT == 0, "data_market: already collected"
        tally._clocks[proposal_id] = clock | packing.REFUNDED_BIT
        amount = fee
    else:
        card: uint256 = sealed_scores._scorecard(proposal_id, msg.sender)
        assert card != 0, "data_market: nothing to collect"
        assert card & sealed_scores.COLLECTED_BIT == 0, "data_market: already collected"
        sealed_scores._mark_collected(proposal_id, msg.sender, card)
        amount = fee // reveals
        if sealed_scores._card_index(card) == 0:
            amount += fee % reveals
    assert amount != 0, "data_market: nothing to collect"
    log EvaluationFeePaid(proposal_id=proposal_id, account=msg.sender, amount=amount)
    raw_call(msg.sender, b"", value=amount)
    return amount


@external
@nonreentrant
def reclaim_deposit(proposal_id: uint256) -> uint256:
    """
    @dev Returns a settled proposal's deposit to its contributor
         when it was accepted or scored positive.
    @notice Pull payment: effects before the ETH is sent, and
            `@nonreentrant`. A forfeited deposit was paid to the
            shareholders at finalization.
    @param proposal_id The 32-byte proposal id.
    @return uint256 The amount sent, in wei.
    """
    status: uint8 = packing._status(tally._box(proposal_id))
    assert status > STATUS_PENDING, "data_market: not settled"
    terms: uint256 = self._terms[proposal_id]
    assert msg.sender == packing._contributor(terms), "data_market: not the contributor"
    clock: uint256 = tally._clock(proposal_id)
    assert clock & packing.DEPOSIT_SETTLED_BIT == 0, "data_market: deposit settled"
    dataset_id: uint256 = packing._dataset_of(proposal_id)
    deposit: uint256 = packing._deposit(self._dataset_rules[dataset_id])
    # The initial data (no clock) never paid a deposit.
    assert deposit != 0 and clock != 0, "data_market: no deposit"
    tally._clocks[proposal_id] = clock | packing.DEPOSIT_SETTLED_BIT
    log DepositSettled(proposal_id=proposal_id, contributor=msg.sender, amount=deposit, forfeited=False)
    raw_call(msg.sender, b"", value=deposit)
    return deposit


@external
def grantRole(role: bytes32, account: address):
    """
    @dev Grants `role` to `account` (an evaluator role, by the
         dataset's initiator).
    @notice The initiator role is not granted: it moves by
            `transfer_initiator` and `accept_initiator`.
    @param role The 32-byte role.
    @param account The 20-byte account address.
    """
    admin: bytes32 = access_control.getRoleAdmin[role]
    assert admin != role, "data_market: initiator role moves by hand-over"
    access_control._check_role(admin, msg.sender)
    access_control._grant_role(role, account)


@external
def revokeRole(role: bytes32, account: address):
    """
    @dev Revokes `role` from `account` (an evaluator role, by the
         dataset's initiator).
    @notice The initiator role is not revoked: it moves by
            `transfer_initiator` and `accept_initiator`.
    @param role The 32-byte role.
    @param account The 20-byte account address.
    """
    admin: bytes32 = access_control.getRoleAdmin[role]
    assert admin != role, "data_market: initiator role moves by hand-over"
    access_control._check_role(admin, msg.sender)
    access_control._revoke_role(role, account)


@external
def renounceRole(role: bytes32, account: address):
    """
    @dev Renounces `role` for the caller (`account` must be the
         caller), e.g. an evaluator stepping down.
    @notice The initiator role cannot be renounced: a dataset
            always keeps its initiator; hand it over instead.
    @param role The 32-byte role.
    @param account The 20-byte account address (the caller).
    """
    assert account == msg.sender, "access_control: can only renounce roles for itself"
    assert access_control.getRoleAdmin[role] != role, "data_market: initiator role moves by hand-over"
    access_control._revoke_role(role, account)


@external
def transfer_initiator(dataset_id: uint256, new_initiator: address):
    """
    @dev Starts handing a dataset over to `new_initiator`, who
         takes it with `accept_initiator` (an empty address cancels).
    @notice Only the dataset's initiator.
    @param dataset_id The 32-byte dataset id.
    @param new_initiator The 20-byte address of the next initiator.
    """
    assert msg.sender == packing._initiator(self._dataset_info[dataset_id]), "data_market: not the initiator"
    self.pending_initiator[dataset_id] = new_initiator
    log InitiatorTransferStarted(dataset_id=dataset_id, initiator=msg.sender, new_initiator=new_initiator)


@external
def accept_initiator(dataset_id: uint256):
    """
    @dev Completes a hand-over: the caller becomes the dataset's
         initiator (and holds its initiator role), the previous
         initiator loses the role.
    @notice Only the account the initiator named.
    @param dataset_id The 32-byte dataset id.
    """
    assert msg.sender == self.pending_initiator[dataset_id], "data_market: not the pending initiator"
    info: uint256 = self._dataset_info[dataset_id]
    previous: address = packing._initiator(info)
    role: bytes32 = self._dataset_role(INITIATOR_ROLE, dataset_id)
    self.pending_initiator[dataset_id] = empty(address)
    self._dataset_info[dataset_id] = (info & ~packing.MASK_160) | convert(msg.sender, uint256)
    access_control._revoke_role(role, previous)
    access_control._grant_role(role, msg.sender)
    log InitiatorTransferred(dataset_id=dataset_id, previous_initiator=previous, new_initiator=msg.sender)


@external
def finalize(proposal_id: uint256) -> uint8:
    """
    @dev Settles a pending proposal once its outcome is final:
         accepted proposals are registered and mint their shares
         to the contributor; rejected and expired ones free their
         manifest root.
    @notice Anyone may call it.
    @param proposal_id The 32-byte proposal id.
    @return uint8 The new status.
    """
    box: uint256 = tally._box(proposal_id)
    assert box >> packing.STATUS_SHIFT == convert(STATUS_PENDING, uint256), "data_market: not pending"
    dataset_id: uint256 = proposal_id >> packing.SEQ_BITS
    dataset: uint256 = self._datasets[dataset_id]
    terms: uint256 = self._terms[proposal_id]
    clock: uint256 = tally._clocks[proposal_id]
    status: uint8 = self._outcome(box, terms, dataset, dataset_id, clock)
    assert status != STATUS_PENDING, "data_market: voting open"

    yes: uint256 = box & packing.MASK_104
    no: uint256 = (box >> packing.NO_SHIFT) & packing.MASK_104

    if status == STATUS_ACCEPTED:
        # Both factors are below 2**32 and 2**20 respectively.
        shares: uint256 = (
            ((terms >> packing.EXAMPLES_SHIFT) & packing.MASK_32)
            * self._quality_weight(proposal_id, clock, dataset_id)
            * _UNITS_PER_BPS
        )
        index: uint256 = dataset >> packing.LENGTH_SHIFT
        # `index >= 1`: entry 0 is the initial data.
        last: uint256 = data_registry._entry(dataset_id, unsafe_sub(index, 1))
        supply: uint256 = ((last >> packing.SUPPLY_SHIFT) & packing.MASK_104) + shares
        if supply <= MAX_SUPPLY:
            first: uint256 = index
            if (last >> packing.BLOCK_SHIFT) & packing.MASK_64 == block.number:
                first = (last >> packing.FIRST_SHIFT) & packing.MASK_32
            data_registry._append(dataset_id, index, proposal_id & packing.MASK_32, supply, first)
            # One entry per proposal, so the length stays below 2**32.
            self._datasets[dataset_id] = unsafe_add(dataset, 1 << packing.LENGTH_SHIFT)
            tally._settle(proposal_id, box, STATUS_ACCEPTED)
            log ProposalFinalized(
                proposal_id=proposal_id,
                dataset_id=dataset_id,
                status=STATUS_ACCEPTED,
                registry_index=index,
                shares=shares,
                yes_votes=yes,
                no_votes=no,
            )
            if shares != 0:
                extcall IShareToken(convert(dataset & packing.MASK_160, address)).mint(
                    convert(terms & packing.MASK_160, address), shares
                )
            return STATUS_ACCEPTED
        # Accepting would exceed the supply cap: reject instead.
        status = STATUS_REJECTED

    self._root_data[dataset_id][self._manifest_roots[proposal_id]] = empty(bytes32)
    tally._settle(proposal_id, box, status)
    log ProposalFinalized(
        proposal_id=proposal_id,
        dataset_id=dataset_id,
        status=status,
        registry_index=NOT_REGISTERED,
        shares=0,
        yes_votes=yes,
        no_votes=no,
    )
    deposit: uint256 = packing._deposit(self._dataset_rules[dataset_id])
    if deposit != 0 and self._quality_weight(proposal_id, clock, dataset_id) == 0:
        # Neither accepted nor scored positive: the deposit goes
        # to the shareholders (a 0 weight needs a revealed score).
        tally._clocks[proposal_id] = clock | packing.DEPOSIT_SETTLED_BIT
        log DepositSettled(
            proposal_id=proposal_id, contributor=packing._contributor(terms), amount=deposit, forfeited=True
        )
        extcall IShareToken(convert(dataset & packing.MASK_160, address)).pay(value=deposit)
    return status


@external
@view
def dataset(dataset_id: uint256) -> Dataset:
    """
    @dev Returns the parameters and counts of a dataset.
    @param dataset_id The 32-byte dataset id.
    @return Dataset The dataset (token, initiator, metadata CID
            digest, voting period, quorum, threshold, quality cap,
            registry length, proposal count, total shares).
    """
    dataset: uint256 = self._datasets[dataset_id]
    assert dataset != 0, "data_market: unknown dataset"
    info: uint256 = self._dataset_info[dataset_id]
    rules: uint256 = self._dataset_rules[dataset_id]
    length: uint256 = packing._registry_length(dataset)
    token: address = packing._token(dataset)
    return Dataset(
        token=token,
        initiator=packing._initiator(info),
        metadata_cid_digest=self._dataset_metadata[dataset_id],
        voting_period=packing._voting_period(dataset),
        min_voting_period=packing._min_voting_period(info),
        quorum_bps=packing._quorum(dataset),
        threshold_bps=packing._threshold(dataset),
        quality_cap_bps=packing._quality_cap(info),
        commit_period=packing._commit_period(rules),
        reveal_period=packing._reveal_period(rules),
        evaluation_fee=packing._fee(rules),
        deposit=packing._deposit(rules),
        registry_length=length,
        proposal_count=packing._proposal_count(info),
        total_shares=data_registry._supply_after(dataset_id, length - 1),
    )


@external
@view
def share_token(dataset_id: uint256) -> address:
    """
    @dev Returns the share token of a dataset; dividends are paid
         to and claimed from it.
    @param dataset_id The 32-byte dataset id.
    @return address The 20-byte token address.
    """
    dataset: uint256 = self._datasets[dataset_id]
    assert dataset != 0, "data_market: unknown dataset"
    return packing._token(dataset)


@external
@view
def proposal(proposal_id: uint256) -> Proposal:
    """
    @dev Returns a proposal with its tallies and status.
    @param proposal_id The 32-byte proposal id.
    @return Proposal The proposal.
    """
    box: uint256 = tally._box(proposal_id)
    assert box != 0, "data_market: unknown proposal"
    dataset_id: uint256 = packing._dataset_of(proposal_id)
    terms: uint256 = self._terms[proposal_id]
    status: uint8 = packing._status(box)
    root: bytes32 = self._manifest_roots[proposal_id]
    clock: uint256 = tally._clock(proposal_id)
    weight: uint256 = self._quality_weight(proposal_id, clock, dataset_id)
    data: bytes32 = empty(bytes32)
    if status == STATUS_PENDING or status == STATUS_ACCEPTED:
        data = self._root_data[dataset_id][root]
    return Proposal(
        dataset_id=dataset_id,
        sequence=packing._snapshot_of(proposal_id),
        snapshot_block=packing._snapshot_block(clock),
        commit_end=packing._commit_end(clock),
        voting_opens=packing._voting_opens(clock),
        settle_from=packing._settle_from(clock),
        contributor=packing._contributor(terms),
        data_cid_digest=data,
        manifest_root=root,
        examples=packing._examples(terms),
        deadline=packing._deadline(box),
        status=status,
        yes_votes=packing._yes(box),
        no_votes=packing._no(box),
        snapshot_supply=data_registry._supply_at(dataset_id, packing._snapshot_length(terms)),
        quality_weight_bps=weight,
        shares=packing._examples(terms) * weight * _UNITS_PER_BPS,
    )


@external
@view
def proposal_state(proposal_id: uint256) -> uint8:
    """
    @dev Returns the stored status of a proposal (`STATUS_NONE`
         for an unknown id). A pending proposal may already be
         decided: see `outcome`.
    @param proposal_id The 32-byte proposal id.
    @return uint8 The status.
    """
    return packing._status(tally._box(proposal_id))


@external
@view
def outcome(proposal_id: uint256) -> uint8:
    """
    @dev Returns what `finalize` would settle now: the final
         status, or `STATUS_PENDING` while the outcome can still
         change (and the stored status once finalized).
    @notice As `finalize`, an acceptance that would push the share
            supply past `MAX_SUPPLY` is a rejection.
    @param proposal_id The 32-byte proposal id.
    @return uint8 The status.
    """
    box: uint256 = tally._box(proposal_id)
    assert box != 0, "data_market: unknown proposal"
    status: uint8 = packing._status(box)
    if status != STATUS_PENDING:
        return status
    dataset_id: uint256 = packing._dataset_of(proposal_id)
    dataset: uint256 = self._datasets[dataset_id]
    terms: uint256 = self._terms[proposal_id]
    clock: uint256 = tally._clock(proposal_id)
    status = self._outcome(box, terms, dataset, dataset_id, clock)
    if status == STATUS_ACCEPTED:
        shares: uint256 = packing._examples(terms) * self._quality_weight(proposal_id, clock, dataset_id) * _UNITS_PER_BPS
        if data_registry._supply_after(dataset_id, packing._registry_length(dataset) - 1) + shares > MAX_SUPPLY:
            return STATUS_REJECTED
    return status


@external
@view
def ballot(proposal_id: uint256, voter: address) -> Ballot:
    """
    @dev Returns the vote of `voter` on a proposal.
    @param proposal_id The 32-byte proposal id.
    @param voter The 20-byte voter address.
    @return Ballot Whether they voted, their choice and weight.
    """
    word: uint256 = tally._ballot(proposal_id, voter)
    return Ballot(
        voted=packing._ballot_voted(word),
        support=packing._ballot_support(word),
        weight=packing._ballot_weight(word),
    )


@external
@view
def evaluation(proposal_id: uint256) -> Evaluation:
    """
    @dev Returns a proposal's evaluation: commitments, reveals,
         the median revealed score (0 if none) and the quality
         weight it sets. Final once voting opens.
    @param proposal_id The 32-byte proposal id.
    @return Evaluation The evaluation.
    """
    clock: uint256 = tally._clock(proposal_id)
    reveals: uint256 = packing._reveals(clock)
    score: int256 = 0
    if reveals != 0:
        score = sealed_scores._median(proposal_id, reveals)
    return Evaluation(
        commits=packing._commits(clock),
        reveals=reveals,
        score=score,
        quality_weight_bps=self._quality_weight(proposal_id, clock, packing._dataset_of(proposal_id)),
    )


@external
@view
def scorecard(proposal_id: uint256, evaluator: address) -> Scorecard:
    """
    @dev Returns one evaluator's part in a proposal's evaluation:
         whether it committed, revealed (a commitment without a
         reveal after the reveal phase is a missed reveal), its
         score and whether it collected its fee share.
    @param proposal_id The 32-byte proposal id.
    @param evaluator The 20-byte evaluator address.
    @return Scorecard The scorecard.
    """
    card: uint256 = sealed_scores._scorecard(proposal_id, evaluator)
    score: int256 = 0
    if card != 0:
        score = sealed_scores._card_score(card)
    return Scorecard(
        committed=sealed_scores._commitment(proposal_id, evaluator) != empty(bytes32),
        revealed=card != 0,
        score=score,
        collected=card & sealed_scores.COLLECTED_BIT != 0,
    )


@external
@pure
def commitment_of(
    proposal_id: uint256, evaluator: address, score: int256, report_cid_digest: bytes32, salt: bytes32
) -> bytes32:
    """
    @dev Returns the commitment `commit_evaluation` expects.
    @notice Compute it off-chain (or with a call, never a
            transaction): the salt must stay secret until the
            reveal.
    @param proposal_id The 32-byte proposal id.
    @param evaluator The 20-byte evaluator address.
    @param score The signed score in basis points.
    @param report_cid_digest The 32-byte CID digest of the report.
    @param salt The 32-byte secret salt.
    @return bytes32 The 32-byte commitment.
    """
    return sealed_scores._commitment_of(proposal_id, evaluator, score, report_cid_digest, salt)


@external
@view
def registry_length(dataset_id: uint256) -> uint256:
    """
    @dev Returns the number of registry entries of a dataset (the
         initial data included).
    @param dataset_id The 32-byte dataset id.
    @return uint256 The number of entries.
    """
    return packing._registry_length(self._datasets[dataset_id])


@external
@view
def registry_entry(dataset_id: uint256, index: uint256) -> RegistryEntry:
    """
    @dev Returns one registry entry.
    @param dataset_id The 32-byte dataset id.
    @param index The 32-byte entry index.
    @return RegistryEntry The entry.
    """
    assert index < packing._registry_length(self._datasets[dataset_id]), "data_market: no such entry"
    return self._entry(dataset_id, index)


@external
@view
def registry(dataset_id: uint256, start: uint256, count: uint256) -> DynArray[RegistryEntry, MAX_PAGE]:
    """
    @dev Returns up to `count` registry entries from index
         `start` (fewer at the end; at most `MAX_PAGE`).
    @param dataset_id The 32-byte dataset id.
    @param start The 32-byte first index.
    @param count The 32-byte number of entries wanted.
    @return DynArray The entries, in index order.
    """
    length: uint256 = packing._registry_length(self._datasets[dataset_id])
    page: DynArray[RegistryEntry, MAX_PAGE] = []
    for offset: uint256 in range(MAX_PAGE):
        if offset >= count or start + offset >= length:
            break
        page.append(self._entry(dataset_id, start + offset))
    return page


@external
@view
def manifest_root_taken(dataset_id: uint256, manifest_root: bytes32) -> bool:
    """
    @dev Returns whether a manifest root is in the dataset's
         registry or in a pending proposal (and so refused).
    @param dataset_id The 32-byte dataset id.
    @param manifest_root The 32-byte manifest root.
    @return bool `True` if taken.
    """
    return self._root_data[dataset_id][manifest_root] != empty(bytes32)


@external
@view
def initiator_role(dataset_id: uint256) -> bytes32:
    """
    @dev Returns the initiator role of a dataset (admin of its
         evaluator role and of itself).
    @param dataset_id The 32-byte dataset id.
    @return bytes32 The 32-byte role id.
    """
    return self._dataset_role(INITIATOR_ROLE, dataset_id)


@external
@view
def evaluator_role(dataset_id: uint256) -> bytes32:
    """
    @dev Returns the evaluator role of a dataset.
    @param dataset_id The 32-byte dataset id.
    @return bytes32 The 32-byte role id.
    """
    return self._dataset_role(EVALUATOR_ROLE, dataset_id)


@external
@view
def is_evaluator(dataset_id: uint256, account: address) -> bool:
    """
    @dev Returns whether `account` may evaluate the dataset's
         proposals.
    @param dataset_id The 32-byte dataset id.
    @param account The 20-byte account address.
    @return bool `True` if `account` holds the evaluator role.
    """
    return access_control.hasRole[self._dataset_role(EVALUATOR_ROLE, dataset_id)][account]


@external
@view
def claimable(dataset_id: uint256, account: address) -> uint256:
    """
    @dev Returns the dividends, in wei, that `account` can claim
         from the dataset's share token.
    @param dataset_id The 32-byte dataset id.
    @param account The 20-byte account address.
    @return uint256 The 32-byte claimable amount in wei.
    """
    dataset: uint256 = self._datasets[dataset_id]
    assert dataset != 0, "data_market: unknown dataset"
    return staticcall IShareToken(packing._token(dataset)).claimable(account)


@external
@pure
def proposal_id_of(dataset_id: uint256, sequence: uint256) -> uint256:
    """
    @dev Returns the proposal id of the `sequence`-th proposal of
         a dataset (0: the initial data).
    @param dataset_id The 32-byte dataset id.
    @param sequence The 32-byte per-dataset number.
    @return uint256 The proposal id.
    """
    assert sequence <= packing.MASK_32, "data_market: invalid sequence"
    return packing._proposal_id(dataset_id, sequence)


@internal
@view
def _outcome(box: uint256, terms: uint256, dataset: uint256, dataset_id: uint256, clock: uint256) -> uint8:
    """
    @dev Returns the status a pending proposal settles to now, or
         `STATUS_PENDING` while the outcome can still change or may
         not be settled yet (see `tally._outcome`): its tallies
         against its snapshot supply and the dataset's quorum and
         threshold. Before the deadline an outcome is settled only
         after the proposal's block and from `settle_from` on.
    @notice The snapshot supply is the cumulative supply after the
            last registry entry registered before the proposal's
            block (only accepted proposals mint; the initial data
            weighs its own supply).
    @param box The packed ballot box.
    @param terms The packed proposal terms.
    @param dataset The packed dataset word.
    @param dataset_id The 32-byte dataset id.
    @param clock The packed proposal clock.
    @return uint8 The status.
    """
    # The snapshot block is the one before the proposal's.
    early: bool = block.number > (clock & packing.MASK_64) + 1 and block.timestamp >= (
        clock >> packing.SETTLE_SHIFT
    ) & packing.MASK_40
    return tally._outcome(
        box,
        data_registry._supply_at(dataset_id, (terms >> packing.SNAPSHOT_LENGTH_SHIFT) & packing.MASK_32),
        (dataset >> packing.QUORUM_SHIFT) & packing.MASK_16,
        (dataset >> packing.THRESHOLD_SHIFT) & packing.MASK_16,
        early,
    )


@internal
@view
def _quality_weight(proposal_id: uint256, clock: uint256, dataset_id: uint256) -> uint256:
    """
    @dev Returns a proposal's quality weight in basis points:
         1.0 without a revealed score, else the median revealed
         score clamped to `[0, quality_cap_bps]`.
    @param proposal_id The 32-byte proposal id.
    @param clock The packed proposal clock.
    @param dataset_id The 32-byte dataset id.
    @return uint256 The quality weight in basis points.
    """
    reveals: uint256 = (clock >> packing.REVEALS_SHIFT) & packing.MASK_8
    if reveals == 0:
        return BPS
    score: int256 = sealed_scores._median(proposal_id, reveals)
    if score <= 0:
        return 0
    return min(convert(score, uint256), packing._quality_cap(self._dataset_info[dataset_id]))


@internal
@view
def _entry(dataset_id: uint256, index: uint256) -> RegistryEntry:
    """
    @dev Assembles registry entry `index` from its packed word
         and the accepted proposal's stored terms.
    @param dataset_id The 32-byte dataset id.
    @param index The 32-byte entry index.
    @return RegistryEntry The entry.
    """
    word: uint256 = data_registry._entry(dataset_id, index)
    shares: uint256 = packing._entry_supply(word)
    if index != 0:
        shares -= data_registry._supply_after(dataset_id, index - 1)
    proposal_id: uint256 = packing._proposal_id(dataset_id, packing._entry_snapshot(word))
    terms: uint256 = self._terms[proposal_id]
    root: bytes32 = self._manifest_roots[proposal_id]
    return RegistryEntry(
        index=index,
        proposal_id=proposal_id,
        contributor=packing._contributor(terms),
        data_cid_digest=self._root_data[dataset_id][root],
        manifest_root=root,
        examples=packing._examples(terms),
        shares=shares,
        block_number=packing._entry_block(word),
    )


@internal
@pure
def _dataset_role(base: bytes32, dataset_id: uint256) -> bytes32:
    """
    @dev Returns the role id `keccak256(abi_encode(base, id))`.
    @param base The 32-byte base role.
    @param dataset_id The 32-byte dataset id.
    @return bytes32 The 32-byte per-dataset role id.
    """
    return keccak256(abi_encode(base, dataset_id))
