"""Content addresses: CIDv1, raw codec, sha2-256, base32 text.

Every blob DataBright stores is addressed by ``CIDv1(raw, sha2-256(bytes))``. Fixing the codec
and the hash function means the 32-byte sha2-256 digest alone identifies a blob, which is what
the contracts keep (a ``bytes32``): :func:`cid_to_digest` and :func:`digest_to_cid` convert
between the two without loss. The CID text is built and parsed by ``multiformats`` so that it
is the same string any IPFS tool prints for the same bytes (``ipfs add --cid-version 1
--raw-leaves`` on a single-block file).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from multiformats import CID, multihash

from databright.errors import InvalidCID

__all__ = [
    "CID_BASE",
    "CID_CODEC",
    "CID_HASH",
    "cid_for_bytes",
    "cid_to_digest",
    "digest_to_cid",
    "normalize_cid",
]

CID_BASE: Final = "base32"
CID_CODEC: Final = "raw"
CID_HASH: Final = "sha2-256"
_DIGEST_SIZE: Final = 32


def cid_for_bytes(data: bytes | bytearray | memoryview) -> str:
    """The CID of ``data`` (CIDv1, raw, sha2-256, base32), hashed by ``multiformats``."""
    return str(CID(CID_BASE, 1, CID_CODEC, multihash.digest(data, CID_HASH)))


@lru_cache(maxsize=1 << 16)  # multiformats takes ~1 ms a CID; views rebuild the same ones often
def digest_to_cid(digest: bytes) -> str:
    """Rebuild the CID text from the ``bytes32`` digest stored on-chain.

    Also how a blob hashed incrementally (a large file streamed into the store) gets its CID:
    ``hashlib`` computes the sha2-256 digest and ``multiformats`` wraps it in the multihash and
    the CID.
    """
    if not isinstance(digest, bytes | bytearray | memoryview) or len(digest) != _DIGEST_SIZE:
        size = len(digest) if isinstance(digest, bytes | bytearray | memoryview) else "no"
        raise InvalidCID(
            f"a sha2-256 digest has 32 bytes, got {size} bytes; pass the bytes32 value the "
            "contract stored"
        )
    return str(CID(CID_BASE, 1, CID_CODEC, (CID_HASH, bytes(digest))))


def _parse(cid: str | CID) -> CID:
    if isinstance(cid, CID):
        parsed = cid
    elif isinstance(cid, str):
        try:
            parsed = CID.decode(cid.strip())
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCID(
                f"{cid!r} is not a CID ({exc}); expected a CIDv1 string such as 'bafkrei...'"
            ) from exc
    else:
        raise InvalidCID(f"expected a CID string, got {type(cid).__name__}")
    if parsed.version != 1 or parsed.codec.name != CID_CODEC or parsed.hashfun.name != CID_HASH:
        raise InvalidCID(
            f"{parsed} is a CIDv{parsed.version} with codec {parsed.codec.name} and hash "
            f"{parsed.hashfun.name}; DataBright addresses blobs by CIDv1, raw codec, sha2-256"
        )
    return parsed


def normalize_cid(cid: str | CID) -> str:
    """Check that ``cid`` is a DataBright address and return its canonical base32 text.

    The same CID may be written in another multibase (``zb2rh...`` in base58btc); the store and
    the manifests always use the base32 form so that equal addresses are equal strings.
    """
    return str(_parse(cid).set(base=CID_BASE))


def cid_to_digest(cid: str | CID) -> bytes:
    """The 32-byte sha2-256 digest of a CID, the ``bytes32`` the contracts store."""
    return bytes(_parse(cid).raw_digest)
