"""What the command line reads from its arguments: durations, label sets, shapes, amounts, ids.

The option types follow click's ``ParamType``: ``convert`` parses and refuses bad input with
``fail``, which typer reports as a usage error naming the option (exit status 2). typer 0.29
takes no click types (it dropped ``click_type=``); it takes a ``parser=`` callable, which an
instance of these types is.

An account (``ACCOUNT``) is an index into the keystore (``9``) or any address; the type checks
the form, and ``resolve_account`` reads the keystore of the command's data dir for an index.

Amounts of ETH and proposal ids are parsed in the command instead: a bad one is a
``DataBrightError`` with its own exit status (1, or 5 for a proposal that cannot exist), as
the SDK would refuse it, not a usage error.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import ClassVar, Generic, NewType, NoReturn, TypeVar

import typer
from eth_utils import is_address, to_checksum_address

from databright.chain.clients import DataMarketConstants
from databright.chain.keystore import Keystore
from databright.errors import InvalidAmount, InvalidProposalId, NotFound
from databright.types import UINT256_MAX, Address, Wei

__all__ = [
    "ACCOUNT",
    "DURATION",
    "DURATION_OR_ZERO",
    "ETH_AMOUNT",
    "ETH_AMOUNT_OR_ZERO",
    "FEATURE_SHAPE",
    "LABEL_SET",
    "MAX_VOTING_PERIOD",
    "SEQ_BITS",
    "AccountType",
    "DurationType",
    "EthAmountType",
    "FeatureShape",
    "FeatureShapeType",
    "LabelSet",
    "LabelSetType",
    "ParamType",
    "parse_duration",
    "parse_eth",
    "parse_labels",
    "parse_proposal_id",
    "parse_shape",
    "parse_shares",
    "resolve_account",
]

# A proposal id is (dataset id << SEQ_BITS) | its number within the dataset.
SEQ_BITS = DataMarketConstants.SEQ_BITS
MAX_VOTING_PERIOD = 2**32 - 1  # the contract's bound

T = TypeVar("T")

#: One example's shape, e.g. ``(8, 8)``.
FeatureShape = NewType("FeatureShape", tuple[int, ...])
#: Class labels, all ints or all strings.
LabelSet = NewType("LabelSet", tuple)


class ParamType(ABC, Generic[T]):
    """The type of one option: text in, a value out, or a usage error that says why."""

    #: What the help shows in the type column; ``<str>``, like typer's own text options.
    metavar: ClassVar[str] = "<str>"

    @abstractmethod
    def convert(self, value: str | T) -> T:
        """The value ``value`` means; an already converted value (a default) is kept."""

    def fail(self, message: str) -> NoReturn:
        raise typer.BadParameter(message)

    def __call__(self, value: str | T) -> T:
        return self.convert(value)


class DurationType(ParamType[int]):
    """Seconds from ``3600``, ``90s``, ``30m``, ``1h`` or ``2d``, within the contract's bound."""

    metavar = "DURATION"
    _PATTERN = re.compile(r"(\d+)\s*([smhd]?)", re.ASCII)
    _UNIT_S: ClassVar[dict[str, int]] = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

    def __init__(self, minimum: int = 1) -> None:
        self.minimum = minimum

    def convert(self, value: str | int) -> int:
        if isinstance(value, int):
            return value
        match = self._PATTERN.fullmatch(value.strip().lower())
        if not match:
            self.fail(f"{value!r} is not a duration; write e.g. 3600, 90s, 30m, 1h or 2d")
        seconds = int(match[1]) * self._UNIT_S[match[2]]
        if not self.minimum <= seconds <= MAX_VOTING_PERIOD:
            self.fail(f"{value!r} must be between {self.minimum} s and {MAX_VOTING_PERIOD} s")
        return seconds


class LabelSetType(ParamType[LabelSet]):
    """Class labels from ``0-9`` (or ``0..9``), ``0,1,2`` or ``cat,dog``."""

    _RANGE = re.compile(r"(-?\d+)\s*(?:-|\.\.)\s*(-?\d+)", re.ASCII)
    _INT = re.compile(r"-?\d+", re.ASCII)

    def convert(self, value: str | LabelSet) -> LabelSet:
        if isinstance(value, tuple):
            return value
        s = value.strip()
        if match := self._RANGE.fullmatch(s):
            low, high = int(match[1]), int(match[2])
            if high < low or high - low >= 1_000_000:
                self.fail(f"{value!r} is not a usable range of labels")
            return LabelSet(tuple(range(low, high + 1)))
        parts = [p.strip() for p in s.split(",")]
        if not s or any(not p for p in parts):
            self.fail(f"{value!r} has an empty label; write e.g. 0-9 or cat,dog")
        if all(self._INT.fullmatch(p) for p in parts):
            return LabelSet(tuple(int(p) for p in parts))
        return LabelSet(tuple(parts))


class FeatureShapeType(ParamType[FeatureShape]):
    """One example's shape from ``64``, ``8x8``, ``8,8`` or ``(8, 8)``."""

    _SEPARATORS = re.compile(r"[x×,\s]+")

    def convert(self, value: str | FeatureShape) -> FeatureShape:
        if isinstance(value, tuple):
            return value
        parts = [p for p in self._SEPARATORS.split(value.strip().strip("()[]")) if p]
        if not parts or not all(p.isascii() and p.isdigit() and int(p) > 0 for p in parts):
            self.fail(f"{value!r} is not a shape; write e.g. 64 or 8x8")
        return FeatureShape(tuple(int(p) for p in parts))


