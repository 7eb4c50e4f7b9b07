"""The market CLI end to end, on the embedded node and on anvil.

Happy paths run in-process through typer's CliRunner and parse ``--json``. Error paths go
through ``databright.cli.main`` (in-process, and as ``python -m databright.cli`` for a dead
node) to check what a user sees: one ``error:`` line on stderr, an exit code that says what
kind of failure it was, and nothing changed on the chain, in the store or in the keystore.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_account import Account
from typer.testing import CliRunner, Result

import databright.chain.keystore as keystore_module
import databright.cli.market as market_cli
from databright.chain.clients import DataMarketClient, ShareTokenClient
from databright.chain.deploy import deploy, load_deployment
from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.cli import app, main
from databright.market import Market
from databright.storage import DatasetSchema

N_ACCOUNTS = 4  # 0 initiates, 1 and 2 contribute, 3 pays and owns nothing
SCHEMA = {
    "task": "classification",
    "feature_shape": [4],
    "dtype": "float32",
    "labels": list(range(10)),
    "name": "toy",
}
ETH = 10**18

runner = CliRunner()


class LightScrypt(Account):
    """Keystores with geth's light scrypt (n=4096), as the node's dev accounts use.

    The default (n=262144) costs ~2 s per encryption and per decryption on this machine, and
    every signing command decrypts; the files are read the same either way.
    """

    @classmethod
    def encrypt(cls, private_key: Any, password: str, kdf: Any = None, iterations: Any = None):  # type: ignore[override]
        return Account.encrypt(private_key, password, kdf="scrypt", iterations=4096)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABRIGHT_PASSWORD", "DATABRIGHT_DEBUG", "DATABRIGHT_RPC", "DATABRIGHT_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(keystore_module, "Account", LightScrypt)


@dataclass
class Env:
    url: str
    kind: str
    data_dir: Path
    addresses: list[str]

    def opts(self, rpc: bool = True) -> list[str]:
        return (
            ["--rpc", self.url, "--data-dir", str(self.data_dir)]
            if rpc
            else [
                "--data-dir",
                str(self.data_dir),
            ]
        )


def make_env(node: Any, data_dir: Path, accounts: int = N_ACCOUNTS) -> Env:
    """A data dir with its own deployment and the node's first accounts in its keystore."""
    deploy(connect(node.url, node.accounts[0]), data_dir)
    store = Keystore(data_dir / "keystore")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keystore_module, "Account", LightScrypt)
        mp.delenv("DATABRIGHT_PASSWORD", raising=False)
        addresses = [str(store.new(private_key=a.key)) for a in node.accounts[:accounts]]
    return Env(node.url, node.kind, data_dir, addresses)


@pytest.fixture(scope="module")
def env(node: Any, tmp_path_factory: pytest.TempPathFactory) -> Env:
    return make_env(node, tmp_path_factory.mktemp(f"cli-{node.kind}"))


# --- running the CLI -----------------------------------------------------------------------


def cli(env: Env, *args: str, rpc: bool = True, input: str | None = None) -> Result:
    result = runner.invoke(app, [*args, *env.opts(rpc)], input=input)
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    return result


def cli_json(env: Env, *args: str, rpc: bool = True) -> Any:
    return json.loads(cli(env, *args, "--json", rpc=rpc).stdout)


@pytest.fixture
def fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str]]:
    """Run ``databright ARGS`` through ``main()``; return its exit code and its one error line."""

    def run(*args: str, usage: bool = False) -> tuple[int, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["databright", *args])
        with pytest.raises(SystemExit) as info:
            main()
        out, err = capsys.readouterr()
        code = info.value.code
        assert isinstance(code, int) and code != 0, (args, code, out, err)
        assert "Traceback" not in out + err
        if usage:
            assert code == 2 and "Usage:" in err, err
            return code, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "bound method" not in lines[0]
        return code, lines[0]

    return run


# --- files ---------------------------------------------------------------------------------


def write_npz(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, X=rng.random((n, 4), dtype=np.float32), y=rng.integers(0, 10, n))
    return path


def write_csv(path: Path, n: int, seed: int, bad_rows: tuple[int, ...] = ()) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["f0", "f1", "f2", "f3", "label"])
        for i in range(n):
            label = 11 if i + 1 in bad_rows else int(rng.integers(0, 10))
            w.writerow([*(f"{v:.6f}" for v in rng.random(4)), label])
    return path


