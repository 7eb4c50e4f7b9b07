"""IPFS-exact content addresses: the CID ``ipfs add --cid-version 1`` gives for a file.

A blob's CID is what kubo's classic profile makes of its bytes, so that any IPFS node, gateway
or pinning service names the same bytes by the same string:

- the file is cut into fixed chunks of :data:`CHUNK_BYTES` (256 KiB, kubo's ``size-262144``);
- each chunk is a **raw leaf** (CIDv1, codec ``raw``, sha2-256), as ``--cid-version 1`` implies;
- a file of one chunk (up to 256 KiB, the empty file included) *is* its leaf, so its CID is
  ``CIDv1(raw, sha2-256(bytes))``, the address DataBright has always used;
- larger files get a **balanced** tree of dag-pb nodes of at most :data:`MAX_LINKS` (174)
  links each, holding UnixFS ``File`` metadata (file size and each child's size); the root's
  CIDv1 (codec ``dag-pb``, sha2-256) is the file's CID.

These are pinned here rather than taken from any tool's defaults, which have changed before
(kubo's newer ``unixfs-v1-2025`` profile uses 1 MiB chunks and 1024 links; so does the
JavaScript importer when asked for it). ``tests/storage/vectors/unixfs.json`` holds the CIDs
``ipfs-unixfs-importer`` 17 gave for 0 B, 5 B, 256 KiB, 256 KiB + 1, 3 MB and two 45.6 MB files
(one and two levels of links), made by ``tools/databright_dev/unixfs_vectors.mjs``.

The dag-pb and UnixFS encodings (two tiny protobuf messages) are written here: the only dag-pb
package on PyPI (``ipld-dag-pb`` 0.0.1, one release) declares no dependencies, has no type
information and copies bytes one at a time; what a file DAG needs is about fifty lines, and the
decoder must be strict anyway because blocks come from untrusted peers. CIDs themselves are made
and parsed by ``multiformats``.

Verification (:func:`assemble`) rebuilds a file from blocks fetched anywhere and checks every
block against the CID that names it before using a byte of it, so a CAR from an untrusted
gateway proves itself or is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from multiformats import CID, varint

from databright.errors import BlobCorrupt, BlobNotFound, InvalidArgument

__all__ = [
    "CHUNK_BYTES",
    "DAG_PB",
    "MAX_FILE_BYTES",
    "MAX_LINKS",
    "RAW",
    "FileHasher",
    "assemble",
    "blocks",
    "blocks_of_stream",
    "file_cid",
    "file_cid_of_stream",
    "iter_file",
    "matches",
    "matches_stream",
]

CHUNK_BYTES: Final = 262_144
"""Leaf size of kubo's classic profile (``--chunker=size-262144``)."""
MAX_LINKS: Final = 174
"""Links per dag-pb node in kubo's classic balanced layout."""
RAW: Final = "raw"
DAG_PB: Final = "dag-pb"
MAX_FILE_BYTES: Final = 2 << 30
"""Largest file :func:`assemble` rebuilds unless told otherwise: a few blocks can describe an
enormous file (a node may link the same child 174 times), so the declared size is bounded
before anything is read."""

_READ: Final = 4 * CHUNK_BYTES
_MAX_DEPTH: Final = 16  # 174**16 leaves is far beyond any file; deeper is an attack
_SHA256: Final = "sha2-256"
_DIGEST: Final = 32
# The binary CID is prefix + digest; multiformats builds the prefixes once.
_RAW_PREFIX: Final = bytes(CID("base32", 1, RAW, (_SHA256, bytes(_DIGEST))))[:-_DIGEST]
_PB_PREFIX: Final = bytes(CID("base32", 1, DAG_PB, (_SHA256, bytes(_DIGEST))))[:-_DIGEST]
_UNIXFS_RAW: Final = 0
_UNIXFS_FILE: Final = 2


