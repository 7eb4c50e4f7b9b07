"""``databright split serve`` and ``databright split worker``: model splitting as processes.

``serve`` is the trusted coordinator's side of :class:`~databright.compute.splitting.SplitTraining`:
it cuts the spec's layers into stages, gives one stage to each worker named with ``--worker``
(in order; ``NotPermitted`` when one owner would hold every stage), serves the signed relay
(:mod:`databright.server.split_relay`) from a thread of its own, trains with every activation
and gradient relayed through the workers' mailboxes, audits stages at ``--audit`` (5% of
batches by default), and writes the assembled checkpoint. A worker caught by an audit stops the
job: the command exits with the sentence naming it, and the evidence is written to
``--evidence``.

With ``--market-job`` the job is settled on the ComputeMarket as the job's coordinator
(``--account``, allowed on chain): before the first message the escrow must cover every epoch
and every stage worker must hold a staked device (``split worker --stake`` registers one); each
finished epoch pays every stage worker still staked ``--fee-per-epoch``, and a worker an audit
catches is slashed with its evidence (stored by CID, its hashes on chain).

The coordinator computes the input stage itself (it is attested), and the workers hold the
stages after it: the input stage's holder sees every example's features, which the 5%
exposure rule forbids any worker (``SplitTraining`` refuses such a job when given the ledger),
so here workers see activations and gradients, never an example or a label.

The coordinator signs with ``--account`` (a fresh key per run without it) and attests that the
key is its own (``--attestation software``: a statement its own key signs, never
hardware-backed), as ``databright coordinator`` does; the relay shows that to every worker.

``worker`` first checks the coordinator's attestation (a software one only with
``--allow-insecure-coordinator``; ``--coordinator-address`` pins the key it must sign with) and
exits with one sentence, having pulled nothing, when it does not pass. Then it pulls its
messages with signed long polls and answers under its keystore key until it has been idle for
``--idle`` seconds after its last message (or is stopped).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    AccountOpt,
    DataDirOpt,
    RpcOpt,
    console,
    err_console,
    safe,
)
from databright.cli.compute import (
    AllowInsecureCoordinatorOpt,
    Attestation,
    AttestationOpt,
    CoordinatorAccountOpt,
    CoordinatorAddressOpt,
    MinFeeOpt,
    StakeOpt,
    attested_coordinator,
    expected_coordinator,
    stake_device,
)
from databright.errors import DataBrightError, InvalidArgument, NodeUnreachable, NotPermitted

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from databright.compute.market import SplitSettlement
    from databright.compute.splitting import StageEvidence
    from databright.ml.train import EpochReport

__all__ = ["app", "serve_command", "worker_command"]

app = typer.Typer(
    name="split",
    help="Model splitting: a model's layers on several workers, none holding all of it.",
    no_args_is_help=True,
)

LOCAL_STAGE_WORKER = "coordinator"
"""The name the coordinator's own input stage goes by (``--local-input-stage``)."""


def _owners(workers: list[str], owners: list[str]) -> dict[str, str]:
    """``--owner WORKER=OWNER`` pairs as a map (a worker not named owns itself)."""
    from eth_utils import is_address, to_checksum_address

    found: dict[str, str] = {}
    for pair in owners:
        worker, sep, owner = pair.partition("=")
        if not sep or not is_address(worker) or not is_address(owner):
            raise InvalidArgument(
                f"--owner {pair!r} is not WORKER=OWNER with two 0x addresses; write it so."
            )
        if to_checksum_address(worker) not in workers:
            raise InvalidArgument(f"--owner names {worker}, which is not one of the --worker.")
        found[to_checksum_address(worker)] = to_checksum_address(owner)
    return found


