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
``TMCShapley``); by default it is exact KNN-Shapley with ``k`` neighbours on class-balanced
validation points.

The evaluator is the authority on duplicates: each proposal is compared with the accepted data
and with every pending proposal that arrived before it (which count as earlier data, never as
accepted data for value), under a distance reference fixed by the validation set, so a copy of
anything earlier (exact, jittered, brightened, or a mix) is worth zero: ``proposal x N``
distances, not ``N x N``.

The score (``databright.valuation.reward``) is built example by example: copies are worth 0,
examples whose trusted neighbours contradict their label or that lie far from all trusted data
count against the batch, the rest are paid their value relative to the average accepted
example, times a premium for early data (diminishing returns). 10000 = as useful as the data
already in. The contract turns it into shares (capped by the dataset's quality cap; <= 0 mints
none). The full report (JSON: values, standard errors, flags
with reasons, and the CID of a PNG plot of the values) is stored by content address and its CID
revealed with the score, so voters can read why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.neighbors import KNeighborsClassifier

from databright.errors import InvalidArgument, NotPermitted, StorageError, ValuationError
from databright.market.market import Market, ProposalInfo, SealedScore
from databright.storage import Examples, read_proposal
from databright.valuation import (
    CopyPolicy,
    CopyReference,
    KNNShapley,
    RewardPolicy,
    Utility,
    Valuation,
    ValuationData,
    match_copies,
    plot_values,
    report,
    reward,
)

__all__ = [
    "SCORE_BY",
    "BestModel",
    "EvaluatorService",
    "MethodFactory",
    "PostedEvaluation",
    "default_method",
    "value_proposal",
]

BPS = 10_000
SCORE_BY = ("valuation", "finetune_gain")

BestModel = Callable[[], "tuple[Any, bytes, str] | None"]
"""Gives the dataset's best registered model as (``ModelSpec``, checkpoint bytes verified
against the chain, a reference such as ``"model 3 version 1"``), or None if it has none: the
model market's best checkpoint, handed in by whoever builds the service (``market`` does not
know the model market)."""

MethodFactory = Callable[[Utility], Valuation]
"""Builds the valuation method from the evaluator's utility: a method class such as
``TMCShapley``, or e.g. ``functools.partial(TMCShapley, stopping=MaxSamples(200))``. It may
also build its own utility from ``utility.x_val`` and ``utility.y_val`` (another model or
scorer)."""


