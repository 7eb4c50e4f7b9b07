"""Work units carry the optimizer's state: N units of k steps are one run of N*k steps, to the
byte, for every optimizer a spec may name; replicas agree on the state, and what leaves the
market is the weights alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from eth_account import Account
from safetensors.torch import save as safetensors_save
from torch.nn import functional

from databright.compute.coordinator import Coordinator
from databright.compute.replication import (
    TRACE_EVERY,
    RefereeRun,
    ReplicaResult,
    StateHasher,
    bisect_group,
    first_divergence,
    run_unit_traced,
    state_hash,
    trace_of,
)
from databright.compute.state import ResultRecord, SqlComputeState
from databright.compute.units import UnitPayload, output_hash, relative_l2, run_unit
from databright.compute.worker import BitFlipWorker, ScaledUpdateWorker, Worker
from databright.errors import CheckpointMismatch, InvalidArgument
from databright.ml.checkpoint import (
    OPTIMIZER_KEY,
    OPTIMIZER_PREFIX,
    checkpoint_metadata,
    checkpoint_tensors,
    load_checkpoint,
    load_training_checkpoint,
    model_checkpoint,
    save_checkpoint,
    save_training_checkpoint,
)
from databright.ml.predictor import Predictor
from databright.ml.spec import ModelSpec
from databright.ml.train import pinned

OPTIMIZERS: dict[str, dict[str, Any]] = {
    "adam": {"type": "adam", "lr": 0.01},
    "adamw": {"type": "adamw", "lr": 0.01, "weight_decay": 0.05},
    "sgd-momentum": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
    "sgd-momentum-decay": {"type": "sgd", "lr": 0.05, "momentum": 0.5, "weight_decay": 0.01},
    "sgd": {"type": "sgd", "lr": 0.1},
}


def spec_for(optimizer: dict[str, Any]) -> ModelSpec:
    return ModelSpec.from_dict(
        {
            "input_shape": [8],
            "classes": 3,
            "layers": [
                {"type": "Linear", "out_features": 8},
                {"type": "ReLU"},
                {"type": "Linear", "out_features": 3},
            ],
            "optimizer": optimizer,
            "batch_size": 5,
            "seed": 1,
        }
    )


ADAM = spec_for(OPTIMIZERS["adam"])
MOMENTUM = spec_for(OPTIMIZERS["sgd-momentum"])
RNG = np.random.default_rng(0)
X = RNG.normal(size=(400, 8)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 1).astype(np.int64)
IDS = list(range(1000, 1400))  # 400 examples: 5% is 20


def start_of(spec: ModelSpec) -> bytes:
    torch.manual_seed(spec.seed)
    return save_checkpoint(spec.build(), {"format": "pt"}, spec=spec)


def shard(seq: int) -> tuple[np.ndarray, np.ndarray]:
    rows = [i - 1000 for i in IDS[(seq % 40) * 10 : (seq % 40) * 10 + 10]]
    return X[rows], Y[rows]


Plan = list[tuple[np.ndarray, np.ndarray, int]]
"""Each unit's shard and seed, in order."""


def plan(units: int) -> Plan:
    return [(*shard(seq), seq) for seq in range(units)]


def job_plan(c: Coordinator, job: int) -> Plan:
    """The shards and seeds the coordinator gave the job's units."""
    return [
        (X[[i - 1000 for i in u.example_ids]], Y[[i - 1000 for i in u.example_ids]], u.seed)
        for u in sorted(c.state.job_units(job), key=lambda u: u.seq)
    ]


def one_run(spec: ModelSpec, start: bytes, units: Plan, steps: int) -> tuple[Any, Any]:
    """One module and one optimizer through every unit's batches (the batches a unit draws:
    its own seeded permutation of its shard, reshuffled each pass): the training the spec
    describes, with no checkpoint between the units."""
    with pinned(1):
        module = load_checkpoint(start, spec)
        module.train()
        optimizer = spec.optimizer.build(module.parameters())
        for x, y, seed in units:
            xt, yt = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
            generator = torch.Generator().manual_seed(seed)
            batch = min(spec.batch_size, len(xt))
            order, cursor = torch.randperm(len(xt), generator=generator), 0
            for _ in range(steps):
                if cursor + batch > len(xt):
                    order, cursor = torch.randperm(len(xt), generator=generator), 0
                idx = order[cursor : cursor + batch]
                cursor += batch
                optimizer.zero_grad(set_to_none=True)
                functional.cross_entropy(module(xt[idx]), yt[idx]).backward()
                optimizer.step()
        module.eval()
    return module, optimizer


