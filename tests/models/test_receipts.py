"""Signed cumulative receipts: the EIP-712 digest against eth_account, every refusal, the user's
wallet, the node's book (real SQLite, real threads) and a state machine showing the book never
lets a node take more than the user signed."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_keys import keys
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from databright.errors import InvalidArgument, InvalidReceipt, StorageError
from databright.models.receipts import (
    RECEIPT_TYPE,
    RECEIPT_TYPEHASH,
    EscrowState,
    Receipt,
    ReceiptBook,
    ReceiptDomain,
    Wallet,
    check_receipt,
    receipt_digest,
    recover_signer,
    sign_receipt,
    typed_data,
)

ALICE = Account.from_key(b"\x11" * 32)
BOB = Account.from_key(b"\x22" * 32)
DOMAIN = ReceiptDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def reference_digest(
    domain: ReceiptDomain, model_id: int, user: str, total: int, nonce: int
) -> bytes:
    """The digest as eth_account computes it from the full EIP-712 JSON, written out here by
    hand so it does not share a line with the code under test."""
    message = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Receipt": [
                {"name": "model_id", "type": "uint256"},
                {"name": "user", "type": "address"},
                {"name": "total", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
            ],
        },
        "primaryType": "Receipt",
        "domain": {
            "name": "DataBright ModelMarket",
            "version": "1",
            "chainId": domain.chain_id,
            "verifyingContract": domain.contract,
        },
        "message": {"model_id": model_id, "user": user, "total": total, "nonce": nonce},
    }
    return bytes(_hash_eip191_message(encode_typed_data(full_message=message)))


# --- the digest ------------------------------------------------------------------------------


def test_digest_matches_eth_account_and_a_fixed_vector() -> None:
    args = (7, ALICE.address, 123_456_789_000_000_000, 3)
    digest = receipt_digest(DOMAIN, *args)
    assert digest == reference_digest(DOMAIN, *args)
    # Pinned so a change of encoding anywhere (ours or a library's) shows up here.
    assert digest.hex() == FIXED_DIGEST
    assert (
        keccak(text="Receipt(uint256 model_id,address user,uint256 total,uint256 nonce)")
        == RECEIPT_TYPEHASH
    )
    assert RECEIPT_TYPE.startswith("Receipt(")


FIXED_DIGEST = "4cefc23fc9aea4a4a2ffaffe4f23f6ddc73fa9760cdd284cbd3a73c13f329563"


@settings(max_examples=40, deadline=None)
@given(
    model_id=st.integers(0, 2**256 - 1),
    total=st.integers(0, 2**256 - 1),
    nonce=st.integers(0, 2**256 - 1),
    user=st.binary(min_size=20, max_size=20),
    chain_id=st.integers(1, 2**64),
)
def test_digest_equals_eth_account_on_any_receipt(
    model_id: int, total: int, nonce: int, user: bytes, chain_id: int
) -> None:
    domain = ReceiptDomain(chain_id, "0x" + "ab" * 20)
    address = Account.from_key(b"\x33" * 32).address if user == b"\0" * 20 else "0x" + user.hex()
    assert receipt_digest(domain, model_id, address, total, nonce) == reference_digest(
        domain, model_id, address, total, nonce
    )
    assert receipt_digest(domain, model_id, bytes.fromhex(address[2:]), total, nonce) == (
        receipt_digest(domain, model_id, address, total, nonce)
    )


def test_signature_is_what_a_wallet_signs_with_sign_typed_data() -> None:
    receipt = sign_receipt(ALICE, DOMAIN, 1, 500, 1)
    wallet_sig = ALICE.sign_typed_data(full_message=typed_data(DOMAIN, 1, ALICE.address, 500, 1))
    assert receipt.signature == bytes(wallet_sig.signature)
    assert recover_signer(DOMAIN, receipt) == ALICE.address
    assert (
        Account.recover_message(
            encode_typed_data(full_message=typed_data(DOMAIN, 1, ALICE.address, 500, 1)),
            signature=receipt.signature,
        )
        == ALICE.address
    )


def test_domains_separate_receipts() -> None:
    receipt = sign_receipt(ALICE, DOMAIN, 1, 500, 1)
    other_chain = ReceiptDomain(1, DOMAIN.contract)
    other_contract = ReceiptDomain(DOMAIN.chain_id, "0x" + "cd" * 20)
    assert recover_signer(other_chain, receipt) != ALICE.address
    assert recover_signer(other_contract, receipt) != ALICE.address


def test_domain_refuses_bad_values() -> None:
    with pytest.raises(InvalidArgument, match="chain id 0 is not a positive integer"):
        ReceiptDomain(0, DOMAIN.contract)
    with pytest.raises(InvalidArgument, match="is not an address"):
        ReceiptDomain(1, "0x1234")
    assert ReceiptDomain(1, DOMAIN.contract.lower()).contract == DOMAIN.contract


# --- signatures the contract would refuse ---------------------------------------------------


def _with_signature(receipt: Receipt, sig: bytes) -> Receipt:
    return Receipt(receipt.model_id, receipt.user, receipt.total, receipt.nonce, sig)


def test_high_s_signature_is_refused_although_it_recovers() -> None:
    receipt = sign_receipt(ALICE, DOMAIN, 1, 500, 1)
    r, s, v = (
        receipt.signature[:32],
        int.from_bytes(receipt.signature[32:64], "big"),
        receipt.signature[64],
    )
    malleable = r + (N - s).to_bytes(32, "big") + bytes((55 - v,))  # 27 <-> 28
    # It is a valid signature of the same digest by the same key: only the low-s rule stops it.
    digest = receipt_digest(DOMAIN, 1, ALICE.address, 500, 1)
    sig = keys.Signature(vrs=(55 - v - 27, int.from_bytes(r, "big"), N - s))
    assert sig.recover_public_key_from_msg_hash(digest).to_checksum_address() == ALICE.address
    with pytest.raises(InvalidReceipt, match="high s value, which the contract refuses"):
        recover_signer(DOMAIN, _with_signature(receipt, malleable))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda sig: sig[:64] + b"\x01", "has v=1, not 27 or 28"),
        (lambda sig: b"\0" * 32 + sig[32:], "not a valid secp256k1 signature"),
        (lambda sig: sig[:32] + N.to_bytes(32, "big") + sig[64:], "not a valid secp256k1"),
        # x = 5 is on no point of the curve: in range, low s, yet no key recovers.
        (
            lambda sig: (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + sig[64:],
            "recovers no key",
        ),
    ],
)
def test_malformed_signatures_are_refused(mutate: object, message: str) -> None:
    receipt = sign_receipt(ALICE, DOMAIN, 1, 500, 1)
    with pytest.raises(InvalidReceipt, match=message):
        recover_signer(DOMAIN, _with_signature(receipt, mutate(receipt.signature)))  # type: ignore[operator]


def test_receipt_refuses_wrong_signature_length() -> None:
    with pytest.raises(InvalidReceipt, match="signature must be 65 bytes"):
        Receipt(1, ALICE.address, 1, 1, b"\0" * 64)


# --- JSON --------------------------------------------------------------------------------------


def test_json_round_trip_and_number_forms() -> None:
    receipt = sign_receipt(ALICE, DOMAIN, 2**200, 2**255, 9)
    doc = receipt.to_json()
    assert doc["total"] == str(2**255) and isinstance(doc["signature"], str)
    assert Receipt.from_json(doc) == receipt
    assert Receipt.from_json(json.dumps(doc)) == receipt
    assert Receipt.from_json({**doc, "total": hex(2**255), "nonce": "9"}) == receipt
    assert Receipt.from_json({**doc, "user": ALICE.address.lower()}).user == ALICE.address


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("not json", "the receipt is not valid JSON"),
        ([1, 2], "a receipt must be a JSON object, not list"),
        ({"drop": "nonce"}, "the receipt lacks nonce; send all of"),
        ({"extra": 1}, "unknown field\\(s\\) extra"),
        ({"signature": "abcd"}, "signature must be a 0x-prefixed hex string"),
        ({"signature": "0xzz"}, "signature is not valid hex"),
        ({"signature": "0x1234"}, "signature must be 65 bytes"),
        ({"total": "12a"}, "the receipt's total '12a' is not a number"),
        ({"total": -1}, "the receipt's total -1 is outside 0..2\\*\\*256-1"),
        ({"nonce": 2**256}, "nonce .* is outside 0..2\\*\\*256-1"),
        ({"model_id": True}, "the receipt's model id must be an integer, not True"),
        ({"model_id": 1.5}, "the receipt's model id must be an integer, not 1.5"),
        ({"user": "0x12"}, "the receipt's user '0x12' is not an Ethereum address"),
    ],
)
def test_from_json_names_each_problem(change: object, message: str) -> None:
    doc: object
    base = sign_receipt(ALICE, DOMAIN, 1, 10, 1).to_json()
    if isinstance(change, dict):
        doc = {**base, **{k: v for k, v in change.items() if k != "drop"}}
        if "drop" in change:
            del doc[change["drop"]]  # type: ignore[attr-defined]
    else:
        doc = change
    with pytest.raises(InvalidReceipt, match=message):
        Receipt.from_json(doc)  # type: ignore[arg-type]


# --- check_receipt: every refusal, in order --------------------------------------------------


def _check(receipt: Receipt, **over: object) -> None:
    args: dict[str, object] = {
        "model_id": 1,
        "signer": recover_signer(DOMAIN, receipt),
        "last_nonce": 0,
        "last_total": 0,
        "price_wei": 10,
        "examples": 1,
        "escrow": EscrowState(deposited=1000),
        "now": 1_000_000.0,
        "exit_margin_s": 60.0,
    }
    args.update(over)
    check_receipt(receipt, **args)  # type: ignore[arg-type]


def test_check_receipt_accepts_a_receipt_that_pays() -> None:
    _check(sign_receipt(ALICE, DOMAIN, 1, 50, 3), last_nonce=2, last_total=40)
    _check(sign_receipt(ALICE, DOMAIN, 1, 1000, 1), examples=100)  # exactly the deposit
    exit_far = EscrowState(1000, exit_at=1_000_061)
    _check(sign_receipt(ALICE, DOMAIN, 1, 10, 1), escrow=exit_far)


def test_check_receipt_refusals() -> None:
    good = sign_receipt(ALICE, DOMAIN, 1, 50, 3)
    with pytest.raises(InvalidReceipt, match="the receipt is for model 1, not model 2"):
        _check(good, model_id=2)
    with pytest.raises(InvalidReceipt, match=f"signature is not {ALICE.address}'s"):
        _check(good, signer=BOB.address)
    with pytest.raises(InvalidReceipt, match="nonce 3 is not above the last one used \\(3\\)"):
        _check(good, last_nonce=3, last_total=40)
    with pytest.raises(InvalidReceipt, match="replayed or old"):
        _check(good, escrow=EscrowState(1000, settled=0, nonce=5))
    with pytest.raises(
        InvalidReceipt, match="adds 5 wei to the 45 already signed, but 1 prediction"
    ):
        _check(good, last_nonce=2, last_total=45)
    with pytest.raises(InvalidReceipt, match="sign a total of at least 60"):
        _check(good, escrow=EscrowState(1000, settled=50, nonce=2))
    with pytest.raises(InvalidReceipt, match="cost 100 wei"):
        _check(good, examples=10)
    with pytest.raises(InvalidReceipt, match="beyond the 40 wei deposited for model 1"):
        _check(good, escrow=EscrowState(40))
    with pytest.raises(InvalidReceipt, match="withdrawn in 59 s, too soon for the node to settle"):
        _check(good, escrow=EscrowState(1000, exit_at=1_000_059))
    with pytest.raises(InvalidReceipt, match="withdrawn in 0 s"):
        _check(good, escrow=EscrowState(1000, exit_at=5))


def test_escrow_state_refuses_non_uint() -> None:
    with pytest.raises(InvalidArgument, match="escrow deposited -1 is not a uint256"):
        EscrowState(-1)
    assert EscrowState(100, settled=30).available == 70


# --- the wallet -----------------------------------------------------------------------------


@pytest.mark.parametrize("durable", [True, False])
def test_wallet_pays_cumulatively_and_remembers(tmp_path: Path, durable: bool) -> None:
    wallet = Wallet(ALICE, DOMAIN, tmp_path, durable=durable)
    wallet.set_limit(1, 100)
    first = wallet.pay(1, 30)
    second = wallet.pay(1, 20)
    assert (first.total, first.nonce, second.total, second.nonce) == (30, 1, 50, 2)
    assert recover_signer(DOMAIN, second) == ALICE.address
    again = Wallet(ALICE, DOMAIN, tmp_path)
    assert (again.total(1), again.nonce(1), again.limit(1)) == (50, 2, 100)
    assert again.last(1) == second
    assert again.pay(1, 50).total == 100
    assert [p.name for p in tmp_path.iterdir()] == [wallet.path.name]  # no temp file left
    assert wallet.path.stat().st_mode & 0o777 == 0o600


def test_wallet_never_signs_beyond_the_deposit(tmp_path: Path) -> None:
    wallet = Wallet(ALICE, DOMAIN, tmp_path)
    with pytest.raises(InvalidReceipt, match="beyond the 0 wei deposited; deposit more"):
        wallet.pay(1, 1)
    wallet.set_limit(1, 100)
    wallet.pay(1, 60)
    with pytest.raises(InvalidReceipt, match="bring the total owed to model 1 to 101 wei"):
        wallet.pay(1, 41)
    assert (wallet.total(1), wallet.nonce(1)) == (60, 1)  # a refusal changes nothing
    with pytest.raises(InvalidReceipt, match="is not a wei amount"):
        wallet.pay(1, -5)
    with pytest.raises(InvalidArgument, match="deposit -1 is not a wei amount"):
        wallet.set_limit(1, -1)


def test_wallet_syncs_with_the_chain(tmp_path: Path) -> None:
    wallet = Wallet(ALICE, DOMAIN, tmp_path)
    wallet.sync(4, EscrowState(deposited=500, settled=200, nonce=7))
    receipt = wallet.pay(4, 10)
    assert (receipt.total, receipt.nonce, wallet.limit(4)) == (210, 8, 500)
    assert wallet.last(9) is None


def test_wallet_refuses_a_damaged_file(tmp_path: Path) -> None:
    wallet = Wallet(ALICE, DOMAIN, tmp_path)
    wallet.set_limit(1, 10)
    wallet.path.write_text("{not json")
    with pytest.raises(StorageError, match="is damaged"):
        Wallet(ALICE, DOMAIN, tmp_path)


def test_wallet_files_are_per_user_and_domain(tmp_path: Path) -> None:
    a = Wallet(ALICE, DOMAIN, tmp_path)
    b = Wallet(BOB, DOMAIN, tmp_path)
    c = Wallet(ALICE, ReceiptDomain(1, DOMAIN.contract), tmp_path)
    assert len({a.path, b.path, c.path}) == 3


# --- the node's book ------------------------------------------------------------------------


def _accept(book: ReceiptBook, receipt: Receipt, **over: object) -> Receipt | None:
    args: dict[str, object] = {
        "price_wei": 10,
        "examples": 1,
        "escrow": EscrowState(1000),
        "domain": DOMAIN,
    }
    args.update(over)
    return book.accept(receipt, **args)  # type: ignore[arg-type]


def test_book_accepts_stores_and_settles(tmp_path: Path) -> None:
    with ReceiptBook(tmp_path) as book:
        assert _accept(book, sign_receipt(ALICE, DOMAIN, 1, 10, 1)) is None
        prev = _accept(book, sign_receipt(ALICE, DOMAIN, 1, 30, 2), examples=2)
        assert prev is not None and prev.nonce == 1
        _accept(book, sign_receipt(BOB, DOMAIN, 1, 10, 1))
        _accept(book, sign_receipt(BOB, DOMAIN, 2, 10, 1))
        assert [(r.user, r.total, r.nonce) for r in book.to_settle(1)] == sorted(
            [(ALICE.address, 30, 2), (BOB.address, 10, 1)]
        )
        book.mark_settled(1, ALICE.address, 30, 2)
        book.mark_settled(1, ALICE.address, 30, 2)  # idempotent
        assert [r.user for r in book.to_settle(1)] == [BOB.address]
        assert book.settled(1, ALICE.address) == (30, 2)
        with pytest.raises(InvalidArgument, match="already at nonce 2 \\(total 30\\)"):
            book.mark_settled(1, ALICE.address, 20, 1)
        # After settlement, receipts keep going from the settled values.
        _accept(book, sign_receipt(ALICE, DOMAIN, 1, 40, 3), escrow=EscrowState(1000, 30, 2))
        assert [r.total for r in book.to_settle(1) if r.user == ALICE.address] == [40]
    with ReceiptBook(tmp_path) as reopened:  # it is all on disk
        latest = reopened.latest(1, ALICE.address)
        assert latest is not None and (latest.total, latest.nonce) == (40, 3)
        assert recover_signer(DOMAIN, latest) == ALICE.address
        assert reopened.latest(7, ALICE.address) is None


def test_book_refusals_leave_the_book_unchanged(tmp_path: Path) -> None:
    with ReceiptBook(tmp_path, exit_margin_s=60.0, clock=lambda: 1_000_000.0) as book:
        first = sign_receipt(ALICE, DOMAIN, 1, 10, 1)
        _accept(book, first)
        forged = Receipt(1, ALICE.address, 500, 2, sign_receipt(BOB, DOMAIN, 1, 500, 2).signature)
        cases = [
            (forged, {}, f"signature is not {ALICE.address}'s"),
            (first, {}, "nonce 1 is not above the last one used \\(1\\)"),
            (sign_receipt(ALICE, DOMAIN, 1, 15, 2), {}, "adds 5 wei to the 10 already signed"),
            (sign_receipt(ALICE, DOMAIN, 1, 1010, 2), {}, "beyond the 1000 wei deposited"),
            (
                sign_receipt(ALICE, DOMAIN, 1, 20, 2),
                {"escrow": EscrowState(1000, exit_at=1_000_030)},
                "withdrawn in 30 s, too soon",
            ),
            (sign_receipt(ALICE, DOMAIN, 1, 20, 2), {"model_id": 3}, "is for model 1, not model 3"),
        ]
        for receipt, over, message in cases:
            with pytest.raises(InvalidReceipt, match=message):
                _accept(book, receipt, **over)
            assert book.latest(1, ALICE.address) == first


def test_book_undo_restores_the_previous_receipt(tmp_path: Path) -> None:
    with ReceiptBook(tmp_path) as book:
        first = sign_receipt(ALICE, DOMAIN, 1, 10, 1)
        assert _accept(book, first) is None
        second = sign_receipt(ALICE, DOMAIN, 1, 20, 2)
        prev = _accept(book, second)
        assert book.undo(second, prev) is True
        assert book.latest(1, ALICE.address) == first
        assert _accept(book, second) == first  # the same receipt may be sent again
        third = sign_receipt(ALICE, DOMAIN, 1, 30, 3)
        _accept(book, third)
        assert book.undo(second, first) is False  # a later receipt stands
        assert book.undo(third, second) is True
        assert book.undo(first, None) is False
        book.undo(second, first)
        book.undo(first, None)
        assert book.latest(1, ALICE.address) is None


def test_book_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    (tmp_path / ReceiptBook.FILE_NAME).write_bytes(b"not a database at all" * 100)
    with pytest.raises(StorageError, match=r"cannot open the receipt book .* move it away"):
        ReceiptBook(tmp_path)


def test_book_takes_a_file_path_or_a_dir(tmp_path: Path) -> None:
    with ReceiptBook(tmp_path / "node.sqlite") as book:
        assert book.path == tmp_path / "node.sqlite"
    with ReceiptBook(tmp_path / "data") as book:
        assert book.path == tmp_path / "data" / ReceiptBook.FILE_NAME
    book.close()
    with pytest.raises(InvalidArgument, match="the receipt book is closed"):
        book.to_settle(1)


def test_concurrent_requests_cannot_spend_one_increment_twice(tmp_path: Path) -> None:
    """Eight threads race each round with receipts of one nonce (the same receipt four times,
    a rival with another total four times) on two books sharing one file: exactly one gets
    through per round."""
    books = [ReceiptBook(tmp_path), ReceiptBook(tmp_path)]
    for n in range(1, 7):
        same = sign_receipt(ALICE, DOMAIN, 1, 10 * n, n)
        rival = sign_receipt(ALICE, DOMAIN, 1, 10 * n + 10, n)
        accepted: list[Receipt] = []
        barrier = threading.Barrier(8)

        def attempt(
            i: int,
            pair: tuple[Receipt, Receipt] = (same, rival),
            accepted: list[Receipt] = accepted,
            barrier: threading.Barrier = barrier,
        ) -> None:
            receipt = pair[i % 2]
            barrier.wait()
            try:
                _accept(books[i // 4], receipt)
                accepted.append(receipt)
            except InvalidReceipt:
                pass

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(accepted) == 1, accepted
        assert books[0].latest(1, ALICE.address) == accepted[0]
    for book in books:
        book.close()


# --- the invariant: the node can never take more than the user signed ------------------------


class ReceiptMarket(RuleBasedStateMachine):
    """A user, a node's book and the chain's escrow; the user and an attacker send receipts of
    any total and nonce, the node settles whenever, the user deposits or exits."""

    PRICE = 7

    @initialize(deposit=st.integers(0, 500))
    def start(self, deposit: int) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.now = 1_000_000.0
        self.book = ReceiptBook(self.dir.name, exit_margin_s=100.0, clock=lambda: self.now)
        self.escrow = EscrowState(deposit)
        self.signed_max = 0  # the largest total the user ever signed
        self.accepted: list[tuple[int, int]] = []  # (nonce, total) in order of acceptance

    def _try(self, receipt: Receipt, examples: int) -> None:
        try:
            self.book.accept(
                receipt, price_wei=self.PRICE, examples=examples, escrow=self.escrow, domain=DOMAIN
            )
        except InvalidReceipt:
            return
        assert receipt.user == ALICE.address and recover_signer(DOMAIN, receipt) == ALICE.address
        assert receipt.total <= self.escrow.deposited
        assert not self.escrow.exit_at or self.escrow.exit_at - self.now >= 100.0
        if self.accepted:
            last_nonce, last_total = self.accepted[-1]
            assert receipt.nonce > last_nonce
            assert receipt.total - last_total >= self.PRICE * examples
        self.accepted.append((receipt.nonce, receipt.total))

    @rule(total=st.integers(0, 600), nonce=st.integers(0, 12), examples=st.integers(1, 5))
    def user_signs(self, total: int, nonce: int, examples: int) -> None:
        self.signed_max = max(self.signed_max, total)
        self._try(sign_receipt(ALICE, DOMAIN, 1, total, nonce), examples)

    @rule(examples=st.integers(1, 5))
    def user_pays_honestly(self, examples: int) -> None:
        nonce, total = (
            self.accepted[-1] if self.accepted else (self.escrow.nonce, self.escrow.settled)
        )
        total += self.PRICE * examples
        self.signed_max = max(self.signed_max, total)
        self._try(sign_receipt(ALICE, DOMAIN, 1, total, nonce + 1), examples)

    @rule(total=st.integers(0, 600), nonce=st.integers(0, 12))
    def attacker_signs(self, total: int, nonce: int) -> None:
        forged = sign_receipt(BOB, DOMAIN, 1, total, nonce)
        self._try(Receipt(1, ALICE.address, total, nonce, forged.signature), 1)

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        latest = self.book.latest(1, ALICE.address)
        if latest is not None:
            self._try(latest, data.draw(st.integers(0, 3)))

    @rule()
    def node_settles(self) -> None:
        for r in self.book.to_settle(1):
            # What the contract checks before paying total - settled.
            assert (
                r.nonce > self.escrow.nonce
                and self.escrow.settled < r.total <= self.escrow.deposited
            )
            self.escrow = EscrowState(self.escrow.deposited, r.total, r.nonce, self.escrow.exit_at)
            self.book.mark_settled(1, r.user, r.total, r.nonce)

    @rule(amount=st.integers(1, 200))
    def user_deposits(self, amount: int) -> None:
        self.escrow = EscrowState(
            self.escrow.deposited + amount, self.escrow.settled, self.escrow.nonce, 0
        )

    @rule(delay=st.integers(0, 300))
    def user_starts_exit(self, delay: int) -> None:
        self.escrow = EscrowState(
            self.escrow.deposited, self.escrow.settled, self.escrow.nonce, int(self.now) + delay
        )

    @rule(seconds=st.integers(1, 200))
    def time_passes(self, seconds: int) -> None:
        self.now += seconds

    @invariant()
    def never_more_than_signed(self) -> None:
        if not hasattr(self, "book"):
            return
        assert self.escrow.settled <= min(self.signed_max, self.escrow.deposited)
        for r in self.book.to_settle(1):
            assert r.total <= self.signed_max and r.total <= self.escrow.deposited

    def teardown(self) -> None:
        if hasattr(self, "book"):
            self.book.close()
            self.dir.cleanup()


ReceiptMarket.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_receipt_market = ReceiptMarket.TestCase
