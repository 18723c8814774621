//! What a won challenge does to the chain: the proven header is discarded
//! with its descendants and the destination headers that consumed their
//! messages (the cascade). The referee (`referee.rs`) decides the games.

use bridge::{Hash, Invalidation, ShardHead, ShardId};
use tracing::warn;

use crate::chain::{BeaconChain, State};
use crate::store::{Discard, DiscardedHeader};
use crate::{Error, Result};

/// What sealing decided about games, for the block and the database.
#[derive(Default)]
pub(crate) struct Resolutions {
    pub invalidated: Vec<Invalidation>,
    pub discarded: Vec<Discard>,
}

impl BeaconChain {
    /// At the end of `slot`: the referee runs the clocks and settles ended
    /// games; what a won challenge proved invalid is discarded here.
    pub(crate) fn resolve_games(&self, state: &mut State, slot: u64) -> Result<Resolutions> {
        let (sealed, discarded) = self.with_referee(state, None, |referee, view| referee.seal(slot, view));
        Ok(Resolutions { invalidated: sealed?.invalidated, discarded })
    }

    /// Discards `shard`'s header at `height` and everything above it,
    /// then every destination header that consumed a message of a
    /// discarded one (recursively). The referee voids the games against them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn invalidate(
        &self,
        state: &mut State,
        shard: ShardId,
        height: u64,
        game: Hash,
        cause: Option<(ShardId, u64)>,
        slot: u64,
        invalidated: &mut Vec<Invalidation>,
        discarded: &mut Vec<Discard>,
    ) -> Result<()> {
        let s = shard.0 as usize;
        let old = state.heads[s];
        if height == 0 || height > old.height {
            return Ok(());
        }
        let mut records = Vec::new();
        let mut first = None;
        for h in height..=old.height {
            let (hash, included) = match self.db.shard_header(shard, h)? {
                Some(r) => (r.header.header.hash(), r.included_in),
                None => match state
                    .included
                    .iter()
                    .find(|a| a.block.header.header.shard == shard && a.block.header.header.height == h)
                {
                    Some(a) => (a.block.header.header.hash(), slot),
                    None => break,
                },
            };
            first.get_or_insert(hash);
            let proven = h == height && cause.is_none();
            records.push((
                h,
                DiscardedHeader {
                    hash,
                    included_slot: included,
                    invalidated_slot: slot,
                    game,
                    proven,
                    cause,
                },
            ));
        }
        state
            .included
            .retain(|a| !(a.block.header.header.shard == shard && a.block.header.header.height >= height));
        // the shard continues from the last valid header
        let (parent, inbound) = if height == 1 {
            (self.spec.shard_genesis[s].clone(), vec![0; self.spec.shards as usize])
        } else if let Some(r) = self.db.shard_header(shard, height - 1)? {
            (r.header.header, r.inbound_after)
        } else {
            // the parent was accepted in this very slot (not sealed yet)
            let a = state
                .included
                .iter()
                .find(|a| a.block.header.header.shard == shard && a.block.header.header.height == height - 1)
                .ok_or_else(|| {
                    Error::Corrupt(format!("header {shard}/{} below a discarded one is missing", height - 1))
                })?;
            (a.block.header.header.clone(), a.inbound_after.clone())
        };
        state.heads[s] =
            ShardHead { shard, height: height - 1, hash: parent.hash(), slot: parent.beacon_slot };
        state.tips[s] = parent;
        for (src, next) in inbound.iter().enumerate() {
            state.channels.insert((ShardId(src as u32), shard), *next);
        }
        let inv = Invalidation { shard, height, header: first.unwrap_or_default(), game, cause };
        warn!(target: "beacon", %shard, height, to = old.height, ?cause, "discarded invalid headers");
        invalidated.push(inv);
        discarded.push(Discard { shard, from: height, to: old.height, records });
        // the discarded headers consumed nothing any more
        for ((_, dst), by_height) in state.consumed.iter_mut() {
            if *dst == shard {
                by_height.split_off(&height);
            }
        }
        // the cascade: destinations that consumed messages of discarded
        // headers (from the in-memory index of what non-final headers
        // consumed: no database read under the seal lock)
        for d in 0..self.spec.shards {
            if d == shard.0 {
                continue;
            }
            let dst = ShardId(d);
            let hit = state
                .consumed
                .get(&(shard, dst))
                .and_then(|by_height| by_height.iter().find(|(_, src_h)| **src_h >= height))
                .map(|(h, src_h)| (*h, *src_h));
            if let Some((h, src_h)) = hit {
                self.invalidate(state, dst, h, game, Some((shard, src_h)), slot, invalidated, discarded)?;
            }
        }
        Ok(())
    }
}
