//! The beacon chain's rules: which shard headers it accepts, and the block
//! it seals at the end of every slot.

use std::collections::{HashMap, VecDeque};

use bridge::{
    Address, BeaconBlock, ChainSpec, Hash, HeaderFault, ShardBlock, ShardHead, ShardHeader, ShardId,
    Signature, ValidatorKey,
};
use parking_lot::RwLock;
use serde::Serialize;
use tracing::{debug, info};

use crate::dispute::MoveQueue;
use crate::referee::{Referee, Rules};
use crate::store::{Accepted, BeaconDb, IncludedHeader, SealWrite};
use crate::{Error, Result};

/// Why the beacon refused a shard block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    /// The shard id is not below the spec's shard count.
    #[error("unknown shard {shard}")]
    UnknownShard {
        /// The claimed shard.
        shard: u32,
    },
    /// The signature does not recover.
    #[error("bad signature: {error}")]
    BadSignature {
        /// Why.
        error: String,
    },
    /// The header names another proposer than its signer.
    #[error("header names proposer {proposer} but is signed by {signer}")]
    ProposerMismatch {
        /// The header's proposer field.
        proposer: Address,
        /// Who signed.
        signer: Address,
    },
    /// The signer is not the validator scheduled for that shard and slot.
    #[error("signed by {signer}, but slot {slot} of shard {shard} belongs to {expected}")]
    NotScheduled {
        /// The shard.
        shard: u32,
        /// The header's slot.
        slot: u64,
        /// The scheduled proposer.
        expected: Address,
        /// Who signed.
        signer: Address,
    },
    /// The header claims a slot beyond the beacon's clock (plus the skew allowance).
    #[error("slot {slot} is in the future (current slot {current})")]
    FutureSlot {
        /// The header's slot.
        slot: u64,
        /// The beacon's slot.
        current: u64,
    },
    /// The header's slot is past the inclusion window ([`bridge::INCLUSION_SLOTS`]):
    /// its proposer has abandoned it by now.
    #[error("slot {slot} is too old to include at slot {current}")]
    TooLate {
        /// The header's slot.
        slot: u64,
        /// The beacon's slot.
        current: u64,
    },
    /// The header does not extend the shard's last accepted header.
    #[error(
        "does not extend shard {shard}: parent {parent} at height {height}, accepted head {head} at height {head_height}"
    )]
    NotExtending {
        /// The shard.
        shard: u32,
        /// The header's height.
        height: u64,
        /// The header's parent.
        parent: Hash,
        /// The accepted head.
        head: Hash,
        /// Its height.
        head_height: u64,
    },
    /// The header breaks a rule checkable without execution (or its body
    /// is not the one it commits to).
    #[error("invalid header: {0}")]
    Invalid(HeaderFault),
    /// An inbox message is not proven against the `outbox_root` of a
    /// header this beacon accepted (or is not for this shard): a message
    /// of a header the beacon never accepted is never consumed.
    #[error("bad inbox: {detail}")]
    BadInbox {
        /// Why.
        detail: String,
    },
    /// Already accepted.
    #[error("already accepted")]
    Duplicate,
    /// The proposer's bond (free and staked) no longer covers one game's
    /// stake (it withdrew it, or lost it): it cannot be held to account.
    #[error("proposer {proposer} has {bond} gwei bonded, a game stakes {stake}")]
    Unbonded {
        /// The proposer.
        proposer: Address,
        /// Its bond.
        bond: u64,
        /// The stake.
        stake: u64,
    },
}

