//! The beacon node: the [`BeaconService`] that reacts to the network and
//! the slot clock (driven by [`start`] in a real process, or step by step
//! by a deterministic simulation), its metrics, and its settings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bridge::{BeaconBlock, ChainSpec, Encode, ShardBlock, SyncRequest, ValidatorKey, decode_exact};
use net::prometheus_client::metrics::counter::Counter;
use net::prometheus_client::metrics::family::Family;
use net::prometheus_client::metrics::gauge::Gauge;
use net::prometheus_client::registry::Registry;
use net::{Labels, NetEvent, NetMetrics, Network, P2pConfig, P2pNetwork, PeerId, Topic, Validation, now_ms};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::chain::{BeaconChain, Rejection, Submitted};
use crate::store::BeaconDb;
use crate::{Error, Result};

/// Judges a dispute move from `peer` and counts it: the answer to send.
fn judge_move(
    chain: &BeaconChain,
    metrics: &BeaconMetrics,
    mv: bridge::SignedMove,
    current: u64,
    peer: PeerId,
) -> Vec<u8> {
    let action = mv.action.label();
    let result = chain.submit_move(mv, current);
    let label = result.as_ref().map_or_else(|r| r.label(), |_| "accepted");
    metrics
        .moves
        .get_or_create(&vec![("action".into(), action.into()), ("result".into(), label.into())])
        .inc();
    match result {
        Ok(()) => b"Accepted".to_vec(),
        Err(r) => {
            debug!(target: "beacon", %peer, action, reason = %r, "dispute move refused");
            r.to_string().into_bytes()
        }
    }
}

/// Beacon metrics (`optishard_beacon_*`).
#[derive(Clone, Default)]
pub struct BeaconMetrics {
    /// Slot of the newest beacon block.
    pub head_slot: Gauge,
    /// Beacon blocks produced.
    pub blocks: Counter,
    /// Shard headers included in beacon blocks.
    pub headers_included: Counter,
    /// Header submissions by result and reason.
    pub submissions: Family<Labels, Counter>,
    /// Encoded bytes of the shard block bodies the beacon accepted (and
    /// stores and serves): the data-availability mechanism's cost.
    pub body_bytes: Counter,
    /// Dispute moves by action and result (`accepted` or a refusal reason).
    pub moves: Family<Labels, Counter>,
    /// Games ended, by how (`step_upheld`, `step_refuted`, `timeout`,
    /// `void`), winner and the level they ended at (1: items; 2: one
    /// item's instructions).
    pub games_ended: Family<Labels, Counter>,
    /// Games open now.
    pub open_games: Gauge,
    /// Bisection rounds played by ended games.
    pub game_rounds: Counter,
    /// Gwei slashed from losers, and paid to winners.
    pub slashed_gwei: Counter,
    /// Gwei paid to winners out of slashed stakes.
    pub rewarded_gwei: Counter,
    /// Invalidations (a header and its descendants discarded), by why
    /// (`proven`: a game against it; `cascade`: it consumed messages of one).
    pub invalidated_headers: Family<Labels, Counter>,
    /// Shards reached by the last cascade (1: only the fraudulent shard).
    pub cascade_depth: Gauge,
}

