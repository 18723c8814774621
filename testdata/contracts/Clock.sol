// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Test contract whose gas depends on the block it runs in, as a Uniswap V2
/// pair's does: `poke` adds the time elapsed to four running totals only
/// when `block.timestamp` moved since the last poke (four more storage
/// writes), so a poke right after another costs less in the same second
/// than in the next one.
contract Clock {
    event Poked(address indexed who, uint32 timestamp, bool moved);

    uint32 public last;
    uint256 public pokes;
    uint256[4] public totals;

    function poke() external {
        uint32 nowTs = uint32(block.timestamp);
        require(nowTs >= last, "time went back");
        bool moved = nowTs != last;
        if (moved) {
            uint32 elapsed = nowTs - last;
            for (uint256 i = 0; i < 4; i++) {
                totals[i] += elapsed * (i + 1);
            }
        }
        last = nowTs;
        pokes += 1;
        emit Poked(msg.sender, nowTs, moved);
    }
}
