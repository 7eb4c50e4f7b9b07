"""``databright coordinator`` and ``databright worker``: the computation market as processes.

The coordinator serves the signed pull protocol (:mod:`databright.server.coordinator`) over a
SQL state (SQLite in the data dir by default, so a restart loses nothing; PostgreSQL with
``--database-url``) and may be handed one job on its command line: a spec file and either the
verified data of a market dataset (``--dataset``, downloaded and checked against the chain by the
data-market SDK) or a local ``.npz`` of ``x`` and ``y`` (``--data``, for development).

With ``--account`` the coordinator signs with that keystore account, and attests (``--attestation
software``: a statement its own key signs, never hardware-backed) that the key is its own; with
``--market-job`` it also settles an on-chain ComputeMarket job: before each dispatch it checks the
escrow and the worker's stake, and each verdict pays the honest workers and slashes the cheaters.

A worker is a separate process known by its keystore account: it first checks the coordinator's
attestation (a software one only with ``--allow-insecure-coordinator``), registers its device on
chain with ``--stake`` if asked, then registers with the coordinator, long-polls for units,
computes them under the pinned determinism profile and uploads signed results until it is
stopped or has done ``--units``. ``--cheat`` makes it one of the cheaters of issue 12 §8, so the
demo and the tests can show a cheater being caught; an honest worker never needs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    AccountOpt,
    DataDirOpt,
    RpcOpt,
    busy,
    console,
    err_console,
    safe,
)
from databright.cli.server import check_free
from databright.errors import InvalidArgument, NodeUnreachable, NotPermitted

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from databright.compute.attestation import Claims
    from databright.compute.replication import Verdict

__all__ = [
    "AllowInsecureCoordinatorOpt",
    "Attestation",
    "AttestationOpt",
    "Cheat",
    "CoordinatorAccountOpt",
    "CoordinatorAddressOpt",
    "MinFeeOpt",
    "StakeOpt",
    "attested_coordinator",
    "coordinator_command",
    "expected_coordinator",
    "register",
    "stake_device",
    "worker_command",
]


def register(app: typer.Typer) -> None:
    app.command("coordinator")(coordinator_command)
    app.command("worker")(worker_command)


class Attestation(StrEnum):
    """What evidence the coordinator shows workers."""

    software = "software"
    none = "none"


# What every party that works for a coordinator (a compute worker, a split-training stage
# worker, a federation client) is told about checking it: the same options, the same words.
AllowInsecureCoordinatorOpt = Annotated[
    bool,
    typer.Option(
        "--allow-insecure-coordinator",
        help="Work for a coordinator whose attestation no hardware vouches for (software "
        "attestation): development only.",
    ),
]
CoordinatorAddressOpt = Annotated[
    str | None,
    typer.Option(help="Work only for the coordinator that signs with this address."),
]
StakeOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Register this worker's device on chain first, staking this many wei (a market "
        "job's workers must).",
    ),
]
MinFeeOpt = Annotated[
    int, typer.Option(min=0, help="The device's minimum fee per unit of work, wei (with --stake).")
]
# ... and what every coordinator (compute, split training, federation) is told about itself.
CoordinatorAccountOpt = Annotated[
    str | None,
    typer.Option(
        "--account", "-a", help="The coordinator's signing account (keystore index or address)."
    ),
]
AttestationOpt = Annotated[
    Attestation,
    typer.Option(
        help="Evidence shown to the parties that work for it: software (development) or none."
    ),
]


def expected_coordinator(address: str | None) -> str | None:
    """``--coordinator-address`` as given, or one sentence when it is not an address (checked
    before anything else happens)."""
    from eth_utils import is_address

    if address is not None and not is_address(address):
        raise InvalidArgument(
            f"--coordinator-address {address!r} is not an Ethereum address; give the "
            "0x-prefixed address the coordinator signs with."
        )
    return address


def attested_coordinator(
    check: Callable[..., Claims], *, allow_insecure: bool, expected: str | None, wait: float
) -> Claims:
    """The claims of the coordinator's attestation, checked with ``check`` (a party's
    ``check_coordinator``), waiting up to ``wait`` seconds for the coordinator to come up;
    ``NotPermitted`` in one sentence when it does not pass. Accepting a software attestation
    is said on stderr: nobody should run that way by accident."""
    deadline = time.monotonic() + wait
    while True:
        try:
            claims = check(allow_insecure=allow_insecure, expected=expected)
            break
        except NodeUnreachable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    if not claims.hardware_backed:
        err_console.print(
            f"warning: coordinator attested by {safe(claims.provider)} only (NOT "
            "hardware-backed); accepted because of --allow-insecure-coordinator",
            highlight=False,
            soft_wrap=True,  # one line, whatever the width: logs and tests look for it
        )
    return claims


def _settlement(
    rpc: str, data_dir: Path, signer: LocalAccount, job_id: int, fee: int, replicas: int
) -> tuple[Callable[[str], bool], Callable[[Verdict], object]]:
    """The dispatch guard and verdict hook of a coordinator settling ``job_id`` on chain."""
    from databright.compute.market import ChainSettlement, ComputeMarket
    from databright.market import Market

    cm = ComputeMarket.over(Market.connect(rpc, signer, data_dir))
    settlement = ChainSettlement(cm, job_id, fee, replicas)  # refuses another coordinator's job
    least = cm.min_stake()

    def guard(worker: str) -> bool:
        # the escrow can pay another group, and the worker still has its stake (not slashed)
        return settlement.can_dispatch() and cm.device(worker).stake_wei >= least

    def settle(verdict: Verdict) -> object:
        outcome = settlement(verdict)
        slashed = f"; slashed {', '.join(outcome.slashed)}" if outcome.slashed else ""
        console.print(
            f"unit {outcome.unit_id}: paid {len(outcome.paid)} x {outcome.fee_each_wei} wei"
            f"{slashed}",
            highlight=False,
        )
        return outcome

    return guard, settle


class Cheat(StrEnum):
    """The cheats a worker can be made to commit (issue 12 §8)."""

    lazy = "lazy"
    bitflip = "bitflip"
    scaled = "scaled"
    stale = "stale"
    late = "late"


def _job_data(
    data: Path | None, dataset: int | None, rpc: str, data_dir: Path
) -> tuple[np.ndarray, np.ndarray, str]:
    """The job's examples (float32), labels (class indices) and the name exposure is kept under."""
    if (data is None) == (dataset is None):
        raise InvalidArgument(
            "a job needs its data: give --dataset ID or --data FILE.npz, not both."
        )
    if data is not None:
        try:
            with np.load(data, allow_pickle=False) as npz:
                x, y = np.asarray(npz["x"], np.float32), np.asarray(npz["y"], np.int64)
        except (OSError, KeyError, ValueError) as exc:
            raise InvalidArgument(
                f"cannot read x and y from {data} ({type(exc).__name__}); give an .npz with "
                "arrays x and y."
            ) from None
        return x, y, f"file:{data.name}"
    from databright.cli._common import open_market
    from databright.models.market import ModelMarket

    assert dataset is not None
    x, y = ModelMarket.over(open_market(rpc, data_dir, None)).dataset_arrays(dataset)
    return x, y, str(dataset)


