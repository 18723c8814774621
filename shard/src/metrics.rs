//! Shard node metrics (`optishard_shard_*`).

use bridge::{MessageKind, ShardHeader, ShardId};
use net::prometheus_client::metrics::counter::Counter;
use net::prometheus_client::metrics::family::Family;
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
    /// Times the beacon discarded this shard's headers after a dispute
    /// (the node reverted to the last valid header and rebuilt).
    pub invalidated: Counter,
    /// Sync requests sent to peers.
    pub sync_requests: Counter,
    /// Messages emitted, by channel (`src`, `dst`) and kind (`call`, `refund`).
    pub messages_sent: Family<Vec<(String, String)>, Counter>,
    /// Messages consumed (delivered), by channel.
    pub messages_consumed: Family<Vec<(String, String)>, Counter>,
    /// Delivered calls that failed (and were refunded), by channel.
    pub messages_failed: Family<Vec<(String, String)>, Counter>,
    /// Inbox entries refused: bad proofs, wrong channel, misrouted.
    pub messages_refused: Counter,
    /// Verified messages waiting to be consumed.
    pub inbox_backlog: Gauge,
    /// Slots from a message's source block to each later phase
    /// (`committed`: the beacon included the source header; `executed`: the
    /// destination block; `finalized`: the destination block final).
    pub message_latency_slots: Family<Vec<(String, String)>, Histogram>,
    /// The same in seconds (slots × slot length).
    pub message_latency_seconds: Family<Vec<(String, String)>, Histogram>,
}

fn channel(src: ShardId, dst: ShardId) -> Vec<(String, String)> {
    vec![("src".into(), src.0.to_string()), ("dst".into(), dst.0.to_string())]
}

fn phase(p: &str) -> Vec<(String, String)> {
    vec![("phase".into(), p.into())]
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
            invalidated: Counter::default(),
            sync_requests: Counter::default(),
            messages_sent: Family::default(),
            messages_consumed: Family::default(),
            messages_failed: Family::default(),
            messages_refused: Counter::default(),
            inbox_backlog: Gauge::default(),
            message_latency_slots: Family::new_with_constructor(|| {
                Histogram::new([1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0])
            }),
            message_latency_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.1, 2.0, 16))
            }),
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
        r.register(
            "invalidations",
            "Times disputes discarded this shard's headers (the node rebuilt from the last valid one)",
            self.invalidated.clone(),
        );
        r.register("sync_requests", "Block range requests sent to peers", self.sync_requests.clone());
        r.register(
            "messages_sent",
            "Cross-shard messages emitted, by channel and kind",
            self.messages_sent.clone(),
        );
        r.register(
            "messages_consumed",
            "Cross-shard messages consumed, by channel",
            self.messages_consumed.clone(),
        );
        r.register(
            "messages_failed",
            "Delivered calls that failed and were refunded, by channel",
            self.messages_failed.clone(),
        );
        r.register(
            "messages_refused",
            "Inbox entries refused (bad proof, wrong channel, misrouted)",
            self.messages_refused.clone(),
        );
        r.register("inbox_backlog", "Verified messages waiting to be consumed", self.inbox_backlog.clone());
        r.register(
            "message_latency_slots",
            "Slots from a message's source block to a phase",
            self.message_latency_slots.clone(),
        );
        r.register(
            "message_latency_seconds",
            "Seconds (slots x slot length) from a message's source block to a phase",
            self.message_latency_seconds.clone(),
        );
    }

    /// Counts a committed block's messages: emitted (`sent`) and consumed
    /// (`consumed`, with whether each delivered call succeeded).
    pub(crate) fn messages(
        &self,
        sent: &[bridge::Message],
        consumed: impl Iterator<Item = (ShardId, ShardId, bool)>,
    ) {
        for m in sent {
            let mut labels = channel(m.src, m.dst);
            let kind = if matches!(m.kind, MessageKind::Refund { .. }) { "refund" } else { "call" };
            labels.push(("kind".into(), kind.into()));
            self.messages_sent.get_or_create(&labels).inc();
        }
        for (src, dst, ok) in consumed {
            self.messages_consumed.get_or_create(&channel(src, dst)).inc();
            if !ok {
                self.messages_failed.get_or_create(&channel(src, dst)).inc();
            }
        }
    }

    /// Records that a message from a source block of slot `from` reached
    /// `p` at slot `at`.
    pub fn message_phase(&self, p: &str, from: u64, at: u64, slot_ms: u64) {
        let slots = at.saturating_sub(from);
        self.message_latency_slots.get_or_create(&phase(p)).observe(slots as f64);
        self.message_latency_seconds.get_or_create(&phase(p)).observe(slots as f64 * slot_ms as f64 / 1000.0);
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
