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
