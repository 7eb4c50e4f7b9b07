"""The ``databright`` app end to end (``databright.cli``): a whole market session through its
commands, unknown commands, and a dead node's exit status as a user meets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ETH, SCHEMA, Env, cli, cli_json, make_env, write_csv, write_npz

from databright.chain.gateway import connect
from databright.storage import DatasetSchema


def test_market_flow(env: Env, tmp_path: Path) -> None:
    a0, a1, a2, a3 = env.addresses

    accounts = cli_json(env, "account", "list")
    assert [r["address"] for r in accounts] == env.addresses
    assert [r["selected"] for r in accounts] == [True, False, False, False]
    balance = cli_json(env, "account", "balance", "1")
    assert balance["address"] == a1
    assert balance["balance_wei"] == connect(env.url).balance(a1)
    assert cli_json(env, "account", "balance", a2.lower())["address"] == a2

    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMA))
    initial = write_npz(tmp_path / "initial.npz", 20, seed=1)
    ds = cli_json(
        env, "dataset", "create", "toy", "--schema", str(schema_file),
        "--initial", str(initial), "--voting-period", "2h",
    )  # fmt: skip
    ds_id = ds["id"]
    assert ds["initiator"] == a0
    assert ds["total_shares"] == 20 * ETH
    assert ds["governance"]["voting_period_s"] == 7200
    assert ds["schema_cid"] == DatasetSchema.from_dict(SCHEMA).cid()

    inline = cli_json(
        env, "dataset", "create", "inline", "--task", "classification",
        "--feature-shape", "2x2", "--labels", "0-9", "--initial", str(initial),
        "--quorum-bps", "3000", "--evaluator", a3, "-a", "1", "--min-voting-period", "10m",
    )  # fmt: skip
    assert inline["initiator"] == a1
    assert inline["governance"]["min_voting_period_s"] == 600
    assert ds["governance"]["min_voting_period_s"] == 0
    assert inline["governance"]["quorum_bps"] == 3000
    assert inline["schema_cid"] == (
        DatasetSchema("classification", (2, 2), "float32", tuple(range(10)), name="inline").cid()
    )
    listed = cli_json(env, "dataset", "list")
    assert {ds_id, inline["id"]} <= {d["id"] for d in listed}

    p1 = cli_json(env, "propose", str(ds_id), str(write_npz(tmp_path / "p1.npz", 10, 2)), "-a", "1")
    assert (p1["status"], p1["examples"], p1["contributor"]) == ("pending", 10, a1)
    assert (p1["shares"], p1["prospective_shares"]) == (0, 10 * ETH)
    assert p1["ref"] == f"{ds_id}/1"
    p2 = cli_json(env, "propose", str(ds_id), str(write_csv(tmp_path / "p2.csv", 5, 3)), "-a", "2")
    assert (p2["status"], p2["examples"], p2["contributor"]) == ("pending", 5, a2)

    # Account 0 holds every share at both snapshots, so one vote settles each outcome.
    vote = cli_json(env, "vote", p1["ref"], "--yes")
    assert (vote["weight"], vote["support"], vote["voter"]) == (20 * ETH, True, a0)
    assert vote["proposal"]["outcome"] == "accepted"
    assert vote["proposal"]["status"] == "pending"
    vote = cli_json(env, "vote", str(p2["id"]), "--no")
    assert vote["proposal"]["outcome"] == "rejected"

    done = cli_json(env, "finalize", p1["ref"], "-a", "3")  # anyone may finalize
    assert (done["status"], done["shares"]) == ("accepted", 10 * ETH)
    done = cli_json(env, "finalize", p2["ref"])
    assert (done["status"], done["shares"], done["prospective_shares"]) == ("rejected", 0, 5 * ETH)

    shown = cli_json(env, "dataset", "show", str(ds_id))
    assert [p["status"] for p in shown["proposals"]] == ["accepted", "rejected"]
    assert [(p["yes_votes"], p["no_votes"]) for p in shown["proposals"]] == [
        (20 * ETH, 0),
        (0, 20 * ETH),
    ]
    assert [(e["examples"], e["contributor"]) for e in shown["registry"]] == [(20, a0), (10, a1)]
    assert shown["dataset"]["total_shares"] == 30 * ETH
    assert shown["schema"]["feature_shape"] == [4]
    assert shown["account"]["address"] == a0 and shown["account"]["shares"] == 20 * ETH

    paid = cli_json(env, "pay", str(ds_id), "0.3", "-a", "3")
    assert (paid["amount_wei"], paid["amount_eth"], paid["payer"]) == (3 * 10**17, "0.3", a3)
    claimed0 = cli_json(env, "claim", str(ds_id))
    claimed1 = cli_json(env, "claim", str(ds_id), "-a", "1")
    assert claimed0["account"] == a0 and claimed1["account"] == a1
    assert 2 * 10**17 - 10 <= claimed0["claimed_wei"] <= 2 * 10**17
    assert 10**17 - 10 <= claimed1["claimed_wei"] <= 10**17

    holdings = cli_json(env, "account", "balance", "-a", "1")["holdings"]
    mine = {h["dataset_id"]: h for h in holdings}
    assert mine[ds_id]["shares"] == 10 * ETH and mine[ds_id]["claimable_wei"] == 0
    assert mine[inline["id"]]["shares"] == 20 * ETH

    # Names, evaluators and shareholders are read from the chain's logs (from block 0).
    assert {d["id"]: d["name"] for d in listed}[ds_id] == "toy"
    assert inline["governance"]["evaluators"] == [a3]
    assert {h["address"]: h["shares"] for h in shown["shareholders"]} == {
        a0: 20 * ETH,
        a1: 10 * ETH,
    }
    assert mine[ds_id]["name"] == "toy"

    # The human output renders (tables, ETH and shares) without a traceback.
    text = cli(env, "dataset", "show", str(ds_id)).stdout
    assert f"dataset {ds_id}" in text and "registry" in text and "rejected" in text
    assert "20.0000" in text
    assert "datasets on chain" in cli(env, "dataset", "list").stdout
    assert a3 in cli(env, "account", "list", "--balances").stdout
    assert "ETH" in cli(env, "account", "balance").stdout
    text = cli(env, "propose", str(ds_id), str(write_npz(tmp_path / "p3.npz", 3, 4))).stdout
    assert f"proposal {ds_id}/3" in text
    assert "voted yes with 20.0000 shares" in cli(env, "vote", f"{ds_id}/3", "--yes").stdout
    assert "accepted" in cli(env, "finalize", f"{ds_id}/3").stdout
    assert "paid 0.25 ETH" in cli(env, "pay", str(ds_id), "0.25", "-a", "3").stdout
    assert "claimed 0.1" in cli(env, "claim", str(ds_id)).stdout


@pytest.mark.parametrize("args", [["frobnicate"]], ids=["command"])
def test_usage_errors_exit_2(args: list[str], fails: Callable[..., tuple[int, str]]) -> None:
    fails(*args, usage=True)


# Once stopped, no node of any kind answers: one kind shows it (anvil starts fastest; a node
# dying mid-session is tests/chain/test_gateway.py's, on both kinds).
@pytest.mark.parametrize("fresh_node", ["anvil"], indirect=True)
def test_dead_node_is_unreachable(
    fresh_node: Any, tmp_path: Path, fails: Callable[..., tuple[int, str]]
) -> None:
    env = make_env(fresh_node, tmp_path / "dd", accounts=1)
    write_npz(tmp_path / "p.npz", 3, 5)
    fresh_node.stop()
    for args in (
        ["dataset", "list"],
        ["propose", "1", str(tmp_path / "p.npz")],
        ["vote", "1/1", "--yes"],
        ["pay", "1", "0.5"],
        ["account", "balance"],
    ):
        code, message = fails(*args, *env.opts())
        assert code == 3 and f"no Ethereum node answers at {env.url}" in message, message
    # And as a user runs it: a separate process, one line on stderr, exit status 3.
    done = subprocess.run(
        [sys.executable, "-m", "databright.cli", "claim", "1", *env.opts()],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Ethereum node answers at")


def test_a_malformed_environment_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, fails: Callable[..., tuple[int, str]]
) -> None:
    """Also when the malformed variable is the one that would ask for a traceback."""
    monkeypatch.setenv("DATABRIGHT_DEBUG", "maybe")
    code, line = fails("account", "list")
    assert code == 1 and "environment variable DATABRIGHT_DEBUG is not valid" in line
