//! A shard validator on the network: proposes in its scheduled slots,
//! imports (re-executes and checks) everyone else's blocks, follows the
//! beacon's accepted chain, catches up from peers, and gossips the
//! transactions its RPC receives.
//!
//! [`Validator`] is driven by events and slot ticks, by [`start_validator`]
//! in a node process or step by step by a deterministic simulation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bridge::{
    BeaconBlock, ChainSpec, Encode, Hash, ShardBlock, ShardHead, ShardId, SyncRequest, ValidatorKey,
    decode_exact, decode_list, encode_list,
};
use net::prometheus_client::registry::Registry;
use net::{
    NetEvent, NetMetrics, Network, P2pConfig, P2pNetwork, PeerId, RequestId, Topic, Validation, now_ms,
};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::node::{ImportError, ShardConfig, ShardNode};
use crate::{Error, Result};

/// Most blocks one sync request asks for.
const SYNC_BATCH: u32 = 64;
/// Largest sync response a node builds.
const SYNC_RESPONSE_BYTES: usize = 16 << 20;
/// Slots a sync request may take before another peer is asked.
const SYNC_TIMEOUT_SLOTS: u64 = 10;
/// Blocks ahead of the head held until their parent arrives.
const MAX_FUTURE: usize = 256;
/// Largest batch of gossiped transactions.
const TX_BATCH_BYTES: usize = 120 << 10;

/// What a validator reports about itself over RPC.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ValidatorStatus {
    /// Its signing address, if it validates (not only follows).
    pub validator: Option<bridge::Address>,
    /// Its p2p identity.
    pub peer_id: String,
    /// Connected peers.
    pub peers: usize,
    /// The newest beacon block seen.
    pub beacon_slot: u64,
    /// The beacon's accepted head of this shard.
    pub beacon_head: Option<ShardHead>,
    /// Blocks behind the beacon's head.
    pub lag: u64,
    /// Whether a sync request is in flight.
    pub syncing: bool,
}

struct InFlight {
    id: RequestId,
    peer: PeerId,
    since_slot: u64,
}

/// A validator (or, without a key, a follower) of one shard.
pub struct Validator<N: Network> {
    node: Arc<ShardNode>,
    net: N,
    spec: ChainSpec,
    key: Option<ValidatorKey>,
    shard: ShardId,
    beacon: Option<ShardHead>,
    beacon_slot: u64,
    accepted: BTreeMap<u64, Hash>,
    future: BTreeMap<u64, ShardBlock>,
    sync: Option<InFlight>,
    next_peer: usize,
    slot: u64,
    resubmitted_at: u64,
    txs: Arc<Mutex<Vec<Vec<u8>>>>,
    status: Arc<parking_lot::RwLock<ValidatorStatus>>,
}

impl<N: Network> Validator<N> {
    /// Joins the shard's topics. A key must belong to a validator the spec
    /// registers for this node's shard.
    pub fn new(node: Arc<ShardNode>, net: N, spec: ChainSpec, key: Option<ValidatorKey>) -> Result<Self> {
        let shard = node.config().shard;
        if let Some(k) = &key {
            match spec.validator(&k.address()) {
                Some(v) if v.shard == shard => {}
                Some(v) => {
                    return Err(Error::Config(format!(
                        "validator {} is registered for shard {}",
                        k.address(),
                        v.shard
                    )));
                }
                None => return Err(Error::Config(format!("{} is not a registered validator", k.address()))),
            }
        }
        let genesis = node.db().header(0)?.map(|h| h.hash()).unwrap_or_default();
        if spec.shard_genesis.get(shard.0 as usize) != Some(&genesis) {
            return Err(Error::Config(format!(
                "this node's genesis {genesis} is not shard {shard}'s genesis in the spec (check genesis accounts, time and gas limit)"
            )));
        }
        net.subscribe(Topic::ShardBlocks(shard));
        net.subscribe(Topic::ShardTxs(shard));
        net.subscribe(Topic::BeaconBlocks);
        let txs: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let sink = txs.clone();
        node.set_tx_listener(Box::new(move |raw| sink.lock().push(raw.to_vec())));
        let status = Arc::new(parking_lot::RwLock::new(ValidatorStatus {
            validator: key.as_ref().map(|k| k.address()),
            peer_id: net.local_peer().to_string(),
            ..Default::default()
        }));
        Ok(Validator {
            node,
            net,
            spec,
            key,
            shard,
            beacon: None,
            beacon_slot: 0,
            accepted: BTreeMap::new(),
            future: BTreeMap::new(),
            sync: None,
            next_peer: 0,
            slot: 0,
            resubmitted_at: 0,
            txs,
            status,
        })
    }

