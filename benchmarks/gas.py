"""Gas of every data-market operation, measured as full signed transactions.

Run ``python benchmarks/gas.py`` for the table, ``--update-snapshot`` to rewrite
``tests/contracts/gas_snapshot.json`` (the committed snapshot that
``tests/contracts/test_gas.py`` holds the contracts to).

How gas is measured. titanoboa executes contract calls as bare messages: no
intrinsic gas (the 21,000 base and calldata), no access-list warming of the
sender, no refund cap, and warm/cold and SSTORE "original value" state that
leaks from one call into the next unless the state is locked. So every
measured operation here is a real signed transaction applied with py-evm's
``state.apply_transaction`` on titanoboa's VM, with ``state.lock_changes()``
before and after it, and its gas is ``finalize_gas_used`` (what a receipt
reports: intrinsic + execution - capped refund, EIP-7623 floor included). A
plain ETH transfer measures 21,000 (checked on every run). Contracts are
deployed from the committed artifacts, i.e. the bytecode that ships. Setup
steps that are not measured use ordinary titanoboa calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "src" / "databright" / "chain" / "artifacts"
SNAPSHOT_PATH = ROOT / "tests" / "contracts" / "gas_snapshot.json"
CACHE_DIR = ROOT / ".cache" / "titanoboa"

HOLDER_COUNTS = (10, 100, 1_000)
TOLERANCE = 0.01  # a rise above the snapshot by more than this fails the test
FLATNESS = 0.02  # pay/claim from 10 to 1,000 holders must stay within this

# Goals from the data-market issues. v2 sets vote < 70k and claim < 60k; propose and finalize
# pay for the v2 rules (a proposal clock slot: snapshot block, phases and settlement times; the
# token's record of the block of its latest move; the global owner of each manifest root and
# the consumed commitment), so their v1 goals (130k, 150k) were raised.
GOALS: dict[str, int] = {
    "propose": 200_000,
    "vote": 70_000,
    "finalize_accept_mint": 160_000,
    "pay": 60_000,
    "claim": 60_000,
}
# Reference points: what the design replaces or matches.
ANCHORS: dict[str, str] = {
    "vote": "ERC20Votes delegate ~92k (removed: no delegation step)",
    "claim": "pull-based dividend claim 36-46k",
    "transfer": "plain ERC-20 transfer ~34k",
}
LABELS: dict[str, str] = {
    "eth_transfer": "plain ETH transfer (calibration)",
    "create_dataset": "create dataset (token from blueprint)",
    "transfer": "share transfer (existing holders)",
    "transfer_new_holder": "share transfer (to a new holder)",
    "commit_proposal": "commit proposal (the step before propose)",
    "propose": "propose",
    "vote": "vote",
    "vote_initiator": "vote (second voter)",
    "vote_after_transfer": "vote (weight from history)",
    "commit_evaluation": "commit evaluation",
    "reveal_evaluation": "reveal evaluation",
    "finalize_accept_mint": "finalize accept + mint (new holder)",
    "finalize_reject": "finalize reject",
    "pay": "pay dividends",
    "pay_plain_transfer": "pay dividends (plain ETH transfer)",
    "claim": "claim dividends",
}

_DIGEST = bytes(range(1, 33))


def _digest(tag: int) -> bytes:
    """A recognisable non-zero 32-byte digest (stands in for a CID digest)."""
    return tag.to_bytes(4, "big") + _DIGEST[4:]


@dataclass(frozen=True)
class Account:
    key: Any
    address: str


class TxChain:
    """Signed transactions on titanoboa's py-evm, one locked transaction per call."""

    def __init__(self) -> None:
        import boa
        import boa.interpret
        from eth_keys import keys

        boa.interpret.set_cache_dir(str(CACHE_DIR))
        self.boa = boa
        self.env = boa.Env()
        self._keys = keys
        self._n = 0

    @property
    def vm(self) -> Any:
        return self.env.evm.vm

    def account(self) -> Account:
        """A fresh funded key account."""
        self._n += 1
        key = self._keys.PrivateKey((0xDB00_0000 + self._n).to_bytes(32, "big"))
        address = key.public_key.to_checksum_address()
        self.env.set_balance(address, 10**24)
        return Account(key, address)

    def transact(self, sender: Account, to: str | bytes, data: bytes = b"", value: int = 0) -> Any:
        """Apply one signed transaction; return its computation (gas in ``.tx_gas``)."""
        from eth_utils import to_canonical_address

        state = self.vm.state
        state.lock_changes()
        tx = self.vm.create_unsigned_transaction(
            nonce=state.get_nonce(to_canonical_address(sender.address)),
            gas_price=state.base_fee,
            gas=10_000_000,
            to=to_canonical_address(to) if to else b"",
            value=value,
            data=data,
        ).as_signed_transaction(sender.key)
        computation = state.apply_transaction(tx)
        state.lock_changes()
        if computation.is_error:
            raise computation.error
        computation.tx_gas = type(self.vm).finalize_gas_used(tx, computation)
        return computation

    def deploy(self, sender: Account, initcode: bytes) -> str:
        computation = self.transact(sender, b"", initcode)
        from eth_utils import to_checksum_address

        return to_checksum_address(computation.msg.storage_address)

    def contract(self, name: str, address: str) -> Any:
        abi = json.loads((ARTIFACTS / f"{name}.json").read_text())["abi"]
        with self.boa.swap_env(self.env):
            return self.boa.loads_abi(json.dumps(abi), name=name).at(address)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """An unmeasured titanoboa call (setup and reads), then lock the state."""
        with self.boa.swap_env(self.env):
            out = fn(*args, **kwargs)
        self.vm.state.lock_changes()
        return out

    def time_travel(self, seconds: int) -> None:
        self.env.time_travel(seconds=seconds)

    def mine(self) -> None:
        """Start a new block: votes weigh balances at the end of the block before a proposal's,
        and no proposal is settled in its own block."""
        self.env.time_travel(blocks=1)


