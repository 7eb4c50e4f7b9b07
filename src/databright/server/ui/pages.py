"""The web UI's pages: server-rendered from the index and the chain, one route per page.

Lists come from the index (each page says how fresh it is), what must be exact now (a
proposal's tally, claimable dividends) from the chain, as the REST API does. Every string from
the chain or another user reaches the page through Jinja's autoescaping; the pages hold no
secret and sign nothing: the browser's wallet signs every transaction and sign-in message
(``static/app.js``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from databright import __version__
from databright.chain.artifacts import load_artifact
from databright.chain.clients import DataMarketConstants
from databright.errors import DataBrightError
from databright.market.market import STATUS_NAMES, DatasetInfo
from databright.market.queries import revealed_reports
from databright.models.receipts import RECEIPT_TYPE, ReceiptDomain
from databright.server.api import auth
from databright.server.api.access import gatekeeper
from databright.server.api.compute import compute_reader
from databright.server.api.models import model_reader
from databright.server.api.reads import MAX_LIMIT, checksum, proposal_id_of, ref_of
from databright.server.api.schemas import DatasetOut, IncomeOut
from databright.server.index.schema import IndexedEvent
from databright.server.ui.charts import Chart, Series, bar_chart, stacked_bar_chart, step_chart

if TYPE_CHECKING:
    from fastapi import FastAPI

    from databright.server.platform import Platform

__all__ = ["STATIC_DIR", "assets_built", "install_ui", "shares_text"]

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
BUNDLE = STATIC_DIR / "app.js"
templates = Jinja2Templates(directory=HERE / "templates")

#: The most bars a chart draws (a page stays light; the data table has the rest).
MAX_BARS = 400
#: Colours of a proposal's state in the valuation plot (the evaluators' report's flags).
FLAG_COLOURS = {"suspicious": "#b03a2e", "some mislabelled": "#ca6f1e", "clean": "#1f618d"}
INCOME = [
    Series("training fees", "#1f618d"),
    Series("predictions", "#239b56"),
    Series("direct payments", "#b9770e"),
]
#: The receipt's EIP-712 fields, read from the one place its type is written.
RECEIPT_FIELDS = [
    {"name": name, "type": kind}
    for kind, name in (f.split() for f in RECEIPT_TYPE.partition("(")[2].rstrip(")").split(","))
]
ACCEPTED = next(code for code, name in STATUS_NAMES.items() if name == "accepted")
DatasetId = Annotated[int, PathParam(ge=1, le=2**64 - 1)]
Number = Annotated[int, PathParam(ge=0, le=2**32)]
Address = Annotated[str, PathParam(pattern=r"^0x[0-9a-fA-F]{40}$")]


def assets_built() -> bool:
    """Whether the wallet script was bundled (``make setup`` does it with esbuild)."""
    return BUNDLE.exists()


@cache
def _abi(contract: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The ABI entries the browser needs, from the same artifacts the SDK uses."""
    return [e for e in load_artifact(contract).abi if e.get("name") in names]


@dataclass(frozen=True)
class Holding:
    """A dataset the account holds shares of, as its dashboard shows it."""

    dataset: DatasetInfo
    shares: int
    claimable: int
    income: IncomeOut


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _config(platform: Platform) -> dict[str, Any]:
    status = platform.status()
    model_market = platform.indexer.model_market
    return {
        "chainId": status.chain_id,
        "market": platform.market.contract.address,
        "modelMarket": model_market,
        # Receipts are EIP-712 documents of this domain (models/receipts.py): the wallet signs
        # them, and they are worthless on any other chain or contract.
        "receiptDomain": (
            ReceiptDomain(status.chain_id, model_market).as_dict() if model_market else None
        ),
        "receiptTypes": {"Receipt": RECEIPT_FIELDS},
        "abi": {
            "DataMarket": _abi(
                "DataMarket", ("commit_proposal", "propose", "vote", "finalize", "ProposalCreated")
            ),
            "ShareToken": _abi("ShareToken", ("claim",)),
            "ModelMarket": _abi("ModelMarket", ("deposit", "escrow")),
            "DataAccess": _abi("DataAccess", ("buy",)),
        },
        "seqBits": DataMarketConstants.SEQ_BITS,
    }


def _render(request: Request, template: str, title: str, **context: Any) -> HTMLResponse:
    platform = _platform(request)
    context.update(
        title=title,
        account=auth.current_account(request),
        index=platform.status(),
        config_json=json.dumps(_config(platform)),
        assets_built=assets_built(),
        version=__version__,
    )
    return templates.TemplateResponse(request, template, context)


