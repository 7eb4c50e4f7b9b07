"""The computation-market round of ``make run``: a model trained through the market by real
worker processes, verified by triple modular redundancy, paid per verified unit, with the cheater
slashed on-chain.

The admin (the market's deployer) allows a coordinator on the strength of a *software*
attestation: it is not hardware-backed, so it is accepted only because this development session
passes ``allow_insecure=True`` explicitly (a real deployment attests with Intel DCAP). A trainer
escrows payment for a few work units of the demo spec on the dataset's verified data, paying
the dataset's training fee first. Then everything runs as separate processes on free loopback
ports: ``databright coordinator`` (the job's coordinator key, settling the on-chain job) and four
``databright worker`` processes, one of them ``--cheat lazy`` (it returns the checkpoint it was
sent). Each worker stakes its device on chain, checks the coordinator's attestation (passing
``--allow-insecure-coordinator``, and saying so, because it is software only), and pulls units.
Each unit goes to three workers of one numeric class; a disputed unit is bisected to its first
disputed step, which the coordinator computes itself, and every verdict is settled on-chain at
once: honest workers paid, the cheater slashed with its evidence stored by CID (the disputed
step included). Before each dispatch the escrow and the worker's stake are checked
(so a slashed worker gets no more work). When the job is done every process is stopped by its
PID; the trainer closes the job and gets the rest of the escrow back.

The processes' keys live in the data dir's keystore (the workers' earnings stay withdrawable
with ``databright``), and their output in ``compute-demo/`` there.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.atomic import atomic_write
from databright.chain.keystore import Keystore, default_password
from databright.compute.attestation import Claims, SoftwareProvider, report_data_for
from databright.compute.coordinator import software_measurement
from databright.compute.exposure import exposure_cap
from databright.compute.market import ComputeMarket, JobInfo
from databright.demo.models import demo_spec
from databright.errors import DataBrightError
from databright.market import Market
from databright.ml.spec import ModelSpec
from databright.models import ModelMarket
from databright.process import ServerProcess, launch
from databright.types import Wei

__all__ = [
    "FEE_PER_UNIT_WEI",
    "REPLICAS",
    "STAKE_WEI",
    "STEPS_PER_UNIT",
    "UNITS",
    "WORKERS",
    "run_compute_round",
]

UNITS = 3
STEPS_PER_UNIT = 10
REPLICAS = 3
WORKERS = 4
FEE_PER_UNIT_WEI = 10**15  # per worker per verified unit
STAKE_WEI = 5 * 10**16
ESCROW_WEI = (UNITS * REPLICAS + 2) * FEE_PER_UNIT_WEI  # a margin the trainer gets back
JOB_TIMEOUT_S = 180.0
LIGHT_SCRYPT_N = 4096  # geth's LightScryptN, as the embedded node's development accounts use
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _funded(market: Market, wei: int) -> LocalAccount:
    acct: LocalAccount = Account.create()
    market.gateway.transfer(acct.address, Wei(wei))
    return acct


def _save_dev_key(keystore: Keystore, acct: LocalAccount) -> None:
    """Add ``acct`` to the keystore as the next account (``NNNN--0xADDRESS.json``, as
    :class:`Keystore` names them), encrypted with the development accounts' light scrypt:
    these keys hold play money on a development chain, and the default parameters cost ~1 s
    per key each time it is written and each time a process reads it."""
    keystore.directory.mkdir(parents=True, exist_ok=True)
    index = max((e.index for e in keystore.entries()), default=-1) + 1
    body = Account.encrypt(acct.key, default_password(), kdf="scrypt", iterations=LIGHT_SCRYPT_N)
    atomic_write(
        keystore.directory / f"{index:04d}--{acct.address}.json", json.dumps(body), mode=0o600
    )


def _allow_dev_coordinator(admin: ComputeMarket, coordinator: LocalAccount) -> Claims:
    """Allow ``coordinator`` on chain on a development attestation (its verified claims):
    software, so refused unless insecure use is allowed explicitly, as it is here."""
    evidence = SoftwareProvider.attest(
        coordinator.key,
        measurement=software_measurement(),
        report_data=report_data_for(coordinator.address),
        issued_at=int(time.time()),
    )
    claims = SoftwareProvider([coordinator.address]).verify(
        evidence, expected_report_data=report_data_for(coordinator.address)
    )
    admin.allow_coordinator(coordinator.address, claims, allow_insecure=True)
    return claims


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> bytes:
    with _NO_PROXY.open(url, timeout=timeout) as answer:
        return bytes(answer.read())


def _status(base: str, job_id: int) -> dict[str, Any]:
    status = json.loads(_get(f"{base}/compute/v1/jobs/{job_id}"))
    if not isinstance(status, dict):
        raise DataBrightError(f"the coordinator at {base} answered no job status; see its log")
    return status


def _cli() -> list[str]:
    return [sys.executable, "-m", "databright.cli"]


def _check_running(processes: list[ServerProcess]) -> None:
    for p in processes:
        code = p.poll()
        if code is not None:
            raise DataBrightError(
                f"{p.name} (pid {p.pid}) exited with status {code} before its round ended: "
                f"{p.last_line() or 'no output'}; see {p.log_path}"
            )


def _wait_for_line(process: ServerProcess, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in process.output():
        _check_running([process])
        if time.monotonic() >= deadline:
            raise DataBrightError(
                f"{process.name} (pid {process.pid}) did not say {text!r} within {timeout:g} s; "
                f"see {process.log_path}"
            )
        time.sleep(0.05)


def _trainer_job(
    trainer: ComputeMarket, coordinator: str, dataset_id: int
) -> tuple[JobInfo, ModelSpec, int, int, str, str, int]:
    """The trainer's job: the demo spec on the dataset's verified data, a few units, escrowed
    with the dataset's training fee paid. Returns the job, the spec, the shard size, the
    number of examples, the spec's and the job spec's CIDs and the training fee paid."""
    models = ModelMarket.over(trainer.market)
    spec = demo_spec()
    _, y = models.dataset_arrays(dataset_id)
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
        coordinator, ESCROW_WEI, 3600, job_spec_cid, training=(models, dataset_id, spec_cid)
    )
    return job, spec, shard, len(y), spec_cid, job_spec_cid, fee_due


def run_compute_round(
    market: Market, dataset_id: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """Train the demo spec on ``dataset_id`` through the compute market with a coordinator
    process and four worker processes; ``market`` is the admin's client (the deployer: it
    allows the coordinator and funds the new accounts). The dataset's model-market terms must
    be set (the trainer pays its training fee)."""
    admin = ComputeMarket.over(market)
    keystore = Keystore(market.data_dir / "keystore")
    coordinator_acct = _funded(market, 10**17)
    trainer_acct = _funded(market, 10**18)
    trainer = admin.as_account(trainer_acct)

    claims = _allow_dev_coordinator(admin, coordinator_acct)
    say(f"compute market: coordinator {coordinator_acct.address} allowed on a software "
        "attestation (NOT hardware-backed: allowed only because this is a development "
        "session)")  # fmt: skip

    accounts = [_funded(market, STAKE_WEI + 10**17) for _ in range(WORKERS)]
    lazy_address = accounts[-1].address
    # The processes load their keys from the keystore, as any `databright` command does.
    for acct in [coordinator_acct, *accounts]:
        _save_dev_key(keystore, acct)

    logs = market.data_dir / "compute-demo"
    common = ["--data-dir", str(market.data_dir), "--rpc", market.gateway.url]
    # one thread each (the pinned determinism profile), and log lines that do not wrap
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env["COLUMNS"] = "400"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    workers: list[ServerProcess] = []

    def start_worker(i: int, acct: LocalAccount) -> ServerProcess:
        cheat = ["--cheat", "lazy"] if acct.address == lazy_address else []
        worker = launch(
            [
                *_cli(), "worker", *common, "--coordinator", base, "--account", acct.address,
                "--stake", str(STAKE_WEI), "--min-fee", str(FEE_PER_UNIT_WEI),
                "--allow-insecure-coordinator", "--coordinator-address", coordinator_acct.address,
                "--wait", "120", *cheat,
            ],
            name=f"worker {i}", log=logs / f"worker{i}.log", env=env,
        )  # fmt: skip
        workers.append(worker)
        return worker

    processes: list[ServerProcess] = []
    with tempfile.TemporaryDirectory(prefix="databright-coordinator-") as tmp:
        try:
            # The lazy worker starts first (it stakes its device, then waits for the
            # coordinator), so that it sits in the first group and the round shows it caught;
            # in any group with one honest replica it would be caught alike.
            lazy = start_worker(WORKERS - 1, accounts[-1])
            processes.append(lazy)
            job, spec, shard, n_examples, spec_cid, job_spec_cid, fee_due = _trainer_job(
                trainer, coordinator_acct.address, dataset_id
            )
            say(f"  job {job.id}: {ESCROW_WEI} wei escrowed for {UNITS} units of "
                f"{STEPS_PER_UNIT} steps on {n_examples} verified examples (shards of {shard}); "
                f"training fee {fee_due} wei paid to dataset {dataset_id}")  # fmt: skip
            spec_path = Path(tmp) / "spec.json"
            spec_path.write_bytes(spec.to_json())
            coordinator = launch(
                [
                    *_cli(), "coordinator", *common, "--port", str(port),
                    "--account", coordinator_acct.address, "--market-job", str(job.id),
                    "--fee-per-unit", str(FEE_PER_UNIT_WEI), "--replicas", str(REPLICAS),
                    "--job", str(spec_path), "--dataset", str(dataset_id),
                    "--units", str(UNITS), "--steps", str(STEPS_PER_UNIT),
                    "--shard-size", str(shard), "--poll", "2",
                    "--database-url", f"sqlite:///{Path(tmp) / 'state.sqlite3'}",
                ],
                name="the coordinator", log=logs / "coordinator.log", env=env,
            )  # fmt: skip
            processes.append(coordinator)
            coordinator.wait_ready(lambda: _get(f"{base}/compute/v1/status"), timeout=120)
            _wait_for_line(lazy, "registered at", timeout=120)
            processes.extend(start_worker(i, acct) for i, acct in enumerate(accounts[:-1]))
            say(f"  coordinator process pid {coordinator.pid} at {base}/compute/v1; worker "
                "processes pid " + ", ".join(
                    f"{p.pid}" + (" (--cheat lazy)" if p is lazy else "") for p in workers
                ) + "; workers staked their devices and accepted the coordinator's software "
                "attestation with --allow-insecure-coordinator (development only)")  # fmt: skip
            deadline = time.monotonic() + JOB_TIMEOUT_S
            status = _status(base, 1)
            while status["state"] != "done":
                _check_running(processes)
                if time.monotonic() >= deadline:
                    raise DataBrightError(
                        f"the compute job did not finish within {JOB_TIMEOUT_S:g} s "
                        f"({status['units_done']}/{status['total_units']} units); see {logs}"
                    )
                time.sleep(0.1)
                status = _status(base, 1)
            final = _get(f"{base}/compute/v1/jobs/1/checkpoint")
            _check_running(processes)
        finally:
            for p in reversed(processes):
                p.stop(timeout=10)
    stopped = ", ".join(f"{p.pid}" for p in processes)
    referee_runs = int(status["referee_runs"])
    checkpoint_cid = trainer.market.store.put(final)
    fee = FEE_PER_UNIT_WEI
    paid: dict[str, int] = {}
    slashes: list[dict[str, Any]] = []
    for unit in status["units"]:
        for w in unit["honest"]:
            paid[w] = paid.get(w, 0) + fee
        caught = []
        for w in unit["cheaters"]:
            record = admin.evidence(job.id, w, unit["unit_id"])  # read back from the chain
            step, since = record.bundle.get("disputed_step"), record.bundle.get("disputed_from")
            slashes.append(
                {
                    "worker": w,
                    "unit_id": unit["unit_id"],
                    "evidence_cid": record.evidence_cid,
                    "amount_wei": record.amount_wei,
                    "disputed_from": since,
                    "disputed_step": step,
                }
            )
            where = (
                f" in steps {since}-{step} of {STEPS_PER_UNIT}"
                if step is not None and since is not None
                else ""
            )
            caught.append(f"{w}{where} (evidence {record.evidence_cid})")
        say(f"  unit {unit['unit_id']}: paid {len(unit['honest'])} x {fee} wei"
            + (f"; slashed {', '.join(caught)}" if caught else ""))  # fmt: skip
    balances = {a.address: int(admin.balance(a.address)) for a in accounts}

    refund = trainer.close_job(job.id)
    trainer.withdraw()
    withdrawn = {}
    for acct in accounts:
        me = admin.as_account(acct)
        withdrawn[acct.address] = int(me.withdraw()) if me.balance() else 0
    slashed = sorted({s["worker"] for s in slashes})
    say(f"  job {job.id} {status['state']}: {status['units_done']}/{status['total_units']} "
        f"units, {referee_runs} disputed and settled by the coordinator's own run up to the "
        f"disputed stretch; {len(slashed)} worker(s) slashed "
        f"({admin.burned()} wei burned in all); {refund} wei refunded to the trainer; "
        f"checkpoint {checkpoint_cid}; processes {stopped} stopped")  # fmt: skip
    return {
        "job_id": job.id,
        "coordinator": coordinator_acct.address,
        "attestation": {
            "provider": claims.provider,
            "hardware_backed": claims.hardware_backed,
            "allowed_as_insecure": True,
        },
        "trainer": trainer_acct.address,
        "units": status["units_done"],
        "state": status["state"],
        "referee_runs": referee_runs,
        "escrow_wei": ESCROW_WEI,
        "fee_per_unit_wei": FEE_PER_UNIT_WEI,
        "paid_per_worker_wei": {a.address: paid.get(a.address, 0) for a in accounts},
        "balance_per_worker_wei": balances,
        "withdrawn_per_worker_wei": withdrawn,
        "slashed": slashed,
        "slashed_stake_wei": sum(s["amount_wei"] for s in slashes),
        "evidence_cids": [s["evidence_cid"] for s in slashes],
        "slashes": [
            {
                k: s[k]
                for k in ("worker", "unit_id", "evidence_cid", "disputed_from", "disputed_step")
            }
            for s in slashes
        ],
        "refund_wei": int(refund),
        "training_fee_wei": fee_due,
        "spec_cid": spec_cid,
        "job_spec_cid": job_spec_cid,
        "checkpoint_cid": checkpoint_cid,
        "exposure": {a: round(float(v), 4) for a, v in status["exposure"].items()},
        "lazy_worker": lazy_address,
        "honest_replicas_agree": all(
            not (set(u["cheaters"]) - {lazy_address}) for u in status["units"]
        ),
        "processes": {
            "coordinator": coordinator.pid,
            "workers": {p.name: p.pid for p in workers},
            "all_stopped": all(p.returncode is not None for p in processes),
            "logs": str(logs),
        },
    }
