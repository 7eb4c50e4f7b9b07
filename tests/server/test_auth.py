"""Sign-In with Ethereum over a real node (anvil), a real uvicorn and both databases: a wallet
key signs an EIP-4361 message, the server answers a session cookie; every refusal is a problem
document and leaves no session; the parser takes no text that breaks the ABNF and no text makes
the server fail."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from databright_dev.serving import serving
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.errors import DamagedRecord, InvalidArgument
from databright.server.api.auth import (
    SESSION_COOKIE,
    SESSION_TTL_S,
    SiweMessage,
    _load_key,
    parse_siwe_message,
)
from databright.server.index.sessions import NONCE_TTL_S, AuthNonce
from databright.server.platform import Platform, create_app

# Sign-in reads the chain id only: one node keeps the file fast; both databases hold nonces.
ANVIL = pytest.mark.parametrize("node", ["anvil"], indirect=True)


def _postgres_url(stack: ExitStack) -> str:
    from databright_dev.postgres import POSTGRES_URL, scratch_schema
    from sqlalchemy.exc import OperationalError

    try:
        return stack.enter_context(scratch_schema(POSTGRES_URL))
    except OperationalError as exc:
        reason = f"no PostgreSQL answers at {POSTGRES_URL} ({type(exc).__name__})"
        if os.environ.get("DATABRIGHT_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + "; CI requires it (DATABRIGHT_REQUIRE_POSTGRES=1)")
        pytest.skip(reason + "; set DATABRIGHT_TEST_POSTGRES")


@pytest.fixture(scope="module")
def data_dir(node, tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("auth")
    deploy(connect(node.url, node.accounts[0]), data_dir)
    return data_dir


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, node, data_dir, tmp_path_factory) -> Iterator[tuple[str, Platform]]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            database_url = f"sqlite:///{tmp_path_factory.mktemp('idx') / 'index.sqlite3'}"
        else:
            database_url = _postgres_url(stack)
        # The index thread is not started: sign-in needs the database and the chain id only.
        server = Platform(node.url, data_dir, database_url=database_url)
        try:
            with serving(create_app(server)) as url:
                yield url, server
        finally:
            server.stop()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _nonce(url: str) -> str:
    answer = requests.get(f"{url}/api/v1/auth/nonce", timeout=10)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    return str(answer.json()["nonce"])


def _message(url: str, account, nonce: str, chain: int, /, **changes) -> SiweMessage:
    message = SiweMessage(
        domain=urlsplit(url).netloc,
        address=account.address,
        statement="Sign in to DataBright.",
        uri=f"{url}/",
        version="1",
        chain_id=chain,
        nonce=nonce,
        issued_at=_iso(time.time()),
    )
    return replace(message, **changes)


def _sign(account, text: str) -> str:
    return Account.sign_message(encode_defunct(text=text), account.key).signature.to_0x_hex()


def _post(url: str, text: str, signature: str, session=requests) -> requests.Response:
    return session.post(
        f"{url}/api/v1/auth/siwe", json={"message": text, "signature": signature}, timeout=10
    )


@ANVIL
def test_a_wallet_signs_in_gets_a_session_and_signs_out(site, node) -> None:
    url, server = site
    account = node.accounts[1]
    browser = requests.Session()
    nonce = _nonce(url)
    assert re.fullmatch(r"[A-Za-z0-9]{8,}", nonce) and nonce != _nonce(url)
    text = _message(url, account, nonce, node.chain_id).text()
    answer = _post(url, text, _sign(account, text), browser)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["address"] == account.address
    assert abs(body["expires_at"] - (time.time() + SESSION_TTL_S)) < 60
    cookie = answer.headers["set-cookie"]
    for attribute in ("HttpOnly", "Max-Age=86400", "Path=/", "SameSite=strict"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http here: a Secure cookie would never return
    me = browser.get(f"{url}/api/v1/auth/me", timeout=10)
    assert me.status_code == 200 and me.json()["address"] == account.address
    # The key that signs sessions: made once, readable by its owner only, never in a response.
    key_file = Path(server.market.data_dir) / "session.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().hex() not in answer.text + cookie

    out = browser.post(f"{url}/api/v1/auth/logout", timeout=10)
    assert out.status_code == 204 and 'databright_session=""' in out.headers["set-cookie"]
    assert browser.get(f"{url}/api/v1/auth/me", timeout=10).status_code == 401


@ANVIL
def test_messages_are_read_as_eip_4361_writes_them(site, node) -> None:
    """Every optional field, an explicit scheme, no statement, nanosecond time stamps and a
    +02:00 offset all sign in."""
    url, _ = site
    account = node.accounts[2]
    now = time.time()
    text = _message(
        url,
        account,
        _nonce(url),
        node.chain_id,
        scheme="http",
        statement=None,
        issued_at=datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z"),
        expiration_time=_iso(now + 600),
        not_before=datetime.fromtimestamp(now - 60).astimezone().isoformat(),
        request_id="req-1",
        resources=("ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",),
    ).text()
    assert "\n\n\nURI: " in text  # no statement: the two empty lines the ABNF asks
    answer = _post(url, text, _sign(account, text))
    assert answer.status_code == 200, answer.text


def _expire_nonce(server: Platform, nonce: str) -> None:
    with server.engine.begin() as c:
        c.execute(
            update(AuthNonce)
            .where(AuthNonce.nonce == nonce)
            .values(issued_at=int(time.time()) - NONCE_TTL_S - 1)
        )


REFUSALS = {
    # name: (changes to the message, status, words of the answer)
    "wrong domain": ({"domain": "evil.example"}, 401, "not to"),
    "wrong port": ({"domain": "127.0.0.1:1"}, 401, "not to"),
    "wrong scheme": ({"scheme": "https"}, 401, "scheme"),
    "uri elsewhere": ({"uri": "https://evil.example/login"}, 401, "origin"),
    "wrong chain": ({"chain_id": 1}, 401, "chain"),
    "version 2": ({"version": "2"}, 401, "version 1"),
    "unknown nonce": ({"nonce": "abcdefgh12345678"}, 401, "not issued"),
    "expired": ({"expiration_time": "2020-01-01T00:00:00Z"}, 401, "expired"),
    "issued in the future": ({"issued_at": _iso(time.time() + 3600)}, 401, "future"),
    "not yet valid": ({"not_before": _iso(time.time() + 3600)}, 401, "not valid before"),
    "unchecksummed address": ({"lowercase": True}, 401, "checksum"),
    "other signer": ({"signer": 3}, 401, "not"),
    "bad signature": ({"signature": "0x" + "00" * 65}, 400, "not a valid"),
    "malformed message": ({"text": "hello"}, 400, "line 1"),
    "trailing newline": ({"append": "\n"}, 400, "line 11"),
    "short nonce": ({"nonce": "abc"}, 400, "line 9"),
    "signature not hex": ({"signature": "0x" + "zz" * 65}, 422, "signature"),
    "short signature of a key's account": ({"signature": "0x1234"}, 401, "65 bytes"),
}


@ANVIL
@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_is_one_sentence_and_leaves_no_session(site, node, case) -> None:
    url, _ = site
    changes, status, says = dict(REFUSALS[case][0]), REFUSALS[case][1], REFUSALS[case][2]
    account = node.accounts[4]
    nonce = _nonce(url)
    signer = node.accounts[changes.pop("signer", 4)]
    lowercase = changes.pop("lowercase", False)
    text = changes.pop("text", None)
    signature = changes.pop("signature", None)
    append = changes.pop("append", "")
    if lowercase:
        changes["address"] = account.address.lower()
    text = (text or _message(url, account, nonce, node.chain_id, **changes).text()) + append
    browser = requests.Session()
    answer = _post(url, text, signature or _sign(signer, text), browser)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    detail = answer.json()["detail"]
    assert says in detail and detail.count(". ") == 0 and "Traceback" not in answer.text
    assert "set-cookie" not in answer.headers
    assert browser.get(f"{url}/api/v1/auth/me", timeout=10).status_code == 401
    # A refused message does not use its nonce up: the right message still signs in with it.
    if "nonce" not in changes:
        good = _message(url, account, nonce, node.chain_id).text()
        assert _post(url, good, _sign(account, good)).status_code == 200


# A smart wallet as a contract account: it accepts what its owner's key signed (ERC-1271).
WALLET = """
# pragma version ~=0.4.3
owner: public(address)


