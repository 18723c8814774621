//! The dispute game's rules (DESIGN.md, Disputes): k-section over a block's
//! trace down to one step, chess clocks, and the single-step verdict. Pure
//! logic, no I/O: the beacon referees by feeding it moves and slots.
//!
//! A game is over the range `[0, n]` of a block's trace `c_0 … c_n`, where
//! both sides agree on `c_0` (the parent's state, empty outbox and
//! receipts) and the challenger disputes the defender's `c_n` (the
//! header's `trace_root`, or `c_j` when the receipt of item `j` is
//! disputed). Each round the defender posts the commitments at `k - 1`
//! evenly spaced points of the disputed range; the challenger names the
//! first sub-range whose end it disputes. When one step is left, `[i, i+1]`
//! with `c_i` agreed and `c_{i+1}` disputed, either side submits item `i+1`
//! with its inclusion proof and witness, and the re-execution decides
//! (see `prover::game::verify_step`). Rounds: ⌈log_k n⌉.

use serde::{Deserialize, Serialize};

use crate::{Decode, DecodeError, Encode, Hash, TraceCommitment, decode_list, encode_list};

/// The two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Stands by the header (the proposer, or a validator on its behalf).
    Defender,
    /// Disputes it.
    Challenger,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Defender => Side::Challenger,
            Side::Challenger => Side::Defender,
        }
    }
}

/// Why a game ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Outcome {
    /// The single step re-executed to the defender's claim (or its item was
    /// valid where the challenger said it was not).
    StepUpheld {
        /// The winner.
        winner: Side,
    },
    /// The single step re-executed to something else than the defender's
    /// claim, or the item was invalid in its position.
    StepRefuted {
        /// The winner.
        winner: Side,
    },
    /// A side's clock ran out on its turn.
    Timeout {
        /// The winner.
        winner: Side,
    },
}

impl Outcome {
    /// Who won.
    pub fn winner(&self) -> Side {
        match self {
            Outcome::StepUpheld { winner }
            | Outcome::StepRefuted { winner }
            | Outcome::Timeout { winner } => *winner,
        }
    }
}

/// A move that broke the rules (refused; the game is unchanged).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    /// Not this side's turn, or the game is in another phase.
    #[error("not {0:?}'s move now")]
    NotYourTurn(Side),
    /// The game has ended.
    #[error("the game is over")]
    Over,
    /// A bisection with the wrong number of commitments.
    #[error("{got} commitments posted, {want} expected")]
    WrongCount {
        /// Posted.
        got: usize,
        /// Expected.
        want: usize,
    },
    /// A sub-range outside the posted ones.
    #[error("sub-range {0} out of range")]
    BadPick(usize),
    /// A level-2 trace of no length, or longer than any item's.
    #[error("an item trace of {0} steps")]
    BadLength(u64),
}

/// The game parameters (from the chain spec).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameParams {
    /// Sections per round (`k ≥ 2`).
    pub k: u64,
    /// Each side's chess clock, in slots.
    pub clock_slots: u64,
}

/// Whose move it is and what it may be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A receipt game's first move: the defender claims the `c_hi` the
    /// game is over (bound to the header's receipts by the referee).
    Claim,
    /// The defender posts the commitments of [`Game::points`].
    Bisect,
    /// The challenger names a sub-range of the posted points.
    Pick {
        /// The posted commitments, at [`Game::points`].
        posted: Vec<Hash>,
    },
    /// One step left: either side submits it.
    Step,
    /// Over.
    Done(Outcome),
}

/// Level 2 of a game: once level 1 pinned one item (`[lo, lo + 1]`,
/// `c_lo` agreed, `c_{lo+1}` disputed), the defender may descend into the
/// item's own trace `T_0 … T_L` (its instructions, its epilogue and its
/// journal's commit: `prover::machine`), `T_0` derived from `c_lo` and the
/// item, `T_L` the disputed `c_{lo+1}` itself. The game then bisects
/// `[0, L]` with the same rules; level 1's range is kept, because level 1's
/// whole-item step decides the game at any time after a descent (it is the
/// ground truth for the item, so a descent never takes a decision away from
/// whoever can show it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descent {
    /// Level 1's `lo`: the item's index in its block (0-based).
    pub lo: u64,
    /// `c_lo`, agreed.
    pub lo_commit: Hash,
    /// `c_{lo+1}` as the defender claims it.
    pub hi_commit: Hash,
    /// The item's leaf in the block's items tree.
    pub item: Hash,
    /// The trace's last index `L` the defender claims.
    pub last: u64,
}

