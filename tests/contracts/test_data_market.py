"""DataMarket: datasets, proposals, votes, evaluations, finalization, registry, roles, views.

A positive and a negative test for every external function and every revert string.
"""

from __future__ import annotations

from typing import Any

import boa
import pytest
from boa.util.abi import Address
from contracts_support import (
    CAP_BPS,
    HELPERS,
    QUORUM_BPS,
    STATUS,
    THRESHOLD_BPS,
    UNIT,
    VOTING_PERIOD,
    World,
    cid,
    events,
    mapping_slot,
    mine_block,
    poke,
    storage_slot,
)

ZERO = "0x" + "00" * 20


def accept(world: World, pid: int) -> None:
    """Accept early: the initiator's 50% is enough for quorum and threshold."""
    world.vote(pid, world.initiator)
    assert world.market.finalize(pid) == STATUS["accepted"]


def reject(world: World, pid: int) -> None:
    """Reject early: 80% against leaves yes below the threshold whatever happens."""
    world.vote(pid, world.initiator, False)
    world.vote(pid, world.alice, False)
    assert world.market.finalize(pid) == STATUS["rejected"]


# --- construction ------------------------------------------------------------------------------


def test_deploy_renounces_the_default_admin(world: World) -> None:
    deployer = boa.env.generate_address()
    with boa.env.prank(deployer):
        market = world.market_deployer.deploy(world.blueprint.address)
    assert market.share_token_blueprint() == world.blueprint.address
    assert not market.hasRole(market.DEFAULT_ADMIN_ROLE(), deployer)
    assert market.dataset_count() == 0


def test_deploy_with_a_non_contract_blueprint_reverts(world: World) -> None:
    with boa.reverts("data_market: blueprint is not a contract"):
        world.market_deployer.deploy(world.alice)


# --- create_dataset ----------------------------------------------------------------------------


def test_create_dataset_registers_initial_data_and_mints(world: World) -> None:
    evaluators = [world.evaluator, world.carol]
    d = world.create(world.alice, examples=7, evaluators=evaluators, root=cid(0xB3))
    logs = world.market.get_logs()
    created = next(e for e in logs if type(e).__name__ == "DatasetCreated")
    assert (created.dataset_id, created.initiator, created.name) == (d, world.alice, "Digits")
    assert list(created.evaluators) == evaluators
    assert [type(e).__name__ for e in logs].count("ProposalFinalized") == 1
    m = world.market
    info = m.dataset(d)
    assert info.token == m.share_token(d) and info.initiator == world.alice
    assert (info.voting_period, info.quorum_bps, info.threshold_bps) == (
        VOTING_PERIOD,
        QUORUM_BPS,
        THRESHOLD_BPS,
    )
    assert (info.quality_cap_bps, info.registry_length, info.proposal_count) == (CAP_BPS, 1, 0)
    assert info.total_shares == 7 * UNIT and info.metadata_cid_digest == cid(0xA1)
    token = world.token_of(d)
    assert token.balanceOf(world.alice) == 7 * UNIT and token.symbol() == f"DB{d}"
    entry = m.registry_entry(d, 0)
    assert (entry.contributor, entry.examples, entry.shares) == (world.alice, 7, 7 * UNIT)
    assert (entry.data_cid_digest, entry.manifest_root, entry.proposal_id) == (
        cid(0xA2),
        cid(0xB3),
        d << 32,
    )
    assert m.proposal_state(d << 32) == STATUS["accepted"]
    assert m.is_evaluator(d, world.carol) and not m.is_evaluator(world.dataset_id, world.carol)
    assert m.hasRole(m.initiator_role(d), world.alice)
    assert m.dataset_count() == d


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": ""}, "data_market: empty name"),
        ({"metadata": cid(0)}, "data_market: empty digest"),
        ({"data": cid(0)}, "data_market: empty digest"),
        ({"root": cid(0)}, "data_market: empty digest"),
        ({"examples": 0}, "data_market: invalid examples"),
        ({"examples": 2**32}, "data_market: invalid examples"),
        ({"period": 0}, "data_market: invalid voting period"),
        ({"period": 2**32}, "data_market: invalid voting period"),
        ({"quorum": 0}, "data_market: invalid quorum"),
        ({"quorum": 10_001}, "data_market: invalid quorum"),
        ({"threshold": 0}, "data_market: invalid threshold"),
        ({"threshold": 10_001}, "data_market: invalid threshold"),
        ({"cap": 9_999}, "data_market: invalid quality cap"),
        ({"cap": 1_000_001}, "data_market: invalid quality cap"),
        ({"evaluators": [ZERO]}, "data_market: zero evaluator"),
    ],
)
def test_create_dataset_rejects_bad_parameters(
    world: World, override: dict[str, Any], message: str
) -> None:
    with boa.reverts(message):
        world.create(world.alice, **override)


def test_create_dataset_checks_the_token_address(world: World) -> None:
    # The market recomputes token addresses from its nonce; a foreign nonce bump is caught.
    state = boa.env.evm.vm.state
    address = bytes.fromhex(world.market.address[2:])
    state.set_nonce(address, state.get_nonce(address) + 1)
    with boa.reverts("data_market: token address mismatch"):
        world.create(world.alice)


# --- propose -----------------------------------------------------------------------------------


def test_propose_takes_a_snapshot_and_logs(world: World) -> None:
    world.commit_proposal(world.contributor, world.dataset_id, cid(0x10), cid(0x11), 12, cid(0x12))
    deadline = boa.env.timestamp + VOTING_PERIOD
    block = boa.env.evm.patch.block_number
    with boa.env.prank(world.contributor):
        pid = world.market.propose(world.dataset_id, cid(0x10), cid(0x11), 12, cid(0x12))
    (log,) = events(world.market, "ProposalCreated")
    assert (log.proposal_id, log.dataset_id, log.contributor) == (
        pid,
        world.dataset_id,
        world.contributor,
    )
    assert (log.data_cid_digest, log.manifest_root, log.metadata_cid_digest) == (
        cid(0x10),
        cid(0x11),
        cid(0x12),
    )
    assert (log.examples, log.deadline) == (12, deadline)
    assert pid == world.market.proposal_id_of(world.dataset_id, 1) == (world.dataset_id << 32) | 1
    p = world.market.proposal(pid)
    assert (p.status, p.sequence, p.deadline, p.examples) == (STATUS["pending"], 1, deadline, 12)
    assert (p.snapshot_block, p.settle_from) == (block - 1, deadline - VOTING_PERIOD)
    assert (p.snapshot_supply, p.quality_weight_bps, p.shares) == (100 * UNIT, 10_000, 12 * UNIT)
    assert (p.data_cid_digest, p.manifest_root, p.contributor) == (
        cid(0x10),
        cid(0x11),
        world.contributor,
    )
    assert world.market.dataset(world.dataset_id).proposal_count == 1
    assert world.market.manifest_root_taken(world.dataset_id, cid(0x11))


