"""Training: deterministic to the byte (in one process and across processes), a stratified
hold-out, metrics and progress reports, fine-tuning, and the paper's fine-tuning gain."""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from databright.errors import InvalidArgument
from databright.ml.checkpoint import checkpoint_metadata, load_checkpoint
from databright.ml.spec import ModelSpec
from databright.ml.train import EpochReport, evaluate, finetune_gain, pinned, train

RAW: dict[str, Any] = {
    "input_shape": [64],
    "classes": 10,
    "layers": [
        {"type": "Linear", "out_features": 24},
        {"type": "ReLU"},
        {"type": "Dropout", "p": 0.1},
        {"type": "Linear", "out_features": 10},
    ],
    "optimizer": {"type": "adam", "lr": 0.01},
    "epochs": 4,
    "batch_size": 32,
    "seed": 3,
    "holdout": 0.25,
}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x[:600] / 16.0).astype(np.float32), y[:600]


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_dict(RAW)


def test_trains_and_reports(spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    reports: list[EpochReport] = []
    result = train(spec, x, y, on_epoch=reports.append, metadata={"dataset": "7"})
    assert [r.epoch for r in reports] == [1, 2, 3, 4] and reports[0].epochs == 4
    assert tuple(reports) == result.history
    assert reports[-1].loss < reports[0].loss
    m = result.metrics
    assert m["holdout_accuracy"] > 0.8 and m["train_accuracy"] > 0.8
    assert m["holdout_accuracy"] == reports[-1].holdout_accuracy
    assert m["examples"] == 600 and m["train_examples"] + m["holdout_examples"] == 600
    assert m["holdout_examples"] == pytest.approx(150, abs=5)
    assert m["epochs"] == 4 and m["seconds"] > 0
    assert not result.module.training
    meta = checkpoint_metadata(result.checkpoint)
    assert meta["format"] == "pt" and meta["dataset"] == "7"
    loaded = load_checkpoint(result.checkpoint, spec)
    assert evaluate(loaded, x, y) == evaluate(result.module, x, y)


def test_same_inputs_same_bytes(spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    first = train(spec, x, y)
    torch.manual_seed(999)  # the caller's random state must not matter
    second = train(spec, x, y)
    assert first.checkpoint == second.checkpoint
    assert first.history == second.history
    other = ModelSpec.from_dict({**RAW, "seed": 4})
    assert train(other, x, y).checkpoint != first.checkpoint


def test_same_bytes_in_another_process(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    x, y = digits
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "spec.json").write_bytes(spec.to_json())
    script = textwrap.dedent(
        f"""
        import hashlib, numpy as np, torch
        torch.set_num_threads(2)  # train() pins its own thread count
        from databright.ml.spec import ModelSpec
        from databright.ml.train import train
        d = {str(tmp_path)!r}
        spec = ModelSpec.from_json(open(d + "/spec.json", "rb").read())
        x = np.load(d + "/x.npy", allow_pickle=False)
        y = np.load(d + "/y.npy", allow_pickle=False)
        print(hashlib.sha256(train(spec, x, y).checkpoint).hexdigest())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == hashlib.sha256(train(spec, x, y).checkpoint).hexdigest()


def test_settings_are_restored(spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    state = torch.random.get_rng_state()
    train(ModelSpec.from_dict({**RAW, "epochs": 1}), x, y, threads=1)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.random.get_rng_state(), state)
    with (
        pytest.raises(InvalidArgument, match="threads must be a whole number of at least 1"),
        pinned(0),
    ):
        pass


def test_holdout_is_stratified(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    # Class 0 is rare here: 8 of its examples, so round(0.25 * 8) = 2 are held out.
    keep = np.concatenate([np.flatnonzero(y != 0), np.flatnonzero(y == 0)[:8]])
    spec = ModelSpec.from_dict({**RAW, "epochs": 1})
    result = train(spec, x[keep], y[keep])
    counts = np.bincount(y[keep], minlength=10)
    expected = sum(round(0.25 * c) for c in counts)
    assert result.metrics["holdout_examples"] == expected


def test_fine_tuning_starts_from_the_checkpoint(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    one = ModelSpec.from_dict({**RAW, "epochs": 1})
    base = train(one, x, y)
    tuned = train(one, x, y, init=base.checkpoint)
    scratch = train(one, x, y)
    assert tuned.checkpoint != scratch.checkpoint
    assert tuned.history[0].loss < scratch.history[0].loss


def test_finetune_gain(spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]) -> None:
    """The paper's valuation: a model trained on few examples gains test accuracy when
    fine-tuned with clean new examples, and gains less (or loses) with the same examples
    mislabelled."""
    x, y = digits
    base = train(ModelSpec.from_dict({**RAW, "epochs": 2}), x[:60], y[:60]).checkpoint
    x_new, y_new = x[60:400], y[60:400]
    noisy = (y_new + 1 + np.arange(len(y_new)) % 9) % 10  # every label wrong
    x_test, y_test = x[400:], y[400:]
    clean = finetune_gain(spec, base, x_new, y_new, x_test, y_test, epochs=3)
    wrong = finetune_gain(spec, base, x_new, noisy, x_test, y_test, epochs=3)
    assert clean > 0.2
    assert wrong < 0 < clean
    assert finetune_gain(spec, base, x_new, y_new, x_test, y_test, epochs=3) == clean
    before = evaluate(load_checkpoint(base, spec), x_test, y_test)["accuracy"]
    assert 0.0 <= before + clean <= 1.0
    with pytest.raises(InvalidArgument, match="epochs must be a whole number of at least 1"):
        finetune_gain(spec, base, x[:5], y[:5], x_test, y_test, epochs=0)


def test_evaluate(spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    module = spec.build()
    module.train()
    out = evaluate(module, x, y, spec=spec)
    assert set(out) == {"accuracy", "loss", "n"} and out["n"] == 600
    assert 0 <= out["accuracy"] <= 1 and out["loss"] > 0
    assert module.training  # the mode is put back
    with pytest.raises(InvalidArgument, match="one label per example"):
        evaluate(module, x, y[:5])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "shape",
            r"the training features have shape \(600, 63\) but the spec expects \(examples, 64\)",
        ),
        ("nan", "the training features hold NaN or infinite values"),
        ("text", "the training features are not numbers"),
        ("empty", "there are no training examples"),
        ("labels_len", r"there are 600 training examples but the labels have shape \(599,\)"),
        ("labels_big", r"training label 10 \(example 0\) is outside 0..9"),
        ("labels_neg", r"training label -1 \(example 0\) is outside 0..9"),
        ("labels_frac", "the training labels must be whole class numbers 0..9, got dtype float64"),
        ("labels_str", "the training labels must be whole class numbers 0..9, got dtype <U"),
        ("tiny", "1 examples cannot be split into training and a hold-out of 0.25"),
    ],
)
def test_bad_data_is_one_sentence(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray], change: str, message: str
) -> None:
    x, y = copy.deepcopy(digits)
    xa: Any = x
    ya: Any = y
    if change == "shape":
        xa = x[:, :63]
    elif change == "nan":
        xa[3, 3] = np.nan
    elif change == "text":
        xa = [["a"] * 64] * 600
    elif change == "empty":
        xa, ya = x[:0], y[:0]
    elif change == "labels_len":
        ya = y[:599]
    elif change == "labels_big":
        ya = y.copy()
        ya[0] = 10
    elif change == "labels_neg":
        ya = y.copy()
        ya[0] = -1
    elif change == "labels_frac":
        ya = y + 0.5
    elif change == "labels_str":
        ya = y.astype(str)
    elif change == "tiny":
        xa, ya = x[:1], y[:1]
    with pytest.raises(InvalidArgument, match=message):
        train(spec, xa, ya)


def test_float_labels_that_are_whole_numbers_are_fine(
    spec: ModelSpec, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    one = ModelSpec.from_dict({**RAW, "epochs": 1})
    assert train(one, x, y.astype(float)).checkpoint == train(one, x, y).checkpoint


def test_a_trailing_batch_of_one_trains_with_batch_norm(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits
    raw = {
        **RAW,
        "layers": [
            {"type": "Linear", "out_features": 16},
            {"type": "BatchNorm1d"},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 10},
        ],
        "epochs": 1,
        "batch_size": 32,
        "holdout": 0.2,
    }
    # Find a dataset size that leaves 32k + 1 training examples: one lone example at the end.
    n = next(
        n
        for n in range(400, 600)
        if (n - sum(round(0.2 * c) for c in np.bincount(y[:n]))) % 32 == 1
    )
    spec = ModelSpec.from_dict(raw)
    result = train(spec, x[:n], y[:n])
    assert result.metrics["train_examples"] % 32 == 1