def units_chained(spec: ModelSpec, start: bytes, units: Plan, steps: int) -> bytes:
    ck = start
    for x, y, seed in units:
        ck = run_unit(spec, ck, x, y, steps, seed)
    return ck


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_n_units_of_k_steps_are_one_run_of_n_times_k_steps(name: str) -> None:
    spec = spec_for(OPTIMIZERS[name])
    start = start_of(spec)
    out = units_chained(spec, start, plan(4), steps=7)  # 7 steps of 5 on shards of 10: reshuffles
    module, optimizer = one_run(spec, start, plan(4), steps=7)
    # the model, to the byte
    assert model_checkpoint(out) == save_checkpoint(module, {"format": "pt"}, spec=spec)
    # and the optimizer's state, to the byte
    _, saved, kind = load_training_checkpoint(out, spec)
    live = {
        f"{OPTIMIZER_PREFIX}{n}/{slot}": t
        for n, p in module.named_parameters()
        for slot, t in optimizer.state.get(p, {}).items()
    }
    assert saved.keys() == live.keys()
    assert all(torch.equal(saved[k], live[k]) for k in live)
    if name == "sgd":  # no state to carry: the checkpoint is the plain one, as before
        assert not saved and kind is None and model_checkpoint(out) == out
    else:
        assert saved and kind == spec.optimizer.type
        assert checkpoint_metadata(out)[OPTIMIZER_KEY] == spec.optimizer.type


def test_the_state_is_what_makes_the_difference() -> None:
    """Without the state (each unit from the weights alone, the old behaviour), Adam's units
    drift from the one run: what the test above would catch."""
    start = start_of(ADAM)
    ck = start
    for x, y, seed in plan(3):
        ck = model_checkpoint(run_unit(ADAM, ck, x, y, 7, seed))
    module, _ = one_run(ADAM, start, plan(3), steps=7)
    assert ck != save_checkpoint(module, {"format": "pt"}, spec=ADAM)


# --- what replicas agree on ---------------------------------------------------------------


@pytest.mark.parametrize("spec", [ADAM, MOMENTUM], ids=["adam", "sgd-momentum"])
def test_state_hashes_cover_the_optimizer_state(spec: ModelSpec) -> None:
    start = start_of(spec)
    x, y = shard(0)
    first = run_unit(spec, start, x, y, 5, 3)
    # a unit from a training checkpoint: every entry is the state hash of weights and state
    out, trace = run_unit_traced(spec, first, x, y, 9, 4)
    assert out == run_unit(spec, first, x, y, 9, 4)
    assert out is not None and trace[-1] == trace_of(out, spec)
    weights_only = trace_of(model_checkpoint(out), spec)
    assert weights_only != trace[-1]  # the weights alone are not the state agreed on
    # the hasher's views follow the optimizer's in-place updates step after step, and its
    # lazily made state (Adam's moments appear at the first step)
    seen: list[bytes] = []
    hashers: list[StateHasher] = []

    def check(step: int, module: Any, optimizer: Any) -> None:
        if not hashers:
            hashers.append(StateHasher(module, optimizer))
        seen.append(hashers[0]())
        assert seen[-1] == state_hash(module, optimizer) != state_hash(module)

    run_unit_traced(spec, start, x, y, 6, 2, after_step=check)
    assert len(seen) == 6 and len(set(seen)) == 6


def test_a_hasher_made_before_the_first_step_sees_the_state_made_at_it() -> None:
    module = ADAM.build()
    optimizer = ADAM.optimizer.build(module.parameters())
    hasher = StateHasher(module, optimizer)
    assert hasher() == state_hash(module)  # no state yet: the weights alone
    functional.cross_entropy(module(torch.ones(2, 8)), torch.tensor([0, 1])).backward()
    optimizer.step()
    assert hasher() == state_hash(module, optimizer) != state_hash(module)
    # a state tensor swapped for another (not updated in place) is seen too
    first = next(iter(optimizer.state.values()))
    first["exp_avg"] = first["exp_avg"] * 2
    assert hasher() == state_hash(module, optimizer)


def corrupt_moments(at: int) -> Any:
    """A cheat's hook: scale one parameter's first moment (Adam) or momentum buffer (SGD)
    after step ``at``, leaving every weight as the honest run has it."""

    def hook(step: int, module: Any, optimizer: Any) -> None:
        if step == at:
            state = optimizer.state[next(module.parameters())]
            key = "exp_avg" if "exp_avg" in state else "momentum_buffer"
            state[key].mul_(1.001)

    return hook


