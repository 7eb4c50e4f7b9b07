"""Pipelined market operations give what the sequential SDK gives, on both nodes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.errors import ContractReverted, InvalidProposal
from databright.market import SHARE_UNIT, STATUS_NAMES, Market
from databright.market.pipeline import (
    finalize_many,
    prepare_proposals,
    propose_many,
    register_proposals,
    vote_many,
)
from databright.storage import DatasetSchema, Examples, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(8,), dtype="float32", labels=tuple(range(3))
)


def _batch(seed: int, n: int = 5, source: str = "p") -> Examples:
    rng = np.random.default_rng(seed)
    return validate_examples(
        rng.random((n, 8), dtype=np.float32), rng.integers(0, 3, n), SCHEMA, source=source
    )


@pytest.fixture
def markets(node, tmp_path: Path) -> tuple[list[Market], Market]:
    """Three voters (the initiator first) and a contributor."""
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    initiator = Market.connect(node.url, node.accounts[0], tmp_path)
    voters = [initiator, initiator.as_account(node.accounts[1])]
    voters.append(initiator.as_account(node.accounts[2]))
    return voters, initiator.as_account(node.accounts[3])


def _dataset(voters: list[Market]) -> int:
    ds = voters[0].create_dataset("pipe", SCHEMA, _batch(0, 30, "initial"))
    token = voters[0].token(ds)
    for v in voters[1:]:
        token.transfer(v.address, 10 * SHARE_UNIT)
    return ds


def _summary(market: Market, ds: int) -> dict[str, object]:
    props = market.proposals(ds)
    return {
        "proposals": [
            (
                p.contributor,
                p.data_cid,
                p.manifest_root,
                p.examples,
                p.status,
                p.yes_votes,
                p.no_votes,
                p.prospective_shares,
                p.snapshot_supply,
            )
            for p in props
        ],
        "registry": [(e.data_cid, e.examples) for e in market.registry(ds)],
        "shareholders": sorted((s.address, s.shares) for s in market.shareholders(ds)),
    }


def test_pipelined_results_equal_sequential(markets: tuple[list[Market], Market]) -> None:
    voters, contributor = markets
    batches = [_batch(i) for i in range(1, 5)]
    seq, pipe = _dataset(voters), _dataset(voters)

    seq_ids = [contributor.propose(seq, ex).id for ex in batches]
    seq_votes = []
    for pid, support in zip(seq_ids, (True, True, False, True), strict=True):
        seq_votes += [v.vote(pid, support) for v in voters]
    for pid in seq_ids:
        contributor.finalize(pid)

    proposed = propose_many(contributor, pipe, batches)
    ids = [int(e.args["proposal_id"]) for e in proposed]
    assert [voters[0].proposal(i).status for i in ids] == ["pending"] * 4
    yes = vote_many(voters, [ids[0], ids[1], ids[3]], True)
    no = vote_many(voters, [ids[2]], False)
    finalized = finalize_many(contributor, ids)

    assert [STATUS_NAMES[e.args["status"]] for e in finalized] == [
        "accepted", "accepted", "rejected", "accepted"
    ]  # fmt: skip
    assert sum(e.args["shares"] for e in finalized) == contributor.shares_of(pipe)
    assert _summary(voters[0], pipe) == _summary(voters[0], seq)
    assert contributor.shares_of(pipe) == contributor.shares_of(seq) > 0
    pipe_events = sorted(
        (e.name, e.args["voter"], e.args["support"], e.args["weight"])
        for per_voter in (*yes, *no)
        for r in per_voter
        for e in r.events
    )
    seq_events = sorted(
        (e.name, e.args["voter"], e.args["support"], e.args["weight"])
        for r in seq_votes
        for e in r.events
    )
    assert pipe_events == seq_events


def test_a_revert_mid_pipeline_names_it_and_the_nonce_recovers(
    markets: tuple[list[Market], Market],
) -> None:
    voters, contributor = markets
    ds = _dataset(voters)
    created = propose_many(contributor, ds, [_batch(i) for i in range(5, 8)])
    ids = [int(e.args["proposal_id"]) for e in created]
    voter = voters[1]
    voter.vote(ids[0], True)  # voted already: its vote in the pipeline below reverts
    with pytest.raises(ContractReverted, match=f"vote on proposal {ids[0]}.*already voted"):
        vote_many([voter], [ids[1], ids[0], ids[2]], True)
    # The votes around it landed, and the account's nonce counter agrees with the node.
    assert [voter.proposal(i).yes_votes for i in ids[1:]] == [10 * SHARE_UNIT] * 2
    assert voter.gateway.transaction_count() == voter.gateway._nonce
    assert voters[2].vote(ids[0], True).status == 1
    [receipts] = vote_many([voters[0]], ids, True)
    assert [r.status for r in receipts] == [1, 1, 1]


def test_propose_many_checks_everything_before_sending(
    markets: tuple[list[Market], Market],
) -> None:
    voters, contributor = markets
    ds = _dataset(voters)
    nonce = contributor.gateway.transaction_count()
    with pytest.raises(InvalidProposal, match="propose them once"):
        propose_many(contributor, ds, [_batch(9, source="a"), _batch(9, source="b")])
    assert contributor.gateway.transaction_count() == nonce  # nothing was sent
    assert propose_many(contributor, ds, []) == []


def test_the_next_batch_is_prepared_in_a_thread_while_this_one_is_mined(
    markets: tuple[list[Market], Market],
) -> None:
    voters, contributor = markets
    ds = _dataset(voters)
    nonce = contributor.gateway.transaction_count()
    first = prepare_proposals(contributor, ds, [_batch(20), _batch(21)])
    assert contributor.gateway.transaction_count() == nonce  # checked and stored, nothing sent
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(prepare_proposals, contributor, ds, [_batch(22), _batch(23)], True)
        created = register_proposals(contributor, first)
        vote_many(voters, [int(e.args["proposal_id"]) for e in created], True)
        created += register_proposals(contributor, ahead.result())
    ids = [int(e.args["proposal_id"]) for e in created]
    assert [voters[0].proposal(i).sequence for i in ids] == [1, 2, 3, 4]  # in the order given
    vote_many(voters, ids[2:], True)
    done = finalize_many(contributor, ids)
    assert [STATUS_NAMES[e.args["status"]] for e in done] == ["accepted"] * 4
    assert voters[0].dataset(ds).registry_length == 5
