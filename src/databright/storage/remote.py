"""Blobs that travel: fetch what the local store lacks from other participants, verified.

Every participant can serve its store read-only as an IPFS trustless gateway (``databright
store serve``; :mod:`databright.server.gateway`), and so can the platform server or any public
IPFS gateway. :class:`GatewaySource` asks one of them for a blob by CID (``GET /ipfs/{cid}``
with ``?format=raw`` for a single-block blob, ``?format=car`` for a UnixFS DAG) and accepts the
answer only if every byte hashes to what the CID says: a source is trusted for nothing, so a
peer that lies is a source that failed, never data that is stored.

:class:`SourcedBlobStore` puts a local store in front of a list of sources: reads that miss
locally are fetched, verified and kept, so the next read is local. A blob no source has is
:class:`~databright.errors.BlobNotFound` naming every source tried and what each answered; the
caller decides whether that stops one proposal or one command, never the whole market.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Final
from urllib.parse import urlsplit

import requests
from multiformats import CID

from databright.errors import BlobNotFound, BlobSourceFailed, InvalidArgument, StorageError
from databright.storage.blobstore import BlobStore
from databright.storage.car import read_car
from databright.storage.cid import cids_for_digest, normalize_cid
from databright.storage.unixfs import assemble

__all__ = [
    "DEFAULT_MAX_BLOB_BYTES",
    "MISS_TTL_S",
    "GatewaySource",
    "SourcedBlobStore",
    "check_source_url",
]

#: The largest blob fetched from a source: a peer cannot make us write more than this.
DEFAULT_MAX_BLOB_BYTES: Final = 2 << 30
_CHUNK: Final = 1 << 20
RAW_TYPE: Final = "application/vnd.ipld.raw"
CAR_TYPE: Final = "application/vnd.ipld.car"
#: How long a digest that no source held is not asked of them again: a page listing many
#: models asked every source for every one of their blobs on each request. Not for ever: a
#: contributor may start serving it.
MISS_TTL_S: Final = 60.0


def check_source_url(url: str) -> str:
    """``url`` without a trailing slash, or InvalidArgument if it is not an http(s) URL."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(
            f"blob source {url!r} is not an http:// or https:// URL; give the address of a "
            "DataBright store (`databright store serve`) or an IPFS gateway, e.g. "
            "http://127.0.0.1:8080"
        )
    return text.rstrip("/")


def _is_raw(cid: str) -> bool:
    return CID.decode(cid).codec.name == "raw"


