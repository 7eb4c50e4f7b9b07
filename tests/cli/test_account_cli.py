"""``databright account new|list|balance`` (``databright.cli.account``), and how a signing
command picks, decrypts and checks its account (``databright.cli._common``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import (
    SCHEMA,
    Env,
    World,
    check_bad_input,
    cli,
    cli_json,
    make_env,
    runner,
    snapshot,
    write_npz,
)

from databright.chain.keystore import Keystore
from databright.cli import _common, app

ETH = 10**18


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
    monkeypatch.setattr(_common, "interactive", lambda: True)
    asked = cli(env, "account", "new", "--json", rpc=False, input="s3cret\ns3cret\n")
    # The prompts go to stdout before the JSON.
    address = json.loads(asked.stdout[asked.stdout.index("{") :])["address"]
    assert Keystore(tmp_path / "dd" / "keystore").load(address, "s3cret").address == address
    monkeypatch.setattr(_common, "interactive", lambda: False)

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


# (args, exit code, words the one line must hold); {ds}, {open}, {files} are filled in.
BAD_INPUT = [
    ("bad-account", ["propose", "{ds}", "{files}/fresh.npz", "--account", "0xnothex"], 1, ["'0xnothex' is not an account index or an Ethereum address"]),
    ("unknown-account", ["claim", "{ds}", "--account", "9"], 5, ["no account #9"]),
    ("foreign-account", ["claim", "{ds}", "--account", "0x" + "11" * 20], 5, ["no keystore for account"]),
    ("balance-bad-address", ["account", "balance", "0x" + "zz" * 20], 1, ["is not an Ethereum address"]),
    ("fund-unknown-index", ["account", "fund", "9", "1"], 5, ["no account #9"]),
    ("fund-more-than-held", ["account", "fund", "1", "100000000", "-a", "3"], 3, ["holds less", "fund it first"]),
    ("activity-unknown-index", ["account", "activity", "9"], 5, ["no account #9"]),
]  # fmt: skip
USAGE = [
    ["account", "fund", "1", "0"],
    ["account", "fund", "1", "abc"],
    ["account", "fund", "bob", "1"],
    ["account", "activity", "0x1234"],
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
    monkeypatch.setattr(_common, "interactive", lambda: True)
    made = runner.invoke(app, [*args, *env.opts(), "--json"], input="pw\n")
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout[made.stdout.index("{") :])
    assert created["initiator"] == address

    # An account without ETH is refused before its data is stored.
    monkeypatch.setattr(_common, "interactive", lambda: False)
    Keystore(env.data_dir / "keystore").new()
    before = snapshot(env)
    proposal = write_npz(tmp_path / "p.npz", 3, 22)
    code, message = fails("propose", str(created["id"]), str(proposal), "-a", "1", *env.opts())
    assert code == 3 and "holds no ETH" in message
    assert snapshot(env) == before


@pytest.mark.parametrize("args", USAGE, ids=["zero", "garbage", "name", "short-address"])
def test_usage_errors_exit_2(args: list[str], fails: Callable[..., tuple[int, str]]) -> None:
    fails(*args, usage=True)


def test_fund_by_index_and_from_the_faucet(node: Any, env: Env, tmp_path: Path) -> None:
    fresh = "0x" + "ab" * 20
    sent = cli_json(env, "account", "fund", fresh, "0.25", "-a", "0")
    assert sent["to"].lower() == fresh and sent["amount_wei"] == ETH // 4
    assert sent["balance_wei"] == ETH // 4
    by_index = cli_json(env, "account", "fund", "2", "0.5", "-a", "0")
    assert by_index["to"] == env.addresses[2]
    # The faucet pays from the node's development accounts (anvil: its first default account).
    dev = ["--node-dir", str(node.data_dir)] if node.kind == "embedded" else []
    drip = cli_json(env, "account", "fund", fresh, "1", "--faucet", *dev)
    assert drip["faucet"] is True and drip["balance_wei"] == ETH + ETH // 4
    assert drip["from"] in [a.address for a in node.accounts]


def test_activity_lists_proposals_and_votes_across_datasets(env: Env, tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    refs = []
    for k in range(2):
        ds = cli_json(env, "dataset", "create", f"activity {k}", "--schema", str(schema),
                      "--initial", str(write_npz(tmp_path / f"i{k}.npz", 6, 90 + k)))  # fmt: skip
        p = cli_json(env, "propose", str(ds["id"]), str(write_npz(tmp_path / f"p{k}.npz", 3, 95 + k)),
                     "-a", "2")  # fmt: skip
        cli(env, "vote", p["ref"], "--yes" if k else "--no", "-a", "0")
        refs.append(p["ref"])
    mine = cli_json(env, "account", "activity", "2")
    assert [p["proposal"] for p in mine["proposals"]][-2:] == refs
    assert all(isinstance(p["proposal"], str) for p in mine["proposals"])
    voter = cli_json(env, "account", "activity", "-a", "0")
    assert [(v["proposal"], v["support"]) for v in voter["votes"]][-2:] == [
        (refs[0], False), (refs[1], True)
    ]  # fmt: skip
    text = cli(env, "account", "activity", "2").stdout
    assert refs[0] in text and refs[1] in text