impl Rejection {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::UnknownShard { .. } => "unknown_shard",
            Rejection::BadSignature { .. } => "bad_signature",
            Rejection::ProposerMismatch { .. } => "proposer_mismatch",
            Rejection::NotScheduled { .. } => "not_scheduled",
            Rejection::FutureSlot { .. } => "future_slot",
            Rejection::TooLate { .. } => "too_late",
            Rejection::NotExtending { .. } => "not_extending",
            Rejection::Invalid(f) => f.label(),
            Rejection::BadInbox { .. } => "bad_inbox",
            Rejection::Duplicate => "duplicate",
            Rejection::Unbonded { .. } => "unbonded",
        }
    }

    /// Whether the sender is at fault (its peer score should drop), as
    /// opposed to a late or duplicate but honest submission.
    pub fn is_fault(&self) -> bool {
        match self {
            Rejection::UnknownShard { .. }
            | Rejection::BadSignature { .. }
            | Rejection::ProposerMismatch { .. }
            | Rejection::NotScheduled { .. }
            | Rejection::FutureSlot { .. }
            | Rejection::Invalid(_)
            | Rejection::BadInbox { .. }
            | Rejection::Unbonded { .. } => true,
            Rejection::TooLate { .. } | Rejection::NotExtending { .. } | Rejection::Duplicate => false,
        }
    }
}

/// What happened to an accepted submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Submitted {
    /// It extends the shard's head and goes into the next beacon block.
    Accepted,
    /// Its parent has not been accepted yet; it is held until it is.
    Pending,
}

/// A refused header, kept for the RPC.
#[derive(Clone, Debug, Serialize)]
pub struct RejectionRecord {
    /// Beacon slot when it was refused.
    pub at_slot: u64,
    /// The header's shard.
    pub shard: ShardId,
    /// The header's height.
    pub height: u64,
    /// The header's hash.
    pub hash: Hash,
    /// Why.
    #[serde(flatten)]
    pub rejection: Rejection,
    /// The reason as text.
    pub message: String,
}

/// `beacon_headerStatus`: an accepted header's finality.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderStatus {
    /// The header's hash.
    pub hash: Hash,
    /// The beacon slot that included it.
    pub included_slot: u64,
    /// `pending`, `final`, or `invalid` (no accepted header is left at
    /// that height: a dispute discarded it; see `discarded`).
    pub status: &'static str,
    /// Inclusion slot plus the challenge window: the first slot it can be
    /// final at (later if a source header it depends on is not final yet).
    pub earliest_final_slot: u64,
    /// The slot of the beacon block that finalized it, once final.
    pub finalized_slot: Option<u64>,
    /// The source headers whose messages it consumed.
    pub depends_on: Vec<DependsOn>,
    /// Games open against it (it is not final while any is).
    pub open_games: Vec<Hash>,
    /// Headers at this height that disputes discarded, with the game that
    /// proved fraud.
    pub discarded: Vec<crate::DiscardedHeader>,
}

/// A source header a destination header depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DependsOn {
    /// Source shard.
    pub shard: ShardId,
    /// Source height.
    pub height: u64,
}

/// A block held until its parent is accepted.
struct Held {
    received_at: u64,
    hash: Hash,
    bytes: usize,
    block: ShardBlock,
}

pub(crate) struct State {
    /// The newest sealed block's slot and hash.
    pub(crate) head: Option<(u64, Hash)>,
    pub(crate) heads: Vec<ShardHead>,
    /// Each shard's newest final height.
    pub(crate) finalized: Vec<u64>,
    /// Per channel `(src, dst)`: the next nonce an accepted block may consume.
    pub(crate) channels: HashMap<(ShardId, ShardId), u64>,
    /// Each shard's accepted head header (the parent the next is checked against).
    pub(crate) tips: Vec<ShardHeader>,
    /// Accepted blocks not sealed yet, in acceptance order.
    pub(crate) included: Vec<Accepted>,
    /// Games, bonds, invalidations: the referee's state.
    pub(crate) referee: Referee,
    /// The moves of the block being built.
    pub(crate) queue: MoveQueue,
    /// What each non-final header consumed: per channel `(src, dst)`, the
    /// highest source height each destination height consumed a message
    /// of. The cascade of an invalidation reads it instead of every
    /// non-final header in the database (under the seal lock).
    pub(crate) consumed: HashMap<(ShardId, ShardId), std::collections::BTreeMap<u64, u64>>,
    /// Children that arrived before their parent.
    pending: Vec<Held>,
    pending_bytes: usize,
    rejections: VecDeque<RejectionRecord>,
    evicted: u64,
}

