"""A worker: pulls units, computes them under the pinned profile, uploads signed results.

The worker talks through a *transport*, a callable ``(route, envelope, body) -> reply body``,
so the same class runs in-process against :meth:`Coordinator.handle` in tests and over HTTP in
``databright worker``.

Before it works, a worker checks the coordinator (:meth:`Worker.check_coordinator`): it sends a
fresh random challenge on the ``attestation`` route, and the coordinator answers with its
attestation evidence and its signature over the challenge. :func:`verify_coordinator` accepts
the answer only if a provider verifies the evidence, the evidence's report data binds the key
that signed the challenge, and hardware vouches for it, or the worker was explicitly told to
accept an insecure (software) coordinator, as Confidential Containers' sample attester and
Oasis' unsafe mode must be. :func:`check_coordinator` is that exchange over any party's own
``send``: split-training stage workers (:mod:`databright.compute.split_relay`) and federation
clients (:mod:`databright.compute.federation_client`) check their coordinator with it too.

The cheating variants are here for the attack tests of issue 12 §8; each differs from
:class:`Worker` only in what it computes or claims.
"""

from __future__ import annotations

import json
import secrets
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from databright.compute.attestation import (
    CHALLENGE_SIZE,
    AttestationProvider,
    Claims,
    DcapProvider,
    SoftwareProvider,
    check_measurement,
    report_data_for,
)
from databright.compute.protocol import Envelope, attestation_digest, pack_parts, seal, unpack_parts
from databright.compute.replication import TRACE_EVERY, run_unit_traced, trace_of, trace_steps
from databright.compute.units import UnitPayload, local_numeric_class, run_unit
from databright.errors import DataBrightError, InvalidArgument, NotFound, NotPermitted
from databright.ml.checkpoint import (
    OPTIMIZER_PREFIX,
    load_training_checkpoint,
    save_training_checkpoint,
)

__all__ = [
    "BitFlipWorker",
    "LateCheatWorker",
    "LazyWorker",
    "ScaledUpdateWorker",
    "StaleCheckpointWorker",
    "Transport",
    "Worker",
    "check_coordinator",
    "verify_coordinator",
]

Transport = Callable[[str, Envelope, bytes], bytes]


def _default_providers() -> dict[str, AttestationProvider]:
    return {SoftwareProvider.name: SoftwareProvider(), DcapProvider.name: DcapProvider()}


def verify_coordinator(
    answer: Mapping[str, object],
    challenge: bytes,
    *,
    allow_insecure: bool = False,
    providers: Mapping[str, AttestationProvider] | None = None,
    expected: str | None = None,
    measurements: Iterable[str] | None = None,
    now: int | None = None,
) -> Claims:
    """The claims of a coordinator's attestation answer to ``challenge``, or ``NotPermitted``
    in one sentence: unknown provider, evidence that does not verify or binds another key, a
    challenge signed by another key, a coordinator other than ``expected``, a measurement off
    the ``measurements`` allow-list, or evidence no hardware vouches for without
    ``allow_insecure``."""
    coordinator, name = answer.get("coordinator"), answer.get("provider")
    evidence_hex, signature = answer.get("evidence"), answer.get("signature")
    if not (
        isinstance(coordinator, str)
        and is_address(coordinator)
        and isinstance(name, str)
        and isinstance(evidence_hex, str)
        and isinstance(signature, str)
    ):
        raise NotPermitted(
            "the coordinator's attestation answer lacks its address, provider, evidence or "
            "signature; a worker does not work for it."
        )
    coordinator = to_checksum_address(coordinator)
    provider = (providers if providers is not None else _default_providers()).get(name)
    if provider is None:
        raise NotPermitted(
            f"the coordinator attests with provider {name[:40]!r}, which this worker does not "
            "know; a worker does not work for it."
        )
    try:
        evidence = bytes.fromhex(evidence_hex)
        claims = provider.verify(
            evidence, expected_report_data=report_data_for(coordinator), now=now
        )
        signer = Account.recover_message(
            encode_defunct(primitive=attestation_digest(challenge, coordinator)),
            signature=signature,
        )
    except DataBrightError as exc:
        raise NotPermitted(
            f"the attestation of coordinator {coordinator} does not verify ({exc}); a worker "
            "does not work for it."
        ) from None
    except Exception:  # a malformed hex string or signature: several unrelated types
        raise NotPermitted(
            f"the attestation of coordinator {coordinator} is malformed; a worker does not "
            "work for it."
        ) from None
    if to_checksum_address(signer) != coordinator:
        raise NotPermitted(
            f"coordinator {coordinator}'s challenge was signed by {signer}, not by the key its "
            "evidence binds; a worker does not work for it."
        )
    if expected is not None and coordinator != to_checksum_address(expected):
        raise NotPermitted(
            f"the coordinator is {coordinator}, not the expected {expected}; a worker does not "
            "work for it."
        )
    if measurements is not None:
        try:
            check_measurement(claims, measurements)
        except NotPermitted as exc:
            raise NotPermitted(f"coordinator {coordinator}: {exc}") from None
    if not claims.hardware_backed and not allow_insecure:
        raise NotPermitted(
            f"coordinator {coordinator} attests with the {claims.provider} provider, which no "
            "hardware vouches for; a worker works for it only when told to allow an insecure "
            "coordinator (--allow-insecure-coordinator, development only)."
        )
    return claims


