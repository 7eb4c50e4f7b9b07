"""Signed cumulative receipts: paying for predictions without a transaction per prediction.

A user deposits wei into the ModelMarket's escrow for one model. Every prediction request then
carries a **receipt**, an EIP-712 signature over ``Receipt(model_id, user, total, nonce)`` where
``total`` is everything the user owes that model so far and ``nonce`` counts the receipts. Since
receipts are cumulative, the latest one supersedes all earlier ones: the serving node keeps only
it, and settles it on-chain in one transaction for any number of predictions (the contract pays
``total - settled``, accepts only ``nonce > settled nonce`` and ``total <= deposited``).

Why nobody can be cheated by more than one request:

- the node can never take more than the user signed: the contract pays the total of one signed
  receipt, never a sum of receipts, and never beyond the deposit; an old receipt cannot be
  settled again (its nonce is spent);
- the user cannot get predictions without paying: the node answers only after
  :meth:`ReceiptBook.accept` has stored a receipt whose total grew by at least the request's
  price, within the deposit, with no exit of the escrow due before the node can settle;
- what is left at risk is one request: a node may keep a receipt and not answer, a user may
  withdraw before a node that ignores the exit warning settles.

The user side is :class:`Wallet` (it signs, never beyond the deposit it knows, and remembers its
last total and nonce across restarts); the node side is :class:`ReceiptBook` (SQLite). Neither
talks to a chain: the caller hands in the escrow's on-chain state as an :class:`EscrowState`.

Digests are computed on a fast path (the domain separator once per domain through eth_account,
the struct hash of four static words directly) because a receipt is checked on every request;
the tests hold it equal to eth_account's ``encode_typed_data`` on a fixed vector and on random
receipts. Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28} and low ``s``, exactly
what the contract's snekmate ``ecdsa`` accepts; recovery goes straight to libsecp256k1
(coincurve), about 5x cheaper than ``Account.recover_message``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import coincurve
from eth_account.messages import hash_domain
from eth_account.signers.local import LocalAccount
from eth_typing import Hash32
from eth_utils import is_address, to_canonical_address, to_checksum_address

from databright.atomic import atomic_write
from databright.errors import InvalidArgument, InvalidReceipt, StorageError
from databright.types import UINT256_MAX

__all__ = [
    "DEFAULT_EXIT_MARGIN_S",
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "RECEIPT_TYPE",
    "RECEIPT_TYPEHASH",
    "EscrowState",
    "Receipt",
    "ReceiptBook",
    "ReceiptDomain",
    "Wallet",
    "check_receipt",
    "receipt_digest",
    "recover_signer",
    "sign_receipt",
    "typed_data",
]

_keccak: Callable[[bytes], bytes]
try:  # safe-pysha3 costs ~1.5 us a call, pycryptodome (eth_utils' default) ~9 us
    from _pysha3 import keccak_256 as _keccak_256  # type: ignore[import-not-found]

    def _keccak(data: bytes) -> bytes:
        return _keccak_256(data).digest()  # type: ignore[no-any-return]

except ImportError:  # pragma: no cover - depends on the environment
    from eth_utils import keccak as _keccak

DOMAIN_NAME: Final = "DataBright ModelMarket"
DOMAIN_VERSION: Final = "1"
RECEIPT_TYPE: Final = "Receipt(uint256 model_id,address user,uint256 total,uint256 nonce)"
RECEIPT_TYPEHASH: Final = _keccak(RECEIPT_TYPE.encode("ascii"))

# How long before an escrow's pending exit the node stops accepting receipts: it must still have
# time to get its settlement mined before the user may withdraw.
DEFAULT_EXIT_MARGIN_S: Final = 3600.0

_SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N: Final = _SECP256K1_N // 2  # snekmate's _MALLEABILITY_THRESHOLD
_RECEIPT_FIELDS: Final = ("model_id", "user", "total", "nonce", "signature")

_EIP712_TYPES: Final = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Receipt": [
        {"name": "model_id", "type": "uint256"},
        {"name": "user", "type": "address"},
        {"name": "total", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
    ],
}


def _uint(value: object, what: str) -> int:
    """``value`` as a uint256, or InvalidReceipt naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidReceipt(f"the receipt's {what} must be an integer, not {value!r}; fix it.")
    if not 0 <= value <= UINT256_MAX:
        raise InvalidReceipt(
            f"the receipt's {what} {value} is outside 0..2**256-1; use a uint256 value."
        )
    return value


