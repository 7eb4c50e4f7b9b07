"""The model market as a Python API: terms, training fees, models, benchmarks, paid predictions.

``ModelMarket.connect(rpc_url, account, data_dir)`` stands on the data market's SDK
(:class:`databright.market.Market`: the same gateway, the same content-addressed store) and
binds the ``ModelMarket`` contract recorded in the data dir's deployment.

The life of a model, as the contract sees it:

1. The dataset's initiator sets the dataset's terms: training fee, price curve, benchmark
   phases, the margin a new best checkpoint must win by (:meth:`ModelMarket.set_terms`).
2. A developer trains on the dataset (:meth:`train`: every example verified against the
   chain), and registers the model (:meth:`register`), which pays the training fee to the
   dataset's shareholders first if it is not paid yet. Spec, checkpoint and model card are
   stored by CID; only their digests and the checkpoint's weights root go on-chain.
3. The dataset's evaluators benchmark the checkpoint on a test set the owner never sees, with
   a sealed score (:meth:`commit_benchmark`, :meth:`reveal_benchmark`), and anyone finalizes the
   median (:meth:`finalize_benchmark`); the score caps the model's price.
4. Users deposit into an escrow and pay per prediction with signed cumulative receipts; the
   serving node checks each before answering (:meth:`serving`) and settles the latest receipt
   once for any number of predictions (:meth:`settle`), which splits the money among the model
   owner, the dataset's shareholders (as dividends) and itself.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from databright.atomic import atomic_write
from databright.chain.clients import ModelMarketClient
from databright.errors import (
    BlobNotFound,
    CheckpointMismatch,
    InsufficientFunds,
    InvalidArgument,
    NotFound,
)
from databright.market import Market
from databright.market.bound import BoundContract
from databright.ml.card import render_card
from databright.ml.checkpoint import load_checkpoint
from databright.ml.onnx import OnnxPredictor
from databright.ml.predictor import Predictor
from databright.ml.spec import ModelSpec, validate_spec
from databright.ml.train import EpochReport, TrainResult, evaluate, train
from databright.models.receipts import EscrowState, ReceiptBook, ReceiptDomain, Wallet
from databright.models.sale import weights_root
from databright.models.serving import Serving
from databright.storage import cid_to_digest, digest_to_cid
from databright.types import Address, Wei

__all__ = [
    "BPS",
    "NOT_ATTESTED",
    "BenchmarkReport",
    "DatasetImpact",
    "Escrow",
    "ModelInfo",
    "ModelMarket",
    "Settlement",
    "Split",
    "Terms",
    "TrainedModel",
    "benchmark_commitment",
]

BPS = 10_000
ZERO32 = b"\x00" * 32
#: A benchmark report's attestation when the evaluator has none to give.
NOT_ATTESTED: Mapping[str, object] = {
    "provider": "none",
    "hardware_backed": False,
    "measurement": "",
    "note": "signed by the evaluator's key only, not hardware-attested",
}


def benchmark_commitment(
    model_id: int, version: int, evaluator: str, score_bps: int, report: bytes, salt: bytes
) -> bytes:
    """The commitment ``commit_benchmark`` takes, as the contract's ``benchmark_commitment``."""
    return keccak(
        encode(
            ["uint256", "uint256", "address", "uint256", "bytes32", "bytes32"],
            [model_id, version, to_checksum_address(evaluator), score_bps, report, salt],
        )
    )


@dataclass(frozen=True)
class Terms:
    """What a dataset asks of the models trained on it."""

    training_fee_wei: int = 0
    margin_bps: int = 0  # a new best checkpoint must beat the best score by more than this
    base_price_wei: int = 0  # the most an unbenchmarked model may charge per prediction
    price_slope_wei: int = 0  # price cap = base + slope * score / 10_000
    commit_period_s: int = 60
    reveal_period_s: int = 60

    def price_cap(self, score_bps: int) -> int:
        return self.base_price_wei + self.price_slope_wei * int(score_bps) // BPS


