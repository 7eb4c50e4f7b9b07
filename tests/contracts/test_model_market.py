"""ModelMarket: terms, training fees, models and versions, benchmarks, the best checkpoint, the
prepaid escrow with EIP-712 receipts, settlement, exits, withdrawals, revenue views and gas.

A positive and a negative test for every external function and every revert string. Receipts are
signed with eth_account for fresh keys, exactly as a user's wallet would sign them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boa
import pytest
from contracts_support import (
    CONTRACTS,
    HELPERS,
    World,
    cid,
    events,
    mapping_slot,
    mine_block,
    poke,
    receipt_signature,
    storage_slot,
)
from eth_account import Account
from eth_utils import keccak

ZERO = "0x" + "00" * 20
BPS = 10_000
TRAINING_FEE = 10**16
MARGIN = 100
BASE_PRICE = 10**12
SLOPE = 9 * 10**12
COMMIT = 600
REVEAL = 600
EXIT_DELAY = 86_400
SPEC = cid(0x5BEC)
SPLIT = (7_000, 2_000, 1_000)  # owner, data, node
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass
class Market:
    """The session's model market on the world's dataset, with one registered model.

    Dataset 1 has terms (fee, margin, price curve, phases) and three evaluators (the world's
    evaluator, ev2, ev3). `dev` paid the training fee for SPEC and registered model 1 (price
    BASE_PRICE, split 70/20/10 served by `node`). `user` is a key account that signs receipts.
    """

    world: World
    deployer: Any
    mm: Any
    dev: str
    node: str
    ev2: str
    ev3: str
    user: Any  # eth_account LocalAccount
    model_id: int

    @property
    def evaluators(self) -> list[str]:
        return [self.world.evaluator, self.ev2, self.ev3]

    def sign(self, total: int, nonce: int, model_id: int | None = None, key: Any = None) -> bytes:
        """The user's EIP-712 signature of a cumulative receipt."""
        signer = key or self.user
        return sign_receipt(
            self.mm, signer, model_id or self.model_id, signer.address, total, nonce
        )

    def settle(self, total: int, nonce: int, model_id: int | None = None) -> None:
        mid = model_id or self.model_id
        with boa.env.prank(self.mm.model(mid).node):
            self.mm.settle(mid, self.user.address, total, nonce, self.sign(total, nonce, mid))

    def deposit(self, amount: int, model_id: int | None = None) -> None:
        with boa.env.prank(self.user.address):
            self.mm.deposit(model_id or self.model_id, value=amount)

    def register(
        self,
        owner: str,
        spec: bytes = SPEC,
        price: int = BASE_PRICE,
        split: tuple[int, int, int] = SPLIT,
        node: str | None = None,
        pay: bool = True,
    ) -> int:
        with boa.env.prank(owner):
            if pay and not self.mm.training_paid(owner, self.world.dataset_id, spec):
                self.mm.pay_training_fee(self.world.dataset_id, spec, value=TRAINING_FEE)
            return int(
                self.mm.register_model(
                    self.world.dataset_id, spec, cid(0xC0), cid(0xC1), cid(0xC2), price, *split,
                    node or self.node,
                )
            )  # fmt: skip

    def commit(
        self, model_id: int, version: int, evaluator: str, score: int, salt: int = 9
    ) -> None:
        c = self.mm.benchmark_commitment(model_id, version, evaluator, score, cid(0xE1), cid(salt))
        with boa.env.prank(evaluator):
            self.mm.commit_benchmark(model_id, version, c)

    def reveal(
        self, model_id: int, version: int, evaluator: str, score: int, salt: int = 9
    ) -> None:
        with boa.env.prank(evaluator):
            self.mm.reveal_benchmark(model_id, version, score, cid(0xE1), cid(salt))

    def until_reveal(self, model_id: int, version: int) -> None:
        self.world.until(self.mm.version(model_id, version).commit_deadline)

    def until_closed(self, model_id: int, version: int) -> None:
        self.world.until(self.mm.version(model_id, version).reveal_deadline)

    def benchmark(self, model_id: int, version: int, scores: list[int]) -> int:
        """Commit, reveal and finalize `scores` (one per evaluator, in order)."""
        evaluators = self.evaluators[: len(scores)]
        for ev, s in zip(evaluators, scores, strict=True):
            self.commit(model_id, version, ev, s)
        self.until_reveal(model_id, version)
        for ev, s in zip(evaluators, scores, strict=True):
            self.reveal(model_id, version, ev, s)
        self.until_closed(model_id, version)
        return int(self.mm.finalize_benchmark(model_id, version))


def sign_receipt(mm: Any, key: Any, model_id: int, user: str, total: int, nonce: int) -> bytes:
    """Sign `Receipt(model_id, user, total, nonce)` in the market's EIP-712 domain."""
    _, name, version, chain_id, verifying, _, _ = mm.eip712Domain()
    return receipt_signature(key.key, (name, version, chain_id, verifying), model_id, user,
                             total, nonce)  # fmt: skip


@pytest.fixture(scope="session")
def model_market_deployer() -> Any:
    return boa.load_partial(str(CONTRACTS / "ModelMarket.vy"))


@pytest.fixture(scope="module")
def market(world: World, model_market_deployer: Any) -> Iterator[Market]:
    """The model market over the session's data market, rolled back after the module: the
    training fee it pays reaches the session's shareholders, whom other modules count on."""
    with boa.env.anchor():
        yield _deploy_market(world, model_market_deployer)


def _deploy_market(world: World, model_market_deployer: Any) -> Market:
    mm = model_market_deployer.deploy(world.market.address)
    names = ["dev", "node", "ev2", "ev3"]
    accounts = {n: boa.env.generate_address(f"mm-{n}") for n in names}
    for address in accounts.values():
        boa.env.set_balance(address, 10**24)
    user = Account.create()
    boa.env.set_balance(user.address, 10**24)
    role = world.market.evaluator_role(world.dataset_id)
    with boa.env.prank(world.initiator):
        world.market.grantRole(role, accounts["ev2"])
        world.market.grantRole(role, accounts["ev3"])
        mm.set_terms(world.dataset_id, TRAINING_FEE, MARGIN, BASE_PRICE, SLOPE, COMMIT, REVEAL)
    m = Market(world, model_market_deployer, mm, user=user, model_id=0, **accounts)
    m.model_id = m.register(m.dev)
    mine_block()
    return m


def claimable(world: World, account: str) -> int:
    return int(world.token.claimable(account))


# --- construction ------------------------------------------------------------------------------