/// Most states an item's level-2 trace may be claimed to have (2^40: an
/// item's 2^24 gas buys far fewer instructions and journal entries; it
/// bounds the rounds at ⌈40 / log2 k⌉).
pub const MAX_ITEM_TRACE: u64 = 1 << 40;

/// The longest trace an item of a block with `gas_limit` can have: its
/// instructions (each costs gas but a frame's STOP, and frames cost gas to
/// open), one commit per journal entry (each 100 gas or more, but the few
/// revm warms for free) and three more. The referee refuses a descent
/// claiming more, so a liar can claim only the rounds a real item needs.
pub fn item_trace_bound(gas_limit: u64) -> u64 {
    gas_limit.saturating_mul(3).saturating_add(16).min(MAX_ITEM_TRACE)
}

/// The slots each side's clock gains when a game descends into a trace of
/// `last` steps: one a round of level 2's bisection and two more (the
/// step, and the turn the descent lands in). A game's clocks are sized for
/// level 1 ([`crate::ChainSpec::game_clock`]); without this, a short clock
/// spent on level 1's rounds would leave an honest party no time for level
/// 2's and lose it the game on time. A liar's claimed `last` is bounded by
/// the referee ([`item_trace_bound`]), so the time it buys is too.
pub fn level_two_allowance(last: u64, k: u64) -> u64 {
    u64::from(Game::rounds_for(last, k)) + 2
}

/// One dispute: the range still disputed, the commitments at its ends,
/// the clocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Game {
    /// Parameters.
    pub params: GameParams,
    /// Start of the disputed range: `c_lo` is agreed.
    pub lo: u64,
    /// End: `c_hi` is the defender's claim the challenger disputes.
    pub hi: u64,
    /// `c_lo`'s hash.
    pub lo_commit: Hash,
    /// `c_hi`'s hash as the defender claims it.
    pub hi_commit: Hash,
    /// The current phase.
    pub phase: Phase,
    /// Slots left on each side's clock: `[defender, challenger]`.
    pub clocks: [u64; 2],
    /// The slot the current turn started.
    pub turn_since: u64,
    /// Bisection rounds played.
    pub rounds: u32,
    /// Level 2, once the defender descended into the pinned item.
    #[serde(default)]
    pub descent: Option<Descent>,
}

impl Game {
    /// A game over `[0, n]` opened at `slot`: `c_0` (agreed) and the
    /// defender's `c_n`.
    pub fn open(params: GameParams, n: u64, c0: Hash, cn: Hash, slot: u64) -> Game {
        let mut g = Game {
            params,
            lo: 0,
            hi: n.max(1),
            lo_commit: c0,
            hi_commit: cn,
            phase: Phase::Bisect,
            clocks: [params.clock_slots; 2],
            turn_since: slot,
            rounds: 0,
            descent: None,
        };
        if g.hi - g.lo == 1 {
            g.phase = Phase::Step;
        }
        g
    }

    /// A receipt game over `[0, j]` opened at `slot`: `c_0` agreed, `c_j`
    /// for the defender to claim first ([`Game::claim`]).
    pub fn open_receipt(params: GameParams, j: u64, c0: Hash, slot: u64) -> Game {
        let mut g = Game::open(params, j, c0, Hash::ZERO, slot);
        g.phase = Phase::Claim;
        g
    }

    /// The defender claims `c_hi` (a receipt game's first move; its clock
    /// runs from the game's opening, and keeps running: the turn is still
    /// the defender's until it bisects).
    pub fn claim(&mut self, hi_commit: Hash) -> Result<(), MoveError> {
        match self.phase {
            Phase::Claim => {}
            Phase::Done(_) => return Err(MoveError::Over),
            _ => return Err(MoveError::NotYourTurn(Side::Challenger)),
        }
        self.hi_commit = hi_commit;
        self.phase = if self.hi - self.lo == 1 { Phase::Step } else { Phase::Bisect };
        Ok(())
    }

    /// Rounds a range of `n` steps takes with `k` sections: ⌈log_k n⌉.
    pub fn rounds_for(n: u64, k: u64) -> u32 {
        let (mut span, mut rounds) = (n.max(1), 0);
        while span > 1 {
            span = span.div_ceil(k.max(2));
            rounds += 1;
        }
        rounds
    }

    /// The interior points the defender must post this round: `k - 1`
    /// evenly spaced ones (every interior point when the range is shorter).
    pub fn points(&self) -> Vec<u64> {
        let span = self.hi - self.lo;
        let k = self.params.k.max(2);
        if span <= k {
            return (self.lo + 1..self.hi).collect();
        }
        let mut pts: Vec<u64> = (1..k).map(|j| self.lo + j * span / k).collect();
        pts.dedup();
        pts
    }

