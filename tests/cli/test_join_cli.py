"""``databright join`` and ``databright deployment`` (``databright.cli.chain``): a participant
with its own data dir and keystore joins a market another data dir deployed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import SCHEMA, Env, LightScrypt, cli, cli_json, write_npz

import databright.chain.keystore as keystore_module
from databright.chain.keystore import Keystore
from databright.market import Market
from databright.storage import DatasetSchema


def _newcomer(env: Env, root: Path) -> Env:
    """A data dir with a keystore of its own (a fresh key) and no market record."""
    data_dir = root / "newcomer"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keystore_module, "Account", LightScrypt)
        address = str(Keystore(data_dir / "keystore").new())
    return Env(env.url, env.kind, data_dir, [address])


def test_a_newcomer_joins_from_a_shared_file_or_an_address_and_lists_datasets(
    env: Env, tmp_path: Path, fails: Callable[..., tuple[int, str]]
) -> None:
    market = Market.connect(env.url, None, env.data_dir)
    creator = market.as_account(Keystore(env.data_dir / "keystore").load(0))
    ds = creator.create_dataset(
        "joinable", DatasetSchema.from_dict(SCHEMA), write_npz(tmp_path / "init.npz", 5, 1)
    )
    b = _newcomer(env, tmp_path)

    # Before joining, the advice is to join, not to deploy a second market.
    code, line = fails("dataset", "list", *b.opts())
    assert code == 3 and "databright join --market" in line, line

    shared = tmp_path / "market.json"
    cli(env, "deployment", "export", str(shared))
    shown = cli_json(env, "deployment", "show")
    hint = f"databright join --market {shown['addresses']['DataMarket']}"
    assert hint in cli(env, "deployment", "show").stdout
    assert hint in cli(env, "deploy", "-a", "0").stdout  # deploys nothing: all is there
    assert json.loads(shared.read_text()) == shown
    joined = cli_json(b, "join", str(shared))
    assert joined["changed"] and joined["addresses"] == shown["addresses"]
    assert cli_json(b, "join", str(shared))["changed"] is False
    listed = cli_json(b, "dataset", "list")
    assert {"id": int(ds), "name": "joinable"}.items() <= {
        k: v for d in listed if d["id"] == int(ds) for k, v in d.items()
    }.items()
    # The newcomer's own account is the one it uses: it holds nothing in this dataset.
    assert cli_json(b, "account", "list")[0]["address"] == b.addresses[0]

    # By address, into a third data dir, in words this time.
    c = Env(env.url, env.kind, tmp_path / "third", [])
    text = cli(c, "join", "--market", shown["addresses"]["DataMarket"]).stdout
    assert "joined the market at " + shown["addresses"]["DataMarket"] in text
    assert int(ds) in {d["id"] for d in cli_json(c, "dataset", "list")}


def test_join_refusals_are_one_line(
    env: Env, tmp_path: Path, fails: Callable[..., tuple[int, str]]
) -> None:
    dd = ["--rpc", env.url, "--data-dir", str(tmp_path / "dd")]
    code, line = fails("join", str(tmp_path / "missing.json"), *dd)
    assert code == 5 and "does not exist" in line
    (tmp_path / "page.html").write_text("<html>hi</html>")
    code, line = fails("join", str(tmp_path / "page.html"), *dd)
    assert code == 1 and "is not a DataBright deployment record" in line
    code, line = fails("join", "--market", env.addresses[3], *dd)
    assert code == 3 and "no contract at" in line
    fails("join", *dd, usage=True)  # neither a file nor an address
    code, line = fails("deployment", "show", *dd)
    assert code == 3 and "databright join" in line
