"""``databright store export|verify|orphans|gc`` (``databright.cli.store``)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cli_helpers import SCHEMA, Env, cli, cli_json, make_env, runner, write_npz

import databright.cli as cli_package
from databright.market import Market
from databright.storage import DatasetSchema, LocalBlobStore
from databright.storage.car import read_car
from databright.storage.unixfs import CHUNK_BYTES, assemble


def _blob(n: int, seed: bytes = b"store cli") -> bytes:
    return hashlib.shake_128(seed).digest(n)


def _age(store: LocalBlobStore, cid: str, seconds: float) -> None:
    """Make a blob look stored ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(store.path(cid, verify=False), (then, then))


# --- export and verify (no chain needed) ----------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Env:
    return Env("http://127.0.0.1:9", "none", tmp_path / "dd", [])


@pytest.mark.parametrize("size", [5, CHUNK_BYTES + 1, 3 * CHUNK_BYTES])
def test_export_writes_a_car_that_proves_the_blob(local: Env, tmp_path: Path, size: int) -> None:
    data = _blob(size)
    cid = LocalBlobStore(local.data_dir / "blobs").put(data)
    car = tmp_path / "out.car"
    got = cli_json(local, "store", "export", cid, "--car", str(car), rpc=False)
    assert got == {"cid": cid, "car": str(car), "bytes": car.stat().st_size}
    roots, pairs = read_car(io.BytesIO(car.read_bytes()))
    assert roots == [cid]
    assert assemble(cid, dict(pairs).__getitem__) == data
    assert (
        "ipfs dag import" in cli(local, "store", "export", cid, "--car", str(car), rpc=False).stdout
    )


def test_export_refuses_a_missing_blob_a_bad_cid_and_a_bad_folder(
    local: Env, tmp_path: Path, fails: Callable[..., tuple[int, str]]
) -> None:
    absent = LocalBlobStore(tmp_path / "other").put(b"elsewhere")
    opts = local.opts(rpc=False)
    code, message = fails("store", "verify", *opts)
    assert code == 5 and "no blob store in" in message
    LocalBlobStore(local.data_dir / "blobs")
    code, message = fails("store", "export", absent, "--car", str(tmp_path / "a.car"), *opts)
    assert code == 5 and absent in message
    code, message = fails(
        "store", "export", "bafy-nonsense", "--car", str(tmp_path / "a.car"), *opts
    )
    assert code == 1 and "is not a CID" in message
    cid = LocalBlobStore(local.data_dir / "blobs").put(b"here")
    code, message = fails("store", "export", cid, "--car", str(tmp_path / "no" / "a.car"), *opts)
    assert code == 1 and "is not a directory" in message
    assert not (tmp_path / "a.car").exists()


def test_verify_lists_damaged_blobs_and_fails(local: Env) -> None:
    store = LocalBlobStore(local.data_dir / "blobs")
    good = [store.put(_blob(n)) for n in (10, CHUNK_BYTES + 10)]
    assert cli_json(local, "store", "verify", rpc=False) == {
        "store": str(store.root),
        "checked": 2,
        "damaged": [],
    }
    store.path(good[1], verify=False).write_bytes(_blob(CHUNK_BYTES + 10, b"other"))
    (store.path(good[0]).parent / "not-a-cid").write_bytes(b"junk")
    result = runner.invoke(cli_package.app, ["store", "verify", "--json", *local.opts(rpc=False)])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["checked"] == 3
    assert sorted(d["name"] for d in report["damaged"]) == sorted([good[1], "not-a-cid"])
    text = runner.invoke(cli_package.app, ["store", "verify", *local.opts(rpc=False)])
    assert text.exit_code == 1 and "2 damaged" in text.stdout and "Traceback" not in text.stdout


# --- orphans and gc (the market says what is referenced) ------------------------------------


@dataclass
class Market_:
    env: Env
    store: LocalBlobStore
    referenced: set[str]  # every blob a market record points at, directly or through another


