"""The chain indexer on both nodes and both databases: complete, exact, idempotent, resumable
after a kill -9, and safe across a reorg."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from databright.chain.clients import ProposalStatus
from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import ChainIndexError
from databright.market import Governance, Market
from databright.server.api.reads import IndexReader
from databright.server.index import IndexedEvent, Indexer, IndexState, open_index
from databright.server.index.schema import IndexedBlock, IndexedDataset
from databright.server.platform import FOLLOW_MIN_S, FOLLOW_S, follow_pause
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


def _statuses(rows: list[IndexedEvent]) -> dict[int | None, int | None]:
    """The status on each ProposalCreated row, by proposal."""
    return {r.proposal_id: r.status for r in rows if r.name == "ProposalCreated"}


def _settlements(rows: list[IndexedEvent]) -> dict[int | None, int | None]:
    """What each proposal's status should be: its settlement's, else pending."""
    settled = {r.proposal_id: r.status for r in rows if r.name == "ProposalFinalized"}
    return {p: settled.get(p, int(ProposalStatus.PENDING)) for p in _statuses(rows)}


def _counted(rows: list[IndexedEvent]) -> dict[int, tuple[int, int]]:
    """Each dataset's (proposals, accepted), counted from the events."""
    made = Counter(r.dataset_id for r in rows if r.name == "ProposalCreated")
    accepted = Counter(
        r.dataset_id
        for r in rows
        if r.name == "ProposalFinalized" and r.status == ProposalStatus.ACCEPTED
    )
    return {int(d): (made[d], accepted[d]) for d in made if d is not None}


def _holders(rows: list[IndexedEvent], ds: int) -> list[tuple[str, int]]:
    """A dataset's shareholders, largest first, summed from its Transfer events."""
    balance: Counter[str] = Counter()
    for r in rows:
        if r.name == "Transfer" and r.dataset_id == ds:
            balance[r.args["sender"]] -= int(r.args["value"])
            balance[r.args["receiver"]] += int(r.args["value"])
    held = [(a, b) for a, b in balance.items() if b > 0 and int(a, 16) != 0]
    return sorted(held, key=lambda h: (-h[1], h[0]))


def _counts(engine) -> dict[int, tuple[int, int]]:
    """Each dataset's (proposals, accepted), as the indexer keeps them."""
    with Session(engine) as s:
        return {d.dataset_id: (d.proposals, d.accepted) for d in s.scalars(select(IndexedDataset))}


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
    # A proposal's status is on its ProposalCreated row too; the dataset's counts are kept.
    assert _statuses(rows) == _settlements(rows)
    assert {ProposalStatus.ACCEPTED, ProposalStatus.REJECTED} <= set(_settlements(rows).values())
    assert _counts(engine) == _counted(rows)
    holders = IndexReader(engine).shareholders(ds)
    assert {h.address for h in holders} >= {market.address, node.accounts[1].address}
    assert [(h.address, int(h.shares)) for h in holders] == _holders(rows, ds)
    # Replaying the whole range adds nothing (and counts no transfer twice).
    with Session(engine) as s, s.begin():
        s.execute(update(IndexState).values(indexed_block=start - 1))
    # A new indexer: a running one keeps where it wrote the index in memory (see the next test).
    replay = Indexer(market.gateway, market.contract.address, engine, start_block=start, batch=3)
    assert sum(step.events_added for step in replay.sync()) == 0
    assert len(_indexed(engine)) == len(rows)
    assert _counts(engine) == _counted(rows)
    assert IndexReader(engine).shareholders(ds) == holders
    # The same index cannot be pointed at another market.
    with pytest.raises(ChainIndexError, match="database of its own"):
        Indexer(market.gateway, node.accounts[5].address, engine)
    engine.dispose()


def test_two_indexers_of_one_index_never_write_a_range_twice(
    market: Market, node, database_url: str
) -> None:
    """Each indexer keeps where the index ends in memory; a write from anywhere else than
    where the index ends is refused, and the refused indexer reads the index again."""
    start = market.gateway.block_number()
    ds = _activity(market, node)
    engine = open_index(database_url)
    a, b = (
        Indexer(market.gateway, market.contract.address, engine, start_block=start, batch=2)
        for _ in range(2)
    )
    a.step()
    ahead = b.step()  # b read the index as a left it, and goes on from there
    assert ahead.from_block == start + 2
    refused = a.step()  # a's own end is behind the index's now: nothing written
    assert refused.from_block == start + 2 and refused.to_block < refused.from_block
    assert refused.events_added == 0
    assert a.step().from_block == ahead.to_block + 1  # a read the index again
    for _ in range(100):
        if max(a.step().lag, b.step().lag) == 0:
            break
    rows = _indexed(engine)
    keys = [(r.tx_hash, r.log_index) for r in rows]
    assert len(keys) == len(set(keys)) == _chain_log_count(market, ds, start)
    assert _counts(engine) == _counted(rows)
    assert [(h.address, int(h.shares)) for h in IndexReader(engine).shareholders(ds)] == _holders(
        rows, ds
    )
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