def test_propose_to_an_unknown_dataset_reverts(world: World) -> None:
    with boa.reverts("data_market: unknown dataset"):
        world.propose(0x10, dataset_id=99)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((cid(0), cid(1), 1), "data_market: empty digest"),
        ((cid(1), cid(0), 1), "data_market: empty digest"),
        ((cid(1), cid(2), 0), "data_market: invalid examples"),
        ((cid(1), cid(2), 2**32), "data_market: invalid examples"),
    ],
)
def test_propose_rejects_bad_terms(
    world: World, args: tuple[bytes, bytes, int], message: str
) -> None:
    with boa.env.prank(world.contributor), boa.reverts(message):
        world.market.propose(world.dataset_id, *args, cid(3))


def test_propose_refuses_a_root_in_the_registry_or_pending(world: World) -> None:
    with boa.env.prank(world.contributor), boa.reverts("data_market: manifest root taken"):
        world.market.propose(world.dataset_id, cid(5), cid(0xA3), 1, cid(6))  # the initial data
    world.propose(0x10)
    with boa.env.prank(world.carol), boa.reverts("data_market: manifest root taken"):
        world.market.propose(world.dataset_id, cid(7), cid(0x11), 1, cid(8))  # pending


def test_a_rejected_proposal_frees_its_root(world: World) -> None:
    pid = world.propose(0x10)
    reject(world, pid)
    assert not world.market.manifest_root_taken(world.dataset_id, cid(0x11))
    world.commit_proposal(world.carol, world.dataset_id, cid(0x10), cid(0x11), 10, cid(0x12))
    with boa.env.prank(world.carol), boa.reverts("data_market: root of another contributor"):
        world.market.propose(world.dataset_id, cid(0x10), cid(0x11), 10, cid(0x12))
    again = world.propose(0x10)  # its contributor may
    assert world.market.proposal(again).contributor == world.contributor
    assert world.market.proposal(pid).data_cid_digest == cid(0)  # only in the event now


def test_same_root_in_another_dataset_is_fine(world: World) -> None:
    d = world.create(world.alice, root=cid(0x11))
    world.propose(0x10)  # root 0x11 in dataset 1
    assert world.market.manifest_root_taken(d, cid(0x11))


# --- vote --------------------------------------------------------------------------------------


def test_vote_counts_snapshot_weight(world: World) -> None:
    pid = world.propose(0x10)
    world.vote(pid, world.alice, True)
    (log,) = events(world.market, "VoteCast")
    assert (log.proposal_id, log.voter, log.support, log.weight) == (
        pid,
        world.alice,
        True,
        30 * UNIT,
    )
    world.vote(pid, world.bob, False)
    p = world.market.proposal(pid)
    assert (p.yes_votes, p.no_votes) == (30 * UNIT, 20 * UNIT)
    b = world.market.ballot(pid, world.bob)
    assert (b.voted, b.support, b.weight) == (True, False, 20 * UNIT)
    assert not world.market.ballot(pid, world.carol).voted


def test_vote_on_unknown_or_finalized_proposal_reverts(world: World) -> None:
    with boa.env.prank(world.alice), boa.reverts("data_market: not pending"):
        world.market.vote((world.dataset_id << 32) | 9, True)
    with boa.env.prank(world.alice), boa.reverts("data_market: not pending"):
        world.market.vote(world.dataset_id << 32, True)  # the initial data
    pid = world.propose(0x10)
    accept(world, pid)
    with boa.env.prank(world.alice), boa.reverts("data_market: not pending"):
        world.market.vote(pid, True)


def test_vote_after_the_deadline_reverts(world: World) -> None:
    pid = world.propose(0x10, mine=False)
    boa.env.time_travel(seconds=VOTING_PERIOD - 1)
    world.vote(pid, world.alice)  # still open
    boa.env.time_travel(seconds=1)
    with boa.env.prank(world.bob), boa.reverts("data_market: voting closed"):
        world.market.vote(pid, True)


def test_vote_twice_reverts(world: World) -> None:
    pid = world.propose(0x10)
    world.vote(pid, world.alice)
    with boa.env.prank(world.alice), boa.reverts("data_market: already voted"):
        world.market.vote(pid, False)


def test_vote_without_snapshot_weight_reverts(world: World) -> None:
    pid = world.propose(0x10)
    with boa.env.prank(world.carol), boa.reverts("data_market: no voting weight"):
        world.market.vote(pid, True)


def test_shares_moved_after_the_snapshot_do_not_vote_again(world: World) -> None:
    pid = world.propose(0x10)
    with boa.env.prank(world.alice):  # same block, right after the proposal
        world.token.transfer(world.carol, 30 * UNIT)
    with boa.env.prank(world.carol), boa.reverts("data_market: no voting weight"):
        world.market.vote(pid, True)
    world.vote(pid, world.alice)
    assert world.market.proposal(pid).yes_votes == 30 * UNIT


def test_shares_received_before_the_snapshot_vote(world: World) -> None:
    with boa.env.prank(world.alice):
        world.token.transfer(world.carol, 10 * UNIT)
    mine_block()
    pid = world.propose(0x10)
    world.vote(pid, world.carol)
    assert world.market.ballot(pid, world.carol).weight == 10 * UNIT


@pytest.mark.parametrize("vote_first", [True, False])
def test_double_vote_in_one_transaction_is_impossible(world: World, vote_first: bool) -> None:
    attacker = boa.load(str(HELPERS / "double_voter.vy"))
    accomplice = boa.load(str(HELPERS / "double_voter.vy"))
    with boa.env.prank(world.alice):
        world.token.transfer(attacker.address, 30 * UNIT)
    commitment = world.market.proposal_commitment(
        attacker.address, world.dataset_id, cid(0x77), cid(0x77), 1, cid(0x77)
    )
    attacker.commit(world.market.address, commitment)
    mine_block()
    pid, own, other = attacker.attack(
        world.market.address,
        world.token.address,
        accomplice.address,
        world.dataset_id,
        cid(0x77),
        vote_first,
    )
    assert own and not other
    assert world.token.balanceOf(accomplice.address) == 30 * UNIT
    assert world.market.proposal(pid).yes_votes == 30 * UNIT
    assert world.market.ballot(pid, attacker.address).weight == 30 * UNIT
    assert not world.market.ballot(pid, accomplice.address).voted


# --- flash loans and the voting clock -----------------------------------------------------------