# --- protobuf: the two messages of a file DAG ----------------------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and shift:
                raise ValueError("varint not minimally encoded")
            return value, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint longer than 64 bits")


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _read_varint(buf, pos)
    if pos + n > len(buf):
        raise ValueError("length-delimited field runs past the end")
    return buf[pos : pos + n], pos + n


def _file_data(filesize: int, blocksizes: list[int]) -> bytes:
    """UnixFS ``Data`` of an inner file node: Type=File, filesize, blocksizes (not packed)."""
    parts = [b"\x08\x02\x18", varint.encode(filesize)]
    for size in blocksizes:
        parts += [b"\x20", varint.encode(size)]
    return b"".join(parts)


def _pb_node(links: list[tuple[bytes, int]], data: bytes) -> bytes:
    """A dag-pb ``PBNode``: links (Hash, Name="", Tsize) first, then Data, as every IPFS
    implementation writes it (the canonical dag-pb form)."""
    parts = []
    for cid, tsize in links:
        link = b"\x0a" + varint.encode(len(cid)) + cid + b"\x12\x00\x18" + varint.encode(tsize)
        parts += [b"\x12", varint.encode(len(link)), link]
    parts += [b"\x0a", varint.encode(len(data)), data]
    return b"".join(parts)


@dataclass(frozen=True)
class _Link:
    cid: bytes
    tsize: int | None


def _decode_pb_node(block: bytes) -> tuple[list[_Link], bytes | None]:
    """Strict dag-pb decoding: links, then at most one Data, nothing else (the dag-pb spec)."""
    links: list[_Link] = []
    data: bytes | None = None
    pos = 0
    while pos < len(block):
        key, pos = _read_varint(block, pos)
        if key == 0x12 and data is None:
            raw, pos = _read_bytes(block, pos)
            links.append(_decode_link(raw))
        elif key == 0x0A and data is None:
            data, pos = _read_bytes(block, pos)
        else:
            raise ValueError(f"unexpected field (key {key}) in a dag-pb node")
    return links, data


def _decode_link(raw: bytes) -> _Link:
    cid: bytes | None = None
    tsize: int | None = None
    pos, last = 0, 0
    while pos < len(raw):
        key, pos = _read_varint(raw, pos)
        field = key >> 3
        if field <= last or key not in (0x0A, 0x12, 0x18):
            raise ValueError(f"unexpected or out-of-order field (key {key}) in a dag-pb link")
        last = field
        if key == 0x0A:
            cid, pos = _read_bytes(raw, pos)
        elif key == 0x12:
            _, pos = _read_bytes(raw, pos)
        else:
            tsize, pos = _read_varint(raw, pos)
    if cid is None:
        raise ValueError("a dag-pb link without a Hash")
    return _Link(cid, tsize)


@dataclass(frozen=True)
class _FileData:
    kind: int
    data: bytes
    filesize: int | None
    blocksizes: list[int]


def _decode_file_data(raw: bytes) -> _FileData:
    kind: int | None = None
    data = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    pos = 0
    while pos < len(raw):
        key, pos = _read_varint(raw, pos)
        if key == 0x08:
            kind, pos = _read_varint(raw, pos)
        elif key == 0x12:
            data, pos = _read_bytes(raw, pos)
        elif key == 0x18:
            filesize, pos = _read_varint(raw, pos)
        elif key == 0x20:
            size, pos = _read_varint(raw, pos)
            blocksizes.append(size)
        elif key == 0x22:  # packed blocksizes, which some writers use
            packed, pos = _read_bytes(raw, pos)
            at = 0
            while at < len(packed):
                size, at = _read_varint(packed, at)
                blocksizes.append(size)
        elif key & 7 == 0:  # hashType, fanout, mode: varints that do not matter to a file
            _, pos = _read_varint(raw, pos)
        elif key & 7 == 2:  # mtime: a message that does not matter to the bytes
            _, pos = _read_bytes(raw, pos)
        else:
            raise ValueError(f"unexpected field (key {key}) in UnixFS data")
    if kind is None:
        raise ValueError("UnixFS data without a Type")
    return _FileData(kind, data, filesize, blocksizes)


