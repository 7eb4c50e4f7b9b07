"""``databright federation``: federated training paid by contribution, as processes and on chain.

The on-chain verbs are the ComputeMarket's federation escrow (:mod:`databright.compute.market`):
a payer escrows ETH for an allowed coordinator and named (or joining) clients (``create``),
clients ``join``, anyone can ``show`` where a federation stands, the payer may ``cancel`` only
until training starts and ``reclaim`` only after an unsettled deadline, and everyone
``withdraw``\\ s what was credited to them.

``serve`` runs the coordinator of one federation (:mod:`databright.compute.federation` over
:mod:`databright.server.federation`): it reads the spec the federation was created with and its
clients from the chain, starts the federation on chain as serving begins (from then on the payer
cannot take the escrow back), keeps its state in SQL (SQLite in the data dir by default, so a
restart resumes; PostgreSQL with ``--database-url``), and after the last round posts the payouts
with :func:`~databright.compute.federated.settle_contributions`: ``payout_wei`` of the escrow by
the leave-one-out scores, with the per-round scores stored by CID.

The coordinator attests that its key is its own (``--attestation software``: a statement that
key signs, never hardware-backed), as ``databright coordinator`` does.

``client`` is one data owner: its ``.npz`` never leaves the machine, only signed updates do.
It first checks the coordinator's attestation (a software one only with
``--allow-insecure-coordinator``; ``--coordinator-address`` pins the key it must sign with) and
exits with one sentence, having asked for no round and sent nothing, when it does not pass.
``--attack`` makes it a Byzantine client for demos and tests of robust aggregation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from databright.cli._common import (
    DEFAULT_DATA_DIR,
    DEFAULT_RPC,
    AccountOpt,
    DataDirOpt,
    JsonOpt,
    RpcOpt,
    busy,
    console,
    err_console,
    eth_exact,
    open_market,
    print_json,
    safe,
    utc,
)
from databright.cli._params import DURATION, ETH_AMOUNT, resolve_account
from databright.cli.compute import (
    AllowInsecureCoordinatorOpt,
    Attestation,
    AttestationOpt,
    CoordinatorAddressOpt,
    attested_coordinator,
    expected_coordinator,
)
from databright.cli.server import check_free
from databright.errors import InvalidArgument, NotPermitted

if TYPE_CHECKING:
    from databright.compute.federated import FederatedResult
    from databright.compute.federation import UpdateReceipt
    from databright.compute.market import ComputeMarket, FederationInfo

__all__ = ["AttackKind", "Rule", "app"]

app = typer.Typer(
    name="federation",
    help="Federated training: data stays with its owners, who are paid by contribution.",
    no_args_is_help=True,
)

FederationArg = Annotated[int, typer.Argument(min=1, help="Federation id (from `create`).")]


class Rule(StrEnum):
    """Robust aggregation rules a coordinator may use (no self-reported weights)."""

    trimmed_mean = "trimmed_mean"
    multi_krum = "multi_krum"
    coordinate_median = "coordinate_median"


class AttackKind(StrEnum):
    """The attacks one client can mount on its own (demos and tests only)."""

    label_flip = "label_flip"
    gaussian = "gaussian"
    sign_flip = "sign_flip"
    scaled = "scaled"


def _market(rpc: str, data_dir: Path, account: str | None) -> ComputeMarket:
    from databright.compute.market import ComputeMarket

    return ComputeMarket.over(open_market(rpc, data_dir, account))


def _info_json(f: FederationInfo) -> dict[str, Any]:
    return {
        "id": f.id,
        "status": f.status,
        "payer": f.payer,
        "coordinator": f.coordinator,
        "amount_wei": f.amount_wei,
        "paid_wei": f.paid_wei,
        "refund_wei": f.refund_wei,
        "deadline": f.deadline,
        "started_at": f.started_at,
        "clients": f.clients,
        "open_joining": f.open_joining,
        "spec_digest": "0x" + f.spec_digest.hex(),
        "scores_cid": f.scores_cid,
    }


# --- on-chain verbs -------------------------------------------------------------------------


@app.command("create")
def create_command(
    coordinator: Annotated[
        str, typer.Option("--coordinator", help="The allowed coordinator: address or index.")
    ],
    amount: Annotated[str, typer.Option("--amount", help="ETH to escrow, as a decimal.")],
    spec: Annotated[
        Path, typer.Option("--spec", help="The model spec to train (JSON).", dir_okay=False)
    ],
    clients: Annotated[
        list[str] | None,
        typer.Option("--client", help="A client to pay (address or index); repeat for more."),
    ] = None,
    open_joining: Annotated[
        bool, typer.Option("--open-joining", help="Let other clients join until training starts.")
    ] = False,
    deadline: Annotated[
        int,
        typer.Option(
            parser=DURATION,
            metavar=DURATION.metavar,
            help="How long the coordinator has to post the payouts: 3600, 1h, 2d.",
        ),
    ] = 86_400,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Escrow ETH for federated training (as the payer)."""
    from databright.ml.spec import ModelSpec

    wei = ETH_AMOUNT.convert(amount)
    try:
        text = spec.read_bytes()
    except OSError as exc:
        raise InvalidArgument(
            f"cannot read the spec {spec}: {exc.strerror}; give a JSON spec file."
        ) from None
    ModelSpec.from_json(text)  # a spec no coordinator could train is refused before paying
    who = resolve_account(data_dir, coordinator)
    named = [resolve_account(data_dir, c) for c in clients or []]
    cm = _market(rpc, data_dir, account)
    with busy(f"escrowing {eth_exact(wei)} ETH"):
        f = cm.create_federation(
            who, wei, deadline, cm.market.store.put(text), named, open_joining=open_joining
        )
    if json_out:
        print_json(_info_json(f))
        return
    console.print(
        f"federation {f.id}: {eth_exact(f.amount_wei)} ETH escrowed for {f.clients} client(s), "
        f"coordinator {f.coordinator}, deadline {utc(f.deadline)}",
        highlight=False,
    )