def _split_settlement(
    rpc: str, data_dir: Path, signer: LocalAccount, job_id: int, fee: int, workers: list[str]
) -> SplitSettlement:
    """The on-chain settlement of split job ``job_id`` by this coordinator (refused, in one
    sentence, for another coordinator's job)."""
    from databright.compute.market import ComputeMarket, SplitSettlement
    from databright.market import Market

    cm = ComputeMarket.over(Market.connect(rpc, signer, data_dir))
    return SplitSettlement(cm, job_id, fee, workers)


def _wait_for_stakes(settlement: SplitSettlement, timeout: float) -> None:
    """Before the first message: every stage worker must hold a staked device, which a worker
    started with ``--stake`` registers as it starts (waited for up to ``timeout``), asking at
    most the fee per epoch."""
    cm, workers = settlement.market, settlement.workers
    least = cm.min_stake()
    deadline = time.monotonic() + timeout
    while True:
        devices = {w: cm.device(w) for w in workers}
        unstaked = [w for w, d in devices.items() if d.stake_wei < least]
        if not unstaked:
            for w, d in devices.items():
                if d.min_fee_wei > settlement.fee_each:
                    raise InvalidArgument(
                        f"stage worker {w} asks at least {d.min_fee_wei} wei, more than the "
                        f"{settlement.fee_each} wei of --fee-per-epoch; raise the fee or name "
                        "another worker."
                    )
            return
        if time.monotonic() >= deadline:
            raise NotPermitted(
                f"stage worker {unstaked[0]} has no device staking {least} wei on chain after "
                f"{timeout:g} s; start it with --stake, or name another worker."
            )
        time.sleep(0.5)


