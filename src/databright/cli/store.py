"""``databright store``: the blob store of a data dir (``DATA_DIR/blobs``) and its upkeep.

``export`` writes a blob as a CARv1 that any IPFS node imports and pins (``ipfs dag import``);
``verify`` checks every blob against its CID; ``orphans`` lists the blobs that nothing on the
market references (what an interrupted ``propose`` or ``dataset create`` leaves behind) and
``gc --yes`` removes them; ``serve`` shares the store read-only as an IPFS trustless gateway.

What counts as referenced is read from the chain, because the chain keeps only digests and a
blob is worth keeping exactly when some record points at it: every dataset's schema, every
proposal's data and manifest whatever its status, every registry entry, every revealed
evaluation report, and what those manifests and reports name in turn (schemas, data, plots),
and the manifest of a dataset's initial data (which the chain does not name).
The chain keeps a ``bytes32`` digest, not a CID, so a blob is referenced when its digest is
(whichever of its two possible CIDs it is stored under). A blob younger than ``--older-than``
is never an orphan: a command may have stored it and not yet sent the transaction that
references it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.markup import escape

from databright.atomic import publish, staged_file
from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    DataDirOpt,
    JsonOpt,
    RpcOpt,
    busy,
    console,
    print_json,
)
from databright.cli._params import DURATION_OR_ZERO
from databright.errors import (
    BlobNotFound,
    DataBrightError,
    InvalidArgument,
    NotFound,
    StorageError,
)
from databright.market import Market
from databright.settings import get_settings
from databright.storage import LocalBlobStore, Manifest
from databright.storage.blobstore import BlobStore
from databright.storage.car import write_file_car
from databright.storage.cid import cid_to_digest, normalize_cid
from databright.storage.remote import GatewaySource, SourcedBlobStore

__all__ = ["app", "find_orphans", "referenced_digests"]

app = typer.Typer(
    help="The blob store of a data dir: export as CAR, verify, find and remove orphans, serve.",
    no_args_is_help=True,
)

DEFAULT_OLDER_THAN: Final = "1h"
# Blobs that may name other blobs are small JSON documents; anything larger is data.
_LINKED_MAX_BYTES: Final = 16 << 20

OlderThanOpt = Annotated[
    str,
    typer.Option(
        "--older-than",
        help="Only blobs stored longer ago than this are orphans (e.g. 30m, 1h, 2d; 0 for all).",
    ),
]


def _store(data_dir: Path) -> LocalBlobStore:
    # Opening a store creates it: a mistyped --data-dir would look like an empty, healthy one.
    if not (data_dir / "blobs").is_dir():
        raise NotFound(
            f"there is no blob store in {data_dir}; pass the --data-dir that holds your blobs "
            "(DATABRIGHT_HOME)"
        )
    return LocalBlobStore(data_dir / "blobs")


# --- export ----------------------------------------------------------------------------------


@app.command("export")
def export_command(
    cid: Annotated[str, typer.Argument(help="CID of the blob (bafk... or bafy...).")],
    car: Annotated[Path, typer.Option("--car", help="CAR file to write.", dir_okay=False)],
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Write a blob, with every block of its IPFS DAG, as a CARv1 file (`ipfs dag import`)."""
    text = normalize_cid(cid)
    local = _store(data_dir)
    sources = [GatewaySource(url) for url in get_settings().blob_sources]
    store: BlobStore = SourcedBlobStore(local, sources) if sources else local
    target = car.expanduser()
    if not target.parent.is_dir():
        raise StorageError(f"{target.parent} is not a directory; choose where to write the CAR")
    with busy(f"exporting {text}"), store.open(text) as blob:
        try:
            with staged_file(target.parent, prefix=".car-") as (tmp, out):
                written = write_file_car(out, text, blob)
                out.flush()
                os.fsync(out.fileno())
                publish(tmp, target)
        except OSError as exc:
            if isinstance(exc, DataBrightError):
                raise
            raise StorageError(f"cannot write {target} ({exc.strerror or exc})") from exc
    if json_out:
        print_json({"cid": text, "car": str(target), "bytes": written})
        return
    console.print(
        f"wrote {escape(str(target))} ({written} bytes), root {text}; import it into an IPFS "
        "node with `ipfs dag import`",
        soft_wrap=True,
    )


