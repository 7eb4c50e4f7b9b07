"""Sign-In with Ethereum (EIP-4361): a wallet proves it holds an address, the server answers
with a session cookie.

The browser asks ``GET /auth/nonce``, builds the EIP-4361 message (this server's host as
``domain``, an ``uri`` of this origin, this chain's id, the nonce), has the wallet sign it
(``personal_sign``, EIP-191) and posts message and signature to ``POST /auth/siwe``. The message
is parsed strictly by the ABNF of EIP-4361 (:func:`parse_siwe_message`), checked against this
request and chain, and the nonce is consumed (each is accepted once, for 10 minutes). The
session is a cookie holding the address and its expiry, signed with HMAC-SHA256 under a key
kept in ``session.key`` in the data dir (mode 0600, made on first use): nothing per session is
stored, so any process with the same data dir accepts it. A contract account (a smart wallet
such as a Safe) signs in by ERC-1271: when the signature does not recover to the address and
the address holds code, the server asks the contract, at the chain's latest block, whether the
signature is valid for the message's EIP-191 hash (``isValidSignature`` answering
``0x1626ba7e``); its signature may then be any length up to 4 KB.

The parser is our own rather than ``signinwithethereum`` 5.0.2 (the maintained ``siwe``):
besides pinning older web3 and eth-account than ours, its parser took 6 to 10 ms to read an
honest message and 0.7 to 3.5 s of CPU to refuse hostile ones of under 4 KB, where ours takes
0.1 to 0.3 ms (``benchmarks/siwe_parse.py``); a route anyone may call cannot afford that.

Other routers take the signed-in address with :data:`SignedIn` (401 when there is none), or
read it with :func:`current_account`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import urlsplit

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import to_checksum_address
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.status import HTTP_204_NO_CONTENT

from databright.atomic import fsync_dir, staged_file
from databright.errors import ContractReverted, DamagedRecord, InvalidArgument, NotPermitted
from databright.server.api.problems import PROBLEM_TYPE
from databright.server.api.schemas import Problem
from databright.server.index.sessions import NONCE_TTL_S, consume_nonce, issue_nonce

if TYPE_CHECKING:
    from databright.chain.gateway import Gateway
    from databright.server.platform import Platform

__all__ = [
    "ALL",
    "CLOCK_SKEW_S",
    "MAX_MESSAGE_CHARS",
    "SESSION_COOKIE",
    "SESSION_TTL_S",
    "SignedIn",
    "SiweMessage",
    "current_account",
    "parse_siwe_message",
]

log = logging.getLogger("databright.server")

SESSION_COOKIE: Final = "databright_session"
SESSION_TTL_S: Final = 24 * 3600
#: How far a browser's clock may run ahead of the server's (issued-at, not-before).
CLOCK_SKEW_S: Final = 300
#: EIP-4361 sets no maximum; a message with a statement and a few resources is well below.
MAX_MESSAGE_CHARS: Final = 4096
KEY_FILE: Final = "session.key"
_KEY_BYTES: Final = 32
# Binds a MAC to this use of the key, should the key ever sign anything else.
_MAC_CONTEXT: Final = b"databright session v1\x00"

# --- the EIP-4361 grammar (RFC 3986 pieces, RFC 3339 date-time) --------------------------

_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_HOST = rf"(?:\[[0-9A-Fa-f:.]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*)"
_AUTHORITY = rf"(?:{_USERINFO}@)?{_HOST}(?::[0-9]*)?"
# Every character a URI may hold; its structure is then checked by urlsplit.
_URI = rf"{_SCHEME}:(?:[{_UNRESERVED}{_SUB_DELIMS}:@/?#\[\]]|{_PCT})*"
_DATE_TIME = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)

_HEADER = re.compile(
    rf"(?:(?P<scheme>{_SCHEME})://)?(?P<domain>{_AUTHORITY}) wants you to sign in with your "
    "Ethereum account:"
)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_STATEMENT = re.compile(rf"[{_UNRESERVED}{_SUB_DELIMS}:/?#\[\]@ ]*")
_URI_RE = re.compile(_URI)
_VERSION = re.compile(r"[0-9]{1,9}")
_CHAIN_ID = re.compile(r"[0-9]{1,78}")
_NONCE = re.compile(r"[A-Za-z0-9]{8,}")
_DATE_TIME_RE = re.compile(_DATE_TIME)
_REQUEST_ID = re.compile(rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})*")
_FRACTION = re.compile(r"\.([0-9]+)")


@dataclass(frozen=True)
class SiweMessage:
    """The fields of an EIP-4361 message (``statement``, ``scheme`` and the optional fields
    ``None`` when absent); :meth:`text` writes it back exactly as the ABNF lays it out."""

    domain: str
    address: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: str
    scheme: str | None = None
    statement: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None

    def text(self) -> str:
        head = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [f"{head} wants you to sign in with your Ethereum account:", self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += [
            "",
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {self.issued_at}",
        ]
        for label, value in (
            ("Expiration Time", self.expiration_time),
            ("Not Before", self.not_before),
            ("Request ID", self.request_id),
        ):
            if value is not None:
                lines.append(f"{label}: {value}")
        if self.resources is not None:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)


def _refuse(line: int, expected: str) -> InvalidArgument:
    return InvalidArgument(
        f"line {line} of the message is not {expected}, as EIP-4361 (Sign-In with Ethereum) "
        "lays it out; build the message again"
    )


def _uri(value: str) -> bool:
    if not _URI_RE.fullmatch(value) or value.count("#") > 1:
        return False
    try:
        urlsplit(value)  # brackets that do not make an IPv6 host
    except ValueError:
        return False
    return True


def _timestamp(value: str) -> float | None:
    """Unix seconds of an RFC 3339 date-time, or None when it names no real instant."""
    text = value.upper()
    # datetime keeps microseconds: a finer fraction is cut (a signer may write nanoseconds).
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.timestamp()


def parse_siwe_message(message: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly by its ABNF (lines joined by LF alone, the fields in
    their order, no trailing newline); raises :class:`InvalidArgument` naming the first line
    that does not fit. Nothing is checked against a server here: see ``POST /auth/siwe``."""
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidArgument(
            f"the message has {len(message)} characters, more than the {MAX_MESSAGE_CHARS} "
            "accepted; shorten its statement or resources"
        )
    lines = message.split("\n")
    n = len(lines)

    def line(i: int) -> str | None:
        return lines[i] if i < n else None

    header = _HEADER.fullmatch(lines[0])
    if header is None:
        raise _refuse(1, "'DOMAIN wants you to sign in with your Ethereum account:'")
    address = line(1)
    if address is None or not _ADDRESS.fullmatch(address):
        raise _refuse(2, "an address (0x and 40 hex digits)")
    if line(2) != "":
        raise _refuse(3, "empty")
    i = 3
    statement: str | None = None
    # [ statement LF ] LF: a statement line is there unless an empty line is followed by URI.
    if line(i) != "" or line(i + 1) == "":
        statement = line(i)
        if statement is None or not _STATEMENT.fullmatch(statement):
            raise _refuse(i + 1, "a statement of printable ASCII (RFC 3986 characters)")
        i += 1
    if line(i) != "":
        raise _refuse(i + 1, "empty")
    i += 1

    def field(
        label: str, pattern: re.Pattern[str], what: str, optional: bool = False
    ) -> str | None:
        nonlocal i
        value = line(i)
        prefix = f"{label}: "
        if value is None or not value.startswith(prefix):
            if optional:
                return None
            raise _refuse(i + 1, f"'{prefix}{what}'")
        rest = value[len(prefix) :]
        if not pattern.fullmatch(rest):
            raise _refuse(i + 1, f"'{prefix}{what}'")
        i += 1
        return rest

    uri = field("URI", _URI_RE, "an RFC 3986 URI")
    if uri is not None and not _uri(uri):
        raise _refuse(i, "'URI: ' and an RFC 3986 URI")
    version = field("Version", _VERSION, "1")
    chain_id = field("Chain ID", _CHAIN_ID, "a chain id in decimal digits")
    nonce = field("Nonce", _NONCE, "at least 8 letters and digits")
    stamps: dict[str, str | None] = {}
    for label, optional in (
        ("Issued At", False),
        ("Expiration Time", True),
        ("Not Before", True),
    ):
        stamps[label] = field(label, _DATE_TIME_RE, "an RFC 3339 date-time", optional)
        if stamps[label] is not None and _timestamp(str(stamps[label])) is None:
            raise _refuse(i, f"'{label}: ' and a real RFC 3339 date-time")
    request_id = field("Request ID", _REQUEST_ID, "RFC 3986 path characters", optional=True)
    resources: tuple[str, ...] | None = None
    if line(i) == "Resources:":
        i += 1
        found = []
        while i < n:
            entry = lines[i]
            if not entry.startswith("- ") or not _uri(entry[2:]):
                raise _refuse(i + 1, "'- ' and an RFC 3986 URI (one resource)")
            found.append(entry[2:])
            i += 1
        resources = tuple(found)
    if i < n:
        raise _refuse(i + 1, "a field EIP-4361 allows here (or the message ends too late)")
    assert uri is not None and version is not None and chain_id is not None
    assert nonce is not None and stamps["Issued At"] is not None
    return SiweMessage(
        domain=header["domain"],
        address=address,
        uri=uri,
        version=version,
        chain_id=int(chain_id),
        nonce=nonce,
        issued_at=stamps["Issued At"],
        scheme=header["scheme"],
        statement=statement,
        expiration_time=stamps["Expiration Time"],
        not_before=stamps["Not Before"],
        request_id=request_id,
        resources=resources,
    )


