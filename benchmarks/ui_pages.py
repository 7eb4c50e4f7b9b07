"""First render of the web UI's pages in Chromium, with 10,000 proposals indexed.

    .venv/bin/python benchmarks/ui_pages.py [--loads 5]

One anvil, one real dataset (and its initial data) on chain; two platform servers over it in
this process: one whose SQLite index also holds the 10,000 proposals, 1,000 shareholders and
19 more datasets of ``benchmarks/api.py`` (rows as the indexer writes them), and the peer, the
same pages over the index of the chain alone. Debian's Chromium (Playwright) loads each page
``--loads`` times in a fresh tab; the figure is the navigation's ``loadEventEnd`` (HTML,
stylesheet and script fetched, parsed, rendered), median and worst. Goal (issue 13): under
1 s per page with 10,000 proposals indexed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from api import seed  # the same large index as the API benchmark
from chain_throughput import start
from databright_dev.browser import browser, chromium_missing
from databright_dev.serving import serving

PAGES = {
    "datasets": "/ui/",
    "dataset (5,000 proposals)": "/ui/datasets/1",
    "proposal": "/ui/proposals/1/0",
    "dashboard": "/ui/accounts/{holder}",
    "models": "/ui/models",
    "computation": "/ui/compute",
}


def first_render_ms(context: Any, url: str, loads: int) -> list[float]:
    times = []
    for _ in range(loads):
        tab = context.new_page()
        tab.goto(url, wait_until="load")
        times.append(
            tab.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
        )
        tab.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5, help="loads of each page per index")
    args = parser.parse_args()
    if chromium_missing():
        raise SystemExit(chromium_missing())

    from databright.chain.deploy import deploy
    from databright.chain.gateway import connect
    from databright.demo.cast import digits_scenario
    from databright.market import Governance, Market
    from databright.server.platform import Platform, create_app
    from databright.storage import DatasetSchema, validate_examples

    schema = DatasetSchema(
        task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
    )
    cast = digits_scenario(seed=3, proposal_size=20)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        url, accounts, stop = start("anvil", Path(tmp) / "node")
        stack.callback(stop)
        deploy(connect(url, accounts[0]), Path(tmp))
        market = Market.connect(url, accounts[0], Path(tmp))
        initial = validate_examples(cast.initial_X, cast.initial_y, schema, source="initial")
        market.create_dataset("benchmark", schema, initial, Governance())

        small = Platform(url, Path(tmp), f"sqlite:///{tmp}/small.sqlite3")
        small.indexer.sync(max_steps=50)
        # Filled as benchmarks/api.py fills it (its blocks are synthetic: no chain sync here).
        large = Platform(url, Path(tmp), f"sqlite:///{tmp}/large.sqlite3")
        holder, _ = seed(large.engine, large.indexer.chain_id, large.indexer.market)
        for p in (small, large):
            stack.callback(p.engine.dispose)
        small_url = stack.enter_context(serving(create_app(small)))
        large_url = stack.enter_context(serving(create_app(large)))
        context = stack.enter_context(browser())
        print(f"{'page':<28} {'10k median':>11} {'10k worst':>10} {'peer median':>12} {'ratio':>6}")
        worst = 0.0
        for name, path in PAGES.items():
            path = path.format(holder=holder if "{holder}" in path else "")
            peer = first_render_ms(context, small_url + path, args.loads)
            big = first_render_ms(context, large_url + path, args.loads)
            worst = max(worst, max(big))
            ratio = statistics.median(big) / statistics.median(peer)
            print(
                f"{name:<28} {statistics.median(big):>9.0f}ms {max(big):>8.0f}ms"
                f" {statistics.median(peer):>10.0f}ms {ratio:>6.2f}"
            )
        print(f"\ngoal: every page's first render under 1000 ms with 10,000 proposals indexed;"
              f" worst seen {worst:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
