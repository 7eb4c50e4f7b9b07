"""Finding copied examples: exact duplicates by hash, near duplicates by distance.

The rule (applied by every method before it values anything): examples are taken in
submission order (proposals by arrival, then rows). An example is a **copy** when

* its features equal those of an earlier example exactly (same bytes after normalising
  ``-0.0``), whatever its label (the same input relabelled is a copy too, and a suspicious
  one), or
* it has the same label as an earlier example that is itself no copy, and lies within
  ``near_tol x scale`` of it (Euclidean), where ``scale`` is the median distance from a
  distinct example to its nearest distinct neighbour (over up to 256 evenly spaced examples):
  a typical spacing of the data.

A copy is attributed to the earliest such example; copies are left out of the game and valued
at exactly zero, so the original proposal keeps the value it has without the copy.

The default ``near_tol=0.2`` catches Gaussian jitter of up to about 0.08 of a feature's
standard deviation on standardised data of a few tens of dimensions (digits, breast cancer)
without touching distinct examples there; in two or three dimensions distinct points do come
that close, so lower it or pass ``near_tol=0`` (exact copies only).

Methods take these settings as a :class:`CopyPolicy`. Its ``scope="newest"`` applies the rule
to the last proposal only, taking every earlier example as checked already (the evaluator's
case: one proposal against accepted data). Then the work is ``proposal x N`` distances in
bounded blocks instead of all ``N x N`` pairs, exact copies are found through a hash of each
row, and ``scale`` is the spacing of the earlier examples alone (remembered for the last 16
such sets, by their rows' hashes, so proposals valued against the same data share it).

That spacing shrinks as near copies get accepted (a simulation measured 0.546 -> 0.173), so the
filter weakened the more it was fooled. The evaluator therefore uses :func:`match_copies`: the
new proposal against the accepted data *and* every earlier pending proposal, with distances
measured against a :class:`CopyReference` fixed by the validation set (``near_tol=0.45`` of its
spacing holds digits jittered by 0.05 on [0, 1] without taking more than ~2% of distinct
digits), and a second check on rows scaled to unit length, so a brighter or darker copy is
still a copy.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.valuation._neighbours import (
    pairs_within,
    row_hashes,
    sq32,
    typical_spacing,
    within,
)
from databright.valuation.data import ProposalKey, ValuationData
from databright.valuation.result import Flag, FlagKind

__all__ = ["Copies", "CopyPolicy", "CopyReference", "find_copies", "match_copies"]


@dataclass(frozen=True, eq=False)
class Copies:
    """Which examples copy which: ``original[i]`` is -1 for an example kept, else the row of
    the earliest example it copies."""

    original: NDArray[np.intp]
    exact: NDArray[np.bool_]
    threshold: float
    """Distance under which two examples were taken for near copies (0 when not checked)."""

    @classmethod
    def none(cls, n: int) -> Copies:
        """No copies among ``n`` examples (copies not looked for)."""
        return cls(np.full(n, -1, np.intp), np.zeros(n, np.bool_), 0.0)

    @property
    def mask(self) -> NDArray[np.bool_]:
        """True for copies."""
        return self.original >= 0

    def flags(self, data: ValuationData) -> tuple[Flag, ...]:
        """One flag per (copying proposal, original proposal, exact or near)."""
        groups: dict[tuple[int, int, bool], list[int]] = defaultdict(list)
        for i in np.flatnonzero(self.mask).tolist():
            j = int(self.original[i])
            groups[(int(data.player[i]), int(data.player[j]), bool(self.exact[i]))].append(i)
        out: list[Flag] = []
        for (p, o, exact), rows in sorted(groups.items()):
            pid: ProposalKey = data.arrival[p]
            oid: ProposalKey = data.arrival[o]
            relabelled = int(np.count_nonzero(data.y[rows] != data.y[self.original[rows]]))
            where = "earlier examples of the same proposal" if p == o else f"proposal {oid!r}"
            how = "exactly" if exact else f"within distance {self.threshold:.3g}"
            extra = f", {relabelled} of them with a different label" if relabelled else ""
            out.append(
                Flag(
                    kind=FlagKind.DUPLICATE if exact else FlagKind.NEAR_DUPLICATE,
                    proposal=pid,
                    examples=tuple(rows),
                    reason=(
                        f"{len(rows)} examples copy {where} {how}{extra}, "
                        "so they are valued at zero."
                    ),
                    original=oid,
                )
            )
        return tuple(out)


def _exact_groups(x: NDArray[np.float64]) -> NDArray[np.intp]:
    rows = np.ascontiguousarray(x + 0.0)  # -0.0 and 0.0 hash alike
    view = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1])))
    _, inverse = np.unique(view.ravel(), return_inverse=True)
    return inverse.ravel().astype(np.intp)


Scope = Literal["all", "newest"]
SCOPES: tuple[Scope, ...] = ("all", "newest")


def find_copies(
    data: ValuationData,
    *,
    near_tol: float = 0.2,
    k_scale: int = 1,
    scale: float | None = None,
    scope: Scope = "all",
) -> Copies:
    """Mark exact and near copies of earlier examples (see the module docstring for the rule).

    ``near_tol=0`` checks exact copies only; ``scale`` overrides the data-derived spacing.
    ``scope="newest"`` checks only the examples of the last proposal to arrive, against every
    earlier example and its own earlier rows; see :class:`CopyPolicy`.
    """
    if near_tol < 0 or k_scale < 1:
        raise ValuationError("near_tol must be >= 0 and k_scale >= 1")
    if scope not in SCOPES:
        raise ValuationError(f"scope must be one of {SCOPES}, got {scope!r}")
    if scope == "newest" and len(data.arrival) > 1:
        return _newest_copies(data, near_tol=near_tol, k_scale=k_scale, scale=scale)
    n = data.n
    rank = data.rank()
    order = np.argsort(rank)
    original = np.full(n, -1, np.intp)
    exact = np.zeros(n, np.bool_)

    group = _exact_groups(data.x)
    first: dict[int, int] = {}
    for i in order.tolist():
        g = int(group[i])
        if g in first:
            original[i] = first[g]
            exact[i] = True
        else:
            first[g] = i

    threshold = 0.0
    kept = np.flatnonzero(original < 0)
    if near_tol > 0 and len(kept) > 1:
        xk = data.x[kept]
        if scale is None:
            scale = typical_spacing(xk, k_scale)
        threshold = near_tol * scale
        if threshold > 0:
            neigh = within(xk, threshold)
            _attribute_near(neigh, kept, kept, rank, data.y, original)
        _follow_near(original, exact)
    return Copies(original=original, exact=exact, threshold=threshold)


def _attribute_near(
    neigh: list[NDArray[np.intp]],
    checked: NDArray[np.intp],
    ref: NDArray[np.intp],
    rank: NDArray[np.intp],
    y: NDArray[np.generic],
    original: NDArray[np.intp],
) -> None:
    """Mark each ``checked`` row (taken in submission order) a near copy of the earliest row of
    ``ref`` among its neighbours ``neigh`` (indices into ``ref``) that came before it, has
    its label and is no copy itself."""
    rrank = rank[ref]
    ry = y[ref]
    for a in np.argsort(rank[checked]).tolist():
        cand = neigh[a]
        if len(cand) == 0:
            continue
        row = checked[a]
        cand = cand[(rrank[cand] < rank[row]) & (original[ref[cand]] < 0) & (ry[cand] == y[row])]
        if len(cand):
            original[row] = ref[cand[np.argmin(rrank[cand])]]


def _follow_near(original: NDArray[np.intp], exact: NDArray[np.bool_]) -> None:
    """Exact copies of a near copy point at the near copy's own original."""
    idx = np.flatnonzero(exact & (original >= 0))
    root = original[idx]
    moved = original[root] >= 0
    original[idx[moved]] = original[root[moved]]
    exact[idx[moved]] = False


