"""The signed pull protocol between the coordinator and untrusted workers (BOINC's model).

Workers are strangers known only by an Ethereum address, so every request and every result is
*sealed*: the worker's secp256k1 key signs (EIP-191 ``personal_sign``) the keccak of a domain tag,
the purpose of the message (``next``, ``result``, ...), the keccak of the body, a random nonce and
an expiry. That binds a result to its sender (a forged ``sender`` does not recover), to its bytes
(a changed body does not verify), to its route (a signed poll is not a signed upload) and to one
moment (an expired envelope is refused and a nonce is accepted once, so a captured result cannot
be replayed). Expiry is capped, so the nonce store only has to remember nonces for that long.

Bodies are bytes: tensors travel as safetensors (never pickle); a message of several parts is
framed by :func:`pack_parts` (a length-prefixed JSON header and raw parts, parsed without running
any code).
"""

from __future__ import annotations

import json
import secrets
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, keccak, to_checksum_address
from numpy.typing import NDArray

from databright.errors import DuplicateSubmission, InvalidArgument, NotPermitted

__all__ = [
    "DOMAIN_TAG",
    "HEADER_EXPIRES",
    "HEADER_NONCE",
    "HEADER_SENDER",
    "HEADER_SIGNATURE",
    "MAX_TTL_S",
    "Envelope",
    "MemoryNonceStore",
    "NonceStore",
    "attestation_digest",
    "body_hash",
    "open_envelope",
    "pack_arrays",
    "pack_parts",
    "seal",
    "signing_digest",
    "spend_nonce",
    "unpack_arrays",
    "unpack_parts",
    "verify_envelope",
]

DOMAIN_TAG: Final = b"databright.compute.v1"
"""Keeps a compute signature from being valid as any other DataBright signature."""

MAX_TTL_S: Final = 600
"""The longest an envelope may live; nonces are remembered this long and no longer."""

HEADER_SENDER: Final = "X-DataBright-Sender"
HEADER_NONCE: Final = "X-DataBright-Nonce"
HEADER_EXPIRES: Final = "X-DataBright-Expires"
HEADER_SIGNATURE: Final = "X-DataBright-Signature"

_MAX_HEADER: Final = 1_000_000


def body_hash(body: bytes) -> bytes:
    """keccak-256 of the body (what the signature covers instead of the body itself)."""
    return bytes(keccak(bytes(body)))


def signing_digest(purpose: str, digest_of_body: bytes, nonce: str, expires_at: int) -> bytes:
    """The 32 bytes a worker signs: keccak(tag, purpose, body hash, nonce, expiry)."""
    return bytes(
        keccak(
            DOMAIN_TAG
            + b"\x00"
            + purpose.encode("utf-8")
            + b"\x00"
            + digest_of_body
            + bytes.fromhex(nonce)
            + struct.pack(">Q", expires_at)
        )
    )


def attestation_digest(challenge: bytes, coordinator: str) -> bytes:
    """The 32 bytes a coordinator signs to prove, to a worker that sent ``challenge``, that it
    holds the key its attestation evidence binds (so evidence copied from another coordinator
    does not pass: the copier cannot sign for that key)."""
    if not isinstance(challenge, bytes | bytearray) or len(challenge) != 32:
        raise InvalidArgument("an attestation challenge is 32 random bytes; send a fresh one.")
    return bytes(
        keccak(
            DOMAIN_TAG
            + b"\x00attestation\x00"
            + bytes(challenge)
            + bytes.fromhex(to_checksum_address(coordinator)[2:])
        )
    )


