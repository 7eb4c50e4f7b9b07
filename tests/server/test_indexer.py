"""The chain indexer on both nodes and both databases: complete, exact, idempotent, resumable
after a kill -9, and safe across a reorg."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import ChainIndexError
from databright.market import Governance, Market
from databright.server.index import IndexedEvent, Indexer, IndexState, open_index
from databright.storage import DatasetSchema, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=11, proposal_size=20)
TEN_ETH = 10 * 10**18  # over 2**63: exact only if uint256 is stored exactly


def _activity(market: Market, node) -> int:
    """A dataset, two proposals (one accepted), votes and a dividend; returns the dataset."""
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset("idx", SCHEMA, initial, Governance(voting_period_s=60))
    for i in (0, 1):
        c = CAST.contributions[i]
        p = market.as_account(node.accounts[1 + i]).propose(
            ds, validate_examples(c.X, c.y, SCHEMA, source=f"p{i}")
        )
        market.vote(p.id, i == 0)
        market.gateway.advance_to(p.deadline)
        market.finalize(p.id)
    market.pay(ds, TEN_ETH)
    return ds


@pytest.fixture
def market(node, tmp_path: Path) -> Market:
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    return Market.connect(node.url, node.accounts[0], tmp_path)


def _chain_log_count(market: Market, ds: int, start: int) -> int:
    """Logs the chain has for the market and the dataset's share token since ``start``."""
    token = market.contract.share_token(ds)
    gw = market.gateway
    return len(gw.logs(market.contract.address, [], start)) + len(gw.logs(token, [], start))


def _indexed(engine) -> list[IndexedEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(IndexedEvent).order_by(IndexedEvent.id)))


def test_everything_the_chain_emitted_is_indexed_exactly_once(
    market: Market, node, database_url: str
) -> None:
    start = market.gateway.block_number()
    ds = _activity(market, node)
    engine = open_index(database_url)
    indexer = Indexer(market.gateway, market.contract.address, engine, start_block=start, batch=3)
    steps = indexer.sync()
    assert indexer.lag() == 0 and steps[-1].lag == 0
    rows = _indexed(engine)
    assert len(rows) == _chain_log_count(market, ds, start)
    names = [r.name for r in rows]
    for name in ("DatasetCreated", "ProposalCreated", "VoteCast", "ProposalFinalized"):
        assert name in names
    assert {"Transfer", "DividendPaid"} <= set(names)  # the share token's, found via the market
    [paid] = [r for r in rows if r.name == "DividendPaid"]
    assert paid.amount == TEN_ETH and paid.args["amount"] == str(TEN_ETH) and paid.dataset_id == ds
    votes = [r for r in rows if r.name == "VoteCast"]
    assert all(r.account == market.address and r.proposal_id for r in votes)
    # Replaying the whole range adds nothing.
    with Session(engine) as s, s.begin():
        s.execute(update(IndexState).values(indexed_block=start - 1))
    assert sum(step.events_added for step in indexer.sync()) == 0
    assert len(_indexed(engine)) == len(rows)
    # The same index cannot be pointed at another market.
    with pytest.raises(ChainIndexError, match="database of its own"):
        Indexer(market.gateway, node.accounts[5].address, engine)
    engine.dispose()


def test_a_reorg_is_rolled_back_and_reindexed(node, tmp_path: Path) -> None:
    if node.kind != "anvil":
        pytest.skip("the embedded node has no snapshots to fork its chain with; anvil does")
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    start = market.gateway.block_number()
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    market.create_dataset("before", SCHEMA, initial, Governance())
    snapshot = market.gateway.request("evm_snapshot", [], "snapshot")
    market.create_dataset("orphaned", SCHEMA, initial, Governance())
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    indexer = Indexer(market.gateway, market.contract.address, engine, start_block=start)
    indexer.sync()
    assert "orphaned" in [r.args.get("name") for r in _indexed(engine)]
    market.gateway.request("evm_revert", [snapshot], "revert")
    market.gateway.request("anvil_mine", ["0x3"], "mine")  # the new branch outgrows the old
    # A new connection: the old one's nonce counts the transaction the revert undid.
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    market.create_dataset("winner", SCHEMA, initial, Governance())
    steps = indexer.sync()
    assert steps[0].rolled_back_to is not None
    named = [r.args.get("name") for r in _indexed(engine) if r.name == "DatasetCreated"]
    assert named == ["before", "winner"]
    engine.dispose()


def test_a_killed_indexer_resumes_where_its_last_batch_ended(
    market: Market, node, tmp_path: Path
) -> None:
    start = market.gateway.block_number()
    _activity(market, node)
    url = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    open_index(url).dispose()
    script = (
        "import sys, time\n"
        "from databright.chain.gateway import connect\n"
        "from databright.server.index import Indexer, open_index\n"
        "ix = Indexer(connect(sys.argv[1]), sys.argv[2], open_index(sys.argv[3]),"
        " start_block=int(sys.argv[4]), batch=1)\n"
        "while True:\n"
        "    ix.step(); time.sleep(0.05)\n"
    )
    args = [sys.executable, "-c", script, node.url, market.contract.address, url, str(start)]
    for _ in range(3):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    engine = open_index(url)
    indexer = Indexer(market.gateway, market.contract.address, engine, start_block=start)
    partial = len(_indexed(engine))
    indexer.sync()
    rows = _indexed(engine)
    assert partial <= len(rows)
    keys = [(r.tx_hash, r.log_index) for r in rows]
    assert len(keys) == len(set(keys))
    fresh = open_index(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    Indexer(market.gateway, market.contract.address, fresh, start_block=start).sync()
    assert sorted(keys) == sorted((r.tx_hash, r.log_index) for r in _indexed(fresh))
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(IndexedEvent)) == len(rows)
    engine.dispose()
    fresh.dispose()


def test_migrations_upgrade_an_old_index_in_place(database_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from databright.server.index.database import MIGRATIONS

    engine = sa.create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(sa.text("INSERT INTO indexed_blocks VALUES (5, '0xaa', '0xbb', 1)"))
        connection.execute(
            sa.text(
                "INSERT INTO indexed_events (block_number, tx_hash, log_index, contract, name,"
                " args) VALUES (5, '0x01', 0, '0xC', 'ProposalFinalized', :args)"
            ),
            {"args": '{"status": "2", "shares": "7"}'},
        )
    engine.dispose()
    upgraded = open_index(database_url)  # runs 0002: the status column, filled from the args
    with Session(upgraded) as s:
        [row] = s.scalars(select(IndexedEvent))
        assert row.status == 2 and row.args["shares"] == "7"
    upgraded.dispose()
