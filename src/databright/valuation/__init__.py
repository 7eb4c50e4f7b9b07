"""Valuation: how much each proposal improves a model, and whether it looks wrong.

Methods are built from a :class:`Utility` (model + scorer + validation data); ``fit(data)``
returns the method, whose ``result`` is an immutable :class:`ValuationResult` with values and
standard errors per example and per proposal, and :class:`Flag` s with reasons.

* :class:`KNNShapley` - exact KNN-Shapley, vectorised (instant feedback);
* :class:`DataOOB` - out-of-bag accuracy of a bagged ensemble;
* :class:`TMCShapley`, :class:`MSRBanzhaf` - Shapley / Banzhaf values with proposals as
  players (payouts);
* :class:`LOOGain` - fine-tune the best checkpoint with and without a proposal.

The sampling methods stop on a composable criterion (:class:`MaxSamples`, :class:`MinSamples`,
:class:`MaxTime`, :class:`StandardErrorBelow`, joined with ``|`` and ``&``; see
:mod:`databright.valuation.stopping`).

**Copies do not pay.** Before valuing, every method drops examples that copy an earlier
example (exactly, or within a small distance: see :mod:`databright.valuation.dedup`; a
method's :class:`CopyPolicy` says whether and how near) and values them at zero, so a copied proposal plus its original are worth what the original is
worth alone (ratio 1.0, against 1.93 for naive KNN-Shapley); copies are flagged with the
proposal they copy.

:func:`report` and :func:`plot_values` give what the evaluator stores; :func:`quality_bps`
maps a proposal's value to basis points. The evaluator's score is :func:`reward`'s: example by
example (copies of anything earlier, found by :func:`match_copies` against a fixed
:class:`CopyReference`, are worth zero; examples whose trusted neighbours contradict their
label count against the batch), with a premium for early data (see
:mod:`databright.valuation.reward`).
"""

from databright.ml import TorchClassifier  # re-exported: models for a Utility come from ml
from databright.valuation.base import Valuation
from databright.valuation.data import ProposalKey, ValuationData
from databright.valuation.dedup import (
    Copies,
    CopyPolicy,
    CopyReference,
    Matches,
    find_copies,
    match_copies,
)
from databright.valuation.flags import FlagPolicy, detect_flags
from databright.valuation.games import Game, proposal_game
from databright.valuation.knn import KNNShapley, class_weights, knn_shapley_values
from databright.valuation.loo import LOOGain, fine_tune
from databright.valuation.oob import DataOOB
from databright.valuation.report import BPS_SCALE, plot_values, quality_bps, report
from databright.valuation.result import Flag, FlagKind, ValuationResult
from databright.valuation.reward import ExampleVerdict, Reward, RewardPolicy, reward
from databright.valuation.semivalues import MSRBanzhaf, TMCShapley
from databright.valuation.stopping import (
    MaxSamples,
    MaxTime,
    MinSamples,
    Progress,
    StandardErrorBelow,
    StoppingCriterion,
    Verdict,
)
from databright.valuation.utility import Scorer, Utility

__all__ = [
    "BPS_SCALE",
    "Copies",
    "CopyPolicy",
    "CopyReference",
    "DataOOB",
    "ExampleVerdict",
    "Flag",
    "FlagKind",
    "FlagPolicy",
    "Game",
    "KNNShapley",
    "LOOGain",
    "MSRBanzhaf",
    "Matches",
    "MaxSamples",
    "MaxTime",
    "MinSamples",
    "Progress",
    "ProposalKey",
    "Reward",
    "RewardPolicy",
    "Scorer",
    "StandardErrorBelow",
    "StoppingCriterion",
    "TMCShapley",
    "TorchClassifier",
    "Utility",
    "Valuation",
    "ValuationData",
    "ValuationResult",
    "Verdict",
    "class_weights",
    "detect_flags",
    "find_copies",
    "fine_tune",
    "knn_shapley_values",
    "match_copies",
    "plot_values",
    "proposal_game",
    "quality_bps",
    "report",
    "reward",
]
