//! Shard node metrics (`optishard_shard_*`).

use bridge::ShardHeader;
use net::prometheus_client::metrics::counter::Counter;
use net::prometheus_client::metrics::gauge::Gauge;
use net::prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use net::prometheus_client::registry::Registry;

/// What a shard node counts.
#[derive(Clone)]
pub struct ShardMetrics {
    /// Height of the head.
    pub head_height: Gauge,
    /// Beacon slot of the head block.
    pub head_slot: Gauge,
    /// Blocks this node proposed.
    pub blocks_produced: Counter,
    /// Blocks imported from other validators (re-executed and checked).
    pub blocks_imported: Counter,
    /// Transactions in committed blocks.
    pub txs: Counter,
    /// Gas used by committed blocks.
    pub gas: Counter,
    /// Transactions per block.
    pub txs_per_block: Histogram,
    /// Gas per block.
    pub gas_per_block: Histogram,
    /// Pending transactions.
    pub mempool: Gauge,
    /// Blocks whose re-execution disagreed with their header.
    pub mismatches: Counter,
    /// Blocks reverted because the beacon accepted another chain.
    pub reverted: Counter,
    /// Sync requests sent to peers.
    pub sync_requests: Counter,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            head_height: Gauge::default(),
            head_slot: Gauge::default(),
            blocks_produced: Counter::default(),
            blocks_imported: Counter::default(),
            txs: Counter::default(),
            gas: Counter::default(),
            txs_per_block: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            gas_per_block: Histogram::new(exponential_buckets(21_000.0, 4.0, 12)),
            mempool: Gauge::default(),
            mismatches: Counter::default(),
            reverted: Counter::default(),
            sync_requests: Counter::default(),
        }
    }
}

impl ShardMetrics {
    /// Registers every metric.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("optishard_shard");
        r.register("head_height", "Height of the head block", self.head_height.clone());
        r.register("head_slot", "Beacon slot of the head block", self.head_slot.clone());
        r.register("blocks_produced", "Blocks proposed by this node", self.blocks_produced.clone());
        r.register("blocks_imported", "Blocks imported and re-executed", self.blocks_imported.clone());
        r.register("transactions", "Transactions in committed blocks", self.txs.clone());
        r.register("gas", "Gas used by committed blocks", self.gas.clone());
        r.register("block_transactions", "Transactions per block", self.txs_per_block.clone());
        r.register("block_gas", "Gas per block", self.gas_per_block.clone());
        r.register("mempool_transactions", "Pending transactions", self.mempool.clone());
        r.register(
            "root_mismatches",
            "Blocks whose re-execution disagreed with the header",
            self.mismatches.clone(),
        );
        r.register("reverted_blocks", "Blocks reverted to follow the beacon", self.reverted.clone());
        r.register("sync_requests", "Block range requests sent to peers", self.sync_requests.clone());
    }

    pub(crate) fn block(&self, header: &ShardHeader, txs: usize, produced: bool) {
        self.head_height.set(header.height as i64);
        self.head_slot.set(header.beacon_slot as i64);
        if produced {
            self.blocks_produced.inc();
        } else {
            self.blocks_imported.inc();
        }
        self.txs.inc_by(txs as u64);
        self.gas.inc_by(header.gas_used);
        self.txs_per_block.observe(txs as f64);
        self.gas_per_block.observe(header.gas_used as f64);
    }
}
