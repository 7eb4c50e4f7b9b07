# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title DataBright Data Market Vote Tally
@custom:contract-name tally
@license Apache-2.0
@notice The ballot boxes of the data market's proposals: per proposal
        one packed word with the yes and no weights cast, the voting
        deadline and the status, and per voter one packed ballot. It also
        holds the rule that turns a ballot box into an outcome.

        The module records votes; it does not weigh them. The composing
        contract decides who may vote and with what weight (share balances
        at the proposal's snapshot) and checks every precondition with its
        own revert strings; this module never reverts on its own. The
        outcome rule is a pure function of the tallies, the snapshot
        supply and the dataset's quorum and threshold, so that a different
        way of collecting votes can keep it.

        With `S` the snapshot supply, `yes`/`no` the weights cast, quorum
        `q` and threshold `t` in basis points: after the deadline accepted
        iff `(yes + no) * 10_000 >= q * S` and
        `yes * 10_000 >= t * (yes + no)`, expired if the quorum is missed,
        rejected otherwise. Before the deadline, once the composing
        contract allows early settlement: accepted when the quorum
        is met and `yes * 10_000 >= t * S` (no remaining vote can undo it),
        rejected when the quorum is met and `(S - no) * 10_000 < t * S`
        (even all remaining weight voting yes cannot reach the threshold;
        with the quorum missed the deadline might still say expired),
        pending otherwise. So an early status is the deadline's status.

        Word layouts are in `packing`. The functions that run on every
        vote and finalization use its offsets inline rather than its
        functions: an internal call costs ~70 gas in Vyper's code
        generation, more than the gas snapshot's tolerance allows.
"""


# @dev We import the stateless `packing` module for the
# ballot box and ballot layouts.
from . import packing


# @dev Proposal statuses.
STATUS_NONE: constant(uint8) = 0
STATUS_PENDING: constant(uint8) = 1
STATUS_ACCEPTED: constant(uint8) = 2
STATUS_REJECTED: constant(uint8) = 3
STATUS_EXPIRED: constant(uint8) = 4


# @dev Basis points in one (100%): the unit of quorum and
# threshold.
BPS: constant(uint256) = 10_000


# @dev Proposal id => packed ballot box (see `packing`).
_ballot_boxes: HashMap[uint256, uint256]


# @dev Proposal id => voter => packed ballot (see `packing`;
# 0: no vote).
_ballots: HashMap[uint256, HashMap[address, uint256]]


# @dev Proposal id => packed clock: snapshot block and earliest
# early settlement (see `packing`).
_clocks: HashMap[uint256, uint256]


@internal
@view
def _box(proposal_id: uint256) -> uint256:
    """
    @dev Returns the packed ballot box of a proposal (0 for an
         unknown proposal).
    @param proposal_id The 32-byte proposal id.
    @return uint256 The packed ballot box.
    """
    return self._ballot_boxes[proposal_id]


@internal
@view
def _ballot(proposal_id: uint256, voter: address) -> uint256:
    """
    @dev Returns the packed ballot of `voter` (0 if none).
    @param proposal_id The 32-byte proposal id.
    @param voter The 20-byte voter address.
    @return uint256 The packed ballot.
    """
    return self._ballots[proposal_id][voter]


@internal
def _open(proposal_id: uint256, deadline: uint256, status: uint8, clock: uint256):
    """
    @dev Opens the ballot box of a new proposal, with no votes.
    @param proposal_id The 32-byte proposal id.
    @param deadline The voting deadline (UNIX seconds).
    @param status The initial status (`STATUS_PENDING`, or
           `STATUS_ACCEPTED` for data accepted without a vote).
    @param clock The packed proposal clock (0: none, for data
           accepted without a vote).
    """
    self._ballot_boxes[proposal_id] = packing._pack_box(deadline, status)
    if clock != 0:
        self._clocks[proposal_id] = clock


@internal
@view
def _clock(proposal_id: uint256) -> uint256:
    """
    @dev Returns the packed clock of a proposal (0 if none).
    @param proposal_id The 32-byte proposal id.
    @return uint256 The packed clock.
    """
    return self._clocks[proposal_id]


@internal
def _cast(proposal_id: uint256, box: uint256, voter: address, support: bool, weight: uint256):
    """
    @dev Records the vote of `voter` and adds its weight to the
         ballot box.
    @notice The caller has checked that voting is open, that
            `voter` has not voted and that `weight` is non-zero.
    @param proposal_id The 32-byte proposal id.
    @param box The current packed ballot box of the proposal.
    @param voter The 20-byte voter address.
    @param support `True` to accept, `False` to reject.
    @param weight The vote weight.
    """
    # Tallies never exceed the snapshot supply (< 2**100): the
    # additions cannot carry out of their 104-bit fields.
    if support:
        self._ballot_boxes[proposal_id] = unsafe_add(box, weight)
        self._ballots[proposal_id][voter] = weight | packing.SUPPORT_BIT | packing.VOTED_BIT
    else:
        self._ballot_boxes[proposal_id] = unsafe_add(box, weight << packing.NO_SHIFT)
        self._ballots[proposal_id][voter] = weight | packing.VOTED_BIT


@internal
def _settle(proposal_id: uint256, box: uint256, status: uint8):
    """
    @dev Stores the final status of a proposal; the tallies and
         the deadline stay.
    @param proposal_id The 32-byte proposal id.
    @param box The current packed ballot box of the proposal.
    @param status The final status.
    """
    self._ballot_boxes[proposal_id] = (box & ~(packing.MASK_8 << packing.STATUS_SHIFT)) | (
        convert(status, uint256) << packing.STATUS_SHIFT
    )


@internal
@view
def _outcome(
    box: uint256, supply: uint256, quorum_bps: uint256, threshold_bps: uint256, may_settle_early: bool
) -> uint8:
    """
    @dev Returns the status a pending ballot box settles to now,
         or `STATUS_PENDING` while the outcome can still change (or
         may not be settled before the deadline yet).
    @param box The packed ballot box.
    @param supply The share supply at the proposal's snapshot.
    @param quorum_bps The quorum in basis points of `supply`.
    @param threshold_bps The threshold in basis points.
    @param may_settle_early Whether an outcome that no remaining
           vote can change may be settled before the deadline.
    @return uint8 The status.
    """
    yes: uint256 = box & packing.MASK_104
    no: uint256 = (box >> packing.NO_SHIFT) & packing.MASK_104
    votes: uint256 = yes + no
    quorum_met: bool = votes * BPS >= quorum_bps * supply

    if block.timestamp >= (box >> packing.DEADLINE_SHIFT) & packing.MASK_40:
        if not quorum_met:
            return STATUS_EXPIRED
        if yes * BPS >= threshold_bps * votes:
            return STATUS_ACCEPTED
        return STATUS_REJECTED

    # Voting is open: settle only what no remaining vote can change.
    if not may_settle_early:
        return STATUS_PENDING
    if quorum_met and yes * BPS >= threshold_bps * supply:
        return STATUS_ACCEPTED
    # `no <= supply`: the unvoted weight plus `yes` is `supply - no`.
    # Only with the quorum met: else the deadline could still find
    # it missed and say expired, not rejected.
    if quorum_met and (supply - no) * BPS < threshold_bps * supply:
        return STATUS_REJECTED
    return STATUS_PENDING
