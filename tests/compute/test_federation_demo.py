"""The federated round of ``make run`` end to end on a real node: a federation escrowed for four
named clients, ``databright federation serve`` and four ``databright federation client``
processes (one sending sign-flipped updates), the federation started and settled on chain, the
clients paid by contribution (the attacker least) and withdrawing, every process stopped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.compute.attestation import SoftwareProvider, report_data_for
from databright.compute.federated import check_scores_evidence
from databright.compute.market import ComputeMarket
from databright.demo.compute import _save_dev_key
from databright.demo.federation import CLIENTS, ESCROW_WEI, ROUNDS, run_federated_round
from databright.market import Market
from databright.types import Wei


def test_the_federated_round_pays_the_owners_by_contribution(node, tmp_path: Path) -> None:
    if node.kind != "anvil":
        pytest.skip("the embedded node runs this round inside the whole session (tests/demo)")
    deploy(connect(node.url, node.accounts[0]), tmp_path)
    market = Market.connect(node.url, node.accounts[0], tmp_path)
    admin = ComputeMarket.over(market)
    coordinator = Account.create()
    market.gateway.transfer(coordinator.address, Wei(10**17))
    _save_dev_key(Keystore(tmp_path / "keystore"), coordinator)
    claims = SoftwareProvider().verify(
        SoftwareProvider.attest(
            coordinator.key,
            measurement="ef" * 32,
            report_data=report_data_for(coordinator.address),
            issued_at=int(time.time()),
        )
    )
    admin.allow_coordinator(coordinator.address, claims, allow_insecure=True)
    lines: list[str] = []

    f = run_federated_round(market, coordinator.address, lines.append)

    assert f["status"] == "settled" and f["rounds"] == ROUNDS and len(f["clients"]) == CLIENTS
    payouts = f["payouts_wei"]
    assert payouts[f["attacker"]] == min(payouts.values()) and sum(payouts.values()) > 0
    assert sum(payouts.values()) == f["paid_wei"] <= ESCROW_WEI
    # the payouts are what anyone recomputes from the scores stored by CID
    evidence = admin.federation_evidence(f["federation_id"])
    assert check_scores_evidence(evidence) == payouts
    assert f["withdrawn_wei"] == {a: w for a, w in payouts.items()}
    assert f["accuracy"][-1] > max(0.5, f["accuracy"][0])  # it learned, despite the attacker
    assert f["processes"]["all_stopped"]
    assert any("sign-flipped" in line for line in lines)
