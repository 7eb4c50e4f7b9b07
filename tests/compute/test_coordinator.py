"""The coordinator end to end, in-process: honest groups agree, every cheat of issue 12 §8
that concerns scheduling and verification is caught (real torch, real SQL state)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.compute.attestation import Claims, report_data_for
from databright.compute.coordinator import (
    Coordinator,
    CoordinatorAttestation,
    Quota,
    software_measurement,
)
from databright.compute.protocol import Envelope, pack_parts, seal
from databright.compute.replication import (
    TRACE_EVERY,
    ReplicationPolicy,
    run_unit_traced,
    trace_of,
)
from databright.compute.state import SqlComputeState
from databright.compute.units import UnitPayload, output_hash, run_unit
from databright.compute.worker import (
    BitFlipWorker,
    LateCheatWorker,
    LazyWorker,
    ScaledUpdateWorker,
    StaleCheckpointWorker,
    Worker,
    verify_coordinator,
)
from databright.errors import (
    CheckpointMismatch,
    DuplicateSubmission,
    InvalidArgument,
    NotPermitted,
    RateLimited,
)
from databright.ml.checkpoint import save_checkpoint
from databright.ml.spec import ModelSpec

SPEC = ModelSpec.from_dict(
    {
        "input_shape": [8],
        "classes": 3,
        "layers": [
            {"type": "Linear", "out_features": 8},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 3},
        ],
        "optimizer": {"type": "sgd", "lr": 0.1},
        "batch_size": 5,
        "seed": 1,
    }
)
RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 8)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 1).astype(np.int64)
IDS = list(range(1000, 1400))  # 400 examples: 5% is 20


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coordinator(database_url: str, clock: Clock) -> Iterator[Coordinator]:
    state = SqlComputeState(database_url)
    yield Coordinator(state, clock=clock, unit_deadline_s=30)
    state.close()


def account(i: int) -> LocalAccount:
    return Account.from_key("0x" + f"{i + 1:02x}" * 32)


def submit(c: Coordinator, units: int = 2, shard: int = 10) -> int:
    start = save_checkpoint(SPEC.build(), {"format": "pt"}, spec=SPEC)
    return c.submit_job(
        SPEC, start, X, Y, IDS, dataset="toy", steps_per_unit=3, units=units, shard_size=shard
    )


def run_all(workers: list[Worker], rounds: int = 10) -> None:
    for _ in range(rounds):
        if not any([w.work_once() for w in workers]):
            return


def plain_training(units: int) -> bytes:
    """The same units computed directly, with no protocol: what an honest group must agree on."""
    ck = save_checkpoint(SPEC.build(), {"format": "pt"}, spec=SPEC)
    for seq in range(units):
        rows = [i - 1000 for i in IDS[(seq % 40) * 10 : (seq % 40) * 10 + 10]]
        ck = run_unit(SPEC, ck, X[rows], Y[rows], 3, (0 * 1_000_003 + seq) % 2**62)
    return ck


def test_honest_group_agrees_and_matches_plain_training(coordinator: Coordinator) -> None:
    job = submit(coordinator)
    workers = [Worker(account(i), coordinator.handle, clock=coordinator.clock) for i in range(3)]
    for w in workers:
        w.register()
    run_all(workers)
    status = coordinator.job_status(job)
    assert status.state == "done" and status.units_done == 2 and status.cheaters == ()
    assert coordinator.checkpoint(job) == plain_training(2)
    assert coordinator.referee_runs == 0
    # each worker saw two shards of 10: 20 of 400, exactly the 5% limit
    assert status.exposure[workers[0].address] == pytest.approx(0.05)


def test_a_result_that_asks_for_the_next_unit_gets_it_in_its_reply(
    coordinator: Coordinator,
) -> None:
    """BOINC's scheduler request: an upload that asks for the next unit gets it in the reply,
    so a unit costs one signed round trip. A worker that may not take the next unit (its 5%
    is spent) still has its upload accepted, with no unit in the reply; its next plain
    ``next`` says why."""
    submit(coordinator, units=3)
    routes: dict[int, list[str]] = {i: [] for i in range(3)}

    def counted(i: int) -> Callable[[str, Envelope, bytes], bytes]:
        def send(route: str, envelope: Envelope, body: bytes) -> bytes:
            routes[i].append(route)
            return coordinator.handle(route, envelope, body)

        return send

    greedy, a, b = (
        Worker(account(i), counted(i), clock=coordinator.clock, ask_next=True) for i in range(3)
    )
    fresh = [Worker(account(i), coordinator.handle, clock=coordinator.clock) for i in range(3, 6)]
    for w in [greedy, a, b, *fresh]:
        w.register()
    for _ in range(2):  # units 0 and 1: shards of 10 each, 20 of 400 = the 5% limit
        for w in (greedy, a, b):
            assert w.work_once()
    # b's upload completed unit 0's group and came back with unit 1: b never asked for it
    assert routes[2] == ["register", "next", "result", "result"]
    assert routes[0] == ["register", "next", "result", "next", "result"]
    assert coordinator.job_status(1).units_done == 2
    # unit 2 would take b past its 5%: its upload was answered without a unit
    with pytest.raises(NotPermitted, match="5%"):
        b.work_once()
    assert routes[2][-1] == "next"
    for w in fresh:
        assert w.work_once()
    status = coordinator.job_status(1)
    assert status.state == "done" and status.cheaters == ()


def test_a_result_that_fails_half_way_leaves_the_state_as_it_was(
    coordinator: Coordinator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result is checked and recorded in one transaction: one that fails half-way (here the
    database fails after its checkpoint and result rows were written) leaves no blob and no
    result behind, and the same upload later is accepted."""
    submit(coordinator, units=1)
    coordinator.policy = ReplicationPolicy(replicas=1)
    w = Worker(account(0), coordinator.handle, clock=coordinator.clock)
    w.register()
    payload = UnitPayload.from_body(w.send("next", b"{}"))
    u = payload.unit
    checkpoint, trace = run_unit_traced(
        SPEC, payload.checkpoint, payload.x, payload.y, u.steps, u.seed, every=TRACE_EVERY
    )
    assert checkpoint is not None
    body = pack_parts(
        {"unit_id": u.unit_id, "input_hash": u.input_hash},
        {"checkpoint": checkpoint, "trace": b"".join(trace)},
    )

    def fail(*_args: object) -> None:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as m:
        m.setattr(coordinator.state, "add_trace", fail)
        with pytest.raises(RuntimeError):
            w.send("result", body)
    assert coordinator.state.results(u.unit_id) == []
    with pytest.raises(Exception, match="no blob"):
        coordinator.state.get_blob(output_hash(checkpoint))
    w.send("result", body)
    assert [r.worker for r in coordinator.state.results(u.unit_id)] == [w.address]
    assert coordinator.job_status(1).state == "done"


