"""The model market: models trained on the market's datasets, benchmarked, paid per prediction.

:mod:`.market` is the SDK over the ``ModelMarket`` contract (terms, training fees, registry,
benchmarks, escrow and settlement); :mod:`.receipts` and :mod:`.serving` the off-chain half of
paid predictions (signed cumulative receipts, checked before every answer); :mod:`.sale` the
fair sale of a checkpoint's weights (``WeightSale``). Models are data, never code: specs,
checkpoints and training live in :mod:`databright.ml`.
"""

from databright.models.market import (
    BPS,
    BenchmarkReport,
    DatasetImpact,
    Escrow,
    ModelInfo,
    ModelMarket,
    Settlement,
    Split,
    Terms,
    TrainedModel,
    benchmark_commitment,
)
from databright.models.weights import SaleInfo, WeightListing, WeightMarket

__all__ = [
    "BPS",
    "BenchmarkReport",
    "DatasetImpact",
    "Escrow",
    "ModelInfo",
    "ModelMarket",
    "SaleInfo",
    "Settlement",
    "Split",
    "Terms",
    "TrainedModel",
    "WeightListing",
    "WeightMarket",
    "benchmark_commitment",
]
