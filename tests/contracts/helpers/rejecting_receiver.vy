# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Rejecting Receiver (test helper)
@custom:contract-name rejecting_receiver
@license Apache-2.0
@notice A contract that refuses every ETH transfer.
"""


@external
@payable
def __default__():
    """
    @dev Always reverts.
    """
    raise "rejecting_receiver: no ETH"
