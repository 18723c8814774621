//! The honest dispute solver: from a game as the beacon last showed it and
//! this party's own execution of the block, the moves to make. Pure, as
//! op-challenger's `GameSolver`: the agent (`shard/src/dispute.rs`) gets
//! the trace, turns a [`Plan`] into a move (building a step or a claim
//! needs the state), signs and sends it. Byzantine behaviours are other
//! [`Solver`]s (`shard/src/byzantine.rs`, the model test's coalition); the
//! honest one has no branch for them.

use crate::game::{Phase, Side};
use crate::{Address, GameRecord, Hash};

/// What this party knows of the trace a game's level bisects, by its own
/// re-execution: a block's `c_0 … c_n` at level 1, the pinned item's
/// `T_0 … T_L` at level 2 (past its own `L`, `T_L`: a trace may be
/// claimed longer than it runs).
pub trait TraceView {
    /// `c_i` by its execution (`None`: past an invalid item, or unknown).
    fn at(&self, i: u64) -> Option<Hash>;
    /// Whether every item re-executed (none is invalid in its position):
    /// only then is there a claim to defend.
    fn complete(&self) -> bool;
    /// Whether item `i`'s whole-item step (level 1) fits in a move: if
    /// not, its defender descends into the item's trace (level 2).
    fn item_fits(&self, _i: u64) -> bool {
        true
    }
    /// The level of the trace this is (1: a block's, 2: the pinned item's).
    fn level(&self) -> u8 {
        1
    }
    /// `c_i` of the block's trace by this party's execution, whatever the
    /// view's level (a level-2 view knows the pinned item's two ends).
    fn level_one_at(&self, i: u64) -> Option<Hash> {
        self.at(i)
    }
}

impl TraceView for Vec<Hash> {
    fn at(&self, i: u64) -> Option<Hash> {
        self.get(usize::try_from(i).ok()?).copied()
    }

    fn complete(&self) -> bool {
        true
    }
}

/// Where a party sits relative to a game.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seat {
    /// The party.
    pub me: Address,
    /// The beacon slot it decides at (the last sealed one).
    pub slot: u64,
    /// It validates the header's shard and imported the disputed header
    /// itself, so it may stand in for the proposer.
    pub shard_mate: bool,
}

/// A move to make; the agent builds the parts that need the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Claim `c_j` of a receipt game from its own execution.
    Claim,
    /// Post these commitments at the game's points.
    Bisect(Vec<Hash>),
    /// Name this sub-range.
    Pick(u32),
    /// Show the single step at the game's `lo` (of the game's level).
    Step,
    /// Descend from level 1's single step into the item's own trace
    /// (the agent builds the item's proof and the trace's length).
    Descend,
    /// Show level 1's whole-item step of the item a descended game pinned
    /// (it ends the game in any phase).
    ItemStep,
}

impl Plan {
    /// Short label (for de-duplicating resends).
    pub fn label(&self) -> &'static str {
        match self {
            Plan::Claim => "claim",
            Plan::Bisect(_) => "bisect",
            Plan::Pick(_) => "pick",
            Plan::Step => "step",
            Plan::Descend => "descend",
            Plan::ItemStep => "item_step",
        }
    }
}

/// Decides a party's moves in a game.
pub trait Solver {
    /// The moves `seat` should make in `g`, given its view of the trace.
    fn next_actions(&self, g: &GameRecord, seat: &Seat, trace: &dyn TraceView) -> Vec<Plan>;
}

/// Plays every game by its own execution: defends only what re-executes,
/// disputes only what does not, and stands in for an overdue proposer only
/// when the range it would inherit is right.
#[derive(Clone, Copy, Debug, Default)]
pub struct Honest;

impl Honest {
    /// The side `seat` plays in `g` now, if any: its own side, or the
    /// defender's as a stand-in.
    pub fn side(g: &GameRecord, seat: &Seat, trace: &dyn TraceView) -> Option<Side> {
        if let Some(side) = g.side_of(&seat.me) {
            return Some(side);
        }
        let defender_to_move = g.game.to_move() == Some(Side::Defender);
        let eligible = seat.shard_mate
            && defender_to_move
            // allowed now and still when its move lands, a slot later
            && g.may_stand_in(&seat.me, seat.slot)
            && g.defender_overdue(seat.slot + 1);
        // taking the defence over makes it its own, on its own stake: only
        // when the range it inherits is right by its own execution (a wrong
        // bound would be refuted against it)
        // A descended game: level 1's range (the pinned item's ends) must be
        // right by its own block's execution whichever level it plays (level
        // 1's step decides the game in any phase), and at level 2 the item
        // trace's range too.
        let level_one_right = g.game.descent.as_ref().is_none_or(|d| {
            trace.level_one_at(d.lo) == Some(d.lo_commit) && trace.level_one_at(d.lo + 1) == Some(d.hi_commit)
        });
        let range_right = (g.game.descent.is_some() && trace.level() == 1)
            || (trace.at(g.game.lo) == Some(g.game.lo_commit)
                && (!g.claimed() || trace.at(g.game.hi) == Some(g.game.hi_commit)));
        let inherits_right = trace.complete() && level_one_right && range_right;
        (eligible && inherits_right).then_some(Side::Defender)
    }
}