impl BeaconMetrics {
    /// Registers the metrics.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("optishard_beacon");
        r.register("head_slot", "Slot of the newest beacon block", self.head_slot.clone());
        r.register("blocks_produced", "Beacon blocks produced", self.blocks.clone());
        r.register(
            "headers_included",
            "Shard headers included in beacon blocks",
            self.headers_included.clone(),
        );
        r.register(
            "header_submissions",
            "Shard header submissions by result and reason",
            self.submissions.clone(),
        );
        r.register(
            "body_bytes",
            "Bytes of shard block bodies accepted, stored and served by the beacon",
            self.body_bytes.clone(),
        );
        r.register("dispute_moves", "Dispute moves by action and result", self.moves.clone());
        r.register(
            "games_ended",
            "Dispute games ended, by outcome, winner and level",
            self.games_ended.clone(),
        );
        r.register("open_games", "Dispute games open", self.open_games.clone());
        r.register("game_rounds", "Bisection rounds played by ended games", self.game_rounds.clone());
        r.register("slashed_gwei", "Gwei slashed from losing parties", self.slashed_gwei.clone());
        r.register("rewarded_gwei", "Gwei paid to winning parties", self.rewarded_gwei.clone());
        r.register(
            "invalidated_headers",
            "Shard headers discarded by disputes, by why",
            self.invalidated_headers.clone(),
        );
        r.register(
            "cascade_depth",
            "Shards reached by the last invalidation cascade",
            self.cascade_depth.clone(),
        );
    }

    /// Counts what a sealed block settled.
    pub fn observe_block(&self, chain: &BeaconChain, block: &BeaconBlock) {
        for g in &block.games {
            let Some((slot, ending)) = &g.ended else { continue };
            if *slot != block.slot {
                continue;
            }
            let (how, winner) = match ending {
                bridge::Ending::Decided { outcome } => {
                    (crate::outcome_label(outcome), format!("{:?}", outcome.winner()).to_lowercase())
                }
                bridge::Ending::Void => ("void", "none".into()),
            };
            // the level the game ended at: 2 once it descended into an item
            let level = g.game.level().to_string();
            self.games_ended
                .get_or_create(&vec![
                    ("outcome".into(), how.into()),
                    ("winner".into(), winner),
                    ("level".into(), level),
                ])
                .inc();
            self.game_rounds.inc_by(u64::from(g.game.rounds));
            if let Ok(Some(log)) = chain.game(&g.id) {
                for m in &log.slashed {
                    self.slashed_gwei.inc_by(m.reward_gwei + m.treasury_gwei);
                    self.rewarded_gwei.inc_by(m.reward_gwei);
                }
            }
        }
        if !block.invalidated.is_empty() {
            let shards: std::collections::BTreeSet<u32> =
                block.invalidated.iter().map(|i| i.shard.0).collect();
            self.cascade_depth.set(shards.len() as i64);
        }
        for inv in &block.invalidated {
            let why = if inv.cause.is_some() { "cascade" } else { "proven" };
            self.invalidated_headers.get_or_create(&vec![("why".into(), why.into())]).inc();
        }
        self.open_games.set(chain.open_game_count() as i64);
    }

    fn submission(&self, result: &str, reason: &str) {
        self.submissions
            .get_or_create(&vec![("result".into(), result.into()), ("reason".into(), reason.into())])
            .inc();
    }
}

/// Largest sync response the beacon builds (blocks it serves to validators).
const SYNC_RESPONSE_BYTES: usize = 16 << 20;
/// Requests one peer may make of the beacon per slot (sync and resubmissions;
/// an honest validator makes a few).
const MAX_REQUESTS_PER_SLOT: u32 = 64;

/// The beacon's reactions to the network and the clock.
pub struct BeaconService<N: Network> {
    chain: Arc<BeaconChain>,
    net: N,
    metrics: BeaconMetrics,
    /// Requests served per peer in the current slot.
    served: Mutex<HashMap<PeerId, u32>>,
    /// Steps being re-executed off the event loop (at most
    /// `STEPS_OFF_LOOP`; more are judged on the loop, as before).
    stepping: Arc<std::sync::atomic::AtomicUsize>,
}

/// Steps re-executed at once off the beacon's event loop.
const STEPS_OFF_LOOP: usize = 2;

impl<N: Network> BeaconService<N> {
    /// Subscribes to submissions and to every shard's blocks: the beacon
    /// takes a header only with its body, straight from the shard's gossip.
    pub fn new(chain: Arc<BeaconChain>, net: N, metrics: BeaconMetrics) -> Self {
        net.subscribe(Topic::Submissions);
        for s in 0..chain.spec().shards {
            net.subscribe(Topic::ShardBlocks(bridge::ShardId(s)));
        }
        if let Some((slot, _)) = chain.head() {
            metrics.head_slot.set(slot as i64);
        }
        BeaconService { chain, net, metrics, served: Mutex::default(), stepping: Arc::default() }
    }

    /// The chain.
    pub fn chain(&self) -> &Arc<BeaconChain> {
        &self.chain
    }

    /// Judges a submitted block and counts the outcome.
    pub fn judge(&self, block: ShardBlock, current: u64) -> Result<Submitted, Rejection> {
        let bytes = block.body_bytes() as u64;
        let out = self.chain.submit(block, current);
        if matches!(out, Ok(Submitted::Accepted)) {
            self.metrics.body_bytes.inc_by(bytes);
        }
        match &out {
            Ok(Submitted::Accepted) => self.metrics.submission("accepted", ""),
            Ok(Submitted::Pending) => self.metrics.submission("pending", ""),
            Err(r) => self.metrics.submission("rejected", r.label()),
        }
        out
    }

