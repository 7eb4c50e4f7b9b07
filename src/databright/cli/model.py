"""``databright model ...``: the model market from the command line.

A dataset's initiator sets its terms (``terms``); a developer trains on a dataset (``train``,
which shows loss and accuracy per epoch and stores spec and checkpoint by CID) and registers
the model (``register``, paying the dataset's training fee); the dataset's evaluators benchmark
it on a test set the owner never sees (``benchmark``, then ``benchmark --reveal``, then anyone
``benchmark --finalize``); users deposit (``deposit``) and pay per prediction with signed
receipts (``predict``, against a node running ``serve``); the node settles (``settle``) and
owners and nodes withdraw (``withdraw``). ``list``/``show``/``impact`` read. A checkpoint's
weights can also be sold outright, fairly (``sell``, ``buy``, ``deliver``, ``accept``,
``reveal``, ``receive``, ``refund``; :mod:`databright.cli.model_sale`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from databright.atomic import atomic_write
from databright.cli import model_sale
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
)
from databright.cli._params import ETH_AMOUNT, ETH_AMOUNT_OR_ZERO
from databright.errors import InvalidArgument, NotFound
from databright.ml.train import EpochReport
from databright.models import ModelInfo, ModelMarket, Split, Terms, TrainedModel
from databright.storage import read_proposal

__all__ = ["app", "read_features"]

app = typer.Typer(help="The model market: train, register, benchmark, predict, settle.",
                  no_args_is_help=True)  # fmt: skip

ModelArg = Annotated[int, typer.Argument(help="Model id (see `databright model list`).")]


def _open(rpc: str, data_dir: Path, account: str | None) -> ModelMarket:
    return ModelMarket.over(open_market(rpc, data_dir, account))


def _model_json(m: ModelInfo) -> dict[str, Any]:
    body = asdict(m)
    body["weights_root"] = "0x" + m.weights_root.hex()
    body["price_eth"] = eth_exact(m.price_wei)
    return body


def _trained_dir(data_dir: Path) -> Path:
    return data_dir / "trained"


def read_features(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Inputs to predict on: a ``.npy`` array (never unpickled) or a CSV of numbers, one
    example per row, each of the model's input shape."""
    try:
        if path.suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        else:
            x = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float32)
    except FileNotFoundError:
        raise NotFound(f"input file {path} does not exist; check the path") from None
    except (OSError, ValueError) as exc:
        raise InvalidArgument(
            f"cannot read inputs from {path} ({str(exc).splitlines()[0][:120]}); give a .npy "
            "array or a CSV of numbers, one example per row"
        ) from None
    if x.dtype.kind not in "fiu":
        raise InvalidArgument(f"{path} holds {x.dtype} values; the inputs must be numbers")
    size = int(np.prod(shape))
    if x.ndim < 1 or x.size % size or (x.ndim > 1 and int(np.prod(x.shape[1:])) != size):
        raise InvalidArgument(
            f"{path} holds an array of shape {x.shape} but the model takes examples of shape "
            f"{shape}; give one example per row"
        )
    return np.asarray(x, np.float32).reshape(-1, *shape)


