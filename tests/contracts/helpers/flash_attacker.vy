# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Flash-Loan Attacker (test helper)
@custom:contract-name flash_attacker
@license Apache-2.0
@notice Borrows shares from a `flash_lender` for one transaction and tries
        to turn them into votes or dividends: inside the loan it proposes
        (the moment a snapshot used to be taken), repays, votes and
        finalizes; or it calls `distribute_surplus` while holding the loan.
        Every step's success is recorded, not propagated.
"""


interface IERC20:
    def transfer(to: address, amount: uint256) -> bool: nonpayable


interface IFlashLender:
    def flash_loan(borrower: address, token: address, amount: uint256): nonpayable


interface IDataMarket:
    def commit_proposal(commitment: bytes32): nonpayable
    def propose(
        dataset_id: uint256, data_cid_digest: bytes32, manifest_root: bytes32, examples: uint256, metadata: bytes32
    ) -> uint256: nonpayable


# @dev What the callback does: 1 = propose, repay, vote, finalize;
# 2 = distribute the surplus, then repay; 3 = vote on
# `proposal_id`, then repay.
mode: uint8
market: address
lender: address
dataset_id: uint256
tag: bytes32
examples: uint256

# @dev The results of the latest attack.
proposal_id: public(uint256)
voted: public(bool)
finalized: public(bool)
distributed: public(bool)


@external
def commit(market: address, commitment: bytes32):
    """
    @dev Commits to a proposal this contract makes later.
    @param market The 20-byte market address.
    @param commitment The 32-byte proposal commitment.
    """
    extcall IDataMarket(market).commit_proposal(commitment)


@external
def attack_vote(
    lender: address, token: address, amount: uint256, market: address, dataset_id: uint256, tag: bytes32, examples: uint256
):
    """
    @dev Borrows `amount` shares and, inside the loan, proposes
         `examples` examples, repays, votes yes and finalizes.
    @param lender The 20-byte flash lender.
    @param token The 20-byte share token.
    @param amount The 32-byte amount borrowed.
    @param market The 20-byte data market.
    @param dataset_id The 32-byte dataset id.
    @param tag The 32-byte digest used for the proposal.
    @param examples The number of examples proposed.
    """
    self.mode = 1
    self.market = market
    self.lender = lender
    self.dataset_id = dataset_id
    self.tag = tag
    self.examples = examples
    extcall IFlashLender(lender).flash_loan(self, token, amount)


@external
def attack_surplus(lender: address, token: address, amount: uint256):
    """
    @dev Borrows `amount` shares, calls `distribute_surplus` while
         holding them, and repays.
    @param lender The 20-byte flash lender.
    @param token The 20-byte share token.
    @param amount The 32-byte amount borrowed.
    """
    self.mode = 2
    self.lender = lender
    extcall IFlashLender(lender).flash_loan(self, token, amount)


@external
def attack_vote_on(lender: address, token: address, amount: uint256, market: address, proposal_id: uint256):
    """
    @dev Borrows `amount` shares, votes yes on an open proposal
         while holding them, and repays.
    @param lender The 20-byte flash lender.
    @param token The 20-byte share token.
    @param amount The 32-byte amount borrowed.
    @param market The 20-byte data market.
    @param proposal_id The 32-byte proposal id.
    """
    self.mode = 3
    self.market = market
    self.lender = lender
    self.proposal_id = proposal_id
    extcall IFlashLender(lender).flash_loan(self, token, amount)


@external
def vote_again(market: address) -> bool:
    """
    @dev Tries to vote yes on the latest proposal, in a later
         transaction.
    @param market The 20-byte data market.
    @return bool Whether the vote went through.
    """
    return raw_call(
        market,
        abi_encode(self.proposal_id, True, method_id=method_id("vote(uint256,bool)")),
        revert_on_failure=False,
    )


@external
def on_flash_loan(token: address, amount: uint256):
    """
    @dev The lender's callback: runs the attack, then repays.
    @param token The 20-byte share token lent.
    @param amount The 32-byte amount lent.
    """
    assert msg.sender == self.lender, "flash_attacker: not the lender"
    if self.mode == 1:
        market: address = self.market
        self.proposal_id = extcall IDataMarket(market).propose(
            self.dataset_id, self.tag, self.tag, self.examples, self.tag
        )
        extcall IERC20(token).transfer(msg.sender, amount)
        self.voted = raw_call(
            market,
            abi_encode(self.proposal_id, True, method_id=method_id("vote(uint256,bool)")),
            revert_on_failure=False,
        )
        self.finalized = raw_call(
            market,
            abi_encode(self.proposal_id, method_id=method_id("finalize(uint256)")),
            revert_on_failure=False,
        )
        return
    if self.mode == 3:
        self.voted = raw_call(
            self.market,
            abi_encode(self.proposal_id, True, method_id=method_id("vote(uint256,bool)")),
            revert_on_failure=False,
        )
        extcall IERC20(token).transfer(msg.sender, amount)
        return
    self.distributed = raw_call(token, method_id("distribute_surplus()"), revert_on_failure=False)
    extcall IERC20(token).transfer(msg.sender, amount)