def _eth(wei: int | str) -> str:
    """Wei as ETH for people: exact to the wei, trailing zeros dropped."""
    w = int(wei)
    whole, frac = divmod(abs(w), 10**18)
    text = f"{whole}" + (f".{frac:018d}".rstrip("0") if frac else "")
    return ("-" if w < 0 else "") + text + " ETH"


def shares_text(amount: int | str) -> str:
    """Shares as people count them (the token has 18 decimals), exact."""
    units = int(amount)
    whole, frac = divmod(units, 10**18)
    return f"{whole:,}" + (f".{frac:018d}".rstrip("0") if frac else "")


def _duration(seconds: int | str) -> str:
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size and s % size == 0:
            return f"{s // size} {unit}"
    return f"{s} s"


templates.env.filters["eth"] = _eth
templates.env.filters["duration"] = _duration
templates.env.filters["shares"] = shares_text


# --- pages ------------------------------------------------------------------------------

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def datasets_page(request: Request, q: Annotated[str, Query(max_length=100)] = "") -> HTMLResponse:
    reader = _platform(request).reader
    found: list[DatasetOut] = []
    after = 0
    while True:  # datasets are few (each is a market of its own); proposals are the many
        page, nxt = reader.datasets(after, MAX_LIMIT)
        found.extend(d for d in page if q.casefold() in d.name.casefold())
        if nxt is None or len(found) >= 500:
            break
        after = int(nxt)
    return _render(request, "datasets.html", "Datasets", datasets=found, q=q)


def _size_over_time(platform: Platform, dataset_id: int) -> Chart:
    """Registered examples by block: each accepted proposal's examples at its settlement."""
    settled, created = aliased(IndexedEvent), aliased(IndexedEvent)
    with Session(platform.engine) as s:
        rows = s.execute(
            select(settled.block_number, created.args)
            .join(
                created,
                and_(
                    created.proposal_id == settled.proposal_id,
                    created.name == "ProposalCreated",
                ),
            )
            .where(
                settled.name == "ProposalFinalized",
                settled.dataset_id == dataset_id,
                settled.status == ACCEPTED,
            )
            .order_by(settled.block_number, settled.log_index)
            .limit(5000)
        ).all()
    points: list[tuple[int, int]] = []
    total = 0
    for block, args in rows:
        total += int(args["examples"])
        if points and points[-1][0] == block:
            points[-1] = (int(block), total)
        else:
            points.append((int(block), total))
    return step_chart(
        "Size over time",
        "Examples registered in the dataset, by block.",
        points,
        "block",
        "examples",
    )


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(request: Request, dataset_id: DatasetId) -> HTMLResponse:
    platform = _platform(request)
    info = platform.market.dataset(dataset_id)  # NotFound for an unknown id
    reader = platform.reader
    proposals, _ = reader.proposals(dataset_id, -1, 50)
    holders = reader.shareholders(dataset_id)
    impact = model_reader(platform).impact(dataset_id)
    revenue = [
        ("training fees", int(impact["training_revenue_wei"])),
        ("predictions", int(impact["prediction_revenue_wei"])),
        ("direct payments", int(impact["other_dividends_wei"])),
    ]
    register = gatekeeper(platform).access()
    who = auth.current_account(request)
    access = None
    if register is not None:
        access = {
            "address": register.contract.address,
            "price": int(register.price(dataset_id)),
            "mine": who is not None and register.has_access(dataset_id, who),
        }
    return _render(
        request,
        "dataset.html",
        info.name,
        access=access,
        info=info,
        proposals=proposals,
        holders=holders,
        impact=impact,
        revenue=revenue,
        size_chart=_size_over_time(platform, dataset_id),
    )


@router.get("/datasets/{dataset_id}/propose", response_class=HTMLResponse)
def propose_page(request: Request, dataset_id: DatasetId) -> HTMLResponse:
    info = _platform(request).market.dataset(dataset_id)
    return _render(request, "propose.html", f"Propose data to {info.name}", info=info)


def _state(flags: list[dict[str, Any]]) -> str:
    kinds = {f.get("kind") for f in flags}
    if kinds - {"mislabelled", None}:
        return "suspicious"
    return "some mislabelled" if kinds else "clean"


