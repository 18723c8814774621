//! A shard validator on the network: proposes in its scheduled slots,
//! imports (re-executes and checks) everyone else's blocks, follows the
//! beacon's accepted chain, catches up from peers, and gossips the
//! transactions its RPC receives.
//!
//! [`Validator`] is driven by events and slot ticks, by [`crate::start_validator`]
//! in a node process or step by step by a deterministic simulation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bridge::{
    BeaconBlock, ChainSpec, Encode, Hash, ShardBlock, ShardHead, ShardId, SyncRequest, ValidatorKey,
    decode_exact, decode_list, encode_list,
};
use net::{NetEvent, Network, PeerId, RequestId, Topic, Validation};
use parking_lot::Mutex;
use serde::Serialize;
use tracing::{debug, info, warn};

use crate::dispute::{AgentMode, DisputeAgent};
use crate::future::FutureBlocks;
use crate::import::{BlockError, BoundBlock, Expected};
use crate::node::ShardNode;
use crate::relay::Relay;
use crate::{Error, Result};

/// Most blocks one sync request asks for.
const SYNC_BATCH: u32 = 64;
/// Largest sync response a node builds.
const SYNC_RESPONSE_BYTES: usize = 16 << 20;
/// Slots a sync request may take before another peer is asked.
const SYNC_TIMEOUT_SLOTS: u64 = 4;
/// Longest wait, in slots, after fruitless sync responses.
const SYNC_MAX_BACKOFF_SLOTS: u64 = 8;
/// How far above the head a held block may be (further ones come by sync).
const MAX_AHEAD: u64 = 64;
/// Most a validator waits into its slot before acting on it (a tenth of
/// the slot at most).
pub(crate) const PROPOSAL_DELAY_MS: u64 = 100;

/// Most unaccepted blocks resubmitted to the beacon at once.
const MAX_RESUBMIT: u64 = 16;
/// Largest batch of gossiped transactions.
const TX_BATCH_BYTES: usize = 120 << 10;
/// Slots over which a peer's junk transactions are counted.
const JUNK_WINDOW_SLOTS: u64 = 8;
/// Junk transactions (unfunded, stale nonce, wrong fee) a peer may relay in
/// a window, when they outnumber its useful ones, before its batches are
/// rejected (honest peers send a few: races with block inclusion).
const JUNK_TOLERANCE: u32 = 256;

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
    /// Blocks held ahead of the head.
    pub future_blocks: usize,
    /// Blocks evicted from that buffer because it was full.
    pub future_evicted: u64,
    /// The newest local height the beacon accepted (the RPC's `safe` tag).
    pub safe_height: u64,
    /// The newest height the beacon reports final (the RPC's `finalized` tag).
    pub finalized_height: u64,
    /// The network's challenge window in slots.
    pub challenge_window_slots: u64,
    /// The beacon slot that included each recent accepted height (the
    /// message RPC's `beaconSlot`; the last 1,024).
    #[serde(skip)]
    pub included_slots: BTreeMap<u64, u64>,
}

struct InFlight {
    id: RequestId,
    peer: PeerId,
    since_slot: u64,
}

