"""The serving path: a prediction is answered only once its receipt is checked and stored.

:class:`Serving` sits between a request and a model's ``predict``. For each request of ``n``
examples it checks the receipt pays ``n * price_wei`` more than the user's last one, within the
user's deposit (see :mod:`databright.models.receipts`), commits it to the :class:`ReceiptBook`,
and only then runs the model. If the model then fails, the receipt is put back (the user may
send the same receipt again), so nobody pays for an answer not given.

Chain-free: the caller injects ``escrow_of(user) -> EscrowState`` (the lead's SDK reads the
ModelMarket). Escrow states are cached per user for ``escrow_ttl_s`` so a request costs no RPC
round trip; a receipt beyond the cached deposit refreshes the cache first (the user may just
have deposited more), so the cache can only make the node refuse, never over-accept beyond what
the chain said within the TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from databright.errors import InvalidArgument, InvalidReceipt
from databright.models.receipts import EscrowState, Receipt, ReceiptBook, ReceiptDomain

__all__ = ["Serving"]


class Serving:
    """Paid predictions of one registered model, ``price_wei`` per example.

    ``predict`` maps a batch (first axis: examples) to one answer per example; it is the
    registered checkpoint's, already verified against its CID by whoever built it.
    """

    def __init__(
        self,
        model_id: int,
        price_wei: int,
        predict: Callable[[np.ndarray], np.ndarray],
        book: ReceiptBook,
        escrow_of: Callable[[str], EscrowState],
        domain: ReceiptDomain,
        *,
        escrow_ttl_s: float = 5.0,
        max_batch: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(price_wei, bool) or not isinstance(price_wei, int) or price_wei < 0:
            raise InvalidArgument(f"price {price_wei!r} is not a wei amount; pass an integer >= 0.")
        if escrow_ttl_s < 0:
            raise InvalidArgument(f"escrow_ttl_s {escrow_ttl_s} is negative; pass seconds >= 0.")
        self.model_id = model_id
        self.price_wei = price_wei
        self.book = book
        self.domain = domain
        self.escrow_ttl_s = escrow_ttl_s
        self.max_batch = max_batch
        self._predict = predict
        self._escrow_of = escrow_of
        self._clock = clock
        self._escrows: dict[str, tuple[float, EscrowState]] = {}
        self._lock = threading.Lock()

    def quote(self, examples: int) -> int:
        """What ``examples`` predictions cost, in wei: the least a receipt must add."""
        return self.price_wei * examples

    def escrow(self, user: str, *, refresh: bool = False) -> EscrowState:
        """``user``'s escrow state, from the cache unless stale or ``refresh``."""
        now = self._clock()
        if not refresh:
            with self._lock:
                cached = self._escrows.get(user)
            if cached is not None and now - cached[0] <= self.escrow_ttl_s:
                return cached[1]
        state = self._escrow_of(user)  # outside the lock: it may be an RPC round trip
        with self._lock:
            self._escrows[user] = (now, state)
        return state

    def forget(self, user: str | None = None) -> None:
        """Drop the cached escrow of ``user`` (all users if None), e.g. after a settlement."""
        with self._lock:
            if user is None:
                self._escrows.clear()
            else:
                self._escrows.pop(user, None)

    def predict(self, x: np.ndarray, receipt: Receipt) -> np.ndarray:
        """Answer ``x`` (a batch) if ``receipt`` pays for ``len(x)`` predictions; raises
        InvalidReceipt (nothing answered, nothing charged) otherwise."""
        if not isinstance(x, np.ndarray) or x.ndim < 1 or len(x) == 0:
            raise InvalidArgument(
                "the input must be a non-empty array whose first axis is the examples; send a batch."
            )
        if len(x) > self.max_batch:
            raise InvalidArgument(
                f"the batch has {len(x)} examples, more than the {self.max_batch} allowed; "
                f"split it into smaller requests."
            )
        if not isinstance(receipt, Receipt):
            raise InvalidReceipt("the request carries no receipt; sign one with Wallet.pay.")
        escrow = self.escrow(receipt.user)
        if receipt.total > escrow.deposited:
            escrow = self.escrow(receipt.user, refresh=True)
        previous = self.book.accept(
            receipt,
            price_wei=self.price_wei,
            examples=len(x),
            escrow=escrow,
            domain=self.domain,
            model_id=self.model_id,
        )
        try:
            y = self._predict(x)
        except BaseException:
            self.book.undo(receipt, previous)
            raise
        return y

    def __repr__(self) -> str:
        return f"Serving(model_id={self.model_id}, price_wei={self.price_wei})"

    def stats(self) -> dict[str, Any]:
        """How many users' escrows are cached (for a status page)."""
        with self._lock:
            return {"cached_escrows": len(self._escrows)}