def _address(value: object, what: str) -> str:
    """``value`` as a checksummed address, or InvalidReceipt naming ``what``."""
    if not isinstance(value, str) or not is_address(value):
        raise InvalidReceipt(
            f"the {what} {value!r} is not an Ethereum address; use 0x and 40 hex digits."
        )
    return to_checksum_address(value)


@dataclass(frozen=True)
class ReceiptDomain:
    """The EIP-712 domain of one ModelMarket deployment: receipts signed for one chain or one
    contract are worthless on any other."""

    chain_id: int
    contract: str

    def __post_init__(self) -> None:
        if (
            isinstance(self.chain_id, bool)
            or not isinstance(self.chain_id, int)
            or self.chain_id <= 0
        ):
            raise InvalidArgument(
                f"chain id {self.chain_id!r} is not a positive integer; pass the chain's id."
            )
        if not isinstance(self.contract, str) or not is_address(self.contract):
            raise InvalidArgument(
                f"contract {self.contract!r} is not an address; pass the ModelMarket's address."
            )
        object.__setattr__(self, "contract", to_checksum_address(self.contract))

    def as_dict(self) -> dict[str, Any]:
        """The domain as EIP-712 JSON (the ``domain`` of ``eth_signTypedData_v4``)."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.contract,
        }

    @cached_property
    def separator(self) -> bytes:
        """The domain separator (eth_account's own ``hash_domain``), computed once."""
        return bytes(hash_domain(self.as_dict()))


@dataclass(frozen=True)
class Receipt:
    """A user's signed promise to pay a model ``total`` wei in all (cumulative), ``nonce``-th of
    its kind. ``user`` is checksummed; ``signature`` is 65 bytes ``r || s || v``."""

    model_id: int
    user: str
    total: int
    nonce: int
    signature: bytes

    def __post_init__(self) -> None:
        _uint(self.model_id, "model id")
        _uint(self.total, "total")
        _uint(self.nonce, "nonce")
        object.__setattr__(self, "user", _address(self.user, "receipt's user"))
        if not isinstance(self.signature, bytes) or len(self.signature) != 65:
            raise InvalidReceipt(
                "the receipt's signature must be 65 bytes (r, s, v); sign it with sign_receipt."
            )

    def to_json(self) -> dict[str, str | int]:
        """A JSON-ready dict; wei amounts as decimal strings, since JSON numbers lose
        precision past 2**53."""
        return {
            "model_id": self.model_id,
            "user": self.user,
            "total": str(self.total),
            "nonce": self.nonce,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object] | str | bytes) -> Receipt:
        """Parse what :meth:`to_json` wrote (or a JSON text of it); numbers may be integers,
        decimal strings or 0x-hex strings. Raises InvalidReceipt naming the first problem."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise InvalidReceipt(
                    f"the receipt is not valid JSON ({exc}); send a JSON object."
                ) from exc
        if not isinstance(data, Mapping):
            raise InvalidReceipt(
                f"a receipt must be a JSON object, not {type(data).__name__}; send an object."
            )
        missing = [k for k in _RECEIPT_FIELDS if k not in data]
        if missing:
            raise InvalidReceipt(
                f"the receipt lacks {', '.join(missing)}; send all of {', '.join(_RECEIPT_FIELDS)}."
            )
        unknown = sorted(str(k) for k in data if k not in _RECEIPT_FIELDS)
        if unknown:
            raise InvalidReceipt(
                f"the receipt has unknown field(s) {', '.join(unknown)}; send only "
                f"{', '.join(_RECEIPT_FIELDS)}."
            )
        sig = data["signature"]
        if not isinstance(sig, str) or not sig.startswith("0x"):
            raise InvalidReceipt(
                "the receipt's signature must be a 0x-prefixed hex string; send it as to_json writes it."
            )
        try:
            signature = bytes.fromhex(sig[2:])
        except ValueError as exc:
            raise InvalidReceipt(
                "the receipt's signature is not valid hex; send it as to_json writes it."
            ) from exc
        return cls(
            model_id=_json_uint(data["model_id"], "model id"),
            user=_address(data["user"], "receipt's user"),
            total=_json_uint(data["total"], "total"),
            nonce=_json_uint(data["nonce"], "nonce"),
            signature=signature,
        )

    @classmethod
    def _unchecked(
        cls, model_id: int, user: str, total: int, nonce: int, signature: bytes
    ) -> Receipt:
        """A receipt from a row this module wrote itself, without re-validating it (the
        checksum alone costs a keccak, on every request)."""
        receipt = object.__new__(cls)
        for name, value in zip(
            _RECEIPT_FIELDS, (model_id, user, total, nonce, signature), strict=True
        ):
            object.__setattr__(receipt, name, value)
        return receipt

    @cached_property
    def user_bytes(self) -> bytes:
        """The user's 20 address bytes (compared with a recovered signer)."""
        return bytes(to_canonical_address(self.user))


