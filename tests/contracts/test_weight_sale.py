"""WeightSale: buying a benchmarked checkpoint fairly (FairSwap), over the real ModelMarket.

The model market is deployed over the session's data market (``world``); a model is registered
on the standard dataset with the weights root of a real byte string, benchmarked by the
dataset's evaluator and listed. Every off-chain value comes from ``databright.models.sale``, so
these tests also hold the Python side to what the contract checks.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import boa
import pytest
from contracts_support import CONTRACTS, HELPERS, PROFILE, World, cid, events
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from databright.models import sale as ws
from databright.storage.hashing import keccak256

TRAINING_FEE = 10**15
PRICE = 3 * 10**18
SCORE = 9_100
COMMIT, REVEAL = 600, 600
DAY = 86_400
STATUS = {
    "none": 0,
    "paid": 1,
    "delivered": 2,
    "accepted": 3,
    "revealed": 4,
    "settled": 5,
    "refunded": 6,
}
REASON = {"cancelled": 1, "not_revealed": 2, "complaint": 3}


@dataclass
class SaleWorld:
    world: World
    models: Any  # ModelMarket
    sale: Any  # WeightSale
    developer: str
    buyer: str
    blob: bytes
    model_id: int
    spec_n: int = 0

    # --- model market --------------------------------------------------------------------

    def register(self, blob: bytes, benchmark: bool = True) -> int:
        """Register a model whose version 1 has the weights root of `blob`; benchmark it."""
        self.spec_n += 1
        spec = cid(0x5000 + self.spec_n)
        d = self.world.dataset_id
        with boa.env.prank(self.developer):
            self.models.pay_training_fee(d, spec, value=TRAINING_FEE)
            model_id = int(
                self.models.register_model(
                    d, spec, cid(0x6000 + self.spec_n), ws.weights_root(blob), cid(0x7000),
                    0, 7_000, 2_000, 1_000, self.world.bob,
                )
            )  # fmt: skip
        if benchmark:
            self.benchmark(model_id, 1)
        return model_id

    def benchmark(self, model_id: int, version: int) -> None:
        ev = self.world.evaluator
        salt, report = cid(0x5A17), cid(0xBE7C)
        commitment = self.models.benchmark_commitment(model_id, version, ev, SCORE, report, salt)
        with boa.env.prank(ev):
            self.models.commit_benchmark(model_id, version, commitment)
        boa.env.time_travel(seconds=COMMIT + 1)
        with boa.env.prank(ev):
            self.models.reveal_benchmark(model_id, version, SCORE, report, salt)
        boa.env.time_travel(seconds=REVEAL + 1)
        self.models.finalize_benchmark(model_id, version)

    # --- sale ----------------------------------------------------------------------------

    def list(self, model_id: int, blob: bytes, price: int = PRICE, version: int = 1) -> None:
        leaves = ws.leaves(blob)
        with boa.env.prank(self.developer):
            self.sale.list_weights(
                model_id, version, price, ws.merkle_root(leaves), len(leaves), len(blob)
            )

    def buy(self, model_id: int | None = None, buyer: str | None = None, value: int = PRICE) -> int:
        with boa.env.prank(buyer or self.buyer):
            return int(self.sale.buy(model_id or self.model_id, 1, value=value))

    def deliver(self, sale_id: int, cipher: bytes, commitment: bytes) -> None:
        with boa.env.prank(self.developer):
            self.sale.deliver(sale_id, ws.cipher_root(cipher), commitment)

    def accept(self, sale_id: int) -> None:
        with boa.env.prank(self.buyer):
            self.sale.accept(sale_id)

    def reveal(self, sale_id: int, key: bytes) -> None:
        with boa.env.prank(self.developer):
            self.sale.reveal_key(sale_id, key)

    def complain(self, sale_id: int, complaint: ws.Complaint, sender: str | None = None) -> None:
        with boa.env.prank(sender or self.buyer):
            self.sale.complain(*complaint.args(sale_id))

    def run_to_reveal(
        self,
        blob: bytes | None = None,
        key: bytes | None = None,
        commit_key: bytes | None = None,
        model_id: int | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Buy, deliver `blob` (default: the benchmarked one) encrypted with `key`, accept and
        reveal `commit_key` (default: `key`). Returns (sale id, ciphertext, revealed key)."""
        key = key or secrets.token_bytes(32)
        commit_key = commit_key or key
        sale_id = self.buy(model_id)
        cipher = ws.encrypt(self.blob if blob is None else blob, key, sale_id)
        self.deliver(sale_id, cipher, ws.key_commitment(commit_key, sale_id))
        self.accept(sale_id)
        self.reveal(sale_id, commit_key)
        return sale_id, cipher, commit_key

    def status(self, sale_id: int) -> int:
        return int(self.sale.sale(sale_id).status)

    def check_books(self) -> None:
        """Money in = money out: the contract holds exactly what is escrowed or credited."""
        assert boa.env.get_balance(self.sale.address) == self.sale.escrowed() + self.sale.credited()


def tamper(blob: bytes, index: int) -> bytes:
    """`blob` with one byte of chunk `index` flipped."""
    at = min(index * ws.CHUNK + 17, len(blob) - 1)
    return blob[:at] + bytes([blob[at] ^ 0x5A]) + blob[at + 1 :]


