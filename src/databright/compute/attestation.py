"""Attestation: turn a machine's evidence into claims a coordinator can act on.

A worker or an evaluator that says "I ran your code in an enclave" proves it with evidence; an
``AttestationProvider`` checks that evidence and returns ``Claims`` (who vouches for it, whether
hardware vouches at all, the code measurement, and the 64 report-data bytes the enclave bound
into the evidence). The coordinator binds its own signing key into that report data
(``report_data_for``), so a quote replayed from another deployment does not verify.

Two providers:

* ``SoftwareProvider`` is for development: a JSON statement signed with an Ethereum key. It
  always says ``hardware_backed=False``, and ``require_hardware`` refuses it unless the caller
  opts in, as Confidential Containers' sample attester and Oasis' unsafe mode do, so an insecure
  setup cannot pass for a secure one by accident.
* ``DcapProvider`` verifies Intel SGX and TDX quotes with ``dcap-qvl`` at a given time against
  collateral passed in (no network here: collateral comes from a PCCS, fetched elsewhere).

The model market's evaluator reports its attestation through the same interface
(``evaluator_attestation``).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

import dcap_qvl
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, keccak, to_canonical_address, to_checksum_address

from databright.errors import InvalidArgument, NotPermitted

__all__ = [
    "CHALLENGE_SIZE",
    "DCAP_TCB_STATUSES",
    "DEFAULT_ACCEPTED_STATUSES",
    "MAX_EVIDENCE_BYTES",
    "REPORT_DATA_SIZE",
    "AttestationProvider",
    "Claims",
    "DcapProvider",
    "SoftwareProvider",
    "check_measurement",
    "check_report_data",
    "dcap_evidence",
    "evaluator_attestation",
    "read_challenge",
    "report_data_for",
    "require_hardware",
]

REPORT_DATA_SIZE: Final = 64  # SGX REPORTDATA and TDX REPORTDATA are both 64 bytes
CHALLENGE_SIZE: Final = 32  # a party's fresh random challenge to a coordinator it may work for
MAX_EVIDENCE_BYTES: Final = 256 * 1024  # a quote is ~5 KB, its collateral ~16 KB: room to spare
# Every TCB status Intel's TCB info can give a platform or quoting enclave.
DCAP_TCB_STATUSES: Final = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    }
)
# Strict like dcap-qvl's own ``QuotePolicy.strict``: anything else is a deliberate choice.
DEFAULT_ACCEPTED_STATUSES: Final = ("UpToDate",)

_SOFTWARE_KIND: Final = "databright-software-attestation-v1"
_SOFTWARE_TCB_STATUS: Final = "SoftwareOnly"
_CLOCK_SKEW_S: Final = 300
_COLLATERAL_KEYS: Final = frozenset(
    {
        "pck_crl_issuer_chain",
        "root_ca_crl",
        "pck_crl",
        "tcb_info_issuer_chain",
        "tcb_info",
        "tcb_info_signature",
        "qe_identity_issuer_chain",
        "qe_identity",
        "qe_identity_signature",
    }
)
# dcap-qvl failure reasons that mean "the collateral is too old for this time", not "bad quote".
_STALE_REASONS: Final = ("Expired", "NotYetValid", "Outdated")


@dataclass(frozen=True, kw_only=True)
class Claims:
    """What verified evidence says; immutable so it can be logged and compared as-is.

    ``measurement`` is lowercase hex: MRENCLAVE for SGX; MRTD followed by RTMR0..RTMR3 for TDX
    (240 bytes), since the RTMRs carry the firmware, kernel and command line a TD booted; the
    statement's own value for the software provider. ``tee`` is ``"SGX"``, ``"TDX"`` or
    ``"none"``; ``signer`` is the address that signed a software statement (``None`` for DCAP,
    where Intel's certificate chain vouches instead).
    """

    provider: str
    hardware_backed: bool
    measurement: str
    report_data: bytes
    tcb_status: str
    advisories: tuple[str, ...]
    verified_at: int
    tee: str
    signer: str | None = field(default=None)


@runtime_checkable
class AttestationProvider(Protocol):
    """Checks one kind of evidence; the coordinator and the evaluator depend only on this."""

    @property
    def name(self) -> str:
        """The provider's name as it appears in ``Claims.provider`` and evaluator reports."""
        ...

    def verify(
        self, evidence: bytes, *, expected_report_data: bytes | None = None, now: int | None = None
    ) -> Claims:
        """Return the claims of ``evidence`` or raise ``NotPermitted`` / ``InvalidArgument``."""
        ...


# --- binding and policy checks shared by every provider ----------------------------------


def report_data_for(address: str) -> bytes:
    """The 64 report-data bytes that bind an enclave's evidence to the coordinator's key.

    keccak256 of the 20-byte address, zero-padded to 64 bytes: the enclave generates the key,
    puts this in its quote, and a verifier that knows the address the coordinator signs with
    can tell the quote was made for that key and no other.
    """
    if not isinstance(address, str) or not is_address(address):
        raise InvalidArgument(
            f"{address!r} is not an Ethereum address; pass the coordinator's 0x-prefixed "
            "20-byte signing address."
        )
    return keccak(to_canonical_address(address)).ljust(REPORT_DATA_SIZE, b"\0")


def check_report_data(claims: Claims, expected: bytes) -> Claims:
    """Refuse claims whose report data is not ``expected``; return them otherwise."""
    if not isinstance(expected, bytes | bytearray) or len(expected) != REPORT_DATA_SIZE:
        raise InvalidArgument(
            f"Expected report data must be exactly {REPORT_DATA_SIZE} bytes; build it with "
            "report_data_for(address)."
        )
    if not hmac.compare_digest(claims.report_data, bytes(expected)):
        raise NotPermitted(
            f"The {claims.provider} evidence binds report data {claims.report_data.hex()[:16]}... "
            "instead of the expected key's; ask the enclave for evidence made for this "
            "coordinator's signing key."
        )
    return claims


def check_measurement(claims: Claims, allowed: Iterable[str]) -> Claims:
    """Refuse claims whose measurement is not on the allow-list; return them otherwise.

    Entries may carry a ``0x`` prefix and any case, as they are copied from build logs.
    """
    allowed_set = {_normal_hex(m) for m in allowed}
    if claims.measurement not in allowed_set:
        raise NotPermitted(
            f"Measurement {claims.measurement[:16]}... of the {claims.provider} evidence is not "
            "on the allow-list; add the reproducibly built measurement to the allow-list or "
            "run the allowed build."
        )
    return claims


def require_hardware(claims: Claims, allow_insecure: bool = False) -> Claims:
    """Refuse claims no hardware vouches for, unless the caller explicitly opts in."""
    if not claims.hardware_backed and not allow_insecure:
        raise NotPermitted(
            f"The {claims.provider} attestation is not hardware-backed; use a TEE provider "
            "such as Intel DCAP, or pass allow_insecure=True for development only."
        )
    return claims


def read_challenge(body: bytes) -> bytes:
    """The challenge of an ``attestation`` request, JSON ``{"challenge": 64 hex digits}`` (what
    :func:`databright.compute.worker.check_coordinator` sends), or ``InvalidArgument``."""
    try:
        challenge = bytes.fromhex(str(json.loads(body)["challenge"]))
    except (ValueError, KeyError, TypeError):
        challenge = b""
    if len(challenge) != CHALLENGE_SIZE:
        raise InvalidArgument(
            f'an attestation request is JSON {{"challenge": {2 * CHALLENGE_SIZE} hex digits}}; '
            "send that."
        )
    return challenge


def evaluator_attestation(claims: Claims) -> dict[str, str | bool]:
    """What the model market's evaluator report carries about how its evaluator was attested."""
    return {
        "provider": claims.provider,
        "hardware_backed": claims.hardware_backed,
        "measurement": claims.measurement,
    }


# --- the software provider ----------------------------------------------------------------


class SoftwareProvider:
    """Development attestation: a statement signed by an Ethereum key, never hardware-backed.

    ``trusted_signers`` limits who may sign (``None``: anyone, for local runs); ``max_age_s``
    bounds how old a statement may be at ``now``, so an old statement is not replayed forever.
    """

    name: Final = "software"

    def __init__(
        self, trusted_signers: Iterable[str] | None = None, *, max_age_s: int = 3600
    ) -> None:
        if isinstance(max_age_s, bool) or not isinstance(max_age_s, int) or max_age_s <= 0:
            raise InvalidArgument(
                f"max_age_s must be a positive whole number of seconds, not {max_age_s!r}."
            )
        self.max_age_s = max_age_s
        self.trusted_signers: frozenset[str] | None = None
        if trusted_signers is not None:
            signers = set()
            for a in trusted_signers:
                if not isinstance(a, str) or not is_address(a):
                    raise InvalidArgument(
                        f"Trusted signer {a!r} is not an Ethereum address; pass 0x-prefixed "
                        "20-byte addresses."
                    )
                signers.add(to_checksum_address(a))
            self.trusted_signers = frozenset(signers)

    @staticmethod
    def attest(
        private_key: bytes | str, *, measurement: str, report_data: bytes, issued_at: int
    ) -> bytes:
        """Make software evidence: what a development worker sends instead of a quote."""
        if not isinstance(report_data, bytes | bytearray) or len(report_data) != REPORT_DATA_SIZE:
            raise InvalidArgument(
                f"Report data must be exactly {REPORT_DATA_SIZE} bytes; build it with "
                "report_data_for(address)."
            )
        if isinstance(issued_at, bool) or not isinstance(issued_at, int) or issued_at < 0:
            raise InvalidArgument(
                f"issued_at must be a unix time in whole seconds, not {issued_at!r}."
            )
        statement = {
            "kind": _SOFTWARE_KIND,
            "measurement": _normal_hex(measurement),
            "report_data": bytes(report_data).hex(),
            "issued_at": issued_at,
        }
        signed = Account.sign_message(encode_defunct(_canonical(statement)), private_key)
        return _canonical({"statement": statement, "signature": "0x" + signed.signature.hex()})

    def verify(
        self, evidence: bytes, *, expected_report_data: bytes | None = None, now: int | None = None
    ) -> Claims:
        """Check the statement's signature, signer and age; it never claims hardware."""
        when = _now(now)
        doc = _load_json(evidence, "software evidence")
        statement, signature = doc.get("statement"), doc.get("signature")
        if set(doc) != {"statement", "signature"} or not isinstance(statement, dict):
            raise InvalidArgument(
                "Software evidence must be a JSON object with a 'statement' object and a "
                "'signature'; make it with SoftwareProvider.attest."
            )
        measurement, report_hex = statement.get("measurement"), statement.get("report_data")
        issued_at = statement.get("issued_at")
        if (
            set(statement) != {"kind", "measurement", "report_data", "issued_at"}
            or statement.get("kind") != _SOFTWARE_KIND
            or not isinstance(measurement, str)
            or not isinstance(report_hex, str)
            or isinstance(issued_at, bool)
            or not isinstance(issued_at, int)
            or not isinstance(signature, str)
        ):
            raise InvalidArgument(
                "The software statement lacks a field or has one of the wrong type; make it "
                "with SoftwareProvider.attest."
            )
        measurement = _normal_hex(measurement)
        report_data = _hex_bytes(report_hex, "report_data")
        if len(report_data) != REPORT_DATA_SIZE:
            raise InvalidArgument(
                f"The software statement's report data is {len(report_data)} bytes, not "
                f"{REPORT_DATA_SIZE}; make it with SoftwareProvider.attest."
            )
        try:
            signer = Account.recover_message(
                encode_defunct(_canonical(statement)), signature=signature
            )
        except Exception as exc:  # eth_keys raises several unrelated types for a bad signature
            raise InvalidArgument(
                "The software statement's signature is not a valid secp256k1 signature; sign "
                "it again with SoftwareProvider.attest."
            ) from exc
        if self.trusted_signers is not None and signer not in self.trusted_signers:
            raise NotPermitted(
                f"Software statement signer {signer} is not a trusted signer; add it to "
                "trusted_signers or sign with a trusted key."
            )
        if issued_at > when + _CLOCK_SKEW_S or when - issued_at > self.max_age_s:
            raise NotPermitted(
                f"The software statement was issued at {issued_at}, outside the accepted "
                f"{self.max_age_s} s before {when}; make a fresh statement."
            )
        claims = Claims(
            provider=self.name,
            hardware_backed=False,
            measurement=measurement,
            report_data=report_data,
            tcb_status=_SOFTWARE_TCB_STATUS,
            advisories=(),
            verified_at=when,
            tee="none",
            signer=signer,
        )
        if expected_report_data is not None:
            check_report_data(claims, expected_report_data)
        return claims


# --- Intel DCAP (SGX and TDX) -------------------------------------------------------------


def dcap_evidence(quote: bytes, collateral: Mapping[str, Any] | None = None) -> bytes:
    """Wrap a quote with its collateral, for a verifier that was given no collateral.

    Collateral is signed by Intel and checked against Intel's root CA, so the attester may send
    it; its freshness is checked against the verification time.
    """
    if not isinstance(quote, bytes | bytearray) or not quote:
        raise InvalidArgument("A DCAP quote must be non-empty bytes; pass the raw quote.")
    doc: dict[str, Any] = {"quote": bytes(quote).hex()}
    if collateral is not None:
        _collateral(collateral)  # refuse malformed collateral here rather than at the verifier
        doc["collateral"] = dict(collateral)
    return _canonical(doc)


class DcapProvider:
    """Verifies Intel SGX and TDX DCAP quotes with ``dcap-qvl``, offline.

    ``collateral`` (the JSON object a PCCS serves, as dcap-qvl's ``QuoteCollateralV3.to_json``)
    is used for every quote; when it is ``None`` each piece of evidence must carry its own
    (``dcap_evidence``). ``accepted_statuses`` are the TCB statuses accepted; quotes with any
    of ``rejected_advisories`` are refused; debug enclaves, whose memory the host can read, are
    refused unless ``allow_debug``.
    """

    name: Final = "intel-dcap"

    def __init__(
        self,
        collateral: Mapping[str, Any] | None = None,
        accepted_statuses: Iterable[str] = DEFAULT_ACCEPTED_STATUSES,
        *,
        rejected_advisories: Iterable[str] = (),
        allow_debug: bool = False,
    ) -> None:
        self._collateral = None if collateral is None else _collateral(collateral)
        statuses = frozenset(accepted_statuses)
        unknown = statuses - DCAP_TCB_STATUSES
        if not statuses or unknown:
            raise InvalidArgument(
                f"Accepted TCB statuses {sorted(unknown) or '(none)'} are not DCAP statuses; "
                f"choose among {', '.join(sorted(DCAP_TCB_STATUSES))}."
            )
        self.accepted_statuses = statuses
        self.rejected_advisories = frozenset(rejected_advisories)
        self.allow_debug = allow_debug

    def verify(
        self, evidence: bytes, *, expected_report_data: bytes | None = None, now: int | None = None
    ) -> Claims:
        """Verify the quote's signatures and TCB at ``now``, then apply this provider's policy."""
        when = _now(now)
        quote, collateral = self._split(evidence)
        try:
            parsed = dcap_qvl.parse_quote(quote)
        except ValueError as exc:
            raise InvalidArgument(
                f"The DCAP quote does not parse ({_first_line(exc)}); send the raw SGX or TDX "
                "quote bytes."
            ) from exc
        try:
            report = dcap_qvl.verify(quote, collateral, when)
        except ValueError as exc:
            reason = _first_line(exc).removeprefix("Verification failed: ")
            advice = (
                "fetch fresh collateral from a PCCS or verify at a time inside its validity"
                if any(word in reason for word in _STALE_REASONS)
                else "obtain a fresh quote from the enclave and matching collateral"
            )
            raise NotPermitted(f"The DCAP quote failed verification ({reason}); {advice}.") from exc
        status, advisories = str(report.status), tuple(str(a) for a in report.advisory_ids)
        if status not in self.accepted_statuses:
            raise NotPermitted(
                f"The platform's TCB status is {status} (advisories: "
                f"{', '.join(advisories) or 'none'}), which this verifier does not accept; "
                "update the platform or add the status to accepted_statuses."
            )
        rejected = sorted(self.rejected_advisories.intersection(advisories))
        if rejected:
            raise NotPermitted(
                f"The platform is affected by rejected advisories {', '.join(rejected)}; "
                "update the platform or remove them from rejected_advisories."
            )
        body = parsed.report
        if isinstance(body, dcap_qvl.SgxEnclaveReport):
            tee = "SGX"
            measurement = bytes(body.mr_enclave).hex()
            debug = bool(bytes(body.attributes)[0] & 0x02)  # ATTRIBUTES.DEBUG
        else:
            tee = "TDX"
            parts = (body.mr_td, body.rt_mr0, body.rt_mr1, body.rt_mr2, body.rt_mr3)
            measurement = b"".join(bytes(p) for p in parts).hex()
            debug = bool(bytes(body.td_attributes)[0] & 0x01)  # TDATTRIBUTES.DEBUG
        if debug and not self.allow_debug:
            raise NotPermitted(
                f"The {tee} quote comes from a debug enclave whose memory the host can read; "
                "run a production build or pass allow_debug=True for development only."
            )
        claims = Claims(
            provider=self.name,
            hardware_backed=True,
            measurement=measurement,
            report_data=bytes(body.report_data),
            tcb_status=status,
            advisories=advisories,
            verified_at=when,
            tee=tee,
        )
        if expected_report_data is not None:
            check_report_data(claims, expected_report_data)
        return claims

    def _split(self, evidence: bytes) -> tuple[bytes, dcap_qvl.QuoteCollateralV3]:
        """Raw quote bytes, or the JSON envelope of ``dcap_evidence``; plus the collateral."""
        if not isinstance(evidence, bytes | bytearray) or not evidence:
            raise InvalidArgument("DCAP evidence must be non-empty bytes; pass the raw quote.")
        if len(evidence) > MAX_EVIDENCE_BYTES:
            raise InvalidArgument(
                f"DCAP evidence of {len(evidence)} bytes exceeds {MAX_EVIDENCE_BYTES}; send "
                "only the quote and its collateral."
            )
        quote, carried = bytes(evidence), None
        if evidence[:1] == b"{":  # quotes start with their version (3, 4 or 5), never "{"
            doc = _load_json(evidence, "DCAP evidence")
            if not isinstance(doc.get("quote"), str) or not set(doc) <= {"quote", "collateral"}:
                raise InvalidArgument(
                    "DCAP evidence JSON must hold a hex 'quote' and optionally a 'collateral' "
                    "object; make it with dcap_evidence."
                )
            quote = _hex_bytes(doc["quote"], "quote")
            if "collateral" in doc:
                carried = _collateral(doc["collateral"])
        # Configured collateral wins: the operator chose it on purpose.
        collateral = self._collateral or carried
        if collateral is None:
            raise InvalidArgument(
                "No collateral to verify the DCAP quote against; pass collateral to "
                "DcapProvider or send it with the quote (dcap_evidence)."
            )
        return quote, collateral


# --- small helpers ------------------------------------------------------------------------


def _now(now: int | None) -> int:
    if now is None:
        return int(time.time())
    if isinstance(now, bool) or not isinstance(now, int) or now < 0:
        raise InvalidArgument(f"now must be a unix time in whole seconds, not {now!r}.")
    return now


def _canonical(obj: Any) -> bytes:
    """One byte string per JSON value, so a signature covers exactly what is verified."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
    if not isinstance(raw, bytes | bytearray):
        raise InvalidArgument(f"The {what} must be bytes, not {type(raw).__name__}.")
    if len(raw) > MAX_EVIDENCE_BYTES:
        raise InvalidArgument(
            f"The {what} is {len(raw)} bytes, more than the {MAX_EVIDENCE_BYTES} accepted; "
            "send only the evidence itself."
        )
    try:
        doc = json.loads(bytes(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"The {what} is not valid UTF-8 JSON; send it as made.") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"The {what} must be a JSON object; send it as made.")
    return doc


def _normal_hex(value: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"A measurement must be a hex string, not {type(value).__name__}.")
    text = value.lower().removeprefix("0x")
    _hex_bytes(text, "measurement")
    if not text:
        raise InvalidArgument("A measurement must not be empty; pass the hex measurement.")
    return text


def _hex_bytes(value: str, what: str) -> bytes:
    try:
        return bytes.fromhex(value.removeprefix("0x"))
    except (ValueError, AttributeError) as exc:
        raise InvalidArgument(
            f"The {what} {value!r:.40} is not even-length hex; send hex."
        ) from exc


def _collateral(collateral: Any) -> dcap_qvl.QuoteCollateralV3:
    if not isinstance(collateral, Mapping) or not set(collateral) >= _COLLATERAL_KEYS:
        raise InvalidArgument(
            "DCAP collateral must be a JSON object with the PCCS collateral fields "
            f"({', '.join(sorted(_COLLATERAL_KEYS))}); pass what a PCCS served."
        )
    try:
        return dcap_qvl.QuoteCollateralV3.from_json(json.dumps(dict(collateral)))
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(
            f"The DCAP collateral does not parse ({_first_line(exc)}); pass what a PCCS served."
        ) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