/// Most blocks held for their parent, over all shards.
pub const MAX_PENDING: usize = 256;
/// Most bytes of held blocks.
pub const MAX_PENDING_BYTES: usize = 64 << 20;
/// Most blocks held per shard.
const MAX_PENDING_PER_SHARD: usize = 16;
/// Rejections kept for the RPC.
const KEPT_REJECTIONS: usize = 1000;

/// The beacon chain: its spec, database and the state between blocks.
pub struct BeaconChain {
    key: ValidatorKey,
    pub(crate) spec: ChainSpec,
    pub(crate) spec_hash: Hash,
    pub(crate) db: BeaconDb,
    pub(crate) state: RwLock<State>,
    /// Steps being re-executed outside the state lock, per party.
    pub(crate) steps_in_flight: parking_lot::Mutex<HashMap<Address, u32>>,
}

impl BeaconChain {
    /// Opens the chain, resuming from the newest stored block. `key` signs
    /// beacon blocks and must be the spec's beacon key.
    pub fn open(spec: ChainSpec, db: BeaconDb, key: ValidatorKey) -> Result<Self> {
        spec.validate().map_err(Error::Config)?;
        if let Some((clock, turns)) = spec.clock_shortfall() {
            tracing::warn!(
                target: "beacon",
                clock,
                turns,
                "each side's game clock is shorter than level 1's turns of a game over a block of many \
                 items: an honest party can lose such a game on time (lengthen the window)"
            );
        }
        if key.address() != spec.beacon {
            return Err(Error::Config(format!(
                "beacon key {} is not the genesis beacon {}",
                key.address(),
                spec.beacon
            )));
        }
        let mut head = None;
        let mut heads: Vec<ShardHead> = (0..spec.shards).map(|s| spec.genesis_head(ShardId(s))).collect();
        let mut finalized = vec![0; spec.shards as usize];
        if let Some(slot) = db.head_slot()? {
            let block =
                db.block(slot)?.ok_or_else(|| Error::Corrupt(format!("head block {slot} missing")))?;
            if block.heads.len() != heads.len() {
                return Err(Error::Config("database belongs to a network with another shard count".into()));
            }
            heads = block.heads.clone();
            if block.finalized.len() == heads.len() {
                finalized = block.finalized.clone();
            }
            head = Some((slot, block.hash()));
            info!(target: "beacon", slot, "resumed beacon chain");
        }
        let channels = db.channels()?;
        let referee = match db.disputes()? {
            Some(bytes) => {
                let log_of = |id: &Hash| {
                    db.game_log(id)
                        .ok()
                        .flatten()
                        .and_then(|b| serde_json::from_slice::<crate::GameLog>(&b).ok())
                };
                Referee::decode(Rules::of(&spec), &bytes, log_of)
                    .map_err(|e| Error::Corrupt(format!("dispute state: {e}")))?
            }
            None => Referee::genesis(&spec),
        };
        let mut tips = Vec::with_capacity(heads.len());
        for h in &heads {
            let tip = if h.height == 0 {
                spec.shard_genesis[h.shard.0 as usize].clone()
            } else {
                db.shard_header(h.shard, h.height)?
                    .ok_or_else(|| Error::Corrupt(format!("head header {}/{} missing", h.shard, h.height)))?
                    .header
                    .header
            };
            tips.push(tip);
        }
        // what the non-final headers consumed (the cascade's index)
        let mut consumed: HashMap<(ShardId, ShardId), std::collections::BTreeMap<u64, u64>> = HashMap::new();
        for h in &heads {
            for height in finalized[h.shard.0 as usize] + 1..=h.height {
                let rec = db
                    .shard_header(h.shard, height)?
                    .ok_or_else(|| Error::Corrupt(format!("header {}/{height} missing", h.shard)))?;
                for (src, src_height) in rec.depends_on {
                    consumed.entry((src, h.shard)).or_default().insert(height, src_height);
                }
            }
        }
        Ok(BeaconChain {
            key,
            spec_hash: spec.hash(),
            spec,
            db,
            state: RwLock::new(State {
                channels,
                consumed,
                referee,
                queue: MoveQueue::default(),
                head,
                heads,
                finalized,
                tips,
                included: vec![],
                pending: vec![],
                pending_bytes: 0,
                rejections: VecDeque::new(),
                evicted: 0,
            }),
            steps_in_flight: parking_lot::Mutex::default(),
        })
    }

