//! A scenario on real processes: every node an `optishard` process
//! (`cluster::up`), each in its own network namespace when the runner is
//! root (partitions are iptables drops, bandwidth an htb class) or on
//! 127.0.0.1 otherwise (partitions through libp2p's block list); latency,
//! jitter and loss through each node's shaper (`net::Shaper`), all set at
//! runtime over the nodes' admin RPC. The workload is the sim tier's,
//! sent over JSON-RPC at its intended times; the invariants are read over
//! RPC after every slot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use alloy_primitives::{B256, Bytes, keccak256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, Result};
use bridge::ChainSpec;
use rand::Rng;
use serde_json::{Value, json};

use super::invariants::Violation;
use super::report::{Measures, NodeUsage, Report, RunInfo, SlotRecord};
use super::workload::{Workload, accounts};
use super::{Event, Node, Scenario};
use crate::cluster::{self, Manifest, NodeEntry, TestnetConfig, rpc};

mod checks;

/// How partitions are made on this tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Each node in its own namespace: the kernel drops packets.
    Namespaces,
    /// Every node on 127.0.0.1: partitions through the nodes' block lists.
    Loopback,
}

impl Isolation {
    /// Namespaces when this machine allows them, with why not otherwise.
    pub fn best() -> (Isolation, Option<String>) {
        match crate::netns::NetPlan::unavailable() {
            None => (Isolation::Namespaces, None),
            Some(why) => (Isolation::Loopback, Some(why)),
        }
    }
}

/// One node's RPC endpoints and peer ids (a standalone challenger has a
/// follower per shard, each with its own).
struct Endpoint {
    entry: NodeEntry,
    rpcs: Vec<String>,
}

/// What the runner told nodes at runtime, told again to a node that
/// restarts (a new process starts from its config file).
#[derive(Default)]
struct Told {
    /// `(a, b)`: `a` refuses `b` (loopback partitions; the kernel keeps
    /// namespace cuts across restarts).
    blocked: BTreeSet<(Node, Node)>,
    /// `(a, b)`: how `a` hears `b`.
    links: BTreeMap<(Node, Node), net::LinkParams>,
    /// Byzantine modes on.
    faults: BTreeMap<Node, (String, u8)>,
    /// Challengers turned off.
    challenger_off: BTreeSet<Node>,
}

/// A transaction sent and not yet seen in an accepted block.
struct Sent {
    slot: u64,
    is_send: bool,
}

struct Run<'a> {
    s: &'a Scenario,
    spec: ChainSpec,
    m: Manifest,
    isolation: Isolation,
    client: reqwest::Client,
    nodes: BTreeMap<Node, Endpoint>,
    down: BTreeSet<Node>,
    told: Told,
    /// Look at every pending height again next slot (a game ended).
    rescan: bool,
    /// The network's slot when the runner last read its heads.
    network_slots: u64,
    /// The network's slot the scenario's slot 0 is.
    base: u64,
    /// Restarted nodes not yet told their runtime state again.
    retell: BTreeSet<Node>,
    workload: Workload,
    signers: Vec<PrivateKeySigner>,
    nonces: HashMap<(u32, usize), u64>,
    /// Raw transactions no node took yet, retried each slot (first intended slot kept).
    retry: Vec<(u32, Bytes, u64, u32)>,
    sent: HashMap<B256, Sent>,
    /// Per shard: accepted heights seen, with the header's hash and its users' submit slots.
    accepted: BTreeMap<(u32, u64), (String, Vec<u64>)>,
    seen_height: Vec<u64>,
    final_seen: Vec<u64>,
    /// Messages sent, not yet seen executed: id → (source shard, destination shard, source accepted slot).
    messages: HashMap<String, (u32, u32, u64)>,
    open_games: BTreeSet<String>,
    /// Games seen ended.
    ended_games: BTreeSet<String>,
    /// Series, totals and latencies.
    measures: Measures,
    honest: BTreeSet<String>,
    usage: BTreeMap<String, NodeUsage>,
    checked_final: Vec<u64>,
    /// Per shard: final heights whose inbox was checked.
    inbox_checked: Vec<u64>,
    /// Messages consumed by final blocks.
    consumed: BTreeSet<String>,
    /// Final heights whose holders were checked against the beacon.
    final_checks: std::sync::atomic::AtomicU64,
    /// Per shard: a final height no honest validator served, and since when.
    unheld: BTreeMap<u32, (u64, u64)>,
    /// Per channel `(src, dst)`: the next nonce a final block must consume.
    next_nonce: BTreeMap<(u32, u32), u64>,
    audits_skipped: u64,
    down_slots: u64,
}