def _pool(world: World, shares: int, dataset_id: int | None = None) -> tuple[Any, Any, Any]:
    """A flash-lending pool holding `shares` of the initiator's shares, and an attacker."""
    lender = boa.load(str(HELPERS / "flash_lender.vy"))
    attacker = boa.load(str(HELPERS / "flash_attacker.vy"))
    token = world.token_of(dataset_id or world.dataset_id)
    with boa.env.prank(world.initiator):
        token.transfer(lender.address, shares * UNIT)
    mine_block()
    return lender, attacker, token


def _commit(world: World, attacker: Any, dataset_id: int, examples: int) -> None:
    """The attacker commits to its proposal beforehand (it could: the terms are its own)."""
    commitment = world.market.proposal_commitment(
        attacker.address, dataset_id, cid(0x66), cid(0x66), examples, cid(0x66)
    )
    attacker.commit(world.market.address, commitment)
    mine_block()


def test_borrowed_shares_cannot_vote_on_a_proposal_made_inside_the_loan(world: World) -> None:
    lender, attacker, token = _pool(world, 45)
    _commit(world, attacker, world.dataset_id, 10)
    attacker.attack_vote(
        lender.address, token.address, 45 * UNIT, world.market.address, world.dataset_id,
        cid(0x66), 10,
    )  # fmt: skip
    pid = attacker.proposal_id()
    assert not attacker.voted() and not attacker.finalized()
    assert token.balanceOf(lender.address) == 45 * UNIT  # repaid
    mine_block()
    assert not attacker.vote_again(world.market.address)  # no weight in any later block either
    assert world.market.proposal(pid).yes_votes == 0


def test_a_flash_loan_cannot_mint_the_supply_to_itself(world: World) -> None:
    # The attack: a pool holds 55% of the supply; one transaction borrows it,
    # proposes 2**32 - 1 examples, repays, votes and finalizes.
    d = world.create(world.initiator)
    lender, attacker, token = _pool(world, 55, dataset_id=d)
    _commit(world, attacker, d, 2**32 - 1)
    attacker.attack_vote(
        lender.address, token.address, 55 * UNIT, world.market.address, d, cid(0x66), 2**32 - 1
    )
    pid = attacker.proposal_id()
    assert not attacker.voted() and not attacker.finalized()
    boa.env.time_travel(seconds=VOTING_PERIOD)
    assert world.market.finalize(pid) == STATUS["expired"]
    assert token.balanceOf(attacker.address) == 0 and token.totalSupply() == 100 * UNIT


def test_borrowed_shares_cannot_vote_on_an_open_proposal(world: World) -> None:
    lender, attacker, token = _pool(world, 45)
    pid = world.propose(0x10)
    attacker.attack_vote_on(lender.address, token.address, 45 * UNIT, world.market.address, pid)
    assert not attacker.voted()
    assert world.market.proposal(pid).yes_votes == 0


def test_votes_weigh_balances_at_the_end_of_the_block_before_the_proposal(world: World) -> None:
    world.commit_proposal(world.contributor, world.dataset_id, cid(0x10), cid(0x11), 10, cid(0x12))
    with boa.env.prank(world.alice):
        world.token.transfer(world.carol, 10 * UNIT)  # same block as the proposal
    with boa.env.prank(world.contributor):
        pid = world.market.propose(world.dataset_id, cid(0x10), cid(0x11), 10, cid(0x12))
    mine_block()
    with boa.env.prank(world.carol), boa.reverts("data_market: no voting weight"):
        world.market.vote(pid, True)
    world.vote(pid, world.alice)
    assert world.market.ballot(pid, world.alice).weight == 30 * UNIT


def test_no_decision_in_the_proposal_block(world: World) -> None:
    pid = world.propose(0x10, mine=False)
    world.vote(pid, world.initiator)  # 50%: final, but not in this block
    world.vote(pid, world.alice)
    assert world.market.outcome(pid) == STATUS["pending"]
    with boa.reverts("data_market: voting open"):
        world.market.finalize(pid)
    mine_block()
    assert world.market.outcome(pid) == STATUS["accepted"]
    assert world.market.finalize(pid) == STATUS["accepted"]


def test_minimum_voting_period_holds_back_early_settlement(world: World) -> None:
    d = world.create(world.initiator, min_period=600)
    mine_block()
    pid = world.propose(0x10, dataset_id=d)
    assert world.market.proposal(pid).settle_from == boa.env.timestamp - 12 + 600
    world.vote(pid, world.initiator)  # 100%: final
    mine_block(10)  # 120 s
    assert world.market.outcome(pid) == STATUS["pending"]
    with boa.reverts("data_market: voting open"):
        world.market.finalize(pid)
    boa.env.time_travel(seconds=600 - 120 - 12)
    assert world.market.finalize(pid) == STATUS["accepted"]


def test_minimum_voting_period_longer_than_the_period_reverts(world: World) -> None:
    with boa.reverts("data_market: invalid min voting period"):
        world.create(world.alice, min_period=VOTING_PERIOD + 1)
    assert (
        world.market.dataset(world.create(world.alice, min_period=VOTING_PERIOD)).min_voting_period
        == VOTING_PERIOD
    )


def test_propose_in_the_creation_block_reverts(world: World) -> None:
    d = world.market.dataset_count() + 1
    world.commit_proposal(world.contributor, d, cid(0x10), cid(0x11), 10, cid(0x12))
    assert world.create(world.alice) == d
    with (
        boa.env.prank(world.contributor),
        boa.reverts("data_market: dataset created in this block"),
    ):
        world.market.propose(d, cid(0x10), cid(0x11), 10, cid(0x12))
    mine_block()
    with boa.env.prank(world.contributor):
        world.market.propose(d, cid(0x10), cid(0x11), 10, cid(0x12))


def test_proposal_count_limit(world: World) -> None:
    slot = mapping_slot(storage_slot(world.market, "_dataset_info"), world.dataset_id)
    word = boa.env.evm.get_storage(Address(world.market.address), slot)
    poke(world.market, slot, word | ((2**32 - 1) << 224))
    world.commit_proposal(world.contributor, world.dataset_id, cid(1), cid(2), 1, cid(3))
    with boa.env.prank(world.contributor), boa.reverts("data_market: too many proposals"):
        world.market.propose(world.dataset_id, cid(1), cid(2), 1, cid(3))


# --- evaluate ----------------------------------------------------------------------------------


def _scored(
    world: World, scores: list[int], evaluators: list[str] | None = None
) -> tuple[int, int]:
    """A proposal on an evaluated dataset, scored by each evaluator; voting open."""
    evaluators = evaluators or [world.evaluator, world.carol, world.alice][: len(scores)]
    d = world.evaluated(evaluators)
    pid = world.propose(0x10, dataset_id=d)
    for e, score in zip(evaluators, scores, strict=True):
        world.commit(pid, e, score)
    world.until(world.market.proposal(pid).commit_end)
    for e, score in zip(evaluators, scores, strict=True):
        world.reveal(pid, e, score)
    world.until(world.market.proposal(pid).voting_opens)
    return d, pid


