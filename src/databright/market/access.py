"""Paid access to a dataset's curated data, as a Python API over the ``DataAccess`` contract.

``DataAccess.over(market)`` binds the contract recorded in the market client's deployment (as
the model market does). A dataset's initiator sets an access price (:meth:`DataAccess.set_price`;
0, the default, keeps the data public); anyone buys access for an account by paying exactly that
price to the dataset's shareholders (:meth:`DataAccess.buy`). :meth:`DataAccess.has_access` is
what the platform server's gatekeeper asks before it serves a priced dataset's data: true for a
free dataset, for buyers, and for those who curate it now (its initiator, its evaluators, its
shareholders). Everything is read from the chain at call time; nothing is cached here, since a
price or a share balance may change at any block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from eth_utils import is_address, to_checksum_address

from databright.chain.clients import DataAccessClient, DataAccessConstants
from databright.chain.gateway import Receipt
from databright.errors import InsufficientFunds, InvalidArgument, NotPermitted
from databright.market.bound import BoundContract
from databright.market.market import Market
from databright.types import Address, Wei

__all__ = ["MAX_PRICE", "AccessReason", "AccessStatus", "DataAccess", "proposed_data_digests"]

#: The largest access price the contract accepts, in wei.
MAX_PRICE = DataAccessConstants.MAX_PRICE

#: Why an account has access (``none``: it has not).
AccessReason = Literal["free", "bought", "initiator", "evaluator", "shareholder", "none"]


def proposed_data_digests(market: Market, dataset_id: int) -> set[bytes]:
    """The sha2-256 digests (as the chain keeps them) of every data blob ever proposed to a
    dataset, its initial data (proposal 0) and accepted entries included, read from the data
    market's ``ProposalCreated`` events: they outlive a settled proposal's cleared record."""
    events = market.contract.events("ProposalCreated", dataset_id=int(dataset_id))
    return {bytes(e.args["data_cid_digest"]) for e in events}


@dataclass(frozen=True)
class AccessStatus:
    """One account's access to one dataset, as the chain says it is now."""

    dataset_id: int
    account: Address
    price_wei: Wei  # 0: free and public
    has_access: bool
    reason: AccessReason
    buyers: int
    revenue_wei: Wei  # everything ever paid for access, all of it to the shareholders


class DataAccess(BoundContract[DataAccessClient]):
    """The access register's SDK for one account (see the module docstring)."""

    DEPLOYMENT_KEY = "DataAccess"
    CLIENT = DataAccessClient
    WHAT = "data access"

    # --- prices ----------------------------------------------------------------------

    def price(self, dataset_id: int) -> Wei:
        """The dataset's access price in wei (0: free and public)."""
        self.market._check_dataset(dataset_id)
        return Wei(self.contract.price(int(dataset_id)))

    def set_price(self, dataset_id: int, price_wei: int) -> Receipt:
        """Set the dataset's access price (its initiator only); 0 makes the data public again.
        Access already bought stays."""
        self.market._check_dataset(dataset_id)
        if not 0 <= int(price_wei) <= MAX_PRICE:
            raise InvalidArgument(
                f"an access price must be between 0 and {MAX_PRICE} wei, not {price_wei}"
            )
        initiator = to_checksum_address(self.market.contract.dataset(int(dataset_id)).initiator)
        if initiator != self.address:
            raise NotPermitted(
                f"only dataset {dataset_id}'s initiator ({initiator}) sets its access price, "
                f"not {self.address}"
            )
        return self.contract.set_price(int(dataset_id), int(price_wei))

    # --- buying ----------------------------------------------------------------------

    def buy(self, dataset_id: int, account: str | None = None) -> Wei:
        """Buy access to a dataset for ``account`` (this account by default) at its price now,
        paid to the dataset's shareholders; returns what was paid."""
        who = self._account(account)
        price = self.price(dataset_id)
        if price == 0:
            raise InvalidArgument(
                f"dataset {dataset_id} is free: its data is public and there is no access to buy"
            )
        if self.contract.bought(int(dataset_id), who):
            raise InvalidArgument(
                f"{who} already bought access to dataset {dataset_id}; bought access never ends"
            )
        balance = self.market.gateway.balance()
        if balance < price:
            raise InsufficientFunds(
                f"{self.address} holds {balance} wei but access to dataset {dataset_id} costs "
                f"{price} wei (plus gas); fund the account first"
            )
        # Exactly the price just read: if the initiator changes it first, the contract refuses
        # the purchase instead of charging another amount.
        self.contract.buy(int(dataset_id), who, value=int(price))
        return price

    # --- who has access --------------------------------------------------------------

    def has_access(self, dataset_id: int, account: str | None = None) -> bool:
        """Whether ``account`` (this account by default) may download the dataset's data now:
        the dataset is free, or access was bought for it, or it is the dataset's initiator, one
        of its evaluators or a shareholder now."""
        who = self._account(account)
        self.market._check_dataset(dataset_id)
        return bool(self.contract.has_access(int(dataset_id), who))

    def status(self, dataset_id: int, account: str | None = None) -> AccessStatus:
        """The price, whether ``account`` has access and why, and what access has earned."""
        who = self._account(account)
        d = int(dataset_id)
        self.market._check_dataset(d)
        price, has, bought, buyers, revenue = self.contract.call_many(
            [
                ("price", (d,)),
                ("has_access", (d, who)),
                ("bought", (d, who)),
                ("buyers", (d,)),
                ("revenue", (d,)),
            ]
        )
        return AccessStatus(
            dataset_id=d,
            account=who,
            price_wei=Wei(int(price)),
            has_access=bool(has),
            reason=self._reason(d, who, int(price), bool(has), bool(bought)),
            buyers=int(buyers),
            revenue_wei=Wei(int(revenue)),
        )

    def _reason(
        self, dataset_id: int, who: Address, price: int, has: bool, bought: bool
    ) -> AccessReason:
        # The contract answers yes or no; the reason is read from the same sources, in its order.
        if not has:
            return "none"
        if price == 0:
            return "free"
        if bought:
            return "bought"
        if to_checksum_address(self.market.contract.dataset(dataset_id).initiator) == who:
            return "initiator"
        if self.market.contract.is_evaluator(dataset_id, who):
            return "evaluator"
        return "shareholder"

    # --- what the gatekeeper withholds -------------------------------------------------

    def priced_datasets(self) -> dict[int, Wei]:
        """Every dataset whose access price is above 0 now, with its price (datasets ever
        priced are found from the price events; their prices are read now)."""
        ids = sorted({int(e.args["dataset_id"]) for e in self.contract.events("AccessPriceSet")})
        if not ids:
            return {}
        prices = self.contract.call_many([("price", (i,)) for i in ids])
        return {i: Wei(int(p)) for i, p in zip(ids, prices, strict=True) if int(p) > 0}

    def data_digests(self, dataset_id: int) -> set[bytes]:
        """The sha2-256 digests (as the chain keeps them) of every data blob ever proposed to
        the dataset, the initial data and the accepted entries included: the blobs a priced
        dataset keeps off the public gateway."""
        self.market._check_dataset(dataset_id)
        return proposed_data_digests(self.market, dataset_id)

    def _account(self, account: str | None) -> Address:
        if account is None:
            return self.address
        if not is_address(account):
            raise InvalidArgument(f"{account!r} is not an Ethereum address")
        return Address(to_checksum_address(account))