/// Runs `s` with `seed` on real processes under `dir`; `progress` hears
/// every slot and says whether to go on.
pub async fn run(
    s: &Scenario,
    seed: u64,
    dir: &Path,
    isolation: Isolation,
    mut progress: impl FnMut(&SlotRecord) -> bool,
) -> Result<Report> {
    let n = &s.network;
    let signers = accounts(seed, s.workload.accounts);
    let balance = alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(24u64));
    let total = 1 + n.shards as usize * n.validators_per_shard as usize + n.challengers as usize;
    let cfg = TestnetConfig {
        datadir: dir.to_path_buf(),
        base_port: if isolation == Isolation::Namespaces { 18_000 } else { free_base_port(total, n.shards)? },
        // every process starts and joins before slot 0
        genesis_delay_ms: 4_000 + 400 * total as u64,
        log: "info".into(),
        network: crate::NetworkParams {
            shards: n.shards,
            validators_per_shard: n.validators_per_shard,
            slot_ms: n.slot_ms,
            seed,
            challenge_window_slots: n.challenge_window_slots,
            challengers: n.challengers,
            dispute_k: n.dispute_k,
            accounts: signers
                .iter()
                .map(|k| shard::GenesisAccount { address: k.address(), balance })
                .collect(),
            ..crate::NetworkParams::default()
        },
        no_challenger: false,
        byzantine: Vec::new(),
        netns: isolation == Isolation::Namespaces,
        admin_rpc: true,
        tied: true,
    };
    let m = cluster::up(&cfg).await.context("starting the processes")?;
    let result = play(s, seed, dir, isolation, m.clone(), signers, &mut progress).await;
    cluster::down(dir).await.ok();
    result
}

/// A base port with every port the testnet takes free on 127.0.0.1.
fn free_base_port(nodes: usize, shards: u32) -> Result<u16> {
    let span = 3 * (nodes + shards as usize * 4);
    (20_000u16..60_000)
        .step_by(span.max(500))
        .find(|b| {
            (*b..b.saturating_add(span as u16)).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        })
        .context("no free range of ports on 127.0.0.1")
}

