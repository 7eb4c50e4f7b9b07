"""Deploying from artifacts: idempotent per chain, resets detected, CLI answers in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from databright.chain.deploy import (
    PLAN,
    _code_matches,
    create_address,
    deploy,
    join,
    load_deployment,
    read_shared_record,
)
from databright.chain.gateway import Gateway, connect
from databright.errors import (
    ContractNotDeployed,
    DataBrightError,
    InvalidArgument,
    NodeUnreachable,
    NotFound,
    WrongChain,
)


def test_deploy_twice_deploys_nothing_new(node, tmp_path: Path) -> None:
    gw = connect(node.url, node.accounts[0])
    first, new = deploy(gw, tmp_path)
    assert set(new) == {s.key for s in PLAN}
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
    assert set(body["deployed_now"]) == {
        "ShareTokenBlueprint",
        "DataMarket",
        "ModelMarket",
        "WeightSale",
        "ComputeMarket",
        "DataAccess",
    }
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
    up.append("--no-server")  # the server has its own test (tests/cli/test_server_cli.py)
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


# --- joining a market someone else deployed ------------------------------------------------


def test_join_by_address_or_shared_file_records_what_the_creator_has(node, tmp_path: Path) -> None:
    creator = connect(node.url, node.accounts[0])
    made, _ = deploy(creator, tmp_path / "a")
    reader = connect(node.url)  # joining needs no account
    # The data market's address names the data market; the model market's names both (the
    # weight sale, which nothing on chain points to, comes with a shared record).
    data_only = {k: made[k] for k in ("ShareTokenBlueprint", "DataMarket")}
    joined, changed = join(reader, tmp_path / "b", market=made["DataMarket"].lower())
    assert changed and joined.addresses == data_only
    assert load_deployment(tmp_path / "b", node.chain_id).to_json() == joined.to_json()
    again, changed = join(reader, tmp_path / "b", market=made["DataMarket"])
    assert not changed and again.to_json() == joined.to_json()
    by_model, changed = join(reader, tmp_path / "e", market=made["ModelMarket"])
    assert changed and by_model.addresses == {**data_only, "ModelMarket": made["ModelMarket"]}
    by_file, changed = join(reader, tmp_path / "c", shared=read_shared_record(made.path))
    assert changed and by_file.to_json() == made.to_json()
    # A data dir that records one market switches to another only when asked.
    other, _ = deploy(creator, tmp_path / "d")
    with pytest.raises(InvalidArgument, match="pass --replace"):
        join(reader, tmp_path / "b", market=other["DataMarket"])
    switched, changed = join(reader, tmp_path / "b", market=other["DataMarket"], replace=True)
    assert changed and switched.addresses == {k: other[k] for k in data_only}


def test_join_refuses_what_is_not_this_market(node, tmp_path: Path) -> None:
    creator = connect(node.url, node.accounts[0])
    made, _ = deploy(creator, tmp_path / "a")
    reader = connect(node.url)
    dd = tmp_path / "b"
    with pytest.raises(ContractNotDeployed, match="no contract at"):
        join(reader, dd, market=node.accounts[5].address)  # an account, not a contract
    with pytest.raises(InvalidArgument, match="is not a DataBright market"):
        join(reader, dd, market=made["ShareTokenBlueprint"])
    with pytest.raises(InvalidArgument, match="not an Ethereum address"):
        join(reader, dd, market="0x1234")
    # A market whose blueprint is a runnable ShareToken, not the blueprint this version
    # deploys: same interface, other code.
    token = creator.deploy("ShareToken", "x", 1).address
    fake = creator.deploy("DataMarket", token).address
    with pytest.raises(InvalidArgument, match="does not hold the code this version"):
        join(reader, dd, market=fake)
    # Shared files: another chain, a blueprint that is not the market's, not a record at all.
    body = made.to_json()
    wrong_chain = tmp_path / "wrong-chain.json"
    wrong_chain.write_text(json.dumps({**body, "chain_id": node.chain_id + 1}))
    with pytest.raises(WrongChain, match="point --rpc at the market's chain"):
        join(reader, dd, shared=read_shared_record(wrong_chain))
    swapped = tmp_path / "swapped.json"
    addresses = {**body["addresses"], "ShareTokenBlueprint": token}
    swapped.write_text(json.dumps({**body, "addresses": addresses}))
    with pytest.raises(InvalidArgument, match="ask its creator for a current file"):
        join(reader, dd, shared=read_shared_record(swapped))
    junk = tmp_path / "junk.json"
    junk.write_text("<html>")
    with pytest.raises(InvalidArgument, match="is not a DataBright deployment record"):
        read_shared_record(junk)
    with pytest.raises(NotFound, match="does not exist"):
        read_shared_record(tmp_path / "missing.json")
    assert not (dd / "deployments").exists()


def test_errors_without_a_record_advise_joining(node, tmp_path: Path) -> None:
    with pytest.raises(ContractNotDeployed) as info:
        load_deployment(tmp_path, node.chain_id)
    assert "databright join --market" in str(info.value)
    assert "only a new market's creator runs `databright deploy`" in str(info.value)


# --- crash safety: a real kill -9 at the worst moments -------------------------------------


class _KillingProxy:
    """A JSON-RPC proxy in front of the node that kill -9s the client at a chosen moment:
    after the node took its ``n``-th transaction (``sent``) or after the node answered with
    its ``n``-th receipt (``mined``), before the client sees the answer."""

    def __init__(self, upstream: str, moment: str, n: int) -> None:
        import http.server
        import threading
        import urllib.request

        self.victim: int | None = None
        counts = {"sent": 0, "mined": 0}
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = urllib.request.Request(
                    upstream, body, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as r:
                    answer = r.read()
                method = json.loads(body).get("method")
                if method == "eth_sendRawTransaction":
                    counts["sent"] += 1
                elif method == "eth_getTransactionReceipt" and json.loads(answer)["result"]:
                    counts["mined"] += 1
                if counts[moment] == n and proxy.victim is not None:
                    os.kill(proxy.victim, signal.SIGKILL)
                    proxy.victim = None
                    return  # the client is gone: it never learns the answer
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


DEPLOY_SCRIPT = (
    "import sys; from pathlib import Path; from databright.chain.deploy import deploy; "
    "from databright.chain.gateway import connect; "
    "deploy(connect(sys.argv[1], sys.argv[2]), Path(sys.argv[3]))"
)


@pytest.mark.parametrize(
    ("moment", "n"),
    [("sent", 1), ("mined", 2)],
    ids=["blueprint-sent", "market-mined"],
)
def test_deploy_killed_mid_deployment_never_deploys_twice(
    node, tmp_path: Path, moment: str, n: int
) -> None:
    account = node.accounts[7]  # no other test deploys from it
    gw = connect(node.url, account)
    first_nonce = gw.transaction_count(account.address, "latest")
    proxy = _KillingProxy(node.url, moment, n)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", DEPLOY_SCRIPT, proxy.url, account.key.hex(), str(tmp_path)]
        )
        proxy.victim = child.pid
        assert child.wait(timeout=120) == -signal.SIGKILL
    finally:
        proxy.close()
    deployment, recorded_now = deploy(gw, tmp_path)
    # Six contracts, ever: the interrupted one is adopted (or, never mined, sent again).
    keys = [
        "ShareTokenBlueprint",
        "DataMarket",
        "ModelMarket",
        "WeightSale",
        "ComputeMarket",
        "DataAccess",
    ]
    assert gw.transaction_count(account.address, "latest") == first_nonce + len(keys)
    assert deployment.addresses == {
        key: create_address(account.address, first_nonce + i) for i, key in enumerate(keys)
    }
    # The blueprint of a run killed at the market was recorded by that run.
    assert recorded_now == keys[n - 1 :]
    record = json.loads(deployment.path.read_text())
    assert "pending" not in record and load_deployment(tmp_path, gw.chain_id) == deployment
    assert deploy(gw, tmp_path)[1] == []
    market = gw.contract("DataMarket", deployment["DataMarket"])
    assert market.call("share_token_blueprint") == deployment["ShareTokenBlueprint"]
