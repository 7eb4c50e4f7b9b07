"""Gas per paid prediction: one settlement of N signed cumulative receipts vs a payment each.

Run ``python benchmarks/prediction_gas.py [--predictions 1000]``. On a fresh anvil (cancun)
it deploys the markets, creates a dataset, registers a model (the shipped demo spec, trained
for one epoch on the initial data), deposits, signs N receipts (one per prediction, as the
serving path does; the node keeps only the latest) and settles the last one in ONE
transaction; the gas of that receipt is the figure. Peers measured in the same run: a plain
ETH transfer per prediction (the least any per-prediction transaction costs) and a
settlement per prediction (a receipt settled after every request).

Goal (issue 10): <= 200 gas per prediction amortised over 1,000.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from databright_dev.anvil import anvil_accounts, start_anvil

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.demo.cast import digits_scenario
from databright.demo.models import demo_spec
from databright.market import Governance, Market
from databright.models import ModelMarket, Terms
from databright.models.receipts import sign_receipt
from databright.storage import DatasetSchema, validate_examples
from databright.types import Wei

GOAL = 200


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--predictions", type=int, default=1000)
    args = p.parse_args()
    n = args.predictions
    node = start_anvil(_port())
    try:
        accounts = anvil_accounts(5)
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            deploy(connect(node.url, accounts[0]), data_dir)
            market = Market.connect(node.url, accounts[0], data_dir)
            cast = digits_scenario(seed=1)
            schema = DatasetSchema(task="classification", feature_shape=(64,), dtype="float32",
                                   labels=cast.labels)  # fmt: skip
            initial = validate_examples(cast.initial_X, cast.initial_y, schema, source="initial")
            ds = market.create_dataset("gas", schema, initial, Governance())
            mm = ModelMarket.over(market)
            mm.set_terms(ds, Terms(training_fee_wei=0, base_price_wei=10**12))
            spec = demo_spec()
            trained, _ = mm.train(ds, type(spec).from_dict({**spec.to_dict(), "epochs": 1}))
            model = mm.register(trained, name="gas", price_wei=10**12, node=accounts[1].address)
            node_side = mm.as_account(accounts[1])
            user = mm.as_account(accounts[2])
            price = model.price_wei
            user.deposit(model.id, (n + 10) * price)

            t0 = time.perf_counter()
            receipts = [sign_receipt(accounts[2], mm.domain, model.id, (i + 1) * price, i + 1)
                        for i in range(n)]  # fmt: skip
            sign_s = time.perf_counter() - t0
            last = receipts[-1]
            batch = node_side.contract.settle(model.id, last.user, last.total, last.nonce,
                                              last.signature)  # fmt: skip
            # Peers: a receipt settled after every request, and a bare ETH transfer.
            each = []
            for i in range(n, n + 10):
                r = sign_receipt(accounts[2], mm.domain, model.id, (i + 1) * price, i + 1)
                each.append(
                    node_side.contract.settle(
                        model.id, r.user, r.total, r.nonce, r.signature
                    ).gas_used
                )
            transfer = connect(node.url, accounts[3]).transfer(accounts[4].address, Wei(price))
    finally:
        node.stop()
    per = batch.gas_used / n
    print(f"{n} predictions, price {price} wei, anvil (cancun)")
    print(f"{'way to pay':48} {'gas per prediction':>20}")
    print(f"{'one settlement of the latest receipt':48} {per:20.1f}")
    print(f"{'a settlement per prediction (peer)':48} {sum(each) / len(each):20.0f}")
    print(f"{'a plain ETH transfer per prediction (peer)':48} {transfer.gas_used:20.0f}")
    print(f"settlement transaction: {batch.gas_used} gas; signing {n} receipts took "
          f"{sign_s:.2f} s ({1e6 * sign_s / n:.0f} us each)")  # fmt: skip
    verdict = "met" if per <= GOAL else "MISSED"
    print(f"goal <= {GOAL} gas per prediction: {verdict} "
          f"({transfer.gas_used / per:.0f}x cheaper than a transfer each)")  # fmt: skip


if __name__ == "__main__":
    main()