def _json_uint(value: object, what: str) -> int:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text, 16) if text[:2].lower() == "0x" else int(text, 10)
        except ValueError as exc:
            raise InvalidReceipt(
                f"the receipt's {what} {text!r} is not a number; send an integer or a decimal string."
            ) from exc
    return _uint(value, what)


def typed_data(
    domain: ReceiptDomain, model_id: int, user: str, total: int, nonce: int
) -> dict[str, Any]:
    """The full EIP-712 message for ``eth_signTypedData_v4`` (a wallet such as MetaMask signs
    this; the result equals :func:`sign_receipt`'s signature)."""
    return {
        "types": _EIP712_TYPES,
        "primaryType": "Receipt",
        "domain": domain.as_dict(),
        "message": {
            "model_id": _uint(model_id, "model id"),
            "user": _address(user, "receipt's user"),
            "total": _uint(total, "total"),
            "nonce": _uint(nonce, "nonce"),
        },
    }


def receipt_digest(
    domain: ReceiptDomain, model_id: int, user: str | bytes, total: int, nonce: int
) -> bytes:
    """The EIP-712 digest a receipt signs (equal to the contract's ``receipt_digest``).

    ``user`` may be an address string or its 20 bytes. The struct is four static words, so its
    hash is ``keccak(typehash || words)`` with no encoding choices left to get wrong.
    """
    user_b = (
        user if isinstance(user, bytes) else bytes(to_canonical_address(_address(user, "user")))
    )
    if len(user_b) != 20:
        raise InvalidReceipt("the receipt's user must be 20 address bytes; pass an address.")
    _uint(model_id, "model id")
    _uint(total, "total")
    _uint(nonce, "nonce")
    struct = _keccak(
        RECEIPT_TYPEHASH
        + model_id.to_bytes(32, "big")
        + user_b.rjust(32, b"\0")
        + total.to_bytes(32, "big")
        + nonce.to_bytes(32, "big")
    )
    return _keccak(b"\x19\x01" + domain.separator + struct)


def sign_receipt(
    account: LocalAccount, domain: ReceiptDomain, model_id: int, total: int, nonce: int
) -> Receipt:
    """``account``'s receipt for ``total`` wei owed to ``model_id`` in all, ``nonce``-th."""
    _uint(model_id, "model id")
    _uint(total, "total")
    _uint(nonce, "nonce")
    digest = receipt_digest(domain, model_id, account.address, total, nonce)
    signed = account.unsafe_sign_hash(Hash32(digest))
    return Receipt(model_id, account.address, total, nonce, bytes(signed.signature))


