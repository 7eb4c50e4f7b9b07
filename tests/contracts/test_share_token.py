"""ShareToken: ERC-20 surface, past balances, minting, dividends; a positive and a negative test each."""

from __future__ import annotations

from typing import Any

import boa
import pytest
from boa.util.abi import Address
from contracts_support import (
    HELPERS,
    UNIT,
    World,
    events,
    mapping_slot,
    mine_block,
    poke,
    storage_slot,
)
from eth_account import Account
from eth_account.messages import encode_typed_data

MAG = 2**96
MAX_SUPPLY = 2**100 - 1


def close(actual: int, exact: int) -> bool:
    """Dividends are exact pro rata rounded down to the wei: never more, at most 1 wei less."""
    return exact - 1 <= actual <= exact


@pytest.fixture
def standalone(world: World) -> tuple[Any, str]:
    """A token deployed directly by `owner`, who therefore acts as its market."""
    owner = boa.env.generate_address("standalone-owner")
    with boa.env.prank(owner):
        token = world.share_token.deploy("Standalone", 7)
    return token, owner


# --- metadata and ERC-20 -----------------------------------------------------------------------


def test_metadata(world: World) -> None:
    t = world.token
    assert (t.name(), t.symbol(), t.decimals()) == ("Digits", "DB1", 18)
    assert t.owner() == world.market.address == t.market()
    assert t.dataset_id() == world.dataset_id
    assert t.totalSupply() == 100 * UNIT
    assert t.balanceOf(world.carol) == 0  # negative: a non-holder


@pytest.mark.parametrize(
    ("dataset_id", "symbol"),
    [
        (42, "DB42"),
        (999, "DB999"),
        (1000, "D1000"),
        (9999, "D9999"),
        (10000, "10000"),
        (99999, "99999"),
    ],
)
def test_symbol_is_derived_from_the_dataset_id(world: World, dataset_id: int, symbol: str) -> None:
    # Jump the dataset counter (and the market's nonce, which fixes token addresses) ahead.
    poke(world.market, storage_slot(world.market, "dataset_count"), dataset_id - 1)
    state = boa.env.evm.vm.state
    state.set_nonce(bytes.fromhex(world.market.address[2:]), dataset_id)
    assert world.create(world.alice) == dataset_id
    assert world.token_of(dataset_id).symbol() == symbol


def test_transfer_moves_shares_and_logs(world: World) -> None:
    with boa.env.prank(world.alice):
        assert world.token.transfer(world.carol, 5 * UNIT)
    (log,) = events(world.token, "Transfer")
    assert (log.sender, log.receiver, log.value) == (world.alice, world.carol, 5 * UNIT)
    assert world.token.balanceOf(world.alice) == 25 * UNIT
    assert world.token.balanceOf(world.carol) == 5 * UNIT


def test_transfer_beyond_balance_reverts(world: World) -> None:
    with boa.env.prank(world.alice), boa.reverts("erc20: transfer amount exceeds balance"):
        world.token.transfer(world.carol, 31 * UNIT)


def test_transfer_to_zero_address_reverts(world: World) -> None:
    with boa.env.prank(world.alice), boa.reverts("erc20: transfer to the zero address"):
        world.token.transfer("0x" + "00" * 20, UNIT)


def test_transfer_to_self_keeps_everything(world: World) -> None:
    with boa.env.prank(world.bob):
        world.token.pay(value=10**18)
    with boa.env.prank(world.alice):
        world.token.transfer(world.alice, 10 * UNIT)
    assert world.token.balanceOf(world.alice) == 30 * UNIT
    assert close(world.token.claimable(world.alice), 3 * 10**17)


def test_approve_and_transfer_from(world: World) -> None:
    with boa.env.prank(world.alice):
        assert world.token.approve(world.carol, 10 * UNIT)
    (log,) = events(world.token, "Approval")
    assert (log.owner, log.spender, log.value) == (world.alice, world.carol, 10 * UNIT)
    with boa.env.prank(world.carol):
        assert world.token.transferFrom(world.alice, world.bob, 4 * UNIT)
    assert world.token.allowance(world.alice, world.carol) == 6 * UNIT
    assert world.token.balanceOf(world.bob) == 24 * UNIT


def test_transfer_from_beyond_allowance_reverts(world: World) -> None:
    with boa.env.prank(world.alice):
        world.token.approve(world.carol, UNIT)
    with boa.env.prank(world.carol), boa.reverts("erc20: insufficient allowance"):
        world.token.transferFrom(world.alice, world.bob, 2 * UNIT)


