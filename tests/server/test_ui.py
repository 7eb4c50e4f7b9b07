"""The web UI in a real browser (Debian's Chromium under Playwright) over a real node, a real
platform server and its index, on both nodes: a shareholder signs in with the injected wallet,
proposes a file, votes, comments, finalizes, and claims a dividend; every page is checked with
axe-core and photographed into build/screenshots/ (the README says where to look)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from databright_dev.browser import InjectedWallet, browser, chromium_missing
from databright_dev.serving import serving

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.market import DataAccess, Governance, Market
from databright.models import ModelMarket, Terms
from databright.server.api.reads import proposal_id_of
from databright.server.platform import Platform, create_app
from databright.server.serving import serving_app
from databright.server.ui.pages import assets_built, shares_text
from databright.storage import DatasetSchema, validate_examples

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
AXE = ROOT / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=29, proposal_size=20)
HOSTILE = "<img src=x onerror=1>"  # a dataset name and a comment must show as text
SPEC = {
    "input_shape": [64],
    "classes": 10,
    "layers": [{"type": "Linear", "out_features": 10}],
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.02},
    "epochs": 2,
    "batch_size": 32,
    "seed": 0,
    "holdout": 0.2,
}
TERMS = Terms(
    training_fee_wei=10**15,
    margin_bps=100,
    base_price_wei=10**9,
    price_slope_wei=10**12,
    commit_period_s=60,
    reveal_period_s=60,
)
PAID = 2 * 10**18
ACCESS_PRICE = 10**16


@dataclass
class World:
    node: Any
    market: Market
    models: ModelMarket
    ds: int
    url: str
    model_id: int
    priced: int


@pytest.fixture(scope="module")
def world(node, tmp_path_factory) -> Iterator[World]:
    if not assets_built():
        pytest.fail("the UI's script is not built: run make setup (esbuild bundles it)")
    data_dir = tmp_path_factory.mktemp(f"ui-{node.kind}")
    deploy(connect(node.url, node.accounts[0]), data_dir)
    market = Market.connect(node.url, node.accounts[0], data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(HOSTILE, SCHEMA, initial, Governance(voting_period_s=120))
    # Other examples than the free dataset's: a blob of a priced dataset is withheld everywhere.
    other = validate_examples(CAST.initial_X[:60], CAST.initial_y[:60], SCHEMA, source="other")
    priced = market.create_dataset("priced", SCHEMA, other, Governance())
    DataAccess.over(market).set_price(priced, ACCESS_PRICE)
    mm = ModelMarket.over(market)
    mm.set_terms(ds, TERMS)
    dev = mm.as_account(node.accounts[2])
    trained, _ = dev.train(ds, dev.load_spec(SPEC))
    model = dev.register(
        trained, name="linear", price_wei=TERMS.base_price_wei, node=node.accounts[3].address
    )
    server = Platform(node.url, data_dir, poll_s=0.1)
    server.start()
    try:
        with serving(create_app(server)) as url:
            _caught_up(url, market)
            yield World(node, market, mm, ds, url, int(model.id), priced)
    finally:
        server.stop()


def _caught_up(url: str, market: Market) -> None:
    head = market.gateway.block_number()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        index = requests.get(f"{url}/api/v1/status", timeout=10).json()["index"]
        if index["indexed_block"] >= head:
            return
        time.sleep(0.1)
    raise AssertionError(f"the index did not catch up: {index}")


@contextmanager
def _tab(world: World, account: Any) -> Iterator[tuple[Any, InjectedWallet]]:
    """A fresh browser whose wallet holds ``account``; the page's script must not fail."""
    wallet = InjectedWallet(account, world.node.url, world.node.chain_id)
    with browser() as context:
        tab = context.new_page()
        wallet.install(tab)
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        yield tab, wallet
        assert not errors, f"the page's script failed: {errors}"


@pytest.fixture
def page(world: World) -> Iterator[tuple[Any, InjectedWallet]]:
    with _tab(world, world.node.accounts[0]) as opened:
        yield opened


def _accessible(tab: Any, name: str) -> None:
    """axe-core (from npm) finds no violation on the page."""
    tab.add_script_tag(path=str(AXE))
    result = tab.evaluate("async () => await axe.run(document)")
    violations = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
    ]
    assert not violations, f"{name}: {violations}"


