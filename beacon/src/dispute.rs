//! The beacon as referee (DESIGN.md, Disputes): bonded parties open games
//! against accepted headers inside their challenge window, play k-section
//! moves on chess clocks, and the single step is re-executed here with
//! `prover`'s stateless executor. A lost game slashes the loser's stake
//! (a share to the winner, the rest to the treasury); a header proven
//! invalid is discarded with its descendants and every destination header
//! that consumed its messages (a cascade), and its shard continues from
//! the last valid header.

use std::collections::{BTreeMap, BTreeSet};

use bridge::game::{Game, GameParams, Outcome, Side, StepVerdict};
use bridge::{
    Action, Address, Bonds, Decode, DecodeError, Encode, GameRecord, Hash, Pauses, ShardId, SignedMove,
    TraceCommitment, decode_list, encode_list, game_id,
};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::Result;
use crate::chain::{BeaconChain, State};

pub use bridge::MAX_OPEN_GAMES;
/// Most bytes of moves one beacon block carries (it is gossiped whole,
/// within its topic's 2 MiB): two full steps and change.
pub const MAX_MOVE_BYTES_PER_BLOCK: usize = (2 * bridge::MAX_STEP_BYTES) + (64 << 10);
/// Most bytes of moves one party may have in one beacon block (one step
/// and a few small moves): no party can fill a block and starve the
/// others' games of their turn.
pub const MAX_MOVE_BYTES_PER_PARTY: usize = bridge::MAX_STEP_BYTES + (16 << 10);
/// Most moves one party may have in one beacon block.
pub const MAX_MOVES_PER_PARTY: u32 = 16;
/// Steps one party may have refused as proving nothing, per game (each
/// costs the referee a re-execution): past it, that party's steps in that
/// game are not looked at.
pub const MAX_REJECTED_STEPS: u32 = 4;

/// Why the beacon refused a move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum MoveRejection {
    /// The signature does not recover.
    #[error("bad signature")]
    BadSignature,
    /// The signer has no bond (or not enough free bond to stake).
    #[error("{who} has {free} gwei free, the game stakes {stake}")]
    NotBonded {
        /// The signer.
        who: Address,
        /// Its free bond.
        free: u64,
        /// The stake.
        stake: u64,
    },
    /// No accepted header with that hash at that place (never accepted,
    /// or already discarded).
    #[error("no accepted header {header} at {shard}/{height}")]
    UnknownHeader {
        /// Shard.
        shard: ShardId,
        /// Height.
        height: u64,
        /// The named hash.
        header: Hash,
    },
    /// The header's challenge window has passed (or it is final).
    #[error("the challenge window of {shard}/{height} closed at slot {closed}")]
    WindowClosed {
        /// Shard.
        shard: ShardId,
        /// Height.
        height: u64,
        /// The last slot a game could open.
        closed: u64,
    },
    /// This party already disputes this header.
    #[error("game already exists")]
    Duplicate,
    /// Too many games open (on this header or overall).
    #[error("too many open games")]
    TooManyGames,
    /// No such open game.
    #[error("no open game {0}")]
    UnknownGame(Hash),
    /// The signer is not the party whose move it is.
    #[error("{0}")]
    OutOfTurn(String),
    /// The step proves nothing (bad proof, witness, or item): no verdict.
    #[error("step rejected: {0}")]
    BadStep(String),
    /// The move answers another state of its game than the current one
    /// (an earlier round, an earlier run, a replay): valid once only.
    #[error("the move answers game position {got}, the game is at {want}")]
    StalePosition {
        /// The position the move names.
        got: Hash,
        /// The game's position now.
        want: Hash,
    },
    /// A withdrawal the bond does not cover.
    #[error("{0}")]
    BadWithdrawal(String),
    /// This slot's block is full of moves; send it again next slot.
    #[error("the beacon block is full, retry next slot")]
    Full,
}

