"""Shared helpers for the contract tests: the standard world, digests, events, storage pokes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boa
import boa.interpret
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
HELPERS = Path(__file__).parent / "helpers"

# titanoboa caches compiled contracts under ~/.cache by default; keep it in the project.
boa.interpret.set_cache_dir(str(ROOT / ".cache" / "titanoboa"))

# Hypothesis profiles for the state machines (applied per test class, never loaded globally so
# that other packages' tests keep their own settings). DATABRIGHT_CONTRACTS_PROFILE=thorough
# runs the long version.
settings.register_profile(
    "databright-contracts",
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "databright-contracts-thorough",
    max_examples=400,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = (
    "databright-contracts-thorough"
    if os.environ.get("DATABRIGHT_CONTRACTS_PROFILE") == "thorough"
    else "databright-contracts"
)

UNIT = 10**18  # share units per example at weight 1.0
VOTING_PERIOD = 3_600
QUORUM_BPS = 2_000
THRESHOLD_BPS = 5_000
CAP_BPS = 20_000
COMMIT_PERIOD = 600  # evaluated datasets: commit phase, then reveal phase, then voting
REVEAL_PERIOD = 600
STATUS = {"none": 0, "pending": 1, "accepted": 2, "rejected": 3, "expired": 4}


def cid(tag: int) -> bytes:
    """A non-zero stand-in for a 32-byte CID digest or Merkle root."""
    return tag.to_bytes(32, "big")


@dataclass
class World:
    """The session's market and its standard dataset.

    Dataset 1: 100 initial examples; the initiator keeps 50 shares, alice holds 30, bob 20;
    one evaluator; carol and the contributor hold nothing.
    """

    share_token: Any  # deployer (compiled ShareToken)
    market_deployer: Any
    blueprint: Any
    market: Any
    token: Any
    dataset_id: int
    initiator: str
    evaluator: str
    alice: str
    bob: str
    carol: str
    contributor: str

    def propose(
        self,
        tag: int,
        examples: int = 10,
        sender: str | None = None,
        dataset_id: int | None = None,
        mine: bool = True,
    ) -> int:
        """Commit, mine a block, and propose as `sender` (the contributor); then mine a block
        unless `mine` is False, so that the outcome may be settled (never in the proposal's own
        block)."""
        return self.propose_paid(
            tag, dataset_id or self.dataset_id, 0, examples, sender=sender, mine=mine
        )

    def commit_proposal(
        self, sender: str, dataset_id: int, data: bytes, root: bytes, examples: int, meta: bytes
    ) -> None:
        """Commit `sender` to a proposal and mine a block: `propose` may follow."""
        commitment = self.market.proposal_commitment(sender, dataset_id, data, root, examples, meta)
        with boa.env.prank(sender):
            self.market.commit_proposal(commitment)
        mine_block()

    def evaluated(self, evaluators: list[str] | None = None, fee: int = 0) -> int:
        """A dataset like the standard one (initiator 50, alice 30, bob 20 shares) with commit and
        reveal phases, `evaluators` (default: the evaluator) and an evaluation fee."""
        d = self.create(
            self.initiator, evaluators=evaluators, commit=COMMIT_PERIOD, reveal=REVEAL_PERIOD,
            fee=fee, root=cid(0xC3),
        )  # fmt: skip
        token = self.token_of(d)
        with boa.env.prank(self.initiator):
            token.transfer(self.alice, 30 * UNIT)
            token.transfer(self.bob, 20 * UNIT)
        mine_block()
        return d

    def propose_paid(
        self,
        tag: int,
        dataset_id: int,
        value: int,
        examples: int = 10,
        sender: str | None = None,
        mine: bool = True,
    ) -> int:
        sender = sender or self.contributor
        terms = (cid(tag), cid(tag + 1), examples, cid(tag + 2))
        self.commit_proposal(sender, dataset_id, *terms)
        with boa.env.prank(sender):
            pid = int(self.market.propose(dataset_id, *terms, value=value))
        if mine:
            mine_block()
        return pid

    def commit(self, proposal_id: int, evaluator: str, score: int, salt: int = 7) -> None:
        commitment = self.market.commitment_of(proposal_id, evaluator, score, cid(0xE1), cid(salt))
        with boa.env.prank(evaluator):
            self.market.commit_evaluation(proposal_id, commitment)

    def reveal(self, proposal_id: int, evaluator: str, score: int, salt: int = 7) -> None:
        with boa.env.prank(evaluator):
            self.market.reveal_evaluation(proposal_id, score, cid(0xE1), cid(salt))

    def until(self, timestamp: int) -> None:
        """Travel to `timestamp` (at least one block on)."""
        boa.env.time_travel(seconds=max(timestamp - boa.env.timestamp, 12))

    def vote(self, proposal_id: int, voter: str, support: bool = True) -> None:
        with boa.env.prank(voter):
            self.market.vote(proposal_id, support)

    def token_of(self, dataset_id: int) -> Any:
        return self.share_token.at(self.market.share_token(dataset_id))

    def create(
        self, initiator: str, examples: int = 100, evaluators: list[str] | None = None, **kw: Any
    ) -> int:
        args = {
            "name": "Digits",
            "metadata": cid(0xA1),
            "data": cid(0xA2),
            "root": cid(0xA3),
            "examples": examples,
            "period": VOTING_PERIOD,
            "min_period": 0,
            "quorum": QUORUM_BPS,
            "threshold": THRESHOLD_BPS,
            "evaluators": [self.evaluator] if evaluators is None else evaluators,
            "cap": CAP_BPS,
            "commit": 0,
            "reveal": 0,
            "fee": 0,
            "deposit": 0,
        }
        args.update(kw)
        with boa.env.prank(initiator):
            return int(
                self.market.create_dataset(
                    args["name"], args["metadata"], args["data"], args["root"], args["examples"],
                    args["period"], args["min_period"], args["quorum"], args["threshold"],
                    args["evaluators"], args["cap"], args["commit"], args["reveal"], args["fee"], args["deposit"],
                )
            )  # fmt: skip


def mine_block(blocks: int = 1) -> None:
    """Mine `blocks` blocks (12 s each): balances of the blocks before become votes' weights."""
    boa.env.time_travel(blocks=blocks)