@dataclass(frozen=True)
class Split:
    """How a model's prediction revenue is shared, in basis points (summing to 10,000)."""

    owner_bps: int = 6000
    data_bps: int = 3000
    node_bps: int = 1000

    def __post_init__(self) -> None:
        parts = (self.owner_bps, self.data_bps, self.node_bps)
        if min(parts) < 0 or sum(parts) != BPS:
            raise InvalidArgument(
                f"a revenue split must be three non-negative parts summing to {BPS} bps, not "
                f"{self.owner_bps}/{self.data_bps}/{self.node_bps}"
            )


@dataclass(frozen=True)
class TrainedModel:
    """A model trained on a dataset and stored: what :meth:`ModelMarket.register` needs."""

    dataset_id: int
    spec_cid: str
    checkpoint_cid: str
    weights_root: bytes
    metrics: dict[str, float]
    examples: int


@dataclass(frozen=True)
class ModelInfo:
    id: int
    owner: Address
    dataset_id: int
    spec_cid: str
    price_wei: int
    split: Split
    node: Address
    version: int  # the current (served) version
    versions: int
    checkpoint_cid: str
    card_cid: str
    weights_root: bytes
    benchmarked: bool
    score_bps: int  # the current version's benchmark score (0 before its benchmark)
    commit_deadline: int
    reveal_deadline: int


@dataclass(frozen=True)
class BenchmarkReport:
    """An evaluator's benchmark of one checkpoint, kept sealed until the reveal."""

    model_id: int
    version: int
    evaluator: str
    score_bps: int
    accuracy: float
    loss: float
    examples: int
    checkpoint_cid: str
    weights_root: str
    report_cid: str
    salt: str
    attested: bool = False
    attestation: str = "{}"  # JSON of what the evaluator's attestation provider verified

    def commitment(self) -> bytes:
        return benchmark_commitment(
            self.model_id,
            self.version,
            self.evaluator,
            self.score_bps,
            cid_to_digest(self.report_cid),
            bytes.fromhex(self.salt),
        )


#: A user's escrow for one model, as the contract holds it (one type for chain and receipts).
Escrow = EscrowState


@dataclass(frozen=True)
class Settlement:
    model_id: int
    users: int
    amount_wei: int
    owner_wei: int
    data_wei: int
    node_wei: int
    gas_used: int


@dataclass(frozen=True)
class DatasetImpact:
    """What the models trained on a dataset gave back to it."""

    dataset_id: int
    training_revenue_wei: int
    prediction_revenue_wei: int
    models: list[dict[str, object]]