def default_method(k: int) -> MethodFactory:
    """The evaluator's method unless told otherwise: exact KNN-Shapley with ``k`` neighbours
    on class-balanced validation points (every class counts alike, however many validation
    examples it has). It neither looks for copies nor flags: :func:`value_proposal` does both
    for the proposal, against the accepted data and earlier pending proposals
    (``proposal x N`` work)."""
    return partial(
        KNNShapley,
        k=k,
        class_balanced=True,
        copy_policy=CopyPolicy(enabled=False),
        flags=False,
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
        best_model: the dataset's best registered model (see :data:`BestModel`); when given,
            every report also holds the fine-tuning gain of that model with the proposal.
        score_by: ``"valuation"`` (the default: the valuation method's reward) or
            ``"finetune_gain"``: the score is the gain in accuracy times ``finetune_scale``
            in basis points (the default 100 makes one point of accuracy gained weigh like
            data as useful as the average already accepted).
    """

    def __init__(
        self,
        market: Market,
        dataset_id: int,
        validation: Examples | str | Path,
        k: int = 5,
        method: MethodFactory | None = None,
        best_model: BestModel | None = None,
        score_by: str = "valuation",
        finetune_scale: float = 100.0,
    ) -> None:
        if score_by not in SCORE_BY:
            raise InvalidArgument(
                f"score_by must be one of {', '.join(SCORE_BY)}, not {score_by!r}"
            )
        if score_by == "finetune_gain" and best_model is None:
            raise InvalidArgument(
                "scoring by fine-tuning gain needs the dataset's best registered model; "
                "give best_model (the model market's best checkpoint)"
            )
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
                "its initiator can grant the evaluator role with `databright dataset "
                f"grant-evaluator {dataset_id} {market.address}`"
            )
        if not isinstance(validation, Examples):
            validation = read_proposal(validation, market.schema(dataset_id))
        self.validation = validation
        self.k = k
        self.method: MethodFactory = default_method(k) if method is None else method
        self.best_model = best_model
        self.score_by = score_by
        self.finetune_scale = finetune_scale
        #: Proposals left unscored by the last rounds, and why (their data could not be had).
        self.skipped: dict[int, str] = {}

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
        return self.market.gateway.block_timestamp()

    def earlier_pending(self, proposal: ProposalInfo) -> list[ProposalInfo]:
        """Pending proposals of the dataset that arrived before ``proposal``, in arrival order
        (evaluated or not): earlier data for copy detection, not accepted data for value."""
        return sorted(
            (
                p
                for p in self.market.proposals(self.dataset_id, status="pending")
                if p.sequence < proposal.sequence
            ),
            key=lambda p: p.sequence,
        )

    def value(self, proposal: ProposalInfo) -> tuple[int, dict[str, Any], bytes]:
        """Score, report and plot of one proposal against the accepted data and the pending
        proposals that arrived before it.

        The proposal's own data must be fetched (a :class:`StorageError` otherwise, which
        :meth:`run_once` reports as that proposal's problem). Accepted or earlier data that no
        source delivers is left out and listed in the report under ``unavailable``.
        """
        new = self.market.load_proposal_examples(proposal.id)
        accepted, origin, missing = self.market.download_available(self.dataset_id)
        unavailable = [str(exc) for exc in missing]
        earlier = []
        for p in self.earlier_pending(proposal):
            try:
                ex = self.market.load_proposal_examples(p.id)
            except StorageError as exc:
                unavailable.append(f"pending proposal {p.sequence}: {exc}")
                continue
            earlier.append((_flat(ex.X), ex.y, f"proposal-{p.sequence}"))
        utility = Utility(
            KNeighborsClassifier(n_neighbors=self.k),
            _flat(self.validation.X),
            self.validation.y,
        )
        score, body, plot = value_proposal(
            self.method,
            utility,
            (_flat(accepted.X), accepted.y, origin),
            (_flat(new.X), new.y),
            key=f"proposal-{proposal.sequence}",
            title=f"dataset {self.dataset_id}, proposal-{proposal.sequence}",
            earlier=earlier,
        )
        body["unavailable"] = unavailable
        gain = self.finetune(new)
        if gain is not None:
            body["finetune"] = gain
            if self.score_by == "finetune_gain":
                body["score_by"] = "finetune_gain"
                score = round(gain["gain"] * BPS * self.finetune_scale)
        return score, body, plot

    def finetune(self, new: Examples) -> dict[str, Any] | None:
        """The seed paper's valuation (its Figure 3): the accuracy the dataset's best
        registered model gains on the validation set when fine-tuned with the proposal's
        examples; None when no best model is known."""
        best = self.best_model() if self.best_model is not None else None
        if best is None:
            return None
        from databright.ml.train import finetune_gain  # torch only when it is used

        spec, checkpoint, ref = best
        classes = self.market.schema(self.dataset_id).class_indices
        gain = finetune_gain(
            spec,
            checkpoint,
            np.asarray(new.X, np.float32),
            classes(new.y),
            np.asarray(self.validation.X, np.float32),
            classes(self.validation.y),
        )
        return {"model": ref, "gain": float(gain), "scale": self.finetune_scale}

    def evaluate(self, proposal: ProposalInfo) -> PostedEvaluation:
        """Value a proposal and commit to its score (revealed later by ``reveal_due``)."""
        score, body, plot = self.value(proposal)
        plot_cid = Market.content_address(plot)  # withheld with the report until the reveal
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
        sealed = self.market.commit_evaluation(proposal.id, score, raw, attachments=(plot,))
        flags = tuple(f"{f['kind']}: {f['reason']}" for f in ours["flags"])
        return PostedEvaluation(int(proposal.id), score, sealed.report_cid, flags, doc)

    def run_once(self) -> list[PostedEvaluation]:
        """Reveal what is due, then commit to scores for proposals in their commit phase.

        A proposal whose data no source delivers is skipped, and why is kept in
        :attr:`skipped` (by proposal id): one withheld blob never stops the others.
        """
        self.reveal_due()
        posted = []
        for p in self.pending():
            try:
                posted.append(self.evaluate(p))
            except StorageError as exc:
                self.skipped[int(p.id)] = str(exc)
            else:
                self.skipped.pop(int(p.id), None)
        return posted

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


EarlierProposal = tuple[NDArray[Any], NDArray[Any]] | tuple[NDArray[Any], NDArray[Any], str]
"""An earlier pending proposal: features, labels and optionally its key (for the report)."""


def value_proposal(
    method: MethodFactory,
    utility: Utility,
    accepted: tuple[NDArray[Any], NDArray[Any], NDArray[Any]],
    new: tuple[NDArray[Any], NDArray[Any]],
    *,
    key: str,
    title: str,
    earlier: Sequence[EarlierProposal] = (),
    policy: RewardPolicy | None = None,
) -> tuple[int, dict[str, Any], bytes]:
    """Score, report and plot of ``new`` examples against the ``accepted`` ones (features,
    labels, registry entry of each): :meth:`EvaluatorService.value` once the data are in hand,
    with no chain involved (``benchmarks/evaluator_scaling.py`` and
    ``benchmarks/reward_soundness.py`` drive this).

    ``earlier`` lists the pending proposals that arrived before this one, in arrival order:
    they count as earlier data for copy detection (a copy of anything earlier earns nothing)
    but not as accepted data for value. Copies are found here, against a reference fixed by
    the validation set (:func:`~databright.valuation.match_copies`), and left out before the
    method values the rest; the score is :func:`~databright.valuation.reward`'s, and the
    report's ``reward`` section says which examples were paid and why.
    """
    policy = policy or RewardPolicy()
    acc_x, acc_y, origin = accepted
    acc_x = np.asarray(acc_x, np.float64)
    acc_y = np.asarray(acc_y)
    origin = np.asarray(origin)
    new_x = np.asarray(new[0], np.float64)
    new_y = np.asarray(new[1])
    x_val = np.asarray(utility.x_val, np.float64)
    owner: list[str] = [f"registry-{i}" for i in origin.tolist()]
    old_x, old_y = acc_x, acc_y
    if earlier:
        xs, ys = [acc_x], [acc_y]
        for j, e in enumerate(earlier):
            ex, ey = np.asarray(e[0], np.float64).reshape(len(e[1]), -1), np.asarray(e[1])
            xs.append(ex)
            ys.append(ey)
            owner += [str(e[2]) if len(e) > 2 else f"pending-{j}"] * len(ey)  # type: ignore[misc]
        old_x, old_y = np.concatenate(xs), np.concatenate(ys)
    owner += [key] * len(new_y)
    copy_ref = CopyReference.of(x_val)
    matches = match_copies(new_x, new_y, old_x, old_y, copy_ref, near_tol=policy.near_tol)
    kept = ~matches.mask
    groups = [f"registry-{i}" for i in origin.tolist()] + [key] * int(kept.sum())
    X = np.concatenate([acc_x, new_x[kept]])
    y = np.concatenate([acc_y, new_y[kept]])
    arrival = list(dict.fromkeys(groups[: len(acc_y)]))
    if kept.any():
        arrival.append(key)
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
    verdict = reward(
        new_x,
        new_y,
        key=key,
        matches=matches,
        owner=owner,
        values=np.asarray(result.values[len(acc_y) :]),
        reference=reference,
        x_val=x_val,
        y_val=np.asarray(utility.y_val),
        accepted_x=acc_x,
        accepted_y=acc_y,
        copy_reference=copy_ref,
        n_initial=int(np.count_nonzero(origin == 0)),
        policy=policy,
    )
    score = verdict.score_bps
    body = report(result, reference=reference)
    ours = next((p for p in body["proposals"] if p["proposal"] == key), None)
    if ours is None:  # every example a copy: not in the game
        ours = {"proposal": key, "value": 0.0, "stderr": 0.0, "flags": []}
        body["proposals"].append(ours)
    # the evaluator's own judgement of the proposal replaces the method's generic flags
    ours.update(
        examples=len(new_y),
        copies=int(matches.mask.sum()),
        weight_bps=score,
        flags=[f.to_dict() for f in verdict.flags],
    )
    for kind in body["flag_counts"]:
        body["flag_counts"][kind] = sum(
            f["kind"] == kind for p in body["proposals"] for f in p["flags"]
        )
    body["reward"] = verdict.to_dict()
    plot = plot_values(result, title=title)
    return score, body, plot


def _flat(x: NDArray[Any]) -> NDArray[Any]:
    return x.reshape(len(x), -1)