    /// Whose move it is, if anyone's.
    pub fn to_move(&self) -> Option<Side> {
        match self.phase {
            Phase::Claim | Phase::Bisect => Some(Side::Defender),
            Phase::Pick { .. } => Some(Side::Challenger),
            // either may submit the step; the defender's clock runs (it
            // must show its claim holds)
            Phase::Step => Some(Side::Defender),
            Phase::Done(_) => None,
        }
    }

    fn charge(&mut self, side: Side, slot: u64) {
        let spent = slot.saturating_sub(self.turn_since);
        let c = &mut self.clocks[side as usize];
        *c = c.saturating_sub(spent);
        self.turn_since = slot;
    }

    /// The defender posts the commitments at [`Game::points`].
    pub fn bisect(&mut self, posted: Vec<Hash>, slot: u64) -> Result<(), MoveError> {
        match self.phase {
            Phase::Bisect => {}
            Phase::Done(_) => return Err(MoveError::Over),
            _ => return Err(MoveError::NotYourTurn(Side::Defender)),
        }
        let want = self.points().len();
        if posted.len() != want {
            return Err(MoveError::WrongCount { got: posted.len(), want });
        }
        self.charge(Side::Defender, slot);
        self.phase = Phase::Pick { posted };
        Ok(())
    }

    /// The challenger names sub-range `j` (between posted point `j - 1`, or
    /// `lo` for 0, and point `j`, or `hi` for the last): the first whose
    /// end it disputes.
    pub fn pick(&mut self, j: usize, slot: u64) -> Result<(), MoveError> {
        let Phase::Pick { posted } = &self.phase else {
            return Err(if matches!(self.phase, Phase::Done(_)) {
                MoveError::Over
            } else {
                MoveError::NotYourTurn(Side::Challenger)
            });
        };
        let pts = self.points();
        if j > posted.len() {
            return Err(MoveError::BadPick(j));
        }
        let (lo, lo_commit) = if j == 0 { (self.lo, self.lo_commit) } else { (pts[j - 1], posted[j - 1]) };
        let (hi, hi_commit) = if j == posted.len() { (self.hi, self.hi_commit) } else { (pts[j], posted[j]) };
        self.charge(Side::Challenger, slot);
        (self.lo, self.hi, self.lo_commit, self.hi_commit) = (lo, hi, lo_commit, hi_commit);
        self.rounds += 1;
        self.phase = if hi - lo == 1 { Phase::Step } else { Phase::Bisect };
        Ok(())
    }

    /// The game's level: 1 over the block's items, 2 over one item's trace.
    pub fn level(&self) -> u8 {
        if self.descent.is_some() { 2 } else { 1 }
    }

    /// Level 1's range: the item pinned (`lo`) and its ends, once
    /// descended; the game's own range before.
    pub fn item_range(&self) -> (u64, Hash, Hash) {
        match &self.descent {
            Some(d) => (d.lo, d.lo_commit, d.hi_commit),
            None => (self.lo, self.lo_commit, self.hi_commit),
        }
    }

    /// The defender descends from level 1's single step into the item's
    /// trace `T_0 … T_last` (`item`: its leaf, checked by the referee
    /// against the header): the game then bisects `[0, last]`, from `T_0 =
    /// item_start(c_lo, item)` to `T_last = c_{lo+1}`.
    pub fn descend(&mut self, item: Hash, last: u64, slot: u64) -> Result<(), MoveError> {
        match self.phase {
            Phase::Step if self.descent.is_none() => {}
            Phase::Done(_) => return Err(MoveError::Over),
            _ => return Err(MoveError::NotYourTurn(Side::Defender)),
        }
        if last == 0 || last > MAX_ITEM_TRACE {
            return Err(MoveError::BadLength(last));
        }
        self.charge(Side::Defender, slot);
        // level 2's rounds on top of what level 1 left each side
        let extra = level_two_allowance(last, self.params.k);
        for c in &mut self.clocks {
            *c = c.saturating_add(extra);
        }
        self.descent =
            Some(Descent { lo: self.lo, lo_commit: self.lo_commit, hi_commit: self.hi_commit, item, last });
        self.lo_commit = crate::trace::item_start(&self.lo_commit, &item);
        (self.lo, self.hi) = (0, last);
        self.phase = if last == 1 { Phase::Step } else { Phase::Bisect };
        Ok(())
    }

