# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma nonreentrancy off
"""
@title DataBright Dataset Share Token
@custom:contract-name ShareToken
@license Apache-2.0
@notice One ERC-20 (+ EIP-2612 `permit`) per dataset, built on snekmate's
        `erc20` and `ownable` modules and deployed by the `DataMarket` from a
        blueprint (`create_from_blueprint`). A share is 10**18 units: one
        example accepted at quality weight 1.0. Shares are minted only by the
        market (the `owner`); there is no burn, so the supply never shrinks
        and never falls below the initial data's share count.

        Checkpoints (vote weights). Balances are checkpointed by block
        number, as OpenZeppelin's `ERC20Votes.getPastVotes` (Compound's
        `getPriorVotes`), but without its delegation step: every holder
        votes with its own balance. `balance_at(account, b)` is the balance
        `account` held at the end of block `b`, and only a block already
        mined can be read (`b < block.number`), so nothing done in the
        current block, a flash loan least of all, changes it. Every balance
        change records, on the account's first change in a new block, the
        balance it held at the end of the blocks before. Per account, one
        packed slot holds the block of its latest change, the current
        balance (a mirror of `balanceOf`) and the balance before that
        block, so a past balance of an account that did not move since
        costs one storage read; older periods live in a per-account history
        searched by bisection. Block numbers are packed in 32 bits
        (`MAX_BLOCK_NUMBER`: 1,600 years at 12 s per block, 34 years at
        250 ms); past that, moves revert.

        Dividends (ERC-1726 / ERC-2222 style). Anyone pays ETH with `pay` (or
        a plain transfer). Each payment raises the magnified dividend per
        share; every balance change adjusts per-account corrections, so each
        holder can claim exactly their pro-rata part of every payment by
        their holdings at payment time, in O(1) gas whatever the number of
        holders, and shares minted later earn nothing from earlier payments.
        The correction arithmetic is modular (mod 2**256) by design: only the
        accumulated amount, bounded by the total paid times `MAGNITUDE`, is
        ever read, and it is exact modulo 2**256.

        Dust rule. A payment's division remainder (magnified units, less
        than the supply) is kept in `dust` and carried into the next payment;
        when a holder claims, the sub-wei remainder of their share is moved
        into `dust` too. So no wei is stuck silently: at all times
        `sum(dividend_of) + dust + total_claimed * MAGNITUDE ==
        total_paid * MAGNITUDE` holds exactly, and `dust` is handed out with
        the next payment. ETH forced into the token without a call is not
        lost either: `distribute_surplus` pays it out as a dividend, but
        only in a block in which no share has moved yet, so that it is paid
        by the balances at the end of the previous block: borrowing shares
        for one transaction cannot capture it.
@custom:security Claims are pull payments, `@nonreentrant`, and follow
                 checks-effects-interactions.
"""


# @dev We import and implement the `IERC20` interface,
# which is a built-in interface of the Vyper compiler.
from ethereum.ercs import IERC20
implements: IERC20


# @dev We import and implement the `IERC20Detailed` interface,
# which is a built-in interface of the Vyper compiler.
from ethereum.ercs import IERC20Detailed
implements: IERC20Detailed


# @dev The interface the data market uses.
from interfaces import IShareToken
implements: IShareToken


# @dev We import and initialise the `ownable` module;
# the owner is the data market that deployed the token.
from snekmate.auth import ownable
initializes: ownable


# @dev We import and initialise the `erc20` module.
from snekmate.tokens import erc20
initializes: erc20[ownable := ownable]


# @dev `transfer` and `transferFrom` are redefined below to keep
# the checkpoint and dividend bookkeeping; minting goes through
# `mint`. Burning and the minter/ownership management functions
# are deliberately not exported: the market must remain the only
# minter and the supply must never shrink.
exports: (
    erc20.totalSupply,
    erc20.balanceOf,
    erc20.allowance,
    erc20.approve,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.permit,
    erc20.nonces,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
    ownable.owner,
)