def snapshot(env: Env) -> dict[str, Any]:
    """Everything a failed command must leave as it was (read with raw calls: it runs often)."""
    gw = connect(env.url)
    market = gw.bind(DataMarketClient, load_deployment(env.data_dir, gw.chain_id)["DataMarket"])
    chain = []
    for ds in range(1, market.dataset_count() + 1):
        dataset = tuple(market.call("dataset", ds))
        chain.append((dataset, gw.bind(ShareTokenClient, dataset[0]).total_paid()))
        proposal_count = dataset[8]
        chain += [
            tuple(market.call("proposal", (ds << 32) | n)) for n in range(1, proposal_count + 1)
        ]
    return {
        "chain": chain,
        "nonces": [gw.w3.eth.get_transaction_count(a) for a in env.addresses],  # type: ignore[arg-type]
        "blobs": sorted(p.name for p in (env.data_dir / "blobs").rglob("*") if p.is_file()),
        "keystore": sorted(p.name for p in (env.data_dir / "keystore").iterdir()),
    }


# --- the happy path ------------------------------------------------------------------------


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
        "--quorum-bps", "3000", "--evaluator", a3, "-a", "1",
    )  # fmt: skip
    assert inline["initiator"] == a1
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


def test_account_new_and_import(node: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Env(node.url, node.kind, tmp_path / "dd", [])
    made = cli(env, "account", "new", "--json", rpc=False)
    new = json.loads(made.stdout)
    assert new["index"] == 0 and not new["imported"]
    assert "development password" in made.stderr  # no terminal, no DATABRIGHT_PASSWORD

    key_file = tmp_path / "key.txt"
    key_file.write_text("0x" + node.accounts[1].key.hex() + "\n")
    imported = cli_json(env, "account", "new", "--import-key-file", str(key_file), rpc=False)
    assert imported == {
        "index": 1,
        "address": node.accounts[1].address,
        "imported": True,
        "keystore": str(tmp_path / "dd" / "keystore"),
    }

    # On a terminal without DATABRIGHT_PASSWORD it asks for a password, twice.
    monkeypatch.setattr(market_cli, "interactive", lambda: True)
    asked = cli(env, "account", "new", "--json", rpc=False, input="s3cret\ns3cret\n")
    # The prompts go to stdout before the JSON.
    address = json.loads(asked.stdout[asked.stdout.index("{") :])["address"]
    assert Keystore(tmp_path / "dd" / "keystore").load(address, "s3cret").address == address
    monkeypatch.setattr(market_cli, "interactive", lambda: False)

    listed = cli_json(env, "account", "list", "--account", "1", rpc=False)
    assert [r["address"] for r in listed] == [new["address"], node.accounts[1].address, address]
    assert [r["selected"] for r in listed] == [False, True, False]


def test_account_new_refusals(
    node: Any, tmp_path: Path, fails: Callable[..., tuple[int, str]]
) -> None:
    dd = tmp_path / "dd"
    key_file = tmp_path / "key.txt"
    key_file.write_text(node.accounts[2].key.hex())
    assert cli_json(Env(node.url, node.kind, dd, []), "account", "new", "--import-key-file", str(key_file), rpc=False)["index"] == 0  # fmt: skip
    before = sorted(p.name for p in (dd / "keystore").iterdir())

    code, msg = fails("account", "new", "--data-dir", str(dd), "--import-key-file", str(key_file))
    assert code == 1 and "already has a keystore" in msg
    code, msg = fails(
        "account", "new", "--data-dir", str(dd), "--import-key-file", str(tmp_path / "nope")
    )
    assert code == 5 and "does not exist" in msg
    secret = "0x" + "ab" * 31 + "zz"
    key_file.write_text(secret)
    code, msg = fails("account", "new", "--data-dir", str(dd), "--import-key-file", str(key_file))
    assert code == 1 and "does not hold a private key" in msg and secret not in msg
    key_file.write_text("00" * 32)  # zero is not a key
    code, msg = fails("account", "new", "--data-dir", str(dd), "--import-key-file", str(key_file))
    assert code == 1 and "does not hold a private key" in msg
    assert sorted(p.name for p in (dd / "keystore").iterdir()) == before


# --- bad input -----------------------------------------------------------------------------


@dataclass
class World:
    env: Env
    dataset: int
    voted: str  # a pending proposal account 0 will vote on
    open: str  # a pending proposal with no votes
    files: Path


@pytest.fixture(scope="module")
def world(node: Any, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp(f"cli-errors-{node.kind}")
    env = make_env(node, root / "dd")
    files = root / "files"
    files.mkdir()
    market = Market.connect(node.url, node.accounts[0], env.data_dir)
    ds = market.create_dataset(
        "errors", DatasetSchema.from_dict(SCHEMA), write_npz(files / "init.npz", 20, 11)
    )
    contributor = market.as_account(node.accounts[1])
    p = contributor.propose(ds, write_npz(files / "p.npz", 5, 12))
    q = contributor.propose(ds, write_npz(files / "q.npz", 5, 13))
    write_npz(files / "fresh.npz", 5, 14)
    write_csv(files / "bad.csv", 4, 15, bad_rows=(2,))
    write_csv(files / "many.csv", 6, 16, bad_rows=(2, 3, 4, 6))
    (files / "garbage.npz").write_bytes(b"not a zip file")
    (files / "schema.json").write_text(json.dumps(SCHEMA))
    (files / "broken.json").write_text('{"task": "classification",')
    (files / "odd.json").write_text(json.dumps({**SCHEMA, "dtype": "complex128"}))
    return World(env, int(ds), f"{int(ds)}/{p.sequence}", f"{int(ds)}/{q.sequence}", files)


# (args, exit code, words the one line must hold); {ds}, {open}, {files} are filled in.
BAD_INPUT = [
    ("missing-file", ["propose", "{ds}", "{files}/nope.npz"], 6, ["nope.npz", "does not exist"]),
    ("malformed-npz", ["propose", "{ds}", "{files}/garbage.npz"], 6, ["garbage.npz", "not a readable .npz"]),
    ("wrong-row", ["propose", "{ds}", "{files}/bad.csv"], 6, ["bad.csv row 2", "label 11"]),
    ("many-wrong-rows", ["propose", "{ds}", "{files}/many.csv"], 6, ["many.csv row 2: label 11", "; row 3: label 11", "; row 4: label 11", "(and 1 more)"]),
    ("unsupported", ["propose", "{ds}", "{files}/schema.json"], 6, ["schema.json", "unsupported format"]),
    ("propose-unknown-dataset", ["propose", "99", "{files}/fresh.npz"], 5, ["dataset 99 does not exist"]),
    ("show-unknown-dataset", ["dataset", "show", "99"], 5, ["dataset 99 does not exist"]),
    ("pay-unknown-dataset", ["pay", "99", "1"], 5, ["dataset 99 does not exist"]),
    ("claim-unknown-dataset", ["claim", "0"], 5, ["dataset 0 does not exist"]),
    ("vote-unknown-proposal", ["vote", "99", "--yes"], 5, ["proposal 99 does not exist"]),
    ("finalize-unknown-proposal", ["finalize", "{ds}/99"], 5, ["proposal", "does not exist"]),
    ("proposal-too-big", ["vote", str(2**256), "--no"], 5, ["does not exist"]),
    ("proposal-garbage", ["vote", "abc", "--yes"], 1, ["'abc' is not a proposal"]),
    ("schema-missing", ["dataset", "create", "x", "--schema", "{files}/none.json", "--initial", "{files}/fresh.npz"], 5, ["none.json", "does not exist"]),
    ("schema-malformed", ["dataset", "create", "x", "--schema", "{files}/broken.json", "--initial", "{files}/fresh.npz"], 1, ["broken.json", "not valid JSON"]),
    ("schema-invalid", ["dataset", "create", "x", "--schema", "{files}/odd.json", "--initial", "{files}/fresh.npz"], 1, ["odd.json", "complex128"]),
    ("initial-wrong-row", ["dataset", "create", "x", "--schema", "{files}/schema.json", "--initial", "{files}/bad.csv"], 6, ["bad.csv row 2"]),
    ("bad-evaluator", ["dataset", "create", "x", "--schema", "{files}/schema.json", "--initial", "{files}/fresh.npz", "--evaluator", "0x1234"], 1, ["'0x1234' is not an Ethereum address"]),
    ("long-name", ["dataset", "create", "x" * 26, "--schema", "{files}/schema.json", "--initial", "{files}/fresh.npz"], 1, ["1 to 25 bytes"]),
    ("bad-account", ["propose", "{ds}", "{files}/fresh.npz", "--account", "0xnothex"], 1, ["'0xnothex' is not an account index or an Ethereum address"]),
    ("unknown-account", ["claim", "{ds}", "--account", "9"], 5, ["no account #9"]),
    ("foreign-account", ["claim", "{ds}", "--account", "0x" + "11" * 20], 5, ["no keystore for account"]),
    ("balance-bad-address", ["account", "balance", "0x" + "zz" * 20], 1, ["is not an Ethereum address"]),
    ("no-voting-weight", ["vote", "{open}", "--yes", "-a", "3"], 4, ["no voting weight"]),
    ("finalize-while-open", ["finalize", "{open}"], 4, ["voting open"]),
    ("pay-zero", ["pay", "{ds}", "0"], 1, ["positive amount of ETH", "'0'"]),
    ("pay-garbage", ["pay", "{ds}", "abc"], 1, ["'abc' is not an amount of ETH"]),
    ("pay-below-wei", ["pay", "{ds}", "1e-19"], 1, ["whole number of wei"]),
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
    fill = {"ds": str(world.dataset), "open": world.open, "files": str(world.files)}
    argv = [a.format(**fill) for a in args]
    before = snapshot(world.env)
    got, message = fails(*argv, *world.env.opts())
    assert got == code, message
    for word in words:
        assert word in message, message
    assert snapshot(world.env) == before


@pytest.mark.parametrize(
    "args",
    [
        ["dataset", "show", "abc"],
        ["vote", "1/1"],  # neither --yes nor --no
        ["dataset", "create", "x", "--initial", "f.npz"],  # no schema
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--task", "regression"],
        ["dataset", "create", "x", "--initial", "f.npz", "--task", "classification", "--feature-shape", "8y"],
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--quorum-bps", "0"],
        ["dataset", "create", "x", "--initial", "f.npz", "--schema", "s.json", "--voting-period", "1w"],
        ["pay", "1"],
        ["frobnicate"],
    ],
    ids=["int", "no-choice", "no-schema", "two-schemas", "bad-shape", "quorum", "period", "missing-arg", "command"],
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


def test_vote_twice_shows_the_revert_reason(
    world: World, fails: Callable[..., tuple[int, str]]
) -> None:
    first = cli_json(world.env, "vote", world.voted, "--yes")
    assert first["weight"] == 20 * ETH
    before = snapshot(world.env)
    code, message = fails("vote", world.voted, "--no", *world.env.opts())
    assert code == 4 and "already voted" in message
    assert snapshot(world.env) == before


def test_signing_password_and_funds(
    node: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fails: Callable[..., tuple[int, str]],
) -> None:
    env = make_env(node, tmp_path / "dd", accounts=0)
    address = Keystore(env.data_dir / "keystore").new(
        password="pw", private_key=node.accounts[5].key
    )
    env.addresses = [address]
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    args = ["dataset", "create", "pw", "--schema", str(schema), "--initial"]
    args.append(str(write_npz(tmp_path / "init.npz", 4, 21)))
    # No terminal: the default password fails and that is the error.
    before = snapshot(env)
    code, message = fails(*args, *env.opts())
    assert code == 1 and f"cannot decrypt the keystore of {address}" in message
    assert snapshot(env) == before
    # On a terminal it asks.
    monkeypatch.setattr(market_cli, "interactive", lambda: True)
    made = runner.invoke(app, [*args, *env.opts(), "--json"], input="pw\n")
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout[made.stdout.index("{") :])
    assert created["initiator"] == address

    # An account without ETH is refused before its data is stored.
    monkeypatch.setattr(market_cli, "interactive", lambda: False)
    Keystore(env.data_dir / "keystore").new()
    before = snapshot(env)
    proposal = write_npz(tmp_path / "p.npz", 3, 22)
    code, message = fails("propose", str(created["id"]), str(proposal), "-a", "1", *env.opts())
    assert code == 3 and "holds no ETH" in message
    assert snapshot(env) == before


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
