from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import KNeighborsClassifier
from valuation_helpers import blobs, flip

from databright.valuation import (
    FlagKind,
    KNNShapley,
    MaxSamples,
    TMCShapley,
    Utility,
    ValuationData,
)


def _kinds(result, proposal) -> set[FlagKind]:
    return {f.kind for f in result.flags_for(proposal)}


def test_planted_mislabelled_examples_are_flagged() -> None:
    x, y, prop, xv, yv = blobs(1)
    planted = np.array([3, 40, 77])
    y = flip(y, planted, 3)
    result = (
        KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)).fit(ValuationData(x, y, prop)).result
    )
    found = {i for f in result.flags if f.kind is FlagKind.MISLABELLED for i in f.examples}
    assert set(planted.tolist()) <= found
    assert len(found) <= len(planted) + 2
    flag = next(f for f in result.flags if f.kind is FlagKind.MISLABELLED and 3 in f.examples)
    assert flag.proposal == prop[3] and flag.reason.endswith(".")


def test_label_flipped_cluster_is_poisoning(noisy_blobs) -> None:
    x, y, prop, xv, yv, bad = noisy_blobs
    for method in (
        KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)),
        TMCShapley(Utility(RidgeClassifier(), xv, yv, scorer="margin"), stopping=MaxSamples(32)),
    ):
        result = method.fit(ValuationData(x, y, prop)).result
        poison = [f for f in result.flags if f.kind is FlagKind.POISONING]
        assert [f.proposal for f in poison] == [2]
        assert set(bad.tolist()) <= set(poison[0].examples)
        assert "label-flipped" in poison[0].reason


def test_out_of_class_labels_are_poisoning() -> None:
    x, y, prop, xv, yv = blobs(2)
    y = y.copy()
    y[prop == 5] = 9
    result = (
        KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)).fit(ValuationData(x, y, prop)).result
    )
    assert any(
        f.kind is FlagKind.POISONING and "out-of-class" in f.reason for f in result.flags_for(5)
    )


def test_far_away_examples_are_out_of_distribution() -> None:
    x, y, prop, xv, yv = blobs(3)
    x = x.copy()
    x[prop == 4] += 60.0
    result = (
        KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)).fit(ValuationData(x, y, prop)).result
    )
    ood = [f for f in result.flags if f.kind is FlagKind.OUT_OF_DISTRIBUTION]
    assert [f.proposal for f in ood] == [4]
    assert len(ood[0].examples) == 12


def test_clean_data_raises_no_poisoning_or_ood_flags() -> None:
    x, y, prop, xv, yv = blobs(4)
    result = (
        KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)).fit(ValuationData(x, y, prop)).result
    )
    assert not [
        f for f in result.flags if f.kind in (FlagKind.POISONING, FlagKind.OUT_OF_DISTRIBUTION)
    ]


def test_flags_can_be_turned_off(noisy_blobs) -> None:
    x, y, prop, xv, yv, _ = noisy_blobs
    result = (
        KNNShapley(Utility(KNeighborsClassifier(5), xv, yv), flags=False)
        .fit(ValuationData(x, y, prop))
        .result
    )
    assert result.flags == ()
