"""The evaluator's case at scale: one proposal against many accepted examples.

Copy detection and flags look at the newest proposal only (``proposal x N`` work), the
neighbour searches read their reference rows in bounded blocks, KNN-Shapley keeps no
``N x M`` matrix, and the plot stays cheap with many proposals.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from valuation_helpers import blobs, exact_shapley, flip, knn_utility

from databright.errors import ValuationError
from databright.valuation import (
    CopyPolicy,
    FlagKind,
    FlagPolicy,
    KNNShapley,
    Utility,
    ValuationData,
    _neighbours,
    dedup,
    find_copies,
    knn,
    knn_shapley_values,
    plot_values,
)


def _accepted_and_proposal(n: int, d: int = 16, seed: int = 0, group: int = 50):
    """``n`` accepted Gaussian examples in entries of ``group``, then a 30-example proposal
    whose rows 0-4 are jittered copies, row 5 an exact copy (relabelled) of accepted rows,
    and row 6 an exact repeat of its own row 0."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.integers(0, 3, n)
    xp = rng.normal(size=(30, d))
    yp = rng.integers(0, 3, 30)
    xp[:5] = x[10:15] + 1e-3 * rng.normal(size=(5, d))
    yp[:5] = y[10:15]
    xp[5], yp[5] = x[20], (y[20] + 1) % 3
    xp[6], yp[6] = xp[0], yp[0]
    prop = np.concatenate([np.arange(n) // group, np.full(30, 10**6)])
    return ValuationData(np.vstack([x, xp]), np.concatenate([y, yp]), prop)


# ---- neighbour searches ---------------------------------------------------------------


def test_pairs_within_matches_brute_force_in_any_blocks() -> None:
    rng = np.random.default_rng(1)
    q, ref = rng.normal(size=(7, 3)), rng.normal(size=(300, 3))
    d = np.sqrt(((q[:, None] - ref[None]) ** 2).sum(-1))
    want = np.nonzero(d <= 0.8)
    for max_pairs in (1, 50, 10**6):
        got = _neighbours.pairs_within(q, ref, 0.8, max_pairs=max_pairs)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    among = np.array([5, 17, 250])
    i, j = _neighbours.pairs_within(q, ref, 0.8, among=among)
    assert set(zip(i.tolist(), among[j].tolist(), strict=True)) == {
        (a, b) for a, b in zip(*want, strict=True) if b in among
    }


def test_pairs_within_finds_nothing_far_or_empty() -> None:
    q = np.zeros((3, 2))
    i, j = _neighbours.pairs_within(q, np.full((5, 2), 10.0), 1.0)
    assert len(i) == len(j) == 0
    assert len(_neighbours.pairs_within(q, np.zeros((0, 2)), 1.0)[0]) == 0


def test_row_hashes_equal_rows_alike_and_others_apart() -> None:
    x = np.array([[0.0, 1.5], [-0.0, 1.5], [1.5, 0.0], [0.0, 1.5 + 1e-12]])
    h = _neighbours.row_hashes(x, block=2)
    assert h[0] == h[1]  # -0.0 reads as 0.0
    assert len({int(h[0]), int(h[2]), int(h[3])}) == 3
    big = np.random.default_rng(0).normal(size=(5000, 8))
    assert len(np.unique(_neighbours.row_hashes(big))) == 5000


def test_typical_spacing_blocks_and_subsets_agree_with_dense() -> None:
    x = np.random.default_rng(2).normal(size=(400, 5))
    dense = _neighbours.typical_spacing(x, 1)
    assert _neighbours.typical_spacing(x, 1, max_pairs=256 * 7) == pytest.approx(dense)
    among = np.arange(0, 400, 2)
    assert _neighbours.typical_spacing(x, 2, among=among) == pytest.approx(
        _neighbours.typical_spacing(x[among], 2)
    )
    # a subset is sparser: its spacing is larger
    assert _neighbours.typical_spacing(x, 1, among=among) > dense


# ---- copy detection, newest proposal only ---------------------------------------------


def test_newest_scope_finds_the_proposals_copies_like_all() -> None:
    data = _accepted_and_proposal(2000)
    newest = find_copies(data, scope="newest")
    every = find_copies(data)
    np.testing.assert_array_equal(newest.original, every.original)
    np.testing.assert_array_equal(newest.exact, every.exact)
    rows = 2000 + np.arange(7)
    assert newest.original[rows].tolist() == [10, 11, 12, 13, 14, 20, 10]
    assert newest.exact[rows].tolist() == [False] * 5 + [True, False]
    assert newest.threshold > 0
    assert CopyPolicy(scope="newest").find(data).mask.sum() == 7


def test_newest_scope_trusts_earlier_proposals() -> None:
    # proposal 1 copies proposal 0: "all" finds it, "newest" (proposal 2) takes it as checked
    x = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0], [9.0, 1.0]])
    data = ValuationData(x, [0, 1, 0, 1], [0, 0, 1, 2])
    assert find_copies(data, near_tol=0).original.tolist() == [-1, -1, 0, -1]
    assert not find_copies(data, near_tol=0, scope="newest").mask.any()
    # with one proposal, "newest" is "all"
    single = ValuationData(x, [0, 1, 0, 1], [0, 0, 0, 0])
    np.testing.assert_array_equal(
        find_copies(single, scope="newest").original, find_copies(single).original
    )