async fn play(
    s: &Scenario,
    seed: u64,
    dir: &Path,
    isolation: Isolation,
    m: Manifest,
    signers: Vec<PrivateKeySigner>,
    progress: &mut impl FnMut(&SlotRecord) -> bool,
) -> Result<Report> {
    let net = &s.network;
    let spec = crate::read_spec(&m.genesis)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let mut nodes = BTreeMap::new();
    for e in &m.nodes {
        let node = net.node(&e.name)?;
        let rpcs = if e.role == "challenger" {
            // its followers: RPC at its base port + 3 per shard
            let base: u16 =
                e.rpc_url.rsplit(':').next().and_then(|p| p.parse().ok()).context("challenger rpc")?;
            let host = e.rpc_url.rsplit_once(':').map(|x| x.0.to_string()).context("challenger rpc")?;
            (0..net.shards).map(|k| format!("{host}:{}", base as usize + 3 * k as usize)).collect()
        } else {
            vec![e.rpc_url.clone()]
        };
        nodes.insert(node, Endpoint { entry: e.clone(), rpcs });
    }
    let honest = spec
        .validators
        .iter()
        .map(|v| v.address.to_string())
        .chain(spec.challengers.iter().map(|c| c.address.to_string()))
        .collect();
    let mut run = Run {
        s,
        spec,
        isolation,
        client,
        nodes,
        down: BTreeSet::new(),
        told: Told::default(),
        rescan: false,
        network_slots: 0,
        base: 0,
        retell: BTreeSet::new(),
        workload: Workload::new(&s.workload, net.shards, net.slot_ms, seed),
        signers,
        nonces: HashMap::new(),
        retry: Vec::new(),
        sent: HashMap::new(),
        accepted: BTreeMap::new(),
        seen_height: vec![0; net.shards as usize],
        final_seen: vec![0; net.shards as usize],
        messages: HashMap::new(),
        open_games: BTreeSet::new(),
        ended_games: BTreeSet::new(),
        measures: Measures::default(),
        honest,
        usage: BTreeMap::new(),
        checked_final: vec![0; net.shards as usize],
        inbox_checked: vec![0; net.shards as usize],
        consumed: BTreeSet::new(),
        final_checks: std::sync::atomic::AtomicU64::new(0),
        unheld: BTreeMap::new(),
        next_nonce: BTreeMap::new(),
        audits_skipped: 0,
        down_slots: 0,
        m,
    };
    let mut undo: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
    let mut timeline = s.timeline.iter().peekable();
    let mut violation = None;
    let mut interrupted = false;
    let genesis = run.m.genesis_time_ms;
    // scenario slot k is the network's slot base + k: the first slot that
    // starts after every process answered (a large network's start can
    // outlast the genesis delay)
    let base = if net::now_ms() < genesis { 0 } else { run.spec.slot_at(net::now_ms()) + 1 };
    run.base = base;
    for k in 0..s.slots {
        let start = genesis + (base + k) * net.slot_ms;
        sleep_until_ms(start).await;
        run.measures.totals.runner_lag_ms_max =
            run.measures.totals.runner_lag_ms_max.max(net::now_ms().saturating_sub(start));
        let mut record = SlotRecord { slot: k + 1, ..Default::default() };
        for e in undo.remove(&k).unwrap_or_default() {
            record.events.push(format!("end of {}", super::sim::describe(&e)));
            run.apply(&e, false, dir).await?;
        }
        while let Some(e) = timeline.next_if(|e| e.at() == k) {
            record.events.push(super::sim::describe(e));
            run.apply(e, true, dir).await?;
            if let Some(until) = e.until() {
                undo.entry(until).or_default().push(e.clone());
            }
        }
        run.retell().await;
        run.offer(&mut record, start).await;
        sleep_until_ms(start + net.slot_ms).await;
        run.observe(&mut record).await;
        run.sample_usage();
        let go_on = progress(&record);
        run.measures.push(record);
        if let Err(v) = run.check(k + 1).await {
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

/// Slots a transaction no node takes is sent again before the runner gives up on it.
const MAX_SEND_TRIES: u32 = 20;

/// Runs `futs` at most 32 at a time, their outputs in order: the runner's
/// reads stay within a socket budget however large the network.
async fn bounded<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use futures::StreamExt;
    futures::stream::iter(futs).buffered(32).collect().await
}

async fn sleep_until_ms(t: u64) {
    let now = net::now_ms();
    if t > now {
        tokio::time::sleep(Duration::from_millis(t - now)).await;
    }
}

fn hex_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok())
}

