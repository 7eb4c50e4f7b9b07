"""A worker: pulls units, computes them under the pinned profile, uploads signed results.

The worker talks through a *transport*, a callable ``(route, envelope, body) -> reply body``,
so the same class runs in-process against :meth:`Coordinator.handle` in tests and over HTTP in
``databright worker``. The cheating variants are here for the attack tests of issue 12 §8;
each differs from :class:`Worker` only in what it computes or claims.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
from eth_account.signers.local import LocalAccount

from databright.compute.protocol import Envelope, pack_parts, seal
from databright.compute.units import UnitPayload, local_numeric_class, run_unit
from databright.errors import InvalidArgument
from databright.ml.checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "BitFlipWorker",
    "LazyWorker",
    "ScaledUpdateWorker",
    "StaleCheckpointWorker",
    "Transport",
    "Worker",
]

Transport = Callable[[str, Envelope, bytes], bytes]


class Worker:
    """An honest worker identified by ``account``'s address."""

    def __init__(
        self,
        account: LocalAccount,
        transport: Transport,
        *,
        numeric_class: str | None = None,
        owner: str | None = None,
        ttl_s: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.transport = transport
        self.numeric_class = numeric_class or local_numeric_class()
        self.owner = owner
        self.ttl_s = ttl_s
        self.clock = clock
        self.units_done = 0

    @property
    def address(self) -> str:
        return str(self.account.address)

    def send(self, route: str, body: bytes) -> bytes:
        """Seal ``body`` for ``route`` and hand it to the transport."""
        return self.transport(
            route, seal(self.account, body, self.ttl_s, purpose=route, now=self.clock()), body
        )

    def register(self) -> None:
        request = {"numeric_class": self.numeric_class, "owner": self.owner or self.address}
        self.send("register", json.dumps(request).encode())

    def work_once(self) -> bool:
        """Fetch one unit, compute it and upload the result; False when there was no work."""
        reply = self.send("next", b"{}")
        if not reply:
            return False
        payload = UnitPayload.from_body(reply)
        checkpoint = self.compute(payload)
        meta = {"unit_id": payload.unit.unit_id, "input_hash": self.claimed_input(payload)}
        self.send("result", pack_parts(meta, {"checkpoint": checkpoint}))
        self.units_done += 1
        return True

    def compute(self, payload: UnitPayload) -> bytes:
        return run_unit(
            payload.spec,
            payload.checkpoint,
            payload.x,
            payload.y,
            payload.unit.steps,
            payload.unit.seed,
        )

    def claimed_input(self, payload: UnitPayload) -> str:
        return payload.unit.input_hash


class LazyWorker(Worker):
    """Cheat: returns the input checkpoint without training."""

    def compute(self, payload: UnitPayload) -> bytes:
        return payload.checkpoint


class BitFlipWorker(Worker):
    """Cheat: computes honestly, then flips one bit of the last weight (still valid weights)."""

    def compute(self, payload: UnitPayload) -> bytes:
        honest = bytearray(super().compute(payload))
        honest[-2] ^= 0x01  # low mantissa bits of the last float32: a tiny, plausible change
        return bytes(honest)


class ScaledUpdateWorker(Worker):
    """Cheat: sends ``input + factor * (honest - input)`` (an inflated or damped update)."""

    def __init__(self, *args: object, factor: float = 2.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if not np.isfinite(factor) or factor == 1.0:
            raise InvalidArgument(f"factor must be a finite number other than 1, got {factor!r}.")
        self.factor = factor

    def compute(self, payload: UnitPayload) -> bytes:
        import torch

        honest = load_checkpoint(super().compute(payload), payload.spec)
        start = load_checkpoint(payload.checkpoint, payload.spec)
        with torch.no_grad():
            for (_, p), (_, p0) in zip(
                honest.state_dict().items(), start.state_dict().items(), strict=True
            ):
                if p.is_floating_point():
                    p.copy_(p0 + self.factor * (p - p0))
        return save_checkpoint(honest, {"format": "pt"}, spec=payload.spec)


class StaleCheckpointWorker(Worker):
    """Cheat: keeps computing from the first checkpoint it was sent; with ``honest_claim`` it
    says so (its result names the stale input hash), otherwise it claims the current one."""

    def __init__(self, *args: object, honest_claim: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.honest_claim = honest_claim
        self._stale: UnitPayload | None = None

    def compute(self, payload: UnitPayload) -> bytes:
        if self._stale is None:
            self._stale = payload
        u = payload.unit
        return run_unit(payload.spec, self._stale.checkpoint, payload.x, payload.y, u.steps, u.seed)

    def claimed_input(self, payload: UnitPayload) -> str:
        if self.honest_claim and self._stale is not None:
            return self._stale.unit.input_hash
        return payload.unit.input_hash