impl Solver for Honest {
    fn next_actions(&self, g: &GameRecord, seat: &Seat, trace: &dyn TraceView) -> Vec<Plan> {
        let Some(side) = Honest::side(g, seat, trace) else { return vec![] };
        if side == Side::Defender && !trace.complete() {
            // an item is invalid in its position: nothing to defend
            return vec![];
        }
        if Honest::ends_descent(g, trace) {
            return vec![Plan::ItemStep];
        }
        if !g.claimed() {
            return match side {
                Side::Defender => vec![Plan::Claim],
                Side::Challenger => vec![],
            };
        }
        match (&g.game.phase, side) {
            (Phase::Bisect, Side::Defender) => {
                let points: Option<Vec<Hash>> = g.game.points().iter().map(|p| trace.at(*p)).collect();
                points.map(Plan::Bisect).into_iter().collect()
            }
            (Phase::Pick { posted }, Side::Challenger) => {
                let index = g
                    .game
                    .points()
                    .iter()
                    .zip(posted)
                    .position(|(p, c)| trace.at(*p) != Some(*c))
                    .unwrap_or(posted.len());
                vec![Plan::Pick(index as u32)]
            }
            (Phase::Step, Side::Defender) if g.game.descent.is_none() && !trace.item_fits(g.game.lo) => {
                vec![Plan::Descend]
            }
            // an item too large for level 1: its defender descends
            (Phase::Step, Side::Challenger) if g.game.descent.is_none() && !trace.item_fits(g.game.lo) => {
                vec![]
            }
            (Phase::Step, _) => vec![Plan::Step],
            _ => vec![],
        }
    }
}

impl Honest {
    /// After a descent, a party for which the pinned item's whole-item
    /// step fits ends the game with it (level 1 is the ground truth for
    /// the item; level 2 is for the items too large for it).
    pub fn ends_descent(g: &GameRecord, trace: &dyn TraceView) -> bool {
        g.game.descent.as_ref().is_some_and(|d| trace.item_fits(d.lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ShardId;
    use crate::game::{Game, GameParams};

    /// A level-2 view: the item's trace and the block's trace at the
    /// pinned item's ends.
    struct Level2 {
        item: Vec<Hash>,
        block: Vec<Hash>,
    }

    impl TraceView for Level2 {
        fn at(&self, i: u64) -> Option<Hash> {
            self.item.get(i as usize).copied()
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
            self.block.get(i as usize).copied()
        }
    }

    /// An honest shard-mate stands in for an overdue proposer in a
    /// descended game only if level 1's range (the pinned item's ends) is
    /// right by its own block execution, not just the item trace's range:
    /// level 1's step decides a descended game in any phase, so inheriting
    /// a false `c_{lo+1}` would be refuted against the stand-in (the review
    /// of issue 16's game found it).
    #[test]
    fn a_stand_in_at_level_two_checks_level_ones_range() {
        let h = |s: &str| Hash::of(s.as_bytes());
        let block = vec![h("c0"), h("c1"), h("c2")];
        let item: Vec<Hash> = (0..8).map(|j| h(&format!("T{j}"))).collect();
        let params = GameParams { k: 2, clock_slots: 16 };
        let record = |claimed_c2: Hash| {
            let mut g = Game::open(params, 2, block[0], claimed_c2, 0);
            g.bisect(vec![block[1]], 0).unwrap();
            g.pick(1, 0).unwrap();
            g.descend(h("item"), 7, 0).unwrap();
            // the colluding pair kept the item trace's range true: [0, 7]
            g.lo_commit = item[0];
            g.hi_commit = item[7];
            GameRecord {
                id: Hash::ZERO,
                shard: ShardId(0),
                height: 1,
                header: Hash::ZERO,
                items: 2,
                receipt_item: None,
                defender: Address([1; 20]),
                challenger: Address([2; 20]),
                opened_slot: 0,
                stakes: [1, 1],
                game: g,
                moves: 0,
                ended: None,
                acting: None,
                acting_stake: 0,
                resets: 0,
                stood_in: vec![],
            }
        };
        let seat = Seat { me: Address([3; 20]), slot: 5, shard_mate: true };
        let view = Level2 { item: item.clone(), block: block.clone() };
        assert_eq!(
            Honest::side(&record(block[2]), &seat, &view),
            Some(Side::Defender),
            "a true item: it stands in"
        );
        assert_eq!(
            Honest::side(&record(h("a lie about c2")), &seat, &view),
            None,
            "a false c_{{lo+1}}: it does not"
        );
    }
}
