"""No worker sees more than 5% of a training set: the exposure ledger.

The ledger counts the *distinct* example ids each worker has ever been sent, per dataset, and
the same for each owner over all of its workers (one person running twenty workers must not
see twenty times 5%). Before a unit's shard is sent, :meth:`ExposureLedger.grant` checks both
counts after adding the shard's new ids and refuses with ``NotPermitted`` past the limit;
examples a holder has seen already cost nothing, which is how the coordinator keeps a worker
on the shards it knows. Shards themselves are cut by :func:`cut_shards` no larger than the
limit, so every shard fits a fresh worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from functools import partial

from databright.compute.state import ComputeState
from databright.errors import InvalidArgument, NotPermitted

__all__ = [
    "EXPOSURE_LIMIT",
    "ExposureLedger",
    "count_after",
    "cut_shards",
    "exposure_cap",
    "owner_holder",
]

EXPOSURE_LIMIT = 0.05
"""The largest share of a dataset's examples any worker or owner may ever be sent."""


def exposure_cap(dataset_size: int, limit: float = EXPOSURE_LIMIT) -> int:
    """The most distinct examples one holder may see of a dataset of ``dataset_size``."""
    return math.floor(dataset_size * limit + 1e-9)


def count_after(count: int, ids: Collection[int], cap: int, seen: Callable[[], set[int]]) -> int:
    """A holder's count once ``ids`` are sent, given its ``count`` now. Which ids are new is
    asked (``seen()``: those of ``ids`` it has been sent, or more) only of a holder that could
    pass ``cap`` with them: one far below it gets an upper bound that is within the cap."""
    if count + len(ids) <= cap:
        return count + len(ids)
    return count + len(set(ids) - seen())


def owner_holder(owner: str) -> str:
    """The ledger's name for an owner, kept apart from worker addresses."""
    return "owner:" + owner


def cut_shards(example_ids: Sequence[int], shard_size: int) -> list[tuple[int, ...]]:
    """Consecutive shards of at most ``shard_size`` ids (the last may be shorter)."""
    if shard_size < 1:
        raise InvalidArgument(
            f"a shard must hold at least one example, got {shard_size}; the dataset is too "
            "small for its 5% exposure limit."
        )
    ids = list(example_ids)
    return [tuple(ids[i : i + shard_size]) for i in range(0, len(ids), shard_size)]


class ExposureLedger:
    """Exposure counts in a :class:`ComputeState`, with the limit enforced."""

    def __init__(self, state: ComputeState, limit: float = EXPOSURE_LIMIT) -> None:
        if not 0.0 < limit <= 1.0:
            raise InvalidArgument(f"the exposure limit is a fraction in (0, 1], got {limit!r}.")
        self.state = state
        self.limit = limit

    def new_cost(self, dataset: str, holder: str, example_ids: Sequence[int]) -> int:
        """How many of ``example_ids`` the holder has not been sent yet."""
        ids = set(example_ids)
        return len(ids - self.state.exposed_among(dataset, holder, ids))

    def totals(
        self, dataset: str, size: int, worker: str, owner: str, example_ids: Collection[int]
    ) -> list[tuple[str, int]]:
        """Per holder (the worker, its owner): its count once ``example_ids`` are sent
        (:func:`count_after`: a holder far below the cap costs one count, not a lookup)."""
        cap = exposure_cap(size, self.limit)
        ids = set(example_ids)
        return [
            (
                holder,
                count_after(
                    self.state.exposure_count(dataset, holder),
                    ids,
                    cap,
                    partial(self.state.exposed_among, dataset, holder, ids),
                ),
            )
            for holder in (worker, owner_holder(owner))
        ]

    def fits(
        self, dataset: str, size: int, worker: str, owner: str, example_ids: Sequence[int]
    ) -> bool:
        """Whether sending ``example_ids`` keeps the worker and its owner within the limit."""
        cap = exposure_cap(size, self.limit)
        totals = self.totals(dataset, size, worker, owner, example_ids)
        return all(total <= cap for _, total in totals)

    def grant(
        self,
        dataset: str,
        size: int,
        worker: str,
        owner: str,
        example_ids: Sequence[int],
        *,
        totals: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        """Record that ``example_ids`` go to ``worker``, or refuse with ``NotPermitted``.
        ``totals``: what :meth:`totals` gave for the same arguments with nothing recorded
        since (a caller that checked first need not count again)."""
        cap = exposure_cap(size, self.limit)
        if totals is None:
            totals = self.totals(dataset, size, worker, owner, example_ids)
        for (_, total), who in zip(totals, (f"worker {worker}", f"owner {owner}"), strict=True):
            if total > cap:
                raise NotPermitted(
                    f"{who} would have seen {total} of the {size} examples of dataset {dataset}, "
                    f"over the {self.limit:.0%} limit of {cap}; it gets no more of this dataset."
                )
        ids = set(example_ids)
        for holder, _ in totals:
            self.state.add_exposure(dataset, holder, ids)

    def report(self, dataset: str, size: int) -> dict[str, float]:
        """Each holder's share of the dataset seen so far (the per-job exposure report)."""
        return {h: n / size for h, n in sorted(self.state.exposure_counts(dataset).items())}