/// Useful and junk transactions a peer relayed in the current window.
#[derive(Clone, Copy, Default)]
struct TxTally {
    useful: u32,
    junk: u32,
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
    future: FutureBlocks,
    sync: Option<InFlight>,
    sync_backoff: u64,
    sync_not_before: u64,
    next_peer: usize,
    slot: u64,
    resubmitted_at: u64,
    tx_tally: HashMap<PeerId, TxTally>,
    tally_since: u64,
    txs: Arc<Mutex<Vec<Vec<u8>>>>,
    status: Arc<parking_lot::RwLock<ValidatorStatus>>,
    relay: Relay,
    /// The newest final height of this shard the beacon reported.
    finalized: u64,
    spec_hash: Hash,
    /// The dispute agent (with a key: challenges refuted headers, defends its own).
    agent: Option<DisputeAgent>,
    /// Whether the agent opens games (`--no-challenger` turns it off).
    challenge: bool,
    /// See [`AgentMode::level_one_limit`].
    level_one_limit: usize,
    /// Validators the beacon lists as unbonded (it refuses their headers).
    unbonded: std::collections::HashSet<bridge::Address>,
    /// The open-games request in flight, and the slot it was last sent.
    games_request: Option<RequestId>,
    games_asked_at: Option<u64>,
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
        let (spec_shards, spec_hash) = (spec.shards, spec.hash());
        // nothing is pruned until the beacon says what is final
        node.set_finalized(0);
        let genesis = node.db().header(0)?.map(|h| h.hash()).unwrap_or_default();
        if spec.shard_genesis.get(shard.0 as usize).map(|g| g.hash()) != Some(genesis) {
            return Err(Error::Config(format!(
                "this node's genesis {genesis} is not shard {shard}'s genesis in the spec (check genesis accounts, time and gas limit)"
            )));
        }
        node.set_schedule(spec.clone());
        net.subscribe(Topic::ShardBlocks(shard));
        net.subscribe(Topic::ShardTxs(shard));
        net.subscribe(Topic::BeaconBlocks);
        // transactions of blocks reverted before a restart go out first
        let txs: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(node.take_restored_txs()));
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
            shard,
            beacon: None,
            beacon_slot: 0,
            accepted: BTreeMap::new(),
            future: FutureBlocks::default(),
            sync: None,
            sync_backoff: 0,
            sync_not_before: 0,
            next_peer: 0,
            slot: 0,
            resubmitted_at: 0,
            tx_tally: HashMap::new(),
            tally_since: 0,
            txs,
            status,
            relay: Relay::new(shard, spec_shards),
            finalized: 0,
            spec_hash,
            agent: key.as_ref().map(|k| DisputeAgent::new(k.clone(), &spec, shard, AgentMode::default())),
            challenge: true,
            level_one_limit: bridge::MAX_STEP_BYTES,
            unbonded: Default::default(),
            games_request: None,
            games_asked_at: None,
            key,
            spec,
        })
    }

    /// Decides a pinned item in its own trace (level 2) when its
    /// whole-item step is over `bytes` (see [`AgentMode::level_one_limit`]).
    pub fn set_level_one_limit(&mut self, bytes: usize) {
        self.level_one_limit = bytes;
    }

    /// Turns the challenger on or off (the agent still defends this
    /// validator's own headers).
    pub fn set_challenger(&mut self, on: bool) {
        self.challenge = on;
    }

    /// Replaces the dispute agent (a standalone challenger runs one with
    /// its own key over a follower).
    pub fn set_agent(&mut self, agent: Option<DisputeAgent>) {
        self.agent = agent;
    }

    /// The games this node's agent is playing.
    pub fn games(&self) -> Vec<bridge::GameRecord> {
        self.agent.as_ref().map(|a| a.games()).unwrap_or_default()
    }

    /// The node.
    pub fn node(&self) -> &Arc<ShardNode> {
        &self.node
    }

    /// The status the RPC shows (updated every slot).
    pub fn status(&self) -> Arc<parking_lot::RwLock<ValidatorStatus>> {
        self.status.clone()
    }

    /// Sets the clock without proposing (a node starting mid-slot).
    pub fn observe_slot(&mut self, slot: u64) {
        self.slot = self.slot.max(slot);
        self.node.set_slot(slot);
    }

    /// Beacon slot `slot` started: propose if scheduled.
    pub fn on_slot(&mut self, slot: u64) {
        self.slot = slot;
        self.node.set_slot(slot);
        self.flush_txs();
        if self.sync.as_ref().is_some_and(|s| s.since_slot + SYNC_TIMEOUT_SLOTS < slot) {
            debug!(target: "shard", "sync request timed out");
            self.sync = None;
            self.next_peer += 1;
        }
        if slot >= self.tally_since + JUNK_WINDOW_SLOTS {
            self.tx_tally.clear();
            self.tally_since = slot;
        }
        self.maybe_sync();
        self.relay.prune(&self.node);
        self.relay.on_slot(&self.node, &self.net, slot);
        self.node.metrics().inbox_backlog.set(self.relay.backlog() as i64);
        self.update_status();
        let Some(key) = &self.key else { return };
        if self.spec.proposer(self.shard, slot) != Some(key.address()) {
            return;
        }
        if self.unbonded.contains(&key.address()) {
            // the beacon would refuse the header: a block others might
            // build on, only to be reverted when its window closes
            return;
        }
        // A (re)started node proposes only once a beacon block has shown it
        // the beacon's view of its shard: building on a local head the
        // beacon has abandoned would only produce another orphan.
        // (At genesis there is nothing to abandon: a fresh network's first
        // proposers start before the beacon has sealed anything.)
        let head = self.node.head().header;
        if self.beacon.is_none() && head.height > 0 {
            info!(target: "shard", slot, "not proposing before the first beacon block");
            return;
        }
        if self.beacon.is_some_and(|b| b.height > head.height) {
            info!(target: "shard", slot, "not proposing while behind the beacon's head");
            return;
        }
        if head.beacon_slot >= slot {
            return;
        }
        let inbox = self.relay.offer(&self.node, self.node.config().block_gas_limit, slot);
        match self.node.propose(slot, &self.spec, key, inbox) {
            // the beacon subscribes to every shard's blocks: one publish
            // reaches the shard's validators and the beacon (which takes
            // the header only with this body)
            Ok(block) => {
                self.observe_inbox("executed", &block.inbox, slot);
                self.net.publish(Topic::ShardBlocks(self.shard), block.encode())
            }
            Err(e) => warn!(target: "shard", slot, error = %e, "block production failed"),
        }
    }

    /// Gossips the transactions received over RPC (or returned to the pool
    /// by a revert) since the last call.
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
                    Topic::ShardTxs(s) if s == self.shard => self.on_tx_gossip(from, &data),
                    Topic::BeaconBlocks => self.on_beacon_block(&data),
                    _ => Validation::Ignore,
                };
                if verdict == Validation::Reject {
                    warn!(target: "shard", peer = %from, %topic, "rejected gossip");
                }
                self.net.report(id, from, verdict);
            }
            NetEvent::Request { id, data, .. } => {
                let mut out = Vec::new();
                match decode_exact::<SyncRequest>(&data) {
                    Ok(SyncRequest::ShardBlocks { shard, from, count }) if shard == self.shard => {
                        encode_list(&self.serve_blocks(from, count), &mut out)
                    }
                    // a destination's relay: this shard's messages to it, with proofs
                    Ok(SyncRequest::Outbox { src, dst, from, count }) if src == self.shard => {
                        let entries = self.node.outbox_page(dst, from, count).unwrap_or_default();
                        encode_list(&entries, &mut out)
                    }
                    _ => encode_list::<ShardBlock>(&[], &mut out),
                }
                self.net.respond(id, out);
            }
            NetEvent::Response { id, result, .. } if self.games_request == Some(id) => {
                self.games_request = None;
                let mut input: &[u8] = result.as_deref().unwrap_or_default();
                if let (Ok(games), Some(agent)) =
                    (decode_list::<bridge::GameRecord>(&mut input), self.agent.as_mut())
                    && input.is_empty()
                {
                    agent.on_open_games(games);
                }
            }
            NetEvent::Response { id, peer, result } if self.relay.owns(id) => {
                if let Ok(data) = result {
                    self.relay.on_response(&self.node, id, peer, &data);
                    // headers may have arrived that held blocks waited for
                    self.drain_future();
                }
            }
            NetEvent::Response { id, peer, result } => {
                if self.sync.as_ref().is_some_and(|s| s.id == id) {
                    self.sync = None;
                    match result {
                        Ok(data) => self.on_sync_response(peer, &data),
                        Err(e) => {
                            debug!(target: "shard", %peer, error = %e, "sync request failed");
                            self.sync_failed();
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
        let from = from.max(1);
        for h in (from..from.saturating_add(u64::from(count.min(SYNC_BATCH)))).take(SYNC_BATCH as usize) {
            match self.node.block(h) {
                Ok(Some(b)) => {
                    size += b.body_bytes() + 400;
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
        let head = self.node.head().header.height;
        let bound = match BoundBlock::from_bytes(data, &self.expected(head)) {
            Ok(b) => b,
            Err(e) => {
                if e.is_fault() {
                    warn!(target: "shard", error = %e, "refused gossiped block");
                }
                return e.verdict();
            }
        };
        if self.unbonded.contains(&bound.block().header.header.proposer) {
            // the beacon refuses its proposer's headers: never build on it
            return Validation::Ignore;
        }
        if bound.height() > head + 1 {
            // ahead of us: signed by its scheduled proposer and body-bound,
            // but not checked against a parent we lack: hold it (bounded;
            // only while its slot is after our head's and its window open)
            // and fetch what is missing, but do not relay it
            let head_slot = self.node.head().header.beacon_slot;
            if bound.height() <= head + MAX_AHEAD
                && bound.slot() > head_slot
                && !bridge::inclusion_expired(bound.slot(), self.beacon_slot)
            {
                self.future.insert(bound);
                self.maybe_sync();
            }
            return Validation::Ignore;
        }
        if let Err(BlockError::UnknownSource { src, height }) =
            crate::check_inbox(bound.block(), self.spec.shards, &self.relay)
        {
            // its messages come from a source header this node has not seen
            // accepted yet: hold it until the header is known
            self.relay.want_header(src, height);
            self.future.insert(bound);
            return Validation::Ignore;
        }
        match self.import(bound) {
            Ok(()) => {
                self.drain_future();
                Validation::Accept
            }
            Err(e) => e.verdict(),
        }
    }

    /// What the next block must be, seen from a head at `head_height`.
    fn expected(&self, head_height: u64) -> Expected<'_> {
        Expected { spec: &self.spec, shard: self.shard, head_height, current: self.slot }
    }

    fn import(&mut self, bound: BoundBlock) -> Result<(), BlockError> {
        let height = bound.height();
        let (slot, inbox) = (bound.slot(), bound.block().inbox.clone());
        match self.node.import(bound, &self.spec, &self.relay) {
            Ok(_) => {
                self.observe_inbox("executed", &inbox, slot);
                Ok(())
            }
            Err(e @ BlockError::BadInbox(_)) => {
                warn!(target: "shard", height, error = %e, "block refused: inbox not proven");
                self.node.metrics().messages_refused.inc();
                Err(e)
            }
            Err(BlockError::UnknownSource { src, height }) => {
                self.relay.want_header(src, height);
                Err(BlockError::UnknownSource { src, height })
            }
            Err(e) => {
                if !matches!(e, BlockError::NotNext { .. }) {
                    warn!(target: "shard", height, error = %e, "block not imported");
                }
                Err(e)
            }
        }
    }

    fn drain_future(&mut self) {
        loop {
            let head = self.node.head().header.height;
            self.future.prune(head);
            let Some(block) = self.future.take(head + 1) else { break };
            if let Err(BlockError::UnknownSource { src, height }) =
                crate::check_inbox(block.block(), self.spec.shards, &self.relay)
            {
                // still waiting for that source header: keep holding it
                self.relay.want_header(src, height);
                self.future.insert(block);
                break;
            }
            if self.import(block).is_err() {
                break;
            }
        }
    }

    /// Admits gossiped transactions; relays the batch only if every one of
    /// them passes admission (or is already pooled). A peer whose junk
    /// outnumbers its useful transactions past a tolerance is rejected.
    fn on_tx_gossip(&mut self, from: PeerId, data: &[u8]) -> Validation {
        let mut input = data;
        let Ok(txs) = decode_list::<Vec<u8>>(&mut input) else { return Validation::Reject };
        if !input.is_empty() {
            return Validation::Reject;
        }
        // useful: admitted or already pooled; junk: a sender that cannot pay
        // (the relayer could have refused it itself); other refusals (stale
        // nonce, a base fee that moved, our pool full) happen to honest
        // relayers in races: not relayed, not held against the peer
        let (mut useful, mut junk, mut refused, mut malformed) = (0u32, 0u32, 0u32, false);
        for raw in txs {
            match self.node.admit_tx(&raw) {
                Ok(_) => useful += 1,
                Err(e) if e.malformed => malformed = true,
                Err(e) if e.message == crate::PoolError::AlreadyKnown.to_string() => useful += 1,
                Err(e) if e.unfunded => junk += 1,
                Err(_) => refused += 1,
            }
        }
        if malformed {
            return Validation::Reject;
        }
        let tally = self.tx_tally.entry(from).or_default();
        tally.useful = tally.useful.saturating_add(useful);
        tally.junk = tally.junk.saturating_add(junk);
        if tally.junk > JUNK_TOLERANCE && tally.junk > tally.useful {
            return Validation::Reject;
        }
        if junk + refused > 0 { Validation::Ignore } else { Validation::Accept }
    }

    fn on_beacon_block(&mut self, data: &[u8]) -> Validation {
        // the signature is checked on the raw bytes before anything is decoded
        let Ok(block) = BeaconBlock::decode_signed(data, &self.spec.beacon) else {
            return Validation::Reject;
        };
        if !block.state_root_matches(&self.spec_hash) {
            warn!(target: "shard", slot = block.slot, "beacon block whose state root does not match its content");
            return Validation::Reject;
        }
        if block.slot < self.beacon_slot {
            return Validation::Ignore;
        }
        let Some(head) = block.heads.get(self.shard.0 as usize).copied() else { return Validation::Reject };
        self.on_invalidated(&block.invalidated);
        self.unbonded = block.unbonded.iter().copied().collect();
        self.relay.on_headers(&block.headers, Some(block.slot));
        self.relay.on_heads(&block.heads);
        // ask for new messages now, not at the next slot: the answer can
        // then make the next block (a message lands one slot after its
        // source block instead of two)
        self.relay.on_slot(&self.node, &self.net, self.slot);
        if let Some(&f) = block.finalized.get(self.shard.0 as usize)
            && f > self.finalized
        {
            // messages consumed by the blocks that just became final
            for h in (self.finalized + 1..=f).rev().take(256) {
                if let Ok(Some(b)) = self.node.block(h) {
                    self.observe_inbox("finalized", &b.inbox, block.slot);
                }
            }
            self.finalized = f;
            // only what this node holds of the beacon's chain: a node on a
            // fork must keep the state it may still revert to
            self.node.set_finalized(f.min(self.safe_height()));
        }
        self.drain_future();
        {
            let mut st = self.status.write();
            st.challenge_window_slots = self.spec.challenge_window();
            for h in block.headers.iter().filter(|h| h.header.shard == self.shard) {
                self.accepted.insert(h.header.height, h.header.hash());
                st.included_slots.insert(h.header.height, block.slot);
            }
            while st.included_slots.len() > 1024 {
                st.included_slots.pop_first();
            }
        }
        self.accepted.insert(head.height, head.hash);
        while self.accepted.len() > 1024 {
            self.accepted.pop_first();
        }
        self.beacon_slot = block.slot;
        self.beacon = Some(head);
        self.future.expire(block.slot);
        self.follow_beacon(head);
        self.maybe_sync();
        if let Some(agent) = self.agent.as_mut() {
            let fault = self.node.fault();
            agent.set_mode(AgentMode {
                challenge: self.challenge,
                defend: fault.is_none_or(|(f, _)| f != crate::Fault::SilentDefender),
                byzantine: match fault {
                    Some((crate::Fault::GriefingChallenger, rate)) => {
                        Some(crate::Byzantine::Griefer { percent: rate.max(1) })
                    }
                    Some((crate::Fault::LyingStandIn, _)) => Some(crate::Byzantine::LyingStandIn),
                    _ => None,
                },
                level_one_limit: self.level_one_limit,
            });
            agent.on_beacon_block(&block, &self.node, &self.net, &self.accepted);
            // on start, and every few slots, ask the beacon which games are
            // open here: a game waiting for this agent that no recent beacon
            // block touched (a restart, a missed block) is not lost
            if self.games_asked_at.is_none_or(|at| at + 16 <= block.slot) {
                self.games_asked_at = Some(block.slot);
                if let Some(p) = self.net.topic_peers(Topic::Submissions).first() {
                    let req = SyncRequest::OpenGames { shard: self.shard }.encode();
                    self.games_request = Some(self.net.request(*p, req));
                }
            }
        }
        self.update_status();
        Validation::Accept
    }

    /// Headers a dispute discarded: this shard's go (the node reverts to
    /// the last valid one and rebuilds; their transactions return to the
    /// pool), other shards' leave the relay's book with their messages.
    fn on_invalidated(&mut self, invalidated: &[bridge::Invalidation]) {
        for inv in invalidated {
            if inv.shard == self.shard {
                self.accepted.retain(|h, _| *h < inv.height);
                self.status.write().included_slots.retain(|h, _| *h < inv.height);
                self.future.prune(u64::MAX);
                warn!(target: "shard", height = inv.height, header = %inv.header, game = %inv.game, cause = ?inv.cause, "the beacon discarded invalid headers");
                self.revert_to(inv.height - 1, "a dispute discarded them");
                self.node.metrics().invalidated.inc();
            } else {
                self.relay.on_invalidated(inv.shard, inv.height);
            }
        }
    }

    /// Applies the one inclusion rule: reverts local blocks where the
    /// beacon accepted another block, and local blocks whose inclusion
    /// window closed without the beacon taking them (the beacon refuses
    /// them from then on, by the same `bridge::may_include`). A local block
    /// still inside its window that the beacon seems to have missed is
    /// resubmitted, body and all.
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
            self.revert_to(height.saturating_sub(1), "the beacon accepted another block");
            return;
        }
        if local.header.height <= beacon.height {
            return;
        }
        let Ok(Some(next)) = self.node.block(beacon.height + 1) else { return };
        let slot = next.header.header.beacon_slot;
        if bridge::inclusion_expired(slot, self.beacon_slot) {
            self.revert_to(beacon.height, "its inclusion window closed");
            return;
        }
        if slot + 2 <= self.beacon_slot && self.resubmitted_at + 2 <= self.beacon_slot {
            // the whole unaccepted run (the beacon holds children for their
            // parent), so a long run is not lost to a short window
            self.resubmitted_at = self.beacon_slot;
            let beacons = self.net.topic_peers(Topic::Submissions);
            let top = local.header.height.min(beacon.height + MAX_RESUBMIT);
            let mut run = vec![next];
            for h in beacon.height + 2..=top {
                match self.node.block(h) {
                    Ok(Some(b)) => run.push(b),
                    _ => break,
                }
            }
            for block in run {
                let req = SyncRequest::SubmitBlock(block).encode();
                for p in &beacons {
                    self.net.request(*p, req.clone());
                }
            }
        }
    }

    fn revert_to(&mut self, height: u64, why: &str) {
        match self.node.revert_to(height) {
            Ok(n) => {
                if n > 0 {
                    info!(target: "shard", to = height, blocks = n, why, "reverted local blocks");
                }
                self.node.metrics().reverted.inc_by(n as u64);
                if n > 0 {
                    self.relay.after_revert();
                }
                // the reverted transactions are back in the pool; gossip them now
                self.flush_txs();
            }
            Err(e) => warn!(target: "shard", error = %e, "revert failed"),
        }
    }

    /// Peers to sync from: the beacon first when the beacon's head is ahead
    /// (it holds every accepted body), then the shard's validators.
    fn sync_peers(&self, behind_beacon: bool) -> Vec<PeerId> {
        let beacons = self.net.topic_peers(Topic::Submissions);
        let mut peers: Vec<PeerId> = self
            .net
            .topic_peers(Topic::ShardBlocks(self.shard))
            .into_iter()
            .filter(|p| !beacons.contains(p))
            .collect();
        if behind_beacon {
            let mut all = beacons;
            all.extend(peers);
            peers = all;
        }
        if peers.is_empty() {
            peers = self.net.peers();
        }
        peers
    }

    fn maybe_sync(&mut self) {
        if self.sync.is_some() || self.slot < self.sync_not_before {
            return;
        }
        let local = self.node.head().header.height;
        let beacon_height = self.beacon.map_or(0, |b| b.height);
        let target = beacon_height.max(self.future.highest().map_or(0, |h| h - 1));
        if local >= target {
            return;
        }
        let peers = self.sync_peers(local < beacon_height);
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

    /// A fruitless sync round: ask the next peer, after a growing pause.
    fn sync_failed(&mut self) {
        self.next_peer += 1;
        self.sync_backoff = (self.sync_backoff * 2).clamp(1, SYNC_MAX_BACKOFF_SLOTS);
        self.sync_not_before = self.slot + self.sync_backoff;
    }

    fn on_sync_response(&mut self, peer: PeerId, data: &[u8]) {
        let mut input = data;
        let blocks = match decode_list::<ShardBlock>(&mut input) {
            Ok(b) if !b.is_empty() && input.is_empty() => b,
            _ => {
                self.sync_failed();
                return;
            }
        };
        let mut imported = 0;
        for block in blocks {
            let head = self.node.head();
            let height = block.header.header.height;
            if height <= head.header.height {
                continue;
            }
            if self.unbonded.contains(&block.header.header.proposer) {
                break;
            }
            let bound = match BoundBlock::from_block(block, &self.expected(head.header.height)) {
                Ok(b) => b,
                Err(e) => {
                    warn!(target: "shard", %peer, height, error = %e, "bad block in a sync response");
                    break;
                }
            };
            let theirs = bound.hash();
            match self.import(bound) {
                Ok(()) => imported += 1,
                Err(BlockError::NotNext { .. }) if height == head.header.height + 1 => {
                    self.on_fork(&head, peer, theirs);
                    break;
                }
                Err(_) => break,
            }
        }
        if imported > 0 {
            self.sync_backoff = 0;
            info!(target: "shard", %peer, imported, height = self.node.head().header.height, "synced blocks");
            self.drain_future();
        } else {
            self.sync_failed();
        }
    }

    /// A peer's next block (`theirs`) does not build on our head. The beacon
    /// decides which chain is canonical: our head goes only when the beacon
    /// accepted another block at its height or the peer's block above it
    /// (whose parent is not ours), when the answer came from the beacon
    /// (it serves accepted blocks only), or when our head's inclusion
    /// window closed without it; otherwise (our block may still be
    /// included) the peer is the one behind, and we ask another.
    fn on_fork(&mut self, head: &crate::Head, peer: PeerId, theirs: Hash) {
        let height = head.header.height;
        let beacon_says = self.accepted.get(&height).copied();
        let expired = self.beacon.is_some_and(|b| b.height < height)
            && bridge::inclusion_expired(head.header.beacon_slot, self.beacon_slot);
        let theirs_accepted = self.accepted.get(&(height + 1)) == Some(&theirs)
            || self.net.topic_peers(Topic::Submissions).contains(&peer);
        let ours_lost = beacon_says.is_some_and(|h| h != head.hash)
            || (beacon_says.is_none() && (expired || theirs_accepted));
        if ours_lost && height > 0 {
            self.revert_to(height - 1, "a peer's chain is the beacon's");
        } else {
            self.next_peer += 1;
        }
    }

    /// Latency of every message in `inbox` from its source block to
    /// `phase` at `slot` (and, on execution, to its source header's
    /// inclusion on the beacon).
    fn observe_inbox(&self, phase: &str, inbox: &[bridge::InboxEntry], slot: u64) {
        let m = self.node.metrics();
        for e in inbox {
            let Some((from, included)) = self.relay.source_slots(e.message.src, e.height) else { continue };
            m.message_phase(phase, from, slot, self.spec.slot_ms);
            if let (Some(at), "executed") = (included, phase) {
                m.message_phase("committed", from, at, self.spec.slot_ms);
            }
        }
    }

    /// The newest local height whose block the beacon accepted (its
    /// ancestors are then accepted too: they are what it extends).
    fn safe_height(&self) -> u64 {
        let hashes = self.node.recent_hashes();
        self.accepted
            .iter()
            .rev()
            .find(|(h, hash)| hashes.get(h).is_some_and(|x| x.0 == hash.0))
            .map_or(0, |(h, _)| *h)
    }

    fn update_status(&self) {
        let head = self.node.head().header.height;
        let mut s = self.status.write();
        s.peers = self.net.peers().len();
        s.beacon_slot = self.beacon_slot;
        s.beacon_head = self.beacon;
        s.lag = self.beacon.map_or(0, |b| b.height.saturating_sub(head));
        s.syncing = self.sync.is_some();
        s.future_blocks = self.future.by_height.len();
        s.future_evicted = self.future.evicted;
        s.safe_height = self.safe_height();
        s.finalized_height = self.finalized.min(self.safe_height());
    }
}
