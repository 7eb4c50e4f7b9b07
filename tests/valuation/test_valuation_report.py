from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import KNeighborsClassifier

from databright.errors import ValuationError
from databright.valuation import (
    BPS_SCALE,
    KNNShapley,
    MaxSamples,
    TMCShapley,
    Utility,
    ValuationData,
    plot_values,
    quality_bps,
    report,
)


@pytest.fixture
def result(noisy_blobs):
    x, y, prop, xv, yv, _ = noisy_blobs
    return (
        KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)).fit(ValuationData(x, y, prop)).result
    )


def test_report_is_json_with_every_proposal(result) -> None:
    doc = json.loads(json.dumps(report(result), allow_nan=False))
    assert doc["method"] == "knn_shapley"
    assert [p["proposal"] for p in doc["proposals"]] == list(range(8))
    noisy = doc["proposals"][2]
    assert noisy["value"] < 0 and noisy["weight_bps"] < 0
    assert noisy["stderr"] > 0 and noisy["examples"] == 12 and noisy["copies"] == 0
    assert any(f["kind"] == "poisoning" for f in noisy["flags"])
    assert doc["flag_counts"]["poisoning"] == 1


def test_bps_scale_is_the_average_example(result) -> None:
    weights = [quality_bps(result, p) for p in result.proposals]
    assert all(type(w) is int for w in weights)
    # the size-weighted average weight is the scale itself
    assert np.average(weights, weights=result.proposal_sizes) == pytest.approx(BPS_SCALE, abs=1)
    ref = result.mean_value_per_example()
    assert abs(quality_bps(result, 0, reference=2 * ref) - weights[0] / 2) <= 1


def test_bps_errors(result) -> None:
    with pytest.raises(ValuationError):
        quality_bps(result, 0, reference=0.0)
    with pytest.raises(ValuationError):
        quality_bps(result, "nope")


def test_copies_halve_the_weight(noisy_blobs) -> None:
    x, y, prop, xv, yv, _ = noisy_blobs
    rows = np.flatnonzero(prop == 0)[:6]
    data = ValuationData(
        np.vstack([x, x[rows]]), np.concatenate([y, y[rows]]), np.concatenate([prop, np.full(6, 8)])
    )
    result = KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)).fit(data).result
    assert quality_bps(result, 8) == 0
    assert report(result)["proposals"][8]["copies"] == 6


def test_plot_is_a_deterministic_png(result) -> None:
    png = plot_values(result)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert plot_values(result) == png
    assert plot_values(result, title="other") != png


def test_report_of_a_sampling_method(noisy_blobs) -> None:
    x, y, prop, xv, yv, _ = noisy_blobs
    r = (
        TMCShapley(Utility(RidgeClassifier(), xv, yv, scorer="margin"), stopping=MaxSamples(16))
        .fit(ValuationData(x, y, prop))
        .result
    )
    doc = report(r)
    assert doc["samples"] == 16 and doc["converged"] is False
    assert doc["total_gain"] == pytest.approx(sum(p["value"] for p in doc["proposals"]))