def coordinator_command(
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    rpc: RpcOpt = DEFAULT_RPC,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the protocol.")] = 8100,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL of the coordinator's state (default: SQLite in the data dir).",
        ),
    ] = None,
    job: Annotated[
        Path | None,
        typer.Option("--job", help="Submit a job: its model spec (JSON).", dir_okay=False),
    ] = None,
    dataset: Annotated[
        int | None, typer.Option("--dataset", help="The job's data: a market dataset id.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="The job's data: a local .npz of x and y.", dir_okay=False),
    ] = None,
    units: Annotated[int, typer.Option(min=1, help="Work units of the job.")] = 4,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps per unit.")] = 5,
    shard_size: Annotated[
        int | None, typer.Option(min=1, help="Examples per unit (default: 5% of the data).")
    ] = None,
    adaptive: Annotated[
        bool, typer.Option(help="Adaptive replication: trusted workers run some units alone.")
    ] = False,
    unit_deadline: Annotated[
        float, typer.Option(min=1, help="Seconds before a silent worker's unit is reassigned.")
    ] = 300.0,
    poll: Annotated[float, typer.Option(min=0, max=60, help="Long-poll wait, seconds.")] = 10.0,
    account: CoordinatorAccountOpt = None,
    attestation: AttestationOpt = Attestation.software,
    market_job: Annotated[
        int | None,
        typer.Option(
            "--market-job",
            min=1,
            help="Settle this ComputeMarket job on chain: pay verified units, slash cheaters.",
        ),
    ] = None,
    fee_per_unit: Annotated[
        int, typer.Option(min=1, help="Wei paid to each honest worker per verified unit.")
    ] = 10**15,
    replicas: Annotated[int, typer.Option(min=1, max=16, help="Replicas per unit (TMR: 3).")] = 3,
    requests_per_s: Annotated[
        float, typer.Option(min=0.1, help="Each worker's request quota, per second.")
    ] = 20.0,
) -> None:
    """Serve the computation market's coordinator (and submit one job to it)."""
    from eth_account import Account

    from databright.chain.keystore import Keystore
    from databright.compute.coordinator import Coordinator, CoordinatorAttestation, Quota
    from databright.compute.replication import ReplicationPolicy
    from databright.compute.state import SqlComputeState
    from databright.ml.checkpoint import save_checkpoint
    from databright.ml.spec import ModelSpec
    from databright.server.coordinator import serve_coordinator

    check_free(host, port)
    if job is None and (dataset is not None or data is not None):
        raise InvalidArgument(
            "--dataset and --data are a job's data; give the job with --job SPEC."
        )
    if market_job is not None and account is None:
        raise InvalidArgument(
            "--market-job settles on chain as the job's coordinator; give its --account."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    # Without --account the coordinator still needs a key to bind its attestation to: a
    # fresh one per run, which is all a development coordinator that settles nothing needs.
    signer = Keystore(data_dir / "keystore").load(account) if account else Account.create()
    guard, settle = None, None
    if market_job is not None:
        guard, settle = _settlement(rpc, data_dir, signer, market_job, fee_per_unit, replicas)
    url = database_url or f"sqlite:///{data_dir / 'compute.sqlite3'}"
    state = SqlComputeState(url)
    coordinator = Coordinator(
        state,
        policy=ReplicationPolicy(replicas=replicas, adaptive=adaptive),
        unit_deadline_s=unit_deadline,
        dispatch_guard=guard,
        on_verdict=settle,
        quota=Quota(requests_per_s=requests_per_s, burst=max(10, int(3 * requests_per_s))),
        attestation=(
            CoordinatorAttestation.software(signer, time.time())
            if attestation is Attestation.software
            else None
        ),
    )
    if job is not None:
        try:
            spec = ModelSpec.from_json(job.read_bytes())
        except OSError as exc:
            raise InvalidArgument(
                f"cannot read the spec {job}: {exc.strerror}; give a JSON spec file."
            ) from None
        with busy("submitting the job"):
            x, y, name = _job_data(data, dataset, rpc, data_dir)
            start = save_checkpoint(spec.build(), {"format": "pt"}, spec=spec)
            job_id = coordinator.submit_job(
                spec,
                start,
                x,
                y,
                range(len(x)),
                dataset=name,
                steps_per_unit=steps,
                units=units,
                shard_size=shard_size,
            )
        console.print(f"job {job_id}: {units} units of {steps} steps on {safe(name)}")
    base = f"http://{host}:{port}"
    what = "software attestation, NOT hardware-backed" if coordinator.attestation else "unattested"
    settles = f", settling market job {market_job}" if market_job is not None else ""
    console.print(f"coordinator {signer.address} ({what}{settles})", highlight=False)
    console.print(f"coordinator {base}/compute/v1 (jobs: {base}/compute/v1/jobs/ID)")
    console.print("Ctrl-C stops the coordinator.", highlight=False)
    try:
        serve_coordinator(coordinator, host, port, poll_s=poll)
    finally:
        state.close()


def worker_command(
    coordinator: Annotated[
        str, typer.Option("--coordinator", help="Base URL of `databright coordinator`.")
    ],
    account: AccountOpt,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    owner: Annotated[
        str | None,
        typer.Option(help="Address of the owner of several workers (default: the worker)."),
    ] = None,
    units: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many units (default: never).")
    ] = None,
    cheat: Annotated[
        Cheat | None,
        typer.Option(
            help="Run a cheating worker (returns the input, flips a bit, scales the update, "
            "trains from a stale checkpoint, or drifts from the second step on): for demos and "
            "tests of the attack suite only."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for an answer (above the long poll).")
    ] = 60.0,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the coordinator to come up.")
    ] = 30.0,
    allow_insecure_coordinator: AllowInsecureCoordinatorOpt = False,
    coordinator_address: CoordinatorAddressOpt = None,
    stake: StakeOpt = None,
    min_fee: MinFeeOpt = 0,
    rpc: RpcOpt = DEFAULT_RPC,
) -> None:
    """Work for a coordinator: check its attestation, pull units, compute them, upload signed
    results."""
    from databright.chain.keystore import Keystore
    from databright.compute.transport import http_transport
    from databright.compute.worker import (
        BitFlipWorker,
        LateCheatWorker,
        LazyWorker,
        ScaledUpdateWorker,
        StaleCheckpointWorker,
        Worker,
    )

    kinds: dict[Cheat | None, type[Worker]] = {
        None: Worker,
        Cheat.lazy: LazyWorker,
        Cheat.bitflip: BitFlipWorker,
        Cheat.scaled: ScaledUpdateWorker,
        Cheat.stale: StaleCheckpointWorker,
        Cheat.late: LateCheatWorker,
    }
    expected_coordinator(coordinator_address)
    signer = Keystore(data_dir / "keystore").load(account)
    worker = kinds[cheat](signer, http_transport(coordinator, timeout), owner=owner)
    if stake is not None:
        stake_device(rpc, data_dir, signer, worker.numeric_class, min_fee, stake)
    # No work, not even a registration, for a coordinator that fails its attestation.
    attested_coordinator(
        worker.check_coordinator,
        allow_insecure=allow_insecure_coordinator,
        expected=coordinator_address,
        wait=wait,
    )
    worker.register()
    what = f" (cheating: {cheat.value})" if cheat is not None else ""
    console.print(
        f"worker {worker.address} registered at {safe(coordinator)}{what}", highlight=False
    )
    refused_before = ""
    while units is None or worker.units_done < units:
        try:
            # one round trip a unit: each upload asks for the next, unless it is the last
            if worker.work_once(ask_next=units is None or worker.units_done + 1 < units):
                console.print(f"unit done ({worker.units_done} so far)", highlight=False)
        except (NotPermitted, InvalidArgument) as exc:
            # a refusal is about one unit or one message: say it once, then ask again
            if str(exc) != refused_before:
                err_console.print(f"refused: {safe(exc)}", highlight=False)
                refused_before = str(exc)
            time.sleep(1.0)
    console.print(f"worker {worker.address}: {worker.units_done} units done", highlight=False)


def stake_device(
    rpc: str, data_dir: Path, signer: LocalAccount, numeric_class: str, min_fee: int, stake: int
) -> None:
    """Register the worker's device on the ComputeMarket (once; a second start reuses it)."""
    from databright.compute.market import ComputeMarket
    from databright.market import Market

    cm = ComputeMarket.over(Market.connect(rpc, signer, data_dir))
    device = cm.device()
    if device.registered:
        least = cm.min_stake()
        if device.stake_wei < least:
            raise InvalidArgument(
                f"{signer.address}'s device is registered but stakes {device.stake_wei} wei, "
                f"under the {least} wei minimum (slashed, or leaving); use another account."
            )
        if not device.has_class(numeric_class):
            raise InvalidArgument(
                f"{signer.address}'s device is registered with another numeric class than "
                f"{numeric_class}; run the worker where it registered, or use another account."
            )
        console.print(f"device of {signer.address} already staked {device.stake_wei} wei")
        return
    device = cm.register_device(numeric_class, 1, min_fee, stake)
    console.print(
        f"device of {signer.address} registered on chain, staking {device.stake_wei} wei "
        f"(class {numeric_class})",
        highlight=False,
    )
