"""The evaluator service: value each pending proposal and post the valuation on-chain.

For every pending proposal of a dataset that has no evaluation yet, the evaluator downloads the
dataset's accepted data (each example verified against the chain) and the proposal's examples,
and values the whole on the evaluator's private validation set, with one player group per
registry entry plus the proposal. The valuation method comes from the service's ``method``, a
factory building a ``Valuation`` from a ``Utility`` (any method class is one, e.g.
``TMCShapley``); by default it is exact KNN-Shapley with ``k`` neighbours. Copies of accepted
examples (exact or jittered) are worth zero (see ``databright.valuation``), so copying does not
pay. The default method checks for copies and flags only the proposal, against the accepted
data (which were checked when they were proposals): ``proposal x N`` distances, not ``N x N``
(``CopyPolicy``/``FlagPolicy`` with ``scope="newest"``).

The score is the proposal's value per example relative to the average accepted example, in
basis points (``databright.valuation.quality_bps``): 10000 = as useful as the data already in,
0 = adds nothing, negative = hurts the model. The contract turns it into shares (capped by the
dataset's quality cap; <= 0 mints none). The full report (JSON: values, standard errors, flags
with reasons, and the CID of a PNG plot of the values) is stored by content address and its CID
posted with the score, so voters can read why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.neighbors import KNeighborsClassifier

from databright.errors import InvalidArgument, NotPermitted, ValuationError
from databright.market.market import Market, ProposalInfo
from databright.storage import Examples, read_proposal
from databright.valuation import (
    CopyPolicy,
    FlagPolicy,
    KNNShapley,
    Utility,
    Valuation,
    ValuationData,
    plot_values,
    quality_bps,
    report,
)

__all__ = [
    "EvaluatorService",
    "MethodFactory",
    "PostedEvaluation",
    "default_method",
    "value_proposal",
]

MethodFactory = Callable[[Utility], Valuation]
"""Builds the valuation method from the evaluator's utility: a method class such as
``TMCShapley``, or e.g. ``functools.partial(TMCShapley, stopping=MaxSamples(200))``. It may
also build its own utility from ``utility.x_val`` and ``utility.y_val`` (another model or
scorer)."""

INITIAL_KEY = "registry-0"


def default_method(k: int) -> MethodFactory:
    """The evaluator's method unless told otherwise: exact KNN-Shapley with ``k`` neighbours,
    checking for copies and flags only the proposal (the last to arrive), against the
    accepted data, which were checked when they were proposals: ``proposal x N`` work."""
    return partial(
        KNNShapley,
        k=k,
        copy_policy=CopyPolicy(scope="newest"),
        flag_policy=FlagPolicy(scope="newest"),
    )


@dataclass(frozen=True)
class PostedEvaluation:
    proposal_id: int
    score_bps: int
    report_cid: str
    flags: tuple[str, ...]
    report: dict[str, Any]


class EvaluatorService:
    """Values and evaluates the pending proposals of one dataset, as one evaluator account.

    Args:
        market: the market client, as an account holding the dataset's evaluator role.
        dataset_id: the dataset whose pending proposals are evaluated.
        validation: the evaluator's private validation set (examples or a file to read).
        k: neighbours of the utility's ``KNeighborsClassifier`` (and of the default method).
        method: builds the valuation method from the utility (see :data:`MethodFactory`);
            defaults to ``KNNShapley`` with ``k`` neighbours.
    """

    def __init__(
        self,
        market: Market,
        dataset_id: int,
        validation: Examples | str | Path,
        k: int = 5,
        method: MethodFactory | None = None,
    ) -> None:
        if method is not None and not callable(method):
            raise InvalidArgument(
                "method must build a valuation method from a Utility, e.g. TMCShapley"
            )
        self.market = market
        self.dataset_id = dataset_id
        market.dataset(dataset_id)  # an unknown id is NotFound, not "not an evaluator"
        # The role, not the creation-time list: initiators can grant and revoke it.
        if not market.contract.is_evaluator(dataset_id, market.address):
            raise NotPermitted(
                f"account {market.address} is not an evaluator of dataset {dataset_id}; "
                "its initiator can grant the evaluator role"
            )
        if not isinstance(validation, Examples):
            validation = read_proposal(validation, market.schema(dataset_id))
        self.validation = validation
        self.k = k
        self.method: MethodFactory = default_method(k) if method is None else method

    def pending(self) -> list[ProposalInfo]:
        """Pending proposals still open to an evaluation."""
        now = self._now()
        return [
            p
            for p in self.market.proposals(self.dataset_id, status="pending")
            if p.evaluation is None and p.outcome == "pending" and p.deadline > now
        ]

    def _now(self) -> int:
        return self.market.gateway.block_timestamp()

    def value(self, proposal: ProposalInfo) -> tuple[int, dict[str, Any], bytes]:
        """Score, report and plot of one proposal against the accepted data."""
        accepted, origin = self.market.download(self.dataset_id)
        new = self.market.load_proposal_examples(proposal.id)
        utility = Utility(
            KNeighborsClassifier(n_neighbors=self.k),
            _flat(self.validation.X),
            self.validation.y,
        )
        return value_proposal(
            self.method,
            utility,
            (_flat(accepted.X), accepted.y, origin),
            (_flat(new.X), new.y),
            key=f"proposal-{proposal.sequence}",
            title=f"dataset {self.dataset_id}, proposal-{proposal.sequence}",
        )

    def evaluate(self, proposal: ProposalInfo) -> PostedEvaluation:
        score, body, plot = self.value(proposal)
        plot_cid = self.market.store.put(plot)
        ours = next(
            p for p in body["proposals"] if p["proposal"] == f"proposal-{proposal.sequence}"
        )
        doc = {
            "dataset_id": self.dataset_id,
            "proposal_id": int(proposal.id),
            "score_bps": score,
            "method": body["method"],
            "k": self.k,
            "validation_examples": len(self.validation),
            "plot_cid": plot_cid,
            "proposal": ours,
            "valuation": body,
        }
        raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        self.market.evaluate(proposal.id, score, raw)
        flags = tuple(f"{f['kind']}: {f['reason']}" for f in ours["flags"])
        return PostedEvaluation(int(proposal.id), score, self.market.store.put(raw), flags, doc)

    def run_once(self) -> list[PostedEvaluation]:
        return [self.evaluate(p) for p in self.pending()]

    def watch(
        self,
        interval_s: float = 5.0,
        on_posted: Callable[[PostedEvaluation], None] | None = None,
        rounds: int | None = None,
    ) -> None:
        """Evaluate new proposals as they come, until interrupted (or ``rounds`` passes)."""
        done = 0
        while rounds is None or done < rounds:
            for posted in self.run_once():
                if on_posted:
                    on_posted(posted)
            done += 1
            if rounds is None or done < rounds:
                time.sleep(interval_s)


def value_proposal(
    method: MethodFactory,
    utility: Utility,
    accepted: tuple[NDArray[Any], NDArray[Any], NDArray[Any]],
    new: tuple[NDArray[Any], NDArray[Any]],
    *,
    key: str,
    title: str,
) -> tuple[int, dict[str, Any], bytes]:
    """Score, report and plot of ``new`` examples against the ``accepted`` ones (features,
    labels, registry entry of each): :meth:`EvaluatorService.value` once the data are in hand,
    with no chain involved (``benchmarks/evaluator_scaling.py`` times this)."""
    acc_x, acc_y, origin = accepted
    new_x, new_y = new
    groups = [f"registry-{i}" for i in np.asarray(origin).tolist()] + [key] * len(new_y)
    X = np.concatenate([acc_x, new_x])
    y = np.concatenate([acc_y, new_y])
    arrival = [*dict.fromkeys(groups[: len(acc_y)]), key]
    valuer = method(utility)
    if not isinstance(valuer, Valuation):
        raise ValuationError(
            f"the evaluator's method built {type(valuer).__name__}, not a valuation method"
        )
    result = valuer.fit(ValuationData(X, y, groups, arrival)).result
    accepted_mask = np.arange(len(y)) < len(acc_y)
    reference = float(result.values[accepted_mask].mean())
    if reference <= 0:
        # The accepted data as a whole does not help the model (a tiny or unrepresentative
        # validation set): scale by its magnitude instead, so the sign of the score still
        # says whether the proposal helps.
        reference = max(abs(reference), 1e-9)
    score = quality_bps(result, key, reference=reference)
    body = report(result, reference=reference)
    plot = plot_values(result, title=title)
    return score, body, plot


def _flat(x: NDArray[Any]) -> NDArray[Any]:
    return x.reshape(len(x), -1)