@deploy
def __init__(owner: address):
    self.owner = owner


@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[65]) -> bytes4:
    r: bytes32 = extract32(signature, 0)
    s: bytes32 = extract32(signature, 32)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if len(signature) == 65 and ecrecover(digest, v, r, s) == self.owner:
        return 0x1626ba7e
    return 0xffffffff
"""


@pytest.fixture(scope="module")
def wallet(node) -> str:
    import vyper
    from eth_abi import encode

    out = vyper.compile_code(WALLET, output_formats=["bytecode"])
    owner = node.accounts[6].address
    initcode = bytes.fromhex(out["bytecode"][2:]) + encode(["address"], [owner])
    receipt = connect(node.url, node.accounts[0]).send(None, initcode, what="deploy a wallet")
    assert receipt.contract_address is not None
    return str(receipt.contract_address)


@ANVIL
def test_a_contract_account_signs_in_by_erc_1271(site, node, wallet) -> None:
    url, _ = site
    owner, stranger = node.accounts[6], node.accounts[7]
    text = _message(url, _Named(wallet), _nonce(url), node.chain_id).text()
    # the owner's key signs for the wallet; the wallet's contract says so
    browser = requests.Session()
    answer = _post(url, text, _sign(owner, text), browser)
    assert answer.status_code == 200, answer.text
    assert answer.json()["address"] == wallet
    assert browser.get(f"{url}/api/v1/auth/me", timeout=10).json()["address"] == wallet
    # anyone else's signature, one longer than the wallet reads, or none it can read: refused
    for signed, says in (
        (lambda t: _sign(stranger, t), f"is {stranger.address}'s, not {wallet}'s"),
        (lambda t: _sign(owner, t) + "00", f"not {wallet}'s"),
        (lambda t: "0x" + "00" * 65, f"not {wallet}'s"),
    ):
        text = _message(url, _Named(wallet), _nonce(url), node.chain_id).text()
        refused = _post(url, text, signed(text))
        assert refused.status_code == 401, refused.text
        assert says in refused.json()["detail"] and "set-cookie" not in refused.headers


class _Named:
    """An account known by its address only (a contract holds no key)."""

    def __init__(self, address: str) -> None:
        self.address = address


@ANVIL
def test_a_nonce_signs_in_once_and_only_while_fresh(site, node) -> None:
    url, server = site
    account = node.accounts[5]
    text = _message(url, account, _nonce(url), node.chain_id).text()
    signature = _sign(account, text)
    assert _post(url, text, signature).status_code == 200
    again = _post(url, text, signature)
    assert again.status_code == 401 and "used already" in again.json()["detail"]

    stale = _nonce(url)
    _expire_nonce(server, stale)
    text = _message(url, account, stale, node.chain_id).text()
    late = _post(url, text, _sign(account, text))
    assert late.status_code == 401 and "expired" in late.json()["detail"]


@ANVIL
def test_only_cookies_the_server_signed_and_that_have_not_expired_count(site, node) -> None:
    url, server = site
    account = node.accounts[6]
    key = (Path(server.market.data_dir) / "session.key").read_bytes()

    def token(address: str, expires: int, key: bytes = key) -> str:
        payload = f"{address}.{expires}"
        mac = hmac.new(key, b"databright session v1\x00" + payload.encode(), hashlib.sha256)
        return f"{payload}.{mac.hexdigest()}"

    def me(value: str) -> int:
        answer = requests.get(f"{url}/api/v1/auth/me", cookies={SESSION_COOKIE: value}, timeout=10)
        return answer.status_code

    later = int(time.time()) + 600
    assert me(token(account.address, later)) == 200
    assert me(token(account.address, int(time.time()) - 1)) == 401  # expired
    assert me(token(account.address, later, os.urandom(32))) == 401  # another key
    forged = token(account.address, later).replace(account.address, node.accounts[7].address)
    assert me(forged) == 401  # the MAC binds the address
    assert me("garbage") == 401 and me("") == 401


def test_the_session_key_is_made_once_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    first = _load_key(tmp_path)
    assert len(first) == 32 and _load_key(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "session.key").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["session.key"]  # no temp file left
    (tmp_path / "session.key").write_bytes(b"short")
    with pytest.raises(DamagedRecord, match="delete it"):
        _load_key(tmp_path)


# --- the parser ---------------------------------------------------------------------------

SPEC_EXAMPLE = (
    "example.com:3388 wants you to sign in with your Ethereum account:\n"
    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n"
    "I accept the ExampleOrg Terms of Service: https://example.com/tos\n\n"
    "URI: https://example.com/login\nVersion: 1\nChain ID: 1\nNonce: 32891756\n"
    "Issued At: 2021-09-30T16:25:24Z\nResources:\n"
    "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
    "- https://example.com/my-web2-claim.json"
)


def test_the_specifications_example_parses_and_writes_back_the_same() -> None:
    message = parse_siwe_message(SPEC_EXAMPLE)
    assert (message.domain, message.chain_id, message.nonce) == ("example.com:3388", 1, "32891756")
    assert message.statement.startswith("I accept") and len(message.resources) == 2
    assert message.text() == SPEC_EXAMPLE


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (SPEC_EXAMPLE.replace("wants you", "wants  you"), 1),
        (SPEC_EXAMPLE.replace("0xC02aaA39", "0xC02aaA3"), 2),
        (SPEC_EXAMPLE.replace("Service: https", "Service:\nhttps"), 5),
        (SPEC_EXAMPLE.replace("Terms", 'Terms "quoted"'), 4),
        (SPEC_EXAMPLE.replace("Version: 1\n", ""), 7),
        (SPEC_EXAMPLE.replace("Nonce: 32891756", "Nonce: 3289-1756"), 9),
        (SPEC_EXAMPLE.replace("2021-09-30", "2021-13-30"), 10),
        (SPEC_EXAMPLE.replace("URI: https://", "URI: https ://"), 6),
        (SPEC_EXAMPLE.replace("\n", "\r\n"), 1),
        (SPEC_EXAMPLE.replace("- https", "-https"), 13),
        (SPEC_EXAMPLE + "\nExtra: field", 14),
    ],
)
def test_text_that_breaks_the_abnf_is_refused_naming_its_line(text: str, line: int) -> None:
    with pytest.raises(InvalidArgument, match=rf"^line {line} of the message is not"):
        parse_siwe_message(text)


_uri_text = st.from_regex(
    r"https?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[A-Za-z0-9._~-]{0,10})*", fullmatch=True
)
_stamp = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.isoformat().replace("+00:00", "Z"))
_messages = st.builds(
    SiweMessage,
    domain=st.from_regex(r"[a-z0-9.-]{1,30}(:[0-9]{1,5})?", fullmatch=True),
    address=st.binary(min_size=20, max_size=20).map(to_checksum_address),
    uri=_uri_text,
    version=st.just("1"),
    chain_id=st.integers(min_value=1, max_value=2**256),
    nonce=st.from_regex(r"[A-Za-z0-9]{8,40}", fullmatch=True),
    issued_at=_stamp,
    scheme=st.sampled_from([None, "http", "https"]),
    statement=st.none() | st.from_regex(r"[A-Za-z0-9 .,:/?#@!$&'()*+;=~_-]{0,60}", fullmatch=True),
    expiration_time=st.none() | _stamp,
    not_before=st.none() | _stamp,
    request_id=st.none() | st.from_regex(r"[A-Za-z0-9:@._~-]{0,20}", fullmatch=True),
    resources=st.none() | st.lists(_uri_text, max_size=3).map(tuple),
)


@settings(max_examples=50, deadline=None, database=None)
@given(_messages)
def test_any_message_the_abnf_allows_round_trips(message: SiweMessage) -> None:
    assert parse_siwe_message(message.text()) == message


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.text(max_size=600) | st.builds(lambda a, b: a + b, st.just(SPEC_EXAMPLE[:200]), st.text())
)
def test_no_text_breaks_the_parser_other_than_by_refusal(text: str) -> None:
    try:
        parse_siwe_message(text)
    except InvalidArgument as exc:
        assert str(exc).count(". ") == 0


def _mutations() -> st.SearchStrategy[str]:
    """The spec's example with a few characters replaced, inserted or deleted."""

    def mutate(ops: list[tuple[int, int, str]]) -> str:
        text = SPEC_EXAMPLE
        for kind, where, char in ops:
            at = where % (len(text) + 1)
            if kind == 0:
                text = text[:at] + char + text[at + 1 :]
            elif kind == 1:
                text = text[:at] + char + text[at:]
            else:
                text = text[:at] + text[at + 1 :]
        return text

    op = st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.characters())
    return st.lists(op, min_size=1, max_size=4).map(mutate)


@ANVIL
def test_no_text_posted_makes_the_server_fail(site, node) -> None:
    url, _ = site
    account = node.accounts[8]

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(text=st.text(max_size=300) | _mutations(), own=st.booleans())
    def post(text: str, own: bool) -> None:
        signature = _sign(account, text) if own else "0x" + "11" * 65
        answer = _post(url, text, signature)
        assert answer.status_code in (400, 401, 422), answer.text
        assert answer.headers["content-type"] == "application/problem+json"

    post()
