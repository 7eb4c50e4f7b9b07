"""``databright evaluate``: the evaluator service, from the command line and as an object."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_main
from sklearn.neighbors import KNeighborsClassifier
from typer.testing import CliRunner

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.cli import app
from databright.demo.cast import digits_scenario
from databright.errors import InvalidArgument, ValuationError
from databright.market import Governance, Market
from databright.market.evaluator import EvaluatorService
from databright.storage import DatasetSchema, validate_examples
from databright.valuation import KNNShapley, MaxSamples, TMCShapley, Utility

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
        "cli eval", SCHEMA, initial,
        Governance(evaluators=(node.accounts[1].address,), commit_period_s=600, reveal_period_s=600),
    )  # fmt: skip
    poison = CAST.contributions[6]
    p = market.as_account(node.accounts[2]).propose(
        ds, validate_examples(poison.X, poison.y, SCHEMA, source="poison")
    )
    val = tmp_path / "validation.npz"
    np.savez(val, X=CAST.validation_X, y=CAST.validation_y)
    return node, market, ds, p, val


def test_evaluate_once_posts_a_negative_score_for_poison(setup, tmp_path: Path) -> None:
    node, market, ds, p, val = setup
    args = ["evaluate", "--dataset", str(ds), "--validation", str(val), "--rpc", node.url,
            "--data-dir", str(node.data_dir), "--account", "1", "--json"]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    [posted] = json.loads(out.stdout)
    assert posted["proposal"] == f"{ds}/{p.sequence}" and posted["score_bps"] < 0
    assert any(f.startswith("poisoning") for f in posted["flags"])
    ev = market.proposal(p.id).evaluation
    assert ev is not None and (ev.commits, ev.reveals) == (1, 0)  # sealed until the reveal phase
    market.gateway.advance_to(p.commit_end)
    revealed = CliRunner().invoke(app, args)  # reveals what is due, commits nothing new
    assert revealed.exit_code == 0 and json.loads(revealed.stdout) == []
    ev = market.proposal(p.id).evaluation
    assert ev is not None and ev.reveals == 1 and ev.score_bps == posted["score_bps"]
    report = json.loads(market.store.get(posted["report_cid"]))
    assert report["proposal_id"] == p.id and market.store.get(report["plot_cid"])[:4] == b"\x89PNG"
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and json.loads(again.stdout) == []
    # Anyone reads the revealed report, its flags and its plot with `proposal show`.
    common = ["--rpc", node.url, "--data-dir", str(node.data_dir)]
    plot = tmp_path / "plot.png"
    out = CliRunner().invoke(
        app, ["proposal", "show", f"{ds}/{p.sequence}", "--plot", str(plot), "--json", *common]
    )
    assert out.exit_code == 0, out.output
    shown = json.loads(out.stdout)
    assert shown["id"] == f"{ds}/{p.sequence}" and shown["plot_file"] == str(plot)
    [revealed] = shown["reports"]
    assert (
        revealed["score_bps"] == posted["score_bps"]
        and revealed["report_cid"] == posted["report_cid"]
    )
    assert any(f.startswith("poisoning") for f in revealed["flags"])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    text = CliRunner().invoke(app, ["proposal", "show", f"{ds}/{p.sequence}", *common]).stdout
    assert "flag poisoning: " in " ".join(text.split())


@dataclass
class Done:
    returncode: int
    stderr: str


@pytest.fixture
def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """``databright ARGS`` through ``main()``, as a user's shell runs it, in this process (a
    fresh interpreter per call cost seconds of imports): its exit status and stderr."""

    def run(*args: str) -> Done:
        code, _, err = run_main(monkeypatch, capsys, *args)
        return Done(code, err)

    return run


def test_evaluate_by_a_non_evaluator_is_refused(setup, _cli) -> None:
    node, _, ds, _, val = setup
    r = _cli("evaluate", "--dataset", str(ds), "--validation", str(val), "--rpc", node.url,
             "--data-dir", str(node.data_dir), "--account", "3")  # fmt: skip
    assert r.returncode == 1 and "is not an evaluator of dataset" in r.stderr
    assert f"`databright dataset grant-evaluator {ds} " in r.stderr
    assert "Traceback" not in r.stderr


def test_evaluate_with_missing_validation_file(setup, _cli) -> None:
    node, _, ds, _, val = setup
    r = _cli("evaluate", "--dataset", str(ds), "--validation", str(val) + ".nope",
             "--rpc", node.url, "--data-dir", str(node.data_dir), "--account", "1")  # fmt: skip
    assert r.returncode == 6 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_evaluator_values_with_an_injected_method(setup) -> None:
    node, market, ds, p, val = setup
    built: list[Utility] = []

    def tmc(utility: Utility) -> TMCShapley:
        built.append(utility)
        return TMCShapley(utility, stopping=MaxSamples(8))

    service = EvaluatorService(market.as_account(node.accounts[1]), ds, val, method=tmc)
    [posted] = service.run_once()
    assert len(built) == 1 and len(built[0].y_val) == len(CAST.validation_y)
    assert posted.report["method"] == "tmc_shapley"
    assert posted.report["valuation"]["method"] == "tmc_shapley"
    ev = market.proposal(p.id).evaluation
    assert ev is not None and ev.commits == 1
    sealed = market.as_account(node.accounts[1]).sealed_score(p.id)
    assert sealed is not None and sealed.score_bps == posted.score_bps


def test_evaluator_defaults_to_knn_shapley_and_checks_its_method(setup) -> None:
    node, market, ds, p, val = setup
    evaluator = market.as_account(node.accounts[1])
    default = EvaluatorService(evaluator, ds, val, k=7)
    utility = Utility(KNeighborsClassifier(7), CAST.validation_X, CAST.validation_y)
    method = default.method(utility)
    assert isinstance(method, KNNShapley) and method.k == 7
    with pytest.raises(InvalidArgument):
        EvaluatorService(evaluator, ds, val, method="tmc")  # type: ignore[arg-type]
    wrong = EvaluatorService(evaluator, ds, val, method=lambda u: object())  # type: ignore[arg-type,return-value]
    with pytest.raises(ValuationError, match="not a valuation method"):
        wrong.evaluate(p)
    assert market.proposal(p.id).evaluation is None  # nothing was posted


def test_commit_reveal_and_collect_by_hand(setup, _cli, tmp_path: Path) -> None:
    node, market, _, _, _ = setup
    initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
    ds = market.create_dataset(
        "cli fee", SCHEMA, initial,
        Governance(evaluators=(node.accounts[1].address,), commit_period_s=600,
                   reveal_period_s=600, evaluation_fee_wei=10**15),
    )  # fmt: skip
    honest = CAST.contributions[0]
    p = market.as_account(node.accounts[2]).propose(
        ds, validate_examples(honest.X, honest.y, SCHEMA, source="honest")
    )
    report = tmp_path / "report.json"
    report.write_text('{"why": "by hand"}')
    common = ["--rpc", node.url, "--data-dir", str(node.data_dir), "--json"]
    early = _cli("reveal", str(p.id), "--account", "3", *common)
    assert early.returncode == 5 and "no committed score" in early.stderr
    out = CliRunner().invoke(
        app, ["commit", str(p.id), "--score", "12000", "--report", str(report), "-a", "1", *common]
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["reveal_from"] == p.commit_end
    market.gateway.advance_to(p.commit_end)
    out = CliRunner().invoke(app, ["reveal", f"{ds}/{p.sequence}", "-a", "1", *common])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["score_bps"] == 12_000
    market.gateway.advance_to(p.voting_opens)
    out = CliRunner().invoke(app, ["collect-fee", str(p.id), "-a", "1", *common])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["amount_wei"] == 10**15
    again = _cli("collect-fee", str(p.id), "--account", "1", *common)
    assert again.returncode == 4 and "already collected" in again.stderr
    assert market.proposal(p.id).quality_weight_bps == 12_000
