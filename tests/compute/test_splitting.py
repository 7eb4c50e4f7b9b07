"""Model splitting (issue 12 §5): split training equals unsplit training, no worker ever
receives the whole model's weights (checked on what each worker recorded receiving), and a
worker or owner trying to assemble the model is refused. Real torch, real stage workers
talking bytes through their links; no mocks."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from databright_dev.serving import serving
from eth_account import Account
from eth_account.signers.local import LocalAccount
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from databright.compute.exposure import ExposureLedger
from databright.compute.protocol import pack_parts, seal, unpack_parts
from databright.compute.split_relay import RelayedStageWorker, SplitRelay
from databright.compute.splitting import (
    SplitPlan,
    SplitTraining,
    StageHoldings,
    StageLink,
    StageWorker,
    decode_message,
    encode_message,
)
from databright.compute.state import SqlComputeState
from databright.compute.transport import http_transport
from databright.errors import (
    DuplicateSubmission,
    InvalidArgument,
    InvalidModelSpec,
    NodeUnreachable,
    NotFound,
    NotPermitted,
)
from databright.ml.checkpoint import checkpoint_tensors, save_checkpoint
from databright.ml.spec import ModelSpec
from databright.ml.train import EpochReport, train
from databright.server.split_relay import split_relay_app


def with_(spec: ModelSpec, **changes: Any) -> ModelSpec:
    return ModelSpec.from_dict({**spec.to_dict(), **changes})


CONV = ModelSpec.from_dict(
    {
        "input_shape": [1, 8, 8],
        "classes": 10,
        "layers": [
            {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "BatchNorm2d"},
            {"type": "ReLU"},
            {"type": "MaxPool2d", "kernel_size": 2},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 16},
            {"type": "Tanh"},
            {"type": "Dropout", "p": 0.2},
            {"type": "Linear", "out_features": 10},
        ],
        "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
        "epochs": 2,
        "batch_size": 32,
        "seed": 3,
    }
)

TANH = ModelSpec.from_dict(
    {
        "input_shape": [64],
        "classes": 10,
        "layers": [
            {"type": "Linear", "out_features": 32},
            {"type": "Tanh"},
            {"type": "Linear", "out_features": 16},
            {"type": "Tanh"},
            {"type": "Linear", "out_features": 10},
        ],
        "optimizer": {"type": "adamw", "lr": 0.01},
        "epochs": 2,
        "batch_size": 50,
        "seed": 5,
    }
)


def staffed(plan: SplitPlan, **kwargs: Any) -> tuple[SplitTraining, list[StageWorker]]:
    job = SplitTraining(plan, **kwargs)
    workers = [StageWorker(f"0x{k + 1:040x}") for k in range(plan.stages)]
    for w in workers:
        job.join(w.address, w.handle)
    return job, workers


def weights_received(worker: StageWorker) -> dict[str, tuple[int, ...]]:
    return {r.name: r.shape for r in worker.received if r.route == "load"}


# --- the plan ----------------------------------------------------------------------------


def test_balanced_plan_cuts_the_digits_mlp_between_its_linear_layers(spec: ModelSpec) -> None:
    plan = SplitPlan.balanced(spec, 2)
    assert plan.bounds == (0, 3, 4)
    assert plan.tensor_names == (("0.weight", "0.bias"), ("3.weight", "3.bias"))
    assert plan.shapes == ((64,), (64,), (10,))


def test_balanced_plan_spreads_parameters_over_three_stages() -> None:
    plan = SplitPlan.balanced(CONV, 3)
    assert plan.stages == 3
    assert all(names for names in plan.tensor_names)
    assert plan.shapes[0] == (1, 8, 8) and plan.shapes[-1] == (10,)
    # the batch norm's running statistics are state too and travel with its stage
    everything = {n for names in plan.tensor_names for n in names}
    assert everything == set(CONV.build(device="meta").state_dict())


@pytest.mark.parametrize(
    ("bounds", "words"),
    [
        ([0, 4], "at least two stages"),
        ([1, 3, 4], "start at 0 and end at 4"),
        ([0, 3, 5], "start at 0 and end at 4"),
        ([0, 3, 3, 4], "increase strictly"),
        ([0, 1, 3, 4], "stage 1 (layers 1..2) holds no weights"),
        (["a", 4], "whole layer numbers"),
    ],
)
def test_bad_plans_are_refused_in_one_sentence(
    spec: ModelSpec, bounds: list[Any], words: str
) -> None:
    with pytest.raises(InvalidArgument, match=r"^[^\n]*$") as info:
        SplitPlan.of(spec, bounds)
    assert words in str(info.value)


def test_balanced_refuses_one_stage_or_more_stages_than_weighted_layers(spec: ModelSpec) -> None:
    with pytest.raises(InvalidArgument, match="one stage would hold the whole model"):
        SplitPlan.balanced(spec, 1)
    with pytest.raises(InvalidArgument, match="2 layers with weights, too few for 3 stages"):
        SplitPlan.balanced(spec, 3)
    with pytest.raises(InvalidArgument, match="needs a ModelSpec"):
        SplitPlan.of(spec.to_dict(), [0, 3, 4])  # type: ignore[arg-type]


# --- split training equals unsplit training ----------------------------------------------


def test_split_training_gives_the_weights_unsplit_training_gives(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    reference = train(spec, x, y)
    job, _ = staffed(SplitPlan.balanced(spec, 2))
    split = job.train(x, y)
    # dropout masks travel with the activations, so the run is the unsplit run to the bit
    assert split.checkpoint == reference.checkpoint
    assert split.history == reference.history
    for key in ("holdout_accuracy", "train_accuracy", "train_examples", "holdout_examples"):
        assert split.metrics[key] == reference.metrics[key]
    assert split.metrics["holdout_accuracy"] > 0.8
    # per batch: one forward and one backward message per stage
    batches = -(-int(reference.metrics["train_examples"]) // spec.batch_size)
    assert split.metrics["messages"] == 2 + spec.epochs * (4 * batches + 2) + 2


def test_three_stages_with_batch_norm_and_dropout_match_unsplit(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits
    x = x[:600].reshape(-1, 1, 8, 8)
    y = y[:600]
    reference = train(CONV, x, y)
    job, _ = staffed(SplitPlan.balanced(CONV, 3))
    split = job.train(x, y)
    a, b = checkpoint_tensors(reference.checkpoint), checkpoint_tensors(split.checkpoint)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)


def test_micro_batches_sum_to_the_batch_gradient(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    reference = train(TANH, x[:800], y[:800])
    job, _ = staffed(SplitPlan.of(TANH, [0, 2, 5]), micro_batches=3)
    split = job.train(x[:800], y[:800])
    a, b = checkpoint_tensors(reference.checkpoint), checkpoint_tensors(split.checkpoint)
    for name in a:  # sums in another order: equal up to float rounding, not to the bit
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5)


def test_fine_tuning_from_a_checkpoint_matches_too(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    start = train(with_(spec, epochs=1), x[:500], y[:500]).checkpoint
    reference = train(spec, x, y, init=start)
    job, _ = staffed(SplitPlan.balanced(spec, 2))
    assert job.train(x, y, init=start).checkpoint == reference.checkpoint


def test_micro_batches_refused_with_batch_norm_and_out_of_range() -> None:
    plan = SplitPlan.balanced(CONV, 2)
    with pytest.raises(InvalidArgument, match="layer 1 is batch normalisation"):
        SplitTraining(plan, micro_batches=2)
    with pytest.raises(InvalidArgument, match=r"micro_batches must be 1\.\.32"):
        SplitTraining(plan, micro_batches=33)
    with pytest.raises(InvalidArgument, match="needs a SplitPlan"):
        SplitTraining(CONV)  # type: ignore[arg-type]


def test_training_needs_every_stage_staffed_and_valid_data(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    job = SplitTraining(SplitPlan.balanced(spec, 2))
    w = StageWorker("0x" + "1" * 40)
    job.join(w.address, w.handle)
    with pytest.raises(InvalidArgument, match="stage 1 of split job 0 has no worker"):
        job.train(x, y)
    job.join("0x" + "2" * 40, StageWorker("0x" + "2" * 40).handle)
    with pytest.raises(InvalidArgument, match="features have shape"):
        job.train(x[:, :10], y)


# --- what each worker received -----------------------------------------------------------


def test_no_worker_ever_receives_the_whole_model(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    plan = SplitPlan.balanced(CONV, 3)
    job, workers = staffed(plan)
    job.train(x[:300].reshape(-1, 1, 8, 8), y[:300])
    whole = dict(CONV.build(device="meta").state_dict())
    parameters = {n for n, _ in CONV.build(device="meta").named_parameters()}
    for k, worker in enumerate(workers):
        got = weights_received(worker)
        # exactly its stage's tensors, with their shapes, and never every parameter
        assert set(got) == set(plan.tensor_names[k])
        assert all(got[n] == tuple(whole[n].shape) for n in got)
        assert not parameters <= set(got)
        # everything else it was sent is activations, gradients and the generator state
        assert {r.name for r in worker.received if r.route != "load"} <= {"x", "rng", "grad"}
        # the coordinator's own record says the same
        assert {(r.name, r.shape) for r in job.sent[worker.address]} == set(got.items())
    # and the stages together are the model (nothing was left out)
    assert set().union(*(weights_received(w) for w in workers)) == set(whole)


def test_the_last_stage_never_sees_labels(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    job, workers = staffed(SplitPlan.balanced(spec, 2))
    job.train(x[:200], y[:200])
    rng_shape = tuple(torch.get_rng_state().shape)
    for worker in workers:
        for record in worker.received:
            if record.route == "load":
                continue
            # activations and gradients are (batch, features); a label vector would be 1-d
            assert (record.name, len(record.shape)) in (("x", 2), ("grad", 2)) or (
                record.name == "rng" and record.shape == rng_shape
            )


# --- the assembling attacker ----------------------------------------------------------------


class AssemblingWorker(StageWorker):
    """Attacker: accepts every stage it can get (it skips the honest worker's own check) in
    the hope of holding the whole model."""

    def handle(self, route: str, body: bytes) -> bytes:
        if route == "load":
            self._jobs.clear()  # forget what it holds so that it can take another stage
        return super().handle(route, body)


def test_a_worker_asking_for_a_second_stage_is_refused(spec: ModelSpec) -> None:
    plan = SplitPlan.balanced(spec, 2)
    job = SplitTraining(plan, job_id=7)
    thief = AssemblingWorker("0x" + "a" * 40)
    assert job.join(thief.address, thief.handle) == 0
    with pytest.raises(NotPermitted, match="holds stage 0 of split job 7 already") as info:
        job.join(thief.address, thief.handle)
    assert "a worker holds one stage" in str(info.value)
    with pytest.raises(NotPermitted, match="holds stage 0"):
        job.join(thief.address, thief.handle, stage=1)
    honest = StageWorker("0x" + "b" * 40)
    assert job.join(honest.address, honest.handle) == 1
    assert job.holder(thief.address) == 0


def test_the_attacker_ends_up_with_one_stage_only(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    plan = SplitPlan.balanced(spec, 2)
    job = SplitTraining(plan)
    thief = AssemblingWorker("0x" + "a" * 40)
    honest = StageWorker("0x" + "b" * 40)
    job.join(thief.address, thief.handle)
    with pytest.raises(NotPermitted):
        job.join(thief.address, thief.handle)
    job.join(honest.address, honest.handle)
    job.train(x[:200], y[:200])
    assert set(weights_received(thief)) == set(plan.tensor_names[0])


def test_one_owner_never_holds_every_stage(spec: ModelSpec) -> None:
    plan = SplitPlan.balanced(spec, 2)
    job = SplitTraining(plan)
    owner = "0x" + "c" * 40
    first, second = StageWorker("0x" + "1" * 40), StageWorker("0x" + "2" * 40)
    job.join(first.address, first.handle, owner=owner)
    with pytest.raises(NotPermitted, match=f"owner {owner}'s workers would hold every stage"):
        job.join(second.address, second.handle, owner=owner)
    other = StageWorker("0x" + "3" * 40)
    assert job.join(other.address, other.handle, owner="0x" + "d" * 40) == 1


def test_an_owner_may_hold_some_but_not_all_of_three_stages() -> None:
    plan = SplitPlan.balanced(CONV, 3)
    job = SplitTraining(plan)
    owner = "0x" + "c" * 40
    for i in range(2):
        w = StageWorker(f"0x{i + 1:040x}")
        job.join(w.address, w.handle, owner=owner)
    third = StageWorker("0x" + "9" * 40)
    with pytest.raises(NotPermitted, match="would hold every stage"):
        job.join(third.address, third.handle, owner=owner)
    job.join(third.address, third.handle)


def test_no_worker_or_owner_assembles_a_model_across_split_jobs(spec: ModelSpec) -> None:
    """Each job alone gives a worker one stage; across two jobs of one model, stage 0 in one
    and stage 1 in the other would be every weight. The coordinator's holdings refuse that,
    for a worker and for an owner's workers, and allow the same stage again."""
    holdings = StageHoldings()
    plan = SplitPlan.balanced(spec, 2)
    first, second, third = (SplitTraining(plan, job_id=j, holdings=holdings) for j in (1, 2, 3))
    link: StageLink = StageWorker("0x0").handle
    assert first.join("0xA", link, stage=0) == 0
    with pytest.raises(NotPermitted, match="worker 0xA was given the other weights"):
        second.join("0xA", link, stage=1)
    assert second.join("0xA", link, stage=0) == 0  # the same stage again: nothing new
    assert second.join("0xB", link, stage=1) == 1
    # two workers of one owner, one stage each in different jobs: the owner would hold all
    assert first.join("0xC", link, owner="0xO", stage=1) == 1
    with pytest.raises(NotPermitted, match="owner 0xO was given the other weights"):
        third.join("0xD", link, owner="0xO", stage=0)
    # another architecture (a wider hidden layer) is another model: 0xA may take its stage 1
    layers = spec.to_dict()["layers"]
    wider = SplitPlan.balanced(with_(spec, layers=[{**layers[0], "out_features": 96}, *layers[1:]]))
    assert wider.spec.architecture_digest() != plan.spec.architecture_digest()
    assert SplitTraining(wider, job_id=4, holdings=holdings).join("0xA", link, stage=1) == 1
    assert holdings.held(plan.spec, "0xA") == frozenset(plan.tensor_names[0])


def test_stage_seats_are_checked(spec: ModelSpec) -> None:
    job = SplitTraining(SplitPlan.balanced(spec, 2))
    a, b, c = (StageWorker(f"0x{i:040x}") for i in (1, 2, 3))
    with pytest.raises(
        InvalidArgument, match=r"stage 2 does not exist; this plan has stages 0\.\.1"
    ):
        job.join(a.address, a.handle, stage=2)
    job.join(a.address, a.handle, stage=1)
    with pytest.raises(NotPermitted, match="stage 1 of split job 0 is held by"):
        job.join(b.address, b.handle, stage=1)
    job.join(b.address, b.handle)
    with pytest.raises(NotPermitted, match="every stage of split job 0 has a worker"):
        job.join(c.address, c.handle)


# --- untrusted replies ---------------------------------------------------------------------


class NaNWorker(StageWorker):
    def handle(self, route: str, body: bytes) -> bytes:
        reply = super().handle(route, body)
        if route != "forward":
            return reply
        meta, arrays = decode_message(reply)
        arrays["x"][0, 0] = np.nan
        return encode_message(meta, arrays)


class ForgetfulWorker(StageWorker):
    """Drops the generator state (and so would break every later dropout mask)."""

    def handle(self, route: str, body: bytes) -> bytes:
        reply = super().handle(route, body)
        if route != "forward":
            return reply
        meta, arrays = decode_message(reply)
        arrays.pop("rng", None)
        return encode_message(meta, arrays)


class ShrinkingWorker(StageWorker):
    def handle(self, route: str, body: bytes) -> bytes:
        reply = super().handle(route, body)
        if route != "forward":
            return reply
        meta, arrays = decode_message(reply)
        return encode_message(
            meta, {"x": arrays["x"][:, :3], **{k: v for k, v in arrays.items() if k != "x"}}
        )


@pytest.mark.parametrize(
    ("cls", "words"),
    [
        (NaNWorker, "not finite float32 values"),
        (ShrinkingWorker, r"shape \(64, 3\)"),
        (ForgetfulWorker, "did not return the generator state"),
    ],
)
def test_a_bad_reply_is_refused_before_the_next_stage(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray], cls: type[StageWorker], words: str
) -> None:
    x, y = digits
    job = SplitTraining(SplitPlan.balanced(spec, 2))
    bad, good = cls("0x" + "e" * 40), StageWorker("0x" + "f" * 40)
    job.join(bad.address, bad.handle)
    job.join(good.address, good.handle)
    with pytest.raises(InvalidArgument, match=words):
        job.train(x[:300], y[:300])
    assert not [r for r in good.received if r.route == "forward"]


