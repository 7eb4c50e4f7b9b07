"""Split-training stage workers check their coordinator's attestation before they pull anything,
as compute workers do: in-process against :meth:`SplitRelay.handle`, and through ``databright
split worker`` against a relay served over HTTP. A relay with no attestation, a software one
without ``--allow-insecure-coordinator``, a coordinator other than ``--coordinator-address``
and an answer signed by another key than the one its evidence binds are each refused in one
sentence, and the coordinator's message stays unpulled: no stage is loaded. With the flag and
the right address a worker trains its stage as before, to the unsplit weights."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import threading
import time
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

from databright.chain.keystore import Keystore
from databright.compute.coordinator import CoordinatorAttestation, software_measurement
from databright.compute.protocol import pack_parts, seal, unpack_parts
from databright.compute.split_relay import RELAY_ROUTES, RelayedStageWorker, SplitRelay
from databright.compute.splitting import SplitPlan, SplitTraining, StageWorker
from databright.compute.transport import http_transport
from databright.demo.compute import _save_dev_key
from databright.errors import InvalidArgument, NotFound, NotPermitted
from databright.ml.spec import ModelSpec
from databright.ml.train import train
from databright.server.split_relay import split_relay_app


def account(i: int) -> LocalAccount:
    return Account.from_key("0x" + f"{i + 61:02x}" * 32)


class Waiting:
    """A message the coordinator put in a worker's mailbox, and the reply it waits for."""

    def __init__(self, relay: SplitRelay, worker: str) -> None:
        self.link = relay.link_for(worker)
        self.replies: list[bytes] = []
        self.thread = threading.Thread(
            target=lambda: self.replies.append(self.link("weights", b"message")), daemon=True
        )
        self.thread.start()

    def still_waiting(self, send: Callable[[str, bytes], bytes]) -> bool:
        """Whether the message is still unpulled (pulling it now through the worker's ``send``,
        and answering, so that the coordinator stops waiting)."""
        pulled = b""
        deadline = time.monotonic() + 10
        while not pulled and time.monotonic() < deadline:
            pulled = send("split-next", b"{}")
        if not pulled:
            return False
        meta, parts = unpack_parts(pulled)
        send("split-reply", pack_parts({"seq": meta["seq"]}, {"body": b"answered"}))
        self.thread.join(timeout=10)
        return parts["body"] == b"message" and self.replies == [b"answered"]


# --- in-process ------------------------------------------------------------------------------


def test_the_relay_answers_attestation_as_a_route_of_its_own() -> None:
    assert "attestation" in RELAY_ROUTES
    relay = SplitRelay(poll_s=0.0, attestation=software())
    body = b'{"challenge": "00"}'  # one byte, not 32
    with pytest.raises(InvalidArgument, match="64 hex digits"):
        relay.handle("attestation", seal(account(0), body, purpose="attestation"), body)
    with pytest.raises(NotPermitted, match="purpose"):  # signed for another purpose
        relay.handle("attestation", seal(account(0), body, purpose="split-next"), body)
    with pytest.raises(NotFound, match=r"^this split relay has no attestation evidence; [^.]*\.$"):
        SplitRelay().attest(body)


@pytest.mark.parametrize(("shown", "told", "words"), REFUSALS, ids=REFUSAL_IDS)
def test_a_stage_worker_refuses_a_coordinator_that_fails_its_attestation(
    shown: Callable[[], CoordinatorAttestation | None], told: dict[str, Any], words: str
) -> None:
    relay = SplitRelay(poll_s=0.05, timeout_s=30, attestation=shown())
    worker = RelayedStageWorker(account(0), relay.handle)
    waiting = Waiting(relay, worker.address)
    with pytest.raises(NotPermitted, match=words):
        worker.check_coordinator(**{"expected": COORDINATOR.address, **told})
    assert worker.coordinator_claims is None
    assert worker.stage.holds(0) is None and not worker.stage.received
    assert waiting.still_waiting(worker.send)  # the refused worker pulled nothing


