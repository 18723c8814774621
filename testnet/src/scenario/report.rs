//! What a scenario run measured, slot by slot and per phase, written as
//! JSON and CSV (`--report DIR`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::invariants::Violation;

/// One slot of a run.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct SlotRecord {
    /// The slot.
    pub slot: u64,
    /// Transactions users sent this slot (open loop).
    pub offered: u64,
    /// Of those, how many a node took.
    pub submitted: u64,
    /// Transactions in blocks the beacon accepted this slot.
    pub included: u64,
    /// Of those, how many failed (reverted or ran out of gas).
    pub failed: u64,
    /// Messages consumed by destination blocks the beacon accepted this slot.
    pub delivered: u64,
    /// Each shard's accepted head height after the slot.
    pub heads: Vec<u64>,
    /// Each shard's final height after the slot.
    pub finalized: Vec<u64>,
    /// Games open after the slot.
    pub games_open: u64,
    /// Games that ended this slot.
    pub games_ended: u64,
    /// Timeline entries applied this slot (their actions and nodes).
    pub events: Vec<String>,
}

/// A latency distribution in slots, with percentiles.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    /// The phase measured.
    pub phase: &'static str,
    /// How many samples.
    pub count: u64,
    /// Percentiles in slots: 50, 90, 99, 99.9, and the largest.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
    /// Every sample's value and count (for CDFs).
    pub cdf: Vec<(u64, f64)>,
}

/// Latency samples of one phase, in slots.
pub struct Phase {
    name: &'static str,
    h: Histogram<u64>,
}

impl Phase {
    /// An empty phase.
    pub fn new(name: &'static str) -> Phase {
        Phase { name, h: Histogram::new(3).expect("3 significant figures is a valid histogram") }
    }

    /// One sample of `slots`.
    pub fn record(&mut self, slots: u64) {
        // a histogram that cannot take a value (past u64's range) is not
        // a sample any run makes
        let _ = self.h.record(slots);
    }

    /// Its percentiles.
    pub fn summary(&self) -> Latency {
        let q = |p: f64| if self.h.is_empty() { 0 } else { self.h.value_at_quantile(p) };
        let mut cdf = Vec::new();
        let total = self.h.len().max(1) as f64;
        let mut seen = 0;
        for v in self.h.iter_recorded() {
            seen += v.count_at_value();
            cdf.push((v.value_iterated_to(), seen as f64 / total));
        }
        Latency {
            phase: self.name,
            count: self.h.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: if self.h.is_empty() { 0 } else { self.h.max() },
            cdf,
        }
    }
}

/// Cross-shard latency of one shard pair, in slots.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PairLatency {
    /// Source shard.
    pub src: u32,
    /// Destination shard.
    pub dst: u32,
    /// Messages measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

/// A whole run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// The seed it ran with.
    pub seed: u64,
    /// The tier: `sim` or `processes`.
    pub tier: &'static str,
    /// How links were cut and shaped: `virtual` (the sim's hub),
    /// `namespaces` (the kernel, and each node's shaper) or `loopback`
    /// (each node's block list and shaper).
    pub isolation: &'static str,
    /// Slot length in milliseconds (latencies are in slots; × this for ms).
    pub slot_ms: u64,
    /// Shards and validators per shard.
    pub shards: u32,
    /// Validators per shard.
    pub validators_per_shard: u32,
    /// Slots run.
    pub slots_run: u64,
    /// Every slot.
    pub series: Vec<SlotRecord>,
    /// Per-phase latencies.
    pub latencies: Vec<Latency>,
    /// Source accepted → destination executed, per shard pair.
    pub pair_latencies: Vec<PairLatency>,
    /// Totals.
    pub totals: Totals,
    /// The invariants checked after every slot.
    pub invariants: Vec<&'static str>,
    /// The first invariant broken, if any (the run stopped there).
    pub violation: Option<Violation>,
    /// Whether it was stopped before its last slot (Ctrl-C).
    pub interrupted: bool,
    /// Each node process's CPU and memory (the processes tier; the sim
    /// tier is one process and reports none, so its reports stay
    /// byte-identical).
    pub nodes: Vec<NodeUsage>,
}

/// One node process's use of the machine over a run.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct NodeUsage {
    /// The node's name.
    pub node: String,
    /// CPU seconds it used (user and system).
    pub cpu_seconds: f64,
    /// Its CPU seconds over the run's wall time, in percent of one core.
    pub cpu_percent: f64,
    /// Its largest resident memory, in MB.
    pub max_rss_mb: f64,
    /// Its resident memory after each slot, in MB.
    pub rss_mb: Vec<f64>,
}

/// What a run measures, the same on both tiers: each slot's record, the
/// totals, the latency phases and cross-shard latency per shard pair.
pub struct Measures {
    /// Every slot run.
    pub series: Vec<SlotRecord>,
    /// Sums of the records, and what each tier adds.
    pub totals: Totals,
    /// Submitted → included, → beacon-accepted, source accepted →
    /// destination executed, submitted → final, dispute opened → resolved.
    pub phases: [Phase; 5],
    pairs: BTreeMap<(u32, u32), Phase>,
}

impl Default for Measures {
    fn default() -> Self {
        Measures {
            series: Vec::new(),
            totals: Totals::default(),
            phases: [
                Phase::new("submitted → included"),
                Phase::new("submitted → beacon-accepted"),
                Phase::new("source accepted → destination executed"),
                Phase::new("submitted → final"),
                Phase::new("dispute opened → resolved"),
            ],
            pairs: BTreeMap::new(),
        }
    }
}

