"""What the CLI reads from its arguments, without a node (``databright.cli._params``):
amounts, ids, durations, label sets and shapes; and how it prints amounts and shares."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from databright.cli._common import eth_exact, shares_text
from databright.cli._params import (
    DURATION,
    ETH_AMOUNT,
    ETH_AMOUNT_OR_ZERO,
    FEATURE_SHAPE,
    LABEL_SET,
    MAX_VOTING_PERIOD,
    ParamType,
    parse_duration,
    parse_eth,
    parse_labels,
    parse_proposal_id,
    parse_shape,
)
from databright.errors import DataBrightError, InvalidAmount, InvalidProposalId, NotFound


@pytest.mark.parametrize(
    ("text", "wei"),
    [
        ("0.5", 5 * 10**17),
        ("1", 10**18),
        (" 2 ", 2 * 10**18),
        ("1e-3", 10**15),
        ("0.000000000000000001", 1),
        ("123456789012.123456789012345678", 123456789012123456789012345678),
    ],
)
def test_parse_eth_is_exact(text: str, wei: int) -> None:
    assert parse_eth(text) == wei


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "positive"),
        ("-1", "positive"),
        ("0.0", "positive"),
        ("abc", "not an amount of ETH"),
        ("", "not an amount of ETH"),
        ("nan", "not an amount of ETH"),
        ("inf", "not an amount of ETH"),
        ("0x10", "not an amount of ETH"),
        ("0.0000000000000000001", "whole number of wei"),
        ("1e80", "more than any account"),
        ("1e999999999", "more than any account"),
    ],
)
def test_parse_eth_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidAmount, match=message) as info:
        parse_eth(text)
    assert isinstance(info.value, DataBrightError)


def test_eth_and_shares_are_printed_exactly() -> None:
    assert eth_exact(10**18) == "1"
    assert eth_exact(999999999999999999) == "0.999999999999999999"
    assert eth_exact(0) == "0"
    assert eth_exact(10**19) == "10"
    assert shares_text(10**18) == "1.0000"
    assert shares_text(12_345 * 10**14) == "1.2345"


def test_parse_proposal_id() -> None:
    assert parse_proposal_id("4294967297") == 4294967297
    assert parse_proposal_id("1/1") == (1 << 32) | 1
    assert parse_proposal_id(" 3 / 7 ") == (3 << 32) | 7
    with pytest.raises(InvalidProposalId, match="is not a proposal"):
        parse_proposal_id("abc")
    with pytest.raises(InvalidProposalId):
        parse_proposal_id("-1")
    with pytest.raises(InvalidProposalId):
        parse_proposal_id("١")  # a digit, but not an ASCII one
    with pytest.raises(NotFound):
        parse_proposal_id(str(2**256))
    with pytest.raises(NotFound):
        parse_proposal_id(f"1/{2**32}")


def test_parse_labels_shape_duration() -> None:
    assert parse_labels("0-9") == tuple(range(10))
    assert parse_labels("0..2") == (0, 1, 2)
    assert parse_labels("-1-1") == (-1, 0, 1)
    assert parse_labels("3,1,2") == (3, 1, 2)
    assert parse_labels("cat, dog") == ("cat", "dog")
    for bad in ("", "a,,b", "9-0"):
        with pytest.raises(typer.BadParameter):
            parse_labels(bad)
    assert parse_shape("64") == (64,)
    assert parse_shape("8x8") == (8, 8)
    assert parse_shape("(8, 8)") == (8, 8)
    for bad in ("", "0", "8x-1", "abc"):
        with pytest.raises(typer.BadParameter):
            parse_shape(bad)
    assert parse_duration("3600") == 3600
    assert parse_duration("90s") == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("1h") == 3600
    assert parse_duration("2d") == 172800
    assert parse_duration(60) == 60
    for bad in ("0", "1w", "-5", "h", str(2**32)):
        with pytest.raises(typer.BadParameter):
            parse_duration(bad)


# --- the option types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("90s", 90), ("30m", 1800), (" 1H ", 3600), ("2d", 172800), ("1 h", 3600),
     (str(MAX_VOTING_PERIOD), MAX_VOTING_PERIOD)],
)  # fmt: skip
def test_duration_type_converts(text: str, seconds: int) -> None:
    assert DURATION.convert(text) == seconds
    assert DURATION(text) == seconds  # what typer calls
    assert DURATION.convert(seconds) == seconds  # a default is already converted


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1w", "'1w' is not a duration; write e.g. 3600, 90s, 30m, 1h or 2d"),
        ("", "'' is not a duration; write e.g. 3600, 90s, 30m, 1h or 2d"),
        ("-5", "'-5' is not a duration"),
        ("١h", "is not a duration"),  # a digit, but not an ASCII one
        ("0", f"'0' must be between 1 s and {MAX_VOTING_PERIOD} s"),
        (str(2**32), f"must be between 1 s and {MAX_VOTING_PERIOD} s"),
    ],
)
def test_duration_type_fails(text: str, message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        DURATION.convert(text)


@pytest.mark.parametrize(
    ("text", "labels"),
    [("0-9", tuple(range(10))), ("0..2", (0, 1, 2)), ("-1-1", (-1, 0, 1)), ("1 - 3", (1, 2, 3)),
     ("3,1,2", (3, 1, 2)), ("cat, dog", ("cat", "dog")), ("7", (7,)), ("1,a", ("1", "a"))],
)  # fmt: skip
def test_label_set_type_converts(text: str, labels: tuple[int, ...] | tuple[str, ...]) -> None:
    assert LABEL_SET.convert(text) == labels
    assert LABEL_SET(text) == labels
    assert LABEL_SET.convert(LABEL_SET.convert(text)) == labels


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' has an empty label; write e.g. 0-9 or cat,dog"),
        ("a,,b", "'a,,b' has an empty label"),
        ("cat,", "has an empty label"),
        ("9-0", "'9-0' is not a usable range of labels"),
        ("0-1000000", "is not a usable range of labels"),
    ],
)
def test_label_set_type_fails(text: str, message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        LABEL_SET.convert(text)


@pytest.mark.parametrize(
    ("text", "shape"),
    [("64", (64,)), ("8x8", (8, 8)), ("8,8", (8, 8)), ("(8, 8)", (8, 8)), ("[3x32x32]", (3, 32, 32)),
     ("8×8", (8, 8))],
)  # fmt: skip
def test_feature_shape_type_converts(text: str, shape: tuple[int, ...]) -> None:
    assert FEATURE_SHAPE.convert(text) == shape
    assert FEATURE_SHAPE(text) == shape
    assert FEATURE_SHAPE.convert(FEATURE_SHAPE.convert(text)) == shape


@pytest.mark.parametrize("text", ["", "0", "8x0", "8x-1", "abc", "8y", "()", "８"])
def test_feature_shape_type_fails(text: str) -> None:
    with pytest.raises(typer.BadParameter) as info:
        FEATURE_SHAPE.convert(text)
    assert info.value.message == f"{text!r} is not a shape; write e.g. 64 or 8x8"


class Even(ParamType[int]):
    def convert(self, value: str | int) -> int:
        if isinstance(value, int):
            return value
        if not value.isdigit() or int(value) % 2:
            self.fail(f"{value!r} is not even")
        return int(value)


def test_a_param_type_failure_is_a_usage_error_naming_the_option() -> None:
    app = typer.Typer()

    @app.command()
    def main(n: Annotated[int, typer.Option("--n", parser=Even())] = 2) -> None:
        typer.echo(f"n={n}")

    runner = CliRunner()
    assert runner.invoke(app, ["--n", "4"]).stdout == "n=4\n"
    assert runner.invoke(app, []).stdout == "n=2\n"
    bad = runner.invoke(app, ["--n", "3"])
    assert bad.exit_code == 2
    assert "Invalid value for '--n': '3' is not even" in " ".join(bad.output.split())


def test_eth_amount_type_converts_exactly() -> None:
    assert ETH_AMOUNT.convert("0.5") == 5 * 10**17
    assert ETH_AMOUNT.convert("1e-18") == 1
    assert ETH_AMOUNT.convert(7) == 7  # an already converted value is kept


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1e-19", "nan"])
def test_eth_amount_type_refuses_as_usage_error(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        ETH_AMOUNT.convert(text)


@pytest.mark.parametrize(("text", "wei"), [("0", 0), ("0.0", 0), ("0e3", 0), ("0.01", 10**16)])
def test_a_fee_or_deposit_may_be_zero(text: str, wei: int) -> None:
    assert ETH_AMOUNT_OR_ZERO.convert(text) == wei


def test_a_negative_deposit_is_named_as_such() -> None:
    with pytest.raises(typer.BadParameter, match="must not be negative, not '-1'"):
        ETH_AMOUNT_OR_ZERO.convert("-1")
    with pytest.raises(typer.BadParameter, match="positive amount of ETH"):
        ETH_AMOUNT.convert("0.0")


@pytest.mark.parametrize("flags", [["--yes", "--no"], []])
def test_a_vote_needs_exactly_one_of_yes_and_no(flags: list[str]) -> None:
    from databright.cli import app

    # Refused while parsing, before any node is asked (the RPC URL here answers nothing).
    done = CliRunner().invoke(app, ["vote", "1/1", *flags, "--rpc", "http://127.0.0.1:9"])
    assert done.exit_code == 2
    assert "exactly one of --yes or --no" in done.output
