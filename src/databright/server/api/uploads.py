"""A proposal's data from the browser: the file is checked and stored here, the transactions
are the contributor's own.

``POST /datasets/{id}/uploads`` (signed in) takes one file in a ``multipart/form-data`` form,
checks it against the dataset's schema with the SDK's reader (same rules, same messages),
refuses examples already proposed, stores data, schema and manifest in the platform's blob
store (served at ``/ipfs/{cid}``) and answers the proposal's terms: the browser's wallet then
sends ``commit_proposal(commitment)`` and, in a later block, ``propose(...terms)`` with
``payment_wei`` (the dataset's evaluation fee plus deposit) as its value, as
:meth:`databright.market.Market.propose` does.

The form is parsed here rather than by FastAPI's ``UploadFile``, which needs the
``python-multipart`` package this project does not depend on; the parser is small and strict
(one part, named ``file``, with a file name) and never sees more than :data:`MAX_UPLOAD_BYTES`.
"""

from __future__ import annotations

import email.errors
import email.message
import email.parser
import re
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from databright.errors import InvalidArgument
from databright.market.market import proposal_commitment
from databright.server.api.auth import SignedIn
from databright.server.api.problems import PROBLEM_TYPE
from databright.server.api.schemas import Problem
from databright.storage import cid_to_digest, read_proposal, store_proposal

if TYPE_CHECKING:
    from databright.server.platform import Platform

__all__ = ["ALL", "BODY_LIMITS", "MAX_UPLOAD_BYTES", "UploadOut", "parse_upload_form"]

#: The largest upload body (the file and the form around it).
MAX_UPLOAD_BYTES: Final = 16 * 1024 * 1024
#: Paths whose bodies may exceed the app's default limit, for ``BodyLimit(larger=...)``.
BODY_LIMITS: Final = {r"/api/v1/datasets/[^/]+/uploads": MAX_UPLOAD_BYTES}
FIELD: Final = "file"
_MAX_NAME: Final = 100

DatasetId = Annotated[int, PathParam(ge=1, le=2**64 - 1, description="The dataset's id.")]


class UploadOut(BaseModel):
    """A stored proposal's terms, ready for the contributor's two transactions. Digests and the
    commitment are 0x-hex bytes32; counts and wei decimal strings."""

    dataset_id: str
    contributor: str = Field(description="The signed-in account the commitment binds.")
    market: str = Field(description="The data market contract to send both transactions to.")
    data_cid: str
    data_cid_digest: str
    manifest_cid: str
    metadata_cid_digest: str = Field(description="The manifest's digest (propose's last term).")
    manifest_root: str
    examples: str
    commitment: str = Field(description="commit_proposal's argument.")
    payment_wei: str = Field(description="propose's value: evaluation fee plus deposit.")


def _bad_form(why: str) -> InvalidArgument:
    return InvalidArgument(
        f"{why}; send multipart/form-data with one file field named {FIELD!r} (a browser's "
        "FormData does)"
    )


def _headers(raw: bytes) -> email.message.Message:
    try:
        return email.parser.BytesHeaderParser().parsebytes(raw + b"\r\n\r\n")
    except (email.errors.MessageError, ValueError) as exc:
        raise _bad_form("a part's headers cannot be read") from exc


def parse_upload_form(content_type: str, body: bytes) -> tuple[str, bytes]:
    """The file name and bytes of the one file a ``multipart/form-data`` body holds (RFC 7578);
    anything else (another field, two files, no closing boundary) is refused in one sentence."""
    outer = email.message.Message()
    outer["content-type"] = content_type
    boundary = outer.get_param("boundary") if content_type else None
    if outer.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise _bad_form("the request is not multipart/form-data with a boundary")
    if not 1 <= len(boundary) <= 70:
        raise _bad_form("the form's boundary is not 1 to 70 characters (RFC 2046)")
    delimiter = b"\r\n--" + boundary.encode("latin-1", "replace")
    # The first delimiter may open the body: a CRLF before it makes every delimiter alike.
    chunks = (b"\r\n" + body).split(delimiter)
    found: list[tuple[str, bytes]] = []
    closed = False
    for chunk in chunks[1:]:  # chunks[0] is the preamble, ignored as RFC 2046 says
        if chunk.startswith(b"--"):
            closed = True
            break
        part = chunk.lstrip(b" \t")  # transport padding
        if not part.startswith(b"\r\n"):
            raise _bad_form("a boundary is not followed by a line break")
        part = part[2:]
        if part.startswith(b"\r\n"):
            head, content = b"", part[2:]
        else:
            head, sep, content = part.partition(b"\r\n\r\n")
            if not sep:
                raise _bad_form("a part has no blank line after its headers")
        headers = _headers(head)
        if headers.get_content_disposition() != "form-data":
            raise _bad_form("a part is not form-data")
        name = headers.get_param("name", header="content-disposition")
        filename = headers.get_filename()
        if name != FIELD or not isinstance(filename, str):
            raise _bad_form(f"the form has a field other than a file named {FIELD!r}")
        found.append((filename, content))
    if not closed:
        raise _bad_form("the form ends before its closing boundary")
    if len(found) != 1:
        raise _bad_form(f"the form holds {len(found)} files")
    return found[0]