def _slash_caught(settlement: SplitSettlement, evidence: list[StageEvidence]) -> None:
    """Slash every worker the audits caught, each once (its first evidence); a slash that
    fails is said in one sentence and the others go on (the caller then raises the audit's
    own refusal, which names the cheater)."""
    seen: set[str] = set()
    for found in evidence:
        if found.worker in seen:
            continue
        seen.add(found.worker)
        try:
            record = settlement.caught(found)
        except DataBrightError as exc:
            err_console.print(
                f"could not slash {found.worker} on chain: {safe(str(exc))}",
                highlight=False,
                soft_wrap=True,
            )
            continue
        err_console.print(
            f"slashed {record.worker} on chain: {record.amount_wei} wei of stake burned; "
            f"evidence {record.evidence_cid}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("serve")
def serve_command(
    spec: Annotated[Path, typer.Option("--spec", help="The model spec (JSON).", dir_okay=False)],
    data: Annotated[
        Path, typer.Option("--data", help="The training data: an .npz of x and y.", dir_okay=False)
    ],
    workers: Annotated[
        list[str],
        typer.Option("--worker", "-w", help="A stage worker's address (repeat, in stage order)."),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the trained checkpoint.", dir_okay=False)
    ],
    owners: Annotated[
        list[str] | None,
        typer.Option("--owner", help="WORKER=OWNER when one person runs several workers."),
    ] = None,
    audit: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of batches audited.")
    ] = 0.05,
    micro_batches: Annotated[int, typer.Option(min=1, help="Micro-batches per batch.")] = 1,
    evidence: Annotated[
        Path | None,
        typer.Option(help="Where to write a caught worker's evidence (JSON).", dir_okay=False),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the relay.")] = 8300,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for a worker's answer.")
    ] = 120.0,
    account: CoordinatorAccountOpt = None,
    attestation: AttestationOpt = Attestation.software,
    market_job: Annotated[
        int | None,
        typer.Option(
            "--market-job",
            min=1,
            help="Settle this ComputeMarket job on chain: pay each stage worker per epoch, "
            "slash a worker an audit catches.",
        ),
    ] = None,
    fee_per_epoch: Annotated[
        int, typer.Option(min=1, help="Wei paid to each stage worker per epoch (--market-job).")
    ] = 10**15,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    rpc: RpcOpt = DEFAULT_RPC,
) -> None:
    """Train a model split across stage workers, relaying through a signed mailbox."""
    from eth_account import Account
    from eth_utils import is_address, to_checksum_address

    from databright.chain.keystore import Keystore
    from databright.compute.coordinator import CoordinatorAttestation
    from databright.compute.federation_client import load_npz
    from databright.compute.split_relay import SplitRelay
    from databright.compute.splitting import SplitPlan, SplitTraining, StageWorker
    from databright.ml.spec import ModelSpec
    from databright.server.split_relay import split_relay_app
    from databright.server.threaded import serving_in_thread

    bad = [w for w in workers if not is_address(w)]
    if bad:
        raise InvalidArgument(
            f"--worker {bad[0]!r} is not an Ethereum address; give each worker's 0x address."
        )
    named = [str(to_checksum_address(w)) for w in workers]
    if len(set(named)) != len(named):
        raise InvalidArgument("a worker is named twice; a worker holds one stage of a split job.")
    owner_of = _owners(named, owners or [])
    try:
        model = ModelSpec.from_json(spec.read_bytes())
    except OSError as exc:
        raise InvalidArgument(
            f"cannot read the spec {spec}: {exc.strerror}; give a JSON spec file."
        ) from None
    if market_job is not None and account is None:
        raise InvalidArgument(
            "--market-job settles on chain as the job's coordinator; give its --account."
        )
    x, y = load_npz(data)
    stages = len(named) + 1  # the input stage is the coordinator's
    plan = SplitPlan.balanced(model, stages)  # one sentence when the spec has too few layers
    job = SplitTraining(plan, micro_batches=micro_batches, audit_probability=audit)
    # Without --account the coordinator still needs a key to bind its attestation to: a fresh
    # one per run, as `databright coordinator` makes.
    signer = Keystore(data_dir / "keystore").load(account) if account else Account.create()
    settlement = None
    if market_job is not None:
        settlement = _split_settlement(rpc, data_dir, signer, market_job, fee_per_epoch, named)
        settlement.check_can_pay(model.epochs)  # before the relay listens
    relay = SplitRelay(
        timeout_s=timeout,
        attestation=(
            CoordinatorAttestation.software(signer, time.time())
            if attestation is Attestation.software
            else None
        ),
    )
    own = StageWorker(LOCAL_STAGE_WORKER)
    job.join(own.address, own.handle, owner=LOCAL_STAGE_WORKER)
    for worker in named:
        job.join(worker, relay.link_for(worker), owner=owner_of.get(worker))

    def epoch_done(report: EpochReport) -> None:
        console.print(
            f"epoch {report.epoch}/{report.epochs}: loss {report.loss:.4f}, hold-out accuracy "
            f"{report.holdout_accuracy:.3f}",
            highlight=False,
        )
        # the last epoch is paid once the model is assembled: its final weights are checked
        # against the workers' commitments only then
        if settlement is not None and report.epoch < report.epochs:
            settle_epoch(report.epoch)

    def settle_epoch(epoch: int) -> None:
        assert settlement is not None
        paid = settlement.epoch_done(epoch - 1)
        unpaid = f"; not paid (no stake): {', '.join(paid.unpaid)}" if paid.unpaid else ""
        console.print(
            f"epoch {epoch} settled on chain: paid {len(paid.paid)} x "
            f"{paid.fee_each_wei} wei{unpaid}; {paid.remaining_wei} wei left in escrow",
            highlight=False,
        )

    with serving_in_thread(split_relay_app(relay), host, port) as url:
        what = "software attestation, NOT hardware-backed" if relay.attestation else "unattested"
        console.print(f"coordinator {signer.address} ({what})", highlight=False, soft_wrap=True)
        console.print(f"split relay {url}/compute/v1 ({stages} stages)", highlight=False)
        for k, seat in sorted(job.seats.items()):
            layers = plan.layers(k)
            console.print(
                f"stage {k} (layers {layers.start}..{layers.stop - 1}): {safe(seat.worker)}",
                highlight=False,
            )
        if settlement is not None:
            _wait_for_stakes(settlement, timeout)
        try:
            result = job.train(x, y, on_epoch=epoch_done)
        except NotPermitted:
            if job.evidence and evidence is not None:
                found = [e.to_dict() for e in job.evidence]
                evidence.write_text(json.dumps(found, indent=2) + "\n")
                err_console.print(f"evidence written to {safe(evidence)}", highlight=False)
            if settlement is not None:
                _slash_caught(settlement, job.evidence)
            raise
        if settlement is not None:
            settle_epoch(model.epochs)
    out.write_bytes(result.checkpoint)
    m = result.metrics
    console.print(
        f"trained: hold-out accuracy {m['holdout_accuracy']:.3f}, {m['messages']:.0f} messages "
        f"relayed, {m['audits']:.0f} batches audited; checkpoint {safe(out)}",
        highlight=False,
    )