def test_commit_and_reveal_size_the_shares(world: World) -> None:
    d = world.evaluated()
    pid = world.propose(0x10, dataset_id=d)
    p = world.market.proposal(pid)
    start = p.commit_end - 600
    assert (p.commit_end, p.voting_opens) == (start + 600, start + 1_200)
    assert p.deadline == start + 1_200 + VOTING_PERIOD
    world.commit(pid, world.evaluator, 15_000)
    (log,) = events(world.market, "EvaluationCommitted")
    assert (log.proposal_id, log.evaluator) == (pid, world.evaluator)
    assert world.market.proposal(pid).shares == 10 * UNIT  # sealed: nothing known yet
    world.until(p.commit_end)
    world.reveal(pid, world.evaluator, 15_000)
    (log,) = events(world.market, "EvaluationRevealed")
    assert (log.evaluator, log.score, log.report_cid_digest) == (world.evaluator, 15_000, cid(0xE1))
    e = world.market.evaluation(pid)
    assert (e.commits, e.reveals, e.score, e.quality_weight_bps) == (1, 1, 15_000, 15_000)
    card = world.market.scorecard(pid, world.evaluator)
    assert (card.committed, card.revealed, card.score, card.collected) == (
        True,
        True,
        15_000,
        False,
    )
    assert world.market.proposal(pid).shares == 15 * UNIT
    with boa.env.prank(world.initiator), boa.reverts("data_market: voting not open"):
        world.market.vote(pid, True)
    world.until(p.voting_opens)
    accept(world, pid)
    assert world.token_of(d).balanceOf(world.contributor) == 15 * UNIT


@pytest.mark.parametrize(
    ("scores", "median"),
    [([5_000, 9_000, 10**9], 9_000), ([-(2**31), 8_000, 12_000, 20_000], 10_000), ([7], 7)],
)
def test_the_median_of_revealed_scores_is_used(
    world: World, scores: list[int], median: int
) -> None:
    evaluators = [world.evaluator, world.carol, world.alice, world.bob][: len(scores)]
    _, pid = _scored(world, scores, evaluators)
    e = world.market.evaluation(pid)
    assert (e.reveals, e.score) == (len(scores), median)
    assert e.quality_weight_bps == min(max(median, 0), CAP_BPS)


def test_evaluation_is_capped(world: World) -> None:
    d, pid = _scored(world, [2**31 - 1])
    assert world.market.proposal(pid).quality_weight_bps == CAP_BPS
    accept(world, pid)
    assert world.token_of(d).balanceOf(world.contributor) == 10 * UNIT * CAP_BPS // 10_000


@pytest.mark.parametrize("score", [0, -1, -(2**31)])
def test_non_positive_score_mints_nothing_but_voters_may_accept(world: World, score: int) -> None:
    d, pid = _scored(world, [score])
    token = world.token_of(d)
    assert world.market.evaluation(pid).score == score
    assert world.market.proposal(pid).shares == 0
    world.vote(pid, world.initiator)
    supply = token.totalSupply()
    assert world.market.finalize(pid) == STATUS["accepted"]
    (log,) = events(world.market, "ProposalFinalized")
    assert (log.registry_index, log.shares) == (1, 0)
    assert token.totalSupply() == supply and token.balanceOf(world.contributor) == 0
    entry = world.market.registry_entry(d, 1)
    assert (entry.proposal_id, entry.shares, entry.examples) == (pid, 0, 10)


def test_a_non_positive_score_does_not_block_rejection_either(world: World) -> None:
    _, pid = _scored(world, [-5_000])
    reject(world, pid)


def test_a_late_evaluator_cannot_change_the_outcome(world: World) -> None:
    _, pid = _scored(world, [10_000])
    with boa.env.prank(world.carol), boa.reverts("data_market: commit phase over"):
        world.market.commit_evaluation(pid, cid(1))
    with boa.env.prank(world.evaluator), boa.reverts("data_market: reveal phase over"):
        world.market.reveal_evaluation(pid, 10**6, cid(0xE1), cid(7))


def test_an_evaluator_cannot_score_its_own_proposal(world: World) -> None:
    d = world.evaluated([world.contributor, world.evaluator])
    pid = world.propose(0x10, dataset_id=d)
    with boa.env.prank(world.contributor), boa.reverts("data_market: own proposal"):
        world.market.commit_evaluation(pid, cid(1))


def test_commit_by_a_non_evaluator_or_for_another_dataset_reverts(world: World) -> None:
    d = world.evaluated()
    world.create(world.alice, evaluators=[world.carol], commit=60, reveal=60, root=cid(0xC7))
    pid = world.propose(0x10, dataset_id=d)
    for who in (world.alice, world.carol):
        with boa.env.prank(who), boa.reverts("data_market: not an evaluator"):
            world.market.commit_evaluation(pid, cid(1))


def test_commit_refusals(world: World) -> None:
    with boa.env.prank(world.evaluator), boa.reverts("data_market: not pending"):
        world.market.commit_evaluation(world.dataset_id << 32, cid(1))
    pid = world.propose(0x10)  # a dataset without evaluation: no commit phase
    with boa.env.prank(world.evaluator), boa.reverts("data_market: commit phase over"):
        world.market.commit_evaluation(pid, cid(1))
    pid = world.propose(0x20, dataset_id=world.evaluated())
    with boa.env.prank(world.evaluator), boa.reverts("data_market: empty commitment"):
        world.market.commit_evaluation(pid, cid(0))
    world.commit(pid, world.evaluator, 1)
    with boa.env.prank(world.evaluator), boa.reverts("data_market: already committed"):
        world.market.commit_evaluation(pid, cid(1))


def test_reveal_refusals(world: World) -> None:
    pid = world.propose(0x20, dataset_id=world.evaluated([world.evaluator, world.carol]))
    world.commit(pid, world.evaluator, 12_000)
    with boa.env.prank(world.evaluator), boa.reverts("data_market: commit phase open"):
        world.market.reveal_evaluation(pid, 12_000, cid(0xE1), cid(7))
    world.until(world.market.proposal(pid).commit_end)
    with boa.env.prank(world.carol), boa.reverts("data_market: no commitment"):
        world.market.reveal_evaluation(pid, 12_000, cid(0xE1), cid(7))
    for score, report, salt in [(12_001, 0xE1, 7), (12_000, 0xE2, 7), (12_000, 0xE1, 8)]:
        with boa.env.prank(world.evaluator), boa.reverts("data_market: commitment mismatch"):
            world.market.reveal_evaluation(pid, score, cid(report), cid(salt))
    world.reveal(pid, world.evaluator, 12_000)
    with boa.env.prank(world.evaluator), boa.reverts("data_market: already revealed"):
        world.market.reveal_evaluation(pid, 12_000, cid(0xE1), cid(7))