impl MoveRejection {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            MoveRejection::BadSignature => "bad_signature",
            MoveRejection::NotBonded { .. } => "not_bonded",
            MoveRejection::UnknownHeader { .. } => "unknown_header",
            MoveRejection::WindowClosed { .. } => "window_closed",
            MoveRejection::Duplicate => "duplicate",
            MoveRejection::TooManyGames => "too_many_games",
            MoveRejection::UnknownGame(_) => "unknown_game",
            MoveRejection::OutOfTurn(_) => "out_of_turn",
            MoveRejection::BadStep(_) => "bad_step",
            MoveRejection::StalePosition { .. } => "stale_position",
            MoveRejection::BadWithdrawal(_) => "bad_withdrawal",
            MoveRejection::Full => "full",
        }
    }
}

/// One move as a game's log shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveLog {
    /// The slot it was applied in.
    pub slot: u64,
    /// Who sent it.
    pub party: Address,
    /// `open`, `bisect`, `pick` or `step`.
    pub action: String,
    /// The game's round when it was applied.
    pub round: u32,
    /// Its encoded size.
    pub bytes: usize,
}

/// What the single step cost the referee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepStats {
    /// The item's position (the step from `c_index` to `c_{index+1}`).
    pub index: u64,
    /// Encoded step (item, proof, witness).
    pub step_bytes: usize,
    /// The witness alone.
    pub witness_bytes: usize,
    /// Wall time of the verification, microseconds.
    pub verify_micros: u64,
    /// `upheld` or `refuted`.
    pub verdict: String,
    /// Who submitted it.
    pub submitted_by: Address,
}

/// A bond movement a game caused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BondMove {
    /// Who lost the stake.
    pub from: Address,
    /// Who got the reward (`None`: only the treasury).
    pub to: Option<Address>,
    /// Paid to the winner.
    pub reward_gwei: u64,
    /// Paid to the treasury.
    pub treasury_gwei: u64,
}

/// Everything the RPC shows of one game.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GameLog {
    /// The game as it stands.
    pub record: GameRecord,
    /// Every move applied.
    pub moves: Vec<MoveLog>,
    /// The verified step, if one was.
    pub step: Option<StepStats>,
    /// Steps refused as proving nothing.
    pub rejected_steps: u32,
    /// Stakes slashed when it ended.
    pub slashed: Vec<BondMove>,
}

/// The dispute part of the beacon state.
#[derive(Default)]
pub(crate) struct Disputes {
    /// Open games by id.
    pub open: BTreeMap<Hash, GameRecord>,
    pub bonds: Bonds,
    /// Chain hash of every invalidation so far.
    pub invalid_chain: Hash,
    /// Stretches of slots the beacon sealed nothing in, which windows do
    /// not count ([`bridge::Pauses`]).
    pub pauses: Pauses,
    /// The newest slot the beacon has seen (sealed, or moved in).
    pub seen_slot: u64,
    /// Logs of open games and of games ended since the last seal.
    pub logs: BTreeMap<Hash, GameLog>,
    /// Games changed since the last seal.
    pub touched: BTreeSet<Hash>,
    /// Moves applied since the last seal, and their bytes.
    pub moves: Vec<SignedMove>,
    pub move_bytes: usize,
    /// Moves and bytes each party has in the block being built.
    pub per_party: std::collections::HashMap<Address, (u32, usize)>,
    /// Steps refused per (game, party) (not persisted: a restart forgives).
    pub rejected_steps: std::collections::HashMap<(Hash, Address), u32>,
}

impl Disputes {
    /// The genesis state: every bonded party's bond.
    pub(crate) fn genesis(spec: &bridge::ChainSpec) -> Self {
        Disputes { bonds: Bonds::genesis(spec.bonded()), ..Default::default() }
    }

    /// The root the beacon state commits to.
    pub(crate) fn root(&self) -> Hash {
        bridge::disputes_root(self.open.values(), &self.bonds, &self.invalid_chain, &self.pauses)
    }

