//! The beacon as referee (DESIGN.md, Disputes): bonded parties open games
//! against accepted headers inside their challenge window, play k-section
//! moves on chess clocks, and the single step is re-executed here with
//! `prover`'s stateless executor. A lost game slashes the loser's stake
//! (a share to the winner, the rest to the treasury); a header proven
//! invalid is discarded with its descendants and every destination header
//! that consumed its messages (a cascade), and its shard continues from
//! the last valid header.

use std::collections::HashMap;

use bridge::game::{Game, Outcome, Side};
use bridge::{Action, Address, Encode, GameRecord, Hash, Invalidation, ShardId, SignedMove};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::chain::{BeaconChain, State};
use crate::referee::{AcceptedHeader, CheckedStep, Referee, RefereeStore};
use crate::store::Discard;

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
    /// The signer may not play that side of the game (not its party, nor,
    /// for the defender, a shard-mate that may stand in now).
    #[error("{who} may not play the {side:?} in this game")]
    NotAParty {
        /// The signer.
        who: Address,
        /// The side the move is for.
        side: Side,
    },
    /// The game waits for the other side's move.
    #[error("the game waits for the {side:?}")]
    NotYourTurn {
        /// Whose move it is (or whose turn the move's phase is not).
        side: Side,
    },
    /// The game has ended (it leaves at the next seal).
    #[error("the game is over")]
    GameOver,
    /// A bisection with the wrong number of commitments.
    #[error("{got} commitments posted, {want} expected")]
    WrongCount {
        /// Posted.
        got: usize,
        /// Expected.
        want: usize,
    },
    /// A sub-range past the posted ones.
    #[error("no sub-range {index}")]
    BadPick {
        /// The named sub-range.
        index: usize,
    },
    /// A receipt game's defender must claim `c_j` before bisecting.
    #[error("the defender must claim c_j first")]
    Unclaimed,
    /// Nothing to claim (a trace game, or claimed already).
    #[error("nothing to claim in this game")]
    NothingToClaim,
    /// The claimed receipts are not the header's first `item` receipts.
    #[error("the claimed receipts are not the header's first {item} receipts")]
    BadClaim {
        /// The disputed item.
        item: u64,
    },
    /// A proposer cannot dispute its own header.
    #[error("a proposer cannot dispute its own header")]
    OwnHeader,
    /// A receipt game on an item the block does not have.
    #[error("no item {item} in a block of {items}")]
    NoSuchItem {
        /// The named item.
        item: u64,
        /// Items in the block.
        items: u64,
    },
    /// A step while the game is not at its single step.
    #[error("the game is not at its single step")]
    NotAtStep,
    /// The party had this many steps refused in this game: its steps are
    /// not looked at any more.
    #[error("{limit} steps refused in this game: no more are looked at")]
    StepsExhausted {
        /// The limit.
        limit: u32,
    },
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
    /// A descent into an item that is not the one the game pinned, or
    /// of a trace no item has.
    #[error("bad descent: {0}")]
    BadDescent(String),
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
            MoveRejection::NotAParty { .. } => "not_a_party",
            MoveRejection::NotYourTurn { .. } => "not_your_turn",
            MoveRejection::GameOver => "game_over",
            MoveRejection::WrongCount { .. } => "wrong_count",
            MoveRejection::BadPick { .. } => "bad_pick",
            MoveRejection::Unclaimed => "unclaimed",
            MoveRejection::NothingToClaim => "nothing_to_claim",
            MoveRejection::BadClaim { .. } => "bad_claim",
            MoveRejection::OwnHeader => "own_header",
            MoveRejection::NoSuchItem { .. } => "no_such_item",
            MoveRejection::NotAtStep => "not_at_step",
            MoveRejection::StepsExhausted { .. } => "steps_exhausted",
            MoveRejection::BadStep(_) => "bad_step",
            MoveRejection::StalePosition { .. } => "stale_position",
            MoveRejection::BadDescent(_) => "bad_descent",
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
    /// Its level: 1 (a whole item: the step from `c_index` to
    /// `c_{index+1}`) or 2 (one step of the item's trace, `T_index` to
    /// `T_{index+1}`).
    #[serde(default = "level_one")]
    pub level: u8,
    /// Its position in its level's range.
    pub index: u64,
    /// A level-2 instruction's step: the disputed instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<DisputedInstruction>,
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

fn level_one() -> u8 {
    1
}