def _recover(domain: ReceiptDomain, receipt: Receipt) -> bytes:
    """The 20 address bytes that signed ``receipt``, or InvalidReceipt for a signature the
    contract would refuse (bad ``v``, ``r``/``s`` out of range, high ``s``)."""
    sig = receipt.signature
    v = sig[64]
    if v not in (27, 28):
        raise InvalidReceipt(
            f"the receipt's signature has v={v}, not 27 or 28; sign it with sign_receipt."
        )
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    if not 0 < r < _SECP256K1_N or not 0 < s < _SECP256K1_N:
        raise InvalidReceipt(
            "the receipt's signature is not a valid secp256k1 signature; sign it again."
        )
    if s > _HALF_N:
        raise InvalidReceipt(
            "the receipt's signature has a high s value, which the contract refuses; "
            "sign it with a wallet that produces low-s (EIP-2) signatures."
        )
    digest = receipt_digest(
        domain, receipt.model_id, receipt.user_bytes, receipt.total, receipt.nonce
    )
    try:
        public = coincurve.PublicKey.from_signature_and_message(
            sig[:64] + bytes((v - 27,)), digest, hasher=None
        )
    except ValueError as exc:  # r is no point's x coordinate
        raise InvalidReceipt("the receipt's signature recovers no key; sign it again.") from exc
    return _keccak(public.format(compressed=False)[1:])[-20:]


def recover_signer(domain: ReceiptDomain, receipt: Receipt) -> str:
    """The checksummed address that signed ``receipt`` in ``domain`` (InvalidReceipt if the
    signature is malformed or one the contract would refuse)."""
    return to_checksum_address(_recover(domain, receipt))


@dataclass(frozen=True)
class EscrowState:
    """One user's escrow for one model, as the ModelMarket holds it.

    ``settled`` and ``nonce`` are the total and nonce of the last settled receipt; ``exit_at``
    is the unix time after which the user may withdraw ``deposited - settled`` (0: no exit
    pending).
    """

    deposited: int
    settled: int = 0
    nonce: int = 0
    exit_at: int = 0

    def __post_init__(self) -> None:
        for name in ("deposited", "settled", "nonce", "exit_at"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value <= UINT256_MAX
            ):
                raise InvalidArgument(
                    f"escrow {name} {value!r} is not a uint256; read it from the chain."
                )

    @property
    def available(self) -> int:
        """What the user may still sign for beyond what is settled."""
        return max(self.deposited - self.settled, 0)