_SPACINGS: OrderedDict[bytes, float] = OrderedDict()
_SPACINGS_KEPT = 16


def _spacing(
    x: NDArray[np.float64], rows: NDArray[np.intp], hashes: NDArray[np.uint64], k: int
) -> float:
    """:func:`typical_spacing` of ``x[rows]``, remembered for the last few sets of rows (by
    their row hashes), so that each proposal valued against the same accepted data does not
    pay for it again."""
    key = hashlib.blake2b(
        np.ascontiguousarray(hashes[rows]).tobytes() + f"|{x.shape[1]}|{k}".encode(),
        digest_size=20,
    ).digest()
    if key in _SPACINGS:
        _SPACINGS.move_to_end(key)
        return _SPACINGS[key]
    value = typical_spacing(x, k, among=rows)
    _SPACINGS[key] = value
    while len(_SPACINGS) > _SPACINGS_KEPT:
        _SPACINGS.popitem(last=False)
    return value


def _newest_copies(
    data: ValuationData, *, near_tol: float, k_scale: int, scale: float | None
) -> Copies:
    """:func:`find_copies` with ``scope="newest"``: the earlier examples are taken as checked
    (none of them a copy), so only the newest proposal's rows are compared, with everything
    before them: ``rows x N`` work, never ``N x N``."""
    n = data.n
    rank = data.rank()
    original = np.full(n, -1, np.intp)
    exact = np.zeros(n, np.bool_)
    newest = data.player == len(data.arrival) - 1
    new_rows = np.flatnonzero(newest)
    earlier = np.flatnonzero(~newest)

    # exact: only rows whose hash a new row shares can equal one; compare those bytes
    hashes = row_hashes(data.x)
    suspects = np.flatnonzero(np.isin(hashes, hashes[new_rows]))
    suspects = suspects[np.argsort(rank[suspects])]
    group = _exact_groups(data.x[suspects])
    first: dict[int, int] = {}
    for row, g in zip(suspects.tolist(), group.tolist(), strict=True):
        if g not in first:
            first[g] = row
        elif newest[row]:
            original[row] = first[g]
            exact[row] = True

    threshold = 0.0
    if near_tol > 0:
        if scale is None:
            # the spacing of the earlier data, which the newest proposal cannot shrink;
            # exact repeats among them would read as spacing 0, so one row per hash
            _, unique = np.unique(hashes[earlier], return_index=True)
            ref_rows = earlier[np.sort(unique)]
            if len(ref_rows) < 2:
                ref_rows = np.flatnonzero(original < 0)
            scale = _spacing(data.x, ref_rows, hashes, k_scale) if len(ref_rows) > 1 else 0.0
        threshold = near_tol * scale
        checked = new_rows[original[new_rows] < 0]
        if threshold > 0 and len(checked):
            ref = np.concatenate([earlier, checked])
            qi, rj = pairs_within(data.x[checked], data.x, threshold, among=ref)
            neigh = np.split(rj, np.searchsorted(qi, np.arange(1, len(checked))))
            _attribute_near(neigh, checked, ref, rank, data.y, original)
        _follow_near(original, exact)
    return Copies(original=original, exact=exact, threshold=threshold)


