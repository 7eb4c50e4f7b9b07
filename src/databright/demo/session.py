"""The market session of ``make run``: the cast of :mod:`databright.demo.cast` on a live chain.

An initiator creates a dataset; eight contributors propose (honest ones, a careless one, a
copier, a poisoner, a late honest one), each paying the evaluation fee; the evaluator service
values each proposal and commits to its sealed score, reveals it when the commit phase is over
(the session moves the development chain's clock ahead), and collects its fee; every
shareholder votes, once voting opens, as the valuation advises; proposals are finalized; a model
developer pays for using the dataset; and every shareholder claims its dividend. Each run
creates a new dataset, so it can run again on the same chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.chain.keystore import Keystore
from databright.demo.cast import Contribution, digits_scenario
from databright.demo.compute import run_compute_round
from databright.demo.federation import run_federated_round
from databright.demo.models import run_model_round
from databright.demo.split import run_split_round
from databright.errors import DataBrightError
from databright.market import SHARE_UNIT, Governance, Market, ProposalInfo
from databright.market.evaluator import EvaluatorService
from databright.models import ModelMarket
from databright.storage import DatasetSchema, validate_examples
from databright.types import Wei

__all__ = ["ACCEPT_BPS", "PAYMENT_WEI", "run_session"]

# Voters accept a proposal judged at least half as useful per example as the data already in.
ACCEPT_BPS = 5000
PAYMENT_WEI = Wei(10**18)
COMMIT_S = REVEAL_S = 60  # evaluation phases; the session moves the chain's clock past them
EVALUATION_FEE_WEI = Wei(10**15)
DEPOSIT_WEI = Wei(10**16)  # returned if accepted or scored positive, else to the shareholders


def _silent(line: str) -> None:
    del line


def run_session(
    rpc: str, data_dir: Path, seed: int, say: Callable[[str], None] = _silent
) -> dict[str, Any]:
    """Play the whole cast on a new dataset and return the session's summary (JSON-able).

    ``say`` receives one line of plain text per step (it may hold chain strings: print it
    without markup); the default prints nothing.
    """
    keystore = Keystore(data_dir / "keystore")
    cast = digits_scenario(seed)
    needed = 2 + len(cast.contributions)
    if len(keystore.addresses()) < needed:
        raise DataBrightError(
            f"the session needs {needed} funded accounts in {keystore.directory}, found "
            f"{len(keystore.addresses())}; use the embedded node's data dir"
        )
    accounts = [keystore.load(i) for i in range(needed)]
    initiator, evaluator_acct, contributors = accounts[0], accounts[1], accounts[2:]

    deployment, new = deploy(connect(rpc, keystore.load(0)), data_dir)
    say(f"market: DataMarket at {deployment['DataMarket']}"
         + (f" (deployed now: {', '.join(new)})" if new else ""))  # fmt: skip

    market = Market.connect(rpc, initiator, data_dir)
    # One client per account: two clients of one account would race for its nonces.
    clients: dict[str, Market] = {initiator.address: market}
    for acct in accounts[1:]:
        clients[acct.address] = market.as_account(acct)
    schema = DatasetSchema(
        task="classification", feature_shape=(64,), dtype="float32", labels=cast.labels,
        name="digits 8x8",
    )  # fmt: skip
    name = f"digits #{market.dataset_count() + 1}"
    initial = validate_examples(cast.initial_X, cast.initial_y, schema, source="initial data")
    dataset_id = market.create_dataset(
        name, schema, initial,
        Governance(voting_period_s=3600, quorum_bps=2000, threshold_bps=5000,
                   evaluators=(evaluator_acct.address,), commit_period_s=COMMIT_S,
                   reveal_period_s=REVEAL_S, evaluation_fee_wei=EVALUATION_FEE_WEI,
                   deposit_wei=DEPOSIT_WEI),
    )  # fmt: skip
    say(f"dataset {dataset_id} {name!r}: {len(initial)} initial examples, "
         f"initiator {initiator.address}")  # fmt: skip

    validation = validate_examples(
        cast.validation_X, cast.validation_y, schema, source="validation"
    )
    evaluator = EvaluatorService(clients[evaluator_acct.address], dataset_id, validation)

    rows: list[dict[str, Any]] = []
    fees_collected = 0
    forfeited = 0
    # Rounds: a contribution that joins another proposes while that one is still pending.
    rounds: list[list[tuple[Contribution, LocalAccount]]] = []
    round_of: dict[str, list[tuple[Contribution, LocalAccount]]] = {}
    for contribution, acct in zip(cast.contributions, contributors, strict=True):
        if contribution.joins is not None and contribution.joins in round_of:
            round_of[contribution.joins].append((contribution, acct))
        else:
            rounds.append([(contribution, acct)])
            round_of[contribution.name] = rounds[-1]

    for members in rounds:
        proposed: list[tuple[Contribution, LocalAccount, ProposalInfo]] = []
        for contribution, acct in members:
            examples = validate_examples(
                contribution.X, contribution.y, schema, source=contribution.name
            )
            try:
                proposed.append(
                    (contribution, acct, clients[acct.address].propose(dataset_id, examples))
                )
            except DataBrightError as exc:
                rows.append(_row(contribution, acct.address, None, None, "refused", str(exc)))
                say(f"  {contribution.name:8} refused at proposal: {exc}")
        if not proposed:
            continue
        # The evaluator values them in arrival order: a later one is compared with the earlier.
        posted = {}
        for contribution, _, proposal in proposed:
            posted[proposal.id] = evaluator.evaluate(proposal)  # a sealed commitment
            say(f"  {contribution.name:8} proposal {proposal.sequence}: fee "
                f"{EVALUATION_FEE_WEI} wei paid; evaluator committed a sealed score")  # fmt: skip
        market.gateway.advance_to(max(p.commit_end for _, _, p in proposed))
        revealed = {r.proposal_id: r.score_bps for r in evaluator.reveal_due()}
        market.gateway.advance_to(max(p.voting_opens for _, _, p in proposed))
        for contribution, acct, proposal in proposed:
            fee = clients[evaluator_acct.address].collect_evaluation_fee(proposal.id)
            fees_collected += int(fee)
            say(f"  {contribution.name:8} proposal {proposal.sequence}: evaluator revealed "
                f"{revealed.get(proposal.id, 'nothing')} bps, collected {fee} wei; "
                "voting opens")  # fmt: skip
            score = posted[proposal.id].score_bps
            final, kept = _settle(market, clients, [initiator, *contributors], proposal,
                                  support=score >= ACCEPT_BPS)  # fmt: skip
            if kept:
                back = clients[acct.address].reclaim_deposit(proposal.id)
                say(f"  {contribution.name:8} proposal {final.sequence}: deposit of {back} wei "
                    "returned")  # fmt: skip
            else:
                forfeited += DEPOSIT_WEI
                say(f"  {contribution.name:8} proposal {final.sequence}: deposit of "
                    f"{DEPOSIT_WEI} wei forfeited to the shareholders")  # fmt: skip
            rows.append(_row(contribution, acct.address, final, score, final.status,
                             "; ".join(posted[proposal.id].flags)))  # fmt: skip
            say(f"  {contribution.name:8} ({contribution.role:8}) proposal {final.sequence}: "
                f"score {score:6d} bps -> {final.status:8} "
                f"{final.shares / SHARE_UNIT:8.2f} shares")  # fmt: skip

    # A sponsor pays the dataset directly; then the model market uses it: a model trained on
    # it pays the training fee, and its predictions pay the shareholders' part.
    buyer = Account.create()
    market.gateway.transfer(buyer.address, Wei(2 * PAYMENT_WEI))
    market.as_account(buyer).pay(dataset_id, PAYMENT_WEI)
    say(f"payment: {buyer.address} paid 1 ETH to dataset {dataset_id}")
    model_round = run_model_round(
        market,
        clients[evaluator_acct.address],
        dataset_id,
        (validation.X.astype("float32"), validation.y.astype("int64")),
        say,
    )
    # The computation market trains the same spec through staked workers (one of them lazy),
    # verified by triple redundancy; its trainer pays the dataset's training fee too.
    compute_round = run_compute_round(market, dataset_id, say)
    # Federated training under the same coordinator: four data owners (one attacking) train on
    # their own data and are paid by how much their updates helped.
    federated_round = run_federated_round(market, compute_round["coordinator"], say)
    # Model splitting: the same data, a model whose layers are on two worker processes that
    # never hold all of it; a cheating stage worker is caught by an audit.
    split_round = run_split_round(market, dataset_id, say)
    models = ModelMarket.over(market)
    claimed: dict[str, int] = {}  # address -> wei
    income: dict[str, dict[str, int]] = {}
    for acct in [initiator, *contributors]:
        me = clients[acct.address]
        if me.claimable(dataset_id) > 0:
            income[acct.address] = models.income(dataset_id, acct.address)
            claimed[acct.address] = int(me.claim(dataset_id))
    holders: dict[str, int] = {h.address: h.shares for h in market.shareholders(dataset_id)}
    for row in rows:
        row["dividend_wei"] = claimed.get(row["address"], 0)
        row["shares_held"] = holders.get(row["address"], 0)
        row["from_training_wei"] = income.get(row["address"], {}).get("training_wei", 0)
        row["from_predictions_wei"] = income.get(row["address"], {}).get("predictions_wei", 0)
    token = market.token(dataset_id)
    return {
        "rpc": rpc,
        "chain_id": market.gateway.chain_id,
        "dataset_id": dataset_id,
        "dataset": name,
        "initiator": {
            "address": initiator.address,
            "shares": holders.get(initiator.address, 0),
            "dividend_wei": claimed.get(initiator.address, 0),
            "from_training_wei": income.get(initiator.address, {}).get("training_wei", 0),
            "from_predictions_wei": income.get(initiator.address, {}).get("predictions_wei", 0),
        },
        "model": model_round,
        "compute": compute_round,
        "federation": federated_round,
        "split": split_round,
        "evaluator": evaluator_acct.address,
        "evaluation_fees_wei": fees_collected,
        "deposits_forfeited_wei": forfeited,
        "payment_wei": PAYMENT_WEI,
        "total_claimed_wei": int(token.total_claimed()),
        "dust_wei": int(token.dust()) / token.MAGNITUDE(),  # the token keeps dust magnified
        "registry_entries": market.dataset(dataset_id).registry_length,
        "proposals": rows,
    }


def _settle(
    market: Market,
    clients: Mapping[str, Market],
    voters: list[LocalAccount],
    proposal: ProposalInfo,
    support: bool,
) -> tuple[ProposalInfo, bool]:
    """Every shareholder at the snapshot block (the one before the proposal's) votes as the
    valuation advises; then the proposal is finalized. Returns it and whether the contributor
    keeps its deposit (accepted, or scored positive)."""
    for voter in voters:
        if market.contract.call("ballot", proposal.id, voter.address)[0]:
            continue
        weight = market.token(proposal.dataset_id).balance_at(
            voter.address, proposal.snapshot_block
        )
        if weight == 0 or market.proposal(proposal.id).outcome != "pending":
            continue
        clients[voter.address].vote(proposal.id, support)
    final = market.finalize(proposal.id)
    return final, final.status == "accepted" or final.quality_weight_bps > 0


def _row(
    c: Any, address: str, p: Any, score: int | None, decision: str, note: str
) -> dict[str, Any]:
    return {
        "contributor": c.name,
        "role": c.role,
        "address": address,
        "data": c.note,
        "proposal": p.sequence if p else None,
        "score_bps": score,
        "yes": p.yes_votes if p else 0,
        "no": p.no_votes if p else 0,
        "decision": decision,
        "shares_minted": p.shares if p and p.status == "accepted" else 0,
        "flags": note,
    }
