"""A federated run paid from its on-chain escrow, end to end on a real node (both kinds).

A payer escrows a federation for an attested coordinator and five data owners; the coordinator
starts training, after which the payer's attempt to withdraw the running escrow is refused (by
the SDK in one sentence and, going around it, by the contract itself); a few rounds of federated
training on digits score each client by leave-one-out on the coordinator's validation set;
``settle_contributions`` posts exactly ``payout_wei`` of the escrow by those scores with the
per-round scores stored by CID; each client checks the evidence and pulls its payout. The
deadline reclaim, open joining and the SDK's one-sentence refusals are tested too.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sklearn.datasets import load_digits

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.compute.attestation import Claims, SoftwareProvider, report_data_for
from databright.compute.federated import (
    Attack,
    Client,
    FederatedResult,
    check_scores_evidence,
    payout_wei,
    run_federated,
    scores_evidence,
    settle_contributions,
    split_iid,
)
from databright.compute.market import ComputeMarket
from databright.demo.federation import SPEC as DEMO_SPEC
from databright.errors import (
    ContractReverted,
    DuplicateSubmission,
    InsufficientFunds,
    InvalidArgument,
    NotFound,
    NotPermitted,
)
from databright.market import Market
from databright.ml.spec import ModelSpec
from databright.types import Wei

MEASUREMENT = "cd" * 32
ESCROW = 10**17
CLIENTS = 5
DEADLINE_S = 3_600
SPEC = ModelSpec.from_dict(DEMO_SPEC)  # the federated round of `make run` trains it


@pytest.fixture(scope="module")
def run() -> FederatedResult:
    """Three rounds among five clients (one flips its labels), scored by leave-one-out."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(1).permutation(len(y))
    x = (x[order] / 16).astype(np.float32)
    y = y[order].astype(np.int64)
    xt, yt, xv, yv = x[:400], y[:400], x[1300:1500], y[1300:1500]
    clients = [
        Client(xt[idx], yt[idx], Attack("label_flip") if i == 4 else None)
        for i, idx in enumerate(split_iid(yt, CLIENTS))
    ]
    return run_federated(SPEC, clients, xv, yv, rounds=3, local_epochs=2, contributions=True)


def software_claims(acct: LocalAccount) -> Claims:
    evidence = SoftwareProvider.attest(
        acct.key,
        measurement=MEASUREMENT,
        report_data=report_data_for(acct.address),
        issued_at=int(time.time()),
    )
    return SoftwareProvider().verify(evidence)


def funded(cm: ComputeMarket, wei: int = 10**18) -> ComputeMarket:
    acct: LocalAccount = Account.create()
    cm.market.gateway.transfer(acct.address, Wei(wei))
    return cm.as_account(acct)


@dataclass
class Parties:
    admin: ComputeMarket
    coordinator: ComputeMarket
    payer: ComputeMarket
    clients: list[ComputeMarket]

    @property
    def addresses(self) -> list[str]:
        return [c.address for c in self.clients]

    def federation(self, **kw: Any) -> int:
        spec_cid = self.payer.market.store.put(b"federated digits spec")
        args = {"clients": self.addresses, **kw}
        return self.payer.create_federation(
            self.coordinator.address, ESCROW, DEADLINE_S, spec_cid, **args
        ).id


@pytest.fixture(scope="module")
def parties(node: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parties]:
    """One deployment per node kind: an allowed coordinator, a payer and five clients."""
    data_dir = tmp_path_factory.mktemp("federated-escrow")
    deploy(connect(node.url, node.accounts[0]), data_dir)
    admin = ComputeMarket.over(Market.connect(node.url, node.accounts[0], data_dir))
    coordinator = funded(admin)
    coord_acct = coordinator.market.gateway.account
    assert coord_acct is not None
    admin.allow_coordinator(coordinator.address, software_claims(coord_acct), allow_insecure=True)
    yield Parties(admin, coordinator, funded(admin), [funded(admin) for _ in range(CLIENTS)])