def _valuation(reports: list[Any], number: int) -> tuple[Chart, list[dict[str, Any]], Chart]:
    """From the first readable report: every group's value (registry entries and proposals)
    coloured by its flags, this proposal's flags with their reasons, and this proposal's
    per-example values coloured by each example's flag (the evaluator names this proposal
    ``proposal-N``)."""
    key = f"proposal-{number}"
    for r in reports:
        # The evaluator's report holds the valuation's own report under "valuation" (a bare
        # valuation report is read as well).
        body: dict[str, Any] = r.report if isinstance(r.report, dict) else {}
        inner = body.get("valuation")
        valuation: dict[str, Any] = inner if isinstance(inner, dict) else body
        groups = valuation.get("proposals")
        if not isinstance(groups, list):
            continue
        items, flags, mine = [], [], None
        for p in groups:
            if not isinstance(p, dict):
                continue
            name = str(p.get("proposal"))
            state = _state(p.get("flags") or [])
            items.append((name, float(p.get("value") or 0.0), FLAG_COLOURS[state]))
            if name == key:
                flags, mine = list(p.get("flags") or []), p
        chart = bar_chart(
            "Valuation",
            f"Each group's value to the dataset in {r.evaluator}'s report (registry entries "
            "and proposals), coloured by its flags: red suspicious, orange some mislabelled, "
            "blue clean.",
            items[-MAX_BARS:],
        )
        return chart, flags, _examples_chart(mine, r.evaluator)
    empty = bar_chart("Valuation", "No evaluator's report is available yet.", [])
    return empty, [], bar_chart("Examples", "No evaluator's report is available yet.", [])


def _examples_chart(entry: dict[str, Any] | None, evaluator: str) -> Chart:
    values = entry.get("example_values") if entry else None
    if not isinstance(values, list):
        return bar_chart("Examples", "The report does not list this proposal's examples.", [])
    kinds = {
        int(pos): str(kind)
        for pos, kind in (entry or {}).get("example_flags") or []
        if isinstance(pos, int)
    }
    items = [
        (
            f"#{i}" + (f" ({kinds[i]})" if i in kinds else ""),
            float(v or 0.0),
            FLAG_COLOURS[_state([{"kind": kinds[i]}]) if i in kinds else "clean"],
        )
        for i, v in enumerate(values[:MAX_BARS])
    ]
    return bar_chart(
        "Examples",
        f"Each example's value in {evaluator}'s report, coloured by its flag: red suspicious, "
        "orange mislabelled, blue clean.",
        items,
    )


@router.get("/proposals/{dataset_id}/{number}", response_class=HTMLResponse)
def proposal_page(request: Request, dataset_id: DatasetId, number: Number) -> HTMLResponse:
    platform = _platform(request)
    market = platform.market
    info = market.dataset(dataset_id)
    pid = proposal_id_of(dataset_id, number)
    p = market.proposal(pid)
    reports = revealed_reports(market, pid)
    chart, flags, examples = _valuation(reports, number)
    comments = platform.forum.comments(pid, 0, MAX_LIMIT)[0]
    who = auth.current_account(request)
    E = IndexedEvent
    with Session(platform.engine) as session:
        commits = session.execute(
            select(E.account, E.block_number)
            .where(E.proposal_id == pid, E.name == "EvaluationCommitted")
            .order_by(E.block_number, E.log_index)
        ).all()
        voted = who is not None and session.scalar(
            select(E.id).where(E.proposal_id == pid, E.name == "VoteCast", E.account == who)
        )
    return _render(
        request,
        "proposal.html",
        f"Proposal {ref_of(pid)}",
        info=info,
        p=p,
        ref=ref_of(pid),
        reports=reports,
        chart=chart,
        examples_chart=examples,
        flags=flags,
        comments=comments,
        commits=commits,
        voted=bool(voted),
        now=market.gateway.block_timestamp(),
    )


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request) -> HTMLResponse:
    reader = model_reader(_platform(request))
    models, _ = reader.models(None, None, MAX_LIMIT, "score")
    best = {}
    for ds in {m.dataset_id for m in models}:
        b = reader.impact(int(ds)).get("best")
        if b is not None:
            best[ds] = b.model_id if hasattr(b, "model_id") else b["model_id"]
    return _render(request, "models.html", "Model registry", models=models, best=best)


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_page(
    request: Request,
    model_id: Annotated[int, PathParam(ge=1, le=2**64 - 1)],
    node: Annotated[str, Query(max_length=200, pattern=r"^https?://[^\s<>\"']+$")] = "",
) -> HTMLResponse:
    platform = _platform(request)
    model, versions, settlements = model_reader(platform).model(model_id)
    card: dict[str, Any] | None
    try:
        body = json.loads(platform.market.store.get(model.card_cid))
        card = body if isinstance(body, dict) else None
    except (DataBrightError, ValueError):
        card = None
    return _render(
        request,
        "model.html",
        f"Model {model.id}",
        model=model,
        versions=versions,
        settlements=settlements,
        card=card,
        node_url=node,
    )