class EthAmountType(ParamType[Wei]):
    """An exact amount of ETH written as a decimal (``0.5``, ``2``, ``1e-3``), in wei: positive,
    or with ``allow_zero`` also zero (a fee or deposit that a dataset may waive)."""

    metavar = "ETH"

    def __init__(self, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(self, value: str | Wei) -> Wei:
        if isinstance(value, int):
            return value
        try:
            return parse_eth(value, allow_zero=self.allow_zero)
        except InvalidAmount as exc:
            self.fail(str(exc))


class AccountType(ParamType[str]):
    """An account: its index in the keystore (``0`` = first) or an address (``0x`` and 40 hex
    digits, checksummed if mixed case). Only the form is checked here; see ``resolve_account``."""

    metavar = "ACCOUNT"

    def convert(self, value: str) -> str:
        s = value.strip()
        if s.isascii() and s.isdigit():
            return str(int(s))
        if s.startswith(("0x", "0X")):
            if not is_address(s):
                self.fail(f"{value!r} is not an Ethereum address (bad hex digits or checksum)")
            return to_checksum_address(s)
        self.fail(f"{value!r} is not an account; give its index in the keystore (0, 1, ...) or "
                  "its address (0x...)")  # fmt: skip


ACCOUNT = AccountType()
DURATION = DurationType()
DURATION_OR_ZERO = DurationType(minimum=0)
ETH_AMOUNT = EthAmountType()
ETH_AMOUNT_OR_ZERO = EthAmountType(allow_zero=True)
LABEL_SET = LabelSetType()
FEATURE_SHAPE = FeatureShapeType()


def parse_duration(value: str | int) -> int:
    """Seconds from ``3600``, ``90s``, ``30m``, ``1h`` or ``2d``; ``typer.BadParameter`` if not."""
    return DURATION.convert(value)


def parse_labels(text: str) -> tuple[int, ...] | tuple[str, ...]:
    """Class labels from ``0-9`` (or ``0..9``), ``0,1,2`` or ``cat,dog``."""
    return LABEL_SET.convert(text)


def parse_shape(text: str) -> tuple[int, ...]:
    """One example's shape from ``64`` or ``8x8``."""
    return FEATURE_SHAPE.convert(text)


def parse_eth(text: str, *, allow_zero: bool = False) -> Wei:
    """An amount of ETH written as a decimal (``0.5``, ``2``, ``1e-3``), exactly, in wei."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise InvalidAmount(f"{text!r} is not an amount of ETH; write a decimal number such as 0.5")
    if value < 0 or (value == 0 and not allow_zero):
        what = (
            "an amount of ETH must not be negative"
            if allow_zero
            else ("a payment must be a positive amount of ETH")
        )
        raise InvalidAmount(f"{what}, not {text!r}")
    if value.adjusted() > 60:
        raise InvalidAmount(f"{text!r} ETH is more than any account can hold")
    with localcontext() as ctx:
        ctx.prec = 200  # exact: no rounding of a long decimal before the check below
        wei = value.scaleb(18)
    if wei != wei.to_integral_value():
        raise InvalidAmount(
            f"{text!r} ETH is not a whole number of wei; use at most 18 decimal places"
        )
    if int(wei) > UINT256_MAX:
        raise InvalidAmount(f"{text!r} ETH is more than any account can hold")
    return Wei(int(wei))


_PROPOSAL_REF = re.compile(r"(\d+)\s*/\s*(\d+)", re.ASCII)
_DIGITS = re.compile(r"\d+", re.ASCII)


def parse_proposal_id(text: str) -> int:
    """A proposal's id from its number or from ``DATASET/N``."""
    s = text.strip()
    if match := _PROPOSAL_REF.fullmatch(s):
        dataset, seq = int(match[1]), int(match[2])
        if seq >= 2**SEQ_BITS or dataset >= 2 ** (256 - SEQ_BITS):
            raise NotFound(f"proposal {text} does not exist; see `databright dataset show DATASET`")
        return (dataset << SEQ_BITS) | seq
    if _DIGITS.fullmatch(s):
        pid = int(s)
        if pid > UINT256_MAX:
            raise NotFound(f"proposal {text} does not exist; see `databright dataset show DATASET`")
        return pid
    raise InvalidProposalId(
        f"{text!r} is not a proposal; give its id or DATASET/N as `databright dataset show` lists them"
    )


def resolve_account(data_dir: Path, which: str) -> Address:
    """The address ``which`` names: an address as given (it need not be ours), or the address
    of the keystore account with that index in ``data_dir``."""
    which = ACCOUNT.convert(which)
    if which.startswith("0x"):
        return Address(to_checksum_address(which))
    return Keystore(data_dir / "keystore").resolve(which)


def parse_shares(text: str) -> int:
    """A positive number of shares written as a decimal (``2``, ``0.5``), in share units (10**18
    a share, as wei to ETH); ``typer.BadParameter`` if not."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0:
        raise typer.BadParameter(f"{text!r} is not a positive number of shares; write e.g. 2.5")
    try:
        return int(parse_eth(text))  # the same exact scaling and bounds
    except InvalidAmount:
        raise typer.BadParameter(
            f"{text!r} shares is not a whole number of share units (at most 18 decimal places) "
            "or more than any account can hold"
        ) from None