@functools.cache
def deployer_of(name: str) -> Any:
    """A contract compiled once per session (every environment deploys from it)."""
    return boa.load_partial(str(CONTRACTS / name))


def deploy_sale_world(world: World) -> SaleWorld:
    """Deploy the model market over `world`'s data market and the weight sale over it; register,
    benchmark and list one model (a 5-chunk checkpoint, the last chunk padded)."""
    deployer = boa.env.generate_address("sale-deployer")
    developer = boa.env.generate_address("developer")
    buyer = boa.env.generate_address("weights-buyer")
    for a in (deployer, developer, buyer):
        boa.env.set_balance(a, 10**24)
    with boa.env.prank(deployer):
        models = deployer_of("ModelMarket.vy").deploy(world.market.address)
        sale = deployer_of("WeightSale.vy").deploy(models.address)
    with boa.env.prank(world.initiator):
        models.set_terms(world.dataset_id, TRAINING_FEE, 100, 10**12, 10**12, COMMIT, REVEAL)
    blob = secrets.token_bytes(5 * ws.CHUNK - 300)
    s = SaleWorld(world, models, sale, developer, buyer, blob, model_id=0)
    s.model_id = s.register(blob)
    s.list(s.model_id, blob)
    return s


@pytest.fixture(scope="module")
def sw(world: World) -> Iterator[SaleWorld]:
    """The sale world over the session's market, rolled back after the module so that no other
    test sees it."""
    with boa.env.anchor():
        yield deploy_sale_world(world)


# --- listing and buying ------------------------------------------------------------------


def test_listing_shows_the_layout_that_gives_the_weights_root(sw: SaleWorld) -> None:
    listing = sw.sale.listing(sw.model_id, 1)
    assert listing.seller == sw.developer and listing.price == PRICE
    assert listing.n_chunks == 5 and listing.byte_length == len(sw.blob)
    assert listing.tree_root == ws.merkle_root(ws.leaves(sw.blob))
    assert ws.weights_root_of(listing.tree_root, 5, len(sw.blob)) == sw.models.weights_root(
        sw.model_id, 1
    )


def test_only_the_owner_lists_a_benchmarked_version_with_its_true_layout(sw: SaleWorld) -> None:
    leaves = ws.leaves(sw.blob)
    root, n, size = ws.merkle_root(leaves), len(leaves), len(sw.blob)
    with boa.env.prank(sw.buyer), boa.reverts("weight_sale: not the model owner"):
        sw.sale.list_weights(sw.model_id, 1, PRICE, root, n, size)
    with boa.env.prank(sw.developer):
        with boa.reverts("weight_sale: zero price"):
            sw.sale.list_weights(sw.model_id, 1, 0, root, n, size)
        with boa.reverts("weight_sale: layout does not give the weights root"):
            sw.sale.list_weights(sw.model_id, 1, PRICE, root, n, size - 1)
        with boa.reverts("weight_sale: layout does not give the weights root"):
            sw.sale.list_weights(sw.model_id, 1, PRICE, cid(9), n, size)
        with boa.reverts("weight_sale: size does not fit chunks"):
            sw.sale.list_weights(sw.model_id, 1, PRICE, root, n, 4 * ws.CHUNK)
        with boa.reverts("weight_sale: bad chunk count"):
            sw.sale.list_weights(sw.model_id, 1, PRICE, root, 0, 0)


def test_an_unbenchmarked_version_cannot_be_listed_nor_bought(sw: SaleWorld) -> None:
    blob = secrets.token_bytes(2_000)
    model_id = sw.register(blob, benchmark=False)
    with boa.reverts("weight_sale: version not benchmarked"):
        sw.list(model_id, blob)
    with boa.reverts("weight_sale: not listed"):
        sw.buy(model_id)
    sw.benchmark(model_id, 1)
    sw.list(model_id, blob)
    assert sw.buy(model_id) == 1


def test_a_version_registered_without_a_weights_root_is_not_for_sale(sw: SaleWorld) -> None:
    sw.spec_n += 1
    spec = cid(0x5F00)
    with boa.env.prank(sw.developer):
        sw.models.pay_training_fee(sw.world.dataset_id, spec, value=TRAINING_FEE)
        model_id = int(
            sw.models.register_model(
                sw.world.dataset_id,
                spec,
                cid(0x61),
                bytes(32),
                cid(0x71),
                0,
                10_000,
                0,
                0,
                sw.world.bob,
            )
        )
    sw.benchmark(model_id, 1)
    with boa.reverts("weight_sale: weights not for sale"):
        sw.list(model_id, sw.blob)


