// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// Test contract: storage writes, events, reverts with reasons, deep loops.
contract Store {
    event ValueSet(address indexed who, uint256 indexed key, uint256 value);

    mapping(uint256 => uint256) public values;
    uint256 public count;

    function set(uint256 key, uint256 value) external {
        require(value != 0, "value must be non-zero");
        values[key] = value;
        count += 1;
        emit ValueSet(msg.sender, key, value);
    }

    function clear(uint256 key) external {
        delete values[key];
    }

    function get(uint256 key) external view returns (uint256) {
        return values[key];
    }

    /// Burns gas until it runs out when `rounds` is large.
    function spin(uint256 rounds) external {
        for (uint256 i = 0; i < rounds; i++) {
            values[i % 7] = i + 1;
        }
    }
}