    /// The genesis spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The database.
    pub fn db(&self) -> &BeaconDb {
        &self.db
    }

    /// Slot and hash of the newest beacon block.
    pub fn head(&self) -> Option<(u64, Hash)> {
        self.state.read().head
    }

    /// Every shard's accepted head (including headers not yet sealed).
    pub fn heads(&self) -> Vec<ShardHead> {
        self.state.read().heads.clone()
    }

    /// Blocks held for their parent, and how many were evicted so far.
    pub fn pending(&self) -> (usize, usize, u64) {
        let s = self.state.read();
        (s.pending.len(), s.pending_bytes, s.evicted)
    }

    /// Recent rejections, newest last.
    pub fn rejections(&self, limit: usize) -> Vec<RejectionRecord> {
        let s = self.state.read();
        s.rejections.iter().rev().take(limit).rev().cloned().collect()
    }

    /// Judges a submitted block at beacon slot `current`. The beacon takes
    /// a header only together with the body it commits to, so every
    /// accepted body stays retrievable from the beacon (data availability)
    /// even when its proposer is gone. Accepted blocks go into the next
    /// sealed beacon block; a block whose parent is not accepted yet is
    /// held (bounded), and accepted when the parent is.
    pub fn submit(&self, block: ShardBlock, current: u64) -> Result<Submitted, Rejection> {
        let mut state = self.state.write();
        let (shard, height, hash) = {
            let h = &block.header.header;
            (h.shard, h.height, h.hash())
        };
        let out = self.check_and_accept(&mut state, block, hash, current);
        match &out {
            Err(Rejection::Duplicate) => {}
            Err(r) => {
                debug!(target: "beacon", %shard, height, reason = %r, "rejected header");
                if state.rejections.len() == KEPT_REJECTIONS {
                    state.rejections.pop_front();
                }
                state.rejections.push_back(RejectionRecord {
                    at_slot: current,
                    shard,
                    height,
                    hash,
                    rejection: r.clone(),
                    message: r.to_string(),
                });
            }
            Ok(Submitted::Accepted) => {
                // children that arrived before their parent
                loop {
                    let head = state.heads[shard.0 as usize];
                    let Some(i) = state.pending.iter().position(|p| {
                        p.block.header.header.shard == shard && p.block.header.header.parent_hash == head.hash
                    }) else {
                        break;
                    };
                    let held = state.pending.swap_remove(i);
                    state.pending_bytes -= held.bytes;
                    let _ = self.check_and_accept(&mut state, held.block, held.hash, current);
                }
            }
            Ok(Submitted::Pending) => {}
        }
        out
    }

