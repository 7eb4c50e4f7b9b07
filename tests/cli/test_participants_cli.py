"""Participants with data dirs of their own meet only through the chain and the blob stores they
serve: the evaluator evaluates, and a reader downloads, from the command line with ``--source``."""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from cli_helpers import runner
from databright_dev.serving import serving

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.cli import app
from databright.demo.cast import digits_scenario
from databright.market import Governance, Market
from databright.server.gateway import blob_gateway
from databright.storage import DatasetSchema, LocalBlobStore, read_proposal, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=11, proposal_size=30)


def _run(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return json.loads(result.stdout)


def test_evaluate_and_download_from_other_participants_stores(node: Any, tmp_path: Path) -> None:
    alice, bob, erin, reader = (tmp_path / n for n in ("alice", "bob", "erin", "reader"))
    deployment, _ = deploy(connect(node.url, node.accounts[0]), alice)
    for person in (bob, erin, reader):  # each joins with the shared deployment record only
        target = person / "deployments" / Path(deployment.path).name
        target.parent.mkdir(parents=True)
        shutil.copy(deployment.path, target)
    Keystore(erin / "keystore").new(private_key=node.accounts[4].key)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = Market.connect(node.url, node.accounts[0], alice).create_dataset(
        "shared", SCHEMA, initial,
        Governance(evaluators=(node.accounts[4].address,), commit_period_s=60, reveal_period_s=60),
    )  # fmt: skip
    with ExitStack() as stack:
        alice_url = stack.enter_context(serving(blob_gateway(LocalBlobStore(alice / "blobs"))))
        bob_market = Market.connect(node.url, node.accounts[1], bob, sources=[alice_url])
        honest = CAST.contributions[0]
        p = bob_market.propose(ds, validate_examples(honest.X, honest.y, SCHEMA, source="bob"))
        bob_url = stack.enter_context(serving(blob_gateway(LocalBlobStore(bob / "blobs"))))
        val = tmp_path / "validation.npz"
        np.savez(val, X=CAST.validation_X, y=CAST.validation_y)
        common = ["--rpc", node.url, "--data-dir", str(erin)]
        [posted] = _run("evaluate", "--dataset", str(ds), "--validation", str(val), "-a", "0",
                        "--source", alice_url, "--source", bob_url, *common)  # fmt: skip
        assert posted["proposal"] == f"{ds}/{p.sequence}"
        bob_market.gateway.advance_to(p.commit_end)
        assert _run("evaluate", "--dataset", str(ds), "--validation", str(val), "-a", "0",
                    "--source", alice_url, *common) == []  # fmt: skip  # the reveal
        bob_market.gateway.advance_to(p.voting_opens)
        Market.connect(node.url, node.accounts[0], alice).vote(p.id, True)
        assert bob_market.finalize(p.id).status == "accepted"
        # The reader holds nothing: both registry entries come from the two stores, verified.
        out = tmp_path / "curated.csv"
        got = _run("dataset", "download", str(ds), "--out", str(out), "--source", alice_url,
                   "--source", bob_url, "--rpc", node.url, "--data-dir", str(reader))  # fmt: skip
        assert got["examples"] == len(CAST.initial_y) + len(honest.y)
        assert got["registry_entries"] == 2
        shown = _run("proposal", "show", f"{ds}/{p.sequence}", "--rpc", node.url,
                     "--data-dir", str(reader))  # fmt: skip
        assert shown["reports"][0]["report_available"] is False  # erin serves no store
    back = read_proposal(out, SCHEMA, known_hashes=set())
    assert len(back) == got["examples"]