def _artifact(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((ARTIFACTS / f"{name}.json").read_text())
    return body


class Market:
    """The deployed market plus helpers that send measured transactions."""

    def __init__(self, chain: TxChain, deployer: Account) -> None:
        from eth_abi import encode

        self.chain = chain
        blueprint = chain.deploy(
            deployer, bytes.fromhex(_artifact("ShareToken")["blueprint_bytecode"][2:])
        )
        initcode = bytes.fromhex(_artifact("DataMarket")["bytecode"][2:]) + encode(
            ["address"], [blueprint]
        )
        self.address = chain.deploy(deployer, initcode)
        self.abi = chain.contract("DataMarket", self.address)

    def send(self, sender: Account, method: str, *args: Any, value: int = 0) -> int:
        data = getattr(self.abi, method).prepare_calldata(*args)
        return int(self.chain.transact(sender, self.address, data, value).tx_gas)

    def commit_proposal(self, sender: Account, *terms: Any) -> int:
        """Commit `sender` to a proposal's terms (dataset id first), then mine a block."""
        commitment = self.chain.call(self.abi.proposal_commitment, sender.address, *terms)
        gas = self.send(sender, "commit_proposal", commitment)
        self.chain.mine()
        return gas

    def token(self, dataset_id: int) -> Any:
        return self.chain.contract("ShareToken", self.chain.call(self.abi.share_token, dataset_id))

    def send_token(
        self, sender: Account, token: Any, method: str, *args: Any, value: int = 0
    ) -> int:
        data = getattr(token, method).prepare_calldata(*args) if method else b""
        return int(self.chain.transact(sender, token.address, data, value).tx_gas)

    def create(
        self, initiator: Account, evaluators: list[str], examples: int = 1_000, phases: int = 0
    ) -> tuple[int, int]:
        dataset_id = int(self.chain.call(self.abi.dataset_count)) + 1
        gas = self.send(
            initiator,
            "create_dataset",
            "Handwritten digits",
            _digest(1),
            _digest(2),
            _digest(3 + dataset_id),
            examples,
            3_600,
            0,
            2_000,
            5_000,
            evaluators,
            20_000,
            phases,
            phases,
            0,
            0,
        )
        return dataset_id, gas


def measure() -> dict[str, int]:
    """Run the benchmark scenario; return gas per operation."""
    chain = TxChain()
    gas: dict[str, int] = {}
    deployer, initiator, holder, contributor, evaluator, payer = (chain.account() for _ in range(6))

    gas["eth_transfer"] = int(chain.transact(payer, holder.address, value=1).tx_gas)
    market = Market(chain, deployer)
    dataset_id, gas["create_dataset"] = market.create(initiator, [evaluator.address], phases=600)
    token = market.token(dataset_id)
    unit = 10**18

    gas["transfer_new_holder"] = market.send_token(
        initiator, token, "transfer", holder.address, 100 * unit
    )
    gas["transfer"] = market.send_token(initiator, token, "transfer", holder.address, 100 * unit)
    chain.mine()

    # A contributor without shares proposes; an evaluator commits to 1.5x
    # and reveals it; then the holder and the initiator (800 of 1,000
    # shares) vote.
    pid = (dataset_id << 32) | 1
    terms = (dataset_id, _digest(10), _digest(11), 50, _digest(12))
    gas["commit_proposal"] = market.commit_proposal(contributor, *terms)
    gas["propose"] = market.send(contributor, "propose", *terms)
    chain.mine()
    salt = _digest(14)
    commitment = chain.call(
        market.abi.commitment_of, pid, evaluator.address, 15_000, _digest(13), salt
    )
    gas["commit_evaluation"] = market.send(evaluator, "commit_evaluation", pid, commitment)
    chain.time_travel(600)
    gas["reveal_evaluation"] = market.send(
        evaluator, "reveal_evaluation", pid, 15_000, _digest(13), salt
    )
    chain.time_travel(600)
    gas["vote"] = market.send(holder, "vote", pid, True)
    gas["vote_initiator"] = market.send(initiator, "vote", pid, True)
    # The quorum is met and yes exceeds the threshold of the whole snapshot
    # supply: the outcome is final before the deadline.
    gas["finalize_accept_mint"] = market.send(payer, "finalize", pid)
    assert chain.call(market.abi.proposal_state, pid) == 2, "benchmark proposal was not accepted"

    # A vote whose weight comes from the history: the holder moves shares
    # in the block of proposal 2 and again in the block of proposal 3.
    chain.mine()
    pid2 = (dataset_id << 32) | 2
    market.commit_proposal(contributor, dataset_id, _digest(20), _digest(21), 10, _digest(22))
    market.send(contributor, "propose", dataset_id, _digest(20), _digest(21), 10, _digest(22))
    chain.call(token.transfer, contributor.address, unit, sender=holder.address)
    chain.mine()
    pid3 = (dataset_id << 32) | 3
    market.commit_proposal(contributor, dataset_id, _digest(30), _digest(31), 10, _digest(32))
    market.send(contributor, "propose", dataset_id, _digest(30), _digest(31), 10, _digest(32))
    chain.call(token.transfer, contributor.address, unit, sender=holder.address)
    chain.time_travel(1_200)  # past the evaluation phases: voting is open
    gas["vote_after_transfer"] = market.send(holder, "vote", pid2, False)
    market.send(initiator, "vote", pid2, False)
    gas["finalize_reject"] = market.send(payer, "finalize", pid2)
    assert chain.call(market.abi.proposal_state, pid2) == 3, "benchmark proposal was not rejected"
    del pid3

    gas["pay"] = market.send_token(payer, token, "pay", value=10**18)
    gas["pay_plain_transfer"] = market.send_token(payer, token, "", value=10**18)
    gas["claim"] = market.send_token(holder, token, "claim", holder.address)

    for count in HOLDER_COUNTS:
        pay, claim = _scaling(chain, market, count)
        gas[f"pay_{count}_holders"] = pay
        gas[f"claim_{count}_holders"] = claim
    return gas


def _scaling(chain: TxChain, market: Market, holders: int) -> tuple[int, int]:
    """Pay and claim gas on a fresh dataset whose shares are spread over `holders`."""
    initiator, claimer, payer = chain.account(), chain.account(), chain.account()
    dataset_id, _ = market.create(initiator, [], examples=10 * holders)
    token = market.token(dataset_id)
    unit = 10**18
    chain.call(token.transfer, claimer.address, 5 * unit, sender=initiator.address)
    for i in range(holders - 2):
        chain.call(token.transfer, f"0x{0xD0000000 + i:040x}", 9 * unit, sender=initiator.address)
    market.send_token(payer, token, "pay", value=10**18)  # not the first payment: steady state
    pay = market.send_token(payer, token, "pay", value=10**18)
    claim = market.send_token(claimer, token, "claim", claimer.address)
    return pay, claim


def render(gas: dict[str, int], snapshot: dict[str, int] | None = None) -> str:
    rows = [("operation", "gas", "goal", "gas/goal", "snapshot", "anchor")]
    for op, value in gas.items():
        base = op.split("_")[0] if op.endswith("_holders") else op
        goal = GOALS.get(base)
        label = LABELS.get(op, op.replace("_", " "))
        rows.append(
            (
                label,
                f"{value:,}",
                f"{goal:,}" if goal else "",
                f"{value / goal:.2f}" if goal else "",
                f"{snapshot[op]:,}" if snapshot and op in snapshot else "",
                ANCHORS.get(op, ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [
            r[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(r[1:5], widths[1:5], strict=True)),
            r[5],
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    for op in ("pay", "claim"):
        values = [gas[f"{op}_{c}_holders"] for c in HOLDER_COUNTS]
        spread = (max(values) - min(values)) / min(values)
        lines.append(
            f"{op} spread {HOLDER_COUNTS[0]}..{HOLDER_COUNTS[-1]:,} holders: {spread:.2%} (goal <= {FLATNESS:.0%})"
        )
    return "\n".join(lines)


def load_snapshot() -> dict[str, int]:
    data: dict[str, int] = json.loads(SNAPSHOT_PATH.read_text())
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--update-snapshot", action="store_true", help=f"rewrite {SNAPSHOT_PATH.relative_to(ROOT)}"
    )
    args = parser.parse_args(argv)
    gas = measure()
    snapshot = load_snapshot() if SNAPSHOT_PATH.exists() else None
    print(render(gas, snapshot))
    if gas["eth_transfer"] != 21_000:
        print(
            f"calibration failed: a plain ETH transfer measured {gas['eth_transfer']}, not 21,000"
        )
        return 1
    if args.update_snapshot:
        SNAPSHOT_PATH.write_text(json.dumps(gas, indent=2) + "\n")
        print(f"wrote {SNAPSHOT_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