@router.get("/account", response_class=HTMLResponse, response_model=None)
def my_account(request: Request) -> Response:
    who = auth.current_account(request)
    if who is None:
        return _render(request, "signin.html", "Sign in")
    return RedirectResponse(f"/ui/accounts/{who}", status_code=303)


@router.get("/accounts/{address}", response_class=HTMLResponse)
def account_page(request: Request, address: Address) -> HTMLResponse:
    platform = _platform(request)
    who = checksum(address)
    models = model_reader(platform)
    income, _ = models.income(who, None, -1, MAX_LIMIT)
    holdings = []
    for item in income:
        ds = int(item.dataset_id)
        holdings.append(
            Holding(
                platform.market.dataset(ds),
                int(item.shares),
                int(platform.market.claimable(ds, who)),
                item,
            )
        )
    claimed = _claimed(platform, who)
    chart = stacked_bar_chart(
        "Income",
        "Dividends received per dataset, by where they came from.",
        INCOME,
        [
            (
                f"dataset {h.income.dataset_id}",
                [
                    int(h.income.training_wei),
                    int(h.income.predictions_wei),
                    int(h.income.other_wei),
                ],
            )
            for h in holdings
        ],
    )
    proposals, _ = platform.reader.proposals(None, -1, 50, contributor=who)
    impact = [(h.dataset, models.impact(int(h.income.dataset_id))) for h in holdings]
    return _render(
        request,
        "account.html",
        f"Account {who}",
        who=who,
        mine=auth.current_account(request) == who,
        holdings=holdings,
        chart=chart,
        claimed=claimed,
        proposals=proposals,
        impact=impact,
    )


def _claimed(platform: Platform, who: str) -> dict[int, int]:
    """Dividends the account has withdrawn, per dataset (from the index)."""
    E = IndexedEvent
    amounts: dict[int, int] = {}
    with Session(platform.engine) as s:
        for ds, amount in s.execute(
            select(E.dataset_id, E.amount).where(E.name == "DividendClaimed", E.account == who)
        ):
            if ds is not None:
                amounts[int(ds)] = amounts.get(int(ds), 0) + int(amount or 0)
    return amounts


@router.get("/compute", response_class=HTMLResponse)
def compute_page(request: Request) -> HTMLResponse:
    reader = compute_reader(request)
    return _render(
        request,
        "compute.html",
        "Computation",
        coordinators=reader.coordinators(),
        devices=reader.devices(0, MAX_LIMIT)[0],
        jobs=reader.jobs(0, MAX_LIMIT)[0],
        slashings=reader.slashings(0, MAX_LIMIT)[0],
        federations=reader.federations(0, MAX_LIMIT)[0],
    )


@router.get("/compute/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request, job_id: Annotated[int, PathParam(ge=0, le=2**64 - 1)]
) -> HTMLResponse:
    reader = compute_reader(request)
    job, live, _ = reader.job(job_id)  # NotFound for an unknown id
    return _render(
        request,
        "job.html",
        f"Job {job.id}",
        job=job,
        live=live,
        units=reader.units(job_id, 0, MAX_LIMIT)[0],
        slashings=reader.slashings(0, MAX_LIMIT, job_id=job_id)[0],
    )


def install_ui(app: FastAPI) -> None:
    """Serve the pages under /ui and their assets under /ui/static (built at install time:
    nothing is fetched from a CDN, so the UI works offline and behind firewalls)."""

    def problem_page(request: Request, status: int, title: str, detail: str) -> Response:
        context = {"status": status, "problem": title, "detail": detail}
        try:
            page = _render(request, "error.html", title, **context)
        except Exception:  # the index or node itself failed: a page without their status
            page = templates.TemplateResponse(
                request, "error.html", {**context, "title": title, "bare": True}
            )
        page.status_code = status
        return page

    app.state.problem_page = problem_page
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")

    @app.get("/ui", include_in_schema=False)
    def _ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)