    /// The persisted form: open games, bonds, the invalidation chain (the
    /// games' logs are stored by id beside it, written by the same batch).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_list(&self.open.values().cloned().collect::<Vec<_>>(), &mut out);
        self.bonds.encode_to(&mut out);
        self.invalid_chain.encode_to(&mut out);
        self.pauses.encode_to(&mut out);
        // each party's refused steps per open game: a beacon restart must
        // not give it MAX_REJECTED_STEPS more re-executions
        let mut refused: Vec<(&(Hash, Address), &u32)> = self.rejected_steps.iter().collect();
        refused.sort();
        (refused.len() as u32).encode_to(&mut out);
        for ((game, party), n) in refused {
            game.encode_to(&mut out);
            party.encode_to(&mut out);
            n.encode_to(&mut out);
        }
        out
    }

    /// Reads the persisted form back; the open games' logs come from
    /// `log_of` (the database).
    pub(crate) fn decode(
        mut input: &[u8],
        log_of: impl Fn(&Hash) -> Option<GameLog>,
    ) -> std::result::Result<Self, DecodeError> {
        let input = &mut input;
        let open: Vec<GameRecord> = decode_list(input)?;
        let bonds = Bonds::decode(input)?;
        let invalid_chain = Hash::decode(input)?;
        // absent in a state written before pauses were recorded
        let pauses = if input.is_empty() { Pauses::default() } else { Pauses::decode(input)? };
        let mut rejected_steps = std::collections::HashMap::new();
        if !input.is_empty() {
            let n = u32::decode(input)?;
            // 56 bytes an entry: a count past what is left is a lie
            if n as usize > input.len() / 56 {
                return Err(DecodeError::Invalid("refused-step entries past the input"));
            }
            for _ in 0..n {
                let key = (Hash::decode(input)?, Address::decode(input)?);
                rejected_steps.insert(key, u32::decode(input)?);
            }
        }
        if !input.is_empty() {
            return Err(DecodeError::TrailingBytes(input.len()));
        }
        let logs = open.iter().filter_map(|g| log_of(&g.id)).map(|l| (l.record.id, l)).collect();
        Ok(Disputes {
            open: open.into_iter().map(|g| (g.id, g)).collect(),
            bonds,
            invalid_chain,
            pauses,
            logs,
            rejected_steps,
            ..Default::default()
        })
    }

    /// The log of game `g`, created if new, its record brought up to date.
    pub(crate) fn log(&mut self, g: &GameRecord) -> &mut GameLog {
        let log = self.logs.entry(g.id).or_insert_with(|| GameLog {
            record: g.clone(),
            moves: vec![],
            step: None,
            rejected_steps: 0,
            slashed: vec![],
        });
        log.record = g.clone();
        log
    }

    /// Whether a game is open against `shard`'s header at `height`.
    pub(crate) fn disputed(&self, shard: ShardId, height: u64) -> bool {
        self.open.values().any(|g| g.shard == shard && g.height == height)
    }
}

