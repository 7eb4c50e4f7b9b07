"""What one participant asks of the market beyond a single dataset's state: its own proposals
and votes across datasets, payment and dividend history, a proposal's revealed reports, the
evaluators a dataset has now; and the few transactions that are not market steps (granting an
evaluator, sending ETH, moving shares), and writing a downloaded dataset to a file.

These are free functions of a :class:`~databright.market.Market`, read from the chain's events
each time like the market's own views: two clients never disagree about history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from eth_utils import is_address, to_checksum_address

from databright.atomic import atomic_write
from databright.chain.gateway import Receipt
from databright.errors import (
    InsufficientFunds,
    InvalidArgument,
    NotFound,
    StorageError,
)
from databright.market.market import Market, ProposalInfo
from databright.storage import (
    Examples,
    MemoryBlobStore,
    read_proposal,
    store_proposal,
)
from databright.types import Address, DatasetId, ProposalId, Wei

__all__ = [
    "EXPORT_FORMATS",
    "Checked",
    "Claim",
    "ExportFormat",
    "Payment",
    "RevealedReport",
    "Vote",
    "check_proposal",
    "claims",
    "evaluators",
    "export_examples",
    "export_target",
    "grant_evaluator",
    "payments",
    "proposals_by",
    "revealed_reports",
    "revoke_evaluator",
    "send_eth",
    "transfer_shares",
    "votes_by",
]

ExportFormat = Literal["npz", "csv", "parquet"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("npz", "csv", "parquet")


@dataclass(frozen=True)
class Vote:
    proposal_id: ProposalId
    dataset_id: DatasetId
    voter: Address
    support: bool
    weight: int
    block_number: int


@dataclass(frozen=True)
class Payment:
    """ETH paid to a dataset's shareholders (by a user, or a forfeited deposit)."""

    dataset_id: DatasetId
    payer: Address
    amount: Wei
    block_number: int


@dataclass(frozen=True)
class Claim:
    """Dividends an account withdrew from a dataset."""

    dataset_id: DatasetId
    account: Address
    amount: Wei
    block_number: int


@dataclass(frozen=True)
class RevealedReport:
    """One evaluator's revealed score of a proposal and its report (None when no source has
    the report's blob)."""

    evaluator: Address
    score_bps: int
    report_cid: str
    report: dict[str, Any] | None
    block_number: int


@dataclass(frozen=True)
class Checked:
    """A proposal file that passed every check ``propose`` makes before it spends gas."""

    dataset_id: DatasetId
    examples: int
    data_cid: str
    manifest_root: bytes
    payment_wei: Wei  # evaluation fee plus deposit, sent with the proposal


def _address(value: str, what: str) -> Address:
    if not is_address(value):
        raise InvalidArgument(f"{what} {value!r} is not an Ethereum address")
    return Address(to_checksum_address(value))


# --- history -----------------------------------------------------------------------------


def proposals_by(market: Market, contributor: str) -> list[ProposalInfo]:
    """Every proposal ``contributor`` made, in every dataset, oldest first."""
    who = _address(contributor, "contributor")
    events = market.contract.events("ProposalCreated", contributor=who)
    return [market.proposal(int(e.args["proposal_id"]), created=e) for e in events]


def votes_by(market: Market, voter: str) -> list[Vote]:
    """Every vote ``voter`` cast, in every dataset, oldest first."""
    who = _address(voter, "voter")
    out = []
    for e in market.contract.events("VoteCast", voter=who):
        pid = int(e.args["proposal_id"])
        out.append(
            Vote(
                ProposalId(pid),
                DatasetId(pid >> 32),
                who,
                bool(e.args["support"]),
                int(e.args["weight"]),
                e.block_number,
            )
        )
    return out


