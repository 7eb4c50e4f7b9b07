"""The networked federated coordinator, in-process and over HTTP: five data owners on digits,
one of them hostile, train three rounds; the service ends where the simulation does, ranks the
attacker last, refuses forged, replayed, stale, unlisted and malformed messages in one
sentence each, drops NaN updates as Byzantine, and resumes from SQL after a restart (SQLite
and PostgreSQL)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests
from databright_dev.serving import serving
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sklearn.datasets import load_digits

from databright.compute.federated import (
    Attack,
    Client,
    check_scores_evidence,
    payout_wei,
    run_federated,
    scores_evidence,
    split_iid,
)
from databright.compute.federation import (
    FederationCoordinator,
    FederationStore,
    RoundOffer,
    purpose_of,
    update_body,
)
from databright.compute.federation_client import FederationClient, federation_transport
from databright.compute.protocol import Envelope, pack_arrays, pack_parts, seal
from databright.demo.federation import SPEC as DEMO_SPEC
from databright.errors import (
    DuplicateSubmission,
    InvalidArgument,
    NodeUnreachable,
    NotFound,
    NotPermitted,
)
from databright.ml.spec import ModelSpec
from databright.server.federation import federation_app

SPEC = ModelSpec.from_dict(DEMO_SPEC)  # the federated round of `make run` trains it
CLIENTS = 5
ROUNDS = 3
EPOCHS = 2
ATTACKER = 4
Data = tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def digits() -> Data:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(1).permutation(len(y))
    x = (x[order] / 16).astype(np.float32)
    y = y[order].astype(np.int64)
    parts = [(x[idx], y[idx]) for idx in split_iid(y[:400], CLIENTS)]
    return parts, x[1300:1500], y[1300:1500]


def account(i: int) -> LocalAccount:
    return Account.from_key("0x" + f"{i + 41:02x}" * 32)


ACCOUNTS = [account(i) for i in range(CLIENTS)]
ADDRESSES = [a.address for a in ACCOUNTS]


def coordinator(
    data: Data, url: str, *, clock: Callable[[], float] | None = None, rounds: int = ROUNDS
) -> FederationCoordinator:
    _, xv, yv = data
    extra = {} if clock is None else {"clock": clock}
    return FederationCoordinator(
        SPEC,
        ADDRESSES,
        xv,
        yv,
        store=FederationStore(url),
        rounds=rounds,
        local_epochs=EPOCHS,
        round_deadline_s=60,
        **extra,  # type: ignore[arg-type]
    )


def clients(
    data: Data, c: FederationCoordinator, attack: Attack | None = None, ttl_s: int = 60
) -> list[FederationClient]:
    parts, _, _ = data
    return [
        FederationClient(
            acct, c.handle, x, y, attack=attack if i == ATTACKER else None, seed=i, ttl_s=ttl_s
        )
        for i, (acct, (x, y)) in enumerate(zip(ACCOUNTS, parts, strict=True))
    ]


def run_all(c: FederationCoordinator, owners: list[FederationClient]) -> None:
    while not c.done:
        for owner in owners:
            owner.step()


def test_a_service_run_ends_where_the_simulation_does_and_ranks_the_attacker_last(
    digits: Data, tmp_path: Path
) -> None:
    attack = Attack("sign_flip")
    c = coordinator(digits, f"sqlite:///{tmp_path / 'fed.sqlite3'}")
    owners = clients(digits, c, attack)
    run_all(c, owners)
    result = c.result()
    parts, xv, yv = digits
    simulated = run_federated(
        SPEC,
        [Client(x, y, attack if i == ATTACKER else None) for i, (x, y) in enumerate(parts)],
        xv,
        yv,
        rounds=ROUNDS,
        local_epochs=EPOCHS,
        contributions=True,
    )
    assert len(result.history) == ROUNDS
    assert result.accuracy > 0.4 and abs(result.accuracy - simulated.accuracy) < 0.1
    assert int(np.argmin(result.contributions)) == ATTACKER
    # what the chain is paid by: payout_wei of the scores, checkable by anyone
    evidence = scores_evidence(result, ADDRESSES, 10**18)
    assert check_scores_evidence(evidence) == dict(
        zip(ADDRESSES, payout_wei(10**18, result.contributions), strict=True)
    )
    assert evidence["payouts_wei"][ATTACKER] == min(evidence["payouts_wei"])
    final = owners[0].fetch()
    assert final.done and final.round == ROUNDS
    with pytest.raises(NotPermitted, match="finished after round 3"):
        owners[1].send(ROUNDS + 1, np.zeros(c._layout.size, np.float32))


def test_bad_messages_are_refused_in_one_sentence_and_nan_is_dropped(
    digits: Data, tmp_path: Path
) -> None:
    now = [time.time()]
    c = coordinator(digits, f"sqlite:///{tmp_path / 'fed.sqlite3'}", clock=lambda: now[0])
    owners = clients(digits, c, ttl_s=300)  # valid across the fake clock's jump
    size = c._layout.size

    # an unlisted sender
    outsider = FederationClient(account(99), c.handle, *digits[0][0])
    with pytest.raises(NotPermitted, match="not a client of this federation"):
        outsider.fetch()
    # a forged sender: signed by one key, claiming another's address
    body = update_body(1, np.zeros(size, np.float32))
    signed = seal(account(99), body, purpose=purpose_of("update"))
    forged = Envelope(ADDRESSES[0], signed.nonce, signed.expires_at, signed.signature)
    with pytest.raises(NotPermitted, match="signature is not"):
        c.submit_update(forged, body)
    # an envelope for one route is not one for the other
    wrong = seal(ACCOUNTS[0], body, purpose=purpose_of("round"))
    with pytest.raises(NotPermitted, match="signature is not"):
        c.submit_update(wrong, body)
    # wrong shapes
    for bad in (
        update_body(1, np.zeros(size + 1, np.float32)),
        pack_parts({"round": 1}, {"update": pack_arrays({"w": np.zeros(3, np.float32)})}),
        pack_parts({"round": 1}, {"update": b"not safetensors"}),
        b"garbage",
    ):
        with pytest.raises(InvalidArgument):
            c.submit_update(seal(ACCOUNTS[0], bad, purpose=purpose_of("update")), bad)

    # owner 0 sends; a replay of its envelope is refused, a fresh copy is idempotent,
    # a different update for the same round is refused
    offer = owners[0].fetch()
    delta = owners[0].update_for(offer)
    body = update_body(1, delta)
    envelope = seal(ACCOUNTS[0], body, purpose=purpose_of("update"))
    first = c.submit_update(envelope, body)
    assert (first.round, first.kept, first.closed) == (1, True, False)
    with pytest.raises(DuplicateSubmission, match="replay"):
        c.submit_update(envelope, body)
    assert owners[0].send(1, delta) == first
    with pytest.raises(NotPermitted, match="cannot be changed"):
        owners[0].send(1, delta * 2)
    assert owners[0].fetch().submitted and owners[0].fetch().weights == b""
    with pytest.raises(NotPermitted, match="round 2 has not begun"):
        owners[1].send(2, delta)

    # owner 1 sends NaN (kept: False), owners 2 and 3 send honestly, owner 4 stays silent
    assert not owners[1].send(1, np.full(size, np.nan, np.float32)).kept
    for owner in owners[2:4]:
        owner.step()
    assert c.status()["round"] == 1  # not everyone sent, and the deadline is ahead
    now[0] += 61
    assert c.status()["round"] == 2  # the deadline closed it with enough finite updates
    with pytest.raises(NotPermitted, match="round 1 has closed"):
        owners[4].send(1, delta)
    assert owners[0].send(1, delta).closed  # the same update again, after the close: a no-op
    report = c.history()[0]
    assert report.rejected == (1,)
    assert report.contributions[1] == 0.0 and report.contributions[4] == 0.0
    assert c.status()["history"][0]["missing"] == [ADDRESSES[4]]
    with pytest.raises(NotFound, match="round 2 of 3"):
        c.result()
    # a round where every client sends but too few are finite closes without moving the model
    before = c.store.run(c.run_name).weights
    for owner in owners:
        owner.send(2, np.full(size, np.inf, np.float32))
    assert np.array_equal(c.store.run(c.run_name).weights, before)
    assert c.history()[1].rejected == tuple(range(CLIENTS))
    assert "0 finite updates" in c.status()["history"][1]["note"]


def test_a_restarted_coordinator_resumes_from_sql(digits: Data, database_url: str) -> None:
    a = coordinator(digits, database_url, rounds=2)
    owners = clients(digits, a)
    for owner in owners:
        owner.step()  # round 1 closes
    sent = [owners[0].step(), owners[1].step()]  # two updates of round 2 arrive
    assert [o.round for o in sent] == [2, 2]
    replay_body = b""
    replay = seal(ACCOUNTS[2], replay_body, purpose=purpose_of("round"))
    RoundOffer.from_body(a.handle("round", replay, replay_body))
    a.store.close()

    b = coordinator(digits, database_url, rounds=2)  # the same settings, the same database
    status = b.status()
    assert status["round"] == 2 and status["received"] == sorted(ADDRESSES[:2])
    assert len(status["history"]) == 1
    with pytest.raises(DuplicateSubmission):
        b.handle("round", replay, replay_body)  # nonces survive the restart too
    for owner in owners:
        owner.transport = b.handle
    run_all(b, owners)
    resumed = b.result()
    b.store.close()

    # the same run without a restart ends in exactly the same place
    c = FederationCoordinator(
        SPEC,
        ADDRESSES,
        digits[1],
        digits[2],
        store=FederationStore(database_url),
        rounds=2,
        local_epochs=EPOCHS,
        run="uninterrupted",
    )
    run_all(c, clients(digits, c))
    straight = c.result()
    assert np.array_equal(resumed.contributions, straight.contributions)
    for name, tensor in straight.state.items():
        assert np.array_equal(resumed.state[name].numpy(), tensor.numpy())
    with pytest.raises(InvalidArgument, match="other settings"):
        coordinator(digits, database_url, rounds=3)
    c.store.close()


def test_clients_over_http(digits: Data, tmp_path: Path) -> None:
    c = coordinator(digits, f"sqlite:///{tmp_path / 'fed.sqlite3'}", rounds=1)
    with serving(federation_app(c, max_body_bytes=64 * 1024)) as base:
        owners = clients(digits, c, Attack("sign_flip"))
        for owner in owners:
            owner.transport = federation_transport(base, timeout=10)
        outsider = FederationClient(account(99), federation_transport(base), *digits[0][0])
        with pytest.raises(NotPermitted, match="not a client"):
            outsider.fetch()
        body = update_body(1, np.zeros(3, np.float32))
        envelope = seal(ACCOUNTS[0], body, purpose=purpose_of("update"))
        with pytest.raises(InvalidArgument, match="floating-point numbers"):
            owners[0].transport("update", envelope, body)
        with pytest.raises(DuplicateSubmission):
            owners[0].transport("update", envelope, body)
        run_all(c, owners)
        assert owners[0].run(poll_s=0.05, timeout_s=5).done
        status = requests.get(f"{base}/federation/v1/status", timeout=5).json()
        assert status["state"] == "done" and status["service"] == "databright-federation"
        assert int(np.argmin(status["contributions"])) == ATTACKER
        too_big = requests.post(f"{base}/federation/v1/update", data=b"x" * (65 * 1024), timeout=5)
        assert too_big.status_code == 413
        missing = requests.post(f"{base}/federation/v1/update", data=b"", timeout=5)
        assert missing.status_code == 400 and "header" in missing.json()["detail"]


def test_a_dropped_connection_is_asked_again_under_a_fresh_seal(
    digits: Data, tmp_path: Path
) -> None:
    """A client whose message meets a closed connection sends it again, sealed afresh (the
    first seal's nonce may be spent); an update that did arrive counts once."""
    c = coordinator(digits, f"sqlite:///{tmp_path / 'f.sqlite3'}", rounds=1)
    owners = clients(digits, c)
    nonces: list[str] = []

    def flaky(route: str, envelope: Envelope, body: bytes) -> bytes:
        nonces.append(envelope.nonce)
        reply = c.handle(route, envelope, body)
        if len(nonces) in (1, 3):  # the first offer is lost, and so is the first update's reply
            raise NodeUnreachable("the coordinator at test does not answer (ConnectionError)")
        return reply

    owners[0].transport = flaky
    offer = owners[0].step()
    assert len(nonces) == 4 and len(set(nonces)) == 4  # two asked twice, each sealed afresh
    assert offer.round == 1 and owners[0].rounds_sent == 1
    assert ADDRESSES[0] in c.status()["received"]
    run_all(c, owners)
    assert c.done and len(c.history()) == 1