def test_an_attested_coordinators_workers_train_as_before(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits[0][:200], digits[1][:200]
    small = ModelSpec.from_dict({**spec.to_dict(), "epochs": 1})
    relay = SplitRelay(poll_s=0.05, timeout_s=30, attestation=software())
    workers = [RelayedStageWorker(account(i), relay.handle) for i in range(2)]
    for w in workers:
        claims = w.check_coordinator(allow_insecure=True, expected=COORDINATOR.address)
        assert claims.provider == "software" and not claims.hardware_backed
        assert claims.measurement == software_measurement()
        assert w.coordinator_claims == claims
    job = SplitTraining(SplitPlan.balanced(small, 2))
    for w in workers:
        job.join(w.address, relay.link_for(w.address))
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        split = job.train(x, y)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert split.checkpoint == train(small, x, y).checkpoint


def test_attestation_over_http() -> None:
    relay = SplitRelay(poll_s=0.0, attestation=software())
    with serving(split_relay_app(relay)) as url:
        worker = RelayedStageWorker(account(0), http_transport(url, 10))
        claims = worker.check_coordinator(allow_insecure=True, expected=COORDINATOR.address)
        assert claims.provider == "software"
        with pytest.raises(NotPermitted, match="no hardware vouches"):
            worker.check_coordinator()
    with serving(split_relay_app(SplitRelay(poll_s=0.0))) as url:
        worker = RelayedStageWorker(account(0), http_transport(url, 10))
        with pytest.raises(NotPermitted, match="offers no attestation evidence"):
            worker.check_coordinator(allow_insecure=True)


# --- `databright split worker` ---------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir whose keystore holds the stage worker's key (account 0)."""
    for name in ("DATABRIGHT_PASSWORD", "DATABRIGHT_DEBUG", "DATABRIGHT_HOME"):
        monkeypatch.delenv(name, raising=False)
    _save_dev_key(Keystore(tmp_path / "keystore"), account(0))
    return tmp_path


def worker_args(url: str, data_dir: Path, *flags: str) -> list[str]:
    return [
        "split", "worker", "--relay", url, "--account", account(0).address,
        "--data-dir", str(data_dir), "--wait", "5", "--idle", "1", *flags,
    ]  # fmt: skip


@pytest.mark.parametrize(("shown", "told", "words"), REFUSALS, ids=REFUSAL_IDS)
def test_split_worker_exits_with_one_sentence_before_pulling_anything(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data_dir: Path,
    shown: Callable[[], CoordinatorAttestation | None],
    told: dict[str, Any],
    words: str,
) -> None:
    relay = SplitRelay(poll_s=0.05, timeout_s=30, attestation=shown())
    flags = ["--allow-insecure-coordinator"] if told.get("allow_insecure") else []
    flags += ["--coordinator-address", told.get("expected", COORDINATOR.address)]
    with serving(split_relay_app(relay)) as url:
        waiting = Waiting(relay, account(0).address)
        code, out, err = run_main(monkeypatch, capsys, *worker_args(url, data_dir, *flags))
        assert code == 1, out + err
        assert out == "" and "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err
        # the relay still holds the coordinator's message: the refused worker pulled nothing
        again = RelayedStageWorker(account(0), http_transport(url, 10))
        assert waiting.still_waiting(again.send)


def test_a_bad_coordinator_address_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    args = worker_args("http://127.0.0.1:9", data_dir, "--coordinator-address", "0x12")
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 1 and "is not an Ethereum address" in err, out + err
    assert len(err.strip().splitlines()) == 1


def test_split_worker_with_the_flag_and_the_address_holds_its_stage(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data_dir: Path,
    spec: ModelSpec,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    """What ``split serve`` runs (the input stage its own, one later stage relayed), with the
    worker as ``split worker`` runs it."""
    x, y = digits[0][:200], digits[1][:200]
    small = ModelSpec.from_dict({**spec.to_dict(), "epochs": 1})
    relay = SplitRelay(poll_s=0.2, timeout_s=30, attestation=software())
    job = SplitTraining(SplitPlan.balanced(small, 2))
    own = StageWorker("coordinator")
    job.join(own.address, own.handle, owner="coordinator")
    job.join(account(0).address, relay.link_for(account(0).address))
    trained: list[Any] = []
    flags = ["--allow-insecure-coordinator", "--coordinator-address", COORDINATOR.address]
    with serving(split_relay_app(relay)) as url:
        training = threading.Thread(target=lambda: trained.append(job.train(x, y)), daemon=True)
        training.start()
        code, out, err = run_main(monkeypatch, capsys, *worker_args(url, data_dir, *flags))
        training.join(timeout=60)
    assert code == 0, out + err
    assert "accepted because of --allow-insecure-coordinator" in err
    assert f"stage worker {account(0).address}" in out and "(stage 1)" in out
    (result,) = trained
    assert result.checkpoint == train(small, x, y).checkpoint
