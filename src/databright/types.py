"""Domain types shared across packages."""

from __future__ import annotations

from typing import Final, NewType

from eth_typing import ChecksumAddress

__all__ = ["UINT256_MAX", "Address", "DatasetId", "ProposalId", "Wei"]

Wei = NewType("Wei", int)
DatasetId = NewType("DatasetId", int)
ProposalId = NewType("ProposalId", int)
Address = NewType("Address", ChecksumAddress)  # EIP-55 checksummed hex

UINT256_MAX: Final = 2**256 - 1  # the EVM word: the largest amount, id or count a contract holds