def test_a_settlement_a_reorg_takes_away_leaves_its_proposal_pending(node, tmp_path: Path) -> None:
    if node.kind != "anvil":
        pytest.skip("the embedded node has no snapshots to fork its chain with; anvil does")
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    start = market.gateway.block_number()
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset("reorged", SCHEMA, initial, Governance(voting_period_s=60))
    c = CAST.contributions[0]
    p = market.as_account(node.accounts[1]).propose(
        ds, validate_examples(c.X, c.y, SCHEMA, source="p0")
    )
    market.vote(p.id, True)
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    indexer = Indexer(market.gateway, market.contract.address, engine, start_block=start)
    indexer.sync()
    reader = IndexReader(engine)
    before, holders = _counts(engine), reader.shareholders(ds)
    assert _statuses(_indexed(engine))[p.id] == ProposalStatus.PENDING
    assert str(p.id) in [x.id for x in reader.proposals(ds, 0, 50, "pending")[0]]
    snapshot = market.gateway.request("evm_snapshot", [], "snapshot")
    market.gateway.advance_to(p.deadline)
    market.finalize(p.id)
    indexer.sync()
    assert _statuses(_indexed(engine))[p.id] == ProposalStatus.ACCEPTED
    assert _counts(engine)[ds] == (before[ds][0], before[ds][1] + 1)
    assert node.accounts[1].address in {h.address for h in reader.shareholders(ds)}  # minted
    [accepted] = [x for x in reader.proposals(ds, 0, 50, "accepted")[0] if x.id == str(p.id)]
    assert accepted.shares is not None and int(accepted.yes_votes or 0) > 0  # its outcome
    # The settlement's blocks are replaced by a longer branch without it.
    market.gateway.request("evm_revert", [snapshot], "revert")
    market.gateway.request("anvil_mine", ["0x5"], "mine")
    assert indexer.sync()[0].rolled_back_to is not None
    rows = _indexed(engine)
    assert "ProposalFinalized" not in {r.name for r in rows if r.proposal_id == p.id}
    assert _statuses(rows) == _settlements(rows)
    assert _statuses(rows)[p.id] == ProposalStatus.PENDING
    assert _counts(engine) == before == _counted(rows)
    assert reader.shareholders(ds) == holders
    assert [(h.address, int(h.shares)) for h in holders] == _holders(rows, ds)
    [pending] = [x for x in reader.proposals(ds, 0, 50, "pending")[0] if x.id == str(p.id)]
    assert (pending.shares, pending.yes_votes, pending.no_votes) == (None, None, None)
    assert [r.outcome for r in rows if r.name == "ProposalCreated" and r.proposal_id == p.id] == [
        None
    ]
    assert str(p.id) not in [x.id for x in reader.proposals(ds, 0, 50, "accepted")[0]]
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