@pytest.mark.parametrize(
    "cheat",
    [
        LazyWorker,
        BitFlipWorker,
        ScaledUpdateWorker,
        lambda a, t, **kw: StaleCheckpointWorker(a, t, **kw),
    ],
    ids=["lazy", "bit-flip", "scaled", "stale-claiming-current"],
)
def test_every_cheat_is_caught_with_one_honest_replica(
    coordinator: Coordinator, cheat: object
) -> None:
    job = submit(coordinator)
    honest = Worker(account(0), coordinator.handle, clock=coordinator.clock)
    cheaters = [cheat(account(i), coordinator.handle, clock=coordinator.clock) for i in (1, 2)]  # type: ignore[operator]
    for w in [honest, *cheaters]:
        w.register()
    run_all([honest, *cheaters])
    status = coordinator.job_status(job)
    assert status.state == "done"
    assert coordinator.checkpoint(job) == plain_training(2)
    evidence = coordinator.state.evidence(job)
    assert {e["worker"] for e in evidence} == {c.address for c in cheaters}
    for e in evidence:
        assert e["honest_hash"] != e["bad_hash"] and e["input_hash"].startswith("0x")
        assert e["honest_envelope"]["sender"] == honest.address
        assert e["bad_envelope"]["sender"] == e["worker"]
    record = coordinator.state.get_worker(cheaters[0].address)
    assert record is not None and record.invalid_results >= 1


def test_stale_checkpoint_result_is_refused(coordinator: Coordinator) -> None:
    submit(coordinator)
    stale = StaleCheckpointWorker(
        account(0), coordinator.handle, honest_claim=True, clock=coordinator.clock
    )
    others = [Worker(account(i), coordinator.handle, clock=coordinator.clock) for i in (1, 2)]
    for w in [stale, *others]:
        w.register()
    for w in [stale, *others]:
        assert w.work_once()  # unit 0: everyone is current
    with pytest.raises(CheckpointMismatch, match="starts from"):
        stale.work_once()


