# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Compute Market Reentrant Receiver (test helper)
@custom:contract-name compute_reentrant_receiver
@license Apache-2.0
@notice A contract account that plays a worker or a payer of the
        compute market through `call`; when ETH arrives it replays the
        stored `reentry` calldata against the market once, from inside
        the payment, and records whether that succeeded.
"""


target: public(address)
reentry: public(Bytes[512])
reentered: public(bool)
reentry_succeeded: public(bool)
received: public(uint256)


@deploy
def __init__(target_: address):
    """
    @dev Remembers the market to attack.
    @param target_ The 20-byte compute market address.
    """
    self.target = target_


@external
def set_reentry(data: Bytes[512]):
    """
    @dev Sets the calldata replayed when ETH arrives.
    @param data The calldata.
    """
    self.reentry = data


@external
@payable
def call(data: Bytes[1024], amount: uint256 = 0) -> Bytes[256]:
    """
    @dev Calls the market with `data`, sending `amount` wei of this
         contract's balance.
    @param data The calldata.
    @param amount The wei sent with the call.
    @return Bytes The return data.
    """
    return raw_call(self.target, data, max_outsize=256, value=amount)


@external
@payable
def __default__():
    """
    @dev Receives ETH and replays `reentry` once.
    """
    self.received += msg.value
    if not self.reentered and len(self.reentry) != 0:
        self.reentered = True
        self.reentry_succeeded = raw_call(self.target, self.reentry, revert_on_failure=False)