/// The instruction a level-2 step re-executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisputedInstruction {
    /// Its program counter.
    pub pc: u64,
    /// Its opcode.
    pub opcode: u8,
    /// What it did: its mnemonic, and for a sub-step of a long
    /// instruction the part (`KECCAK256, part 3 of 241`).
    pub name: String,
    /// Its call depth.
    pub depth: u64,
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

/// The moves of the beacon block being built: what a seal carries, and
/// each party's share of the block's budget.
#[derive(Default)]
pub(crate) struct MoveQueue {
    /// Moves applied since the last seal, and their bytes.
    pub moves: Vec<SignedMove>,
    pub bytes: usize,
    /// Moves and bytes each party has in the block being built.
    pub per_party: HashMap<Address, (u32, usize)>,
}

impl BeaconChain {
    /// Judges a dispute move at beacon slot `current`; an accepted move is
    /// applied at once and goes into the next beacon block.
    pub fn submit_move(&self, mv: SignedMove, current: u64) -> Result<(), MoveRejection> {
        // moves built from JSON skipped the decoder's limits
        mv.action.check_limits().map_err(|e| MoveRejection::BadStep(e.to_string()))?;
        let signer = mv.signer(&self.spec_hash).map_err(|_| MoveRejection::BadSignature)?;
        let bytes = mv.encode().len();
        let full = |state: &State| {
            let (n, used) = state.queue.per_party.get(&signer).copied().unwrap_or_default();
            state.queue.bytes + bytes > MAX_MOVE_BYTES_PER_BLOCK
                || used + bytes > MAX_MOVE_BYTES_PER_PARTY
                || n >= MAX_MOVES_PER_PARTY
        };
        // a step is re-executed with no state lock held: checked under the
        // read lock, re-executed, then applied under the write lock with
        // that result only if its game is still where it was
        let (target, refused) = {
            let state = self.state.read();
            if full(&state) {
                return Err(MoveRejection::Full);
            }
            (state.referee.step_target(signer, &mv.action, current)?, state.referee.refused_in_slot(&signer))
        };
        // steps of one party re-executed at once count against its refused
        // steps of the slot, so concurrent submissions cannot pass the
        // limit before any is counted
        let _in_flight;
        let checked = match (target, &mv.action) {
            (Some((shard, height, game)), Action::Step { step, .. }) => {
                _in_flight = InFlight::enter(&self.steps_in_flight, signer, refused)?;
                let Ok(Some(r)) = self.db.shard_header(shard, height) else {
                    return Err(MoveRejection::UnknownGame(mv.action.game().unwrap_or_default()));
                };
                let header = r.header.header;
                Some((step_key(&header, &game, step), self.check_step(&header, &game, step)))
            }
            _ => None,
        };
        let mut guard = self.state.write();
        if full(&guard) {
            return Err(MoveRejection::Full);
        }
        let state = &mut *guard;
        self.with_referee(state, checked, |referee, view| {
            referee.apply(signer, &mv.action, current, bytes, view)
        })
        .0?;
        let q = &mut state.queue;
        q.bytes += bytes;
        let party = q.per_party.entry(signer).or_default();
        party.0 += 1;
        party.1 += bytes;
        q.moves.push(mv);
        Ok(())
    }

    /// Runs `f` on the referee, with the rest of the state as its store;
    /// also returns the headers the store discarded.
    pub(crate) fn with_referee<T>(
        &self,
        state: &mut State,
        checked: Option<(Hash, CheckedStep)>,
        f: impl FnOnce(&mut Referee, &mut ChainView<'_>) -> T,
    ) -> (T, Vec<Discard>) {
        let mut referee = std::mem::take(&mut state.referee);
        let mut view = ChainView { chain: self, state, discarded: Vec::new(), checked };
        let out = f(&mut referee, &mut view);
        let discarded = std::mem::take(&mut view.discarded);
        state.referee = referee;
        (out, discarded)
    }
}

/// The chain as the referee's store: accepted headers from the database
/// (not yet discarded), finality, the prover's one-step re-execution, and
/// the discarding of invalid headers (`resolve.rs`).
pub(crate) struct ChainView<'a> {
    pub chain: &'a BeaconChain,
    pub state: &'a mut State,
    /// Headers discarded, for the database.
    pub discarded: Vec<Discard>,
    /// A step re-executed before the lock was taken, by its key.
    pub checked: Option<(Hash, CheckedStep)>,
}

