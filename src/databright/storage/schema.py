"""Dataset schemas: what every example of a dataset must look like.

A schema is fixed when the dataset is created and referenced (by CID) from every proposal's
manifest, so that a proposal can be checked, and its example hashes recomputed, without trusting
the contributor's description of their own data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

import numpy as np

from databright.errors import InvalidSchema
from databright.storage.cid import cid_for_bytes

__all__ = ["FEATURE_DTYPES", "SCHEMA_FORMAT", "DatasetSchema", "Task"]

Task = Literal["classification", "regression"]

#: Feature dtypes a dataset may declare (numpy names; stored little-endian).
FEATURE_DTYPES: Final = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
)
SCHEMA_FORMAT: Final = "databright-schema/1"

_KEYS: Final = {
    "format",
    "name",
    "task",
    "feature_shape",
    "dtype",
    "labels",
    "max_examples",
    "max_file_bytes",
}


@dataclass(frozen=True)
class DatasetSchema:
    """The shape of a dataset's examples and the limits on one proposal.

    ``feature_shape`` is the shape of one example (``(8, 8)`` for digits images, ``(30,)`` for
    a table row); ``dtype`` the numpy name its values are stored in; ``labels`` the allowed
    class labels for classification (all ints or all strings) and ``None`` for regression,
    whose targets are any finite float.
    """

    task: Task
    feature_shape: tuple[int, ...]
    dtype: str
    labels: tuple[int, ...] | tuple[str, ...] | None = None
    max_examples: int = 1_000_000
    max_file_bytes: int = 256 * 1024 * 1024
    name: str = ""
    _label_set: frozenset[int | str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise InvalidSchema(
                f"task {self.task!r} is unknown; use 'classification' or 'regression'"
            )
        try:
            shape = tuple(int(d) for d in self.feature_shape)
        except (TypeError, ValueError):
            raise InvalidSchema(
                f"feature_shape {self.feature_shape!r} is not a tuple of integers"
            ) from None
        if any(d <= 0 for d in shape) or any(isinstance(d, bool) for d in self.feature_shape):
            raise InvalidSchema(f"feature_shape {shape} must hold positive integers")
        object.__setattr__(self, "feature_shape", shape)
        if self.dtype not in FEATURE_DTYPES:
            raise InvalidSchema(
                f"dtype {self.dtype!r} is not supported; use one of {', '.join(FEATURE_DTYPES)}"
            )
        labels = self.labels
        if self.task == "regression":
            if labels is not None:
                raise InvalidSchema("a regression dataset has no label set; leave labels as None")
        else:
            if labels is None or len(labels) == 0:
                raise InvalidSchema("a classification dataset needs a non-empty label set")
            items = tuple(labels)
            if all(isinstance(v, str) for v in items):
                pass
            elif all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in items):
                items = tuple(int(cast(int, v)) for v in items)
            else:
                raise InvalidSchema(f"labels {list(items)!r} must be all integers or all strings")
            if len(set(items)) != len(items):
                raise InvalidSchema(f"labels {list(items)!r} repeat a label")
            object.__setattr__(self, "labels", items)
        for limit in ("max_examples", "max_file_bytes"):
            value = getattr(self, limit)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidSchema(f"{limit} must be a positive integer, got {value!r}")
        if not isinstance(self.name, str):
            raise InvalidSchema(f"name must be a string, got {self.name!r}")
        object.__setattr__(self, "_label_set", frozenset(self.labels or ()))

    # --- derived --------------------------------------------------------------------------

    @property
    def np_dtype(self) -> np.dtype[Any]:
        """The feature dtype, little-endian (the byte order of stored data and hashes)."""
        return np.dtype(self.dtype).newbyteorder("<")

    @property
    def n_features(self) -> int:
        """Number of values per example (columns of a CSV or Parquet file)."""
        return math.prod(self.feature_shape)

    @property
    def string_labels(self) -> bool:
        """Whether class labels are strings (else integers, or a regression target)."""
        return bool(self.labels) and isinstance(self.labels[0], str)  # type: ignore[index]

    @property
    def label_set(self) -> frozenset[int | str]:
        """The allowed class labels, for membership tests."""
        return self._label_set

    def class_indices(self, y: Any) -> np.ndarray:
        """Labels as class numbers ``0..C-1`` in the order of ``labels`` (a model's outputs).

        Raises InvalidSchema for a regression dataset, and for a label outside the set."""
        if not self.labels:
            raise InvalidSchema("a regression dataset has no classes; models here are classifiers")
        index = {label: i for i, label in enumerate(self.labels)}
        try:
            return np.array([index[v.item() if hasattr(v, "item") else v] for v in y], np.int64)
        except KeyError as exc:
            raise InvalidSchema(
                f"label {exc.args[0]!r} is not one of the dataset's {self.describe_labels()}"
            ) from None

    def describe_labels(self, limit: int = 12) -> str:
        """The label set as people write it: ``{0..9}``, ``{'cat', 'dog'}``."""
        labels = self.labels or ()
        if not self.string_labels:
            ints = sorted(cast(tuple[int, ...], labels))
            if len(ints) >= 3 and ints == list(range(ints[0], ints[-1] + 1)):
                return f"{{{ints[0]}..{ints[-1]}}}"
            shown = [str(v) for v in ints]
        else:
            shown = [repr(v) for v in labels]
        if len(shown) > limit:
            shown = [*shown[:limit], f"... ({len(labels)} labels)"]
        return "{" + ", ".join(shown) + "}"

    # --- serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (lists for tuples)."""
        return {
            "format": SCHEMA_FORMAT,
            "name": self.name,
            "task": self.task,
            "feature_shape": list(self.feature_shape),
            "dtype": self.dtype,
            "labels": None if self.labels is None else list(self.labels),
            "max_examples": self.max_examples,
            "max_file_bytes": self.max_file_bytes,
        }

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces), so equal schemas have equal CIDs."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def to_bytes(self) -> bytes:
        """The canonical JSON as UTF-8: what is stored as the schema blob."""
        return self.to_json().encode("utf-8")

    def cid(self) -> str:
        """The CID of :meth:`to_bytes`, how manifests refer to this schema."""
        return cid_for_bytes(self.to_bytes())

    @classmethod
    def from_dict(cls, data: Any) -> DatasetSchema:
        """Rebuild a schema from :meth:`to_dict` output, refusing unknown or missing keys."""
        if not isinstance(data, dict):
            raise InvalidSchema(f"a schema is a JSON object, got {type(data).__name__}")
        fmt = data.get("format", SCHEMA_FORMAT)
        if fmt != SCHEMA_FORMAT:
            raise InvalidSchema(f"schema format {fmt!r} is not {SCHEMA_FORMAT!r}")
        unknown = set(data) - _KEYS
        if unknown:
            raise InvalidSchema(f"schema has unknown keys {sorted(unknown)}")
        missing = {"task", "feature_shape", "dtype"} - set(data)
        if missing:
            raise InvalidSchema(f"schema lacks the keys {sorted(missing)}")
        shape = data["feature_shape"]
        if not isinstance(shape, list | tuple):
            raise InvalidSchema(f"feature_shape {shape!r} is not a list of integers")
        labels = data.get("labels")
        if labels is not None and not isinstance(labels, list | tuple):
            raise InvalidSchema(f"labels {labels!r} is not a list")
        kwargs: dict[str, Any] = {
            "task": data["task"],
            "feature_shape": tuple(shape),
            "dtype": data["dtype"],
            "labels": None if labels is None else tuple(labels),
        }
        for key in ("max_examples", "max_file_bytes", "name"):
            if key in data:
                kwargs[key] = data[key]
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> DatasetSchema:
        """Parse :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidSchema(f"schema is not valid JSON ({exc})") from exc
        return cls.from_dict(data)