impl BeaconChain {
    /// Judges a dispute move at beacon slot `current`; an accepted move is
    /// applied at once and goes into the next beacon block.
    pub fn submit_move(&self, mv: SignedMove, current: u64) -> Result<(), MoveRejection> {
        // moves built from JSON skipped the decoder's limits
        mv.action.check_limits().map_err(|e| MoveRejection::BadStep(e.to_string()))?;
        let signer = mv.signer(&self.spec_hash).map_err(|_| MoveRejection::BadSignature)?;
        let bytes = mv.encode().len();
        let mut guard = self.state.write();
        let state = &mut *guard;
        crate::resolve::catch_up(state, current);
        if !state.disputes.bonds.parties.contains_key(&signer) && self.spec.validator(&signer).is_none() {
            return Err(MoveRejection::NotBonded {
                who: signer,
                free: 0,
                stake: self.spec.dispute_stake_gwei,
            });
        }
        let (n, used) = state.disputes.per_party.get(&signer).copied().unwrap_or_default();
        if state.disputes.move_bytes + bytes > MAX_MOVE_BYTES_PER_BLOCK
            || used + bytes > MAX_MOVE_BYTES_PER_PARTY
            || n >= MAX_MOVES_PER_PARTY
        {
            return Err(MoveRejection::Full);
        }
        // INVARIANT: an in-game move names the game's current position, so
        // any signed move is valid once, in one state of one run
        if let (Some(game), Some(at)) = (mv.action.game(), mv.action.position())
            && let Some(g) = state.disputes.open.get(&game)
            && g.position() != at
        {
            return Err(MoveRejection::StalePosition { got: at, want: g.position() });
        }
        let id = match &mv.action {
            Action::Open { shard, height, header, item } => {
                self.open_game(state, signer, (*shard, *height, *header), *item, current)?
            }
            Action::Claim { game, commitment, receipts, proof, .. } => {
                self.can_take_over(state, game, &signer)?;
                self.claim(state, *game, signer, commitment, receipts, proof, current)?;
                self.take_over(state, game, &signer);
                Some(*game)
            }
            Action::Withdraw { amount_gwei, nonce } => {
                let release = current.saturating_add(self.spec.challenge_window());
                state
                    .disputes
                    .bonds
                    .withdraw(&signer, *amount_gwei, *nonce, release)
                    .map_err(MoveRejection::BadWithdrawal)?;
                None
            }
            Action::Bisect { game, commitments, .. } => {
                self.can_take_over(state, game, &signer)?;
                let g = self.game_for(state, game, signer, Side::Defender, current)?;
                if !g.claimed {
                    return Err(MoveRejection::OutOfTurn("the defender must claim c_j first".into()));
                }
                g.game
                    .bisect(commitments.clone(), current)
                    .map_err(|e| MoveRejection::OutOfTurn(e.to_string()))?;
                self.take_over(state, game, &signer);
                Some(*game)
            }
            Action::Pick { game, index, .. } => {
                let g = self.game_for(state, game, signer, Side::Challenger, current)?;
                g.game.pick(*index as usize, current).map_err(|e| MoveRejection::OutOfTurn(e.to_string()))?;
                Some(*game)
            }
            Action::Step { game, step, .. } => {
                self.step(state, *game, signer, step, current)?;
                Some(*game)
            }
        };
        let d = &mut state.disputes;
        if let Some(id) = id
            && let Some(g) = d.open.get_mut(&id)
        {
            g.moves += 1;
            let g = g.clone();
            d.log(&g).moves.push(MoveLog {
                slot: current,
                party: signer,
                action: mv.action.label().into(),
                round: g.game.rounds,
                bytes,
            });
            d.touched.insert(id);
        }
        d.move_bytes += bytes;
        let party = d.per_party.entry(signer).or_default();
        party.0 += 1;
        party.1 += bytes;
        d.moves.push(mv);
        Ok(())
    }

    /// Whether `signer` may move for `side` in `g` at `current`: the party
    /// itself, or, for the defender, a validator of the header's shard once
    /// the proposer has let half its clock run on this turn (a stand-in for
    /// a silent or crashed proposer).
    fn may_move(&self, g: &GameRecord, signer: &Address, side: Side, current: u64) -> bool {
        if g.party(side) == *signer {
            return true;
        }
        // never the challenger itself (it would answer its own dispute)
        let stand_in =
            *signer != g.challenger && self.spec.validator(signer).is_some_and(|v| v.shard == g.shard);
        side == Side::Defender && stand_in && g.defender_overdue(current)
    }

