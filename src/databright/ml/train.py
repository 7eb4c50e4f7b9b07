"""Training a spec on a dataset, deterministically, and the paper's fine-tuning gain.

The market pays for training (the dataset's training fee) and later checks what it paid for, so
a run must be repeatable: the same spec, examples and labels give the same checkpoint bytes on
this machine. That needs every source of variation pinned, and :func:`train` pins them for the
run and puts them back afterwards:

* the weights start from ``spec.seed`` (:meth:`ModelSpec.build`), dropout draws from torch's
  global generator seeded the same way (inside ``fork_rng``, so the caller's random state is
  untouched), and the hold-out split and the shuffling draw from their own seeded
  ``torch.Generator``;
* ``torch.use_deterministic_algorithms(True)`` and a fixed thread count (one by default): CPU
  kernels split reductions by thread, so 1 and 2 threads round differently;
* the optimisers run their single-tensor code path.

Across machines, bit-identity also needs the same CPU kernels (``ATEN_CPU_CAPABILITY``, see
DESIGN.md's Computation section); this module promises it on one machine only.

Metrics come from a stratified, seeded hold-out of ``spec.holdout`` of the examples that is
never trained on. :func:`finetune_gain` is the seed paper's valuation of new data (its Figure 3):
fine-tune the best checkpoint with the new examples and measure the accuracy gained on a test set.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from databright.errors import InvalidArgument
from databright.ml.checkpoint import load_checkpoint, save_checkpoint
from databright.ml.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "EpochReport",
    "TrainResult",
    "as_tensors",
    "batch_bounds",
    "evaluate",
    "finetune_gain",
    "holdout_split",
    "pinned",
    "score_module",
    "train",
]


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did: its mean training loss and running accuracy (in training mode, as
    the batches went by), and loss and accuracy on the hold-out after it. ``epoch`` counts
    from 1 to ``epochs``."""

    epoch: int
    epochs: int
    loss: float
    train_accuracy: float
    holdout_loss: float
    holdout_accuracy: float


@dataclass(frozen=True)
class TrainResult:
    """A trained network (evaluation mode), its checkpoint bytes and what was measured.

    ``metrics`` holds ``holdout_accuracy``, ``holdout_loss``, ``train_accuracy`` (the trained
    network on its own training examples), ``examples``, ``train_examples``,
    ``holdout_examples``, ``epochs`` and ``seconds`` (the only figure that varies from run to
    run; it is not part of the checkpoint).
    """

    module: torch.nn.Module
    checkpoint: bytes
    metrics: dict[str, float]
    history: tuple[EpochReport, ...] = field(default=())


@contextlib.contextmanager
def pinned(threads: int = 1, seed: int | None = None) -> Iterator[None]:
    """Deterministic torch for the duration: a fixed thread count, deterministic algorithms,
    and (with ``seed``) torch's global generator seeded; all restored on exit."""
    import torch

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidArgument(f"threads must be a whole number of at least 1, got {threads!r}.")
    before_threads = torch.get_num_threads()
    before_det = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(before_det, warn_only=before_warn)
        torch.set_num_threads(before_threads)