# --- checking a message against this server ----------------------------------------------

_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}


def _authority(authority: str, scheme: str) -> str:
    """An authority compared as browsers send it: lower case, no default port."""
    text = authority.lower()
    host, sep, port = text.rpartition(":")
    if sep and "]" not in port and port == _DEFAULT_PORTS.get(scheme.lower()):
        return host
    return text


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail)


def _check(message: SiweMessage, request: Request, chain_id: int, now: float) -> None:
    """Every check of the message against this request, chain and clock; raises
    :class:`NotPermitted` (a 401) with the first failure."""
    scheme = request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    here = _authority(host, scheme)
    if message.scheme is not None and message.scheme.lower() != scheme:
        raise NotPermitted(
            f"the message is for scheme {message.scheme}, but this server is reached over "
            f"{scheme}; sign a message built on this page"
        )
    if _authority(message.domain, scheme) != here:
        raise NotPermitted(
            f"the message signs in to {message.domain}, not to {host}; sign a message built "
            "on this server's page"
        )
    parts = urlsplit(message.uri)
    if parts.scheme.lower() != scheme or _authority(parts.netloc, scheme) != here:
        raise NotPermitted(
            f"the message's URI {message.uri} is not on this server's origin "
            f"({scheme}://{host}); sign a message built on this server's page"
        )
    if message.version != "1":
        raise NotPermitted(
            f"the message is of version {message.version}; this server accepts version 1"
        )
    if message.chain_id != chain_id:
        raise NotPermitted(
            f"the message is for chain {message.chain_id}, but this market is on chain "
            f"{chain_id}; switch the wallet's network and sign again"
        )
    if to_checksum_address(message.address) != message.address:
        raise NotPermitted(
            f"the address {message.address} is not written with its EIP-55 checksum "
            f"({to_checksum_address(message.address)}); build the message with the "
            "checksummed address"
        )
    issued = _timestamp(message.issued_at)
    assert issued is not None  # the parser checked it
    if issued > now + CLOCK_SKEW_S:
        raise NotPermitted(
            f"the message was issued at {message.issued_at}, in the future by the server's "
            "clock; check the computer's clock and sign again"
        )
    if message.expiration_time is not None:
        ends = _timestamp(message.expiration_time)
        if ends is not None and ends <= now:
            raise NotPermitted(f"the message expired at {message.expiration_time}; sign a new one")
    if message.not_before is not None:
        starts = _timestamp(message.not_before)
        if starts is not None and starts > now + CLOCK_SKEW_S:
            raise NotPermitted(
                f"the message is not valid before {message.not_before}; sign in then"
            )


