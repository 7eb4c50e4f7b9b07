"""The data market as a Python API (chain + storage; no I/O of its own beyond them)."""

from databright.market.access import DataAccess
from databright.market.market import (
    SHARE_UNIT,
    STATUS_NAMES,
    DatasetInfo,
    Evaluation,
    Governance,
    Market,
    ProposalInfo,
    RegistryEntry,
    Shareholder,
)

__all__ = [
    "SHARE_UNIT",
    "STATUS_NAMES",
    "DataAccess",
    "DatasetInfo",
    "Evaluation",
    "Governance",
    "Market",
    "ProposalInfo",
    "RegistryEntry",
    "Shareholder",
]
