"""Stopping criteria: each on its own, composed with | and &, and as the sampling methods use them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from valuation_helpers import blobs

from databright.errors import ValuationError
from databright.valuation import (
    MaxSamples,
    MaxTime,
    MinSamples,
    MSRBanzhaf,
    Progress,
    StandardErrorBelow,
    StoppingCriterion,
    TMCShapley,
    Utility,
    ValuationData,
    Verdict,
)

GO, BUDGET, DONE = Verdict.CONTINUE, Verdict.OUT_OF_BUDGET, Verdict.CONVERGED


def at(samples: int = 0, stderr: float | list[float] = np.inf, seconds: float = 0.0) -> Progress:
    return Progress(samples, np.atleast_1d(np.asarray(stderr, dtype=np.float64)), seconds)


def test_max_samples() -> None:
    c = MaxSamples(10)
    assert c(at(9)) is GO and c(at(10)) is BUDGET and c(at(11)) is BUDGET
    assert c.sample_budget == 10 and c.bounded
    assert not c(at(9)).stop and c(at(10)).stop
    with pytest.raises(ValuationError):
        MaxSamples(0)


def test_min_samples() -> None:
    c = MinSamples(30)
    assert c(at(29)) is GO and c(at(30)) is DONE
    assert c.sample_budget is None and not c.bounded
    with pytest.raises(ValuationError):
        MinSamples(0)


def test_max_time() -> None:
    c = MaxTime(2.5)
    assert c(at(seconds=2.4)) is GO and c(at(seconds=2.5)) is BUDGET
    assert c.bounded and c.sample_budget is None
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValuationError):
            MaxTime(bad)


def test_standard_error_below() -> None:
    c = StandardErrorBelow(0.1)
    assert c(at(stderr=[0.1, 0.05])) is DONE
    assert c(at(stderr=[0.1, 0.11])) is GO
    assert c(at(stderr=[np.inf, 0.0])) is GO  # not yet estimable is not converged
    assert not c.bounded and c.sample_budget is None
    for bad in (0, -0.1):
        with pytest.raises(ValuationError):
            StandardErrorBelow(bad)


def test_or_stops_on_either_and_converged_wins() -> None:
    c = StandardErrorBelow(0.1) | MaxSamples(10)
    assert c(at(5, 0.2)) is GO
    assert c(at(10, 0.2)) is BUDGET
    assert c(at(5, 0.05)) is DONE
    assert c(at(10, 0.05)) is DONE  # the target met on the last batch still counts
    assert c.bounded and c.sample_budget == 10
    assert (MaxSamples(50) | MaxSamples(20) | MaxTime(1)).sample_budget == 20


def test_and_stops_only_on_both() -> None:
    c = StandardErrorBelow(0.1) & MinSamples(30)
    assert c(at(10, 0.05)) is GO
    assert c(at(30, 0.2)) is GO
    assert c(at(30, 0.05)) is DONE
    assert not c.bounded
    assert (MaxTime(1) & StandardErrorBelow(0.1))(at(5, 0.05, seconds=2)) is BUDGET
    both = MaxSamples(40) & MaxSamples(70)
    assert both.sample_budget == 70 and both.bounded
    assert (MaxSamples(40) & MinSamples(5)).sample_budget is None


def test_composition_is_flat_readable_and_immutable() -> None:
    c = StandardErrorBelow(0.01) & MinSamples(30) | MaxSamples(200) | MaxTime(60)
    assert repr(c) == (
        "(StandardErrorBelow(threshold=0.01) & MinSamples(n=30)) | MaxSamples(n=200)"
        " | MaxTime(seconds=60)"
    )
    assert len(c.parts) == 3  # type: ignore[attr-defined]
    assert c == StandardErrorBelow(0.01) & MinSamples(30) | MaxSamples(200) | MaxTime(60)
    assert isinstance(c, StoppingCriterion)
    with pytest.raises(dataclasses.FrozenInstanceError):
        MaxSamples(3).n = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        MaxSamples(3) | 5  # type: ignore[operator]
    with pytest.raises(TypeError):
        MaxSamples(3) & None  # type: ignore[operator]


def _data_utility():
    x, y, prop, xv, yv = blobs(4, n_prop=5, size=6, n_val=60, d=3)
    return ValuationData(x, y, prop), Utility(RidgeClassifier(), xv, yv, scorer="margin")


def test_methods_default_to_1000_samples_bit_for_bit() -> None:
    data, utility = _data_utility()
    for cls in (TMCShapley, MSRBanzhaf):
        default = cls(utility, flags=False).fit(data).result
        explicit = cls(utility, stopping=MaxSamples(1000), flags=False).fit(data).result
        assert default.n_samples == 1000 and not default.converged
        np.testing.assert_array_equal(default.proposal_values, explicit.proposal_values)
        np.testing.assert_array_equal(default.proposal_stderr, explicit.proposal_stderr)


def test_batches_keep_within_the_sample_budget() -> None:
    data, utility = _data_utility()
    fit = lambda m: m.fit(data).result.n_samples  # noqa: E731
    assert fit(MSRBanzhaf(utility, stopping=MaxSamples(77), flags=False)) == 77
    assert fit(MSRBanzhaf(utility, stopping=MaxSamples(40) & MaxSamples(70), flags=False)) == 70
    # antithetic pairs: a count is rounded up to an even number
    assert fit(TMCShapley(utility, stopping=MaxSamples(5), flags=False)) == 6
    assert fit(TMCShapley(utility, stopping=MaxSamples(5), antithetic=False, flags=False)) == 5


def test_converged_only_when_the_target_decides() -> None:
    data, utility = _data_utility()
    target = StandardErrorBelow(0.05) & MinSamples(10)
    met = TMCShapley(utility, stopping=target | MaxSamples(5000), flags=False).fit(data).result
    assert met.converged and met.n_samples < 5000 and met.proposal_stderr.max() <= 0.05
    short = TMCShapley(utility, stopping=target | MaxSamples(4), flags=False).fit(data).result
    assert not short.converged and short.n_samples == 4


def test_one_criterion_serves_many_fits() -> None:
    data, utility = _data_utility()
    stop = MaxSamples(64) | MaxTime(600)
    a = MSRBanzhaf(utility, stopping=stop, flags=False).fit(data).result
    b = MSRBanzhaf(utility, stopping=stop, flags=False).fit(data).result
    np.testing.assert_array_equal(a.proposal_values, b.proposal_values)


def test_methods_refuse_criteria_that_may_never_stop() -> None:
    _, utility = _data_utility()
    for never in (StandardErrorBelow(0.01), MinSamples(5), StandardErrorBelow(0.1) & MaxTime(9)):
        with pytest.raises(ValuationError, match="may never stop"):
            TMCShapley(utility, stopping=never)
    with pytest.raises(ValuationError, match="StoppingCriterion"):
        MSRBanzhaf(utility, stopping=1000)  # type: ignore[arg-type]
