"""The coordinator over real HTTP (uvicorn on a free loopback port) with real workers speaking
through :func:`http_transport`: the protocol behaves as in-process, and every refusal comes
back as our error class with the coordinator's sentence."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from databright_dev.serving import serving
from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.chain.keystore import Keystore
from databright.compute.coordinator import Coordinator, CoordinatorAttestation, Quota
from databright.compute.protocol import Envelope, pack_parts, seal
from databright.compute.state import SqlComputeState
from databright.compute.transport import http_transport
from databright.compute.units import run_unit
from databright.compute.worker import LazyWorker, StaleCheckpointWorker, Worker
from databright.errors import (
    CheckpointMismatch,
    DuplicateSubmission,
    InvalidArgument,
    NodeUnreachable,
    NotFound,
    NotPermitted,
    RateLimited,
)
from databright.ml.checkpoint import save_checkpoint
from databright.ml.spec import ModelSpec
from databright.process import launch
from databright.server.coordinator import coordinator_app

SPEC = ModelSpec.from_dict(
    {
        "input_shape": [6],
        "classes": 2,
        "layers": [{"type": "Linear", "out_features": 2}],
        "optimizer": {"type": "sgd", "lr": 0.1},
        "batch_size": 4,
        "seed": 3,
    }
)
RNG = np.random.default_rng(1)
X = RNG.normal(size=(200, 6)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)
IDS = list(range(200))  # 5% is 10


def account(i: int) -> LocalAccount:
    return Account.from_key("0x" + f"{i + 21:02x}" * 32)


@pytest.fixture
def coordinator(tmp_path: object) -> Iterator[Coordinator]:
    state = SqlComputeState(f"sqlite:///{tmp_path}/compute.sqlite3")
    yield Coordinator(state, unit_deadline_s=30)
    state.close()


@pytest.fixture
def url(coordinator: Coordinator) -> Iterator[str]:
    with serving(coordinator_app(coordinator, poll_s=0.3, max_body_bytes=256 * 1024)) as base:
        yield base


def submit(c: Coordinator, units: int = 2) -> int:
    start = save_checkpoint(SPEC.build(), {"format": "pt"}, spec=SPEC)
    return c.submit_job(
        SPEC, start, X, Y, IDS, dataset="toy", steps_per_unit=2, units=units, shard_size=5
    )


def run_all(workers: list[Worker], rounds: int = 6) -> None:
    for _ in range(rounds):
        if not any([w.work_once() for w in workers]):
            return


def test_honest_group_completes_a_job_over_http(coordinator: Coordinator, url: str) -> None:
    job = submit(coordinator)
    workers = [Worker(account(i), http_transport(url, 10)) for i in range(3)]
    for w in workers:
        w.register()
    run_all(workers)
    status = requests.get(f"{url}/compute/v1/jobs/{job}", timeout=5).json()
    assert status["state"] == "done" and status["units_done"] == 2 and status["cheaters"] == []
    assert max(status["exposure"].values()) <= 0.05
    # the same units computed in-process, without a network, agree bit for bit
    ck = save_checkpoint(SPEC.build(), {"format": "pt"}, spec=SPEC)
    for seq in range(2):
        rows = list(range(seq * 5, seq * 5 + 5))
        ck = run_unit(SPEC, ck, X[rows], Y[rows], 2, seq)
    assert coordinator.checkpoint(job) == ck
    assert requests.get(f"{url}/compute/v1/jobs/99", timeout=5).status_code == 404


def test_a_cheater_over_http_is_caught(coordinator: Coordinator, url: str) -> None:
    job = submit(coordinator, units=1)
    honest = [Worker(account(i), http_transport(url, 10)) for i in (0, 1)]
    lazy = LazyWorker(account(2), http_transport(url, 10))
    for w in [*honest, lazy]:
        w.register()
    run_all([*honest, lazy])
    status = coordinator.job_status(job)
    assert status.state == "done" and status.cheaters == (lazy.address,)
    assert coordinator.state.evidence(job)[0]["bad_envelope"]["sender"] == lazy.address


def test_long_poll_answers_204_when_there_is_no_work(coordinator: Coordinator, url: str) -> None:
    w = Worker(account(0), http_transport(url, 10))
    w.register()
    assert w.work_once() is False  # no job: an empty reply after the poll


def test_forged_sender_is_403_and_replay_409(coordinator: Coordinator, url: str) -> None:
    transport = http_transport(url, 10)
    alice, mallory = account(0), account(1)
    body = b'{"numeric_class": "c"}'
    forged = seal(mallory, body, purpose="register")
    with pytest.raises(NotPermitted, match="signature is not"):
        transport(
            "register",
            Envelope(alice.address, forged.nonce, forged.expires_at, forged.signature),
            body,
        )
    good = seal(alice, body, purpose="register")
    assert transport("register", good, body)
    with pytest.raises(DuplicateSubmission, match="replay"):
        transport("register", good, body)
    # a body changed after signing does not verify either
    with pytest.raises(NotPermitted):
        transport("register", seal(alice, body, purpose="register"), body + b" ")


def test_stale_checkpoint_is_a_checkpoint_mismatch(coordinator: Coordinator, url: str) -> None:
    submit(coordinator)
    stale = StaleCheckpointWorker(account(0), http_transport(url, 10), honest_claim=True)
    others = [Worker(account(i), http_transport(url, 10)) for i in (1, 2)]
    for w in [stale, *others]:
        w.register()
    for w in [stale, *others]:
        assert w.work_once()
    with pytest.raises(CheckpointMismatch, match="starts from"):
        stale.work_once()


def test_oversized_unknown_and_unsigned_requests(coordinator: Coordinator, url: str) -> None:
    transport = http_transport(url, 10)
    alice = account(0)
    big = pack_parts({"unit_id": 1, "input_hash": "0x00"}, {"checkpoint": b"\0" * 300_000})
    with pytest.raises(InvalidArgument, match="limited to"):
        transport("result", seal(alice, big, purpose="result"), big)
    with pytest.raises(NotFound, match="no route"):
        transport("steal", seal(alice, b"", purpose="steal"), b"")
    answer = requests.post(f"{url}/compute/v1/next", data=b"{}", timeout=5)
    assert answer.status_code == 400 and "X-DataBright-Sender" in answer.json()["detail"]
    assert answer.headers["content-type"] == "application/problem+json"


def test_unreachable_coordinator(coordinator: Coordinator) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free now, and nothing listens there
    transport = http_transport(f"http://127.0.0.1:{port}", 2)
    with pytest.raises(NodeUnreachable, match="does not answer"):
        transport("next", seal(account(0), b"{}", purpose="next"), b"{}")


def test_quota_over_http_is_a_429_in_one_sentence(tmp_path: object) -> None:
    state = SqlComputeState(f"sqlite:///{tmp_path}/quota.sqlite3")
    strict = Coordinator(state, quota=Quota(requests_per_s=0.5, burst=2))
    try:
        with serving(coordinator_app(strict, poll_s=0)) as base:
            w = Worker(account(0), http_transport(base, 10))
            w.register()
            assert w.work_once() is False  # no job yet: the second request of the burst
            with pytest.raises(RateLimited, match=r"more than 2 requests.*wait \d"):
                w.work_once()
            raw = requests.post(
                f"{base}/compute/v1/next",
                data=b"{}",
                headers=seal(account(0), b"{}", purpose="next").to_headers(),
                timeout=5,
            )
            assert raw.status_code == 429
            assert raw.headers["content-type"] == "application/problem+json"
            assert raw.json()["detail"].count(". ") == 0  # one sentence
    finally:
        state.close()


def test_attestation_and_checkpoint_over_http(tmp_path: object) -> None:
    state = SqlComputeState(f"sqlite:///{tmp_path}/attested.sqlite3")
    attested = Coordinator(
        state, attestation=CoordinatorAttestation.software(account(9), time.time())
    )
    try:
        with serving(coordinator_app(attested, poll_s=0)) as base:
            w = Worker(account(0), http_transport(base, 10))
            claims = w.check_coordinator(allow_insecure=True, expected=account(9).address)
            assert claims.provider == "software" and not claims.hardware_backed
            with pytest.raises(NotPermitted, match="no hardware vouches"):
                w.check_coordinator()
            job = submit(attested, units=1)
            answer = requests.get(f"{base}/compute/v1/jobs/{job}/checkpoint", timeout=5)
            assert answer.status_code == 200 and answer.content == attested.checkpoint(job)
            assert (
                requests.get(f"{base}/compute/v1/jobs/7/checkpoint", timeout=5).status_code == 404
            )
    finally:
        state.close()


def test_worker_process_refuses_an_unattested_coordinator(
    coordinator: Coordinator, url: str, tmp_path: Path
) -> None:
    """`databright worker` against a coordinator without attestation: it exits with one
    sentence, before it registers or takes any unit."""
    submit(coordinator)
    data_dir = tmp_path / "home"
    address = Keystore(data_dir / "keystore").new()
    worker = launch(
        [sys.executable, "-m", "databright.cli", "worker", "--coordinator", url,
         "--account", address, "--data-dir", str(data_dir), "--allow-insecure-coordinator",
         "--wait", "5"],
        name="the worker", env={"OMP_NUM_THREADS": "1", "COLUMNS": "400"},
    )  # fmt: skip
    try:
        assert worker.wait(timeout=120) == 1
    finally:
        worker.stop()
    lines = [line for line in worker.output().splitlines() if line.strip()]
    assert len(lines) == 1 and "offers no attestation evidence" in lines[0], lines
    assert coordinator.state.get_worker(address) is None  # never registered
    assert all(
        not coordinator.state.assignments(unit_id=u.unit_id) for u in coordinator.state.open_units()
    )


def test_a_request_whose_connection_is_dropped_unanswered_is_sent_once_more() -> None:
    """A kept-alive connection the server closes as a request goes out (its idle timeout) drops
    that request unanswered: the transport sends it again, once, on a new connection; a server
    that drops every one, or none listening, is ``NodeUnreachable`` in one sentence."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[bytes] = []

    class Dropping(BaseHTTPRequestHandler):
        drops = 1

        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            if len(seen) <= type(self).drops:
                self.close_connection = True  # read, then closed with no answer
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Dropping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        account = Account.from_key("0x" + "11" * 32)
        envelope = seal(account, b"body", 60, purpose="next")
        send = http_transport(url, 5.0)
        assert send("next", envelope, b"body") == b"ok"
        assert seen == [b"body", b"body"]  # the same bytes, sent twice
        Dropping.drops = 10
        with pytest.raises(NodeUnreachable, match=r"^[^\n]*does not answer[^\n]*$"):
            send("next", envelope, b"body")
        assert len(seen) == 4  # once more, not again and again
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(NodeUnreachable, match="does not answer"):
        http_transport(url, 5.0)("next", envelope, b"body")  # nothing listens: no retry needed