    /// `hash` is the header's hash (computed once by the caller).
    fn check_and_accept(
        &self,
        state: &mut State,
        block: ShardBlock,
        hash: Hash,
        current: u64,
    ) -> Result<Submitted, Rejection> {
        let h = &block.header.header;
        if h.shard.0 >= self.spec.shards {
            return Err(Rejection::UnknownShard { shard: h.shard.0 });
        }
        if bridge::is_future(h.beacon_slot, current) {
            return Err(Rejection::FutureSlot { slot: h.beacon_slot, current });
        }
        if !bridge::may_include(h.beacon_slot, current) {
            return Err(Rejection::TooLate { slot: h.beacon_slot, current });
        }
        let head = state.heads[h.shard.0 as usize];
        if hash == head.hash || state.pending.iter().any(|p| p.hash == hash) {
            // a relayed copy (a different body under the same header fails below)
            if hash != head.hash || bridge::check_body(&block).is_ok() {
                return Err(Rejection::Duplicate);
            }
        }
        let signer = block.header.signer().map_err(|e| Rejection::BadSignature { error: e.to_string() })?;
        if h.proposer != signer {
            return Err(Rejection::ProposerMismatch { proposer: h.proposer, signer });
        }
        let expected =
            self.spec.proposer(h.shard, h.beacon_slot).expect("validated spec: every shard has validators");
        if expected != signer {
            return Err(Rejection::NotScheduled { shard: h.shard.0, slot: h.beacon_slot, expected, signer });
        }
        let stake = self.spec.dispute_stake_gwei;
        if !state.referee.bonds.covers(&signer, stake) {
            let bond =
                state.referee.bonds.parties.get(&signer).map_or(0, |b| b.free.saturating_add(b.locked));
            return Err(Rejection::Unbonded { proposer: signer, bond, stake });
        }
        bridge::check_body(&block).map_err(Rejection::Invalid)?;
        if h.height > head.height.saturating_add(1) {
            self.hold(state, hash, block, current);
            return Ok(Submitted::Pending);
        }
        if h.height <= head.height || h.parent_hash != head.hash {
            return Err(Rejection::NotExtending {
                shard: h.shard.0,
                height: h.height,
                parent: h.parent_hash,
                head: head.hash,
                head_height: head.height,
            });
        }
        let tip = &state.tips[h.shard.0 as usize];
        bridge::check_header(&self.spec, tip, &head.hash, h).map_err(Rejection::Invalid)?;
        let consumed = self.check_inbox(state, &block)?;
        state.channels.extend(consumed);
        let shard = h.shard;
        state.heads[shard.0 as usize] = ShardHead { shard, height: h.height, hash, slot: h.beacon_slot };
        state.tips[shard.0 as usize] = h.clone();
        let inbound_after = (0..self.spec.shards)
            .map(|src| state.channels.get(&(ShardId(src), shard)).copied().unwrap_or(0))
            .collect();
        let dst = block.header.header.shard;
        let height = block.header.header.height;
        for (src, src_height) in crate::store::dependencies(&block) {
            state.consumed.entry((src, dst)).or_default().insert(height, src_height);
        }
        state.included.push(Accepted { block, inbound_after });
        Ok(Submitted::Accepted)
    }

    /// Every inbox entry proves against the `outbox_root` of a source
    /// header this beacon accepted (sealed, or accepted this slot), and
    /// continues its channel: no gap, no replay. Returns the channels'
    /// next nonces after the block.
    fn check_inbox(
        &self,
        state: &State,
        block: &ShardBlock,
    ) -> Result<HashMap<(ShardId, ShardId), u64>, Rejection> {
        let shard = block.header.header.shard;
        let mut next: HashMap<(ShardId, ShardId), u64> = HashMap::new();
        for e in &block.inbox {
            let m = &e.message;
            let bad = |detail: String| Rejection::BadInbox { detail };
            if m.dst != shard || m.src == shard || m.src.0 >= self.spec.shards {
                return Err(bad(format!("message {} -> {} in a block of shard {shard}", m.src, m.dst)));
            }
            let root = match state
                .included
                .iter()
                .map(|a| &a.block)
                .find(|b| b.header.header.shard == m.src && b.header.header.height == e.height)
            {
                Some(b) => b.header.header.outbox_root,
                None => match self.db.shard_header(m.src, e.height) {
                    Ok(Some(h)) => h.header.header.outbox_root,
                    _ => return Err(bad(format!("source header {}/{} not accepted", m.src, e.height))),
                },
            };
            e.verify(&root).map_err(|err| bad(format!("message {}: {err}", m.id())))?;
            let channel = (m.src, m.dst);
            let want =
                *next.entry(channel).or_insert_with(|| state.channels.get(&channel).copied().unwrap_or(0));
            if m.nonce != want {
                return Err(bad(format!(
                    "message nonce {} on channel {} -> {}, expected {want}",
                    m.nonce, m.src, m.dst
                )));
            }
            next.insert(channel, want + 1);
        }
        Ok(next)
    }

