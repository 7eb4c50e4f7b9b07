"""Fixtures of the CLI tests: a clean environment, data dirs on the session's nodes, ``fails``.

``env`` and ``world`` are built once per node kind for the whole session, as they were when
the CLI tests were one module: tests must not assume a pristine market.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest
from cli_helpers import SCHEMA, Env, LightScrypt, World, make_env, write_csv, write_npz

import databright.chain.keystore as keystore_module
from databright.cli import main
from databright.market import Market
from databright.storage import DatasetSchema


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABRIGHT_PASSWORD", "DATABRIGHT_DEBUG", "DATABRIGHT_RPC", "DATABRIGHT_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(keystore_module, "Account", LightScrypt)


@pytest.fixture(scope="session")
def env(node: Any, tmp_path_factory: pytest.TempPathFactory) -> Env:
    return make_env(node, tmp_path_factory.mktemp(f"cli-{node.kind}"))


@pytest.fixture(scope="session")
def world(node: Any, tmp_path_factory: pytest.TempPathFactory) -> World:
    """A dataset with two pending proposals, and files good and bad to propose."""
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