def test_deploy_binds_the_data_market_and_the_receipt_domain(market: Market) -> None:
    mm = market.mm
    assert mm.market() == market.world.market.address
    _, name, version, chain_id, verifying, _, _ = mm.eip712Domain()
    assert (name, version, verifying) == ("DataBright ModelMarket", "1", mm.address)
    assert chain_id == boa.env.evm.patch.chain_id
    assert mm.BPS() == BPS and mm.EXIT_DELAY() == EXIT_DELAY
    assert mm.RECEIPT_TYPEHASH() == keccak(
        b"Receipt(uint256 model_id,address user,uint256 total,uint256 nonce)"
    )


def test_deploy_with_a_non_contract_data_market_reverts(market: Market) -> None:
    with boa.reverts("model_market: data market is not a contract"):
        market.deployer.deploy(market.world.alice)


def test_runtime_code_fits_the_contract_size_limit(market: Market) -> None:
    assert len(market.mm.bytecode) <= 24_576


def test_domain_separator_and_receipt_digest_match_eip712(market: Market) -> None:
    """The digest is EIP-712's `keccak(0x1901 . domainSeparator . hashStruct(receipt))`, and a
    wallet's signature of the typed data recovers to the user from it."""
    from eth_abi import encode
    from eth_keys import keys

    mm, user = market.mm, market.user
    _, name, version, chain_id, verifying, _, _ = mm.eip712Domain()
    domain_type = keccak(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    separator = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [domain_type, keccak(name.encode()), keccak(version.encode()), chain_id, verifying],
        )
    )
    assert mm.domain_separator() == separator
    receipt_type = keccak(b"Receipt(uint256 model_id,address user,uint256 total,uint256 nonce)")
    struct_hash = keccak(
        encode(
            ["bytes32", "uint256", "address", "uint256", "uint256"],
            [receipt_type, 1, user.address, 5, 2],
        )
    )
    digest = keccak(b"\x19\x01" + separator + struct_hash)
    assert mm.receipt_digest(1, user.address, 5, 2) == digest
    signature = sign_receipt(mm, user, 1, user.address, 5, 2)
    recovered = keys.Signature(signature[:64] + bytes([signature[64] - 27]))
    assert recovered.recover_public_key_from_msg_hash(digest).to_checksum_address() == user.address


# --- terms -------------------------------------------------------------------------------------


def test_set_terms_stores_and_logs_them(market: Market) -> None:
    w, mm = market.world, market.mm
    with boa.env.prank(w.initiator):
        mm.set_terms(w.dataset_id, 5, 250, 7, 11, 30, 40)
    (log,) = events(mm, "TermsSet")
    assert (log.dataset_id, log.training_fee, log.margin_bps) == (w.dataset_id, 5, 250)
    assert (log.base_price, log.price_slope, log.commit_period, log.reveal_period) == (
        7,
        11,
        30,
        40,
    )
    assert tuple(mm.terms(w.dataset_id)) == (5, 250, 7, 11, 30, 40, True)
    assert not mm.terms(99).set


def test_set_terms_by_a_non_initiator_reverts(market: Market) -> None:
    w = market.world
    for sender in (w.alice, w.evaluator):
        with boa.env.prank(sender), boa.reverts("model_market: not the initiator"):
            market.mm.set_terms(w.dataset_id, 0, 0, 0, 0, 1, 1)
    with boa.env.prank(w.initiator), boa.reverts("model_market: not the initiator"):
        market.mm.set_terms(99, 0, 0, 0, 0, 1, 1)  # no such dataset: nobody is its initiator


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, BPS + 1, 0, 0, 1, 1), "model_market: invalid margin"),
        ((2**128, 0, 0, 0, 1, 1), "model_market: invalid price"),
        ((0, 0, 2**128, 0, 1, 1), "model_market: invalid price"),
        ((0, 0, 0, 2**128, 1, 1), "model_market: invalid price"),
        ((0, 0, 0, 0, 0, 1), "model_market: invalid periods"),
        ((0, 0, 0, 0, 1, 0), "model_market: invalid periods"),
        ((0, 0, 0, 0, 2**32, 1), "model_market: invalid periods"),
        ((0, 0, 0, 0, 1, 2**32), "model_market: invalid periods"),
    ],
)
def test_set_terms_out_of_range_reverts(
    market: Market, args: tuple[int, ...], message: str
) -> None:
    with boa.env.prank(market.world.initiator), boa.reverts(message):
        market.mm.set_terms(market.world.dataset_id, *args)


def test_price_cap_follows_the_curve(market: Market) -> None:
    d = market.world.dataset_id
    assert market.mm.price_cap(d, 0) == BASE_PRICE
    assert market.mm.price_cap(d, BPS) == BASE_PRICE + SLOPE
    assert market.mm.price_cap(d, 8_000) == BASE_PRICE + SLOPE * 8_000 // BPS
    with boa.reverts("model_market: invalid score"):
        market.mm.price_cap(d, BPS + 1)


def test_changed_terms_leave_existing_prices_alone(market: Market) -> None:
    w, mm = market.world, market.mm
    with boa.env.prank(w.initiator):
        mm.set_terms(w.dataset_id, TRAINING_FEE, MARGIN, 1, SLOPE, COMMIT, REVEAL)
    assert mm.model(market.model_id).price == BASE_PRICE
    with boa.env.prank(market.dev), boa.reverts("model_market: price above cap"):
        mm.set_price(market.model_id, BASE_PRICE)


# --- training fee ------------------------------------------------------------------------------


def test_training_fee_is_a_dividend_to_the_shareholders(market: Market) -> None:
    w, mm = market.world, market.mm
    before = {a: claimable(w, a) for a in (w.initiator, w.alice, w.bob)}
    revenue = mm.training_revenue(w.dataset_id)
    with boa.env.prank(w.carol):
        mm.pay_training_fee(w.dataset_id, cid(0x77), value=TRAINING_FEE)
    (log,) = events(mm, "TrainingFeePaid")
    assert (log.dataset_id, log.payer, log.spec_digest, log.amount) == (
        w.dataset_id, w.carol, cid(0x77), TRAINING_FEE,
    )  # fmt: skip
    assert mm.training_paid(w.carol, w.dataset_id, cid(0x77))
    assert not mm.training_paid(w.carol, w.dataset_id, SPEC)
    assert mm.training_revenue(w.dataset_id) == revenue + TRAINING_FEE
    # 50 / 30 / 20 shares.
    gained = {a: claimable(w, a) - before[a] for a in before}
    assert gained == {
        w.initiator: TRAINING_FEE // 2,
        w.alice: TRAINING_FEE * 3 // 10,
        w.bob: TRAINING_FEE // 5,
    }
    assert boa.env.get_balance(mm.address) == 0


def test_training_fee_paid_twice_reverts(market: Market) -> None:
    with boa.env.prank(market.dev), boa.reverts("model_market: training fee already paid"):
        market.mm.pay_training_fee(market.world.dataset_id, SPEC, value=TRAINING_FEE)