@dataclass(frozen=True)
class CopyPolicy:
    """Whether a method leaves copies of earlier examples out (valued at zero), and how near a
    near copy is.

    Args:
        enabled: look for copies; without it copying pays (only for comparisons).
        near_tol: near-copy distance as a fraction of the data's typical spacing (see the
            module docstring); 0 looks for exact copies only.
        scope: ``"all"`` checks every example against every earlier one (all pairs: time
            grows with the square of the data). ``"newest"`` checks only the examples of the
            last proposal to arrive, against all earlier examples and its own earlier rows,
            and takes the earlier examples as checked already (none of them is a copy); the
            typical spacing is then that of the earlier examples, which the newest proposal
            cannot shrink. This is the evaluator's case, one proposal against accepted data:
            ``proposal x N`` work.
    """

    enabled: bool = True
    near_tol: float = 0.2
    scope: Scope = "all"

    def __post_init__(self) -> None:
        if not self.near_tol >= 0:
            raise ValuationError("near_tol must be >= 0")
        if self.scope not in SCOPES:
            raise ValuationError(f"scope must be one of {SCOPES}, got {self.scope!r}")

    def find(self, data: ValuationData) -> Copies:
        """The copies in ``data`` under this policy (none when disabled)."""
        if not self.enabled:
            return Copies.none(data.n)
        return find_copies(data, near_tol=self.near_tol, scope=self.scope)