def payments(market: Market, dataset_id: int, payer: str | None = None) -> list[Payment]:
    """Payments into a dataset's dividends (``payer``: only theirs), oldest first."""
    filters: dict[str, Any] = {} if payer is None else {"payer": _address(payer, "payer")}
    return [
        Payment(
            DatasetId(int(dataset_id)),
            Address(to_checksum_address(e.args["payer"])),
            Wei(int(e.args["amount"])),
            e.block_number,
        )
        for e in market.token(dataset_id).events("DividendPaid", **filters)
    ]


def claims(market: Market, dataset_id: int, account: str | None = None) -> list[Claim]:
    """Dividends withdrawn from a dataset (``account``: only theirs), oldest first."""
    filters: dict[str, Any] = {} if account is None else {"account": _address(account, "account")}
    return [
        Claim(
            DatasetId(int(dataset_id)),
            Address(to_checksum_address(e.args["account"])),
            Wei(int(e.args["amount"])),
            e.block_number,
        )
        for e in market.token(dataset_id).events("DividendClaimed", **filters)
    ]


# --- evaluation ----------------------------------------------------------------------------


def revealed_reports(market: Market, proposal_id: int) -> list[RevealedReport]:
    """The scores revealed for a proposal, each with its report fetched from the blob sources
    (verified against its CID); a report no source has, or that is not JSON, is None."""
    market.proposal(proposal_id)  # an unknown id is NotFound
    out = []
    for e in market.contract.events("EvaluationRevealed", proposal_id=int(proposal_id)):
        cid = market.cid_of(e.args["report_cid_digest"])  # dag-pb above 256 KiB
        report: dict[str, Any] | None
        try:
            body = json.loads(market.store.get(cid))
            report = body if isinstance(body, dict) else None
        except (StorageError, ValueError):
            report = None
        out.append(
            RevealedReport(
                Address(to_checksum_address(e.args["evaluator"])),
                int(e.args["score"]),
                cid,
                report,
                e.block_number,
            )
        )
    return out


def evaluators(market: Market, dataset_id: int) -> list[Address]:
    """The accounts holding a dataset's evaluator role now (granted at creation or later, and
    not revoked), in the order they were first granted it."""
    market.dataset(dataset_id)  # an unknown id is NotFound
    role = market.contract.evaluator_role(int(dataset_id))
    seen: dict[Address, None] = {}
    for e in market.contract.events("RoleGranted", role=role):
        seen.setdefault(Address(to_checksum_address(e.args["account"])), None)
    return [a for a in seen if market.contract.is_evaluator(int(dataset_id), a)]


def _evaluator_role_change(market: Market, dataset_id: int, account: str, grant: bool) -> Receipt:
    info = market.dataset(dataset_id)
    who = _address(account, "evaluator")
    if info.initiator != market.address:
        raise InvalidArgument(
            f"only the initiator of dataset {int(dataset_id)} ({info.initiator}) appoints its "
            f"evaluators, not {market.address}; run this as the initiator's account"
        )
    role = market.contract.evaluator_role(int(dataset_id))
    if grant:
        return market.contract.grantRole(role, who)
    return market.contract.revokeRole(role, who)


def grant_evaluator(market: Market, dataset_id: int, account: str) -> Receipt:
    """Let ``account`` evaluate a dataset's proposals (its initiator only)."""
    return _evaluator_role_change(market, dataset_id, account, grant=True)


def revoke_evaluator(market: Market, dataset_id: int, account: str) -> Receipt:
    """Stop ``account`` evaluating a dataset's proposals (its initiator only)."""
    return _evaluator_role_change(market, dataset_id, account, grant=False)


# --- moving value --------------------------------------------------------------------------


def send_eth(market: Market, to: str, amount: Wei) -> Receipt:
    """Send ``amount`` wei from this account to ``to``."""
    who = _address(to, "recipient")
    if int(amount) <= 0:
        raise InvalidArgument(f"an amount to send must be positive, not {amount} wei")
    if market.gateway.balance() < amount:
        raise InsufficientFunds(
            f"account {market.address} holds less than {int(amount)} wei plus gas; fund it first"
        )
    return market.gateway.transfer(who, amount)


