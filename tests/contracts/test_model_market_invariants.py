"""Hypothesis state machine over the ModelMarket's money: deposits, signed receipts, settlements,
exits, withdrawals and training fees, checked against a small Python model after every step.

* money in (deposits + training fees) == money out (withdrawals of earnings and deposits +
  payments to the share token) + what the contract holds;
* the contract holds exactly the unspent deposits (deposited - settled, per escrow) plus the
  credited earnings not yet withdrawn;
* settled <= deposited for every escrow, and never more than the largest total the user signed;
* a receipt (model, user, nonce) settles at most once, a forged receipt never settles, and a
  settlement succeeds exactly when the rules say it should;
* nobody is paid twice: each account withdraws exactly what it was credited;
* the revenue views and the share token's received ether equal the model's sums.

Settings come from the ``databright-contracts`` profile (``DATABRIGHT_CONTRACTS_PROFILE=thorough``
for a long run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import boa
import pytest
from contracts_support import CONTRACTS, PROFILE, World, cid, receipt_signature
from eth_account import Account
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

BPS = 10_000
FEE = 10**15
PRICE = 10**9
EXIT_DELAY = 86_400
# (owner, data, node) splits of the three models; model 3 is served by its own owner.
SPLITS = [(7_000, 2_000, 1_000), (5_000, 0, 5_000), (3_334, 3_333, 3_333)]


@dataclass
class EscrowModel:
    deposited: int = 0
    settled: int = 0
    nonce: int = 0
    exit_at: int = 0


@dataclass
class Setup:
    mm: Any
    world: World
    owners: list[str]
    nodes: list[str]
    users: list[Any]
    domain: tuple[str, str, int, str]


def sign(setup: Setup, user: Any, model_id: int, total: int, nonce: int) -> bytes:
    return receipt_signature(user.key, setup.domain, model_id, user.address, total, nonce)


class ModelMarketMachine(RuleBasedStateMachine):
    setup: ClassVar[Setup]

    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        s = self.setup
        self.mm = s.mm
        self.token = s.world.token
        self.dataset = s.world.dataset_id
        self.models = [1, 2, 3]
        self.escrows: dict[tuple[int, int], EscrowModel] = {}
        # Receipts each user signed per model, in order: (total, nonce, signature).
        self.signed: dict[tuple[int, int], list[tuple[int, int, bytes]]] = {}
        self.settled_receipts: set[tuple[int, int, int]] = set()
        self.accounts = sorted(set(s.owners) | set(s.nodes))
        self.credited = dict.fromkeys(self.accounts, 0)
        self.withdrawn = dict.fromkeys(self.accounts, 0)
        self.money_in = 0
        self.money_out = 0
        self.token_received = 0
        self.training = 0
        self.prediction = 0
        self.model_revenue = dict.fromkeys(self.models, 0)
        self.specs = 0
        self.start_balance = boa.env.get_balance(self.mm.address)
        self.token_start = boa.env.get_balance(self.token.address)
        self.training_start = self.mm.training_revenue(self.dataset)

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)

    def _escrow(self, m: int, u: int) -> EscrowModel:
        return self.escrows.setdefault((m, u), EscrowModel())

    # --- rules ---------------------------------------------------------------------------------

    @rule(m=st.sampled_from([1, 2, 3]), u=st.integers(0, 2), amount=st.integers(1, 10**6))
    def deposit(self, m: int, u: int, amount: int) -> None:
        user = self.setup.users[u].address
        with boa.env.prank(user):
            self.mm.deposit(m, value=amount)
        e = self._escrow(m, u)
        e.deposited += amount
        e.exit_at = 0
        self.money_in += amount
        self._check_escrow(m, u)

    @rule(m=st.sampled_from([1, 2, 3]), u=st.integers(0, 2), increment=st.integers(0, 10**6))
    def sign_receipt(self, m: int, u: int, increment: int) -> None:
        """The user answers a request with a new cumulative receipt (the increment may be 0: a
        receipt can repeat the total under a new nonce)."""
        receipts = self.signed.setdefault((m, u), [])
        total = (receipts[-1][0] if receipts else 0) + increment
        nonce = (receipts[-1][1] if receipts else 0) + 1
        receipts.append((total, nonce, sign(self.setup, self.setup.users[u], m, total, nonce)))

    @rule(m=st.sampled_from([1, 2, 3]), u=st.integers(0, 2), pick=st.integers(0, 10**6))
    def settle(self, m: int, u: int, pick: int) -> None:
        """The node settles any receipt the user signed, the latest or an older one."""
        receipts = self.signed.get((m, u))
        if not receipts:
            return
        total, nonce, sig = receipts[pick % len(receipts)]
        e = self._escrow(m, u)
        now = boa.env.timestamp
        ok = (
            nonce > e.nonce
            and total > e.settled
            and total <= e.deposited
            and (e.exit_at == 0 or now < e.exit_at)
        )
        user = self.setup.users[u].address
        node = self.setup.nodes[m - 1]
        try:
            with boa.env.prank(node):
                self.mm.settle(m, user, total, nonce, sig)
        except Exception:
            assert not ok, "a valid settlement reverted"
            return
        assert ok, "an invalid settlement went through"
        assert (m, u, nonce) not in self.settled_receipts, "a receipt settled twice"
        self.settled_receipts.add((m, u, nonce))
        amount = total - e.settled
        _, data_bps, node_bps = SPLITS[m - 1]
        data = amount * data_bps // BPS
        node_part = amount * node_bps // BPS
        self.credited[node] += node_part
        self.credited[self.setup.owners[m - 1]] += amount - data - node_part
        self.token_received += data
        self.prediction += data
        self.money_out += data
        self.model_revenue[m] += amount
        e.settled, e.nonce = total, nonce
        self._check_escrow(m, u)
        self._check_accounts(node, self.setup.owners[m - 1])
        self._check_revenues(m)

    @rule(m=st.sampled_from([1, 2, 3]), u=st.integers(0, 2), extra=st.integers(1, 10**6))
    def forged_settle(self, m: int, u: int, extra: int) -> None:
        """The node raises the latest signed total: always refused."""
        receipts = self.signed.get((m, u))
        if not receipts:
            return
        total, nonce, sig = receipts[-1]
        with boa.env.prank(self.setup.nodes[m - 1]), boa.reverts():
            self.mm.settle(m, self.setup.users[u].address, total + extra, nonce, sig)

    @rule(m=st.sampled_from([1, 2, 3]), u=st.integers(0, 2))
    def start_exit(self, m: int, u: int) -> None:
        e = self._escrow(m, u)
        ok = e.deposited > e.settled and e.exit_at == 0
        with boa.env.prank(self.setup.users[u].address):
            if not ok:
                with boa.reverts():
                    self.mm.start_exit(m)
                return
            self.mm.start_exit(m)
        e.exit_at = boa.env.timestamp + EXIT_DELAY
        self._check_escrow(m, u)

    @rule(seconds=st.sampled_from([1, 3_600, EXIT_DELAY // 2, EXIT_DELAY]))
    def time_passes(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @rule(m=st.sampled_from([1, 2, 3]), u=st.integers(0, 2))
    def withdraw_deposit(self, m: int, u: int) -> None:
        e = self._escrow(m, u)
        ok = e.exit_at != 0 and boa.env.timestamp >= e.exit_at and e.deposited > e.settled
        with boa.env.prank(self.setup.users[u].address):
            if not ok:
                with boa.reverts():
                    self.mm.withdraw_deposit(m)
                return
            got = self.mm.withdraw_deposit(m)
        assert got == e.deposited - e.settled
        self.money_out += got
        e.deposited, e.exit_at = e.settled, 0
        self._check_escrow(m, u)

    @rule(i=st.integers(0, 10))
    def withdraw(self, i: int) -> None:
        account = self.accounts[i % len(self.accounts)]
        owed = self.credited[account] - self.withdrawn[account]
        with boa.env.prank(account):
            if owed == 0:
                with boa.reverts("model_market: nothing to withdraw"):
                    self.mm.withdraw()
                return
            assert self.mm.withdraw() == owed
        self.withdrawn[account] += owed
        self.money_out += owed
        self._check_accounts(account)

    @rule(i=st.integers(0, 10))
    def pay_training_fee(self, i: int) -> None:
        payer = self.accounts[i % len(self.accounts)]
        self.specs += 1
        with boa.env.prank(payer):
            self.mm.pay_training_fee(self.dataset, cid(0x7000 + self.specs), value=FEE)
            with boa.reverts("model_market: training fee already paid"):
                self.mm.pay_training_fee(self.dataset, cid(0x7000 + self.specs), value=FEE)
        self.money_in += FEE
        self.money_out += FEE
        self.token_received += FEE
        self.training += FEE
        self._check_revenues()

    # --- checks ------------------------------------------------------------------------------
    # The views are checked where a rule touched them (an EVM call per view per step would make
    # the machine several times slower); the ether balances are checked after every step.

    def _check_escrow(self, m: int, u: int) -> None:
        e = self._escrow(m, u)
        got = self.mm.escrow(m, self.setup.users[u].address)
        assert tuple(got) == (e.deposited, e.settled, e.nonce, e.exit_at)
        assert e.settled <= e.deposited
        receipts = self.signed.get((m, u), [])
        assert e.settled <= max((t for t, _, _ in receipts), default=0)

    def _check_accounts(self, *accounts: str) -> None:
        """Nobody is paid twice: what is owed is what was credited less what was withdrawn."""
        for a in accounts:
            assert self.mm.balance_of(a) == self.credited[a] - self.withdrawn[a]

    def _check_revenues(self, m: int | None = None) -> None:
        assert self.mm.training_revenue(self.dataset) == self.training_start + self.training
        assert self.mm.prediction_revenue(self.dataset) == self.prediction
        if m is not None:
            assert self.mm.model_revenue(m) == self.model_revenue[m]

    @invariant()
    def money_in_equals_money_out(self) -> None:
        held = boa.env.get_balance(self.mm.address) - self.start_balance
        assert self.money_in == self.money_out + held

    @invariant()
    def the_contract_holds_unspent_deposits_and_earnings(self) -> None:
        unspent = sum(e.deposited - e.settled for e in self.escrows.values())
        owed = sum(self.credited[a] - self.withdrawn[a] for a in self.accounts)
        assert boa.env.get_balance(self.mm.address) - self.start_balance == unspent + owed

    @invariant()
    def the_share_token_received_every_data_payment(self) -> None:
        # Nobody claims dividends here: the token keeps all it received.
        assert boa.env.get_balance(self.token.address) - self.token_start == self.token_received

    @invariant()
    def nothing_is_owed_beyond_what_was_signed(self) -> None:
        for key, e in self.escrows.items():
            assert e.settled <= e.deposited
            signed = self.signed.get(key, [])
            assert e.settled <= max((t for t, _, _ in signed), default=0)


@pytest.mark.timeout(300 if PROFILE == "databright-contracts" else 7200)
def test_model_market_state_machine(world: World) -> None:
    mm = boa.load_partial(str(CONTRACTS / "ModelMarket.vy")).deploy(world.market.address)
    owners = [boa.env.generate_address(f"inv-owner{i}") for i in range(3)]
    nodes = [boa.env.generate_address("inv-node0"), boa.env.generate_address("inv-node1")]
    nodes.append(owners[2])  # model 3's owner serves it
    users = [Account.create() for _ in range(3)]
    for a in [*owners, *nodes, *(u.address for u in users)]:
        boa.env.set_balance(a, 10**24)
    with boa.env.prank(world.initiator):
        mm.set_terms(world.dataset_id, FEE, 100, PRICE, PRICE, 600, 600)
    for i, (owner, node, split) in enumerate(zip(owners, nodes, SPLITS, strict=True)):
        spec = cid(0x6000 + i)
        with boa.env.prank(owner):
            mm.pay_training_fee(world.dataset_id, spec, value=FEE)
            mm.register_model(world.dataset_id, spec, cid(1), cid(2), cid(3), PRICE, *split, node)
    _, name, version, chain_id, verifying, _, _ = mm.eip712Domain()
    ModelMarketMachine.setup = Setup(
        mm, world, owners, nodes, users, (name, version, chain_id, verifying)
    )
    profile = settings.get_profile(PROFILE)
    if PROFILE == "databright-contracts":  # keep the default run near 10 s
        profile = settings(profile, max_examples=25)
    ModelMarketMachine.TestCase.settings = profile
    ModelMarketMachine.TestCase().runTest()
