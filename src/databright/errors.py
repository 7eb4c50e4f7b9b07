"""The one error root of DataBright.

Every error a user can meet is a ``DataBrightError`` whose message is one sentence saying what
was wrong and what to do. Subclasses also subclass the matching built-in, so callers that only
know Python's exceptions still catch them sensibly (as web3.py does).
"""

from __future__ import annotations

__all__ = [
    "ChainError",
    "ContractNotDeployed",
    "ContractReverted",
    "DataBrightError",
    "InsufficientFunds",
    "InvalidProposal",
    "NodeError",
    "NodeUnreachable",
    "NonceTooLow",
    "NotFound",
    "StorageError",
    "StoreCorrupt",
    "ValuationError",
    "WrongChain",
]


class DataBrightError(Exception):
    """Root of every error DataBright raises on purpose."""


class NotFound(DataBrightError, LookupError):
    """An id, address or file that does not exist."""


# --- chain -------------------------------------------------------------------------------


class ChainError(DataBrightError):
    """Something went wrong talking to an EVM node."""


class NodeUnreachable(ChainError, ConnectionError):
    """No node answers at the RPC URL."""


class WrongChain(ChainError, ValueError):
    """The node serves another chain than the one expected."""


class InsufficientFunds(ChainError, ValueError):
    """The sender cannot pay for value plus gas."""


class ContractReverted(ChainError, RuntimeError):
    """A call or transaction reverted; ``reason`` holds the contract's revert string."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class NonceTooLow(ChainError, RuntimeError):
    """Someone else used the account; the local nonce was behind."""


class ContractNotDeployed(ChainError, LookupError):
    """No code at a recorded address (the chain was reset) or nothing recorded yet."""


class NodeError(DataBrightError, RuntimeError):
    """The embedded node cannot start or be managed (port in use, wrong data dir)."""


class StoreCorrupt(NodeError):
    """The on-disk state of the embedded node is damaged; it refuses to start."""


# --- storage, market, valuation ---------------------------------------------------------


class StorageError(DataBrightError, OSError):
    """A blob is missing or does not match its content address."""


class InvalidProposal(DataBrightError, ValueError):
    """A proposal's data breaks the dataset's schema or repeats known examples."""


class ValuationError(DataBrightError, ValueError):
    """A valuation cannot be computed from the inputs given."""
