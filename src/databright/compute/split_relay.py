"""The split-training relay over the signed pull protocol: stage workers pull the coordinator's
messages and upload their replies, each sealed with the worker's key.

:class:`~databright.compute.splitting.SplitTraining` calls a stage through a *link*
``(route, body) -> reply``. Workers are strangers behind NATs that only ever make requests
(BOINC's model, as in :mod:`databright.compute.coordinator`), so the link cannot call them: a
:class:`SplitRelay` gives each stage a mailbox instead. The coordinator's link puts a message in
the worker's mailbox and waits for its reply; the worker pulls with a signed ``split-next``
(a long poll) and answers with a signed ``split-reply`` naming the message's sequence number.
Every pull and every reply is checked by :func:`~databright.compute.protocol.open_envelope`
(signature, expiry, unused nonce), so a reply is bound to the worker the message was for: a
reply from anyone else, a second reply and a replayed envelope are all refused.

Attestation: the relay is handed the coordinator's
:class:`~databright.compute.coordinator.CoordinatorAttestation` (its signing key and the evidence
that binds it). Before it pulls anything, a worker asks for it with a signed ``attestation``
request holding a fresh challenge (JSON ``{"challenge": 64 hex digits}``) and checks the answer
with :meth:`RelayedStageWorker.check_coordinator`, as a compute worker checks its coordinator
(:func:`databright.compute.worker.check_coordinator`): a software attestation passes only when
the worker was told to allow an insecure coordinator. A relay without one answers ``NotFound``,
and workers refuse it. Any signed sender may ask (the answer is public), so a worker can check
the coordinator before a job names it.

:meth:`SplitRelay.handle` has the signature of :meth:`Coordinator.handle`, so a
:class:`RelayedStageWorker` runs in-process against it in tests and over
:func:`databright.compute.transport.http_transport` (``POST /compute/v1/split-next``, ...)
against a server that routes those paths to it (:mod:`databright.server.split_relay`). A worker's own refusal (a ``load`` of a
second stage, a malformed message) travels back as text and is raised in the coordinator as
the same error class.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from eth_account.signers.local import LocalAccount

from databright.compute.attestation import AttestationProvider, Claims, read_challenge
from databright.compute.protocol import (
    Envelope,
    MemoryNonceStore,
    NonceStore,
    open_envelope,
    pack_parts,
    seal,
    unpack_parts,
)
from databright.compute.splitting import StageLink, StageWorker
from databright.compute.worker import Transport, check_coordinator
from databright.errors import (
    DataBrightError,
    InvalidArgument,
    InvalidModelSpec,
    NodeUnreachable,
    NotFound,
    NotPermitted,
)

if TYPE_CHECKING:
    from databright.compute.coordinator import CoordinatorAttestation

__all__ = ["RELAY_ROUTES", "RelayedStageWorker", "SplitRelay"]

RELAY_ROUTES: Final = ("attestation", "split-next", "split-reply")
"""What a stage worker may send; each is also the purpose its envelope is signed for."""

# A worker's refusal comes back by name and is raised as this class (anything else: the root).
_ERRORS: Final[dict[str, type[DataBrightError]]] = {
    cls.__name__: cls for cls in (InvalidArgument, InvalidModelSpec, NotFound, NotPermitted)
}


@dataclass
class _Mailbox:
    pending: deque[tuple[int, str, bytes]] = field(default_factory=deque)
    outstanding: set[int] = field(default_factory=set)
    replies: dict[int, tuple[str | None, str, bytes]] = field(default_factory=dict)


class SplitRelay:
    """Mailboxes between a split job's coordinator and its stage workers; see the module
    docstring. ``timeout_s`` bounds how long the coordinator waits for a reply, ``poll_s`` how
    long a ``split-next`` waits for a message; ``attestation`` is what workers are shown before
    they work (None: workers refuse this relay)."""

    def __init__(
        self,
        *,
        nonces: NonceStore | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 60.0,
        poll_s: float = 1.0,
        attestation: CoordinatorAttestation | None = None,
    ) -> None:
        if timeout_s <= 0 or poll_s < 0:
            raise InvalidArgument(
                f"timeout_s must be positive and poll_s not negative, got {timeout_s!r} and "
                f"{poll_s!r}."
            )
        self.nonces = nonces or MemoryNonceStore()
        self.clock = clock
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.attestation = attestation
        self._boxes: dict[str, _Mailbox] = {}
        self._seq = 0
        self._changed = threading.Condition()

    def link_for(self, worker: str) -> StageLink:
        """The coordinator's link to ``worker``: hand it to :meth:`SplitTraining.join`."""
        with self._changed:
            box = self._boxes.setdefault(worker, _Mailbox())

        def link(route: str, body: bytes) -> bytes:
            with self._changed:
                self._seq += 1
                seq = self._seq
                box.pending.append((seq, route, body))
                self._changed.notify_all()
                answered = self._changed.wait_for(lambda: seq in box.replies, self.timeout_s)
                if not answered:
                    if seq in box.outstanding:
                        box.outstanding.discard(seq)  # a late reply is refused, not kept
                    else:
                        box.pending = deque(m for m in box.pending if m[0] != seq)
                    raise NodeUnreachable(
                        f"stage worker {worker} did not answer its {route} message within "
                        f"{self.timeout_s:g} s; give its stage to another worker."
                    )
                kind, text, reply = box.replies.pop(seq)
            if kind is not None:
                raise _ERRORS.get(kind, DataBrightError)(text)
            return reply

        return link

    def handle(self, route: str, envelope: Envelope, body: bytes) -> bytes:
        """Answer one signed message from a stage worker."""
        if route not in RELAY_ROUTES:
            raise NotFound(f"there is no route {route!r}; use one of {', '.join(RELAY_ROUTES)}.")
        sender = open_envelope(envelope, body, self.clock(), self.nonces, purpose=route)
        if route == "attestation":
            # any signed sender, mailbox or not: the answer is public, and a worker checks the
            # coordinator before a job names it
            return json.dumps(self.attest(body)).encode()
        with self._changed:
            box = self._boxes.get(sender)
            if box is None:
                raise NotPermitted(
                    f"{sender} holds no stage of a split job; only a job's stage workers pull "
                    "its messages."
                )
            if route == "split-next":
                if not self._changed.wait_for(lambda: bool(box.pending), self.poll_s):
                    return b""
                seq, asked, message = box.pending.popleft()
                box.outstanding.add(seq)
                return pack_parts({"seq": seq, "route": asked}, {"body": message})
            meta, parts = unpack_parts(body)
            try:
                seq = int(meta["seq"])
                kind = meta.get("error")
                text = str(meta.get("detail", ""))
                reply = parts["body"]
            except (KeyError, TypeError, ValueError):
                raise InvalidArgument(
                    "a split reply holds seq, optionally error and detail, and a body part; "
                    "send that."
                ) from None
            if seq not in box.outstanding:
                raise NotPermitted(
                    f"message {seq} awaits no reply from {sender} (it was for another worker, "
                    "answered already, or timed out); a worker answers its own messages once."
                )
            box.outstanding.discard(seq)
            box.replies[seq] = (None if kind is None else str(kind), text, reply)
            self._changed.notify_all()
            return json.dumps({"accepted": True}).encode()

    def attest(self, body: bytes) -> dict[str, str]:
        """Answer a worker's challenge (``{"challenge": 64 hex digits}``) with the
        coordinator's evidence and its signature over the challenge."""
        if self.attestation is None:
            raise NotFound(
                "this split relay has no attestation evidence; stage workers do not work for "
                "an unattested coordinator."
            )
        return self.attestation.answer(read_challenge(body), self.clock())


