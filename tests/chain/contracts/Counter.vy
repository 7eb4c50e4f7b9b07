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


@external
@view
def fail(kind: uint256):
    """
    @dev Reverts the ways a contract can, so tests can see each decoded: 0 without a reason,
         1 with a Solidity panic (overflow), 2 with the custom error `TooBig(uint256,address)`,
         3 with data that is not ABI-encoded.
    @param kind Which revert.
    """
    if kind == 1:
        raw_revert(abi_encode(convert(17, uint256), method_id=method_id("Panic(uint256)")))
    if kind == 2:
        raw_revert(abi_encode(kind, self, method_id=method_id("TooBig(uint256,address)")))
    if kind == 3:
        raw_revert(b"\x01\x02")
    raise