    /// The verdict of the single step ends the game: at the game's step
    /// (level 1's whole-item step, `prover::game::verify_step`, or level
    /// 2's one-instruction step), or level 1's step at any time after a
    /// descent. A rejected step decides nothing. The side to move pays for
    /// the time it took.
    pub fn settle(&mut self, verdict: &StepVerdict, slot: u64) -> Result<(), MoveError> {
        match self.phase {
            Phase::Step => {}
            Phase::Done(_) => return Err(MoveError::Over),
            _ => return Err(MoveError::NotYourTurn(Side::Defender)),
        }
        self.decide(verdict, slot);
        Ok(())
    }

    /// Level 1's whole-item step after a descent, in any phase.
    pub fn settle_item(&mut self, verdict: &StepVerdict, slot: u64) -> Result<(), MoveError> {
        match (&self.phase, &self.descent) {
            (Phase::Done(_), _) => Err(MoveError::Over),
            (_, Some(_)) => {
                self.decide(verdict, slot);
                Ok(())
            }
            (_, None) => self.settle(verdict, slot),
        }
    }

    fn decide(&mut self, verdict: &StepVerdict, slot: u64) {
        let side = self.to_move().unwrap_or(Side::Defender);
        match verdict {
            StepVerdict::Upheld => {
                self.charge(side, slot);
                self.phase = Phase::Done(Outcome::StepUpheld { winner: Side::Defender });
            }
            StepVerdict::Refuted { .. } => {
                self.charge(side, slot);
                self.phase = Phase::Done(Outcome::StepRefuted { winner: Side::Challenger });
            }
            StepVerdict::Rejected(_) => {}
        }
    }

    /// The clock at `slot`: a side whose clock ran out on its turn loses.
    pub fn tick(&mut self, slot: u64) -> Option<&Outcome> {
        if let Some(side) = self.to_move() {
            let spent = slot.saturating_sub(self.turn_since);
            if spent >= self.clocks[side as usize] {
                self.clocks[side as usize] = 0;
                self.phase = Phase::Done(Outcome::Timeout { winner: side.other() });
            }
        }
        match &self.phase {
            Phase::Done(o) => Some(o),
            _ => None,
        }
    }

    /// The outcome, once over.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.phase {
            Phase::Done(o) => Some(o),
            _ => None,
        }
    }
}

/// What re-executing the single step decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepVerdict {
    /// It re-executed to the defender's claim.
    Upheld,
    /// It did not (`computed` is what it gave; `None`: the item is invalid
    /// in its position, so no valid block holds it there).
    Refuted {
        /// The commitment the step produced.
        computed: Option<TraceCommitment>,
    },
    /// The submission proves nothing (wrong item proof, a witness that does
    /// not start at the agreed commitment or misses something): no verdict.
    Rejected(String),
}

impl Encode for Side {
    fn encode_to(&self, out: &mut Vec<u8>) {
        (*self as u8).encode_to(out);
    }
}

impl Decode for Side {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match u8::decode(input)? {
            0 => Ok(Side::Defender),
            1 => Ok(Side::Challenger),
            tag => Err(DecodeError::InvalidTag { what: "side", tag }),
        }
    }
}

impl Encode for Phase {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Phase::Bisect => 0u8.encode_to(out),
            Phase::Pick { posted } => {
                1u8.encode_to(out);
                encode_list(posted, out);
            }
            Phase::Step => 2u8.encode_to(out),
            Phase::Done(o) => {
                3u8.encode_to(out);
                o.encode_to(out);
            }
            Phase::Claim => 4u8.encode_to(out),
        }
    }
}

impl Encode for Outcome {
    fn encode_to(&self, out: &mut Vec<u8>) {
        let tag: u8 = match self {
            Outcome::StepUpheld { .. } => 0,
            Outcome::StepRefuted { .. } => 1,
            Outcome::Timeout { .. } => 2,
        };
        tag.encode_to(out);
        self.winner().encode_to(out);
    }
}

impl Decode for Outcome {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let tag = u8::decode(input)?;
        let winner = Side::decode(input)?;
        match tag {
            0 => Ok(Outcome::StepUpheld { winner }),
            1 => Ok(Outcome::StepRefuted { winner }),
            2 => Ok(Outcome::Timeout { winner }),
            tag => Err(DecodeError::InvalidTag { what: "outcome", tag }),
        }
    }
}