# ---- the evaluator's copy check: a fixed reference, earlier pending proposals included -----

_REFERENCE_ROWS = 2000
"""Rows of the trusted data the reference distances are measured on (evenly spaced)."""


def _unit(x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    return x / np.where(norm > 0, norm, 1.0)[:, None], norm


def _nearest_other(x: NDArray[np.float64]) -> NDArray[np.float64]:
    d2 = sq32(x, x)
    np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0)).astype(np.float64)


@dataclass(frozen=True)
class CopyReference:
    """Distance scales measured once on trusted data (the evaluator's validation set), so no
    proposal can move them: near copies accepted into the data do not shrink the distance
    under which the next near copy is caught, as the typical spacing of accepted data did.

    ``spacing`` is the median distance from a trusted row to its nearest other trusted row;
    ``direction_spacing`` the same for rows scaled to unit length (a copy made brighter or
    darker keeps its direction); ``far`` the 99th percentile of those nearest distances (what
    "far from everything trusted" means to the out-of-distribution check).
    """

    spacing: float
    direction_spacing: float
    far: float

    @classmethod
    def of(cls, x: NDArray[np.float64]) -> CopyReference:
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        key = hashlib.blake2b(
            np.ascontiguousarray(row_hashes(x)).tobytes() + f"|{x.shape}".encode(),
            digest_size=20,
        ).digest()
        if key in _REFERENCES:
            return _REFERENCES[key]
        if len(x) < 2:
            ref = cls(0.0, 0.0, float("inf"))
        else:
            rows = np.unique(
                np.linspace(0, len(x) - 1, min(len(x), _REFERENCE_ROWS)).astype(np.intp)
            )
            sample = x[rows]
            d = _nearest_other(sample)
            du = _nearest_other(_unit(sample)[0])
            ref = cls(float(np.median(d)), float(np.median(du)), float(np.quantile(d, 0.99)))
        _REFERENCES[key] = ref
        while len(_REFERENCES) > _SPACINGS_KEPT:
            _REFERENCES.popitem(last=False)
        return ref


_REFERENCES: OrderedDict[bytes, CopyReference] = OrderedDict()