# --- the worker's side -----------------------------------------------------------------------


def load_body(spec: ModelSpec, plan: SplitPlan, stage: int, job: int = 0) -> bytes:
    state = spec.build().state_dict()
    meta = {
        "job": job,
        "spec": spec.to_json().decode(),
        "stage": stage,
        "start": plan.bounds[stage],
        "stop": plan.bounds[stage + 1],
        "in_shape": list(plan.shapes[stage]),
    }
    return encode_message(meta, {n: state[n] for n in plan.tensor_names[stage]})


def test_stage_worker_refuses_what_it_should_not_do(spec: ModelSpec) -> None:
    plan = SplitPlan.balanced(spec, 2)
    worker = StageWorker("0x" + "1" * 40)
    with pytest.raises(NotFound, match="no route 'steal'"):
        worker.handle("steal", encode_message({"job": 0}, {}))
    with pytest.raises(NotFound, match="holds no stage of job 0"):
        worker.handle("forward", encode_message({"job": 0}, {"x": np.zeros((2, 64), np.float32)}))
    with pytest.raises(InvalidArgument, match="names its job"):
        worker.handle("weights", encode_message({}, {}))
    worker.handle("load", load_body(spec, plan, 1))
    assert worker.holds(0) == 1
    with pytest.raises(NotPermitted, match="holds stage 1 of job 0 already"):
        worker.handle("load", load_body(spec, plan, 0))
    with pytest.raises(InvalidArgument, match=r"takes activations of shape \(batch, 64\)"):
        worker.handle("forward", encode_message({"job": 0}, {"x": np.zeros((2, 10), np.float32)}))
    with pytest.raises(NotFound, match="no forward pass for step 4 micro-batch 0"):
        worker.handle(
            "backward",
            encode_message(
                {"job": 0, "step": 4, "micro": 0}, {"grad": np.zeros((2, 10), np.float32)}
            ),
        )
    reply = worker.handle(
        "forward",
        encode_message(
            {"job": 0, "step": 0, "micro": 0, "mode": "train"}, {"x": np.ones((2, 64), np.float32)}
        ),
    )
    assert decode_message(reply)[1]["x"].shape == (2, 10)
    with pytest.raises(InvalidArgument, match="in float32"):
        worker.handle("forward", encode_message({"job": 0}, {"x": np.ones((2, 64), np.float64)}))
    with pytest.raises(InvalidArgument, match="names its step and micro-batch"):
        worker.handle("forward", encode_message({"job": 0}, {"x": np.ones((2, 64), np.float32)}))
    with pytest.raises(InvalidArgument, match="not torch's CPU generator state"):
        worker.handle(
            "forward",
            encode_message(
                {"job": 0, "step": 1, "micro": 0},
                {"x": np.ones((2, 64), np.float32), "rng": np.zeros(7, np.uint8)},
            ),
        )
    with pytest.raises(InvalidArgument, match=r"needs a float32 gradient of shape \(2, 10\)"):
        worker.handle(
            "backward",
            encode_message(
                {"job": 0, "step": 0, "micro": 0}, {"grad": np.zeros((3, 10), np.float32)}
            ),
        )


