"""``databright dataset ...``: datasets, their proposals, registries, evaluators and shares.

A dataset is created with a schema (``--schema schema.json``, the JSON of
:class:`~databright.storage.DatasetSchema`, or ``--task``/``--feature-shape``/``--dtype``/
``--labels`` on the command line, or inferred from the initial file), its initial data
(``--initial``, the same formats as a proposal) and its governance; the initiator gets one
share per initial example. ``download`` writes the curated dataset, every example verified
against the Merkle roots on chain; the initiator appoints evaluators with ``grant-evaluator``
and ``revoke-evaluator``; shareholders move shares with ``transfer-shares``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_utils import to_checksum_address
from rich.markup import escape
from rich.table import Table

from databright.chain.clients import DataMarketConstants
from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    AccountOpt,
    DataDirOpt,
    DatasetArg,
    JsonOpt,
    RpcOpt,
    bps_text,
    busy,
    console,
    eth_exact,
    open_market,
    percent,
    print_json,
    proposal_problems,
    require_funds,
    shares_exact,
    shares_text,
    short_address,
    viewer_address,
)
from databright.cli._infer import infer_schema
from databright.cli._params import (
    ACCOUNT,
    DURATION,
    DURATION_OR_ZERO,
    ETH_AMOUNT_OR_ZERO,
    FEATURE_SHAPE,
    LABEL_SET,
    SEQ_BITS,
    FeatureShape,
    LabelSet,
    parse_shares,
    resolve_account,
)
from databright.cli._text import proposal_view, ref, safe
from databright.errors import NotFound
from databright.market import DatasetInfo, Governance, Market, RegistryEntry, Shareholder, queries
from databright.settings import get_settings
from databright.storage import DatasetSchema, InvalidSchema

__all__ = ["app"]

app = typer.Typer(
    name="dataset",
    help="Datasets: create one, list them, show one with its proposals and registry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

MAX_QUALITY_CAP_BPS = DataMarketConstants.MAX_QUALITY_CAP_BPS
_DEFAULT = Governance()


# --- the schema ------------------------------------------------------------------------------


def _schema_from_file(path: Path) -> DatasetSchema:
    if not path.is_file():
        raise NotFound(f"schema file {path} does not exist")
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidSchema(f"cannot read the schema file {path} ({exc.strerror})") from None
    try:
        return DatasetSchema.from_json(text)
    except (TypeError, ValueError) as exc:  # InvalidSchema is a ValueError
        raise InvalidSchema(f"{path}: {exc}") from None


def _schema(
    name: str,
    initial: Path,
    schema_file: Path | None,
    task: str | None,
    shape: FeatureShape | None,
    dtype: str | None,
    labels: LabelSet | None,
) -> DatasetSchema:
    inline = [
        o
        for o, v in (
            ("--task", task),
            ("--feature-shape", shape),
            ("--labels", labels),
            ("--dtype", dtype),
        )
        if v is not None
    ]
    if schema_file is not None:
        if inline:
            raise typer.BadParameter(
                f"give --schema or {', '.join(inline)}, not both", param_hint="'--schema'"
            )
        return _schema_from_file(schema_file)
    if task is None or shape is None or (task == "classification" and labels is None):
        return infer_schema(initial, name, task, shape, dtype, labels)
    return DatasetSchema(
        task=task,  # type: ignore[arg-type]  # DatasetSchema refuses unknown tasks
        feature_shape=shape,
        dtype=dtype or "float32",
        labels=labels,
        name=name,
    )


# --- printing --------------------------------------------------------------------------------


def dataset_json(info: DatasetInfo, evaluators: list[str] | None = None) -> dict[str, Any]:
    """A dataset's JSON; ``evaluators``: those holding the role now, if read (else the ones
    named at creation)."""
    g = info.governance
    named = g.evaluators if evaluators is None else evaluators
    return {
        "id": int(info.id),
        "name": info.name,
        "token": info.token,
        "initiator": info.initiator,
        "schema_cid": info.schema_cid,
        "governance": {
            "voting_period_s": g.voting_period_s,
            "min_voting_period_s": g.min_voting_period_s,
            "commit_period_s": g.commit_period_s,
            "reveal_period_s": g.reveal_period_s,
            "evaluation_fee_wei": g.evaluation_fee_wei,
            "deposit_wei": g.deposit_wei,
            "quorum_bps": g.quorum_bps,
            "threshold_bps": g.threshold_bps,
            "quality_cap_bps": g.quality_cap_bps,
            "evaluators": [to_checksum_address(e) for e in named],
        },
        "registry_length": info.registry_length,
        "proposal_count": info.proposal_count,
        "total_shares": info.total_shares,
        "total_shares_whole": shares_exact(info.total_shares),
    }


def _registry_json(e: RegistryEntry) -> dict[str, Any]:
    return {
        "index": e.index,
        "proposal": ref(e.proposal_id),
        "contributor": e.contributor,
        "data_cid": e.data_cid,
        "manifest_root": "0x" + e.manifest_root.hex(),
        "examples": e.examples,
        "shares": e.shares,
        "shares_whole": shares_exact(e.shares),
        "block_number": e.block_number,
    }


def _holder_json(h: Shareholder) -> dict[str, Any]:
    return {
        "address": h.address,
        "shares": h.shares,
        "shares_whole": shares_exact(h.shares),
        "claimable_wei": int(h.claimable),
        "claimable_eth": eth_exact(h.claimable),
    }


def _duration_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _print_header(info: DatasetInfo, schema: DatasetSchema | None, evaluators: list[str]) -> None:
    g = info.governance
    console.print(
        f"[bold]dataset {int(info.id)}[/bold] {safe(repr(info.name))} "
        f"initiated by {info.initiator}; share token {info.token}"
    )
    if schema is None:
        console.print(
            f"schema {escape(info.schema_cid)} (not in this store nor at any blob source)"
        )
    else:
        labels = schema.describe_labels() if schema.labels else "regression targets"
        console.print(
            f"schema: {schema.task}, examples of shape {schema.feature_shape} {schema.dtype}, "
            f"labels {safe(labels)} ({escape(info.schema_cid)})"
        )
    named = ", ".join(evaluators) if evaluators else "none (the initiator grants the role with "
    named += "" if evaluators else f"`databright dataset grant-evaluator {int(info.id)} ACCOUNT`)"
    console.print(
        f"governance: voting {_duration_text(g.voting_period_s)} "
        f"(at least {_duration_text(g.min_voting_period_s)}), quorum {bps_text(g.quorum_bps)}, "
        f"threshold {bps_text(g.threshold_bps)}, quality cap {bps_text(g.quality_cap_bps)}, "
        f"evaluators {named}"
    )
    if g.deposit_wei:
        console.print(
            f"deposit: {eth_exact(g.deposit_wei)} ETH per proposal, returned if accepted or "
            "scored positive, else paid to the shareholders"
        )
    if g.commit_period_s:
        console.print(
            f"evaluation: commit {_duration_text(g.commit_period_s)}, reveal "
            f"{_duration_text(g.reveal_period_s)} before voting; fee "
            f"{eth_exact(g.evaluation_fee_wei)} ETH per proposal"
        )
    console.print(
        f"{info.registry_length} registry entries, {info.proposal_count} proposals, "
        f"{shares_text(info.total_shares)} shares"
    )


# --- commands --------------------------------------------------------------------------------


@app.command("hand-over")
def hand_over_command(
    dataset: DatasetArg,
    new_initiator: Annotated[
        str,
        typer.Argument(
            parser=ACCOUNT,
            metavar=ACCOUNT.metavar,
            help="The next initiator: an address, or an index in this keystore.",
        ),
    ],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Start handing your dataset over; the new initiator completes it with `dataset accept`."""
    new_initiator = resolve_account(data_dir, new_initiator)
    market = open_market(rpc, data_dir, account)
    with busy(f"handing dataset {dataset} over to {new_initiator}"):
        receipt = market.transfer_initiator(dataset, new_initiator)
    if json_out:
        print_json(
            {"dataset_id": dataset, "new_initiator": new_initiator, "tx_hash": receipt.tx_hash}
        )
        return
    console.print(
        f"dataset {dataset} offered to {new_initiator}; it becomes initiator with "
        f"`databright dataset accept {dataset}`",
        highlight=False,
        markup=False,
    )


