"""Dataset schemas: validated on construction, JSON round trip, stable CID."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from databright.storage import DatasetSchema, InvalidSchema, cid_for_bytes


def _digits(**changes: Any) -> DatasetSchema:
    kwargs: dict[str, Any] = {
        "task": "classification",
        "feature_shape": (8, 8),
        "dtype": "float32",
        "labels": tuple(range(10)),
    }
    kwargs.update(changes)
    return DatasetSchema(**kwargs)


@pytest.mark.parametrize(
    "schema",
    [
        _digits(),
        _digits(labels=("cat", "dog"), name="pets", max_examples=10, max_file_bytes=1000),
        DatasetSchema(task="regression", feature_shape=(30,), dtype="float64"),
        DatasetSchema(task="regression", feature_shape=(), dtype="int64"),
        _digits(dtype="uint8", feature_shape=[28, 28]),
    ],
)
def test_json_round_trip(schema: DatasetSchema) -> None:
    again = DatasetSchema.from_json(schema.to_json())
    assert again == schema
    assert again.to_bytes() == schema.to_bytes()
    assert again.cid() == schema.cid() == cid_for_bytes(schema.to_bytes())
    assert DatasetSchema.from_json(schema.to_bytes()) == schema


def test_canonical_json_and_derived_values() -> None:
    schema = _digits(name="digits")
    assert schema.to_json() == (
        '{"dtype":"float32","feature_shape":[8,8],"format":"databright-schema/1",'
        '"labels":[0,1,2,3,4,5,6,7,8,9],"max_examples":1000000,"max_file_bytes":268435456,'
        '"name":"digits","task":"classification"}'
    )
    assert schema.feature_shape == (8, 8)
    assert schema.n_features == 64
    assert schema.np_dtype.str == "<f4"
    assert not schema.string_labels
    assert schema.label_set == frozenset(range(10))


def test_lists_become_tuples_so_the_schema_is_hashable() -> None:
    schema = DatasetSchema(
        task="classification",
        feature_shape=[2, 2],
        dtype="int64",
        labels=[1, 2],  # type: ignore[arg-type]
    )
    assert schema.feature_shape == (2, 2)
    assert schema.labels == (1, 2)
    assert hash(schema) == hash(_digits(feature_shape=(2, 2), dtype="int64", labels=(1, 2)))


@pytest.mark.parametrize(
    ("labels", "text"),
    [
        (tuple(range(10)), "{0..9}"),
        ((3, 1, 2), "{1..3}"),
        ((0, 1), "{0, 1}"),
        ((1, 5, 7), "{1, 5, 7}"),
        (("cat", "dog"), "{'cat', 'dog'}"),
        (tuple(range(0, 40, 2)), "{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, ... (20 labels)}"),
    ],
)
def test_describe_labels(labels: tuple[Any, ...], text: str) -> None:
    assert _digits(labels=labels).describe_labels() == text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "clustering"}, "task 'clustering' is unknown"),
        ({"dtype": "complex64"}, "dtype 'complex64' is not supported"),
        ({"dtype": "object"}, "dtype 'object' is not supported"),
        ({"feature_shape": (8, 0)}, r"feature_shape \(8, 0\) must hold positive integers"),
        ({"feature_shape": "8x8"}, "feature_shape '8x8' is not a tuple of integers"),
        ({"labels": None}, "needs a non-empty label set"),
        ({"labels": ()}, "needs a non-empty label set"),
        ({"labels": (1, "a")}, "must be all integers or all strings"),
        ({"labels": (True, False)}, "must be all integers or all strings"),
        ({"labels": (1, 1)}, "repeat a label"),
        ({"max_examples": 0}, "max_examples must be a positive integer"),
        ({"max_file_bytes": 1.5}, "max_file_bytes must be a positive integer"),
        ({"name": 3}, "name must be a string"),
    ],
)
def test_inconsistent_schemas_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSchema, match=message):
        _digits(**changes)


def test_regression_has_no_labels() -> None:
    with pytest.raises(InvalidSchema, match="a regression dataset has no label set"):
        DatasetSchema(task="regression", feature_shape=(3,), dtype="float32", labels=(1, 2))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "schema is not valid JSON"),
        ("[1, 2]", "a schema is a JSON object, got list"),
        ('{"format": "other/1"}', "schema format 'other/1' is not 'databright-schema/1'"),
        (
            '{"task": "regression", "feature_shape": [1], "dtype": "float32", "colour": 1}',
            r"schema has unknown keys \['colour'\]",
        ),
        ('{"task": "regression"}', r"schema lacks the keys \['dtype', 'feature_shape'\]"),
        (
            '{"task": "regression", "feature_shape": 3, "dtype": "float32"}',
            "feature_shape 3 is not a list",
        ),
        (
            '{"task": "classification", "feature_shape": [3], "dtype": "float32", "labels": 5}',
            "labels 5 is not a list",
        ),
    ],
)
def test_from_json_refuses_bad_documents(text: str, message: str) -> None:
    with pytest.raises(InvalidSchema, match=message):
        DatasetSchema.from_json(text)


def test_invalid_schema_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        _digits(dtype="float8")


def test_class_indices_follow_the_label_order_and_refuse_strangers() -> None:
    schema = DatasetSchema(
        task="classification", feature_shape=(2,), dtype="float32", labels=("cat", "dog")
    )
    assert schema.class_indices(np.array(["dog", "cat", "dog"])).tolist() == [1, 0, 1]
    with pytest.raises(InvalidSchema, match="'cow' is not one of the dataset's"):
        schema.class_indices(["cow"])
    with pytest.raises(InvalidSchema, match="regression dataset has no classes"):
        DatasetSchema(task="regression", feature_shape=(2,), dtype="float32").class_indices([1.0])