def _old_index(database_url: str, revision: str, made: list[dict[str, Any]]) -> None:
    """An index migrated up to ``revision`` only, holding one block and the events ``made``
    (columns as the old schema had them), as an index of that version was left."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from databright.server.index.database import MIGRATIONS
    from databright.server.index.schema import Uint256

    engine = sa.create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    events = sa.table(
        "indexed_events",
        *(sa.column(n) for n in ("block_number", "tx_hash", "log_index", "contract", "name")),
        sa.column("dataset_id", Uint256()),
        sa.column("proposal_id", Uint256()),
        sa.column("status", sa.SmallInteger()),
        sa.column("args", sa.JSON()),
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.execute(sa.text("INSERT INTO indexed_blocks VALUES (5, '0xaa', '0xbb', 1)"))
        connection.execute(
            events.insert(),
            [
                {"block_number": 5, "tx_hash": "0x01", "log_index": i, "contract": "0xC", **row}
                for i, row in enumerate(made)
            ],
        )
    engine.dispose()


def test_migration_0007_fills_statuses_dataset_counts_and_holdings(database_url: str) -> None:
    big = 2**200  # ids are uint256: the backfill matches them exactly
    made = [  # (name, dataset, proposal, status), as an index of 0006 holds them
        ("ProposalCreated", 1, big + 1, None),
        ("ProposalCreated", 1, big + 2, None),
        ("ProposalFinalized", 1, big + 1, 2),
        ("ProposalCreated", 2, big + 3, None),
        ("ProposalFinalized", 2, big + 3, 3),
        ("DatasetCreated", 3, None, None),
        ("Transfer", 1, None, None),  # 10 minted to A
        ("Transfer", 1, None, None),  # A sends B 4
    ]
    a, b, zero = "0x" + "0a" * 20, "0x" + "0b" * 20, "0x" + "00" * 20
    moves = [
        {"sender": zero, "receiver": a, "value": "10"},
        {"sender": a, "receiver": b, "value": "4"},
    ]
    _old_index(
        database_url,
        "0006_compute",
        [
            {"name": n, "dataset_id": d, "proposal_id": p, "status": st,
             "args": moves.pop(0) if n == "Transfer" else {}}
            for n, d, p, st in made
        ],
    )  # fmt: skip
    upgraded = open_index(database_url)  # runs 0007
    rows = _indexed(upgraded)
    assert _statuses(rows) == {big + 1: 2, big + 2: 1, big + 3: 3}  # 1: still pending
    assert [r.status for r in rows if r.name == "DatasetCreated"] == [None]
    assert _counts(upgraded) == {1: (2, 1), 2: (1, 0)} == _counted(rows)
    holders = IndexReader(upgraded).shareholders(1)
    assert [(h.address, int(h.shares)) for h in holders] == [(a, 6), (b, 4)] == _holders(rows, 1)
    upgraded.dispose()


def test_migration_0009_keeps_each_settled_proposals_outcome_on_its_creation_row(
    database_url: str,
) -> None:
    big = 2**200
    outcome = {"shares": str(6 * 10**19), "yes_votes": "5", "no_votes": "1"}
    made = [  # (name, proposal, status, args), as an index of 0008 holds them
        ("ProposalCreated", big + 1, 2, {}),
        ("ProposalCreated", big + 2, 1, {}),
        ("ProposalFinalized", big + 1, 2, {"status": "2", "registry_index": "0", **outcome}),
    ]
    _old_index(
        database_url,
        "0008_access",
        [
            {"name": n, "dataset_id": 1, "proposal_id": p, "status": st, "args": a}
            for n, p, st, a in made
        ],
    )
    upgraded = open_index(database_url)  # runs 0009
    rows = {(r.name, r.proposal_id): r.outcome for r in _indexed(upgraded)}
    assert rows[("ProposalCreated", big + 1)] == outcome  # settled: its outcome, exactly
    assert rows[("ProposalCreated", big + 2)] is None  # pending: none yet
    upgraded.dispose()


@pytest.mark.parametrize(
    ("found", "since_block_s", "pause"),
    [(True, 0.0, 0.0), (False, 0.1, FOLLOW_S), (False, 5.0, 0.5)],
)
def test_the_indexer_thread_pauses_only_when_the_chain_is_quiet(
    found: bool, since_block_s: float, pause: float
) -> None:
    # No pause after new blocks (a fast chain has more by then); a short one while the chain
    # moved a moment ago; the poll interval once it is quiet.
    assert follow_pause(found, since_block_s, poll_s=0.5) == pause


# --- following a fast chain: one request a step, and what makes reading early safe ---------


def _count_requests(gw) -> list[str]:
    """Every request the gateway sends from now on, as "batch" or the method's name."""
    sent: list[str] = []
    provider = gw.w3.provider
    one, many = provider.make_request, provider.make_batch_request

    def counted_one(method, params):
        sent.append(method)
        return one(method, params)

    def counted_many(batch):
        sent.append("batch")
        return many(batch)

    provider.make_request, provider.make_batch_request = counted_one, counted_many
    direct = gw._direct_post()
    if direct is not None:
        post = direct.post

        def counted_post(batch):
            sent.append("batch")
            return post(batch)

        direct.post = counted_post
    return sent


def _dataset(market: Market, name: str) -> tuple[int, Any]:
    """A new dataset and a client of its share token (its ``pay`` is one block, one event)."""
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(name, SCHEMA, initial, Governance())
    return ds, market.gateway.contract("ShareToken", market.contract.share_token(ds))


