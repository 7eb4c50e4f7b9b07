# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Double Voter (test helper)
@custom:contract-name double_voter
@license Apache-2.0
@notice Tries to vote twice with the same shares inside one transaction:
        it proposes (taking the snapshot), moves all its shares to an
        accomplice, and both vote. Failures are recorded, not propagated.
"""


interface IDataMarket:
    def commit_proposal(commitment: bytes32): nonpayable
    def propose(
        dataset_id: uint256, data_cid_digest: bytes32, manifest_root: bytes32, examples: uint256, metadata: bytes32
    ) -> uint256: nonpayable


interface IShareToken:
    def transfer(to: address, amount: uint256) -> bool: nonpayable
    def balanceOf(account: address) -> uint256: view


interface IDoubleVoter:
    def try_vote(market: address, proposal_id: uint256) -> bool: nonpayable


@external
def commit(market: address, commitment: bytes32):
    """
    @dev Commits to a proposal this contract makes later.
    @param market The 20-byte market address.
    @param commitment The 32-byte proposal commitment.
    """
    extcall IDataMarket(market).commit_proposal(commitment)


@external
def try_vote(market: address, proposal_id: uint256) -> bool:
    """
    @dev Votes yes on `proposal_id`, returning whether it worked.
    @param market The 20-byte market address.
    @param proposal_id The 32-byte proposal id.
    @return bool `True` if the vote went through.
    """
    return raw_call(
        market,
        abi_encode(proposal_id, True, method_id=method_id("vote(uint256,bool)")),
        revert_on_failure=False,
    )


@external
def attack(
    market: address, token: address, accomplice: address, dataset_id: uint256, tag: bytes32, vote_first: bool
) -> (uint256, bool, bool):
    """
    @dev Proposes, then votes and moves its shares to `accomplice`
         (in either order), then lets `accomplice` vote.
    @param market The 20-byte market address.
    @param token The 20-byte share token address.
    @param accomplice The 20-byte accomplice (a `double_voter`).
    @param dataset_id The 32-byte dataset id.
    @param tag The 32-byte digest used for the proposal.
    @param vote_first Whether to vote before moving the shares.
    @return uint256 The proposal id.
    @return bool Whether this contract's vote went through.
    @return bool Whether the accomplice's vote went through.
    """
    proposal_id: uint256 = extcall IDataMarket(market).propose(dataset_id, tag, tag, 1, tag)
    own: bool = False
    if vote_first:
        own = self._vote(market, proposal_id)
    extcall IShareToken(token).transfer(accomplice, staticcall IShareToken(token).balanceOf(self))
    if not vote_first:
        own = self._vote(market, proposal_id)
    other: bool = extcall IDoubleVoter(accomplice).try_vote(market, proposal_id)
    return proposal_id, own, other


@internal
def _vote(market: address, proposal_id: uint256) -> bool:
    """
    @dev Votes yes, returning whether it worked.
    @param market The 20-byte market address.
    @param proposal_id The 32-byte proposal id.
    @return bool `True` if the vote went through.
    """
    return raw_call(
        market,
        abi_encode(proposal_id, True, method_id=method_id("vote(uint256,bool)")),
        revert_on_failure=False,
    )
