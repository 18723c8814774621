//! The dispute agent a validator runs (and a standalone challenger, over a
//! follower node): as **challenger** it opens a game against every header
//! the beacon accepted that this node's re-execution refuted (the mismatch
//! evidence import kept), picks the first sub-range whose end its own trace
//! disagrees with, and submits the single step; as **defender** it answers
//! games against the headers its key proposed, posting commitments
//! computed lazily by re-executing the block from its pre-state.
//!
//! The agent learns everything from signed beacon blocks (the games they
//! carry, as they stand after each slot) and sends moves to the beacon by
//! request; a move not reflected after a few slots is sent again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alloy_primitives::B256;
use bridge::game::{Phase, Side};
use bridge::solver::{Honest, Plan, Seat, Solver, TraceView};
use bridge::{
    Action, Address, BeaconBlock, ChainSpec, Encode, GameRecord, Hash, MerkleTree, ShardBlock, ShardId,
    SignedMove, SyncRequest, TraceCommitment, ValidatorKey,
};
use net::{Network, Topic};
use prover::game::{Step, UndecodableStep};
use prover::{Execution, Item, Mode};

use tracing::{info, warn};

use crate::byzantine::Byzantine;
use crate::{Error, Result, ShardNode};

/// Slots before an unanswered move is sent again.
const RESEND_SLOTS: u64 = 3;
/// Re-executed blocks kept (a game needs its block's trace at every move).
const KEPT_TRACES: usize = 8;

/// How the agent plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentMode {
    /// Open games against refuted headers.
    pub challenge: bool,
    /// Answer games against this key's headers.
    pub defend: bool,
    /// A byzantine behaviour instead of the honest solver's (the
    /// testnet's fault injection; `byzantine.rs`).
    pub byzantine: Option<Byzantine>,
    /// Most bytes a whole-item step (level 1) may have to be shown: a
    /// larger one is decided in the item's own trace (level 2).
    /// `bridge::MAX_STEP_BYTES` (what a move carries) unless a test lowers
    /// it to play level 2 with items that would fit.
    pub level_one_limit: usize,
}

impl Default for AgentMode {
    fn default() -> Self {
        AgentMode { challenge: true, defend: true, byzantine: None, level_one_limit: bridge::MAX_STEP_BYTES }
    }
}

/// A block re-executed from its pre-state: its items, execution and
/// trace `c_0 … c_n` (hashes).
struct Trace {
    block: ShardBlock,
    run: Reexecution,
}

/// One validator's (or challenger's) dispute agent for one shard.
pub struct DisputeAgent {
    key: ValidatorKey,
    me: Address,
    spec: ChainSpec,
    spec_hash: Hash,
    shard: ShardId,
    mode: AgentMode,
    /// Headers this agent's game against is known to exist (the beacon
    /// block showed it): an `Open` is sent again until then.
    opened: BTreeSet<Hash>,
    /// Open games this agent plays, as the last beacon block showed them.
    games: BTreeMap<Hash, GameRecord>,
    /// Last slot each move was sent: (the game position it answers, what).
    sent: HashMap<(Hash, &'static str), u64>,
    traces: Lru<Trace>,
    /// Whether an item's level-2 trace is evidence about it (see
    /// [`ItemView`]), by header and item: decided once per item, not per
    /// game position.
    item_agrees: Lru<bool>,
    /// Headers whose trace is a fabricated belief (griefing).
    griefing: BTreeSet<Hash>,
}

impl DisputeAgent {
    /// An agent for `shard` signing with `key`.
    pub fn new(key: ValidatorKey, spec: &ChainSpec, shard: ShardId, mode: AgentMode) -> Self {
        DisputeAgent {
            me: key.address(),
            key,
            spec_hash: spec.hash(),
            spec: spec.clone(),
            shard,
            mode,
            opened: BTreeSet::new(),
            games: BTreeMap::new(),
            sent: HashMap::new(),
            traces: Lru::new(KEPT_TRACES),
            item_agrees: Lru::new(4 * KEPT_TRACES),
            griefing: BTreeSet::new(),
        }
    }

