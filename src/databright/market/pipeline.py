"""Many market operations with their transactions in flight together.

The sequential SDK (``Market.propose``, ``vote``, ``finalize``) waits for each receipt before
the next transaction; these functions send a whole phase with consecutive nonces and await the
receipts together (``Gateway.submit`` and ``Gateway.wait_many``), with the same checks before
anything is sent and the same results: the same proposals, votes, events and shares.

They return what the chain said in their receipts (the ``ProposalCreated`` and
``ProposalFinalized`` events, the vote receipts) and read nothing back: reading each proposal
afterwards (``Market.proposal``) costs about as much as sending it. Ask ``Market.proposal``
for the ones you need.

A phase waits for the one before it only where the contract or a gas estimate needs it: every
``propose`` needs its commitment mined in an earlier block, a vote needs its proposal to exist,
and a finalize needs the votes it counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databright.chain.gateway import Event, Receipt, Submitted
from databright.errors import InsufficientFunds, InvalidProposal
from databright.market.market import Market, proposal_commitment, refuse_repeat
from databright.storage import (
    Examples,
    MerkleTree,
    cid_to_digest,
    read_proposal,
    store_proposal,
    validate_examples,
)

__all__ = [
    "PreparedProposal",
    "finalize_many",
    "prepare_proposals",
    "propose_many",
    "register_proposals",
    "vote_many",
]


def _examples(source: str | Path | Examples, market: Market, dataset_id: int) -> Examples:
    schema = market.schema(dataset_id)
    # As Market.propose: only the file itself is checked for repeats; copies of others' data
    # are the evaluators' to find.
    if isinstance(source, Examples):
        return validate_examples(source.X, source.y, schema, source=source.source)
    return read_proposal(source, schema)


@dataclass(frozen=True)
class PreparedProposal:
    """A proposal checked and stored, ready to register: the terms ``propose`` takes, the
    payment it carries and its commitment transaction if already sent."""

    source: str
    terms: tuple[int, bytes, bytes, int, bytes]
    payment: int
    commitment: Submitted | None = None


def propose_many(
    market: Market, dataset_id: int, sources: Sequence[str | Path | Examples]
) -> list[Event]:
    """Validate, store and register several proposals for ``dataset_id``, in this order; their
    ``ProposalCreated`` events (``args["proposal_id"]`` is each one's id).

    Every check runs on every proposal before anything is stored or sent, so a refused file
    costs no gas. Each commitment goes out as soon as its proposal is stored, so the node mines
    while the next one is stored; then all proposals go out together.
    """
    return register_proposals(market, prepare_proposals(market, dataset_id, sources, commit=True))


def prepare_proposals(
    market: Market,
    dataset_id: int,
    sources: Sequence[str | Path | Examples],
    commit: bool = False,
) -> list[PreparedProposal]:
    """The first half of ``propose_many``: check every proposal, then store each (and, with
    ``commit``, send its commitment without waiting). Runs beside another batch's
    transactions, in another thread, to keep the client busy while the node mines."""
    schema = market.schema(dataset_id)
    batch = [_examples(s, market, dataset_id) for s in sources]
    if not batch:
        return []
    roots: dict[bytes, str] = {}
    for ex in batch:
        root = MerkleTree(ex.hashes).root
        if root in roots:
            raise InvalidProposal(
                f"{ex.source}: these exact examples are also in {roots[root]}; propose them once"
            )
        roots[root] = ex.source
    # Both checks of every proposal in one batch request.
    checks: list[tuple[str, tuple[Any, ...]]] = [
        ("manifest_root_taken", (int(dataset_id), root)) for root in roots
    ]
    checks += [("root_owner", (root,)) for root in roots]
    answers = market.contract.call_many(checks)
    n = len(batch)
    for ex, taken, owner in zip(batch, answers[:n], answers[n:], strict=True):
        refuse_repeat(ex.source, int(dataset_id), taken, owner, market.address)
    d = market.contract.dataset(dataset_id)
    payment = d.evaluation_fee + d.deposit
    balance = market.gateway.balance()
    if balance == 0 or balance < payment * len(batch):
        raise InsufficientFunds(
            f"account {market.address} holds too little ETH to pay gas"
            + (f" and {payment} wei with each of {len(batch)} proposals" if payment else "")
            + f" to propose on dataset {dataset_id}; fund it first"
        )
    out = []
    for ex in batch:
        stored = store_proposal(market.store, ex, schema)
        terms = (
            int(dataset_id),
            cid_to_digest(stored.data_cid),
            stored.merkle_root,
            stored.n_examples,
            cid_to_digest(stored.manifest_cid),
        )
        sent = (
            market.contract.submit("commit_proposal", proposal_commitment(market.address, *terms))
            if commit
            else None
        )
        out.append(PreparedProposal(ex.source, terms, payment, sent))
    return out


def register_proposals(market: Market, prepared: Sequence[PreparedProposal]) -> list[Event]:
    """The second half of ``propose_many``: commit to each proposal not committed yet, wait
    for every commitment, then propose them all; their ``ProposalCreated`` events."""
    if not prepared:
        return []
    gw, contract = market.gateway, market.contract
    # Every proposal lands in a later block than its commitment: all commitments are mined
    # before any proposal is sent.
    gw.wait_many(
        [
            p.commitment
            or contract.submit("commit_proposal", proposal_commitment(market.address, *p.terms))
            for p in prepared
        ]
    )
    receipts = gw.wait_many(
        [contract.submit("propose", *p.terms, value=p.payment) for p in prepared]
    )
    return [r.event("ProposalCreated") for r in receipts]


def vote_many(
    voters: Sequence[Market], proposal_ids: Sequence[int], support: bool
) -> list[list[Receipt]]:
    """Every market in ``voters`` (one per account) votes ``support`` on every proposal; the
    receipts per voter, in the order of ``proposal_ids``. All votes of all voters are in
    flight together."""
    pending = [
        [
            v.contract.submit("vote", int(pid), support, what=f"vote on proposal {int(pid)}")
            for pid in proposal_ids
        ]
        for v in voters
    ]
    return [v.gateway.wait_many(p) for v, p in zip(voters, pending, strict=True)]


def finalize_many(market: Market, proposal_ids: Sequence[int]) -> list[Event]:
    """Finalize every proposal in ``proposal_ids`` (their outcomes must be final); their
    ``ProposalFinalized`` events (status, registry index, shares minted, votes)."""
    receipts = market.gateway.wait_many(
        [
            market.contract.submit("finalize", int(pid), what=f"finalize proposal {int(pid)}")
            for pid in proposal_ids
        ]
    )
    return [r.event("ProposalFinalized") for r in receipts]
