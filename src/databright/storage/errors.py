"""Storage-specific refinements of DataBright's error classes.

They subclass the roots in :mod:`databright.errors` so that callers can catch either the broad
class (``StorageError``, ``InvalidProposal``) or the precise one, and every message is one
sentence that says what is wrong and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from databright.errors import DataBrightError, InvalidProposal, NotFound, StorageError

__all__ = [
    "BlobCorrupt",
    "BlobNotFound",
    "InvalidCID",
    "InvalidSchema",
    "ManifestMismatch",
    "ProposalProblem",
    "ProposalRejected",
]


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
