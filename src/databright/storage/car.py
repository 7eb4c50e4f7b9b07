"""CARv1 files: content-addressed archives any IPFS node can import and pin.

A CAR (https://ipld.io/specs/transport/car/carv1/) is a header naming its root CIDs, then a
sequence of ``(cid, block)`` sections, each prefixed by its length as an unsigned varint. The
header is a two-entry DAG-CBOR map, ``{"roots": [CID, ...], "version": 1}``; it is encoded and
parsed here, strictly, by hand (about thirty lines) rather than with a CBOR library, because the
header has exactly one shape and a general decoder would accept far more from an untrusted
peer than a CAR may hold.

:func:`write_car` writes blocks as given (:func:`databright.storage.unixfs.blocks` gives them
root first, depth-first, like ``ipfs dag export``); :func:`write_file_car` writes the CAR of a
stored blob. :func:`read_car` checks every block against its CID as it reads it and refuses
anything malformed with :class:`~databright.errors.InvalidArgument` (bad framing) or
:class:`~databright.errors.BlobCorrupt` (a block that does not match its CID).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO, Final

from multiformats import CID, varint

from databright.errors import BlobCorrupt, InvalidArgument, InvalidCID
from databright.storage.unixfs import DAG_PB, RAW, blocks_of_stream

__all__ = ["CAR_VERSION", "MAX_BLOCK_BYTES", "read_car", "write_car", "write_file_car"]

CAR_VERSION: Final = 1
MAX_BLOCK_BYTES: Final = 4 << 20
"""Largest block :func:`read_car` accepts by default (IPFS nodes exchange blocks of at most
2 MiB); a peer's length prefix is never trusted with more memory than this."""
_MAX_HEADER: Final = 1 << 16
_ROOTS: Final = b"\x65roots"
_VERSION: Final = b"\x67version"

CidLike = str | bytes | CID


def _cid_bytes(cid: CidLike) -> bytes:
    if isinstance(cid, bytes):
        return cid
    try:
        return bytes(cid if isinstance(cid, CID) else CID.decode(cid))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidCID(
            f"{cid!r} is not a CID ({exc}); pass CIDv1 text such as 'bafy...'"
        ) from None


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | extra]) + n.to_bytes(size, "big")
    raise ValueError("CBOR length too large")


def _header(roots: Sequence[bytes]) -> bytes:
    # DAG-CBOR: map keys sorted by length then bytes ("roots" < "version"); a CID is tag 42
    # over its binary form behind a zero byte (the multibase "identity" prefix).
    parts = [b"\xa2", _ROOTS, _cbor_head(4, len(roots))]
    for root in roots:
        parts += [b"\xd8\x2a", _cbor_head(2, len(root) + 1), b"\x00", root]
    parts += [_VERSION, b"\x01"]
    return b"".join(parts)


def write_car(
    out: BinaryIO, roots: CidLike | Sequence[CidLike], pairs: Iterable[tuple[CidLike, bytes]]
) -> int:
    """Write a CARv1 with ``roots`` (one CID or several) and the ``(cid, block)`` ``pairs``,
    in the order given; returns the number of bytes written.

    Blocks are written as they are: the caller vouches that each matches its CID (the builders
    in :mod:`databright.storage.unixfs` make them so).
    """
    root_list = [roots] if isinstance(roots, str | bytes | CID) else list(roots)
    header = _header([_cid_bytes(r) for r in root_list])
    written = out.write(varint.encode(len(header)) + header)
    for cid, block in pairs:
        cid_bin = _cid_bytes(cid)
        written += out.write(varint.encode(len(cid_bin) + len(block)) + cid_bin)
        written += out.write(block)
    return written


def write_file_car(out: BinaryIO, cid: str, f: BinaryIO) -> int:
    """Write the CAR of the file in the seekable ``f`` whose CID is ``cid``: its one raw block,
    or every block of its UnixFS DAG (root first). Returns the number of bytes written.

    Raises :class:`BlobCorrupt` if the file is not what ``cid`` names, before writing anything.
    """
    parsed = CID.decode(cid)
    if parsed.codec.name == RAW:
        data = f.read()
        if hashlib.sha256(data).digest() != bytes(parsed.raw_digest):
            raise _corrupt(cid)
        return write_car(out, cid, [(cid, data)])
    if parsed.codec.name != DAG_PB:
        raise _corrupt(cid)
    try:
        pairs = blocks_of_stream(f, expect=cid)  # checked before a byte is written
    except BlobCorrupt:
        raise _corrupt(cid) from None
    return write_car(out, cid, pairs)


def _corrupt(cid: str) -> BlobCorrupt:
    return BlobCorrupt(
        f"the file given for {cid} does not match that CID; export a blob the store verifies",
        cid=cid,
    )


# --- reading --------------------------------------------------------------------------------


def _malformed(what: str) -> InvalidArgument:
    return InvalidArgument(f"not a valid CARv1 file: {what}; export it again (`ipfs dag export`)")