# @dev The dividend magnification factor (2**96). Amounts per
# share are kept multiplied by it so that small payments to a
# large supply still register.
MAGNITUDE: public(constant(uint256)) = 2**96


# @dev The largest total supply (2**100 - 1 units, about
# 1.27e12 whole shares); balances are packed in 100 bits.
MAX_SUPPLY: public(constant(uint256)) = 2**100 - 1


# @dev The largest block number in which shares can move
# (block numbers are packed in 32 bits).
MAX_BLOCK_NUMBER: public(constant(uint256)) = 2**32 - 1


# @dev The largest cumulative payment in wei (120 bits).
MAX_TOTAL_PAID: public(constant(uint256)) = 2**120 - 1


# @dev Bit masks for the packed storage words.
_MASK_24: constant(uint256) = 2**24 - 1
_MASK_32: constant(uint256) = 2**32 - 1
_MASK_100: constant(uint256) = 2**100 - 1
_MASK_120: constant(uint256) = 2**120 - 1
_MASK_128: constant(uint256) = 2**128 - 1


# @dev A set bit that keeps the packed ledgers non-zero from
# deployment on, so the first payment, claim or move of a
# dataset rewrites a slot instead of paying for a fresh one.
_LIVE: constant(uint256) = 1 << 255


# @dev Field offsets of an account word:
# [prev: 0..99 | cur: 100..199 | history length: 200..223 |
#  period: 224..255]. `period` is the block of the account's
# latest balance change, `cur` its balance now, `prev` its
# balance at the end of the block before `period`.
_CUR_SHIFT: constant(uint256) = 100
_LEN_SHIFT: constant(uint256) = 200
_PERIOD_SHIFT: constant(uint256) = 224


# @dev Field offset of a history word: [balance: 0..99 |
# period: 100..131], the balance held at the end of the block
# before block `period`.
_HISTORY_PERIOD_SHIFT: constant(uint256) = 100


# @dev Field offset of the dividend ledger:
# [dust: 0..127 | total paid: 128..247 | live bit: 255].
_PAID_SHIFT: constant(uint256) = 128


# @dev Field offset of the counters word: [block of the latest
# share move: 0..31 | total claimed: 32..151 | live bit: 255].
_CLAIMED_SHIFT: constant(uint256) = 32


# @dev The data market: the only account that may mint.
market: public(immutable(address))


# @dev The id of this token's dataset in the data market.
dataset_id: public(immutable(uint256))


# @dev The magnified dividend per share, modulo 2**256.
_magnified_per_share: uint256


# @dev The packed dividend ledger (see `_PAID_SHIFT`).
_dividend_ledger: uint256


# @dev The packed counters (see `_CLAIMED_SHIFT`).
_counters: uint256


# @dev The packed checkpoint word of each account (see
# `_PERIOD_SHIFT`).
_accounts: HashMap[address, uint256]


# @dev The older checkpoints of each account, oldest first
# (see `_HISTORY_PERIOD_SHIFT`).
_history: HashMap[address, HashMap[uint256, uint256]]


# @dev The dividend correction of each account, modulo 2**256.
_corrections: HashMap[address, uint256]


# @dev Emitted when ETH is paid to the shareholders.
# `per_share_magnified` is the increase of the magnified dividend
# per share unit, `dust` the magnified remainder carried forward.
event DividendPaid:
    payer: indexed(address)
    amount: uint256
    per_share_magnified: uint256
    dust: uint256


# @dev Emitted when `account` claims `amount` wei to `receiver`.
# `dust` is the sub-wei remainder (magnified) that the claim
# moved into the shared `dust`.
event DividendClaimed:
    account: indexed(address)
    receiver: indexed(address)
    amount: uint256
    dust: uint256