def test_forged_and_replayed_results_fail(coordinator: Coordinator) -> None:
    submit(coordinator)
    alice, mallory = account(0), account(1)
    coordinator.register_worker(alice.address, "c")
    coordinator.register_worker(mallory.address, "c")
    payload = coordinator.next_unit(alice.address)
    assert payload is not None
    result = pack_parts(
        {"unit_id": payload.unit.unit_id, "input_hash": payload.unit.input_hash},
        {"checkpoint": payload.checkpoint},
    )
    forged = seal(mallory, result, 60, purpose="result", now=coordinator.clock())
    with pytest.raises(NotPermitted):
        coordinator.submit_result(
            alice.address,
            Envelope(alice.address, forged.nonce, forged.expires_at, forged.signature),
            result,
        )
    good = seal(alice, result, 60, purpose="result", now=coordinator.clock())
    assert coordinator.submit_result(alice.address, good, result) is None
    with pytest.raises(DuplicateSubmission):
        coordinator.submit_result(alice.address, good, result)
    # the same result under a fresh envelope is idempotent; a different one is refused
    again = seal(alice, result, 60, purpose="result", now=coordinator.clock())
    assert coordinator.submit_result(alice.address, again, result) is None
    assert len(coordinator.state.results(payload.unit.unit_id)) == 1
    other = pack_parts(
        {"unit_id": payload.unit.unit_id, "input_hash": payload.unit.input_hash},
        {"checkpoint": run_unit(SPEC, payload.checkpoint, payload.x, payload.y, 1, 0)},
    )
    with pytest.raises(NotPermitted, match="another result"):
        coordinator.submit_result(
            alice.address, seal(alice, other, 60, purpose="result", now=coordinator.clock()), other
        )
    # a worker cannot upload for a unit it was not given
    with pytest.raises(NotPermitted, match="not assigned"):
        coordinator.submit_result(
            mallory.address,
            seal(mallory, result, 60, purpose="result", now=coordinator.clock()),
            result,
        )


def test_a_refused_message_is_not_accepted_again(coordinator: Coordinator) -> None:
    # A message's nonce is spent in the transaction of what it writes; a message refused half
    # way rolls that back, and its nonce is spent again on its own: its replay is a replay.
    submit(coordinator)
    alice = account(0)
    coordinator.register_worker(alice.address, "c")
    payload = coordinator.next_unit(alice.address)
    assert payload is not None
    stale = pack_parts(
        {"unit_id": payload.unit.unit_id, "input_hash": "0x" + "ab" * 32},
        {"checkpoint": payload.checkpoint},
    )
    envelope = seal(alice, stale, 60, purpose="result", now=coordinator.clock())
    with pytest.raises(CheckpointMismatch):
        coordinator.submit_result(alice.address, envelope, stale)
    with pytest.raises(DuplicateSubmission, match="was used already"):
        coordinator.submit_result(alice.address, envelope, stale)
    assert coordinator.state.results(payload.unit.unit_id) == []  # nothing of it was kept
    body = json.dumps({"numeric_class": ""}).encode()  # refused by register_worker
    envelope = seal(alice, body, 60, purpose="register", now=coordinator.clock())
    for refusal in (InvalidArgument, DuplicateSubmission):
        with pytest.raises(refusal):
            coordinator.handle("register", envelope, body)


def test_worker_asking_for_more_than_five_percent(coordinator: Coordinator) -> None:
    submit(coordinator, units=3)
    greedy, a, b, *fresh = (
        Worker(account(i), coordinator.handle, clock=coordinator.clock) for i in range(6)
    )
    for w in [greedy, a, b, *fresh]:
        w.register()
    for _ in range(2):  # units 0 and 1: shards of 10 each, 20 of 400 = the 5% limit
        for w in (greedy, a, b):
            assert w.work_once()
    # Unit 2 is reallocated to a shard the fresh workers can take; the greedy worker asking
    # for it would see 30 of 400 examples, over its 5% (20).
    with pytest.raises(NotPermitted, match="5%"):
        greedy.work_once()
    for w in fresh:
        assert w.work_once()
    status = coordinator.job_status(1)
    assert status.state == "done" and max(status.exposure.values()) <= 0.05
    assert status.exposure[greedy.address] == pytest.approx(0.05)