    /// The node.
    pub fn node(&self) -> &Arc<ShardNode> {
        &self.node
    }

    /// The status the RPC shows (updated every slot).
    pub fn status(&self) -> Arc<parking_lot::RwLock<ValidatorStatus>> {
        self.status.clone()
    }

    /// Beacon slot `slot` started: propose if scheduled.
    pub fn on_slot(&mut self, slot: u64) {
        self.slot = slot;
        self.flush_txs();
        if self.sync.as_ref().is_some_and(|s| s.since_slot + SYNC_TIMEOUT_SLOTS < slot) {
            debug!(target: "shard", "sync request timed out");
            self.sync = None;
        }
        self.maybe_sync();
        self.update_status();
        let Some(key) = &self.key else { return };
        if self.spec.proposer(self.shard, slot) != Some(key.address()) {
            return;
        }
        let head = self.node.head().header;
        if self.beacon.is_some_and(|b| b.height > head.height) {
            info!(target: "shard", slot, "not proposing while behind the beacon's head");
            return;
        }
        if head.beacon_slot >= slot {
            return;
        }
        match self.node.propose(slot, self.spec.slot_start_ms(slot) / 1000, key) {
            Ok(block) => {
                self.net.publish(Topic::ShardBlocks(self.shard), block.encode());
                self.net.publish(Topic::Submissions, block.header.encode());
            }
            Err(e) => warn!(target: "shard", slot, error = %e, "block production failed"),
        }
    }

    /// Gossips the transactions received over RPC since the last call.
    pub fn flush_txs(&self) {
        let txs = std::mem::take(&mut *self.txs.lock());
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut size = 0;
        for tx in txs {
            if size + tx.len() + 4 > TX_BATCH_BYTES && !batch.is_empty() {
                self.publish_txs(std::mem::take(&mut batch));
                size = 0;
            }
            size += tx.len() + 4;
            batch.push(tx);
        }
        if !batch.is_empty() {
            self.publish_txs(batch);
        }
    }

    fn publish_txs(&self, batch: Vec<Vec<u8>>) {
        let mut out = Vec::new();
        encode_list(&batch, &mut out);
        self.net.publish(Topic::ShardTxs(self.shard), out);
    }