@pytest.mark.parametrize("spec", [ADAM, MOMENTUM], ids=["adam", "sgd-momentum"])
def test_a_replica_that_corrupts_only_the_moments_is_caught(spec: ModelSpec) -> None:
    start = run_unit(spec, start_of(spec), *shard(0), 4, 9)  # an input with optimizer state
    x, y = shard(1)
    steps = 20
    honest, honest_trace = run_unit_traced(spec, start, x, y, steps, 5)
    assert honest is not None
    # corrupted after the last step: the weights agree to the byte, the output does not
    bad, _ = run_unit_traced(spec, start, x, y, steps, 5, after_step=corrupt_moments(steps - 1))
    assert bad is not None and model_checkpoint(bad) == model_checkpoint(honest)
    assert output_hash(bad) != output_hash(honest) and 0 < relative_l2(bad, honest) < 0.01
    # corrupted after step 6: bisection over full traces finds step 6
    bad, bad_trace = run_unit_traced(spec, start, x, y, steps, 5, after_step=corrupt_moments(6))
    assert first_divergence(honest_trace, bad_trace)[0] == 6
    # and the referee over strided traces convicts the cheat in the stretch holding step 6
    every = 4
    records = []
    for worker, (out, trace) in {
        "honest": (honest, honest_trace),
        "cheat": (bad, bad_trace),
    }.items():
        strided = [trace[i] for i in range(steps) if (i + 1) % every == 0 or i == steps - 1]
        assert out is not None
        record = ResultRecord(1, worker, output_hash(out), {"sender": worker}, "0x", 0.0)
        records.append(ReplicaResult(record, out, b"".join(strided)))
    referee = RefereeRun(spec, start, x, y, steps, 5)
    verdict = bisect_group(1, 1, output_hash(start), trace_of(start, spec), records, referee, every)
    assert verdict.honest == ("honest",) and verdict.agreed_hash == output_hash(honest)
    [evidence] = verdict.cheaters
    assert evidence.worker == "cheat"
    assert (evidence.disputed_from, evidence.disputed_step) == (4, 7)
    assert referee.steps_run == 8 < steps


class MomentCheatWorker(Worker):
    """Computes honestly but nudges the optimizer's moments after ``at``, weights untouched,
    and commits to the trace of what it did."""

    at = 3

    def compute_traced(self, payload: UnitPayload) -> tuple[bytes, bytes]:
        u = payload.unit
        out, trace = run_unit_traced(
            payload.spec, payload.checkpoint, payload.x, payload.y, u.steps, u.seed,
            after_step=corrupt_moments(self.at), every=TRACE_EVERY,
        )  # fmt: skip
        assert out is not None
        return out, b"".join(trace)


def account(i: int) -> Any:
    return Account.from_key("0x" + f"{i + 1:02x}" * 32)


@pytest.fixture
def coordinator(tmp_path: Any) -> Iterator[Coordinator]:
    state = SqlComputeState(f"sqlite:///{tmp_path}/optimizer.sqlite3")
    yield Coordinator(state, unit_deadline_s=30)
    state.close()


def submit(c: Coordinator, spec: ModelSpec, start: bytes, units: int, steps: int) -> int:
    return c.submit_job(
        spec, start, X, Y, IDS, dataset="toy", steps_per_unit=steps, units=units, shard_size=10
    )


def run_all(workers: list[Worker], rounds: int = 20) -> None:
    for w in workers:
        w.register()
    for _ in range(rounds):
        if not any([w.work_once() for w in workers]):
            return


def test_through_the_coordinator_moment_cheats_are_caught_and_the_model_is_the_one_run(
    coordinator: Coordinator,
) -> None:
    start = start_of(ADAM)
    job = submit(coordinator, ADAM, start, units=3, steps=12)
    cheat = MomentCheatWorker(account(0), coordinator.handle)
    honest = [Worker(account(i), coordinator.handle) for i in (1, 2)]
    run_all([cheat, *honest])
    status = coordinator.job_status(job)
    assert status.state == "done" and status.cheaters == (cheat.address,)
    evidence = coordinator.state.evidence(job)
    assert evidence and all(
        (e["disputed_from"], e["disputed_step"]) == (0, TRACE_EVERY - 1) for e in evidence
    )
    # the agreed state is the whole training state; the model given out is its weights
    state = coordinator.training_checkpoint(job)
    assert output_hash(state) == status.checkpoint_hash
    assert state == units_chained(ADAM, start, job_plan(coordinator, job), steps=12)
    module, _ = one_run(ADAM, start, job_plan(coordinator, job), steps=12)
    model = coordinator.checkpoint(job)
    assert model == save_checkpoint(module, {"format": "pt"}, spec=ADAM)