impl Encode for Game {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.params.k.encode_to(out);
        self.params.clock_slots.encode_to(out);
        self.lo.encode_to(out);
        self.hi.encode_to(out);
        self.lo_commit.encode_to(out);
        self.hi_commit.encode_to(out);
        self.phase.encode_to(out);
        self.clocks[0].encode_to(out);
        self.clocks[1].encode_to(out);
        self.turn_since.encode_to(out);
        self.rounds.encode_to(out);
        match &self.descent {
            None => 0u8.encode_to(out),
            Some(d) => {
                1u8.encode_to(out);
                d.lo.encode_to(out);
                d.lo_commit.encode_to(out);
                d.hi_commit.encode_to(out);
                d.item.encode_to(out);
                d.last.encode_to(out);
            }
        }
    }
}

impl Decode for Game {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let params = GameParams { k: u64::decode(input)?, clock_slots: u64::decode(input)? };
        let (lo, hi) = (u64::decode(input)?, u64::decode(input)?);
        let (lo_commit, hi_commit) = (Hash::decode(input)?, Hash::decode(input)?);
        let phase = match u8::decode(input)? {
            0 => Phase::Bisect,
            1 => Phase::Pick { posted: decode_list(input)? },
            2 => Phase::Step,
            3 => Phase::Done(Outcome::decode(input)?),
            4 => Phase::Claim,
            tag => return Err(DecodeError::InvalidTag { what: "game phase", tag }),
        };
        if lo >= hi || params.k < 2 {
            return Err(DecodeError::Invalid("game range or k out of bounds"));
        }
        Ok(Game {
            params,
            lo,
            hi,
            lo_commit,
            hi_commit,
            phase,
            clocks: [u64::decode(input)?, u64::decode(input)?],
            turn_since: u64::decode(input)?,
            rounds: u32::decode(input)?,
            descent: match u8::decode(input)? {
                0 => None,
                1 => Some(Descent {
                    lo: u64::decode(input)?,
                    lo_commit: Hash::decode(input)?,
                    hi_commit: Hash::decode(input)?,
                    item: Hash::decode(input)?,
                    last: u64::decode(input)?,
                }),
                tag => return Err(DecodeError::InvalidTag { what: "game descent", tag }),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_exact;

    /// A receipt game starts in its claim phase, on the defender's clock:
    /// claiming does not restart the turn, and a defender silent after a
    /// late claim loses on time as if it had not claimed.
    #[test]
    fn a_receipt_game_is_claimed_first_on_the_defenders_clock() {
        let p = GameParams { k: 2, clock_slots: 6 };
        let mut g = Game::open_receipt(p, 4, Hash::of(b"c0"), 10);
        assert_eq!((g.phase.clone(), g.to_move()), (Phase::Claim, Some(Side::Defender)));
        assert_eq!(decode_exact::<Game>(&g.encode()).unwrap(), g);
        assert_eq!(g.bisect(vec![Hash::ZERO], 11), Err(MoveError::NotYourTurn(Side::Defender)));
        g.claim(Hash::of(b"c4")).unwrap();
        assert_eq!((g.phase.clone(), g.hi_commit, g.turn_since), (Phase::Bisect, Hash::of(b"c4"), 10));
        assert_eq!(g.claim(Hash::ZERO), Err(MoveError::NotYourTurn(Side::Challenger)), "once");
        assert!(g.tick(15).is_none());
        assert!(matches!(g.tick(16), Some(Outcome::Timeout { winner: Side::Challenger })));
        // a game over one item goes straight to its step
        let mut one = Game::open_receipt(p, 1, Hash::of(b"c0"), 0);
        one.claim(Hash::of(b"c1")).unwrap();
        assert_eq!(one.phase, Phase::Step);
    }

    #[test]
    fn a_game_round_trips_in_every_phase() {
        let p = GameParams { k: 3, clock_slots: 9 };
        let mut g = Game::open(p, 10, Hash::of(b"a"), Hash::of(b"b"), 5);
        assert_eq!(decode_exact::<Game>(&g.encode()).unwrap(), g);
        let pts = g.points();
        g.bisect(pts.iter().map(|p| Hash::of(&p.to_be_bytes())).collect(), 6).unwrap();
        assert_eq!(decode_exact::<Game>(&g.encode()).unwrap(), g);
        g.pick(0, 7).unwrap();
        g.tick(100);
        assert!(matches!(g.phase, Phase::Done(Outcome::Timeout { winner: Side::Challenger })));
        assert_eq!(decode_exact::<Game>(&g.encode()).unwrap(), g);
        let mut bad = g.encode();
        bad[0..8].copy_from_slice(&1u64.to_be_bytes());
        assert!(decode_exact::<Game>(&bad).is_err(), "k = 1");
    }
}
