"""A simulation-grade federated round engine: clients train on their own data, some attack.

This is what the tests and ``benchmarks/aggregation.py`` run to show which aggregation rule
survives which attack (issue 12, section 7); it is not the networked coordinator. Every client
holds its own examples (split IID or by a Dirichlet draw of label proportions, the usual way to
make non-IID clients), trains locally from the global model with the spec's own optimiser and
batch size (a small torch loop over :class:`~databright.ml.ModelSpec`'s network), and sends
the difference between its local and the global weights. The coordinator aggregates the
updates with an :class:`~databright.compute.aggregation.Aggregator` (trimmed mean by default)
and adds the result to the global weights.

Attacks (:class:`Attack`): label flipping (a poisoned data set: class ``c`` becomes
``classes - 1 - c``), Gaussian noise instead of an update, sign flipping (minus a multiple of
the client's honest update), ALIE ("a little is enough", Baruch et al. 2019: colluding clients
all send the honest mean shifted by ``z`` standard deviations per coordinate, just inside what
robust rules accept; here they are omniscient, using every client's honest update, the
strongest form), and a scaled update (a multiple of the honest one, model replacement).

Contribution scores come from the coordinator's own validation set, never from agreement with
the majority (which would punish honest clients whose data simply differs): each round, how
much better the global model is after the aggregate of everyone's updates than after the
aggregate without client ``i`` (leave-one-out, with the same trim count), summed over rounds;
"better" is lower validation cross-entropy by default, or higher accuracy. :func:`payout_shares`
and :func:`payout_wei` split a payment in proportion to the positive scores; clients with a
zero or negative score get nothing. The escrow that holds the payment, which the project owner
cannot withdraw once training started, is a federation of the ComputeMarket contract
(:meth:`databright.compute.market.ComputeMarket.create_federation`); :func:`settle_contributions`
turns a finished run into its coordinator's payout call: :func:`payout_wei` of the escrow by the
run's scores, posted with the per-round scores stored by CID (:func:`scores_evidence`), which
anyone can fetch and check with :func:`check_scores_evidence`.

A client whose update holds NaN or infinity is treated as Byzantine: its update is dropped from
the round (listed in :attr:`RoundReport.rejected`) and it scores nothing for that round.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
from eth_utils import is_address, to_checksum_address
from numpy.typing import ArrayLike, NDArray

from databright.compute.aggregation import Aggregator, Layout, finite_rows, flatten, unflatten
from databright.errors import InvalidArgument
from databright.ml.spec import ModelSpec
from databright.ml.train import pinned

if TYPE_CHECKING:
    import torch

    from databright.compute.market import ComputeMarket, FederationSettlement

__all__ = [
    "ATTACKS",
    "EVIDENCE_FORMAT",
    "Attack",
    "AttackKind",
    "Client",
    "FederatedResult",
    "RoundReport",
    "RoundStep",
    "aggregate_round",
    "aggregation_shortfall",
    "alie_z",
    "attacked_update",
    "check_scores_evidence",
    "client_addresses",
    "client_tensors",
    "local_update",
    "payout_shares",
    "payout_wei",
    "run_federated",
    "scores_evidence",
    "settle_contributions",
    "split_dirichlet",
    "split_iid",
    "validation_score",
]

AttackKind: TypeAlias = Literal["label_flip", "gaussian", "sign_flip", "alie", "scaled"]
ATTACKS: tuple[AttackKind, ...] = ("label_flip", "gaussian", "sign_flip", "alie", "scaled")

_DEFAULT_STRENGTH: dict[str, float] = {
    "label_flip": 0.0,
    "gaussian": 1.0,  # standard deviation per coordinate: far above honest updates (~1e-2)
    "sign_flip": 4.0,  # sends -4x its honest update: with 4 of 20, a mean stands still
    "alie": 0.0,  # 0 means: z from the number of clients and attackers (alie_z)
    "scaled": 10.0,  # sends 10x its honest update
}


@dataclass(frozen=True)
class Attack:
    """How a Byzantine client misbehaves. ``strength`` is the Gaussian standard deviation, the
    sign-flip or scaling factor, or ALIE's ``z`` (0: computed by :func:`alie_z`); ``None`` takes
    the default for the kind."""

    kind: AttackKind
    strength: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise InvalidArgument(
                f"unknown attack {self.kind!r}; choose one of {', '.join(ATTACKS)}."
            )
        if self.strength is not None and not (math.isfinite(self.strength) and self.strength >= 0):
            raise InvalidArgument(
                f"attack strength must be a finite number of at least 0, got {self.strength!r}."
            )

    @property
    def level(self) -> float:
        """The strength in force (the given one or the kind's default)."""
        return _DEFAULT_STRENGTH[self.kind] if self.strength is None else float(self.strength)


@dataclass(frozen=True)
class Client:
    """One data owner: its own examples and labels, and its attack if it is Byzantine."""

    x: NDArray[np.float32]
    y: NDArray[np.int64]
    attack: Attack | None = None


@dataclass(frozen=True)
class RoundReport:
    """One round: validation accuracy of the new global model, clients dropped for non-finite
    updates, and each client's leave-one-out contribution (empty when not computed)."""

    round: int
    accuracy: float
    rejected: tuple[int, ...]
    contributions: tuple[float, ...]


@dataclass(frozen=True)
class FederatedResult:
    """The final global model (evaluation mode) and its weights, the rounds, each client's
    contribution summed over rounds, the payout shares that follow, and the wall time."""

    module: torch.nn.Module
    state: dict[str, torch.Tensor]
    history: tuple[RoundReport, ...]
    contributions: NDArray[np.float64]
    shares: NDArray[np.float64]
    seconds: float = field(default=0.0)

    @property
    def accuracy(self) -> float:
        """Validation accuracy after the last round."""
        return self.history[-1].accuracy if self.history else float("nan")


# --- splitting data among clients ---------------------------------------------------------


def _labels(labels: ArrayLike, clients: int) -> NDArray[np.int64]:
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise InvalidArgument(
            f"labels must be a 1-D array of class numbers, got shape {y.shape} and dtype {y.dtype}."
        )
    if isinstance(clients, bool) or not isinstance(clients, int) or clients < 1:
        raise InvalidArgument(f"clients must be a whole number of at least 1, got {clients!r}.")
    if len(y) < clients:
        raise InvalidArgument(
            f"{len(y)} examples cannot be split among {clients} clients; give every client "
            "at least one example."
        )
    return y.astype(np.int64)


def split_iid(labels: ArrayLike, clients: int, *, seed: int = 0) -> list[NDArray[np.int64]]:
    """Example indices for each client: a seeded shuffle cut into near-equal parts."""
    y = _labels(labels, clients)
    order = np.random.default_rng(seed).permutation(len(y))
    return [np.sort(part).astype(np.int64) for part in np.array_split(order, clients)]


def split_dirichlet(
    labels: ArrayLike,
    clients: int,
    *,
    alpha: float = 0.5,
    seed: int = 0,
    min_examples: int = 10,
) -> list[NDArray[np.int64]]:
    """Example indices for each client with label proportions drawn per class from
    Dirichlet(``alpha``) (smaller is more skewed; 0.5 is the benchmark's non-IID setting).
    Draws are repeated until every client holds at least ``min_examples``."""
    y = _labels(labels, clients)
    if not (math.isfinite(alpha) and alpha > 0):
        raise InvalidArgument(f"alpha must be a positive number, got {alpha!r}.")
    if min_examples * clients > len(y):
        raise InvalidArgument(
            f"{len(y)} examples cannot give {clients} clients {min_examples} each; lower "
            "min_examples or use fewer clients."
        )
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(clients)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            cuts = (np.cumsum(rng.dirichlet([alpha] * clients)) * len(idx)).astype(int)[:-1]
            for k, piece in enumerate(np.split(idx, cuts)):
                parts[k].extend(int(i) for i in piece)
        if min(len(p) for p in parts) >= min_examples:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise InvalidArgument(
        f"1000 Dirichlet({alpha:g}) draws left some client under {min_examples} examples; "
        "raise alpha or lower min_examples."
    )


# --- attacks ------------------------------------------------------------------------------


def alie_z(clients: int, attackers: int) -> float:
    """ALIE's shift in standard deviations (Baruch et al. 2019): with ``s = floor(n/2 + 1) - f``
    honest clients needed on the attackers' side, ``z = Phi^-1((n - s) / n)``."""
    s = math.floor(clients / 2 + 1) - attackers
    p = (clients - s) / clients
    if not 0 < p < 1:
        return 0.0
    return statistics.NormalDist().inv_cdf(p)


def attacked_update(
    attack: Attack | None, honest: NDArray[np.float32], rng: np.random.Generator
) -> NDArray[np.float32]:
    """What one client with ``attack`` sends instead of its ``honest`` update (a vector); a
    label flipper sends its update as it is (its data is the poison). ALIE is refused: it
    needs every client's honest update, which no single client has."""
    if attack is None or attack.kind == "label_flip":
        return honest
    if attack.kind == "gaussian":
        return np.asarray(rng.normal(0.0, attack.level, honest.shape[0]), dtype=np.float32)
    if attack.kind == "sign_flip":
        return (-attack.level * honest).astype(np.float32)
    if attack.kind == "scaled":
        return (attack.level * honest).astype(np.float32)
    raise InvalidArgument(
        "an ALIE attacker needs every client's honest update, which one client does not "
        "have; choose gaussian, sign_flip, scaled or label_flip."
    )


def _poison(
    honest: NDArray[np.float32],
    clients: Sequence[Client],
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """What each client sends, given what each would have sent honestly (label flippers
    already trained on flipped labels)."""
    sent = honest.copy()
    alie = [i for i, c in enumerate(clients) if c.attack is not None and c.attack.kind == "alie"]
    if alie:
        trained = [
            i for i, c in enumerate(clients) if c.attack is None or c.attack.kind != "gaussian"
        ]
        mu = honest[trained].mean(axis=0, dtype=np.float64)
        sigma = honest[trained].std(axis=0, dtype=np.float64)
    for i, client in enumerate(clients):
        attack = client.attack
        if attack is not None and attack.kind == "alie":
            z = attack.level or alie_z(len(clients), len(alie))
            sent[i] = mu - z * sigma
        elif attack is not None and attack.kind != "label_flip":
            sent[i] = attacked_update(attack, honest[i], rng)
    return sent


# --- the round engine ---------------------------------------------------------------------


def _set(module: torch.nn.Module, vector: NDArray[np.float32], layout: Layout) -> None:
    module.load_state_dict(unflatten(vector, layout))


def validation_score(
    module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on the validation set."""
    import torch
    from torch.nn import functional

    module.eval()
    with torch.inference_mode():
        logits = module(x)
        accuracy = float((logits.argmax(1) == y).float().mean())
        return accuracy, float(functional.cross_entropy(logits, y))


def local_update(
    spec: ModelSpec,
    module: torch.nn.Module,
    start: NDArray[np.float32],
    layout: Layout,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    generator: torch.Generator,
) -> NDArray[np.float32]:
    """Local weights minus ``start`` after ``epochs`` passes over the client's examples, with
    a fresh optimiser of the spec's kind (clients keep no state between rounds). ``module``
    is any network of ``spec`` (its weights are overwritten with ``start``)."""
    import torch
    from torch.nn import functional

    _set(module, start, layout)
    optimizer = spec.optimizer.build(module.parameters())
    module.train()

    n = len(x)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        for s in range(0, n, spec.batch_size):
            idx = perm[s : s + spec.batch_size]
            if len(idx) < 2 and n >= 2:
                continue  # batch normalisation cannot train on one example
            optimizer.zero_grad(set_to_none=True)
            loss = functional.cross_entropy(module(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
    local, _ = flatten(module.state_dict())
    return local - start


def client_tensors(spec: ModelSpec, client: Client) -> tuple[torch.Tensor, torch.Tensor]:
    """A client's examples and the labels it trains on (a label flipper's flipped)."""
    import torch

    labels = np.asarray(client.y).astype(np.int64)
    if client.attack is not None and client.attack.kind == "label_flip":
        labels = spec.classes - 1 - labels
    return torch.from_numpy(np.array(client.x, dtype=np.float32)), torch.from_numpy(labels)


@dataclass(frozen=True)
class RoundStep:
    """One aggregation: the new global weights, their validation accuracy, the rows dropped
    for non-finite values, and each row's leave-one-out contribution (zeros when not
    computed, and for dropped rows)."""

    weights: NDArray[np.float32]
    accuracy: float
    rejected: tuple[int, ...]
    scores: NDArray[np.float64]


def aggregation_shortfall(
    rule: Aggregator, round_number: int, finite: int, contributions: bool
) -> str | None:
    """Why a round with ``finite`` usable updates cannot be aggregated under ``rule`` (with
    leave-one-out scores when ``contributions``), in one sentence; None when it can."""
    if finite < rule.minimum_clients():
        return (
            f"round {round_number} has only {finite} finite updates, fewer than the "
            f"{rule.minimum_clients()} the {rule.rule} rule needs; add clients or "
            "lower f or trim."
        )
    if contributions and finite - 1 < rule.for_clients(finite).minimum_clients():
        return (
            f"round {round_number} has {finite} finite updates, too few to leave one out under "
            f"the {rule.rule} rule; add clients or lower f or trim."
        )
    return None


def aggregate_round(
    rule: Aggregator,
    module: torch.nn.Module,
    layout: Layout,
    weights: NDArray[np.float32],
    sent: NDArray[np.float32],
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    round_number: int,
    contributions: bool,
    utility: Literal["accuracy", "loss"] = "loss",
) -> RoundStep:
    """One round at the coordinator, the same for the simulation and the networked service:
    drop non-finite updates (rows of ``sent``) as Byzantine, add the robust aggregate of the
    rest to ``weights``, score the result on the validation set and, with ``contributions``,
    each kept row by leaving it out (with the same trim count). ``module`` (a network of the
    run's spec) ends holding the new weights. Raises with :func:`aggregation_shortfall`'s
    sentence when too few updates are finite."""
    finite = finite_rows(sent)
    kept = np.flatnonzero(finite)
    rejected = tuple(int(i) for i in np.flatnonzero(~finite))
    short = aggregation_shortfall(rule, round_number, len(kept), contributions)
    if short is not None:
        raise InvalidArgument(short)
    fixed = rule.for_clients(len(kept))
    new = (weights + fixed(sent[kept])).astype(np.float32)
    _set(module, new, layout)
    with_all, loss_all = validation_score(module, x_val, y_val)
    scores = np.zeros(len(sent), dtype=np.float64)
    if contributions:
        for j, row in enumerate(kept.tolist()):
            others = np.delete(kept, j)
            _set(module, (weights + fixed(sent[others])).astype(np.float32), layout)
            accuracy, loss = validation_score(module, x_val, y_val)
            scores[row] = with_all - accuracy if utility == "accuracy" else loss - loss_all
        _set(module, new, layout)
    return RoundStep(new, with_all, rejected, scores)


def _check_clients(spec: ModelSpec, clients: Sequence[Client]) -> None:
    if not clients:
        raise InvalidArgument("there are no clients; hand in at least one.")
    for i, c in enumerate(clients):
        if not isinstance(c, Client):
            raise InvalidArgument(f"client {i} is a {type(c).__name__}, not a Client.")
        x = np.asarray(c.x)
        y = np.asarray(c.y)
        if x.ndim != len(spec.input_shape) + 1 or tuple(x.shape[1:]) != spec.input_shape:
            raise InvalidArgument(
                f"client {i}'s examples have shape {x.shape} but the spec expects "
                f"(examples, {', '.join(map(str, spec.input_shape))}); reshape them."
            )
        if len(x) == 0 or y.shape != (len(x),):
            raise InvalidArgument(
                f"client {i} has {len(x)} examples and labels of shape {y.shape}; give it "
                "at least one example and one label per example."
            )
        if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= spec.classes:
            raise InvalidArgument(
                f"client {i}'s labels must be class numbers 0..{spec.classes - 1}; map them first."
            )


def run_federated(
    spec: ModelSpec,
    clients: Sequence[Client],
    x_val: ArrayLike,
    y_val: ArrayLike,
    *,
    rounds: int = 10,
    local_epochs: int = 1,
    aggregator: Aggregator | None = None,
    contributions: bool = False,
    utility: Literal["accuracy", "loss"] = "loss",
    seed: int = 0,
) -> FederatedResult:
    """Train ``spec`` for ``rounds`` federated rounds among ``clients``, aggregating with
    ``aggregator`` (default: trimmed mean), scoring on the coordinator's validation set.

    With ``contributions``, every round also aggregates without each client in turn (the
    leave-one-out contribution), which costs one more aggregation and evaluation per client.
    ``utility`` is what a contribution is measured in: validation cross-entropy lost (the
    default) or validation accuracy gained. Accuracy moves in steps of one validation example;
    measured on digits (10 clients, one label flipper, 250 validation examples, 6 rounds) it
    did not rank the flipper last in any of 3 seeds, while the loss did in all 3.
    Deterministic for a given seed on one machine (torch pinned to one thread)."""
    import torch

    rule = Aggregator() if aggregator is None else aggregator
    if utility not in ("accuracy", "loss"):
        raise InvalidArgument(f"utility must be 'accuracy' or 'loss', got {utility!r}.")
    for name, value in (("rounds", rounds), ("local_epochs", local_epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{name} must be a whole number of at least 1, got {value!r}.")
    _check_clients(spec, clients)
    needed = rule.minimum_clients() + (1 if contributions else 0)
    if len(clients) < needed:
        raise InvalidArgument(
            f"the {rule.rule} rule needs at least {needed} clients"
            f"{' for leave-one-out scores' if contributions else ''}, got {len(clients)}; "
            "add clients or choose a rule that needs fewer."
        )
    xv = torch.from_numpy(np.array(x_val, dtype=np.float32))
    yv = torch.from_numpy(np.asarray(y_val).astype(np.int64))
    if len(xv) == 0 or len(xv) != len(yv):
        raise InvalidArgument(
            f"the validation set has {len(xv)} examples and {len(yv)} labels; give at least "
            "one example and one label per example."
        )
    data = [client_tensors(spec, c) for c in clients]

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    history: list[RoundReport] = []
    total = np.zeros(len(clients), dtype=np.float64)
    with pinned(1, seed=seed):
        generator = torch.Generator().manual_seed(seed)
        module = spec.build()
        weights, layout = flatten(module.state_dict())
        for r in range(1, rounds + 1):
            # A Gaussian attacker sends noise whatever it learns, so it need not train.
            needs_training = [c.attack is None or c.attack.kind != "gaussian" for c in clients]
            honest = np.zeros((len(clients), layout.size), dtype=np.float32)
            for k, (xc, yc) in enumerate(data):
                if needs_training[k]:
                    honest[k] = local_update(
                        spec, module, weights, layout, xc, yc, local_epochs, generator
                    )
            sent = _poison(honest, clients, rng)
            step = aggregate_round(
                rule,
                module,
                layout,
                weights,
                sent,
                xv,
                yv,
                round_number=r,
                contributions=contributions,
                utility=utility,
            )
            total += step.scores
            weights = step.weights
            history.append(
                RoundReport(
                    r,
                    step.accuracy,
                    step.rejected,
                    tuple(float(s) for s in step.scores) if contributions else (),
                )
            )
        module.eval()
    return FederatedResult(
        module=module,
        state=unflatten(weights, layout),
        history=tuple(history),
        contributions=total,
        shares=payout_shares(total),
        seconds=time.perf_counter() - started,
    )


# --- payouts ------------------------------------------------------------------------------


def _positive(scores: ArrayLike) -> NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or len(s) == 0:
        raise InvalidArgument(
            f"contribution scores must be a non-empty list, one per client, got shape {s.shape}."
        )
    if not np.isfinite(s).all():
        raise InvalidArgument("contribution scores hold NaN or infinity; score every client.")
    return np.maximum(s, 0.0)


def payout_shares(scores: ArrayLike) -> NDArray[np.float64]:
    """Each client's share of the payment: its positive contribution over the sum of positive
    contributions; zero for a zero or negative score. All zeros when nobody helped (the escrow
    then goes back to the payer)."""
    pos = _positive(scores)
    total = pos.sum()
    return pos / total if total > 0 else np.zeros_like(pos)


def payout_wei(amount: int, scores: ArrayLike) -> list[int]:
    """``amount`` wei split by :func:`payout_shares`, in whole wei that add up to ``amount``
    exactly (largest remainders get the leftover wei; ties to the lower index), or all zeros
    when nobody helped."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise InvalidArgument(f"amount must be a whole number of wei, at least 0, got {amount!r}.")
    pos = [Fraction(float(v)) for v in _positive(scores)]
    total = sum(pos, Fraction(0))
    if total == 0:
        return [0] * len(pos)
    exact = [amount * p / total for p in pos]
    paid = [math.floor(e) for e in exact]
    left = amount - sum(paid)
    order = sorted(range(len(pos)), key=lambda i: (-(exact[i] - paid[i]), i))
    for i in order[:left]:
        paid[i] += 1
    return paid


# --- paying a run from its on-chain escrow --------------------------------------------------

EVIDENCE_FORMAT = "databright/federated-scores/1"
"""The ``format`` of :func:`scores_evidence`'s document."""


def client_addresses(clients: Sequence[str], count: int) -> list[str]:
    """``count`` distinct client addresses, checksummed, in the given order; one sentence
    when they are not."""
    if isinstance(clients, str) or len(clients) != count:
        raise InvalidArgument(
            f"give one client address per client of the run ({count}), in the run's order, "
            f"not {1 if isinstance(clients, str) else len(clients)}."
        )
    for c in clients:
        if not isinstance(c, str) or not is_address(c):
            raise InvalidArgument(f"client {c!r} is not an Ethereum address; give 0x + 40 hex.")
    # Checksummed, so the evidence names each client in one spelling, as the chain does.
    addresses = [str(to_checksum_address(c)) for c in clients]
    if len(set(addresses)) != len(addresses):
        raise InvalidArgument("two clients of the run share an address; give each its own.")
    return addresses


def scores_evidence(result: FederatedResult, clients: Sequence[str], amount: int) -> dict[str, Any]:
    """The document a federation's payouts follow from: per round, the validation accuracy,
    the clients dropped and each client's leave-one-out contribution; the totals; the amount
    split and each client's :func:`payout_wei` of it. JSON-ready (floats are finite: a run
    scores no client NaN)."""
    if not result.history or not all(len(r.contributions) for r in result.history):
        raise InvalidArgument(
            "the run has no contribution scores; run it with contributions=True to pay by them."
        )
    addresses = client_addresses(clients, len(result.contributions))
    payouts = payout_wei(amount, result.contributions)
    return {
        "format": EVIDENCE_FORMAT,
        "clients": addresses,
        "rounds": [
            {
                "round": r.round,
                "accuracy": r.accuracy,
                "rejected": list(r.rejected),
                "contributions": list(r.contributions),
            }
            for r in result.history
        ],
        "contributions": [float(c) for c in result.contributions],
        "amount_wei": amount,
        "payouts_wei": payouts,
    }


def check_scores_evidence(evidence: dict[str, Any]) -> dict[str, int]:
    """Check a federation's evidence (as :func:`scores_evidence` writes it) the way any
    client can: the totals are the sums of the rounds, and the payouts are exactly
    :func:`payout_wei` of the amount by those totals. Returns client -> payout in wei."""
    try:
        if evidence.get("format") != EVIDENCE_FORMAT:
            raise ValueError(f"format {evidence.get('format')!r}, not {EVIDENCE_FORMAT!r}")
        clients = [str(c) for c in evidence["clients"]]
        totals = np.asarray(evidence["contributions"], dtype=np.float64)
        rounds = np.asarray([r["contributions"] for r in evidence["rounds"]], dtype=np.float64)
        amount = evidence["amount_wei"]
        payouts = [int(p) for p in evidence["payouts_wei"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidArgument(
            f"the evidence is not a federated-scores document ({exc}); fetch it again by its CID."
        ) from None
    if rounds.ndim != 2 or rounds.shape[1] != len(clients) or totals.shape != (len(clients),):
        raise InvalidArgument(
            f"the evidence scores {rounds.shape} per round and {totals.shape} in total for "
            f"{len(clients)} clients; it is inconsistent."
        )
    if not np.allclose(rounds.sum(axis=0), totals, rtol=1e-9, atol=1e-12):
        raise InvalidArgument("the evidence's total scores are not the sums of its rounds.")
    expected = payout_wei(amount, totals)
    if payouts != expected:
        raise InvalidArgument(
            f"the evidence's payouts {payouts} are not payout_wei({amount}, scores) = {expected}."
        )
    return dict(zip(clients, payouts, strict=True))


def settle_contributions(
    compute_market: ComputeMarket,
    federation_id: int,
    result: FederatedResult,
    clients: Sequence[str],
    *,
    amount_wei: int | None = None,
) -> FederationSettlement:
    """Pay a finished federated run from its on-chain escrow: ``compute_market`` is the
    federation's coordinator's client, ``clients`` the run's clients' addresses in the run's
    order. Splits ``amount_wei`` (default: the whole escrow) by :func:`payout_wei` of the run's
    contribution scores and posts every client's payout (zeros too, so the chain records that
    a client was scored and got nothing) with the per-round scores stored by CID; the rest of
    the escrow goes back to the payer. Each client then withdraws its payout."""
    federation = compute_market.federation(federation_id)
    amount = federation.amount_wei if amount_wei is None else amount_wei
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise InvalidArgument(f"amount_wei must be a whole number of wei, not {amount!r}.")
    if amount > federation.amount_wei:
        raise InvalidArgument(
            f"federation {federation_id} escrows {federation.amount_wei} wei; it cannot pay "
            f"{amount}."
        )
    evidence = scores_evidence(result, clients, amount)
    payouts = dict(zip(evidence["clients"], evidence["payouts_wei"], strict=True))
    return compute_market.settle_federation(federation_id, payouts, evidence)
