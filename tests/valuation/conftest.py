"""Fixtures for the valuation tests."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from valuation_helpers import blobs, flip


@pytest.fixture
def noisy_blobs():
    """Blobs where proposal 2 has 7 of its 12 labels flipped."""
    x, y, prop, xv, yv = blobs(0)
    bad = np.flatnonzero(prop == 2)[:7]
    return x, flip(y, bad, 3), prop, xv, yv, bad