def test_a_federated_run_is_paid_from_its_escrow_and_the_payer_cannot_withdraw_it(
    parties: Parties, run: FederatedResult
) -> None:
    payer, coordinator = parties.payer, parties.coordinator
    f = parties.federation()
    info = payer.federation(f)
    assert (info.status, info.amount_wei, info.clients) == ("open", ESCROW, CLIENTS)
    assert info.escrowed_wei == ESCROW and info.scores_cid is None
    started = coordinator.start_federation(f)
    assert started.status == "running" and started.started_at > 0

    # The attack: the payer tries to take the running escrow back, through the SDK and around it.
    with pytest.raises(NotPermitted, match="training started"):
        payer.cancel_federation(f)
    with pytest.raises(NotPermitted, match="runs until its deadline"):
        payer.reclaim_federation(f)
    with pytest.raises(ContractReverted, match="compute_market: training started"):
        payer.contract.cancel_federation(f)
    with pytest.raises(ContractReverted, match="compute_market: deadline not reached"):
        payer.contract.reclaim_federation(f)
    assert payer.federation(f).status == "running" and payer.balance() == 0

    settlement = settle_contributions(coordinator, f, run, parties.addresses)
    expected = payout_wei(ESCROW, run.contributions)
    assert sum(expected) == ESCROW  # somebody helped: the whole escrow is paid out
    assert list(settlement.payouts.values()) == expected
    assert list(settlement.payouts) == parties.addresses
    assert (settlement.paid_wei, settlement.refund_wei) == (ESCROW, 0)
    settled = payer.federation(f)
    assert settled.status == "settled" and settled.scores_cid == settlement.scores_cid
    assert (settled.paid_wei, settled.refund_wei, settled.escrowed_wei) == (ESCROW, 0, 0)
    for client, owed in zip(parties.clients, expected, strict=True):
        p = client.participant(f)
        assert (p.joined, p.posted, p.payout_wei) == (True, True, owed)

    # Any client fetches the evidence by its CID and recomputes the payouts from the scores.
    evidence = parties.clients[0].federation_evidence(f)
    assert check_scores_evidence(evidence) == dict(zip(parties.addresses, expected, strict=True))
    assert len(evidence["rounds"]) == 3
    assert np.allclose(evidence["contributions"], run.contributions)

    # Pull payments: every client with a payout withdraws it once; nothing is left.
    for client, owed in zip(parties.clients, expected, strict=True):
        if owed:
            assert client.withdraw() == owed
        with pytest.raises(NotFound, match="nothing credited"):
            client.withdraw()
    with pytest.raises(NotPermitted, match="payouts are posted once"):
        coordinator.settle_federation(f, {parties.addresses[0]: 1}, {"again": True})
    with pytest.raises(DuplicateSubmission, match="settled already"):
        payer.reclaim_federation(f)


