"""The web UI's charts and formatting, without a browser: geometry that stays inside the
frame, data tables that carry the exact values, labels kept as text for the escaping
templates, and the valuation plot read from an evaluator's report."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from databright.server.ui.charts import (
    BOTTOM,
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    Series,
    bar_chart,
    stacked_bar_chart,
    step_chart,
)
from databright.server.ui.pages import FLAG_COLOURS, _eth, _valuation, shares_text


def _inside(chart) -> bool:
    return all(
        b.x >= LEFT
        and b.x + b.width <= WIDTH - RIGHT + 1e-6
        and b.y >= TOP - 1e-6
        and b.y + b.height <= HEIGHT - BOTTOM + 1e-6
        for b in chart.bars
    )


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60))
def test_bars_stay_in_the_frame_and_the_table_has_every_value(values) -> None:
    chart = bar_chart("t", "d", [(f"p{i}", v, "#000") for i, v in enumerate(values)])
    assert len(chart.bars) == len(values) and _inside(chart)
    assert [r[0] for r in chart.rows] == [f"p{i}" for i in range(len(values))]
    # a negative value hangs below the zero line, a positive one stands on it
    zero = {round(b.y + b.height, 6) for b, v in zip(chart.bars, values, strict=True) if v > 0}
    assert len(zero) <= 1


@given(
    st.lists(
        st.tuples(st.integers(0, 10**22), st.integers(0, 10**22), st.integers(0, 10**22)),
        min_size=1,
        max_size=12,
    )
)
def test_stacked_bars_add_up_and_show_wei_exactly_in_the_table(groups) -> None:
    series = [Series("a", "#111"), Series("b", "#222"), Series("c", "#333")]
    chart = stacked_bar_chart("t", "d", series, [(f"g{i}", g) for i, g in enumerate(groups)])
    assert _inside(chart)
    assert len(chart.bars) == sum(1 for g in groups for v in g if v > 0)
    assert chart.columns == ["group", "a", "b", "c", "total"]


def test_empty_charts_say_so() -> None:
    assert bar_chart("t", "d", []).empty
    assert stacked_bar_chart("t", "d", [Series("a", "#000")], []).empty
    assert step_chart("t", "d", [], "x", "y").empty


def test_a_dataset_grows_as_steps() -> None:
    chart = step_chart("Size", "d", [(5, 150), (9, 170), (12, 200)], "block", "examples")
    assert chart.rows == [["5", "150"], ["9", "170"], ["12", "200"]]
    assert chart.line.count(",") == 2 * 3 + 1  # two corners a step, and the tail


def test_labels_are_kept_as_text_for_the_template_to_escape() -> None:
    chart = bar_chart("t", "d", [("<script>", 1.0, "#000")])
    assert chart.rows[0][0] == "<script>" and chart.bars[0].tip.startswith("<script>")


def test_amounts_are_exact() -> None:
    assert _eth(1) == "0.000000000000000001 ETH"
    assert _eth(2 * 10**18 + 10**15) == "2.001 ETH"
    assert _eth(-(10**18)) == "-1 ETH"
    assert shares_text(150 * 10**18) == "150"
    assert shares_text(10**18 // 3) == "0.333333333333333333"


def test_the_valuation_plot_comes_from_the_first_readable_report() -> None:
    report = {
        "proposals": [
            {"proposal": "registry-0", "value": 0.5, "flags": []},
            {"proposal": "proposal-2", "value": -0.2, "flags": [{"kind": "poisoning", "reason": "r"}],
             "example_values": [0.1, -0.3, 0.0], "example_flags": [[1, "poisoning"]]},
            {"proposal": "proposal-3", "value": 0.1, "flags": [{"kind": "mislabelled", "reason": "m"}]},
        ]
    }  # fmt: skip
    unreadable = SimpleNamespace(report=None, evaluator="0xA")
    readable = SimpleNamespace(report=report, evaluator="0xB")
    chart, flags, examples = _valuation([unreadable, readable], 2)
    assert [b.colour for b in chart.bars] == [
        FLAG_COLOURS["clean"],
        FLAG_COLOURS["suspicious"],
        FLAG_COLOURS["some mislabelled"],
    ]
    assert flags == [{"kind": "poisoning", "reason": "r"}]
    assert "0xB" in chart.description
    assert [b.colour for b in examples.bars] == [
        FLAG_COLOURS["clean"],
        FLAG_COLOURS["suspicious"],
        FLAG_COLOURS["clean"],
    ]
    assert examples.rows[1] == ["#1 (poisoning)", "-0.3"]
    _, _, none = _valuation([readable], 3)  # listed without its examples
    assert none.empty
    chart, flags, examples = _valuation([unreadable], 2)
    assert chart.empty and flags == [] and examples.empty


def test_a_report_lists_each_examples_value_and_flag_within_its_budget() -> None:
    import numpy as np

    from databright.valuation.report import report
    from databright.valuation.result import Flag, FlagKind, ValuationResult

    n = 6
    result = ValuationResult(
        method="knn",
        values=np.array([0.1, 0.2, -0.5, 0.3, 0.0, 0.4]),
        stderr=np.zeros(n),
        proposals=("registry-0", "proposal-1"),
        proposal_values=np.array([0.3, 0.2]),
        proposal_stderr=np.zeros(2),
        proposal_sizes=np.array([2, 4]),
        copies=np.zeros(n, bool),
        player=np.array([0, 0, 1, 1, 1, 1]),
        flags=(Flag(FlagKind.POISONING, "proposal-1", (2,), "far from its class"),),
    )
    body = report(result)
    mine = body["proposals"][1]
    assert mine["example_values"] == [-0.5, 0.3, 0.0, 0.4]
    assert mine["example_flags"] == [[0, "poisoning"]]
    assert body["proposals"][0]["example_values"] == [0.1, 0.2]


def test_the_evaluators_report_is_read_as_the_evaluator_writes_it() -> None:
    body = {
        "proposal": {"proposal": "proposal-1", "value": 0.2},
        "valuation": {"proposals": [{"proposal": "proposal-1", "value": 0.2, "flags": [],
                                     "example_values": [0.1, 0.1], "example_flags": []}]},
        "plot_cid": "bafy",
    }  # fmt: skip
    chart, _, examples = _valuation([SimpleNamespace(report=body, evaluator="0xE")], 1)
    assert len(chart.bars) == 1 and len(examples.bars) == 2
