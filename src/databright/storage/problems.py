"""Collecting what is wrong with a proposal, so that one rejection lists every problem.

A check that finds bad rows adds them here and reading goes on; only a problem that makes the
whole file unusable (:meth:`Problems.fatal`) stops it. The problems end up in one
:class:`~databright.errors.ProposalRejected`: whole-file problems first, then by row, at most
``limit`` of them, its message the first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import numpy as np
import numpy.typing as npt

from databright.errors import ProposalProblem, ProposalRejected

__all__ = ["Problems"]


class Problems:
    """Problems of one file, kept in file order, at most one per check and row."""

    def __init__(self, source: str, limit: int) -> None:
        self.source = source
        self.limit = max(1, limit)
        self.items: list[ProposalProblem] = []
        self.count = 0

    def fatal(self, message: str, row: int | None = None) -> NoReturn:
        """A problem that stops reading (the file as a whole is unusable)."""
        problem = ProposalProblem(self.source, row, message)
        items = sorted([*self.items, problem], key=_problem_order)[: self.limit]
        raise ProposalRejected(items, self.count + 1)

    def add(self, row: int | None, message: str) -> None:
        """One problem; reading goes on (``row`` 1-based, ``None`` for the whole file)."""
        self.count += 1
        if len(self.items) < 4 * self.limit:
            self.items.append(ProposalProblem(self.source, row, message))

    def add_rows(self, rows: npt.NDArray[np.intp], message: Callable[[int], str]) -> None:
        """Rows (0-based, ascending) that fail one check; only the first few get a message."""
        self.count += len(rows)
        for r in rows[: self.limit].tolist():
            self.items.append(ProposalProblem(self.source, r + 1, message(r)))

    def raise_if_any(self) -> None:
        """Raise :class:`ProposalRejected` with the first ``limit`` problems, if there are any."""
        if self.count:
            items = sorted(self.items, key=_problem_order)[: self.limit]
            raise ProposalRejected(items, self.count)


def _problem_order(p: ProposalProblem) -> tuple[int, int]:
    return (0, 0) if p.row is None else (1, p.row)
