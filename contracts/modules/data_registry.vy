# pragma version ~=0.4.3
# pragma nonreentrancy off
"""
@title DataBright Data Market Registry
@custom:contract-name data_registry
@license Apache-2.0
@notice The append-only registry of each dataset's accepted data. Entry
        0 is the dataset's initial data; every accepted proposal appends
        one entry. An entry is one packed word (see `packing`): the
        snapshot id n of the accepted proposal (its proposal id is
        `(dataset_id << 32) | n`), the cumulative share supply after it
        and the block in which it was registered. Entries are never
        changed or removed.

        The registry's length is not kept here: the composing contract
        keeps it in its dataset word, which it reads anyway, to save a
        storage read and write per acceptance. It passes the index to
        `_append`, which must be that length.

        Because only accepted proposals mint shares, the cumulative supply
        of the last entry is the dataset's share supply, and the supply
        after the entries that existed when a proposal was created is the
        supply its votes are weighed against.
"""


# @dev We import the stateless `packing` module for the
# entry layout.
from . import packing


# @dev Dataset id => registry index => packed entry (see
# `packing`).
_entries: HashMap[uint256, HashMap[uint256, uint256]]


@internal
def _append(dataset_id: uint256, index: uint256, sequence: uint256, supply: uint256, first: uint256):
    """
    @dev Writes registry entry `index` (the registry's current
         length) in the current block.
    @param dataset_id The 32-byte dataset id.
    @param index The 32-byte index of the new entry.
    @param sequence The number n of the accepted proposal.
    @param supply The cumulative share supply after the entry.
    @param first The index of the first entry of this block.
    """
    self._entries[dataset_id][index] = (
        (sequence & packing.MASK_32)
        | (supply << packing.SUPPLY_SHIFT)
        | (block.number << packing.BLOCK_SHIFT)
        | (first << packing.FIRST_SHIFT)
    )


@internal
@view
def _length_before_block(dataset_id: uint256, length: uint256) -> uint256:
    """
    @dev Returns how many of the first `length` entries were
         registered before the current block: the registry length
         at the end of the previous block.
    @param dataset_id The 32-byte dataset id.
    @param length The 32-byte registry length now (at least 1).
    @return uint256 The registry length at the end of the previous
            block.
    """
    last: uint256 = self._entries[dataset_id][unsafe_sub(length, 1)]
    if (last >> packing.BLOCK_SHIFT) & packing.MASK_64 != block.number:
        return length
    return (last >> packing.FIRST_SHIFT) & packing.MASK_32


@internal
@view
def _entry(dataset_id: uint256, index: uint256) -> uint256:
    """
    @dev Returns the packed registry entry `index` (0 past the end).
    @param dataset_id The 32-byte dataset id.
    @param index The 32-byte entry index.
    @return uint256 The packed entry.
    """
    return self._entries[dataset_id][index]


@internal
@view
def _supply_after(dataset_id: uint256, index: uint256) -> uint256:
    """
    @dev Returns the cumulative share supply after entry `index`.
    @param dataset_id The 32-byte dataset id.
    @param index The 32-byte entry index.
    @return uint256 The share supply.
    """
    return packing._entry_supply(self._entries[dataset_id][index])


@internal
@view
def _supply_at(dataset_id: uint256, length: uint256) -> uint256:
    """
    @dev Returns the share supply when the registry had `length`
         entries: the cumulative supply after entry `length - 1`,
         or, for `length == 0` (the initial data itself), after
         entry 0.
    @param dataset_id The 32-byte dataset id.
    @param length The registry length.
    @return uint256 The share supply.
    """
    # Inline unpacking: this runs on every finalization.
    if length == 0:
        return (self._entries[dataset_id][0] >> packing.SUPPLY_SHIFT) & packing.MASK_104
    return (self._entries[dataset_id][unsafe_sub(length, 1)] >> packing.SUPPLY_SHIFT) & packing.MASK_104