def test_a_step_following_a_moving_chain_is_one_request(
    market: Market, node, database_url: str
) -> None:
    start = market.gateway.block_number()
    ds, token = _dataset(market, "follow")
    engine = open_index(database_url)
    gw = connect(node.url)
    indexer = Indexer(gw, market.contract.address, engine, start_block=start)
    indexer.sync()
    sent = _count_requests(gw)
    for _ in range(4):
        token.transact("pay", value=1)
        before = len(sent)
        step = indexer.step()
        assert step.to_block == step.from_block == step.head and step.events_added >= 1
        assert sent[before:] == ["batch"]  # head, reorg check, headers and logs at once
    assert indexer._blooms_hold  # every log's address was in its block's bloom
    assert len(_indexed(engine)) == _chain_log_count(market, ds, start)
    engine.dispose()


@pytest.mark.parametrize("empty", [5, 70], ids=["short", "long"])
def test_a_range_after_the_head_is_read_in_one_batch_or_by_event_blocks(
    market: Market, node, tmp_path: Path, empty: int
) -> None:
    """Behind the head, a short range's logs come with all its headers in one batch (the
    head was read first, so they cover every block); a long one's logs, then the headers of
    the blocks that have events (and of its last), not of every block."""
    start = market.gateway.block_number()
    ds, token = _dataset(market, f"range{empty}")
    engine = open_index(f"sqlite:///{tmp_path / 'range.sqlite3'}")
    gw = connect(node.url)
    indexer = Indexer(gw, market.contract.address, engine, start_block=start)
    indexer.sync()  # knows the token now
    token.transact("pay", value=1)
    for _ in range(empty):
        market.gateway.request("evm_mine", [], "mine")
    token.transact("pay", value=1)
    sent = _count_requests(gw)
    [step] = indexer.sync()
    assert step.to_block == market.gateway.block_number()
    # The head (and the reorg check), then the range: in one batch, or the logs and then
    # the headers not fetched ahead of the blocks with events (in one request).
    assert sent[:2] == (["batch", "batch"] if empty < 64 else ["batch", "eth_getLogs"])
    assert len(sent) == (2 if empty < 64 else 3)
    rows = _indexed(engine)
    assert len(rows) == _chain_log_count(market, ds, start)
    with Session(engine) as s:
        kept = set(s.scalars(select(IndexedBlock.number)))
    assert kept == {r.block_number for r in rows} | {step.to_block}
    engine.dispose()


def test_nothing_is_missed_while_the_chain_is_written_at_full_speed(
    market: Market, node, database_url: str
) -> None:
    """A writer pipelines payments (a block each) while the indexer follows: every event is
    indexed once, whether a step read it early or after its headers."""
    import threading

    start = market.gateway.block_number()
    ds, token = _dataset(market, "load")
    engine = open_index(database_url)
    indexer = Indexer(connect(node.url), market.contract.address, engine, start_block=start)
    indexer.sync()

    def write() -> None:
        for _ in range(6):
            token.gateway.wait_many([token.submit("pay", value=1) for _ in range(10)])

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        indexer.step()
    writer.join()
    indexer.sync()
    rows = _indexed(engine)
    keys = [(r.tx_hash, r.log_index) for r in rows]
    assert len(keys) == len(set(keys)) == _chain_log_count(market, ds, start)
    assert sum(r.name == "DividendPaid" for r in rows) == 60
    engine.dispose()


def _following(market: Market, node, tmp_path: Path) -> tuple[Indexer, int, Any, str]:
    """An indexer caught up with a chain whose next block pays a dividend (not read yet):
    the indexer, that block, its header and the hash of the block before it."""
    start = market.gateway.block_number()
    _, token = _dataset(market, "early")
    engine = open_index(f"sqlite:///{tmp_path / 'early.sqlite3'}")
    indexer = Indexer(connect(node.url), market.contract.address, engine, start_block=start)
    indexer.sync()
    block = token.transact("pay", value=1).block_number
    header = indexer._header(block)
    assert header is not None
    parent = indexer.known_version()
    assert parent is not None and parent[0] == block - 1 and parent[1] is not None
    return indexer, block, header, parent[1]


def _read_early(indexer: Indexer, block: int, headers: dict[int, Any], logs: list[Any], parent):
    from databright.server.index.indexer import _Ahead

    at = indexer._position()
    contracts = tuple(indexer._contracts(at.tokens))
    ahead = _Ahead(headers, logs, contracts)
    return indexer._read(block, block, at.tokens, at.models, ahead, parent)


def test_logs_read_before_their_block_was_mined_are_read_again(
    market: Market, node, tmp_path: Path
) -> None:
    """The batch's eth_getLogs may run before the node mines a block whose header a later
    call of the same batch returns: no log of it came back, but its bloom names our token,
    so the logs are read again once the header is known."""
    indexer, block, header, parent = _following(market, node, tmp_path)
    rows, blocks, *_ = _read_early(indexer, block, {block: header}, [], parent)
    assert rows is not None and [r["name"] for r in rows] == ["DividendPaid"]
    assert [b["number"] for b in blocks] == [block]
    assert indexer._blooms_hold