def _signer(message: str, signature: str) -> str:
    try:
        return str(
            Account.recover_message(
                encode_defunct(text=message), signature=bytes.fromhex(signature[2:])
            )
        )
    except (BadSignature, ValidationError, ValueError) as exc:  # no point, bad v, s or r
        raise InvalidArgument(
            "the signature is not a valid Ethereum signature of this message; sign it again "
            "with personal_sign"
        ) from exc


#: What ``isValidSignature(bytes32,bytes)`` answers for a valid signature (ERC-1271).
ERC1271_MAGIC: Final = bytes.fromhex("1626ba7e")


def _wallet_accepts(gateway: Gateway, address: str, message: str, signature: str) -> bool:
    """Whether the contract at ``address`` accepts ``signature`` of ``message`` by ERC-1271
    (False for a contract that reverts or answers anything else). A node that does not answer
    raises ``NodeUnreachable`` (a 503)."""
    digest = defunct_hash_message(text=message)
    data = ERC1271_MAGIC + abi_encode(["bytes32", "bytes"], [digest, bytes.fromhex(signature[2:])])
    try:
        answer = gateway.call(address, data, "latest", "ERC-1271 isValidSignature")
    except ContractReverted:
        return False
    return answer[:4] == ERC1271_MAGIC and len(answer) == 32 and not any(answer[4:])


