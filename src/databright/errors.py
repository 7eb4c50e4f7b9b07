"""The one error root of DataBright.

Every error a user can meet is a ``DataBrightError`` whose message is one sentence saying what
was wrong and what to do. Subclasses also subclass the matching built-in, so callers that only
know Python's exceptions still catch them sensibly (as web3.py does).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BlobCorrupt",
    "BlobNotFound",
    "BlobSourceFailed",
    "ChainError",
    "ChainIndexError",
    "CheckpointMismatch",
    "ContractNotDeployed",
    "ContractReverted",
    "DamagedRecord",
    "DataBrightError",
    "DuplicateSubmission",
    "InsufficientFunds",
    "InvalidAmount",
    "InvalidArgument",
    "InvalidCID",
    "InvalidModelSpec",
    "InvalidProposal",
    "InvalidProposalId",
    "InvalidReceipt",
    "InvalidSchema",
    "KeystoreError",
    "ManifestMismatch",
    "ModelError",
    "NodeError",
    "NodeUnreachable",
    "NonceTooLow",
    "NotFound",
    "NotPermitted",
    "ProposalProblem",
    "ProposalRejected",
    "RateLimited",
    "StorageError",
    "StoreCorrupt",
    "ValuationError",
    "WrongChain",
    "WrongPassword",
]


class DataBrightError(Exception):
    """Root of every error DataBright raises on purpose."""


class NotFound(DataBrightError, LookupError):
    """An id, address or file that does not exist."""


class InvalidArgument(DataBrightError, ValueError):
    """A value handed to DataBright is malformed or out of range (an address, an amount)."""


class InvalidAmount(InvalidArgument):
    """An amount of ETH that is not a positive decimal number of whole wei."""


class InvalidProposalId(InvalidArgument):
    """A proposal reference that is neither an id nor ``DATASET/N``."""


class KeystoreError(DataBrightError, ValueError):
    """A keystore file cannot be read or decrypted."""


class NotPermitted(DataBrightError, PermissionError):
    """The account lacks the role an action needs (an evaluator, an initiator)."""


class RateLimited(NotPermitted):
    """An account acted more often than the server allows; it may try again later."""


class DuplicateSubmission(InvalidArgument):
    """The same signed submission again (a replay); it was accepted once already."""


class WrongPassword(KeystoreError):
    """A keystore file is intact but the password does not open it."""


class DamagedRecord(DataBrightError, ValueError):
    """A file DataBright wrote itself (a deployment record) no longer parses."""


# --- chain -------------------------------------------------------------------------------


class ChainError(DataBrightError):
    """Something went wrong talking to an EVM node.

    ``code`` is the JSON-RPC error code the node answered with and ``data`` the error's
    ``data`` field (for a revert: the ABI-encoded revert payload), when the node gave them.
    """

    def __init__(self, message: str, *, code: int | None = None, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class NodeUnreachable(ChainError, ConnectionError):
    """No node answers at the RPC URL."""


class WrongChain(ChainError, ValueError):
    """The node serves another chain than the one expected."""


class InsufficientFunds(ChainError, ValueError):
    """The sender cannot pay for value plus gas."""


class ContractReverted(ChainError, RuntimeError):
    """A call or transaction reverted; ``reason`` is what its revert data says (the revert
    string, a panic or a custom error, see ``databright.chain.reverts``), ``None`` when the
    contract gave no reason."""

    def __init__(
        self,
        message: str,
        reason: str | None = None,
        *,
        code: int | None = None,
        data: str | None = None,
    ) -> None:
        super().__init__(message, code=code, data=data)
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


class ChainIndexError(DataBrightError, RuntimeError):
    """The server's index of chain events cannot be opened or does not fit the chain (another
    market, another chain)."""


class InvalidProposal(DataBrightError, ValueError):
    """A proposal's data breaks the dataset's schema or repeats known examples."""


class InvalidCID(DataBrightError, ValueError):
    """A string is not a DataBright content address (CIDv1, raw codec, sha2-256)."""


class BlobNotFound(NotFound, StorageError):
    """The store holds no blob under this CID (a ``NotFound`` and a ``StorageError``)."""

    def __init__(self, message: str, cid: str) -> None:
        super().__init__(message)
        self.cid = cid


class BlobCorrupt(StorageError):
    """A stored blob no longer hashes to its CID; its bytes are never handed out."""

    def __init__(self, message: str, cid: str) -> None:
        super().__init__(message)
        self.cid = cid


class BlobSourceFailed(StorageError):
    """A blob source (a peer's store, a gateway) could not deliver a blob: unreachable, an
    error answer, too large, or bytes that do not match the CID asked for."""


class ManifestMismatch(StorageError):
    """Downloaded data disagrees with its manifest or Merkle root.

    ``index`` is the 0-based example index that failed, or ``None`` when the mismatch is not
    about one example (a count or a root).
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class InvalidSchema(DataBrightError, ValueError):
    """A dataset schema is inconsistent (unknown dtype, labels on a regression task, ...)."""


@dataclass(frozen=True)
class ProposalProblem:
    """One thing wrong with a proposal file.

    ``row`` is the 1-based example number in the file (a CSV header is not counted), or
    ``None`` when the problem concerns the whole file.
    """

    file: str
    row: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file} row {self.row}"
        return f"{where}: {self.message}"


class ProposalRejected(InvalidProposal):
    """A proposal file breaks the dataset's schema; nothing of it was stored.

    The message is the first problem; ``problems`` holds the first few (in file order) and
    ``problem_count`` how many were found in all, so a contributor can fix them in one go.
    """

    def __init__(self, problems: list[ProposalProblem], problem_count: int | None = None) -> None:
        if not problems:
            raise ValueError("ProposalRejected needs at least one problem")
        count = len(problems) if problem_count is None else problem_count
        message = str(problems[0])
        more = count - 1
        if more and len(problems) == count:
            message += f" (and {more} more problem{'s' if more > 1 else ''}, listed in .problems)"
        elif more:
            message += f" (and {more} more problems; .problems lists the first {len(problems)})"
        super().__init__(message)
        self.problems: tuple[ProposalProblem, ...] = tuple(problems)
        self.problem_count = count


class ValuationError(DataBrightError, ValueError):
    """A valuation cannot be computed from the inputs given."""


class ModelError(DataBrightError, ValueError):
    """A model, its spec or its checkpoint is not usable as given."""


class InvalidModelSpec(ModelError):
    """A declarative model spec is malformed or builds no valid network (unknown layer,
    shapes that do not connect, too many parameters)."""


class CheckpointMismatch(ModelError):
    """A checkpoint's tensors do not match its spec, or its bytes not its content address."""


class InvalidReceipt(InvalidArgument):
    """A prediction receipt is badly signed, stale, or owes more than the user deposited."""
