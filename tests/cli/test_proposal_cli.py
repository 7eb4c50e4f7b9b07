"""``databright propose|vote|finalize`` (``databright.cli.proposal``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cli_helpers import ETH, World, check_bad_input, cli_json, snapshot

# (args, exit code, words the one line must hold); {ds}, {open}, {files} are filled in.
BAD_INPUT = [
    ("missing-file", ["propose", "{ds}", "{files}/nope.npz"], 6, ["nope.npz", "does not exist"]),
    ("malformed-npz", ["propose", "{ds}", "{files}/garbage.npz"], 6, ["garbage.npz", "not a readable .npz"]),
    ("wrong-row", ["propose", "{ds}", "{files}/bad.csv"], 6, ["bad.csv row 2", "label 11"]),
    ("many-wrong-rows", ["propose", "{ds}", "{files}/many.csv"], 6, ["many.csv row 2: label 11", "; row 3: label 11", "; row 4: label 11", "(and 1 more)"]),
    ("unsupported", ["propose", "{ds}", "{files}/schema.json"], 6, ["schema.json", "unsupported format"]),
    ("propose-unknown-dataset", ["propose", "99", "{files}/fresh.npz"], 5, ["dataset 99 does not exist"]),
    ("vote-unknown-proposal", ["vote", "99", "--yes"], 5, ["proposal 99 does not exist"]),
    ("finalize-unknown-proposal", ["finalize", "{ds}/99"], 5, ["proposal", "does not exist"]),
    ("proposal-too-big", ["vote", str(2**256), "--no"], 5, ["does not exist"]),
    ("proposal-garbage", ["vote", "abc", "--yes"], 1, ["'abc' is not a proposal"]),
    ("no-voting-weight", ["vote", "{open}", "--yes", "-a", "3"], 4, ["no voting weight"]),
    ("finalize-while-open", ["finalize", "{open}"], 4, ["voting open"]),
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


@pytest.mark.parametrize("args", [["vote", "1/1"]], ids=["no-choice"])  # neither --yes nor --no
def test_usage_errors_exit_2(args: list[str], fails: Callable[..., tuple[int, str]]) -> None:
    fails(*args, usage=True)


def test_markup_in_a_proposal_reference_is_printed_as_written(
    fails: Callable[..., tuple[int, str]],
) -> None:
    # Refused before any node is asked; rich must not eat "[bold]" from the error line.
    code, message = fails("vote", "[bold]x", "--yes", "--rpc", "http://127.0.0.1:9")
    assert code == 1 and "'[bold]x' is not a proposal" in message


def test_vote_twice_shows_the_revert_reason(
    world: World, fails: Callable[..., tuple[int, str]]
) -> None:
    first = cli_json(world.env, "vote", world.voted, "--yes")
    assert first["weight"] == 20 * ETH
    before = snapshot(world.env)
    code, message = fails("vote", world.voted, "--no", *world.env.opts())
    assert code == 4 and "already voted" in message
    assert snapshot(world.env) == before
