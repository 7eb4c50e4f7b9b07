"""The model registry as the indexed events leave it: one :class:`IndexedModel` row per model.

A model's row is rebuilt from all of its events, in chain order, whenever a batch brings new
ones or a reorg rolls some back. Rebuilding (rather than adding the batch's events to the row)
is what keeps the row right when a range is replayed, since a replayed event is not inserted
twice but would be counted twice. The price of that is reading a touched model's events again:
settlements are batched by the serving node, so a model has few.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from databright.server.index.schema import IndexedBlock, IndexedEvent, IndexedModel

__all__ = ["MODEL_EVENTS", "VersionState", "fold_versions", "rebuild_models"]

#: The model market's events that change a model's row (a user's escrow events do not).
MODEL_EVENTS: Final = frozenset(
    {
        "ModelRegistered",
        "VersionPublished",
        "PriceSet",
        "NodeSet",
        "BenchmarkCommitted",
        "BenchmarkRevealed",
        "BenchmarkRequested",
        "BenchmarkFinalized",
        "BestCheckpoint",
        "Settled",
    }
)
ZERO32: Final = "0x" + "00" * 32


@dataclass
class VersionState:
    """One version of a model and its benchmark, as its events tell it."""

    version: int
    checkpoint_digest: str
    weights_root: str
    card_digest: str
    published_block: int
    commit_deadline: int
    reveal_deadline: int
    commits: list[dict[str, Any]] = field(default_factory=list)
    reveals: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    score_bps: int | None = None  # the finalized median
    best: bool = False  # became its dataset's best checkpoint


def fold_versions(events: Iterable[IndexedEvent]) -> dict[int, VersionState]:
    """A model's versions and benchmarks from its events (in chain order)."""
    versions: dict[int, VersionState] = {}
    for e in events:
        a = e.args
        if e.name == "VersionPublished":
            n = int(a["version"])
            versions[n] = VersionState(
                n,
                str(a["checkpoint_digest"]),
                str(a["weights_root"]),
                str(a["card_digest"]),
                e.block_number,
                int(a["commit_deadline"]),
                int(a["reveal_deadline"]),
            )
            continue
        v = versions.get(int(a.get("version", 0)))
        if v is None:
            continue
        if e.name == "BenchmarkCommitted":
            v.commits.append({"evaluator": str(a["evaluator"]), "block": e.block_number})
        elif e.name == "BenchmarkRevealed":
            v.reveals.append(
                {
                    "evaluator": str(a["evaluator"]),
                    "score_bps": int(a["score_bps"]),
                    "report_digest": str(a["report_digest"]),
                    "block": e.block_number,
                }
            )
        elif e.name == "BenchmarkRequested":
            v.requests += 1
            v.commit_deadline = int(a["commit_deadline"])
            v.reveal_deadline = int(a["reveal_deadline"])
        elif e.name == "BenchmarkFinalized":
            v.score_bps = int(a["score_bps"])
        elif e.name == "BestCheckpoint":
            v.best = True
    return versions


def _model_row(events: list[IndexedEvent], registered_at: int) -> IndexedModel | None:
    registered = next((e for e in events if e.name == "ModelRegistered"), None)
    if registered is None:  # rolled back with its registration
        return None
    r = registered.args
    row = IndexedModel(
        model_id=int(r["model_id"]),
        dataset_id=int(r["dataset_id"]),
        owner=str(r["owner"]),
        spec_digest=str(r["spec_digest"]),
        price=int(r["price"]),
        owner_bps=int(r["owner_bps"]),
        data_bps=int(r["data_bps"]),
        node_bps=int(r["node_bps"]),
        node=str(r["node"]),
        registered_block=registered.block_number,
        registered_at=registered_at,
        settlements=0,
        settled_wei=0,
        to_dataset_wei=0,
    )
    for e in events:
        if e.name == "PriceSet":
            row.price = int(e.args["price"])
        elif e.name == "NodeSet":
            row.node = str(e.args["node"])
        elif e.name == "Settled":
            row.settlements += 1
            row.settled_wei += int(e.args["amount"])
            row.to_dataset_wei += int(e.args["data_amount"])
    versions = fold_versions(events)
    # Publishing makes the new version the served one; versions are numbered in order.
    current = versions[max(versions)] if versions else None
    row.versions = current.version if current else 0
    row.current_version = row.versions
    row.checkpoint_digest = current.checkpoint_digest if current else ZERO32
    row.card_digest = current.card_digest if current else ZERO32
    row.weights_root = current.weights_root if current else ZERO32
    row.benchmarked = current is not None and current.score_bps is not None
    row.score_bps = (current.score_bps or 0) if current else 0
    return row


def rebuild_models(session: Session, model_ids: Iterable[int]) -> None:
    """Rebuild the rows of these models from their indexed events (dropping a model whose
    registration is no longer indexed), inside the caller's transaction."""
    E = IndexedEvent
    for model_id in sorted(set(model_ids)):
        events = list(
            session.scalars(
                select(E)
                .where(E.model_id == model_id, E.name.in_(MODEL_EVENTS))
                .order_by(E.block_number, E.log_index)
            )
        )
        session.execute(delete(IndexedModel).where(IndexedModel.model_id == model_id))
        first = next((e for e in events if e.name == "ModelRegistered"), None)
        block = session.get(IndexedBlock, first.block_number) if first is not None else None
        row = _model_row(events, block.timestamp if block is not None else 0)
        if row is not None:
            session.add(row)
    session.flush()