class RelayedStageWorker:
    """A :class:`StageWorker` that pulls its messages through a transport (in-process:
    :meth:`SplitRelay.handle`; over HTTP: ``http_transport``) and signs everything it sends."""

    def __init__(
        self,
        account: LocalAccount,
        transport: Transport,
        *,
        stage_worker: StageWorker | None = None,
        ttl_s: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.transport = transport
        self.stage = stage_worker or StageWorker(account.address)
        self.ttl_s = ttl_s
        self.clock = clock
        self.coordinator_claims: Claims | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def send(self, route: str, body: bytes) -> bytes:
        envelope = seal(self.account, body, self.ttl_s, purpose=route, now=self.clock())
        return self.transport(route, envelope, body)

    def check_coordinator(
        self,
        *,
        allow_insecure: bool = False,
        providers: Mapping[str, AttestationProvider] | None = None,
        expected: str | None = None,
        measurements: Iterable[str] | None = None,
    ) -> Claims:
        """Ask the relay for the coordinator's attestation and verify it, before pulling any
        message (:func:`~databright.compute.worker.check_coordinator`); the claims are kept as
        :attr:`coordinator_claims`."""
        self.coordinator_claims = check_coordinator(
            self.send,
            allow_insecure=allow_insecure,
            providers=providers,
            expected=expected,
            measurements=measurements,
            clock=self.clock,
        )
        return self.coordinator_claims

    def work_once(self) -> bool:
        """Pull one message, answer it (a refusal too); False when none came."""
        message = self.send("split-next", b"{}")
        if not message:
            return False
        meta, parts = unpack_parts(message)
        reply_meta: dict[str, object] = {"seq": int(meta["seq"])}
        try:
            reply = self.stage.handle(str(meta["route"]), parts["body"])
        except DataBrightError as exc:
            reply = b""
            reply_meta.update(error=type(exc).__name__, detail=str(exc))
        self.send("split-reply", pack_parts(reply_meta, {"body": reply}))
        return True

    def run(self, stop: threading.Event) -> None:
        """Answer messages until ``stop`` is set."""
        while not stop.is_set():
            self.work_once()
