# pragma version ~=0.4.3
# pragma evm-version cancun
# pragma nonreentrancy off
"""
@title DataBright Data Access
@custom:contract-name DataAccess
@license Apache-2.0
@notice Paid access to a dataset's curated data, checked by the platform
        server's gatekeeper before it serves a byte (the role of Ocean's
        provider). The data itself never touches the chain: the server
        asks `has_access` at request time and serves the dataset's blobs
        only to a signed-in account for which it is true.

        Price. A dataset's initiator (`DataMarket.initiator_role`, read
        at call time, so the price follows a hand-over) sets and changes
        its access price in wei; 0 (the default) means free: the data is
        public and everyone has access. A change applies to later
        purchases only: access already bought stays.

        Buying. Anyone buys access for themselves or for another account
        (a gift, or a wallet paying for a key the server knows) by paying
        exactly the price now: `msg.value` must equal it, so a buyer
        whose transaction lands after a price change is refused, never
        charged another amount. The payment goes at once to the dataset's
        share token (`pay`), a dividend to its shareholders, as the model
        market's training fee does. One purchase per (dataset, account):
        access is for good; a second purchase is refused rather than
        charged twice. A free dataset sells nothing.

        Who has access (`has_access`). An account has access to a dataset
        when the dataset is free, when access was bought for it, or when
        it takes part in curating it now: its initiator, one of its
        evaluators (they score proposals against the accepted data), or a
        holder of at least one share unit at this moment. Those roles are
        read live from the data market and the share token, so an account
        that sells all its shares (or hands the dataset over) loses the
        access it had through them, unless it bought access. A holder may
        pass access on by giving away a share unit; it could as well pass
        on the data: the gatekeeper controls serving, not copying.

        Storage and gas. A dataset's share token never changes; it is
        cached when a price is first set, so a purchase makes one external
        call (the dividend payment). A dataset's sales (revenue and number
        of buyers) share one word, made non-zero with a live bit when the
        price is first set, so that the first purchase rewrites it as every
        later one does (measured on anvil: ~80k gas a purchase, the share
        token's dividend payment included).
@custom:security `buy` moves ether, is `@nonreentrant` and follows
                 checks-effects-interactions; its only external call is
                 the share token's `pay`. `set_price` and `has_access`
                 make static calls to the data market and share token.
"""


# @dev The data market views this contract reads (roles and
# share tokens).
from interfaces import IDataMarket


# @dev The share token interface (`pay`, the dividend payment).
from interfaces import IShareToken


# @dev The share token's ERC-20 `balanceOf` (current holders
# have access).
from ethereum.ercs import IERC20


# @dev The largest access price in wei.
MAX_PRICE: public(constant(uint256)) = 2**128 - 1


# @dev Fields of the packed sales word: [revenue: 0..127 |
# buyers: 128..254 | live bit: 255].
_BUYERS_SHIFT: constant(uint256) = 128
_MASK_127: constant(uint256) = 2**127 - 1
_MASK_128: constant(uint256) = 2**128 - 1
_LIVE: constant(uint256) = 1 << 255


# @dev The data market whose datasets are priced here.
market: public(immutable(address))


# @dev Dataset id => access price in wei (0: free).
price: public(HashMap[uint256, uint256])


# @dev Dataset id => account => access bought.
bought: public(HashMap[uint256, HashMap[address, bool]])


# @dev Dataset id => packed sales (see `_BUYERS_SHIFT`).
_sales: HashMap[uint256, uint256]


# @dev Dataset id => its share token, cached when a price is
# first set (a dataset's token never changes).
_share_tokens: HashMap[uint256, address]


# @dev Emitted when a dataset's initiator sets its access price
# (0: free).
event AccessPriceSet:
    dataset_id: indexed(uint256)
    initiator: indexed(address)
    price: uint256


# @dev Emitted when access is bought; `amount` went to the
# dataset's shareholders.
event AccessBought:
    dataset_id: indexed(uint256)
    buyer: indexed(address)
    account: indexed(address)
    amount: uint256