@app.command("join")
def join_command(
    federation: FederationArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Join a federation that lets clients join (as a client)."""
    cm = _market(rpc, data_dir, account)
    p = cm.join_federation(federation)
    if json_out:
        print_json({"id": federation, "client": p.client, "joined": p.joined})
        return
    console.print(f"{p.client} joined federation {federation}", highlight=False)


@app.command("show")
def show_command(
    federation: FederationArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Where a federation stands: its escrow, clients and (once settled) their payouts."""
    from databright.compute.federation import federation_clients

    cm = _market(rpc, data_dir, None)
    f = cm.federation(federation)
    clients = [cm.participant(federation, c) for c in federation_clients(cm, federation)]
    if json_out:
        print_json(
            {
                **_info_json(f),
                "participants": [
                    {"client": p.client, "posted": p.posted, "payout_wei": p.payout_wei}
                    for p in clients
                ],
            }
        )
        return
    console.print(
        f"federation {f.id}: {f.status}, {eth_exact(f.amount_wei)} ETH from {f.payer}, "
        f"coordinator {f.coordinator}, deadline {utc(f.deadline)}",
        highlight=False,
    )
    for p in clients:
        paid = f"{eth_exact(p.payout_wei)} ETH" if p.posted else "not paid yet"
        console.print(f"  {p.client}: {paid}", highlight=False)
    if f.scores_cid is not None:
        console.print(f"scores: {safe(f.scores_cid)}", highlight=False)


def _closing(what: str, doc: str) -> Callable[..., None]:
    """``cancel`` or ``reclaim``: the same arguments, the escrow credited back to the payer."""

    def command(
        federation: FederationArg,
        rpc: RpcOpt = DEFAULT_RPC,
        data_dir: DataDirOpt = DEFAULT_DATA_DIR,
        account: AccountOpt = "0",
        json_out: JsonOpt = False,
    ) -> None:
        cm = _market(rpc, data_dir, account)
        close = cm.cancel_federation if what == "cancelled" else cm.reclaim_federation
        refund = close(federation)
        if json_out:
            print_json({"id": federation, "status": what, "refund_wei": refund})
            return
        console.print(
            f"federation {federation} {what}: {eth_exact(refund)} ETH credited to its payer "
            "(`databright federation withdraw`)",
            highlight=False,
        )

    command.__doc__ = doc
    return command


app.command("cancel")(
    _closing("cancelled", "Cancel a federation before training starts (its payer or coordinator).")
)
app.command("reclaim")(
    _closing(
        "reclaimed",
        "Take back the escrow of a federation left unsettled past its deadline (its payer).",
    )
)


@app.command("withdraw")
def withdraw_command(
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Withdraw what the compute market credited to this account (payouts, refunds)."""
    cm = _market(rpc, data_dir, account)
    amount = cm.withdraw()
    if json_out:
        print_json({"account": cm.address, "withdrawn_wei": amount})
        return
    console.print(f"{cm.address} withdrew {eth_exact(amount)} ETH", highlight=False)


# --- the coordinator ------------------------------------------------------------------------


def _spec_of(cm: ComputeMarket, f: FederationInfo, spec: Path | None) -> bytes:
    """The spec the federation was created with: from the store by its on-chain digest, or
    the file given, which must be that same spec."""
    from databright.storage.cid import digest_to_cid

    cid = digest_to_cid(f.spec_digest)
    if spec is None:
        return bytes(cm.market.store.get(cid))
    try:
        text = spec.read_bytes()
    except OSError as exc:
        raise InvalidArgument(
            f"cannot read the spec {spec}: {exc.strerror}; give a JSON spec file."
        ) from None
    if cm.market.store.put(text) != cid:
        raise InvalidArgument(
            f"{spec} is not the spec federation {f.id} was created with ({cid}); give that one."
        )
    return text


class _Settler:
    """Posts the payouts once, when the last round closes (off the request that closed it:
    a chain transaction takes seconds, and the client that sent the last update waits)."""

    def __init__(self, cm: ComputeMarket, federation: int, clients: list[str]) -> None:
        self.cm, self.federation, self.clients = cm, federation, clients
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def settle(self, result: FederatedResult) -> None:
        from databright.compute.federated import settle_contributions

        with self._lock:
            if self.cm.federation(self.federation).status != "running":
                return
            try:
                s = settle_contributions(self.cm, self.federation, result, self.clients)
            except Exception as exc:  # the server keeps answering; say why nobody was paid
                err_console.print(f"[red]error:[/red] settling failed: {safe(exc)}")
                return
        console.print(
            f"federation {self.federation} settled: {eth_exact(s.paid_wei)} ETH paid to "
            f"{sum(1 for v in s.payouts.values() if v)} client(s), {eth_exact(s.refund_wei)} ETH "
            f"back to the payer; scores {safe(s.scores_cid)}",
            highlight=False,
        )

    def __call__(self, result: FederatedResult) -> None:
        self.thread = threading.Thread(target=self.settle, args=(result,), daemon=True)
        self.thread.start()


@app.command("serve")
def serve_command(
    federation: FederationArg,
    validation: Annotated[
        Path,
        typer.Option(
            "--validation", help="The coordinator's validation set (.npz of x, y).", dir_okay=False
        ),
    ],
    account: AccountOpt,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec", help="The spec file (default: from the store, by its CID).", dir_okay=False
        ),
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 10,
    local_epochs: Annotated[int, typer.Option(min=1, help="Local epochs per round.")] = 1,
    rule: Annotated[Rule, typer.Option(help="Robust aggregation rule.")] = Rule.trimmed_mean,
    trim: Annotated[
        float, typer.Option(min=0, max=0.49, help="Trimmed mean: fraction cut per side.")
    ] = 0.2,
    byzantine: Annotated[
        int, typer.Option("--byzantine", min=0, help="MultiKrum: Byzantine clients tolerated.")
    ] = 1,
    round_deadline: Annotated[
        float,
        typer.Option(min=1, help="Seconds after which a round closes without silent clients."),
    ] = 300.0,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the initial model and scoring.")] = 0,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the protocol.")] = 8200,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL of the coordinator's state (default: SQLite in the data dir).",
        ),
    ] = None,
    attestation: AttestationOpt = Attestation.software,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Coordinate a federation: start it on chain, run its rounds, pay its clients."""
    from databright.compute.aggregation import Aggregator
    from databright.compute.coordinator import CoordinatorAttestation
    from databright.compute.federation import (
        FederationCoordinator,
        FederationStore,
        federation_clients,
    )
    from databright.compute.federation_client import load_npz
    from databright.ml.spec import ModelSpec
    from databright.server.federation import serve_federation

    check_free(host, port)
    cm = _market(rpc, data_dir, account)
    f = cm.federation(federation)
    if f.coordinator != cm.address:
        raise NotPermitted(
            f"federation {federation} is run by coordinator {f.coordinator}, not {cm.address}; "
            "serve it with that account."
        )
    if f.status not in ("open", "running"):
        raise NotPermitted(f"federation {federation} is {f.status}; there is nothing to serve.")
    model = ModelSpec.from_json(_spec_of(cm, f, spec))
    x_val, y_val = load_npz(validation)
    if f.status == "open":
        with busy(f"starting federation {federation} on chain"):
            f = cm.start_federation(federation)
        console.print(
            f"federation {federation} started: the payer can no longer withdraw its escrow",
            highlight=False,
        )
    clients = federation_clients(cm, federation)
    aggregator = {
        Rule.trimmed_mean: Aggregator("trimmed_mean", trim=trim),
        Rule.multi_krum: Aggregator("multi_krum", f=byzantine),
        Rule.coordinate_median: Aggregator("coordinate_median"),
    }[rule]
    settler = _Settler(cm, federation, clients)
    signer = cm.market.gateway.account
    assert signer is not None  # the market was opened with --account
    attested = (
        CoordinatorAttestation.software(signer, time.time())
        if attestation is Attestation.software
        else None
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    store = FederationStore(database_url or f"sqlite:///{data_dir / 'federation.sqlite3'}")
    try:
        coordinator = FederationCoordinator(
            model,
            clients,
            x_val,
            y_val,
            store=store,
            rounds=rounds,
            local_epochs=local_epochs,
            aggregator=aggregator,
            round_deadline_s=round_deadline,
            seed=seed,
            run=f"{cm.contract.address}/{federation}",
            on_done=settler,
            attestation=attested,
        )
        if coordinator.done:  # a restart after the last round: pay if that did not happen
            settler.settle(coordinator.result())
        base = f"http://{host}:{port}"
        what = "software attestation, NOT hardware-backed" if attested else "unattested"
        console.print(f"coordinator {cm.address} ({what})", highlight=False, soft_wrap=True)
        console.print(
            f"federation {federation}: {len(clients)} clients, {rounds} rounds, {rule.value}; "
            f"serving {base}/federation/v1 (status: {base}/federation/v1/status)",
            highlight=False,
        )
        console.print("Ctrl-C stops the coordinator.", highlight=False)
        serve_federation(coordinator, host, port)
    finally:
        store.close()


# --- a client -------------------------------------------------------------------------------


@app.command("client")
def client_command(
    coordinator: Annotated[
        str, typer.Option("--coordinator", help="Base URL of `databright federation serve`.")
    ],
    account: AccountOpt,
    data: Annotated[
        Path,
        typer.Option("--data", help="This client's own examples (.npz of x, y).", dir_okay=False),
    ],
    attack: Annotated[
        AttackKind | None,
        typer.Option(help="Send a Byzantine update instead: for demos and tests only."),
    ] = None,
    strength: Annotated[
        float | None, typer.Option(min=0, help="The attack's strength (default: its own).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of local training.")] = 0,
    poll: Annotated[
        float, typer.Option(min=0.01, help="Seconds between asks while others train.")
    ] = 0.2,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds one request may take.")] = 60.0,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the coordinator to come up.")
    ] = 30.0,
    allow_insecure_coordinator: AllowInsecureCoordinatorOpt = False,
    coordinator_address: CoordinatorAddressOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Take part in a federation: check the coordinator's attestation, then train on this
    machine's data and send signed updates."""
    from databright.chain.keystore import Keystore
    from databright.compute.federated import Attack
    from databright.compute.federation_client import (
        FederationClient,
        federation_transport,
        load_npz,
    )

    expected_coordinator(coordinator_address)
    x, y = load_npz(data)
    threat = None if attack is None else Attack(attack.value, strength)
    signer = Keystore(data_dir / "keystore").load(account)
    client = FederationClient(
        signer, federation_transport(coordinator, timeout), x, y, attack=threat, seed=seed
    )
    # No round asked for, no update sent, to a coordinator that fails its attestation.
    attested_coordinator(
        client.check_coordinator,
        allow_insecure=allow_insecure_coordinator,
        expected=coordinator_address,
        wait=wait,
    )
    offer = client.fetch()
    what = f" (attacking: {attack.value})" if attack is not None else ""
    if not json_out:
        console.print(
            f"client {client.address} of {safe(coordinator)}: {len(x)} examples{what}",
            highlight=False,
        )

    def sent(receipt: UpdateReceipt) -> None:
        if not json_out:
            dropped = "" if receipt.kept else " (dropped: not finite)"
            console.print(f"round {receipt.round}: update sent{dropped}", highlight=False)

    if not offer.done:
        offer = client.run(poll_s=poll, on_receipt=sent)
    if json_out:
        print_json({"client": client.address, "rounds": offer.rounds, "sent": client.rounds_sent})
        return
    console.print(
        f"federation done after {offer.rounds} rounds; {client.address} sent "
        f"{client.rounds_sent} update(s)",
        highlight=False,
    )