@deploy
@payable
def __init__(name_: String[25], dataset_id_: uint256):
    """
    @dev Deployed by the data market from the blueprint; the
         market becomes `owner` and the only minter.
    @notice The constructor is `payable` to omit the `msg.value`
            check, as in snekmate.
    @param name_ The maximum 25-character name (the dataset's).
    @param dataset_id_ The 32-byte id of the dataset; the symbol
           is derived from it (see `_symbol`).
    """
    ownable.__init__()
    erc20.__init__(name_, self._symbol(dataset_id_), 18, name_, "1")
    market = msg.sender
    dataset_id = dataset_id_
    # Start the dividend per share at 1, not 0: every holder's
    # correction is then non-zero from their first share on, so
    # a claim rewrites a slot instead of paying for a fresh one.
    self._magnified_per_share = 1
    self._dividend_ledger = _LIVE
    self._counters = _LIVE


@external
@payable
def __default__():
    """
    @dev A plain ETH transfer (empty calldata) is a dividend
         payment, as `pay`.
    @notice Calls with unknown calldata revert so that a wrong
            function call is never taken as a payment.
    """
    assert len(msg.data) == 0, "share_token: unknown function"
    self._pay(msg.sender, msg.value)


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @dev Moves `amount` shares from the caller to `to`, keeping
         snapshots and dividend corrections.
    @notice Dividends already earned stay with the sender; the
            shares moved earn for `to` from now on. The move adds
            no vote weight to `to` for proposals already created
            (their weights are balances at an earlier block).
    @param to The 20-byte receiver address.
    @param amount The 32-byte share amount to be transferred.
    @return bool Always `True`; failures revert.
    """
    self._move(msg.sender, to, amount)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @dev Moves `amount` shares from `owner` to `to` using the
         caller's allowance, keeping checkpoints and dividend
         corrections.
    @param owner The 20-byte owner address.
    @param to The 20-byte receiver address.
    @param amount The 32-byte share amount to be transferred.
    @return bool Always `True`; failures revert.
    """
    erc20._spend_allowance(owner, msg.sender, amount)
    self._move(owner, to, amount)
    return True


@external
def mint(owner: address, amount: uint256) -> uint256:
    """
    @dev Mints `amount` shares to `owner`; only the market may
         call it (initial data and accepted proposals).
    @notice New shares earn nothing from earlier payments.
    @param owner The 20-byte receiver address.
    @param amount The 32-byte share amount to be minted.
    @return uint256 The total supply after minting.
    """
    assert msg.sender == market, "share_token: caller is not the market"
    supply: uint256 = erc20.totalSupply + amount
    assert supply <= MAX_SUPPLY, "share_token: supply cap exceeded"
    erc20._mint(owner, amount)
    self._moved_now()
    self._checkpoint(owner, erc20.balanceOf[owner])
    # Modular by design (see the contract NatSpec).
    self._corrections[owner] = unsafe_sub(
        self._corrections[owner], unsafe_mul(self._magnified_per_share, amount)
    )
    return supply


@external
@payable
def pay():
    """
    @dev Pays `msg.value` wei to the shareholders, pro rata to
         their balances now.
    @notice Reverts if nothing is paid or if there are no shares.
    """
    self._pay(msg.sender, msg.value)