    fn game_for<'a>(
        &self,
        state: &'a mut State,
        id: &Hash,
        signer: Address,
        side: Side,
        current: u64,
    ) -> Result<&'a mut GameRecord, MoveRejection> {
        let g = state.disputes.open.get_mut(id).ok_or(MoveRejection::UnknownGame(*id))?;
        if !self.may_move(g, &signer, side, current) {
            return Err(MoveRejection::OutOfTurn(format!("{signer} is not the game's {side:?}")));
        }
        Ok(g)
    }

    fn open_game(
        &self,
        state: &mut State,
        signer: Address,
        (shard, height, header): (ShardId, u64, Hash),
        item: Option<u64>,
        current: u64,
    ) -> Result<Option<Hash>, MoveRejection> {
        let unknown = MoveRejection::UnknownHeader { shard, height, header };
        let rec = match self.db.shard_header(shard, height) {
            Ok(Some(r)) if r.header.header.hash() == header => r,
            _ => return Err(unknown),
        };
        // discarded meanwhile (its row stays until the discarding block is written)
        if state.heads.get(shard.0 as usize).is_none_or(|h| h.height < height) {
            return Err(unknown);
        }
        // the window counts live slots only (the beacon's downtime extends it)
        let last =
            state.disputes.pauses.deadline(rec.included_in, self.spec.challenge_window()).saturating_sub(1);
        let finalized = state.finalized.get(shard.0 as usize).copied().unwrap_or(0);
        if current > last || height <= finalized {
            return Err(MoveRejection::WindowClosed { shard, height, closed: last });
        }
        let id = game_id(&header, &signer, item);
        let d = &mut state.disputes;
        // one game per party, header and target, ever (ended ones are in the database)
        if d.open.contains_key(&id)
            || d.logs.contains_key(&id)
            || self.db.game_log(&id).ok().flatten().is_some()
        {
            return Err(MoveRejection::Duplicate);
        }
        // INVARIANT: never reached while the spec's bonds stake at most
        // MAX_OPEN_GAMES games (ChainSpec::validate): each open game holds a
        // challenger stake, so an honest bonded challenger is never kept out
        if d.open.len() >= MAX_OPEN_GAMES {
            return Err(MoveRejection::TooManyGames);
        }
        let stake = self.spec.dispute_stake_gwei;
        let free = d.bonds.parties.get(&signer).map_or(0, |b| b.free);
        if free < stake || free == 0 {
            return Err(MoveRejection::NotBonded { who: signer, free, stake });
        }
        let h = &rec.header.header;
        if h.proposer == signer {
            return Err(MoveRejection::OutOfTurn("a proposer cannot dispute its own header".into()));
        }
        let items = match self.db.shard_block(shard, height) {
            Ok(Some(b)) => (b.inbox.len() + b.txs.len()) as u64,
            _ => return Err(unknown),
        };
        if let Some(j) = item
            && !(1..=items).contains(&j)
        {
            return Err(MoveRejection::OutOfTurn(format!("no item {j} in a block of {items}")));
        }
        let challenger_stake = d.bonds.lock(&signer, stake);
        let defender_stake = d.bonds.lock(&h.proposer, stake);
        let game = self.new_game(h, items, item, current);
        let record = GameRecord {
            id,
            shard,
            height,
            header,
            items,
            receipt_item: item,
            claimed: item.is_none(),
            defender: h.proposer,
            challenger: signer,
            opened_slot: current,
            stakes: [defender_stake, challenger_stake],
            game,
            moves: 0,
            ended: None,
            acting: None,
            acting_stake: 0,
            resets: 0,
        };
        info!(target: "beacon", game = %id, %shard, height, challenger = %signer, items, "dispute game opened");
        d.open.insert(id, record);
        Ok(Some(id))
    }

    /// A game against `h` (a block of `items`), from its first round:
    /// over `c_0 … c_n` from the header's pre-state to its `trace_root`,
    /// or, against item `j`'s receipt, over `c_0 … c_j` (`c_j` claimed later).
    pub(crate) fn new_game(&self, h: &bridge::ShardHeader, items: u64, item: Option<u64>, slot: u64) -> Game {
        let params = GameParams { k: self.spec.dispute_k, clock_slots: self.spec.game_clock() };
        let c0 = TraceCommitment::start(h.pre_state_root).hash();
        // a receipt game's `c_j` is the defender's to claim first
        let mut game = match item {
            Some(j) => Game::open(params, j, c0, Hash::ZERO, slot),
            None => Game::open(params, items, c0, h.trace_root, slot),
        };
        if items == 0 {
            // no step to play: the empty trace is c_0, or the header lies
            let verdict = if h.trace_root == c0 {
                StepVerdict::Upheld
            } else {
                StepVerdict::Refuted { computed: None }
            };
            let _ = game.settle(&verdict, slot);
        }
        game
    }

    /// Before a defender's move by `signer`: a shard-mate standing in for
    /// an overdue proposer takes the defence over, which needs a stake.
    fn can_take_over(&self, state: &State, id: &Hash, signer: &Address) -> Result<(), MoveRejection> {
        let Some(g) = state.disputes.open.get(id) else { return Ok(()) };
        if g.acting.is_some() || *signer == g.defender {
            return Ok(());
        }
        let stake = self.spec.dispute_stake_gwei;
        let free = state.disputes.bonds.parties.get(signer).map_or(0, |b| b.free);
        if free < stake || free == 0 {
            return Err(MoveRejection::NotBonded { who: *signer, free, stake });
        }
        Ok(())
    }

    /// After a defender's move by `signer` was applied: a stand-in's first
    /// move makes it the acting defender, its stake locked
    /// ([`BeaconChain::can_take_over`] checked it can pay).
    fn take_over(&self, state: &mut State, id: &Hash, signer: &Address) {
        let d = &mut state.disputes;
        let Some(g) = d.open.get_mut(id) else { return };
        if g.acting.is_some() || *signer == g.defender {
            return;
        }
        g.acting_stake = d.bonds.lock(signer, self.spec.dispute_stake_gwei);
        g.acting = Some(*signer);
        info!(target: "beacon", game = %id, stand_in = %signer, proposer = %g.defender, "a shard-mate took the defence over");
    }

    /// The defender's `c_j` in a receipt game, bound to the header: its
    /// receipts frontier must be the first `j` receipts under the header's
    /// `receipts_root`.
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &self,
        state: &mut State,
        id: Hash,
        signer: Address,
        commitment: &TraceCommitment,
        receipts: &bridge::Frontier,
        proof: &bridge::PrefixProof,
        current: u64,
    ) -> Result<(), MoveRejection> {
        let g = state.disputes.open.get(&id).ok_or(MoveRejection::UnknownGame(id))?;
        if !self.may_move(g, &signer, Side::Defender, current) {
            return Err(MoveRejection::OutOfTurn(format!("{signer} is not the game's defender")));
        }
        let Some(j) = g.receipt_item.filter(|_| !g.claimed) else {
            return Err(MoveRejection::OutOfTurn("nothing to claim in this game".into()));
        };
        let header = match self.db.shard_header(g.shard, g.height) {
            Ok(Some(r)) if r.header.header.hash() == g.header => r.header.header,
            _ => return Err(MoveRejection::UnknownGame(id)),
        };
        if receipts.len() != j
            || proof.len != g.items
            || receipts.root() != commitment.receipts_root
            || !receipts.is_prefix_of(&header.receipts_root, proof)
        {
            return Err(MoveRejection::BadStep(format!(
                "the claimed receipts are not the header's first {j} receipts"
            )));
        }
        let g = state.disputes.open.get_mut(&id).expect("checked above");
        g.game.hi_commit = commitment.hash();
        g.claimed = true;
        Ok(())
    }

    fn step(
        &self,
        state: &mut State,
        id: Hash,
        signer: Address,
        bytes: &[u8],
        current: u64,
    ) -> Result<(), MoveRejection> {
        let g = state.disputes.open.get(&id).ok_or(MoveRejection::UnknownGame(id))?;
        if g.side_of(&signer).is_none() && !self.may_move(g, &signer, Side::Defender, current) {
            return Err(MoveRejection::OutOfTurn(format!("{signer} is not a party")));
        }
        if g.game.phase != bridge::game::Phase::Step || !g.claimed {
            return Err(MoveRejection::OutOfTurn("the game is not at its single step".into()));
        }
        if state.disputes.rejected_steps.get(&(id, signer)).is_some_and(|n| *n >= MAX_REJECTED_STEPS) {
            return Err(MoveRejection::OutOfTurn(format!(
                "{signer} had {MAX_REJECTED_STEPS} steps refused in this game"
            )));
        }
        let reject = |why: String, state: &mut State| {
            if let Some(l) = state.disputes.logs.get_mut(&id) {
                l.rejected_steps += 1;
            }
            *state.disputes.rejected_steps.entry((id, signer)).or_default() += 1;
            MoveRejection::BadStep(why)
        };
        let step = match prover::game::AnyStep::decode(bytes) {
            Ok(s) => s,
            Err(e) => return Err(reject(e.to_string(), state)),
        };
        if step.index() != g.game.lo {
            let why = format!("step of item {}, the game is at {}", step.index(), g.game.lo);
            return Err(reject(why, state));
        }
        let header = match self.db.shard_header(g.shard, g.height) {
            Ok(Some(r)) if r.header.header.hash() == g.header => r.header.header,
            _ => return Err(MoveRejection::UnknownGame(id)),
        };
        let params = prover::game::block_params(&self.spec, &header);
        let shard = g.shard;
        let block_hash = |n: u64| -> Option<alloy_primitives::B256> {
            if n >= header.height {
                return None;
            }
            let h = if n == 0 {
                self.spec.shard_genesis.get(shard.0 as usize)?.hash()
            } else {
                self.db.shard_header(shard, n).ok()??.header.header.hash()
            };
            Some(alloy_primitives::B256::from(h.0))
        };
        let started = std::time::Instant::now();
        let (verdict, witness_bytes) = match &step {
            prover::game::AnyStep::Item(step) => (
                prover::game::verify_step(
                    &params,
                    &header.items_root,
                    step,
                    &g.game.lo_commit,
                    &g.game.hi_commit,
                    &block_hash,
                ),
                step.witness.encoded_len(),
            ),
            prover::game::AnyStep::Undecodable(u) => (u.verify(&header.items_root), 0),
        };
        let micros = started.elapsed().as_micros() as u64;
        if let StepVerdict::Rejected(why) = verdict {
            return Err(reject(why, state));
        }
        let g = state.disputes.open.get_mut(&id).expect("checked above");
        g.game.settle(&verdict, current).map_err(|e| MoveRejection::OutOfTurn(e.to_string()))?;
        let stats = StepStats {
            index: step.index(),
            step_bytes: bytes.len(),
            witness_bytes,
            verify_micros: micros,
            verdict: if verdict == StepVerdict::Upheld { "upheld" } else { "refuted" }.into(),
            submitted_by: signer,
        };
        info!(target: "beacon", game = %id, verdict = %stats.verdict, micros, bytes = bytes.len(), "single step re-executed");
        let record = g.clone();
        state
            .disputes
            .logs
            .entry(id)
            .or_insert_with(|| GameLog {
                record,
                moves: vec![],
                step: None,
                rejected_steps: 0,
                slashed: vec![],
            })
            .step = Some(stats);
        Ok(())
    }
}

/// Which side won, by outcome (for metrics).
pub fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::StepUpheld { .. } => "step_upheld",
        Outcome::StepRefuted { .. } => "step_refuted",
        Outcome::Timeout { .. } => "timeout",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The persisted dispute state keeps each party's refused steps, so a
    /// beacon restart does not give it `MAX_REJECTED_STEPS` more
    /// re-executions (issue 15); a count the bytes cannot hold is refused.
    #[test]
    fn refused_step_counts_survive_a_restart() {
        let mut d = Disputes::default();
        let (game, party) = (Hash::of(b"game"), Address([3; 20]));
        d.rejected_steps.insert((game, party), MAX_REJECTED_STEPS);
        d.rejected_steps.insert((Hash::of(b"other"), Address([4; 20])), 1);
        let bytes = d.encode();
        let back = Disputes::decode(&bytes, |_| None).unwrap();
        assert_eq!(back.rejected_steps, d.rejected_steps);
        assert_eq!(back.encode(), bytes, "one encoding");
        // a forged count past the input
        let mut forged = Disputes::default().encode();
        let at = forged.len() - 4;
        forged[at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Disputes::decode(&forged, |_| None).is_err());
    }
}
