"""Domain types shared across packages."""

from __future__ import annotations

from typing import NewType

from eth_typing import ChecksumAddress

__all__ = ["Address", "DatasetId", "ProposalId", "Wei"]

Wei = NewType("Wei", int)
DatasetId = NewType("DatasetId", int)
ProposalId = NewType("ProposalId", int)
Address = NewType("Address", ChecksumAddress)  # EIP-55 checksummed hex