impl Run<'_> {
    fn beacon_url(&self) -> &str {
        &self.nodes[&Node::Beacon].entry.rpc_url
    }

    /// Applies an entry (`start`) or undoes one that lasted.
    async fn apply(&mut self, e: &Event, start: bool, dir: &Path) -> Result<()> {
        let net = self.s.network.clone();
        match e {
            Event::Kill { node, .. } | Event::Restart { node, .. } => {
                let node = net.node(node)?;
                self.kill_or_restart(node, matches!(e, Event::Kill { .. }), dir).await?;
            }
            Event::Beacon { on, .. } => self.kill_or_restart(Node::Beacon, !on, dir).await?,
            Event::Partition { a, b, .. } => {
                for x in net.group(a)? {
                    for y in net.group(b)? {
                        self.cut(x, y, start).await?;
                    }
                }
            }
            Event::Link { a, b, latency_ms, jitter_ms, loss, bandwidth_kbps, .. } => {
                for x in net.group(a)? {
                    for y in net.group(b)? {
                        let model = net::LinkParams {
                            latency_ms: *latency_ms,
                            jitter_ms: *jitter_ms,
                            loss: *loss,
                            // the kernel's htb under namespaces, the shaper otherwise
                            bandwidth_kbps: if self.isolation == Isolation::Namespaces {
                                None
                            } else {
                                *bandwidth_kbps
                            },
                        };
                        self.shape(x, y, start.then_some(model)).await?;
                        if self.isolation == Isolation::Namespaces && bandwidth_kbps.is_some() {
                            let plan = self.m.netns.as_ref().context("namespaces")?;
                            let (i, j) = (self.nodes[&x].entry.index, self.nodes[&y].entry.index);
                            let kbps = if start { *bandwidth_kbps } else { None };
                            plan.set_bandwidth(i, j, kbps)?;
                            plan.set_bandwidth(j, i, kbps)?;
                        }
                    }
                }
            }
            Event::Byzantine { node, mode, rate_percent, .. } => {
                let node = net.node(node)?;
                let ep = &self.nodes[&node];
                if start {
                    self.honest.remove(&ep.entry.address);
                    self.told.faults.insert(node, (mode.clone(), *rate_percent));
                } else {
                    self.told.faults.remove(&node);
                }
                let params = if start { json!([mode, rate_percent]) } else { json!([null, 100]) };
                rpc(&self.client, &ep.rpcs[0], "admin_setFault", params)
                    .await
                    .with_context(|| format!("{node}: setting its fault"))?;
            }
            Event::Challenger { node, on, .. } => {
                let node = net.node(node)?;
                if *on {
                    self.told.challenger_off.remove(&node);
                } else {
                    self.told.challenger_off.insert(node);
                }
                for url in self.nodes[&node].rpcs.clone() {
                    rpc(&self.client, &url, "admin_setChallenger", json!([on]))
                        .await
                        .with_context(|| format!("{node}: its challenger"))?;
                }
            }
            Event::Load { rate, .. } => self.workload.rate = *rate,
        }
        Ok(())
    }

    async fn kill_or_restart(&mut self, node: Node, kill: bool, _dir: &Path) -> Result<()> {
        let ep = self.nodes.get_mut(&node).context("no such node")?;
        if kill {
            if self.down.insert(node) {
                cluster::kill9(ep.entry.pid);
                // gone before anything restarts it (its database lock, its ports)
                for _ in 0..100 {
                    if !cluster::alive(ep.entry.pid) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        } else if self.down.remove(&node) {
            self.retell.insert(node);
            let exe = std::env::current_exe()?;
            let cmd = match &self.m.netns {
                Some(p) => p.command(ep.entry.index, &exe),
                None => std::process::Command::new(&exe),
            };
            ep.entry.pid = cluster::spawn_node(cmd, &ep.entry.args, &ep.entry.log, "info", true, true)?;
        }
        Ok(())
    }

    /// Cuts or heals the link between two nodes.
    async fn cut(&mut self, x: Node, y: Node, cut: bool) -> Result<()> {
        match (&self.m.netns, self.isolation) {
            (Some(plan), Isolation::Namespaces) => {
                plan.set_cut(self.nodes[&x].entry.index, self.nodes[&y].entry.index, cut)
            }
            _ => {
                for (a, b) in [(x, y), (y, x)] {
                    if cut {
                        self.told.blocked.insert((a, b));
                    } else {
                        self.told.blocked.remove(&(a, b));
                    }
                    // a node down now is told when it restarts
                    if !self.down.contains(&a) {
                        self.tell(a, "admin_setBlocked", b, json!(cut)).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Shapes both ends of the link between two nodes.
    async fn shape(&mut self, x: Node, y: Node, model: Option<net::LinkParams>) -> Result<()> {
        for (a, b) in [(x, y), (y, x)] {
            match model {
                Some(m) => self.told.links.insert((a, b), m),
                None => self.told.links.remove(&(a, b)),
            };
            if !self.down.contains(&a) {
                self.tell(a, "admin_setLink", b, json!(model)).await?;
            }
        }
        Ok(())
    }

    /// Calls `method(peer, value)` on every endpoint of `a` for every peer id of `b`.
    async fn tell(&self, a: Node, method: &str, b: Node, value: Value) -> Result<()> {
        for url in &self.nodes[&a].rpcs {
            for peer in &self.nodes[&b].entry.peer_ids {
                rpc(&self.client, url, method, json!([peer, value]))
                    .await
                    .with_context(|| format!("{method} on {a} for {b}"))?;
            }
        }
        Ok(())
    }

    /// Tells restarted nodes what the runner had told them before (once
    /// their RPC answers; until then they stay on the list).
    async fn retell(&mut self) {
        for node in std::mem::take(&mut self.retell) {
            if self.retell_one(node).await.is_err() {
                self.retell.insert(node);
            }
        }
    }

    async fn retell_one(&self, node: Node) -> Result<()> {
        for (_, b) in self.told.blocked.iter().filter(|(a, _)| *a == node) {
            self.tell(node, "admin_setBlocked", *b, json!(true)).await?;
        }
        for ((_, b), m) in self.told.links.iter().filter(|((a, _), _)| *a == node) {
            self.tell(node, "admin_setLink", *b, json!(m)).await?;
        }
        for url in &self.nodes[&node].rpcs {
            if let Some((mode, rate)) = self.told.faults.get(&node) {
                rpc(&self.client, url, "admin_setFault", json!([mode, rate])).await?;
            }
            if self.told.challenger_off.contains(&node) {
                rpc(&self.client, url, "admin_setChallenger", json!([false])).await?;
            }
        }
        Ok(())
    }

    /// Sends the slot's arrivals at their intended times (open loop:
    /// latency counts from the intended slot, whatever the node's answer
    /// time, so a slow node cannot hide its queue).
    async fn offer(&mut self, record: &mut SlotRecord, start: u64) {
        let mut arrivals = Vec::new();
        if record.slot == 1 {
            let signers = &self.signers;
            arrivals = self.workload.deployments(|i| signers[i].address());
        }
        arrivals.extend(self.workload.arrivals());
        let mut batch: Vec<(u32, Bytes, u64, u32)> = std::mem::take(&mut self.retry);
        for a in arrivals {
            record.offered += 1;
            let nonce = self.nonces.entry((a.shard, a.from)).or_insert(0);
            let raw = crate::sign_call(
                &self.signers[a.from],
                self.spec.chain_id(bridge::ShardId(a.shard)),
                *nonce,
                a.to,
                a.value,
                a.data,
                a.gas,
            );
            *nonce += 1;
            let is_send = a.to == alloy_primitives::TxKind::Call(bridge::BRIDGE_ADDRESS);
            let slot = self.base + record.slot;
            self.sent.insert(keccak256(&raw), Sent { slot, is_send });
            batch.push((a.shard, raw, slot, 0));
        }
        // spread over the slot's first half, each to a random live validator
        let n = batch.len().max(1) as u64;
        let span = self.s.network.slot_ms / 2;
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (shard, raw, at, tries)) in batch.into_iter().enumerate() {
            let live: Vec<String> = self
                .nodes
                .iter()
                .filter(|(node, _)| {
                    matches!(node, Node::Validator { shard: s, .. } if *s == shard)
                        && !self.down.contains(node)
                })
                .map(|(_, ep)| ep.rpcs[0].clone())
                .collect();
            let url = (!live.is_empty()).then(|| live[self.workload.rng.gen_range(0..live.len())].clone());
            let client = self.client.clone();
            let when = start + i as u64 * span / n;
            tasks.spawn(async move {
                sleep_until_ms(when).await;
                let ok = match &url {
                    Some(url) => match rpc(
                        &client,
                        url,
                        "eth_sendRawTransaction",
                        json!([format!("0x{}", hex::encode(&raw))]),
                    )
                    .await
                    {
                        Ok(_) => true,
                        // an answer lost after the node took it: taken
                        Err(e) => {
                            let e = e.to_string();
                            e.contains("already known") || e.contains("nonce too low")
                        }
                    },
                    None => false,
                };
                (shard, raw, at, tries, ok)
            });
        }
        while let Some(Ok((shard, raw, at, tries, ok))) = tasks.join_next().await {
            if ok {
                record.submitted += 1;
            } else if tries < MAX_SEND_TRIES {
                // nobody took it: sent again next slot (its nonce stays
                // used), its latency still counted from its first slot
                self.retry.push((shard, raw, at, tries + 1));
            }
        }
    }

    /// What the slot did, read over RPC: newly accepted headers and their
    /// transactions, messages executed, newly final heights, games.
    async fn observe(&mut self, record: &mut SlotRecord) {
        // in the network's slots, as inclusion and finality are
        let slot = self.base + record.slot;
        let asked = self.spec.slot_at(net::now_ms());
        let Ok(head) = rpc(&self.client, self.beacon_url(), "beacon_head", json!([])).await else {
            // the beacon is down: nothing accepted or final moves
            self.down_slots += 1;
            record.heads = self.seen_height.clone();
            record.finalized = self.final_seen.clone();
            return;
        };
        // the network's own slot when its heads were read: a runner late on
        // a saturated machine has seen more network slots than it ran
        self.network_slots = asked.max(1);
        // new heights every slot; every pending one again after a game
        // ended (a discarded header's height holds another since)
        let rescan = std::mem::take(&mut self.rescan);
        let mut wanted = Vec::new();
        let mut last: BTreeMap<u32, u64> = BTreeMap::new();
        let mut tops = Vec::new();
        for s in 0..self.s.network.shards {
            let top = head["heads"][s as usize]["height"].as_u64().unwrap_or(0);
            let from = if rescan { self.final_seen[s as usize] } else { self.seen_height[s as usize] };
            // at most 64 a shard a slot: a long gap is caught up over slots
            wanted.extend((from + 1..=top).take(64).map(|h| (s, h)));
            if let Some((_, h)) = wanted.last().filter(|(x, _)| *x == s) {
                last.insert(s, *h);
            }
            tops.push(top);
        }
        // each wanted height's status, block and receipts, all asked at once
        let fetched = bounded(wanted.iter().map(|(s, h)| self.fetch(*s, *h))).await;
        // a height not fetched (no live validator holds the accepted block
        // yet) is asked again next slot, and so is every height above it
        let mut missed: BTreeMap<u32, u64> = BTreeMap::new();
        for ((s, height), got) in wanted.into_iter().zip(fetched) {
            let Some((st, block, receipts)) = got else {
                let first = missed.entry(s).or_insert(height);
                *first = (*first).min(height);
                continue;
            };
            let hash = st["hash"].as_str().unwrap_or_default().to_string();
            if self.accepted.get(&(s, height)).is_some_and(|(h, _)| *h == hash) {
                continue;
            }
            let included = st["includedSlot"].as_u64().unwrap_or(slot);
            let failed: BTreeSet<B256> = receipts
                .iter()
                .filter(|r| hex_u64(&r["status"]) == Some(0))
                .filter_map(|r| r["transactionHash"].as_str()?.parse().ok())
                .collect();
            let mut submits = Vec::new();
            for tx in block["transactions"].as_array().into_iter().flatten() {
                let Some(h) = tx.as_str().and_then(|h| h.parse::<B256>().ok()) else { continue };
                let Some(sent) = self.sent.remove(&h) else { continue };
                record.included += 1;
                self.measures.phases[0].record(slot.saturating_sub(sent.slot));
                self.measures.phases[1].record(included.saturating_sub(sent.slot));
                submits.push(sent.slot);
                if failed.contains(&h) {
                    record.failed += 1;
                }
                if sent.is_send {
                    let r = receipts.iter().find(|r| r["transactionHash"].as_str() == tx.as_str());
                    if let Some(r) = r {
                        self.message_of(s, r, included);
                    }
                }
            }
            self.accepted.insert((s, height), (hash, submits));
        }
        for (s, top) in tops.into_iter().enumerate() {
            // up to the last height asked (at most 64 a slot), or below the first missed
            let asked = last.get(&(s as u32)).copied().unwrap_or(self.seen_height[s]);
            self.seen_height[s] = missed.get(&(s as u32)).map_or(asked, |first| first - 1);
            record.heads.push(top);
        }
        // messages executed at their destinations, all asked at once
        let waiting: Vec<(String, (u32, u32, u64))> =
            self.messages.iter().map(|(k, v)| (k.clone(), *v)).take(2_000).collect();
        let me = &*self;
        let answers = bounded(waiting.iter().map(|(id, (_, dst, _))| async move {
            let url = me.live_rpc(*dst)?;
            let v = rpc(&me.client, &url, "optishard_getMessage", json!([id])).await.ok()?;
            if v["status"] != "executed" && v["status"] != "finalized" {
                return None;
            }
            let height = v["destination"]["height"].as_u64()?;
            let st =
                rpc(&me.client, me.beacon_url(), "beacon_headerStatus", json!([dst, height])).await.ok()?;
            st["includedSlot"].as_u64()
        }))
        .await;
        for ((id, (src, dst, sent_slot)), at) in waiting.into_iter().zip(answers) {
            let Some(at) = at else { continue };
            self.messages.remove(&id);
            record.delivered += 1;
            let slots = at.saturating_sub(sent_slot);
            self.measures.cross_shard(src, dst, slots);
        }
        let finalized: Vec<u64> =
            head["finalized"].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
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
        if let Ok(games) = rpc(&self.client, self.beacon_url(), "beacon_games", json!([null, "all"])).await {
            let mut open = BTreeSet::new();
            for g in games.as_array().into_iter().flatten() {
                let id = g["record"]["id"].as_str().unwrap_or_default().to_string();
                match g["record"]["ended"].as_array().and_then(|e| e.first()).and_then(Value::as_u64) {
                    None => {
                        open.insert(id);
                    }
                    // every game the first time it is seen ended (also one
                    // that opened and ended between two reads)
                    Some(ended) if self.ended_games.insert(id) => {
                        let opened = g["record"]["opened_slot"].as_u64().unwrap_or(ended);
                        self.measures.phases[4].record(ended.saturating_sub(opened));
                        record.games_ended += 1;
                        self.rescan = true;
                    }
                    Some(_) => {}
                }
            }
            record.games_open = open.len() as u64;
            self.open_games = open;
        }
    }

    fn live_rpc(&self, shard: u32) -> Option<String> {
        self.nodes
            .iter()
            .find(|(n, _)| {
                matches!(n, Node::Validator { shard: s, .. } if *s == shard) && !self.down.contains(n)
            })
            .map(|(_, ep)| ep.rpcs[0].clone())
    }

    /// Remembers the message a bridge send's receipt shows it emitted.
    fn message_of(&mut self, shard: u32, receipt: &Value, accepted: u64) {
        let bridge = format!("{:#x}", bridge::BRIDGE_ADDRESS);
        for log in receipt["logs"].as_array().into_iter().flatten() {
            if log["address"].as_str().is_some_and(|a| a.eq_ignore_ascii_case(&bridge))
                && let Some(id) = log["topics"][1].as_str()
            {
                // a uint32 topic: its last 8 hex digits
                let dst = log["topics"][2]
                    .as_str()
                    .and_then(|t| t.get(t.len().saturating_sub(8)..))
                    .and_then(|t| u32::from_str_radix(t, 16).ok());
                if let Some(dst) = dst.filter(|d| *d < self.s.network.shards) {
                    self.messages.insert(id.to_string(), (shard, dst, accepted));
                }
            }
        }
    }

    /// An accepted height's status at the beacon, and its block and
    /// receipts from a live validator of its shard.
    async fn fetch(&self, shard: u32, height: u64) -> Option<(Value, Value, Vec<Value>)> {
        let st =
            rpc(&self.client, self.beacon_url(), "beacon_headerStatus", json!([shard, height])).await.ok()?;
        let hash = st["hash"].as_str()?.to_ascii_lowercase();
        // the block the beacon accepted, and its receipts by its hash, from
        // one live validator holding it
        for (n, ep) in &self.nodes {
            if !matches!(n, Node::Validator { shard: s, .. } if *s == shard) || self.down.contains(n) {
                continue;
            }
            let url = &ep.rpcs[0];
            let Ok(block) =
                rpc(&self.client, url, "eth_getBlockByNumber", json!([format!("{height:#x}"), false])).await
            else {
                continue;
            };
            if block["hash"].as_str().map(str::to_ascii_lowercase).as_deref() != Some(hash.as_str()) {
                continue;
            }
            let Ok(receipts) = rpc(&self.client, url, "eth_getBlockReceipts", json!([block["hash"]])).await
            else {
                continue;
            };
            let receipts = receipts.as_array()?.clone();
            return Some((st, block, receipts));
        }
        None
    }

    /// Each node's CPU time and resident memory, from /proc.
    fn sample_usage(&mut self) {
        let tick = 100.0; // USER_HZ on Linux
        for ep in self.nodes.values() {
            let u = self
                .usage
                .entry(ep.entry.name.clone())
                .or_insert_with(|| NodeUsage { node: ep.entry.name.clone(), ..Default::default() });
            if let Some((cpu, rss)) = proc_usage(ep.entry.pid, tick) {
                u.cpu_seconds = u.cpu_seconds.max(cpu);
                u.max_rss_mb = u.max_rss_mb.max(rss);
                u.rss_mb.push(rss);
            }
        }
    }

    fn report(mut self, seed: u64, violation: Option<Violation>, interrupted: bool) -> Report {
        let series = &self.measures.series;
        // headers accepted between the first and the last heads read, over
        // the network's slots between them (a late runner saw more slots
        // than it ran; slots before the scenario's first are not its)
        let sum = |r: Option<&SlotRecord>| r.map_or(0, |r| r.heads.iter().sum::<u64>());
        let headers = sum(series.last()).saturating_sub(sum(series.first()));
        let slots = self.network_slots.saturating_sub(self.base + 1);
        let wall = (series.len().max(1) as u64 * self.s.network.slot_ms) as f64 / 1_000.0;
        self.measures.totals.audits_skipped = self.audits_skipped;
        self.measures.totals.final_heights_checked =
            self.final_checks.load(std::sync::atomic::Ordering::Relaxed);
        let nodes = self
            .usage
            .into_values()
            .map(|mut u| {
                u.cpu_percent = 100.0 * u.cpu_seconds / wall;
                u
            })
            .collect();
        let info = RunInfo {
            scenario: self.s,
            seed,
            tier: "processes",
            isolation: match self.isolation {
                Isolation::Namespaces => "namespaces",
                Isolation::Loopback => "loopback",
            },
            headers,
            slots,
            nodes,
        };
        self.measures.report(info, violation, interrupted)
    }
}

/// A process's CPU seconds so far and resident memory in MB.
pub fn proc_usage(pid: u32, ticks_per_second: f64) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the command's closing parenthesis: state is 3rd, utime 14th, stime 15th
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let cpu = (rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?) / ticks_per_second;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((cpu, rss_kb / 1024.0))
}
