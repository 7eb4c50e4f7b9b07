"""``databright dataset create|list|show`` (``databright.cli.dataset``)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import SCHEMA, Env, World, check_bad_input, cli, cli_json, write_npz

from databright.storage import DatasetSchema

# (args, exit code, words the one line must hold); {ds}, {open}, {files} are filled in.
BAD_INPUT = [
    ("show-unknown-dataset", ["dataset", "show", "99"], 5, ["dataset 99 does not exist"]),
    ("schema-missing", ["dataset", "create", "x", "--schema", "{files}/none.json", "--initial", "{files}/fresh.npz"], 5, ["none.json", "does not exist"]),
    ("schema-malformed", ["dataset", "create", "x", "--schema", "{files}/broken.json", "--initial", "{files}/fresh.npz"], 1, ["broken.json", "not valid JSON"]),
    ("schema-invalid", ["dataset", "create", "x", "--schema", "{files}/odd.json", "--initial", "{files}/fresh.npz"], 1, ["odd.json", "complex128"]),
    ("initial-wrong-row", ["dataset", "create", "x", "--schema", "{files}/schema.json", "--initial", "{files}/bad.csv"], 6, ["bad.csv row 2"]),
    ("bad-evaluator", ["dataset", "create", "x", "--schema", "{files}/schema.json", "--initial", "{files}/fresh.npz", "--evaluator", "0x1234"], 1, ["'0x1234' is not an Ethereum address"]),
    ("min-period-too-long", ["dataset", "create", "x", "--schema", "{files}/schema.json", "--initial", "{files}/fresh.npz", "--voting-period", "1h", "--min-voting-period", "2h"], 1, ["minimum voting period", "between 0 and the voting period"]),
    ("long-name", ["dataset", "create", "x" * 26, "--schema", "{files}/schema.json", "--initial", "{files}/fresh.npz"], 1, ["1 to 25 bytes"]),
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
    "args",
    [
        ["dataset", "show", "abc"],
        ["dataset", "create", "x", "--initial", "f.npz"],  # no schema
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--task", "regression"],
        ["dataset", "create", "x", "--initial", "f.npz", "--task", "classification", "--feature-shape", "8y"],
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--quorum-bps", "0"],
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--voting-period", "1w"],
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--min-voting-period", "soon"],
    ],
    ids=["int", "no-schema", "two-schemas", "bad-shape", "quorum", "period", "min-period"],
)  # fmt: skip
def test_usage_errors_exit_2(args: list[str], fails: Callable[..., tuple[int, str]]) -> None:
    fails(*args, usage=True)


def test_show_from_a_data_dir_without_the_schema(world: World, tmp_path: Path) -> None:
    # Another machine: the same deployment record, none of the blobs.
    other = Env(world.env.url, world.env.kind, tmp_path / "other", [])
    shutil.copytree(world.env.data_dir / "deployments", other.data_dir / "deployments")
    shown = cli_json(other, "dataset", "show", str(world.dataset))
    assert shown["schema"] is None and shown["account"] is None
    assert shown["dataset"]["schema_cid"] == DatasetSchema.from_dict(SCHEMA).cid()
    text = " ".join(cli(other, "dataset", "show", str(world.dataset)).stdout.split())
    assert "not in this data dir's store" in text


def test_hand_over_deposit_and_reclaim(env: Env, tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    initial = write_npz(tmp_path / "init.npz", 10, seed=41)
    ds = cli_json(
        env, "dataset", "create", "deposits", "--schema", str(schema), "--initial", str(initial),
        "--deposit", "0.01", "-a", "0",
    )  # fmt: skip
    assert ds["governance"]["deposit_wei"] == 10**16
    shown = " ".join(cli(env, "dataset", "show", str(ds["id"])).stdout.split())
    assert "deposit: 0.01 ETH per proposal" in shown
    a0, a1 = env.addresses[0], env.addresses[1]
    cli(env, "dataset", "hand-over", str(ds["id"]), a1, "-a", "0")
    taken = cli_json(env, "dataset", "accept", str(ds["id"]), "-a", "1")
    assert taken["initiator"] == a1 != a0
    p = cli_json(
        env, "propose", str(ds["id"]), str(write_npz(tmp_path / "p.npz", 5, 42)), "-a", "2"
    )
    cli(env, "vote", p["ref"], "--yes", "-a", "0")  # the shares stayed with a0
    assert cli_json(env, "finalize", p["ref"], "-a", "0")["status"] == "accepted"
    back = cli_json(env, "reclaim-deposit", p["ref"], "-a", "2")
    assert back["amount_wei"] == 10**16