def check_receipt(
    receipt: Receipt,
    *,
    model_id: int,
    signer: str | bytes,
    last_nonce: int,
    last_total: int,
    price_wei: int,
    examples: int,
    escrow: EscrowState,
    now: float,
    exit_margin_s: float = DEFAULT_EXIT_MARGIN_S,
) -> None:
    """Whether the node may answer a request of ``examples`` predictions at ``price_wei`` each
    against ``receipt``; raises InvalidReceipt with the first reason it may not.

    ``signer`` is the address the signature recovers to (see :func:`recover_signer`);
    ``last_nonce``/``last_total`` are the latest receipt the node accepted from this user (0, 0
    if none); the escrow's settled values count too, so a node that lost its book cannot be
    paid twice for the same nonce. Pure: no clock, no I/O.
    """
    if receipt.model_id != model_id:
        raise InvalidReceipt(
            f"the receipt is for model {receipt.model_id}, not model {model_id}; "
            f"sign a receipt for model {model_id}."
        )
    signer_b = signer if isinstance(signer, bytes) else bytes(to_canonical_address(signer))
    if signer_b != receipt.user_bytes:
        raise InvalidReceipt(
            f"the receipt's signature is not {receipt.user}'s; sign it with that account's key."
        )
    floor_nonce = max(last_nonce, escrow.nonce)
    if receipt.nonce <= floor_nonce:
        raise InvalidReceipt(
            f"the receipt's nonce {receipt.nonce} is not above the last one used ({floor_nonce}); "
            f"it is replayed or old, so sign a new one with nonce {floor_nonce + 1}."
        )
    floor_total = max(last_total, escrow.settled)
    owed = price_wei * examples
    if receipt.total - floor_total < owed:
        raise InvalidReceipt(
            f"the receipt's total {receipt.total} wei adds {receipt.total - floor_total} wei to "
            f"the {floor_total} already signed, but {examples} prediction(s) cost {owed} wei; "
            f"sign a total of at least {floor_total + owed}."
        )
    if receipt.total > escrow.deposited:
        raise InvalidReceipt(
            f"the receipt's total {receipt.total} wei is beyond the {escrow.deposited} wei "
            f"deposited for model {model_id}; deposit more before paying for more predictions."
        )
    if escrow.exit_at and escrow.exit_at - now < exit_margin_s:
        raise InvalidReceipt(
            f"the user's escrow for model {model_id} may be withdrawn in "
            f"{max(escrow.exit_at - now, 0):.0f} s, too soon for the node to settle; "
            f"cancel the exit (deposit again) before paying for predictions."
        )


# --- the user side ---------------------------------------------------------------------------


