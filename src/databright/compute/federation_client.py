"""A federated client: a data owner's side of :mod:`databright.compute.federation`.

The client keeps its examples (an ``.npz`` of ``x`` and ``y``, read without pickle) and only
ever sends updates. First it checks the coordinator's attestation
(:meth:`FederationClient.check_coordinator`: a fresh challenge on the ``attestation`` route,
the answer verified by :func:`databright.compute.worker.check_coordinator` as a compute worker
verifies its coordinator; a software attestation only when told to allow an insecure
coordinator). Then, for each round, it asks the coordinator for the global weights, trains from
them for the round's local epochs with the spec's own optimiser and batch size
(:func:`databright.compute.federated.local_update`, the simulation's loop) and posts the signed
difference. Every request is sealed with the client's key, so the coordinator knows the update
is this address's and no one else's.

``attack`` makes it a Byzantine client, for demos and tests of robust aggregation only: label
flipping, Gaussian noise, sign flipping or a scaled update, as in the simulation
(:func:`~databright.compute.federated.attacked_update`; ALIE needs every client's update and
is not a single client's attack).

:func:`federation_transport` speaks HTTP to ``databright federation serve``
(:mod:`databright.server.federation`): the envelope in headers, the body raw, and a refusal
back as the error the coordinator raised, with its sentence (as
:func:`databright.compute.transport.http_transport` does for the compute protocol).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import requests
from numpy.typing import ArrayLike, NDArray

from databright.compute.aggregation import flatten
from databright.compute.attestation import AttestationProvider, Claims
from databright.compute.federated import Attack, Client, attacked_update, client_tensors
from databright.compute.federated import local_update as train_locally
from databright.compute.federation import (
    RoundOffer,
    UpdateReceipt,
    purpose_of,
    update_body,
)
from databright.compute.protocol import seal, unpack_arrays
from databright.compute.transport import http_transport
from databright.compute.worker import Transport, check_coordinator
from databright.errors import InvalidArgument, NodeUnreachable, NotPermitted
from databright.ml.spec import ModelSpec
from databright.ml.train import as_tensors, pinned

if TYPE_CHECKING:
    import torch
    from eth_account.signers.local import LocalAccount

__all__ = ["FEDERATION_PREFIX", "FederationClient", "federation_transport", "load_npz"]

FEDERATION_PREFIX: Final = "/federation/v1"


_ATTEMPTS: Final = 3  # a message sent at most this often when the connection fails


def load_npz(path: Path) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """A client's examples and labels from an ``.npz`` with arrays ``x`` and ``y`` (never
    unpickled)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return np.asarray(npz["x"], np.float32), np.asarray(npz["y"], np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise InvalidArgument(
            f"cannot read x and y from {path} ({type(exc).__name__}); give an .npz with arrays "
            "x and y."
        ) from None


def federation_transport(
    base_url: str, timeout: float = 60.0, *, session: requests.Session | None = None
) -> Transport:
    """A transport to the federation coordinator at ``base_url``."""
    return http_transport(
        base_url,
        timeout,
        session=session,
        prefix=FEDERATION_PREFIX,
        serves="`databright federation serve`",
    )


class FederationClient:
    """One data owner taking part in a federation; see the module docstring."""

    def __init__(
        self,
        account: LocalAccount,
        transport: Transport,
        x: ArrayLike,
        y: ArrayLike,
        *,
        attack: Attack | None = None,
        seed: int = 0,
        ttl_s: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``ttl_s`` is how long each signed message stays valid (at most MAX_TTL_S);
        ``clock`` is the time messages are sealed and evidence is verified at."""
        if attack is not None and attack.kind == "alie":
            # refused here, before any round is fetched, in the same words as the simulation's
            attacked_update(attack, np.zeros(1, np.float32), np.random.default_rng(0))
        self.account = account
        self.transport = transport
        self.attack = attack
        self.seed = seed
        self.ttl_s = ttl_s
        self.clock = clock
        self.coordinator_claims: Claims | None = None
        self._x = np.asarray(x)
        self._y = np.asarray(y)
        self._rng = np.random.default_rng(seed)
        self._spec_json: str | None = None
        self._data: tuple[torch.Tensor, torch.Tensor] | None = None
        self._module: torch.nn.Module | None = None
        self.rounds_sent = 0
        self.last_receipt: UpdateReceipt | None = None

    @property
    def address(self) -> str:
        return str(self.account.address)

    def _ask(self, route: str, body: bytes) -> bytes:
        # Asked again, sealed afresh, when the connection fails: a client that trained for a
        # while finds the kept-alive connection closed by the server (seen under load: "does
        # not answer" on the update after the first round's offer). Every route may repeat:
        # ``attestation`` and ``round`` only read, and the same update again changes nothing.
        for attempt in range(_ATTEMPTS):
            envelope = seal(
                self.account, body, self.ttl_s, purpose=purpose_of(route), now=self.clock()
            )
            try:
                return self.transport(route, envelope, body)
            except NodeUnreachable:
                if attempt == _ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")  # the loop returns or raises

    def check_coordinator(
        self,
        *,
        allow_insecure: bool = False,
        providers: Mapping[str, AttestationProvider] | None = None,
        expected: str | None = None,
        measurements: Iterable[str] | None = None,
    ) -> Claims:
        """Ask the coordinator for its attestation and verify it, before asking for any round
        (:func:`~databright.compute.worker.check_coordinator`); the claims are kept as
        :attr:`coordinator_claims`."""
        self.coordinator_claims = check_coordinator(
            self._ask,
            allow_insecure=allow_insecure,
            providers=providers,
            expected=expected,
            measurements=measurements,
            clock=self.clock,
        )
        return self.coordinator_claims

    def fetch(self) -> RoundOffer:
        """The current round, as the coordinator offers it to this client."""
        return RoundOffer.from_body(self._ask("round", b""))

    def _prepare(self, offer: RoundOffer) -> tuple[ModelSpec, torch.nn.Module]:
        """The spec's network and this client's tensors, checked against the spec once."""
        spec = ModelSpec.from_json(offer.spec_json)
        if self._spec_json != offer.spec_json or self._module is None:
            xt, yt = as_tensors(spec, self._x, self._y, "local")
            self._data = client_tensors(spec, Client(xt.numpy(), yt.numpy(), self.attack))
            self._module = spec.build()
            self._spec_json = offer.spec_json
        return spec, self._module

    def update_for(self, offer: RoundOffer) -> NDArray[np.float32]:
        """What this client sends for ``offer``'s round: its local weights minus the global
        ones (or its attack's version of that)."""
        import torch

        spec, module = self._prepare(offer)
        assert self._data is not None
        global_state = {k: torch.from_numpy(v) for k, v in unpack_arrays(offer.weights).items()}
        try:
            module.load_state_dict(global_state)
        except RuntimeError:
            raise InvalidArgument(
                "the coordinator's weights do not fit the model of its own spec; it is "
                "misconfigured."
            ) from None
        weights, layout = flatten(module.state_dict())
        if self.attack is not None and self.attack.kind == "gaussian":
            honest = np.zeros_like(weights)  # noise whatever it learns: no need to train
        else:
            with pinned(1, seed=self.seed + offer.round):
                generator = torch.Generator().manual_seed(self.seed + offer.round)
                honest = train_locally(
                    spec, module, weights, layout, *self._data, offer.local_epochs, generator
                )
        return attacked_update(self.attack, honest, self._rng)

    def send(self, round_number: int, delta: NDArray[np.float32]) -> UpdateReceipt:
        """Post this client's signed update for ``round_number``."""
        receipt = UpdateReceipt.from_body(self._ask("update", update_body(round_number, delta)))
        self.rounds_sent += 1
        self.last_receipt = receipt
        return receipt

    def step(self) -> RoundOffer:
        """Ask for the round; train and send when this client has not sent for it yet."""
        offer = self.fetch()
        if not offer.done and not offer.submitted:
            try:
                self.send(offer.round, self.update_for(offer))
            except NotPermitted:
                # The round's deadline may have closed it while this client trained: then it
                # simply takes part in the next one. Any other refusal stands.
                if self.fetch().round == offer.round:
                    raise
        return offer

    def run(
        self,
        *,
        poll_s: float = 0.2,
        timeout_s: float | None = None,
        on_receipt: Callable[[UpdateReceipt], object] | None = None,
    ) -> RoundOffer:
        """Take part until the federation is done; the final offer (its weights are the final
        global model). ``timeout_s`` bounds the whole run; ``on_receipt`` hears of every update
        the coordinator took."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            sent = self.rounds_sent
            offer = self.step()
            if on_receipt is not None and self.rounds_sent > sent and self.last_receipt:
                on_receipt(self.last_receipt)
            if offer.done:
                return offer
            if deadline is not None and time.monotonic() > deadline:
                raise NodeUnreachable(
                    f"the federation is still at round {offer.round} of {offer.rounds} after "
                    f"{timeout_s:g} s; the other clients may be gone."
                )
            if offer.submitted:
                time.sleep(poll_s)  # the others have not all sent yet
