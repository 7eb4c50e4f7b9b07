"""Audits of split training: stage workers that return wrong but finite activations or
gradients, or skip their optimizer step, are caught by the coordinator recomputing their
batch, with evidence naming them; honest runs with audits still give the unsplit weights to
the bit, and no worker receives another stage's weights. Real torch and stage workers, no
mocks."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import torch
from eth_account import Account
from sklearn.datasets import load_digits

from databright.compute.split_relay import RelayedStageWorker, SplitRelay
from databright.compute.splitting import (
    ScaledActivationsWorker,  # returns its activations times 1.001: finite, right shape, wrong
    SplitPlan,
    SplitTraining,
    StageEvidence,
    StageWorker,
    decode_message,
    encode_message,
)
from databright.errors import InvalidArgument, NotFound, NotPermitted
from databright.ml.checkpoint import checkpoint_tensors
from databright.ml.spec import ModelSpec
from databright.ml.train import train


def with_(spec: ModelSpec, **changes: Any) -> ModelSpec:
    return ModelSpec.from_dict({**spec.to_dict(), **changes})


SGD_NORM = ModelSpec.from_dict(
    {
        "input_shape": [64],
        "classes": 10,
        "layers": [
            {"type": "Linear", "out_features": 24},
            {"type": "BatchNorm1d"},
            {"type": "Tanh"},
            {"type": "Linear", "out_features": 16},
            {"type": "Dropout", "p": 0.2},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 10},
        ],
        "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
        "epochs": 1,
        "batch_size": 32,
        "seed": 3,
    }
)


def staffed(
    plan: SplitPlan, workers: list[StageWorker], **kwargs: Any
) -> tuple[SplitTraining, list[StageWorker]]:
    job = SplitTraining(plan, **kwargs)
    for w in workers:
        job.join(w.address, w.handle)
    return job, workers


def honest(n: int) -> list[StageWorker]:
    return [StageWorker(f"0x{k + 1:040x}") for k in range(n)]


# --- cheaters ------------------------------------------------------------------------------


class LateCheat(StageWorker):
    """Honest before step ``start``; from then on it cheats (how: the subclass says)."""

    def __init__(self, address: str, start: int = 3) -> None:
        super().__init__(address)
        self.start = start

    def cheating(self, body: bytes) -> bool:
        meta, _ = decode_message(body, copy=False)
        return meta.get("mode") != "eval" and int(meta.get("step", -1)) >= self.start


class GradientWorker(LateCheat):
    """Returns a wrong gradient for its input (and so misleads the stage before it)."""

    def handle(self, route: str, body: bytes) -> bytes:
        reply = super().handle(route, body)
        if route != "backward" or not self.cheating(body):
            return reply
        meta, arrays = decode_message(reply)
        arrays["grad"] *= np.float32(0.5)
        return encode_message(meta, arrays)


class LazyWorker(LateCheat):
    """Skips its optimizer step, and commits to the state it really holds (so its snapshot
    always matches its commitment): only the recomputed step can tell."""

    def handle(self, route: str, body: bytes) -> bytes:
        if route != "backward" or not self.cheating(body):
            return super().handle(route, body)
        meta, arrays = decode_message(body)
        update = meta.get("update") == "true"
        reply = super().handle(route, encode_message({**meta, "update": False}, arrays))
        if not update:
            return reply
        answer, out = decode_message(reply)
        return encode_message({**answer, **self._commit(self._jobs[int(meta["job"])])}, out)


class ForgingWorker(StageWorker):
    """Trains honestly but hands back other final weights than it trained."""

    def handle(self, route: str, body: bytes) -> bytes:
        reply = super().handle(route, body)
        if route != "weights":
            return reply
        meta, arrays = decode_message(reply)
        return encode_message(meta, {n: a * np.float32(1.01) for n, a in arrays.items()})


# --- honest runs ---------------------------------------------------------------------------


def test_audits_do_not_change_the_weights(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits[0][:700], digits[1][:700]
    reference = train(spec, x, y)
    job, _ = staffed(SplitPlan.balanced(spec, 2), honest(2), audit_probability=1.0)
    split = job.train(x, y)
    # every batch recomputed (dropout and Adam included) and found equal to the bit; the
    # audits drew nothing from the training's generators
    assert split.checkpoint == reference.checkpoint
    assert split.history == reference.history
    batches = spec.epochs * -(-int(reference.metrics["train_examples"]) // spec.batch_size)
    assert job.audits == split.metrics["audits"] == batches
    assert split.metrics["audit_messages"] == 2 * batches
    assert job.evidence == [] and job.cheaters == ()


def test_audits_replay_momentum_batch_norm_and_three_stages(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits[0][:400], digits[1][:400]
    reference = train(SGD_NORM, x, y)
    job, _ = staffed(SplitPlan.balanced(SGD_NORM, 3), honest(3), audit_probability=1.0)
    split = job.train(x, y)
    a, b = checkpoint_tensors(reference.checkpoint), checkpoint_tensors(split.checkpoint)
    for name in a:  # batch norm across stages: equal up to rounding, as without audits
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)
    assert job.audits > 0 and job.evidence == []


def test_audits_replay_micro_batches(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits[0][:300], digits[1][:300]
    spec = with_(
        SGD_NORM, layers=[la.to_dict() for la in SGD_NORM.layers if la.type != "BatchNorm1d"]
    )
    job, _ = staffed(SplitPlan.balanced(spec, 2), honest(2), micro_batches=3, audit_probability=1.0)
    job.train(x, y)
    assert job.audits > 0 and job.evidence == []


def test_no_worker_receives_another_stages_weights_during_audits(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    plan = SplitPlan.balanced(spec, 2)
    job, workers = staffed(plan, honest(2), audit_probability=1.0)
    job.train(digits[0][:200], digits[1][:200])
    for k, worker in enumerate(workers):
        loaded = {r.name for r in worker.received if r.route == "load"}
        assert loaded == set(plan.tensor_names[k])
        assert {r.name for r in worker.received if r.route != "load"} <= {"x", "rng", "grad"}
        # what the coordinator took in audits: this stage's state and nothing else
        taken = {r.name for r in job.audited[worker.address]}
        assert {n[2:] for n in taken if n.startswith("w.")} == set(plan.tensor_names[k])
        assert {n.rsplit("/", 1)[1] for n in taken if n.startswith("optimizer/")} == {
            "step",
            "exp_avg",
            "exp_avg_sq",
        }


# --- cheaters caught -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "stage", "what"),
    [
        (ScaledActivationsWorker, 0, "activations"),
        (ScaledActivationsWorker, 1, "activations"),
        (GradientWorker, 1, "input gradients"),
        (LazyWorker, 0, "an updated state"),
        (LazyWorker, 1, "an updated state"),
    ],
)
def test_a_cheater_is_caught_at_the_first_audit_after_it_starts(
    spec: ModelSpec,
    digits: tuple[np.ndarray, np.ndarray],
    cls: type[LateCheat | ScaledActivationsWorker],
    stage: int,
    what: str,
) -> None:
    workers: list[StageWorker] = honest(2)
    cheat = cls("0x" + "c" * 40, start=3)
    workers[stage] = cheat
    job, _ = staffed(SplitPlan.balanced(spec, 2), workers, job_id=4, audit_probability=1.0)
    with pytest.raises(NotPermitted, match=r"^[^\n]*$") as info:
        job.train(*digits)
    assert f"worker {cheat.address} returned {what} at step 3" in str(info.value)
    assert job.audits == 4  # steps 0..2 passed, step 3 caught
    assert job.cheaters == (cheat.address,)
    (found,) = job.evidence
    assert isinstance(found, StageEvidence)
    assert (found.job_id, found.step, found.stage, found.worker, found.what) == (
        4,
        3,
        stage,
        cheat.address,
        what,
    )
    assert found.worker_hash != found.recomputed_hash
    assert all(len(h) == 64 for h in (found.input_hash, found.worker_hash, found.recomputed_hash))
    assert found.to_dict()["worker"] == cheat.address


def test_a_persistent_cheater_is_caught_within_an_epoch_at_the_default_rate(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    workers: list[StageWorker] = honest(2)
    workers[1] = ScaledActivationsWorker("0x" + "c" * 40, start=0)
    # seed 1: the 10th of the first epoch's 23 batches is the first audited (at 5% a batch
    # the first audit comes after 20 batches on average, within 23 with probability 0.69)
    job, _ = staffed(SplitPlan.balanced(spec, 2), workers, audit_seed=1)
    assert job.audit_probability == 0.05
    with pytest.raises(NotPermitted, match="returned activations at step 9"):
        job.train(*digits)
    assert job.audits == 1 and job.cheaters == (workers[1].address,)


def test_final_weights_other_than_committed_are_refused(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    workers: list[StageWorker] = honest(2)
    workers[0] = ForgingWorker("0x" + "f" * 40)
    job, _ = staffed(SplitPlan.balanced(with_(spec, epochs=1), 2), workers, audit_probability=0.0)
    with pytest.raises(NotPermitted, match="final weights other than those it committed to"):
        job.train(digits[0][:200], digits[1][:200])
    assert job.audits == 0
    assert [(e.stage, e.what) for e in job.evidence] == [(0, "final weights")]


def test_a_snapshot_is_only_of_the_last_batch_and_the_rate_is_checked(spec: ModelSpec) -> None:
    job, (first, _) = staffed(SplitPlan.balanced(spec, 2), honest(2), audit_probability=0.0)
    with pytest.raises(NotFound, match="holds no stage of job 0"):
        first.handle("snapshot", encode_message({"job": 0, "step": 0}, {}))
    job.train(*(a[:200] for a in load_digits(return_X_y=True)))
    with pytest.raises(NotFound, match="keeps the state of its last batch only, not of step 0"):
        first.handle("snapshot", encode_message({"job": 0, "step": 0}, {}))
    for bad in (-0.1, 1.5, True, "0.1"):
        with pytest.raises(InvalidArgument, match="audit_probability must be a number from 0 to 1"):
            SplitTraining(SplitPlan.balanced(spec, 2), audit_probability=bad)  # type: ignore[arg-type]


def test_a_worker_that_does_not_commit_is_refused(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    class Silent(StageWorker):
        def handle(self, route: str, body: bytes) -> bytes:
            reply = super().handle(route, body)
            if route != "backward":
                return reply
            return encode_message({}, decode_message(reply)[1])

    workers: list[StageWorker] = [Silent("0x" + "5" * 40), StageWorker("0x" + "6" * 40)]
    job, _ = staffed(SplitPlan.balanced(spec, 2), workers, audit_probability=0.0)
    with pytest.raises(InvalidArgument, match="did not commit to its updated state"):
        job.train(digits[0][:200], digits[1][:200])


def test_audits_travel_through_the_signed_relay(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    relay = SplitRelay(poll_s=0.2, timeout_s=30)
    stages: list[StageWorker] = [StageWorker(""), ScaledActivationsWorker("", start=2)]
    workers = [
        RelayedStageWorker(Account.from_key(f"0x{k + 1:064x}"), relay.handle, stage_worker=s)
        for k, s in enumerate(stages)
    ]
    job = SplitTraining(SplitPlan.balanced(spec, 2), audit_probability=1.0)
    for w in workers:
        job.join(w.address, relay.link_for(w.address))
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        with pytest.raises(NotPermitted, match="returned activations at step 2"):
            job.train(digits[0][:300], digits[1][:300])
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert job.cheaters == (workers[1].address,)


class PosingWorker(StageWorker):
    """Shows an audit another starting state than the one it committed to."""

    def handle(self, route: str, body: bytes) -> bytes:
        reply = super().handle(route, body)
        if route != "snapshot":
            return reply
        meta, arrays = decode_message(reply)
        return encode_message(meta, {n: a * np.float32(2) for n, a in arrays.items()})


class OddOptimizerWorker(StageWorker):
    """Keeps (and commits to) optimizer state that no honest optimizer holds."""

    def _commit(self, held: Any) -> dict[str, str]:
        held.optimizer.state[next(held.module.parameters())]["bogus"] = torch.zeros(1)
        return super()._commit(held)


@pytest.mark.parametrize(
    ("cls", "probability", "step", "what"),
    [
        (PosingWorker, 1.0, 0, "a starting state"),
        # audit seed 0 at 1/2 skips steps 0 and 1: the odd state, committed at step 0, is
        # what step 2 starts from
        (OddOptimizerWorker, 0.5, 2, "an optimizer state"),
    ],
)
def test_a_snapshot_must_be_the_committed_state_of_an_honest_optimizer(
    spec: ModelSpec,
    digits: tuple[np.ndarray, np.ndarray],
    cls: type[StageWorker],
    probability: float,
    step: int,
    what: str,
) -> None:
    workers: list[StageWorker] = [cls("0x" + "7" * 40), StageWorker("0x" + "8" * 40)]
    job, _ = staffed(
        SplitPlan.balanced(spec, 2), workers, audit_probability=probability, audit_seed=0
    )
    with pytest.raises(NotPermitted, match=f"returned {what} at step {step}"):
        job.train(digits[0][:200], digits[1][:200])
    assert [(e.stage, e.what) for e in job.evidence] == [(0, what)]