def test_a_score_out_of_range_cannot_be_revealed(world: World) -> None:
    pid = world.propose(0x20, dataset_id=world.evaluated())
    world.commit(pid, world.evaluator, 2**31)
    world.until(world.market.proposal(pid).commit_end)
    with boa.env.prank(world.evaluator), boa.reverts("data_market: invalid score"):
        world.market.reveal_evaluation(pid, 2**31, cid(0xE1), cid(7))


def test_too_many_commitments_revert(world: World) -> None:
    evaluators = [boa.env.generate_address(f"ev{i}") for i in range(17)]
    pid = world.propose(0x20, dataset_id=world.evaluated(evaluators[:16]))
    d = pid >> 32
    with boa.env.prank(world.initiator):
        world.market.grantRole(world.market.evaluator_role(d), evaluators[16])
    for e in evaluators[:16]:
        world.commit(pid, e, 1)
    with boa.env.prank(evaluators[16]), boa.reverts("data_market: too many evaluators"):
        world.market.commit_evaluation(pid, cid(1))


def test_a_missed_reveal_is_visible_and_forfeits_the_fee(world: World) -> None:
    fee = 3 * 10**15 + 1
    d = world.evaluated([world.evaluator, world.carol, world.alice], fee=fee)
    pid = world.propose_paid(0x10, d, fee)
    for e in (world.evaluator, world.carol, world.alice):
        world.commit(pid, e, 10_000)
    p = world.market.proposal(pid)
    world.until(p.commit_end)
    world.reveal(pid, world.evaluator, 10_000)
    world.reveal(pid, world.alice, 10_000)
    with boa.env.prank(world.alice), boa.reverts("data_market: evaluation open"):
        world.market.collect_evaluation_fee(pid)
    world.until(p.voting_opens)
    card = world.market.scorecard(pid, world.carol)
    assert (card.committed, card.revealed) == (True, False)  # a missed reveal
    with boa.env.prank(world.carol), boa.reverts("data_market: nothing to collect"):
        world.market.collect_evaluation_fee(pid)
    before = boa.env.get_balance(world.evaluator)
    with boa.env.prank(world.evaluator):
        assert world.market.collect_evaluation_fee(pid) == fee // 2 + 1  # first: the remainder
    assert boa.env.get_balance(world.evaluator) - before == fee // 2 + 1
    (log,) = events(world.market, "EvaluationFeePaid")
    assert (log.proposal_id, log.account, log.amount) == (pid, world.evaluator, fee // 2 + 1)
    with boa.env.prank(world.alice):
        assert world.market.collect_evaluation_fee(pid) == fee // 2
        with boa.reverts("data_market: already collected"):
            world.market.collect_evaluation_fee(pid)
    assert world.market.scorecard(pid, world.alice).collected
    assert boa.env.get_balance(world.market.address) == 0


def test_without_a_reveal_the_fee_goes_back_to_the_proposer(world: World) -> None:
    fee = 10**15
    d = world.evaluated(fee=fee)
    world.commit_proposal(world.contributor, d, cid(1), cid(2), 1, cid(3))
    with boa.env.prank(world.contributor), boa.reverts("data_market: wrong payment"):
        world.market.propose(d, cid(1), cid(2), 1, cid(3), value=fee - 1)
    pid = world.propose_paid(0x10, d, fee)
    world.until(world.market.proposal(pid).voting_opens)
    with boa.env.prank(world.evaluator), boa.reverts("data_market: nothing to collect"):
        world.market.collect_evaluation_fee(pid)
    with boa.env.prank(world.contributor):
        assert world.market.collect_evaluation_fee(pid) == fee
        with boa.reverts("data_market: already collected"):
            world.market.collect_evaluation_fee(pid)
    with boa.reverts("data_market: unknown proposal"):
        world.market.collect_evaluation_fee(pid + 1)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"commit": 1, "reveal": 0}, "data_market: invalid evaluation periods"),
        ({"commit": 0, "reveal": 1}, "data_market: invalid evaluation periods"),
        ({"commit": 2**32, "reveal": 1}, "data_market: invalid evaluation periods"),
        ({"fee": 1}, "data_market: invalid evaluation fee"),
        ({"commit": 1, "reveal": 1, "fee": 2**96}, "data_market: invalid evaluation fee"),
    ],
)
def test_bad_evaluation_rules_revert(world: World, override: dict[str, Any], message: str) -> None:
    with boa.reverts(message):
        world.create(world.alice, **override)


# --- finalize ----------------------------------------------------------------------------------


def test_finalize_accepts_registers_and_mints(world: World) -> None:
    pid = world.propose(0x10, examples=10)
    world.vote(pid, world.alice)
    world.vote(pid, world.bob, False)
    boa.env.time_travel(seconds=VOTING_PERIOD)
    with boa.env.prank(world.carol):  # anyone
        assert world.market.finalize(pid) == STATUS["accepted"]
    (log,) = events(world.market, "ProposalFinalized")
    assert (log.status, log.registry_index, log.shares, log.yes_votes, log.no_votes) == (
        STATUS["accepted"], 1, 10 * UNIT, 30 * UNIT, 20 * UNIT,
    )  # fmt: skip
    assert world.token.balanceOf(world.contributor) == 10 * UNIT
    entry = world.market.registry_entry(world.dataset_id, 1)
    assert (entry.index, entry.proposal_id, entry.contributor) == (1, pid, world.contributor)
    assert (entry.data_cid_digest, entry.manifest_root, entry.shares) == (
        cid(0x10),
        cid(0x11),
        10 * UNIT,
    )
    assert entry.block_number == boa.env.evm.patch.block_number
    assert world.market.dataset(world.dataset_id).total_shares == 110 * UNIT
    assert world.market.manifest_root_taken(world.dataset_id, cid(0x11))


def test_finalize_rejects_below_threshold(world: World) -> None:
    pid = world.propose(0x10)
    world.vote(pid, world.alice, False)
    world.vote(pid, world.bob, True)
    boa.env.time_travel(seconds=VOTING_PERIOD)
    assert world.market.finalize(pid) == STATUS["rejected"]
    (log,) = events(world.market, "ProposalFinalized")
    assert (log.status, log.registry_index, log.shares) == (
        STATUS["rejected"],
        world.market.NOT_REGISTERED(),
        0,
    )
    assert world.market.registry_length(world.dataset_id) == 1


def test_finalize_expires_without_quorum(world: World) -> None:
    pid = world.propose(0x10)
    boa.env.time_travel(seconds=VOTING_PERIOD)
    assert world.market.outcome(pid) == STATUS["expired"]
    assert world.market.finalize(pid) == STATUS["expired"]
    assert world.market.proposal_state(pid) == STATUS["expired"]
    assert not world.market.manifest_root_taken(world.dataset_id, cid(0x11))


