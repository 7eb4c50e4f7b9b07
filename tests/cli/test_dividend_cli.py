"""``databright pay|claim`` (``databright.cli.dividend``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cli_helpers import World, check_bad_input

# (args, exit code, words the one line must hold); {ds}, {open}, {files} are filled in.
BAD_INPUT = [
    ("pay-unknown-dataset", ["pay", "99", "1"], 5, ["dataset 99 does not exist"]),
    ("claim-unknown-dataset", ["claim", "0"], 5, ["dataset 0 does not exist"]),
    ("pay-too-much", ["pay", "{ds}", "1000000000", "-a", "3"], 3, ["ShareToken.pay", "cannot pay"]),
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
