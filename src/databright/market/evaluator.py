"""The evaluator service: value each pending proposal, commit to the score, reveal it later.

Scores are sealed (see ``DataMarket``): during a proposal's commit phase the evaluator commits
to its score, report and a secret salt (kept in the data dir), and reveals them in the reveal
phase; the median of the revealed scores sizes the shares. ``run_once`` does whatever is due:
commits for proposals in their commit phase, reveals for those in their reveal phase.

For every proposal in its commit phase that this evaluator has not scored, it downloads the
dataset's accepted data (each example verified against the chain) and the proposal's examples,
and values the whole on the evaluator's private validation set, with one player group per
registry entry plus the proposal. The valuation method comes from the service's ``method``, a
factory building a ``Valuation`` from a ``Utility`` (any method class is one, e.g.
``TMCShapley``); by default it is exact KNN-Shapley with ``k`` neighbours. Copies of accepted
examples (exact or jittered) are worth zero (see ``databright.valuation``), so copying does not
pay.

The score is the proposal's value per example relative to the average accepted example, in
basis points (``databright.valuation.quality_bps``): 10000 = as useful as the data already in,
0 = adds nothing, negative = hurts the model. The contract turns it into shares (capped by the
dataset's quality cap; <= 0 mints none). The full report (JSON: values, standard errors, flags
with reasons, and the CID of a PNG plot of the values) is stored by content address and its CID
revealed with the score, so voters can read why.
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

from databright.errors import DataBrightError, InvalidArgument, ValuationError
from databright.market.market import Market, ProposalInfo, SealedScore
from databright.storage import Examples, read_proposal
from databright.valuation import (
    KNNShapley,
    Utility,
    Valuation,
    ValuationData,
    plot_values,
    quality_bps,
    report,
)

__all__ = ["EvaluatorService", "MethodFactory", "PostedEvaluation"]

MethodFactory = Callable[[Utility], Valuation]
"""Builds the valuation method from the evaluator's utility: a method class such as
``TMCShapley``, or e.g. ``functools.partial(TMCShapley, stopping=MaxSamples(200))``. It may
also build its own utility from ``utility.x_val`` and ``utility.y_val`` (another model or
scorer)."""

INITIAL_KEY = "registry-0"


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
            raise DataBrightError(
                f"account {market.address} is not an evaluator of dataset {dataset_id}; "
                "its initiator can grant the evaluator role"
            )
        if not isinstance(validation, Examples):
            validation = read_proposal(validation, market.schema(dataset_id))
        self.validation = validation
        self.k = k
        self.method: MethodFactory = partial(KNNShapley, k=k) if method is None else method

    def pending(self) -> list[ProposalInfo]:
        """Pending proposals in their commit phase that this evaluator has not scored (never
        its own: the contract refuses those)."""
        now = self._now()
        me = self.market.address
        return [
            p
            for p in self.market.proposals(self.dataset_id, status="pending")
            if now < p.commit_end
            and p.contributor != me
            and not self.market.scorecard(p.id)["committed"]
        ]

    def due_reveals(self) -> list[ProposalInfo]:
        """Pending proposals in their reveal phase whose committed score is not revealed yet."""
        now = self._now()
        return [
            p
            for p in self.market.proposals(self.dataset_id, status="pending")
            if p.commit_end <= now < p.voting_opens
            and self.market.sealed_score(p.id) is not None
            and not self.market.scorecard(p.id)["revealed"]
        ]

    def reveal_due(self) -> list[SealedScore]:
        """Reveal every score whose reveal phase is on."""
        return [self.market.reveal_evaluation(p.id) for p in self.due_reveals()]

    def _now(self) -> int:
        return int(self.market.gateway.w3.eth.get_block("latest")["timestamp"])

    def value(self, proposal: ProposalInfo) -> tuple[int, dict[str, Any], bytes]:
        """Score, report and plot of one proposal against the accepted data."""
        accepted, origin = self.market.download(self.dataset_id)
        new = self.market.load_proposal_examples(proposal.id)
        key = f"proposal-{proposal.sequence}"
        groups = [f"registry-{i}" for i in origin.tolist()] + [key] * len(new)
        X = np.concatenate([_flat(accepted.X), _flat(new.X)])
        y = np.concatenate([accepted.y, new.y])
        arrival = [*dict.fromkeys(groups[: len(accepted)]), key]
        utility = Utility(
            KNeighborsClassifier(n_neighbors=self.k),
            _flat(self.validation.X),
            self.validation.y,
        )
        valuer = self.method(utility)
        if not isinstance(valuer, Valuation):
            raise ValuationError(
                f"the evaluator's method built {type(valuer).__name__}, not a valuation method"
            )
        result = valuer.fit(ValuationData(X, y, groups, arrival)).result
        accepted_mask = np.arange(len(y)) < len(accepted)
        reference = float(result.values[accepted_mask].mean())
        if reference <= 0:
            # The accepted data as a whole does not help the model (a tiny or unrepresentative
            # validation set): scale by its magnitude instead, so the sign of the score still
            # says whether the proposal helps.
            reference = max(abs(reference), 1e-9)
        score = quality_bps(result, key, reference=reference)
        body = report(result, reference=reference)
        plot = plot_values(result, title=f"dataset {self.dataset_id}, {key}")
        return score, body, plot

    def evaluate(self, proposal: ProposalInfo) -> PostedEvaluation:
        """Value a proposal and commit to its score (revealed later by ``reveal_due``)."""
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
        sealed = self.market.commit_evaluation(proposal.id, score, raw)
        flags = tuple(f"{f['kind']}: {f['reason']}" for f in ours["flags"])
        return PostedEvaluation(int(proposal.id), score, sealed.report_cid, flags, doc)

    def run_once(self) -> list[PostedEvaluation]:
        """Reveal what is due, then commit to scores for proposals in their commit phase."""
        self.reveal_due()
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


def _flat(x: NDArray[Any]) -> NDArray[Any]:
    return x.reshape(len(x), -1)