def test_approve_zero_spender_reverts(world: World) -> None:
    with boa.env.prank(world.alice), boa.reverts("erc20: approve to the zero address"):
        world.token.approve("0x" + "00" * 20, UNIT)


def _permit_signature(
    token: Any, owner: Any, spender: str, value: int, deadline: int
) -> tuple[int, bytes, bytes]:
    _, name, version, chain_id, verifying, _, _ = token.eip712Domain()
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
                    "Permit": [
                        {"name": "owner", "type": "address"},
                        {"name": "spender", "type": "address"},
                        {"name": "value", "type": "uint256"},
                        {"name": "nonce", "type": "uint256"},
                        {"name": "deadline", "type": "uint256"},
                    ],
                },
                "primaryType": "Permit",
                "domain": {
                    "name": name,
                    "version": version,
                    "chainId": chain_id,
                    "verifyingContract": verifying,
                },
                "message": {
                    "owner": owner.address,
                    "spender": spender,
                    "value": value,
                    "nonce": token.nonces(owner.address),
                    "deadline": deadline,
                },
            }
        ),
        owner.key,
    )
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def test_permit_sets_allowance(world: World) -> None:
    owner = Account.create()
    with boa.env.prank(world.alice):
        world.token.transfer(owner.address, UNIT)
    deadline = boa.env.timestamp + 60
    v, r, s = _permit_signature(world.token, owner, world.carol, UNIT, deadline)
    world.token.permit(owner.address, world.carol, UNIT, deadline, v, r, s)
    assert world.token.allowance(owner.address, world.carol) == UNIT
    assert world.token.nonces(owner.address) == 1
    assert world.token.DOMAIN_SEPARATOR() != b"\x00" * 32


def test_permit_with_wrong_signer_reverts(world: World) -> None:
    owner, other = Account.create(), Account.create()
    deadline = boa.env.timestamp + 60
    v, r, s = _permit_signature(world.token, other, world.carol, UNIT, deadline)
    with boa.reverts("erc20: invalid signature"):
        world.token.permit(owner.address, world.carol, UNIT, deadline, v, r, s)


def test_burning_and_minter_management_are_not_exposed(world: World) -> None:
    names = {f["name"] for f in world.token.abi if f.get("type") == "function"}
    assert not names & {
        "burn",
        "burn_from",
        "set_minter",
        "is_minter",
        "transfer_ownership",
        "renounce_ownership",
    }


# --- past balances and minting ---------------------------------------------------------------------


def test_mint_by_market(standalone: tuple[Any, str], world: World) -> None:
    token, owner = standalone
    with boa.env.prank(owner):
        assert token.mint(world.alice, 3 * UNIT) == 3 * UNIT
    (log,) = events(token, "Transfer")
    assert log.sender == "0x" + "00" * 20 and log.value == 3 * UNIT
    assert token.balanceOf(world.alice) == 3 * UNIT


def test_mint_by_anyone_else_reverts(world: World) -> None:
    with boa.env.prank(world.alice), boa.reverts("share_token: caller is not the market"):
        world.token.mint(world.alice, UNIT)


def test_mint_beyond_supply_cap_reverts(standalone: tuple[Any, str], world: World) -> None:
    token, owner = standalone
    with boa.env.prank(owner):
        token.mint(world.alice, MAX_SUPPLY)
        with boa.reverts("share_token: supply cap exceeded"):
            token.mint(world.alice, 1)


def _block() -> int:
    return int(boa.env.evm.patch.block_number)


def test_balance_at_reads_the_end_of_a_past_block(
    standalone: tuple[Any, str], world: World
) -> None:
    token, owner = standalone
    a, b = world.alice, world.bob
    with boa.env.prank(owner):
        token.mint(a, 10)
    b1 = _block()
    with boa.env.prank(a):
        token.transfer(b, 4)  # same block: part of block b1's closing balances
    mine_block()
    b2 = _block()
    with boa.env.prank(b):
        token.transfer(a, 1)
    with boa.env.prank(a):
        token.transfer(b, 2)
    mine_block()
    assert (token.balance_at(a, b1), token.balance_at(b, b1)) == (6, 4)
    assert (token.balance_at(a, b1 - 1), token.balance_at(b, b1 - 1)) == (0, 0)
    assert (token.balance_at(a, b2), token.balance_at(b, b2)) == (5, 5)
    assert token.balance_at(a, _block() - 1) == token.balanceOf(a) == 5