/// One step of a party being re-executed (counted in
/// `BeaconChain::steps_in_flight` while it lives).
struct InFlight<'a> {
    map: &'a parking_lot::Mutex<HashMap<Address, u32>>,
    who: Address,
}

impl<'a> InFlight<'a> {
    /// Counts one more step of `who` in flight, unless those in flight and
    /// `refused` this slot reach the per-slot limit (`Full`: next slot).
    fn enter(
        map: &'a parking_lot::Mutex<HashMap<Address, u32>>,
        who: Address,
        refused: u32,
    ) -> Result<Self, MoveRejection> {
        let mut m = map.lock();
        let n = m.entry(who).or_default();
        if refused.saturating_add(*n) >= crate::MAX_REFUSED_STEPS_PER_SLOT {
            return Err(MoveRejection::Full);
        }
        *n += 1;
        Ok(InFlight { map, who })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut m = self.map.lock();
        if let Some(n) = m.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.who);
            }
        }
    }
}

/// What identifies a step's re-execution: the header, the game's range and
/// end commitments, and the step's bytes.
fn step_key(header: &bridge::ShardHeader, game: &Game, step: &[u8]) -> Hash {
    bridge::hash_domain(
        b"optishard.step_key",
        &[&header.hash().0, &game.lo.to_be_bytes(), &game.lo_commit.0, &game.hi_commit.0, step],
    )
}

impl BeaconChain {
    /// Re-executes `step` (encoded) from `game`'s `c_lo` against its
    /// claimed `c_hi` in `header`'s block (reads the database, takes no
    /// state lock).
    pub(crate) fn check_step(&self, header: &bridge::ShardHeader, game: &Game, bytes: &[u8]) -> CheckedStep {
        let started = std::time::Instant::now();
        let spec = &self.spec;
        let params = prover::game::block_params(spec, header);
        let shard = header.shard;
        let block_hash = |n: u64| -> Option<alloy_primitives::B256> {
            if n >= header.height {
                return None;
            }
            let h = if n == 0 {
                spec.shard_genesis.get(shard.0 as usize)?.hash()
            } else {
                self.db.shard_header(shard, n).ok()??.header.header.hash()
            };
            Some(alloy_primitives::B256::from(h.0))
        };
        let ctx = prover::game::StepContext {
            params: &params,
            items_root: &header.items_root,
            block_hash: &block_hash,
        };
        let v = prover::game::verify_any(&ctx, game, bytes);
        CheckedStep {
            verdict: v.verdict,
            level: v.level,
            index: v.index,
            instruction: v.instruction,
            witness_bytes: v.witness_bytes,
            micros: started.elapsed().as_micros() as u64,
        }
    }
}

impl RefereeStore for ChainView<'_> {
    fn sealed_head(&self) -> Option<u64> {
        self.state.head.map(|(slot, _)| slot)
    }

    fn accepted(&self, shard: ShardId, height: u64) -> Option<AcceptedHeader> {
        // discarded meanwhile (its row stays until the discarding block is written)
        if self.state.heads.get(shard.0 as usize).is_none_or(|h| h.height < height) {
            return None;
        }
        let rec = self.chain.db.shard_header(shard, height).ok()??;
        let block = self.chain.db.shard_block(shard, height).ok()??;
        Some(AcceptedHeader {
            header: rec.header.header,
            included_in: rec.included_in,
            items: (block.inbox.len() + block.txs.len()) as u64,
        })
    }

    fn finalized(&self, shard: ShardId) -> u64 {
        self.state.finalized.get(shard.0 as usize).copied().unwrap_or(0)
    }

    fn ended_before(&self, id: &Hash) -> bool {
        self.chain.db.game_log(id).ok().flatten().is_some()
    }

    fn check_step(&self, header: &bridge::ShardHeader, game: &Game, bytes: &[u8]) -> CheckedStep {
        match &self.checked {
            Some((key, checked)) if *key == step_key(header, game, bytes) => checked.clone(),
            _ => self.chain.check_step(header, game, bytes),
        }
    }

    fn discard(&mut self, shard: ShardId, height: u64, game: Hash, slot: u64) -> Result<Vec<Invalidation>> {
        let mut out = Vec::new();
        self.chain.invalidate(self.state, shard, height, game, None, slot, &mut out, &mut self.discarded)?;
        Ok(out)
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