def test_a_long_job_is_reallocated_within_five_percent(coordinator: Coordinator) -> None:
    """Three workers and five units of 10 of 400 examples: the plain rotation would need each
    worker to see 50 (12.5%) and would stall at the third unit; reallocation keeps every worker
    on the two shards it has seen (5%) and the job completes."""
    job = submit(coordinator, units=5)
    workers = [Worker(account(i), coordinator.handle, clock=coordinator.clock) for i in range(3)]
    for w in workers:
        w.register()
    run_all(workers, rounds=10)
    status = coordinator.job_status(job)
    assert status.state == "done" and status.units_done == 5 and status.cheaters == ()
    assert all(v <= 0.05 for v in status.exposure.values())
    shards = {u.example_ids for u in coordinator.state.job_units(job)}
    assert len(shards) == 2  # 20 distinct examples: all that the three may see


def test_owner_limit_covers_all_its_workers(coordinator: Coordinator) -> None:
    submit(coordinator, units=3)
    owner = account(9).address
    a, b = (
        Worker(account(i), coordinator.handle, owner=owner, clock=coordinator.clock) for i in (0, 1)
    )
    for w in (a, b):
        w.register()
    assert a.work_once()  # shard 0: the owner has seen 10
    # b has the same owner: it may not replicate a's unit, and there is no other unit yet
    assert not b.work_once()


def test_vanished_worker_is_replaced_after_deadline(coordinator: Coordinator, clock: Clock) -> None:
    job = submit(coordinator, units=1)
    for i in range(4):
        coordinator.register_worker(account(i).address, "c")
    gone = coordinator.next_unit(account(0).address)
    assert gone is not None
    workers = [
        Worker(account(i), coordinator.handle, numeric_class="c", clock=coordinator.clock)
        for i in (1, 2, 3)
    ]
    assert workers[0].work_once() and workers[1].work_once()
    assert not workers[2].work_once()  # the group is full while the first worker may still answer
    clock.now += 31
    assert workers[2].work_once()
    assert coordinator.job_status(job).state == "done"
    late = pack_parts(
        {"unit_id": gone.unit.unit_id, "input_hash": gone.unit.input_hash},
        {"checkpoint": gone.checkpoint},
    )
    with pytest.raises(NotPermitted, match="no longer open"):
        coordinator.submit_result(
            account(0).address, seal(account(0), late, 60, purpose="result", now=clock.now), late
        )


def test_replicas_stay_within_one_numeric_class(coordinator: Coordinator) -> None:
    submit(coordinator, units=1)
    coordinator.register_worker(account(0).address, "avx2")
    coordinator.register_worker(account(1).address, "avx512")
    assert coordinator.next_unit(account(0).address) is not None
    assert coordinator.next_unit(account(1).address) is None


def test_adaptive_replication_trusts_a_long_record(database_url: str, clock: Clock) -> None:
    state = SqlComputeState(database_url)
    c = Coordinator(
        state,
        clock=clock,
        policy=ReplicationPolicy(adaptive=True, trusted_after=1, adaptive_probability=0.0),
    )
    job = submit(c, units=2)
    workers = [Worker(account(i), c.handle, clock=clock) for i in range(3)]
    for w in workers:
        w.register()
    for w in workers:
        w.work_once()  # unit 0: nobody is trusted yet, three replicas
    assert workers[0].work_once()  # unit 1: worker 0 now has a valid record, runs it alone
    assert c.job_status(job).state == "done"
    assert output_hash(c.checkpoint(job)) == output_hash(plain_training(2))
    state.close()


# --- quotas ------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: object, clock: Clock) -> Iterator[Coordinator]:
    """A coordinator on SQLite only, for what does not depend on the state's backend."""
    state = SqlComputeState(f"sqlite:///{tmp_path}/compute.sqlite3")
    yield Coordinator(
        state,
        clock=clock,
        unit_deadline_s=30,
        quota=Quota(requests_per_s=1.0, burst=3),
        attestation=CoordinatorAttestation.software(account(9), clock()),
    )
    state.close()


