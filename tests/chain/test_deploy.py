"""Deploying from artifacts: idempotent per chain, resets detected, CLI answers in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from databright.chain.deploy import PLAN, _code_matches, deploy, load_deployment
from databright.chain.gateway import Gateway, connect
from databright.errors import ContractNotDeployed, DataBrightError, NodeUnreachable


def test_deploy_twice_deploys_nothing_new(node, tmp_path: Path) -> None:
    gw = connect(node.url, node.accounts[0])
    first, new = deploy(gw, tmp_path)
    assert set(new) == {"ShareTokenBlueprint", "DataMarket"}
    before = gw.block_number()
    again, new_again = deploy(gw, tmp_path)
    assert new_again == [] and again.addresses == first.addresses
    assert gw.block_number() == before
    recorded = load_deployment(tmp_path, gw.chain_id)
    assert recorded.addresses == first.addresses
    assert (
        gw.contract("DataMarket", first["DataMarket"]).call("share_token_blueprint")
        == (first["ShareTokenBlueprint"])
    )


def test_reset_chain_is_detected_then_redeployed(fresh_node, node_factory, tmp_path: Path) -> None:
    gw = connect(fresh_node.url, fresh_node.accounts[0])
    deploy(gw, tmp_path)
    fresh_node.stop()
    # A new chain with the same chain id: what a reset node looks like to a client.
    reset = node_factory(fresh_node.kind, "reset")
    gw2 = connect(reset.url, reset.accounts[0])
    assert gw2.chain_id == gw.chain_id
    with pytest.raises(ContractNotDeployed, match="the node was reset"):
        deploy(gw2, tmp_path)
    _, new = deploy(gw2, tmp_path, redeploy=True)
    assert "DataMarket" in new


def test_damaged_record_is_reported(node, tmp_path: Path) -> None:
    gw = connect(node.url, node.accounts[0])
    path = tmp_path / "deployments" / f"{gw.chain_id}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(DataBrightError, match="is damaged"):
        deploy(gw, tmp_path)


def _dead_gateway() -> Gateway:
    """A gateway whose node has gone away (nothing listens on its port any more)."""
    import socket

    from eth_account import Account
    from web3 import Web3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    provider = Web3.HTTPProvider(url, exception_retry_configuration=None)
    return Gateway(Web3(provider), url, 1337, Account.create())


def test_deploy_to_a_dead_node_says_unreachable(tmp_path: Path) -> None:
    gw = _dead_gateway()
    with pytest.raises(NodeUnreachable, match="no Ethereum node answers at"):
        deploy(gw, tmp_path)  # nothing recorded: the first deployment finds no node
    record = tmp_path / "deployments" / "1337.json"
    record.parent.mkdir(parents=True)
    addresses = {"ShareTokenBlueprint": "0x" + "11" * 20, "DataMarket": "0x" + "22" * 20}
    record.write_text(json.dumps({"chain_id": 1337, "addresses": addresses}))
    with pytest.raises(NodeUnreachable, match="no Ethereum node answers at"):
        deploy(gw, tmp_path)  # a record: checking its code finds no node
    with pytest.raises(NodeUnreachable, match="no Ethereum node answers at"):
        _code_matches(gw, addresses["DataMarket"], PLAN[1])


def test_deploy_command_json_and_dead_node(node, tmp_path: Path) -> None:
    from databright.chain.keystore import Keystore

    Keystore(tmp_path / "keystore").new(private_key=node.accounts[0].key)
    run = [sys.executable, "-m", "databright.cli", "deploy", "--data-dir", str(tmp_path)]
    out = subprocess.run(
        [*run, "--rpc", node.url, "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert set(body["deployed_now"]) == {"ShareTokenBlueprint", "DataMarket"}
    dead = subprocess.run(
        [*run, "--rpc", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=120
    )
    assert dead.returncode == 3 and "no Ethereum node answers" in dead.stderr
    assert "Traceback" not in dead.stderr


def test_up_starts_a_node_deploys_and_is_idempotent(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rpc = f"http://127.0.0.1:{port}"
    up = [sys.executable, "-m", "databright.cli", "up", "--rpc", rpc, "--data-dir", str(tmp_path)]
    try:
        first = subprocess.run([*up, "--json"], capture_output=True, text=True, timeout=180)
        assert first.returncode == 0, first.stderr
        body = json.loads(first.stdout)
        assert body["chain_id"] == 1337 and len(body["accounts"]) == 10
        again = subprocess.run([*up, "--json"], capture_output=True, text=True, timeout=180)
        assert json.loads(again.stdout)["addresses"] == body["addresses"]
    finally:
        subprocess.run(
            [sys.executable, "-m", "databright.cli", "node", "stop", "--data-dir", str(tmp_path)],
            capture_output=True,
            timeout=60,
        )
    remote = subprocess.run(
        [*up[:4], "--rpc", "http://127.0.0.2:9", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert remote.returncode == 3 and "no Ethereum node answers" in remote.stderr