def check_coordinator(
    send: Callable[[str, bytes], bytes],
    *,
    allow_insecure: bool = False,
    providers: Mapping[str, AttestationProvider] | None = None,
    expected: str | None = None,
    measurements: Iterable[str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Claims:
    """Ask a coordinator for its attestation with a fresh challenge and verify the answer (see
    :func:`verify_coordinator`, which takes the keyword arguments); ``NotPermitted`` in one
    sentence if it has none or the answer does not pass. ``send(route, body) -> reply`` is the
    asking party's own: it seals the body under the party's key for the route, so each service
    gets the ``attestation`` request signed for the purpose it expects."""
    challenge = secrets.token_bytes(CHALLENGE_SIZE)
    try:
        reply = send("attestation", json.dumps({"challenge": challenge.hex()}).encode())
    except NotFound:
        raise NotPermitted(
            "the coordinator offers no attestation evidence; a worker does not work for an "
            "unattested coordinator."
        ) from None
    try:
        answer = json.loads(reply)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise NotPermitted(
            "the coordinator's attestation answer is not a JSON object; a worker does not "
            "work for it."
        )
    return verify_coordinator(
        answer,
        challenge,
        allow_insecure=allow_insecure,
        providers=providers,
        expected=expected,
        measurements=measurements,
        now=int(clock()),
    )


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
        trace: bool = True,
        ask_next: bool = False,
    ) -> None:
        """``ask_next``: each upload also asks for the next unit (see :meth:`work_once`).
        ``trace``: send the state hashes of the run with each result (one every
        ``TRACE_EVERY`` steps: under 1% of the digits MLP's training), so that a dispute costs
        the coordinator only the steps up to the disputed stretch; without, it recomputes the
        whole unit."""
        self.account = account
        self.transport = transport
        self.numeric_class = numeric_class or local_numeric_class()
        self.owner = owner
        self.ttl_s = ttl_s
        self.clock = clock
        self.trace = trace
        self.units_done = 0
        self.coordinator_claims: Claims | None = None
        self.ask_next = ask_next
        self._handed: UnitPayload | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def send(self, route: str, body: bytes) -> bytes:
        """Seal ``body`` for ``route`` and hand it to the transport."""
        return self.transport(
            route, seal(self.account, body, self.ttl_s, purpose=route, now=self.clock()), body
        )

    def check_coordinator(
        self,
        *,
        allow_insecure: bool = False,
        providers: Mapping[str, AttestationProvider] | None = None,
        expected: str | None = None,
        measurements: Iterable[str] | None = None,
    ) -> Claims:
        """Ask the coordinator for its attestation and verify it (see
        :func:`check_coordinator`); the claims are kept as :attr:`coordinator_claims`."""
        self.coordinator_claims = check_coordinator(
            self.send,
            allow_insecure=allow_insecure,
            providers=providers,
            expected=expected,
            measurements=measurements,
            clock=self.clock,
        )
        return self.coordinator_claims

    def register(self) -> None:
        request = {"numeric_class": self.numeric_class, "owner": self.owner or self.address}
        self.send("register", json.dumps(request).encode())

    def work_once(self, *, ask_next: bool | None = None) -> bool:
        """Compute one unit and upload the result; False when there was no work. The unit is
        the one the last upload was answered with, else one fetched with ``next``. With
        ``ask_next`` (default: :attr:`ask_next`) the upload also asks for the next unit, which
        the coordinator then holds for this worker until its deadline: a worker about to stop
        leaves it off."""
        payload, self._handed = self._handed, None
        if payload is None:
            reply = self.send("next", b"{}")
            if not reply:
                return False
            payload = UnitPayload.from_body(reply)
        meta: dict[str, object] = {
            "unit_id": payload.unit.unit_id,
            "input_hash": self.claimed_input(payload),
        }
        asking = self.ask_next if ask_next is None else ask_next
        if asking:
            meta["next"] = True
        if self.trace:
            checkpoint, trace = self.compute_traced(payload)
            parts = {"checkpoint": checkpoint, "trace": trace}
        else:
            parts = {"checkpoint": self.compute(payload)}
        reply = self.send("result", pack_parts(meta, parts))
        self.units_done += 1
        if asking:
            handed = unpack_parts(reply)[1].get("unit")
            self._handed = None if handed is None else UnitPayload.from_body(handed)
        return True

    def compute_traced(self, payload: UnitPayload) -> tuple[bytes, bytes]:
        """The output and the trace the result commits to (a state hash after every
        ``TRACE_EVERY``-th step and the last). An honest worker traces its run; a cheater that
        only overrides :meth:`compute` claims its output's state at every entry (it has no
        honest run to show)."""
        u = payload.unit
        if type(self).compute is Worker.compute:
            checkpoint, trace = run_unit_traced(
                payload.spec, payload.checkpoint, payload.x, payload.y, u.steps, u.seed,
                every=TRACE_EVERY,
            )  # fmt: skip
            if checkpoint is not None:
                return checkpoint, b"".join(trace)
        checkpoint = self.compute(payload)
        return checkpoint, trace_of(checkpoint, payload.spec) * len(trace_steps(u.steps))

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


class LateCheatWorker(Worker):
    """Cheat: computes honestly for ``start_step`` steps, then nudges the weights after every
    later step, and commits to what it did (an honest-looking trace up to ``start_step``):
    the cheat bisection must pin to its first step."""

    def __init__(self, *args: object, start_step: int = 1, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if start_step < 0:
            raise InvalidArgument(f"start_step must not be negative, got {start_step!r}.")
        self.start_step = start_step

    def compute_traced(self, payload: UnitPayload) -> tuple[bytes, bytes]:
        def nudge(step: int, module: Any, optimizer: Any) -> None:
            if step >= self.start_step:
                for p in module.parameters():
                    p.mul_(1.001)

        u = payload.unit
        checkpoint, trace = run_unit_traced(
            payload.spec, payload.checkpoint, payload.x, payload.y, u.steps, u.seed,
            after_step=nudge, every=TRACE_EVERY,
        )  # fmt: skip
        if checkpoint is None:
            raise InvalidArgument("a whole run always has an output")
        return checkpoint, b"".join(trace)


class LazyWorker(Worker):
    """Cheat: returns the input checkpoint without training."""

    def compute(self, payload: UnitPayload) -> bytes:
        return payload.checkpoint


class BitFlipWorker(Worker):
    """Cheat: computes honestly, then flips one bit of the last weight (still valid weights,
    and the optimizer state untouched)."""

    def compute(self, payload: UnitPayload) -> bytes:
        honest = bytearray(super().compute(payload))
        # The weight tensor stored last: in a plain checkpoint the file's last tensor; in a
        # training checkpoint the optimizer's tensors may follow it.
        (size,) = struct.unpack("<Q", honest[:8])
        header = json.loads(honest[8 : 8 + size])
        end = max(
            int(entry["data_offsets"][1])
            for name, entry in header.items()
            if name != "__metadata__" and not name.startswith(OPTIMIZER_PREFIX)
        )
        # low mantissa bits of the last float32: a tiny, plausible change
        honest[8 + size + end - 2] ^= 0x01
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

        honest, state, kind = load_training_checkpoint(super().compute(payload), payload.spec)
        start, _, _ = load_training_checkpoint(payload.checkpoint, payload.spec)
        with torch.no_grad():
            for (_, p), (_, p0) in zip(
                honest.state_dict().items(), start.state_dict().items(), strict=True
            ):
                if p.is_floating_point():
                    p.copy_(p0 + self.factor * (p - p0))
        return save_training_checkpoint(
            honest, state, kind or payload.spec.optimizer.type, {"format": "pt"}, spec=payload.spec
        )


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
