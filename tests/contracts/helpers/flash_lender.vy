# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Flash Lender (test helper)
@custom:contract-name flash_lender
@license Apache-2.0
@notice A lending pool that lends the share tokens it holds for the span
        of one call, as ERC-3156 flash lenders do: it sends the shares,
        calls the borrower back and checks that they came back.
"""


interface IERC20:
    def transfer(to: address, amount: uint256) -> bool: nonpayable
    def balanceOf(account: address) -> uint256: view


interface IFlashBorrower:
    def on_flash_loan(token: address, amount: uint256): nonpayable


@external
def flash_loan(borrower: address, token: address, amount: uint256):
    """
    @dev Lends `amount` of `token` to `borrower` for the span of
         its `on_flash_loan` callback.
    @param borrower The 20-byte borrower (an `IFlashBorrower`).
    @param token The 20-byte share token address.
    @param amount The 32-byte amount lent.
    """
    before: uint256 = staticcall IERC20(token).balanceOf(self)
    extcall IERC20(token).transfer(borrower, amount)
    extcall IFlashBorrower(borrower).on_flash_loan(token, amount)
    assert staticcall IERC20(token).balanceOf(self) >= before, "flash_lender: not repaid"