def test_a_worker_over_its_request_quota_is_refused_until_it_slows_down(
    local: Coordinator, clock: Clock
) -> None:
    submit(local)
    greedy = Worker(account(0), local.handle, clock=clock)
    greedy.register()  # 1 of a burst of 3
    unit = greedy.send("next", b"{}")
    assert greedy.send("next", b"{}") == unit  # a worker holds one unit at a time: the same one
    with pytest.raises(RateLimited, match=r"more than 3 requests .* wait 1\.0 s"):
        greedy.send("next", b"{}")
    clock.now += 1.0  # one request's worth refilled
    assert greedy.send("next", b"{}") == unit
    with pytest.raises(RateLimited):
        greedy.send("next", b"{}")
    # the quota is per sender: another worker is served meanwhile
    other = Worker(account(1), local.handle, clock=clock)
    other.register()
    assert other.send("next", b"{}")
    # a refused request's nonce is spent all the same: replayed once the quota refills, it
    # is a replay
    envelope = seal(account(0), b"{}", purpose="next", now=clock())
    with pytest.raises(RateLimited):
        local.handle("next", envelope, b"{}")
    clock.now += 5.0
    with pytest.raises(DuplicateSubmission, match="was used already"):
        local.handle("next", envelope, b"{}")


def test_forged_requests_do_not_spend_a_workers_quota(local: Coordinator, clock: Clock) -> None:
    victim, mallory = account(0), account(1)
    body = b"{}"
    for _ in range(5):
        forged = seal(mallory, body, purpose="next", now=clock())
        with pytest.raises(NotPermitted, match="signature is not"):
            local.handle(
                "next",
                Envelope(victim.address, forged.nonce, forged.expires_at, forged.signature),
                body,
            )
    w = Worker(victim, local.handle, clock=clock)
    w.register()
    assert w.work_once() is False  # still within its quota: no job, so no work


def test_quota_needs_a_positive_rate_and_burst() -> None:
    with pytest.raises(InvalidArgument, match="positive rate"):
        Quota(requests_per_s=0)
    with pytest.raises(InvalidArgument, match="burst of at least 1"):
        Quota(burst=0)


# --- the coordinator's attestation, as workers check it ----------------------------------


def test_worker_accepts_a_software_coordinator_only_when_told_to(
    local: Coordinator, clock: Clock
) -> None:
    w = Worker(account(0), local.handle, clock=clock)

    def check(**kwargs: object) -> Claims:
        clock.now += 1.0  # the test coordinator's quota is one request a second
        return w.check_coordinator(**kwargs)  # type: ignore[arg-type]

    with pytest.raises(NotPermitted, match=r"no hardware vouches .*--allow-insecure-coordinator"):
        check()
    claims = check(allow_insecure=True, expected=account(9).address)
    assert claims.provider == "software" and not claims.hardware_backed
    assert claims.report_data == report_data_for(account(9).address)
    assert claims.measurement == software_measurement()
    assert w.coordinator_claims == claims
    with pytest.raises(NotPermitted, match="not the expected"):
        check(allow_insecure=True, expected=account(8).address)
    with pytest.raises(NotPermitted, match="allow-list"):
        check(allow_insecure=True, measurements=["00" * 32])
    assert check(allow_insecure=True, measurements=[software_measurement()])


def test_worker_refuses_an_unattested_coordinator(coordinator: Coordinator) -> None:
    w = Worker(account(0), coordinator.handle, clock=coordinator.clock)
    with pytest.raises(NotPermitted, match="offers no attestation"):
        w.check_coordinator(allow_insecure=True)


def test_evidence_of_another_key_or_a_copied_answer_is_refused(clock: Clock) -> None:
    real = CoordinatorAttestation.software(account(9), clock())
    challenge = bytes(range(32))
    answer = real.answer(challenge, clock())
    assert verify_coordinator(answer, challenge, allow_insecure=True, now=int(clock()))
    # An answer replayed to another challenge: the signature is not over this one.
    with pytest.raises(NotPermitted, match="not by the key its evidence binds"):
        verify_coordinator(answer, bytes(32), allow_insecure=True, now=int(clock()))
    # A coordinator showing another coordinator's evidence under its own key.
    impostor = CoordinatorAttestation(account(8), "software", real.evidence).answer(
        challenge, clock()
    )
    impostor["evidence"] = answer["evidence"]  # the copied statement binds account 9's key
    with pytest.raises(NotPermitted, match="does not verify"):
        verify_coordinator(impostor, challenge, allow_insecure=True, now=int(clock()))
    # Evidence of an unknown provider, and an answer missing its parts.
    with pytest.raises(NotPermitted, match="does not know"):
        verify_coordinator({**answer, "provider": "tpm"}, challenge, allow_insecure=True)
    with pytest.raises(NotPermitted, match="lacks its address"):
        verify_coordinator({"provider": "software"}, challenge, allow_insecure=True)
    with pytest.raises(NotPermitted, match="malformed"):
        verify_coordinator({**answer, "evidence": "zz"}, challenge, allow_insecure=True)