    /// Holds a block whose parent is not accepted yet. Bounded in number
    /// (overall and per shard) and bytes; expired blocks go first, then the
    /// highest (the least likely to be needed soon). Evictions are counted.
    fn hold(&self, state: &mut State, hash: Hash, block: ShardBlock, current: u64) {
        let before = state.pending.len();
        state.pending.retain(|p| bridge::may_include(p.block.header.header.beacon_slot, current));
        let bytes = block.body_bytes() + 400;
        state.pending.push(Held { received_at: current, hash, bytes, block });
        state.pending_bytes = state.pending.iter().map(|p| p.bytes).sum();
        let mut evicted = before + 1 - state.pending.len();
        let shard = state.pending.last().map(|p| p.block.header.header.shard);
        loop {
            let per_shard =
                state.pending.iter().filter(|p| Some(p.block.header.header.shard) == shard).count();
            let over = state.pending.len() > MAX_PENDING
                || state.pending_bytes > MAX_PENDING_BYTES
                || per_shard > MAX_PENDING_PER_SHARD;
            if !over {
                break;
            }
            // the highest held block of the shard just added to, else overall
            let victim = state
                .pending
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    per_shard <= MAX_PENDING_PER_SHARD || Some(p.block.header.header.shard) == shard
                })
                .max_by_key(|(_, p)| (p.block.header.header.height, std::cmp::Reverse(p.received_at)))
                .map(|(i, _)| i)
                .expect("over a cap means something is held");
            let gone = state.pending.swap_remove(victim);
            state.pending_bytes -= gone.bytes;
            evicted += 1;
        }
        state.evicted += evicted as u64;
    }

    /// Seals and stores the block of `slot` with the headers accepted since
    /// the last one (their bodies stored beside them). `None` if a block at
    /// or after `slot` exists.
    pub fn seal(&self, slot: u64) -> Result<Option<BeaconBlock>> {
        let mut guard = self.state.write();
        let state = &mut *guard;
        if state.head.is_some_and(|(s, _)| s >= slot) {
            return Ok(None);
        }
        let resolved = self.resolve_games(state, slot)?;
        self.advance_finality(state, slot)?;
        let d = &mut state.referee;
        let touched: Vec<bridge::GameRecord> =
            d.touched.iter().filter_map(|id| d.logs.get(id).map(|l| l.record.clone())).collect();
        let mut block = BeaconBlock {
            signature: Signature::default(),
            slot,
            parent: state.head.map_or(Hash::ZERO, |(_, h)| h),
            headers: state.included.iter().map(|a| a.block.header.clone()).collect(),
            heads: state.heads.clone(),
            finalized: state.finalized.clone(),
            moves: std::mem::take(&mut state.queue.moves),
            games: Vec::new(),
            invalidated: resolved.invalidated,
            disputes_root: d.root(),
            unbonded: self
                .spec
                .validators
                .iter()
                .map(|v| v.address)
                .filter(|a| !d.bonds.covers(a, self.spec.dispute_stake_gwei))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            state_root: Hash::ZERO,
        };
        // the touched games' records, as many as the block's gossip limit
        // leaves room for (a pause touches every open game): the rest go
        // in the next blocks, so no block is too large to gossip
        let room = MAX_BEACON_BLOCK_BYTES.saturating_sub(bridge::Encode::encode(&block).len());
        let (games, later) = carry_games(touched, room);
        if !later.is_empty() {
            info!(target: "beacon", slot, carried = games.len(), later = later.len(), "game records carried over to the next block");
        }
        block.games = games;
        block.state_root = BeaconBlock::compute_state_root(
            &self.spec_hash,
            &block.heads,
            &block.finalized,
            &block.disputes_root,
            &block.headers_root(),
        );
        block.sign(&self.key);
        let game_logs = d
            .touched
            .iter()
            .filter_map(|id| d.logs.get(id).map(|l| (*id, serde_json::to_vec(l).expect("serializable"))))
            .collect();
        // ended games leave memory once written and carried in a block
        let later: std::collections::BTreeSet<Hash> = later.iter().map(|g| g.id).collect();
        let ended: Vec<Hash> = d
            .logs
            .iter()
            .filter(|(id, l)| !l.record.is_open() && !later.contains(*id))
            .map(|(id, _)| *id)
            .collect();
        for id in ended {
            d.logs.remove(&id);
        }
        d.touched.retain(|id| later.contains(id));
        state.queue = MoveQueue::default();
        self.db.commit(SealWrite {
            block: &block,
            accepted: &state.included,
            channels: &state.channels,
            disputes: state.referee.encode(),
            discarded: resolved.discarded,
            game_logs,
        })?;
        state.included.clear();
        state.head = Some((slot, block.hash()));
        Ok(Some(block))
    }

    /// Finalizes, shard by shard, every sealed header whose challenge window
    /// has passed by `slot`, whose parent is final and whose source headers
    /// are final; repeats while a shard's progress unblocks another's.
    fn advance_finality(&self, state: &mut State, slot: u64) -> Result<()> {
        let window = self.spec.challenge_window();
        loop {
            let mut progressed = false;
            for s in 0..self.spec.shards as usize {
                while state.finalized[s] < state.heads[s].height {
                    let next = state.finalized[s] + 1;
                    let Some(h) = self.db.shard_header(ShardId(s as u32), next)? else { break };
                    // a header under an open game is never final
                    if state.referee.disputed(ShardId(s as u32), next) {
                        break;
                    }
                    let ripe = state.referee.pauses.elapsed(h.included_in, slot) >= window;
                    let deps_final = h
                        .depends_on
                        .iter()
                        .all(|(src, height)| state.finalized.get(src.0 as usize) >= Some(height));
                    if !(ripe && deps_final) {
                        break;
                    }
                    state.finalized[s] = next;
                    for ((_, dst), by_height) in state.consumed.iter_mut() {
                        if dst.0 as usize == s {
                            by_height.remove(&next);
                        }
                    }
                    progressed = true;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// How many games are open.
    pub fn open_game_count(&self) -> usize {
        self.state.read().referee.open.len()
    }

    /// The open games against `shard`'s headers, as they stand.
    pub fn open_games(&self, shard: ShardId) -> Vec<bridge::GameRecord> {
        self.state.read().referee.open.values().filter(|g| g.shard == shard).cloned().collect()
    }

    /// Open games, and the bonds.
    pub fn games(&self) -> (Vec<crate::GameLog>, bridge::Bonds) {
        let s = self.state.read();
        let logs = s.referee.open.keys().filter_map(|id| s.referee.logs.get(id).cloned()).collect();
        (logs, s.referee.bonds.clone())
    }

    /// A game's log (open or ended).
    pub fn game(&self, id: &Hash) -> Result<Option<crate::GameLog>> {
        if let Some(l) = self.state.read().referee.logs.get(id) {
            return Ok(Some(l.clone()));
        }
        match self.db.game_log(id)? {
            None => Ok(None),
            Some(b) => {
                serde_json::from_slice(&b).map(Some).map_err(|e| Error::Corrupt(format!("game log: {e}")))
            }
        }
    }

    /// Every game's log the database holds (open and ended), up to `limit`.
    pub fn all_games(&self, limit: usize) -> Result<Vec<crate::GameLog>> {
        let mut out: Vec<crate::GameLog> = self
            .db
            .game_logs(limit)?
            .iter()
            .map(|b| serde_json::from_slice(b).map_err(|e| Error::Corrupt(format!("game log: {e}"))))
            .collect::<Result<_>>()?;
        // open games not sealed yet are newer in memory
        let s = self.state.read();
        for l in s.referee.logs.values() {
            match out.iter_mut().find(|o| o.record.id == l.record.id) {
                Some(o) => *o = l.clone(),
                None => out.push(l.clone()),
            }
        }
        out.sort_by_key(|l| (l.record.opened_slot, l.record.id));
        Ok(out)
    }

    /// Each shard's newest final height.
    pub fn finalized(&self) -> Vec<u64> {
        self.state.read().finalized.clone()
    }

    /// What the beacon knows of `shard`'s header at `height`: accepted or
    /// not, final or pending, and when it can finalize.
    pub fn header_status(&self, shard: ShardId, height: u64) -> Result<Option<HeaderStatus>> {
        let discarded = self.db.discarded(shard, height)?;
        let Some(h) = self.db.shard_header(shard, height)? else {
            let Some(last) = discarded.last().cloned() else { return Ok(None) };
            return Ok(Some(HeaderStatus {
                hash: last.hash,
                included_slot: last.included_slot,
                status: "invalid",
                earliest_final_slot: 0,
                finalized_slot: None,
                depends_on: vec![],
                open_games: vec![],
                discarded,
            }));
        };
        let finalized = self.state.read().finalized.get(shard.0 as usize).copied().unwrap_or(0);
        let earliest = self.state.read().referee.pauses.deadline(h.included_in, self.spec.challenge_window());
        // the first beacon block from the earliest slot on that lists it final
        let finalized_slot = if height <= finalized {
            let mut found = None;
            let mut from = earliest;
            while found.is_none() {
                let blocks = self.db.blocks_from(from, 64)?;
                let Some(last) = blocks.last().map(|b| b.slot) else { break };
                found = blocks
                    .iter()
                    .find(|b| b.finalized.get(shard.0 as usize).is_some_and(|f| *f >= height))
                    .map(|b| b.slot);
                from = last + 1;
            }
            found
        } else {
            None
        };
        Ok(Some(HeaderStatus {
            hash: h.header.header.hash(),
            included_slot: h.included_in,
            status: if height <= finalized { "final" } else { "pending" },
            earliest_final_slot: earliest,
            finalized_slot,
            depends_on: h.depends_on.iter().map(|(s, h)| DependsOn { shard: *s, height: *h }).collect(),
            open_games: {
                let hash = h.header.header.hash();
                self.state.read().referee.open.values().filter(|g| g.header == hash).map(|g| g.id).collect()
            },
            discarded,
        }))
    }

    /// The accepted header chain of `shard`: up to `limit` headers from `from`.
    pub fn shard_headers(&self, shard: ShardId, from: u64, limit: usize) -> Result<Vec<IncludedHeader>> {
        let mut out = Vec::new();
        let from = from.max(1);
        for height in (from..from.saturating_add(limit as u64)).take(limit) {
            match self.db.shard_header(shard, height)? {
                Some(h) => out.push(h),
                None => break,
            }
        }
        Ok(out)
    }

    /// Accepted blocks of `shard` (sealed or not) from height `from`, up to
    /// `limit` blocks or about `max_bytes`: any validator can fetch any
    /// accepted body from the beacon, whoever proposed it.
    pub fn shard_blocks(
        &self,
        shard: ShardId,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<ShardBlock>> {
        let mut out = Vec::new();
        let mut size = 0;
        let from = from.max(1);
        for height in (from..from.saturating_add(limit as u64)).take(limit) {
            let block = match self.db.shard_block(shard, height)? {
                Some(b) => Some(b),
                None => self
                    .state
                    .read()
                    .included
                    .iter()
                    .map(|a| &a.block)
                    .find(|b| b.header.header.shard == shard && b.header.header.height == height)
                    .cloned(),
            };
            let Some(block) = block else { break };
            size += block.body_bytes() + 400;
            out.push(block);
            if size > max_bytes {
                break;
            }
        }
        Ok(out)
    }
}

/// The largest beacon block: what its gossip topic carries
/// (`net::Topic::BeaconBlocks`), less room for the signature and list
/// prefixes.
pub const MAX_BEACON_BLOCK_BYTES: usize = (2 << 20) - (4 << 10);

/// The game records a block of `room` bytes to spare carries: ended games
/// first (agents stop playing them; their logs leave memory once carried),
/// then the others, each in id order; what does not fit waits for the
/// next block.
pub(crate) fn carry_games(
    mut touched: Vec<bridge::GameRecord>,
    room: usize,
) -> (Vec<bridge::GameRecord>, Vec<bridge::GameRecord>) {
    use bridge::Encode;
    touched.sort_by_key(|g| (g.is_open(), g.id));
    let (mut carried, mut later, mut used) = (Vec::new(), Vec::new(), 0usize);
    for g in touched {
        let size = g.encode().len();
        if used + size <= room {
            used += size;
            carried.push(g);
        } else {
            later.push(g);
        }
    }
    (carried, later)
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
