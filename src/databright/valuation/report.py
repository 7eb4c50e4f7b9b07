"""What the evaluator service stores and posts: a JSON report, a PNG plot, basis points.

**Quality weight in basis points.** The contract mints ``examples x min(score, cap) / 10000``
shares, so a proposal's score is its value *per example* relative to a reference value per
example, times 10000:

    bps(p) = round(10000 * (value(p) / examples(p)) / reference)

``reference`` is the average value of an accepted example: the evaluator passes it from the
dataset's history; by default it is the mean over this result's valued (non-copy) examples.
So 10000 means "as valuable per example as the average accepted example", 20000 twice that,
0 worthless and negative values harmful. Copies count in ``examples(p)`` but are worth zero,
so a proposal that is half copies scores half.

This is the plain per-example average. The evaluator's score is
:func:`databright.valuation.reward`'s, which pays example by example (bad examples count
against the batch) and adds a premium for early data.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from databright.errors import ValuationError
from databright.valuation.data import ProposalKey
from databright.valuation.result import FlagKind, ValuationResult

__all__ = ["BPS_SCALE", "plot_values", "quality_bps", "report"]

BPS_SCALE = 10_000
"""Basis points of a proposal exactly as valuable per example as the reference."""


def quality_bps(
    result: ValuationResult, proposal: ProposalKey, *, reference: float | None = None
) -> int:
    """A proposal's quality weight in basis points (see the module docstring); may be <= 0."""
    ref = result.mean_value_per_example() if reference is None else float(reference)
    if not math.isfinite(ref) or ref <= 0:
        raise ValuationError(
            "the reference value per example must be positive; the data as a whole adds no value"
        )
    i = result.proposals.index(proposal) if proposal in result.proposals else -1
    if i < 0:
        raise ValuationError(f"proposal {proposal!r} is not part of this result")
    return _bps(float(result.proposal_values[i]), int(result.proposal_sizes[i]), ref)


def _bps(value: float, size: int, ref: float) -> int:
    return 0 if size == 0 else round(BPS_SCALE * (value / size) / ref)


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def report(result: ValuationResult, *, reference: float | None = None) -> dict[str, Any]:
    """A JSON-serialisable summary: per proposal its value, stderr, weight and flags."""
    try:
        ref = result.mean_value_per_example() if reference is None else float(reference)
        weights_ok = math.isfinite(ref) and ref > 0
    except ValuationError:
        ref, weights_ok = float("nan"), False
    n_prop = len(result.proposals)
    copies = np.bincount(result.player[result.copies], minlength=n_prop).tolist()
    flags: dict[ProposalKey, list[dict[str, Any]]] = {}
    for f in result.flags:
        flags.setdefault(f.proposal, []).append(f.to_dict())
    proposals = []
    flagged_rows: dict[int, str] = {}
    for f in result.flags:
        for row in f.examples:
            # a row's most serious flag wins: anything but a label doubt outranks one
            if flagged_rows.get(row) in (None, FlagKind.MISLABELLED.value):
                flagged_rows[row] = f.kind.value
    budget = MAX_EXAMPLE_VALUES
    for i, pid in enumerate(result.proposals):
        value = float(result.proposal_values[i])
        size = int(result.proposal_sizes[i])
        entry = {
            "proposal": pid,
            "value": _num(value),
            "stderr": _num(result.proposal_stderr[i]),
            "examples": size,
            "copies": copies[i],
            "weight_bps": _bps(value, size, ref) if weights_ok else None,
            "flags": flags.get(pid, []),
        }
        # Each example's value, for the proposal page's plot, while the report stays small:
        # the newest proposals first (those under evaluation), up to a total budget.
        proposals.append(entry)
    for i in reversed(range(n_prop)):
        rows = np.flatnonzero(result.player == i)
        if len(rows) > budget:
            break
        budget -= len(rows)
        proposals[i]["example_values"] = [
            _num(float(f"{v:.6g}")) for v in np.asarray(result.values, np.float64)[rows]
        ]
        proposals[i]["example_flags"] = [
            [pos, flagged_rows[int(r)]] for pos, r in enumerate(rows) if int(r) in flagged_rows
        ]
    return {
        "method": result.method,
        "converged": result.converged,
        "samples": result.n_samples,
        "cpu_seconds": round(result.seconds, 6),
        "total_gain": _num(result.total_gain),
        "reference_per_example": _num(ref),
        "flag_counts": {k.value: sum(f.kind is k for f in result.flags) for k in FlagKind},
        "proposals": proposals,
    }