    /// The address it plays as.
    pub fn address(&self) -> Address {
        self.me
    }

    /// Changes how it plays.
    pub fn set_mode(&mut self, mode: AgentMode) {
        self.mode = mode;
    }

    /// Games it is playing.
    pub fn games(&self) -> Vec<GameRecord> {
        self.games.values().cloned().collect()
    }

    /// Games the beacon says are open on this shard (asked on start and
    /// now and then): those this agent plays that it missed are followed.
    pub fn on_open_games(&mut self, games: Vec<GameRecord>) {
        let validator_here = self.spec.validator(&self.me).is_some_and(|v| v.shard == self.shard);
        for g in games.into_iter().filter(|g| g.shard == self.shard && g.is_open()) {
            if g.challenger == self.me {
                self.opened.insert(g.header);
            }
            if g.side_of(&self.me).is_some() || validator_here {
                // a newer record from a beacon block wins over an older answer
                let newer = self.games.get(&g.id).is_some_and(|x| x.moves > g.moves);
                if !newer {
                    self.games.insert(g.id, g);
                }
            }
        }
    }

    /// Reacts to a (signature-checked) beacon block: follows its games,
    /// opens games against refuted headers the beacon accepted, and plays
    /// every move that is this agent's.
    pub fn on_beacon_block<N: Network>(
        &mut self,
        block: &BeaconBlock,
        node: &ShardNode,
        net: &N,
        accepted: &BTreeMap<u64, Hash>,
    ) {
        let validator_here = self.spec.validator(&self.me).is_some_and(|v| v.shard == self.shard);
        for g in &block.games {
            if g.challenger == self.me {
                self.opened.insert(g.header);
            }
            // its own games, and (a validator of the shard) every game on the
            // shard: it stands in for a proposer that stays silent
            if g.shard != self.shard || (g.side_of(&self.me).is_none() && !validator_here) {
                continue;
            }
            if g.is_open() {
                self.games.insert(g.id, g.clone());
            } else {
                info!(target: "shard", game = %g.id, ending = ?g.ended, "dispute game ended");
                self.games.remove(&g.id);
                self.traces.remove(&g.header);
            }
        }
        for inv in block.invalidated.iter().filter(|i| i.shard == self.shard) {
            self.games.retain(|_, g| g.height < inv.height);
            self.traces.retain(|t| t.block.header.header.height < inv.height);
        }
        if self.mode.challenge {
            // sent again (every few slots) until the game shows in a beacon
            // block: a refused or lost `Open` must not let a lie through.
            // Until the header is final, whatever the slot: the beacon's
            // downtime extends windows, and it refuses a game too late.
            let final_height = block.finalized.get(self.shard.0 as usize).copied().unwrap_or(0);
            for m in node.mismatches() {
                if m.shard == self.shard
                    && accepted.get(&m.height) == Some(&m.block_hash)
                    && !self.opened.contains(&m.block_hash)
                    && m.height > final_height
                {
                    info!(target: "shard", height = m.height, header = %m.block_hash, field = %m.field, "opening a dispute game");
                    self.open(net, m.height, m.block_hash, block.slot);
                }
            }
        }
        if let Some(b) = self.mode.byzantine {
            let shard = self.shard;
            for h in block.headers.iter().filter(|h| h.header.shard == shard) {
                let hash = h.header.hash();
                if b.disputes(&hash, &self.me) && !self.opened.contains(&hash) {
                    self.griefing.insert(hash);
                    self.open(net, h.header.height, hash, block.slot);
                }
            }
        }
        let slot = block.slot;
        let ids: Vec<Hash> = self.games.keys().copied().collect();
        for id in ids {
            if let Err(e) = self.play(id, node, net, slot) {
                warn!(target: "shard", game = %id, error = %e, "could not play a dispute move");
            }
        }
    }

