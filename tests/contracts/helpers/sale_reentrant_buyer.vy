# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Reentrant Weight Buyer (test helper)
@custom:contract-name sale_reentrant_buyer
@license Apache-2.0
@notice Buys weights, cancels for a refund, withdraws it and, when the
        ETH arrives, tries to withdraw again from inside the payment.
"""


interface IWeightSale:
    def buy(model_id: uint256, version: uint256) -> uint256: payable
    def cancel(sale_id: uint256): nonpayable
    def withdraw(receiver: address) -> uint256: nonpayable


sale: public(address)
reentered: public(bool)
reentry_succeeded: public(bool)
received: public(uint256)


@deploy
def __init__(sale_: address):
    """
    @dev Remembers the weight sale to attack.
    @param sale_ The 20-byte `WeightSale` address.
    """
    self.sale = sale_


@external
@payable
def buy_and_cancel(model_id: uint256, version: uint256) -> uint256:
    """
    @dev Buys a listed version with `msg.value` and cancels at once.
    @param model_id The 32-byte model id.
    @param version The 32-byte version number.
    @return uint256 The sale id.
    """
    sale_id: uint256 = extcall IWeightSale(self.sale).buy(model_id, version, value=msg.value)
    extcall IWeightSale(self.sale).cancel(sale_id)
    return sale_id


@external
def withdraw() -> uint256:
    """
    @dev Withdraws this contract's refund to itself.
    @return uint256 The amount withdrawn.
    """
    return extcall IWeightSale(self.sale).withdraw(self)


@external
@payable
def __default__():
    """
    @dev Receives ETH and re-enters `withdraw` once.
    """
    self.received += msg.value
    if not self.reentered:
        self.reentered = True
        self.reentry_succeeded = raw_call(
            self.sale, abi_encode(self, method_id=method_id("withdraw(address)")), revert_on_failure=False
        )