    /// Handles one network event.
    pub fn on_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Gossip { topic, from, id, data } => {
                let verdict = match topic {
                    Topic::ShardBlocks(s) if s == self.shard => self.on_block_gossip(&data),
                    Topic::ShardTxs(s) if s == self.shard => self.on_tx_gossip(&data),
                    Topic::BeaconBlocks => self.on_beacon_block(&data),
                    _ => Validation::Ignore,
                };
                if verdict == Validation::Reject {
                    warn!(target: "shard", peer = %from, %topic, "rejected gossip");
                }
                self.net.report(id, from, verdict);
            }
            NetEvent::Request { id, data, .. } => {
                let blocks = match decode_exact::<SyncRequest>(&data) {
                    Ok(SyncRequest::ShardBlocks { shard, from, count }) if shard == self.shard => {
                        self.serve_blocks(from, count)
                    }
                    _ => vec![],
                };
                let mut out = Vec::new();
                encode_list(&blocks, &mut out);
                self.net.respond(id, out);
            }
            NetEvent::Response { id, peer, result } => {
                if self.sync.as_ref().is_some_and(|s| s.id == id) {
                    self.sync = None;
                    match result {
                        Ok(data) => self.on_sync_response(peer, &data),
                        Err(e) => {
                            debug!(target: "shard", %peer, error = %e, "sync request failed");
                            self.next_peer += 1;
                        }
                    }
                    self.maybe_sync();
                }
            }
            NetEvent::PeerConnected(_) => self.maybe_sync(),
            NetEvent::PeerDisconnected(p) => {
                if self.sync.as_ref().is_some_and(|s| s.peer == p) {
                    self.sync = None;
                    self.maybe_sync();
                }
            }
        }
    }

    fn serve_blocks(&self, from: u64, count: u32) -> Vec<ShardBlock> {
        let mut out = Vec::new();
        let mut size = 0;
        for h in from.max(1)..from.max(1) + u64::from(count.min(SYNC_BATCH)) {
            match self.node.block(h) {
                Ok(Some(b)) => {
                    size += b.txs.iter().map(|t| t.len() + 4).sum::<usize>() + 400;
                    out.push(b);
                    if size > SYNC_RESPONSE_BYTES {
                        break;
                    }
                }
                _ => break,
            }
        }
        out
    }

    fn on_block_gossip(&mut self, data: &[u8]) -> Validation {
        let Ok(block) = decode_exact::<ShardBlock>(data) else { return Validation::Reject };
        let h = &block.header.header;
        let head = self.node.head();
        if h.height <= head.header.height {
            return Validation::Ignore;
        }
        if h.height > head.header.height + 1 {
            // ahead of us: check who signed it, hold it, fetch what is missing
            let scheduled = self.spec.proposer(self.shard, h.beacon_slot);
            if h.shard != self.shard || block.header.signer().ok() != scheduled {
                return Validation::Reject;
            }
            if self.future.len() < MAX_FUTURE {
                self.future.insert(h.height, block);
            }
            self.maybe_sync();
            return Validation::Accept;
        }
        let header = block.header.clone();
        match self.import(&block) {
            Ok(()) => {
                // anyone who has the block relays its header: a proposer
                // that crashed after gossiping the block still gets it on the beacon
                self.net.publish(Topic::Submissions, header.encode());
                self.drain_future();
                Validation::Accept
            }
            Err(e) if e.is_fault() => Validation::Reject,
            Err(_) => Validation::Ignore,
        }
    }

    fn import(&self, block: &ShardBlock) -> Result<(), ImportError> {
        match self.node.import_block(block, &self.spec) {
            Ok(_) => Ok(()),
            Err(e) => {
                if !matches!(e, ImportError::NotNext { .. }) {
                    warn!(target: "shard", height = block.header.header.height, error = %e, "block not imported");
                }
                Err(e)
            }
        }
    }

    fn drain_future(&mut self) {
        loop {
            let next = self.node.head().header.height + 1;
            self.future.retain(|h, _| *h >= next);
            let Some(block) = self.future.remove(&next) else { break };
            if self.import(&block).is_err() {
                break;
            }
        }
    }

    fn on_tx_gossip(&self, data: &[u8]) -> Validation {
        let mut input = data;
        let Ok(txs) = decode_list::<Vec<u8>>(&mut input) else { return Validation::Reject };
        if !input.is_empty() {
            return Validation::Reject;
        }
        let mut verdict = Validation::Accept;
        for raw in txs {
            if let Err(e) = self.node.admit_tx(&raw)
                && e.malformed
            {
                verdict = Validation::Reject;
            }
        }
        verdict
    }

    fn on_beacon_block(&mut self, data: &[u8]) -> Validation {
        let Ok(block) = decode_exact::<BeaconBlock>(data) else { return Validation::Reject };
        if !block.signed_by(&self.spec.beacon) {
            return Validation::Reject;
        }
        if block.slot < self.beacon_slot {
            return Validation::Ignore;
        }
        let Some(head) = block.heads.get(self.shard.0 as usize).copied() else { return Validation::Reject };
        for h in block.headers.iter().filter(|h| h.header.shard == self.shard) {
            self.accepted.insert(h.header.height, h.header.hash());
        }
        self.accepted.insert(head.height, head.hash);
        while self.accepted.len() > 1024 {
            self.accepted.pop_first();
        }
        self.beacon_slot = block.slot;
        self.beacon = Some(head);
        self.follow_beacon(head);
        self.maybe_sync();
        self.update_status();
        Validation::Accept
    }

    /// Reverts local blocks the beacon accepted another block in place of,
    /// and resubmits a local block the beacon seems to have missed.
    fn follow_beacon(&mut self, beacon: ShardHead) {
        let local = self.node.head();
        // the node keeps its last 256 block hashes: no header reads or rehashing here
        let hashes = self.node.recent_hashes();
        let at = |h: u64| hashes.get(&h).map(|x| Hash(x.0));
        // forks happen near the head: look at the last 64 accepted heights we have
        let recent = local.header.height.saturating_sub(64)..=local.header.height;
        let conflict = self.accepted.range(recent).rev().find(|(h, hash)| at(**h) != Some(**hash));
        if let Some((&height, _)) = conflict {
            // step back below the conflict; if the fork is deeper, the sync
            // response path steps back further
            match self.node.revert_to(height.saturating_sub(1)) {
                Ok(n) => {
                    self.node.metrics().reverted.inc_by(n as u64);
                }
                Err(e) => warn!(target: "shard", error = %e, "revert failed"),
            }
            return;
        }
        if local.header.height > beacon.height
            && self.resubmitted_at + 2 <= self.beacon_slot
            && let Ok(Some(next)) = self.node.block(beacon.height + 1)
            && next.header.header.beacon_slot + 2 <= self.beacon_slot
        {
            self.resubmitted_at = self.beacon_slot;
            let req = SyncRequest::SubmitHeader(next.header).encode();
            for p in self.net.topic_peers(Topic::Submissions) {
                self.net.request(p, req.clone());
            }
        }
    }

    fn maybe_sync(&mut self) {
        if self.sync.is_some() {
            return;
        }
        let local = self.node.head().header.height;
        let target =
            self.beacon.map_or(0, |b| b.height).max(self.future.keys().next_back().map_or(0, |h| h - 1));
        if local >= target {
            return;
        }
        let mut peers = self.net.topic_peers(Topic::ShardBlocks(self.shard));
        if peers.is_empty() {
            peers = self.net.peers();
        }
        if peers.is_empty() {
            return;
        }
        let peer = peers[self.next_peer % peers.len()];
        let id = self.net.request(
            peer,
            SyncRequest::ShardBlocks { shard: self.shard, from: local + 1, count: SYNC_BATCH }.encode(),
        );
        self.node.metrics().sync_requests.inc();
        debug!(target: "shard", %peer, from = local + 1, target, "syncing");
        self.sync = Some(InFlight { id, peer, since_slot: self.slot });
    }

    fn on_sync_response(&mut self, peer: PeerId, data: &[u8]) {
        let mut input = data;
        let blocks = match decode_list::<ShardBlock>(&mut input) {
            Ok(b) if !b.is_empty() => b,
            _ => {
                self.next_peer += 1;
                return;
            }
        };
        let mut imported = 0;
        for block in &blocks {
            let head = self.node.head();
            let h = &block.header.header;
            if h.height <= head.header.height {
                continue;
            }
            match self.import(block) {
                Ok(()) => imported += 1,
                Err(ImportError::NotNext { .. }) if h.height == head.header.height + 1 => {
                    // the peer's chain forks below our head; step back unless
                    // the beacon accepted our block
                    let ours = self.accepted.get(&head.header.height) == Some(&head.hash);
                    if !ours && head.header.height > 0 {
                        let _ = self.node.revert_to(head.header.height - 1);
                    } else {
                        self.next_peer += 1;
                    }
                    break;
                }
                Err(_) => {
                    self.next_peer += 1;
                    break;
                }
            }
        }
        if imported > 0 {
            info!(target: "shard", %peer, imported, height = self.node.head().header.height, "synced blocks");
            self.drain_future();
        }
    }

    fn update_status(&self) {
        let head = self.node.head().header.height;
        let mut s = self.status.write();
        s.peers = self.net.peers().len();
        s.beacon_slot = self.beacon_slot;
        s.beacon_head = self.beacon;
        s.lag = self.beacon.map_or(0, |b| b.height.saturating_sub(head));
        s.syncing = self.sync.is_some();
    }
}

