"""A session survives its node: killed mid-session, the SDK and CLI say so; restarted, it goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.errors import NodeUnreachable
from databright.market import Governance, Market
from databright.storage import DatasetSchema, validate_examples

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
CAST = digits_scenario(seed=11, proposal_size=25)


def test_kill_mid_session_then_restart_and_go_on(embedded_launcher, tmp_path: Path) -> None:
    start_embedded = embedded_launcher
    data = tmp_path / "chain"
    data.mkdir()
    node = start_embedded(data)
    try:
        deploy(connect(node.url, node.accounts[0]), data)
        market = Market.connect(node.url, node.accounts[0], data)
        initial = validate_examples(CAST.initial_X, CAST.initial_y, SCHEMA, source="initial")
        ds = market.create_dataset("restart", SCHEMA, initial, Governance())
        alice = market.as_account(node.accounts[1])
        c = CAST.contributions[0]
        p = alice.propose(ds, validate_examples(c.X, c.y, SCHEMA, source="alice"))
        before = market.proposal(p.id)

        os.kill(node.pid, signal.SIGKILL)  # no clean shutdown: what a crash looks like
        os.waitpid(node.pid, 0)
        with pytest.raises(NodeUnreachable, match="no Ethereum node answers"):
            market.vote(p.id, True)
        cli = subprocess.run(
            [sys.executable, "-m", "databright.cli", "dataset", "show", str(ds),
             "--rpc", node.url, "--data-dir", str(data)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert cli.returncode == 3 and "no Ethereum node answers" in cli.stderr
        assert "Traceback" not in cli.stderr

        node = start_embedded(data, port=int(node.url.rsplit(":", 1)[1]))
        after = Market.connect(node.url, node.accounts[0], data)
        assert after.proposal(p.id) == before  # everything confirmed before the kill is there
        after.vote(p.id, True)
        final = after.finalize(p.id)
        assert final.status == "accepted"
        assert after.registry(ds)[-1].data_cid == before.data_cid
    finally:
        node.stop()
