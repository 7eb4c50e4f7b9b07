"""Federation clients check their coordinator's attestation before they ask for a round or send
an update, as compute workers do: in-process against :meth:`FederationCoordinator.handle`, and
through ``databright federation client`` against a coordinator served over HTTP. A coordinator
with no attestation, a software one without ``--allow-insecure-coordinator``, a coordinator
other than ``--coordinator-address`` and an answer signed by another key than the one its
evidence binds are each refused in one sentence, and the coordinator receives no update. With
the flag and the right address the clients train the federation as before."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from attestation_cases import COORDINATOR, REFUSAL_IDS, REFUSALS, software
from cli_helpers import run_main
from databright_dev.serving import serving
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sklearn.datasets import load_digits

from databright.chain.keystore import Keystore
from databright.compute.coordinator import CoordinatorAttestation, software_measurement
from databright.compute.federated import split_iid
from databright.compute.federation import (
    FEDERATION_ROUTES,
    FederationCoordinator,
    FederationStore,
    purpose_of,
)
from databright.compute.federation_client import FederationClient, federation_transport
from databright.compute.protocol import seal
from databright.demo.compute import _save_dev_key
from databright.demo.federation import SPEC as DEMO_SPEC
from databright.errors import InvalidArgument, NotFound, NotPermitted
from databright.ml.spec import ModelSpec
from databright.server.federation import federation_app

SPEC = ModelSpec.from_dict(DEMO_SPEC)
CLIENTS = 5
Data = tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]


def account(i: int) -> LocalAccount:
    return Account.from_key("0x" + f"{i + 81:02x}" * 32)


ACCOUNTS = [account(i) for i in range(CLIENTS)]


@pytest.fixture(scope="module")
def digits() -> Data:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(1).permutation(len(y))
    x = (x[order] / 16).astype(np.float32)
    y = y[order].astype(np.int64)
    parts = [(x[idx], y[idx]) for idx in split_iid(y[:400], CLIENTS)]
    return parts, x[1300:1500], y[1300:1500]


def coordinator(
    data: Data, tmp_path: Path, attestation: CoordinatorAttestation | None
) -> FederationCoordinator:
    _, xv, yv = data
    return FederationCoordinator(
        SPEC,
        [a.address for a in ACCOUNTS],
        xv,
        yv,
        store=FederationStore(f"sqlite:///{tmp_path / 'fed.sqlite3'}"),
        rounds=1,
        local_epochs=1,
        round_deadline_s=60,
        attestation=attestation,
    )


def clients(data: Data, c: FederationCoordinator) -> list[FederationClient]:
    parts, _, _ = data
    return [
        FederationClient(acct, c.handle, x, y, seed=i)
        for i, (acct, (x, y)) in enumerate(zip(ACCOUNTS, parts, strict=True))
    ]


def received_nothing(c: FederationCoordinator) -> bool:
    status = c.status()
    return status["round"] == 1 and status["received"] == [] and status["history"] == []


# --- in-process ------------------------------------------------------------------------------


def test_the_coordinator_answers_attestation_as_a_route_of_its_own(
    digits: Data, tmp_path: Path
) -> None:
    assert "attestation" in FEDERATION_ROUTES
    body = b'{"challenge": "00"}'  # one byte, not 32
    c = coordinator(digits, tmp_path, software())
    try:
        envelope = seal(ACCOUNTS[0], body, purpose=purpose_of("attestation"))
        with pytest.raises(InvalidArgument, match="64 hex digits"):
            c.handle("attestation", envelope, body)
        compute = seal(ACCOUNTS[0], body, purpose="attestation")  # a compute message's purpose
        with pytest.raises(NotPermitted, match="purpose"):
            c.handle("attestation", compute, body)
        # anyone who signs may check the coordinator, listed or not: the answer is public
        stranger = FederationClient(account(99), c.handle, *digits[0][0])
        assert stranger.check_coordinator(allow_insecure=True, expected=COORDINATOR.address)
        with pytest.raises(NotPermitted, match="not a client"):
            stranger.fetch()
    finally:
        c.store.close()
    (tmp_path / "bare").mkdir()
    bare = coordinator(digits, tmp_path / "bare", None)
    try:
        with pytest.raises(NotFound, match=r"^this federation coordinator has no attestation"):
            bare.attest(body)
    finally:
        bare.store.close()


@pytest.mark.parametrize(("shown", "told", "words"), REFUSALS, ids=REFUSAL_IDS)
def test_a_client_refuses_a_coordinator_that_fails_its_attestation(
    digits: Data,
    tmp_path: Path,
    shown: Callable[[], CoordinatorAttestation | None],
    told: dict[str, Any],
    words: str,
) -> None:
    c = coordinator(digits, tmp_path, shown())
    try:
        client = clients(digits, c)[0]
        with pytest.raises(NotPermitted, match=words):
            client.check_coordinator(**{"expected": COORDINATOR.address, **told})
        assert client.coordinator_claims is None and client.rounds_sent == 0
        assert received_nothing(c)
    finally:
        c.store.close()


def test_an_attested_coordinators_clients_train_as_before(digits: Data, tmp_path: Path) -> None:
    c = coordinator(digits, tmp_path, software())
    try:
        owners = clients(digits, c)
        for owner in owners:
            claims = owner.check_coordinator(allow_insecure=True, expected=COORDINATOR.address)
            assert claims.provider == "software" and not claims.hardware_backed
            assert claims.measurement == software_measurement()
            assert owner.coordinator_claims == claims
        while not c.done:
            for owner in owners:
                owner.step()
        assert [o.rounds_sent for o in owners] == [1] * CLIENTS
        assert c.status()["history"][0]["missing"] == []
    finally:
        c.store.close()


def test_attestation_over_http(digits: Data, tmp_path: Path) -> None:
    c = coordinator(digits, tmp_path, software())
    try:
        with serving(federation_app(c)) as url:
            client = FederationClient(ACCOUNTS[0], federation_transport(url, 10), *digits[0][0])
            claims = client.check_coordinator(allow_insecure=True, expected=COORDINATOR.address)
            assert claims.provider == "software"
            with pytest.raises(NotPermitted, match="no hardware vouches"):
                client.check_coordinator()
        c.attestation = None
        with serving(federation_app(c)) as url:
            client = FederationClient(ACCOUNTS[0], federation_transport(url, 10), *digits[0][0])
            with pytest.raises(NotPermitted, match="offers no attestation evidence"):
                client.check_coordinator(allow_insecure=True)
    finally:
        c.store.close()


# --- `databright federation client` ----------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits: Data) -> Path:
    """A data dir whose keystore holds client 0's key, and client 0's own ``.npz``."""
    for name in ("DATABRIGHT_PASSWORD", "DATABRIGHT_DEBUG", "DATABRIGHT_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    _save_dev_key(Keystore(home / "keystore"), ACCOUNTS[0])
    x, y = digits[0][0]
    np.savez(home / "client0.npz", x=x, y=y)
    return home


def client_args(url: str, data_dir: Path, *flags: str) -> list[str]:
    return [
        "federation", "client", "--coordinator", url, "--account", ACCOUNTS[0].address,
        "--data", str(data_dir / "client0.npz"), "--data-dir", str(data_dir), "--wait", "5",
        "--poll", "0.05", *flags,
    ]  # fmt: skip


@pytest.mark.parametrize(("shown", "told", "words"), REFUSALS, ids=REFUSAL_IDS)
def test_federation_client_exits_with_one_sentence_before_sending_anything(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    digits: Data,
    tmp_path: Path,
    data_dir: Path,
    shown: Callable[[], CoordinatorAttestation | None],
    told: dict[str, Any],
    words: str,
) -> None:
    c = coordinator(digits, tmp_path, shown())
    flags = ["--allow-insecure-coordinator"] if told.get("allow_insecure") else []
    flags += ["--coordinator-address", told.get("expected", COORDINATOR.address)]
    try:
        with serving(federation_app(c)) as url:
            code, out, err = run_main(monkeypatch, capsys, *client_args(url, data_dir, *flags))
        assert code == 1, out + err
        assert out == "" and "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
        assert received_nothing(c)
    finally:
        c.store.close()


def test_a_bad_coordinator_address_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    args = client_args("http://127.0.0.1:9", data_dir, "--coordinator-address", "0x12")
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 1 and "is not an Ethereum address" in err, out + err
    assert len(err.strip().splitlines()) == 1


def test_federation_client_with_the_flag_and_the_address_takes_part(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    digits: Data,
    tmp_path: Path,
    data_dir: Path,
) -> None:
    """Client 0 as ``federation client`` runs it, the other four in-process; one round."""
    c = coordinator(digits, tmp_path, software())
    flags = ["--allow-insecure-coordinator", "--coordinator-address", COORDINATOR.address]
    try:
        with serving(federation_app(c)) as url:
            others = clients(digits, c)[1:]
            for other in others:
                other.transport = federation_transport(url, 10)
                other.check_coordinator(allow_insecure=True, expected=COORDINATOR.address)
            threads = [
                threading.Thread(target=o.run, kwargs={"poll_s": 0.05, "timeout_s": 60})
                for o in others
            ]
            for t in threads:
                t.start()
            code, out, err = run_main(monkeypatch, capsys, *client_args(url, data_dir, *flags))
            for t in threads:
                t.join(timeout=60)
        assert code == 0, out + err
        assert "accepted because of --allow-insecure-coordinator" in err
        assert "round 1: update sent" in out and "federation done after 1 rounds" in out
        assert c.done and c.status()["history"][0]["missing"] == []
    finally:
        c.store.close()
