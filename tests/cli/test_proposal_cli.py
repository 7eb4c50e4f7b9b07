"""``databright propose|vote|finalize`` (``databright.cli.proposal``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import ETH, World, check_bad_input, cli, cli_json, runner, snapshot

from databright.cli import app

# (args, exit code, words the one line must hold); {ds}, {open}, {files} are filled in.
BAD_INPUT = [
    ("missing-file", ["propose", "{ds}", "{files}/nope.npz"], 6, ["nope.npz", "does not exist"]),
    ("malformed-npz", ["propose", "{ds}", "{files}/garbage.npz"], 6, ["garbage.npz", "not a readable .npz"]),
    ("wrong-row", ["propose", "{ds}", "{files}/bad.csv"], 6, ["bad.csv row 2", "label 11"]),
    ("many-wrong-rows", ["propose", "{ds}", "{files}/many.csv"], 6, ["many.csv row 2: label 11", "; row 3: label 11", "; row 4: label 11", "(and 1 more)"]),
    ("unsupported", ["propose", "{ds}", "{files}/schema.json"], 6, ["schema.json", "unsupported format"]),
    ("propose-unknown-dataset", ["propose", "99", "{files}/fresh.npz"], 5, ["dataset 99 does not exist"]),
    ("vote-unknown-proposal", ["vote", "99", "--yes"], 5, ["proposal 99 does not exist"]),
    ("finalize-unknown-proposal", ["finalize", "{ds}/99"], 5, ["proposal {ds}/99 does not exist"]),
    ("show-unknown-proposal", ["proposal", "show", "{ds}/99"], 5, ["proposal {ds}/99 does not exist"]),
    ("show-no-plot-yet", ["proposal", "show", "{open}", "--plot", "{files}/p.png"], 5, ["no revealed report"]),
    ("dry-run-wrong-row", ["propose", "{ds}", "{files}/bad.csv", "--dry-run"], 6, ["bad.csv row 2", "label 11"]),
    ("dry-run-already-pending", ["propose", "{ds}", "{files}/p.npz", "--dry-run", "-a", "1"], 6, ["already in dataset"]),
    ("dry-run-unknown-dataset", ["propose", "99", "{files}/fresh.npz", "--dry-run"], 5, ["dataset 99 does not exist"]),
    ("proposal-too-big", ["vote", str(2**256), "--no"], 5, ["does not exist"]),
    ("proposal-garbage", ["vote", "abc", "--yes"], 2, ["'abc' is not a proposal"]),
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
    assert code == 2 and "'[bold]x' is not a proposal" in message


def test_vote_twice_shows_the_revert_reason(
    world: World, fails: Callable[..., tuple[int, str]]
) -> None:
    first = cli_json(world.env, "vote", world.voted, "--yes")
    assert first["weight"] == 20 * ETH
    before = snapshot(world.env)
    code, message = fails("vote", world.voted, "--no", *world.env.opts())
    assert code == 4 and "already voted" in message
    assert snapshot(world.env) == before


def test_dry_run_checks_without_storing_or_spending(
    world: World, fails: Callable[..., tuple[int, str]]
) -> None:
    before = snapshot(world.env)
    checked = cli_json(world.env, "propose", str(world.dataset), str(world.files / "fresh.npz"),
                       "--dry-run", "-a", "2")  # fmt: skip
    assert checked["dry_run"] is True and checked["examples"] == 5
    assert checked["contributor"] == world.env.addresses[2]
    text = " ".join(cli(world.env, "propose", str(world.dataset), str(world.files / "fresh.npz"),
                        "--dry-run").stdout.split())  # fmt: skip
    assert "5 examples fit dataset" in text and "nothing stored, no gas spent" in text
    assert snapshot(world.env) == before


def test_proposals_are_named_dataset_slash_n_everywhere(world: World, tmp_path: Path) -> None:
    env = world.env
    listed = cli_json(env, "proposal", "list", "--dataset", str(world.dataset))
    assert {world.voted, world.open} <= {p["id"] for p in listed}
    assert all(p["id"] == p["ref"] == f"{p['dataset_id']}/{p['sequence']}" for p in listed)
    mine = cli_json(env, "proposal", "list", "--mine", "-a", "1")
    assert {world.voted, world.open} <= {p["id"] for p in mine}
    assert cli_json(env, "proposal", "list", "--mine", "-a", "3") == []
    shown = cli_json(env, "proposal", "show", world.open)
    assert shown["id"] == world.open and shown["reports"] == []
    text = cli(env, "proposal", "show", world.open).stdout
    assert f"proposal {world.open} " in text and "evaluation: none committed" in text
    show = cli_json(env, "dataset", "show", str(world.dataset))
    assert all("/" in p["id"] for p in show["proposals"])
    assert all("/" in e["proposal"] for e in show["registry"])
    table = cli(env, "proposal", "list", "--by", "1").stdout
    assert world.open in table and str((world.dataset << 32) | 1) not in table


def test_help_describes_the_data_formats() -> None:
    propose = " ".join(runner.invoke(app, ["propose", "--help"]).stdout.split())
    assert "arrays X and y" in propose and "column named label" in propose
    create = " ".join(runner.invoke(app, ["dataset", "create", "--help"]).stdout.split())
    assert "the schema is inferred" in create and '"feature_shape":' in create