@app.command("accept")
def accept_command(
    dataset: DatasetArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Become the initiator of a dataset handed over to you."""
    market = open_market(rpc, data_dir, account)
    with busy(f"accepting dataset {dataset}"):
        market.accept_initiator(dataset)
        info = market.dataset(dataset)
    if json_out:
        print_json(dataset_json(info))
        return
    console.print(
        f"you ({market.address}) are now the initiator of dataset {dataset}", highlight=False
    )


_CREATE_HELP = (
    "Create a dataset with its schema, initial data and governance.\n\n"
    "The initial file is .npz (arrays X, one row per example, and y, the labels), .csv (a "
    "column per feature value and a column named label) or .parquet (the same columns). "
    "Without --schema or --task/--feature-shape the schema is inferred from it: one example's "
    "shape and dtype from X (CSV and Parquet: one value per column, float32), the labels from "
    "those the file holds (fractional targets: regression); give --labels to allow more."
)


@app.command("create", help=_CREATE_HELP)
def create_command(
    name: Annotated[str, typer.Argument(help="The dataset's name (at most 25 bytes).")],
    initial: Annotated[
        Path, typer.Option("--initial", help="Initial examples: .npz, .csv or .parquet.")
    ],
    schema_file: Annotated[
        Path | None,
        typer.Option(
            "--schema",
            help='Schema JSON, e.g. {"task": "classification", "feature_shape": [8, 8], '
            '"dtype": "float32", "labels": [0, 1, 2]} (default: inferred from --initial).',
        ),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="classification or regression.")
    ] = None,
    feature_shape: Annotated[
        FeatureShape | None,
        typer.Option(
            "--feature-shape",
            parser=FEATURE_SHAPE,
            metavar=FEATURE_SHAPE.metavar,
            help="One example's shape: 64 or 8x8.",
        ),
    ] = None,
    dtype: Annotated[
        str | None, typer.Option("--dtype", help="Feature dtype (default float32).")
    ] = None,
    labels: Annotated[
        LabelSet | None,
        typer.Option(
            "--labels",
            parser=LABEL_SET,
            metavar=LABEL_SET.metavar,
            help="Class labels: 0-9, 0,1,2 or cat,dog.",
        ),
    ] = None,
    voting_period: Annotated[
        int,
        typer.Option(
            "--voting-period",
            parser=DURATION,
            metavar=DURATION.metavar,
            help="How long votes stay open: 3600, 1h, 2d.",
        ),
    ] = _DEFAULT.voting_period_s,
    min_voting_period: Annotated[
        int,
        typer.Option(
            "--min-voting-period",
            parser=DURATION_OR_ZERO,
            metavar=DURATION_OR_ZERO.metavar,
            help="How long votes stay open even when the outcome is final earlier: 0, 10m, 1h.",
        ),
    ] = _DEFAULT.min_voting_period_s,
    commit_period: Annotated[
        int,
        typer.Option(
            "--commit-period",
            parser=DURATION_OR_ZERO,
            metavar=DURATION_OR_ZERO.metavar,
            help="How long evaluators may commit sealed scores after a proposal (0: none).",
        ),
    ] = _DEFAULT.commit_period_s,
    reveal_period: Annotated[
        int,
        typer.Option(
            "--reveal-period",
            parser=DURATION_OR_ZERO,
            metavar=DURATION_OR_ZERO.metavar,
            help="How long evaluators may then reveal them, before voting opens.",
        ),
    ] = _DEFAULT.reveal_period_s,
    evaluation_fee: Annotated[
        str,
        typer.Option("--evaluation-fee", help="ETH a proposer pays the evaluators (e.g. 0.001)."),
    ] = "0",
    deposit: Annotated[
        str,
        typer.Option(
            "--deposit",
            help="ETH deposited with each proposal, lost to shareholders by junk (e.g. 0.01).",
        ),
    ] = "0",
    quorum_bps: Annotated[
        int,
        typer.Option(
            "--quorum-bps", min=1, max=10_000, help="Share of votes needed, in basis points."
        ),
    ] = _DEFAULT.quorum_bps,
    threshold_bps: Annotated[
        int,
        typer.Option(
            "--threshold-bps", min=1, max=10_000, help="Share of yes votes to accept, in bps."
        ),
    ] = _DEFAULT.threshold_bps,
    quality_cap_bps: Annotated[
        int,
        typer.Option(
            "--quality-cap-bps",
            min=10_000,
            max=MAX_QUALITY_CAP_BPS,
            help="Highest share multiplier an evaluation may give, in bps.",
        ),
    ] = _DEFAULT.quality_cap_bps,
    evaluators: Annotated[
        list[str] | None,
        typer.Option(
            "--evaluator",
            parser=ACCOUNT,
            metavar=ACCOUNT.metavar,
            help="Account allowed to evaluate, by address or keystore index (repeatable).",
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    schema = _schema(name, initial, schema_file, task, feature_shape, dtype, labels)
    inferred = schema_file is None and (task is None or feature_shape is None)
    governance = Governance(
        voting_period_s=voting_period,
        min_voting_period_s=min_voting_period,
        commit_period_s=commit_period,
        reveal_period_s=reveal_period,
        evaluation_fee_wei=ETH_AMOUNT_OR_ZERO.convert(evaluation_fee),
        deposit_wei=ETH_AMOUNT_OR_ZERO.convert(deposit),
        quorum_bps=quorum_bps,
        threshold_bps=threshold_bps,
        quality_cap_bps=quality_cap_bps,
        evaluators=tuple(resolve_account(data_dir, e) for e in evaluators or ()),
    )
    market = open_market(rpc, data_dir, account)
    require_funds(market, "creating a dataset")
    with busy(f"validating and storing {initial}, creating dataset {name!r}"), proposal_problems():
        dataset_id = market.create_dataset(name, schema, initial, governance)
        info = market.dataset(dataset_id)
    if json_out:
        print_json({**dataset_json(info), "schema": schema.to_dict(), "schema_inferred": inferred})
        return
    if inferred:
        labels_text = schema.describe_labels() if schema.labels else "regression targets"
        console.print(
            f"schema inferred from {safe(initial)}: {schema.task}, examples of shape "
            f"{schema.feature_shape} {schema.dtype}, labels {safe(labels_text)}"
        )
    console.print(
        f"[green]dataset {int(dataset_id)}[/green] {safe(repr(name))} created: "
        f"{shares_text(info.total_shares)} shares to {market.address} for the initial data"
    )
    console.print(f"contributors propose with `databright propose {int(dataset_id)} FILE`")


@app.command("list")
def list_command(
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: Annotated[
        str | None,
        typer.Option("--account", "-a", help="Mark this account's datasets (index or address)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the market's datasets."""
    me = viewer_address(data_dir, account)
    market = open_market(rpc, data_dir, None)
    with busy("reading datasets"):
        infos = market.datasets()
    if json_out:
        print_json([dataset_json(i) for i in infos])
        return
    if not infos:
        console.print("no datasets yet; create one with `databright dataset create`")
        return
    table = Table(title=f"datasets on chain {market.gateway.chain_id}")
    table.add_column("id", justify="right")
    table.add_column("name")
    table.add_column("initiator")
    table.add_column("entries", justify="right")
    table.add_column("proposals", justify="right")
    table.add_column("shares", justify="right")
    for i in infos:
        table.add_row(
            str(int(i.id)),
            safe(i.name),
            short_address(i.initiator, me),
            str(i.registry_length),
            str(i.proposal_count),
            shares_text(i.total_shares),
        )
    console.print(table)


@app.command("show")
def show_command(
    dataset: DatasetArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            "-a",
            parser=ACCOUNT,
            metavar=ACCOUNT.metavar,
            help="Whose shares to show: keystore index or any address.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a dataset: schema, governance, proposals with their votes, registry, shareholders."""
    # Any address may be looked at, not only this keystore's.
    me = (
        resolve_account(data_dir, account)
        if account is not None
        else viewer_address(data_dir, None)
    )
    market = open_market(rpc, data_dir, None)
    with busy(f"reading dataset {dataset}"):
        info = market.dataset(dataset)
        schema: DatasetSchema | None
        try:
            schema = market.schema(dataset)
        except NotFound:
            schema = None  # created from another data dir: its schema blob is not here
        # Ids are (dataset << 32) | n for n = 1..proposal_count: read them directly rather
        # than scanning the chain's logs from block 0, which public nodes often refuse.
        proposals = [
            market.proposal((dataset << SEQ_BITS) | n) for n in range(1, info.proposal_count + 1)
        ]
        registry = market.registry(dataset)
        holders = market.shareholders(dataset)
        evaluators = [str(a) for a in queries.evaluators(market, dataset)]
        mine = (
            (market.shares_of(dataset, me), int(market.claimable(dataset, me)))
            if me is not None
            else None
        )
    if json_out:
        print_json(
            {
                "dataset": dataset_json(info, evaluators),
                "schema": schema.to_dict() if schema is not None else None,
                "proposals": [proposal_view(p) for p in proposals],
                "registry": [_registry_json(e) for e in registry],
                "shareholders": [_holder_json(h) for h in holders],
                "account": None
                if me is None or mine is None
                else {
                    "address": me,
                    "shares": mine[0],
                    "shares_whole": shares_exact(mine[0]),
                    "claimable_wei": mine[1],
                    "claimable_eth": eth_exact(mine[1]),
                },
            }
        )
        return
    _print_header(info, schema, evaluators)
    if me is not None and mine is not None:
        console.print(
            f"you ({me}): {shares_text(mine[0])} shares "
            f"({percent(mine[0], info.total_shares)}), {eth_exact(mine[1])} ETH to claim"
        )

    table = Table(title="proposals (votes as shares of each snapshot)")
    table.add_column("proposal")
    table.add_column("by")
    table.add_column("examples", justify="right")
    table.add_column("yes / no", justify="right")
    table.add_column("score", justify="right")
    table.add_column("status")
    for p in proposals:
        status = p.status if p.outcome == p.status else f"{p.status} → {p.outcome}"
        if p.status == "pending":
            closes = datetime.fromtimestamp(p.deadline, tz=UTC).strftime("%m-%d %H:%M UTC")
            status += f", closes {closes}"
        table.add_row(
            ref(p.id),
            short_address(p.contributor, me),
            str(p.examples),
            f"{percent(p.yes_votes, p.snapshot_supply)} / {percent(p.no_votes, p.snapshot_supply)}",
            "-" if p.evaluation is None else bps_text(p.evaluation.score_bps),
            status,
        )
    if proposals:
        console.print(table)
    else:
        console.print("no proposals yet")

    table = Table(title="registry")
    table.add_column("#", justify="right")
    table.add_column("proposal")
    table.add_column("contributor")
    table.add_column("examples", justify="right")
    table.add_column("shares", justify="right")
    table.add_column("block", justify="right")
    for e in registry:
        table.add_row(
            str(e.index),
            ref(e.proposal_id),
            short_address(e.contributor, me),
            str(e.examples),
            shares_text(e.shares),
            str(e.block_number),
        )
    console.print(table)

    if holders:
        table = Table(title="shareholders")
        table.add_column("address")
        table.add_column("shares", justify="right")
        table.add_column("of total", justify="right")
        table.add_column("claimable (ETH)", justify="right")
        for h in holders:
            table.add_row(
                h.address + (" (you)" if h.address == me else ""),
                shares_text(h.shares),
                percent(h.shares, info.total_shares),
                eth_exact(h.claimable),
            )
        console.print(table)


_FORMAT_HELP = "npz (arrays X and y), csv or parquet (columns f0, f1, ... and label)."


@app.command("download")
def download_command(
    dataset: DatasetArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.", dir_okay=False)],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help=f"{_FORMAT_HELP} Default: from --out's suffix, else npz."),
    ] = None,
    sources: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="URL of a blob store to fetch missing data from (a peer's `store serve`, an "
            "IPFS gateway); repeatable.",
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Write a dataset's accepted examples to a file, each verified against its Merkle root on
    chain; the file can be proposed or used as a validation set as it is."""
    chosen = fmt or out.suffix.lower().lstrip(".") or "npz"
    if chosen not in queries.EXPORT_FORMATS:
        raise typer.BadParameter(
            f"{chosen!r} is not a format to write; use npz, csv or parquet",
            param_hint="'--format'",
        )
    queries.export_target(out)  # refused before anything is downloaded
    # Blob sources: those given here, then those of the settings ($DATABRIGHT_BLOB_SOURCES).
    urls = (*(sources or ()), *get_settings().blob_sources)
    market = Market.connect(rpc, None, data_dir, sources=urls)
    with busy(f"downloading and verifying dataset {dataset}"):
        examples, origin = market.download(dataset)
        queries.export_examples(examples, out, chosen)  # type: ignore[arg-type]
    entries = len(set(origin.tolist()))
    if json_out:
        print_json(
            {
                "dataset_id": dataset,
                "file": str(out),
                "format": chosen,
                "examples": len(examples),
                "registry_entries": entries,
                "verified": True,
            }
        )
        return
    console.print(
        f"wrote {len(examples)} examples of dataset {dataset} from {entries} registry entries "
        f"to {safe(out)} ({chosen}), each verified against the Merkle roots on chain",
        highlight=False,
    )


def _evaluator_command(grant: bool):  # type: ignore[no-untyped-def]
    verb = "grant" if grant else "revoke"

    def command(
        dataset: DatasetArg,
        evaluator: Annotated[
            str,
            typer.Argument(
                parser=ACCOUNT,
                metavar=ACCOUNT.metavar,
                help="The evaluator: an address, or an index in this keystore.",
            ),
        ],
        rpc: RpcOpt = DEFAULT_RPC,
        data_dir: DataDirOpt = DEFAULT_DATA_DIR,
        account: AccountOpt = "0",
        json_out: JsonOpt = False,
    ) -> None:
        who = resolve_account(data_dir, evaluator)
        market = open_market(rpc, data_dir, account)
        change = queries.grant_evaluator if grant else queries.revoke_evaluator
        with busy(f"{verb}ing the evaluator role of dataset {dataset} to {who}"):
            receipt = change(market, dataset, who)
            now = [str(a) for a in queries.evaluators(market, dataset)]
        if json_out:
            print_json(
                {"dataset_id": dataset, "evaluator": who, "granted": grant,
                 "evaluators": now, "tx_hash": receipt.tx_hash}
            )  # fmt: skip
            return
        done = "may now evaluate" if grant else "may no longer evaluate"
        console.print(
            f"{who} {done} dataset {dataset}; evaluators: {', '.join(now) or 'none'}",
            highlight=False,
        )

    command.__doc__ = (
        "Let an account evaluate a dataset's proposals (the initiator only)."
        if grant
        else "Stop an account evaluating a dataset's proposals (the initiator only)."
    )
    return command


app.command("grant-evaluator")(_evaluator_command(grant=True))
app.command("revoke-evaluator")(_evaluator_command(grant=False))


@app.command("transfer-shares")
def transfer_shares_command(
    dataset: DatasetArg,
    to: Annotated[
        str,
        typer.Argument(
            parser=ACCOUNT, metavar=ACCOUNT.metavar, help="Recipient: address or keystore index."
        ),
    ],
    amount: Annotated[str, typer.Argument(help="Shares to move, as a decimal (e.g. 2.5).")],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Move shares of a dataset to another account (dividends already earned stay yours)."""
    units = parse_shares(amount)
    who = resolve_account(data_dir, to)
    market = open_market(rpc, data_dir, account)
    with busy(f"moving {shares_exact(units)} shares of dataset {dataset} to {who}"):
        receipt = queries.transfer_shares(market, dataset, who, units)
        left = market.shares_of(dataset)
    if json_out:
        print_json(
            {"dataset_id": dataset, "from": market.address, "to": who, "shares": units,
             "shares_whole": shares_exact(units), "remaining": left, "tx_hash": receipt.tx_hash}
        )  # fmt: skip
        return
    console.print(
        f"moved {shares_exact(units)} shares of dataset {dataset} to {who}; "
        f"{shares_text(left)} left with {market.address}",
        highlight=False,
    )