    fn open<N: Network>(&mut self, net: &N, height: u64, header: Hash, slot: u64) {
        let action = Action::Open { shard: self.shard, height, header, item: None };
        self.send(net, action, (header, "open"), slot);
    }

    fn recently_sent(&self, what: &(Hash, &'static str), slot: u64) -> bool {
        self.sent.get(what).is_some_and(|at| at + RESEND_SLOTS > slot)
    }

    fn send<N: Network>(&mut self, net: &N, action: Action, what: (Hash, &'static str), slot: u64) {
        if self.recently_sent(&what, slot) {
            return;
        }
        self.sent.insert(what, slot);
        while self.sent.len() > 4096 {
            let oldest = self.sent.iter().min_by_key(|(_, s)| **s).map(|(k, _)| *k).expect("non-empty");
            self.sent.remove(&oldest);
        }
        let req = SyncRequest::SubmitMove(SignedMove::sign(action, &self.spec_hash, &self.key)).encode();
        for p in net.topic_peers(Topic::Submissions) {
            net.request(p, req.clone());
        }
    }

    /// Plays game `id` at the last sealed `slot`: the solver decides (the
    /// honest one, or the byzantine mode's), the agent builds, signs and
    /// sends what it decided.
    fn play<N: Network>(&mut self, id: Hash, node: &ShardNode, net: &N, slot: u64) -> Result<()> {
        let g = self.games[&id].clone();
        let side = g.side_of(&self.me);
        // a stand-in only for a header this node imported itself (it
        // re-executed to it), and only while the defender is to move
        let shard_mate = side.is_none()
            && self.spec.validator(&self.me).is_some_and(|v| v.shard == self.shard)
            && g.game.to_move() == Some(Side::Defender)
            && g.defender_overdue(slot)
            && node.block(g.height)?.is_some_and(|b| b.header.header.hash() == g.header);
        if side.is_none() && !shard_mate {
            return Ok(());
        }
        if side != Some(Side::Challenger) && !self.mode.defend {
            return Ok(());
        }
        // every move names the position it answers, so one sent lately for
        // this position is all there is to do: nothing to re-execute
        let at = g.position();
        let label = match g.game.phase {
            Phase::Claim => "claim",
            Phase::Bisect => "bisect",
            Phase::Pick { .. } => "pick",
            Phase::Step => "step",
            Phase::Done(_) => return Ok(()),
        };
        if self.recently_sent(&(at, label), slot) {
            return Ok(());
        }
        let seat = Seat { me: self.me, slot, shard_mate };
        let griefed = self.griefing.contains(&g.header);
        let byzantine = self.mode.byzantine;
        // the pinned item's whole-item step, once the game reached it: if
        // it does not fit in a move, the item's own trace (level 2) decides
        let item_step = match (&g.game.descent, &g.game.phase) {
            (Some(d), _) => Some(self.step_at(&g, node, d.lo)?),
            (None, Phase::Step) => Some(self.step_at(&g, node, g.game.lo)?),
            _ => None,
        };
        let mut fits = item_step.as_ref().is_none_or(|s| s.len() <= self.mode.level_one_limit);
        // level 2 only where the item's trace ends on what level 1's
        // execution gives and every step of it is one the referee takes
        // (a transaction, a call message): otherwise level 1's step is
        // the only evidence there is
        let item_view = match (&g.game.descent, &g.game.phase) {
            (_, _) if fits => None,
            (Some(d), _) => self.item_view(&g, node, d.lo).ok().flatten(),
            (None, Phase::Step) => self.item_view(&g, node, g.game.lo).ok().flatten(),
            _ => None,
        };
        if !fits && item_view.is_none() {
            fits = true;
        }
        let item_view = item_view.filter(|_| g.game.descent.is_some());
        let plans = {
            let execution = ExecutionView { run: &self.trace(&g, node)?.run, fits };
            let view: &dyn TraceView = match &item_view {
                Some(v) => v,
                None => &execution,
            };
            match byzantine {
                None => Honest.next_actions(&g, &seat, view),
                Some(b) => b.next_actions(&g, &seat, view, griefed),
            }
        };
        for plan in plans {
            let what = (at, plan.label());
            let action = match plan {
                Plan::Claim => match self.claim(&g, node)? {
                    Some((commitment, receipts, proof)) => {
                        Action::Claim { game: id, at, commitment, receipts, proof }
                    }
                    None => continue,
                },
                Plan::Bisect(commitments) => Action::Bisect { game: id, at, commitments },
                Plan::Pick(index) => Action::Pick { game: id, at, index },
                Plan::Step if g.game.descent.is_some() => {
                    Action::Step { game: id, at, step: self.machine_step(&g, node)? }
                }
                Plan::Step | Plan::ItemStep => match item_step.clone() {
                    Some(step) => Action::Step { game: id, at, step },
                    None => continue,
                },
                Plan::Descend => {
                    let (item, proof, last) = self.descent(&g, node)?;
                    Action::Descend { game: id, at, item, proof, last }
                }
            };
            self.send(net, action, what, slot);
        }
        Ok(())
    }

    /// A receipt game's claim of `c_j` from this node's execution, bound to
    /// the header's receipts (`None`: its receipts are not this execution's).
    fn claim(
        &mut self,
        g: &GameRecord,
        node: &ShardNode,
    ) -> Result<Option<(TraceCommitment, bridge::Frontier, bridge::PrefixProof)>> {
        let Some(j) = g.receipt_item else { return Ok(None) };
        let t = self.trace(g, node)?;
        let leaves: Vec<Hash> = t.run.exec.outcomes.iter().map(|o| o.receipt_hash).collect();
        let tree = MerkleTree::new(&leaves);
        let j = j as usize;
        let (Some(proof), Some(commitment)) = (tree.prefix_proof(j), t.run.full.get(j - 1).copied()) else {
            return Ok(None);
        };
        if tree.root() != t.block.header.header.receipts_root {
            warn!(target: "shard", game = %g.id, "cannot back this header's receipts with an execution");
            return Ok(None);
        }
        Ok(Some((commitment, bridge::Frontier::of(&leaves[..j]), proof)))
    }

    /// The encoded whole-item step of item `index` (level 1's).
    fn step_at(&mut self, g: &GameRecord, node: &ShardNode, index: u64) -> Result<Vec<u8>> {
        let t = self.trace(g, node)?;
        let proof = MerkleTree::new(&t.block.item_hashes())
            .proof(index as usize)
            .ok_or_else(|| Error::Corrupt(format!("item {index} outside the block")))?;
        if let (Some(r), Some(raw)) = (&t.run.invalid, &t.run.undecodable)
            && r.index as u64 == index
        {
            return Ok(UndecodableStep { index, raw: raw.clone(), proof }.encode());
        }
        let base = g.height - 1;
        let witness = match &t.run.invalid {
            // the item invalid in its position: its witness shows it
            Some(r) if r.index as u64 == index => {
                prover::produce_invalid_witness(node.state(), base, &t.run.exec, r)?
            }
            _ => {
                let hashes = node.block_hashes_below(g.height)?;
                prover::produce_witness(node.state(), base, &t.run.exec, index as usize, &hashes)?
            }
        };
        Ok(Step { index, item: t.run.items[index as usize].clone(), proof, witness }.encode())
    }

    /// The state before item `index` of `g`'s block, the trace before it,
    /// and the item.
    fn before_item(
        &mut self,
        g: &GameRecord,
        node: &ShardNode,
        index: u64,
    ) -> Result<(prover::ViewReader, bridge::TraceState, Item, prover::BlockParams)> {
        let hashes = node.block_hashes_below(g.height)?;
        let spec = self.spec.clone();
        let t = self.trace(g, node)?;
        let i = usize::try_from(index).map_err(|_| Error::Corrupt("item index".into()))?;
        let Some(tx) = t.run.items.get(i).cloned() else {
            return Err(Error::Corrupt(format!("item {index} of game {} is not in its block", g.id)));
        };
        let before: Vec<_> = t.run.exec.outcomes[..i.min(t.run.exec.outcomes.len())]
            .iter()
            .map(|o| o.changes.clone())
            .collect();
        let pre =
            if i == 0 { bridge::TraceState::start() } else { t.run.exec.trace_states().swap_remove(i - 1) };
        let params = prover::game::block_params(&spec, &t.block.header.header);
        let view = node.state().view_after(g.height - 1, &before)?;
        Ok((prover::ViewReader::new(view, hashes), pre, tx, params))
    }

    /// The pinned item's level-2 trace at the states the game's position
    /// needs: its ends and this round's points.
    /// `None` when the item's trace is no evidence about it: it does not
    /// end on this node's `c_{lo+1}` or has a step the referee does not
    /// take (an authorization list's prologue, a refund message).
    fn item_view(&mut self, g: &GameRecord, node: &ShardNode, index: u64) -> Result<Option<ItemView>> {
        let key = bridge::hash_domain(b"optishard.agent.item", &[&g.header.0, &index.to_be_bytes()]);
        let known = self.item_agrees.get(&key).copied();
        if known == Some(false) {
            return Ok(None);
        }
        let (reader, pre, tx, params) = self.before_item(g, node, index)?;
        let mut at = if g.game.descent.is_some() { g.game.points() } else { vec![] };
        if g.game.descent.is_some() {
            at.extend([g.game.lo, g.game.hi]);
        }
        // every step it may have to show must be one the referee takes
        let covered =
            known.is_some() || prover::machine::item_coverage(reader.clone(), &params, &tx)?.is_none();
        let t = prover::machine::item_trace(reader, &params, &tx, &pre, &at)?;
        at.sort_unstable();
        at.dedup();
        let run = &self.trace(g, node)?.run;
        let i = index as usize;
        let level1: BTreeMap<u64, Hash> =
            [i, i + 1].iter().filter_map(|j| Some((*j as u64, *run.commitments.get(*j)?))).collect();
        let agrees = covered && level1.get(&(index + 1)) == Some(&t.end.hash());
        self.item_agrees.insert(key, agrees);
        Ok(agrees.then(|| ItemView { states: at.into_iter().zip(t.states).collect(), level1 }))
    }

    /// The descent into the pinned item: its leaf, proof and trace length.
    fn descent(&mut self, g: &GameRecord, node: &ShardNode) -> Result<(Hash, bridge::MerkleProof, u64)> {
        let index = g.game.lo;
        let (reader, pre, tx, params) = self.before_item(g, node, index)?;
        let last = prover::machine::item_trace(reader, &params, &tx, &pre, &[])?.last;
        let t = self.trace(g, node)?;
        let proof = MerkleTree::new(&t.block.item_hashes())
            .proof(index as usize)
            .ok_or_else(|| Error::Corrupt(format!("item {index} outside the block")))?;
        Ok((tx.item_hash(), proof, last))
    }

    /// The encoded level-2 step at the descended game's position.
    fn machine_step(&mut self, g: &GameRecord, node: &ShardNode) -> Result<Vec<u8>> {
        let d = g.game.descent.clone().ok_or_else(|| Error::Corrupt("a level-2 step of level 1".into()))?;
        let (reader, pre, tx, params) = self.before_item(g, node, d.lo)?;
        let root = prover::machine::ProvableState::root(&reader)?;
        let step = prover::machine::item_step(reader, &params, &tx, &pre, g.game.lo)?;
        let shown = prover::game::MachineStep { index: g.game.lo, pre: pre.commitment(root), item: tx, step };
        Ok(shown.encode())
    }

    /// The block of `g` re-executed from its pre-state (cached).
    fn trace(&mut self, g: &GameRecord, node: &ShardNode) -> Result<&Trace> {
        if !self.traces.contains(&g.header) {
            let block = match node.block(g.height)? {
                Some(b) if b.header.header.hash() == g.header => b,
                _ => match node.mismatch_evidence(&g.header)? {
                    Some(ev) => ev.block,
                    None => {
                        return Err(Error::Corrupt(format!("block {} of game {} not held", g.height, g.id)));
                    }
                },
            };
            let run = reexecute(node, &self.spec, &block)?;
            self.traces.insert(g.header, Trace { block, run });
        }
        Ok(self.traces.get(&g.header).expect("just inserted or held"))
    }
}

/// A node's re-execution as the solver sees it: `c_0 … c_k`, and past an
/// invalid item no commitment is right (each is disputed); whether the
/// pinned item's whole-item step fits in a move.
struct ExecutionView<'a> {
    run: &'a Reexecution,
    fits: bool,
}

impl TraceView for ExecutionView<'_> {
    fn at(&self, i: u64) -> Option<Hash> {
        match self.run.commitments.get(usize::try_from(i).ok()?) {
            Some(c) => Some(*c),
            None if self.run.invalid.is_some() => {
                Some(bridge::hash_domain(b"optishard.no_valid_trace", &[&i.to_be_bytes()]))
            }
            None => None,
        }
    }

