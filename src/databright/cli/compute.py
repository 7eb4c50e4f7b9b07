"""``databright coordinator`` and ``databright worker``: the computation market as processes.

The coordinator serves the signed pull protocol (:mod:`databright.server.coordinator`) over a
SQL state (SQLite in the data dir by default, so a restart loses nothing; PostgreSQL with
``--database-url``) and may be handed one job on its command line: a spec file and either the
verified data of a market dataset (``--dataset``, downloaded and checked against the chain by the
data-market SDK) or a local ``.npz`` of ``x`` and ``y`` (``--data``, for development).

A worker is a separate process known by its keystore account: it registers, long-polls for
units, computes them under the pinned determinism profile and uploads signed results until it is
stopped or has done ``--units``. ``--cheat`` makes it one of the cheaters of issue 12 §8, so the
demo and the tests can show a cheater being caught; an honest worker never needs it.
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

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

__all__ = ["Cheat", "coordinator_command", "register", "worker_command"]


def register(app: typer.Typer) -> None:
    app.command("coordinator")(coordinator_command)
    app.command("worker")(worker_command)


class Cheat(StrEnum):
    """The cheats a worker can be made to commit (issue 12 §8)."""

    lazy = "lazy"
    bitflip = "bitflip"
    scaled = "scaled"
    stale = "stale"


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
) -> None:
    """Serve the computation market's coordinator (and submit one job to it)."""
    from databright.compute.coordinator import Coordinator
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
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{data_dir / 'compute.sqlite3'}"
    state = SqlComputeState(url)
    coordinator = Coordinator(
        state,
        policy=ReplicationPolicy(adaptive=adaptive),
        unit_deadline_s=unit_deadline,
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
            help="Run a cheating worker (returns the input, flips a bit, scales the update or "
            "trains from a stale checkpoint): for demos and tests of the attack suite only."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for an answer (above the long poll).")
    ] = 60.0,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the coordinator to come up.")
    ] = 30.0,
) -> None:
    """Work for a coordinator: pull units, compute them, upload signed results."""
    from databright.chain.keystore import Keystore
    from databright.compute.transport import http_transport
    from databright.compute.worker import (
        BitFlipWorker,
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
    }
    signer = Keystore(data_dir / "keystore").load(account)
    worker = kinds[cheat](signer, http_transport(coordinator, timeout), owner=owner)
    deadline = time.monotonic() + wait
    while True:
        try:
            worker.register()
            break
        except NodeUnreachable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    what = f" (cheating: {cheat.value})" if cheat is not None else ""
    console.print(
        f"worker {worker.address} registered at {safe(coordinator)}{what}", highlight=False
    )
    refused_before = ""
    while units is None or worker.units_done < units:
        try:
            if worker.work_once():
                console.print(f"unit done ({worker.units_done} so far)", highlight=False)
        except (NotPermitted, InvalidArgument) as exc:
            # a refusal is about one unit or one message: say it once, then ask again
            if str(exc) != refused_before:
                err_console.print(f"refused: {safe(exc)}", highlight=False)
                refused_before = str(exc)
            time.sleep(1.0)
    console.print(f"worker {worker.address}: {worker.units_done} units done", highlight=False)