class Wallet:
    """One user's receipts in one domain: per model the last total and nonce signed, and the
    deposit known (the limit it never signs beyond), kept in one JSON file in ``directory``.

    The file is replaced atomically *before* a receipt is handed out, so a crash never makes
    the wallet sign the same nonce twice with different totals. ``durable`` (default) also
    fsyncs it, which costs milliseconds a payment; without it a power loss may set the wallet
    back, which costs the user nothing (the node refuses receipts that do not extend the last
    one it holds; :meth:`sync` catches up from the chain) but a refused request.
    """

    def __init__(
        self,
        account: LocalAccount,
        domain: ReceiptDomain,
        directory: Path | str,
        *,
        durable: bool = True,
    ) -> None:
        self.account = account
        self.durable = durable
        self.domain = domain
        self.path = (
            Path(directory)
            / f"receipts-{domain.chain_id}-{domain.contract.lower()}-{account.address.lower()}.json"
        )
        self._lock = threading.Lock()
        self._models: dict[int, dict[str, Any]] = self._load()

    def _load(self) -> dict[int, dict[str, Any]]:
        try:
            raw = json.loads(self.path.read_text())
            models = {
                int(k): {
                    "total": int(v["total"]),
                    "nonce": int(v["nonce"]),
                    "limit": int(v["limit"]),
                    "last": v.get("last"),
                }
                for k, v in raw["models"].items()
            }
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StorageError(
                f"the receipt wallet {self.path} is damaged ({exc}); restore it from a backup "
                f"or move it away and call sync() with the chain's escrow state."
            ) from exc
        return models

    def _save(self) -> None:
        doc = {
            "user": self.account.address,
            "chain_id": self.domain.chain_id,
            "contract": self.domain.contract,
            "models": {
                str(k): {
                    "total": str(v["total"]),
                    "nonce": v["nonce"],
                    "limit": str(v["limit"]),
                    "last": v["last"],
                }
                for k, v in sorted(self._models.items())
            },
        }
        text = json.dumps(doc, indent=1)
        if self.durable:
            atomic_write(self.path, text, mode=0o600)
            return
        # Survives a crash of the process (the rename is atomic), not a power loss: cheap
        # enough to write on every request of a busy client.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _entry(self, model_id: int) -> dict[str, Any]:
        return self._models.setdefault(model_id, {"total": 0, "nonce": 0, "limit": 0, "last": None})

    def set_limit(self, model_id: int, deposited: int) -> None:
        """Record that the user deposited ``deposited`` wei in all for ``model_id``."""
        _uint(model_id, "model id")
        if isinstance(deposited, bool) or not isinstance(deposited, int) or deposited < 0:
            raise InvalidArgument(
                f"deposit {deposited!r} is not a wei amount; pass an integer >= 0."
            )
        with self._lock:
            self._entry(model_id)["limit"] = deposited
            self._save()

    def sync(self, model_id: int, escrow: EscrowState) -> None:
        """Catch up with the chain (another copy of the wallet may have signed and been
        settled): the limit becomes the deposit, total and nonce at least the settled ones."""
        with self._lock:
            entry = self._entry(model_id)
            entry["limit"] = escrow.deposited
            entry["total"] = max(entry["total"], escrow.settled)
            entry["nonce"] = max(entry["nonce"], escrow.nonce)
            self._save()

    def total(self, model_id: int) -> int:
        """What the user has signed for ``model_id`` in all (0 if nothing)."""
        with self._lock:
            entry = self._models.get(model_id)
            return 0 if entry is None else int(entry["total"])

    def nonce(self, model_id: int) -> int:
        """The nonce of the last receipt signed for ``model_id`` (0 if none)."""
        with self._lock:
            entry = self._models.get(model_id)
            return 0 if entry is None else int(entry["nonce"])

    def limit(self, model_id: int) -> int:
        """The deposit the wallet knows for ``model_id`` (0 if none)."""
        with self._lock:
            entry = self._models.get(model_id)
            return 0 if entry is None else int(entry["limit"])

    def last(self, model_id: int) -> Receipt | None:
        """The last receipt signed for ``model_id``, to send again if a request failed."""
        with self._lock:
            entry = self._models.get(model_id)
            last = None if entry is None else entry["last"]
        return None if last is None else Receipt.from_json(last)

    def pay(self, model_id: int, amount: int) -> Receipt:
        """Sign a receipt adding ``amount`` wei to what the user owes ``model_id``."""
        _uint(model_id, "model id")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise InvalidReceipt(f"the amount {amount!r} is not a wei amount; pay an integer >= 0.")
        with self._lock:
            entry = self._entry(model_id)
            total = entry["total"] + amount
            if total > entry["limit"]:
                raise InvalidReceipt(
                    f"paying {amount} wei would bring the total owed to model {model_id} to "
                    f"{total} wei, beyond the {entry['limit']} wei deposited; deposit more "
                    f"and call set_limit or sync."
                )
            receipt = sign_receipt(self.account, self.domain, model_id, total, entry["nonce"] + 1)
            previous = dict(entry)
            entry.update(total=total, nonce=receipt.nonce, last=receipt.to_json())
            try:
                self._save()
            except BaseException:
                entry.clear()
                entry.update(previous)
                raise
            return receipt