def test_finalize_early_when_all_weight_voted(world: World) -> None:
    pid = world.propose(0x10)
    world.vote(pid, world.alice, False)
    world.vote(pid, world.bob, True)
    assert world.market.outcome(pid) == STATUS["pending"]
    world.vote(pid, world.initiator, True)
    assert world.market.outcome(pid) == STATUS["accepted"]
    assert world.market.finalize(pid) == STATUS["accepted"]


def test_finalize_early_rejection_when_yes_cannot_reach_the_threshold(world: World) -> None:
    pid = world.propose(0x10)
    world.vote(pid, world.alice, False)
    world.vote(pid, world.bob, False)  # 50% no: yes can reach at most 50% = threshold
    assert world.market.outcome(pid) == STATUS["pending"]
    world.vote(pid, world.initiator, False)
    assert world.market.finalize(pid) == STATUS["rejected"]


def test_finalize_while_the_outcome_can_change_reverts(world: World) -> None:
    pid = world.propose(0x10)
    world.vote(pid, world.alice, True)  # 30% yes: quorum met, threshold not yet certain
    with boa.reverts("data_market: voting open"):
        world.market.finalize(pid)


def test_finalize_twice_or_unknown_reverts(world: World) -> None:
    pid = world.propose(0x10)
    accept(world, pid)
    with boa.reverts("data_market: not pending"):
        world.market.finalize(pid)
    with boa.reverts("data_market: not pending"):
        world.market.finalize((world.dataset_id << 32) | 42)


def test_snapshot_supply_excludes_shares_minted_after_the_proposal(world: World) -> None:
    first = world.propose(0x10, examples=100)
    second = world.propose(0x20, examples=1)
    world.commit_proposal(world.contributor, world.dataset_id, cid(0x30), cid(0x31), 10, cid(0x32))
    accept(world, first)  # supply 200 shares now
    assert world.market.proposal(second).snapshot_supply == 100 * UNIT
    world.vote(second, world.alice)  # 30 of 100 at the snapshot
    with boa.env.prank(world.contributor), boa.reverts("data_market: no voting weight"):
        world.market.vote(second, True)  # minted after the snapshot
    world.vote(second, world.initiator)
    assert world.market.finalize(second) == STATUS["accepted"]
    with boa.env.prank(world.contributor):  # in the block of both acceptances: not counted
        third = world.market.propose(world.dataset_id, cid(0x30), cid(0x31), 10, cid(0x32))
    assert world.market.proposal(third).snapshot_supply == 100 * UNIT
    fourth = world.propose(0x40)
    assert world.market.proposal(fourth).snapshot_supply == 201 * UNIT


def test_snapshot_supply_excludes_every_acceptance_of_the_proposal_block(world: World) -> None:
    first, second = world.propose(0x10, examples=5), world.propose(0x20, examples=7)
    world.commit_proposal(world.contributor, world.dataset_id, cid(0x30), cid(0x31), 10, cid(0x32))
    accept(world, first)
    accept(world, second)  # two entries in one block
    with boa.env.prank(world.contributor):
        p = world.market.proposal(
            world.market.propose(world.dataset_id, cid(0x30), cid(0x31), 10, cid(0x32))
        )
    assert p.snapshot_supply == 100 * UNIT
    assert world.market.proposal(world.propose(0x40)).snapshot_supply == 112 * UNIT
    assert p.snapshot_block == boa.env.evm.patch.block_number - 3


def test_acceptance_beyond_the_supply_cap_is_rejected(world: World) -> None:
    big = 2**32 - 1
    d = world.create(
        world.alice, examples=big, evaluators=[world.evaluator], cap=1_000_000, commit=60, reveal=60
    )
    token = world.token_of(d)
    results = []
    for n in range(3):
        mine_block()
        pid = world.propose(0x40 + 16 * n, examples=big, dataset_id=d)
        world.commit(pid, world.evaluator, 1_000_000)
        world.until(world.market.proposal(pid).commit_end)
        world.reveal(pid, world.evaluator, 1_000_000)
        world.until(world.market.proposal(pid).voting_opens)
        world.vote(pid, world.alice)
        if n:  # the contributor holds most shares after the first acceptance
            world.vote(pid, world.contributor)
        outcome = world.market.outcome(pid)  # the supply-cap rule as finalize applies it
        results.append(world.market.finalize(pid))
        assert outcome == results[-1]
    assert results == [STATUS["accepted"], STATUS["accepted"], STATUS["rejected"]]
    assert token.totalSupply() == big * UNIT + 2 * big * UNIT * 100
    assert world.market.registry_length(d) == 3


# --- views -------------------------------------------------------------------------------------


def test_registry_pages(world: World) -> None:
    pids = [world.propose(0x100 + 16 * i, examples=i + 1) for i in range(5)]
    for pid in pids[::2]:
        accept(world, pid)
    for pid in pids[1::2]:
        reject(world, pid)
    m = world.market
    assert m.registry_length(world.dataset_id) == 4
    page = m.registry(world.dataset_id, 1, 2)
    assert [e.proposal_id for e in page] == [pids[0], pids[2]]
    assert [e.index for e in m.registry(world.dataset_id, 0, 100)] == [0, 1, 2, 3]
    assert m.registry(world.dataset_id, 4, 10) == [] and m.registry(world.dataset_id, 0, 0) == []
    assert m.registry(99, 0, 10) == []


def test_registry_entry_out_of_range_reverts(world: World) -> None:
    assert world.market.registry_entry(world.dataset_id, 0).examples == 100
    with boa.reverts("data_market: no such entry"):
        world.market.registry_entry(world.dataset_id, 1)


def test_dataset_views_of_an_unknown_dataset_revert(world: World) -> None:
    for view in (world.market.dataset, world.market.share_token):
        with boa.reverts("data_market: unknown dataset"):
            view(99)
    with boa.reverts("data_market: unknown dataset"):
        world.market.claimable(99, world.alice)


def test_proposal_views_of_an_unknown_proposal(world: World) -> None:
    unknown = (world.dataset_id << 32) | 5
    assert world.market.proposal_state(unknown) == STATUS["none"]
    with boa.reverts("data_market: unknown proposal"):
        world.market.proposal(unknown)
    with boa.reverts("data_market: unknown proposal"):
        world.market.outcome(unknown)
    assert world.market.evaluation(unknown).commits == 0
    assert not world.market.scorecard(unknown, world.evaluator).committed


def test_outcome_of_a_finalized_proposal_is_its_status(world: World) -> None:
    pid = world.propose(0x10)
    accept(world, pid)
    assert world.market.outcome(pid) == STATUS["accepted"]
    assert world.market.outcome(world.dataset_id << 32) == STATUS["accepted"]


