"""Fees: the gas price the node suggests and ``eth_feeHistory``, as geth reports them.

The node suggests the next block's base fee plus a fixed 1 gwei tip; the history gives, per
block, its base fee, how full it was and the tips paid at the asked percentiles (weighted by gas
used, as geth weighs them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth.abc import BlockHeaderAPI
from eth.chains.base import MiningChain
from eth_typing import BlockNumber

__all__ = ["MAX_HISTORY_BLOCKS", "PRIORITY_FEE_WEI", "base_fee", "fee_history"]

PRIORITY_FEE_WEI = 10**9
MAX_HISTORY_BLOCKS = 1024  # geth's cap on eth_feeHistory's block count


def base_fee(header: BlockHeaderAPI) -> int:
    return int(header.base_fee_per_gas or 0)


def fee_history(
    chain: MiningChain, block_count: int, last: int, percentiles: Sequence[float]
) -> dict[str, Any]:
    """``eth_feeHistory`` of the ``block_count`` (at least 1) canonical blocks up to ``last``."""
    block_count = min(block_count, MAX_HISTORY_BLOCKS)
    first = max(0, last - block_count + 1)
    base_fees: list[int] = []
    ratios: list[float] = []
    rewards: list[list[int]] = []
    header = None
    for number in range(first, last + 1):
        header = chain.get_canonical_block_header_by_number(BlockNumber(number))
        base_fees.append(base_fee(header))
        ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
        if percentiles:
            rewards.append(_block_rewards(chain, header, percentiles))
    assert header is not None
    # The base fee of the block after the newest one, as geth reports.
    if last == int(chain.get_canonical_head().block_number):
        base_fees.append(base_fee(chain.header))
    else:
        base_fees.append(
            base_fee(chain.get_canonical_block_header_by_number(BlockNumber(last + 1)))
        )
    history: dict[str, Any] = {
        "oldest_block": first,
        "base_fee_per_gas": base_fees,
        "gas_used_ratio": ratios,
    }
    if percentiles:
        history["reward"] = rewards
    return history


def _block_rewards(
    chain: MiningChain, header: BlockHeaderAPI, percentiles: Sequence[float]
) -> list[int]:
    block = chain.get_block_by_header(header)
    if not block.transactions:
        return [0 for _ in percentiles]
    receipts = block.get_receipts(chain.chaindb)
    fee = base_fee(header)
    items: list[tuple[int, int]] = []
    previous = 0
    for tx, receipt in zip(block.transactions, receipts, strict=True):
        max_fee = getattr(tx, "max_fee_per_gas", None)
        if max_fee is None:
            tip = tx.gas_price - fee
        else:
            tip = min(tx.max_priority_fee_per_gas, max_fee - fee)
        items.append((tip, receipt.gas_used - previous))
        previous = receipt.gas_used
    items.sort()
    total = sum(gas for _, gas in items) or 1
    out: list[int] = []
    for p in percentiles:
        threshold = total * p / 100
        cumulative = 0
        chosen = items[-1][0]
        for tip, gas in items:
            cumulative += gas
            if cumulative >= threshold:
                chosen = tip
                break
        out.append(chosen)
    return out
