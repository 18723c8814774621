// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "./IBridge.sol";

/// Test contract for cross-shard calls: `ping` sends a message to another
/// Pinger; `onPing` (delivered by the bridge) checks its caller and the
/// message's sender, counts, and emits. Data starting with 0xff fails.
contract Pinger {
    IBridge constant BRIDGE = IBridge(0x0000000000000000000000000000000000000B1D);

    event Pinged(uint32 srcShard, address sender, uint256 value, bytes data);

    uint256 public pings;
    uint32 public lastSrc;
    address public lastSender;

    /// Sends `msg.value` and a ping with `data` to the Pinger `to` on `dst`.
    function ping(uint32 dst, address to, bytes calldata data) external payable returns (bytes32) {
        return BRIDGE.send{value: msg.value}(dst, to, abi.encodeCall(Pinger.onPing, (data)));
    }

    /// Sends a message, then reverts: nothing may be sent.
    function pingAndRevert(uint32 dst, address to) external payable {
        BRIDGE.send{value: msg.value}(dst, to, "");
        revert("after send");
    }

    /// Delivered by the bridge.
    function onPing(bytes calldata data) external payable {
        require(msg.sender == address(BRIDGE), "only the bridge");
        (uint32 src, address sender) = BRIDGE.messageSender();
        require(data.length == 0 || data[0] != 0xff, "asked to fail");
        pings += 1;
        lastSrc = src;
        lastSender = sender;
        emit Pinged(src, sender, msg.value, data);
    }
}
