"""Buying a model's weights outright: the SDK over ``WeightSale`` for one account.

``WeightMarket.over(model_market)`` binds the ``WeightSale`` contract of the same deployment.
The protocol (FairSwap) is stated in the contract's NatSpec header and its off-chain arithmetic
in :mod:`databright.models.sale`; this module is what each party runs, in order:

Seller (the model's owner)           Buyer
--------------------------           -----
``publish_manifest`` -> CID   ->     (learns the manifest CID off-chain)
``list``                             ``buy``: checks the manifest against the registered
                                     weights root *before* paying
``deliver`` -> cipher CID     ->     ``check_delivery``: the ciphertext has the listed chunk
                                     count and the committed root; then ``accept``, or ``cancel``
``reveal_key``                       ``receive``: decrypts; a wrong chunk is complained about
                                     on-chain (refund), the right bytes are returned and stored
``settle`` (after the window) ...    ... or the buyer's early ``settle``
``withdraw``                         ``refund`` (no key in time), ``withdraw``

Why the local files. The seller's key is written owner-only (mode 0600, atomically) under
``<data_dir>/weight-sales/<chain id>/<contract>/`` *before* the commitment is sent: a seller that
crashed after delivering but before revealing could otherwise never reveal, and lose the sale.
A retried ``deliver`` reuses the kept key, so it commits to the same ciphertext. The buyer keeps
the manifest CID (``buy``) and the checked ciphertext's CID (``check_delivery``) there too,
because neither is on-chain and ``receive`` needs both to build a complaint; ``accept`` refuses
a delivery that was not checked, since acceptance is what gives up the right to cancel.

The ciphertext travels through the content-addressed blob store (served with
``databright store serve``): its CID is the capability. The key is public once revealed, so
whoever learns the cipher CID can decrypt too; hand it to the buyer only.
"""

from __future__ import annotations

import builtins
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from databright.atomic import atomic_write
from databright.chain.clients import SaleStatus, WeightSaleClient
from databright.errors import (
    CheckpointMismatch,
    DamagedRecord,
    InsufficientFunds,
    InvalidArgument,
    NotFound,
    NotPermitted,
)
from databright.market import Market
from databright.models.market import ModelMarket
from databright.models.sale import (
    cipher_root,
    decrypt,
    delivery_matches,
    encrypt,
    find_complaint,
    key_commitment,
    leaves,
    leaves_from_manifest,
    merkle_root,
    weights_manifest,
    weights_root,
)
from databright.storage import cid_to_digest
from databright.types import Address, Wei

__all__ = ["SaleInfo", "WeightListing", "WeightMarket"]


@dataclass(frozen=True)
class WeightListing:
    """A version's offer: its seller (``None`` once unlisted), price and weights layout."""

    model_id: int
    version: int
    seller: Address | None
    price_wei: int
    tree_root: bytes
    n_chunks: int
    byte_length: int

    @property
    def listed(self) -> bool:
        return self.seller is not None


@dataclass(frozen=True)
class SaleInfo:
    """One sale as the chain holds it; ``status`` is the contract's state in words."""

    id: int
    buyer: Address
    seller: Address
    model_id: int
    version: int
    price_wei: int
    status: str  # paid, delivered, accepted, revealed, settled, refunded
    deadline: int  # end of the current phase (0 once closed)
    cipher_root: bytes
    key_commitment: bytes
    key: bytes  # zero until revealed

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "buyer": self.buyer,
            "seller": self.seller,
            "model_id": self.model_id,
            "version": self.version,
            "price_wei": self.price_wei,
            "status": self.status,
            "deadline": self.deadline,
            "cipher_root": "0x" + self.cipher_root.hex(),
            "key_commitment": "0x" + self.key_commitment.hex(),
            "key": "0x" + self.key.hex(),
        }