class ModelMarket(BoundContract[ModelMarketClient]):
    """The model market's SDK for one account (see the module docstring)."""

    DEPLOYMENT_KEY = "ModelMarket"
    CLIENT = ModelMarketClient
    WHAT = "model market"

    @property
    def data_dir(self) -> Path:
        return self.market.data_dir

    # --- terms and fees --------------------------------------------------------------

    def set_terms(self, dataset_id: int, terms: Terms) -> None:
        self.market._check_dataset(dataset_id)
        if not terms.commit_period_s > 0 < terms.reveal_period_s:
            raise InvalidArgument("benchmark commit and reveal periods must both be positive")
        self.contract.set_terms(
            int(dataset_id),
            terms.training_fee_wei,
            terms.margin_bps,
            terms.base_price_wei,
            terms.price_slope_wei,
            terms.commit_period_s,
            terms.reveal_period_s,
        )

    def terms(self, dataset_id: int) -> Terms | None:
        """The dataset's terms (None while its initiator has set none)."""
        self.market._check_dataset(dataset_id)
        t = self.contract.terms(int(dataset_id))
        if not t.set:
            return None
        return Terms(
            int(t.training_fee),
            int(t.margin_bps),
            int(t.base_price),
            int(t.price_slope),
            int(t.commit_period),
            int(t.reveal_period),
        )

    def _terms(self, dataset_id: int) -> Terms:
        terms = self.terms(dataset_id)
        if terms is None:
            raise NotFound(
                f"dataset {dataset_id} has no model-market terms yet; its initiator sets them "
                "with `databright model terms`"
            )
        return terms

    def training_paid(self, dataset_id: int, spec_cid: str, payer: str | None = None) -> bool:
        who = to_checksum_address(payer) if payer else self.address
        return bool(self.contract.training_paid(who, int(dataset_id), cid_to_digest(spec_cid)))

    def pay_training_fee(self, dataset_id: int, spec_cid: str) -> Wei:
        """Pay the dataset's training fee for a spec (once); returns what was paid."""
        terms = self._terms(dataset_id)
        if self.training_paid(dataset_id, spec_cid):
            return Wei(0)
        self._require_funds(terms.training_fee_wei, "pay the training fee")
        self.contract.pay_training_fee(
            int(dataset_id), cid_to_digest(spec_cid), value=terms.training_fee_wei
        )
        return Wei(terms.training_fee_wei)

    def _require_funds(self, value: int, what: str) -> None:
        balance = self.market.gateway.balance()
        if balance < value:
            raise InsufficientFunds(
                f"{self.address} holds {balance} wei but needs {value} wei (plus gas) to {what}; "
                "fund the account first"
            )

    # --- training and registering ------------------------------------------------------

    def load_spec(self, source: str | Path | bytes | dict[str, object]) -> ModelSpec:
        if isinstance(source, dict):
            return validate_spec(source)
        if isinstance(source, bytes):
            return ModelSpec.from_json(source)
        path = Path(source)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InvalidArgument(
                f"cannot read the model spec {path}: {exc.strerror}; give a JSON spec file"
            ) from None
        return ModelSpec.from_json(raw)

    def label_indices(self, dataset_id: int, y: np.ndarray) -> np.ndarray:
        """Labels of the dataset as class numbers, the order of a model's outputs."""
        return self.market.schema(dataset_id).class_indices(y)

    def dataset_arrays(self, dataset_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Every accepted example of the dataset, verified against the chain, with labels as
        class indices (the order of the schema's labels)."""
        examples, _ = self.market.download(dataset_id)
        return np.asarray(examples.X, np.float32), self.label_indices(dataset_id, examples.y)

    def train(
        self,
        dataset_id: int,
        spec: ModelSpec,
        on_epoch: Callable[[EpochReport], None] | None = None,
    ) -> tuple[TrainedModel, TrainResult]:
        """Train ``spec`` on the dataset's accepted data and store spec and checkpoint."""
        schema = self.market.schema(dataset_id)
        if not schema.labels:
            raise InvalidArgument(
                f"dataset {dataset_id} has no class labels; the model market trains and "
                "benchmarks classifiers only"
            )
        spec.check_dataset(tuple(schema.feature_shape), len(schema.labels))
        x, y = self.dataset_arrays(dataset_id)
        result = train(spec, x, y, on_epoch=on_epoch)
        spec_cid = self.market.store.put(spec.to_json())
        checkpoint_cid = self.market.store.put(result.checkpoint)
        trained = TrainedModel(
            int(dataset_id),
            spec_cid,
            checkpoint_cid,
            weights_root(result.checkpoint),
            {k: float(v) for k, v in result.metrics.items()},
            len(y),
        )
        return trained, result

    def register(
        self,
        trained: TrainedModel,
        *,
        name: str,
        price_wei: int = 0,
        split: Split = Split(),
        node: str | None = None,
    ) -> ModelInfo:
        """Register a trained model (paying the training fee first if it is not paid); the
        model card is written in the Hugging Face Hub's format and stored by CID."""
        terms = self._terms(trained.dataset_id)
        if price_wei > terms.price_cap(0):
            raise InvalidArgument(
                f"an unbenchmarked model may charge at most {terms.price_cap(0)} wei per "
                f"prediction on dataset {trained.dataset_id}, not {price_wei}; register at that "
                "price and raise it after the benchmark"
            )
        card_cid = self._store_card(trained, name)
        self.pay_training_fee(trained.dataset_id, trained.spec_cid)
        receipt = self.contract.register_model(
            trained.dataset_id,
            cid_to_digest(trained.spec_cid),
            cid_to_digest(trained.checkpoint_cid),
            trained.weights_root,
            cid_to_digest(card_cid),
            int(price_wei),
            split.owner_bps,
            split.data_bps,
            split.node_bps,
            to_checksum_address(node) if node else self.address,
        )
        return self.model(int(receipt.event("ModelRegistered").args["model_id"]))

    def _store_card(self, trained: TrainedModel, name: str) -> str:
        dataset = self.market.dataset(trained.dataset_id)
        card = render_card(
            name,
            trained.spec_cid,
            trained.checkpoint_cid,
            f"databright dataset {trained.dataset_id} ({dataset.name})",
            trained.metrics,
        )
        return self.market.store.put(card.encode())

    def publish_version(self, model_id: int, trained: TrainedModel, name: str) -> ModelInfo:
        info = self.model(model_id)
        if trained.spec_cid != info.spec_cid:
            raise InvalidArgument(
                f"model {model_id} was registered with spec {info.spec_cid}; a new version must "
                "use the same spec (register a new model for a new architecture)"
            )
        card_cid = self._store_card(trained, name)
        self.contract.publish_version(
            int(model_id),
            cid_to_digest(trained.checkpoint_cid),
            trained.weights_root,
            cid_to_digest(card_cid),
        )
        return self.model(model_id)

    def set_price(self, model_id: int, price_wei: int) -> ModelInfo:
        info = self.model(model_id)
        cap = self._terms(info.dataset_id).price_cap(info.score_bps)
        if price_wei > cap:
            raise InvalidArgument(
                f"model {model_id} may charge at most {cap} wei per prediction at its benchmark "
                f"score of {info.score_bps} bps, not {price_wei}"
            )
        self.contract.set_price(int(model_id), int(price_wei))
        return self.model(model_id)

    # --- reading -----------------------------------------------------------------------

    def model_count(self) -> int:
        return int(self.contract.model_count())

    def _check_model(self, model_id: int) -> None:
        if not 1 <= int(model_id) <= self.model_count():
            raise NotFound(
                f"model {model_id} does not exist on this market; see `databright model list`"
            )

    def _cid(self, digest: bytes) -> str:
        """The CID a digest names (raw when no store knows the blob: specs and cards are)."""
        try:
            return self.market.cid_of(bytes(digest))
        except BlobNotFound:
            return str(digest_to_cid(bytes(digest)))

    def model(self, model_id: int) -> ModelInfo:
        self._check_model(model_id)
        m = self.contract.model(int(model_id))
        v = self.contract.version(int(model_id), int(m.current_version))
        return ModelInfo(
            id=int(model_id),
            owner=Address(to_checksum_address(m.owner)),
            dataset_id=int(m.dataset_id),
            spec_cid=self._cid(m.spec_digest),
            price_wei=int(m.price),
            split=Split(int(m.owner_bps), int(m.data_bps), int(m.node_bps)),
            node=Address(to_checksum_address(m.node)),
            version=int(m.current_version),
            versions=int(m.versions),
            checkpoint_cid=self._cid(v.checkpoint_digest),
            card_cid=self._cid(v.card_digest),
            weights_root=bytes(v.weights_root),
            benchmarked=bool(v.benchmarked),
            score_bps=int(v.score_bps),
            commit_deadline=int(v.commit_deadline),
            reveal_deadline=int(v.reveal_deadline),
        )

    def models(self, dataset_id: int | None = None) -> list[ModelInfo]:
        """Every model (of one dataset), best benchmark score first, then cheapest."""
        out = [self.model(i) for i in range(1, self.model_count() + 1)]
        if dataset_id is not None:
            out = [m for m in out if m.dataset_id == int(dataset_id)]
        return sorted(out, key=lambda m: (-m.score_bps, m.price_wei, m.id))

    def best(self, dataset_id: int) -> tuple[int, int, int] | None:
        """The dataset's best checkpoint: (model id, version, score bps), or None."""
        model_id, version, score = self.contract.best(int(dataset_id))
        return None if int(model_id) == 0 else (int(model_id), int(version), int(score))

    def spec_of(self, model_id: int) -> ModelSpec:
        return ModelSpec.from_json(self.market.store.get(self.model(model_id).spec_cid))

    def checkpoint_of(self, model_id: int, version: int | None = None) -> tuple[ModelSpec, bytes]:
        """The spec and checkpoint bytes of a model's version (its current one by default),
        checked against the content addresses and the weights root the chain recorded."""
        info = self.model(model_id)
        spec = ModelSpec.from_json(self.market.store.get(info.spec_cid))
        if version is None or int(version) == info.version:
            cid, root = info.checkpoint_cid, info.weights_root
        else:
            v = self.contract.version(int(model_id), int(version))
            cid, root = self._cid(v.checkpoint_digest), bytes(v.weights_root)
        blob = self.market.store.get(cid)  # verified against its CID by the store
        if weights_root(blob) != root:
            raise CheckpointMismatch(
                f"the checkpoint {cid} of model {model_id} does not match the weights root the "
                "chain records for it; its owner registered inconsistent data"
            )
        load_checkpoint(blob, spec)  # tensors must match the spec
        return spec, blob

    # --- benchmarks (evaluator side) ---------------------------------------------------

    def _sealed_path(self, model_id: int, version: int) -> Path:
        return (
            self.data_dir / "sealed-benchmarks" / str(self.market.gateway.chain_id)
            / f"{int(model_id)}-{int(version)}-{self.address}.json"
        )  # fmt: skip

    def sealed_benchmark(self, model_id: int, version: int) -> BenchmarkReport | None:
        path = self._sealed_path(model_id, version)
        if not path.is_file():
            return None
        return BenchmarkReport(**json.loads(path.read_text()))

    def commit_benchmark(
        self,
        model_id: int,
        x_test: np.ndarray,
        y_test: np.ndarray,
        version: int | None = None,
        attestation: Mapping[str, object] | None = None,
    ) -> BenchmarkReport:
        """Score a model's checkpoint on this evaluator's held-out test set and commit to the
        score sealed (the opening is kept owner-only under ``<data_dir>/sealed-benchmarks``).

        ``attestation`` is what the evaluator's attestation provider verified of the machine
        it runs on (``databright.compute.attestation.evaluator_attestation``: provider,
        hardware_backed, measurement); without one, the report says the score is signed by the
        evaluator's key only, not hardware-attested."""
        attested = dict(attestation) if attestation is not None else dict(NOT_ATTESTED)
        info = self.model(model_id)
        version = info.version if version is None else int(version)
        spec, blob = self.checkpoint_of(model_id, version)
        module = load_checkpoint(blob, spec)
        metrics = evaluate(module, np.asarray(x_test, np.float32), np.asarray(y_test), spec=spec)
        score = round(float(metrics["accuracy"]) * BPS)
        body = {
            "model_id": int(model_id),
            "version": version,
            "checkpoint_cid": self._cid(
                self.contract.version(int(model_id), version).checkpoint_digest
            ),
            "weights_root": "0x" + weights_root(blob).hex(),
            "evaluator": self.address,
            "test_examples": len(y_test),
            "accuracy": float(metrics["accuracy"]),
            "loss": float(metrics["loss"]),
            "score_bps": score,
            "attested": bool(attested.get("hardware_backed", False)),
            "attestation": attested,
        }
        report = json.dumps(body, sort_keys=True).encode()
        report_cid = Market.content_address(report)
        sealed = BenchmarkReport(
            int(model_id),
            version,
            self.address,
            score,
            float(metrics["accuracy"]),
            float(metrics["loss"]),
            len(y_test),
            str(body["checkpoint_cid"]),
            str(body["weights_root"]),
            report_cid,
            secrets.token_bytes(32).hex(),
            attested=bool(body["attested"]),
            attestation=json.dumps(attested, sort_keys=True),
        )
        path = self._sealed_path(model_id, version)
        atomic_write(path.with_suffix(".report"), report, mode=0o600)
        atomic_write(path, json.dumps(asdict(sealed)), mode=0o600)
        self.contract.commit_benchmark(int(model_id), version, sealed.commitment())
        return sealed

    def reveal_benchmark(self, model_id: int, version: int) -> BenchmarkReport:
        sealed = self.sealed_benchmark(model_id, version)
        if sealed is None:
            raise NotFound(
                f"no committed benchmark of model {model_id} version {version} by "
                f"{self.address} in {self.data_dir}; commit from this data dir first"
            )
        self.contract.reveal_benchmark(
            int(model_id),
            int(version),
            sealed.score_bps,
            cid_to_digest(sealed.report_cid),
            bytes.fromhex(sealed.salt),
        )
        report = self._sealed_path(model_id, version).with_suffix(".report")
        if report.is_file():
            self.market.store.put(report.read_bytes())
        return sealed

    def finalize_benchmark(self, model_id: int, version: int | None = None) -> ModelInfo:
        info = self.model(model_id)
        self.contract.finalize_benchmark(
            int(model_id), info.version if version is None else int(version)
        )
        return self.model(model_id)

    # --- paying for predictions (user side) -------------------------------------------------

    @property
    def domain(self) -> ReceiptDomain:
        return ReceiptDomain(self.market.gateway.chain_id, self.contract.address)

    def escrow(self, model_id: int, user: str | None = None) -> Escrow:
        self._check_model(model_id)
        who = to_checksum_address(user) if user else self.address
        e = self.contract.escrow(int(model_id), who)
        return Escrow(int(e.deposited), int(e.settled), int(e.nonce), int(e.exit_at))

    def deposit(self, model_id: int, amount_wei: int) -> Escrow:
        self._check_model(model_id)
        if amount_wei <= 0:
            raise InvalidArgument(f"a deposit must be positive, not {amount_wei} wei")
        self._require_funds(amount_wei, f"deposit into model {model_id}'s escrow")
        self.contract.deposit(int(model_id), value=int(amount_wei))
        return self.escrow(model_id)

    def wallet(self, model_id: int | None = None, *, durable: bool = True) -> Wallet:
        """This account's receipt wallet (the totals it has signed, per model), caught up
        with the chain's escrow of ``model_id`` if given (its deposit is the wallet's limit).
        ``durable=False`` skips the fsync per receipt (see :class:`Wallet`)."""
        account = self.market.gateway.account
        if account is None:
            raise InvalidArgument("paying for predictions needs an account; give --account")
        wallet = Wallet(
            account, self.domain, self.data_dir / "receipts" / "wallet", durable=durable
        )
        if model_id is not None:
            wallet.sync(int(model_id), self.escrow(model_id))
        return wallet

    def start_exit(self, model_id: int) -> Escrow:
        self._check_model(model_id)
        self.contract.start_exit(int(model_id))
        return self.escrow(model_id)

    def withdraw_deposit(self, model_id: int) -> Wei:
        self._check_model(model_id)
        receipt = self.contract.withdraw_deposit(int(model_id))
        return Wei(
            sum(int(e.args["amount"]) for e in receipt.events if e.name == "DepositWithdrawn")
        )

    # --- serving and settling (node side) -----------------------------------------------

    def receipt_book(self) -> ReceiptBook:
        return ReceiptBook(
            self.data_dir / "receipts" / f"node-{self.market.gateway.chain_id}.sqlite"
        )

    def _escrow_state(self, model_id: int) -> Callable[[str], EscrowState]:
        return lambda user: self.escrow(model_id, user)

    @staticmethod
    def _predictor(spec: ModelSpec, checkpoint: bytes) -> Predictor | OnnxPredictor:
        """ONNX Runtime where it is installed (about twice as fast as torch eager on the demo's
        MLP, benchmarks/serving.py), else torch; both from the verified checkpoint."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return Predictor(spec, checkpoint)
        return OnnxPredictor(spec, checkpoint)

    def serving(self, model_id: int, book: ReceiptBook | None = None) -> Serving:
        """The serving path of a model on this node: every request's receipt is checked (and
        kept) before the prediction is computed through the checkpoint the chain registered."""
        info = self.model(model_id)
        if info.node != self.address:
            raise InvalidArgument(
                f"model {model_id} is served by {info.node}, not by {self.address}; only its "
                "node can settle its receipts"
            )
        spec, blob = self.checkpoint_of(model_id)
        return Serving(
            int(model_id),
            info.price_wei,
            self._predictor(spec, blob).predict,
            book or self.receipt_book(),
            self._escrow_state(model_id),
            self.domain,
        )

    def settle(self, model_id: int, book: ReceiptBook | None = None) -> Settlement:
        """Settle the latest receipt of every user of a model in one transaction each."""
        self._check_model(model_id)
        book = book or self.receipt_book()
        totals = {"amount": 0, "owner": 0, "data": 0, "node": 0, "gas": 0}
        users = 0
        for r in book.to_settle(int(model_id)):
            receipt = self.contract.settle(int(model_id), r.user, r.total, r.nonce, r.signature)
            ev = receipt.event("Settled").args
            book.mark_settled(int(model_id), r.user, r.total, r.nonce)
            users += 1
            totals["amount"] += int(ev["amount"])
            totals["owner"] += int(ev["owner_amount"])
            totals["data"] += int(ev["data_amount"])
            totals["node"] += int(ev["node_amount"])
            totals["gas"] += int(receipt.gas_used)
        return Settlement(
            int(model_id),
            users,
            totals["amount"],
            totals["owner"],
            totals["data"],
            totals["node"],
            totals["gas"],
        )

    def earnings(self, account: str | None = None) -> Wei:
        who = to_checksum_address(account) if account else self.address
        return Wei(int(self.contract.balance_of(who)))

    def withdraw(self) -> Wei:
        """Withdraw this account's earnings as a model owner or serving node."""
        receipt = self.contract.withdraw()
        return Wei(sum(int(e.args["amount"]) for e in receipt.events if e.name == "Withdrawn"))

    # --- impact ---------------------------------------------------------------------------

    def impact(self, dataset_id: int) -> DatasetImpact:
        """For a dataset: its models, their scores, and what they paid back to it."""
        self.market._check_dataset(dataset_id)
        models = []
        for m in self.models(dataset_id):
            settled = self.contract.events("Settled", model_id=m.id)
            models.append(
                {
                    "model_id": m.id,
                    "owner": m.owner,
                    "score_bps": m.score_bps,
                    "benchmarked": m.benchmarked,
                    "price_wei": m.price_wei,
                    "predictions_paid_wei": int(self.contract.model_revenue(m.id)),
                    "to_dataset_wei": sum(int(e.args["data_amount"]) for e in settled),
                    "settlements": len(settled),
                }
            )
        return DatasetImpact(
            int(dataset_id),
            int(self.contract.training_revenue(int(dataset_id))),
            int(self.contract.prediction_revenue(int(dataset_id))),
            models,
        )

    def income(self, dataset_id: int, account: str | None = None) -> dict[str, int]:
        """How much of an account's dividends from a dataset came from training fees and from
        predictions: each payment shared pro rata to the account's shares at its block."""
        who = to_checksum_address(account) if account else self.address
        token = self.market.token(dataset_id)
        out = {"training_wei": 0, "predictions_wei": 0}
        # No burn: the supply at a block is every mint up to it.
        mints = sorted(
            (e.block_number, int(e.args["value"]))
            for e in token.events("Transfer")
            if int(e.args["sender"], 16) == 0
        )

        def supply_at(block: int) -> int:
            return sum(amount for b, amount in mints if b <= block)

        payments = [
            ("training_wei", e, "amount")
            for e in self.contract.events("TrainingFeePaid", dataset_id=int(dataset_id))
        ]
        for m in self.models(dataset_id):
            payments += [
                ("predictions_wei", e, "data_amount")
                for e in self.contract.events("Settled", model_id=m.id)
            ]
        for key, e, field in payments:
            supply = supply_at(e.block_number)
            if supply:
                share = int(token.balance_at(who, e.block_number))
                out[key] += int(e.args[field]) * share // supply
        return out