#: At most this many per-example values in a report (about 10 bytes each in JSON).
MAX_EXAMPLE_VALUES = 20_000

_LABELLED = 40
"""Up to this many proposals every bar is labelled; beyond, about this many evenly spaced
ones and the last (the newest)."""


def plot_values(result: ValuationResult, *, title: str | None = None) -> bytes:
    """A PNG bar chart of proposal values with 2-stderr bars, coloured by flags: red for
    poisoning, copies or out-of-distribution data, orange for some mislabelled examples only.

    Drawn on a bare ``Figure`` with the Agg canvas (no pyplot state, no display needed) and
    saved without a timestamp, so the same result gives the same bytes. Cheap however many
    proposals there are: the bars are one compound path per colour and the error bars one
    more (not one artist per proposal), at most about 40 tick labels, fixed margins instead
    of ``tight_layout`` (which draws the figure an extra time), and a width capped at
    12 inches.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, PathPatch
    from matplotlib.path import Path

    n = len(result.proposals)
    width = max(6.0, min(0.25 * min(n, _LABELLED) + 2.0, 12.0))
    fig = Figure(figsize=(width, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.9 / width, right=1.0 - 1.6 / width, bottom=0.3, top=0.9)
    ax = fig.add_subplot()
    serious = {f.proposal for f in result.flags if f.kind is not FlagKind.MISLABELLED}
    some = {f.proposal for f in result.flags}
    palette = {"suspicious": "#c0392b", "some mislabelled": "#e59866", "clean": "#2e86c1"}

    def state(p: ProposalKey) -> str:
        return "suspicious" if p in serious else "some mislabelled" if p in some else "clean"

    states = [state(p) for p in result.proposals]
    pos = np.arange(n, dtype=np.float64)
    values = np.nan_to_num(np.asarray(result.proposal_values, np.float64))
    err = 2.0 * np.nan_to_num(np.asarray(result.proposal_stderr, np.float64))
    half = 0.4
    # one compound path per colour and one for all error bars: a handful of artists to draw;
    # add_artist, not add_patch, which walks every path segment in Python to update limits
    # (set below)
    corners = np.stack(
        [
            np.stack([pos - half, np.zeros(n)], axis=1),
            np.stack([pos - half, values], axis=1),
            np.stack([pos + half, values], axis=1),
            np.stack([pos + half, np.zeros(n)], axis=1),
        ],
        axis=1,
    )
    for label, color in palette.items():
        mine = [i for i, st in enumerate(states) if st == label]
        if mine:
            path = Path.make_compound_path_from_polys(corners[mine])
            ax.add_artist(PathPatch(path, facecolor=color, edgecolor="none"))
    if n:
        ends = np.stack([np.stack([pos, values - err], 1), np.stack([pos, values + err], 1)], 1)
        codes = np.tile([Path.MOVETO, Path.LINETO], n).astype(Path.code_type)
        ax.add_artist(
            PathPatch(Path(ends.reshape(-1, 2), codes), fill=False, edgecolor="black", lw=0.8)
        )
    lo = float(min(0.0, (values - err).min())) if n else 0.0
    hi = float(max(0.0, (values + err).max())) if n else 1.0
    pad = 0.05 * (hi - lo) or 1.0
    ax.set_xlim(-0.5 - half, n - 0.5 + half)
    ax.set_ylim(lo - pad, hi + pad)
    ax.axhline(0.0, color="black", linewidth=0.8)
    shown = np.arange(n) if n <= _LABELLED else np.unique(np.linspace(0, n - 1, _LABELLED).round())
    shown = shown.astype(np.intp)
    ax.set_xticks(pos[shown], [str(result.proposals[i]) for i in shown], rotation=90, fontsize=7)
    ax.set_xlabel("proposal" if n <= _LABELLED else f"proposal ({len(shown)} of {n} labelled)")
    handles = [Patch(color=c, label=label) for label, c in palette.items()]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylabel("value")
    ax.set_title(title or f"{result.method}: value per proposal")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