def test_part_of_the_escrow_is_paid_and_the_rest_returns_to_the_payer(
    parties: Parties, run: FederatedResult
) -> None:
    payer, coordinator = parties.payer, parties.coordinator
    f = parties.federation()
    coordinator.start_federation(f)
    with pytest.raises(InvalidArgument, match="cannot pay"):
        settle_contributions(coordinator, f, run, parties.addresses, amount_wei=ESCROW + 1)
    before = payer.balance()
    settlement = settle_contributions(
        coordinator, f, run, parties.addresses, amount_wei=ESCROW // 2
    )
    assert list(settlement.payouts.values()) == payout_wei(ESCROW // 2, run.contributions)
    assert settlement.refund_wei == ESCROW - ESCROW // 2
    assert payer.balance() == before + ESCROW - ESCROW // 2
    assert payer.withdraw() == before + ESCROW - ESCROW // 2


def test_the_payer_reclaims_a_federation_nobody_settled_after_its_deadline(
    parties: Parties,
) -> None:
    payer, coordinator = parties.payer, parties.coordinator
    f = parties.federation()
    coordinator.start_federation(f)
    with pytest.raises(NotPermitted, match=r"only federation .* payer"):
        coordinator.reclaim_federation(f)
    deadline = payer.federation(f).deadline
    payer.market.gateway.advance_to(deadline)
    with pytest.raises(NotPermitted, match=r"deadline .* has passed"):
        coordinator.settle_federation(f, {parties.addresses[0]: 1}, {"late": True})
    assert payer.reclaim_federation(f) == ESCROW
    assert payer.federation(f).status == "reclaimed"
    assert payer.withdraw() == ESCROW
    with pytest.raises(DuplicateSubmission, match="reclaimed already"):
        payer.reclaim_federation(f)


def test_clients_join_an_open_federation_until_the_coordinator_starts(parties: Parties) -> None:
    payer, coordinator = parties.payer, parties.coordinator
    f = parties.federation(clients=[], open_joining=True)
    with pytest.raises(NotPermitted, match="no clients yet"):
        coordinator.start_federation(f)
    joined = parties.clients[0].join_federation(f)
    assert joined.joined and not joined.posted
    with pytest.raises(DuplicateSubmission, match="already"):
        parties.clients[0].join_federation(f)
    coordinator.start_federation(f)
    with pytest.raises(NotPermitted, match="join only before training starts"):
        parties.clients[1].join_federation(f)
    named = parties.federation(clients=parties.addresses[:1])
    with pytest.raises(NotPermitted, match="only the clients its payer named"):
        parties.clients[1].join_federation(named)
    assert payer.cancel_federation(named) == ESCROW  # before the start: a full refund
    with pytest.raises(DuplicateSubmission, match="cancelled already"):
        payer.cancel_federation(named)
    with pytest.raises(NotPermitted, match="is cancelled"):
        coordinator.start_federation(named)
    payer.withdraw()


def test_bad_input_is_refused_in_one_sentence(parties: Parties, run: FederatedResult) -> None:
    payer, coordinator = parties.payer, parties.coordinator
    c = parties.addresses
    spec_cid = payer.market.store.put(b"spec")
    create = payer.create_federation
    with pytest.raises(InvalidArgument, match="not an Ethereum address"):
        create("0x1234", ESCROW, DEADLINE_S, spec_cid, c)
    with pytest.raises(InvalidArgument, match="positive amount"):
        create(coordinator.address, 0, DEADLINE_S, spec_cid, c)
    with pytest.raises(InvalidArgument, match="in the future"):
        create(coordinator.address, ESCROW, 0, spec_cid, c)
    with pytest.raises(InvalidArgument, match="needs clients"):
        create(coordinator.address, ESCROW, DEADLINE_S, spec_cid, [])
    with pytest.raises(InvalidArgument, match="repeated"):
        create(coordinator.address, ESCROW, DEADLINE_S, spec_cid, [c[0], c[0].lower()])
    with pytest.raises(InvalidArgument, match="not one string"):
        create(coordinator.address, ESCROW, DEADLINE_S, spec_cid, c[0])
    with pytest.raises(NotPermitted, match="not an allowed coordinator"):
        create(payer.address, ESCROW, DEADLINE_S, spec_cid, c)
    with pytest.raises(InsufficientFunds, match="fund the account"):
        funded(parties.admin, 10**15).create_federation(
            coordinator.address, ESCROW, DEADLINE_S, spec_cid, c
        )
    with pytest.raises(NotFound, match="does not exist"):
        payer.federation(10**6)

    f = parties.federation()
    with pytest.raises(NotPermitted, match="only it starts training"):
        payer.start_federation(f)
    with pytest.raises(NotPermitted, match="payouts are posted once"):
        coordinator.settle_federation(f, {c[0]: 1}, {})  # not started
    with pytest.raises(NotFound, match="only a settled one has evidence"):
        payer.federation_evidence(f)
    with pytest.raises(NotPermitted, match="payer or coordinator"):
        parties.clients[0].cancel_federation(f)
    coordinator.start_federation(f)
    settle = coordinator.settle_federation
    with pytest.raises(NotPermitted, match="only it starts training and posts payouts"):
        payer.settle_federation(f, {c[0]: 1}, {})
    with pytest.raises(InvalidArgument, match="more than federation"):
        settle(f, {c[0]: ESCROW, c[1]: 1}, {})
    with pytest.raises(InvalidArgument, match="at least 0"):
        settle(f, {c[0]: -1}, {})
    with pytest.raises(NotPermitted, match="not a client"):
        settle(f, {payer.address: 1}, {})
    with pytest.raises(InvalidArgument, match="JSON object"):
        settle(f, {c[0]: 1}, {"score": float("nan")})
    with pytest.raises(InvalidArgument, match="one client address per client"):
        settle_contributions(coordinator, f, run, c[:4])
    with pytest.raises(InvalidArgument, match="share an address"):
        settle_contributions(coordinator, f, run, [c[0], *c[:4]])
    unscored = FederatedResult(
        run.module, run.state, (), run.contributions, run.shares, run.seconds
    )
    with pytest.raises(InvalidArgument, match="contributions=True"):
        settle_contributions(coordinator, f, unscored, c)
    assert payer.federation(f).status == "running"  # nothing above reached the chain


def test_tampered_evidence_is_caught(run: FederatedResult) -> None:
    clients = [Account.create().address for _ in range(CLIENTS)]
    evidence = scores_evidence(run, [c.lower() for c in clients], ESCROW)
    assert evidence["clients"] == clients  # one spelling: checksummed, as the chain names them
    with pytest.raises(InvalidArgument, match="not an Ethereum address"):
        scores_evidence(run, [*clients[:4], "0x1234"], ESCROW)
    assert check_scores_evidence(evidence) == dict(
        zip(clients, payout_wei(ESCROW, run.contributions), strict=True)
    )
    moved = dict(evidence, payouts_wei=[*evidence["payouts_wei"][1:], evidence["payouts_wei"][0]])
    if moved["payouts_wei"] != evidence["payouts_wei"]:
        with pytest.raises(InvalidArgument, match="are not payout_wei"):
            check_scores_evidence(moved)
    inflated = dict(evidence, contributions=[s + 1.0 for s in evidence["contributions"]])
    with pytest.raises(InvalidArgument, match="not the sums of its rounds"):
        check_scores_evidence(inflated)
    with pytest.raises(InvalidArgument, match="not a federated-scores document"):
        check_scores_evidence({"format": "something else"})