@app.command("worker")
def worker_command(
    relay: Annotated[str, typer.Option("--relay", help="Base URL of `databright split serve`.")],
    account: AccountOpt,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    idle: Annotated[
        float,
        typer.Option(min=1, help="Stop after this many seconds without a message, once working."),
    ] = 30.0,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the relay to come up.")
    ] = 30.0,
    cheat: Annotated[
        bool,
        typer.Option(
            "--cheat",
            help="Return scaled activations from the third batch on: for demos and tests of "
            "the audits only.",
        ),
    ] = False,
    allow_insecure_coordinator: AllowInsecureCoordinatorOpt = False,
    coordinator_address: CoordinatorAddressOpt = None,
    stake: StakeOpt = None,
    min_fee: MinFeeOpt = 0,
    rpc: RpcOpt = DEFAULT_RPC,
) -> None:
    """Hold one stage of a split job: check the coordinator's attestation, then pull its
    messages and answer them under this account's key."""
    from databright.chain.keystore import Keystore
    from databright.compute.split_relay import RelayedStageWorker
    from databright.compute.splitting import ScaledActivationsWorker, StageWorker
    from databright.compute.transport import http_transport
    from databright.compute.units import local_numeric_class

    expected_coordinator(coordinator_address)
    signer = Keystore(data_dir / "keystore").load(account)
    if stake is not None:
        stake_device(rpc, data_dir, signer, local_numeric_class(), min_fee, stake)
    stage = (ScaledActivationsWorker if cheat else StageWorker)(signer.address)
    worker = RelayedStageWorker(
        signer,
        http_transport(relay, timeout=60.0, serves="`databright split serve`"),
        stage_worker=stage,
    )
    started = time.monotonic()
    # Nothing pulled, no stage loaded, for a coordinator that fails its attestation.
    attested_coordinator(
        worker.check_coordinator,
        allow_insecure=allow_insecure_coordinator,
        expected=coordinator_address,
        wait=wait,
    )
    what = " (cheating: scaled activations)" if cheat else ""
    console.print(f"stage worker {worker.address} at {safe(relay)}{what}", highlight=False)
    last = None
    answered = 0
    while True:
        try:
            got = worker.work_once()
        except NodeUnreachable:
            # before the first message: the relay may not be up yet; after: the job is over
            if last is None and time.monotonic() - started < wait:
                time.sleep(0.2)
                continue
            if last is not None:
                break
            raise
        except NotPermitted:
            if last is None and time.monotonic() - started < wait:
                time.sleep(0.2)  # the job has not named this worker yet
                continue
            raise
        if got:
            answered += 1
            last = time.monotonic()
        elif last is not None and time.monotonic() - last > idle:
            break
        elif last is None and time.monotonic() - started > max(wait, idle):
            raise NodeUnreachable(
                f"no message came from {relay} in {max(wait, idle):g} s; check that a split job "
                "names this worker."
            )
    held = stage.holds(0)
    console.print(
        f"stage worker {worker.address}: {answered} messages answered"
        + ("" if held is None else f" (stage {held})"),
        highlight=False,
    )