/// How a tier describes its run to [`Measures::report`].
pub struct RunInfo<'a> {
    /// The scenario run.
    pub scenario: &'a super::Scenario,
    /// Its seed.
    pub seed: u64,
    /// `sim` or `processes`.
    pub tier: &'static str,
    /// See [`Report::isolation`].
    pub isolation: &'static str,
    /// Headers accepted over the run and the slots they took (the header
    /// rate's numerator and denominator; each tier knows its own window).
    pub headers: u64,
    /// See `headers`.
    pub slots: u64,
    /// Each node process's use of the machine.
    pub nodes: Vec<NodeUsage>,
}

impl Measures {
    /// A message from `src` executed at `dst` `slots` after its source was accepted.
    pub fn cross_shard(&mut self, src: u32, dst: u32, slots: u64) {
        self.phases[2].record(slots);
        self.pairs.entry((src, dst)).or_insert_with(|| Phase::new("pair")).record(slots);
    }

    /// A slot done: its counts to the totals, its record to the series.
    pub fn push(&mut self, record: SlotRecord) {
        let t = &mut self.totals;
        t.offered += record.offered;
        t.submitted += record.submitted;
        t.included += record.included;
        t.failed += record.failed;
        t.delivered += record.delivered;
        t.games_ended += record.games_ended;
        self.series.push(record);
    }

    /// The report of the run.
    pub fn report(self, run: RunInfo<'_>, violation: Option<Violation>, interrupted: bool) -> Report {
        let net = &run.scenario.network;
        let slots = run.slots.max(1);
        let mut totals = self.totals;
        totals.headers_per_shard_per_slot = run.headers as f64 / (slots * u64::from(net.shards)) as f64;
        totals.included_per_second = totals.included as f64 * 1_000.0 / (slots * net.slot_ms) as f64;
        Report {
            scenario: run.scenario.name.clone(),
            description: run.scenario.description.clone(),
            seed: run.seed,
            tier: run.tier,
            isolation: run.isolation,
            slot_ms: net.slot_ms,
            shards: net.shards,
            validators_per_shard: net.validators_per_shard,
            slots_run: self.series.len() as u64,
            series: self.series,
            latencies: self.phases.iter().map(Phase::summary).collect(),
            pair_latencies: self
                .pairs
                .iter()
                .map(|((src, dst), p)| {
                    let l = p.summary();
                    PairLatency { src: *src, dst: *dst, count: l.count, p50: l.p50, p99: l.p99, max: l.max }
                })
                .collect(),
            totals,
            invariants: super::invariants::INVARIANTS.to_vec(),
            violation,
            interrupted,
            nodes: run.nodes,
        }
    }
}

/// A run's totals.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Totals {
    /// Transactions offered, submitted, included.
    pub offered: u64,
    /// Taken by a node.
    pub submitted: u64,
    /// In accepted blocks.
    pub included: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Headers accepted per shard per slot, over the run.
    pub headers_per_shard_per_slot: f64,
    /// Transactions included per second (slot time).
    pub included_per_second: f64,
    /// Games played and ended.
    pub games_ended: u64,
    /// Slots the supply audit could not run (no live holder of a head).
    pub audits_skipped: u64,
    /// The processes tier: how late the runner started a slot's work at
    /// worst, in milliseconds (its own RPC work on a saturated machine;
    /// past a slot, slots' arrivals bunch up). 0 on the sim tier.
    pub runner_lag_ms_max: u64,
    /// The processes tier: final blocks whose inbox was checked for
    /// exactly-once delivery, and final heights whose holders were checked
    /// against the beacon (0 on the sim tier, whose checker reads state).
    pub inbox_heights_checked: u64,
    /// See `inbox_heights_checked`.
    pub final_heights_checked: u64,
}

impl Report {
    /// Writes `report.json`, `series.csv`, `latency.csv` and the
    /// self-contained `report.html` under `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("report.json"), json)?;
        let shards = self.shards as usize;
        let mut csv = String::from("slot,offered,submitted,included,delivered,games_open,games_ended");
        for s in 0..shards {
            csv += &format!(",head_{s},final_{s}");
        }
        csv += ",events\n";
        for r in &self.series {
            csv += &format!(
                "{},{},{},{},{},{},{}",
                r.slot, r.offered, r.submitted, r.included, r.delivered, r.games_open, r.games_ended
            );
            for s in 0..shards {
                csv += &format!(",{},{}", r.heads.get(s).unwrap_or(&0), r.finalized.get(s).unwrap_or(&0));
            }
            csv += &format!(",\"{}\"\n", r.events.join("; ").replace('"', "'"));
        }
        std::fs::write(dir.join("series.csv"), csv)?;
        let mut csv = String::from("phase,count,p50_slots,p90_slots,p99_slots,p999_slots,max_slots\n");
        for l in &self.latencies {
            csv += &format!("{},{},{},{},{},{},{}\n", l.phase, l.count, l.p50, l.p90, l.p99, l.p999, l.max);
        }
        for p in &self.pair_latencies {
            csv += &format!("shard {} → {},{},{},,{},,{}\n", p.src, p.dst, p.count, p.p50, p.p99, p.max);
        }
        std::fs::write(dir.join("latency.csv"), csv)?;
        if !self.nodes.is_empty() {
            let mut csv = String::from("node,cpu_seconds,cpu_percent,max_rss_mb\n");
            for n in &self.nodes {
                csv += &format!("{},{:.2},{:.1},{:.1}\n", n.node, n.cpu_seconds, n.cpu_percent, n.max_rss_mb);
            }
            std::fs::write(dir.join("nodes.csv"), csv)?;
        }
        std::fs::write(dir.join("report.html"), super::html::render(self))?;
        Ok(())
    }
}