# --- building -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    cid: bytes  # binary CIDv1
    tsize: int  # bytes of every block under it, as dag-pb links count them
    filesize: int  # bytes of the file under it
    block: bytes | None  # the dag-pb block; None for a raw leaf
    offset: int  # a leaf's place in the file
    children: tuple[_Node, ...]


class FileHasher:
    """The IPFS CID of a file fed in pieces, like ``hashlib``: ``update()`` then ``cid()``.

    Memory stays constant (a partial chunk and at most :data:`MAX_LINKS` entries per tree
    level) unless ``keep_tree`` is set, which keeps the DAG's inner nodes for
    :func:`blocks_of_stream`.
    """

    def __init__(self, *, keep_tree: bool = False) -> None:
        self._keep = keep_tree
        self._pending = bytearray()
        self._offset = 0
        self._leaves = 0
        self._levels: list[list[_Node]] = [[]]
        self._root: _Node | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._root is not None:
            raise InvalidArgument("this FileHasher is finished; start a new one for more data")
        view = memoryview(data).cast("B")
        if self._pending:
            take = CHUNK_BYTES - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < CHUNK_BYTES:
                return
            self._leaf(self._pending)
            self._pending = bytearray()
        whole = len(view) - len(view) % CHUNK_BYTES
        for start in range(0, whole, CHUNK_BYTES):
            self._leaf(view[start : start + CHUNK_BYTES])
        # A chunk completes only when more bytes come: the last leaf may be short.
        self._pending += view[whole:]

    def cid(self) -> str:
        """The file's CID (base32 text); the hasher takes no more data after this."""
        return _text(self._finish().cid)

    def _finish(self) -> _Node:
        if self._root is None:
            if self._pending or not self._leaves:
                self._leaf(self._pending)  # the empty file is one empty leaf, as in kubo
                self._pending = bytearray()
            self._root = self._close_levels()
        return self._root

    def _leaf(self, chunk: bytes | bytearray | memoryview) -> None:
        n = len(chunk)
        cid = _RAW_PREFIX + hashlib.sha256(chunk).digest()
        self._push(0, _Node(cid, n, n, None, self._offset, ()))
        self._offset += n
        self._leaves += 1

    def _push(self, level: int, node: _Node) -> None:
        if level == len(self._levels):
            self._levels.append([])
        row = self._levels[level]
        row.append(node)
        if len(row) == MAX_LINKS:
            self._levels[level] = []
            self._push(level + 1, self._parent(row))

    def _parent(self, children: list[_Node]) -> _Node:
        sizes = [c.filesize for c in children]
        block = _pb_node([(c.cid, c.tsize) for c in children], _file_data(sum(sizes), sizes))
        return _Node(
            _PB_PREFIX + hashlib.sha256(block).digest(),
            len(block) + sum(c.tsize for c in children),
            sum(sizes),
            block,
            children[0].offset,
            tuple(children) if self._keep else (),
        )

    def _close_levels(self) -> _Node:
        # The balanced layout groups each level into parents of up to MAX_LINKS until one node
        # is left; a lone node at a level that is not the top is still wrapped in a parent
        # (only a one-chunk file is reduced to its leaf), as the reference importers do.
        level = 0
        while True:
            row = self._levels[level]
            higher = any(self._levels[level + 1 :])
            if len(row) == 1 and not higher:
                return row[0]
            if row:
                self._levels[level] = []
                self._push(level + 1, self._parent(row))
            level += 1


def _text(cid: bytes) -> str:
    return str(CID.decode(cid).set(base="base32"))


def file_cid(data: bytes | bytearray | memoryview) -> str:
    """The CID ``ipfs add --cid-version 1`` gives ``data`` (kubo's classic profile)."""
    hasher = FileHasher()
    hasher.update(data)
    return hasher.cid()