def test_scope_is_checked() -> None:
    with pytest.raises(ValuationError, match="scope"):
        CopyPolicy(scope="some")  # type: ignore[arg-type]
    with pytest.raises(ValuationError, match="scope"):
        find_copies(_accepted_and_proposal(100), scope="some")  # type: ignore[arg-type]
    with pytest.raises(ValuationError, match="scope"):
        FlagPolicy(scope="some")  # type: ignore[arg-type]


def test_spacing_is_computed_once_per_accepted_set(monkeypatch) -> None:
    calls = []
    real = dedup.typical_spacing

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dedup, "typical_spacing", counted)
    monkeypatch.setattr(dedup, "_SPACINGS", type(dedup._SPACINGS)())
    a = _accepted_and_proposal(500, seed=3)
    b = _accepted_and_proposal(500, seed=3)  # same accepted data, fresh arrays
    first = find_copies(a, scope="newest").threshold
    assert find_copies(b, scope="newest").threshold == first
    assert len(calls) == 1
    find_copies(_accepted_and_proposal(500, seed=4), scope="newest")  # other data: computed
    assert len(calls) == 2


def test_copy_detection_on_20k_accepted_holds_no_n_by_n_matrix() -> None:
    n = 20_000
    data = _accepted_and_proposal(n, d=64)
    find_copies(_accepted_and_proposal(300, d=64), scope="newest")  # warm up
    tracemalloc.start()
    start = time.perf_counter()
    try:
        copies = CopyPolicy(scope="newest").find(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 5.0
    assert copies.mask.sum() == 7
    assert peak < n * n * 4 / 50  # 32 MB; an N x N float32 matrix is 1.6 GB


# ---- flags, newest proposal only ------------------------------------------------------


def test_newest_flag_scope_judges_only_the_last_proposal() -> None:
    x, y, prop, xv, yv = blobs(1)
    y = flip(y, np.flatnonzero(prop == 0)[:8], 3)  # an early proposal: flagged under "all"
    y = flip(y, np.flatnonzero(prop == 7)[:8], 3, seed=1)  # the newest
    u = Utility(KNeighborsClassifier(5), xv, yv)
    data = ValuationData(x, y, prop)
    every = KNNShapley(u).fit(data).result
    newest = KNNShapley(u, flag_policy=FlagPolicy(scope="newest")).fit(data).result
    assert FlagKind.POISONING in {f.kind for f in every.flags_for(0)}
    assert not newest.flags_for(0)
    assert {f.kind for f in newest.flags_for(7)} == {f.kind for f in every.flags_for(7)}
    assert {f.proposal for f in newest.flags} == {7}


# ---- KNN-Shapley ----------------------------------------------------------------------


def test_threads_and_blocks_do_not_change_values(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 4)), rng.integers(0, 3, 300)
    xv, yv = rng.normal(size=(70, 4)), rng.integers(0, 3, 70)
    groups = rng.integers(0, 9, 300)  # scattered, not contiguous
    monkeypatch.setattr(knn, "_MAX_WORKERS", 1)
    one = knn_shapley_values(x, y, xv, yv, 3, groups=groups, n_groups=10, batch_size=7)
    monkeypatch.setattr(knn, "_MAX_WORKERS", 4)
    many = knn_shapley_values(x, y, xv, yv, 3, groups=groups, n_groups=10, batch_size=7)
    for a, b in zip(one[:4], many[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(one[2][:9], np.bincount(groups, one[0], 9), atol=1e-12)
    assert one[2][9] == 0.0 and one[3][9] == 0.0  # an empty group
    assert one[4] is None


def test_grouped_values_equal_brute_force() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(7, 2)), rng.integers(0, 2, 7)
    xv, yv = rng.normal(size=(5, 2)), rng.integers(0, 2, 5)
    values, *_ = knn_shapley_values(
        x, y, xv, yv, 2, groups=np.array([2, 0, 1, 0, 2, 1, 0]), n_groups=3
    )
    np.testing.assert_allclose(values, exact_shapley(7, knn_utility(x, y, xv, yv, 2)), atol=1e-6)


def test_kept_distances_are_train_by_validation() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    xv, yv = rng.normal(size=(9, 3)), rng.integers(0, 2, 9)
    *_, d2 = knn_shapley_values(
        x, y, xv, yv, 3, groups=rng.integers(0, 4, 40), n_groups=4, keep_distances=True
    )
    assert d2 is not None and d2.shape == (40, 9) and d2.dtype == np.float32
    want = ((x[:, None] - xv[None]) ** 2).sum(-1)
    np.testing.assert_allclose(d2, want, rtol=1e-5, atol=1e-5)


def test_too_many_training_rows_for_the_packed_sort(monkeypatch) -> None:
    class Huge(np.ndarray):
        def __len__(self) -> int:
            return 2**32

    y = np.zeros(3).view(Huge)
    with pytest.raises(ValuationError, match="2\\*\\*32"):
        knn_shapley_values(np.zeros((3, 1)), y, np.zeros((1, 1)), np.zeros(1), 1)


# ---- the evaluator's path and the plot ------------------------------------------------


def test_value_proposal_scores_and_zeroes_copies() -> None:
    from databright.market.evaluator import default_method, value_proposal

    data = _accepted_and_proposal(1500, d=8)
    n = 1500
    rng = np.random.default_rng(7)
    xv, yv = rng.normal(size=(200, 8)), rng.integers(0, 3, 200)
    utility = Utility(KNeighborsClassifier(5), xv, yv)
    score, body, png = value_proposal(
        default_method(5),
        utility,
        (data.x[:n], data.y[:n], np.arange(n) // 50),
        (data.x[n:], data.y[n:]),
        key="proposal-9",
        title="t",
    )
    ours = next(p for p in body["proposals"] if p["proposal"] == "proposal-9")
    assert isinstance(score, int) and ours["copies"] == 7 and ours["examples"] == 30
    kinds = {f["kind"] for f in ours["flags"]}
    assert {"duplicate", "near_duplicate"} <= kinds
    # accepted entries are not judged again
    assert all(not p["flags"] for p in body["proposals"] if p["proposal"] != "proposal-9")
    assert png[:4] == b"\x89PNG"


def test_value_proposal_refuses_a_method_that_is_not_one() -> None:
    from databright.market.evaluator import value_proposal

    u = Utility(KNeighborsClassifier(1), np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValuationError, match="not a valuation method"):
        value_proposal(
            lambda _: object(),  # type: ignore[arg-type,return-value]
            u,
            (np.zeros((2, 2)), np.array([0, 1]), np.array([0, 0])),
            (np.ones((1, 2)), np.array([1])),
            key="p",
            title="t",
        )


def test_plot_of_many_proposals_is_cheap_and_deterministic() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(2000, 3)), rng.integers(0, 2, 2000)
    xv, yv = rng.normal(size=(50, 3)), rng.integers(0, 2, 50)
    result = (
        KNNShapley(Utility(KNeighborsClassifier(3), xv, yv), flags=False)
        .fit(ValuationData(x, y, np.arange(2000) // 2))
        .result
    )
    plot_values(result)  # imports
    start = time.perf_counter()
    png = plot_values(result, title="many")
    assert time.perf_counter() - start < 3.0  # one artist per proposal took ~15 s here
    assert png[:4] == b"\x89PNG" and plot_values(result, title="many") == png
    assert plot_values(result, title="other") != png
