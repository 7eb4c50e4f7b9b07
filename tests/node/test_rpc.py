"""JSON-RPC behaviour of the embedded node, through web3.py's HTTPProvider and raw HTTP.

One node per module, in this process (``Node`` on a free port), so these tests are fast; the
process-level behaviour (command line, restarts, kill -9) is in test_node_process/durability.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from eth_account.signers.local import LocalAccount
from node_helpers import PROBE_ABI, PROBE_BYTECODE, post, rpc, rpc_error
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError

from databright.node import Node, NodeConfig, load_dev_accounts
from databright.node.wire import RpcError

CHAIN_ID = 1337


class Env:
    def __init__(self, url: str, accounts: list[LocalAccount]) -> None:
        self.url = url
        self.w3 = Web3(Web3.HTTPProvider(url))
        self.accounts = accounts
        self.nonces: dict[str, int] = {}

    def send(self, account: LocalAccount, **tx: Any) -> Any:
        """Sign locally (tracking the nonce here) and wait for the receipt."""
        nonce = self.nonces.get(account.address)
        if nonce is None:
            nonce = self.w3.eth.get_transaction_count(account.address)
        tx = {
            "chainId": CHAIN_ID,
            "nonce": nonce,
            "gas": 200_000,
            "maxFeePerGas": 3 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            **tx,
        }
        raw = account.sign_transaction(tx).raw_transaction
        tx_hash = self.w3.eth.send_raw_transaction(raw)
        self.nonces[account.address] = nonce + 1
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("node-rpc")
    with Node(NodeConfig(data_dir=data_dir, port=0, accounts=3)) as node:
        yield Env(node.url, load_dev_accounts(data_dir))


@pytest.fixture(scope="module")
def probe(env: Env) -> Contract:
    receipt = env.send(env.accounts[0], data=PROBE_BYTECODE, gas=1_000_000)
    assert receipt["status"] == 1 and receipt["to"] is None
    return env.w3.eth.contract(address=receipt["contractAddress"], abi=PROBE_ABI)


# --- identity --------------------------------------------------------------------------


def test_identity_methods(env: Env) -> None:
    assert env.w3.eth.chain_id == CHAIN_ID
    assert rpc(env.url, "eth_chainId") == "0x539"
    assert rpc(env.url, "net_version") == "1337"
    assert env.w3.client_version.startswith("DataBright/v")
    assert env.w3.eth.accounts == []
    assert rpc(env.url, "eth_syncing") is False


def test_dev_accounts_are_funded(env: Env) -> None:
    assert len(env.accounts) == 3
    for account in env.accounts[1:]:
        assert env.w3.eth.get_balance(account.address) == 10_000 * 10**18


# --- transactions and receipts -----------------------------------------------------------


def test_value_transfer_mines_one_block(env: Env) -> None:
    sender, receiver = env.accounts[1], env.accounts[2]
    before = env.w3.eth.block_number
    balance = env.w3.eth.get_balance(receiver.address)
    receipt = env.send(sender, to=receiver.address, value=12345, gas=21000)
    assert receipt["status"] == 1
    assert receipt["blockNumber"] == before + 1 == env.w3.eth.block_number
    assert env.w3.eth.get_balance(receiver.address) == balance + 12345
    assert receipt["gasUsed"] == 21000 and receipt["cumulativeGasUsed"] == 21000
    assert len(receipt["logsBloom"]) == 256
    tx = env.w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["from"] == sender.address and tx["value"] == 12345 and tx["input"] == b""
    block = env.w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
    assert block["transactions"][0]["hash"] == receipt["transactionHash"]
    assert block["miner"] == "0x0000000000000000000000000000000000000000"
    assert env.w3.eth.get_block(block["hash"])["number"] == block["number"]


def test_contract_logs_receipt_and_get_logs(env: Env, probe: Contract) -> None:
    account = env.accounts[0]
    receipt = env.send(account, to=probe.address, data=probe.encode_abi("ping", [7]))
    assert receipt["status"] == 1
    (log,) = receipt["logs"]
    assert log["logIndex"] == 0 and log["removed"] is False
    assert log["blockNumber"] == receipt["blockNumber"]
    event = probe.events.Ping().process_receipt(receipt)[0]
    assert event["args"]["sender"] == account.address and event["args"]["value"] == 7
    assert probe.functions.counter().call() >= 7

    topic = log["topics"][0]
    logs = env.w3.eth.get_logs({"fromBlock": 0, "address": probe.address, "topics": [topic]})
    assert receipt["transactionHash"] in [entry["transactionHash"] for entry in logs]
    by_hash = env.w3.eth.get_logs({"blockHash": receipt["blockHash"]})
    assert [entry["logIndex"] for entry in by_hash] == [0]
    # A topic that never occurs: the bloom filter skips every block.
    assert env.w3.eth.get_logs({"fromBlock": 0, "topics": ["0x" + "11" * 32]}) == []


def test_filters_see_new_logs(env: Env, probe: Contract) -> None:
    filter_id = rpc(env.url, "eth_newFilter", {"address": probe.address})
    block_filter = rpc(env.url, "eth_newBlockFilter")
    receipt = env.send(env.accounts[0], to=probe.address, data=probe.encode_abi("ping", [1]))
    changes = rpc(env.url, "eth_getFilterChanges", filter_id)
    assert [c["transactionHash"] for c in changes] == [receipt["transactionHash"].to_0x_hex()]
    assert rpc(env.url, "eth_getFilterChanges", block_filter) == [receipt["blockHash"].to_0x_hex()]
    assert rpc(env.url, "eth_uninstallFilter", filter_id) is True
    assert rpc(env.url, "eth_uninstallFilter", filter_id) is False
    assert rpc(env.url, "eth_uninstallFilter", block_filter) is True


def test_failed_transaction_is_mined_with_status_zero(env: Env, probe: Contract) -> None:
    receipt = env.send(env.accounts[0], to=probe.address, data=probe.encode_abi("ping", [5000]))
    assert receipt["status"] == 0


# --- calls, estimates and reverts ------------------------------------------------------------


def test_call_and_estimate(env: Env, probe: Contract) -> None:
    assert probe.functions.double(4).call() == 8
    # From an address with no ether, as on geth and anvil.
    stranger = "0x000000000000000000000000000000000000dEaD"
    assert probe.functions.double(3).call({"from": stranger}) == 6
    estimate = probe.functions.ping(1).estimate_gas({"from": env.accounts[0].address})
    receipt = env.send(env.accounts[0], to=probe.address, data=probe.encode_abi("ping", [1]))
    assert receipt["gasUsed"] <= estimate <= receipt["gasUsed"] * 64 // 63 + 2300
    transfer = env.w3.eth.estimate_gas({"from": stranger, "to": stranger})
    assert transfer == 21000


def test_revert_reason_reaches_web3(env: Env, probe: Contract) -> None:
    with pytest.raises(ContractLogicError, match="execution reverted: probe: too big"):
        probe.functions.double(11).call()
    with pytest.raises(ContractLogicError, match="execution reverted: probe: too big"):
        probe.functions.ping(5000).estimate_gas({"from": env.accounts[0].address})
    error = rpc_error(
        env.url, "eth_call", {"to": probe.address, "data": probe.encode_abi("double", [11])}
    )
    assert error["code"] == 3
    assert error["message"] == "execution reverted: probe: too big"
    assert error["data"].startswith("0x08c379a0")


def test_revert_without_reason(env: Env, probe: Contract) -> None:
    with pytest.raises(ContractLogicError, match="execution reverted"):
        probe.functions.bare().call()
    error = rpc_error(env.url, "eth_call", {"to": probe.address, "data": probe.encode_abi("bare")})
    assert error == {"code": 3, "message": "execution reverted"}


def test_call_at_past_block_and_eip1898(env: Env, probe: Contract) -> None:
    now = env.w3.eth.block_number
    counter_now = probe.functions.counter().call()
    env.send(env.accounts[0], to=probe.address, data=probe.encode_abi("ping", [2]))
    assert probe.functions.counter().call(block_identifier=now) == counter_now
    block_hash = env.w3.eth.get_block(now)["hash"].to_0x_hex()
    data = probe.encode_abi("counter")
    by_hash = rpc(
        env.url, "eth_call", {"to": probe.address, "data": data}, {"blockHash": block_hash}
    )
    assert int(by_hash, 16) == counter_now


# --- refusals ------------------------------------------------------------------------------


def _raw(env: Env, account: LocalAccount, **tx: Any) -> str:
    base = {
        "chainId": CHAIN_ID,
        "nonce": env.w3.eth.get_transaction_count(account.address),
        "gas": 21000,
        "to": account.address,
        "maxFeePerGas": 3 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    return account.sign_transaction({**base, **tx}).raw_transaction.to_0x_hex()


def test_nonce_too_low_and_too_high(env: Env) -> None:
    account = env.accounts[2]
    env.send(account, to=account.address, gas=21000)
    current = env.w3.eth.get_transaction_count(account.address)
    error = rpc_error(env.url, "eth_sendRawTransaction", _raw(env, account, nonce=current - 1))
    assert error["code"] == -32000
    assert error["message"].startswith(f"nonce too low: address {account.address}")
    with pytest.raises(Web3RPCError, match="nonce too low"):
        env.w3.eth.send_raw_transaction(_raw(env, account, nonce=current - 1))
    error = rpc_error(env.url, "eth_sendRawTransaction", _raw(env, account, nonce=current + 5))
    assert error["message"].startswith("nonce too high")


def test_insufficient_funds(env: Env) -> None:
    account = env.accounts[2]
    error = rpc_error(env.url, "eth_sendRawTransaction", _raw(env, account, value=10**30))
    assert error["code"] == -32000
    assert error["message"].startswith("insufficient funds for gas * price + value")


def test_wrong_chain_id_and_low_fee(env: Env) -> None:
    account = env.accounts[2]
    error = rpc_error(env.url, "eth_sendRawTransaction", _raw(env, account, chainId=1))
    assert error["message"] == "invalid chain id for signer: have 1 want 1337"
    error = rpc_error(
        env.url,
        "eth_sendRawTransaction",
        _raw(env, account, maxFeePerGas=0, maxPriorityFeePerGas=0),
    )
    assert error["message"].startswith("max fee per gas less than block base fee")


def test_garbage_raw_transaction_is_invalid_params(env: Env) -> None:
    error = rpc_error(env.url, "eth_sendRawTransaction", "0x1234")
    assert error["code"] == -32602 and "invalid raw transaction" in error["message"]


def test_unknown_and_unsupported_methods(env: Env) -> None:
    error = rpc_error(env.url, "eth_frobnicate")
    assert error == {
        "code": -32601,
        "message": "the method eth_frobnicate does not exist/is not available",
    }
    error = rpc_error(env.url, "eth_sendTransaction", {"from": env.accounts[0].address})
    assert error["code"] == -32601 and "eth_sendRawTransaction" in error["message"]


@pytest.mark.parametrize(
    ("method", "params", "needle"),
    [
        ("eth_getBalance", ["0x1234", "latest"], "address must be a 20-byte"),
        ("eth_getBalance", [], "missing its address"),
        ("eth_getBlockByNumber", ["0xq", False], "block must be a block number"),
        ("eth_getTransactionReceipt", ["0x12"], "32 bytes"),
        ("eth_blockNumber", ["extra"], "at most 0"),
        ("eth_getLogs", [{"fromBlock": "0x5", "toBlock": "0x1"}], "is after toBlock"),
        ("eth_getBalance", {"address": "0x0"}, "JSON array"),
    ],
)
def test_invalid_params(env: Env, method: str, params: Any, needle: str) -> None:
    answer = post(env.url, {"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    assert answer["id"] == 7
    assert answer["error"]["code"] == -32602
    assert needle in answer["error"]["message"]


def test_missing_things_are_null(env: Env) -> None:
    missing = "0x" + "12" * 32
    assert rpc(env.url, "eth_getTransactionReceipt", missing) is None
    assert rpc(env.url, "eth_getTransactionByHash", missing) is None
    assert rpc(env.url, "eth_getBlockByHash", missing, False) is None
    assert rpc(env.url, "eth_getBlockByNumber", "0xffffff", False) is None


# --- protocol ------------------------------------------------------------------------------


def test_batch_and_notifications(env: Env) -> None:
    answer = post(
        env.url,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
            {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # notification: no answer
            {"jsonrpc": "2.0", "id": 2, "method": "nope"},
            {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x12"]},
            "garbage",
        ],
    )
    assert [a.get("id") for a in answer] == [1, 2, 3, None]
    assert answer[0]["result"] == "0x539"
    assert answer[1]["error"]["code"] == -32601
    assert answer[2]["error"]["code"] == -32602
    assert answer[3]["error"]["code"] == -32600
    assert post(env.url, {"jsonrpc": "2.0", "method": "eth_chainId"}) is None
    assert post(env.url, [])["error"]["code"] == -32600


def test_web3_batch_requests(env: Env) -> None:
    with env.w3.batch_requests() as batch:
        batch.add(env.w3.eth.get_block_number())
        batch.add(env.w3.eth.get_balance(env.accounts[1].address))
        number, balance = batch.execute()
    assert number == env.w3.eth.block_number and balance > 0


def _http(url: str, method: str, body: bytes | None, headers: dict[str, str]) -> Any:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    conn.request(method, "/", body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def test_parse_error(env: Env) -> None:
    response, data = _http(env.url, "POST", b"{nope", {"Content-Type": "application/json"})
    assert response.status == 200
    assert json.loads(data)["error"]["code"] == -32700


def test_cors_preflight_and_headers(env: Env) -> None:
    response, _ = _http(
        env.url,
        "OPTIONS",
        None,
        {
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status == 204
    assert response.getheader("Access-Control-Allow-Origin") == "*"
    assert "POST" in response.getheader("Access-Control-Allow-Methods")
    assert response.getheader("Access-Control-Allow-Headers") == "content-type"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).encode()
    response, _ = _http(
        env.url, "POST", body, {"Content-Type": "application/json", "Origin": "http://x"}
    )
    assert response.getheader("Access-Control-Allow-Origin") == "*"


def test_foreign_host_header_is_refused(env: Env) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).encode()
    response, _ = _http(env.url, "POST", body, {"Host": "evil.example:8545"})
    assert response.status == 403
    response, _ = _http(env.url, "POST", body, {"Host": f"localhost:{urlparse(env.url).port}"})
    assert response.status == 200


# --- fees and time -------------------------------------------------------------------------


def test_fee_methods(env: Env) -> None:
    head = env.w3.eth.get_block("latest")
    assert env.w3.eth.max_priority_fee == 10**9
    assert env.w3.eth.gas_price >= head["baseFeePerGas"]
    history = env.w3.eth.fee_history(3, "latest", [10, 90])
    assert history["oldestBlock"] == max(0, head["number"] - 2)
    assert len(history["baseFeePerGas"]) == len(history["gasUsedRatio"]) + 1
    assert len(history["reward"]) == len(history["gasUsedRatio"])
    assert all(len(r) == 2 for r in history["reward"])


def test_mine_and_time_travel(env: Env) -> None:
    head = env.w3.eth.get_block("latest")
    assert rpc(env.url, "evm_mine") == "0x0"
    assert env.w3.eth.block_number == head["number"] + 1
    rpc(env.url, "evm_increaseTime", 3600)
    rpc(env.url, "evm_mine")
    later = env.w3.eth.get_block("latest")
    assert later["timestamp"] >= int(time.time()) + 3600 - 5
    target = later["timestamp"] + 100
    rpc(env.url, "evm_setNextBlockTimestamp", hex(target))
    rpc(env.url, "evm_mine")
    assert env.w3.eth.get_block("latest")["timestamp"] == target
    error = rpc_error(env.url, "evm_setNextBlockTimestamp", hex(target))
    assert error["code"] == -32602


def test_storage_and_code(env: Env, probe: Contract) -> None:
    code = env.w3.eth.get_code(probe.address)
    assert len(code) > 100
    slot0 = env.w3.eth.get_storage_at(probe.address, 0)
    assert int.from_bytes(slot0, "big") == probe.functions.counter().call()
    assert env.w3.eth.get_code(env.accounts[0].address) == b""


def test_block_transaction_lookups_and_sha3(env: Env) -> None:
    receipt = env.send(env.accounts[1], to=env.accounts[1].address, gas=21000)
    number, block_hash = hex(receipt["blockNumber"]), receipt["blockHash"].to_0x_hex()
    assert rpc(env.url, "eth_getBlockTransactionCountByNumber", number) == "0x1"
    assert rpc(env.url, "eth_getBlockTransactionCountByHash", block_hash) == "0x1"
    by_number = rpc(env.url, "eth_getTransactionByBlockNumberAndIndex", number, "0x0")
    by_hash = rpc(env.url, "eth_getTransactionByBlockHashAndIndex", block_hash, "0x0")
    assert by_number == by_hash and by_number["hash"] == receipt["transactionHash"].to_0x_hex()
    assert rpc(env.url, "eth_getTransactionByBlockNumberAndIndex", number, "0x1") is None
    assert rpc(env.url, "eth_getBlockTransactionCountByHash", "0x" + "00" * 32) is None
    assert rpc(env.url, "web3_sha3", "0x") == Web3.keccak(b"").to_0x_hex()


def test_failed_commit_stops_the_node_answering(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from databright.node.dev_chain import DevChain
    from databright.node.rpc import Dispatcher

    chain, _ = DevChain.open(tmp_path_factory.mktemp("broken"), accounts=1)
    dispatcher = Dispatcher(chain)
    assert dispatcher.call("eth_chainId", []) == "0x539"

    def disk_full() -> None:
        raise OSError("disk full")

    monkeypatch.setattr(chain, "commit", disk_full)
    for _ in range(2):
        with pytest.raises(RpcError) as info:
            dispatcher.call("eth_blockNumber", [])
        assert info.value.code == -32603
        assert "could not write its chain store (OSError: disk full)" in info.value.message


def test_call_from_a_poor_sender_is_insufficient_funds(env: Env) -> None:
    poor = "0x000000000000000000000000000000000000dEaD"
    for method in ("eth_call", "eth_estimateGas"):
        error = rpc_error(env.url, method, {"from": poor, "to": poor, "value": "0x5"})
        assert error == {
            "code": -32000,
            "message": f"insufficient funds for gas * price + value: address {poor} have 0 want 5",
        }


@pytest.mark.parametrize(
    ("py_evm", "geth"),
    [
        (
            "Invalid transaction nonce: Expected 5, but got 3",
            "nonce too low: address A, tx: 3 state: 5",
        ),
        (
            "Invalid transaction nonce: Expected 5, but got 9",
            "nonce too high: address A, tx: 9 state: 5",
        ),
        (
            "Sender b'..' cannot afford txn gas 21000 with account balance 7",
            "insufficient funds for gas * price + value: address A have 7 want 21000",
        ),
        (
            "Sender does not have enough balance to cover transaction value and gas  (has 1, needs 2)",
            "insufficient funds for gas * price + value: address A have 1 want 2",
        ),
        (
            "Sender's max fee per gas (1) is lower than block's base fee per gas (7)",
            "max fee per gas less than block base fee: address A, maxFeePerGas: 1, baseFee: 7",
        ),
        ("Transaction exceeds gas limit: using 9", "exceeds block gas limit: Transaction exceeds"),
        ("something new", "invalid transaction: something new"),
    ],
)
def test_py_evm_refusals_are_reworded_as_geth(py_evm: str, geth: str) -> None:
    from databright.node.geth_errors import rejection

    error = rejection(py_evm, "A")
    assert error.code == -32000 and error.message.startswith(geth)


def test_revert_error_shapes() -> None:
    from eth_abi import encode

    from databright.node.geth_errors import revert_error

    data = bytes.fromhex("08c379a0") + encode(["string"], ["no"])
    assert revert_error(data).to_json() == {
        "code": 3,
        "message": "execution reverted: no",
        "data": "0x" + data.hex(),
    }
    assert revert_error(b"").to_json() == {"code": 3, "message": "execution reverted"}
    custom = bytes.fromhex("deadbeef")
    assert revert_error(custom).to_json()["data"] == "0xdeadbeef"
    broken = bytes.fromhex("08c379a0") + b"\x01"
    assert revert_error(broken).message == "execution reverted"


def test_web3_fills_in_everything_itself(env: Env, probe: Contract) -> None:
    """web3's own defaults (nonce, gas estimate, EIP-1559 fees, chain id) work against the node."""
    from web3.middleware import SignAndSendRawMiddlewareBuilder

    account = env.accounts[1]
    w3 = Web3(Web3.HTTPProvider(env.url))
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
    contract = w3.eth.contract(address=probe.address, abi=PROBE_ABI)
    before = contract.functions.counter().call()
    tx_hash = contract.functions.ping(3).transact({"from": account.address})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1 and receipt["type"] == 2
    assert contract.functions.counter().call() == before + 3
    env.nonces.pop(account.address, None)  # web3 used a nonce behind Env's back