def test_a_node_whose_blooms_leave_out_a_log_is_not_trusted_with_them(
    market: Market, node, tmp_path: Path
) -> None:
    indexer, block, header, parent = _following(market, node, tmp_path)
    logs = indexer._logs(block, block, indexer._contracts(indexer._position().tokens))
    assert logs  # the payment's
    blank = {**header, "logsBloom": "0x" + "00" * 256}
    rows, *_ = _read_early(indexer, block, {block: blank}, logs, parent)
    assert not indexer._blooms_hold  # and so no logs are read early any more
    assert rows is not None and [r["name"] for r in rows] == ["DividendPaid"]
    moving = indexer.gateway.ask_batch
    asked: list[list[str]] = []

    def recording(calls, *args, **kwargs):
        asked.append([c.method for c in calls])
        return moving(calls, *args, **kwargs)

    indexer.gateway.ask_batch = recording  # type: ignore[method-assign]
    indexer.step()
    assert asked and "eth_getLogs" not in asked[0]


def test_headers_that_do_not_descend_from_the_index_end_drop_the_batch(
    market: Market, node, tmp_path: Path
) -> None:
    """Each call of a batch may see another chain (a reorg between them): a header whose
    parent is not the block the index ends at drops the batch, to be read again."""
    indexer, block, header, parent = _following(market, node, tmp_path)
    logs = indexer._logs(block, block, indexer._contracts(indexer._position().tokens))
    rows, *_ = _read_early(indexer, block, {block: header}, logs, "0x" + "ab" * 32)
    assert rows is None
    rows, *_ = _read_early(indexer, block, {block: header}, logs, parent)
    assert rows is not None and len(rows) == 1


def test_an_address_bloom_mask_is_what_the_node_sets(market: Market, node, tmp_path: Path) -> None:
    indexer, block, header, _ = _following(market, node, tmp_path)
    [log] = indexer._logs(block, block, indexer._contracts(indexer._position().tokens))
    bloom = int(header["logsBloom"], 16)
    mask = indexer._bloom_mask(log["address"])
    assert bin(mask).count("1") in (1, 2, 3) and bloom & mask == mask
    assert indexer._bloom_mask(log["address"].upper().replace("0X", "0x")) == mask
    absent = indexer._bloom_mask("0x" + "00" * 19 + "01")
    assert bloom & absent != absent  # a few bits set of 2048: another address is not named


def test_a_reorg_while_following_is_rolled_back(node, tmp_path: Path) -> None:
    """A branch of the same length replaces the blocks an indexer that reads early has
    indexed: the reorg check sees it, and the new branch's events replace the old ones."""
    if node.kind != "anvil":
        pytest.skip("the embedded node has no snapshots to fork its chain with; anvil does")
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    start = market.gateway.block_number()
    ds, token = _dataset(market, "fork")
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    indexer = Indexer(connect(node.url), market.contract.address, engine, start_block=start)
    indexer.sync()
    snapshot = market.gateway.request("evm_snapshot", [], "snapshot")
    for _ in range(3):
        token.transact("pay", value=1)
        indexer.step()  # one block each, read early
    market.gateway.request("evm_revert", [snapshot], "revert")
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    token = market.gateway.contract("ShareToken", token.address)
    for _ in range(3):
        token.transact("pay", value=2)
    steps = indexer.sync()
    assert steps[0].rolled_back_to is not None
    paid = [r.args["amount"] for r in _indexed(engine) if r.name == "DividendPaid"]
    assert paid == ["2", "2", "2"]
    assert len(_indexed(engine)) == _chain_log_count(market, ds, start)
    engine.dispose()


@pytest.mark.parametrize(
    ("since_block_s", "pause"),
    [(0.0, FOLLOW_MIN_S), (0.004, 0.002), (0.06, 0.03), (0.3, FOLLOW_S), (0.5, 0.5)],
)
def test_the_pause_while_the_chain_moves_grows_with_the_time_since_its_last_block(
    since_block_s: float, pause: float
) -> None:
    # Half the time since the last new block: a chain mining every few milliseconds is asked
    # again within one, a fixed FOLLOW_S would let anvil's blocks pile up (20 a pause).
    assert follow_pause(False, since_block_s, poll_s=0.5) == pytest.approx(pause)
