"""A proposal's upload from the browser over a real node (anvil) and a real uvicorn: the server
checks the file as the SDK does and stores it; the terms it answers are what a wallet then
sends, and the proposal appears on chain. Every refusal is one sentence; the form parser takes
no body that is not one file."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from databright_dev.serving import serving
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import FastAPI, Request
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.errors import InvalidArgument, InvalidProposal
from databright.market import Governance, Market
from databright.server.api.auth import SiweMessage
from databright.server.api.uploads import BODY_LIMITS, MAX_UPLOAD_BYTES, parse_upload_form
from databright.server.limits import BodyLimit
from databright.server.platform import MAX_BODY_BYTES, Platform, create_app
from databright.storage import DatasetSchema, read_proposal, validate_examples

ANVIL = pytest.mark.parametrize("node", ["anvil"], indirect=True)
SCHEMA = DatasetSchema(task="classification", feature_shape=(4,), dtype="float32", labels=(0, 1, 2))
DEPOSIT = 10**15
RNG = np.random.default_rng(5)


def _examples(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Quarter steps: exact in float32 and in decimal text, so CSV and NPZ hold the same values.
    X = (RNG.integers(0, 1024, size=(n, 4)) / 4).astype(np.float32)
    return X, RNG.integers(0, 3, size=n)


def _csv(X: np.ndarray, y: np.ndarray) -> bytes:
    rows = ["a,b,c,d,label"] + [
        ",".join([*map(str, x), str(int(t))]) for x, t in zip(X, y, strict=True)
    ]
    return ("\n".join(rows) + "\n").encode()


def _npz(X: np.ndarray, y: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, X=X, y=y)
    return out.getvalue()


class Site:
    def __init__(self, url: str, market: Market, datasets: list[int], node) -> None:
        self.url, self.market, self.datasets, self.node = url, market, datasets, node

    def browser(self, account) -> requests.Session:
        """A session signed in as ``account`` (SIWE over the real endpoints)."""
        session = requests.Session()
        nonce = session.get(f"{self.url}/api/v1/auth/nonce", timeout=10).json()["nonce"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = SiweMessage(
            domain=urlsplit(self.url).netloc,
            address=account.address,
            uri=self.url,
            version="1",
            chain_id=self.node.chain_id,
            nonce=nonce,
            issued_at=now,
        ).text()
        signature = Account.sign_message(encode_defunct(text=text), account.key).signature
        answer = session.post(
            f"{self.url}/api/v1/auth/siwe",
            json={"message": text, "signature": signature.to_0x_hex()},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return session

    def upload(self, session, dataset_id: int, name: str, data: bytes) -> requests.Response:
        return session.post(
            f"{self.url}/api/v1/datasets/{dataset_id}/uploads",
            files={"file": (name, data)},
            timeout=30,
        )


@pytest.fixture(scope="module")
def site(node, tmp_path_factory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("uploads")
    deploy(connect(node.url, node.accounts[0]), data_dir)
    market = Market.connect(node.url, node.accounts[0], data_dir)
    datasets = []
    for name in ("uploads-a", "uploads-b"):
        X, y = _examples(12)
        initial = validate_examples(X, y, SCHEMA, source="initial")
        datasets.append(
            market.create_dataset(
                name, SCHEMA, initial, Governance(voting_period_s=60, deposit_wei=DEPOSIT)
            )
        )
    # The index thread is not started: an upload reads the chain and writes the blob store.
    server = Platform(node.url, data_dir)
    try:
        with serving(create_app(server)) as url:
            yield Site(url, market, datasets, node)
    finally:
        server.stop()


@ANVIL
def test_an_upload_answers_the_terms_a_wallet_then_proposes(site: Site) -> None:
    contributor = site.node.accounts[1]
    browser = site.browser(contributor)
    ds = site.datasets[0]
    X, y = _examples(20)
    answer = site.upload(browser, ds, "my digits.csv", _csv(X, y))
    assert answer.status_code == 201, answer.text
    terms = answer.json()
    assert terms["contributor"] == contributor.address
    assert terms["market"] == site.market.contract.address
    assert terms["examples"] == "20" and terms["payment_wei"] == str(DEPOSIT)
    # The blobs are in the platform's store, served to anyone who checks them.
    for cid in (terms["data_cid"], terms["manifest_cid"]):
        blob = requests.get(f"{site.url}/ipfs/{cid}", params={"format": "raw"}, timeout=10)
        assert blob.status_code == 200

    # What the browser's wallet sends: the commitment, then the proposal with its payment.
    wallet = site.market.as_account(contributor)
    args = (
        ds,
        bytes.fromhex(terms["data_cid_digest"][2:]),
        bytes.fromhex(terms["manifest_root"][2:]),
        int(terms["examples"]),
        bytes.fromhex(terms["metadata_cid_digest"][2:]),
    )
    wallet.contract.commit_proposal(bytes.fromhex(terms["commitment"][2:]))
    receipt = wallet.contract.propose(*args, value=int(terms["payment_wei"]))
    proposal = site.market.proposal(int(receipt.event("ProposalCreated").args["proposal_id"]))
    assert proposal.contributor == contributor.address and proposal.status == "pending"
    assert proposal.data_cid == terms["data_cid"] and proposal.examples == 20
    stored = site.market.load_proposal_examples(int(proposal.id))
    assert np.array_equal(stored.X, X) and np.array_equal(stored.y, y)

    # The same examples again: pending in this dataset, and owned by their first proposer.
    again = site.upload(browser, ds, "again.csv", _csv(X, y))
    assert again.status_code == 400 and "already in dataset" in again.json()["detail"]
    other = site.upload(site.browser(site.node.accounts[2]), site.datasets[1], "x.csv", _csv(X, y))
    assert other.status_code == 400
    assert f"first proposed by {contributor.address}" in other.json()["detail"]


@ANVIL
def test_an_npz_file_travels_byte_for_byte(site: Site) -> None:
    X, y = _examples(9)
    data = _npz(X, y)
    answer = site.upload(site.browser(site.node.accounts[3]), site.datasets[1], "p.npz", data)
    assert answer.status_code == 201, answer.text
    cid = answer.json()["data_cid"]
    blob = requests.get(f"{site.url}/ipfs/{cid}", params={"format": "raw"}, timeout=10)
    assert blob.status_code == 200 and answer.json()["examples"] == "9"


def _bad_files() -> dict[str, tuple[str, bytes]]:
    X, y = _examples(6)
    labels = y.copy()
    labels[2] = 7
    return {
        "a label the schema lacks": ("labels.csv", _csv(X, labels)),
        "a feature too many (another schema)": (
            "wide.csv",
            b"a,b,c,d,e,label\n" + b"\n".join(b"1,2,3,4,5,0" for _ in range(3)) + b"\n",
        ),
        "not UTF-8": ("latin.csv", b"a,b,c,d,label\n\xe9,1,2,3,0\n"),
        "empty": ("empty.csv", b""),
        "a format the SDK does not read": ("notes.txt", b"1,2,3,4,0\n"),
        "the same example twice": ("twice.csv", _csv(np.repeat(X[:1], 2, 0), np.repeat(y[:1], 2))),
        "not an archive": ("broken.npz", b"PK\x03\x04 not really"),
    }


@ANVIL
@pytest.mark.parametrize("case", list(_bad_files()))
def test_a_file_the_sdk_refuses_is_refused_in_the_sdks_words(
    site: Site, case: str, tmp_path: Path
) -> None:
    name, data = _bad_files()[case]
    local = tmp_path / name
    local.write_bytes(data)
    with pytest.raises(InvalidProposal) as sdk:
        read_proposal(local, SCHEMA, known_hashes=set())
    answer = site.upload(site.browser(site.node.accounts[4]), site.datasets[0], name, data)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == str(sdk.value)


@ANVIL
def test_who_and_where_an_upload_may_go(site: Site) -> None:
    X, y = _examples(5)
    data = _csv(X, y)
    anonymous = site.upload(requests, site.datasets[0], "a.csv", data)
    assert anonymous.status_code == 401 and "sign in" in anonymous.json()["detail"]
    forged = requests.Session()
    forged.cookies.set(
        "databright_session", f"{site.node.accounts[5].address}.9999999999.{'0' * 64}"
    )
    assert site.upload(forged, site.datasets[0], "a.csv", data).status_code == 401
    browser = site.browser(site.node.accounts[5])
    unknown = site.upload(browser, 999, "a.csv", data)
    assert unknown.status_code == 404 and "does not exist" in unknown.json()["detail"]
    assert site.upload(browser, 0, "a.csv", data).status_code == 422


@ANVIL
def test_a_body_that_is_not_one_file_is_refused(site: Site) -> None:
    browser = site.browser(site.node.accounts[6])
    where = f"{site.url}/api/v1/datasets/{site.datasets[0]}/uploads"
    answers = {
        "json": browser.post(where, json={"file": "1,2,3,4,0"}, timeout=10),
        "two files": browser.post(
            where,
            files=[("file", ("a.csv", b"1,2,3,4,0\n")), ("file", ("b.csv", b"x"))],
            timeout=10,
        ),
        "a text field": browser.post(where, files={"file": (None, b"1,2,3,4,0\n")}, timeout=10),
        "another name": browser.post(where, files={"data": ("a.csv", b"1")}, timeout=10),
        "unclosed": browser.post(
            where,
            data=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n1',
            headers={"content-type": "multipart/form-data; boundary=xyz"},
            timeout=10,
        ),
    }
    for case, answer in answers.items():
        assert answer.status_code == 400, (case, answer.text)
        assert "multipart/form-data" in answer.json()["detail"], case


def _form(boundary: bytes, *parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    inner = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return preamble + inner + b"--" + boundary + b"--\r\n" + epilogue


def test_the_form_parser_keeps_the_files_bytes_exactly() -> None:
    content = b"\r\n--xy\r\n\r\n\x00\xff--xyz-\r\n"  # line breaks and near-boundaries inside
    part = b'Content-Disposition: form-data; name="file"; filename="C:\\dir\\p.npz"\r\n'
    part += b"Content-Type: application/octet-stream\r\n\r\n" + content
    body = _form(b"xyz", part, preamble=b"ignored\r\n", epilogue=b"also ignored")
    name, data = parse_upload_form('multipart/form-data; boundary="xyz"', body)
    assert data == content and name.endswith("p.npz")
    with pytest.raises(InvalidArgument, match="boundary"):
        parse_upload_form("multipart/form-data", body)
    with pytest.raises(InvalidArgument, match="0 files"):
        parse_upload_form("multipart/form-data; boundary=xyz", b"--xyz--\r\n")


@settings(max_examples=200, deadline=None, database=None)
@given(body=st.binary(max_size=300), boundary=st.sampled_from(["xyz", "", "a" * 71, "b"]))
def test_no_body_breaks_the_form_parser_other_than_by_refusal(body: bytes, boundary: str) -> None:
    for candidate in (body, b"--xyz\r\n" + body, _form(b"xyz", body)):
        try:
            parse_upload_form(f"multipart/form-data; boundary={boundary}", candidate)
        except InvalidArgument as exc:
            assert "multipart/form-data" in str(exc)


def test_body_limits_can_be_larger_for_some_paths_only() -> None:
    app = FastAPI()

    @app.post("/api/v1/datasets/{ds}/uploads")
    @app.post("/api/v1/other")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, larger=BODY_LIMITS)
    big = b"x" * (MAX_BODY_BYTES + 1)
    with serving(app) as url:
        taken = requests.post(f"{url}/api/v1/datasets/1/uploads", data=big, timeout=10)
        assert taken.json() == {"bytes": len(big)}
        refused = requests.post(f"{url}/api/v1/other", data=big, timeout=10)
    assert refused.status_code == 413 and f"{MAX_BODY_BYTES} bytes" in refused.json()["detail"]
    limits = BodyLimit(app, max_bytes=MAX_BODY_BYTES, larger=BODY_LIMITS)
    assert limits.limit_for("/api/v1/datasets/7/uploads") == MAX_UPLOAD_BYTES
    assert limits.limit_for("/api/v1/datasets/7/uploads/x") == MAX_BODY_BYTES
    # Without ``larger`` the middleware is what it was: one limit for every path.
    assert BodyLimit(app, max_bytes=10).limit_for("/api/v1/datasets/1/uploads") == 10


@ANVIL
def test_a_file_over_the_api_default_reaches_the_upload_route(site: Site) -> None:
    X, y = _examples(2500)  # about 70 KB of CSV: over the 64 KiB every other route accepts
    data = _csv(X, y)
    assert len(data) > MAX_BODY_BYTES
    answer = site.upload(site.browser(site.node.accounts[7]), site.datasets[0], "big.csv", data)
    assert answer.status_code == 201, answer.text
    assert answer.json()["examples"] == "2500"