# --- bisection to the first disputed step ------------------------------------------------


@pytest.mark.parametrize("j", [0, 11, 17])
def test_bisection_pins_a_late_cheat_to_its_first_stretch(tmp_path: object, j: int) -> None:
    state = SqlComputeState(f"sqlite:///{tmp_path}/bisect.sqlite3")
    try:
        c = Coordinator(state)
        start = save_checkpoint(SPEC.build(), {"format": "pt"}, spec=SPEC)
        job = c.submit_job(
            SPEC, start, X, Y, IDS, dataset="toy", steps_per_unit=32, units=1, shard_size=10
        )
        honest = [Worker(account(i), c.handle) for i in (0, 1)]
        cheat = LateCheatWorker(account(2), c.handle, start_step=j)
        for w in [cheat, *honest]:
            w.register()
        run_all([cheat, *honest])
        status = c.job_status(job)
        assert status.state == "done" and status.cheaters == (cheat.address,)
        [e] = c.state.evidence(job)
        # the stretch of TRACE_EVERY steps that holds the cheat's first step
        first = j - j % TRACE_EVERY
        last = first + TRACE_EVERY - 1
        assert e["worker"] == cheat.address
        assert (e["disputed_from"], e["disputed_step"]) == (first, last)
        assert e["honest_step_hash"] != e["bad_step_hash"]
        # the coordinator computed the unit only up to the disputed stretch
        assert c.referee_runs == 1 and c.referee_steps == last + 1 < 32
        rows = [i - 1000 for i in IDS[:10]]
        _, trace = run_unit_traced(SPEC, start, X[rows], Y[rows], 32, 0)
        before = trace_of(start, SPEC) if first == 0 else trace[first - 1]
        assert e["agreed_state_hash"] == "0x" + before.hex()
        assert e["honest_step_hash"] == "0x" + trace[last].hex()
        assert c.checkpoint(job) == run_unit(SPEC, start, X[rows], Y[rows], 32, 0)
    finally:
        state.close()


def test_a_trace_that_does_not_match_its_result_is_refused(tmp_path: object) -> None:
    state = SqlComputeState(f"sqlite:///{tmp_path}/trace.sqlite3")
    try:
        c = Coordinator(state)
        submit(c, units=1)
        w = Worker(account(0), c.handle)
        w.register()
        payload = UnitPayload.from_body(w.send("next", b"{}"))
        out, trace = w.compute_traced(payload)
        meta = {"unit_id": payload.unit.unit_id, "input_hash": payload.unit.input_hash}
        assert len(trace) == 32  # a unit of 3 steps: one entry, after its last step
        for bad, why in (
            (trace[:-1], "not 1 state hashes"),
            (trace + trace, "not 1 state hashes"),
            (bytes(32), "does not end"),
        ):
            with pytest.raises(InvalidArgument, match=why):
                w.send("result", pack_parts(meta, {"checkpoint": out, "trace": bad}))
        w.send("result", pack_parts(meta, {"checkpoint": out, "trace": trace}))  # the true one
        assert c.state.trace(payload.unit.unit_id, w.address) is not None
    finally:
        state.close()


def test_without_traces_a_dispute_costs_the_whole_unit(tmp_path: object) -> None:
    state = SqlComputeState(f"sqlite:///{tmp_path}/untraced.sqlite3")
    try:
        c = Coordinator(state)
        job = submit(c, units=1)
        honest = [Worker(account(i), c.handle, trace=False) for i in (0, 1)]
        cheat = LazyWorker(account(2), c.handle, trace=False)
        for w in [cheat, *honest]:
            w.register()
        run_all([cheat, *honest])
        [e] = c.state.evidence(job)
        assert e["worker"] == cheat.address and e["disputed_step"] is None
        assert c.referee_runs == 1 and c.referee_steps == 3  # the whole unit of 3 steps
        assert c.checkpoint(job) == plain_training(1)
    finally:
        state.close()
