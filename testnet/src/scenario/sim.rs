//! A scenario on the deterministic tier: the whole network in one process
//! ([`Testnet`]), the timeline applied between slots, an open-loop
//! workload from a seeded generator, the invariants checked after every
//! slot. One scenario and one seed give byte-identical reports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use alloy_primitives::{B256, Bytes, keccak256};
use anyhow::{Context, Result, bail};
use bridge::{Hash, ShardId};
use rand::Rng;
use shard::ShardNode;

use super::invariants::Checker;
use super::report::{Measures, Report, RunInfo, SlotRecord};
use super::workload::{Workload, accounts};
use super::{Event, Node, Scenario};
use crate::{Member, NetworkParams, Testnet};

/// What the sim tier does not model yet, refused before the run starts.
fn unsupported(s: &Scenario) -> Result<()> {
    for (i, e) in s.timeline.iter().enumerate() {
        let names: Vec<&String> = match e {
            Event::Kill { node, .. }
            | Event::Restart { node, .. }
            | Event::Byzantine { node, .. }
            | Event::Challenger { node, .. } => vec![node],
            Event::Partition { a, b, .. } | Event::Link { a, b, .. } => a.iter().chain(b).collect(),
            _ => vec![],
        };
        if names.iter().any(|n| n.starts_with("challenger")) {
            bail!(
                "timeline entry {} ({}): standalone challengers run on the process tier only; \
                 on the sim tier every validator's own challenger plays (name the validator)",
                i + 1,
                e.action()
            );
        }
    }
    Ok(())
}

/// A transaction users sent, until it is final.
struct Sent {
    slot: u64,
    shard: u32,
}

/// The run's state between slots.
struct Run<'a> {
    s: &'a Scenario,
    t: Testnet,
    workload: Workload,
    checker: Checker,
    /// Transactions sent and not yet seen included, by hash.
    sent: HashMap<B256, Sent>,
    /// Per shard and height: the accepted header's hash and the submit
    /// slots of its users' transactions (for their finality).
    accepted: BTreeMap<(u32, u64), (Hash, Vec<u64>)>,
    /// Messages emitted by accepted blocks: the slot their source was accepted.
    emitted: HashMap<Hash, u64>,
    /// Messages already counted delivered.
    delivered: BTreeSet<Hash>,
    final_seen: Vec<u64>,
    open_games: BTreeSet<Hash>,
    /// Series, totals and latencies.
    measures: Measures,
}

/// Runs `s` with `seed` on the deterministic tier, its databases under
/// `dir`; `progress` hears every slot and says whether to go on (a run
/// stopped early reports the slots it ran, `interrupted`).
pub fn run(
    s: &Scenario,
    seed: u64,
    dir: &Path,
    mut progress: impl FnMut(&SlotRecord) -> bool,
) -> Result<Report> {
    unsupported(s)?;
    let n = &s.network;
    let params = NetworkParams {
        shards: n.shards,
        validators_per_shard: n.validators_per_shard,
        slot_ms: n.slot_ms,
        seed,
        challenge_window_slots: n.challenge_window_slots,
        challengers: n.challengers,
        dispute_k: n.dispute_k,
        ..NetworkParams::default()
    };
    let t = Testnet::builder()
        .params(params)
        .txs_per_slot(0)
        .signers(accounts(seed, s.workload.accounts))
        .build(dir)
        .context("starting the network")?;
    let checker = Checker::new(&t);
    let mut run = Run {
        s,
        t,
        workload: Workload::new(&s.workload, n.shards, n.slot_ms, seed),
        checker,
        sent: HashMap::new(),
        accepted: BTreeMap::new(),
        emitted: HashMap::new(),
        delivered: BTreeSet::new(),
        final_seen: vec![0; n.shards as usize],
        open_games: BTreeSet::new(),
        measures: Measures::default(),
    };
    // entries that last end at `until`: what undoes them, by slot
    let mut undo: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
    let mut timeline = s.timeline.iter().peekable();
    let mut violation = None;
    let mut interrupted = false;
    for k in 0..s.slots {
        let mut record = SlotRecord { slot: k + 1, ..Default::default() };
        for e in undo.remove(&k).unwrap_or_default() {
            record.events.push(format!("end of {}", describe(&e)));
            run.apply(&e, false)?;
        }
        while let Some(e) = timeline.next_if(|e| e.at() == k) {
            record.events.push(describe(e));
            run.apply(e, true)?;
            if let Some(until) = e.until() {
                undo.entry(until).or_default().push(e.clone());
            }
        }
        run.offer(&mut record);
        run.t.step();
        run.observe(&mut record);
        let go_on = progress(&record);
        run.measures.push(record);
        if let Err(v) = run.checker.check(&run.t) {
            violation = Some(v);
            break;
        }
        if !go_on {
            interrupted = true;
            break;
        }
    }
    Ok(run.report(seed, violation, interrupted))
}