def test_stage_worker_refuses_weights_that_are_not_its_stage(spec: ModelSpec) -> None:
    plan = SplitPlan.balanced(spec, 2)
    state = spec.build().state_dict()
    meta = {
        "job": 0,
        "spec": spec.to_json().decode(),
        "stage": 1,
        "start": 3,
        "stop": 4,
        "in_shape": [64],
    }
    worker = StageWorker("0x" + "1" * 40)
    with pytest.raises(InvalidArgument, match="not those layers' tensors"):
        worker.handle("load", encode_message(meta, {n: state[n] for n in plan.tensor_names[0]}))
    with pytest.raises(InvalidArgument, match=r"layers 3\.\.8 are not layers of the spec"):
        worker.handle("load", encode_message({**meta, "stop": 9}, {}))
    with pytest.raises(InvalidArgument, match="holds spec, stage, start, stop and in_shape"):
        worker.handle("load", encode_message({k: v for k, v in meta.items() if k != "stage"}, {}))
    with pytest.raises(InvalidModelSpec):
        worker.handle("load", encode_message({**meta, "spec": "{}"}, {}))
    assert worker.holds(0) is None


# --- exposure --------------------------------------------------------------------------------


def test_the_input_stage_is_charged_for_every_example(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = digits
    state = SqlComputeState(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    try:
        ledger = ExposureLedger(state)
        small = with_(spec, epochs=1)
        job, workers = staffed(SplitPlan.balanced(small, 2))
        ids = list(range(100))
        job.train(x[:100], y[:100], ledger=ledger, dataset="d", example_ids=ids, dataset_size=2000)
        assert ledger.report("d", 2000)[workers[0].address] == 0.05
        assert workers[1].address not in ledger.report("d", 2000)
        more = list(range(100, 200))
        again = SplitTraining(SplitPlan.balanced(small, 2), job_id=1)
        for w in workers:  # the same workers, a new job
            again.join(w.address, w.handle)
        with pytest.raises(NotPermitted, match="over the 5% exposure limit"):
            again.train(
                x[100:200],
                y[100:200],
                ledger=ledger,
                dataset="d",
                example_ids=more,
                dataset_size=2000,
            )
        with pytest.raises(InvalidArgument, match="one distinct example id per example"):
            again.train(x[:100], y[:100], ledger=ledger, dataset="d", example_ids=[1] * 100)
        with pytest.raises(InvalidArgument, match="split job 0 has been trained already"):
            job.train(x[:100], y[:100])
    finally:
        state.close()


# --- the message format ----------------------------------------------------------------------


def test_messages_are_safetensors_files_both_ways() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    rng = torch.get_rng_state().numpy()
    body = encode_message(
        {"job": 1, "mode": "train", "update": True}, {"x": torch.from_numpy(x), "rng": rng}
    )
    read = st_load(body)  # the safetensors library reads ours
    assert np.array_equal(read["x"], x) and np.array_equal(read["rng"], rng)
    meta, arrays = decode_message(st_save({"g": x.T.copy()}, metadata={"job": "2"}))  # and we its
    assert meta == {"job": "2"} and np.array_equal(arrays["g"], x.T)
    assert arrays["g"].flags.writeable
    meta, arrays = decode_message(body)
    assert meta == {"job": "1", "mode": "train", "update": "true"}
    assert np.array_equal(arrays["x"], x)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x05\x00\x00\x00\x00\x00\x00\x00abc",
        b"\x08\x00\x00\x00\x00\x00\x00\x00not json",
        encode_message({}, {"x": np.zeros(4, np.float32)}) + b"extra",
        encode_message({}, {"x": np.zeros(4, np.float32)})[:-1],
        st_save({"x": np.zeros(4, np.int16)}),
    ],
)
def test_malformed_messages_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidArgument, match="not a stage message"):
        decode_message(body)


