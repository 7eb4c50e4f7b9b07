# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Reentrant Claimer (test helper)
@custom:contract-name reentrant_claimer
@license Apache-2.0
@notice Holds shares, claims its dividends and, when the ETH arrives,
        tries to claim again from inside the payment.
"""


interface IShareToken:
    def claim(receiver: address) -> uint256: nonpayable


token: public(address)
reentered: public(bool)
reentry_succeeded: public(bool)
received: public(uint256)


@deploy
def __init__(token_: address):
    """
    @dev Remembers the token to attack.
    @param token_ The 20-byte share token address.
    """
    self.token = token_


@external
def claim() -> uint256:
    """
    @dev Claims this contract's dividends to itself.
    @return uint256 The amount claimed.
    """
    return extcall IShareToken(self.token).claim(self)


@external
@payable
def __default__():
    """
    @dev Receives ETH and re-enters `claim` once.
    """
    self.received += msg.value
    if not self.reentered:
        self.reentered = True
        self.reentry_succeeded = raw_call(
            self.token, abi_encode(self, method_id=method_id("claim(address)")), revert_on_failure=False
        )