@dataclass(frozen=True)
class GatewaySource:
    """One IPFS trustless gateway (``{url}/ipfs/{cid}``), trusted for nothing."""

    url: str
    timeout_s: float = 30.0
    max_bytes: int = DEFAULT_MAX_BLOB_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_source_url(self.url))

    def __str__(self) -> str:
        return self.url

    def fetch(self, cid: str) -> bytes | None:
        """The blob's bytes, verified against ``cid``; None if the source does not hold it.

        Raises :class:`BlobSourceFailed` when the source cannot be asked or answers with anything
        but the blob (an error, a size over the limit, bytes that do not match the CID).
        """
        cid = normalize_cid(cid)
        raw = _is_raw(cid)
        fmt, accept = ("raw", RAW_TYPE) if raw else ("car", CAR_TYPE)
        where = f"{self.url}/ipfs/{cid}"
        try:
            with requests.get(
                where,
                params={"format": fmt},
                headers={"Accept": accept},
                timeout=self.timeout_s,
                stream=True,
                allow_redirects=False,
            ) as response:
                if response.status_code in (404, 410):
                    return None
                if response.status_code != 200:
                    raise BlobSourceFailed(f"{self.url} answered HTTP {response.status_code}")
                body = self._read_bounded(response)
        except requests.Timeout as exc:
            raise BlobSourceFailed(
                f"{self.url} did not answer within {self.timeout_s:g} s"
            ) from exc
        except requests.RequestException as exc:
            raise BlobSourceFailed(f"{self.url} is unreachable ({type(exc).__name__})") from exc
        data = body if raw else _file_from_car(cid, body, self.url)
        if raw and hashlib.sha256(data).digest() != CID.decode(cid).raw_digest:
            raise BlobSourceFailed(f"{self.url} sent bytes that do not match {cid}")
        return data

    def holds(self, cid: str) -> bool:
        """Whether the source says it has ``cid`` (a HEAD request; any failure means no)."""
        try:
            answer = requests.head(
                f"{self.url}/ipfs/{normalize_cid(cid)}",
                params={"format": "raw"},
                headers={"Accept": RAW_TYPE},
                timeout=self.timeout_s,
                allow_redirects=False,
            )
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def _read_bounded(self, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise BlobSourceFailed(
                f"{self.url} offers {int(declared)} bytes, over the {self.max_bytes}-byte limit"
            )
        out = io.BytesIO()
        for chunk in response.iter_content(_CHUNK):
            out.write(chunk)
            if out.tell() > self.max_bytes:
                raise BlobSourceFailed(f"{self.url} sent more than the {self.max_bytes}-byte limit")
        return out.getvalue()


def _file_from_car(cid: str, body: bytes, where: str) -> bytes:
    """Rebuild a UnixFS file from a CAR, every block checked against its CID."""
    try:
        blocks = dict(read_car(io.BytesIO(body))[1])
        return assemble(cid, blocks.__getitem__)
    except (StorageError, InvalidArgument, KeyError, ValueError) as exc:
        raise BlobSourceFailed(f"{where} sent a CAR that does not prove {cid} ({exc})") from exc


@dataclass
class SourcedBlobStore:
    """A local :class:`BlobStore` that fetches what it lacks from ``sources``, verified.

    Writes, listings and ``has`` are the local store's; ``get`` and ``open`` of a blob held
    nowhere locally ask each source in order and keep the first verified answer.
    """

    local: BlobStore
    sources: Sequence[GatewaySource] = ()
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _located: dict[bytes, str] = field(default_factory=dict, repr=False)
    _missed: dict[bytes, float] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"<SourcedBlobStore {self.local!r} + {len(self.sources)} source(s)>"

    # --- the local store's own -----------------------------------------------------------

    def put(self, data: bytes | bytearray | memoryview) -> str:
        return self.local.put(data)

    def put_file(self, path: str | os.PathLike[str]) -> str:
        return self.local.put_file(path)

    def has(self, cid: str | CID) -> bool:
        return self.local.has(cid)

    def __contains__(self, cid: object) -> bool:
        return cid in self.local

    def __iter__(self) -> Iterator[str]:
        return iter(self.local)

    def verify(self, cid: str | CID) -> None:
        self.local.verify(cid)

    def size(self, cid: str | CID) -> int:
        self.ensure(cid)
        return self.local.size(cid)

    # --- reads that may travel -----------------------------------------------------------

    def get(self, cid: str | CID) -> bytes:
        self.ensure(cid)
        return self.local.get(cid)

    def open(self, cid: str | CID) -> BinaryIO:
        self.ensure(cid)
        return self.local.open(cid)

    def ensure(self, cid: str | CID) -> str:
        """Make sure the blob is stored locally, fetching it if need be; returns its CID."""
        text = normalize_cid(cid)
        if self.local.has(text):
            return text
        failures: list[str] = []
        for source in self.sources:
            try:
                data = source.fetch(text)
            except BlobSourceFailed as exc:
                failures.append(str(exc))
                continue
            if data is None:
                failures.append(f"{source} does not hold it")
                continue
            stored = self.local.put(data)
            if stored != text:  # the source's bytes were verified; our store must agree
                raise StorageError(f"{source} sent {text} but the local store filed it as {stored}")
            return text
        raise self._not_found(text, failures)

    def locate(self, digest: bytes) -> str:
        """The CID of the blob whose sha2-256 ``digest`` the chain keeps.

        The chain keeps only the digest: a blob up to 256 KiB has the raw CID with it, a larger
        one the dag-pb CID of its UnixFS root. The local store is asked first, then each source
        (a HEAD request per candidate); answers are kept, since content never changes. When no
        one holds either, the raw CID is returned, so that a miss names the usual address, and
        the sources are not asked for it again for ``MISS_TTL_S``.
        """
        digest = bytes(digest)
        if digest in self._located:
            return self._located[digest]
        candidates = cids_for_digest(digest)
        found = next((c for c in candidates if self.local.has(c)), None)
        now = self.clock()
        asked_lately = now - self._missed.get(digest, float("-inf")) < MISS_TTL_S
        for source in self.sources if found is None and not asked_lately else ():
            found = next((c for c in candidates if source.holds(c)), None)
            if found is not None:
                break
        if found is None:
            if self.sources and not asked_lately:
                if len(self._missed) >= 4096:  # forget the misses that have expired
                    self._missed = {d: t for d, t in self._missed.items() if now - t < MISS_TTL_S}
                self._missed[digest] = now
            return candidates[0]
        self._missed.pop(digest, None)
        self._located[digest] = found
        return found

    def _not_found(self, cid: str, failures: list[str]) -> BlobNotFound:
        if not self.sources:
            return BlobNotFound(
                f"blob {cid} is not in {self.local!r} and no blob source is configured; ask its "
                "contributor to serve their store (`databright store serve`) and name it in "
                "DATABRIGHT_BLOB_SOURCES",
                cid=cid,
            )
        tried = "; ".join(failures)
        return BlobNotFound(
            f"blob {cid} is not in {self.local!r} and no source delivered it ({tried}); ask its "
            "contributor to serve their store (`databright store serve`) and add it to "
            "DATABRIGHT_BLOB_SOURCES",
            cid=cid,
        )