    fn complete(&self) -> bool {
        self.run.invalid.is_none()
    }

    fn item_fits(&self, _: u64) -> bool {
        self.fits
    }
}

/// The pinned item's level-2 trace `T_j` at the states a game position
/// needs (an item too large for level 1's step), with the item's two ends
/// by this node's block execution.
struct ItemView {
    states: BTreeMap<u64, Hash>,
    /// `c_lo` and `c_{lo+1}` of the block's trace.
    level1: BTreeMap<u64, Hash>,
}

impl TraceView for ItemView {
    fn at(&self, i: u64) -> Option<Hash> {
        self.states.get(&i).copied()
    }

    fn complete(&self) -> bool {
        true
    }

    fn item_fits(&self, _: u64) -> bool {
        false
    }

    fn level(&self) -> u8 {
        2
    }

    fn level_one_at(&self, i: u64) -> Option<Hash> {
        self.level1.get(&i).copied()
    }
}

/// A bounded cache that evicts the least recently used entry (the agent's
/// re-executed traces: evicting by key instead made one header's trace be
/// recomputed at every move while others' sat unused).
struct Lru<T> {
    cap: usize,
    clock: u64,
    entries: BTreeMap<Hash, (T, u64)>,
}

impl<T> Lru<T> {
    fn new(cap: usize) -> Self {
        Lru { cap: cap.max(1), clock: 0, entries: BTreeMap::new() }
    }