@external
@nonreentrant
def claim(receiver: address = msg.sender) -> uint256:
    """
    @dev Sends the caller's claimable dividends to `receiver`
         (the caller by default).
    @notice Pull payment: effects are written before the ETH is
            sent, and the function is `@nonreentrant`. The caller's
            sub-wei remainder moves into `dust`.
    @param receiver The 20-byte address that receives the ETH.
    @return uint256 The amount sent, in wei.
    """
    assert receiver != empty(address), "share_token: zero receiver"
    accumulated: uint256 = self._accumulated(msg.sender)
    amount: uint256 = accumulated // MAGNITUDE
    assert amount != 0, "share_token: nothing to claim"

    dust: uint256 = accumulated % MAGNITUDE
    ledger: uint256 = self._dividend_ledger
    if (ledger & _MASK_128) + dust > _MASK_128:
        # Never happens in practice (2**32 claims without a payment);
        # the remainder then simply stays with the holder.
        dust = 0
    else:
        # Cannot overflow the 128-bit field (checked above).
        self._dividend_ledger = unsafe_add(ledger, dust)

    # `amount * MAGNITUDE + dust <= accumulated`; modular by design.
    self._corrections[msg.sender] = unsafe_sub(
        self._corrections[msg.sender], unsafe_add(unsafe_mul(amount, MAGNITUDE), dust)
    )
    # `total_claimed <= total_paid < 2**120`: fits its field.
    self._counters = unsafe_add(self._counters, amount << _CLAIMED_SHIFT)
    log DividendClaimed(account=msg.sender, receiver=receiver, amount=amount, dust=dust)

    raw_call(receiver, b"", value=amount)
    return amount


@external
@nonreentrant
def distribute_surplus() -> uint256:
    """
    @dev Pays out, as a dividend, ETH the token holds beyond what
         it owes (`total_paid - total_claimed`): ETH forced in
         without a call (`SELFDESTRUCT`, block rewards), which
         would otherwise sit here unaccounted.
    @notice Anyone may call it, in a block in which no share has
            moved yet (else it reverts: call it again in a later
            block); the event names the caller as payer.
    @return uint256 The amount distributed, in wei.
    """
    owed: uint256 = ((self._dividend_ledger >> _PAID_SHIFT) & _MASK_120) - (
        (self._counters >> _CLAIMED_SHIFT) & _MASK_120
    )
    surplus: uint256 = self.balance - owed
    assert surplus != 0, "share_token: no surplus"
    # Paid by the balances now; with no move in this block yet they
    # are those at the end of the previous block, which no loan
    # taken in this block can have inflated.
    assert self._counters & _MASK_32 != block.number, "share_token: shares moved in this block"
    self._pay(msg.sender, surplus)
    return surplus


@external
@view
def balance_at(account: address, block_number: uint256) -> uint256:
    """
    @dev Returns the balance `account` held at the end of block
         `block_number` (as OpenZeppelin's `getPastVotes`).
    @notice Reverts for the current block and later ones: their
            balances are not final yet.
    @param account The 20-byte account address.
    @param block_number The 32-byte number of a mined block.
    @return uint256 The 32-byte balance at the end of that block.
    """
    assert block_number < block.number, "share_token: future lookup"
    return self._balance_at(account, block_number + 1)


@external
@view
def last_move_block() -> uint256:
    """
    @dev Returns the block of the latest share move (transfer or
         mint); `distribute_surplus` waits for a block without one.
    @return uint256 The 32-byte block number (0 if none).
    """
    return self._counters & _MASK_32


@external
@view
def claimable(account: address) -> uint256:
    """
    @dev Returns the dividends, in wei, that `account` can claim.
    @param account The 20-byte account address.
    @return uint256 The 32-byte claimable amount in wei.
    """
    return self._accumulated(account) // MAGNITUDE


@external
@view
def dividend_of(account: address) -> uint256:
    """
    @dev Returns the unclaimed dividends of `account` in magnified
         units (wei times `MAGNITUDE`), including the sub-wei part
         that `claimable` rounds down.
    @param account The 20-byte account address.
    @return uint256 The 32-byte magnified unclaimed dividends.
    """
    return self._accumulated(account)


@external
@view
def dust() -> uint256:
    """
    @dev Returns the rounding dust, in magnified units (wei times
         `MAGNITUDE`), that the next payment distributes: the
         remainder of the last payment's division plus the sub-wei
         remainders moved here by claims since.
    @return uint256 The 32-byte magnified dust.
    """
    return self._dividend_ledger & _MASK_128


