"""The computation-market round of ``make run``: a model trained through the market, verified
by triple modular redundancy, paid per verified unit, with the cheater slashed on-chain.

The admin (the market's deployer) allows a coordinator on the strength of a *software*
attestation: it is not hardware-backed, so it is accepted only because this development session
passes ``allow_insecure=True`` explicitly (a real deployment attests with Intel DCAP). Four
workers register staked devices; one is lazy (it returns the checkpoint it was sent). A trainer
escrows payment for a few work units of the demo spec on the dataset's verified data, paying
the dataset's training fee first. The coordinator runs the units in-process (workers call it
directly, as the in-process tests do; the HTTP transport is the same protocol): each unit goes
to three workers of one numeric class, the coordinator recomputes disputed units itself, and
every verdict is settled on-chain at once: honest workers paid, the cheater slashed with its
evidence stored by CID. Before each dispatch the escrow is checked (and slashed workers get no
more work). The trainer closes the job and gets the rest of the escrow back.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

import databright
from databright.compute.attestation import SoftwareProvider, report_data_for
from databright.compute.coordinator import Coordinator
from databright.compute.exposure import exposure_cap
from databright.compute.market import ChainSettlement, ComputeMarket
from databright.compute.state import SqlComputeState
from databright.compute.units import local_numeric_class
from databright.compute.worker import LazyWorker, Worker
from databright.demo.models import demo_spec
from databright.market import Market
from databright.ml.checkpoint import save_checkpoint
from databright.models import ModelMarket
from databright.types import Wei

__all__ = ["FEE_PER_UNIT_WEI", "STAKE_WEI", "STEPS_PER_UNIT", "UNITS", "run_compute_round"]

UNITS = 3
STEPS_PER_UNIT = 10
REPLICAS = 3
FEE_PER_UNIT_WEI = 10**15  # per worker per verified unit
STAKE_WEI = 5 * 10**16
ESCROW_WEI = (UNITS * REPLICAS + 2) * FEE_PER_UNIT_WEI  # a margin the trainer gets back


def _funded(market: Market, wei: int) -> LocalAccount:
    acct: LocalAccount = Account.create()
    market.gateway.transfer(acct.address, Wei(wei))
    return acct


def _guard(settlement: ChainSettlement, cm: ComputeMarket) -> Callable[[str], bool]:
    """Before a dispatch: the escrow can pay another group and the worker still has a stake."""
    least = cm.min_stake()
    return lambda worker: settlement.can_dispatch() and cm.device(worker).stake_wei >= least


def run_compute_round(
    market: Market, dataset_id: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Train the demo spec on ``dataset_id`` through the compute market; ``market`` is the
    admin's client (the deployer: it allows the coordinator and funds the new accounts). The
    dataset's model-market terms must be set (the trainer pays its training fee)."""
    admin = ComputeMarket.over(market)
    coordinator_acct = _funded(market, 10**17)
    trainer_acct = _funded(market, 10**18)
    cm_coordinator = admin.as_account(coordinator_acct)
    trainer = admin.as_account(trainer_acct)

    # Development attestation: software, so refused unless insecure use is allowed explicitly.
    measurement = keccak(f"databright-coordinator {databright.__version__}".encode()).hex()
    evidence = SoftwareProvider.attest(
        coordinator_acct.key,
        measurement=measurement,
        report_data=report_data_for(coordinator_acct.address),
        issued_at=int(time.time()),
    )
    claims = SoftwareProvider([coordinator_acct.address]).verify(
        evidence, expected_report_data=report_data_for(coordinator_acct.address)
    )
    admin.allow_coordinator(coordinator_acct.address, claims, allow_insecure=True)
    say(f"compute market: coordinator {coordinator_acct.address} allowed on a software "
        "attestation (NOT hardware-backed: allowed only because this is a development "
        "session)")  # fmt: skip

    numeric_class = local_numeric_class()
    accounts = [_funded(market, STAKE_WEI + 10**17) for _ in range(4)]
    for acct in accounts:
        admin.as_account(acct).register_device(numeric_class, 1, FEE_PER_UNIT_WEI, STAKE_WEI)
    lazy_address = accounts[2].address
    say(f"  four workers staked {STAKE_WEI} wei each (class {numeric_class}); "
        f"{lazy_address} is lazy")  # fmt: skip

    # The trainer's job: the demo spec on the dataset's verified data, a few units.
    models = ModelMarket.over(trainer.market)
    spec = demo_spec()
    x, y = models.dataset_arrays(dataset_id)
    spec_cid = trainer.market.store.put(spec.to_json())
    shard = max(1, exposure_cap(len(y)) // UNITS)
    job_spec = {
        "kind": "databright-compute-job-v1",
        "model_spec_cid": spec_cid,
        "dataset_id": int(dataset_id),
        "units": UNITS,
        "steps_per_unit": STEPS_PER_UNIT,
        "shard_size": shard,
        "replicas": REPLICAS,
    }
    job_spec_cid = trainer.market.store.put(json.dumps(job_spec, sort_keys=True).encode())
    terms = models.terms(dataset_id)
    fee_due = 0
    if terms is not None and not models.training_paid(dataset_id, spec_cid):
        fee_due = terms.training_fee_wei
    job = trainer.create_job(
        coordinator_acct.address,
        ESCROW_WEI,
        3600,
        job_spec_cid,
        training=(models, dataset_id, spec_cid),
    )
    say(f"  job {job.id}: {ESCROW_WEI} wei escrowed for {UNITS} units of {STEPS_PER_UNIT} "
        f"steps on {len(y)} verified examples (shards of {shard}); training fee "
        f"{fee_due} wei paid to dataset {dataset_id}")  # fmt: skip

    settlement = ChainSettlement(cm_coordinator, job.id, FEE_PER_UNIT_WEI, REPLICAS)
    with tempfile.TemporaryDirectory(prefix="databright-coordinator-") as tmp:
        state = SqlComputeState(f"sqlite:///{Path(tmp) / 'state.sqlite3'}")
        try:
            coordinator = Coordinator(
                state,
                dispatch_guard=_guard(settlement, cm_coordinator),
                on_verdict=settlement,  # each verdict paid and slashed on-chain as reached
            )
            start = save_checkpoint(spec.build(), {"format": "pt"}, spec=spec)
            off_chain = coordinator.submit_job(
                spec, start, x, y, range(len(y)), dataset=f"dataset-{dataset_id}",
                steps_per_unit=STEPS_PER_UNIT, units=UNITS, shard_size=shard,
            )  # fmt: skip
            transport = coordinator.handle  # in-process: the workers call it directly
            workers = [
                (LazyWorker if a.address == lazy_address else Worker)(
                    a, transport, numeric_class=numeric_class
                )
                for a in accounts
            ]
            for w in workers:
                w.register()
            for _ in range(4 * UNITS):
                if not any([w.work_once() for w in workers]):
                    break
            status = coordinator.job_status(off_chain)
            final = coordinator.checkpoint(off_chain)
            referee_runs = coordinator.referee_runs
        finally:
            state.close()
    checkpoint_cid = trainer.market.store.put(final)
    for s in settlement.settled:
        say(f"  unit {s.unit_id}: paid {len(s.paid)} x {s.fee_each_wei} wei"
            + (f"; slashed {', '.join(s.slashed)} (evidence {', '.join(s.evidence_cids)})"
               if s.slashed else ""))  # fmt: skip

    refund = trainer.close_job(job.id)
    trainer.withdraw()
    paid = dict(settlement.paid_per_worker())
    withdrawn = {}
    for acct in accounts:
        me = admin.as_account(acct)
        withdrawn[acct.address] = int(me.withdraw()) if me.balance() else 0
    slashed = sorted({w for s in settlement.settled for w in s.slashed})
    say(f"  job {job.id} {status.state}: {status.units_done}/{status.total_units} units, "
        f"{referee_runs} recomputed by the coordinator; {len(slashed)} worker(s) slashed "
        f"({admin.burned()} wei burned in all); {refund} wei refunded to the trainer; "
        f"checkpoint {checkpoint_cid}")  # fmt: skip
    return {
        "job_id": job.id,
        "coordinator": coordinator_acct.address,
        "attestation": {
            "provider": claims.provider,
            "hardware_backed": claims.hardware_backed,
            "allowed_as_insecure": True,
        },
        "trainer": trainer_acct.address,
        "units": status.units_done,
        "state": status.state,
        "referee_runs": referee_runs,
        "escrow_wei": ESCROW_WEI,
        "fee_per_unit_wei": FEE_PER_UNIT_WEI,
        "paid_per_worker_wei": {a.address: paid.get(a.address, 0) for a in accounts},
        "withdrawn_per_worker_wei": withdrawn,
        "slashed": slashed,
        "slashed_stake_wei": sum(
            admin.evidence(job.id, w, s.unit_id).amount_wei
            for s in settlement.settled
            for w in s.slashed
        ),
        "evidence_cids": [c for s in settlement.settled for c in s.evidence_cids],
        "slashes": [
            {"worker": w, "unit_id": s.unit_id, "evidence_cid": c}
            for s in settlement.settled
            for w, c in zip(s.slashed, s.evidence_cids, strict=True)
        ],
        "refund_wei": int(refund),
        "training_fee_wei": fee_due,
        "spec_cid": spec_cid,
        "job_spec_cid": job_spec_cid,
        "checkpoint_cid": checkpoint_cid,
        "exposure": {a: round(v, 4) for a, v in status.exposure.items()},
        "lazy_worker": lazy_address,
        "honest_replicas_agree": all(
            not (set(s.slashed) - {lazy_address}) for s in settlement.settled
        ),
    }
