# pragma version ~=0.4.3
"""
@title Counter
@notice Test-only contract for the gateway conformance suite: a view, a write, an event and
        a revert string.
"""

event Bumped:
    who: indexed(address)
    by: uint256


counter: public(uint256)


@external
@payable
def bump(by: uint256):
    """
    @dev Adds `by`; refuses 100 or more so tests can see a revert reason.
    @param by The amount to add.
    """
    assert by < 100, "counter: too big"
    self.counter += by
    log Bumped(who=msg.sender, by=by)


slots: public(HashMap[uint256, uint256])


@external
def grow(n: uint256):
    """
    @dev Writes `n` storage slots: gas grows with `n`, so a gas limit cached for a small `n`
         runs out for a large one.
    @param n How many slots to write.
    """
    for i: uint256 in range(n, bound=64):
        self.slots[i] = n
