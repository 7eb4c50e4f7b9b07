"""Robust aggregation: each rule's breakdown property, state dicts, and one sentence per bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.compute.aggregation import (
    DEFAULT_RULE,
    RULES,
    Aggregator,
    coordinate_median,
    finite_rows,
    flatten,
    krum,
    krum_scores,
    mean,
    multi_krum,
    multi_krum_select,
    stack,
    trim_count,
    trimmed_mean,
    unflatten,
)
from databright.errors import InvalidArgument


@st.composite
def attacked(draw: st.DrawFn, *, majority: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(updates, honest rows, f): f Byzantine rows of arbitrary finite values among n."""
    f = draw(st.integers(0, 4))
    n = draw(st.integers(2 * f + 1 if majority else f + 1, 2 * f + 8))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    honest = rng.normal(0, 1, (n - f, d)).astype(np.float32)
    byz_values = st.floats(allow_nan=False, allow_infinity=False, width=32)
    byz = np.array(
        draw(st.lists(st.lists(byz_values, min_size=d, max_size=d), min_size=f, max_size=f)),
        dtype=np.float32,
    ).reshape(f, d)
    rows = np.concatenate([honest, byz])
    order = rng.permutation(n)
    return rows[order], honest, f


def _within(agg: np.ndarray, honest: np.ndarray) -> bool:
    lo, hi = honest.min(axis=0), honest.max(axis=0)
    slack = 1e-5 * (1 + np.abs(honest).max(axis=0))
    return bool(np.all(agg >= lo - slack) and np.all(agg <= hi + slack))


@settings(max_examples=150, deadline=None)
@given(attacked(majority=True))
def test_trimmed_mean_with_trim_at_least_f_stays_in_the_honest_range(
    case: tuple[np.ndarray, np.ndarray, int],
) -> None:
    updates, honest, f = case
    assert _within(trimmed_mean(updates, f), honest)


@settings(max_examples=150, deadline=None)
@given(attacked(majority=True))
def test_median_with_a_byzantine_minority_stays_in_the_honest_range(
    case: tuple[np.ndarray, np.ndarray, int],
) -> None:
    updates, honest, _ = case
    assert _within(coordinate_median(updates), honest)


@settings(max_examples=150, deadline=None)
@given(
    f=st.integers(1, 4),
    extra=st.integers(0, 6),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    far=st.floats(100, 1e6),
    clustered=st.booleans(),
)
def test_multi_krum_keeps_only_honest_updates_when_they_are_clustered(
    f: int, extra: int, d: int, seed: int, far: float, clustered: bool
) -> None:
    n = 2 * f + 3 + extra
    rng = np.random.default_rng(seed)
    center = rng.normal(0, 10, d)
    honest = center + rng.uniform(-1, 1, (n - f, d))
    # Byzantine updates at least `far` away from the honest cluster in some coordinate;
    # clustered among themselves (colluding) or scattered.
    direction = rng.choice([-1.0, 1.0], d)
    base = center + direction * far
    spread = 0.0 if clustered else far / 2
    byz = base + rng.uniform(-1, 1, (f, d)) * spread
    byz[:, 0] = center[0] + direction[0] * (far + rng.uniform(0, far, f))
    updates = np.concatenate([honest, byz]).astype(np.float32)
    order = rng.permutation(n)
    picked = multi_krum_select(updates[order], f)
    assert len(picked) == n - f
    assert set(order[picked].tolist()) == set(range(n - f))
    assert _within(krum(updates[order], f), honest.astype(np.float32))
    assert _within(multi_krum(updates[order], f), honest.astype(np.float32))


def test_mean_is_not_robust() -> None:
    updates = np.zeros((10, 3), dtype=np.float32)
    updates[0] = 1e6
    assert mean(updates)[0] == pytest.approx(1e5)
    assert trimmed_mean(updates, 1)[0] == 0.0


def test_known_answers() -> None:
    u = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]], dtype=np.float32)
    assert trimmed_mean(u, 1)[0] == pytest.approx(3.0)
    assert trimmed_mean(u, 0.2)[0] == pytest.approx(3.0)  # floor(0.2 * 5) = 1
    assert trimmed_mean(u, 0)[0] == pytest.approx(22.0)
    assert coordinate_median(u)[0] == pytest.approx(3.0)
    assert coordinate_median(u[:4])[0] == pytest.approx(2.5)
    scores = krum_scores(u, 1)  # n - f - 2 = 2 nearest
    assert scores[1] == pytest.approx(2.0)  # 2 -> 1 and 3
    assert np.argmin(scores) in (1, 2)
    assert multi_krum_select(u, 1).tolist() == [0, 1, 2, 3]
    assert multi_krum(u, 1)[0] == pytest.approx(2.5)
    assert multi_krum_select(u, 1, 2).tolist() == [1, 2]


def test_default_rule_is_trimmed_mean_not_krum() -> None:
    assert DEFAULT_RULE == "trimmed_mean"
    assert Aggregator().rule == "trimmed_mean"


