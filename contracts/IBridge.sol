// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// The optishard bridge, at 0x0000000000000000000000000000000000000B1D on
/// every shard (a precompile). A message carries `msg.value` and a call to
/// `to` on shard `dstShard`; the destination credits the value to `to` and
/// calls it with `data` (msg.sender = the bridge). A call that fails on the
/// destination sends the value back to the sender on this shard (a refund).
///
/// The destination's gas is paid here: a send costs 30,000 gas + 16 per
/// data byte + the destination gas limit, at this transaction's gas price.
/// `msg.value` leaves the sender here. A send reverts, sending nothing, when
/// `dstShard` is this shard or not a shard, when `data` is over 65,536
/// bytes, when the gas limit is below the delivery's intrinsic cost
/// (21,000 + 4 per zero byte + 16 per other byte of `data`) or above
/// 10,000,000, or when it is not a plain CALL (static, delegate or callcode).
interface IBridge {
    /// Emitted for every message sent; `id` identifies it on both shards.
    event MessageSent(
        bytes32 indexed id,
        uint32 indexed dstShard,
        address indexed sender,
        address to,
        uint256 value,
        uint64 nonce,
        uint64 gasLimit,
        bytes data
    );

    /// Sends `msg.value` and a call of `to` with `data` to shard `dstShard`,
    /// with 100,000 gas on the destination. Returns the message id.
    function send(uint32 dstShard, address to, bytes calldata data) external payable returns (bytes32 id);

    /// As `send`, with `gasLimit` gas on the destination.
    function sendWithGas(uint32 dstShard, address to, uint64 gasLimit, bytes calldata data)
        external
        payable
        returns (bytes32 id);

    /// Inside a call delivered by the bridge: the source shard and the
    /// account that sent the message. Reverts outside one.
    function messageSender() external view returns (uint32 srcShard, address sender);
}