def test_claimable_through_the_market(world: World) -> None:
    with boa.env.prank(world.carol):
        world.token.pay(value=10**18)
    assert (
        world.market.claimable(world.dataset_id, world.bob) == world.token.claimable(world.bob) > 0
    )
    assert world.market.claimable(world.dataset_id, world.carol) == 0


def test_proposal_id_of(world: World) -> None:
    assert world.market.proposal_id_of(3, 4) == (3 << 32) | 4
    with boa.reverts("data_market: invalid sequence"):
        world.market.proposal_id_of(3, 2**32)


def test_constants(world: World) -> None:
    m = world.market
    assert (m.BPS(), m.SHARE_UNIT(), m.MAX_SUPPLY()) == (10_000, UNIT, 2**100 - 1)
    assert (m.STATUS_PENDING(), m.STATUS_ACCEPTED(), m.STATUS_REJECTED(), m.STATUS_EXPIRED()) == (
        1,
        2,
        3,
        4,
    )
    assert m.initiator_role(1) != m.initiator_role(2) != m.evaluator_role(2)


# --- roles -------------------------------------------------------------------------------------


def test_initiator_rotates_evaluators(world: World) -> None:
    m = world.market
    d = world.evaluated()
    role = m.evaluator_role(d)
    assert m.getRoleAdmin(role) == m.initiator_role(d)
    with boa.env.prank(world.initiator):
        m.grantRole(role, world.carol)
        m.revokeRole(role, world.evaluator)
    pid = world.propose(0x10, dataset_id=d)
    with boa.env.prank(world.evaluator), boa.reverts("data_market: not an evaluator"):
        m.commit_evaluation(pid, cid(1))
    world.commit(pid, world.carol, 10_000)


def test_only_the_dataset_initiator_manages_its_roles(world: World) -> None:
    m = world.market
    world.create(world.alice)
    for account in (world.alice, world.evaluator):
        with boa.env.prank(account), boa.reverts("access_control: account is missing role"):
            m.grantRole(m.evaluator_role(world.dataset_id), account)
        with boa.env.prank(account), boa.reverts("access_control: account is missing role"):
            m.revokeRole(m.evaluator_role(world.dataset_id), world.evaluator)
    assert not hasattr(m, "set_role_admin")  # evaluator appointment stays with the initiator


def test_the_initiator_role_moves_only_by_hand_over(world: World) -> None:
    m = world.market
    role = m.initiator_role(world.dataset_id)
    with boa.env.prank(world.initiator):
        for call in (m.grantRole, m.revokeRole, m.renounceRole):
            with boa.reverts("data_market: initiator role moves by hand-over"):
                call(role, world.initiator if call is m.renounceRole else world.alice)
    assert m.hasRole(role, world.initiator)


def test_two_step_initiator_hand_over(world: World) -> None:
    m = world.market
    d = world.dataset_id
    with boa.env.prank(world.alice), boa.reverts("data_market: not the initiator"):
        m.transfer_initiator(d, world.alice)
    with boa.env.prank(world.initiator):
        m.transfer_initiator(d, world.alice)
    (log,) = events(m, "InitiatorTransferStarted")
    assert (log.dataset_id, log.initiator, log.new_initiator) == (d, world.initiator, world.alice)
    assert m.pending_initiator(d) == world.alice and m.dataset(d).initiator == world.initiator
    with boa.env.prank(world.bob), boa.reverts("data_market: not the pending initiator"):
        m.accept_initiator(d)
    with boa.env.prank(world.alice):
        m.accept_initiator(d)
    (log,) = events(m, "InitiatorTransferred")
    assert (log.previous_initiator, log.new_initiator) == (world.initiator, world.alice)
    role = m.initiator_role(d)
    assert m.hasRole(role, world.alice) and not m.hasRole(role, world.initiator)
    assert m.dataset(d).initiator == world.alice and m.pending_initiator(d) == ZERO
    with boa.env.prank(world.alice):
        m.grantRole(m.evaluator_role(d), world.carol)  # the new initiator appoints evaluators
    with boa.env.prank(world.initiator), boa.reverts("access_control: account is missing role"):
        m.revokeRole(m.evaluator_role(d), world.carol)


def test_evaluator_renounces(world: World) -> None:
    m = world.market
    role = m.evaluator_role(world.dataset_id)
    with boa.env.prank(world.evaluator):
        m.renounceRole(role, world.evaluator)
    assert not m.hasRole(role, world.evaluator)
    with (
        boa.env.prank(world.alice),
        boa.reverts("access_control: can only renounce roles for itself"),
    ):
        m.renounceRole(m.initiator_role(world.dataset_id), world.initiator)


def test_supports_interface(world: World) -> None:
    assert world.market.supportsInterface(bytes.fromhex("01ffc9a7"))
    assert world.market.supportsInterface(bytes.fromhex("7965db0b"))
    assert not world.market.supportsInterface(bytes.fromhex("ffffffff"))


def test_revoke_role_by_a_non_admin_reverts(world: World) -> None:
    m = world.market
    with boa.env.prank(world.evaluator), boa.reverts("access_control: account is missing role"):
        m.revokeRole(m.evaluator_role(world.dataset_id), world.evaluator)


def test_registry_length_of_an_unknown_dataset_is_zero(world: World) -> None:
    assert world.market.registry_length(world.dataset_id) == 1
    assert world.market.registry_length(99) == 0
    assert not world.market.manifest_root_taken(99, cid(0xA3))


# --- proposals bound to their contributor, deposits, settlement status -------------------------


def test_a_copied_propose_without_an_earlier_commitment_loses(world: World) -> None:
    terms = (world.dataset_id, cid(0x10), cid(0x11), 10, cid(0x12))
    world.commit_proposal(world.contributor, *terms)
    # The copier sees the propose in the mempool and sends the same call first.
    with boa.env.prank(world.carol), boa.reverts("data_market: no earlier commitment"):
        world.market.propose(*terms)
    commitment = world.market.proposal_commitment(world.carol, *terms)
    with boa.env.prank(world.carol):
        world.market.commit_proposal(commitment)  # too late: not in an earlier block
        with boa.reverts("data_market: no earlier commitment"):
            world.market.propose(*terms)
    with boa.env.prank(world.contributor):
        pid = world.market.propose(*terms)
    (log,) = events(world.market, "ProposalCreated")
    assert (
        log.contributor == world.contributor
        and world.market.root_owner(cid(0x11)) == world.contributor
    )
    mine_block()
    with boa.env.prank(world.carol), boa.reverts("data_market: manifest root taken"):
        world.market.propose(*terms)
    mine = world.market.proposal_commitment(world.contributor, *terms)
    assert world.market.proposal_commitments(mine) == 0  # consumed
    assert world.market.proposal(pid).contributor == world.contributor


