"""The verdict: unanimity accepted, disagreement refereed, tolerance honoured, adaptive trust."""

from __future__ import annotations

import random

import numpy as np
import pytest

from databright.compute.replication import (
    RefereeRun,
    ReplicaResult,
    ReplicationPolicy,
    decide,
    first_divergence,
    run_unit_traced,
    trace_of,
    trace_steps,
)
from databright.compute.state import ResultRecord, WorkerRecord
from databright.compute.units import output_hash, relative_l2, run_unit
from databright.errors import InvalidArgument
from databright.ml.checkpoint import save_checkpoint
from databright.ml.spec import ModelSpec

SPEC = ModelSpec.from_dict(
    {
        "input_shape": [4],
        "classes": 2,
        "layers": [{"type": "Linear", "out_features": 2}],
        "optimizer": {"type": "sgd", "lr": 0.1},
        "batch_size": 4,
    }
)
START = save_checkpoint(SPEC.build(), spec=SPEC)
X = np.random.default_rng(1).normal(size=(12, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)


def honest() -> bytes:
    return run_unit(SPEC, START, X, Y, 3, 7)


def replica(worker: str, ck: bytes) -> ReplicaResult:
    return ReplicaResult(
        ResultRecord(1, worker, output_hash(ck), {"sender": worker}, "0x", 0.0), ck
    )


def test_units_are_deterministic() -> None:
    assert honest() == honest() and honest() != START
    assert relative_l2(honest(), honest()) == 0.0 and relative_l2(START, honest()) > 0


def test_unanimous_group_needs_no_referee() -> None:
    v = decide(1, 1, "0xin", [replica(w, honest()) for w in "abc"], lambda: pytest.fail("no"))
    assert v.agreed_hash == output_hash(honest()) and v.cheaters == () and not v.refereed


def test_disagreement_is_refereed_and_names_the_cheaters() -> None:
    flipped = bytearray(honest())
    flipped[-1] ^= 0x40
    group = [replica("a", honest()), replica("b", START), replica("c", bytes(flipped))]
    v = decide(1, 1, "0xin", group, honest)
    assert v.refereed and v.honest == ("a",)
    assert {e.worker for e in v.cheaters} == {"b", "c"}
    assert all(
        e.honest_hash == v.agreed_hash and e.honest_envelope == {"sender": "a"} for e in v.cheaters
    )
    # a colluding majority is still caught while one honest replica (or the referee) stands
    v = decide(
        1, 1, "0xin", [replica("a", START), replica("b", START), replica("c", honest())], honest
    )
    assert {e.worker for e in v.cheaters} == {"a", "b"} and v.agreed_hash == output_hash(honest())


def test_tolerance_accepts_near_misses_only() -> None:
    flipped = bytearray(honest())
    flipped[-4] ^= 0x01  # lowest mantissa bit of a float32: far below 1e-3
    group = [replica("a", honest()), replica("b", honest()), replica("c", bytes(flipped))]
    v = decide(1, 1, "0xin", group, lambda: pytest.fail("no referee needed"), tolerance=1e-3)
    assert v.cheaters == () and v.agreed_hash == output_hash(honest())
    v = decide(1, 1, "0xin", [*group[:2], replica("c", START)], honest, tolerance=1e-3)
    assert [e.worker for e in v.cheaters] == ["c"]


def test_policy_checks_and_adaptive_trust() -> None:
    with pytest.raises(InvalidArgument):
        ReplicationPolicy(replicas=0)
    policy = ReplicationPolicy(adaptive=True, trusted_after=5, adaptive_probability=0.25)
    trusted = WorkerRecord("0xa", "0xa", "c", 0.0, valid_results=5)
    rng = random.Random(0)
    sizes = [policy.replicas_for(trusted, rng) for _ in range(400)]
    # spot checks are pairs (BOINC's quorum); a newcomer gets the full group
    assert 0.15 < sizes.count(2) / 400 < 0.35 and set(sizes) == {1, 2}
    newcomer = WorkerRecord("0xb", "0xb", "c", 0.0, valid_results=4)
    assert policy.replicas_for(newcomer, rng) == 3
    assert ReplicationPolicy(adaptive=True, spot_check_replicas=3).replicas_for(trusted, rng) in {
        1,
        3,
    }
    with pytest.raises(InvalidArgument):
        ReplicationPolicy(spot_check_replicas=1)


# --- traces and bisection ----------------------------------------------------------------


def test_traced_run_is_the_same_run_and_its_prefixes_agree() -> None:
    out, trace = run_unit_traced(SPEC, START, X, Y, 7, 5)
    assert out == run_unit(SPEC, START, X, Y, 7, 5)  # the same bytes as the untraced unit
    assert len(trace) == 7 and trace[-1] == trace_of(out, SPEC)  # type: ignore[arg-type]
    none, prefix = run_unit_traced(SPEC, START, X, Y, 7, 5, stop_after=3)
    assert none is None and prefix == trace[:3]
    with pytest.raises(InvalidArgument, match=r"stop_after must be 0\.\.7"):
        run_unit_traced(SPEC, START, X, Y, 7, 5, stop_after=8)
    with pytest.raises(InvalidArgument, match="steps must be"):
        run_unit_traced(SPEC, START, X, Y, 0, 5)


def test_a_strided_trace_is_the_full_trace_at_its_marks() -> None:
    assert trace_steps(7, 3) == [2, 5, 6] and trace_steps(8, 8) == [7] and trace_steps(2, 8) == [1]
    assert trace_steps(5, 1) == [0, 1, 2, 3, 4]
    with pytest.raises(InvalidArgument):
        trace_steps(5, 0)
    out, full = run_unit_traced(SPEC, START, X, Y, 7, 5)
    strided_out, strided = run_unit_traced(SPEC, START, X, Y, 7, 5, every=3)
    assert strided_out == out and strided == [full[2], full[5], full[6]]


@pytest.mark.parametrize("j", [0, 1, 6, 14, 15])
def test_first_divergence_finds_the_step_in_log_k_probes(j: int) -> None:
    a = [bytes([i]) * 32 for i in range(16)]
    b = a[:j] + [b"\xff" * 32] * (16 - j)
    step, probes = first_divergence(a, b)
    assert step == j and probes <= 4  # log2(16)


def test_first_divergence_needs_traces_that_end_differently() -> None:
    a = [b"\x01" * 32, b"\x02" * 32]
    with pytest.raises(InvalidArgument, match="end differently"):
        first_divergence(a, list(a))
    with pytest.raises(InvalidArgument, match="one length"):
        first_divergence(a, a[:1])


def test_referee_computes_only_the_prefix_it_is_asked_for() -> None:
    referee = RefereeRun(SPEC, START, X, Y, 12, 3)
    _, full = run_unit_traced(SPEC, START, X, Y, 12, 3)
    assert referee.hash_after(4) == full[4] and referee.steps_run == 5
    assert referee.hash_after(2) == full[2] and referee.steps_run == 5  # already known
    assert referee.full_output() == run_unit(SPEC, START, X, Y, 12, 3)
    assert referee.steps_run == 5 + 12
