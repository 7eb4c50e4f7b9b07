"""``databright dataset create|list|show`` (``databright.cli.dataset``)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import SCHEMA, Env, World, check_bad_input, cli, cli_json, write_npz

from databright.storage import DatasetSchema, read_proposal

# (args, exit code, words the one line must hold); {ds}, {open}, {files} are filled in.
BAD_INPUT = [
    ("show-unknown-dataset", ["dataset", "show", "99"], 5, ["dataset 99 does not exist"]),
    ("schema-missing", ["dataset", "create", "x", "--schema", "{files}/none.json", "--initial", "{files}/fresh.npz"], 5, ["none.json", "does not exist"]),
    ("schema-malformed", ["dataset", "create", "x", "--schema", "{files}/broken.json", "--initial", "{files}/fresh.npz"], 1, ["broken.json", "not valid JSON"]),
    ("schema-invalid", ["dataset", "create", "x", "--schema", "{files}/odd.json", "--initial", "{files}/fresh.npz"], 1, ["odd.json", "complex128"]),
    ("initial-wrong-row", ["dataset", "create", "x", "--schema", "{files}/schema.json", "--initial", "{files}/bad.csv"], 6, ["bad.csv row 2"]),
    ("unknown-evaluator-index", ["dataset", "create", "x", "--schema", "{files}/schema.json", "--initial", "{files}/fresh.npz", "--evaluator", "9"], 5, ["no account #9"]),
    ("no-schema-no-file", ["dataset", "create", "x", "--initial", "{files}/none.npz"], 5, ["none.npz", "does not exist"]),
    ("no-schema-unreadable", ["dataset", "create", "x", "--initial", "{files}/garbage.npz"], 1, ["cannot infer a schema", "garbage.npz", "--schema"]),
    ("download-unknown-dataset", ["dataset", "download", "99", "--out", "{files}/o.npz"], 5, ["dataset 99 does not exist"]),
    ("download-no-directory", ["dataset", "download", "{ds}", "--out", "{files}/no/such/o.npz"], 5, ["does not exist"]),
    ("download-to-a-device", ["dataset", "download", "{ds}", "--out", "/dev/null"], 1, ["/dev/null is not a regular file"]),
    ("download-bad-source", ["dataset", "download", "{ds}", "--out", "{files}/o.npz", "--source", "notaurl"], 1, ["notaurl"]),
    ("grant-unknown-dataset", ["dataset", "grant-evaluator", "99", "1"], 5, ["dataset 99 does not exist"]),
    ("grant-not-initiator", ["dataset", "grant-evaluator", "{ds}", "2", "-a", "1"], 1, ["only the initiator", "initiator's account"]),
    ("transfer-more-than-held", ["dataset", "transfer-shares", "{ds}", "2", "1000", "-a", "0"], 1, ["holds", "fewer than"]),
    ("transfer-unknown-index", ["dataset", "transfer-shares", "{ds}", "7", "1"], 5, ["no account #7"]),
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
        ["dataset", "create", "x", "--initial", "f.npz", "--evaluator", "0x1234"],
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--task", "regression"],
        ["dataset", "create", "x", "--initial", "f.npz", "--task", "classification", "--feature-shape", "8y"],
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--quorum-bps", "0"],
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--voting-period", "1w"],
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--min-voting-period", "soon"],
        ["dataset", "download", "1", "--out", "o.xlsx"],
        ["dataset", "download", "1", "--out", "/tmp"],
        ["dataset", "grant-evaluator", "1", "bob"],
        ["dataset", "transfer-shares", "1", "2", "-1"],
        ["dataset", "transfer-shares", "1", "2", "1e-19"],
    ],
    ids=["int", "bad-evaluator", "two-schemas", "bad-shape", "quorum", "period", "min-period", "format", "out-directory", "evaluator-name",
         "negative-shares", "below-a-unit"],
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
    assert "not in this store nor at any blob source" in text


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


def _accepted_dataset(env: Env, tmp_path: Path, name: str, initial: Path) -> tuple[int, str]:
    """A dataset created with its schema inferred, and one proposal accepted into it."""
    ds = cli_json(env, "dataset", "create", name, "--initial", str(initial), "--labels", "0-9")
    p = cli_json(
        env, "propose", str(ds["id"]), str(write_npz(tmp_path / "p.npz", 5, 52)), "-a", "1"
    )
    cli(env, "vote", p["ref"], "--yes", "-a", "0")
    assert cli_json(env, "finalize", p["ref"])["status"] == "accepted"
    return ds["id"], p["ref"]


def test_schema_inferred_from_the_initial_file(env: Env, tmp_path: Path) -> None:
    npz = tmp_path / "init.npz"
    rng = np.random.default_rng(3)
    np.savez(npz, X=rng.random((12, 2, 3), dtype=np.float32), y=np.arange(12) % 3)
    made = cli_json(env, "dataset", "create", "inferred", "--initial", str(npz))
    assert made["schema_inferred"] is True
    assert made["schema"]["feature_shape"] == [2, 3] and made["schema"]["labels"] == [0, 1, 2]
    text = " ".join(
        cli(
            env, "dataset", "create", "wider", "--initial", str(npz), "--labels", "0-4"
        ).stdout.split()
    )
    assert "schema inferred from" in text and "(2, 3) float32" in text
    csv_file = tmp_path / "init.csv"
    csv_file.write_text("a,b,label\n0.5,1.5,cat\n2.5,0.25,dog\n")
    made = cli_json(env, "dataset", "create", "pets", "--initial", str(csv_file))
    assert made["schema"]["feature_shape"] == [2] and made["schema"]["labels"] == ["cat", "dog"]
    np.savez(npz, X=rng.random((6, 4), dtype=np.float32), y=rng.random(6))
    made = cli_json(env, "dataset", "create", "prices", "--initial", str(npz))
    assert made["schema"]["task"] == "regression" and made["schema"]["labels"] is None


@pytest.mark.parametrize("fmt", ["npz", "csv", "parquet"])
def test_download_writes_the_verified_dataset(
    env: Env, tmp_path: Path, fmt: str, fails: Callable[..., tuple[int, str]]
) -> None:
    initial = write_npz(tmp_path / "init.npz", 10, seed=51)
    ds, _ = _accepted_dataset(env, tmp_path, f"download {fmt}", initial)
    out = tmp_path / f"curated.{fmt}"
    got = cli_json(env, "dataset", "download", str(ds), "--out", str(out))
    assert got == {"dataset_id": ds, "file": str(out), "format": fmt, "examples": 15,
                   "registry_entries": 2, "verified": True}  # fmt: skip
    schema = DatasetSchema.from_dict(SCHEMA)
    back = read_proposal(out, schema, known_hashes=set())
    first = read_proposal(initial, schema, known_hashes=set())
    second = read_proposal(tmp_path / "p.npz", schema, known_hashes=set())
    assert np.array_equal(back.hashes, np.concatenate([first.hashes, second.hashes]))
    # Another data dir, without the blobs and without a source: the entry's blob is missing.
    other = Env(env.url, env.kind, tmp_path / "other", [])
    shutil.copytree(env.data_dir / "deployments", other.data_dir / "deployments")
    code, message = fails("dataset", "download", str(ds), "--out",
                              str(tmp_path / "x.npz"), *other.opts())  # fmt: skip
    assert code == 5 and "is not in" in message and "DATABRIGHT_BLOB_SOURCES" in message
    assert not (tmp_path / "x.npz").exists()


def test_evaluators_granted_and_revoked_by_index(env: Env, tmp_path: Path) -> None:
    initial = write_npz(tmp_path / "init.npz", 10, seed=61)
    ds = cli_json(env, "dataset", "create", "evaluated", "--initial", str(initial),
                  "--commit-period", "10m", "--reveal-period", "10m", "--evaluator", "1")  # fmt: skip
    a1, a2 = env.addresses[1], env.addresses[2]
    assert ds["governance"]["evaluators"] == [a1]
    shown = " ".join(cli(env, "dataset", "show", str(ds["id"])).stdout.split())
    assert f"evaluators {a1}" in shown
    granted = cli_json(env, "dataset", "grant-evaluator", str(ds["id"]), "2")
    assert granted["evaluators"] == [a1, a2]
    revoked = cli_json(env, "dataset", "revoke-evaluator", str(ds["id"]), a1)
    assert revoked["evaluators"] == [a2]
    assert cli_json(env, "dataset", "show", str(ds["id"]))["dataset"]["governance"][
        "evaluators"
    ] == [a2]
    bare = cli_json(env, "dataset", "create", "bare", "--initial",
                    str(write_npz(tmp_path / "b.npz", 4, 62)))  # fmt: skip
    shown = " ".join(cli(env, "dataset", "show", str(bare["id"])).stdout.split())
    assert f"`databright dataset grant-evaluator {bare['id']} ACCOUNT`" in shown


def test_transfer_shares_to_an_index(env: Env, tmp_path: Path) -> None:
    initial = write_npz(tmp_path / "init.npz", 10, seed=71)
    ds = cli_json(env, "dataset", "create", "moving", "--initial", str(initial), "-a", "0")
    moved = cli_json(env, "dataset", "transfer-shares", str(ds["id"]), "3", "2.5")
    assert moved["to"] == env.addresses[3] and moved["shares"] == 25 * 10**17
    assert moved["remaining"] == 75 * 10**17
    mine = cli_json(env, "account", "balance", "3")["holdings"]
    assert [h["shares_whole"] for h in mine if h["dataset_id"] == ds["id"]] == ["2.5"]
    seen = cli_json(env, "dataset", "show", str(ds["id"]), "-a", "3")["account"]
    assert seen["shares_whole"] == "2.5"
    foreign = "0x" + "12" * 20  # any address may be looked at, not only the keystore's
    assert cli_json(env, "dataset", "show", str(ds["id"]), "-a", foreign)["account"]["shares"] == 0


def test_names_from_the_chain_cannot_drive_the_terminal(env: Env, tmp_path: Path) -> None:
    hostile = "\x1b[2J\x1b]0;pwn\x07ok\nfake\u202e"
    initial = write_npz(tmp_path / "init.npz", 4, seed=81)
    ds = cli_json(env, "dataset", "create", hostile, "--initial", str(initial), "-a", "1")
    for args in (
        ["dataset", "list"],
        ["dataset", "show", str(ds["id"])],
        ["account", "balance", "1"],
    ):
        out = cli(env, *args).stdout
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, args
        assert "\nfake" not in out and "\\x1b" in out, args