def _safe_name(filename: str) -> str:
    """The file's own name (no directories) in characters safe on any disk, keeping its
    extension, since the extension says which reader reads it and messages name the file."""
    name = PurePosixPath(PureWindowsPath(filename).name).name
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", name).strip(" .")
    if len(name) > _MAX_NAME:
        suffix = Path(name).suffix[:10]
        name = name[: _MAX_NAME - len(suffix)] + suffix
    return name if Path(name).stem else f"upload{Path(name).suffix or name}"


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _prepare(
    platform: Platform, dataset_id: int, account: str, filename: str, data: bytes
) -> UploadOut:
    """Check and store the file; every refusal comes before anything is stored."""
    market = platform.market
    schema = market.schema(dataset_id)  # NotFound (404) for an unknown dataset
    with tempfile.TemporaryDirectory(prefix="databright-upload-") as tmp:
        path = Path(tmp) / _safe_name(filename)
        path.write_bytes(data)
        # As Market.propose: only this file is checked for repeats (copies of others' data are
        # the evaluators' to find).
        examples = read_proposal(path, schema, known_hashes=set())
    market.check_repeat(dataset_id, examples, account)
    d = market.contract.dataset(dataset_id)
    stored = store_proposal(market.store, examples, schema)
    terms = (
        int(dataset_id),
        cid_to_digest(stored.data_cid),
        stored.merkle_root,
        stored.n_examples,
        cid_to_digest(stored.manifest_cid),
    )
    return UploadOut(
        dataset_id=str(int(dataset_id)),
        contributor=account,
        market=market.contract.address,
        data_cid=stored.data_cid,
        data_cid_digest=_hex(terms[1]),
        manifest_cid=stored.manifest_cid,
        metadata_cid_digest=_hex(terms[4]),
        manifest_root=_hex(terms[2]),
        examples=str(terms[3]),
        commitment=_hex(proposal_commitment(account, *terms)),
        payment_wei=str(int(d.evaluation_fee) + int(d.deposit)),
    )


_FORM: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {
                        FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "The proposal: .csv, .npz or .parquet.",
                        }
                    },
                }
            }
        },
    }
}
_PROBLEMS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": Problem, "description": why, "content": {PROBLEM_TYPE: {}}}
    for code, why in (
        (400, "A form or file the dataset cannot take (its schema, a repeat); one sentence."),
        (401, "Not signed in."),
        (404, "No such dataset."),
        (411, "A body sent without a Content-Length."),
        (413, "The request body is too large."),
        (422, "A parameter breaks the documented rules."),
        (502, "The node answered with an error."),
        (503, "The node is unavailable."),
    )
}

router = APIRouter(prefix="/datasets", tags=["proposals"])


@router.post("/{dataset_id}/uploads", status_code=201, openapi_extra=_FORM, responses=_PROBLEMS)
async def upload(request: Request, dataset_id: DatasetId, account: SignedIn) -> UploadOut:
    """Check a proposal file against the dataset's schema and store it; answers the terms the
    contributor's wallet commits to and proposes (``payment_wei`` as the proposal's value)."""
    # The app's BodyLimit bounds the body before it is read; this holds without it too.
    too_large = HTTPException(
        413, f"uploads are limited to {MAX_UPLOAD_BYTES} bytes; split the file"
    )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        raise too_large
    body = await request.body()
    if len(body) > MAX_UPLOAD_BYTES:
        raise too_large
    filename, data = parse_upload_form(request.headers.get("content-type", ""), body)
    platform: Platform = request.app.state.platform
    # Reading, hashing and storing the file and the chain calls block: off the event loop.
    return await run_in_threadpool(_prepare, platform, dataset_id, account, filename, data)


ALL: list[APIRouter] = [router]