def test_balance_at_the_current_or_a_future_block_reverts(world: World) -> None:
    with boa.reverts("share_token: future lookup"):
        world.token.balance_at(world.alice, _block())
    with boa.reverts("share_token: future lookup"):
        world.token.balance_at(world.alice, _block() + 1)
    assert world.token.balance_at(world.alice, _block() - 1) == 30 * UNIT


def test_balance_at_bisects_a_long_history(standalone: tuple[Any, str], world: World) -> None:
    token, owner = standalone
    a, b = world.alice, world.bob
    with boa.env.prank(owner):
        token.mint(a, 1_000)
    expected: dict[int, tuple[int, int]] = {}
    balances = [1_000, 0]
    for i in range(40):
        if i % 3 != 2:  # some blocks without a change
            with boa.env.prank(a):
                token.transfer(b, i + 1)
            balances = [balances[0] - i - 1, balances[1] + i + 1]
        expected[_block()] = (balances[0], balances[1])
        mine_block()
    for n, (ba, bb) in expected.items():
        assert (token.balance_at(a, n), token.balance_at(b, n)) == (ba, bb), n


def test_history_length_limit(standalone: tuple[Any, str], world: World) -> None:
    token, owner = standalone
    with boa.env.prank(owner):
        token.mint(world.alice, 10)
    mine_block()
    slot = mapping_slot(storage_slot(token, "_accounts"), int(world.alice, 16))
    word = (1 << 224) | ((2**24 - 1) << 200) | (10 << 100) | 10
    poke(token, slot, word)
    with boa.env.prank(world.alice), boa.reverts("share_token: history full"):
        token.transfer(world.bob, 1)


def test_a_zero_transfer_writes_no_history(world: World) -> None:
    slot = mapping_slot(storage_slot(world.token, "_accounts"), int(world.alice, 16))
    before = boa.env.evm.get_storage(Address(world.token.address), slot)
    with boa.env.prank(world.carol):  # anyone, about anyone
        world.token.transfer(world.alice, 0)
        world.token.transferFrom(world.alice, world.carol, 0)
    assert boa.env.evm.get_storage(Address(world.token.address), slot) == before
    assert world.token.last_move_block() != _block()


def test_moves_record_their_block(world: World) -> None:
    with boa.env.prank(world.alice):
        world.token.transfer(world.bob, 1)
    assert world.token.last_move_block() == _block()


def test_moves_past_the_block_number_limit_revert(world: World) -> None:
    boa.env.evm.patch.block_number = 2**32
    with boa.env.prank(world.alice), boa.reverts("share_token: block number too large"):
        world.token.transfer(world.bob, 1)


# --- dividends ---------------------------------------------------------------------------------


def test_pay_splits_pro_rata(world: World) -> None:
    with boa.env.prank(world.carol):
        boa.env.set_balance(world.carol, 10**19)
        world.token.pay(value=10**18)
    (log,) = events(world.token, "DividendPaid")
    assert (log.payer, log.amount) == (world.carol, 10**18)
    t = world.token
    got = [t.claimable(x) for x in (world.initiator, world.alice, world.bob)]
    assert all(close(g, e) for g, e in zip(got, [5 * 10**17, 3 * 10**17, 2 * 10**17], strict=True))
    assert t.total_paid() == 10**18 and t.total_claimed() == 0
    assert t.magnified_dividend_per_share() == 1 + log.per_share_magnified
    assert t.dust() == log.dust


def test_pay_nothing_reverts(world: World) -> None:
    with boa.reverts("share_token: zero payment"):
        world.token.pay(value=0)


def test_pay_without_shares_reverts(standalone: tuple[Any, str]) -> None:
    token, owner = standalone
    boa.env.set_balance(owner, 10**18)
    with boa.env.prank(owner), boa.reverts("share_token: no shares"):
        token.pay(value=1)


def test_pay_beyond_the_total_paid_limit_reverts(world: World) -> None:
    boa.env.set_balance(world.carol, 2**121)
    with boa.env.prank(world.carol):
        world.token.pay(value=2**120 - 1)
        with boa.reverts("share_token: payment overflow"):
            world.token.pay(value=1)


def test_plain_eth_transfer_is_a_payment(world: World) -> None:
    boa.env.raw_call(world.token.address, sender=world.carol, value=10**17)
    assert world.token.total_paid() == 10**17
    assert close(world.token.claimable(world.bob), 2 * 10**16)


