"""Gas: the committed snapshot, the goals, and flat dividend gas (see ``benchmarks/gas.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = (
    "if the change is intended, run `python benchmarks/gas.py --update-snapshot` and commit"
)


def _load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "databright_gas_benchmark", ROOT / "benchmarks" / "gas.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


@pytest.fixture(scope="module")
def measured() -> dict[str, int]:
    return dict(bench.measure())


def test_calibration_plain_transfer_is_21000(measured: dict[str, int]) -> None:
    assert measured["eth_transfer"] == 21_000


def test_no_operation_rises_above_the_snapshot(measured: dict[str, int]) -> None:
    snapshot = bench.load_snapshot()
    assert set(measured) == set(snapshot), f"operations changed; {REGENERATE}"
    risen = {
        op: (snapshot[op], gas)
        for op, gas in measured.items()
        if gas > snapshot[op] * (1 + bench.TOLERANCE)
    }
    assert not risen, (
        f"gas rose more than {bench.TOLERANCE:.0%} (snapshot, now): {risen}; {REGENERATE}"
    )


def test_goals_are_met(measured: dict[str, int]) -> None:
    for op, goal in bench.GOALS.items():
        assert measured[op] <= goal, f"{op}: {measured[op]:,} > goal {goal:,}"
        for count in bench.HOLDER_COUNTS:
            key = f"{op}_{count}_holders"
            if key in measured:
                assert measured[key] <= goal, f"{key}: {measured[key]:,} > goal {goal:,}"


@pytest.mark.parametrize("op", ["pay", "claim"])
def test_dividend_gas_is_flat_in_the_number_of_holders(measured: dict[str, int], op: str) -> None:
    values = [measured[f"{op}_{count}_holders"] for count in bench.HOLDER_COUNTS]
    assert (max(values) - min(values)) / min(values) <= bench.FLATNESS, values
