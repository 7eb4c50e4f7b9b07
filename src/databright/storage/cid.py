"""Content addresses: CIDv1, sha2-256, base32 text, equal to what IPFS gives the same bytes.

Every blob DataBright stores is addressed by the CID ``ipfs add --cid-version 1`` prints for it
(:mod:`databright.storage.unixfs`, kubo's classic profile): a blob of up to 256 KiB is one raw
block, ``CIDv1(raw, sha2-256(bytes))``; a larger one is a UnixFS DAG whose root is
``CIDv1(dag-pb, sha2-256(root block))``. Both use sha2-256, so the 32-byte digest is what the
contracts keep (a ``bytes32``) and :func:`cid_to_digest` gives it for either codec. The digest
alone does not say which codec it came from: :func:`cids_for_digest` gives both candidates
(raw first) and a reader looks for either; :func:`digest_to_cid` is the raw one, which is every
blob's CID up to 256 KiB (schemas, manifests, reports) and every blob stored before the UnixFS
trees. The CID text is built and parsed by ``multiformats``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from multiformats import CID

from databright.errors import InvalidCID
from databright.storage.unixfs import file_cid

__all__ = [
    "CID_BASE",
    "CID_CODEC",
    "CID_CODECS",
    "CID_HASH",
    "cid_for_bytes",
    "cid_to_digest",
    "cids_for_digest",
    "digest_to_cid",
    "normalize_cid",
]

CID_BASE: Final = "base32"
CID_CODEC: Final = "raw"
"""The codec of a single-block blob (up to 256 KiB) and of :func:`digest_to_cid`."""
CID_CODECS: Final = ("raw", "dag-pb")
"""Every codec a DataBright CID may have: a raw block, or the dag-pb root of a UnixFS file."""
CID_HASH: Final = "sha2-256"
_DIGEST_SIZE: Final = 32


def cid_for_bytes(data: bytes | bytearray | memoryview) -> str:
    """The CID of ``data``, the one ``ipfs add --cid-version 1`` prints (see :mod:`unixfs`)."""
    return file_cid(data)


def _check_digest(digest: bytes) -> bytes:
    if not isinstance(digest, bytes | bytearray | memoryview) or len(digest) != _DIGEST_SIZE:
        size = len(digest) if isinstance(digest, bytes | bytearray | memoryview) else "no"
        raise InvalidCID(
            f"a sha2-256 digest has 32 bytes, got {size} bytes; pass the bytes32 value the "
            "contract stored"
        )
    return bytes(digest)


@lru_cache(maxsize=1 << 16)  # multiformats takes ~1 ms a CID; views rebuild the same ones often
def digest_to_cid(digest: bytes) -> str:
    """The raw CID with the ``bytes32`` digest stored on-chain.

    That is the blob's CID when it is a single block (up to 256 KiB); a larger blob's CID is the
    dag-pb one, so a reader of a digest that may name a large blob tries both
    (:func:`cids_for_digest`).
    """
    return str(CID(CID_BASE, 1, CID_CODEC, (CID_HASH, _check_digest(digest))))


@lru_cache(maxsize=1 << 16)
def cids_for_digest(digest: bytes) -> tuple[str, str]:
    """The two CIDs a ``bytes32`` digest may stand for: ``(raw, dag-pb)``.

    The chain keeps only the digest, so whoever reads it looks for the raw CID (a blob of up
    to 256 KiB, or one stored before UnixFS trees) and the dag-pb CID (a larger file).
    """
    checked = _check_digest(digest)
    raw, dag_pb = CID_CODECS
    return (
        str(CID(CID_BASE, 1, raw, (CID_HASH, checked))),
        str(CID(CID_BASE, 1, dag_pb, (CID_HASH, checked))),
    )


def _parse(cid: str | CID) -> CID:
    if isinstance(cid, CID):
        parsed = cid
    elif isinstance(cid, str):
        try:
            parsed = CID.decode(cid.strip())
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # multiformats on "b"
            raise InvalidCID(
                f"{cid!r} is not a CID ({exc}); expected a CIDv1 string such as 'bafkrei...'"
            ) from exc
    else:
        raise InvalidCID(f"expected a CID string, got {type(cid).__name__}")
    if (
        parsed.version != 1
        or parsed.codec.name not in CID_CODECS
        or parsed.hashfun.name != CID_HASH
        or len(parsed.raw_digest) != _DIGEST_SIZE
    ):
        raise InvalidCID(
            f"{parsed} is a CIDv{parsed.version} with codec {parsed.codec.name} and hash "
            f"{parsed.hashfun.name}; DataBright addresses blobs by CIDv1, raw or dag-pb codec, "
            "sha2-256"
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