    /// Handles one network event at beacon slot `current`.
    pub fn on_event(&self, ev: NetEvent, current: u64) {
        match ev {
            NetEvent::Gossip { topic: Topic::Submissions | Topic::ShardBlocks(_), from, id, data } => {
                let verdict = match decode_exact::<ShardBlock>(&data) {
                    Err(e) => {
                        warn!(target: "beacon", peer = %from, error = %e, "malformed submission");
                        self.metrics.submission("rejected", "malformed");
                        Validation::Reject
                    }
                    // the beacon consumes blocks, it does not relay them: it
                    // never executes them, so it must not vouch for them
                    // (validators fetch accepted bodies from it by request)
                    Ok(block) => match self.judge(block, current) {
                        Ok(_) => Validation::Ignore,
                        Err(r) if r.is_fault() => Validation::Reject,
                        Err(_) => Validation::Ignore,
                    },
                };
                self.net.report(id, from, verdict);
            }
            NetEvent::Gossip { from, id, .. } => self.net.report(id, from, Validation::Ignore),
            NetEvent::Request { peer, id, data } => {
                let mut out = Vec::new();
                let served = {
                    let mut served = self.served.lock();
                    let n = served.entry(peer).or_insert(0);
                    *n += 1;
                    *n
                };
                if served > MAX_REQUESTS_PER_SLOT {
                    // a peer asking more than any honest validator needs gets
                    // an empty answer (its request fails) and no work done
                    debug!(target: "beacon", %peer, "request over the per-slot limit");
                    self.net.respond(id, Vec::new());
                    return;
                }
                match decode_exact::<SyncRequest>(&data) {
                    Ok(SyncRequest::BeaconBlocks { from, count }) => {
                        let blocks =
                            self.chain.db().blocks_from(from, count.min(64) as usize).unwrap_or_default();
                        bridge::encode_list(&blocks, &mut out);
                    }
                    Ok(SyncRequest::ShardBlocks { shard, from, count }) => {
                        let blocks = self
                            .chain
                            .shard_blocks(shard, from, count.min(64) as usize, SYNC_RESPONSE_BYTES)
                            .unwrap_or_default();
                        bridge::encode_list(&blocks, &mut out);
                    }
                    // a destination's relay missed source headers (a restart)
                    Ok(SyncRequest::ShardHeaders { shard, from, count }) => {
                        let headers: Vec<bridge::SignedHeader> = self
                            .chain
                            .shard_headers(shard, from, count.min(bridge::MAX_HEADERS_PER_REQUEST) as usize)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|h| h.header)
                            .collect();
                        bridge::encode_list(&headers, &mut out);
                    }
                    Ok(SyncRequest::SubmitBlock(block)) => match self.judge(block, current) {
                        Ok(s) => out = format!("{s:?}").into_bytes(),
                        Err(r) => out = r.to_string().into_bytes(),
                    },
                    Ok(SyncRequest::OpenGames { shard }) => {
                        bridge::encode_list(&self.chain.open_games(shard), &mut out);
                    }
                    Ok(SyncRequest::SubmitMove(mv)) => {
                        // a step is re-executed (up to ~140 ms) off this
                        // loop, which also seals: answered when judged
                        use std::sync::atomic::Ordering;
                        let is_step = matches!(mv.action, bridge::Action::Step { .. });
                        let (chain, net, metrics) =
                            (self.chain.clone(), self.net.clone(), self.metrics.clone());
                        let judge = move || {
                            let out = judge_move(&chain, &metrics, mv, current, peer);
                            net.respond(id, out);
                        };
                        let rt = tokio::runtime::Handle::try_current();
                        match rt {
                            Ok(rt)
                                if is_step
                                    && self.stepping.fetch_add(1, Ordering::AcqRel) < STEPS_OFF_LOOP =>
                            {
                                let stepping = self.stepping.clone();
                                drop(rt.spawn_blocking(move || {
                                    judge();
                                    stepping.fetch_sub(1, Ordering::AcqRel);
                                }));
                            }
                            _ => {
                                if is_step && rt.is_ok() {
                                    self.stepping.fetch_sub(1, Ordering::AcqRel);
                                }
                                judge();
                            }
                        }
                        return;
                    }
                    // outboxes are the source shard's validators' to serve
                    Ok(SyncRequest::Outbox { .. }) | Err(_) => {
                        bridge::encode_list::<BeaconBlock>(&[], &mut out)
                    }
                }
                self.net.respond(id, out);
            }
            _ => {}
        }
    }

    /// Seals the block of `slot` (at the slot's end) and gossips it.
    pub fn on_slot_end(&self, slot: u64) -> Result<()> {
        self.served.lock().clear();
        if let Some(block) = self.chain.seal(slot)? {
            self.metrics.blocks.inc();
            self.metrics.head_slot.set(slot as i64);
            self.metrics.headers_included.inc_by(block.headers.len() as u64);
            self.metrics.observe_block(&self.chain, &block);
            if !block.headers.is_empty() {
                info!(target: "beacon", slot, headers = block.headers.len(), "sealed beacon block");
            }
            self.net.publish(Topic::BeaconBlocks, block.encode());
        }
        Ok(())
    }
}

