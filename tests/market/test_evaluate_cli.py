"""``databright evaluate``: the evaluator service from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.cli import app
from databright.market import Governance, Market
from databright.market.scenario import digits_scenario
from databright.storage import DatasetSchema, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=5, proposal_size=30)


@pytest.fixture
def setup(node, tmp_path: Path):
    if node.kind != "embedded":
        pytest.skip("uses the embedded node's keystore accounts")
    deploy(connect(node.url, node.accounts[0]), node.data_dir)
    market = Market.connect(node.url, node.accounts[0], node.data_dir)
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(
        "cli eval", SCHEMA, initial, Governance(evaluators=(node.accounts[1].address,))
    )
    poison = CAST.contributions[6]
    p = market.as_account(node.accounts[2]).propose(
        ds, validate_examples(poison.X, poison.y, SCHEMA, source="poison")
    )
    val = tmp_path / "validation.npz"
    np.savez(val, X=CAST.validation_X, y=CAST.validation_y)
    return node, market, ds, p, val


def test_evaluate_once_posts_a_negative_score_for_poison(setup) -> None:
    node, market, ds, p, val = setup
    args = ["evaluate", "--dataset", str(ds), "--validation", str(val), "--rpc", node.url,
            "--data-dir", str(node.data_dir), "--account", "1", "--json"]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    [posted] = json.loads(out.stdout)
    assert posted["proposal_id"] == p.id and posted["score_bps"] < 0
    assert any(f.startswith("poisoning") for f in posted["flags"])
    ev = market.proposal(p.id).evaluation
    assert ev is not None and ev.score_bps == posted["score_bps"]
    report = json.loads(market.store.get(ev.report_cid))
    assert report["proposal_id"] == p.id and market.store.get(report["plot_cid"])[:4] == b"\x89PNG"
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and json.loads(again.stdout) == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from databright.cli import main; main()", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_evaluate_by_a_non_evaluator_is_refused(setup) -> None:
    node, _, ds, _, val = setup
    r = _cli("evaluate", "--dataset", str(ds), "--validation", str(val), "--rpc", node.url,
             "--data-dir", str(node.data_dir), "--account", "3")  # fmt: skip
    assert r.returncode == 1 and "is not an evaluator of dataset" in r.stderr
    assert "Traceback" not in r.stderr


def test_evaluate_with_missing_validation_file(setup) -> None:
    node, _, ds, _, val = setup
    r = _cli("evaluate", "--dataset", str(ds), "--validation", str(val) + ".nope",
             "--rpc", node.url, "--data-dir", str(node.data_dir), "--account", "1")  # fmt: skip
    assert r.returncode == 6 and "does not exist" in r.stderr and "Traceback" not in r.stderr
