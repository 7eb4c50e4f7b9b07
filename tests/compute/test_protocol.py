"""Signed envelopes: forged senders, changed bodies, replays and expired messages fail."""

from __future__ import annotations

import numpy as np
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.compute.protocol import (
    MAX_TTL_S,
    Envelope,
    MemoryNonceStore,
    attestation_digest,
    open_envelope,
    pack_arrays,
    pack_parts,
    seal,
    unpack_arrays,
    unpack_parts,
)
from databright.errors import DuplicateSubmission, InvalidArgument, NotPermitted

ALICE = Account.from_key("0x" + "11" * 32)
MALLORY = Account.from_key("0x" + "22" * 32)
NOW = 1_700_000_000.0


def test_sealed_body_opens_once() -> None:
    nonces = MemoryNonceStore()
    env = seal(ALICE, b"result", 60, purpose="result", now=NOW)
    assert open_envelope(env, b"result", NOW, nonces, purpose="result") == ALICE.address
    with pytest.raises(DuplicateSubmission, match="replay"):
        open_envelope(env, b"result", NOW + 1, nonces, purpose="result")


def test_headers_round_trip() -> None:
    env = seal(ALICE, b"x", 60, purpose="next", now=NOW)
    headers = {k.lower(): v for k, v in env.to_headers().items()}
    assert Envelope.from_headers(headers) == env
    del headers["x-databright-nonce"]
    with pytest.raises(InvalidArgument, match="Nonce"):
        Envelope.from_headers(headers)


def test_forged_sender_is_refused() -> None:
    env = seal(MALLORY, b"result", 60, purpose="result", now=NOW)
    forged = Envelope(ALICE.address, env.nonce, env.expires_at, env.signature)
    with pytest.raises(NotPermitted, match="not 0x"):
        open_envelope(forged, b"result", NOW, MemoryNonceStore(), purpose="result")


@pytest.mark.parametrize("change", ["body", "purpose", "expiry"])
def test_changed_message_is_refused(change: str) -> None:
    env = seal(ALICE, b"result", 60, purpose="result", now=NOW)
    body, purpose = b"result", "result"
    if change == "body":
        body = b"resulT"
    elif change == "purpose":
        purpose = "next"
    else:
        env = Envelope(env.sender, env.nonce, env.expires_at + 1, env.signature)
    with pytest.raises(NotPermitted):
        open_envelope(env, body, NOW, MemoryNonceStore(), purpose=purpose)


def test_expired_and_overlong_envelopes_are_refused() -> None:
    env = seal(ALICE, b"b", 10, purpose="next", now=NOW)
    with pytest.raises(NotPermitted, match="expired"):
        open_envelope(env, b"b", NOW + 11, MemoryNonceStore(), purpose="next")
    late = seal(ALICE, b"b", MAX_TTL_S, purpose="next", now=NOW + 3600)
    with pytest.raises(InvalidArgument, match="longer"):
        open_envelope(late, b"b", NOW, MemoryNonceStore(), purpose="next")
    with pytest.raises(InvalidArgument):
        seal(ALICE, b"b", MAX_TTL_S + 1, purpose="next")


def test_forger_cannot_burn_nonces() -> None:
    nonces = MemoryNonceStore()
    env = seal(ALICE, b"b", 60, purpose="next", now=NOW)
    with pytest.raises(NotPermitted):
        open_envelope(env, b"other", NOW, nonces, purpose="next")
    assert open_envelope(env, b"b", NOW, nonces, purpose="next") == ALICE.address


def test_malformed_envelopes() -> None:
    good = seal(ALICE, b"b", 60, purpose="next", now=NOW).to_dict()
    for key, value in [
        ("sender", "0x12"),
        ("nonce", "zz"),
        ("expires_at", "soon"),
        ("signature", "0x00"),
    ]:
        with pytest.raises(InvalidArgument):
            Envelope.from_dict({**good, key: value})
    bad_sig = Envelope(ALICE.address, good["nonce"], good["expires_at"], "0x" + "00" * 65)
    with pytest.raises(NotPermitted, match="not a valid"):
        open_envelope(bad_sig, b"b", NOW, MemoryNonceStore(), purpose="next")


@settings(max_examples=30, deadline=None)
@given(
    meta=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    parts=st.dictionaries(st.text(min_size=1, max_size=5), st.binary(max_size=40), max_size=3),
)
def test_parts_round_trip(meta: dict[str, int], parts: dict[str, bytes]) -> None:
    body = pack_parts(meta, parts)
    assert unpack_parts(body) == (meta, parts)
    with pytest.raises(InvalidArgument):
        unpack_parts(body + b"x")


def test_arrays_travel_as_safetensors() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    blob = pack_arrays({"x": x})
    assert np.array_equal(unpack_arrays(blob)["x"], x)
    with pytest.raises(InvalidArgument, match="safetensors"):
        unpack_arrays(b"\x80\x04pickle")


def test_attestation_digest_binds_the_challenge_and_the_coordinator() -> None:
    a, b = Account.from_key("0x" + "11" * 32), Account.from_key("0x" + "12" * 32)
    challenge = bytes(range(32))
    d = attestation_digest(challenge, a.address)
    assert len(d) == 32 and d == attestation_digest(challenge, a.address.lower())
    assert d != attestation_digest(challenge, b.address)
    assert d != attestation_digest(bytes(32), a.address)
    with pytest.raises(InvalidArgument, match="32 random bytes"):
        attestation_digest(b"short", a.address)