@app.command("terms")
def terms_command(
    dataset: Annotated[int, typer.Argument(help="Dataset id.")],
    training_fee: Annotated[
        str | None, typer.Option("--training-fee", help="ETH a model pays to train on it.")
    ] = None,
    margin: Annotated[
        int, typer.Option("--margin", help="Basis points a new best checkpoint must win by.")
    ] = 100,
    base_price: Annotated[
        str, typer.Option("--base-price", help="Most ETH per prediction before a benchmark.")
    ] = "0",
    price_slope: Annotated[
        str, typer.Option("--price-slope", help="Extra ETH per prediction at a perfect score.")
    ] = "0",
    commit: Annotated[int, typer.Option("--commit", help="Benchmark commit phase (s).")] = 60,
    reveal: Annotated[int, typer.Option("--reveal", help="Benchmark reveal phase (s).")] = 60,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Show a dataset's model-market terms, or set them (its initiator) with --training-fee."""
    if training_fee is None:
        mm = _open(rpc, data_dir, None)
        terms = mm.terms(dataset)
        if json_out:
            print_json({"dataset_id": dataset, "terms": asdict(terms) if terms else None})
        elif terms is None:
            console.print(f"dataset {dataset} has no model-market terms yet")
        else:
            console.print(f"dataset {dataset}: training fee {eth_exact(terms.training_fee_wei)} "
                          f"ETH, price cap {eth_exact(terms.base_price_wei)} + "
                          f"{eth_exact(terms.price_slope_wei)} x score ETH per prediction, "
                          f"margin {terms.margin_bps} bps")  # fmt: skip
        return
    terms = Terms(
        int(ETH_AMOUNT_OR_ZERO.convert(training_fee)),
        margin,
        int(ETH_AMOUNT_OR_ZERO.convert(base_price)),
        int(ETH_AMOUNT_OR_ZERO.convert(price_slope)),
        commit,
        reveal,
    )
    mm = _open(rpc, data_dir, account)
    with busy(f"setting the terms of dataset {dataset}"):
        mm.set_terms(dataset, terms)
    if json_out:
        print_json({"dataset_id": dataset, "terms": asdict(terms)})
    else:
        console.print(f"terms of dataset {dataset} set")


@app.command("train")
def train_command(
    dataset: Annotated[int, typer.Option("--dataset", help="Dataset id to train on.")],
    spec: Annotated[Path, typer.Option("--spec", help="Model spec (JSON).", dir_okay=False)],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Train a model spec on a dataset's accepted data (verified against the chain); stores
    spec and checkpoint by CID and prints the checkpoint's CID for `model register`."""
    mm = _open(rpc, data_dir, account)
    model_spec = mm.load_spec(spec)
    progress = Progress(
        TextColumn("epoch {task.completed}/{task.total}"), BarColumn(),
        TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, transient=True, disable=json_out or not err_console.is_terminal,
    )  # fmt: skip
    with progress:
        task = progress.add_task("", total=model_spec.epochs)

        def on_epoch(r: EpochReport) -> None:
            progress.update(
                task,
                completed=r.epoch,
                description=f"loss {r.loss:.4f} train acc {r.train_accuracy:.3f} "
                f"holdout acc {r.holdout_accuracy:.3f}",
            )

        trained, _ = mm.train(dataset, model_spec, on_epoch=on_epoch)
    record = asdict(trained)
    record["weights_root"] = "0x" + trained.weights_root.hex()
    atomic_write(_trained_dir(data_dir) / f"{trained.checkpoint_cid}.json", json.dumps(record))
    if json_out:
        print_json(record)
        return
    m = trained.metrics
    console.print(
        f"trained on {trained.examples} examples of dataset {dataset}: holdout accuracy "
        f"{m.get('holdout_accuracy', float('nan')):.4f}; checkpoint {trained.checkpoint_cid} "
        f"(spec {trained.spec_cid})"
    )


def _load_trained(data_dir: Path, checkpoint: str) -> TrainedModel:
    path = _trained_dir(data_dir) / f"{checkpoint}.json"
    if not path.is_file():
        raise NotFound(
            f"no model trained in {data_dir} has checkpoint {checkpoint}; run `databright "
            "model train` first (it prints the checkpoint CID)"
        )
    body = json.loads(path.read_text())
    body["weights_root"] = bytes.fromhex(body["weights_root"][2:])
    return TrainedModel(**body)


def _split(text: str) -> Split:
    parts = text.split("/")
    if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
        raise typer.BadParameter(f"{text!r} is not a split; write owner/data/node in bps, "
                                 "e.g. 6000/3000/1000")  # fmt: skip
    return Split(*(int(p) for p in parts))


@app.command("register")
def register_command(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint CID printed by `model train`.")],
    name: Annotated[str, typer.Option("--name", help="Model name (for its card).")],
    price: Annotated[str, typer.Option("--price", help="ETH per prediction.")] = "0",
    split: Annotated[
        str, typer.Option("--split", help="owner/data/node revenue split in bps.")
    ] = "6000/3000/1000",
    node: Annotated[
        str | None, typer.Option("--node", help="Serving node's address (default: you).")
    ] = None,
    model: Annotated[
        int | None, typer.Option("--model", help="Publish as a new version of this model.")
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Register a trained model (paying the dataset's training fee), or publish it as a new
    version of a model you own (--model)."""
    trained = _load_trained(data_dir, checkpoint)
    mm = _open(rpc, data_dir, account)
    with busy("registering the model"):
        if model is not None:
            info = mm.publish_version(model, trained, name)
        else:
            info = mm.register(
                trained,
                name=name,
                price_wei=int(ETH_AMOUNT_OR_ZERO.convert(price)),
                split=_split(split),
                node=node,
            )
    if json_out:
        print_json(_model_json(info))
        return
    console.print(f"model {info.id} version {info.version} registered on dataset "
                  f"{info.dataset_id}; benchmark commits close at {info.commit_deadline}")  # fmt: skip


@app.command("list")
def list_command(
    dataset: Annotated[int | None, typer.Option("--dataset", help="Only this dataset.")] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """Models, best benchmark score first, then cheapest."""
    mm = _open(rpc, data_dir, None)
    models = mm.models(dataset)
    if json_out:
        print_json([_model_json(m) for m in models])
        return
    if not models:
        console.print("no models registered" + (f" on dataset {dataset}" if dataset else ""))
        return
    table = Table(title="models")
    for col in ("id", "dataset", "owner", "version", "score", "ETH/prediction"):
        table.add_column(col)
    for m in models:
        score = f"{m.score_bps / 100:.2f}%" if m.benchmarked else "unbenchmarked"
        table.add_row(str(m.id), str(m.dataset_id), m.owner, str(m.version), score,
                      eth_exact(m.price_wei))  # fmt: skip
    console.print(table)


@app.command("show")
def show_command(
    model: ModelArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_out: JsonOpt = False,
) -> None:
    """One model: owner, dataset, spec, checkpoint, score, price and split."""
    mm = _open(rpc, data_dir, None)
    info = mm.model(model)
    if json_out:
        print_json(_model_json(info))
        return
    for key, value in _model_json(info).items():
        console.print(f"{key:16} {safe(value)}", highlight=False)


def _test_set(mm: ModelMarket, dataset: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    examples = read_proposal(path, mm.market.schema(dataset))
    return np.asarray(examples.X, np.float32), mm.label_indices(dataset, examples.y)


def _attestation(path: Path, evaluator: str) -> dict[str, object]:
    """The verified claims of the evidence in ``path``, bound to ``evaluator``'s key: an Intel
    DCAP quote (with its collateral) if it parses as one, else a software statement."""
    from databright.compute.attestation import (
        DcapProvider,
        SoftwareProvider,
        evaluator_attestation,
        report_data_for,
    )

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the evidence {path}: {exc.strerror}") from None
    try:
        software = "statement" in json.loads(raw)
    except (ValueError, TypeError):
        software = False  # not JSON: a quote is refused by the DCAP provider in one sentence
    provider: Any = SoftwareProvider() if software else DcapProvider()
    claims = provider.verify(raw, expected_report_data=report_data_for(evaluator))
    return dict(evaluator_attestation(claims))


@app.command("benchmark")
def benchmark_command(
    model: ModelArg,
    test: Annotated[
        Path | None,
        typer.Option("--test", help="Your held-out test set (a proposal file).", dir_okay=False),
    ] = None,
    reveal: Annotated[bool, typer.Option("--reveal", help="Reveal your committed score.")] = False,
    finalize: Annotated[
        bool, typer.Option("--finalize", help="Finalize the median score (anyone).")
    ] = False,
    version: Annotated[int | None, typer.Option("--version", help="Default: current.")] = None,
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence",
            help="Attestation evidence of this evaluator's machine (an Intel DCAP quote with its "
            "collateral, or a software statement), bound to your account; its verified claims "
            "go into the report.",
            dir_okay=False,
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Benchmark a model (an evaluator of its dataset): commit a sealed score on --test, then
    --reveal it in the reveal phase; after it anyone may --finalize."""
    if sum((test is not None, reveal, finalize)) != 1:
        raise typer.BadParameter("give exactly one of --test FILE, --reveal or --finalize")
    mm = _open(rpc, data_dir, account)
    info = mm.model(model)
    v = info.version if version is None else version
    if finalize:
        with busy(f"finalizing the benchmark of model {model}"):
            after = mm.finalize_benchmark(model, v)
        out: dict[str, Any] = {"model_id": model, "version": v, "score_bps": after.score_bps,
                               "best": mm.best(after.dataset_id)}  # fmt: skip
    elif reveal:
        with busy(f"revealing the benchmark of model {model}"):
            sealed = mm.reveal_benchmark(model, v)
        out = asdict(sealed)
    else:
        assert test is not None
        x, y = _test_set(mm, info.dataset_id, test)
        claims = _attestation(evidence, mm.address) if evidence is not None else None
        with busy(f"benchmarking model {model} on {len(y)} held-out examples"):
            sealed = mm.commit_benchmark(model, x, y, v, attestation=claims)
        out = asdict(sealed)
        out.pop("salt")
    if json_out:
        print_json(out)
        return
    for key, value in out.items():
        console.print(f"{key:16} {safe(value)}", highlight=False)


@app.command("deposit")
def deposit_command(
    model: ModelArg,
    amount: Annotated[str, typer.Argument(help="ETH to deposit.")],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Deposit ETH into a model's escrow to pay for predictions with receipts."""
    wei = ETH_AMOUNT.convert(amount)
    mm = _open(rpc, data_dir, account)
    with busy(f"depositing {eth_exact(wei)} ETH for model {model}"):
        escrow = mm.deposit(model, wei)
    if json_out:
        print_json({"model_id": model, "user": mm.address, **asdict(escrow)})
    else:
        console.print(f"deposited; {eth_exact(escrow.available)} ETH available for model {model}")


@app.command("predict")
def predict_command(
    model: ModelArg,
    inputs: Annotated[Path, typer.Argument(help="Inputs: .npy or CSV, one example per row.")],
    node: Annotated[str, typer.Option("--node", help="URL of the model's serving node.")],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Predict with a model through its serving node, paying with a signed receipt."""
    from databright.models.client import predict_remote

    mm = _open(rpc, data_dir, account)
    info = mm.model(model)
    spec = mm.spec_of(model)
    x = read_features(inputs, tuple(spec.input_shape))
    with busy(f"asking {node} for {len(x)} predictions"):
        result = predict_remote(mm, info, node, x)
    if json_out:
        print_json(result)
        return
    console.print(" ".join(str(p) for p in result["predictions"]))
    console.print(f"paid {eth_exact(result['paid_wei'])} ETH (total signed "
                  f"{eth_exact(result['total_wei'])} ETH)", highlight=False)  # fmt: skip


@app.command("settle")
def settle_command(
    model: ModelArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Settle the latest receipts of a model this node serves (one transaction per user)."""
    mm = _open(rpc, data_dir, account)
    with busy(f"settling the receipts of model {model}"):
        s = mm.settle(model)
    if json_out:
        print_json(asdict(s))
        return
    console.print(f"settled {s.users} users: {eth_exact(s.amount_wei)} ETH (owner "
                  f"{eth_exact(s.owner_wei)}, shareholders {eth_exact(s.data_wei)}, node "
                  f"{eth_exact(s.node_wei)})", highlight=False)  # fmt: skip


@app.command("withdraw")
def withdraw_command(
    deposit_of: Annotated[
        int | None,
        typer.Option(
            "--deposit",
            help="Withdraw your unspent deposit of a model (after `model exit` and its delay).",
        ),
    ] = None,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Withdraw your earnings as a model owner or node, or (--deposit) an unspent deposit."""
    mm = _open(rpc, data_dir, account)
    with busy("withdrawing"):
        amount = mm.withdraw_deposit(deposit_of) if deposit_of is not None else mm.withdraw()
    if json_out:
        print_json({"account": mm.address, "withdrawn_wei": int(amount)})
    else:
        console.print(f"withdrew {eth_exact(amount)} ETH to {mm.address}")


@app.command("exit")
def exit_command(
    model: ModelArg,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """Start taking your deposit back: after the exit delay, `model withdraw --deposit`."""
    mm = _open(rpc, data_dir, account)
    with busy(f"starting the exit from model {model}'s escrow"):
        escrow = mm.start_exit(model)
    if json_out:
        print_json({"model_id": model, "user": mm.address, **asdict(escrow)})
    else:
        console.print(f"exit starts; withdraw after {escrow.exit_at} (unix time)")


@app.command("impact")
def impact_command(
    dataset: Annotated[int, typer.Argument(help="Dataset id.")],
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
    json_out: JsonOpt = False,
) -> None:
    """What the models trained on a dataset paid back to it, and your income from each source."""
    mm = _open(rpc, data_dir, None)
    impact = mm.impact(dataset)
    from databright.cli._common import viewer_address

    who = viewer_address(data_dir, account)
    income = mm.income(dataset, who) if who else None
    if json_out:
        print_json({**asdict(impact), "account": who, "income": income})
        return
    console.print(f"dataset {dataset}: {eth_exact(impact.training_revenue_wei)} ETH from "
                  f"training fees, {eth_exact(impact.prediction_revenue_wei)} ETH from "
                  "predictions", highlight=False)  # fmt: skip
    for m in impact.models:
        console.print(f"  model {m['model_id']}: score {m['score_bps']} bps, "
                      f"{eth_exact(int(str(m['to_dataset_wei'])))} ETH to the dataset",
                      highlight=False)  # fmt: skip
    if income is not None:
        console.print(f"{who}: {eth_exact(income['training_wei'])} ETH of dividends from "
                      f"training, {eth_exact(income['predictions_wei'])} ETH from predictions",
                      highlight=False)  # fmt: skip


@app.command("serve")
def serve_command(
    model: ModelArg,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8090,
    rpc: RpcOpt = DEFAULT_RPC,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    account: AccountOpt = "0",
) -> None:
    """Serve a model as its node: every request pays with a signed receipt, checked and kept
    before the prediction; settle them later with `databright model settle`."""
    from databright.cli.server import check_free
    from databright.server.serving import serve_model  # FastAPI only when serving

    check_free(host, port)
    mm = _open(rpc, data_dir, account)
    serving = mm.serving(model)
    err_console.print(
        f"serving model {model} at http://{host}:{port}/api/v1/models/{model}/predict "
        f"({eth_exact(serving.price_wei)} ETH per prediction); Ctrl-C stops",
        highlight=False,
    )
    serve_model(serving, host=host, port=port)


# Buying a checkpoint's weights outright (``sell``, ``buy``, ``deliver``, ``accept``,
# ``reveal``, ``receive``, ``refund``, ``sale``, ``sale-settle``): see ``model_sale``.
model_sale.register(app)