def test_unknown_calldata_is_not_a_payment(world: World) -> None:
    computation = boa.env.execute_code(
        world.token.address, sender=world.carol, value=1, data=b"\xde\xad\xbe\xef"
    )
    assert computation.is_error and b"share_token: unknown function" in computation.output
    assert world.token.total_paid() == 0


def test_claim_pays_out_and_logs(world: World) -> None:
    with boa.env.prank(world.carol):
        world.token.pay(value=10**18)
    before = boa.env.get_balance(world.alice)
    expected = world.token.claimable(world.alice)
    assert close(expected, 3 * 10**17)
    with boa.env.prank(world.alice):
        assert world.token.claim() == expected
    (log,) = events(world.token, "DividendClaimed")
    assert (log.account, log.receiver, log.amount) == (world.alice, world.alice, expected)
    assert boa.env.get_balance(world.alice) - before == expected
    assert world.token.claimable(world.alice) == 0
    assert world.token.total_claimed() == expected
    assert boa.env.get_balance(world.token.address) == 10**18 - expected


def test_claim_to_another_receiver(world: World) -> None:
    with boa.env.prank(world.carol):
        world.token.pay(value=10**18)
    before = boa.env.get_balance(world.carol)
    with boa.env.prank(world.bob):
        world.token.claim(world.carol)
    assert close(boa.env.get_balance(world.carol) - before, 2 * 10**17)
    assert world.token.claimable(world.bob) == 0


def test_claim_nothing_reverts(world: World) -> None:
    with boa.env.prank(world.alice), boa.reverts("share_token: nothing to claim"):
        world.token.claim()


def test_claim_to_zero_address_reverts(world: World) -> None:
    with boa.env.prank(world.alice), boa.reverts("share_token: zero receiver"):
        world.token.claim("0x" + "00" * 20)


def test_claim_cannot_be_reentered(world: World) -> None:
    claimer = boa.load(str(HELPERS / "reentrant_claimer.vy"), world.token.address)
    with boa.env.prank(world.alice):
        world.token.transfer(claimer.address, 10 * UNIT)
    with boa.env.prank(world.carol):
        world.token.pay(value=10**18)
    amount = claimer.claim()
    assert close(amount, 10**17)
    assert claimer.reentered() and not claimer.reentry_succeeded()
    assert claimer.received() == amount
    assert world.token.claimable(claimer.address) == 0


def test_claim_to_a_receiver_that_refuses_reverts_and_keeps_the_dividends(world: World) -> None:
    refuser = boa.load(str(HELPERS / "rejecting_receiver.vy"))
    with boa.env.prank(world.carol):
        world.token.pay(value=10**18)
    owed = world.token.claimable(world.alice)
    with boa.env.prank(world.alice), boa.reverts():
        world.token.claim(refuser.address)
    assert world.token.claimable(world.alice) == owed > 0


def test_dividends_stay_with_the_seller(world: World) -> None:
    with boa.env.prank(world.carol):
        world.token.pay(value=10**18)
    owed = world.token.claimable(world.alice)
    assert close(owed, 3 * 10**17)
    with boa.env.prank(world.alice):
        world.token.transfer(world.carol, 30 * UNIT)
    assert world.token.claimable(world.alice) == owed
    assert world.token.claimable(world.carol) == 0
    with boa.env.prank(world.carol):
        world.token.pay(value=10**17)
    assert close(world.token.claimable(world.carol), 3 * 10**16)
    assert world.token.claimable(world.alice) == owed