def _state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    module = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    module.train()
    module(torch.randn(5, 3))
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_flatten_unflatten_round_trip_keeps_names_shapes_and_dtypes() -> None:
    state = _state(0)
    vector, layout = flatten(state)
    assert vector.dtype == np.float32 and vector.shape == (layout.size,)
    back = unflatten(vector, layout)
    assert list(back) == list(state)
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype
        assert torch.equal(back[name], tensor)


def test_rules_take_state_dicts_and_give_one_back() -> None:
    states = [_state(s) for s in range(5)]
    out = trimmed_mean(states, 1)
    assert isinstance(out, dict) and list(out) == list(states[0])
    stacked = torch.stack([s["0.weight"] for s in states])
    assert torch.allclose(mean(states)["0.weight"], stacked.mean(0), atol=1e-6)
    sorted_vals = stacked.sort(0).values
    assert torch.allclose(out["0.weight"], sorted_vals[1:4].mean(0), atol=1e-6)
    assert out["1.num_batches_tracked"].dtype == torch.int64
    assert set(multi_krum(states, 1)) == set(states[0])


def test_non_finite_updates_are_refused_naming_the_client() -> None:
    u = np.zeros((6, 4), dtype=np.float32)
    u[3, 2] = np.nan
    with pytest.raises(InvalidArgument, match="client 3's update holds NaN"):
        trimmed_mean(u)
    u[3, 2] = np.inf
    for rule in RULES:
        with pytest.raises(InvalidArgument, match="client 3"):
            Aggregator(rule, f=1)(u)
    assert finite_rows(u).tolist() == [True, True, True, False, True, True]
    assert trimmed_mean(u[finite_rows(u)], 1).shape == (4,)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: trimmed_mean(np.zeros((4, 2)), 2), "needs more than 4 clients"),
        (lambda: trimmed_mean(np.zeros((4, 2)), 0.5), r"in \[0, 0.5\)"),
        (lambda: trimmed_mean(np.zeros((4, 2)), -1), "must not be negative"),
        (lambda: trimmed_mean(np.zeros((4, 2)), True), "count or a fraction"),
        (lambda: krum(np.zeros((4, 2)), 1), r"at least 5 clients \(2f \+ 3\), got 4"),
        (lambda: multi_krum(np.zeros((7, 2)), 2, 6), "at most n - f = 5"),
        (lambda: krum(np.zeros((7, 2)), -1), "f .* at least 0"),
        (lambda: mean([[1.0, 2.0], [1.0]]), "same size"),  # type: ignore[arg-type, list-item, dict-item]
        (lambda: mean([]), "no client updates"),
        (lambda: mean(np.zeros((0, 3))), "non-empty matrix"),
        (lambda: mean(np.zeros(3)), "one row per client"),
        (lambda: mean("abc"), "matrix .* or a list of state dicts"),  # type: ignore[arg-type, list-item, dict-item]
        (lambda: mean([_state(0), {"x": torch.zeros(2)}]), "client 1's state dict"),
        (lambda: mean([{"x": [1.0]}]), "not a torch tensor"),  # type: ignore[arg-type, list-item, dict-item]
        (lambda: unflatten(np.zeros(3), flatten(_state(0))[1]), "layout needs"),
        (lambda: Aggregator("average"), "unknown aggregation rule"),  # type: ignore[arg-type]
    ],
)
def test_one_sentence_per_bad_input(call: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        call()  # type: ignore[operator]
    text = str(caught.value)
    assert text.endswith(".") and text.count(". ") == 0


@settings(max_examples=100, deadline=None)
@given(
    rule=st.sampled_from(RULES),
    f=st.integers(0, 3),
    trim=st.one_of(st.integers(0, 3), st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.45])),
)
def test_minimum_clients_is_exactly_what_the_rule_needs(
    rule: str, f: int, trim: float | int
) -> None:
    agg = Aggregator(rule, trim=trim, f=f)  # type: ignore[arg-type]
    n = agg.minimum_clients()
    rng = np.random.default_rng(0)
    assert agg(rng.normal(size=(n, 3)).astype(np.float32)).shape == (3,)
    if n > 1:
        with pytest.raises(InvalidArgument):
            agg(rng.normal(size=(n - 1, 3)).astype(np.float32))


def test_for_clients_fixes_the_trim_count() -> None:
    agg = Aggregator(trim=0.2)
    assert agg.for_clients(20).trim == 4
    assert trim_count(19, agg.for_clients(20).trim) == 4
    assert Aggregator("krum", f=2).for_clients(10) == Aggregator("krum", f=2)


def test_stack_reports_layout_only_for_state_dicts() -> None:
    matrix, layout = stack(np.ones((3, 2)))
    assert layout is None and matrix.dtype == np.float32
    _, layout = stack([_state(0), _state(1)])
    assert layout is not None and layout.names[0] == "0.weight"