# --- the serving node's side -----------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (
    model_id TEXT NOT NULL,
    user TEXT NOT NULL,
    total TEXT NOT NULL,
    nonce TEXT NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (model_id, user)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settled (
    model_id TEXT NOT NULL,
    user TEXT NOT NULL,
    total TEXT NOT NULL,
    nonce TEXT NOT NULL,
    PRIMARY KEY (model_id, user)
) WITHOUT ROWID;
"""


_SQLITE_SUFFIXES: Final = (".sqlite", ".sqlite3", ".db")


class ReceiptBook:
    """The serving node's record of the latest accepted receipt per (model, user), and of what
        was settled on-chain: one SQLite file, ``receipts.sqlite3`` in ``data_dir`` (or ``data_dir``
    itself if it ends in ``.sqlite``, ``.sqlite3`` or ``.db``).

        uint256 values are stored as decimal text and compared in Python. Each thread uses its own
        connection; :meth:`accept` checks and writes in one ``BEGIN IMMEDIATE`` transaction, so two
        concurrent requests (threads or processes) cannot both spend the same increment. WAL with
        ``synchronous=NORMAL``: an accepted receipt survives a crash of the process before the
        answer goes out; a power loss may drop the last few, which costs the node (it settles an
        older total), never the user.
    """

    FILE_NAME: Final = "receipts.sqlite3"

    def __init__(
        self,
        data_dir: Path | str,
        *,
        exit_margin_s: float = DEFAULT_EXIT_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        given = Path(data_dir)
        # A path naming an SQLite file is used as is; anything else is the data dir.
        self.path = given if given.suffix in _SQLITE_SUFFIXES else given / self.FILE_NAME
        self.exit_margin_s = exit_margin_s
        self._clock = clock
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the receipt book's directory {self.path.parent} ({exc}); pass a writable data dir."
            ) from exc
        try:
            self._conn().executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:  # "file is not a database", a locked file
            self.close()
            raise StorageError(
                f"cannot open the receipt book {self.path} ({exc}); check the file or move it away."
            ) from exc

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise InvalidArgument("the receipt book is closed; open a new ReceiptBook.")
        try:
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                f"cannot open the receipt book {self.path} ({exc}); check the file or move it away."
            ) from exc
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _row_receipt(model_id: int, user: str, row: tuple[Any, ...]) -> Receipt:
        return Receipt._unchecked(model_id, user, int(row[0]), int(row[1]), bytes(row[2]))

    def accept(
        self,
        receipt: Receipt,
        *,
        price_wei: int,
        examples: int,
        escrow: EscrowState,
        domain: ReceiptDomain,
        model_id: int | None = None,
    ) -> Receipt | None:
        """Check ``receipt`` for ``examples`` predictions at ``price_wei`` each (see
        :func:`check_receipt`) and store it as the user's latest; committed on return.

        ``model_id`` is the model being served (default: the receipt's own). Returns the
        receipt it replaced (None if first), for :meth:`undo` if the prediction then fails.
        """
        if price_wei < 0 or examples < 0:
            raise InvalidArgument("price and example count must be >= 0; pass the model's price.")
        model = receipt.model_id if model_id is None else model_id
        # Recovery (the expensive part) runs outside the write lock; a bad signature is refused
        # first, exactly as check_receipt orders it.
        signer = _recover(domain, receipt) if model == receipt.model_id else b""
        key = (str(receipt.model_id), receipt.user)
        now = self._clock()
        with self._write() as conn:
            # One query for both the latest accepted and the settled receipt: a settled row
            # may exist without an accepted one (a book restored from the chain).
            row = conn.execute(
                "SELECT a.total, a.nonce, a.signature, s.total, s.nonce FROM (SELECT 1) "
                "LEFT JOIN accepted a ON a.model_id = ?1 AND a.user = ?2 "
                "LEFT JOIN settled s ON s.model_id = ?1 AND s.user = ?2",
                key,
            ).fetchone()
            previous = (
                None
                if row[0] is None
                else self._row_receipt(receipt.model_id, receipt.user, row[:3])
            )
            last_total = 0 if previous is None else previous.total
            last_nonce = 0 if previous is None else previous.nonce
            if row[3] is not None:
                last_total = max(last_total, int(row[3]))
                last_nonce = max(last_nonce, int(row[4]))
            check_receipt(
                receipt,
                model_id=model,
                signer=signer,
                last_nonce=last_nonce,
                last_total=last_total,
                price_wei=price_wei,
                examples=examples,
                escrow=escrow,
                now=now,
                exit_margin_s=self.exit_margin_s,
            )
            conn.execute(
                "INSERT OR REPLACE INTO accepted (model_id, user, total, nonce, signature) "
                "VALUES (?, ?, ?, ?, ?)",
                (*key, str(receipt.total), str(receipt.nonce), receipt.signature),
            )
        return previous

    def undo(self, receipt: Receipt, previous: Receipt | None) -> bool:
        """Put back ``previous`` if ``receipt`` is still the latest accepted (the prediction it
        paid for failed, so the user may send the same receipt again). False if a later receipt
        was accepted meanwhile, which then stands."""
        key = (str(receipt.model_id), receipt.user)
        with self._write() as conn:
            row = conn.execute(
                "SELECT nonce, total FROM accepted WHERE model_id = ? AND user = ?", key
            ).fetchone()
            if row is None or (int(row[0]), int(row[1])) != (receipt.nonce, receipt.total):
                return False
            if previous is None:
                conn.execute("DELETE FROM accepted WHERE model_id = ? AND user = ?", key)
            else:
                conn.execute(
                    "UPDATE accepted SET total = ?, nonce = ?, signature = ? "
                    "WHERE model_id = ? AND user = ?",
                    (str(previous.total), str(previous.nonce), previous.signature, *key),
                )
            return True

    def latest(self, model_id: int, user: str) -> Receipt | None:
        """The latest receipt accepted from ``user`` for ``model_id`` (None if none)."""
        user = _address(user, "user")
        row = (
            self._conn()
            .execute(
                "SELECT total, nonce, signature FROM accepted WHERE model_id = ? AND user = ?",
                (str(model_id), user),
            )
            .fetchone()
        )
        return None if row is None else self._row_receipt(model_id, user, row)

    def settled(self, model_id: int, user: str) -> tuple[int, int]:
        """``(total, nonce)`` last marked settled for ``user`` on ``model_id`` ((0, 0) if none)."""
        user = _address(user, "user")
        row = (
            self._conn()
            .execute(
                "SELECT total, nonce FROM settled WHERE model_id = ? AND user = ?",
                (str(model_id), user),
            )
            .fetchone()
        )
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def to_settle(self, model_id: int) -> list[Receipt]:
        """The latest receipt of every user of ``model_id`` that owes more than is settled,
        ordered by user: what the node submits in its next settlement."""
        rows = (
            self._conn()
            .execute(
                "SELECT a.user, a.total, a.nonce, a.signature, s.total, s.nonce FROM accepted a "
                "LEFT JOIN settled s ON s.model_id = a.model_id AND s.user = a.user "
                "WHERE a.model_id = ? ORDER BY a.user",
                (str(model_id),),
            )
            .fetchall()
        )
        out = []
        for user, total, nonce, sig, s_total, s_nonce in rows:
            if s_total is None or (int(total) > int(s_total) and int(nonce) > int(s_nonce)):
                out.append(Receipt(model_id, user, int(total), int(nonce), bytes(sig)))
        return out

    def mark_settled(self, model_id: int, user: str, total: int, nonce: int) -> None:
        """Record that ``user``'s receipt (``total``, ``nonce``) for ``model_id`` was settled
        on-chain. Idempotent; moving backwards (a lower nonce than recorded) is refused."""
        user = _address(user, "user")
        _uint(total, "total")
        _uint(nonce, "nonce")
        key = (str(model_id), user)
        with self._write() as conn:
            row = conn.execute(
                "SELECT total, nonce FROM settled WHERE model_id = ? AND user = ?", key
            ).fetchone()
            if row is not None:
                old_total, old_nonce = int(row[0]), int(row[1])
                if (old_total, old_nonce) == (total, nonce):
                    return
                if nonce <= old_nonce or total < old_total:
                    raise InvalidArgument(
                        f"model {model_id}'s settlement for {user} is already at nonce "
                        f"{old_nonce} (total {old_total}); pass the chain's newer settlement, "
                        f"not an older one."
                    )
            conn.execute(
                "INSERT OR REPLACE INTO settled (model_id, user, total, nonce) VALUES (?, ?, ?, ?)",
                (*key, str(total), str(nonce)),
            )

    def close(self) -> None:
        """Close every thread's connection."""
        self._closed = True
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> ReceiptBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