def test_unsupported_dtypes_are_not_sent() -> None:
    with pytest.raises(InvalidArgument, match="dtype int16"):
        encode_message({}, {"x": np.zeros(3, np.int16)})


def test_checkpoint_of_a_split_run_loads_like_any_other(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    job, _ = staffed(SplitPlan.balanced(spec, 2))
    result = job.train(x[:300], y[:300])
    assert result.checkpoint == save_checkpoint(result.module, {"format": "pt"}, spec=spec)
    assert not result.module.training


# --- the relay over the signed pull protocol ---------------------------------------------------


def account(i: int) -> LocalAccount:
    return Account.from_key("0x" + f"{i + 1:02x}" * 32)


@contextlib.contextmanager
def running(workers: list[RelayedStageWorker]) -> Iterator[None]:
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)


def test_split_training_through_the_signed_relay_matches_unsplit(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits[0][:200], digits[1][:200]
    small = with_(spec, epochs=1)
    relay = SplitRelay(poll_s=0.05, timeout_s=30)
    workers = [RelayedStageWorker(account(i), relay.handle) for i in range(2)]
    job = SplitTraining(SplitPlan.balanced(small, 2))
    for w in workers:
        job.join(w.address, relay.link_for(w.address))
    with running(workers):
        split = job.train(x, y)
    assert split.checkpoint == train(small, x, y).checkpoint
    for k, w in enumerate(workers):
        assert set(weights_received(w.stage)) == set(job.plan.tensor_names[k])


def test_a_workers_refusal_comes_back_as_its_error(spec: ModelSpec) -> None:
    relay = SplitRelay(poll_s=0.05, timeout_s=30)
    worker = RelayedStageWorker(account(0), relay.handle)
    link = relay.link_for(worker.address)
    with running([worker]), pytest.raises(InvalidArgument, match="holds spec, stage, start"):
        link("load", encode_message({"job": 0, "spec": spec.to_json().decode()}, {}))


def test_relay_replies_are_bound_to_their_worker() -> None:
    relay = SplitRelay(poll_s=0.05, timeout_s=30)
    owner, other = (
        RelayedStageWorker(account(0), relay.handle),
        RelayedStageWorker(account(1), relay.handle),
    )
    link = relay.link_for(owner.address)
    relay.link_for(other.address)
    answer: list[bytes] = []
    asking = threading.Thread(target=lambda: answer.append(link("weights", b"message")))
    asking.start()
    try:
        pulled = b""
        while not pulled:
            pulled = owner.send("split-next", b"{}")
        meta, parts = unpack_parts(pulled)
        assert parts["body"] == b"message" and meta["route"] == "weights"
        forged = pack_parts({"seq": meta["seq"]}, {"body": b"forged"})
        with pytest.raises(NotPermitted, match=f"awaits no reply from {other.address}"):
            other.send("split-reply", forged)
        reply = pack_parts({"seq": meta["seq"]}, {"body": b"genuine"})
        envelope = seal(owner.account, reply, purpose="split-reply")
        relay.handle("split-reply", envelope, reply)
        with pytest.raises(DuplicateSubmission, match="replay"):
            relay.handle("split-reply", envelope, reply)
        with pytest.raises(NotPermitted, match="answers its own messages once"):
            owner.send("split-reply", reply)
    finally:
        asking.join(timeout=10)
    assert answer == [b"genuine"]


def test_relay_refuses_strangers_bad_routes_and_silence() -> None:
    relay = SplitRelay(poll_s=0.0, timeout_s=0.2)
    stranger = RelayedStageWorker(account(5), relay.handle)
    with pytest.raises(NotPermitted, match="holds no stage of a split job"):
        stranger.send("split-next", b"{}")
    with pytest.raises(NotFound, match="no route 'next'"):
        stranger.send("next", b"{}")
    link = relay.link_for(stranger.address)
    assert stranger.send("split-next", b"{}") == b""  # nothing waiting
    with pytest.raises(NodeUnreachable, match=r"did not answer its forward message within 0\.2 s"):
        link("forward", b"x")
    assert not stranger.work_once()  # the timed-out message is withdrawn, not delivered late
    with pytest.raises(InvalidArgument, match="poll_s not negative"):
        SplitRelay(poll_s=-1)


def test_split_training_over_http(spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits[0][:200], digits[1][:200]
    small = with_(spec, epochs=1)
    relay = SplitRelay(poll_s=0.2, timeout_s=30)
    with serving(split_relay_app(relay, max_body_bytes=1024 * 1024)) as url:
        workers = [RelayedStageWorker(account(i), http_transport(url, 10)) for i in range(2)]
        job = SplitTraining(SplitPlan.balanced(small, 2))
        for w in workers:
            job.join(w.address, relay.link_for(w.address))
        with running(workers):
            split = job.train(x, y)
        # refusals come back as our classes with the relay's sentence
        stranger = RelayedStageWorker(account(7), http_transport(url, 10))
        with pytest.raises(NotPermitted, match="holds no stage of a split job"):
            stranger.send("split-next", b"{}")
        with pytest.raises(NotFound, match="no route 'result'"):
            stranger.send("result", b"{}")
    assert split.checkpoint == train(small, x, y).checkpoint


def test_a_reply_after_the_deadline_is_refused() -> None:
    relay = SplitRelay(poll_s=0.0, timeout_s=0.3)
    slow = RelayedStageWorker(account(3), relay.handle)
    link = relay.link_for(slow.address)
    outcome: list[BaseException] = []

    def ask() -> None:
        try:
            link("weights", b"late")
        except NodeUnreachable as exc:
            outcome.append(exc)

    asking = threading.Thread(target=ask)
    asking.start()
    pulled = b""
    while not pulled:
        pulled = slow.send("split-next", b"{}")
    asking.join(timeout=10)
    assert outcome and "did not answer its weights message" in str(outcome[0])
    meta, _ = unpack_parts(pulled)
    with pytest.raises(NotPermitted, match="timed out"):
        slow.send("split-reply", pack_parts({"seq": meta["seq"]}, {"body": b""}))


class SwappingWorker(StageWorker):
    """Hands back someone else's tensor names when asked for its weights."""

    def handle(self, route: str, body: bytes) -> bytes:
        reply = super().handle(route, body)
        if route != "weights":
            return reply
        _, arrays = decode_message(reply)
        return encode_message({}, {f"9{name[1:]}": a for name, a in arrays.items()})


def test_stage_weights_of_the_wrong_names_are_refused(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    job = SplitTraining(SplitPlan.balanced(with_(spec, epochs=1), 2))
    good, bad = StageWorker("0x" + "1" * 40), SwappingWorker("0x" + "2" * 40)
    job.join(good.address, good.handle)
    job.join(bad.address, bad.handle)
    with pytest.raises(InvalidArgument, match="returned other tensors than its stage's"):
        job.train(x[:200], y[:200])


def test_a_hand_made_plan_is_checked_again(spec: ModelSpec) -> None:
    plan = SplitPlan.balanced(spec, 2)
    assert list(plan.layers(0)) == [0, 1, 2] and list(plan.layers(1)) == [3]
    forged = SplitPlan(spec, (0, 1, 4), plan.tensor_names, plan.shapes)
    SplitTraining(forged)  # (0, 1, 4) is a valid cut: Linear | ReLU, Dropout, Linear
    with pytest.raises(InvalidArgument, match="holds no weights"):
        SplitTraining(SplitPlan(spec, (0, 1, 3, 4), plan.tensor_names, plan.shapes))


def test_epoch_reports_come_as_train_gives_them(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits[0][:300], digits[1][:300]
    seen: list[EpochReport] = []
    job, _ = staffed(SplitPlan.balanced(spec, 2))
    result = job.train(x, y, on_epoch=seen.append)
    assert tuple(seen) == result.history and [r.epoch for r in seen] == [1, 2]


def test_message_names_and_views() -> None:
    odd = 'a "quoted" name'
    body = encode_message({"shape": [1, 2]}, {odd: np.ones(2, np.float32)})
    meta, arrays = decode_message(body, copy=False)
    assert meta == {"shape": "[1,2]"} and np.array_equal(arrays[odd], np.ones(2, np.float32))
    assert not arrays[odd].flags.writeable  # a view of the message, as the coordinator reads it
    assert st_load(body)[odd].shape == (2,)
