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
    size = int(result.proposal_sizes[i])
    if size == 0:
        return 0
    per_example = float(result.proposal_values[i]) / size
    return round(BPS_SCALE * per_example / ref)


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def report(result: ValuationResult, *, reference: float | None = None) -> dict[str, Any]:
    """A JSON-serialisable summary: per proposal its value, stderr, weight and flags."""
    try:
        ref = result.mean_value_per_example() if reference is None else float(reference)
        weights_ok = math.isfinite(ref) and ref > 0
    except ValuationError:
        ref, weights_ok = float("nan"), False
    proposals = []
    for i, pid in enumerate(result.proposals):
        proposals.append(
            {
                "proposal": pid,
                "value": _num(result.proposal_values[i]),
                "stderr": _num(result.proposal_stderr[i]),
                "examples": int(result.proposal_sizes[i]),
                "copies": int(np.count_nonzero(result.copies & (result.player == i))),
                "weight_bps": quality_bps(result, pid, reference=ref) if weights_ok else None,
                "flags": [f.to_dict() for f in result.flags if f.proposal == pid],
            }
        )
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


def plot_values(result: ValuationResult, *, title: str | None = None) -> bytes:
    """A PNG bar chart of proposal values with 2-stderr bars, coloured by flags: red for
    poisoning, copies or out-of-distribution data, orange for some mislabelled examples only.

    Drawn on a bare ``Figure`` with the Agg canvas (no pyplot state, no display needed) and
    saved without a timestamp, so the same result gives the same bytes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(result.proposals)
    fig = Figure(figsize=(max(6.0, min(0.25 * n + 2, 24.0)), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    serious = {f.proposal for f in result.flags if f.kind is not FlagKind.MISLABELLED}
    some = {f.proposal for f in result.flags}
    palette = {"suspicious": "#c0392b", "some mislabelled": "#e59866", "clean": "#2e86c1"}

    def state(p: ProposalKey) -> str:
        return "suspicious" if p in serious else "some mislabelled" if p in some else "clean"

    colors = [palette[state(p)] for p in result.proposals]
    pos = np.arange(n)
    ax.bar(pos, result.proposal_values, yerr=2 * result.proposal_stderr, color=colors, capsize=2)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(pos, [str(p) for p in result.proposals], rotation=90, fontsize=7)
    ax.set_xlabel("proposal")
    handles = [Patch(color=c, label=label) for label, c in palette.items()]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylabel("value")
    ax.set_title(title or f"{result.method}: value per proposal")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