def as_tensors(spec: ModelSpec, x: ArrayLike, y: ArrayLike, what: str) -> tuple[Any, Any]:
    """Features as a float32 tensor and labels as int64 class numbers, checked against the
    spec with one sentence per problem."""
    import torch

    try:
        xa = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"the {what} features are not numbers; hand in a numeric array."
        ) from None
    want = spec.input_shape
    if xa.ndim != len(want) + 1 or tuple(xa.shape[1:]) != want:
        raise InvalidArgument(
            f"the {what} features have shape {tuple(xa.shape)} but the spec expects "
            f"(examples, {', '.join(map(str, want))}); reshape them or fix input_shape."
        )
    if len(xa) == 0:
        raise InvalidArgument(f"there are no {what} examples; hand in at least one.")
    if not np.isfinite(xa).all():
        raise InvalidArgument(
            f"the {what} features hold NaN or infinite values; clean or impute them first."
        )
    ya = np.asarray(y)
    if ya.shape != (len(xa),):
        raise InvalidArgument(
            f"there are {len(xa)} {what} examples but the labels have shape {ya.shape}; "
            "give one label per example."
        )
    whole = ya.dtype.kind in "iu" or (
        ya.dtype.kind == "f" and bool(np.all(np.isfinite(ya))) and bool(np.all(ya == np.round(ya)))
    )
    if not whole:
        raise InvalidArgument(
            f"the {what} labels must be whole class numbers 0..{spec.classes - 1}, "
            f"got dtype {ya.dtype}; map the classes to 0..{spec.classes - 1}."
        )
    bad = (ya < 0) | (ya >= spec.classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidArgument(
            f"{what} label {ya[first].item()!r} (example {first}) is outside 0..{spec.classes - 1}; "
            "labels must be class numbers below the spec's classes."
        )
    # A read-only array (a memory-mapped or frozen download) would make torch warn; training
    # never writes its inputs, but the copy keeps the caller's array out of torch's hands.
    if not xa.flags.writeable or not xa.flags.c_contiguous:
        xa = np.array(xa, order="C", copy=True)
    return torch.from_numpy(xa), torch.from_numpy(ya.astype(np.int64))


def holdout_split(
    y: NDArray[np.int64], holdout: float, generator: torch.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Stratified, seeded split: from each class, ``round(holdout * count)`` examples held
    out. Indices come back sorted, so the split does not depend on the order of classes."""
    import torch

    train_parts, hold_parts = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        perm = torch.randperm(len(idx), generator=generator).numpy()
        k = round(holdout * len(idx))
        hold_parts.append(idx[perm[:k]])
        train_parts.append(idx[perm[k:]])
    hold = np.sort(np.concatenate(hold_parts)).astype(np.int64)
    train_idx = np.sort(np.concatenate(train_parts)).astype(np.int64)
    return train_idx, hold


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch bounds; a trailing batch of one example is folded into the one before, since
    batch normalisation cannot train on a single example."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _fit_epoch(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    xt: torch.Tensor,
    yt: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[float, float]:
    """One pass over shuffled batches; returns (mean loss, running accuracy)."""
    import torch
    from torch.nn import functional

    module.train()
    perm = torch.randperm(len(xt), generator=generator)
    loss_sum = 0.0
    correct = 0
    for start, stop in batch_bounds(len(xt), batch_size):
        idx = perm[start:stop]
        xb, yb = xt[idx], yt[idx]
        optimizer.zero_grad(set_to_none=True)
        logits = module(xb)
        loss = functional.cross_entropy(logits, yb)
        loss.backward()
        optimizer.step()
        # .item() on the CPU is a read, not a device sync; it measured cheaper than
        # accumulating in tensors.
        loss_sum += loss.item() * (stop - start)
        correct += int((logits.detach().argmax(1) == yb).sum())
    return loss_sum / len(xt), correct / len(xt)


def score_module(
    module: torch.nn.Module, xt: torch.Tensor, yt: torch.Tensor
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) in evaluation mode, without gradients, in batches."""
    import torch
    from torch.nn import functional

    was_training = module.training
    module.eval()
    loss_sum = 0.0
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(xt), 4096):
            logits = module(xt[start : start + 4096])
            yb = yt[start : start + 4096]
            loss_sum += float(functional.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    module.train(was_training)
    return correct / len(xt), loss_sum / len(xt)


def train(
    spec: ModelSpec,
    x: ArrayLike,
    y: ArrayLike,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
    init: bytes | None = None,
    threads: int = 1,
    metadata: Mapping[str, str] | None = None,
) -> TrainResult:
    """Train ``spec`` on examples ``x`` (shape ``(n, *spec.input_shape)``) with labels ``y``
    (class numbers ``0..classes-1``), holding out ``spec.holdout`` of them for metrics.

    ``init`` is a checkpoint to start from (fine-tuning) instead of the spec's seeded weights.
    ``on_epoch`` is called after every epoch (the CLI draws its progress bar from it).
    ``metadata`` is stored in the checkpoint beside ``format: pt`` and the architecture digest.
    """
    import torch

    started = time.perf_counter()
    xt, yt = as_tensors(spec, x, y, "training")
    with pinned(threads, seed=spec.seed):
        generator = torch.Generator().manual_seed(spec.seed)
        train_idx, hold_idx = holdout_split(yt.numpy(), spec.holdout, generator)
        if len(train_idx) == 0 or len(hold_idx) == 0:
            raise InvalidArgument(
                f"{len(xt)} examples cannot be split into training and a hold-out of "
                f"{spec.holdout:g}; hand in more examples."
            )
        x_train, y_train = xt[train_idx], yt[train_idx]
        x_hold, y_hold = xt[hold_idx], yt[hold_idx]

        module = spec.build() if init is None else load_checkpoint(init, spec)
        optimizer = spec.optimizer.build(module.parameters())
        history = []
        for epoch in range(1, spec.epochs + 1):
            loss, accuracy = _fit_epoch(
                module, optimizer, x_train, y_train, spec.batch_size, generator
            )
            hold_accuracy, hold_loss = score_module(module, x_hold, y_hold)
            report = EpochReport(epoch, spec.epochs, loss, accuracy, hold_loss, hold_accuracy)
            history.append(report)
            if on_epoch is not None:
                on_epoch(report)
        module.eval()
        train_accuracy, _ = score_module(module, x_train, y_train)
        meta = {"format": "pt", **dict(metadata or {})}
        checkpoint = save_checkpoint(module, meta, spec=spec)
    metrics = {
        "holdout_accuracy": history[-1].holdout_accuracy,
        "holdout_loss": history[-1].holdout_loss,
        "train_accuracy": train_accuracy,
        "examples": float(len(xt)),
        "train_examples": float(len(train_idx)),
        "holdout_examples": float(len(hold_idx)),
        "epochs": float(spec.epochs),
        "seconds": time.perf_counter() - started,
    }
    return TrainResult(module, checkpoint, metrics, tuple(history))


def evaluate(
    module: torch.nn.Module, x: ArrayLike, y: ArrayLike, *, spec: ModelSpec | None = None
) -> dict[str, float]:
    """``accuracy``, mean cross-entropy ``loss`` and ``n`` of ``module`` on labelled examples
    (evaluation mode, no gradients; the module's mode is put back). With ``spec``, the
    examples are checked against it first."""
    import torch

    if spec is not None:
        xt, yt = as_tensors(spec, x, y, "evaluation")
    else:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        yt = torch.as_tensor(np.asarray(y).astype(np.int64))
        if len(xt) == 0 or len(xt) != len(yt):
            raise InvalidArgument(
                f"evaluation needs one label per example and at least one example, got "
                f"{len(xt)} examples and {len(yt)} labels."
            )
    accuracy, loss = score_module(module, xt, yt)
    return {"accuracy": accuracy, "loss": loss, "n": float(len(xt))}


def finetune_gain(
    spec: ModelSpec,
    checkpoint: bytes,
    x_new: ArrayLike,
    y_new: ArrayLike,
    x_test: ArrayLike,
    y_test: ArrayLike,
    *,
    epochs: int | None = None,
    threads: int = 1,
) -> float:
    """Test accuracy after fine-tuning ``checkpoint`` on the new examples, minus before: the
    seed paper's value of a proposal to a dataset's best model (its Figure 3).

    All new examples are trained on (no hold-out: the test set is the measure) for ``epochs``
    (default ``spec.epochs``) with the spec's optimiser and batch size, deterministically.
    """
    import torch

    rounds = spec.epochs if epochs is None else epochs
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise InvalidArgument(f"epochs must be a whole number of at least 1, got {epochs!r}.")
    xn, yn = as_tensors(spec, x_new, y_new, "new")
    xs, ys = as_tensors(spec, x_test, y_test, "test")
    with pinned(threads, seed=spec.seed):
        module = load_checkpoint(checkpoint, spec)
        before, _ = score_module(module, xs, ys)
        optimizer = spec.optimizer.build(module.parameters())
        generator = torch.Generator().manual_seed(spec.seed)
        for _ in range(rounds):
            _fit_epoch(module, optimizer, xn, yn, spec.batch_size, generator)
        after, _ = score_module(module, xs, ys)
    return after - before