@dataclass(frozen=True)
class Envelope:
    """Who sent a body, and the signature that proves it (everything but the body itself)."""

    sender: str
    nonce: str
    expires_at: int
    signature: str

    def to_headers(self) -> dict[str, str]:
        return {
            HEADER_SENDER: self.sender,
            HEADER_NONCE: self.nonce,
            HEADER_EXPIRES: str(self.expires_at),
            HEADER_SIGNATURE: self.signature,
        }

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Envelope:
        """Read the four headers (names in any case); one sentence names a missing or bad one."""
        lower = {k.lower(): v for k, v in headers.items()}
        values = []
        for name in (HEADER_SENDER, HEADER_NONCE, HEADER_EXPIRES, HEADER_SIGNATURE):
            value = lower.get(name.lower())
            if value is None:
                raise InvalidArgument(f"the request lacks the {name} header; sign it with seal().")
            values.append(value)
        return cls.from_dict(
            dict(zip(("sender", "nonce", "expires_at", "signature"), values, strict=True))
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "nonce": self.nonce,
            "expires_at": self.expires_at,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Envelope:
        """Check the fields' forms (not the signature: that is :func:`open_envelope`'s job)."""
        sender = obj.get("sender")
        if not isinstance(sender, str) or not is_address(sender):
            raise InvalidArgument(f"the envelope's sender {sender!r} is not an address; send one.")
        nonce = obj.get("nonce")
        if not isinstance(nonce, str) or not _is_hex(nonce, 32):
            raise InvalidArgument("the envelope's nonce must be 32 hex digits; use seal().")
        try:
            expires_at = int(obj.get("expires_at"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidArgument(
                "the envelope's expiry is not a whole number of seconds; use seal()."
            ) from None
        if not 0 <= expires_at < 2**63:
            raise InvalidArgument("the envelope's expiry is out of range; use seal().")
        signature = obj.get("signature")
        if not isinstance(signature, str) or not _is_hex(signature.removeprefix("0x"), 130):
            raise InvalidArgument("the envelope's signature must be 65 bytes in hex; use seal().")
        return cls(to_checksum_address(sender), nonce.lower(), expires_at, signature)


def _is_hex(text: str, length: int) -> bool:
    if len(text) != length:
        return False
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def seal(
    account: LocalAccount,
    body: bytes,
    ttl_s: int = 60,
    *,
    purpose: str,
    now: float | None = None,
) -> Envelope:
    """Sign ``body`` for ``purpose`` as ``account``, valid for ``ttl_s`` seconds."""
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise InvalidArgument(f"ttl_s must be 1..{MAX_TTL_S} seconds, got {ttl_s!r}.")
    nonce = secrets.token_hex(16)
    expires_at = int(time.time() if now is None else now) + int(ttl_s)
    digest = signing_digest(purpose, body_hash(body), nonce, expires_at)
    signed = account.sign_message(encode_defunct(primitive=digest))
    return Envelope(account.address, nonce, expires_at, "0x" + bytes(signed.signature).hex())


class NonceStore(Protocol):
    """Remembers used nonces until their envelope expires."""

    def use_nonce(self, sender: str, nonce: str, expires_at: int, now: float) -> bool:
        """Record the nonce; False when this sender used it before (a replay)."""


class MemoryNonceStore:
    """Nonces in a dict, pruned of expired ones (one process; the SQL state shares them)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def use_nonce(self, sender: str, nonce: str, expires_at: int, now: float) -> bool:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if v >= now}
            key = (sender, nonce)
            if key in self._seen:
                return False
            self._seen[key] = expires_at
            return True


def open_envelope(
    envelope: Envelope,
    body: bytes,
    now: float,
    nonces: NonceStore,
    *,
    purpose: str,
) -> str:
    """The verified sender of ``body``, or an error: expired or too long-lived envelopes and bad
    signatures are refused before the nonce is spent, so a forger cannot burn a worker's nonces."""
    verify_envelope(envelope, body, now, purpose=purpose)
    spend_nonce(envelope, now, nonces)
    return envelope.sender


def verify_envelope(envelope: Envelope, body: bytes, now: float, *, purpose: str) -> str:
    """:func:`open_envelope` without the nonce: the sender whose signature over ``body`` for
    ``purpose`` holds and has not expired. The caller must then :func:`spend_nonce` before it
    acts on the message, or a replay would pass."""
    if envelope.expires_at <= now:
        raise NotPermitted(
            f"the envelope expired {now - envelope.expires_at:.0f} s ago; sign the message again."
        )
    if envelope.expires_at > now + MAX_TTL_S + 5:
        raise InvalidArgument(
            f"the envelope lives longer than {MAX_TTL_S} s; sign it with a shorter expiry."
        )
    digest = signing_digest(purpose, body_hash(body), envelope.nonce, envelope.expires_at)
    try:
        signer = Account.recover_message(
            encode_defunct(primitive=digest), signature=bytes.fromhex(envelope.signature[2:])
        )
    except Exception:  # eth_keys raises several kinds for malformed signatures
        raise NotPermitted(
            "the envelope's signature is not a valid secp256k1 signature; sign with seal()."
        ) from None
    if to_checksum_address(signer) != envelope.sender:
        raise NotPermitted(
            f"the signature is not {envelope.sender}'s (it recovers to another address, or the "
            "body, purpose or expiry changed); sign with the sender's own key."
        )
    return envelope.sender


def spend_nonce(envelope: Envelope, now: float, nonces: NonceStore) -> None:
    """Record the envelope's nonce as used; ``DuplicateSubmission`` when it was (a replay)."""
    if not nonces.use_nonce(envelope.sender, envelope.nonce, envelope.expires_at, now):
        raise DuplicateSubmission(
            f"nonce {envelope.nonce} of {envelope.sender} was used already (a replay); "
            "seal every message afresh."
        )


# --- bodies ------------------------------------------------------------------------------


def pack_parts(meta: Mapping[str, Any], parts: Mapping[str, bytes]) -> bytes:
    """One body from a JSON header and named byte parts (deterministic: sorted keys)."""
    names = sorted(parts)
    header = {"meta": dict(meta), "parts": [[n, len(parts[n])] for n in names]}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + b"".join(bytes(parts[n]) for n in names)


def unpack_parts(body: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The header and parts of a :func:`pack_parts` body; one sentence when it is malformed."""
    bad = "the body is not a framed compute message; build it with pack_parts()."
    if len(body) < 8:
        raise InvalidArgument(bad)
    (size,) = struct.unpack("<Q", body[:8])
    if size > _MAX_HEADER or 8 + size > len(body):
        raise InvalidArgument(bad)
    try:
        header = json.loads(body[8 : 8 + size].decode("utf-8"))
        meta = header["meta"]
        layout = [(str(n), int(k)) for n, k in header["parts"]]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise InvalidArgument(bad) from None
    if not isinstance(meta, dict) or any(k < 0 for _, k in layout):
        raise InvalidArgument(bad)
    if 8 + size + sum(k for _, k in layout) != len(body):
        raise InvalidArgument(bad)
    out: dict[str, bytes] = {}
    offset = 8 + size
    for name, length in layout:
        out[name] = bytes(body[offset : offset + length])
        offset += length
    return meta, out


def pack_arrays(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    """numpy arrays as safetensors bytes."""
    from safetensors.numpy import save

    return bytes(save({k: np.ascontiguousarray(v) for k, v in arrays.items()}))


def unpack_arrays(blob: bytes) -> dict[str, NDArray[Any]]:
    """Arrays from safetensors bytes (a JSON header and raw data: no code runs)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        return dict(load(bytes(blob)))
    except (SafetensorError, ValueError, RuntimeError, TypeError):
        raise InvalidArgument(
            "the arrays are not a safetensors file; send them packed with pack_arrays()."
        ) from None