def file_cid_of_stream(f: BinaryIO) -> str:
    """The CID of what is left in the binary file ``f``, read in pieces (constant memory)."""
    hasher = FileHasher()
    while piece := f.read(_READ):
        hasher.update(piece)
    return hasher.cid()


def _walk(
    root: _Node, read_leaf: Callable[[int, int], bytes], *, check: bool = False
) -> Iterator[tuple[bytes, bytes]]:
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node.cid in seen:
            continue
        seen.add(node.cid)
        if node.block is None:
            leaf = read_leaf(node.offset, node.filesize)
            if check and hashlib.sha256(leaf).digest() != node.cid[-_DIGEST:]:
                text = _text(node.cid)
                raise BlobCorrupt(f"the file changed while block {text} was read", cid=text)
            yield node.cid, leaf
        else:
            yield node.cid, node.block
            stack.extend(reversed(node.children))


def _blocks_bin(data: bytes | bytearray | memoryview) -> Iterator[tuple[bytes, bytes]]:
    view = memoryview(data).cast("B")
    hasher = FileHasher(keep_tree=True)
    hasher.update(view)
    return _walk(hasher._finish(), lambda at, n: bytes(view[at : at + n]))


def blocks(data: bytes | bytearray | memoryview) -> Iterator[tuple[str, bytes]]:
    """Every block of the file's DAG as ``(cid, block)``: the root first, then depth-first in
    link order, each distinct block once (two equal chunks are one leaf).

    That is the order of ``ipfs dag export`` and of a trustless gateway's ``dfs`` CAR, so a
    reader can verify the blocks as they stream in.
    """
    for cid, block in _blocks_bin(data):
        yield _text(cid), block


def blocks_of_stream(f: BinaryIO, *, expect: str | None = None) -> Iterator[tuple[bytes, bytes]]:
    """:func:`blocks` of a seekable binary file, with binary CIDs, reading it twice (once to
    build the tree, once to hand out the leaves) so that a large file is never all in memory.

    With ``expect`` (a CID), a file whose root is not that CID raises :class:`BlobCorrupt`
    before any block is handed out; a leaf that changed between the two reads raises it too.
    """
    start = f.tell()
    hasher = FileHasher(keep_tree=True)
    while piece := f.read(_READ):
        hasher.update(piece)
    root = hasher._finish()
    if expect is not None and _text(root.cid) != expect:
        raise BlobCorrupt(f"the file given for {expect} does not match that CID", cid=expect)

    def read_leaf(at: int, n: int) -> bytes:
        f.seek(start + at)
        return f.read(n)

    return _walk(root, read_leaf, check=True)


# --- verifying ------------------------------------------------------------------------------


