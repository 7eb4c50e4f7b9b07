"""Attestation providers against real evidence: Intel's published sample quotes at their pinned
times (tests/fixtures/dcap/README.md), and software statements signed with real keys."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.compute.attestation import (
    REPORT_DATA_SIZE,
    AttestationProvider,
    Claims,
    DcapProvider,
    SoftwareProvider,
    check_measurement,
    check_report_data,
    dcap_evidence,
    evaluator_attestation,
    report_data_for,
    require_hardware,
)
from databright.errors import DataBrightError, InvalidArgument, NotPermitted

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dcap"
SGX_TIME = 1750334171
TDX_TIME = 1750331763
SGX_STATUS = "ConfigurationAndSWHardeningNeeded"
SGX_ADVISORIES = ("INTEL-SA-00289", "INTEL-SA-00615")
SGX_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
TDX_MRTD = (
    "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407"
    "de03ae6dc5f87f27428b2538873118b7"
)
# Signed part of each quote: the 48-byte header and the report body (SGX 384, TDX 1.0 584).
SGX_SIGNED = 48 + 384
TDX_SIGNED = 48 + 584

KEY = "0x" + "11" * 32
OTHER_KEY = "0x" + "22" * 32
ADDRESS = Account.from_key(KEY).address
OTHER_ADDRESS = Account.from_key(OTHER_KEY).address
NOW = 1_750_000_000


def _quote(name: str) -> bytes:
    return (FIXTURES / f"{name}_quote").read_bytes()


def _collateral(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / f"{name}_quote_collateral.json").read_text())
    return doc


def _one_sentence(exc: BaseException) -> None:
    text = str(exc)
    assert "\n" not in text and text.endswith(".") and text[0].isupper(), text


# --- Intel DCAP ---------------------------------------------------------------------------


def test_sgx_sample_quote_verifies_at_pinned_time_with_its_status() -> None:
    provider = DcapProvider(_collateral("sgx"), accepted_statuses=("UpToDate", SGX_STATUS))
    claims = provider.verify(_quote("sgx"), now=SGX_TIME)
    assert isinstance(provider, AttestationProvider)
    assert claims.provider == "intel-dcap" and claims.hardware_backed and claims.tee == "SGX"
    assert claims.tcb_status == SGX_STATUS and claims.advisories == SGX_ADVISORIES
    assert claims.measurement == SGX_MRENCLAVE
    assert claims.report_data == b"Hello, world!".ljust(REPORT_DATA_SIZE, b"\0")
    assert claims.verified_at == SGX_TIME and claims.signer is None


def test_tdx_sample_quote_verifies_up_to_date_at_pinned_time() -> None:
    claims = DcapProvider(_collateral("tdx")).verify(_quote("tdx"), now=TDX_TIME)
    assert claims.tee == "TDX" and claims.hardware_backed
    assert claims.tcb_status == "UpToDate" and claims.advisories == ()
    # MRTD then RTMR0..3, 48 bytes each
    assert len(claims.measurement) == 2 * 5 * 48 and claims.measurement.startswith(TDX_MRTD)
    assert len(claims.report_data) == REPORT_DATA_SIZE
    require_hardware(claims)


def test_default_policy_refuses_a_status_that_is_not_up_to_date() -> None:
    with pytest.raises(NotPermitted, match=SGX_STATUS) as info:
        DcapProvider(_collateral("sgx")).verify(_quote("sgx"), now=SGX_TIME)
    _one_sentence(info.value)


def test_rejected_advisory_refuses_the_quote() -> None:
    provider = DcapProvider(
        _collateral("sgx"), (SGX_STATUS,), rejected_advisories=("INTEL-SA-00615",)
    )
    with pytest.raises(NotPermitted, match="INTEL-SA-00615") as info:
        provider.verify(_quote("sgx"), now=SGX_TIME)
    _one_sentence(info.value)


@pytest.mark.parametrize(
    ("name", "signed", "when"), [("sgx", SGX_SIGNED, SGX_TIME), ("tdx", TDX_SIGNED, TDX_TIME)]
)
def test_flipping_any_byte_of_the_signed_part_fails(name: str, signed: int, when: int) -> None:
    provider = DcapProvider(_collateral(name), accepted_statuses=("UpToDate", SGX_STATUS))
    quote = _quote(name)
    for i in range(signed):
        bad = bytearray(quote)
        bad[i] ^= 0x01
        with pytest.raises((NotPermitted, InvalidArgument)) as info:
            provider.verify(bytes(bad), now=when)
        _one_sentence(info.value)


def test_verifying_at_todays_time_fails_with_crl_expired() -> None:
    provider = DcapProvider(_collateral("tdx"))
    for when in (None, int(time.time())):  # None: the provider reads the clock itself
        with pytest.raises(NotPermitted, match="CrlExpired") as info:
            provider.verify(_quote("tdx"), now=when)
        _one_sentence(info.value)
        assert "fresh collateral" in str(info.value)


def test_quote_with_wrong_collateral_fails() -> None:
    with pytest.raises(NotPermitted):
        DcapProvider(_collateral("tdx")).verify(_quote("sgx"), now=SGX_TIME)


def test_evidence_may_carry_its_own_collateral() -> None:
    provider = DcapProvider(None)
    claims = provider.verify(dcap_evidence(_quote("tdx"), _collateral("tdx")), now=TDX_TIME)
    assert claims.tcb_status == "UpToDate"
    with pytest.raises(InvalidArgument, match="No collateral") as info:
        provider.verify(_quote("tdx"), now=TDX_TIME)
    _one_sentence(info.value)


@pytest.mark.parametrize(
    "evidence", [b"", b"\x04\x00", b"garbage that is not a quote", b"{not json", b'{"quote": 1}']
)
def test_malformed_dcap_evidence_is_invalid_argument(evidence: bytes) -> None:
    with pytest.raises(InvalidArgument) as info:
        DcapProvider(_collateral("tdx")).verify(evidence, now=TDX_TIME)
    _one_sentence(info.value)


def test_malformed_collateral_and_unknown_status_are_refused_at_construction() -> None:
    with pytest.raises(InvalidArgument):
        DcapProvider({"tcb_info": "{}"})
    with pytest.raises(InvalidArgument):
        DcapProvider(_collateral("tdx") | {"root_ca_crl": "not hex"})
    # a field dcap-qvl reads only while verifying fails there, as a refused quote
    with pytest.raises(NotPermitted):
        DcapProvider(_collateral("tdx") | {"tcb_info": "not json"}).verify(
            _quote("tdx"), now=TDX_TIME
        )
    with pytest.raises(InvalidArgument, match="UpTodate"):
        DcapProvider(None, accepted_statuses=("UpTodate",))


# --- report data binding and measurement allow-list ----------------------------------------


def test_report_data_binds_the_coordinator_address() -> None:
    data = report_data_for(ADDRESS)
    assert len(data) == REPORT_DATA_SIZE and data[32:] == bytes(32)
    assert report_data_for(ADDRESS.lower()) == data  # checksum case does not matter
    assert report_data_for(OTHER_ADDRESS) != data
    with pytest.raises(InvalidArgument):
        report_data_for("0x1234")


def test_dcap_report_data_right_and_wrong() -> None:
    provider = DcapProvider(_collateral("sgx"), accepted_statuses=(SGX_STATUS,))
    right = b"Hello, world!".ljust(REPORT_DATA_SIZE, b"\0")
    provider.verify(_quote("sgx"), expected_report_data=right, now=SGX_TIME)
    with pytest.raises(NotPermitted) as info:
        provider.verify(_quote("sgx"), expected_report_data=report_data_for(ADDRESS), now=SGX_TIME)
    _one_sentence(info.value)
    with pytest.raises(InvalidArgument):
        provider.verify(_quote("sgx"), expected_report_data=b"short", now=SGX_TIME)


def test_measurement_allow_list() -> None:
    claims = DcapProvider(_collateral("sgx"), (SGX_STATUS,)).verify(_quote("sgx"), now=SGX_TIME)
    assert check_measurement(claims, {"0x" + SGX_MRENCLAVE.upper()}) is claims
    with pytest.raises(NotPermitted) as info:
        check_measurement(claims, {"00" * 32})
    _one_sentence(info.value)
    with pytest.raises(NotPermitted):
        check_measurement(claims, set())


# --- the software provider ----------------------------------------------------------------


def _software(key: str = KEY, **kw: Any) -> bytes:
    args: dict[str, Any] = {
        "measurement": "ab" * 32,
        "report_data": report_data_for(Account.from_key(key).address),
        "issued_at": NOW,
    }
    args.update(kw)
    return SoftwareProvider.attest(key, **args)


def test_software_claims_are_never_hardware_backed_and_refused_unless_allowed() -> None:
    provider = SoftwareProvider()
    assert isinstance(provider, AttestationProvider)
    claims = provider.verify(
        _software(), expected_report_data=report_data_for(ADDRESS), now=NOW + 10
    )
    assert not claims.hardware_backed and claims.tee == "none" and claims.signer == ADDRESS
    assert claims.measurement == "ab" * 32 and claims.verified_at == NOW + 10
    with pytest.raises(NotPermitted, match="not hardware-backed") as info:
        require_hardware(claims)
    _one_sentence(info.value)
    with pytest.raises(NotPermitted):
        require_hardware(claims, allow_insecure=False)
    assert require_hardware(claims, allow_insecure=True) is claims
    assert evaluator_attestation(claims) == {
        "provider": "software",
        "hardware_backed": False,
        "measurement": "ab" * 32,
    }


def test_software_report_data_binding_right_and_wrong() -> None:
    with pytest.raises(NotPermitted):
        SoftwareProvider().verify(
            _software(), expected_report_data=report_data_for(OTHER_ADDRESS), now=NOW
        )


def test_software_trusted_signers() -> None:
    trusted = SoftwareProvider([ADDRESS.lower()])
    trusted.verify(_software(KEY), now=NOW)
    with pytest.raises(NotPermitted, match="not a trusted signer") as info:
        trusted.verify(_software(OTHER_KEY), now=NOW)
    _one_sentence(info.value)
    with pytest.raises(InvalidArgument):
        SoftwareProvider(["not an address"])


def test_software_statement_age() -> None:
    provider = SoftwareProvider(max_age_s=60)
    provider.verify(_software(), now=NOW + 60)
    for when in (NOW + 61, NOW - 301):
        with pytest.raises(NotPermitted, match="fresh statement"):
            provider.verify(_software(), now=when)


def test_tampered_software_statement_fails() -> None:
    doc = json.loads(_software())
    doc["statement"]["measurement"] = "cd" * 32
    # the signature now recovers some other address, which is not trusted
    with pytest.raises(NotPermitted):
        SoftwareProvider([ADDRESS]).verify(json.dumps(doc).encode(), now=NOW)
    doc["signature"] = "0x1234"
    with pytest.raises(InvalidArgument):
        SoftwareProvider().verify(json.dumps(doc).encode(), now=NOW)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_a_provider(evidence: bytes) -> None:
    for provider in (SoftwareProvider(), DcapProvider(_collateral("tdx"))):
        try:
            provider.verify(evidence, now=TDX_TIME)
        except DataBrightError as exc:
            _one_sentence(exc)
        else:  # pragma: no cover - random bytes verifying would be a forgery
            pytest.fail("random bytes verified")


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=REPORT_DATA_SIZE, max_size=REPORT_DATA_SIZE))
def test_report_data_round_trips_through_software_evidence(data: bytes) -> None:
    claims = SoftwareProvider().verify(_software(report_data=data), now=NOW)
    assert check_report_data(claims, data) is claims
    assert isinstance(claims, Claims)
