"""What the market CLI reads from its arguments, without a node: amounts, ids, schemas."""

from __future__ import annotations

import pytest
import typer

from databright.cli.dataset import parse_duration, parse_labels, parse_shape
from databright.cli.market import (
    InvalidAmount,
    InvalidProposalId,
    eth_exact,
    parse_eth,
    parse_proposal_id,
    shares_text,
)
from databright.errors import DataBrightError, NotFound


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