/// An entry for people: its action and what it names.
pub(super) fn describe(e: &Event) -> String {
    match e {
        Event::Kill { node, .. } | Event::Restart { node, .. } | Event::Challenger { node, .. } => {
            format!("{} {node}", e.action())
        }
        Event::Byzantine { node, mode, rate_percent, .. } => {
            format!("byzantine {node} {mode} {rate_percent}%")
        }
        Event::Partition { a, b, .. } => format!("partition {} | {}", a.join(","), b.join(",")),
        Event::Link { a, b, .. } => format!("link {} | {}", a.join(","), b.join(",")),
        Event::Beacon { on, .. } => format!("beacon {}", if *on { "on" } else { "off" }),
        Event::Load { rate, .. } => format!("load {rate}/s"),
    }
}

impl Run<'_> {
    /// Validator index of a node (the sim's order: shard by shard).
    fn index(&self, node: Node) -> Option<usize> {
        match node {
            Node::Validator { shard, index } => {
                Some((shard * self.s.network.validators_per_shard + index) as usize)
            }
            _ => None,
        }
    }

    fn member(&self, node: Node) -> Result<Member> {
        match node {
            Node::Beacon => Ok(Member::Beacon),
            Node::Validator { .. } => Ok(Member::Validator(self.index(node).expect("a validator"))),
            Node::Challenger(_) => bail!("standalone challengers run on the process tier only"),
        }
    }

    /// Applies an entry (`start`), or undoes one that lasted (`!start`).
    fn apply(&mut self, e: &Event, start: bool) -> Result<()> {
        let net = &self.s.network;
        match e {
            Event::Kill { node, .. } | Event::Restart { node, .. } => {
                let kill = matches!(e, Event::Kill { .. });
                match net.node(node)? {
                    Node::Beacon => self.t.set_beacon_down(kill)?,
                    v => {
                        let i = self.index(v).expect("a validator");
                        match (kill, self.t.node(i).is_some()) {
                            (true, true) => self.t.crash(i),
                            (false, false) => self.t.restart(i)?,
                            // killing the dead or restarting the running changes nothing
                            _ => {}
                        }
                    }
                }
            }
            Event::Partition { a, b, .. } => {
                let (a, b) = (net.group(a)?, net.group(b)?);
                for x in &a {
                    for y in &b {
                        let (x, y) = (self.member(*x)?, self.member(*y)?);
                        self.t.set_link_cut(x, y, start);
                    }
                }
            }
            Event::Byzantine { node, mode, rate_percent, .. } => {
                let i = self.index(net.node(node)?).context("a validator")?;
                let fault = shard::Fault::parse(mode).context("a byzantine mode")?;
                if start {
                    self.checker.lying(self.t.validator_info(i).1);
                    self.t.set_fault_rate(i, Some(fault), *rate_percent);
                } else {
                    self.t.set_fault(i, None);
                }
            }
            Event::Challenger { node, on, .. } => {
                let i = self.index(net.node(node)?).context("a validator")?;
                self.t.set_challenger(i, *on);
            }
            Event::Beacon { on, .. } => self.t.set_beacon_down(!on)?,
            Event::Load { rate, .. } => self.workload.rate = *rate,
            Event::Link { a, b, latency_ms, jitter_ms, loss, bandwidth_kbps, .. } => {
                let model = net::LinkModel {
                    latency_ms: *latency_ms,
                    jitter_ms: *jitter_ms,
                    loss: *loss,
                    bandwidth_kbps: *bandwidth_kbps,
                };
                let (a, b) = (net.group(a)?, net.group(b)?);
                for x in &a {
                    for y in &b {
                        let (x, y) = (self.member(*x)?, self.member(*y)?);
                        self.t.set_link_model(x, y, start.then_some(model));
                    }
                }
            }
        }
        Ok(())
    }

    /// The slot's arrivals (on the first, the workload's deployments),
    /// each to a random live validator of its shard.
    fn offer(&mut self, record: &mut SlotRecord) {
        let mut arrivals = Vec::new();
        if record.slot == 1 {
            let t = &self.t;
            arrivals = self.workload.deployments(|i| t.account(i));
        }
        arrivals.extend(self.workload.arrivals());
        for a in arrivals {
            let raw = self.t.call(ShardId(a.shard), a.from, a.to, a.value, a.data, a.gas);
            self.take(record, a.shard, a.from, raw);
        }
    }

    /// A transaction offered to a random live validator of `shard`; a
    /// transaction nobody takes gives its nonce back.
    fn take(&mut self, record: &mut SlotRecord, shard: u32, from: usize, raw: Bytes) {
        record.offered += 1;
        let live: Vec<usize> = (0..self.t.validator_count())
            .filter(|i| self.t.validator_info(*i).0 == ShardId(shard) && self.t.node(*i).is_some())
            .collect();
        let taken =
            !live.is_empty() && self.t.submit(live[self.workload.rng.gen_range(0..live.len())], &raw).is_ok();
        if taken {
            record.submitted += 1;
            self.sent.insert(keccak256(&raw), Sent { slot: record.slot, shard });
        } else {
            // nobody took it: the account's nonce was not used
            self.t.unsend(ShardId(shard), from);
        }
    }

    /// What the slot did: newly accepted headers (their transactions and
    /// messages), newly final heights, games.
    fn observe(&mut self, record: &mut SlotRecord) {
        let slot = record.slot;
        let heads = self.t.beacon().heads();
        for (s, head) in heads.iter().enumerate() {
            let shard = ShardId(s as u32);
            // a final height never changes: only those above it are new
            // or may have been replaced
            for height in self.final_seen[s] + 1..=head.height {
                let Some(status) = self.t.beacon().header_status(shard, height).ok().flatten() else {
                    continue;
                };
                if self.accepted.get(&(s as u32, height)).is_some_and(|(h, _)| *h == status.hash) {
                    continue;
                }
                // its block, receipts and outbox from one live validator holding it
                let Some((node, block)) = self.holder(shard, height, status.hash) else { continue };
                let db = node.db();
                let failed: BTreeSet<B256> = db
                    .receipts(height)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| !r.success)
                    .map(|r| r.tx_hash)
                    .collect();
                let mut submits = Vec::new();
                for raw in &block.txs {
                    let hash = keccak256(raw);
                    if failed.contains(&hash) && self.sent.contains_key(&hash) {
                        record.failed += 1;
                    }
                    if let Some(sent) = self.sent.remove(&hash) {
                        debug_assert_eq!(sent.shard, s as u32);
                        let built = block.header.header.beacon_slot;
                        self.measures.phases[0].record(built.saturating_sub(sent.slot));
                        self.measures.phases[1].record(status.included_slot.saturating_sub(sent.slot));
                        record.included += 1;
                        submits.push(sent.slot);
                    }
                }
                for entry in &block.inbox {
                    let id = entry.message.id();
                    if self.delivered.insert(id) {
                        record.delivered += 1;
                        if let Some(src) = self.emitted.get(&id) {
                            let slots = status.included_slot.saturating_sub(*src);
                            self.measures.cross_shard(entry.message.src.0, s as u32, slots);
                        }
                    }
                }
                for m in db.outbox(height).unwrap_or_default() {
                    self.emitted.entry(m.id()).or_insert(status.included_slot);
                }
                self.accepted.insert((s as u32, height), (status.hash, submits));
            }
            record.heads.push(head.height);
        }
        let finalized = self.t.beacon().finalized();
        for (s, fin) in finalized.iter().enumerate() {
            for height in self.final_seen[s] + 1..=*fin {
                if let Some((_, submits)) = self.accepted.remove(&(s as u32, height)) {
                    for at in submits {
                        self.measures.phases[3].record(slot.saturating_sub(at));
                    }
                }
            }
            self.final_seen[s] = self.final_seen[s].max(*fin);
        }
        record.finalized = finalized;
        let open: BTreeSet<Hash> = self.t.beacon().games().0.iter().map(|g| g.record.id).collect();
        for id in self.open_games.difference(&open) {
            if let Ok(Some(g)) = self.t.beacon().game(id)
                && let Some((ended, _)) = &g.record.ended
            {
                self.measures.phases[4].record(ended.saturating_sub(g.record.opened_slot));
                record.games_ended += 1;
            }
        }
        record.games_open = open.len() as u64;
        self.open_games = open;
    }

    /// A live validator of `shard` holding the block `hash` at `height`.
    /// A live validator of `shard` holding the block `hash` at `height`,
    /// and the block.
    fn holder(
        &self,
        shard: ShardId,
        height: u64,
        hash: Hash,
    ) -> Option<(Arc<ShardNode>, bridge::ShardBlock)> {
        (0..self.t.validator_count())
            .filter(|i| self.t.validator_info(*i).0 == shard)
            .filter_map(|i| self.t.node(i))
            .find_map(|n| {
                let b = n.block(height).ok().flatten().filter(|b| b.header.header.hash() == hash)?;
                Some((n.clone(), b))
            })
    }

    fn report(
        mut self,
        seed: u64,
        violation: Option<super::invariants::Violation>,
        interrupted: bool,
    ) -> Report {
        self.measures.totals.audits_skipped = self.checker.audits_skipped;
        let info = RunInfo {
            scenario: self.s,
            seed,
            tier: "sim",
            isolation: "virtual",
            headers: self.measures.series.last().map_or(0, |r| r.heads.iter().sum()),
            slots: self.measures.series.len() as u64,
            nodes: Vec::new(),
        };
        self.measures.report(info, violation, interrupted)
    }
}