class WeightMarket:
    """The weight sale's SDK for one account (see the module docstring)."""

    def __init__(self, models: ModelMarket, contract: WeightSaleClient) -> None:
        self.models = models
        self.contract = contract

    @classmethod
    def over(cls, model_market: ModelMarket) -> WeightMarket:
        """The weight sale of the deployment a model-market client uses."""
        market = model_market.market
        contract = market.bind_recorded("WeightSale", WeightSaleClient, "weight sale")
        return cls(model_market, contract)

    def as_account(self, account: LocalAccount) -> WeightMarket:
        models = self.models.as_account(account)
        return WeightMarket(
            models, models.market.gateway.bind(WeightSaleClient, self.contract.address)
        )

    @property
    def market(self) -> Market:
        return self.models.market

    @property
    def address(self) -> Address:
        return self.market.address

    # --- reading ---------------------------------------------------------------------------

    def sale_count(self) -> int:
        return int(self.contract.sale_count())

    def sale(self, sale_id: int) -> SaleInfo:
        """A sale by id; an id that was never issued is refused."""
        if not 1 <= int(sale_id) <= self.sale_count():
            raise NotFound(
                f"sale {sale_id} does not exist on this weight sale; buy with `databright model "
                "buy` to open one"
            )
        s = self.contract.sale(int(sale_id))
        return SaleInfo(
            id=int(sale_id),
            buyer=Address(to_checksum_address(s.buyer)),
            seller=Address(to_checksum_address(s.seller)),
            model_id=int(s.model_id),
            version=int(s.version),
            price_wei=int(s.price),
            status=SaleStatus(int(s.status)).name.lower(),
            deadline=int(s.deadline),
            cipher_root=bytes(s.cipher_root),
            key_commitment=bytes(s.key_commitment),
            key=bytes(s.key),
        )

    def listing(self, model_id: int, version: int) -> WeightListing:
        """A version's listing (``seller`` None when not listed; the layout stays once listed)."""
        self._check_version(model_id, version)
        entry = self.contract.listing(int(model_id), int(version))
        seller = None if int(entry.seller, 16) == 0 else Address(to_checksum_address(entry.seller))
        return WeightListing(
            int(model_id),
            int(version),
            seller,
            int(entry.price),
            bytes(entry.tree_root),
            int(entry.n_chunks),
            int(entry.byte_length),
        )

    def balance(self, account: str | None = None) -> Wei:
        """Wei credited to ``account`` (default: this one) by settled sales and refunds."""
        who = to_checksum_address(account) if account else self.address
        return Wei(int(self.contract.balance_of(who)))

    def _check_version(self, model_id: int, version: int) -> None:
        info = self.models.model(model_id)  # NotFound for an unknown model
        if not 1 <= int(version) <= info.versions:
            raise NotFound(
                f"model {model_id} has no version {version} (it has {info.versions}); see "
                f"`databright model show {model_id}`"
            )

    def _now(self) -> int:
        return self.market.gateway.block_timestamp()

    def _as(self, sale: SaleInfo, role: str) -> None:
        party = sale.buyer if role == "buyer" else sale.seller
        if party != self.address:
            raise NotPermitted(
                f"only the {role} of sale {sale.id} ({party}) may do this, not {self.address}; "
                "use that account"
            )

    def _status(self, sale: SaleInfo, allowed: tuple[str, ...], doing: str) -> None:
        if sale.status not in allowed:
            raise InvalidArgument(
                f"sale {sale.id} is {sale.status}, so it cannot {doing} (that needs a sale that "
                f"is {' or '.join(allowed)}); see `databright model sale {sale.id}`"
            )

    # --- local records -----------------------------------------------------------------------

    def _record_path(self, sale_id: int, role: str) -> Path:
        return (
            self.market.data_dir / "weight-sales" / str(self.market.gateway.chain_id)
            / self.contract.address.lower() / f"{int(sale_id)}.{role}.json"
        )  # fmt: skip

    def _read_record(self, sale_id: int, role: str) -> dict[str, Any] | None:
        path = self._record_path(sale_id, role)
        if not path.is_file():
            return None
        try:
            body = json.loads(path.read_text())
            if not isinstance(body, dict):
                raise TypeError("not a JSON object")
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise DamagedRecord(
                f"the {role} record {path} of sale {sale_id} is damaged ({exc}); restore it "
                "from a backup"
            ) from None
        return body

    def _write_record(self, sale_id: int, role: str, body: dict[str, Any]) -> None:
        atomic_write(self._record_path(sale_id, role), json.dumps(body, sort_keys=True), mode=0o600)

    # --- seller ------------------------------------------------------------------------------

    def publish_manifest(self, model_id: int, version: int) -> str:
        """Store the weights manifest of a version's checkpoint (every chunk's leaf) and return
        its CID: buyers need it to check the listing and, if cheated, to complain."""
        _, blob = self.models.checkpoint_of(model_id, version)  # verified against the chain
        return self.market.store.put(weights_manifest(blob))

    def list(self, model_id: int, version: int, price_wei: int) -> WeightListing:
        """Offer a benchmarked version's weights at ``price_wei`` (or change the price); the
        layout is computed from the checkpoint the chain registered."""
        info = self.models.model(model_id)
        self._check_version(model_id, version)
        if info.owner != self.address:
            raise NotPermitted(
                f"model {model_id} is owned by {info.owner}, not by {self.address}; only its "
                "owner may sell its weights"
            )
        if int(price_wei) <= 0:
            raise InvalidArgument(f"a weights price must be positive, not {price_wei} wei")
        if not self.models.contract.is_benchmarked(int(model_id), int(version)):
            raise InvalidArgument(
                f"version {version} of model {model_id} has no finalized benchmark yet; only "
                "benchmarked weights can be sold, so wait for its evaluators"
            )
        _, blob = self.models.checkpoint_of(model_id, version)
        leaf_list = leaves(blob)
        self.contract.list_weights(
            int(model_id),
            int(version),
            int(price_wei),
            merkle_root(leaf_list),
            len(leaf_list),
            len(blob),
        )
        return self.listing(model_id, version)

    def unlist(self, model_id: int, version: int) -> WeightListing:
        """Stop new sales of a version; sales under way go on."""
        listing = self.listing(model_id, version)
        if listing.seller != self.address:
            raise NotPermitted(
                f"version {version} of model {model_id} is not listed by {self.address}; only "
                "the seller who listed it may unlist it"
            )
        self.contract.unlist(int(model_id), int(version))
        return self.listing(model_id, version)

    def deliver(self, sale_id: int) -> str:
        """Encrypt the sold checkpoint under a fresh key, keep the key owner-only, store the
        ciphertext, commit to both on-chain, and return the ciphertext's CID for the buyer."""
        sale = self.sale(sale_id)
        self._as(sale, "seller")
        kept = self._read_record(sale_id, "seller")
        if sale.status == "delivered" and kept is not None:
            return str(kept["cipher_cid"])  # a retry of a delivery that went through
        self._status(sale, ("paid",), "be delivered")
        if self._now() > sale.deadline:
            raise InvalidArgument(
                f"the delivery window of sale {sale.id} closed at {sale.deadline}; the buyer "
                "may cancel it"
            )
        _, blob = self.models.checkpoint_of(sale.model_id, sale.version)
        # A kept key means an earlier attempt crashed or failed after writing it: reuse it so
        # that what might already be committed and what is sent now are the same.
        key = bytes.fromhex(kept["key"]) if kept is not None else secrets.token_bytes(32)
        cipher = encrypt(blob, key, sale.id)
        root = cipher_root(cipher)
        cipher_cid = Market.content_address(cipher)
        self._write_record(
            sale.id,
            "seller",
            {
                "sale_id": sale.id,
                "weight_sale": self.contract.address,
                "model_id": sale.model_id,
                "version": sale.version,
                "key": key.hex(),
                "cipher_cid": cipher_cid,
                "cipher_root": "0x" + root.hex(),
            },
        )
        self.market.store.put(cipher)
        self.contract.deliver(sale.id, root, key_commitment(key, sale.id))
        return cipher_cid

    def reveal_key(self, sale_id: int) -> SaleInfo:
        """Reveal the key of an accepted delivery (from the record ``deliver`` kept)."""
        sale = self.sale(sale_id)
        self._as(sale, "seller")
        self._status(sale, ("accepted",), "reveal its key")
        kept = self._read_record(sale_id, "seller")
        if kept is None:
            raise NotFound(
                f"no key for sale {sale_id} is kept in {self.market.data_dir}; reveal from the "
                "data dir that delivered it"
            )
        key = bytes.fromhex(str(kept["key"]))
        if key_commitment(key, sale.id) != sale.key_commitment:
            raise InvalidArgument(
                f"the key kept for sale {sale_id} does not open its on-chain commitment; reveal "
                "from the data dir that delivered it"
            )
        self.contract.reveal_key(sale.id, key)
        return self.sale(sale_id)

    def settle(self, sale_id: int) -> SaleInfo:
        """Credit the seller: anyone after the complaint window, the buyer at any time after
        the reveal (waiving its complaint)."""
        sale = self.sale(sale_id)
        self._status(sale, ("revealed",), "be settled")
        if sale.buyer != self.address and self._now() < sale.deadline:
            raise InvalidArgument(
                f"the buyer of sale {sale_id} may complain until {sale.deadline} (unix time); "
                "settle after that"
            )
        self.contract.settle(sale.id)
        return self.sale(sale_id)

    def withdraw(self) -> Wei:
        """Send this account's credited wei (proceeds and refunds) to it."""
        if self.balance() == 0:
            raise InvalidArgument(
                f"{self.address} has nothing to withdraw from weight sales; settle or refund a "
                "sale first"
            )
        receipt = self.contract.withdraw()
        return Wei(sum(int(e.args["amount"]) for e in receipt.events if e.name == "Withdrawn"))

    # --- buyer -------------------------------------------------------------------------------

    def _manifest_leaves(
        self, model_id: int, version: int, manifest_cid: str
    ) -> builtins.list[bytes]:
        root = bytes(self.models.contract.weights_root(int(model_id), int(version)))
        return leaves_from_manifest(self.market.store.get(manifest_cid), root)

    def buy(self, model_id: int, version: int, manifest_cid: str) -> int:
        """Buy a listed version's weights at its price; returns the sale id. The seller's
        manifest is checked against the registered weights root before anything is paid."""
        listing = self.listing(model_id, version)
        if not listing.listed:
            raise NotFound(
                f"version {version} of model {model_id} is not listed for sale; ask its owner to "
                "sell it with `databright model sell`"
            )
        if listing.seller == self.address:
            raise InvalidArgument(
                f"{self.address} lists these weights itself; buy from another account"
            )
        manifest = self.market.store.get(manifest_cid)
        leaves_from_manifest(
            manifest, bytes(self.models.contract.weights_root(int(model_id), int(version)))
        )
        balance = self.market.gateway.balance()
        if balance < listing.price_wei:
            raise InsufficientFunds(
                f"{self.address} holds {balance} wei but the weights cost {listing.price_wei} wei "
                "(plus gas); fund the account first"
            )
        receipt = self.contract.buy(int(model_id), int(version), value=listing.price_wei)
        sale_id = int(receipt.event("Bought").args["sale_id"])
        self.market.store.put(manifest)  # kept: a complaint needs its leaves
        self._write_record(
            sale_id,
            "buyer",
            {"sale_id": sale_id, "weight_sale": self.contract.address, "model_id": int(model_id),
             "version": int(version), "manifest_cid": manifest_cid, "cipher_cid": None},
        )  # fmt: skip
        return sale_id

    def _buyer_record(self, sale_id: int) -> dict[str, Any]:
        kept = self._read_record(sale_id, "buyer")
        if kept is None:
            raise NotFound(
                f"sale {sale_id} was not bought from {self.market.data_dir}; use the data dir "
                "that bought it"
            )
        return kept

    def check_delivery(self, sale_id: int, cipher_cid: str) -> bool:
        """Whether the ciphertext at ``cipher_cid`` is what the seller committed to (the listed
        chunk count, the delivered root); if it is, it is kept for ``accept`` and ``receive``."""
        sale = self.sale(sale_id)
        self._as(sale, "buyer")
        self._status(sale, ("delivered",), "have its delivery checked")
        record = self._buyer_record(sale_id)
        cipher = self.market.store.get(cipher_cid)
        n_chunks = self.listing(sale.model_id, sale.version).n_chunks
        if not delivery_matches(cipher, sale.cipher_root, n_chunks):
            return False
        self.market.store.put(cipher)
        self._write_record(sale_id, "buyer", {**record, "cipher_cid": cipher_cid})
        return True

    def accept(self, sale_id: int) -> SaleInfo:
        """Confirm holding the checked ciphertext; from now on the sale cannot be cancelled."""
        sale = self.sale(sale_id)
        self._as(sale, "buyer")
        self._status(sale, ("delivered",), "be accepted")
        if self._buyer_record(sale_id).get("cipher_cid") is None:
            raise InvalidArgument(
                f"the delivery of sale {sale_id} was not checked; check it first (accepting "
                "gives up the right to cancel)"
            )
        self.contract.accept(sale.id)
        return self.sale(sale_id)

    def cancel(self, sale_id: int) -> SaleInfo:
        """Refund a sale not yet accepted (no delivery, or one that does not match)."""
        sale = self.sale(sale_id)
        self._as(sale, "buyer")
        self._status(sale, ("paid", "delivered"), "be cancelled")
        self.contract.cancel(sale.id)
        return self.sale(sale_id)

    def refund(self, sale_id: int) -> SaleInfo:
        """Refund an accepted sale whose key was not revealed in time (anyone may call it)."""
        sale = self.sale(sale_id)
        self._status(sale, ("accepted",), "be refunded for a missing key")
        if self._now() <= sale.deadline:
            raise InvalidArgument(
                f"the seller of sale {sale_id} may reveal its key until {sale.deadline} (unix "
                "time); claim the refund after that"
            )
        self.contract.refund(sale.id)
        return self.sale(sale_id)

    def receive(self, sale_id: int) -> bytes:
        """The bought checkpoint's bytes, decrypted with the revealed key and checked chunk by
        chunk against the manifest and as a whole against the benchmarked CID; stored.

        A chunk that does not decrypt to the benchmarked chunk is proven on-chain (the price is
        credited back to the buyer) and :class:`CheckpointMismatch` says so."""
        sale = self.sale(sale_id)
        self._as(sale, "buyer")
        self._status(sale, ("revealed", "settled"), "be received")
        record = self._buyer_record(sale_id)
        if record.get("cipher_cid") is None:
            raise NotFound(
                f"no checked delivery of sale {sale_id} is kept in {self.market.data_dir}; "
                "receive in the data dir that accepted it"
            )
        cipher = self.market.store.get(str(record["cipher_cid"]))
        leaf_list = self._manifest_leaves(sale.model_id, sale.version, str(record["manifest_cid"]))
        complaint = find_complaint(cipher, sale.key, sale.id, leaf_list)
        if complaint is not None:
            if sale.status != "revealed" or self._now() > sale.deadline:
                raise CheckpointMismatch(
                    f"chunk {complaint.index} of sale {sale_id} does not decrypt to the "
                    "benchmarked weights, but the complaint window is over; the seller was paid"
                )
            self.contract.complain(*complaint.args(sale.id))
            raise CheckpointMismatch(
                f"the seller of sale {sale_id} delivered weights that are not the benchmarked "
                f"ones (chunk {complaint.index}); the complaint was upheld on-chain and the "
                f"price of {sale.price_wei} wei is yours to withdraw"
            )
        listing = self.listing(sale.model_id, sale.version)
        plain = decrypt(cipher, sale.key, sale.id, listing.byte_length)
        version = self.models.contract.version(sale.model_id, sale.version)
        benchmarked = cid_to_digest(Market.content_address(plain)) == bytes(
            version.checkpoint_digest
        )
        if not benchmarked or weights_root(plain) != bytes(version.weights_root):
            raise CheckpointMismatch(
                f"the weights of sale {sale_id} match the manifest but not the checkpoint that "
                f"was benchmarked for model {sale.model_id} version {sale.version}; its owner "
                "registered inconsistent data"
            )
        self.market.store.put(plain)
        return plain
