"""Hypothesis state machine over the whole market, checking the invariants after every step.

Random sequences of create / propose / vote / evaluate / transfer / finalize / pay / claim / time
travel run against the contracts and against a small Python model of the rules. After every step:

* every token's total supply equals the sum of the balances (and the model's balances);
* per dataset, claimed + unclaimed dividends + accounted dust == paid, exactly (in the contract's
  magnified units), the token holds exactly paid - claimed wei, and each holder's dividends are
  their exact pro-rata share of every payment by holdings at payment time, within rounding;
* tallies equal the sum of the model's snapshot weights of the votes cast: no address votes twice
  and no vote carries weight its voter did not hold at the end of the block before the
  proposal's; no vote is cast before the evaluation (commit, then reveal) is over; no outcome is
  settled in the proposal's block or, before the deadline, before the dataset's minimum voting
  period after voting opens; the quality weight is the clamped median of the revealed scores;
* registry entries and the status and tallies of finalized proposals never change;
* the market holds exactly the deposits not yet settled: each is returned once (accepted or
  scored positive) or paid once to the shareholders as a dividend, never both.

Settings: the default run is the ``databright-contracts`` profile cut to
``STATE_MACHINE_EXAMPLES`` sequences (the suite's time budget; Hypothesis's example database
replays any failure it found first); ``DATABRIGHT_CONTRACTS_PROFILE=thorough`` runs the long
profile untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

import boa
import pytest
from contracts_support import (
    CAP_BPS,
    PROFILE,
    QUORUM_BPS,
    STATUS,
    THRESHOLD_BPS,
    UNIT,
    VOTING_PERIOD,
    World,
    cid,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

MAG = 2**96
BPS = 10_000
PERIOD = 1_000
# Sequences of 30 steps in the default run (the profile says 40; each costs ~1.5 s here).
STATE_MACHINE_EXAMPLES = 15


def expected_outcome(
    supply: int, yes: int, no: int, quorum: int, threshold: int, closed: bool
) -> int:
    """The finalization rule, written from the spec (see DataMarket's NatSpec)."""
    votes = yes + no
    quorum_met = votes * BPS >= quorum * supply
    if closed:
        if not quorum_met:
            return STATUS["expired"]
        return STATUS["accepted"] if yes * BPS >= threshold * votes else STATUS["rejected"]
    if quorum_met and yes * BPS >= threshold * supply:
        return STATUS["accepted"]
    if quorum_met and (supply - no) * BPS < threshold * supply:
        return STATUS["rejected"]
    return STATUS["pending"]


@given(
    supply=st.integers(1, 10**6),
    yes_part=st.integers(0, 10**6),
    no_part=st.integers(0, 10**6),
    quorum=st.integers(1, BPS),
    threshold=st.integers(1, BPS),
)
@settings(max_examples=300, deadline=None)
def test_early_decisions_are_final(
    supply: int, yes_part: int, no_part: int, quorum: int, threshold: int
) -> None:
    """An early outcome is exactly what the deadline would settle whatever the remaining weight
    does (rejected stays rejected, never expired)."""
    yes = yes_part % (supply + 1)
    no = no_part % (supply - yes + 1)
    early = expected_outcome(supply, yes, no, quorum, threshold, closed=False)
    if early == STATUS["pending"]:
        return
    rest = supply - yes - no
    for extra_yes, extra_no in [(0, 0), (rest, 0), (0, rest), (rest // 2, rest - rest // 2)]:
        final = expected_outcome(supply, yes + extra_yes, no + extra_no, quorum, threshold, True)
        assert final == early


def weight_bps(prop: ProposalModel) -> int:
    """The quality weight from the spec: the median of the revealed scores, clamped."""
    scores = sorted(score for _, score in prop.revealed)
    if not scores:
        return BPS
    n = len(scores)
    median = scores[n // 2] if n % 2 else int((scores[n // 2 - 1] + scores[n // 2]) / 2)
    return min(max(median, 0), prop.dataset.cap)


@dataclass
class DatasetModel:
    id: int
    token: Any
    quorum: int
    threshold: int
    cap: int
    period: int
    min_period: int
    commit: int
    reveal: int
    evaluators: list[str]
    deposit: int
    balances: dict[str, int]
    closing: dict[str, int]  # balances at the end of the previous block
    paid: int = 0
    claimed: dict[str, int] = field(default_factory=dict)
    entitled: dict[str, Fraction] = field(default_factory=dict)
    claims: int = 0
    taken_roots: set[int] = field(default_factory=set)
    registry: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class ProposalModel:
    id: int
    dataset: DatasetModel
    contributor: str
    root: int
    examples: int
    deadline: int
    block: int
    settle_from: int
    supply: int
    snapshot: dict[str, int]
    commit_end: int = 0
    voting_opens: int = 0
    committed: dict[str, int] = field(default_factory=dict)
    revealed: list[tuple[str, int]] = field(default_factory=list)
    yes: int = 0
    no: int = 0
    ballots: dict[str, tuple[bool, int]] = field(default_factory=dict)
    status: int = STATUS["pending"]
    deposit_held: bool = True


class MarketMachine(RuleBasedStateMachine):
    world: ClassVar[World]

    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        w = self.world
        self.m = w.market
        self.evaluator = w.evaluator
        self.actors = [w.initiator, w.alice, w.bob, w.carol, w.contributor]
        self.datasets: list[DatasetModel] = []
        self.proposals: list[ProposalModel] = []
        self.tag = 0x10_000
        # The session dataset is part of the world: model it too.
        self.evaluators = [w.evaluator, w.carol]
        self.root_owners: dict[int, str] = {}
        self._adopt(
            w.dataset_id, w.token, QUORUM_BPS, THRESHOLD_BPS, CAP_BPS, VOTING_PERIOD, 0, 0, 0,
            [w.evaluator], 0,
        )  # fmt: skip
        self.datasets[0].closing = dict(self.datasets[0].balances)  # the world mined a block

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)

    # --- helpers -------------------------------------------------------------------------------

    def _adopt(
        self,
        dataset_id: int,
        token: Any,
        quorum: int,
        threshold: int,
        cap: int,
        period: int,
        min_period: int,
        commit: int,
        reveal: int,
        evaluators: list[str],
        deposit: int,
    ) -> None:
        balances = {a: token.balanceOf(a) for a in self.actors}
        closing = dict.fromkeys(self.actors, 0)
        d = DatasetModel(
            dataset_id, token, quorum, threshold, cap, period, min_period, commit, reveal,
            evaluators, deposit, balances, closing,
        )  # fmt: skip
        d.claimed = dict.fromkeys(self.actors, 0)
        d.entitled = {a: Fraction(0) for a in self.actors}
        entry = self.m.registry_entry(dataset_id, 0)
        root = int.from_bytes(entry.manifest_root, "big")
        d.taken_roots.add(root)
        d.registry.append(
            (entry.proposal_id, entry.contributor, root, entry.examples, entry.shares)
        )
        self.datasets.append(d)

    def _block(self) -> int:
        return int(boa.env.evm.patch.block_number)

    def _pick(self, items: list[Any], i: int) -> Any:
        return items[i % len(items)]

    def _root_bytes(self, d: DatasetModel, root: int) -> bytes:
        return cid(0x100_000 + 0x100 * d.id + root)

    # --- rules ---------------------------------------------------------------------------------

    @precondition(lambda self: len(self.datasets) < 3)
    @rule(
        who=st.integers(0, 4),
        examples=st.integers(1, 60),
        quorum=st.sampled_from([1, 2_000, 5_000, 10_000]),
        threshold=st.sampled_from([1, 5_000, 6_667, 10_000]),
        cap=st.sampled_from([10_000, 15_000, 1_000_000]),
        min_period=st.sampled_from([0, 100, PERIOD]),
        phases=st.sampled_from([0, 50, 400]),
        deposit=st.just(10**15),  # the session dataset has none
    )
    def create(
        self,
        who: int,
        examples: int,
        quorum: int,
        threshold: int,
        cap: int,
        min_period: int,
        phases: int,
        deposit: int,
    ) -> None:
        initiator = self.actors[who]
        self.tag += 3
        with boa.env.prank(initiator):
            dataset_id = self.m.create_dataset(
                "Machine", cid(self.tag), cid(self.tag + 1), cid(self.tag + 2), examples,
                PERIOD, min_period, quorum, threshold, self.evaluators, cap, phases, phases, 0,
                deposit,
            )  # fmt: skip
        token = self.world.share_token.at(self.m.share_token(dataset_id))
        self._adopt(
            dataset_id, token, quorum, threshold, cap, PERIOD, min_period, phases, phases,
            list(self.evaluators), deposit,
        )  # fmt: skip
        assert self.datasets[-1].balances[initiator] == examples * UNIT

    @rule(
        ds=st.integers(0, 99),
        who=st.integers(0, 4),
        root=st.integers(0, 5),
        examples=st.integers(1, 30),
    )
    def propose(self, ds: int, who: int, root: int, examples: int) -> None:
        d = self._pick(self.datasets, ds)
        proposer = self.actors[who]
        root_bytes = self._root_bytes(d, root)
        root = int.from_bytes(root_bytes, "big")
        taken = root in d.taken_roots
        terms = (d.id, cid(0xDA7A), root_bytes, examples, cid(0xE7A))
        commitment = self.m.proposal_commitment(proposer, *terms)
        with boa.env.prank(proposer):
            if self.m.proposal_commitments(commitment) == 0:
                self.m.commit_proposal(commitment)
        self.mine()  # the commitment must come from an earlier block
        owner = self.root_owners.get(root, proposer)
        with boa.env.prank(proposer):
            if taken:
                with boa.reverts("data_market: manifest root taken"):
                    self.m.propose(*terms)
                return
            if owner != proposer:
                with boa.reverts("data_market: root of another contributor"):
                    self.m.propose(*terms)
                return
            pid = self.m.propose(*terms, value=d.deposit)
        self.root_owners[root] = proposer
        d.taken_roots.add(root)
        self.proposals.append(
            ProposalModel(
                pid, d, proposer, int.from_bytes(root_bytes, "big"), examples,
                boa.env.timestamp + d.commit + d.reveal + d.period, self._block(),
                boa.env.timestamp + d.commit + d.reveal + d.min_period,
                sum(d.closing.values()), dict(d.closing),
                commit_end=boa.env.timestamp + d.commit,
                voting_opens=boa.env.timestamp + d.commit + d.reveal,
            )
        )  # fmt: skip
        self.mine()  # nothing is settled in the proposal's block

    @precondition(lambda self: self.proposals)
    @rule(p=st.integers(0, 99), who=st.integers(0, 4), support=st.booleans())
    def vote(self, p: int, who: int, support: bool) -> None:
        prop = self._pick(self.proposals, p)
        voter = self.actors[who]
        weight = prop.snapshot[voter]
        if prop.status != STATUS["pending"]:
            expected = "data_market: not pending"
        elif boa.env.timestamp >= prop.deadline:
            expected = "data_market: voting closed"
        elif boa.env.timestamp < prop.voting_opens:
            expected = "data_market: voting not open"
        elif voter in prop.ballots:
            expected = "data_market: already voted"
        elif weight == 0:
            expected = "data_market: no voting weight"
        else:
            expected = ""
        with boa.env.prank(voter):
            if expected:
                with boa.reverts(expected):
                    self.m.vote(prop.id, support)
                return
            self.m.vote(prop.id, support)
        prop.ballots[voter] = (support, weight)
        if support:
            prop.yes += weight
        else:
            prop.no += weight
        ballot = self.m.ballot(prop.id, voter)
        assert (ballot.voted, ballot.support, ballot.weight) == (True, support, weight)

    @precondition(lambda self: self.proposals)
    @rule(p=st.integers(0, 99), e=st.integers(0, 1), score=st.integers(-20_000, 40_000))
    def commit(self, p: int, e: int, score: int) -> None:
        prop = self._pick(self.proposals, p)
        evaluator = self.evaluators[e]
        if prop.status != STATUS["pending"]:
            expected = "data_market: not pending"
        elif boa.env.timestamp >= prop.commit_end:
            expected = "data_market: commit phase over"
        elif evaluator not in prop.dataset.evaluators:
            expected = "data_market: not an evaluator"
        elif evaluator == prop.contributor:
            expected = "data_market: own proposal"
        elif evaluator in prop.committed:
            expected = "data_market: already committed"
        else:
            expected = ""
        commitment = self.m.commitment_of(prop.id, evaluator, score, cid(0xEE), cid(score & 0xFF))
        with boa.env.prank(evaluator):
            if expected:
                with boa.reverts(expected):
                    self.m.commit_evaluation(prop.id, commitment)
                return
            self.m.commit_evaluation(prop.id, commitment)
        prop.committed[evaluator] = score

    @precondition(lambda self: self.proposals)
    @rule(p=st.integers(0, 99), e=st.integers(0, 1))
    def reveal(self, p: int, e: int) -> None:
        prop = self._pick(self.proposals, p)
        evaluator = self.evaluators[e]
        score = prop.committed.get(evaluator, 0)
        if prop.status != STATUS["pending"]:
            expected = "data_market: not pending"
        elif boa.env.timestamp < prop.commit_end:
            expected = "data_market: commit phase open"
        elif boa.env.timestamp >= prop.voting_opens:
            expected = "data_market: reveal phase over"
        elif evaluator not in prop.committed:
            expected = "data_market: no commitment"
        elif any(who == evaluator for who, _ in prop.revealed):
            expected = "data_market: already revealed"
        else:
            expected = ""
        with boa.env.prank(evaluator):
            if expected:
                with boa.reverts(expected):
                    self.m.reveal_evaluation(prop.id, score, cid(0xEE), cid(score & 0xFF))
                return
            self.m.reveal_evaluation(prop.id, score, cid(0xEE), cid(score & 0xFF))
        prop.revealed.append((evaluator, score))

    @rule(
        ds=st.integers(0, 99), a=st.integers(0, 4), b=st.integers(0, 4), part=st.integers(0, 1000)
    )
    def transfer(self, ds: int, a: int, b: int, part: int) -> None:
        d = self._pick(self.datasets, ds)
        sender, receiver = self.actors[a], self.actors[b]
        amount = d.balances[sender] * part // 1000
        with boa.env.prank(sender):
            d.token.transfer(receiver, amount)
        d.balances[sender] -= amount
        d.balances[receiver] += amount

    @precondition(lambda self: self.proposals)
    @rule(p=st.integers(0, 99), who=st.integers(0, 4))
    def finalize(self, p: int, who: int) -> None:
        prop = self._pick(self.proposals, p)
        d = prop.dataset
        if prop.status != STATUS["pending"]:
            with boa.reverts("data_market: not pending"):
                self.m.finalize(prop.id)
            return
        closed = boa.env.timestamp >= prop.deadline
        status = expected_outcome(prop.supply, prop.yes, prop.no, d.quorum, d.threshold, closed)
        if not closed and (self._block() <= prop.block or boa.env.timestamp < prop.settle_from):
            status = STATUS["pending"]
        assert self.m.outcome(prop.id) == status
        if status == STATUS["pending"]:
            with boa.reverts("data_market: voting open"):
                self.m.finalize(prop.id)
            return
        with boa.env.prank(self.actors[who]):
            assert self.m.finalize(prop.id) == status
        prop.status = status
        if status == STATUS["accepted"]:
            shares = prop.examples * weight_bps(prop) * UNIT // BPS
            d.balances[prop.contributor] += shares
            d.registry.append((prop.id, prop.contributor, prop.root, prop.examples, shares))
        else:
            d.taken_roots.discard(prop.root)
        if d.deposit and status != STATUS["accepted"] and weight_bps(prop) == 0:
            # Junk: the deposit is paid to the shareholders, pro rata now.
            prop.deposit_held = False
            supply = sum(d.balances.values())
            d.paid += d.deposit
            for a in self.actors:
                d.entitled[a] += Fraction(d.deposit * d.balances[a], supply)

    @precondition(lambda self: self.proposals)
    @rule(p=st.integers(0, 99), who=st.integers(0, 4))
    def reclaim(self, p: int, who: int) -> None:
        prop = self._pick(self.proposals, p)
        account = self.actors[who]
        if prop.status == STATUS["pending"]:
            expected = "data_market: not settled"
        elif account != prop.contributor:
            expected = "data_market: not the contributor"
        elif not prop.deposit_held:
            expected = "data_market: deposit settled"
        elif prop.dataset.deposit == 0:
            expected = "data_market: no deposit"
        else:
            expected = ""
        with boa.env.prank(account):
            if expected:
                with boa.reverts(expected):
                    self.m.reclaim_deposit(prop.id)
                return
            before = boa.env.get_balance(account)
            assert self.m.reclaim_deposit(prop.id) == prop.dataset.deposit
        assert boa.env.get_balance(account) - before == prop.dataset.deposit
        prop.deposit_held = False

    @rule(ds=st.integers(0, 99), who=st.integers(0, 4), amount=st.integers(1, 10**18))
    def pay(self, ds: int, who: int, amount: int) -> None:
        d = self._pick(self.datasets, ds)
        with boa.env.prank(self.actors[who]):
            d.token.pay(value=amount)
        supply = sum(d.balances.values())
        d.paid += amount
        for a in self.actors:
            d.entitled[a] += Fraction(amount * d.balances[a], supply)

    @rule(ds=st.integers(0, 99), who=st.integers(0, 4))
    def claim(self, ds: int, who: int) -> None:
        d = self._pick(self.datasets, ds)
        account = self.actors[who]
        owed = d.token.claimable(account)
        with boa.env.prank(account):
            if owed == 0:
                with boa.reverts("share_token: nothing to claim"):
                    d.token.claim()
                return
            before = boa.env.get_balance(account)
            assert d.token.claim() == owed
        assert boa.env.get_balance(account) - before == owed
        d.claimed[account] += owed
        d.claims += 1

    @rule(seconds=st.integers(1, 1_500))
    def time_travel(self, seconds: int) -> None:
        before = self._block()
        boa.env.time_travel(seconds=seconds)  # a block per 12 s
        if self._block() != before:
            for d in self.datasets:
                d.closing = dict(d.balances)

    @rule()
    def mine(self) -> None:
        boa.env.time_travel(blocks=1)
        for d in self.datasets:
            d.closing = dict(d.balances)

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def shares_add_up(self) -> None:
        for d in self.datasets:
            balances = {a: d.token.balanceOf(a) for a in self.actors}
            assert balances == d.balances
            assert d.token.totalSupply() == sum(balances.values())
            # Past balances: the end of the previous block.
            last = self._block() - 1
            assert all(d.token.balance_at(a, last) == d.closing[a] for a in self.actors)

    @invariant()
    def dividends_add_up(self) -> None:
        for d in self.datasets:
            t = d.token
            unclaimed = {a: t.dividend_of(a) for a in self.actors}
            claimed = sum(d.claimed.values())
            assert t.total_paid() == d.paid and t.total_claimed() == claimed
            assert sum(unclaimed.values()) + t.dust() + claimed * MAG == d.paid * MAG
            assert boa.env.get_balance(t.address) == d.paid - claimed
            slack = 2 + d.claims  # rounding: < 1 wei each way, plus redistributed claim dust
            for a in self.actors:
                got = d.claimed[a] + unclaimed[a] // MAG
                assert abs(got - d.entitled[a]) <= slack, (a, got, d.entitled[a])

    @invariant()
    def tallies_match_the_snapshot_weights(self) -> None:
        # Every status every step (finalized ones must never change); the full record of the
        # most recent proposals (older ones cannot take votes: `vote` checks that revert).
        for prop in self.proposals:
            assert self.m.proposal_state(prop.id) == prop.status
        for prop in self.proposals[-6:]:
            onchain = self.m.proposal(prop.id)
            assert (onchain.yes_votes, onchain.no_votes) == (prop.yes, prop.no)
            assert onchain.snapshot_supply == prop.supply
            assert onchain.quality_weight_bps == weight_bps(prop)

    @invariant()
    def deposits_add_up(self) -> None:
        held = sum(p.dataset.deposit for p in self.proposals if p.deposit_held)
        assert boa.env.get_balance(self.m.address) == held

    @invariant()
    def registry_is_append_only(self) -> None:
        for d in self.datasets:
            got = [
                (
                    e.proposal_id,
                    e.contributor,
                    int.from_bytes(e.manifest_root, "big"),
                    e.examples,
                    e.shares,
                )
                for e in self.m.registry(d.id, 0, 64)
            ]
            assert got == d.registry
            assert self.m.registry_length(d.id) == len(d.registry)


@pytest.mark.timeout(300 if PROFILE == "databright-contracts" else 7200)
def test_market_state_machine(world: World) -> None:
    MarketMachine.world = world
    profile = settings.get_profile(PROFILE)
    if PROFILE == "databright-contracts":
        profile = settings(profile, max_examples=STATE_MACHINE_EXAMPLES)
    MarketMachine.TestCase.settings = profile
    MarketMachine.TestCase().runTest()
