//! Where a transaction sent now lands: the contexts of the blocks that may
//! be built soon, which `eth_call` and `eth_estimateGas` run in (an
//! estimate must be enough in whichever of them the transaction lands in).
//! Pure rules; the node supplies its head, schedule and clock.

use alloy_primitives::Address;
use bridge::{ChainSpec, ShardId};
use prover::BlockParams;

/// How far ahead the contexts reach: a transaction's first chance and every
/// block in the next two seconds (a transaction may miss a slot; block
/// timestamps are whole seconds, so a contract sees at most three values
/// in that time).
pub(crate) const LANDING_MS: u64 = 2_000;
/// At most this many contexts are simulated per estimate.
pub(crate) const MAX_LANDING_CONTEXTS: usize = 6;

/// `(timestamp, beneficiary)` of the blocks of a network shard that may be
/// built soon: the slots from the first one not yet built on the local
/// head (`head_slot`) or running now (`now`), each stamped with the second
/// it starts in and credited to its scheduled proposer.
pub(crate) fn slot_blocks(
    spec: &ChainSpec,
    shard: ShardId,
    coinbase: Address,
    now: u64,
    head_slot: u64,
) -> Vec<(u64, Address)> {
    let first = now.max(head_slot.saturating_add(1));
    let slots = LANDING_MS.div_ceil(spec.slot_ms.max(1)).max(1);
    (first..=first.saturating_add(slots))
        .map(|slot| {
            let proposer = spec.proposer(shard, slot).map(|a| Address::from(a.0));
            (spec.slot_timestamp(slot), proposer.unwrap_or(coinbase))
        })
        .collect()
}

/// The dev chain's next blocks: built on a timer, each stamped with the
/// wall-clock second it is built in (`now_secs` onwards), never before its
/// parent's.
pub(crate) fn dev_blocks(now_secs: u64, head_timestamp: u64, coinbase: Address) -> Vec<(u64, Address)> {
    (0..=LANDING_MS.div_ceil(1000))
        .map(|ahead| (now_secs.saturating_add(ahead).max(head_timestamp), coinbase))
        .collect()
}

/// The contexts to run in, from the next block's `base` and the `blocks`
/// that may build it (the likeliest first): every distinct timestamp first
/// (what contracts most often depend on), then other proposers of the same
/// seconds, at most [`MAX_LANDING_CONTEXTS`]; the likeliest first, the
/// rest in time order.
pub(crate) fn landing_contexts(base: &BlockParams, blocks: &[(u64, Address)]) -> Vec<BlockParams> {
    let mut chosen: Vec<(u64, Address)> = Vec::new();
    for c in blocks {
        if chosen.len() < MAX_LANDING_CONTEXTS && !chosen.iter().any(|x| x.0 == c.0) {
            chosen.push(*c);
        }
    }
    for c in blocks {
        if chosen.len() < MAX_LANDING_CONTEXTS && !chosen.contains(c) {
            chosen.push(*c);
        }
    }
    if let Some(first) = blocks.first().copied() {
        chosen.sort_by_key(|c| (*c != first, c.0));
    }
    chosen
        .into_iter()
        .map(|(timestamp, beneficiary)| BlockParams { timestamp, beneficiary, ..base.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BlockParams {
        BlockParams {
            shard: ShardId(0),
            shards: 1,
            chain_id: 1,
            number: 9,
            timestamp: 0,
            beneficiary: Address::ZERO,
            gas_limit: 30_000_000,
            base_fee: 7,
            prevrandao: Default::default(),
            fork: prover::SPEC,
        }
    }

    /// Forty 50 ms slots, each with another proposer: the cap is taken by
    /// distinct seconds first, so the later seconds are still simulated.
    #[test]
    fn short_slots_still_reach_the_later_seconds() {
        let who = |i: u8| Address::repeat_byte(i);
        let blocks: Vec<(u64, Address)> = (0..41u64).map(|i| (1_000 + i / 20, who(i as u8))).collect();
        let c = landing_contexts(&base(), &blocks);
        assert!(c.len() <= MAX_LANDING_CONTEXTS);
        assert_eq!((c[0].timestamp, c[0].beneficiary), blocks[0], "the likeliest first");
        for second in 1_000..=1_002 {
            assert!(c.iter().any(|p| p.timestamp == second), "second {second} is simulated");
        }
        assert!(c.windows(2).skip(1).all(|w| w[0].timestamp <= w[1].timestamp));
        assert!(c.iter().all(|p| p.number == 9 && p.base_fee == 7), "the next block's number and base fee");
    }

    /// The dev chain never stamps a block before its parent, and reaches
    /// the next seconds.
    #[test]
    fn dev_blocks_follow_the_clock_and_never_go_back() {
        assert_eq!(
            dev_blocks(100, 50, Address::ZERO).iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![100, 101, 102]
        );
        assert_eq!(
            dev_blocks(100, 101, Address::ZERO).iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![101, 101, 102]
        );
        assert_eq!(landing_contexts(&base(), &dev_blocks(100, 101, Address::ZERO)).len(), 2);
    }
}
