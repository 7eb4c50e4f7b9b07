"""What the CLI tests share besides fixtures: data dirs, running the CLI, files, chain snapshots.

Happy paths run in-process through typer's CliRunner and parse ``--json``. Error paths go
through ``databright.cli.main`` (the ``fails`` fixture) to check what a user sees: one
``error:`` line on stderr, an exit code that says what kind of failure it was, and nothing
changed on the chain, in the store or in the keystore (``check_bad_input``).
"""

from __future__ import annotations

import csv
import json
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
from databright.chain.clients import DataMarketClient, ShareTokenClient
from databright.chain.deploy import deploy, load_deployment
from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.cli import app, main

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


@dataclass
class World:
    env: Env
    dataset: int
    voted: str  # a pending proposal account 0 will vote on
    open: str  # a pending proposal with no votes
    files: Path


# --- running the CLI -----------------------------------------------------------------------


def cli(env: Env, *args: str, rpc: bool = True, input: str | None = None) -> Result:
    result = runner.invoke(app, [*args, *env.opts(rpc)], input=input)
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    return result


def cli_json(env: Env, *args: str, rpc: bool = True) -> Any:
    return json.loads(cli(env, *args, "--json", rpc=rpc).stdout)


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """``databright ARGS`` through ``databright.cli.main`` in this process: what ``python -m
    databright.cli`` runs, without a fresh interpreter's seconds of imports. Returns the exit
    status, stdout and stderr (unlike ``fails``, for any outcome and any output)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["databright", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    out, err = capsys.readouterr()
    return code, out, err


def check_bad_input(
    world: World,
    fails: Callable[..., tuple[int, str]],
    args: list[str],
    code: int,
    words: list[str],
) -> None:
    """``args`` and ``words`` ({ds}, {open}, {files} filled in) fail with ``code`` and one line holding
    ``words``, and change nothing."""
    fill = {"ds": str(world.dataset), "open": world.open, "files": str(world.files)}
    argv = [a.format(**fill) for a in args]
    before = snapshot(world.env)
    got, message = fails(*argv, *world.env.opts())
    assert got == code, message
    for word in words:
        assert word.format(**fill) in message, message
    assert snapshot(world.env) == before


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
        dataset = market.dataset(ds)
        chain.append((tuple(dataset), gw.bind(ShareTokenClient, dataset.token).total_paid()))
        proposal_count = dataset.proposal_count
        chain += [
            tuple(market.call("proposal", (ds << 32) | n)) for n in range(1, proposal_count + 1)
        ]
    return {
        "chain": chain,
        "nonces": [gw.transaction_count(a, "latest") for a in env.addresses],
        "blobs": sorted(p.name for p in (env.data_dir / "blobs").rglob("*") if p.is_file()),
        "keystore": sorted(p.name for p in (env.data_dir / "keystore").iterdir()),
    }