def _shot(tab: Any, kind: str, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{kind}-{name}.png"), full_page=True)


def _status(tab: Any, pattern: str) -> str:
    box = tab.locator("#tx-status")
    box.wait_for(state="visible", timeout=30_000)
    tab.wait_for_function(
        "p => new RegExp(p).test(document.getElementById('tx-status').textContent)",
        arg=pattern,
        timeout=30_000,
    )
    text: str = box.text_content() or ""
    return text


def _chart_rows(tab: Any, figure: str) -> list[list[str]]:
    rows: list[list[str]] = tab.eval_on_selector_all(
        f"#{figure} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    return rows


def test_a_shareholder_signs_in_proposes_votes_comments_finalizes_and_claims(
    world: World, page, tmp_path
) -> None:
    tab, wallet = page
    me = world.node.accounts[0].address
    kind = world.node.kind

    tab.goto(f"{world.url}/ui/")
    tab.wait_for_selector("html[data-ready=true]")
    # The hostile name is text: no <img> was made of it.
    assert tab.locator("main img").count() == 0
    assert tab.get_by_role("link", name=HOSTILE).count() == 1
    _accessible(tab, "datasets")
    _shot(tab, kind, "datasets")

    tab.get_by_role("button", name="Connect wallet and sign in").click()
    tab.wait_for_selector("[data-testid=signed-in]", timeout=30_000)
    assert tab.locator("[data-testid=signed-in]").text_content() == me
    assert "personal_sign" in wallet.requests

    # The dashboard before any payment: an empty income chart.
    tab.goto(f"{world.url}/ui/account")
    assert tab.url.endswith(f"/ui/accounts/{me}")
    before = _chart_rows(tab, "income-chart")

    # Propose a file from the browser: upload, then two transactions from the wallet.
    contribution = CAST.contributions[0]
    data = tmp_path / "mine.npz"
    np.savez(data, X=contribution.X.astype(np.float32), y=contribution.y)
    tab.goto(f"{world.url}/ui/datasets/{world.ds}/propose")
    tab.set_input_files("#data-file", str(data))
    tab.get_by_role("button", name="Propose").click()
    tab.wait_for_function(
        "() => /\\/ui\\/proposals\\/\\d+\\/\\d+$/.test(location.pathname)"
        " || document.querySelector('#tx-status.error')",
        timeout=60_000,
    )
    assert re.search(r"/ui/proposals/\d+/\d+$", tab.url), (
        tab.locator("#tx-status").text_content(),
        wallet.errors,
    )
    assert wallet.requests.count("eth_sendTransaction") == 2
    assert tab.locator("[data-testid=status]").text_content().startswith("pending")
    ref = tab.url.rsplit("/ui/proposals/", 1)[1]

    tab.get_by_role("button", name="Vote yes").click()
    tab.wait_for_function(
        "() => document.querySelector('[data-testid=yes]').textContent !== '0'", timeout=30_000
    )
    shares = world.market.token(world.ds).balanceOf(me)
    assert tab.locator("[data-testid=yes]").text_content() == shares_text(shares)
    assert tab.get_by_role("button", name="Vote yes").count() == 0  # one vote per account
    assert tab.get_by_text("You have voted on this proposal.").count() == 1

    tab.fill("#comment-body", f"Good data. {HOSTILE}")
    tab.get_by_role("button", name="Sign and post").click()
    tab.wait_for_selector("[data-testid=comments] li[id^=comment-]", timeout=30_000)
    assert tab.locator("[data-testid=comments] .body").text_content() == f"Good data. {HOSTILE}"
    assert tab.locator("main img").count() == 0
    _accessible(tab, "proposal")
    _shot(tab, kind, "proposal")

    proposal = world.market.proposal(proposal_id_of(*(int(x) for x in ref.split("/"))))
    world.market.gateway.advance_to(proposal.deadline)
    tab.reload()
    tab.get_by_role("button", name="Finalize").click()
    tab.wait_for_function(
        "() => document.querySelector('[data-testid=status]').textContent === 'accepted'",
        timeout=30_000,
    )

    # A payment to the dataset: the dashboard's chart changes, then the shareholder claims.
    world.market.as_account(world.node.accounts[3]).pay(world.ds, PAID)
    _caught_up(world.url, world.market)
    tab.goto(f"{world.url}/ui/account")
    after = _chart_rows(tab, "income-chart")
    assert after != before and after[0][3] != "0"  # direct payments now show
    claimable = world.market.claimable(world.ds, me)
    assert claimable > 0
    _accessible(tab, "dashboard")
    _shot(tab, kind, "dashboard")
    tab.get_by_role("button", name="Claim").click()
    tab.wait_for_function(
        f"() => document.querySelector('[data-testid=claimable-{world.ds}]')"
        ".textContent.trim().startsWith('0 ETH')",
        timeout=30_000,
    )
    assert world.market.claimable(world.ds, me) == 0
    claimed = tab.locator(f"[data-testid=claimed-{world.ds}]").text_content()
    assert claimed != "0 ETH"


def test_every_page_renders_escaped_accessible_and_photographed(world: World, page) -> None:
    tab, _ = page
    kind = world.node.kind
    pages = {
        "dataset": f"/ui/datasets/{world.ds}",
        "initial-data": f"/ui/proposals/{world.ds}/0",
        "models": "/ui/models",
        "model": f"/ui/models/{world.model_id}",
        "computation": "/ui/compute",
        "signin": "/ui/account",
    }
    links: set[str] = set()
    for name, path in pages.items():
        response = tab.goto(f"{world.url}{path}")
        assert response is not None and response.status == 200, name
        tab.wait_for_selector("html[data-ready=true]")
        assert tab.locator("main img").count() == 0, name
        _accessible(tab, name)
        _shot(tab, kind, name)
        links.update(tab.eval_on_selector_all("a[href^='/']", "as => as.map(a => a.href)"))
    # Every link the pages hold leads somewhere (the blob gateway's links name a format).
    broken = [(u, r.status) for u in sorted(links) if (r := tab.request.get(u)).status >= 400]
    assert not broken, broken
    tab.goto(f"{world.url}/ui/models")
    assert tab.get_by_role("link", name=str(world.model_id)).count() >= 1


def test_bad_requests_get_a_page_with_one_sentence(world: World, page) -> None:
    tab, _ = page
    for path, status in (
        ("/ui/datasets/999", 404),
        ("/ui/proposals/1/999", 404),
        ("/ui/models/999", 404),
        ("/ui/accounts/0x1234", 422),
        ("/ui/datasets/abc", 422),
    ):
        response = tab.goto(f"{world.url}{path}")
        assert response is not None and response.status == status, path
        text = tab.locator(".problem").text_content() or ""
        assert text and "Traceback" not in tab.content(), path
    _shot(tab, world.node.kind, "not-found")


def test_the_wallet_declining_or_on_another_chain_sends_nothing(world: World, page) -> None:
    tab, wallet = page
    tab.goto(f"{world.url}/ui/proposals/{world.ds}/0")
    tab.wait_for_selector("html[data-ready=true]")
    wallet.declining = True
    tab.get_by_role("button", name="Connect wallet and sign in").click()
    assert "declined" in _status(tab, "declined")
    assert "eth_sendTransaction" not in wallet.requests

    wallet.declining, wallet.chain_id = False, world.node.chain_id + 1
    tab.get_by_role("button", name="Connect wallet and sign in").click()
    text = _status(tab, "switch networks")
    assert f"chain {world.node.chain_id + 1}" in text


def test_a_refused_file_is_explained_and_nothing_is_sent(world: World, page, tmp_path) -> None:
    tab, wallet = page
    tab.goto(f"{world.url}/ui/")
    tab.get_by_role("button", name="Connect wallet and sign in").click()
    tab.wait_for_selector("[data-testid=signed-in]", timeout=30_000)
    bad = tmp_path / "bad.npz"
    np.savez(bad, X=np.zeros((3, 5), np.float32), y=np.zeros(3, np.int64))  # wrong shape
    tab.goto(f"{world.url}/ui/datasets/{world.ds}/propose")
    tab.set_input_files("#data-file", str(bad))
    tab.get_by_role("button", name="Propose").click()
    text = _status(tab, "refused")
    assert "Your file was refused" in text and "Traceback" not in text
    assert "eth_sendTransaction" not in wallet.requests
    assert json.loads(requests.get(f"{world.url}/api/v1/status", timeout=10).text)["index"]


def test_a_user_pays_for_predictions_with_receipts_the_wallet_signs(world: World, page) -> None:
    tab, wallet = page
    me = world.node.accounts[0].address
    path = world.models.as_account(world.node.accounts[3]).serving(world.model_id)
    price = world.models.model(world.model_id).price_wei
    with serving(serving_app(path)) as node_url:
        tab.goto(f"{world.url}/ui/")
        tab.get_by_role("button", name="Connect wallet and sign in").click()
        tab.wait_for_selector("[data-testid=signed-in]", timeout=30_000)
        tab.goto(f"{world.url}/ui/models/{world.model_id}?node={node_url}")
        tab.wait_for_selector("html[data-ready=true]")
        for n, rows in enumerate(([0], [1, 2]), start=1):
            examples = [CAST.validation_X[i].astype(float).tolist() for i in rows]
            tab.fill("#inputs", json.dumps(examples))
            tab.get_by_role("button", name="Pay and predict").click()
            tab.wait_for_function(
                "n => (document.getElementById('prediction').textContent.match(/,/g) || [])"
                ".length === n",
                arg=len(rows) - 1,
                timeout=30_000,
            )
            _status(tab, "served and paid")
            text = tab.locator("[data-testid=prediction]").text_content() or ""
            labels = re.match(r"Predictions: ([\d, ]+);", text)
            assert labels is not None, text
            assert len(labels.group(1).split(", ")) == len(rows)
            last = path.book.latest(world.model_id, me)
            assert last is not None and last.nonce == n
        assert last.total == 3 * price  # one, then two predictions: cumulative
        # One deposit (for ten more), then the escrow covered the second request.
        assert wallet.requests.count("eth_sendTransaction") == 1
        assert wallet.requests.count("eth_signTypedData_v4") == 2

        tab.fill("#inputs", "[[1, 2")
        tab.get_by_role("button", name="Pay and predict").click()
        assert "not JSON" in _status(tab, "not JSON")
        tab.fill("#inputs", json.dumps([[0.0] * 3]))  # the model takes 64 features
        tab.get_by_role("button", name="Pay and predict").click()
        assert "serving node refused" in _status(tab, "refused")
        assert path.book.latest(world.model_id, me).total == 3 * price  # nothing more owed


def test_the_keyboard_alone_signs_in_and_reaches_every_page(world: World, page) -> None:
    tab, _ = page
    tab.goto(f"{world.url}/ui/")
    tab.wait_for_selector("html[data-ready=true]")
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.textContent") == "Skip to content"
    names = []
    for _ in range(12):  # the navigation, then the wallet's button
        tab.keyboard.press("Tab")
        names.append(tab.evaluate("document.activeElement.textContent.trim()"))
        if names[-1] == "Connect wallet and sign in":
            break
    assert names[:6] == ["DataBright", "Datasets", "Models", "Dashboard", "Computation", "API"]
    tab.keyboard.press("Enter")
    tab.wait_for_selector("[data-testid=signed-in]", timeout=30_000)


def test_a_newcomer_buys_access_and_the_gatekeeper_serves_the_data(world: World) -> None:
    buyer = world.node.accounts[5]
    data = f"{world.url}/api/v1/datasets/{world.priced}/data"
    with _tab(world, buyer) as (tab, wallet):
        tab.goto(f"{world.url}/ui/")
        tab.get_by_role("button", name="Connect wallet and sign in").click()
        tab.wait_for_selector("[data-testid=signed-in]", timeout=30_000)
        assert tab.goto(data).status == 402  # signed in, not paid
        shown = tab.goto(f"{world.url}/ui/datasets/{world.priced}")
        assert shown is not None and shown.status == 200, shown and shown.text()
        assert "0.01 ETH for access" in (tab.locator("[data-testid=access]").text_content() or "")
        before = world.market.token(world.priced).totalSupply()
        tab.get_by_role("button", name="Buy access").click()
        tab.wait_for_function(
            "() => document.querySelector('[data-testid=access]').textContent"
            ".includes('You have access')",
            timeout=30_000,
        )
        assert wallet.requests.count("eth_sendTransaction") == 1
        assert DataAccess.over(world.market).has_access(world.priced, buyer.address)
        assert world.market.token(world.priced).totalSupply() == before  # paid, not minted
        listing = tab.goto(data)
        assert listing is not None and listing.status == 200
        body = listing.json()
        assert body["account"] == buyer.address and len(body["entries"]) == 1  # the initial data
        [entry] = body["entries"]
        assert entry["examples"] == "60"
        blob = tab.request.get(f"{world.url}{entry['url']}")  # the session's cookie goes along
        assert blob.status == 200 and len(blob.body()) > 0