def test_the_final_model_loads_as_before(coordinator: Coordinator) -> None:
    start = start_of(ADAM)
    job = submit(coordinator, ADAM, start, units=2, steps=6)
    run_all([Worker(account(i), coordinator.handle) for i in range(3)])
    model, state = coordinator.checkpoint(job), coordinator.training_checkpoint(job)
    # a plain checkpoint: the weights the spec builds, no optimizer metadata
    assert set(checkpoint_tensors(model)) == set(ADAM.build().state_dict())
    assert OPTIMIZER_KEY not in checkpoint_metadata(model)
    assert checkpoint_metadata(model) == {
        k: v for k, v in checkpoint_metadata(state).items() if k != OPTIMIZER_KEY
    }
    # every loader of models goes through load_checkpoint, which refuses the training state
    module = load_checkpoint(model, ADAM)
    with pytest.raises(CheckpointMismatch, match="which the spec does not build"):
        load_checkpoint(state, ADAM)
    predictor = Predictor(ADAM, model)
    assert predictor.predict(X[:4]).shape == (4,)
    with torch.no_grad():
        assert np.array_equal(predictor.logits(X[:4]), module(torch.from_numpy(X[:4])).numpy())
    onnx = pytest.importorskip("onnx")
    from databright.ml.onnx import export_onnx

    onnx.checker.check_model(onnx.load_from_string(export_onnx(ADAM, model)))
    # a later job may start from the weights alone or resume from the training state
    for resumed in (model, state):
        assert submit(coordinator, ADAM, resumed, units=1, steps=2) > job


def test_cheats_that_change_the_weights_still_leave_valid_training_checkpoints() -> None:
    start = run_unit(ADAM, start_of(ADAM), *shard(0), 4, 9)
    x, y = shard(1)
    payload = UnitPayload(_unit(start), ADAM, start, x, y)  # a unit as a worker receives it
    honest = run_unit(ADAM, start, x, y, 3, 0)
    for cheat in (BitFlipWorker, ScaledUpdateWorker):
        out = cheat(account(5), lambda *a: b"").compute(payload)
        assert out != honest
        _, saved, kind = load_training_checkpoint(out, ADAM)
        _, honest_saved, _ = load_training_checkpoint(honest, ADAM)
        # the weights differ, the optimizer state is the honest one, and the result is valid
        assert kind == "adam" and all(torch.equal(saved[k], honest_saved[k]) for k in saved)
        assert model_checkpoint(out) != model_checkpoint(honest)
        trace_of(out, ADAM)


def _unit(start: bytes) -> Any:
    from databright.compute.units import WorkUnit

    return WorkUnit(1, 1, 1, 0, 3, output_hash(start), tuple(range(10)), 0)


# --- inputs that are not a state the optimizer could have reached -------------------------


