"""What every contract of a deployment beyond the data market shares in its SDK: being bound to
the contract a data-market client's deployment records, for one account.

:class:`BoundContract` is the base of :class:`~databright.market.access.DataAccess`,
:class:`~databright.models.ModelMarket` and :class:`~databright.compute.ComputeMarket`: each
names the deployment's key for its contract, its client class and how an error calls it, and
gets ``connect``, ``over``, ``as_account`` and ``address`` from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Generic, Self, TypeVar

from eth_account.signers.local import LocalAccount

from databright.chain.contract import ContractClient
from databright.market.market import Market
from databright.settings import DEFAULT_HOME
from databright.types import Address

__all__ = ["BoundContract"]

C = TypeVar("C", bound=ContractClient)


class BoundContract(Generic[C]):
    """One contract of the deployment, for the account of :attr:`market`."""

    DEPLOYMENT_KEY: ClassVar[str]
    """The contract's name in the deployment record (``"ModelMarket"``, ...)."""
    CLIENT: ClassVar[type[ContractClient]]
    """The contract's client class."""
    WHAT: ClassVar[str]
    """What a sentence calls it (``"model market"``, ...)."""

    def __init__(self, market: Market, contract: C) -> None:
        self.market = market
        self.contract = contract

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        account: LocalAccount | str | None = None,
        data_dir: str | Path = DEFAULT_HOME,
        sources: Sequence[str] = (),
    ) -> Self:
        """Connect to the node at ``rpc_url`` with the deployment recorded in ``data_dir``."""
        return cls.over(Market.connect(rpc_url, account, data_dir, sources))

    @classmethod
    def over(cls, market: Market) -> Self:
        """The contract of the deployment a data-market client uses."""
        contract = market.bind_recorded(cls.DEPLOYMENT_KEY, cls.CLIENT, cls.WHAT)
        return cls(market, contract)  # type: ignore[arg-type]

    def as_account(self, account: LocalAccount) -> Self:
        """The same contract for another account."""
        market = self.market.as_account(account)
        return type(self)(market, market.gateway.bind(type(self.contract), self.contract.address))

    @property
    def address(self) -> Address:
        return self.market.address