def events(contract: Any, name: str) -> list[Any]:
    """The events called `name` logged by the last call (child contracts included)."""
    return [e for e in contract.get_logs() if type(e).__name__ == name]


def mapping_slot(slot: int, key: int) -> int:
    """The storage slot of `mapping[key]` for a Vyper HashMap at `slot` (keccak(slot . key))."""
    from eth_utils import keccak

    return int.from_bytes(keccak(slot.to_bytes(32, "big") + key.to_bytes(32, "big")), "big")


def storage_slot(contract: Any, name: str) -> int:
    layout = contract.compiler_data.storage_layout["storage_layout"]
    return int(layout[name]["slot"])


def poke(contract: Any, slot: int, value: int) -> None:
    """Write a raw storage word (to reach limits that no test could reach by calls)."""
    from boa.util.abi import Address

    boa.env.evm.set_storage(Address(contract.address), slot, value)


def receipt_signature(
    key: Any, domain: tuple[str, str, int, str], model_id: int, user: str, total: int, nonce: int
) -> bytes:
    """``Receipt(model_id, user, total, nonce)`` signed with ``key`` in a ModelMarket's EIP-712
    ``domain`` (name, version, chain id, verifying contract), by eth_account's own encoder, so
    the contract's digest is checked against an implementation that is not ours."""
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    name, version, chain_id, verifying = domain
    signed = Account.sign_message(
        encode_typed_data(
            full_message={
                "types": {
                    "EIP712Domain": [
                        {"name": "name", "type": "string"},
                        {"name": "version", "type": "string"},
                        {"name": "chainId", "type": "uint256"},
                        {"name": "verifyingContract", "type": "address"},
                    ],
                    "Receipt": [
                        {"name": "model_id", "type": "uint256"},
                        {"name": "user", "type": "address"},
                        {"name": "total", "type": "uint256"},
                        {"name": "nonce", "type": "uint256"},
                    ],
                },
                "primaryType": "Receipt",
                "domain": {
                    "name": name,
                    "version": version,
                    "chainId": chain_id,
                    "verifyingContract": verifying,
                },
                "message": {"model_id": model_id, "user": user, "total": total, "nonce": nonce},
            }
        ),
        key,
    )
    return bytes(signed.signature)