def transfer_shares(market: Market, dataset_id: int, to: str, amount: int) -> Receipt:
    """Move ``amount`` share units (10**18 a share) of a dataset from this account to ``to``.

    Dividends already earned stay claimable by the sender; later ones follow the shares.
    """
    who = _address(to, "recipient")
    if int(amount) <= 0:
        raise InvalidArgument(f"an amount of shares must be positive, not {amount} units")
    held = market.shares_of(dataset_id)
    if held < amount:
        raise InvalidArgument(
            f"account {market.address} holds {held} share units of dataset {int(dataset_id)}, "
            f"fewer than the {int(amount)} to transfer"
        )
    return market.token(dataset_id).transfer(who, int(amount))


# --- checking and exporting files ----------------------------------------------------------


def check_proposal(
    market: Market, dataset_id: int, source: str | Path, contributor: str | None = None
) -> Checked:
    """Every check ``Market.propose`` makes before it stores anything or spends gas, without
    storing or sending anything: the file against the schema, the examples neither already in
    the dataset nor first proposed by another than ``contributor``, and the payment within
    ``contributor``'s ETH (default: the market's account; None and no account: not checked)."""
    who = contributor or (market.address if market.gateway.account is not None else None)
    schema = market.schema(dataset_id)
    examples = read_proposal(source, schema, known_hashes=set())
    root = market.check_repeat(int(dataset_id), examples, who)
    d = market.contract.dataset(int(dataset_id))
    payment = Wei(d.evaluation_fee + d.deposit)
    if who is not None and market.gateway.balance(who) <= payment:
        raise InsufficientFunds(
            f"proposing to dataset {int(dataset_id)} costs {payment} wei plus gas and account "
            f"{who} holds less; fund it first"
        )
    stored = store_proposal(MemoryBlobStore(), examples, schema)  # the CIDs, nothing kept
    return Checked(DatasetId(int(dataset_id)), stored.n_examples, stored.data_cid, root, payment)


def export_target(path: str | Path) -> Path:
    """``path`` if an export may write it (a new or regular file in an existing directory)."""
    path = Path(path)
    if path.is_dir():
        raise InvalidArgument(f"{path} is a directory; give a file name to write")
    if path.exists() and not path.is_file():
        # The file is replaced by a rename: never do that to a device or a pipe (/dev/null).
        raise InvalidArgument(f"{path} is not a regular file; give a file name to write")
    if not path.parent.is_dir():
        raise NotFound(f"directory {path.parent} does not exist; create it first")
    return path


def export_examples(examples: Examples, path: str | Path, fmt: ExportFormat) -> Path:
    """Write examples as a file ``propose`` reads back to the same examples: ``npz`` (arrays
    ``X`` and ``y``), ``csv`` or ``parquet`` (a column per feature value ``f0``, ``f1``, ... in C
    order, then ``label``). Written atomically: a failed export leaves no partial file."""
    path = export_target(path)
    if fmt not in EXPORT_FORMATS:
        raise InvalidArgument(f"format {fmt!r} is unknown; use one of {', '.join(EXPORT_FORMATS)}")
    X, y = examples.X, examples.y
    if fmt == "npz":
        sink = pa.BufferOutputStream()
        with pa.output_stream(sink) as out:  # np.savez wants a file object
            np.savez(out, X=X, y=y)
        body = sink.getvalue().to_pybytes()
    else:
        flat = X.reshape(len(X), -1)
        columns = {f"f{j}": pa.array(flat[:, j]) for j in range(flat.shape[1])}
        columns["label"] = pa.array(y)
        table = pa.table(columns)
        sink = pa.BufferOutputStream()
        if fmt == "csv":
            pacsv.write_csv(table, sink)
        else:
            pq.write_table(table, sink)
        body = sink.getvalue().to_pybytes()
    try:
        atomic_write(path, body)
    except OSError as exc:
        raise StorageError(f"cannot write {path} ({exc.strerror})") from None
    return path