def test_commit_proposal_refusals(world: World) -> None:
    with boa.env.prank(world.carol):
        with boa.reverts("data_market: empty commitment"):
            world.market.commit_proposal(cid(0))
        world.market.commit_proposal(cid(5))
        (log,) = events(world.market, "ProposalCommitted")
        assert (log.commitment, log.contributor) == (cid(5), world.carol)
        assert world.market.proposal_commitments(cid(5)) == boa.env.evm.patch.block_number
        with boa.reverts("data_market: already committed"):
            world.market.commit_proposal(cid(5))


def test_an_accepted_root_cannot_be_replayed_into_another_dataset(world: World) -> None:
    pid = world.propose(0x10)
    accept(world, pid)
    other = world.create(world.alice, root=cid(0xB3))
    mine_block()
    world.commit_proposal(world.carol, other, cid(0x10), cid(0x11), 10, cid(0x12))
    with boa.env.prank(world.carol), boa.reverts("data_market: root of another contributor"):
        world.market.propose(other, cid(0x10), cid(0x11), 10, cid(0x12))
    world.propose(0x10, dataset_id=other)  # its contributor may


def test_the_deposit_returns_when_accepted(world: World) -> None:
    d = world.create(world.initiator, deposit=10**16, root=cid(0xC9))
    mine_block()
    assert world.market.dataset(d).deposit == 10**16
    pid = world.propose_paid(0x10, d, 10**16)
    with boa.env.prank(world.contributor), boa.reverts("data_market: not settled"):
        world.market.reclaim_deposit(pid)
    world.vote(pid, world.initiator)
    assert world.market.finalize(pid) == STATUS["accepted"]
    with boa.env.prank(world.alice), boa.reverts("data_market: not the contributor"):
        world.market.reclaim_deposit(pid)
    before = boa.env.get_balance(world.contributor)
    with boa.env.prank(world.contributor):
        assert world.market.reclaim_deposit(pid) == 10**16
        (log,) = events(world.market, "DepositSettled")
        assert (log.proposal_id, log.amount, log.forfeited) == (pid, 10**16, False)
        with boa.reverts("data_market: deposit settled"):
            world.market.reclaim_deposit(pid)
    assert boa.env.get_balance(world.contributor) - before == 10**16
    with boa.env.prank(world.initiator), boa.reverts("data_market: no deposit"):
        world.market.reclaim_deposit(d << 32)  # the initial data paid none


def test_a_rejected_unscored_proposal_gets_its_deposit_back(world: World) -> None:
    d = world.create(world.initiator, deposit=10**16, root=cid(0xC9))
    mine_block()
    pid = world.propose_paid(0x10, d, 10**16)
    world.vote(pid, world.initiator, False)
    assert world.market.finalize(pid) == STATUS["rejected"]  # no score: weight 1.0, not junk
    with boa.env.prank(world.contributor):
        assert world.market.reclaim_deposit(pid) == 10**16


def test_a_junk_proposal_forfeits_its_deposit_to_the_shareholders(world: World) -> None:
    d = world.create(world.initiator, deposit=10**16, commit=60, reveal=60, root=cid(0xC9))
    token = world.token_of(d)
    mine_block()
    pid = world.propose_paid(0x10, d, 10**16)
    world.commit(pid, world.evaluator, -100)
    world.until(world.market.proposal(pid).commit_end)
    world.reveal(pid, world.evaluator, -100)
    world.until(world.market.proposal(pid).voting_opens)
    world.vote(pid, world.initiator, False)
    assert world.market.finalize(pid) == STATUS["rejected"]
    (log,) = events(world.market, "DepositSettled")
    assert (log.proposal_id, log.contributor, log.forfeited) == (pid, world.contributor, True)
    assert token.total_paid() == 10**16 and token.claimable(world.initiator) >= 10**16 - 1
    with boa.env.prank(world.contributor), boa.reverts("data_market: deposit settled"):
        world.market.reclaim_deposit(pid)


def test_wrong_deposit_or_fee_payment_reverts(world: World) -> None:
    d = world.create(world.initiator, deposit=10**16, root=cid(0xC9))
    mine_block()
    world.commit_proposal(world.contributor, d, cid(1), cid(2), 1, cid(3))
    for value in (0, 10**16 + 1):
        with boa.env.prank(world.contributor), boa.reverts("data_market: wrong payment"):
            world.market.propose(d, cid(1), cid(2), 1, cid(3), value=value)
    with boa.reverts("data_market: invalid deposit"):
        world.create(world.alice, deposit=2**96)


def test_early_settlement_gives_the_deadline_status(world: World) -> None:
    d = world.create(world.initiator, quorum=8_000, threshold=6_000, root=cid(0xC9))
    mine_block()
    pid = world.propose(0x10, dataset_id=d)
    world.vote(pid, world.initiator, False)  # 100% no, quorum met: rejected now and at the end
    assert world.market.outcome(pid) == STATUS["rejected"]
    d2 = world.create(world.initiator, quorum=8_000, threshold=6_000, root=cid(0xCA))
    with boa.env.prank(world.initiator):
        world.token_of(d2).transfer(world.alice, 50 * UNIT)
    mine_block()
    pid2 = world.propose(0x20, dataset_id=d2)
    world.vote(pid2, world.alice, False)  # 50% no: yes cannot win, but quorum may still fail
    assert world.market.outcome(pid2) == STATUS["pending"]
    with boa.reverts("data_market: voting open"):
        world.market.finalize(pid2)
    boa.env.time_travel(seconds=VOTING_PERIOD)
    assert world.market.finalize(pid2) == STATUS["expired"]


def test_too_many_datasets_revert(world: World) -> None:
    poke(world.market, storage_slot(world.market, "dataset_count"), 99_999)
    with boa.reverts("data_market: too many datasets"):
        world.create(world.alice)


def test_proposals_write_nothing_into_holders_histories(world: World) -> None:
    # v1 took a token snapshot per proposal, so spam proposals made every holder's next
    # transfer pay for history entries; checkpoints are per block now, proposals write none.
    slot = mapping_slot(storage_slot(world.token, "_accounts"), int(world.alice, 16))
    before = boa.env.evm.get_storage(Address(world.token.address), slot)
    for n in range(5):
        world.propose(0x100 + 16 * n)
    assert boa.env.evm.get_storage(Address(world.token.address), slot) == before
    with boa.env.prank(world.alice):
        world.token.transfer(world.bob, UNIT)
    after = boa.env.evm.get_storage(Address(world.token.address), slot)
    assert (after >> 200) & (2**24 - 1) <= ((before >> 200) & (2**24 - 1)) + 1  # one entry at most