def test_new_shares_earn_nothing_from_earlier_payments(world: World) -> None:
    with boa.env.prank(world.carol):
        world.token.pay(value=10**17)
    pid = world.propose(0x100, examples=100)
    world.vote(pid, world.initiator)
    world.market.finalize(pid)
    assert world.token.balanceOf(world.contributor) == 100 * UNIT
    assert world.token.claimable(world.contributor) == 0
    with boa.env.prank(world.carol):
        world.token.pay(value=10**17)
    assert close(world.token.claimable(world.contributor), 5 * 10**16)
    assert close(world.token.claimable(world.initiator), 5 * 10**16 + 5 * 10**16 // 2)


def test_dust_is_carried_into_the_next_payment(standalone: tuple[Any, str], world: World) -> None:
    token, owner = standalone
    holders = [world.alice, world.bob, world.carol]
    with boa.env.prank(owner):
        for h in holders:
            token.mint(h, 1)
    boa.env.set_balance(owner, 10**18)

    def identity() -> None:
        dividends = sum(token.dividend_of(h) for h in holders)
        assert dividends + token.dust() + token.total_claimed() * MAG == token.total_paid() * MAG

    with boa.env.prank(owner):
        token.pay(value=10)
    assert token.dust() == (10 * MAG) % 3 != 0
    identity()
    assert [token.claimable(h) for h in holders] == [3, 3, 3]
    accumulated = token.dividend_of(world.alice)
    dust_before = token.dust()
    with boa.env.prank(world.alice):
        token.claim()
    (log,) = events(token, "DividendClaimed")
    assert (log.amount, log.dust) == (accumulated // MAG, accumulated % MAG)
    assert token.dividend_of(world.alice) == 0  # the sub-wei remainder moved into the dust
    assert token.dust() == dust_before + accumulated % MAG
    identity()
    with boa.env.prank(owner):
        token.pay(value=2)  # distributes 2 wei plus the carried dust
    identity()
    assert token.dust() < 3  # below the supply once a payment distributed it
    paid_out = sum(token.claimable(h) for h in holders) + token.total_claimed()
    assert 12 - len(holders) < paid_out <= 12  # at most a sub-wei remainder per holder pending


def test_forced_eth_is_distributed_as_surplus(world: World) -> None:
    with boa.env.prank(world.carol):
        world.token.pay(value=10**18)
    token = world.token.address
    boa.env.set_balance(token, boa.env.get_balance(token) + 5 * 10**17)  # as by SELFDESTRUCT
    mine_block()
    with boa.env.prank(world.bob):
        assert world.token.distribute_surplus() == 5 * 10**17
    (log,) = events(world.token, "DividendPaid")
    assert (log.payer, log.amount) == (world.bob, 5 * 10**17)
    assert world.token.total_paid() == 15 * 10**17
    assert close(world.token.claimable(world.bob), 3 * 10**17)


def test_distribute_surplus_waits_for_a_block_without_moves(world: World) -> None:
    boa.env.set_balance(world.token.address, 10**18)
    with boa.env.prank(world.alice):
        world.token.transfer(world.carol, 10 * UNIT)
    with boa.reverts("share_token: shares moved in this block"):
        world.token.distribute_surplus()
    mine_block()
    world.token.distribute_surplus()
    with boa.env.prank(world.carol):  # moves after the distribution take nothing with them
        world.token.transfer(world.alice, 10 * UNIT)
    assert close(world.token.claimable(world.carol), 10**17)


def test_a_flash_loan_cannot_capture_the_surplus(world: World) -> None:
    lender = boa.load(str(HELPERS / "flash_lender.vy"))
    attacker = boa.load(str(HELPERS / "flash_attacker.vy"))
    with boa.env.prank(world.initiator):
        world.token.transfer(lender.address, 45 * UNIT)
    boa.env.set_balance(world.token.address, 10**18)
    mine_block()
    attacker.attack_surplus(lender.address, world.token.address, 45 * UNIT)
    assert not attacker.distributed()
    assert world.token.claimable(attacker.address) == 0
    mine_block()
    world.token.distribute_surplus()
    assert world.token.claimable(attacker.address) == 0
    assert close(world.token.claimable(lender.address), 45 * 10**16)


def test_distribute_surplus_without_surplus_reverts(world: World) -> None:
    with boa.env.prank(world.carol):
        world.token.pay(value=10**18)
    with boa.env.prank(world.alice):
        world.token.claim()
    with boa.reverts("share_token: no surplus"):
        world.token.distribute_surplus()


def test_dividend_views_and_constants(world: World) -> None:
    t = world.token
    assert (t.MAGNITUDE(), t.MAX_SUPPLY(), t.MAX_BLOCK_NUMBER(), t.MAX_TOTAL_PAID()) == (
        MAG,
        MAX_SUPPLY,
        2**32 - 1,
        2**120 - 1,
    )
    assert (t.total_paid(), t.total_claimed(), t.dust(), t.magnified_dividend_per_share()) == (
        0,
        0,
        0,
        1,
    )
    with boa.env.prank(world.carol):
        t.pay(value=10**18)
    assert t.claimable(world.carol) == t.dividend_of(world.carol) == 0  # a non-holder
    assert t.dividend_of(world.bob) // MAG == t.claimable(world.bob) > 0
