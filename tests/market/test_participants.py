"""Many participants, one market: each with its own data dir and node connection, sharing
nothing but the chain and the blobs they serve each other over HTTP (issue 9, "done when")."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from databright_dev.serving import serving

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import BlobNotFound
from databright.market import Governance, Market
from databright.market.evaluator import EvaluatorService
from databright.server.gateway import blob_gateway
from databright.storage import DatasetSchema, LocalBlobStore, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=5, proposal_size=30)


class Participant:
    """One person: a data dir of their own, a node connection of their own, and (if they
    choose) their blob store served on a port of their own."""

    def __init__(self, name: str, root: Path, node, account, stack: ExitStack) -> None:
        self.name, self.node, self.account, self.stack = name, node, account, stack
        self.data_dir = root / name
        self.data_dir.mkdir()
        self.url: str | None = None

    def serve(self) -> str:
        store = LocalBlobStore(self.data_dir / "blobs")
        self.url = self.stack.enter_context(serving(blob_gateway(store)))
        return self.url

    def join(self, shared_deployment: Path) -> None:
        """Take the deployment record someone shared (what ``databright join FILE`` does)."""
        target = self.data_dir / "deployments" / shared_deployment.name
        target.parent.mkdir(parents=True)
        shutil.copy(shared_deployment, target)

    def market(self, *sources: Participant) -> Market:
        urls = [p.url for p in sources if p.url]
        return Market.connect(self.node.url, self.account, self.data_dir, sources=urls)


@pytest.fixture
def people(node, tmp_path: Path) -> Iterator[dict[str, Participant]]:
    with ExitStack() as stack:
        names = ("alice", "bob", "erin", "carol", "mallory")
        yield {
            n: Participant(n, tmp_path, node, node.accounts[i], stack) for i, n in enumerate(names)
        }


def _examples(i: int, source: str):
    c = CAST.contributions[i]
    return validate_examples(c.X, c.y, SCHEMA, source=source)


def _market_by_alice(people: dict[str, Participant]) -> tuple[int, Path]:
    alice = people["alice"]
    deployment, _ = deploy(connect(alice.node.url, alice.account), alice.data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    governance = Governance(
        evaluators=(people["erin"].account.address,), commit_period_s=60, reveal_period_s=60
    )
    ds = alice.market().create_dataset("digits", SCHEMA, initial, governance)
    alice.serve()
    return ds, Path(deployment.path)


def test_a_newcomer_proposes_is_evaluated_and_everyone_downloads_verified(people) -> None:
    alice, bob, erin, carol = (people[n] for n in ("alice", "bob", "erin", "carol"))
    ds, shared = _market_by_alice(people)
    for p in (bob, erin, carol):
        p.join(shared)

    # Bob never shared a folder with anyone: the schema comes from alice's store over HTTP.
    bob.serve()
    proposal = bob.market(alice).propose(ds, _examples(0, "bob.npz"))
    assert (bob.data_dir / "blobs").is_dir()

    # Erin evaluates from her own data dir: bob's data and alice's registry travel to her.
    erin.serve()
    service = EvaluatorService(
        erin.market(alice, bob),
        ds,
        validate_examples(CAST.validation_X, CAST.validation_y, SCHEMA, source="validation"),
    )
    [posted] = service.run_once()
    assert posted.proposal_id == proposal.id and service.skipped == {}
    # Until the reveal, nobody can fetch her report (it would give the score away).
    with pytest.raises(BlobNotFound):
        carol.market(erin).store.get(posted.report_cid)
    market = alice.market()
    market.gateway.advance_to(proposal.commit_end)
    [revealed] = service.reveal_due()
    assert revealed.score_bps == posted.score_bps

    market.gateway.advance_to(proposal.voting_opens)
    market.vote(proposal.id, True)
    assert market.finalize(proposal.id).status == "accepted"

    # Carol joins late and downloads the curated dataset from others' stores, verified.
    reader = carol.market(alice, bob)
    data, origin = reader.download(ds)
    n0 = len(CAST.initial_y)
    np.testing.assert_array_equal(data.X[:n0], CAST.initial_X)
    np.testing.assert_array_equal(data.X[n0:], CAST.contributions[0].X)
    assert list(np.unique(origin)) == [0, 1]
    # ... and reads why bob was paid what he was, from erin's store.
    report = carol.market(erin).store.get(posted.report_cid)
    assert b'"score_bps"' in report


def test_a_withheld_proposal_is_its_own_problem_not_the_datasets(people) -> None:
    alice, bob, erin, mallory = (people[n] for n in ("alice", "bob", "erin", "mallory"))
    ds, shared = _market_by_alice(people)
    for p in (bob, erin, mallory):
        p.join(shared)
    mallory_p = mallory.market(alice).propose(ds, _examples(1, "mallory.npz"))  # never served
    bob.serve()
    bob_p = bob.market(alice).propose(ds, _examples(2, "bob.npz"))
    service = EvaluatorService(
        erin.market(alice, bob),
        ds,
        validate_examples(CAST.validation_X, CAST.validation_y, SCHEMA, source="validation"),
    )
    posted = service.run_once()
    assert [e.proposal_id for e in posted] == [bob_p.id]
    assert set(service.skipped) == {mallory_p.id}
    reason = service.skipped[mallory_p.id]
    assert "no source delivered it" in reason and mallory_p.data_cid in reason
    # Bob's proposal was valued against the registry, with mallory's data left out and said so.
    [unavailable] = posted[0].report["valuation"]["unavailable"]
    assert f"pending proposal {mallory_p.sequence}" in unavailable
    # A proposer who goes on to serve the data is evaluated in the next round.
    mallory.serve()
    late = EvaluatorService(erin.market(alice, bob, mallory), ds, service.validation)
    assert [e.proposal_id for e in late.run_once()] == [mallory_p.id]


def test_a_large_proposal_travels_as_a_unixfs_dag(people) -> None:
    alice, bob, carol = (people[n] for n in ("alice", "bob", "carol"))
    deployment, _ = deploy(connect(alice.node.url, alice.account), alice.data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = alice.market().create_dataset("big", SCHEMA, initial, Governance(voting_period_s=60))
    alice.serve()
    for p in (bob, carol):
        p.join(Path(deployment.path))
    rng = np.random.default_rng(1)
    X = rng.integers(0, 17, size=(1200, 64)).astype(np.float32)  # ~300 KiB: two leaves
    y = rng.integers(0, 10, size=1200)
    bob.serve()
    proposal = bob.market(alice).propose(ds, validate_examples(X, y, SCHEMA, source="big.npz"))
    assert proposal.data_cid.startswith("bafybei")  # the dag-pb root, as IPFS would name it
    market = alice.market(bob)
    assert market.proposal(proposal.id).data_cid == proposal.data_cid  # found at bob's
    market.vote(proposal.id, True)
    market.gateway.advance_to(proposal.deadline)
    market.finalize(proposal.id)
    data, _ = carol.market(alice, bob).download(ds)
    np.testing.assert_array_equal(data.X[len(CAST.initial_y) :], X)
