//! Helpers the deterministic-tier tests share.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_sol_types::SolCall;
use bridge::{BRIDGE_ADDRESS, ShardId};
use testnet::Testnet;

/// The validators of `shard`, by index.
pub(crate) fn members(t: &Testnet, shard: u32) -> Vec<usize> {
    (0..t.validator_count()).filter(|i| t.validator_info(*i).0 == ShardId(shard)).collect()
}

/// `a`'s balance at validator `i`'s head.
pub(crate) fn balance(t: &Testnet, i: usize, a: Address) -> U256 {
    let node = t.node(i).unwrap();
    let h = node.head().header.height;
    node.state().account(a, h).unwrap().map_or(U256::ZERO, |x| x.balance)
}

/// A `send` of `value` from dev account `from` on `src` to `to` on `dst`.
pub(crate) fn send(t: &mut Testnet, src: u32, from: usize, dst: u32, to: Address, value: u128) -> Bytes {
    let data = prover::IBridge::sendCall { dstShard: dst, to, data: Bytes::new() }.abi_encode();
    t.call(ShardId(src), from, TxKind::Call(BRIDGE_ADDRESS), U256::from(value), data.into(), 300_000)
}

/// The network's supply audit at the beacon's accepted heads (the one
/// scenarios check after every slot).
pub(crate) use testnet::scenario::invariants::audit_at_beacon_heads;
