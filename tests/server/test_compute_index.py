"""The compute market and the weight sales in the index and the REST API, over a real node
(anvil), a real uvicorn and both databases: a small story driven through the SDKs (devices
that stay, leave, get slashed; jobs that stay open, close, expire and are reclaimed; units
paid to several workers; an honest sale and a cancelled one), then the index checked against
the chain, replayed without a duplicate, given late, migrated and rolled back across a reorg;
and the API's lists, pages, live escrow, evidence links and problem documents."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from html import unescape as html_unescape
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from databright_dev.serving import serving
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from databright.chain.clients import ComputeMarketClient
from databright.chain.deploy import deploy, load_deployment
from databright.chain.gateway import connect
from databright.compute.attestation import SoftwareProvider, report_data_for
from databright.compute.market import ComputeMarket, unit_key
from databright.compute.replication import Evidence
from databright.demo.cast import digits_scenario
from databright.errors import ChainIndexError, NotFound
from databright.market import Governance, Market
from databright.models import ModelMarket, Terms
from databright.models.weights import WeightMarket
from databright.server.api.compute_reads import ComputeReader
from databright.server.index import (
    IndexedDevice,
    IndexedEvent,
    IndexedJob,
    IndexedSale,
    IndexedUnitPayment,
    Indexer,
    IndexState,
    open_index,
)
from databright.server.platform import Platform, create_app
from databright.storage import DatasetSchema, validate_examples
from databright.types import Wei

ANVIL = pytest.mark.parametrize("node", ["anvil"], indirect=True)

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=5, proposal_size=20)
SPEC = {
    "input_shape": [64],
    "classes": 10,
    "layers": [{"type": "Linear", "out_features": 10}],
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.01},
    "epochs": 1,
    "batch_size": 64,
    "seed": 0,
    "holdout": 0.2,
}
FEE = 10**15
STAKE = 2 * 10**16
CLASS = "torch-test/avx2/t1"
# Over 2**64: exact only if uint256 is kept exactly (in the escrow and in what the payer gets).
BIG = 20 * 10**18
PRICE = 10**16
FED = 10**16


@dataclass
class World:
    node: Any
    data_dir: Path
    start: int
    admin: ComputeMarket
    coordinator: str
    payer: ComputeMarket
    w1: ComputeMarket  # stays, adds stake
    w2: ComputeMarket  # asks to unstake
    cheater: ComputeMarket  # slashed
    leaver: ComputeMarket  # takes its stake back
    open_job: int
    closed_job: int
    reclaimed_job: int
    expired_job: int  # past its expiry, never reclaimed
    evidence_cid: str
    model_id: int
    settled_sale: int
    cancelled_sale: int
    seller: str
    buyer: str
    settled_federation: int
    cancelled_federation: int


def _funded(cm: ComputeMarket, wei: int = 10**18) -> ComputeMarket:
    acct: LocalAccount = Account.create()
    cm.market.gateway.transfer(acct.address, Wei(wei))
    return cm.as_account(acct)


def _evidence(worker: str, unit_id: int) -> Evidence:
    return Evidence(
        job_id=1,
        unit_id=unit_id,
        worker=worker,
        input_hash="0x" + "22" * 32,
        honest_hash="0x" + "11" * 32,
        bad_hash="0x" + "33" * 32,
        bad_envelope={"sender": worker, "signature": "0xbad"},
        bad_body_hash="0x" + "44" * 32,
        honest_envelope=None,
        distance=0.5,
    )


def _sales(market: Market, node: Any) -> tuple[int, int, int, str, str]:
    """A benchmarked model listed for sale, one honest sale settled and one cancelled."""
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(
        "sold",
        SCHEMA,
        initial,
        Governance(evaluators=(node.accounts[1].address,), commit_period_s=60, reveal_period_s=60),
    )
    mm = ModelMarket.over(market)
    mm.set_terms(ds, Terms(commit_period_s=60, reveal_period_s=60))
    dev, evaluator = mm.as_account(node.accounts[2]), mm.as_account(node.accounts[1])
    trained, _ = dev.train(ds, dev.load_spec(SPEC))
    model = dev.register(trained, name="linear")
    evaluator.commit_benchmark(model.id, CAST.validation_X[:60], CAST.validation_y[:60])
    market.gateway.advance_to(model.commit_deadline)
    evaluator.reveal_benchmark(model.id, 1)
    market.gateway.advance_to(model.reveal_deadline)
    mm.finalize_benchmark(model.id)
    seller = WeightMarket.over(dev)
    buyer = seller.as_account(node.accounts[5])
    manifest = seller.publish_manifest(model.id, 1)
    seller.list(model.id, 1, PRICE)
    settled = buyer.buy(model.id, 1, manifest)
    assert buyer.check_delivery(settled, seller.deliver(settled))
    buyer.accept(settled)
    seller.reveal_key(settled)
    buyer.settle(settled)
    cancelled = buyer.buy(model.id, 1, manifest)
    buyer.cancel(cancelled)
    return model.id, settled, cancelled, seller.address, buyer.address


@pytest.fixture(scope="module")
def world(node: Any, tmp_path_factory: pytest.TempPathFactory) -> World:
    data_dir = tmp_path_factory.mktemp("compute-index")
    start = connect(node.url).block_number() + 1
    deploy(connect(node.url, node.accounts[0]), data_dir)
    market = Market.connect(node.url, node.accounts[0], data_dir)
    admin = ComputeMarket.over(market)
    coord: LocalAccount = Account.create()
    market.gateway.transfer(coord.address, Wei(10**18))
    claims = SoftwareProvider().verify(
        SoftwareProvider.attest(
            coord.key,
            measurement="ab" * 32,
            report_data=report_data_for(coord.address),
            issued_at=int(time.time()),
        )
    )
    admin.allow_coordinator(coord.address, claims, allow_insecure=True)
    coordinator = admin.as_account(coord)
    payer = _funded(admin, 100 * 10**18)
    w1, w2, cheater, leaver = (_funded(admin) for _ in range(4))
    for w in (w1, w2, cheater, leaver):
        w.register_device(CLASS, 1, FEE, STAKE)
    unstake_at = leaver.request_unstake()
    model_id, settled, cancelled, seller, buyer = _sales(market, node)
    market.gateway.advance_to(unstake_at)
    leaver.withdraw_stake()

    spec = market.store.put(b'{"job": "index"}')
    reclaimed = payer.create_job(coord.address, 3 * FEE, 100, spec).id
    expired = payer.create_job(coord.address, FEE, 100, spec).id
    open_job = payer.create_job(coord.address, BIG, 10**6, spec).id
    closed = payer.create_job(coord.address, 4 * FEE, 3600, spec).id
    coordinator.pay_unit(closed, 1, [w1.address], FEE)
    payer.close_job(closed)
    coordinator.pay_unit(open_job, 1, [w1.address, w2.address, cheater.address], FEE)
    record = coordinator.slash(cheater.address, open_job, _evidence(cheater.address, 2))
    coordinator.pay_unit(open_job, 2, [w1.address, w2.address], 2 * FEE)
    w1.add_stake(10**15)
    w2.request_unstake()
    market.gateway.advance_to(payer.job(reclaimed).expiry)
    payer.reclaim(reclaimed)
    w1.withdraw()
    # a federation trained and settled (one client scored nothing), and one cancelled
    fed_spec = market.store.put(b'{"federation": "index"}')
    clients = [w1.address, w2.address]
    settled_fed = payer.create_federation(coord.address, FED, 3600, fed_spec, clients).id
    coordinator.start_federation(settled_fed)
    coordinator.settle_federation(
        settled_fed, {w1.address: FED // 2, w2.address: 0}, {"rounds": [], "note": "index test"}
    )
    cancelled_fed = payer.create_federation(coord.address, FEE, 3600, fed_spec, [w1.address]).id
    payer.cancel_federation(cancelled_fed)
    return World(
        node, data_dir, start, admin, coord.address, payer, w1, w2, cheater, leaver,
        open_job, closed, reclaimed, expired, record.evidence_cid, model_id, settled, cancelled,
        seller, buyer, settled_fed, cancelled_fed,
    )  # fmt: skip


def _indexer(world: World, engine, **given: str) -> Indexer:
    deployment = load_deployment(world.data_dir, world.admin.market.gateway.chain_id)
    contracts = {
        "model_market": deployment["ModelMarket"],
        "compute_market": deployment["ComputeMarket"],
        "weight_sale": deployment["WeightSale"],
    }
    return Indexer(
        world.admin.market.gateway,
        deployment["DataMarket"],
        engine,
        start_block=world.start,
        batch=7,  # several batches: a job's and a device's events span them
        **{**contracts, **given},
    )


def _rows(engine) -> dict[str, Any]:
    """Everything the index folded, comparable across runs."""
    with Session(engine) as s:

        def plain(row: Any) -> tuple:
            return tuple(getattr(row, c.key) for c in row.__table__.columns if c.key not in ("id",))

        return {
            "devices": sorted(plain(d) for d in s.scalars(select(IndexedDevice))),
            "jobs": sorted(plain(j) for j in s.scalars(select(IndexedJob))),
            "sales": sorted(plain(r) for r in s.scalars(select(IndexedSale))),
            "payments": sorted(plain(p) for p in s.scalars(select(IndexedUnitPayment))),
            "events": s.scalar(select(func.count()).select_from(IndexedEvent)),
        }


@ANVIL
def test_the_index_folds_devices_jobs_units_slashes_and_sales_as_the_chain_has_them(
    world: World, database_url: str
) -> None:
    engine = open_index(database_url)
    indexer = _indexer(world, engine)
    indexer.sync()
    reader = ComputeReader(engine, world.admin.contract)
    cm = world.admin

    devices, nxt = reader.devices(0, 50)
    assert nxt is None
    by_owner = {d.owner: d for d in devices}
    w1, w2, cheater, leaver = (by_owner[w.address] for w in (world.w1, world.w2, world.cheater,
                                                             world.leaver))  # fmt: skip
    assert [d.owner for d in devices] == [world.w1.address, world.w2.address,
                                          world.cheater.address, world.leaver.address]  # fmt: skip
    assert (w1.status, w2.status, cheater.status, leaver.status) == (
        "active", "unstaking", "slashed", "withdrawn"
    )  # fmt: skip
    for d, sdk in ((w1, world.w1), (w2, world.w2), (cheater, world.cheater)):
        chain = cm.device(sdk.address)
        assert int(d.stake_wei) == chain.stake_wei and (d.unstake_at or 0) == chain.unstake_at
        assert d.numeric_class == "0x" + chain.numeric_class.hex()
        assert int(d.min_fee_wei) == chain.min_fee_wei and d.registered_at == chain.registered_at
    assert (w1.units_paid, int(w1.earned_wei)) == (3, FEE + FEE + 2 * FEE)
    assert (w2.units_paid, int(w2.earned_wei)) == (2, 3 * FEE)
    assert (cheater.units_paid, cheater.slashings, int(cheater.slashed_wei)) == (1, 1, STAKE)
    assert leaver.stake_wei == "0" and leaver.units_paid == 0
    # Pages: one at a time, in registration order, never repeating.
    one, cursor = reader.devices(0, 1)
    two, _ = reader.devices(int(cursor or 0), 1)
    assert [one[0].owner, two[0].owner] == [world.w1.address, world.w2.address]
    assert reader.devices(0, 50, owner=world.cheater.address.lower())[0] == [cheater]

    jobs, _ = reader.jobs(0, 50)
    by_id = {int(j.id): j for j in jobs}
    assert set(by_id) >= {world.open_job, world.closed_job, world.reclaimed_job}
    opened, closed, reclaimed = (by_id[i] for i in (world.open_job, world.closed_job,
                                                    world.reclaimed_job))  # fmt: skip
    assert opened.status == "open" and closed.status == reclaimed.status == "closed"
    assert (opened.units_paid, opened.slashings) == (2, 1)
    assert int(opened.paid_wei) == 3 * FEE + 4 * FEE
    assert int(opened.remaining_wei) == BIG - 7 * FEE == cm.job(world.open_job).remaining_wei
    assert opened.max_wei == str(BIG) and opened.payer == world.payer.address
    assert opened.coordinator == world.coordinator and opened.spec_cid.startswith("b")
    assert (closed.units_paid, closed.refund_wei, closed.closed_by) == (
        1, str(3 * FEE), world.payer.address
    )  # fmt: skip
    assert reclaimed.refund_wei == str(3 * FEE) and reclaimed.units_paid == 0
    assert [int(j.id) for j in reader.jobs(0, 50, status="open")[0]] == [world.open_job]
    assert {int(j.id) for j in reader.jobs(0, 50, status="closed")[0]} == {
        world.closed_job, world.reclaimed_job
    }  # fmt: skip
    [expired] = reader.jobs(0, 50, status="expired")[0]
    assert expired.id == str(world.expired_job) and by_id[world.expired_job] == expired
    assert reader.jobs(0, 50, payer=world.w1.address)[0] == []

    out, live, error = reader.job(world.open_job)
    assert error is None and live is not None and live.source == "chain" and out == opened
    assert live.remaining_wei == live.escrow_wei == str(BIG - 7 * FEE) and not live.closed
    _, live, _ = reader.job(world.closed_job)
    assert live is not None and live.remaining_wei == "0" and live.closed
    _, live, _ = reader.job(world.expired_job)  # it may pay nothing, yet holds its escrow
    assert live is not None and (live.remaining_wei, live.escrow_wei) == ("0", str(FEE))
    with pytest.raises(NotFound, match="compute job 999 is not in the index"):
        reader.job(999)

    units, _ = reader.units(world.open_job, 0, 50)
    assert [(u.unit_id, u.fee_each_wei, len(u.workers)) for u in units] == [
        ("1", str(FEE), 3), ("2", str(2 * FEE), 2)
    ]  # fmt: skip
    assert units[1].unit_key == "0x" + unit_key(2).hex() and units[1].paid_wei == str(4 * FEE)
    assert units[1].remaining_wei == str(BIG - 7 * FEE)
    paid, _ = reader.device_units(world.w2.address, 0, 50)
    assert [(p.job_id, p.unit_id, p.fee_wei) for p in paid] == [
        (str(world.open_job), "1", str(FEE)), (str(world.open_job), "2", str(2 * FEE))
    ]  # fmt: skip

    [slash] = reader.slashings(0, 50)[0]
    back = cm.evidence(world.open_job, world.cheater.address, 2)
    assert slash.worker == world.cheater.address and slash.job_id == str(world.open_job)
    assert (slash.unit_id, slash.input_hash, slash.honest_output, slash.bad_output) == (
        "2", back.input_hash, back.honest_output, back.bad_output
    )  # fmt: skip
    assert slash.evidence_cid == world.evidence_cid == back.evidence_cid
    assert slash.evidence_path == f"/ipfs/{world.evidence_cid}?format=raw"
    assert slash.amount_wei == str(STAKE) and slash.slashed_at == back.slashed_at
    assert reader.slashings(0, 50, worker=world.w1.address)[0] == []
    assert reader.device(world.cheater.address)[1] == [slash]
    [coordinator] = reader.coordinators()
    assert coordinator.address == world.coordinator and coordinator.allowed

    sales, _ = reader.sales(0, 50)
    assert [(int(s.id), s.status) for s in sales] == [
        (world.settled_sale, "settled"), (world.cancelled_sale, "refunded")
    ]  # fmt: skip
    settled = sales[0]
    assert (settled.buyer, settled.seller, settled.model_id, settled.price_wei) == (
        world.buyer, world.seller, str(world.model_id), str(PRICE)
    )  # fmt: skip
    assert settled.key and settled.cipher_root and settled.deadline == "0"
    assert sales[1].refund_reason == "cancelled" and sales[1].key is None
    assert [s.id for s in reader.sales(0, 50, status="refunded")[0]] == [sales[1].id]
    assert reader.sales(0, 50, buyer=world.seller)[0] == []
    sale, listing, events = reader.sale(world.settled_sale)
    assert sale == settled
    assert listing is not None and listing.price_wei == str(PRICE)
    assert [e.name for e in events] == ["Bought", "Delivered", "Accepted", "KeyRevealed",
                                        "Settled"]  # fmt: skip
    with pytest.raises(NotFound, match="weight sale 999"):
        reader.sale(999)

    # Account histories show a worker its slash and a buyer its purchase.
    with Session(engine) as s:
        mine = s.scalars(select(IndexedEvent.name).where(IndexedEvent.account == world.buyer))
        assert {"Bought", "Refunded"} <= set(mine)

    # Replaying the whole range inserts nothing and folds the same rows.
    before = _rows(engine)
    with Session(engine) as s, s.begin():
        s.execute(update(IndexState).values(indexed_block=world.start - 1))
    # A new indexer: a running one keeps where it wrote the index in memory, and would only
    # find a rewind by hand when its next write is refused.
    assert sum(step.events_added for step in _indexer(world, engine).sync()) == 0
    assert _rows(engine) == before
    engine.dispose()


@ANVIL
def test_a_job_read_while_the_node_does_not_answer_says_why(world: World, tmp_path: Path) -> None:
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite3'}")
    _indexer(world, engine).sync()
    # A client of an address without code: every call of it fails as a dead node's would.
    nothing = world.admin.market.gateway.bind(ComputeMarketClient, "0x" + "00" * 19 + "01")
    out, live, error = ComputeReader(engine, nothing).job(world.open_job)
    assert live is None and error and out.remaining_wei == str(BIG - 7 * FEE)
    out, live, error = ComputeReader(engine).job(world.open_job)
    assert live is None and "no chain client" in (error or "")
    engine.dispose()


@ANVIL
def test_an_index_given_the_compute_market_late_replays_it_once(
    world: World, database_url: str
) -> None:
    engine = open_index(database_url)
    gw = world.admin.market.gateway
    deployment = load_deployment(world.data_dir, gw.chain_id)
    old = Indexer(gw, deployment["DataMarket"], engine, start_block=world.start,
                  model_market=deployment["ModelMarket"])  # fmt: skip
    old.sync()
    assert old.compute_market is None and _rows(engine)["jobs"] == []
    late = _indexer(world, engine)
    assert late.lag() > 0  # rewound to the index's start
    late.sync()
    rows = _rows(engine)
    assert len(rows["jobs"]) == 4 and len(rows["sales"]) == 2 and len(rows["devices"]) == 4
    # An indexer that names none keeps the recorded ones; another one is refused.
    kept = Indexer(gw, deployment["DataMarket"], engine)
    assert (kept.compute_market, kept.weight_sale) == (
        deployment["ComputeMarket"], deployment["WeightSale"]
    )  # fmt: skip
    with pytest.raises(ChainIndexError, match=r"compute market .* database of its own"):
        _indexer(world, engine, compute_market=world.node.accounts[7].address)
    with pytest.raises(ChainIndexError, match=r"weight sale .* database of its own"):
        _indexer(world, engine, weight_sale=world.node.accounts[7].address)
    engine.dispose()


def test_migration_0006_upgrades_an_index_in_place_and_back(database_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from databright.server.index.database import MIGRATIONS

    engine = sa.create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005_auth")
        connection.execute(sa.text("INSERT INTO indexed_blocks VALUES (5, '0xaa', '0xbb', 1)"))
        connection.execute(
            sa.text("INSERT INTO index_state VALUES (1, '0x" + "1" * 40 + "', 0, 5, 5, NULL)")
        )
    engine.dispose()
    upgraded = open_index(database_url)
    with upgraded.connect() as c:
        state = c.execute(
            sa.text("SELECT indexed_block, compute_market, weight_sale FROM index_state")
        ).one()
        assert tuple(state) == (5, None, None)
        for table in ("compute_devices", "compute_jobs", "compute_unit_payments", "weight_sales"):
            assert c.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0
    with upgraded.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005_auth")
        assert "compute_jobs" not in sa.inspect(connection).get_table_names()
        command.upgrade(config, "head")
    upgraded.dispose()


# --- the REST API ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, world: World, tmp_path_factory) -> Iterator[str]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'index.sqlite3'}"
        else:
            from databright_dev.postgres import POSTGRES_URL, scratch_schema
            from sqlalchemy.exc import OperationalError

            try:
                url = stack.enter_context(scratch_schema(POSTGRES_URL))
            except OperationalError as exc:
                reason = f"no PostgreSQL answers at {POSTGRES_URL} ({type(exc).__name__})"
                if os.environ.get("DATABRIGHT_REQUIRE_POSTGRES") == "1":
                    pytest.fail(reason + "; CI requires it (DATABRIGHT_REQUIRE_POSTGRES=1)")
                pytest.skip(reason)
        server = Platform(world.node.url, world.data_dir, database_url=url, poll_s=0.1)
        server.start()
        stack.callback(server.stop)
        base = stack.enter_context(serving(create_app(server)))
        head = world.admin.market.gateway.block_number()
        deadline = time.monotonic() + 60
        while True:
            status = requests.get(f"{base}/api/v1/status", timeout=10).json()["index"]
            if status["indexed_block"] >= head and status["lag"] == 0:
                break
            assert time.monotonic() < deadline, f"the index did not catch up: {status}"
            time.sleep(0.1)
        yield base


def _get(url: str, path: str, **params: Any) -> dict:
    answer = requests.get(url + path, params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@ANVIL
def test_the_api_lists_and_pages_what_the_index_folded(api: str, world: World) -> None:
    devices = _get(api, "/api/v1/compute/devices")
    assert devices["source"] == "index" and devices["index"]["lag"] == 0
    assert [d["owner"] for d in devices["items"]][:2] == [world.w1.address, world.w2.address]
    one = _get(api, "/api/v1/compute/devices", limit=1)
    two = _get(api, "/api/v1/compute/devices", limit=1, cursor=one["next_cursor"])
    assert two["items"][0]["owner"] == world.w2.address
    mine = _get(api, "/api/v1/compute/devices", owner=world.cheater.address)["items"]
    assert [d["status"] for d in mine] == ["slashed"]
    detail = _get(api, f"/api/v1/compute/devices/{world.cheater.address}")
    [slash] = detail["slashings"]
    assert slash["evidence_cid"] == world.evidence_cid
    # The evidence link is served by this server, checked against its CID.
    bundle = requests.get(api + slash["evidence_path"], timeout=10)
    assert bundle.status_code == 200 and bundle.json()["bad_hash"] == slash["bad_output"]
    units = _get(api, f"/api/v1/compute/devices/{world.w1.address}/units")["items"]
    assert len(units) == 3

    jobs = _get(api, "/api/v1/compute/jobs", payer=world.payer.address, status="open")
    assert [j["id"] for j in jobs["items"]] == [str(world.open_job)]
    job = _get(api, f"/api/v1/compute/jobs/{world.open_job}")
    assert job["source"] == "index" and job["chain"]["source"] == "chain"
    assert job["chain"]["remaining_wei"] == job["job"]["remaining_wei"] == str(BIG - 7 * FEE)
    assert job["job"]["paid_wei"] == str(7 * FEE) and job["job"]["units_paid"] == 2
    page = _get(api, f"/api/v1/compute/jobs/{world.open_job}/units", limit=1)
    rest = _get(api, f"/api/v1/compute/jobs/{world.open_job}/units", cursor=page["next_cursor"])
    assert [u["unit_id"] for u in page["items"] + rest["items"]] == ["1", "2"]
    assert rest["next_cursor"] is None
    assert _get(api, "/api/v1/compute/slashings", job_id=world.open_job)["items"] == [slash]
    assert _get(api, "/api/v1/compute/coordinators")["items"][0]["allowed"]

    feds = _get(api, "/api/v1/compute/federations", payer=world.payer.address)["items"]
    assert [(f["id"], f["status"]) for f in feds] == [
        (str(world.settled_federation), "settled"),
        (str(world.cancelled_federation), "closed"),
    ]
    fed = _get(api, f"/api/v1/compute/federations/{world.settled_federation}")
    f = fed["federation"]
    assert f["clients"] == [world.w1.address, world.w2.address] and f["started_block"]
    assert (f["amount_wei"], f["paid_wei"], f["refund_wei"]) == (
        str(FED),
        str(FED // 2),
        str(FED - FED // 2),
    )
    assert fed["payouts"] == [
        {"client": world.w1.address, "amount_wei": str(FED // 2)},
        {"client": world.w2.address, "amount_wei": "0"},
    ]
    scores = requests.get(api + f["scores_path"], timeout=10)  # the evidence, by its CID
    assert scores.status_code == 200 and scores.json()["note"] == "index test"
    cancelled = _get(api, f"/api/v1/compute/federations/{world.cancelled_federation}")
    assert cancelled["federation"]["refund_wei"] == str(FEE)
    assert cancelled["federation"]["started_block"] is None and cancelled["payouts"] == []

    sales = _get(api, "/api/v1/sales", model_id=world.model_id)
    assert [s["status"] for s in sales["items"]] == ["settled", "refunded"]
    sale = _get(api, f"/api/v1/sales/{world.settled_sale}")
    assert sale["sale"]["id"] == str(world.settled_sale) and sale["listing"]["n_chunks"] != "0"
    assert _get(api, "/api/v1/sales", status="paid")["items"] == []


@ANVIL
@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/v1/compute/jobs/999", 404, "compute job 999 is not in the index"),
        ("/api/v1/compute/jobs/999/units", 404, "compute job 999"),
        ("/api/v1/compute/jobs/0", 422, "job_id"),
        ("/api/v1/compute/jobs/abc", 422, "job_id"),
        ("/api/v1/compute/jobs?status=running", 422, "status"),
        ("/api/v1/compute/jobs?payer=0x12", 422, "payer"),
        ("/api/v1/compute/jobs?cursor=1-2", 422, "cursor"),
        ("/api/v1/compute/jobs?limit=0", 422, "limit"),
        (f"/api/v1/compute/devices/0x{'ab' * 20}", 404, "has no device"),
        (f"/api/v1/compute/devices/0x{'ab' * 20}/units", 404, "has no device"),
        ("/api/v1/compute/devices/0x12", 422, "address"),
        ("/api/v1/compute/devices?owner=nobody", 422, "owner"),
        ("/api/v1/compute/slashings?job_id=0", 422, "job_id"),
        ("/api/v1/compute/federations/999", 404, "federation 999 is not in the index"),
        ("/api/v1/compute/federations/0", 422, "federation_id"),
        ("/api/v1/compute/federations?payer=0x12", 422, "payer"),
        ("/api/v1/sales/999", 404, "weight sale 999"),
        ("/api/v1/sales/0", 422, "sale_id"),
        ("/api/v1/sales?status=sold", 422, "status"),
    ],
)
def test_bad_requests_get_one_sentence_as_problem_json(api: str, path, status, says) -> None:
    answer = requests.get(api + path, timeout=10)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status and says.lower() in (body["detail"] + body["title"]).lower()


@ANVIL
def test_no_request_the_schema_allows_makes_the_new_operations_fail(
    api: str, request: pytest.FixtureRequest
) -> None:
    if "postgresql" in request.node.callspec.id:
        pytest.skip("the schema is the same whichever database is behind it")
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    ours = [op for op in operations if op.path.startswith(("/api/v1/compute", "/api/v1/sales"))]
    assert len(ours) == 12
    for operation in ours:

        @settings(
            max_examples=5, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def call(case) -> None:
            case.call_and_validate()

        call()


@ANVIL
def test_a_reorg_rebuilds_the_devices_jobs_and_sales_it_touched(
    world: World, tmp_path: Path
) -> None:
    """Last in the file: it forks the shared node's chain (and puts it back)."""
    engine = open_index(f"sqlite:///{tmp_path / 'reorg.sqlite3'}")
    indexer = _indexer(world, engine)
    indexer.sync()
    before = _rows(engine)
    gw = world.admin.market.gateway
    snapshot = gw.request("evm_snapshot", [], "snapshot")
    # A connection of its own: its nonces are those of the branch that is dropped.
    cm = ComputeMarket.over(Market.connect(world.node.url, world.node.accounts[0],
                                           world.data_dir))  # fmt: skip
    newcomer = _funded(cm)
    newcomer.register_device(CLASS, 1, FEE, STAKE)
    payer = _funded(cm)
    spec = cm.market.store.put(b"orphaned job")
    job = payer.create_job(world.coordinator, 2 * FEE, 3600, spec).id
    payer.close_job(job)
    indexer.sync()
    grown = _rows(engine)
    assert len(grown["devices"]) == 5 and len(grown["jobs"]) == 5
    gw.request("evm_revert", [snapshot], "revert")
    gw.request("anvil_mine", ["0x40"], "mine")  # the new branch outgrows the old
    steps = indexer.sync()
    assert steps[0].rolled_back_to is not None
    assert _rows(engine) == before
    engine.dispose()


