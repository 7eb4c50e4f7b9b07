"""``databright pay|claim`` (``databright.cli.dividend``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import SCHEMA, Env, World, check_bad_input, cli, cli_json, write_npz

# (args, exit code, words the one line must hold); {ds}, {open}, {files} are filled in.
BAD_INPUT = [
    ("pay-unknown-dataset", ["pay", "99", "1"], 5, ["dataset 99 does not exist"]),
    ("claim-unknown-dataset", ["claim", "0"], 5, ["dataset 0 does not exist"]),
    ("pay-too-much", ["pay", "{ds}", "1000000000", "-a", "3"], 3, ["ShareToken.pay", "cannot pay"]),
    ("history-unknown-dataset", ["dividends", "--dataset", "99"], 5, ["dataset 99 does not exist"]),
    ("history-unknown-index", ["dividends", "9"], 5, ["no account #9"]),
    ("nothing-to-claim", ["claim", "{ds}", "-a", "3"], 4, ["ShareToken.claim reverted", "nothing to claim"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "words"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_is_one_line_and_changes_nothing(
    world: World,
    fails: Callable[..., tuple[int, str]],
    args: list[str],
    code: int,
    words: list[str],
) -> None:
    check_bad_input(world, fails, args, code, words)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["pay", "1"], "Missing argument"),
        (["pay", "1", "0"], "a payment must be a positive amount of ETH, not '0'"),
        (["pay", "1", "abc"], "'abc' is not an amount of ETH"),
        (["pay", "1", "1e-19"], "is not a whole number of wei"),
    ],
    ids=["missing-arg", "pay-zero", "pay-garbage", "pay-below-wei"],
)
def test_usage_errors_exit_2(
    args: list[str], words: str, fails: Callable[..., tuple[int, str]]
) -> None:
    """A malformed amount is refused before any node is asked, like any malformed argument."""
    _, err = fails(*args, usage=True)
    assert words in " ".join(err.replace("│", " ").split())


def test_dividend_history_lists_payments_and_claims(env: Env, tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    ds = cli_json(env, "dataset", "create", "paid", "--schema", str(schema),
                  "--initial", str(write_npz(tmp_path / "i.npz", 8, 101)), "-a", "1")["id"]  # fmt: skip
    cli(env, "pay", str(ds), "0.5", "-a", "3")
    cli(env, "pay", str(ds), "0.25", "-a", "3")
    assert cli_json(env, "claim", str(ds), "-a", "1")["claimed_wei"] == 75 * 10**16
    cli(env, "pay", str(ds), "0.125", "-a", "3")
    history = cli_json(env, "dividends", "1", "--dataset", str(ds))
    assert [(r["kind"], r["amount_eth"]) for r in history["history"]] == [
        ("payment", "0.5"), ("payment", "0.25"), ("claim", "0.75"), ("payment", "0.125")
    ]  # fmt: skip
    [summary] = history["datasets"]
    assert summary["claimable_eth"] == "0.125" and summary["claimed_wei"] == 75 * 10**16
    payer = cli_json(env, "dividends", "-a", "3", "--dataset", str(ds))
    assert len(payer["history"]) == 3 and payer["datasets"][0]["shares"] == 0
    text = " ".join(cli(env, "dividends", "1", "--dataset", str(ds)).stdout.split())
    assert "claimed" in text and "0.125 ETH to claim now" in text
    assert cli_json(env, "dividends", "0x" + "12" * 20, "--dataset", str(ds))["history"] == []
