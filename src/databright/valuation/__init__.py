"""Valuation: how much each proposal improves a model, and whether it looks wrong.

Methods are built from a :class:`Utility` (model + scorer + validation data); ``fit(data)``
returns the method, whose ``result`` is an immutable :class:`ValuationResult` with values and
standard errors per example and per proposal, and :class:`Flag` s with reasons.

* :class:`KNNShapley` - exact KNN-Shapley, vectorised (instant feedback);
* :class:`DataOOB` - out-of-bag accuracy of a bagged ensemble;
* :class:`TMCShapley`, :class:`MSRBanzhaf` - Shapley / Banzhaf values with proposals as
  players (payouts);
* :class:`LOOGain` - fine-tune the best checkpoint with and without a proposal.

**Copies do not pay.** Before valuing, every method drops examples that copy an earlier
example (exactly, or within a small distance: see :mod:`databright.valuation.dedup`) and
values them at zero, so a copied proposal plus its original are worth what the original is
worth alone (ratio 1.0, against 1.93 for naive KNN-Shapley); copies are flagged with the
proposal they copy.

:func:`report` and :func:`plot_values` give what the evaluator stores; :func:`quality_bps`
maps a proposal's value to the basis points the contract mints shares by.
"""

from databright.valuation.base import Valuation
from databright.valuation.data import ProposalKey, ValuationData
from databright.valuation.dedup import Copies, find_copies
from databright.valuation.flags import FlagPolicy, detect_flags
from databright.valuation.knn import KNNShapley, knn_shapley_values
from databright.valuation.loo import LOOGain, fine_tune
from databright.valuation.oob import DataOOB
from databright.valuation.report import BPS_SCALE, plot_values, quality_bps, report
from databright.valuation.result import Flag, FlagKind, ValuationResult
from databright.valuation.semivalues import MSRBanzhaf, TMCShapley
from databright.valuation.utility import Game, Scorer, TorchClassifier, Utility, proposal_game

__all__ = [
    "BPS_SCALE",
    "Copies",
    "DataOOB",
    "Flag",
    "FlagKind",
    "FlagPolicy",
    "Game",
    "KNNShapley",
    "LOOGain",
    "MSRBanzhaf",
    "ProposalKey",
    "Scorer",
    "TMCShapley",
    "TorchClassifier",
    "Utility",
    "Valuation",
    "ValuationData",
    "ValuationResult",
    "detect_flags",
    "find_copies",
    "fine_tune",
    "knn_shapley_values",
    "plot_values",
    "proposal_game",
    "quality_bps",
    "report",
]