@pytest.mark.parametrize("value", [0, TRAINING_FEE - 1, TRAINING_FEE + 1])
def test_wrong_training_fee_reverts(market: Market, value: int) -> None:
    with boa.env.prank(market.world.carol), boa.reverts("model_market: wrong training fee"):
        market.mm.pay_training_fee(market.world.dataset_id, cid(0x78), value=value)


def test_training_fee_without_terms_reverts(market: Market) -> None:
    w = market.world
    other = w.create(w.initiator, root=cid(0xB3))
    with boa.env.prank(w.carol), boa.reverts("model_market: no terms"):
        market.mm.pay_training_fee(other, SPEC, value=0)


def test_training_fee_with_an_empty_spec_reverts(market: Market) -> None:
    with boa.env.prank(market.world.carol), boa.reverts("model_market: empty digest"):
        market.mm.pay_training_fee(market.world.dataset_id, b"\x00" * 32, value=TRAINING_FEE)


def test_training_revenue_beyond_its_field_reverts(market: Market) -> None:
    """Unreachable with real ether; poked to check that the packed field cannot carry over."""
    w, mm = market.world, market.mm
    slot = mapping_slot(storage_slot(mm, "_revenues"), w.dataset_id)
    poke(mm, slot, (1 << 255) | (2**128 - TRAINING_FEE))
    with boa.env.prank(w.carol), boa.reverts("model_market: revenue overflow"):
        mm.pay_training_fee(w.dataset_id, cid(0x7A), value=TRAINING_FEE)
    poke(mm, slot, (1 << 255) | (2**128 - TRAINING_FEE - 1))
    with boa.env.prank(w.carol):
        mm.pay_training_fee(w.dataset_id, cid(0x7A), value=TRAINING_FEE)
    assert mm.training_revenue(w.dataset_id) == 2**128 - 1
    assert mm.prediction_revenue(w.dataset_id) == 0


def test_a_free_dataset_records_the_training_without_a_payment(market: Market) -> None:
    w, mm = market.world, market.mm
    with boa.env.prank(w.initiator):
        mm.set_terms(w.dataset_id, 0, MARGIN, BASE_PRICE, SLOPE, COMMIT, REVEAL)
    with boa.env.prank(w.carol):
        mm.pay_training_fee(w.dataset_id, cid(0x79))
    assert mm.training_paid(w.carol, w.dataset_id, cid(0x79))
    assert events(w.token, "DividendPaid") == []


# --- models and versions -----------------------------------------------------------------------


def test_register_model_records_the_model_and_version_one(market: Market) -> None:
    w, mm = market.world, market.mm
    start = boa.env.timestamp
    mid = market.register(w.carol, spec=cid(0x80), price=BASE_PRICE - 1, split=(0, BPS, 0))
    registered = events(mm, "ModelRegistered")
    published = events(mm, "VersionPublished")
    assert mid == 2 and mm.model_count() == 2
    (log,) = registered
    assert (log.model_id, log.dataset_id, log.owner, log.spec_digest, log.price) == (
        2, w.dataset_id, w.carol, cid(0x80), BASE_PRICE - 1,
    )  # fmt: skip
    assert (log.owner_bps, log.data_bps, log.node_bps, log.node) == (0, BPS, 0, market.node)
    (log,) = published
    assert (log.model_id, log.version, log.checkpoint_digest) == (2, 1, cid(0xC0))
    assert (log.weights_root, log.card_digest) == (cid(0xC1), cid(0xC2))
    assert (log.commit_deadline, log.reveal_deadline) == (start + COMMIT, start + COMMIT + REVEAL)
    model = mm.model(mid)
    assert tuple(model) == (
        w.carol, w.dataset_id, cid(0x80), BASE_PRICE - 1, 0, BPS, 0, market.node, 1, 1, start,
    )  # fmt: skip
    v = mm.version(mid, 1)
    assert tuple(v) == (
        cid(0xC0), cid(0xC1), cid(0xC2), start, start + COMMIT, start + COMMIT + REVEAL,
        0, 0, False, 0,
    )  # fmt: skip
    assert mm.owner_of(mid) == w.carol
    assert mm.weights_root(mid, 1) == cid(0xC1)
    assert not mm.is_benchmarked(mid, 1) and mm.score_of(mid, 1) == 0
    assert mm.dataset_model_count(w.dataset_id) == 2
    assert mm.dataset_models(w.dataset_id, 0, 10) == [1, 2]
    assert mm.dataset_models(w.dataset_id, 1, 10) == [2]
    assert mm.dataset_models(w.dataset_id, 2, 10) == []


def test_register_without_the_training_fee_reverts(market: Market) -> None:
    # The dev paid for SPEC only, and carol paid for nothing.
    with boa.reverts("model_market: training fee not paid"):
        market.register(market.dev, spec=cid(0x81), pay=False)
    with boa.reverts("model_market: training fee not paid"):
        market.register(market.world.carol, pay=False)


def test_one_training_fee_covers_its_spec_again(market: Market) -> None:
    assert market.register(market.dev, pay=False) == 2


def test_register_with_empty_digests_reverts(market: Market) -> None:
    w, mm = market.world, market.mm
    empty = b"\x00" * 32
    for ckpt, card in [(empty, cid(1)), (cid(1), empty)]:
        with boa.env.prank(market.dev), boa.reverts("model_market: empty digest"):
            mm.register_model(w.dataset_id, SPEC, ckpt, cid(1), card, 0, *SPLIT, market.node)
    with boa.env.prank(market.dev):  # no weights root: the weights are not for sale
        mid = mm.register_model(w.dataset_id, SPEC, cid(1), empty, cid(1), 0, *SPLIT, market.node)
    assert mm.weights_root(mid, 1) == empty


@pytest.mark.parametrize("split", [(7_000, 2_000, 999), (7_000, 2_000, 1_001), (BPS, BPS, 0)])
def test_register_with_a_split_not_summing_to_bps_reverts(
    market: Market, split: tuple[int, int, int]
) -> None:
    with boa.reverts("model_market: invalid split"):
        market.register(market.dev, split=split)


def test_register_with_a_zero_node_reverts(market: Market) -> None:
    with boa.reverts("model_market: zero node"):
        market.register(market.dev, node=ZERO)


def test_register_above_the_unbenchmarked_cap_reverts(market: Market) -> None:
    with boa.reverts("model_market: price above cap"):
        market.register(market.dev, price=BASE_PRICE + 1)


