# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title DataBright Data Market Sealed Scores
@custom:contract-name sealed_scores
@license Apache-2.0
@notice The sealed evaluations of the data market's proposals. Each
        evaluator of a dataset first commits to its score for a proposal
        (a hash binding the proposal, the evaluator, the score, the report
        digest and a secret salt), and reveals it only after the commit
        phase has closed, so no evaluator can copy or counter another's
        score. The proposal's score is the median of the revealed scores:
        one evaluator, however hostile, moves it at most to its neighbour's.

        Storage: per proposal and evaluator the commitment and one packed
        scorecard word `[score + 2**31: 0..31 | reveal index: 32..39 |
        collected: 254 | revealed: 255]`; per proposal the revealed scores,
        eight 32-bit biased scores per word, in reveal order.

        The module records; it does not decide. The composing contract
        checks phases, roles and bounds with its own revert strings and
        keeps the commit and reveal counts; this module never reverts.
"""


# @dev The most scores revealed per proposal.
MAX_SCORES: constant(uint256) = 16


# @dev The offset that stores a signed 32-bit score unsigned.
SCORE_BIAS: constant(int256) = 2**31


# @dev Scorecard fields.
INDEX_SHIFT: constant(uint256) = 32
COLLECTED_BIT: constant(uint256) = 1 << 254
REVEALED_BIT: constant(uint256) = 1 << 255


# @dev Bit masks.
_MASK_8: constant(uint256) = 2**8 - 1
_MASK_32: constant(uint256) = 2**32 - 1


# @dev Proposal id => evaluator => commitment (empty: none).
_commitments: HashMap[uint256, HashMap[address, bytes32]]


# @dev Proposal id => evaluator => packed scorecard (0: not
# revealed).
_scorecards: HashMap[uint256, HashMap[address, uint256]]


# @dev Proposal id => word index => eight packed biased scores.
_scores: HashMap[uint256, HashMap[uint256, uint256]]


@internal
@pure
def _commitment_of(
    proposal_id: uint256, evaluator: address, score: int256, report_cid_digest: bytes32, salt: bytes32
) -> bytes32:
    """
    @dev Returns the commitment to a score:
         `keccak256(abi_encode(proposal_id, evaluator, score,
         report_cid_digest, salt))`. Binding the evaluator keeps a
         commitment from being replayed by another evaluator.
    @param proposal_id The 32-byte proposal id.
    @param evaluator The 20-byte evaluator address.
    @param score The signed score in basis points.
    @param report_cid_digest The 32-byte CID digest of the report.
    @param salt The 32-byte secret salt.
    @return bytes32 The 32-byte commitment.
    """
    return keccak256(abi_encode(proposal_id, evaluator, score, report_cid_digest, salt))


@internal
@view
def _commitment(proposal_id: uint256, evaluator: address) -> bytes32:
    """
    @dev Returns the commitment of `evaluator` (empty if none).
    @param proposal_id The 32-byte proposal id.
    @param evaluator The 20-byte evaluator address.
    @return bytes32 The 32-byte commitment.
    """
    return self._commitments[proposal_id][evaluator]


@internal
def _commit(proposal_id: uint256, evaluator: address, commitment: bytes32):
    """
    @dev Records the commitment of `evaluator`.
    @param proposal_id The 32-byte proposal id.
    @param evaluator The 20-byte evaluator address.
    @param commitment The 32-byte commitment.
    """
    self._commitments[proposal_id][evaluator] = commitment


@internal
@view
def _scorecard(proposal_id: uint256, evaluator: address) -> uint256:
    """
    @dev Returns the packed scorecard of `evaluator` (0 if it has
         not revealed).
    @param proposal_id The 32-byte proposal id.
    @param evaluator The 20-byte evaluator address.
    @return uint256 The packed scorecard.
    """
    return self._scorecards[proposal_id][evaluator]


@internal
@pure
def _card_score(card: uint256) -> int256:
    """
    @dev Returns the score of a packed scorecard.
    @param card The packed scorecard.
    @return int256 The signed score.
    """
    return convert(card & _MASK_32, int256) - SCORE_BIAS


@internal
@pure
def _card_index(card: uint256) -> uint256:
    """
    @dev Returns the reveal index of a packed scorecard.
    @param card The packed scorecard.
    @return uint256 The 0-based reveal index.
    """
    return (card >> INDEX_SHIFT) & _MASK_8


@internal
def _reveal(proposal_id: uint256, evaluator: address, index: uint256, score: int256):
    """
    @dev Records the `index`-th revealed score of a proposal.
    @notice The caller has checked the commitment, that `index <
            MAX_SCORES` and that `score` fits 32 signed bits.
    @param proposal_id The 32-byte proposal id.
    @param evaluator The 20-byte evaluator address.
    @param index The 0-based reveal index.
    @param score The signed score in basis points.
    """
    biased: uint256 = convert(score + SCORE_BIAS, uint256)
    self._scorecards[proposal_id][evaluator] = REVEALED_BIT | (index << INDEX_SHIFT) | biased
    word: uint256 = index >> 3
    self._scores[proposal_id][word] |= biased << ((index & 7) << 5)


@internal
def _mark_collected(proposal_id: uint256, evaluator: address, card: uint256):
    """
    @dev Marks the evaluation fee share of `evaluator` as paid.
    @param proposal_id The 32-byte proposal id.
    @param evaluator The 20-byte evaluator address.
    @param card The current packed scorecard.
    """
    self._scorecards[proposal_id][evaluator] = card | COLLECTED_BIT


@internal
@view
def _median(proposal_id: uint256, count: uint256) -> int256:
    """
    @dev Returns the median of the first `count` revealed scores
         (the mean of the two middle ones, rounded toward zero,
         for an even count).
    @param proposal_id The 32-byte proposal id.
    @param count The number of revealed scores (1 to `MAX_SCORES`).
    @return int256 The median score.
    """
    sorted: DynArray[int256, MAX_SCORES] = []
    word: uint256 = 0
    for i: uint256 in range(MAX_SCORES):
        if i >= count:
            break
        if i & 7 == 0:
            word = self._scores[proposal_id][i >> 3]
        score: int256 = convert((word >> ((i & 7) << 5)) & _MASK_32, int256) - SCORE_BIAS
        # Insertion sort: at most 16 scores.
        sorted.append(score)
        j: uint256 = i
        for _: uint256 in range(MAX_SCORES):
            if j == 0 or sorted[j - 1] <= score:
                break
            sorted[j] = sorted[j - 1]
            j -= 1
        sorted[j] = score
    middle: uint256 = count >> 1
    if count & 1 == 1:
        return sorted[middle]
    return (sorted[middle - 1] + sorted[middle]) // 2