def _read_varint(f: BinaryIO, *, eof_ok: bool = False) -> int | None:
    value = shift = 0
    while True:
        byte = f.read(1)
        if not byte:
            if eof_ok and shift == 0:
                return None
            raise _malformed("it ends inside a length prefix")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            if byte[0] == 0 and shift:
                raise _malformed("a length prefix is not minimally encoded")
            return value
        shift += 7
        if shift >= 63:
            raise _malformed("a length prefix is longer than 63 bits")


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _malformed(f"it ends inside {what} ({len(data)} of {n} bytes)")
    return data


def _cbor_uint(buf: bytes, pos: int, major: int) -> tuple[int, int]:
    if pos >= len(buf) or buf[pos] >> 5 != major:
        raise _malformed("the header is not the DAG-CBOR map {roots, version}")
    info = buf[pos] & 0x1F
    pos += 1
    if info < 24:
        return info, pos
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if size is None or pos + size > len(buf):
        raise _malformed("the header holds an invalid CBOR length")
    value = int.from_bytes(buf[pos : pos + size], "big")
    if value < (24 if size == 1 else 1 << (4 * size)):
        raise _malformed("the header's CBOR is not in its shortest form (not DAG-CBOR)")
    return value, pos + size


def _parse_header(buf: bytes) -> list[str]:
    if buf[:1] == b"\xa1" and buf[1:9] == _VERSION and buf[9:10] == b"\x02":
        raise InvalidArgument(
            "this is a CARv2 file; DataBright reads CARv1: convert it with `car extract` or ask "
            "the gateway for a CARv1 (?format=car)"
        )
    if buf[:1] != b"\xa2" or buf[1 : 1 + len(_ROOTS)] != _ROOTS:
        raise _malformed("the header is not the DAG-CBOR map {roots, version}")
    n_roots, pos = _cbor_uint(buf, 1 + len(_ROOTS), 4)
    roots = []
    for _ in range(n_roots):
        if buf[pos : pos + 2] != b"\xd8\x2a":
            raise _malformed("a root is not a CID (CBOR tag 42)")
        size, pos = _cbor_uint(buf, pos + 2, 2)
        raw = buf[pos : pos + size]
        if len(raw) != size or raw[:1] != b"\x00":
            raise _malformed("a root CID is truncated or lacks its zero prefix")
        roots.append(_cid_text(raw[1:]))
        pos += size
    if buf[pos:] != _VERSION + b"\x01":
        raise _malformed("the header's version is not 1, or extra data follows it")
    if not roots:
        raise _malformed("the header names no root")
    return roots


def _cid_text(raw: bytes) -> str:
    try:
        parsed = CID.decode(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise _malformed(f"it holds an invalid CID ({exc})") from None
    if parsed.version != 1 or bytes(parsed) != raw:
        raise _malformed(f"{parsed} is not a CIDv1 in its binary form")
    return str(parsed.set(base="base32"))


def _sections(f: BinaryIO, max_block_bytes: int) -> Iterator[tuple[str, bytes]]:
    while (size := _read_varint(f, eof_ok=True)) is not None:
        if size > max_block_bytes + 64:
            raise _malformed(f"a section of {size} bytes exceeds the {max_block_bytes}-byte limit")
        section = _read_exact(f, size, "a block")
        # A CIDv1 here is version, codec and multihash (code, length, digest): four varints
        # at most, read through multiformats by trying the shortest prefix that parses.
        cid_len = _cid_length(section)
        text = _cid_text(section[:cid_len])
        block = section[cid_len:]
        parsed = CID.decode(text)
        if parsed.hashfun.name != "sha2-256":
            raise _malformed(f"block {text} is hashed with {parsed.hashfun.name}, not sha2-256")
        if hashlib.sha256(block).digest() != bytes(parsed.raw_digest):
            raise BlobCorrupt(f"block {text} in the CAR does not match its CID", cid=text)
        yield text, block


def _cid_length(section: bytes) -> int:
    pos = 0
    for _ in range(3):  # version, codec, hash function
        pos = _skip_varint(section, pos)
    digest_len_at = pos
    pos = _skip_varint(section, pos)
    length = 0
    for i, byte in enumerate(section[digest_len_at:pos]):
        length |= (byte & 0x7F) << (7 * i)
    if pos + length > len(section):
        raise _malformed("a block's CID runs past its section")
    return pos + length


def _skip_varint(buf: bytes, pos: int) -> int:
    for i in range(pos, min(pos + 9, len(buf))):
        if not buf[i] & 0x80:
            return i + 1
    raise _malformed("a block's CID is truncated")


def read_car(
    f: BinaryIO, *, max_block_bytes: int = MAX_BLOCK_BYTES
) -> tuple[list[str], Iterator[tuple[str, bytes]]]:
    """The roots of the CARv1 in ``f`` and an iterator over its ``(cid, block)`` pairs.

    The header is read at once; blocks are read, and each checked against its CID, as the
    iterator is consumed, so a large CAR streams. CIDs are base32 text. Raises
    :class:`InvalidArgument` for malformed framing (including a block over ``max_block_bytes``)
    and :class:`BlobCorrupt` for a block that does not match its CID.
    """
    size = _read_varint(f)
    assert size is not None
    if not 0 < size <= _MAX_HEADER:
        raise _malformed(f"its header length is {size} bytes")
    roots = _parse_header(_read_exact(f, size, "the header"))
    return roots, _sections(f, max_block_bytes)