def test_publish_version_serves_the_new_checkpoint_unbenchmarked(market: Market) -> None:
    mm, mid = market.mm, market.model_id
    market.benchmark(mid, 1, [9_000])
    with boa.env.prank(market.dev):
        mm.set_price(mid, BASE_PRICE + SLOPE * 9_000 // BPS)
        version = mm.publish_version(mid, cid(0xD0), cid(0xD1), cid(0xD2))
    assert version == 2
    (published,) = events(mm, "VersionPublished")
    (price,) = events(mm, "PriceSet")
    assert (published.version, published.checkpoint_digest) == (2, cid(0xD0))
    assert (price.model_id, price.price) == (mid, BASE_PRICE)
    model = mm.model(mid)
    assert (model.current_version, model.versions, model.price) == (2, 2, BASE_PRICE)
    assert mm.is_benchmarked(mid, 1) and not mm.is_benchmarked(mid, 2)
    assert mm.version(mid, 2).commit_deadline == boa.env.timestamp + COMMIT


def test_publish_version_below_the_cap_keeps_the_price(market: Market) -> None:
    with boa.env.prank(market.dev):
        market.mm.publish_version(market.model_id, cid(0xD0), cid(0xD1), cid(0xD2))
    assert events(market.mm, "PriceSet") == []


def test_publish_version_by_a_non_owner_or_for_an_unknown_model_reverts(market: Market) -> None:
    mm = market.mm
    with boa.env.prank(market.node), boa.reverts("model_market: not the owner"):
        mm.publish_version(market.model_id, cid(0xD0), cid(0xD1), cid(0xD2))
    with boa.env.prank(market.dev), boa.reverts("model_market: unknown model"):
        mm.publish_version(2, cid(0xD0), cid(0xD1), cid(0xD2))
    with boa.env.prank(market.dev), boa.reverts("model_market: empty digest"):
        mm.publish_version(market.model_id, b"\x00" * 32, cid(0xD1), cid(0xD2))


def test_set_price_up_to_the_cap_of_the_current_score(market: Market) -> None:
    mm, mid = market.mm, market.model_id
    market.benchmark(mid, 1, [8_000])
    cap = BASE_PRICE + SLOPE * 8_000 // BPS
    with boa.env.prank(market.dev):
        mm.set_price(mid, cap)
        (log,) = events(mm, "PriceSet")
        with boa.reverts("model_market: price above cap"):
            mm.set_price(mid, cap + 1)
    assert (log.model_id, log.price) == (mid, cap)
    assert mm.model(mid).price == cap


def test_set_price_by_a_non_owner_reverts(market: Market) -> None:
    with boa.env.prank(market.node), boa.reverts("model_market: not the owner"):
        market.mm.set_price(market.model_id, 1)


def test_set_node(market: Market) -> None:
    mm, mid, w = market.mm, market.model_id, market.world
    with boa.env.prank(market.dev):
        mm.set_node(mid, w.carol)
        (log,) = events(mm, "NodeSet")
        with boa.reverts("model_market: zero node"):
            mm.set_node(mid, ZERO)
    assert (log.model_id, log.node) == (mid, w.carol)
    assert mm.model(mid).node == w.carol
    with boa.env.prank(market.node), boa.reverts("model_market: not the owner"):
        mm.set_node(mid, market.node)


def test_views_of_unknown_models_and_versions(market: Market) -> None:
    mm = market.mm
    for call in (lambda: mm.model(0), lambda: mm.model(2), lambda: mm.owner_of(2)):
        with boa.reverts("model_market: unknown model"):
            call()
    for call in (lambda: mm.version(1, 0), lambda: mm.version(1, 2), lambda: mm.weights_root(1, 2)):
        with boa.reverts("model_market: unknown version"):
            call()
    assert not mm.is_benchmarked(9, 9) and mm.score_of(9, 9) == 0


# --- benchmarks --------------------------------------------------------------------------------


def test_benchmark_is_the_median_of_three_evaluators(market: Market) -> None:
    mm, mid = market.mm, market.model_id
    scores = [9_000, 5_000, 8_000]
    for ev, s in zip(market.evaluators, scores, strict=True):
        market.commit(mid, 1, ev, s)
        (log,) = events(mm, "BenchmarkCommitted")
        assert (log.model_id, log.version, log.evaluator) == (mid, 1, ev)
    assert tuple(mm.benchmark_score(mid, 1, market.ev2)) == (True, False, 0)
    market.until_reveal(mid, 1)
    for ev, s in zip(market.evaluators, scores, strict=True):
        market.reveal(mid, 1, ev, s)
        (log,) = events(mm, "BenchmarkRevealed")
        assert (log.evaluator, log.score_bps, log.report_digest) == (ev, s, cid(0xE1))
    assert tuple(mm.benchmark_score(mid, 1, market.ev2)) == (True, True, 5_000)
    market.until_closed(mid, 1)
    assert mm.finalize_benchmark(mid, 1) == 8_000
    (finalized,) = events(mm, "BenchmarkFinalized")
    (best,) = events(mm, "BestCheckpoint")
    assert (finalized.model_id, finalized.version, finalized.score_bps) == (mid, 1, 8_000)
    assert (best.dataset_id, best.model_id, best.version, best.score_bps) == (1, mid, 1, 8_000)
    v = mm.version(mid, 1)
    assert (v.commits, v.reveals, v.benchmarked, v.score_bps) == (3, 3, True, 8_000)
    assert mm.best(market.world.dataset_id) == (mid, 1, 8_000)
    assert mm.is_benchmarked(mid, 1) and mm.score_of(mid, 1) == 8_000


def test_an_even_count_takes_the_data_markets_median(market: Market) -> None:
    # As DataMarket's sealed scores: the mean of the two middle scores, rounded down.
    assert market.benchmark(market.model_id, 1, [9_001, 8_000]) == 8_500


def test_a_committed_evaluator_who_never_reveals_is_left_out(market: Market) -> None:
    mm, mid = market.mm, market.model_id
    market.commit(mid, 1, market.world.evaluator, 1_000)
    market.commit(mid, 1, market.ev2, 7_000)
    market.until_reveal(mid, 1)
    market.reveal(mid, 1, market.ev2, 7_000)
    market.until_closed(mid, 1)
    assert mm.finalize_benchmark(mid, 1) == 7_000
    assert tuple(mm.benchmark_score(mid, 1, market.world.evaluator)) == (True, False, 0)


def test_no_best_checkpoint_before_a_benchmark(market: Market) -> None:
    assert market.mm.best(market.world.dataset_id) == (0, 0, 0)


def test_commit_after_the_commit_phase_reverts(market: Market) -> None:
    market.until_reveal(market.model_id, 1)
    with boa.reverts("model_market: commit phase over"):
        market.commit(market.model_id, 1, market.world.evaluator, 5_000)


def test_commit_by_a_non_evaluator_or_the_owner_reverts(market: Market) -> None:
    w, mm = market.world, market.mm
    with boa.reverts("model_market: not an evaluator"):
        market.commit(market.model_id, 1, w.alice, 5_000)
    with boa.env.prank(w.initiator):
        w.market.grantRole(w.market.evaluator_role(w.dataset_id), market.dev)
    with boa.reverts("model_market: own model"):
        market.commit(market.model_id, 1, market.dev, 5_000)
    with boa.env.prank(w.evaluator), boa.reverts("model_market: empty commitment"):
        mm.commit_benchmark(market.model_id, 1, b"\x00" * 32)
    with boa.env.prank(w.evaluator), boa.reverts("model_market: unknown version"):
        mm.commit_benchmark(market.model_id, 2, cid(1))


def test_commit_twice_reverts(market: Market) -> None:
    market.commit(market.model_id, 1, market.ev2, 5_000)
    with boa.reverts("model_market: already committed"):
        market.commit(market.model_id, 1, market.ev2, 6_000)


def test_more_than_sixteen_evaluators_revert(market: Market) -> None:
    w = market.world
    extra = [boa.env.generate_address(f"mm-ev{i}") for i in range(14)]
    with boa.env.prank(w.initiator):
        for ev in extra:
            w.market.grantRole(w.market.evaluator_role(w.dataset_id), ev)
    for ev in [*market.evaluators, *extra[:13]]:
        market.commit(market.model_id, 1, ev, 5_000)
    assert market.mm.version(market.model_id, 1).commits == 16
    with boa.reverts("model_market: too many evaluators"):
        market.commit(market.model_id, 1, extra[13], 5_000)


def test_reveal_outside_the_reveal_phase_reverts(market: Market) -> None:
    mid, ev = market.model_id, market.world.evaluator
    market.commit(mid, 1, ev, 5_000)
    with boa.reverts("model_market: commit phase open"):
        market.reveal(mid, 1, ev, 5_000)
    market.until_closed(mid, 1)
    with boa.reverts("model_market: reveal phase over"):
        market.reveal(mid, 1, ev, 5_000)


def test_reveal_without_commitment_twice_or_mismatched_reverts(market: Market) -> None:
    mid, ev = market.model_id, market.world.evaluator
    market.commit(mid, 1, ev, 5_000)
    market.until_reveal(mid, 1)
    with boa.reverts("model_market: no commitment"):
        market.reveal(mid, 1, market.ev2, 5_000)
    with boa.reverts("model_market: commitment mismatch"):
        market.reveal(mid, 1, ev, 5_001)
    with boa.reverts("model_market: commitment mismatch"):
        market.reveal(mid, 1, ev, 5_000, salt=10)
    market.reveal(mid, 1, ev, 5_000)
    with boa.reverts("model_market: already revealed"):
        market.reveal(mid, 1, ev, 5_000)


def test_reveal_of_a_score_above_bps_reverts(market: Market) -> None:
    mid, ev = market.model_id, market.world.evaluator
    market.commit(mid, 1, ev, BPS + 1)
    market.until_reveal(mid, 1)
    with boa.reverts("model_market: invalid score"):
        market.reveal(mid, 1, ev, BPS + 1)


def test_finalize_too_early_twice_or_without_reveals_reverts(market: Market) -> None:
    mm, mid, ev = market.mm, market.model_id, market.world.evaluator
    market.commit(mid, 1, ev, 5_000)
    market.until_reveal(mid, 1)
    market.reveal(mid, 1, ev, 5_000)
    with boa.reverts("model_market: reveal phase open"):
        mm.finalize_benchmark(mid, 1)
    market.until_closed(mid, 1)
    mm.finalize_benchmark(mid, 1)
    with boa.reverts("model_market: already finalized"):
        mm.finalize_benchmark(mid, 1)
    with boa.reverts("model_market: unknown version"):
        mm.finalize_benchmark(mid, 2)
    with boa.env.prank(market.dev):
        mm.publish_version(mid, cid(0xD0), cid(0xD1), cid(0xD2))
    market.until_closed(mid, 2)
    with boa.reverts("model_market: no reveals"):
        mm.finalize_benchmark(mid, 2)


def test_request_benchmark_reopens_a_benchmark_nobody_revealed(market: Market) -> None:
    mm, mid, ev = market.mm, market.model_id, market.world.evaluator
    market.commit(mid, 1, ev, 6_000)
    market.until_closed(mid, 1)
    with boa.env.prank(market.dev):
        mm.request_benchmark(mid, 1)
    (log,) = events(mm, "BenchmarkRequested")
    now = boa.env.timestamp
    assert (log.commit_deadline, log.reveal_deadline) == (now + COMMIT, now + COMMIT + REVEAL)
    market.commit(mid, 1, market.ev2, 7_000)
    with boa.reverts("model_market: already committed"):
        market.commit(mid, 1, ev, 1)
    market.until_reveal(mid, 1)
    market.reveal(mid, 1, ev, 6_000)  # the commitment made before the request still counts
    market.reveal(mid, 1, market.ev2, 7_000)
    market.until_closed(mid, 1)
    assert mm.finalize_benchmark(mid, 1) == 6_500


def test_request_benchmark_out_of_turn_reverts(market: Market) -> None:
    mm, mid, ev = market.mm, market.model_id, market.world.evaluator
    with boa.env.prank(market.dev), boa.reverts("model_market: reveal phase open"):
        mm.request_benchmark(mid, 1)
    with boa.env.prank(market.node), boa.reverts("model_market: not the owner"):
        mm.request_benchmark(mid, 1)
    market.commit(mid, 1, ev, 6_000)
    market.until_reveal(mid, 1)
    market.reveal(mid, 1, ev, 6_000)
    market.until_closed(mid, 1)
    with boa.env.prank(market.dev), boa.reverts("model_market: scores revealed"):
        mm.request_benchmark(mid, 1)
    mm.finalize_benchmark(mid, 1)
    with boa.env.prank(market.dev), boa.reverts("model_market: already finalized"):
        mm.request_benchmark(mid, 1)
    with boa.env.prank(market.dev), boa.reverts("model_market: unknown version"):
        mm.request_benchmark(mid, 2)


def test_best_checkpoint_moves_only_beyond_the_margin(market: Market) -> None:
    mm, d = market.mm, market.world.dataset_id
    market.benchmark(market.model_id, 1, [8_000])
    tie = market.register(market.world.carol, spec=cid(0x90))
    assert market.benchmark(tie, 1, [8_000 + MARGIN]) == 8_000 + MARGIN
    assert events(mm, "BestCheckpoint") == []
    assert mm.best(d) == (market.model_id, 1, 8_000)
    with boa.env.prank(market.world.carol):
        mm.publish_version(tie, cid(0xD0), cid(0xD1), cid(0xD2))
    assert market.benchmark(tie, 2, [8_000 + MARGIN + 1]) == 8_000 + MARGIN + 1
    (log,) = events(mm, "BestCheckpoint")
    assert (log.model_id, log.version, log.score_bps) == (tie, 2, 8_000 + MARGIN + 1)
    assert mm.best(d) == (tie, 2, 8_000 + MARGIN + 1)
    # A worse checkpoint never replaces the best.
    worse = market.register(market.world.bob, spec=cid(0x91))
    market.benchmark(worse, 1, [100])
    assert mm.best(d) == (tie, 2, 8_000 + MARGIN + 1)


def test_finalize_lowers_a_price_above_the_new_cap(market: Market) -> None:
    w, mm, mid = market.world, market.mm, market.model_id
    with boa.env.prank(w.initiator):
        mm.set_terms(w.dataset_id, TRAINING_FEE, MARGIN, BASE_PRICE // 2, 0, COMMIT, REVEAL)
    market.benchmark(mid, 1, [9_000])
    (log,) = events(mm, "PriceSet")
    assert (log.model_id, log.price) == (mid, BASE_PRICE // 2)
    assert mm.model(mid).price == BASE_PRICE // 2


def test_finalizing_an_old_version_leaves_the_price_alone(market: Market) -> None:
    w, mm, mid = market.world, market.mm, market.model_id
    market.commit(mid, 1, w.evaluator, 9_000)
    with boa.env.prank(market.dev):
        mm.publish_version(mid, cid(0xD0), cid(0xD1), cid(0xD2))
    with boa.env.prank(w.initiator):
        mm.set_terms(w.dataset_id, TRAINING_FEE, MARGIN, 1, 0, COMMIT, REVEAL)
    market.until_reveal(mid, 1)
    market.reveal(mid, 1, w.evaluator, 9_000)
    market.until_closed(mid, 1)
    mm.finalize_benchmark(mid, 1)
    assert events(mm, "PriceSet") == []
    assert mm.model(mid).price == BASE_PRICE


# --- escrow and settlement ---------------------------------------------------------------------


def test_deposit_adds_to_the_escrow(market: Market) -> None:
    mm, user = market.mm, market.user.address
    market.deposit(300)
    market.deposit(200)
    (log,) = events(mm, "Deposited")
    assert (log.model_id, log.user, log.amount, log.deposited) == (market.model_id, user, 200, 500)
    assert tuple(mm.escrow(market.model_id, user)) == (500, 0, 0, 0)
    assert boa.env.get_balance(mm.address) == 500


def test_deposit_of_nothing_or_to_an_unknown_model_reverts(market: Market) -> None:
    with boa.reverts("model_market: zero deposit"):
        market.deposit(0)
    with boa.reverts("model_market: unknown model"):
        market.deposit(1, model_id=2)


def test_settle_splits_the_increase_among_owner_data_and_node(market: Market) -> None:
    w, mm, mid, user = market.world, market.mm, market.model_id, market.user.address
    market.deposit(10**18)
    before = {a: claimable(w, a) for a in (w.initiator, w.alice, w.bob)}
    total = 1_000 * BASE_PRICE  # 1,000 predictions in one receipt
    market.settle(total, 1_000)
    (log,) = events(mm, "Settled")
    data, node = total * 2_000 // BPS, total * 1_000 // BPS
    assert (log.model_id, log.user, log.node, log.amount, log.total, log.nonce) == (
        mid, user, market.node, total, total, 1_000,
    )  # fmt: skip
    assert (log.owner_amount, log.data_amount, log.node_amount) == (total - data - node, data, node)
    assert tuple(mm.escrow(mid, user)) == (10**18, total, 1_000, 0)
    assert mm.balance_of(market.dev) == total - data - node
    assert mm.balance_of(market.node) == node
    assert mm.model_revenue(mid) == total
    assert mm.prediction_revenue(w.dataset_id) == data
    gained = {a: claimable(w, a) - before[a] for a in before}
    assert gained == {w.initiator: data // 2, w.alice: data * 3 // 10, w.bob: data // 5}
    assert boa.env.get_balance(mm.address) == 10**18 - data


def test_later_receipts_pay_only_the_increase(market: Market) -> None:
    mm, mid = market.mm, market.model_id
    market.deposit(1_000)
    market.settle(100, 1)
    market.settle(250, 5)
    assert events(mm, "Settled")[0].amount == 150
    assert mm.escrow(mid, market.user.address).settled == 250
    assert mm.model_revenue(mid) == 250


def test_a_receipt_never_settles_twice(market: Market) -> None:
    market.deposit(1_000)
    market.settle(100, 1)
    with boa.reverts("model_market: stale nonce"):
        market.settle(100, 1)
    with boa.reverts("model_market: stale nonce"):
        market.settle(200, 1)  # same nonce, more money: still refused
    with boa.reverts("model_market: nothing to settle"):
        market.settle(100, 2)  # an older total under a new nonce pays nothing
    with boa.reverts("model_market: nothing to settle"):
        market.settle(50, 3)


def test_settle_beyond_the_deposit_reverts(market: Market) -> None:
    market.deposit(1_000)
    with boa.reverts("model_market: receipt beyond deposit"):
        market.settle(1_001, 1)
    market.settle(1_000, 1)


def test_a_deposit_beyond_128_bits_reverts(market: Market) -> None:
    boa.env.set_balance(market.user.address, 2**129)
    market.deposit(2**128 - 1)
    with boa.reverts("model_market: deposit too large"):
        market.deposit(1)


def test_settle_with_a_nonce_beyond_128_bits_reverts(market: Market) -> None:
    market.deposit(100)
    with boa.reverts("model_market: invalid nonce"):
        market.settle(10, 2**128)
    market.settle(10, 2**128 - 1)


def test_settle_by_anyone_but_the_node_reverts(market: Market) -> None:
    mm, user = market.mm, market.user
    market.deposit(1_000)
    sig = market.sign(10, 1)
    for sender in (market.dev, user.address, market.world.alice):
        with boa.env.prank(sender), boa.reverts("model_market: not the node"):
            mm.settle(market.model_id, user.address, 10, 1, sig)


def test_settle_with_a_wrong_signature_reverts(market: Market) -> None:
    mm, mid, user = market.mm, market.model_id, market.user
    market.deposit(1_000)
    other = Account.create()
    cases = [
        (10, 1, market.sign(10, 1, key=other)),  # another key
        (11, 1, market.sign(10, 1)),  # tampered total
        (10, 2, market.sign(10, 1)),  # tampered nonce
    ]
    for total, nonce, sig in cases:
        with boa.env.prank(market.node), boa.reverts("model_market: wrong signer"):
            mm.settle(mid, user.address, total, nonce, sig)
    # A receipt for another model does not pay this one.
    second = market.register(market.world.carol, spec=cid(0x92))
    sig = market.sign(10, 1, model_id=second)
    with boa.env.prank(market.node), boa.reverts("model_market: wrong signer"):
        mm.settle(mid, user.address, 10, 1, sig)


def test_settle_rejects_malleable_and_short_signatures(market: Market) -> None:
    mm, mid, user = market.mm, market.model_id, market.user
    market.deposit(1_000)
    sig = market.sign(10, 1)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    flipped = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    for bad in (flipped, sig[:64]):
        with boa.env.prank(market.node), boa.reverts("model_market: invalid signature"):
            mm.settle(mid, user.address, 10, 1, bad)
    with boa.env.prank(market.node):
        mm.settle(mid, user.address, 10, 1, sig)


def test_rounding_leaves_no_wei_behind(market: Market) -> None:
    mm, w = market.mm, market.world
    mid = market.register(w.carol, spec=cid(0x93), split=(3_334, 3_333, 3_333))
    market.deposit(7, model_id=mid)
    market.settle(7, 1, model_id=mid)
    (log,) = events(mm, "Settled")
    assert (log.owner_amount, log.data_amount, log.node_amount) == (3, 2, 2)
    assert boa.env.get_balance(mm.address) == 5  # the credited owner and node parts


def test_settle_without_a_data_part_pays_no_dividend(market: Market) -> None:
    w, mm = market.world, market.mm
    mid = market.register(w.carol, spec=cid(0x94), split=(9_000, 0, 1_000))
    market.deposit(100, model_id=mid)
    market.settle(100, 1, model_id=mid)
    assert events(w.token, "DividendPaid") == []
    assert mm.prediction_revenue(w.dataset_id) == 0
    assert (mm.balance_of(w.carol), mm.balance_of(market.node)) == (90, 10)


def test_the_new_node_settles_after_a_node_change(market: Market) -> None:
    mm, mid, w = market.mm, market.model_id, market.world
    market.deposit(100)
    with boa.env.prank(market.dev):
        mm.set_node(mid, w.carol)
    market.settle(100, 1)
    assert mm.balance_of(w.carol) == 10 and mm.balance_of(market.node) == 0


# --- exits and withdrawals ---------------------------------------------------------------------


def test_exit_then_withdraw_the_unspent_deposit(market: Market) -> None:
    mm, mid, user = market.mm, market.model_id, market.user.address
    market.deposit(1_000)
    market.settle(300, 1)
    with boa.env.prank(user):
        mm.start_exit(mid)
    (log,) = events(mm, "ExitStarted")
    exit_at = boa.env.timestamp + EXIT_DELAY
    assert (log.model_id, log.user, log.exit_at) == (mid, user, exit_at)
    market.settle(400, 2)  # the node may still settle until the exit time
    market.world.until(exit_at)
    with boa.reverts("model_market: escrow exited"):
        market.settle(500, 3)
    balance = boa.env.get_balance(user)
    with boa.env.prank(user):
        assert mm.withdraw_deposit(mid) == 600
    (log,) = events(mm, "DepositWithdrawn")
    assert (log.model_id, log.user, log.amount) == (mid, user, 600)
    assert boa.env.get_balance(user) == balance + 600
    assert tuple(mm.escrow(mid, user)) == (400, 400, 2, 0)
    # Nothing is left that a receipt could claim.
    with boa.reverts("model_market: receipt beyond deposit"):
        market.settle(500, 3)


def test_withdraw_deposit_before_the_exit_time_or_without_exit_reverts(market: Market) -> None:
    mm, mid, user = market.mm, market.model_id, market.user.address
    market.deposit(1_000)
    with boa.env.prank(user), boa.reverts("model_market: no exit"):
        mm.withdraw_deposit(mid)
    with boa.env.prank(user):
        mm.start_exit(mid)
        with boa.reverts("model_market: exit pending"):
            mm.start_exit(mid)
    boa.env.time_travel(seconds=EXIT_DELAY - 1)
    with boa.env.prank(user), boa.reverts("model_market: exit delay"):
        mm.withdraw_deposit(mid)


def test_start_exit_with_nothing_unspent_reverts(market: Market) -> None:
    mm, mid, user = market.mm, market.model_id, market.user.address
    with boa.env.prank(user), boa.reverts("model_market: nothing deposited"):
        mm.start_exit(mid)
    market.deposit(100)
    market.settle(100, 1)
    with boa.env.prank(user), boa.reverts("model_market: nothing deposited"):
        mm.start_exit(mid)


def test_withdraw_deposit_after_everything_was_settled_reverts(market: Market) -> None:
    mm, mid, user = market.mm, market.model_id, market.user.address
    market.deposit(100)
    with boa.env.prank(user):
        mm.start_exit(mid)
    market.settle(100, 1)
    boa.env.time_travel(seconds=EXIT_DELAY)
    with boa.env.prank(user), boa.reverts("model_market: nothing to withdraw"):
        mm.withdraw_deposit(mid)


def test_a_new_deposit_cancels_the_exit(market: Market) -> None:
    mm, mid, user = market.mm, market.model_id, market.user.address
    market.deposit(100)
    with boa.env.prank(user):
        mm.start_exit(mid)
    market.deposit(50)
    assert mm.escrow(mid, user).exit_at == 0
    boa.env.time_travel(seconds=EXIT_DELAY)
    market.settle(120, 1)  # the exit no longer holds the node back
    with boa.env.prank(user), boa.reverts("model_market: no exit"):
        mm.withdraw_deposit(mid)


def test_withdraw_pays_credited_earnings_once(market: Market) -> None:
    mm = market.mm
    market.deposit(1_000)
    market.settle(1_000, 1)
    for account, amount in ((market.dev, 700), (market.node, 100)):
        balance = boa.env.get_balance(account)
        with boa.env.prank(account):
            assert mm.withdraw() == amount
            (log,) = events(mm, "Withdrawn")
            with boa.reverts("model_market: nothing to withdraw"):
                mm.withdraw()
        assert (log.account, log.amount) == (account, amount)
        assert boa.env.get_balance(account) == balance + amount
    assert boa.env.get_balance(mm.address) == 0


def test_a_rejecting_owner_cannot_block_settlement(market: Market) -> None:
    mm = market.mm
    rejecting = boa.load(str(HELPERS / "rejecting_receiver.vy"))
    proxy = boa.load(str(HELPERS / "model_reentrant_receiver.vy"), mm.address)
    boa.env.set_balance(proxy.address, 10**20)
    _register_through(market, proxy, node=rejecting.address)
    mid = mm.model_count()
    market.deposit(100, model_id=mid)
    with boa.env.prank(rejecting.address):
        mm.settle(mid, market.user.address, 100, 1, market.sign(100, 1, model_id=mid))
    assert mm.balance_of(rejecting.address) == 10
    with boa.env.prank(rejecting.address), boa.reverts():
        mm.withdraw()
    assert mm.balance_of(rejecting.address) == 10  # still owed, nothing lost
    assert mm.escrow(mid, market.user.address).settled == 100


def _register_through(market: Market, proxy: Any, node: str | None = None) -> None:
    """Pay the training fee and register a model with `proxy` (a contract) as owner."""
    mm, d = market.mm, market.world.dataset_id
    proxy.call(mm.pay_training_fee.prepare_calldata(d, cid(0x95)), TRAINING_FEE)
    proxy.call(
        mm.register_model.prepare_calldata(
            d, cid(0x95), cid(0xC0), cid(0xC1), cid(0xC2), BASE_PRICE, *SPLIT,
            node or proxy.address,
        )
    )  # fmt: skip


def test_a_reentrant_owner_and_node_cannot_drain(market: Market) -> None:
    mm = market.mm
    proxy = boa.load(str(HELPERS / "model_reentrant_receiver.vy"), mm.address)
    boa.env.set_balance(proxy.address, 10**20)
    _register_through(market, proxy)
    mid = mm.model_count()
    market.deposit(1_000, model_id=mid)
    market.deposit(5_000)  # other money held by the market
    market.settle(1_000, 1, model_id=mid)
    assert mm.balance_of(proxy.address) == 800  # owner 700 + node 100
    proxy.set_reentry(mm.withdraw.prepare_calldata())
    proxy.call(mm.withdraw.prepare_calldata())
    assert proxy.reentered() and not proxy.reentry_succeeded()
    assert proxy.received() == 800
    assert mm.balance_of(proxy.address) == 0
    assert boa.env.get_balance(mm.address) == 5_000


def test_a_reentrant_user_cannot_withdraw_its_deposit_twice(market: Market) -> None:
    mm, mid = market.mm, market.model_id
    proxy = boa.load(str(HELPERS / "model_reentrant_receiver.vy"), mm.address)
    boa.env.set_balance(proxy.address, 10**20)
    market.deposit(5_000)  # other money held by the market
    proxy.call(mm.deposit.prepare_calldata(mid), 1_000)
    proxy.call(mm.start_exit.prepare_calldata(mid))
    boa.env.time_travel(seconds=EXIT_DELAY)
    for reentry in (
        mm.withdraw_deposit.prepare_calldata(mid),
        mm.deposit.prepare_calldata(mid),
        mm.settle.prepare_calldata(mid, proxy.address, 1, 1, b"\x00" * 65),
    ):
        with boa.env.anchor():
            proxy.set_reentry(reentry)
            proxy.call(mm.withdraw_deposit.prepare_calldata(mid))
            assert proxy.reentered() and not proxy.reentry_succeeded()
            assert proxy.received() == 1_000
            assert boa.env.get_balance(mm.address) == 5_000


def test_the_node_never_takes_more_than_the_user_signed(market: Market) -> None:
    """Whatever the node submits, what leaves the escrow is at most the largest signed total."""
    mm, mid, user = market.mm, market.model_id, market.user.address
    market.deposit(10_000)
    signed = [(120, 1), (300, 2), (310, 3)]
    sigs = {(t, n): market.sign(t, n) for t, n in signed}
    attempts = [(t + extra, n) for t, n in signed for extra in (0, 1, 1_000)]
    for total, nonce in attempts:
        sig = sigs.get((total, nonce), sigs[(signed[0][0], signed[0][1])])
        with boa.env.anchor():
            try:
                with boa.env.prank(market.node):
                    mm.settle(mid, user, total, nonce, sig)
            except Exception:
                assert (total, nonce) not in sigs
                continue
            assert (total, nonce) in sigs
            assert mm.escrow(mid, user).settled == total <= 310


# --- gas -------------------------------------------------------------------------------------


def test_settling_a_thousand_predictions_costs_under_200_gas_each(
    market: Market, record_property: Any
) -> None:
    """`settle` of one receipt covering 1,000 predictions, as a real signed transaction with the
    state locked around it (titanoboa's own figure leaks warm slots between calls; see
    benchmarks/gas.py), in a separate chain so that the locks do not touch the session's."""
    from eth_keys import keys
    from eth_utils import to_canonical_address

    w = market.world
    node_key = keys.PrivateKey(b"\x4b" * 32)
    node = node_key.public_key.to_checksum_address()
    user = market.user
    with boa.swap_env(boa.Env()):
        for account in (w.initiator, market.dev, node, user.address):
            boa.env.set_balance(account, 10**24)
        blueprint = w.share_token.deploy_as_blueprint()
        data_market = w.market_deployer.deploy(blueprint.address)
        with boa.env.prank(w.initiator):
            dataset_id = data_market.create_dataset(
                "Digits", cid(1), cid(2), cid(3), 100, 3_600, 0, 2_000, 5_000,
                [w.evaluator], 20_000, 0, 0, 0, 0,
            )  # fmt: skip
            token = w.share_token.at(data_market.share_token(dataset_id))
            token.transfer(w.alice, 30 * 10**18)  # two holders, as a real dataset
        mm = market.deployer.deploy(data_market.address)
        with boa.env.prank(w.initiator):
            mm.set_terms(dataset_id, TRAINING_FEE, MARGIN, BASE_PRICE, SLOPE, COMMIT, REVEAL)
        with boa.env.prank(market.dev):
            mm.pay_training_fee(dataset_id, SPEC, value=TRAINING_FEE)
            mid = mm.register_model(
                dataset_id, SPEC, cid(0xC0), cid(0xC1), cid(0xC2), BASE_PRICE, *SPLIT, node
            )
        with boa.env.prank(user.address):
            mm.deposit(mid, value=10**18)
        vm = boa.env.evm.vm
        gas = []
        for total, nonce in ((1_000 * BASE_PRICE, 1_000), (2_000 * BASE_PRICE, 2_000)):
            data = mm.settle.prepare_calldata(
                mid,
                user.address,
                total,
                nonce,
                sign_receipt(mm, user, mid, user.address, total, nonce),
            )
            state = vm.state
            state.lock_changes()
            tx = vm.create_unsigned_transaction(
                nonce=state.get_nonce(to_canonical_address(node)),
                gas_price=state.base_fee,
                gas=1_000_000,
                to=to_canonical_address(mm.address),
                value=0,
                data=data,
            ).as_signed_transaction(node_key)
            computation = state.apply_transaction(tx)
            state.lock_changes()
            assert not computation.is_error, computation.error
            gas.append(type(vm).finalize_gas_used(tx, computation))
        assert mm.escrow(mid, user.address).settled == 2_000 * BASE_PRICE
    first, later = gas
    record_property("settle_gas_first", first)
    record_property("settle_gas_later", later)
    print(f"settle gas: first {first:,}, later {later:,}; per prediction {first / 1_000:.0f}")
    assert first <= 200_000 and later <= 200_000


def test_anchor_restores_the_session_state(market: Market) -> None:
    """Every test starts from the session market (the autouse anchor rolls back)."""
    assert market.mm.model_count() == 1
    assert market.mm.escrow(market.model_id, market.user.address).deposited == 0