@external
@view
def total_paid() -> uint256:
    """
    @dev Returns the total ETH ever paid to the shareholders.
    @return uint256 The 32-byte amount in wei.
    """
    return (self._dividend_ledger >> _PAID_SHIFT) & _MASK_120


@external
@view
def total_claimed() -> uint256:
    """
    @dev Returns the total ETH ever claimed by the shareholders.
    @return uint256 The 32-byte amount in wei.
    """
    return (self._counters >> _CLAIMED_SHIFT) & _MASK_120


@external
@view
def magnified_dividend_per_share() -> uint256:
    """
    @dev Returns the magnified dividend per share unit, modulo
         2**256 (it starts at 1; only differences matter).
    @return uint256 The 32-byte magnified dividend per share.
    """
    return self._magnified_per_share


@internal
def _move(owner: address, to: address, amount: uint256):
    """
    @dev Moves `amount` shares from `owner` to `to` with snekmate's
         `_transfer` (checks, balances, `Transfer` event), then, for
         a non-zero amount, records both checkpoints and moves the dividend
         correction so that earned dividends stay with `owner`.
    @param owner The 20-byte owner address.
    @param to The 20-byte receiver address.
    @param amount The 32-byte share amount to be transferred.
    """
    erc20._transfer(owner, to, amount)
    if amount == 0:
        # Nothing moves: no checkpoint, so nobody can write entries
        # into another account's history.
        return
    self._moved_now()
    self._checkpoint(owner, erc20.balanceOf[owner])
    self._checkpoint(to, erc20.balanceOf[to])
    # Modular by design (see the contract NatSpec).
    delta: uint256 = unsafe_mul(self._magnified_per_share, amount)
    self._corrections[owner] = unsafe_add(self._corrections[owner], delta)
    self._corrections[to] = unsafe_sub(self._corrections[to], delta)


@internal
def _moved_now():
    """
    @dev Records that shares move in this block (for
         `distribute_surplus`); rewrites the counters word only on
         the first move of a block.
    """
    counters: uint256 = self._counters
    if counters & _MASK_32 != block.number:
        assert block.number <= MAX_BLOCK_NUMBER, "share_token: block number too large"
        self._counters = (counters & ~_MASK_32) | block.number


@internal
def _checkpoint(account: address, balance: uint256):
    """
    @dev Records that the balance of `account` is now `balance`.
         On the account's first change in a new block, the balance
         it held at the end of the blocks before (the old `cur`)
         becomes `prev`, and the previous period moves into the
         history. `_moved_now` has checked that the block number
         fits its 32 bits.
    @param account The 20-byte account address.
    @param balance The 32-byte balance after the change.
    """
    word: uint256 = self._accounts[account]
    period: uint256 = word >> _PERIOD_SHIFT
    if period == block.number:
        # Same period: only the current balance changes. `balance`
        # is at most `MAX_SUPPLY` and fits its 100 bits.
        self._accounts[account] = (word & ~(_MASK_100 << _CUR_SHIFT)) | (balance << _CUR_SHIFT)
        return
    length: uint256 = (word >> _LEN_SHIFT) & _MASK_24
    if period != 0:
        # Period 0 (no change yet) is never looked up.
        self._history[account][length] = (period << _HISTORY_PERIOD_SHIFT) | (word & _MASK_100)
        length += 1
        assert length <= _MASK_24, "share_token: history full"
    self._accounts[account] = (
        (block.number << _PERIOD_SHIFT)
        | (length << _LEN_SHIFT)
        | (balance << _CUR_SHIFT)
        | ((word >> _CUR_SHIFT) & _MASK_100)
    )


