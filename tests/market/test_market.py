"""The Market SDK end to end on both nodes: datasets, proposals, votes, evaluation, dividends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from databright.chain.clients import ProposalStatus
from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import (
    ContractReverted,
    DataBrightError,
    InvalidArgument,
    InvalidProposal,
    NotFound,
)
from databright.market import SHARE_UNIT, Governance, Market
from databright.market.evaluator import EvaluatorService
from databright.storage import DatasetSchema, cid_to_digest, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=3, proposal_size=30)


@pytest.fixture
def market(node, tmp_path: Path) -> Market:
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    return Market.connect(node.url, node.accounts[0], tmp_path)


def _examples(i: int, source: str = "p"):
    c = CAST.contributions[i]
    return validate_examples(c.X, c.y, SCHEMA, source=source)


def _dataset(market: Market, evaluators: tuple[str, ...] = (), fee: int = 0) -> int:
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    phases = 60 if evaluators else 0
    governance = Governance(
        evaluators=evaluators,
        commit_period_s=phases,
        reveal_period_s=phases,
        evaluation_fee_wei=fee,
    )
    return market.create_dataset("test", SCHEMA, initial, governance)


def test_create_dataset_gives_initiator_one_share_per_example(market: Market) -> None:
    ds = _dataset(market)
    info = market.dataset(ds)
    assert info.name == "test" and info.initiator == market.address
    assert market.shares_of(ds) == len(CAST.initial_y) * SHARE_UNIT
    assert market.schema(ds) == SCHEMA
    [entry] = market.registry(ds)
    assert entry.contributor == market.address and entry.examples == len(CAST.initial_y)


def test_propose_vote_finalize_mints_and_registers(market: Market, node) -> None:
    ds = _dataset(market)
    alice = market.as_account(node.accounts[1])
    p = alice.propose(ds, _examples(0))
    assert p.status == "pending" and p.contributor == alice.address and p.manifest_cid
    assert p.sequence == 1 and p.id == market.contract.proposal_id_of(ds, 1)
    view = market.contract.proposal(p.id)  # the typed view: fields by name, status an enum value
    assert view.status == ProposalStatus.PENDING and view.dataset_id == ds and view.examples == 30
    market.vote(p.id, True)
    assert market.proposal(p.id).outcome == "accepted"
    final = market.finalize(p.id)
    assert final.status == "accepted" and final.shares == 30 * SHARE_UNIT
    assert alice.shares_of(ds) == 30 * SHARE_UNIT
    data, origin = market.download(ds)
    assert len(data) == len(CAST.initial_y) + 30 and origin[-1] == 1
    np.testing.assert_array_equal(data.X[-30:], CAST.contributions[0].X)


def test_the_proposer_checks_its_own_file_and_the_chain_not_others_data(
    market: Market, node
) -> None:
    ds = _dataset(market)
    before = market.gateway.block_number()
    # Exactly the examples already registered: the chain knows their root, nothing is sent.
    with pytest.raises(InvalidProposal, match="already"):
        market.propose(ds, validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="a"))
    # A file that repeats itself is refused by the proposer's own check.
    X = np.concatenate([CAST.initial_X[:3], CAST.initial_X[:1]])
    y = np.concatenate([CAST.initial_y[:3], CAST.initial_y[:1]])
    with pytest.raises(InvalidProposal):
        market.propose(ds, validate_examples(X, y, SCHEMA, source="twice.npz"))
    assert market.gateway.block_number() == before
    # A copy of part of others' data is not the proposer's client's to judge (it would have to
    # fetch the whole dataset): it is proposed, and the evaluators value it at nothing.
    copy = market.propose(ds, validate_examples(X[:3], y[:3], SCHEMA, source="copy.npz"))
    assert copy.status == "pending"


def test_evaluation_sizes_shares(market: Market, node) -> None:
    evaluator = node.accounts[2]
    ds = _dataset(market, evaluators=(evaluator.address,))
    ev = market.as_account(evaluator)
    p = market.as_account(node.accounts[1]).propose(ds, _examples(1))
    sealed = ev.commit_evaluation(p.id, 15_000, b'{"why": "test"}')
    assert sealed.commitment() == market.contract.commitment_of(
        p.id,
        evaluator.address,
        15_000,
        cid_to_digest(sealed.report_cid),
        bytes.fromhex(sealed.salt),
    )
    seen = market.proposal(p.id).evaluation
    assert seen is not None and (seen.commits, seen.reveals) == (1, 0)
    with pytest.raises(ContractReverted, match="commit phase open"):
        ev.reveal_evaluation(p.id)
    # The report gives the score away: no store (which may be served) holds it before the reveal.
    assert not ev.store.has(sealed.report_cid)
    market.gateway.advance_to(p.commit_end)
    assert ev.reveal_evaluation(p.id).score_bps == 15_000
    assert market.store.get(sealed.report_cid) == b'{"why": "test"}'
    with pytest.raises(ContractReverted, match="voting not open"):
        market.vote(p.id, True)
    market.gateway.advance_to(p.voting_opens)
    seen = market.proposal(p.id).evaluation
    assert seen is not None and (seen.reveals, seen.score_bps, seen.quality_weight_bps) == (
        1, 15_000, 15_000,
    )  # fmt: skip
    assert ev.scorecard(p.id)["revealed"]
    market.vote(p.id, True)
    assert market.finalize(p.id).shares == 45 * SHARE_UNIT  # 30 examples x 1.5


def test_the_evaluation_fee_pays_the_evaluator(market: Market, node) -> None:
    evaluator = node.accounts[2]
    ds = _dataset(market, evaluators=(evaluator.address,), fee=10**15)
    assert market.dataset(ds).governance.evaluation_fee_wei == 10**15
    ev = market.as_account(evaluator)
    p = market.as_account(node.accounts[1]).propose(ds, _examples(4))  # pays the fee
    ev.commit_evaluation(p.id, 10_000, b"{}")
    market.gateway.advance_to(p.commit_end)
    ev.reveal_evaluation(p.id)
    market.gateway.advance_to(p.voting_opens)
    assert ev.collect_evaluation_fee(p.id) == 10**15
    with pytest.raises(ContractReverted, match="already collected"):
        ev.collect_evaluation_fee(p.id)


def test_reveal_without_a_commitment_is_not_found(market: Market, node) -> None:
    ds = _dataset(market, evaluators=(node.accounts[2].address,))
    p = market.as_account(node.accounts[1]).propose(ds, _examples(5))
    with pytest.raises(NotFound, match="no committed score"):
        market.as_account(node.accounts[2]).reveal_evaluation(p.id)


def test_non_evaluator_cannot_evaluate(market: Market, node) -> None:
    ds = _dataset(market)
    p = market.propose(ds, _examples(2))
    with pytest.raises(ContractReverted, match="data_market"):
        market.as_account(node.accounts[5]).commit_evaluation(p.id, 10_000, b"{}")


def test_dividends_split_pro_rata_and_claim_once(market: Market, node) -> None:
    ds = _dataset(market)
    bob = market.as_account(node.accounts[3])
    p = bob.propose(ds, _examples(3))
    market.vote(p.id, True)
    market.finalize(p.id)
    supply = market.dataset(ds).total_shares
    payer = market.as_account(node.accounts[4])
    payer.pay(ds, 10**18)
    expect = 10**18 * bob.shares_of(ds) // supply
    assert abs(bob.claimable(ds) - expect) <= 1
    got = bob.claim(ds)
    assert abs(got - expect) <= 1 and bob.claimable(ds) == 0
    holders = {h.address: h for h in market.shareholders(ds)}
    assert set(holders) == {market.address, bob.address}


def test_unknown_ids_and_bad_amounts_say_so(market: Market) -> None:
    with pytest.raises(NotFound, match="dataset 99 does not exist"):
        market.dataset(99)
    with pytest.raises(NotFound, match="proposal 12345 does not exist"):
        market.proposal(12345)
    ds = _dataset(market)
    with pytest.raises(DataBrightError, match="must be positive"):
        market.pay(ds, 0)  # type: ignore[arg-type]
    with pytest.raises(DataBrightError, match="1 to 25 bytes"):
        market.create_dataset("x" * 30, SCHEMA, _examples(0))
    with pytest.raises(DataBrightError, match="needs a name"):
        market.create_dataset(" ", SCHEMA, _examples(0))


def test_evaluator_service_flags_copies_and_poison(market: Market, node) -> None:
    evaluator = node.accounts[2]
    ds = _dataset(market, evaluators=(evaluator.address,))
    honest = market.as_account(node.accounts[1])
    p = honest.propose(ds, _examples(0))
    market.gateway.advance_to(p.voting_opens)  # nobody evaluated it: weight 1.0
    market.vote(p.id, True)
    market.finalize(p.id)
    copier = market.as_account(node.accounts[5]).propose(ds, _examples(5, "copy"))
    poison = market.as_account(node.accounts[6]).propose(ds, _examples(6, "poison"))
    validation = validate_examples(CAST.validation_X, CAST.validation_y, SCHEMA, source="val")
    service = EvaluatorService(market.as_account(evaluator), ds, validation)
    assert {q.id for q in service.pending()} == {copier.id, poison.id}
    posted = {e.proposal_id: e for e in service.run_once()}
    assert posted[copier.id].score_bps == 0
    assert any(f.startswith("near_duplicate") for f in posted[copier.id].flags)
    assert posted[poison.id].score_bps < 0
    assert service.pending() == []
    market.gateway.advance_to(poison.commit_end)
    assert {s.proposal_id for s in service.reveal_due()} == {copier.id, poison.id}
    on_chain = market.proposal(poison.id).evaluation
    assert on_chain is not None and on_chain.score_bps == posted[poison.id].score_bps


def test_non_evaluator_service_is_refused(market: Market, node) -> None:
    ds = _dataset(market)
    with pytest.raises(DataBrightError, match="is not an evaluator of dataset"):
        EvaluatorService(market.as_account(node.accounts[7]), ds, _examples(0))


def test_rejected_proposal_keeps_its_data_address_and_leaves_no_entry(market: Market) -> None:
    ds = _dataset(market)
    p = market.propose(ds, _examples(4))
    market.vote(p.id, False)
    final = market.finalize(p.id)
    assert final.status == "rejected" and final.data_cid == p.data_cid and final.shares == 0
    assert len(market.registry(ds)) == 1
    with pytest.raises(ContractReverted, match="not pending"):
        market.vote(p.id, True)


def test_refusals_store_nothing(market: Market, node) -> None:
    from eth_account import Account

    ds = _dataset(market)
    blobs = set(market.store)
    broke = market.as_account(Account.create())
    with pytest.raises(DataBrightError, match="has no ETH to pay gas"):
        broke.propose(ds, _examples(1))
    with pytest.raises(NotFound, match="does not exist"):
        market.vote(2**256, True)
    assert set(market.store) == blobs


def test_minimum_voting_period_holds_back_an_early_outcome(market: Market, node) -> None:
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset("slow", SCHEMA, initial, Governance(min_voting_period_s=600))
    assert market.dataset(ds).governance.min_voting_period_s == 600
    p = market.as_account(node.accounts[1]).propose(ds, _examples(0))
    created = market.contract.events("ProposalCreated", proposal_id=p.id)[0]
    assert p.snapshot_block == created.block_number - 1
    assert p.settle_from == p.deadline - 3600 + 600
    market.vote(p.id, True)  # all the shares: final, but not before 10 minutes
    assert market.proposal(p.id).outcome == "pending"
    with pytest.raises(ContractReverted, match="voting open"):
        market.finalize(p.id)


def test_minimum_voting_period_beyond_the_period_is_refused(market: Market) -> None:
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    with pytest.raises(InvalidArgument, match="minimum voting period"):
        market.create_dataset(
            "bad", SCHEMA, initial, Governance(voting_period_s=60, min_voting_period_s=61)
        )


def test_a_root_belongs_to_its_first_contributor(market: Market, node) -> None:
    ds = _dataset(market)
    alice = market.as_account(node.accounts[1])
    p = alice.propose(ds, _examples(7))
    assert market.contract.root_owner(p.manifest_root) == alice.address
    market.vote(p.id, False)
    market.finalize(p.id)  # rejected: the root is free in the dataset, still alice's
    with pytest.raises(InvalidProposal, match="first proposed by"):
        market.as_account(node.accounts[3]).propose(ds, _examples(7))
    assert alice.propose(ds, _examples(7)).contributor == alice.address


def test_initiator_hand_over(market: Market, node) -> None:
    ds = _dataset(market)
    bob = market.as_account(node.accounts[3])
    with pytest.raises(InvalidArgument, match="not an Ethereum address"):
        market.transfer_initiator(ds, "0x12")
    market.transfer_initiator(ds, bob.address)
    with pytest.raises(ContractReverted, match="not the pending initiator"):
        market.as_account(node.accounts[4]).accept_initiator(ds)
    bob.accept_initiator(ds)
    assert market.dataset(ds).initiator == bob.address
