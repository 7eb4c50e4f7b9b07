"""Fixtures the split-training tests share: the digits and the benchmark's digits MLP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from databright.ml.spec import ModelSpec

DIGITS_SPEC = Path(__file__).parents[2] / "benchmarks" / "specs" / "digits_mlp.json"


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    """The benchmark's digits MLP (Adam, dropout), trained for 2 epochs to stay fast."""
    return ModelSpec.from_dict(
        {**ModelSpec.from_json(DIGITS_SPEC.read_bytes()).to_dict(), "epochs": 2}
    )
