# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title DataBright Data Market Word Packing
@custom:contract-name packing
@license Apache-2.0
@notice Stateless bit packing of the data market's ids and storage
        words. Vyper does not pack storage, so every record the market
        keeps is one hand-packed `uint256` word; this module is the one
        place that defines each word's layout. The modules that own the
        words (`tally`, `data_registry`) and the composing `DataMarket`
        use its functions, except on the paths that run for every vote
        and finalization: there they use its offsets and masks inline,
        because an internal call costs ~70 gas in Vyper's code generation
        (several of them would exceed the gas snapshot's 1% tolerance).

        Layouts (bit ranges, low to high):
        - proposal id: [snapshot id n: 0..31 | dataset id: 32..255];
        - dataset word: [token: 0..159 | voting period: 160..191 |
          quorum bps: 192..207 | threshold bps: 208..223 | registry
          length: 224..255];
        - dataset info word: [initiator: 0..159 | quality cap bps:
          160..191 | minimum voting period: 192..223 | proposal count:
          224..255];
        - proposal terms: [contributor: 0..159 | examples: 160..191 |
          registry length at creation: 192..223 | quality weight bps:
          224..255];
        - ballot box: [yes: 0..103 | no: 104..207 | deadline: 208..247 |
          status: 248..255];
        - ballot: [weight: 0..103 | support: 104 | voted: 105];
        - proposal clock: [snapshot block: 0..63 | earliest early
          settlement: 64..103 | voting opens: 104..143 | commit phase
          ends: 144..183 | commitments: 184..191 | reveals: 192..199 |
          evaluation fee refunded: 200 | deposit settled: 201];
        - dataset rules word: [commit period: 0..31 | reveal period:
          32..63 | evaluation fee: 64..159 | deposit: 160..255];
        - registry entry: [snapshot id n of the proposal: 0..31 |
          cumulative share supply after it: 32..135 | block number:
          136..199 | index of the first entry of that block: 200..231].

        The field widths hold by construction: weights and supplies stay
        below `2**100` (the share token's cap), periods, examples and
        registry lengths below `2**32`, deadlines below `2**40` (until
        the year 36812), quorum and threshold at most 10_000, quality
        weights at most 1_000_000. Callers check these bounds; packing
        does not.
"""


# @dev Bits of the per-dataset part of a proposal id.
SEQ_BITS: constant(uint256) = 32


# @dev Bit masks.
MASK_8: constant(uint256) = 2**8 - 1
MASK_16: constant(uint256) = 2**16 - 1
MASK_32: constant(uint256) = 2**32 - 1
MASK_40: constant(uint256) = 2**40 - 1
MASK_64: constant(uint256) = 2**64 - 1
MASK_96: constant(uint256) = 2**96 - 1
MASK_104: constant(uint256) = 2**104 - 1
MASK_160: constant(uint256) = 2**160 - 1


# @dev Dataset word offsets.
PERIOD_SHIFT: constant(uint256) = 160
QUORUM_SHIFT: constant(uint256) = 192
THRESHOLD_SHIFT: constant(uint256) = 208
LENGTH_SHIFT: constant(uint256) = 224


# @dev Dataset info word offsets.
CAP_SHIFT: constant(uint256) = 160
MIN_VOTING_SHIFT: constant(uint256) = 192
COUNT_SHIFT: constant(uint256) = 224


# @dev Proposal clock offsets.
SETTLE_SHIFT: constant(uint256) = 64
OPENS_SHIFT: constant(uint256) = 104
COMMIT_END_SHIFT: constant(uint256) = 144
COMMITS_SHIFT: constant(uint256) = 184
REVEALS_SHIFT: constant(uint256) = 192
REFUNDED_BIT: constant(uint256) = 1 << 200
DEPOSIT_SETTLED_BIT: constant(uint256) = 1 << 201


# @dev Dataset rules word offsets.
REVEAL_PERIOD_SHIFT: constant(uint256) = 32
FEE_SHIFT: constant(uint256) = 64
DEPOSIT_SHIFT: constant(uint256) = 160


# @dev Ballot box offsets.
NO_SHIFT: constant(uint256) = 104
DEADLINE_SHIFT: constant(uint256) = 208
STATUS_SHIFT: constant(uint256) = 248


# @dev Proposal terms offsets.
EXAMPLES_SHIFT: constant(uint256) = 160
SNAPSHOT_LENGTH_SHIFT: constant(uint256) = 192
WEIGHT_SHIFT: constant(uint256) = 224


# @dev Registry entry offsets.
SUPPLY_SHIFT: constant(uint256) = 32
BLOCK_SHIFT: constant(uint256) = 136
FIRST_SHIFT: constant(uint256) = 200


# @dev Ballot flags.
SUPPORT_BIT: constant(uint256) = 1 << 104
VOTED_BIT: constant(uint256) = 1 << 105


@internal
@pure
def _proposal_id(dataset_id: uint256, snapshot_id: uint256) -> uint256:
    """
    @dev Returns the id of proposal `snapshot_id` of a dataset.
    @param dataset_id The 32-byte dataset id.
    @param snapshot_id The 32-byte per-dataset number (below `2**32`).
    @return uint256 The 32-byte proposal id.
    """
    return (dataset_id << SEQ_BITS) | snapshot_id


@internal
@pure
def _dataset_of(proposal_id: uint256) -> uint256:
    """
    @dev Returns the dataset id part of a proposal id.
    @param proposal_id The 32-byte proposal id.
    @return uint256 The 32-byte dataset id.
    """
    return proposal_id >> SEQ_BITS


@internal
@pure
def _snapshot_of(proposal_id: uint256) -> uint256:
    """
    @dev Returns the per-dataset part of a proposal id: the id of
         the token snapshot taken when the proposal was created.
    @param proposal_id The 32-byte proposal id.
    @return uint256 The 32-byte snapshot id.
    """
    return proposal_id & MASK_32


@internal
@pure
def _pack_dataset(
    token: address, voting_period: uint256, quorum_bps: uint256, threshold_bps: uint256, length: uint256
) -> uint256:
    """
    @dev Packs a dataset word.
    @param token The 20-byte share token address.
    @param voting_period The voting period in seconds.
    @param quorum_bps The quorum in basis points.
    @param threshold_bps The threshold in basis points.
    @param length The registry length.
    @return uint256 The packed dataset word.
    """
    return (
        convert(token, uint256)
        | (voting_period << PERIOD_SHIFT)
        | (quorum_bps << QUORUM_SHIFT)
        | (threshold_bps << THRESHOLD_SHIFT)
        | (length << LENGTH_SHIFT)
    )


@internal
@pure
def _token(dataset: uint256) -> address:
    """
    @dev Returns the share token address of a dataset word.
    @param dataset The packed dataset word.
    @return address The 20-byte token address.
    """
    return convert(dataset & MASK_160, address)


@internal
@pure
def _voting_period(dataset: uint256) -> uint256:
    """
    @dev Returns the voting period of a dataset word.
    @param dataset The packed dataset word.
    @return uint256 The voting period in seconds.
    """
    return (dataset >> PERIOD_SHIFT) & MASK_32


@internal
@pure
def _quorum(dataset: uint256) -> uint256:
    """
    @dev Returns the quorum of a dataset word.
    @param dataset The packed dataset word.
    @return uint256 The quorum in basis points.
    """
    return (dataset >> QUORUM_SHIFT) & MASK_16


@internal
@pure
def _threshold(dataset: uint256) -> uint256:
    """
    @dev Returns the approval threshold of a dataset word.
    @param dataset The packed dataset word.
    @return uint256 The threshold in basis points.
    """
    return (dataset >> THRESHOLD_SHIFT) & MASK_16


@internal
@pure
def _registry_length(dataset: uint256) -> uint256:
    """
    @dev Returns the registry length of a dataset word.
    @param dataset The packed dataset word.
    @return uint256 The number of registry entries.
    """
    return dataset >> LENGTH_SHIFT


@internal
@pure
def _pack_info(initiator: address, quality_cap_bps: uint256, min_voting_period: uint256) -> uint256:
    """
    @dev Packs a dataset info word, with no proposal yet.
    @param initiator The 20-byte initiator address.
    @param quality_cap_bps The quality weight cap in basis points.
    @param min_voting_period The minimum voting period in seconds.
    @return uint256 The packed info word.
    """
    return convert(initiator, uint256) | (quality_cap_bps << CAP_SHIFT) | (min_voting_period << MIN_VOTING_SHIFT)


@internal
@pure
def _initiator(info: uint256) -> address:
    """
    @dev Returns the initiator of a dataset info word.
    @param info The packed info word.
    @return address The 20-byte initiator address.
    """
    return convert(info & MASK_160, address)


@internal
@pure
def _quality_cap(info: uint256) -> uint256:
    """
    @dev Returns the quality weight cap of a dataset info word.
    @param info The packed info word.
    @return uint256 The cap in basis points.
    """
    return (info >> CAP_SHIFT) & MASK_32


@internal
@pure
def _min_voting_period(info: uint256) -> uint256:
    """
    @dev Returns the minimum voting period of a dataset info word.
    @param info The packed info word.
    @return uint256 The minimum voting period in seconds.
    """
    return (info >> MIN_VOTING_SHIFT) & MASK_32


@internal
@pure
def _proposal_count(info: uint256) -> uint256:
    """
    @dev Returns the number of proposals of a dataset info word.
    @param info The packed info word.
    @return uint256 The number of proposals made.
    """
    return info >> COUNT_SHIFT


@internal
@pure
def _pack_clock(
    snapshot_block: uint256, settle_from: uint256, voting_opens: uint256, commit_end: uint256
) -> uint256:
    """
    @dev Packs a proposal clock, with no commitment or reveal yet.
    @param snapshot_block The block whose closing balances weigh
           the votes.
    @param settle_from The earliest time (UNIX seconds) at which
           the outcome may be settled before the deadline.
    @param voting_opens The time voting opens (the reveal phase
           ends).
    @param commit_end The time the commit phase ends (the reveal
           phase starts).
    @return uint256 The packed clock.
    """
    return (
        snapshot_block
        | (settle_from << SETTLE_SHIFT)
        | (voting_opens << OPENS_SHIFT)
        | (commit_end << COMMIT_END_SHIFT)
    )


@internal
@pure
def _voting_opens(clock: uint256) -> uint256:
    """
    @dev Returns when voting opens (the evaluation is over).
    @param clock The packed clock.
    @return uint256 The time (UNIX seconds).
    """
    return (clock >> OPENS_SHIFT) & MASK_40


@internal
@pure
def _commit_end(clock: uint256) -> uint256:
    """
    @dev Returns when the commit phase ends.
    @param clock The packed clock.
    @return uint256 The time (UNIX seconds).
    """
    return (clock >> COMMIT_END_SHIFT) & MASK_40


@internal
@pure
def _commits(clock: uint256) -> uint256:
    """
    @dev Returns the number of evaluators' commitments.
    @param clock The packed clock.
    @return uint256 The number of commitments.
    """
    return (clock >> COMMITS_SHIFT) & MASK_8


@internal
@pure
def _reveals(clock: uint256) -> uint256:
    """
    @dev Returns the number of scores revealed.
    @param clock The packed clock.
    @return uint256 The number of reveals.
    """
    return (clock >> REVEALS_SHIFT) & MASK_8


@internal
@pure
def _pack_rules(commit_period: uint256, reveal_period: uint256, fee: uint256, deposit: uint256) -> uint256:
    """
    @dev Packs a dataset rules word.
    @param commit_period The commit phase in seconds.
    @param reveal_period The reveal phase in seconds.
    @param fee The evaluation fee per proposal in wei.
    @param deposit The deposit per proposal in wei.
    @return uint256 The packed rules word.
    """
    return (
        commit_period | (reveal_period << REVEAL_PERIOD_SHIFT) | (fee << FEE_SHIFT) | (deposit << DEPOSIT_SHIFT)
    )


@internal
@pure
def _commit_period(rules: uint256) -> uint256:
    """
    @dev Returns the commit period of a rules word.
    @param rules The packed rules word.
    @return uint256 The commit phase in seconds.
    """
    return rules & MASK_32


@internal
@pure
def _reveal_period(rules: uint256) -> uint256:
    """
    @dev Returns the reveal period of a rules word.
    @param rules The packed rules word.
    @return uint256 The reveal phase in seconds.
    """
    return (rules >> REVEAL_PERIOD_SHIFT) & MASK_32


@internal
@pure
def _fee(rules: uint256) -> uint256:
    """
    @dev Returns the evaluation fee of a rules word.
    @param rules The packed rules word.
    @return uint256 The fee in wei.
    """
    return (rules >> FEE_SHIFT) & MASK_96


@internal
@pure
def _deposit(rules: uint256) -> uint256:
    """
    @dev Returns the proposal deposit of a rules word.
    @param rules The packed rules word.
    @return uint256 The deposit in wei.
    """
    return rules >> DEPOSIT_SHIFT


@internal
@pure
def _snapshot_block(clock: uint256) -> uint256:
    """
    @dev Returns the snapshot block of a proposal clock.
    @param clock The packed clock.
    @return uint256 The block number.
    """
    return clock & MASK_64


@internal
@pure
def _settle_from(clock: uint256) -> uint256:
    """
    @dev Returns the earliest early settlement of a proposal clock.
    @param clock The packed clock.
    @return uint256 The time (UNIX seconds).
    """
    return (clock >> SETTLE_SHIFT) & MASK_40


@internal
@pure
def _pack_terms(contributor: address, examples: uint256, length: uint256, weight_bps: uint256) -> uint256:
    """
    @dev Packs proposal terms.
    @param contributor The 20-byte contributor address.
    @param examples The number of examples.
    @param length The registry length when the proposal was created.
    @param weight_bps The quality weight in basis points.
    @return uint256 The packed terms.
    """
    return (
        convert(contributor, uint256)
        | (examples << EXAMPLES_SHIFT)
        | (length << SNAPSHOT_LENGTH_SHIFT)
        | (weight_bps << WEIGHT_SHIFT)
    )


@internal
@pure
def _contributor(terms: uint256) -> address:
    """
    @dev Returns the contributor of proposal terms.
    @param terms The packed terms.
    @return address The 20-byte contributor address.
    """
    return convert(terms & MASK_160, address)


@internal
@pure
def _examples(terms: uint256) -> uint256:
    """
    @dev Returns the number of examples of proposal terms.
    @param terms The packed terms.
    @return uint256 The number of examples.
    """
    return (terms >> EXAMPLES_SHIFT) & MASK_32


@internal
@pure
def _snapshot_length(terms: uint256) -> uint256:
    """
    @dev Returns the registry length recorded in proposal terms.
    @param terms The packed terms.
    @return uint256 The registry length at the proposal's creation.
    """
    return (terms >> SNAPSHOT_LENGTH_SHIFT) & MASK_32


@internal
@pure
def _weight(terms: uint256) -> uint256:
    """
    @dev Returns the quality weight of proposal terms.
    @param terms The packed terms.
    @return uint256 The quality weight in basis points.
    """
    return terms >> WEIGHT_SHIFT


@internal
@pure
def _with_weight(terms: uint256, weight_bps: uint256) -> uint256:
    """
    @dev Returns proposal terms with their quality weight replaced.
    @param terms The packed terms.
    @param weight_bps The new quality weight in basis points.
    @return uint256 The updated terms.
    """
    return (terms & ~(MASK_32 << WEIGHT_SHIFT)) | (weight_bps << WEIGHT_SHIFT)


@internal
@pure
def _pack_box(deadline: uint256, status: uint8) -> uint256:
    """
    @dev Packs an empty ballot box (no votes yet).
    @param deadline The voting deadline (UNIX seconds).
    @param status The status.
    @return uint256 The packed ballot box.
    """
    return (deadline << DEADLINE_SHIFT) | (convert(status, uint256) << STATUS_SHIFT)


@internal
@pure
def _yes(box: uint256) -> uint256:
    """
    @dev Returns the weight cast in favour in a ballot box.
    @param box The packed ballot box.
    @return uint256 The yes weight.
    """
    return box & MASK_104


@internal
@pure
def _no(box: uint256) -> uint256:
    """
    @dev Returns the weight cast against in a ballot box.
    @param box The packed ballot box.
    @return uint256 The no weight.
    """
    return (box >> NO_SHIFT) & MASK_104


@internal
@pure
def _deadline(box: uint256) -> uint256:
    """
    @dev Returns the voting deadline of a ballot box.
    @param box The packed ballot box.
    @return uint256 The deadline (UNIX seconds).
    """
    return (box >> DEADLINE_SHIFT) & MASK_40


@internal
@pure
def _status(box: uint256) -> uint8:
    """
    @dev Returns the status of a ballot box.
    @param box The packed ballot box.
    @return uint8 The status.
    """
    return convert(box >> STATUS_SHIFT, uint8)


@internal
@pure
def _ballot_voted(ballot: uint256) -> bool:
    """
    @dev Returns whether a packed ballot was cast.
    @param ballot The packed ballot.
    @return bool `True` if cast.
    """
    return ballot & VOTED_BIT != 0


@internal
@pure
def _ballot_support(ballot: uint256) -> bool:
    """
    @dev Returns the choice of a packed ballot.
    @param ballot The packed ballot.
    @return bool `True` if in favour.
    """
    return ballot & SUPPORT_BIT != 0


@internal
@pure
def _ballot_weight(ballot: uint256) -> uint256:
    """
    @dev Returns the weight of a packed ballot.
    @param ballot The packed ballot.
    @return uint256 The vote weight.
    """
    return ballot & MASK_104


@internal
@pure
def _entry_snapshot(entry: uint256) -> uint256:
    """
    @dev Returns the snapshot id n of a registry entry's proposal.
    @param entry The packed registry entry.
    @return uint256 The snapshot id.
    """
    return entry & MASK_32


@internal
@pure
def _entry_supply(entry: uint256) -> uint256:
    """
    @dev Returns the cumulative share supply after a registry entry.
    @param entry The packed registry entry.
    @return uint256 The share supply.
    """
    return (entry >> SUPPLY_SHIFT) & MASK_104


@internal
@pure
def _entry_block(entry: uint256) -> uint256:
    """
    @dev Returns the block number of a registry entry.
    @param entry The packed registry entry.
    @return uint256 The block number.
    """
    return (entry >> BLOCK_SHIFT) & MASK_64


@internal
@pure
def _entry_first(entry: uint256) -> uint256:
    """
    @dev Returns the index of the first registry entry written in
         the same block as this one.
    @param entry The packed registry entry.
    @return uint256 The entry index.
    """
    return (entry >> FIRST_SHIFT) & MASK_32
