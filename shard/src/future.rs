//! Blocks held above a validator's head until their parent (or the source
//! header their inbox names) is known: bounded, never relayed.

use std::collections::BTreeMap;

use crate::import::BoundBlock;

/// Blocks ahead of the head held until their parent arrives.
const MAX_FUTURE: usize = 64;
/// Bytes of blocks held ahead of the head.
const MAX_FUTURE_BYTES: usize = 64 << 20;

/// Blocks above the head waiting for their parent: bounded in number,
/// bytes and height; when full, the highest goes first (the least likely
/// to be needed soon). Evictions are counted.
#[derive(Default)]
pub(crate) struct FutureBlocks {
    pub(crate) by_height: BTreeMap<u64, BoundBlock>,
    bytes: usize,
    pub(crate) evicted: u64,
}

impl FutureBlocks {
    pub(crate) fn insert(&mut self, block: BoundBlock) {
        if self.by_height.contains_key(&block.height()) {
            return;
        }
        self.bytes += block.body_bytes();
        self.by_height.insert(block.height(), block);
        while self.by_height.len() > MAX_FUTURE || self.bytes > MAX_FUTURE_BYTES {
            let (_, gone) = self.by_height.pop_last().expect("over a cap means non-empty");
            self.bytes -= gone.body_bytes();
            self.evicted += 1;
        }
    }

    /// Drops everything at or below `height`.
    pub(crate) fn prune(&mut self, height: u64) {
        let keep = self.by_height.split_off(&height.saturating_add(1));
        for b in std::mem::replace(&mut self.by_height, keep).into_values() {
            self.bytes -= b.body_bytes();
        }
    }

    pub(crate) fn take(&mut self, height: u64) -> Option<BoundBlock> {
        let b = self.by_height.remove(&height)?;
        self.bytes -= b.body_bytes();
        Some(b)
    }

    pub(crate) fn highest(&self) -> Option<u64> {
        self.by_height.keys().next_back().copied()
    }

    /// Drops blocks whose inclusion window closed by `beacon_slot`: the
    /// beacon will never accept them, so they are no sync target either.
    pub(crate) fn expire(&mut self, beacon_slot: u64) {
        let gone: Vec<u64> = self
            .by_height
            .iter()
            .filter(|(_, b)| bridge::inclusion_expired(b.slot(), beacon_slot))
            .map(|(h, _)| *h)
            .collect();
        for h in gone {
            self.take(h);
        }
    }
}