@internal
@view
def _balance_at(account: address, start_block: uint256) -> uint256:
    """
    @dev Returns the balance `account` held at the start of block
         `start_block` (the end of the block before): the balance
         at the start of the first period at or after `start_block`
         in which it changed, or the current balance if it has not
         changed since.
    @param account The 20-byte account address.
    @param start_block The 32-byte block number (at least 1).
    @return uint256 The 32-byte balance at the start of that block.
    """
    word: uint256 = self._accounts[account]
    if word >> _PERIOD_SHIFT < start_block:
        return (word >> _CUR_SHIFT) & _MASK_100
    length: uint256 = (word >> _LEN_SHIFT) & _MASK_24
    if length == 0:
        return word & _MASK_100
    # `length >= 1`, so no underflow.
    if self._history[account][unsafe_sub(length, 1)] >> _HISTORY_PERIOD_SHIFT < start_block:
        return word & _MASK_100
    # The first history entry with period >= `start_block`
    # exists in [0, length - 1]: bisect for it.
    low: uint256 = 0
    high: uint256 = unsafe_sub(length, 1)
    for _: uint256 in range(24):
        if low >= high:
            break
        # `low < high < 2**24`: no overflow.
        middle: uint256 = unsafe_add(low, high) >> 1
        if self._history[account][middle] >> _HISTORY_PERIOD_SHIFT >= start_block:
            high = middle
        else:
            low = unsafe_add(middle, 1)
    return self._history[account][low] & _MASK_100


@internal
def _pay(payer: address, amount: uint256):
    """
    @dev Raises the magnified dividend per share by
         `(amount * MAGNITUDE + dust) // supply` and keeps the
         remainder as the new `dust`.
    @param payer The 20-byte payer address (for the event).
    @param amount The 32-byte payment in wei.
    """
    assert amount != 0, "share_token: zero payment"
    supply: uint256 = erc20.totalSupply
    assert supply != 0, "share_token: no shares"
    ledger: uint256 = self._dividend_ledger
    paid: uint256 = ((ledger >> _PAID_SHIFT) & _MASK_120) + amount
    assert paid <= MAX_TOTAL_PAID, "share_token: payment overflow"
    # `amount < 2**120`, so the numerator is below 2**217.
    numerator: uint256 = amount * MAGNITUDE + (ledger & _MASK_128)
    step: uint256 = numerator // supply
    # The remainder is below the supply (< 2**100).
    dust: uint256 = numerator % supply
    # Modular by design (see the contract NatSpec).
    self._magnified_per_share = unsafe_add(self._magnified_per_share, step)
    self._dividend_ledger = _LIVE | (paid << _PAID_SHIFT) | dust
    log DividendPaid(payer=payer, amount=amount, per_share_magnified=step, dust=dust)


@internal
@view
def _accumulated(account: address) -> uint256:
    """
    @dev Returns the unclaimed magnified dividends of `account`:
         `per_share * balance + correction`, modulo 2**256.
    @notice Exact: the true value is below `total_paid * MAGNITUDE`
            plus the dust, far below 2**256.
    @param account The 20-byte account address.
    @return uint256 The 32-byte magnified unclaimed dividends.
    """
    return unsafe_add(
        unsafe_mul(self._magnified_per_share, erc20.balanceOf[account]), self._corrections[account]
    )


@internal
@pure
def _symbol(id_: uint256) -> String[5]:
    """
    @dev Derives the token symbol from the dataset id: "DB7",
         "DB999", "D1000", "12345": unique for every id below
         100,000 (the market creates no more datasets than that).
         Larger ids (never from the market) get their last five
         digits.
    @param id_ The 32-byte dataset id.
    @return String The maximum 5-character symbol.
    """
    digits: String[78] = uint2str(id_)
    length: uint256 = len(digits)
    if length == 1:
        return concat("DB", slice(digits, 0, 1))
    if length == 2:
        return concat("DB", slice(digits, 0, 2))
    if length == 3:
        return concat("DB", slice(digits, 0, 3))
    if length == 4:
        return concat("D", slice(digits, 0, 4))
    return slice(digits, length - 5, 5)
