"""Robust aggregation of federated client updates: each client counts once, whatever it says.

In the federated mode (issue 12, section 7) data owners train locally and send updates; some of
them may be Byzantine (a poisoned data set, a broken or hostile client). A plain mean lets one
client move the model anywhere, so the coordinator aggregates with a rule whose output a bounded
number of arbitrary updates cannot drag outside what the honest clients sent:

* :func:`trimmed_mean` (the default, :data:`DEFAULT_RULE`): per coordinate, drop the ``k``
  largest and ``k`` smallest values and average the rest; with at most ``k`` Byzantine clients
  every coordinate stays within the honest clients' range.
* :func:`coordinate_median`: the same with as much trimmed as possible; it needs a Byzantine
  minority.
* :func:`multi_krum` and :func:`krum`: keep the updates closest to their ``n - f - 2`` nearest
  neighbours. Krum (a single update) is never the default: measured here it fell to 0.62-0.69
  accuracy on non-IID digits (Dirichlet 0.5), where honest clients legitimately disagree.
* :func:`mean`: the non-robust baseline, for comparison.

No rule takes client-reported weights (example counts): a client could claim a million examples
and outweigh everyone, so every update has the same say.

Updates come as a float matrix (clients x parameters) or as a list of torch state dicts, which
are flattened with :func:`flatten` and the result put back with :func:`unflatten`; a rule
returns a vector for a matrix and a state dict for state dicts.

Non-finite updates (NaN or infinity) are refused: every rule raises
:class:`~databright.errors.InvalidArgument` naming the first such client, because a NaN would
otherwise pass silently through comparisons (NaN sorts last in numpy and poisons a mean). A
coordinator that wants to carry on treats those clients as Byzantine: :func:`finite_rows` says
which rows to keep, and the federated engine drops the others before aggregating.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, overload

import numpy as np
from numpy.typing import NDArray

from databright.errors import InvalidArgument

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_RULE",
    "DEFAULT_TRIM",
    "RULES",
    "Aggregator",
    "Layout",
    "Rule",
    "coordinate_median",
    "finite_rows",
    "flatten",
    "krum",
    "krum_scores",
    "mean",
    "multi_krum",
    "multi_krum_select",
    "stack",
    "trim_count",
    "trimmed_mean",
    "unflatten",
]

Rule: TypeAlias = Literal["mean", "coordinate_median", "trimmed_mean", "multi_krum", "krum"]
RULES: tuple[Rule, ...] = ("mean", "coordinate_median", "trimmed_mean", "multi_krum", "krum")
DEFAULT_RULE: Rule = "trimmed_mean"
"""Trimmed mean: robust to every attack measured here on IID and non-IID data, unlike Krum."""
DEFAULT_TRIM = 0.2
"""Trim a fifth from each side: 4 of 20 clients may be Byzantine (the benchmark's setting)."""

Matrix: TypeAlias = NDArray[np.float32]
StateDict: TypeAlias = Mapping[str, "torch.Tensor"]
Updates: TypeAlias = "NDArray[Any] | Sequence[StateDict]"


# --- state dicts <-> vectors ------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where each tensor of a state dict lies in its flat vector: names, shapes and dtypes in
    order, so a vector can be turned back into the same state dict."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @property
    def size(self) -> int:
        """Number of entries in the flat vector."""
        return sum(math.prod(s) for s in self.shapes)


def flatten(state: StateDict) -> tuple[NDArray[np.float32], Layout]:
    """One float32 vector of all tensors of ``state`` (in its key order) and their layout.

    Integer tensors (a batch-norm counter) are carried as float32 and rounded back by
    :func:`unflatten`."""
    import torch

    if not isinstance(state, Mapping) or not state:
        raise InvalidArgument(
            "a state dict must be a non-empty mapping of names to tensors; "
            "hand in module.state_dict()."
        )
    names, shapes, dtypes, parts = [], [], [], []
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise InvalidArgument(
                f"state dict entry {name!r} is a {type(tensor).__name__}, not a torch tensor; "
                "hand in module.state_dict()."
            )
        names.append(str(name))
        shapes.append(tuple(int(d) for d in tensor.shape))
        dtypes.append(str(tensor.dtype).removeprefix("torch."))
        parts.append(tensor.detach().cpu().reshape(-1).to(torch.float32).numpy())
    vector = np.concatenate(parts).astype(np.float32, copy=False)
    return vector, Layout(tuple(names), tuple(shapes), tuple(dtypes))


def unflatten(vector: NDArray[Any], layout: Layout) -> dict[str, torch.Tensor]:
    """The state dict that ``vector`` stands for under ``layout`` (integer tensors rounded)."""
    import torch

    flat = np.asarray(vector)
    if flat.shape != (layout.size,):
        raise InvalidArgument(
            f"the vector has shape {flat.shape} but the layout needs ({layout.size},); "
            "unflatten the vector that flatten made for this layout."
        )
    out: dict[str, torch.Tensor] = {}
    start = 0
    for name, shape, dtype in zip(layout.names, layout.shapes, layout.dtypes, strict=True):
        stop = start + math.prod(shape)
        part = flat[start:stop].reshape(shape)
        target = getattr(torch, dtype)
        tensor = torch.from_numpy(np.array(part, dtype=np.float32))
        if not target.is_floating_point:
            tensor = tensor.round()
        out[name] = tensor.to(target)
        start = stop
    return out


def stack(updates: Updates) -> tuple[Matrix, Layout | None]:
    """Client updates as one float32 matrix (clients x parameters), and the layout when they
    came as state dicts (``None`` for a matrix). Shapes must agree; values must be finite."""
    layout: Layout | None = None
    if isinstance(updates, np.ndarray):
        matrix = updates
    elif isinstance(updates, Sequence) and not isinstance(updates, str | bytes):
        if not updates:
            raise InvalidArgument("there are no client updates; hand in at least one.")
        if all(isinstance(u, Mapping) for u in updates):
            rows = []
            for i, state in enumerate(updates):
                vector, this = flatten(state)
                if layout is None:
                    layout = this
                elif this != layout:
                    raise InvalidArgument(
                        f"client {i}'s state dict has other tensors, shapes or dtypes than "
                        "client 0's; every client must send an update of the same model."
                    )
                rows.append(vector)
            matrix = np.stack(rows)
        else:
            try:
                matrix = np.asarray(updates, dtype=np.float32)
            except (TypeError, ValueError):
                raise InvalidArgument(
                    "the client updates have different lengths or are not numbers; every "
                    "client must send a vector of the same size."
                ) from None
    else:
        raise InvalidArgument(
            f"client updates must be a matrix (clients x parameters) or a list of state dicts, "
            f"got {type(updates).__name__}."
        )
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise InvalidArgument(
            f"client updates have shape {matrix.shape}; hand in a non-empty matrix of "
            "one row per client and one column per parameter."
        )
    if matrix.dtype.kind not in "fiu":
        raise InvalidArgument(
            f"client updates have dtype {matrix.dtype}; hand in float numbers (float32)."
        )
    matrix = np.asarray(matrix, dtype=np.float32)
    finite = finite_rows(matrix)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise InvalidArgument(
            f"client {first}'s update holds NaN or infinite values; drop such clients as "
            "Byzantine (see finite_rows) before aggregating."
        )
    return matrix, layout


def finite_rows(updates: NDArray[Any]) -> NDArray[np.bool_]:
    """Which rows (clients) hold only finite values: the ones a coordinator may aggregate."""
    matrix = np.asarray(updates)
    if matrix.ndim != 2:
        raise InvalidArgument(
            f"client updates have shape {matrix.shape}; hand in one row per client."
        )
    return np.asarray(np.isfinite(matrix).all(axis=1))


def _result(vector: NDArray[Any], layout: Layout | None) -> Any:
    vector = np.asarray(vector, dtype=np.float32)
    return vector if layout is None else unflatten(vector, layout)


def _whole(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise InvalidArgument(f"{name} must be a whole number of at least {lo}, got {value!r}.")
    return int(value)


# --- rules ------------------------------------------------------------------------------------


@overload
def mean(updates: NDArray[Any]) -> NDArray[np.float32]: ...
@overload
def mean(updates: Sequence[StateDict]) -> dict[str, torch.Tensor]: ...
def mean(updates: Updates) -> Any:
    """The plain coordinate-wise mean: not robust (one client moves it anywhere); the
    baseline the robust rules are measured against."""
    matrix, layout = stack(updates)
    return _result(matrix.mean(axis=0, dtype=np.float64), layout)


@overload
def coordinate_median(updates: NDArray[Any]) -> NDArray[np.float32]: ...
@overload
def coordinate_median(updates: Sequence[StateDict]) -> dict[str, torch.Tensor]: ...
def coordinate_median(updates: Updates) -> Any:
    """The coordinate-wise median (the mean of the two middle values for an even count):
    within the honest range per coordinate as long as fewer than half the clients are
    Byzantine."""
    matrix, layout = stack(updates)
    return _result(np.median(matrix.astype(np.float64), axis=0), layout)


def trim_count(n: int, trim: float | int) -> int:
    """How many values :func:`trimmed_mean` drops from each side among ``n`` clients: ``trim``
    itself if whole, else ``floor(trim * n)`` for a fraction in [0, 0.5)."""
    n = _whole("the number of clients", n, 1)
    if isinstance(trim, bool):
        raise InvalidArgument(f"trim must be a count or a fraction below 0.5, got {trim!r}.")
    if isinstance(trim, int | np.integer):
        k = int(trim)
        if k < 0:
            raise InvalidArgument(f"trim must not be negative, got {k}; use 0 for the mean.")
    elif isinstance(trim, float | np.floating):
        if not 0.0 <= trim < 0.5:
            raise InvalidArgument(
                f"a trim fraction must be in [0, 0.5), got {trim!r}; use for example 0.2 to drop a "
                "fifth of the clients from each side."
            )
        k = math.floor(float(trim) * n)
    else:
        raise InvalidArgument(f"trim must be a count or a fraction below 0.5, got {trim!r}.")
    if n <= 2 * k:
        raise InvalidArgument(
            f"trimming {k} from each side of {n} clients leaves nothing; a trimmed mean needs "
            f"more than {2 * k} clients, so lower trim or wait for more clients."
        )
    return k


@overload
def trimmed_mean(updates: NDArray[Any], trim: float | int = ...) -> NDArray[np.float32]: ...
@overload
def trimmed_mean(
    updates: Sequence[StateDict], trim: float | int = ...
) -> dict[str, torch.Tensor]: ...
def trimmed_mean(updates: Updates, trim: float | int = DEFAULT_TRIM) -> Any:
    """Per coordinate, drop the ``k`` largest and ``k`` smallest values and average the rest
    (``k`` from :func:`trim_count`). With at most ``k`` Byzantine clients each coordinate
    stays within the honest clients' range: a Byzantine value that survives has at least one
    honest value at or above it and one at or below it."""
    matrix, layout = stack(updates)
    n = matrix.shape[0]
    k = trim_count(n, trim)
    ordered = np.sort(matrix.astype(np.float64), axis=0)
    return _result(ordered[k : n - k].mean(axis=0), layout)


def _check_f(n: int, f: int, rule: str) -> int:
    f = _whole("f (the number of Byzantine clients tolerated)", f, 0)
    if n < 2 * f + 3:
        raise InvalidArgument(
            f"{rule} with f={f} needs at least {2 * f + 3} clients (2f + 3), got {n}; "
            "lower f or wait for more clients."
        )
    return f


def krum_scores(updates: Updates, f: int) -> NDArray[np.float64]:
    """Each client's Krum score: the sum of squared distances from its update to its
    ``n - f - 2`` nearest other updates (lower is more central)."""
    matrix, _ = stack(updates)
    n = matrix.shape[0]
    f = _check_f(n, f, "Krum")
    x = matrix.astype(np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    np.fill_diagonal(dist, np.inf)
    nearest = np.sort(dist, axis=1)[:, : n - f - 2]
    return np.asarray(nearest.sum(axis=1), dtype=np.float64)


def multi_krum_select(updates: Updates, f: int, m: int | None = None) -> NDArray[np.int64]:
    """The ``m`` clients (default ``n - f``) with the lowest Krum scores, in ascending order of
    index; ties go to the lower index. Scores are computed once, not re-computed after each
    pick (the common simplification of Blanchard et al.'s iterated selection)."""
    matrix, _ = stack(updates)
    n = matrix.shape[0]
    scores = krum_scores(matrix, f)
    count = n - f if m is None else _whole("m (the number of updates kept)", m, 1)
    if count > n - f:
        raise InvalidArgument(
            f"MultiKrum may keep at most n - f = {n - f} of {n} updates, asked for {count}; "
            "lower m."
        )
    picked = np.argsort(scores, kind="stable")[:count]
    return np.sort(picked).astype(np.int64)


@overload
def multi_krum(updates: NDArray[Any], f: int, m: int | None = ...) -> NDArray[np.float32]: ...
@overload
def multi_krum(
    updates: Sequence[StateDict], f: int, m: int | None = ...
) -> dict[str, torch.Tensor]: ...
def multi_krum(updates: Updates, f: int, m: int | None = None) -> Any:
    """The mean of the ``m`` updates that :func:`multi_krum_select` keeps."""
    matrix, layout = stack(updates)
    picked = multi_krum_select(matrix, f, m)
    return _result(matrix[picked].astype(np.float64).mean(axis=0), layout)


@overload
def krum(updates: NDArray[Any], f: int) -> NDArray[np.float32]: ...
@overload
def krum(updates: Sequence[StateDict], f: int) -> dict[str, torch.Tensor]: ...
def krum(updates: Updates, f: int) -> Any:
    """The single update with the lowest Krum score. Kept for comparison only: on non-IID data
    it follows one client's view and loses accuracy."""
    return multi_krum(updates, f, 1)


# --- a rule as a value ------------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregator:
    """A rule and its parameters as one value, so a round engine or a benchmark can hand it
    around: ``Aggregator()`` is the default trimmed mean; ``f`` is the number of Byzantine
    clients Krum and MultiKrum tolerate, ``m`` the updates MultiKrum keeps (default ``n - f``).
    """

    rule: Rule = DEFAULT_RULE
    trim: float | int = DEFAULT_TRIM
    f: int = 0
    m: int | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise InvalidArgument(
                f"unknown aggregation rule {self.rule!r}; choose one of {', '.join(RULES)}."
            )
        _whole("f (the number of Byzantine clients tolerated)", self.f, 0)

    def minimum_clients(self) -> int:
        """The fewest clients this rule can aggregate (with the trim as a fraction, the fewest
        for which it keeps anything)."""
        if self.rule in ("krum", "multi_krum"):
            return max(2 * self.f + 3, self.m or 0)
        if self.rule == "trimmed_mean":
            if isinstance(self.trim, float):
                n = 1
                while math.floor(self.trim * n) * 2 >= n:
                    n += 1
                return n
            return 2 * int(self.trim) + 1
        return 1

    def for_clients(self, n: int) -> Aggregator:
        """This rule with a fractional trim turned into the count it means for ``n`` clients,
        so that leaving one client out compares like with like (the same count trimmed)."""
        if self.rule != "trimmed_mean" or not isinstance(self.trim, float):
            return self
        return Aggregator(self.rule, trim_count(n, self.trim), self.f, self.m)

    def __call__(self, updates: NDArray[Any]) -> NDArray[np.float32]:
        """The aggregate of a matrix of updates (clients x parameters) under this rule."""
        rules: dict[str, Callable[[NDArray[Any]], NDArray[np.float32]]] = {
            "mean": mean,
            "coordinate_median": coordinate_median,
            "trimmed_mean": lambda u: trimmed_mean(u, self.trim),
            "multi_krum": lambda u: multi_krum(u, self.f, self.m),
            "krum": lambda u: krum(u, self.f),
        }
        return rules[self.rule](updates)