def _pairs_near(
    q: NDArray[np.float64],
    nq: NDArray[np.float64],
    r: NDArray[np.float64],
    nr: NDArray[np.float64],
    radius: float,
    dir_radius: float,
    rescale: float,
) -> dict[str, tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Pairs (query row, ref row) within ``radius``, and pairs whose unit-length rows lie
    within ``dir_radius`` with lengths within ``rescale`` times: both from one product of the
    rows per block of ``r`` (``len(q) x len(r)`` work, bounded memory)."""
    found: dict[str, tuple[list[NDArray[np.intp]], list[NDArray[np.intp]]]] = {
        "near": ([], []),
        "rescaled": ([], []),
    }
    if len(q) and len(r):
        q32 = q.astype(np.float32)
        block = max(1, min(_DENSE_PAIRS // len(q), 8192))
        sq_q = (nq * nq).astype(np.float32)
        for s in range(0, len(r), block):
            dots = q32 @ r[s : s + block].astype(np.float32).T
            nb = nr[s : s + block]
            d2 = sq_q[:, None] + (nb * nb).astype(np.float32)[None, :] - 2.0 * dots
            i, j = np.nonzero(d2 <= np.float32(radius * radius))
            found["near"][0].append(i)
            found["near"][1].append(j + s)
            if dir_radius > 0:
                denom = np.outer(nq, nb).astype(np.float32)
                ok = denom > 0
                cos = np.divide(dots, denom, out=np.zeros_like(dots), where=ok)
                lo = np.minimum(nq[:, None], nb[None, :])
                hi = np.maximum(nq[:, None], nb[None, :])
                close = ok & (2.0 - 2.0 * cos <= np.float32(dir_radius * dir_radius))
                close &= hi <= rescale * lo
                i, j = np.nonzero(close)
                found["rescaled"][0].append(i)
                found["rescaled"][1].append(j + s)
    out = {}
    for kind, (ii, jj) in found.items():
        qi = np.concatenate(ii).astype(np.intp) if ii else np.zeros(0, np.intp)
        rj = np.concatenate(jj).astype(np.intp) if jj else np.zeros(0, np.intp)
        out[kind] = (qi, rj)
    return out


_DENSE_PAIRS = 4_000_000


@dataclass(frozen=True, eq=False)
class Matches:
    """What :func:`match_copies` found for each new row: ``original[i]`` is -1 for no copy,
    else a row of ``[earlier; new]`` (the earliest it copies); ``how[i]`` is ``"exact"``,
    ``"near"`` (within ``threshold``) or ``"rescaled"`` (the same direction within
    ``direction_threshold`` and a length within ``rescale`` times)."""

    original: NDArray[np.intp]
    how: tuple[str, ...]
    threshold: float
    direction_threshold: float

    @property
    def mask(self) -> NDArray[np.bool_]:
        return self.original >= 0


def match_copies(
    new_x: NDArray[np.float64],
    new_y: NDArray[np.generic],
    earlier_x: NDArray[np.float64],
    earlier_y: NDArray[np.generic],
    reference: CopyReference,
    *,
    near_tol: float = 0.45,
    rescale: float = 2.0,
) -> Matches:
    """Which rows of a new proposal copy an earlier row (``earlier_*``, in arrival order) or
    an earlier row of the same proposal.

    A row is a copy when its bytes equal an earlier row's (any label), or, with the same label
    as an earlier row that is no copy, when it lies within ``near_tol x reference.spacing`` of
    it, or its direction (the row scaled to unit length) lies within
    ``near_tol x reference.direction_spacing`` of that row's and their lengths differ by at most
    ``rescale`` times (brightness or contrast changed). Distances are measured against a fixed
    :class:`CopyReference`, never against the data being checked. Work: ``new x (earlier +
    new)`` distances in bounded blocks, plus one hash per row.
    """
    if near_tol < 0 or rescale < 1:
        raise ValuationError("near_tol must be >= 0 and rescale >= 1")
    new_x = np.asarray(new_x, np.float64)
    earlier_x = np.asarray(earlier_x, np.float64).reshape(len(earlier_x), new_x.shape[1])
    n_new, n_old = len(new_x), len(earlier_x)
    original = np.full(n_new, -1, np.intp)
    how = [""] * n_new
    eh = row_hashes(earlier_x) if n_old else np.zeros(0, np.uint64)
    nh = row_hashes(new_x)
    clean_new = new_x + 0.0
    for i in range(n_new):
        for j in np.flatnonzero(eh == nh[i]).tolist():
            if np.array_equal(earlier_x[j] + 0.0, clean_new[i]):
                original[i], how[i] = j, "exact"
                break
        else:
            for j in np.flatnonzero(nh[:i] == nh[i]).tolist():
                if np.array_equal(clean_new[j], clean_new[i]):
                    original[i] = original[j] if original[j] >= 0 else n_old + j
                    how[i] = "exact"
                    break
    threshold = near_tol * reference.spacing
    dir_threshold = near_tol * reference.direction_spacing
    new_y = np.asarray(new_y)
    earlier_y = np.asarray(earlier_y)
    if threshold > 0 or dir_threshold > 0:
        nn = np.sqrt(np.einsum("ij,ij->i", new_x, new_x))
        ne = np.sqrt(np.einsum("ij,ij->i", earlier_x, earlier_x)) if n_old else np.zeros(0)
        near = _pairs_near(new_x, nn, earlier_x, ne, threshold, dir_threshold, rescale)
        mine = _pairs_near(new_x, nn, new_x, nn, threshold, dir_threshold, rescale)
        cands = [(kind, *near[kind], *mine[kind]) for kind in ("near", "rescaled")]
        for i in range(n_new):
            if original[i] >= 0:
                continue
            for kind, oi, oj, si, sj in cands:
                js = oj[(oi == i)]
                js = js[earlier_y[js] == new_y[i]] if len(js) else js
                if len(js):
                    original[i], how[i] = int(js.min()), kind
                    break
                js = sj[(si == i) & (sj < i)]
                js = js[(new_y[js] == new_y[i]) & (original[js] < 0)]
                if len(js):
                    original[i], how[i] = n_old + int(js.min()), kind
                    break
    return Matches(original, tuple(how), threshold, dir_threshold)