    fn contains(&self, key: &Hash) -> bool {
        self.entries.contains_key(key)
    }

    /// The entry, marked as just used.
    fn get(&mut self, key: &Hash) -> Option<&T> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = clock;
            &*v
        })
    }

    fn insert(&mut self, key: Hash, value: T) {
        while self.entries.len() >= self.cap && !self.entries.contains_key(&key) {
            let oldest = self.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k);
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
        self.clock += 1;
        self.entries.insert(key, (value, self.clock));
    }

    fn remove(&mut self, key: &Hash) {
        self.entries.remove(key);
    }

    fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.entries.retain(|_, (v, _)| keep(v));
    }
}

/// A block re-executed from its pre-state.
pub struct Reexecution {
    /// Every item of the block, in order.
    pub items: Vec<Item>,
    /// The execution of the block, or of its valid prefix when an item is
    /// invalid in its position.
    pub exec: Execution,
    /// The trace `c_0 … c_k` as hashes (`k = n`, or the invalid item's index).
    pub commitments: Vec<Hash>,
    /// `c_1 … c_k` in full.
    pub full: Vec<TraceCommitment>,
    /// The first item invalid in its position, with what it read.
    pub invalid: Option<prover::Rejected>,
    /// When that item does not even decode: its raw bytes.
    pub undecodable: Option<Vec<u8>>,
}