/// Settings of a beacon node process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeaconConfig {
    /// Data directory (`DIR/db`, `DIR/p2p.key`).
    pub datadir: PathBuf,
    /// JSON-RPC listen address.
    pub rpc_addr: SocketAddr,
    /// Prometheus metrics listen address.
    pub metrics_addr: SocketAddr,
    /// p2p listen IP.
    pub p2p_ip: std::net::IpAddr,
    /// p2p port (TCP and QUIC/UDP).
    pub p2p_port: u16,
    /// Multiaddrs of peers to join.
    pub bootnodes: Vec<String>,
    /// fsync every block.
    pub fsync: bool,
    /// Serve the `admin_*` link methods on the JSON-RPC endpoint (off by
    /// default; scenario runs cut and slow links through them).
    pub admin_rpc: bool,
}

impl Default for BeaconConfig {
    fn default() -> Self {
        BeaconConfig {
            datadir: PathBuf::from("optishard-beacon"),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 5052)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 5054)),
            p2p_ip: [127, 0, 0, 1].into(),
            p2p_port: 9000,
            bootnodes: vec![],
            fsync: false,
            admin_rpc: false,
        }
    }
}

/// A running beacon node.
pub struct BeaconHandle {
    /// The chain.
    pub chain: Arc<BeaconChain>,
    /// JSON-RPC address.
    pub rpc_addr: SocketAddr,
    /// Metrics address.
    pub metrics_addr: SocketAddr,
    /// p2p addresses (with `/p2p/<id>`).
    pub p2p_addrs: Vec<net::Multiaddr>,
    tasks: net::NodeTasks,
}

impl BeaconHandle {
    /// Stops the node and waits for it.
    pub async fn stop(self) {
        self.tasks.stop().await;
    }
}

/// Opens the beacon chain and runs it: p2p, slot clock, RPC and metrics.
pub async fn start(spec: ChainSpec, key: ValidatorKey, cfg: BeaconConfig) -> Result<BeaconHandle> {
    if cfg.admin_rpc && !net::admin_bind_allowed(cfg.rpc_addr.ip()) {
        return Err(Error::Config(format!(
            "admin_rpc serves the admin_* methods only on a loopback or private rpc_addr, not {}",
            cfg.rpc_addr
        )));
    }
    std::fs::create_dir_all(&cfg.datadir)
        .map_err(|e| Error::Config(format!("datadir {}: {e}", cfg.datadir.display())))?;
    let db = BeaconDb::open(&cfg.datadir.join("db"), cfg.fsync)?;
    let chain = Arc::new(BeaconChain::open(spec.clone(), db, key)?);
    let mut registry = Registry::default();
    let net_metrics = NetMetrics::default();
    net_metrics.register(&mut registry);
    let metrics = BeaconMetrics::default();
    metrics.register(&mut registry);
    let mut p2p = P2pConfig::for_node(&cfg.datadir, cfg.p2p_ip, cfg.p2p_port, &cfg.bootnodes, spec.hash())
        .map_err(Error::Config)?;
    // joined before any connection (BeaconService::new subscribes the same)
    p2p.topics = std::iter::once(Topic::Submissions)
        .chain((0..spec.shards).map(|s| Topic::ShardBlocks(bridge::ShardId(s))))
        .collect();
    let (net, mut events) = P2pNetwork::start(p2p, net_metrics).await.map_err(Error::Net)?;
    let p2p_addrs = net.listen_addrs();
    let (rpc_addr, rpc, rpc_metrics) =
        crate::rpc::serve(chain.clone(), net.clone(), cfg.rpc_addr, cfg.admin_rpc.then(|| net.clone()))
            .await?;
    rpc_metrics.register(&mut registry);
    let registry = Arc::new(Mutex::new(registry));
    let metrics_srv = net::serve_metrics(cfg.metrics_addr, registry)
        .await
        .map_err(|e| Error::Config(format!("metrics on {}: {e}", cfg.metrics_addr)))?;
    let service = BeaconService::new(chain.clone(), net, metrics);
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut sealing = spec.slot_at(now_ms());
        loop {
            let wait = spec.slot_start_ms(sealing + 1).saturating_sub(now_ms());
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => service.on_event(ev, spec.slot_at(now_ms())),
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {
                    if let Err(e) = service.on_slot_end(sealing) {
                        warn!(target: "beacon", slot = sealing, error = %e, "sealing failed");
                    }
                    sealing = (sealing + 1).max(spec.slot_at(now_ms()));
                }
                _ = stopped.changed() => break,
            }
        }
    });
    info!(target: "beacon", %rpc_addr, metrics = %metrics_srv.addr, p2p = ?p2p_addrs, "beacon node started");
    Ok(BeaconHandle {
        chain,
        rpc_addr,
        metrics_addr: metrics_srv.addr,
        p2p_addrs,
        tasks: net::NodeTasks::new(stop, task, rpc, metrics_srv),
    })
}
