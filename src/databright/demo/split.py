"""The model-splitting round of ``make run``: a model trained with its layers on separate
worker processes, none of which ever holds all of it, and a cheating stage worker caught.

The dataset's verified examples are written to ``split-demo/`` in the data dir. Then, as
separate processes on a free loopback port: ``databright split serve`` (the coordinator: it
computes the input stage itself, so no worker sees an example, gives each of two workers one
later stage and relays activations and gradients through signed mailboxes, auditing stages by
recomputation) and two ``databright split worker`` processes. The coordinator signs with a key
of its own and attests in software only, which is not hardware-backed: each worker checks that
attestation before it pulls anything and accepts it only because this development session
passes ``--allow-insecure-coordinator`` (with ``--coordinator-address`` pinning the
coordinator's key), and the round says so. The trained checkpoint is checked
against unsplit training of the same spec on the same data: the same bytes. A second, one-epoch
job audits every batch and has its second worker started with ``--cheat`` (it scales its
activations from the third batch on): the coordinator stops at the first audit after that,
names the worker and writes the evidence. Every process is stopped by its PID.

Both jobs are ComputeMarket jobs: a payer escrows their fees, the coordinator is allowed on
chain (on the same software attestation, allowed as insecure for development), the workers
stake their devices as they start (``--stake``), every finished epoch pays each stage worker,
and the cheater's stake is burned with its evidence on chain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
from eth_account.signers.local import LocalAccount

from databright.chain.keystore import Keystore
from databright.compute.market import ComputeMarket
from databright.demo.compute import (
    _allow_dev_coordinator,
    _cli,
    _free_port,
    _funded,
    _save_dev_key,
)
from databright.errors import DataBrightError
from databright.market import Market
from databright.ml.spec import ModelSpec
from databright.ml.train import train
from databright.models import ModelMarket
from databright.process import ServerProcess, launch

__all__ = ["SPEC", "run_split_round"]

TIMEOUT_S: Final = 120.0
FEE_PER_EPOCH_WEI: Final = 10**15  # per stage worker per epoch
STAKE_WEI: Final = 5 * 10**16
SPEC: Final[dict[str, Any]] = {
    "input_shape": [64],
    "classes": 10,
    "layers": [
        {"type": "Linear", "out_features": 32},
        {"type": "ReLU"},
        {"type": "Linear", "out_features": 16},
        {"type": "ReLU"},
        {"type": "Linear", "out_features": 10},
    ],
    "optimizer": {"type": "adam", "lr": 0.01},
    "epochs": 5,
    "batch_size": 32,
    "seed": 11,
}


def _job(
    root: Path,
    name: str,
    spec: dict[str, Any],
    coordinator: LocalAccount,
    workers: list[LocalAccount],
    data_dir: Path,
    *,
    audit: float,
    market_job: int,
    rpc: str,
    cheat: int | None = None,
) -> tuple[int, list[ServerProcess]]:
    """Run one split job as processes, settled as ``market_job``; its exit status and
    processes (all stopped)."""
    (root / f"{name}.json").write_text(json.dumps(spec))
    port = _free_port()
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "400"}
    processes: list[ServerProcess] = []
    try:
        serve = launch(
            [
                *_cli(), "split", "serve", "--spec", str(root / f"{name}.json"),
                "--data", str(root / "data.npz"),
                *(a for w in workers for a in ("--worker", w.address)),
                "--out", str(root / f"{name}.ckpt"), "--evidence", str(root / f"{name}.evidence.json"),
                "--audit", str(audit), "--port", str(port),
                "--account", coordinator.address, "--data-dir", str(data_dir),
                "--market-job", str(market_job), "--fee-per-epoch", str(FEE_PER_EPOCH_WEI),
                "--rpc", rpc,
            ],
            name=f"the split coordinator ({name})", log=root / f"{name}-serve.log", env=env,
        )  # fmt: skip
        processes.append(serve)
        for i, worker in enumerate(workers):
            cheating = ["--cheat"] if i == cheat else []
            command = [
                *_cli(), "split", "worker", "--relay", f"http://127.0.0.1:{port}",
                "--account", worker.address, "--data-dir", str(data_dir), "--idle", "10",
                "--allow-insecure-coordinator", "--coordinator-address", coordinator.address,
                "--stake", str(STAKE_WEI), "--rpc", rpc, *cheating,
            ]  # fmt: skip
            log = root / f"{name}-worker{i + 1}.log"
            processes.append(
                launch(command, name=f"stage worker {i + 1} ({name})", log=log, env=env)
            )
        deadline = time.monotonic() + TIMEOUT_S
        while serve.poll() is None:
            if time.monotonic() >= deadline:
                raise DataBrightError(
                    f"the split job {name} did not end within {TIMEOUT_S:g} s; see {root}"
                )
            time.sleep(0.1)
        return int(serve.returncode or 0), processes
    finally:
        for p in reversed(processes):
            p.stop(timeout=10)


def run_split_round(market: Market, dataset_id: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Train ``SPEC`` split across two worker processes on the dataset's verified data, check it
    against unsplit training, then catch a cheating stage worker in a second job."""
    root = market.data_dir / "split-demo"
    root.mkdir(parents=True, exist_ok=True)
    x, y = ModelMarket.over(market).dataset_arrays(dataset_id)
    np.savez(root / "data.npz", x=x, y=y)
    keystore = Keystore(market.data_dir / "keystore")
    admin = ComputeMarket.over(market)
    coordinator = _funded(market, 10**17)  # gas for paying and slashing
    workers: list[LocalAccount] = [_funded(market, STAKE_WEI + 10**17) for _ in range(2)]
    for acct in [coordinator, *workers]:
        _save_dev_key(keystore, acct)
    _allow_dev_coordinator(admin, coordinator)
    payer = admin.as_account(_funded(market, 10**18))
    say(f"split training: {len(x)} verified examples of dataset {dataset_id}; the coordinator "
        f"{coordinator.address} (allowed on chain on a software attestation, for development "
        f"only) computes the input stage, workers {', '.join(w.address for w in workers)} "
        f"one later stage each, staking {STAKE_WEI} wei")  # fmt: skip

    def market_job(epochs: int) -> int:
        escrow = FEE_PER_EPOCH_WEI * len(workers) * epochs
        spec_cid = market.store.put(json.dumps({**SPEC, "epochs": epochs}).encode())
        return payer.create_job(coordinator.address, escrow, 3600, spec_cid).id

    rpc = market.gateway.url
    honest_job = market_job(int(SPEC["epochs"]))
    status, honest = _job(
        root,
        "honest",
        SPEC,
        coordinator,
        workers,
        market.data_dir,
        audit=0.05,
        market_job=honest_job,
        rpc=rpc,
    )
    if status != 0:
        raise DataBrightError(
            f"the split job exited with status {status}: {honest[0].last_line() or 'no output'}; "
            f"see {root}"
        )
    checkpoint = (root / "honest.ckpt").read_bytes()
    reference = train(ModelSpec.from_dict(SPEC), x, y)
    same = checkpoint == reference.checkpoint
    stages = [line for line in honest[0].output().splitlines() if line.startswith("stage ")]
    # the workers pulled nothing before their attestation check passed: the job ran, so it did
    say("  the workers checked the coordinator's attestation before pulling anything and "
        "accepted it, software only (NOT hardware-backed), with --allow-insecure-coordinator "
        "(development only)")  # fmt: skip
    say(f"  {'; '.join(stages)}; hold-out accuracy "
        f"{reference.metrics['holdout_accuracy']:.3f}; the checkpoint is "
        f"{'byte for byte' if same else 'NOT'} what unsplit training gives")  # fmt: skip
    if not same:
        raise DataBrightError(
            f"split training gave other weights than unsplit training; see {root}"
        )

    paid = {w.address: _paid_to(admin, honest_job, w.address) for w in workers}
    say(f"  market job {honest_job}: {SPEC['epochs']} epochs paid each stage worker "
        f"{FEE_PER_EPOCH_WEI} wei ({', '.join(f'{w}: {v} wei' for w, v in paid.items())}); "
        f"{admin.remaining(honest_job)} wei left in escrow")  # fmt: skip

    cheat_job = market_job(1)
    status, caught = _job(
        root,
        "cheat",
        {**SPEC, "epochs": 1},
        coordinator,
        workers,
        market.data_dir,
        audit=1.0,
        market_job=cheat_job,
        rpc=rpc,
        cheat=1,
    )
    evidence_path = root / "cheat.evidence.json"
    if status == 0 or not evidence_path.exists():
        raise DataBrightError(f"the cheating stage worker was not caught; see {root}")
    (found,) = json.loads(evidence_path.read_text())
    slash = _slashed(admin, cheat_job, found)
    say(f"  a second job audited every batch; worker {found['worker']} (started with --cheat) "
        f"was caught at step {found['step']} ({found['what']} differ from the coordinator's "
        f"recomputation), the job stopped and the evidence is in {evidence_path}; its stake of "
        f"{slash['amount_wei']} wei was burned on chain, evidence {slash['evidence_cid']}")  # fmt: skip
    processes = [*honest, *caught]
    return {
        "coordinator": coordinator.address,
        "coordinator_attestation": "software",
        "allowed_as_insecure": True,
        "workers": [w.address for w in workers],
        "examples": len(x),
        "stages": stages,
        "same_as_unsplit": same,
        "holdout_accuracy": float(reference.metrics["holdout_accuracy"]),
        "cheater": found["worker"],
        "caught_at_step": int(found["step"]),
        "caught_what": found["what"],
        "evidence": str(evidence_path),
        "market_jobs": {"honest": honest_job, "cheat": cheat_job},
        "paid_per_worker_wei": paid,
        "slashed": slash,
        "processes": {
            "pids": [p.pid for p in processes],
            "all_stopped": all(p.returncode is not None for p in processes),
            "logs": str(root),
        },
    }


def _paid_to(admin: ComputeMarket, job_id: int, worker: str) -> int:
    """What ``job_id``'s UnitPaid events paid ``worker``, read from the chain."""
    client = admin.contract
    events = client.events("UnitPaid", job_id=job_id)
    return sum(int(e.args["fee_each"]) for e in events if worker in e.args["workers"])


def _slashed(admin: ComputeMarket, job_id: int, found: dict[str, Any]) -> dict[str, Any]:
    """The chain's record of the caught worker's slash in ``job_id``."""
    from databright.compute.market import stage_unit_id
    from databright.compute.splitting import StageEvidence

    evidence = StageEvidence(**found)
    record = admin.evidence(job_id, evidence.worker, stage_unit_id(evidence))
    return {
        "worker": record.worker,
        "amount_wei": record.amount_wei,
        "evidence_cid": record.evidence_cid,
        "stake_left_wei": admin.device(record.worker).stake_wei,
    }