# --- verify ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Damaged:
    name: str  # the file's name in the store: a CID, or whatever else was put there
    reason: str


def _check_all(store: LocalBlobStore) -> tuple[int, list[Damaged]]:
    checked, damaged = 0, []
    for name in store:
        checked += 1
        try:
            store.verify(name)
        except DataBrightError as exc:  # damaged, or a file that is no blob's name at all
            damaged.append(Damaged(name, str(exc)))
    return checked, damaged


@app.command("verify")
def verify_command(
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Check every blob against its CID; list the damaged ones (exit code 1 if any)."""
    store = _store(data_dir)
    with busy(f"verifying the blobs in {store.root}"):
        checked, damaged = _check_all(store)
    if json_out:
        print_json(
            {
                "store": str(store.root),
                "checked": checked,
                "damaged": [{"name": d.name, "reason": d.reason} for d in damaged],
            }
        )
    else:
        for d in damaged:
            console.print(
                f"[red]damaged[/red] {escape(d.name)}: {escape(d.reason)}", soft_wrap=True
            )
        console.print(
            f"{checked} blob(s) checked in {escape(str(store.root))}, {len(damaged)} damaged"
            + (
                "; put() the original data again or fetch it from a peer, then verify again"
                if damaged
                else ""
            ),
            soft_wrap=True,
        )
    if damaged:
        raise typer.Exit(1)


# --- orphans and gc --------------------------------------------------------------------------


def referenced_digests(market: Market) -> set[bytes]:
    """The digests of every blob the market's on-chain records point at, directly.

    Schemas of datasets, data and manifests of proposals (every status: a pending proposal's
    blobs are not orphans) and of registry entries, and revealed evaluation reports.
    """
    refs: set[bytes] = set()
    for dataset in market.datasets():
        refs.add(cid_to_digest(dataset.schema_cid))
        for p in market.proposals(int(dataset.id)):
            refs.add(cid_to_digest(p.data_cid))
            if p.manifest_cid:
                refs.add(cid_to_digest(p.manifest_cid))
        for entry in market.registry(int(dataset.id)):
            refs.add(cid_to_digest(entry.data_cid))
    for event in market.contract.events("EvaluationRevealed"):
        refs.add(bytes(event.args["report_cid_digest"]))
    return refs


def _named_by(blob: bytes) -> Iterator[str]:
    """The CIDs a manifest or a JSON document (an evaluation report) names."""
    with contextlib.suppress(DataBrightError, ValueError):
        manifest = Manifest.from_bytes(blob)
        yield from (manifest.schema_cid, manifest.data_cid)
        return
    try:
        doc = json.loads(blob)
    except ValueError:
        return
    stack: list[Any] = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(value, str) and (key == "cid" or key.endswith("_cid")):
                    yield value
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _describes_kept_data(store: LocalBlobStore, cid: str, keep: set[bytes]) -> bool:
    try:
        if store.size(cid) > _LINKED_MAX_BYTES:
            return False
        manifest = Manifest.from_bytes(store.get(cid))
    except (DataBrightError, ValueError):
        return False
    return cid_to_digest(manifest.data_cid) in keep and cid_to_digest(manifest.schema_cid) in keep


@dataclass(frozen=True)
class Orphan:
    cid: str
    size: int
    age_s: float


def find_orphans(
    store: LocalBlobStore, referenced: set[bytes], older_than_s: float, now: float | None = None
) -> list[Orphan]:
    """Blobs of ``store`` whose digest is not in ``referenced``, nor named by a referenced blob
    (transitively), and stored more than ``older_than_s`` seconds before ``now``."""
    now = time.time() if now is None else now
    by_digest: dict[bytes, list[str]] = {}
    for name in store:
        with contextlib.suppress(DataBrightError):  # not a CID: `store verify` reports it
            by_digest.setdefault(cid_to_digest(name), []).append(name)
    keep = set(referenced)
    todo = [d for d in referenced if d in by_digest]
    while todo:
        for cid in by_digest[todo.pop()]:
            with contextlib.suppress(DataBrightError):
                if store.size(cid) > _LINKED_MAX_BYTES:
                    continue
                for named in _named_by(store.get(cid)):
                    with contextlib.suppress(DataBrightError):
                        digest = cid_to_digest(named)
                        if digest not in keep:
                            keep.add(digest)
                            if digest in by_digest:
                                todo.append(digest)
    # A dataset's initial manifest is named by no record (the chain keeps that entry's data and
    # Merkle root only), yet it is that entry's manifest: kept with the data it describes.
    for digest, cids in by_digest.items():
        if digest not in keep and any(_describes_kept_data(store, c, keep) for c in cids):
            keep.add(digest)
    orphans = []
    for digest, cids in by_digest.items():
        if digest in keep:
            continue
        for cid in cids:
            with contextlib.suppress(BlobNotFound):  # removed meanwhile
                age = now - store.stored_at(cid)
                if age > older_than_s:
                    orphans.append(Orphan(cid, store.size(cid), age))
    return sorted(orphans, key=lambda o: (-o.age_s, o.cid))


def _orphans(rpc: str, data_dir: Path, older_than: str) -> tuple[LocalBlobStore, list[Orphan]]:
    older_than_s = DURATION_OR_ZERO.convert(older_than)
    store = _store(data_dir)
    market = Market.connect(rpc, None, data_dir)
    with busy("reading what the market references"):
        referenced = referenced_digests(market)
        return store, find_orphans(store, referenced, older_than_s)


def _print_orphans(store: LocalBlobStore, key: str, orphans: list[Orphan]) -> None:
    print_json(
        {
            "store": str(store.root),
            key: [{"cid": o.cid, "bytes": o.size, "age_s": round(o.age_s, 1)} for o in orphans],
            "bytes": sum(o.size for o in orphans),
        }
    )


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@app.command("orphans")
def orphans_command(
    older_than: OlderThanOpt = DEFAULT_OLDER_THAN,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """List blobs that nothing on the market references (left by an interrupted command)."""
    store, orphans = _orphans(rpc, data_dir, older_than)
    if json_out:
        _print_orphans(store, "orphans", orphans)
        return
    for o in orphans:
        console.print(f"{o.cid}  {o.size:>12,} bytes  stored {_age(o.age_s)} ago", soft_wrap=True)
    total = sum(o.size for o in orphans)
    console.print(
        f"{len(orphans)} orphan blob(s), {total:,} bytes"
        + ("; remove them with `databright store gc --yes`" if orphans else ""),
        soft_wrap=True,
    )


@app.command("gc")
def gc_command(
    yes: Annotated[bool, typer.Option("--yes", help="Remove the orphans (required).")] = False,
    older_than: OlderThanOpt = DEFAULT_OLDER_THAN,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Remove the orphan blobs (`databright store orphans` lists them first)."""
    if not yes:
        raise InvalidArgument(
            "store gc deletes blobs; list them with `databright store orphans` and run "
            "`databright store gc --yes` to remove them"
        )
    store, orphans = _orphans(rpc, data_dir, older_than)
    removed = [o for o in orphans if store.remove(o.cid)]
    if json_out:
        _print_orphans(store, "removed", removed)
        return
    console.print(
        f"removed {len(removed)} orphan blob(s), {sum(o.size for o in removed):,} bytes, "
        f"from {escape(str(store.root))}",
        soft_wrap=True,
    )


# --- serve -----------------------------------------------------------------------------------


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)
    ] = 8080,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Serve this data dir's blobs read-only as an IPFS trustless gateway (/ipfs/CID)."""
    from databright.server.gateway import serve_blobs  # FastAPI only when serving

    store = _store(data_dir)
    if json_out:
        print_json({"store": str(store.root), "url": f"http://{host}:{port}"})
    else:
        console.print(
            f"serving {escape(str(store.root))} read-only at http://{escape(host)}:{port}/ipfs/ "
            "(Ctrl-C stops); others add this URL to DATABRIGHT_BLOB_SOURCES",
            soft_wrap=True,
        )
    serve_blobs(store, host=host, port=port)