def test_buying_needs_the_listed_price_and_a_listing(sw: SaleWorld) -> None:
    with boa.reverts("weight_sale: wrong payment"):
        sw.buy(value=PRICE - 1)
    with boa.reverts("weight_sale: wrong payment"):
        sw.buy(value=PRICE + 1)
    with boa.reverts("weight_sale: not listed"):
        sw.buy(model_id=sw.model_id + 100)
    with boa.env.prank(sw.buyer), boa.reverts("weight_sale: not the seller"):
        sw.sale.unlist(sw.model_id, 1)
    with boa.env.prank(sw.developer):
        sw.sale.unlist(sw.model_id, 1)
    assert events(sw.sale, "Unlisted")
    with boa.reverts("weight_sale: not listed"):
        sw.buy()
    sw.list(sw.model_id, sw.blob, price=PRICE // 2)  # relisted at a new price
    assert sw.buy(value=PRICE // 2) == 1


def test_buy_escrows_the_price_and_sets_the_delivery_deadline(sw: SaleWorld) -> None:
    before = boa.env.get_balance(sw.buyer)
    sale_id = sw.buy()
    [bought] = events(sw.sale, "Bought")
    assert bought.sale_id == sale_id and bought.price == PRICE
    s = sw.sale.sale(sale_id)
    assert (s.buyer, s.seller, s.model_id, s.version, s.price) == (
        sw.buyer, sw.developer, sw.model_id, 1, PRICE
    )  # fmt: skip
    assert s.status == STATUS["paid"] and s.deadline == boa.env.timestamp + DAY
    assert boa.env.get_balance(sw.buyer) == before - PRICE
    assert sw.sale.escrowed() == PRICE
    sw.check_books()


# --- the honest path -----------------------------------------------------------------------


def test_honest_sale_delivers_exactly_the_benchmarked_bytes_and_pays_the_seller(
    sw: SaleWorld,
) -> None:
    sale_id, cipher, key = sw.run_to_reveal()
    [revealed] = events(sw.sale, "KeyRevealed")
    assert revealed.key == key  # the buyer reads the key from the chain
    assert ws.delivery_matches(cipher, sw.sale.sale(sale_id).cipher_root, 5)
    plain = ws.decrypt(cipher, revealed.key, sale_id, sw.sale.listing(sw.model_id, 1).byte_length)
    assert plain == sw.blob
    assert ws.weights_root(plain) == sw.models.weights_root(sw.model_id, 1)
    assert ws.find_complaint(cipher, key, sale_id, sw.blob) is None

    with boa.reverts("weight_sale: complaint window open"):
        sw.sale.settle(sale_id)  # a stranger, before the window ends
    boa.env.time_travel(seconds=DAY + 1)
    sw.sale.settle(sale_id)
    assert sw.status(sale_id) == STATUS["settled"]
    assert sw.sale.balance_of(sw.developer) == PRICE and sw.sale.escrowed() == 0
    sw.check_books()
    before = boa.env.get_balance(sw.developer)
    with boa.env.prank(sw.developer):
        assert sw.sale.withdraw() == PRICE
    assert boa.env.get_balance(sw.developer) == before + PRICE
    assert boa.env.get_balance(sw.sale.address) == 0
    with boa.reverts("weight_sale: not awaiting settlement"):
        sw.sale.settle(sale_id)  # never paid twice


def test_the_buyer_may_waive_its_complaint_window(sw: SaleWorld) -> None:
    sale_id, _, _ = sw.run_to_reveal()
    with boa.env.prank(sw.buyer):
        sw.sale.settle(sale_id)
    assert sw.sale.balance_of(sw.developer) == PRICE


def test_each_step_is_only_for_its_party(sw: SaleWorld) -> None:
    key = secrets.token_bytes(32)
    sale_id = sw.buy()
    cipher = ws.encrypt(sw.blob, key, sale_id)
    with boa.env.prank(sw.buyer), boa.reverts("weight_sale: not the seller"):
        sw.sale.deliver(sale_id, ws.cipher_root(cipher), ws.key_commitment(key, sale_id))
    with boa.env.prank(sw.buyer), boa.reverts("weight_sale: nothing delivered"):
        sw.sale.accept(sale_id)
    sw.deliver(sale_id, cipher, ws.key_commitment(key, sale_id))
    with boa.reverts("weight_sale: not awaiting delivery"):
        sw.deliver(sale_id, cipher, ws.key_commitment(key, sale_id))
    with boa.env.prank(sw.developer), boa.reverts("weight_sale: not accepted"):
        sw.sale.reveal_key(sale_id, key)  # the buyer has not confirmed the ciphertext
    with boa.env.prank(sw.developer), boa.reverts("weight_sale: not the buyer"):
        sw.sale.accept(sale_id)
    with boa.env.prank(sw.developer), boa.reverts("weight_sale: not the buyer"):
        sw.sale.cancel(sale_id)
    sw.accept(sale_id)
    with boa.env.prank(sw.buyer), boa.reverts("weight_sale: cannot cancel now"):
        sw.sale.cancel(sale_id)
    with boa.env.prank(sw.buyer), boa.reverts("weight_sale: not the seller"):
        sw.sale.reveal_key(sale_id, key)
    sw.reveal(sale_id, key)
    complaint = ws.find_complaint(cipher, key, sale_id, tamper(sw.blob, 0))
    assert complaint is not None
    with boa.reverts("weight_sale: not the buyer"):
        sw.complain(sale_id, complaint, sender=sw.developer)


# --- the seller cheats or vanishes ------------------------------------------------------------


def test_seller_never_delivers_buyer_cancels_for_a_refund(sw: SaleWorld) -> None:
    sale_id = sw.buy()
    boa.env.time_travel(seconds=DAY + 1)
    with boa.env.prank(sw.developer), boa.reverts("weight_sale: delivery too late"):
        sw.sale.deliver(sale_id, cid(1), cid(2))
    with boa.env.prank(sw.buyer):
        sw.sale.cancel(sale_id)
    [refunded] = events(sw.sale, "Refunded")
    assert refunded.reason == REASON["cancelled"] and refunded.amount == PRICE
    assert sw.status(sale_id) == STATUS["refunded"] and sw.sale.balance_of(sw.buyer) == PRICE
    sw.check_books()
    with boa.env.prank(sw.buyer), boa.reverts("weight_sale: cannot cancel now"):
        sw.sale.cancel(sale_id)  # nobody is refunded twice


def test_a_ciphertext_not_matching_its_root_is_cancelled_before_acceptance(sw: SaleWorld) -> None:
    key = secrets.token_bytes(32)
    sale_id = sw.buy()
    cipher = ws.encrypt(sw.blob, key, sale_id)
    sw.deliver(sale_id, cipher, ws.key_commitment(key, sale_id))
    handed_over = cipher[:-1] + bytes([cipher[-1] ^ 1])  # what the seller actually sent
    assert not ws.delivery_matches(handed_over, sw.sale.sale(sale_id).cipher_root, 5)
    with boa.env.prank(sw.buyer):
        sw.sale.cancel(sale_id)
    assert sw.sale.balance_of(sw.buyer) == PRICE
    with boa.env.prank(sw.developer), boa.reverts("weight_sale: not accepted"):
        sw.sale.reveal_key(sale_id, key)


def test_seller_never_reveals_the_key_anyone_refunds_after_the_deadline(sw: SaleWorld) -> None:
    key = secrets.token_bytes(32)
    sale_id = sw.buy()
    sw.deliver(sale_id, ws.encrypt(sw.blob, key, sale_id), ws.key_commitment(key, sale_id))
    sw.accept(sale_id)
    with boa.reverts("weight_sale: reveal window open"):
        sw.sale.refund(sale_id)
    boa.env.time_travel(seconds=DAY + 1)
    with boa.env.prank(sw.developer), boa.reverts("weight_sale: reveal too late"):
        sw.sale.reveal_key(sale_id, key)
    sw.sale.refund(sale_id)  # a stranger may trigger it; the money goes to the buyer
    [refunded] = events(sw.sale, "Refunded")
    assert refunded.reason == REASON["not_revealed"] and refunded.buyer == sw.buyer
    assert sw.sale.balance_of(sw.buyer) == PRICE
    with boa.reverts("weight_sale: not awaiting the key"):
        sw.sale.refund(sale_id)
    sw.check_books()


def test_a_key_that_does_not_open_the_commitment_is_refused_then_refund_on_timeout(
    sw: SaleWorld,
) -> None:
    key = secrets.token_bytes(32)
    sale_id = sw.buy()
    sw.deliver(sale_id, ws.encrypt(sw.blob, key, sale_id), ws.key_commitment(key, sale_id))
    sw.accept(sale_id)
    with boa.reverts("weight_sale: key does not open the commitment"):
        sw.reveal(sale_id, secrets.token_bytes(32))
    boa.env.time_travel(seconds=DAY + 1)
    sw.sale.refund(sale_id)
    assert sw.sale.balance_of(sw.buyer) == PRICE


def test_wrong_weights_a_complaint_proves_it_and_refunds_the_buyer(sw: SaleWorld) -> None:
    forged = tamper(sw.blob, 3)
    sale_id, cipher, key = sw.run_to_reveal(blob=forged)
    leaves = ws.leaves_from_manifest(
        ws.weights_manifest(sw.blob), sw.models.weights_root(sw.model_id, 1)
    )  # what the buyer holds: the published manifest, not the weights
    complaint = ws.find_complaint(cipher, key, sale_id, leaves)
    assert complaint is not None and complaint.index == 3
    s = sw.sale.sale(sale_id)
    listing = sw.sale.listing(sw.model_id, 1)
    assert ws.complaint_holds(
        complaint, key=key, sale_id=sale_id, cipher_root=s.cipher_root,
        tree_root=listing.tree_root, n_chunks=listing.n_chunks,
    )  # fmt: skip
    sw.complain(sale_id, complaint)
    assert [e.index for e in events(sw.sale, "Complained")] == [3]
    [refunded] = events(sw.sale, "Refunded")
    assert refunded.reason == REASON["complaint"]
    assert sw.status(sale_id) == STATUS["refunded"] and sw.sale.balance_of(sw.buyer) == PRICE
    boa.env.time_travel(seconds=DAY + 1)
    with boa.reverts("weight_sale: not awaiting settlement"):
        sw.sale.settle(sale_id)
    assert sw.sale.balance_of(sw.developer) == 0
    with boa.reverts("weight_sale: no key revealed"):
        sw.complain(sale_id, complaint)  # a complaint never refunds twice
    sw.check_books()


def test_wrong_weights_in_the_padded_last_chunk_are_caught(sw: SaleWorld) -> None:
    key = secrets.token_bytes(32)
    sale_id = sw.buy()
    padded = sw.blob + b"\x00" * (5 * ws.CHUNK - len(sw.blob))
    forged = padded[:-1] + b"\x01"  # same bytes up to byte_length, garbage in the padding
    cipher = b"".join(
        bytes(
            a ^ b
            for a, b in zip(
                forged[i * ws.CHUNK : (i + 1) * ws.CHUNK], ws.pad(key, sale_id, i), strict=True
            )
        )
        for i in range(5)
    )
    sw.deliver(sale_id, cipher, ws.key_commitment(key, sale_id))
    sw.accept(sale_id)
    sw.reveal(sale_id, key)
    complaint = ws.find_complaint(cipher, key, sale_id, sw.blob)
    assert complaint is not None and complaint.index == 4
    sw.complain(sale_id, complaint)
    assert sw.sale.balance_of(sw.buyer) == PRICE


def test_wrong_key_a_committed_key_that_decrypts_to_garbage_is_proven(sw: SaleWorld) -> None:
    sale_id, cipher, revealed = sw.run_to_reveal(
        key=secrets.token_bytes(32), commit_key=secrets.token_bytes(32)
    )
    complaint = ws.find_complaint(cipher, revealed, sale_id, sw.blob)
    assert complaint is not None and complaint.index == 0
    sw.complain(sale_id, complaint)
    assert sw.sale.balance_of(sw.buyer) == PRICE


def test_a_key_cannot_be_replayed_across_sales(sw: SaleWorld) -> None:
    key = secrets.token_bytes(32)
    first, cipher_1, _ = sw.run_to_reveal(key=key)
    second = sw.buy()
    cipher_2 = ws.encrypt(sw.blob, key, second)
    assert cipher_2 != cipher_1  # the pad is per sale: no two ciphertexts share one
    # The seller replays the first sale's commitment; the public key cannot open it here.
    sw.deliver(second, cipher_2, ws.key_commitment(key, first))
    sw.accept(second)
    with boa.reverts("weight_sale: key does not open the commitment"):
        sw.reveal(second, key)
    boa.env.time_travel(seconds=DAY + 1)
    sw.sale.refund(second)
    sw.sale.settle(first)
    assert sw.sale.balance_of(sw.buyer) == PRICE and sw.sale.balance_of(sw.developer) == PRICE


# --- the buyer cheats ------------------------------------------------------------------------


def test_false_complaints_against_an_honest_delivery_revert_and_the_seller_is_paid(
    sw: SaleWorld,
) -> None:
    sale_id, cipher, key = sw.run_to_reveal()
    parts = [cipher[i : i + ws.CHUNK] for i in range(0, len(cipher), ws.CHUNK)]
    cipher_leaves = [keccak256(p) for p in parts]
    plain_leaves = ws.leaves(sw.blob)

    def complaint(index: int = 2, **kw: Any) -> ws.Complaint:
        fields: dict[str, Any] = {
            "index": index,
            "cipher_chunk": parts[index % len(parts)],
            "cipher_proof": tuple(ws.merkle_proof(cipher_leaves, index % len(parts))),
            "plain_leaf": plain_leaves[index % len(parts)],
            "plain_proof": tuple(ws.merkle_proof(plain_leaves, index % len(parts))),
        }
        fields.update(kw)
        return ws.Complaint(**fields)

    honest = complaint()
    with boa.reverts("weight_sale: chunk decrypts correctly"):
        sw.complain(sale_id, honest)
    forged_leaf = keccak256(b"not the chunk")
    with boa.reverts("weight_sale: leaf not in the weights"):
        sw.complain(sale_id, complaint(plain_leaf=forged_leaf))
    with boa.reverts("weight_sale: chunk not in the delivery"):
        sw.complain(sale_id, complaint(cipher_chunk=bytes(ws.CHUNK)))
    with boa.reverts("weight_sale: chunk not in the delivery"):
        sw.complain(sale_id, replace(honest, index=3))  # chunk 2 and its proofs, claimed as 3
    with boa.reverts("weight_sale: no such chunk"):
        sw.complain(sale_id, complaint(index=5))  # a padding leaf (zero) of the 8-leaf tree
    short = complaint(cipher_proof=honest.cipher_proof[:-1])
    with boa.reverts("weight_sale: proof length is not the tree depth"):
        sw.complain(sale_id, short)
    # An inner node posing as a leaf: the parent of chunks 2 and 3 one level up.
    inner = keccak256(plain_leaves[2] + plain_leaves[3])
    with boa.reverts("weight_sale: proof length is not the tree depth"):
        sw.complain(sale_id, complaint(plain_leaf=inner, plain_proof=honest.plain_proof[1:]))
    for c in (honest, complaint(plain_leaf=forged_leaf), replace(honest, index=3), short):
        assert not ws.complaint_holds(
            c, key=key, sale_id=sale_id, cipher_root=ws.cipher_root(cipher),
            tree_root=ws.merkle_root(plain_leaves), n_chunks=5,
        )  # fmt: skip
    boa.env.time_travel(seconds=DAY + 1)
    sw.sale.settle(sale_id)
    assert sw.sale.balance_of(sw.developer) == PRICE and sw.sale.balance_of(sw.buyer) == 0


def test_a_complaint_after_the_window_is_too_late(sw: SaleWorld) -> None:
    sale_id, cipher, key = sw.run_to_reveal(blob=tamper(sw.blob, 1))
    complaint = ws.find_complaint(cipher, key, sale_id, sw.blob)
    assert complaint is not None
    boa.env.time_travel(seconds=DAY + 1)
    with boa.reverts("weight_sale: complaint window closed"):
        sw.complain(sale_id, complaint)
    sw.sale.settle(sale_id)
    assert sw.sale.balance_of(sw.developer) == PRICE


# --- withdrawals -----------------------------------------------------------------------------


def test_withdraw_pays_once(sw: SaleWorld) -> None:
    sale_id = sw.buy()
    with boa.env.prank(sw.buyer):
        sw.sale.cancel(sale_id)
        with boa.reverts("weight_sale: zero receiver"):
            sw.sale.withdraw("0x" + "00" * 20)
        carol_before = boa.env.get_balance(sw.world.carol)
        assert sw.sale.withdraw(sw.world.carol) == PRICE
        [w] = events(sw.sale, "Withdrawn")
        assert (w.account, w.receiver, w.amount) == (sw.buyer, sw.world.carol, PRICE)
        with boa.reverts("weight_sale: nothing to withdraw"):
            sw.sale.withdraw()
    assert boa.env.get_balance(sw.world.carol) == carol_before + PRICE
    assert sw.sale.credited() == 0 and boa.env.get_balance(sw.sale.address) == 0


def test_withdraw_cannot_be_reentered(sw: SaleWorld) -> None:
    attacker = boa.load(str(HELPERS / "sale_reentrant_buyer.vy"), sw.sale.address)
    boa.env.set_balance(attacker.address, 0)
    sw.buy()  # someone else's escrow sits in the contract too
    attacker.buy_and_cancel(sw.model_id, 1, value=PRICE, sender=sw.buyer)
    assert sw.sale.balance_of(attacker.address) == PRICE
    assert attacker.withdraw() == PRICE
    assert attacker.reentered() and not attacker.reentry_succeeded()
    assert attacker.received() == PRICE and boa.env.get_balance(attacker.address) == PRICE
    assert sw.sale.escrowed() == PRICE
    sw.check_books()


# --- the contract judges as the Python side does ---------------------------------------------


@settings(parent=settings.get_profile(PROFILE), max_examples=8)
@given(
    size=st.integers(1, 9 * ws.CHUNK),
    tampered=st.one_of(st.none(), st.integers(0, 8)),
    claimed=st.integers(0, 8),
    seed=st.binary(min_size=32, max_size=32),
)
def test_the_contract_upholds_exactly_the_complaints_python_upholds(
    sw: SaleWorld, size: int, tampered: int | None, claimed: int, seed: bytes
) -> None:
    with boa.env.anchor():
        blob = (seed * (size // 32 + 1))[:size]
        n = len(ws.chunks(blob))
        model_id = sw.register(blob)
        sw.list(model_id, blob)
        delivered = blob if tampered is None else tamper(blob, tampered % n)
        sale_id, cipher, key = sw.run_to_reveal(blob=delivered, model_id=model_id)
        found = ws.find_complaint(cipher, key, sale_id, blob)
        assert (found is None) == (delivered == blob)
        # The buyer also tries chunk `claimed`, honest or not.
        index = claimed % n
        parts = [cipher[i : i + ws.CHUNK] for i in range(0, len(cipher), ws.CHUNK)]
        cipher_leaves, plain_leaves = [keccak256(p) for p in parts], ws.leaves(blob)
        attempt = ws.Complaint(
            index, parts[index], tuple(ws.merkle_proof(cipher_leaves, index)),
            plain_leaves[index], tuple(ws.merkle_proof(plain_leaves, index)),
        )  # fmt: skip
        for c in [attempt] + ([found] if found else []):
            expected = ws.complaint_holds(
                c, key=key, sale_id=sale_id, cipher_root=ws.cipher_root(cipher),
                tree_root=ws.merkle_root(plain_leaves), n_chunks=n,
            )  # fmt: skip
            if expected:
                with boa.env.anchor():
                    sw.complain(sale_id, c)
                    assert sw.status(sale_id) == STATUS["refunded"]
            else:
                with boa.reverts():
                    sw.complain(sale_id, c)
        if found:
            assert ws.complaint_holds(
                found, key=key, sale_id=sale_id, cipher_root=ws.cipher_root(cipher),
                tree_root=ws.merkle_root(plain_leaves), n_chunks=n,
            )  # fmt: skip


# --- invariants: money in = money out, nobody paid twice -------------------------------------


@dataclass
class SaleModel:
    buyer: str
    status: int
    deadline: int
    key: bytes = b""
    cipher: bytes = b""
    cheat: bool = False


class SaleMachine(RuleBasedStateMachine):
    """Random sales, honest or cheating, against a model of the protocol's rules. After every
    step the contract holds exactly what is escrowed or credited, each sale is where the rules
    say, and every wei paid in is escrowed, credited or withdrawn, once."""

    sw: ClassVar[SaleWorld]

    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        w = self.sw.world
        self.buyers = [self.sw.buyer, w.alice]
        self.sales: dict[int, SaleModel] = {}
        self.balances: dict[str, int] = {}
        self.paid_in = 0
        self.paid_out = 0

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)

    def _expect(self, ok: bool, call: Any, step: str = "") -> None:
        if ok:
            event(f"{step} succeeds")  # --hypothesis-show-statistics: which paths were reached
            call()
        else:
            with boa.reverts():
                call()

    def _pick(self, n: int) -> tuple[int, SaleModel] | None:
        if not self.sales:
            return None
        sale_id = sorted(self.sales)[n % len(self.sales)]
        return sale_id, self.sales[sale_id]

    def _credit(self, account: str, amount: int) -> None:
        self.balances[account] = self.balances.get(account, 0) + amount

    @initialize()
    def two_sales(self) -> None:
        self.buy(0)
        self.buy(1)

    @rule(
        n=st.integers(0, 99),
        how=st.sampled_from(["honest", "weights", "key"]),
        late=st.lists(st.sampled_from([False, False, False, True]), min_size=4, max_size=4),
    )
    def advance(self, n: int, how: str, late: list[bool]) -> None:
        """The next steps of a sale (one per entry of `late`), as its parties would take them,
        on time or after the deadline, so that short sequences reach every state and not only
        the refusals."""
        if (picked := self._pick(n)) is None:
            return
        m = picked[1]
        for after_deadline in late:
            if after_deadline:
                boa.env.time_travel(seconds=DAY + 1)
            if m.status == STATUS["paid"]:
                (self.cancel if after_deadline else self.deliver)(n, how)
            elif m.status == STATUS["delivered"]:
                self.accept(n)
            elif m.status == STATUS["accepted"]:
                (self.refund if after_deadline else self.reveal)(n)
            elif m.status == STATUS["revealed"]:
                (self.complain if m.cheat and not after_deadline else self.settle)(n)

    @rule(n=st.integers(0, 99))
    def settle_by_buyer(self, n: int) -> None:
        if (picked := self._pick(n)) is None:
            return
        sale_id, m = picked
        ok = m.status == STATUS["revealed"]
        with boa.env.prank(m.buyer):
            self._expect(ok, lambda: self.sw.sale.settle(sale_id), "settle_by_buyer")
        if ok:
            m.status = STATUS["settled"]
            self._credit(self.sw.developer, PRICE)

    @rule(b=st.integers(0, 1))
    def buy(self, b: int) -> None:
        buyer = self.buyers[b]
        sale_id = self.sw.buy(buyer=buyer)
        self.sales[sale_id] = SaleModel(buyer, STATUS["paid"], boa.env.timestamp + DAY)
        self.paid_in += PRICE

    @rule(n=st.integers(0, 99), how=st.sampled_from(["honest", "weights", "key"]))
    def deliver(self, n: int, how: str) -> None:
        if (picked := self._pick(n)) is None:
            return
        sale_id, m = picked
        ok = m.status == STATUS["paid"] and boa.env.timestamp <= m.deadline
        key = secrets.token_bytes(32)
        blob = tamper(self.sw.blob, n % 5) if how == "weights" else self.sw.blob
        cipher = ws.encrypt(blob, secrets.token_bytes(32) if how == "key" else key, sale_id)
        self._expect(
            ok, lambda: self.sw.deliver(sale_id, cipher, ws.key_commitment(key, sale_id)), "deliver"
        )
        if ok:
            m.status, m.key, m.cipher, m.cheat = STATUS["delivered"], key, cipher, how != "honest"

    @rule(n=st.integers(0, 99))
    def cancel(self, n: int, how: str = "") -> None:
        if (picked := self._pick(n)) is None:
            return
        sale_id, m = picked
        ok = m.status in (STATUS["paid"], STATUS["delivered"])
        with boa.env.prank(m.buyer):
            self._expect(ok, lambda: self.sw.sale.cancel(sale_id), "cancel")
        if ok:
            m.status = STATUS["refunded"]
            self._credit(m.buyer, PRICE)

    @rule(n=st.integers(0, 99))
    def accept(self, n: int) -> None:
        if (picked := self._pick(n)) is None:
            return
        sale_id, m = picked
        ok = m.status == STATUS["delivered"]
        with boa.env.prank(m.buyer):
            self._expect(ok, lambda: self.sw.sale.accept(sale_id), "accept")
        if ok:
            m.status, m.deadline = STATUS["accepted"], boa.env.timestamp + DAY

    @rule(n=st.integers(0, 99))
    def reveal(self, n: int) -> None:
        if (picked := self._pick(n)) is None:
            return
        sale_id, m = picked
        ok = m.status == STATUS["accepted"] and boa.env.timestamp <= m.deadline
        self._expect(ok, lambda: self.sw.reveal(sale_id, m.key or bytes(32)), "reveal")
        if ok:
            m.status, m.deadline = STATUS["revealed"], boa.env.timestamp + DAY

    @rule(n=st.integers(0, 99))
    def refund(self, n: int) -> None:
        if (picked := self._pick(n)) is None:
            return
        sale_id, m = picked
        ok = m.status == STATUS["accepted"] and boa.env.timestamp > m.deadline
        self._expect(ok, lambda: self.sw.sale.refund(sale_id), "refund")
        if ok:
            m.status = STATUS["refunded"]
            self._credit(m.buyer, PRICE)

    @rule(n=st.integers(0, 99))
    def complain(self, n: int) -> None:
        if (picked := self._pick(n)) is None or not picked[1].cipher:
            return
        sale_id, m = picked
        found = ws.find_complaint(m.cipher, m.key, sale_id, self.sw.blob)
        assert (found is not None) == m.cheat
        if found is None:  # an honest delivery: the buyer tries chunk 0 anyway
            parts = [m.cipher[i : i + ws.CHUNK] for i in range(0, len(m.cipher), ws.CHUNK)]
            cipher_leaves, plain_leaves = [keccak256(p) for p in parts], ws.leaves(self.sw.blob)
            found = ws.Complaint(
                0, parts[0], tuple(ws.merkle_proof(cipher_leaves, 0)),
                plain_leaves[0], tuple(ws.merkle_proof(plain_leaves, 0)),
            )  # fmt: skip
        ok = m.status == STATUS["revealed"] and boa.env.timestamp <= m.deadline and m.cheat
        complaint = found
        with boa.env.prank(m.buyer):
            self._expect(ok, lambda: self.sw.sale.complain(*complaint.args(sale_id)), "complain")
        if ok:
            m.status = STATUS["refunded"]
            self._credit(m.buyer, PRICE)

    @rule(n=st.integers(0, 99))
    def settle(self, n: int) -> None:
        if (picked := self._pick(n)) is None:
            return
        sale_id, m = picked
        ok = m.status == STATUS["revealed"] and boa.env.timestamp > m.deadline
        self._expect(ok, lambda: self.sw.sale.settle(sale_id), "settle")
        if ok:
            m.status = STATUS["settled"]
            self._credit(self.sw.developer, PRICE)

    @rule(who=st.integers(0, 2))
    def withdraw(self, who: int) -> None:
        account = [*self.buyers, self.sw.developer][who]
        amount = self.balances.get(account, 0)
        with boa.env.prank(account):
            self._expect(amount > 0, lambda: self.sw.sale.withdraw(), "withdraw")
        self.balances[account] = 0
        self.paid_out += amount

    @rule(seconds=st.sampled_from([60, DAY // 2, DAY, DAY + 1, 3 * DAY]))
    def travel(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @invariant()
    def books_balance(self) -> None:
        sale = self.sw.sale
        open_ = [
            m
            for m in self.sales.values()
            if m.status not in (STATUS["settled"], STATUS["refunded"])
        ]
        assert sale.escrowed() == PRICE * len(open_)
        assert sale.credited() == sum(self.balances.values())
        assert boa.env.get_balance(sale.address) == sale.escrowed() + sale.credited()
        assert self.paid_in == sale.escrowed() + sale.credited() + self.paid_out
        for account in [*self.buyers, self.sw.developer]:
            assert sale.balance_of(account) == self.balances.get(account, 0)
        for sale_id, m in self.sales.items():
            assert sale.sale(sale_id).status == m.status


def test_sale_state_machine(sw: SaleWorld) -> None:
    SaleMachine.sw = sw
    SaleMachine.TestCase.settings = settings(
        settings.get_profile(PROFILE), max_examples=8, stateful_step_count=20
    )
    SaleMachine.TestCase().runTest()


# --- gas -------------------------------------------------------------------------------------


def _signed_gas(sender_key: Any, to: str, calldata: bytes) -> int:
    """Gas of one signed transaction as a receipt reports it (see benchmarks/gas.py: titanoboa's
    bare calls skip intrinsic gas and leak warm state between calls)."""
    from eth_utils import to_canonical_address

    vm = boa.env.evm.vm
    state = vm.state
    state.lock_changes()
    tx = vm.create_unsigned_transaction(
        nonce=state.get_nonce(to_canonical_address(sender_key.public_key.to_checksum_address())),
        gas_price=state.base_fee,
        gas=10_000_000,
        to=to_canonical_address(to),
        value=0,
        data=calldata,
    ).as_signed_transaction(sender_key)
    computation = state.apply_transaction(tx)
    state.lock_changes()
    if computation.is_error:
        raise computation.error
    return int(type(vm).finalize_gas_used(tx, computation))


@pytest.mark.slow
def test_complaint_gas_for_a_one_megabyte_checkpoint(world: World) -> None:
    from eth_keys import keys

    # A fresh environment: measuring locks the state, which the anchors of the others forbid.
    with boa.swap_env(boa.Env()):
        deployer = boa.env.generate_address("deployer")
        with boa.env.prank(deployer):
            blueprint = world.share_token.deploy_as_blueprint()
            market = world.market_deployer.deploy(blueprint)
        key_account = keys.PrivateKey(secrets.token_bytes(32))
        buyer = key_account.public_key.to_checksum_address()
        names = ["initiator", "evaluator", "alice", "bob", "carol", "contributor"]
        accounts = {n: boa.env.generate_address(n) for n in names}
        for address in [*accounts.values(), buyer]:
            boa.env.set_balance(address, 10**24)
        w = World(world.share_token, world.market_deployer, blueprint, market, None, 0, **accounts)
        w.dataset_id = w.create(w.initiator)
        sw = replace(deploy_sale_world(w), buyer=buyer)

        blob = secrets.token_bytes(1 << 20)
        model_id = sw.register(blob)
        sw.list(model_id, blob)
        sale_id, cipher, key = sw.run_to_reveal(blob=tamper(blob, 777), model_id=model_id)
        complaint = ws.find_complaint(cipher, key, sale_id, blob)
        assert complaint is not None and complaint.index == 777
        assert len(complaint.plain_proof) == 10
        calldata = sw.sale.complain.prepare_calldata(*complaint.args(sale_id))
        gas = _signed_gas(key_account, sw.sale.address, calldata)
        print(f"complain, 1 MiB checkpoint (1,024 chunks, depth 10): {gas:,} gas")
        assert sw.status(sale_id) == STATUS["refunded"]
        assert gas < 200_000