@deploy
def __init__(data_market: address):
    """
    @dev Binds the access register to a data market.
    @param data_market The 20-byte address of the `DataMarket`.
    """
    assert data_market.is_contract, "data_access: data market is not a contract"
    market = data_market


@external
def set_price(dataset_id: uint256, price_: uint256):
    """
    @dev Sets a dataset's access price (0: free and public).
    @notice Only the dataset's initiator. Purchases already made
            stay; later ones pay the new price.
    @param dataset_id The 32-byte dataset id.
    @param price_ The price in wei (at most `MAX_PRICE`).
    """
    dm: IDataMarket = IDataMarket(market)
    assert staticcall dm.hasRole(staticcall dm.initiator_role(dataset_id), msg.sender), "data_access: not the initiator"
    assert price_ <= MAX_PRICE, "data_access: invalid price"
    if self._share_tokens[dataset_id] == empty(address):
        self._share_tokens[dataset_id] = staticcall dm.share_token(dataset_id)
        self._sales[dataset_id] = _LIVE
    self.price[dataset_id] = price_
    log AccessPriceSet(dataset_id=dataset_id, initiator=msg.sender, price=price_)


@external
@payable
@nonreentrant
def buy(dataset_id: uint256, account: address):
    """
    @dev Buys access to a dataset for `account`, paying its price
         to the dataset's shareholders as a dividend.
    @notice `msg.value` must equal the price now; once per
            (dataset, account). Effects before the payment.
    @param dataset_id The 32-byte dataset id.
    @param account The 20-byte account that gets access (the
           caller's own address to buy for oneself).
    """
    assert account != empty(address), "data_access: zero account"
    price_: uint256 = self.price[dataset_id]
    assert price_ != 0, "data_access: dataset is free"
    assert not self.bought[dataset_id][account], "data_access: access already bought"
    assert msg.value == price_, "data_access: wrong price"
    self.bought[dataset_id][account] = True
    sales: uint256 = self._sales[dataset_id]
    # Keep the sum in its field (no ether supply reaches it).
    assert (sales & _MASK_128) + msg.value <= _MASK_128, "data_access: revenue overflow"
    # Each field stays below its bound: no carry into the next.
    self._sales[dataset_id] = unsafe_add(sales, msg.value + (1 << _BUYERS_SHIFT))
    log AccessBought(dataset_id=dataset_id, buyer=msg.sender, account=account, amount=msg.value)
    extcall IShareToken(self._share_tokens[dataset_id]).pay(value=msg.value)


@external
@view
def revenue(dataset_id: uint256) -> uint256:
    """
    @dev Returns the total wei ever paid for access to a dataset
         (all of it to its shareholders).
    @param dataset_id The 32-byte dataset id.
    @return uint256 The 32-byte revenue in wei.
    """
    return self._sales[dataset_id] & _MASK_128


@external
@view
def buyers(dataset_id: uint256) -> uint256:
    """
    @dev Returns the number of purchases of access to a dataset.
    @param dataset_id The 32-byte dataset id.
    @return uint256 The 32-byte number of purchases.
    """
    return (self._sales[dataset_id] >> _BUYERS_SHIFT) & _MASK_127


@external
@view
def has_access(dataset_id: uint256, account: address) -> bool:
    """
    @dev Returns whether `account` may download the dataset's
         curated data now: the dataset is free, or access was
         bought for `account`, or `account` is the dataset's
         initiator, one of its evaluators, or holds shares now.
    @notice Roles and shares are read live, so access through them
            ends with them; bought access does not end.
    @param dataset_id The 32-byte dataset id.
    @param account The 20-byte account address.
    @return bool `True` if `account` has access.
    """
    if self.price[dataset_id] == 0 or self.bought[dataset_id][account]:
        return True
    if account == empty(address):
        return False
    dm: IDataMarket = IDataMarket(market)
    if staticcall dm.hasRole(staticcall dm.initiator_role(dataset_id), account):
        return True
    if staticcall dm.is_evaluator(dataset_id, account):
        return True
    # A priced dataset's token was cached when its price was set.
    return staticcall IERC20(self._share_tokens[dataset_id]).balanceOf(account) != 0