def _verify(gateway: Gateway, message: SiweMessage, text: str, signature: str) -> None:
    """The signature is the message's account's, by its key or by its contract (ERC-1271);
    raises ``NotPermitted`` (a 401) or, for a malformed key signature, ``InvalidArgument``.
    The node is asked only when the signature is not the account's key's."""
    malformed: InvalidArgument | None = None
    signer: str | None = None
    if len(signature) == 132:  # 0x and 65 bytes: a key's signature
        try:
            signer = _signer(text, signature)
        except InvalidArgument as exc:
            malformed = exc
    if signer == message.address:
        return
    if gateway.has_code(message.address):
        if _wallet_accepts(gateway, message.address, text, signature):
            return
        if signer is None:
            raise NotPermitted(
                f"the signature is not {message.address}'s: its contract does not accept it "
                "(ERC-1271); sign again with a key the wallet accepts"
            )
    elif malformed is not None:
        raise malformed
    if signer is not None:
        raise NotPermitted(
            f"the signature is {signer}'s, not {message.address}'s; sign with the account "
            "the message names"
        )
    raise NotPermitted(
        f"the signature is not {message.address}'s: a key's signature is 65 bytes, and the "
        "account holds no contract to ask (ERC-1271); sign again with personal_sign"
    )


# --- the session cookie -----------------------------------------------------------------

_KEY_LOCK = threading.Lock()