@pytest.fixture(scope="module")
def market(node: Any, tmp_path_factory: pytest.TempPathFactory) -> Market_:
    root = tmp_path_factory.mktemp(f"store-cli-{node.kind}")
    env = make_env(node, root / "dd")
    m = Market.connect(node.url, node.accounts[0], env.data_dir)
    schema = DatasetSchema.from_dict(SCHEMA)
    ds = m.create_dataset("store", schema, write_npz(root / "init.npz", 20, 1))
    # A proposal of more than one chunk: its data blob is a UnixFS DAG (a dag-pb CID), while
    # the chain keeps only the digest.
    m.as_account(node.accounts[1]).propose(ds, write_npz(root / "big.npz", 12_000, 2))
    store = LocalBlobStore(env.data_dir / "blobs")
    referenced = set(store)
    assert any(cid.startswith("bafybei") for cid in referenced)
    for cid in referenced:
        _age(store, cid, 10 * 86400)
    return Market_(env, store, referenced)


def test_orphans_are_the_old_blobs_no_record_references(market: Market_) -> None:
    lost = market.store.put(_blob(CHUNK_BYTES * 2, b"interrupted propose"))
    young = market.store.put(b"stored a moment ago")
    _age(market.store, lost, 2 * 3600)
    got = cli_json(market.env, "store", "orphans")
    assert [o["cid"] for o in got["orphans"]] == [lost]
    assert got["orphans"][0]["bytes"] == 2 * CHUNK_BYTES
    everything = cli_json(market.env, "store", "orphans", "--older-than", "0")
    assert {o["cid"] for o in everything["orphans"]} == {lost, young}
    assert not market.referenced & {o["cid"] for o in everything["orphans"]}
    text = cli(market.env, "store", "orphans", "--older-than", "0").stdout
    assert "2 orphan blob(s)" in text and "store gc --yes" in text


def test_gc_needs_yes_and_removes_only_orphans(
    market: Market_, fails: Callable[..., tuple[int, str]]
) -> None:
    lost = market.store.put(_blob(100, b"gc me"))
    _age(market.store, lost, 2 * 3600)
    code, message = fails("store", "gc", *market.env.opts())
    assert code == 1 and "--yes" in message
    assert lost in market.store
    removed = cli_json(market.env, "store", "gc", "--yes")
    assert lost in {o["cid"] for o in removed["removed"]}
    assert lost not in market.store
    assert market.referenced <= set(market.store)
    assert cli_json(market.env, "store", "verify", rpc=False)["damaged"] == []
    again = cli_json(market.env, "store", "gc", "--yes")
    assert again["removed"] == []


def test_a_reput_blob_is_young_again(market: Market_) -> None:
    data = _blob(50, b"proposed twice")
    cid = market.store.put(data)
    _age(market.store, cid, 2 * 3600)
    market.store.put(data)  # a propose in progress stores it again before its transaction
    assert cid not in {o["cid"] for o in cli_json(market.env, "store", "orphans")["orphans"]}


def test_a_bad_duration_is_a_usage_error(
    market: Market_, fails: Callable[..., tuple[int, str]]
) -> None:
    fails("store", "orphans", "--older-than", "soon", *market.env.opts(), usage=True)


# --- serve -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # a second Python process imports the whole CLI: ~8 s on a busy machine
def test_serve_answers_raw_blocks_and_cars_that_verify(local: Env) -> None:
    store = LocalBlobStore(local.data_dir / "blobs")
    small, big = b"served", _blob(2 * CHUNK_BYTES + 5)
    small_cid, big_cid = store.put(small), store.put(big)
    port = _free_port()
    code = "from databright.cli.store import app; app()"
    argv = [
        sys.executable,
        "-c",
        code,
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(local.data_dir),
    ]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/ipfs"
        deadline = time.monotonic() + 30
        while True:
            try:
                raw = requests.get(f"{url}/{small_cid}", params={"format": "raw"}, timeout=5)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.2)
        assert raw.status_code == 200 and raw.content == small
        car = requests.get(f"{url}/{big_cid}", params={"format": "car"}, timeout=30)
        assert car.status_code == 200
        roots, pairs = read_car(io.BytesIO(car.content))
        assert roots == [big_cid]
        assert assemble(big_cid, dict(pairs).__getitem__) == big
    finally:
        server.terminate()
        server.wait(timeout=10)
