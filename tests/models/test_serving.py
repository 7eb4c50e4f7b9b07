"""The serving path: a real torch model behind real receipts on a real SQLite book; an answer
only for a receipt that pays, the escrow cache, and nothing charged when the model fails."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from eth_account import Account

from databright.errors import InvalidArgument, InvalidReceipt
from databright.models.receipts import (
    EscrowState,
    Receipt,
    ReceiptBook,
    ReceiptDomain,
    Wallet,
    sign_receipt,
)
from databright.models.serving import Serving

ALICE = Account.from_key(b"\x11" * 32)
BOB = Account.from_key(b"\x22" * 32)
DOMAIN = ReceiptDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
PRICE = 5


class Chain:
    """The escrow states the chain would answer, and how often it was asked."""

    def __init__(self, **deposits: int) -> None:
        self.states = {
            {"alice": ALICE.address, "bob": BOB.address}[k]: EscrowState(v)
            for k, v in deposits.items()
        }
        self.calls = 0

    def escrow_of(self, user: str) -> EscrowState:
        self.calls += 1
        return self.states.get(user, EscrowState(0))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()


def torch_predict(model: torch.nn.Module):  # type: ignore[no-untyped-def]
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return predict


def make(
    tmp_path: Path, model: torch.nn.Module, chain: Chain, clock: Clock | None = None, **kw: object
) -> Serving:
    return Serving(
        1,
        PRICE,
        torch_predict(model),
        ReceiptBook(tmp_path),
        chain.escrow_of,
        DOMAIN,
        clock=clock or Clock(),
        **kw,  # type: ignore[arg-type]
    )


def test_a_paid_request_is_answered_by_the_model(tmp_path: Path, model: torch.nn.Module) -> None:
    serving = make(tmp_path, model, Chain(alice=1000))
    wallet = Wallet(ALICE, DOMAIN, tmp_path / "wallet")
    wallet.set_limit(1, 1000)
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    y = serving.predict(x, wallet.pay(1, serving.quote(len(x))))
    assert np.array_equal(y, torch_predict(model)(x))
    y1 = serving.predict(x[:1], wallet.pay(1, serving.quote(1)))
    assert np.allclose(y1, y[:1], atol=1e-6)
    assert serving.book.to_settle(1) == [wallet.last(1)]
    assert wallet.total(1) == 35


def test_refused_requests_get_no_answer(tmp_path: Path, model: torch.nn.Module) -> None:
    calls: list[int] = []
    predict = torch_predict(model)

    def counting(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return predict(x)

    serving = Serving(1, PRICE, counting, ReceiptBook(tmp_path), Chain(alice=100).escrow_of, DOMAIN)
    x = np.zeros((4, 4), dtype=np.float32)
    cases = [
        (sign_receipt(ALICE, DOMAIN, 2, 20, 1), "is for model 2, not model 1"),
        (sign_receipt(ALICE, DOMAIN, 1, 19, 1), "but 4 prediction\\(s\\) cost 20 wei"),
        (sign_receipt(ALICE, DOMAIN, 1, 120, 1), "beyond the 100 wei deposited"),
        (
            Receipt(1, ALICE.address, 20, 1, sign_receipt(BOB, DOMAIN, 1, 20, 1).signature),
            f"not {ALICE.address}'s",
        ),
        (sign_receipt(BOB, DOMAIN, 1, 20, 1), "beyond the 0 wei deposited"),
    ]
    for receipt, message in cases:
        with pytest.raises(InvalidReceipt, match=message):
            serving.predict(x, receipt)
    paid = sign_receipt(ALICE, DOMAIN, 1, 20, 1)
    serving.predict(x, paid)
    with pytest.raises(InvalidReceipt, match="replayed or old"):
        serving.predict(x, paid)
    assert calls == [4]
    with pytest.raises(InvalidReceipt, match="carries no receipt"):
        serving.predict(x, None)  # type: ignore[arg-type]


def test_bad_input_is_refused_before_the_receipt_is_taken(
    tmp_path: Path, model: torch.nn.Module
) -> None:
    serving = make(tmp_path, model, Chain(alice=10**6), max_batch=8)
    receipt = sign_receipt(ALICE, DOMAIN, 1, 100, 1)
    with pytest.raises(InvalidArgument, match="must be a non-empty array"):
        serving.predict(np.zeros((0, 4), np.float32), receipt)
    with pytest.raises(InvalidArgument, match="must be a non-empty array"):
        serving.predict([[0.0] * 4], receipt)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="more than the 8 allowed; split it"):
        serving.predict(np.zeros((9, 4), np.float32), receipt)
    assert serving.book.latest(1, ALICE.address) is None
    with pytest.raises(InvalidArgument, match="price -1 is not a wei amount"):
        Serving(1, -1, torch_predict(model), serving.book, Chain().escrow_of, DOMAIN)


def test_a_failed_prediction_is_not_charged(tmp_path: Path) -> None:
    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("out of memory")

    book = ReceiptBook(tmp_path)
    chain = Chain(alice=100)
    serving = Serving(1, PRICE, broken, book, chain.escrow_of, DOMAIN)
    receipt = sign_receipt(ALICE, DOMAIN, 1, 5, 1)
    with pytest.raises(RuntimeError, match="out of memory"):
        serving.predict(np.zeros((1, 4), np.float32), receipt)
    assert book.latest(1, ALICE.address) is None
    fixed = Serving(1, PRICE, lambda x: x, book, chain.escrow_of, DOMAIN)
    assert fixed.predict(np.ones((1, 4), np.float32), receipt).shape == (1, 4)  # sent again


def test_escrow_is_cached_and_refreshed_when_a_receipt_exceeds_it(
    tmp_path: Path, model: torch.nn.Module
) -> None:
    chain, clock = Chain(alice=10), Clock()
    serving = make(tmp_path, model, chain, clock, escrow_ttl_s=5.0)
    x = np.zeros((1, 4), np.float32)
    serving.predict(x, sign_receipt(ALICE, DOMAIN, 1, 5, 1))
    serving.predict(x, sign_receipt(ALICE, DOMAIN, 1, 10, 2))
    assert chain.calls == 1  # cached
    chain.states[ALICE.address] = EscrowState(100)  # the user deposits more
    serving.predict(x, sign_receipt(ALICE, DOMAIN, 1, 15, 3))  # beyond the cached 10: refresh
    assert chain.calls == 2
    chain.states[ALICE.address] = EscrowState(100, exit_at=1)  # the user starts an exit
    serving.predict(x, sign_receipt(ALICE, DOMAIN, 1, 20, 4))  # cache still fresh
    clock.t = 6.0
    with pytest.raises(InvalidReceipt, match="too soon for the node to settle"):
        serving.predict(x, sign_receipt(ALICE, DOMAIN, 1, 25, 5))
    assert chain.calls == 3
    serving.forget(ALICE.address)
    serving.escrow(ALICE.address)
    assert chain.calls == 4 and serving.stats() == {"cached_escrows": 1}
    serving.forget()
    assert serving.stats() == {"cached_escrows": 0}


def test_concurrent_requests_with_one_receipt_get_one_answer(
    tmp_path: Path, model: torch.nn.Module
) -> None:
    serving = make(tmp_path, model, Chain(alice=1000))
    receipt = sign_receipt(ALICE, DOMAIN, 1, 5, 1)
    answers: list[np.ndarray] = []
    refusals: list[str] = []
    barrier = threading.Barrier(6)

    def request() -> None:
        barrier.wait()
        try:
            answers.append(serving.predict(np.ones((1, 4), np.float32), receipt))
        except InvalidReceipt as exc:
            refusals.append(str(exc))

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 1 and len(refusals) == 5
    assert all("replayed or old" in r for r in refusals)