def _load_key(data_dir: Path) -> bytes:
    """The server's session key, made (32 random bytes, mode 0600) on first use; a file of
    another size is refused rather than replaced, since replacing it ends every session."""
    path = data_dir / KEY_FILE
    if not path.exists():
        with staged_file(data_dir, prefix=".session-key-") as (tmp, f):
            # mkstemp makes the file 0600 whatever the umask: the key is never readable by others.
            f.write(secrets.token_bytes(_KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # never overwrites: two servers starting at once share one key
                fsync_dir(data_dir)
            except FileExistsError:
                pass
    key = path.read_bytes()
    if len(key) != _KEY_BYTES:
        raise DamagedRecord(
            f"{path} is not a session key ({len(key)} bytes, not {_KEY_BYTES}); delete it and "
            "the server makes a new one (everyone signs in again)"
        )
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; chmod 600 it", path)
    return key


def _session_key(request: Request) -> bytes:
    state = request.app.state
    key: bytes | None = getattr(state, "session_key", None)
    if key is None:
        with _KEY_LOCK:
            key = getattr(state, "session_key", None)
            if key is None:
                key = _load_key(Path(_platform(request).market.data_dir))
                state.session_key = key
    return key


def _mac(key: bytes, payload: str) -> str:
    return hmac.new(key, _MAC_CONTEXT + payload.encode(), hashlib.sha256).hexdigest()


def _token(key: bytes, address: str, expires_at: int) -> str:
    payload = f"{address}.{expires_at}"
    return f"{payload}.{_mac(key, payload)}"


_TOKEN = re.compile(r"(0x[0-9a-fA-F]{40})\.([0-9]{1,12})\.([0-9a-f]{64})")


def _session(request: Request, now: float | None = None) -> tuple[str, int] | None:
    raw = request.cookies.get(SESSION_COOKIE)
    found = _TOKEN.fullmatch(raw) if raw else None
    if found is None:
        return None
    address, expires, mac = found.groups()
    if not hmac.compare_digest(_mac(_session_key(request), f"{address}.{expires}"), mac):
        return None
    if int(expires) <= (time.time() if now is None else now):
        return None
    return to_checksum_address(address), int(expires)


def current_account(request: Request) -> str | None:
    """The checksummed address of the request's valid session cookie, else None."""
    session = _session(request)
    return None if session is None else session[0]


def _signed_in(request: Request) -> str:
    account = current_account(request)
    if account is None:
        raise _unauthorized(
            "sign in with Ethereum first (POST /api/v1/auth/siwe); the session may have expired"
        )
    return account


#: A route parameter holding the signed-in account's checksummed address (401 without one).
SignedIn = Annotated[str, Depends(_signed_in)]


# --- the routes -------------------------------------------------------------------------


class NonceOut(BaseModel):
    nonce: str = Field(description="Put it in the message's Nonce field; valid once, 10 min.")
    expires_in_s: int = NONCE_TTL_S


class SiweIn(BaseModel):
    message: str = Field(max_length=MAX_MESSAGE_CHARS, description="The EIP-4361 message.")
    signature: str = Field(
        pattern=r"^0x(?:[0-9a-fA-F]{2}){1,4096}$",
        description="personal_sign of the message (65 bytes), or a contract account's "
        "ERC-1271 signature.",
    )


class SessionOut(BaseModel):
    address: str = Field(description="The signed-in account, EIP-55 checksummed.")
    expires_at: int = Field(description="When the session ends (unix seconds).")


def _documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    why = {
        400: "A message that is not EIP-4361, or a signature that is not one.",
        401: "Not signed in, or the sign-in was refused (domain, chain, nonce, time, signer).",
        411: "A body sent without a Content-Length.",
        413: "The request body is too large.",
        422: "A field breaks the documented rules.",
        503: "The index database is unavailable.",
    }
    return {
        c: {"model": Problem, "description": why[c], "content": {PROBLEM_TYPE: {}}} for c in codes
    }


router = APIRouter(prefix="/auth", tags=["auth"])


@router.get("/nonce", responses=_documented(503))
def nonce(request: Request, response: Response) -> NonceOut:
    """A fresh nonce for a Sign-In with Ethereum message, accepted once within 10 minutes."""
    response.headers["Cache-Control"] = "no-store"
    return NonceOut(nonce=issue_nonce(_platform(request).engine, int(time.time())))


@router.post("/siwe", responses=_documented(400, 401, 411, 413, 422, 503))
def sign_in(request: Request, response: Response, body: SiweIn) -> SessionOut:
    """Check a signed EIP-4361 message and start a 24-hour session (the
    ``databright_session`` cookie: HttpOnly, SameSite=Strict)."""
    platform = _platform(request)
    message = parse_siwe_message(body.message)
    now = time.time()
    try:
        gateway = platform.market.gateway
        _check(message, request, gateway.chain_id, now)
        _verify(gateway, message, body.message, body.signature)
        # Last, so that a refused attempt leaves the nonce for a corrected message.
        consume_nonce(platform.engine, message.nonce, int(now))
    except NotPermitted as exc:
        raise _unauthorized(str(exc)) from exc
    expires_at = int(now) + SESSION_TTL_S
    response.set_cookie(
        SESSION_COOKIE,
        _token(_session_key(request), message.address, expires_at),
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(address=message.address, expires_at=expires_at)


@router.get("/me", responses=_documented(401))
def me(request: Request) -> SessionOut:
    """The signed-in account and when its session ends (401 when none)."""
    session = _session(request)
    if session is None:
        raise _unauthorized(
            "not signed in (or the session expired); sign in with POST /api/v1/auth/siwe"
        )
    return SessionOut(address=session[0], expires_at=session[1])


@router.post("/logout", status_code=HTTP_204_NO_CONTENT, responses=_documented(411, 413))
def logout(request: Request, response: Response) -> None:
    """End the session in this browser (the cookie is cleared)."""
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


ALL: list[APIRouter] = [router]