/// Re-executes `block` from its pre-state (the node's state at the
/// parent's height): the trace `c_0 … c_n`, or, when an item is invalid in
/// its position, the trace of the items before it and that item.
pub fn reexecute(node: &ShardNode, spec: &ChainSpec, block: &ShardBlock) -> Result<Reexecution> {
    let h = &block.header.header;
    let base = h.height.checked_sub(1).ok_or_else(|| Error::Corrupt("the genesis has no trace".into()))?;
    let raws: Vec<alloy_primitives::Bytes> = block.txs.iter().map(|t| t.clone().into()).collect();
    let mut items: Vec<Item> = block.inbox.iter().map(|e| Item::Message(e.message.clone())).collect();
    // the items up to the first that does not decode (no valid block holds it)
    let mut undecodable = None;
    for (i, r) in prover::recover_all(&raws).into_iter().enumerate() {
        match r {
            Ok(tx) => items.push(Item::Tx(tx)),
            Err(e) => {
                undecodable = Some((block.inbox.len() + i, block.txs[i].clone(), e.to_string()));
                break;
            }
        }
    }
    let params = prover::game::block_params(spec, h);
    let hashes: BTreeMap<u64, B256> = node.block_hashes_below(h.height)?;
    let run = |mode| -> Result<Execution> {
        let reader = node.state().reader(base)?.with_block_hashes(hashes.clone());
        Ok(prover::execute_items(reader, &params, items.clone(), mode)?)
    };
    let (exec, invalid) = match run(Mode::Verify) {
        Ok(exec) => (exec, None),
        // keep the valid prefix and the first invalid item
        Err(Error::State(prover::Error::InvalidTransaction { .. })) => {
            let mut exec = run(Mode::Build)?;
            let first = exec.rejected.first().cloned();
            if let Some(r) = &first {
                exec.outcomes.truncate(r.index);
                exec.items.truncate(r.index);
            }
            (exec, first)
        }
        Err(e) => return Err(e),
    };
    let (invalid, undecodable) = match (invalid, undecodable) {
        (Some(r), _) => (Some(r), None),
        (None, Some((index, raw, reason))) => {
            let r = prover::Rejected {
                index,
                hash: B256::ZERO,
                reason,
                block_full: false,
                reads: Default::default(),
            };
            (Some(r), Some(raw))
        }
        (None, None) => (None, None),
    };
    let full = exec.trace(node.state(), base)?;
    let mut commitments = vec![TraceCommitment::start(h.pre_state_root).hash()];
    commitments.extend(full.iter().map(TraceCommitment::hash));
    Ok(Reexecution { items, exec, commitments, full, invalid, undecodable })
}

#[cfg(test)]
mod lru_tests {
    use super::*;

    /// The entry used most recently stays; the one unused longest goes,
    /// whatever the keys' order (the old cache dropped the smallest key).
    #[test]
    fn the_least_recently_used_trace_is_evicted() {
        let mut c = Lru::new(2);
        let (low, mid, high) = (Hash([1; 32]), Hash([5; 32]), Hash([9; 32]));
        c.insert(low, "low");
        c.insert(high, "high");
        assert_eq!(c.get(&low), Some(&"low"), "low is used again");
        c.insert(mid, "mid");
        assert!(c.contains(&low), "the recently used smallest key stays");
        assert!(!c.contains(&high), "the least recently used goes");
        assert!(c.contains(&mid));
        c.retain(|v| *v != "mid");
        assert!(!c.contains(&mid));
    }
}
