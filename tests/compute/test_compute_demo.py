"""The computation-market round of ``make run`` end to end on a real node: a job escrowed with
the training fee paid, a ``databright coordinator`` process and four ``databright worker``
processes (one ``--cheat lazy``) that stake their devices on chain and accept the coordinator's
software attestation only because they are told to, TMR, honest workers paid per unit, the lazy
worker slashed with evidence readable back by CID, the rest refunded, every process stopped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.compute.market import ComputeMarket
from databright.demo.cast import digits_scenario
from databright.demo.compute import (
    ESCROW_WEI,
    FEE_PER_UNIT_WEI,
    REPLICAS,
    STAKE_WEI,
    UNITS,
    WORKERS,
    run_compute_round,
)
from databright.demo.models import TERMS
from databright.market import Governance, Market
from databright.models import ModelMarket
from databright.storage import DatasetSchema, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)


@pytest.fixture
def dataset(node, tmp_path: Path) -> tuple[Market, int]:
    if node.kind != "anvil":
        pytest.skip("the embedded node runs this round inside the whole session (tests/demo)")
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    cast = digits_scenario(seed=5, proposal_size=30)
    initial = validate_examples(cast.initial_X, cast.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(
        "digits", SCHEMA, initial,
        Governance(evaluators=(node.accounts[1].address,), commit_period_s=60,
                   reveal_period_s=60),
    )  # fmt: skip
    ModelMarket.over(market).set_terms(ds, TERMS)
    return market, ds


def test_the_compute_round_pays_the_honest_slashes_the_cheater_and_the_dataset(dataset) -> None:
    market, ds = dataset
    lines: list[str] = []
    claimable = market.claimable(ds)
    s = run_compute_round(market, ds, lines.append)

    assert s["state"] == "done" and s["units"] == UNITS and s["honest_replicas_agree"]
    assert s["attestation"] == {
        "provider": "software", "hardware_backed": False, "allowed_as_insecure": True
    }  # fmt: skip
    assert any("NOT hardware-backed" in line for line in lines)
    # The lazy worker is caught in its first group, slashed once, and never paid.
    lazy = s["lazy_worker"]
    assert s["slashed"] == [lazy] and len(s["evidence_cids"]) == 1 and s["referee_runs"] >= 1
    assert s["slashed_stake_wei"] == STAKE_WEI and s["paid_per_worker_wei"][lazy] == 0
    paid = s["paid_per_worker_wei"]
    assert all(v > 0 and v % FEE_PER_UNIT_WEI == 0 for a, v in paid.items() if a != lazy)
    # Every unit paid REPLICAS workers but the one the cheater sat in (one fewer).
    assert sum(paid.values()) == (UNITS * REPLICAS - 1) * FEE_PER_UNIT_WEI
    assert s["withdrawn_per_worker_wei"] == paid
    assert s["refund_wei"] == ESCROW_WEI - sum(paid.values())
    # No worker saw more than 5% of the dataset.
    assert max(s["exposure"].values()) <= 0.05
    # The training fee went to the dataset's shareholders (the initiator holds every share).
    assert s["training_fee_wei"] == TERMS.training_fee_wei
    assert 0 <= TERMS.training_fee_wei - (market.claimable(ds) - claimable) <= 1

    cm = ComputeMarket.over(market)
    job = cm.job(s["job_id"])
    assert job.closed and job.paid_wei == sum(paid.values())
    [slash] = s["slashes"]
    record = cm.evidence(s["job_id"], lazy, slash["unit_id"])  # anyone can read and check it
    assert record.evidence_cid == slash["evidence_cid"] == s["evidence_cids"][0]
    assert record.bundle["worker"] == lazy and record.bundle["bad_hash"] == record.input_hash
    assert record.bundle["bad_envelope"]["sender"] == lazy
    # bisection: the lazy worker's trace leaves the honest run in the first stretch
    assert slash["disputed_from"] == record.bundle["disputed_from"] == 0
    assert market.store.get(s["checkpoint_cid"])

    # Real processes, one per role, all stopped by PID at the end.
    procs = s["processes"]
    pids = [procs["coordinator"], *procs["workers"].values()]
    assert len(set(pids)) == 1 + WORKERS and procs["all_stopped"]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert any(f"pid {procs['coordinator']}" in line for line in lines)
    assert any("--allow-insecure-coordinator" in line for line in lines)
    # Each worker staked its own device from its own process.
    for address in s["withdrawn_per_worker_wei"]:
        assert cm.device(address).registered and cm.device(address).min_fee_wei == FEE_PER_UNIT_WEI