def matches(cid: str, data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` is what the (normalised) ``cid`` names.

    A raw CID names the bytes of one block: a blob stored before DataBright used UnixFS trees
    (a raw CID over a large file) still verifies. A dag-pb CID names a UnixFS file DAG, whose
    root this file must rebuild exactly.
    """
    parsed = CID.decode(cid)
    if parsed.codec.name == RAW:
        return hashlib.sha256(data).digest() == bytes(parsed.raw_digest)
    return len(data) > CHUNK_BYTES and file_cid(data) == cid


def matches_stream(cid: str, f: BinaryIO) -> bool:
    """:func:`matches` for what is left in the binary file ``f``, read in pieces."""
    parsed = CID.decode(cid)
    if parsed.codec.name == RAW:
        h = hashlib.sha256()
        while piece := f.read(_READ):
            h.update(piece)
        return h.digest() == bytes(parsed.raw_digest)
    return file_cid_of_stream(f) == cid


def _checked_block(cid: bytes, get_block: Callable[[str], bytes], text: str) -> bytes:
    try:
        block = get_block(text)
    except (KeyError, LookupError):
        raise BlobNotFound(
            f"block {text} of the file is missing; fetch the whole DAG (a CAR) again",
            cid=text,
        ) from None
    if not isinstance(block, bytes | bytearray | memoryview):
        raise InvalidArgument(f"get_block returned {type(block).__name__} for {text}, not bytes")
    if hashlib.sha256(block).digest() != cid[-_DIGEST:]:
        raise BlobCorrupt(
            f"block {text} does not match its CID; its source sent damaged or forged data",
            cid=text,
        )
    return bytes(block)


def _parse_link_cid(cid: bytes) -> CID:
    try:
        parsed = CID.decode(cid)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"a dag-pb link holds no valid CID ({exc})") from None
    if parsed.hashfun.name != _SHA256 or parsed.codec.name not in (RAW, DAG_PB):
        raise InvalidArgument(
            f"a link to {parsed} ({parsed.codec.name}, {parsed.hashfun.name}) is not a UnixFS "
            "file block addressed by sha2-256"
        )
    return parsed


def iter_file(
    root_cid: str, get_block: Callable[[str], bytes], *, max_bytes: int = MAX_FILE_BYTES
) -> Iterator[bytes]:
    """The file a UnixFS DAG names, piece by piece, every block checked against its CID.

    ``get_block(cid_text)`` returns a block's bytes (raising ``KeyError`` or ``LookupError``
    when it has none). Raises :class:`BlobCorrupt` for a block that does not match its CID,
    :class:`BlobNotFound` for a missing block and :class:`InvalidArgument` for a DAG that is
    not a well-formed UnixFS file, or that declares more than ``max_bytes``.
    """
    root = _parse_link_cid(bytes(CID.decode(root_cid)))
    budget = [max_bytes]

    def take(n: int) -> None:
        budget[0] -= n
        if budget[0] < 0:
            raise InvalidArgument(
                f"{root_cid} is a file of more than {max_bytes} bytes; raise the limit to fetch it"
            )

    def visit(cid: CID, expected: int | None, depth: int) -> Iterator[bytes]:
        text = str(cid.set(base="base32"))
        block = _checked_block(bytes(cid), get_block, text)
        if cid.codec.name == RAW:
            if expected is not None and len(block) != expected:
                raise InvalidArgument(
                    f"leaf {text} has {len(block)} bytes, its parent says {expected}"
                )
            take(len(block))
            yield block
            return
        if depth > _MAX_DEPTH:
            raise InvalidArgument(f"the DAG under {root_cid} is deeper than {_MAX_DEPTH} levels")
        try:
            links, data = _decode_pb_node(block)
            info = _decode_file_data(data or b"")
        except ValueError as exc:
            raise InvalidArgument(f"block {text} is not a UnixFS file node ({exc})") from None
        if info.kind not in (_UNIXFS_FILE, _UNIXFS_RAW):
            raise InvalidArgument(f"block {text} is a UnixFS node of type {info.kind}, not a file")
        if len(info.blocksizes) != len(links):
            raise InvalidArgument(
                f"block {text} lists {len(info.blocksizes)} block sizes for {len(links)} links"
            )
        total = len(info.data) + sum(info.blocksizes)
        if info.filesize is not None and info.filesize != total:
            raise InvalidArgument(
                f"block {text} says {info.filesize} bytes but its parts add to {total}"
            )
        if expected is not None and total != expected:
            raise InvalidArgument(f"block {text} holds {total} bytes, its parent says {expected}")
        if depth == 0 and total > max_bytes:
            take(total)  # refused before a single child is fetched
        if info.data:
            take(len(info.data))
            yield info.data
        for link, size in zip(links, info.blocksizes, strict=True):
            yield from visit(_parse_link_cid(link.cid), size, depth + 1)

    yield from visit(root, None, 0)


def assemble(
    root_cid: str, get_block: Callable[[str], bytes], *, max_bytes: int = MAX_FILE_BYTES
) -> bytes:
    """The whole file a UnixFS DAG names, every block checked (see :func:`iter_file`)."""
    return b"".join(iter_file(root_cid, get_block, max_bytes=max_bytes))
