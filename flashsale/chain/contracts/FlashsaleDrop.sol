// SPDX-License-Identifier: MIT
// One ERC-721 contract per sale (docs/design.md#delivery-on-chain). The account
// that deploys it is its only minter: flashsale's deliverer mints each paid
// order's token to its buyer. Token id = the serial for a range sale, the
// serial's position (1 for the first) for a list sale.
pragma solidity 0.8.30;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";

contract FlashsaleDrop is ERC721 {
    /// Who may mint: the deployer.
    address public immutable minter;

    error NotMinter(address caller);

    constructor(string memory name_, string memory symbol_) ERC721(name_, symbol_) {
        minter = msg.sender;
    }

    /// Mint `tokenId` to `to`. Refused (ERC721InvalidSender) when the token
    /// exists: a token is never minted twice.
    function mint(address to, uint256 tokenId) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, tokenId);
    }

    /// The owner of `tokenId`, or the zero address when it was never minted
    /// (ownerOf reverts instead): the deliverer's check before it resubmits.
    function ownerOrZero(uint256 tokenId) external view returns (address) {
        return _ownerOf(tokenId);
    }
}