def test_the_web_ui_shows_devices_jobs_units_and_slashings_with_evidence(
    api: str, world: World
) -> None:
    page = requests.get(f"{api}/ui/compute", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for account in (world.w1, world.w2, world.cheater):
        assert account.address in html
    assert f'href="/ui/compute/jobs/{world.open_job}"' in html
    record = world.payer.evidence(world.open_job, world.cheater.address, 2)
    evidence = re.search(r'<a href="(/ipfs/[^"]+)">evidence', html)
    assert evidence is not None and record.evidence_cid in evidence.group(1)
    assert requests.get(f"{api}{html_unescape(evidence.group(1))}", timeout=10).status_code == 200
    # federations, with the link to the scores their payouts follow from
    assert re.search(rf"<td>{world.settled_federation}</td>.*?settled", html, re.S)
    scores = re.search(r'<a href="(/ipfs/[^"]+)">scores</a>', html)
    assert scores is not None
    assert requests.get(f"{api}{html_unescape(scores.group(1))}", timeout=10).status_code == 200

    job = requests.get(f"{api}/ui/compute/jobs/{world.open_job}", timeout=10)
    assert job.status_code == 200
    assert job.text.count("<tr>") >= 2 + 1  # two verified units and the slashing
    assert "read from the chain" in job.text
    missing = requests.get(f"{api}/ui/compute/jobs/999999", timeout=10)
    assert missing.status_code == 404 and "problem" in missing.text