def malformed() -> Iterator[tuple[str, ModelSpec, bytes, str]]:
    """(what, spec, checkpoint, the words the refusal must use)."""
    good = run_unit(ADAM, start_of(ADAM), *shard(0), 3, 1)
    module, saved, _ = load_training_checkpoint(good, ADAM)
    weights = dict(module.state_dict())
    meta = {k: v for k, v in checkpoint_metadata(good).items() if k != OPTIMIZER_KEY}

    def with_state(state: dict[str, torch.Tensor], kind: str = "adam") -> bytes:
        return save_training_checkpoint(module, state, kind, {"format": "pt"}, spec=ADAM)

    key = f"{OPTIMIZER_PREFIX}0.weight/"
    yield "another optimizer's state", MOMENTUM, good, "'adam' optimizer but the spec trains"
    adamw = spec_for(OPTIMIZERS["adamw"])
    yield "adam's state for adamw", adamw, good, "'adam' optimizer but the spec trains"
    plain = spec_for(OPTIMIZERS["sgd"])
    yield "state for a stateless optimizer", plain, good, "'adam' optimizer but the spec"
    sgd_state = {f"{OPTIMIZER_PREFIX}0.weight/momentum_buffer": torch.zeros(8, 8)}
    yield (
        "state sgd without momentum never keeps",
        plain,
        with_state(sgd_state, "sgd"),
        "keeps none",
    )
    missing = {k: v for k, v in saved.items() if k != key + "exp_avg_sq"}
    yield "a missing moment", ADAM, with_state(missing), "has no exp_avg_sq of shape (8, 8)"
    shaped = {**saved, key + "exp_avg": torch.zeros(8, 4)}
    yield "a moment of the wrong shape", ADAM, with_state(shaped), "has no exp_avg of shape"
    typed = {**saved, key + "exp_avg": torch.zeros(8, 8, dtype=torch.float64)}
    yield "a moment of the wrong dtype", ADAM, with_state(typed), "dtype float32"
    for step in (0.0, 2.5, -1.0, float("nan")):
        stepped = {**saved, key + "step": torch.tensor(step)}
        yield f"a step count of {step}", ADAM, with_state(stepped), "not a whole number of steps"
    negative = {**saved, key + "exp_avg_sq": -torch.ones(8, 8)}
    yield "negative second moments", ADAM, with_state(negative), "second moments of 0.weight"
    stray = {**saved, f"{OPTIMIZER_PREFIX}9.weight/exp_avg": torch.zeros(8, 8)}
    yield "a parameter the spec lacks", ADAM, with_state(stray), "is not a state adam keeps"
    slot = {**saved, key + "max_exp_avg_sq": torch.zeros(8, 8)}
    yield "a slot adam does not keep", ADAM, with_state(slot), "is not a state adam keeps"
    unnamed = safetensors_save({**weights, **saved}, metadata=meta)
    yield "state without the optimizer's name", ADAM, unnamed, "incomplete"
    named = safetensors_save(weights, metadata={**meta, OPTIMIZER_KEY: "adam"})
    yield "the optimizer's name without state", ADAM, named, "incomplete"


CASES = list(malformed())


@pytest.mark.parametrize(("what", "spec", "checkpoint", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_malformed_optimizer_state_is_refused_in_one_sentence(
    what: str, spec: ModelSpec, checkpoint: bytes, words: str, tmp_path: Any
) -> None:
    x, y = shard(1)
    for attempt in (
        lambda: run_unit(spec, checkpoint, x, y, 2, 0),  # the worker's run
        lambda: trace_of(checkpoint, spec),  # the coordinator's check of an upload
    ):
        with pytest.raises(InvalidArgument, match=re.escape(words)) as refused:
            attempt()
        message = str(refused.value)
        assert message.endswith(".") and ". " not in message and "\n" not in message
    state = SqlComputeState(f"sqlite:///{tmp_path}/refused.sqlite3")
    try:
        with pytest.raises(InvalidArgument, match=re.escape(words)):
            submit(Coordinator(state), spec, checkpoint, units=1, steps=2)
    finally:
        state.close()


def test_units_with_dropout_draw_their_masks_from_the_unit_seed() -> None:
    """A unit seeds the CPU generator itself (not torch.manual_seed): its dropout masks
    still follow the unit's seed alone."""
    spec = ModelSpec.from_dict(
        {
            **ADAM.to_dict(),
            "layers": [
                {"type": "Linear", "out_features": 16},
                {"type": "ReLU"},
                {"type": "Dropout", "p": 0.5},
                {"type": "Linear", "out_features": 3},
            ],
        }
    )
    start = start_of(spec)
    x, y = shard(0)
    torch.manual_seed(123)  # the caller's generator state plays no part
    out = run_unit(spec, start, x, y, 6, 11)
    torch.manual_seed(456)
    assert run_unit(spec, start, x, y, 6, 11) == out != run_unit(spec, start, x, y, 6, 12)
    # and the masks are those torch.manual_seed(seed) gives, as before
    with pinned(1, seed=11):
        module = load_checkpoint(start, spec)
        module.train()
        optimizer = spec.optimizer.build(module.parameters())
        xt, yt = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
        generator = torch.Generator().manual_seed(11)
        order, cursor = torch.randperm(len(xt), generator=generator), 0
        for _ in range(6):
            if cursor + 5 > len(xt):
                order, cursor = torch.randperm(len(xt), generator=generator), 0
            idx = order[cursor : cursor + 5]
            cursor += 5
            optimizer.zero_grad(set_to_none=True)
            functional.cross_entropy(module(xt[idx]), yt[idx]).backward()
            optimizer.step()
        module.eval()
    assert model_checkpoint(out) == save_checkpoint(module, {"format": "pt"}, spec=spec)