/// A running validator process.
pub struct ValidatorHandle {
    /// The node.
    pub node: Arc<ShardNode>,
    /// JSON-RPC address.
    pub rpc_addr: SocketAddr,
    /// Metrics address.
    pub metrics_addr: SocketAddr,
    /// p2p addresses (with `/p2p/<id>`).
    pub p2p_addrs: Vec<net::Multiaddr>,
    tasks: net::NodeTasks,
}

impl ValidatorHandle {
    /// Stops the node and waits for it.
    pub async fn stop(self) {
        self.tasks.stop().await;
    }
}

/// Runs a validator (or, without a key, a follower) of `config.shard` on
/// the network `spec` describes: p2p, slot clock, JSON-RPC and metrics.
pub async fn start_validator(
    spec: ChainSpec,
    key: Option<ValidatorKey>,
    mut config: ShardConfig,
) -> Result<ValidatorHandle> {
    spec.validate().map_err(Error::Config)?;
    config.chain_id_base = spec.chain_id_base;
    config.genesis_timestamp = Some(spec.genesis_time_ms / 1000);
    let node = ShardNode::open(config.clone())?;
    let mut registry = Registry::default();
    let net_metrics = NetMetrics::default();
    net_metrics.register(&mut registry);
    node.metrics().register(&mut registry);
    let p2p =
        P2pConfig::for_node(&config.datadir, config.p2p_ip, config.p2p_port, &config.bootnodes, spec.hash())
            .map_err(Error::Config)?;
    let (net, mut events) = P2pNetwork::start(p2p, net_metrics).await.map_err(Error::Rpc)?;
    let p2p_addrs = net.listen_addrs();
    let mut validator = Validator::new(node.clone(), net, spec.clone(), key)?;
    let (rpc_addr, rpc, rpc_metrics) = crate::rpc::serve(node.clone(), Some(validator.status())).await?;
    rpc_metrics.register(&mut registry);
    let metrics_srv = net::serve_metrics(config.metrics_addr, Arc::new(Mutex::new(registry)))
        .await
        .map_err(|e| Error::Config(format!("metrics on {}: {e}", config.metrics_addr)))?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut slot = spec.slot_at(now_ms());
        let mut flush = tokio::time::interval(Duration::from_millis(50));
        loop {
            let wait = spec.slot_start_ms(slot + 1).saturating_sub(now_ms());
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => tokio::task::block_in_place(|| validator.on_event(ev)),
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {
                    slot = (slot + 1).max(spec.slot_at(now_ms()));
                    tokio::task::block_in_place(|| validator.on_slot(slot));
                }
                _ = flush.tick() => validator.flush_txs(),
                _ = stopped.changed() => break,
            }
        }
    });
    info!(target: "shard", shard = %config.shard, %rpc_addr, metrics = %metrics_srv.addr, p2p = ?p2p_addrs, "validator started");
    Ok(ValidatorHandle {
        node,
        rpc_addr,
        metrics_addr: metrics_srv.addr,
        p2p_addrs,
        tasks: net::NodeTasks::new(stop, task, rpc, metrics_srv),
    })
}
