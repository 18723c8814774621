//! The dispute behaviours a testnet validator can be told to play
//! (`--byzantine`), each its own solver beside the honest one
//! ([`bridge::solver::Honest`]), as commonware's `simplex/mocks`: the
//! honest agent has no branch for them. A byzantine agent still plays its
//! own games (as proposer or challenger) honestly where its mode says
//! nothing else.

use bridge::game::{Phase, Side};
use bridge::solver::{Honest, Plan, Seat, Solver, TraceView};
use bridge::{Address, GameRecord, Hash, hash_domain};

/// A byzantine dispute behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// Disputes honest headers of its shard, with this probability in
    /// percent per accepted header, on a made-up trace that departs from
    /// the real one half-way (it has no step to show).
    Griefer {
        /// Percent of headers disputed.
        percent: u8,
    },
    /// Takes the defence over from every overdue proposer it may, and
    /// posts wrong commitments (the `lying-stand-in` fault).
    LyingStandIn,
}

impl Byzantine {
    /// Whether a griefer disputes the header `hash` (a fixed draw per
    /// header and party, so it decides once).
    pub fn disputes(&self, hash: &Hash, me: &Address) -> bool {
        match self {
            Byzantine::Griefer { percent } => {
                let draw = hash_domain(b"optishard.grief", &[&hash.0, &me.0]).0[0];
                u32::from(draw) * 100 < u32::from(*percent) * 256
            }
            Byzantine::LyingStandIn => false,
        }
    }

    /// The moves it makes in `g`; `griefed`: a game it opened as a griefer.
    pub fn next_actions(
        &self,
        g: &GameRecord,
        seat: &Seat,
        trace: &dyn TraceView,
        griefed: bool,
    ) -> Vec<Plan> {
        match self {
            Byzantine::Griefer { .. } if griefed => {
                // its belief is no execution: it bisects by a made-up trace
                // and has no step to show
                let belief = MadeUp { real: trace, from: g.items / 2 + 1 };
                let mut plans = Honest.next_actions(g, seat, &belief);
                plans.retain(|p| *p != Plan::Step);
                plans
            }
            Byzantine::Griefer { .. } => Honest.next_actions(g, seat, trace),
            Byzantine::LyingStandIn => LyingStandIn.next_actions(g, seat, trace),
        }
    }
}

/// A trace that is the real one up to `from` and made up after.
struct MadeUp<'a> {
    real: &'a dyn TraceView,
    from: u64,
}

impl TraceView for MadeUp<'_> {
    fn at(&self, i: u64) -> Option<Hash> {
        let c = self.real.at(i)?;
        Some(if i < self.from { c } else { hash_domain(b"optishard.grief", &[&c.0]) })
    }

    fn complete(&self) -> bool {
        self.real.complete()
    }
}

/// Stands in for every overdue proposer it may, whatever the range it
/// inherits, and bisects with commitments nobody's execution gives.
struct LyingStandIn;

impl Solver for LyingStandIn {
    fn next_actions(&self, g: &GameRecord, seat: &Seat, trace: &dyn TraceView) -> Vec<Plan> {
        let acting = g.acting == Some(seat.me);
        let may_take_over =
            g.side_of(&seat.me).is_none() && seat.shard_mate && g.may_stand_in(&seat.me, seat.slot);
        if !(acting || may_take_over) {
            return Honest.next_actions(g, seat, trace);
        }
        match g.game.phase {
            Phase::Claim => vec![Plan::Claim],
            Phase::Bisect => {
                let lies = g
                    .game
                    .points()
                    .iter()
                    .map(|p| hash_domain(b"optishard.lying_stand_in", &[&p.to_be_bytes()]))
                    .collect();
                vec![Plan::Bisect(lies)]
            }
            Phase::Step if g.side_of(&seat.me) == Some(Side::Defender) => vec![Plan::Step],
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge::game::{Game, GameParams};

    fn record(defender: Address, challenger: Address) -> GameRecord {
        let game = Game::open(GameParams { k: 2, clock_slots: 8 }, 4, Hash::of(b"c0"), Hash::of(b"c4"), 0);
        GameRecord {
            id: Hash::of(b"g"),
            shard: bridge::ShardId(0),
            height: 1,
            header: Hash::of(b"h"),
            items: 4,
            receipt_item: None,
            defender,
            challenger,
            opened_slot: 0,
            stakes: [1, 1],
            game,
            moves: 0,
            ended: None,
            acting: None,
            acting_stake: 0,
            resets: 0,
            stood_in: vec![],
        }
    }

    /// The honest solver never stands in on a range it cannot defend; the
    /// lying stand-in does, with commitments that are not the trace.
    #[test]
    fn only_the_lying_stand_in_takes_a_range_it_cannot_defend() {
        let (proposer, challenger, mate) = (Address([1; 20]), Address([2; 20]), Address([3; 20]));
        let g = record(proposer, challenger);
        // the mate's own execution disagrees with c_4 (the header is wrong)
        let truth: Vec<Hash> =
            (0..5u8).map(|i| if i == 0 { Hash::of(b"c0") } else { Hash::of(&[i]) }).collect();
        let seat = Seat { me: mate, slot: 4, shard_mate: true };
        assert!(Honest.next_actions(&g, &seat, &truth).is_empty(), "an honest mate leaves a lie alone");
        let plans = Byzantine::LyingStandIn.next_actions(&g, &seat, &truth, false);
        let [Plan::Bisect(posted)] = plans.as_slice() else { panic!("{plans:?}") };
        assert_ne!(posted[0], truth[2], "it posts what no execution gives");
        // before the proposer is overdue, it may not
        let early = Seat { slot: 1, ..seat };
        assert!(Byzantine::LyingStandIn.next_actions(&g, &early, &truth, false).is_empty());
    }

    /// A griefer's game is bisected by a made-up trace and never stepped.
    #[test]
    fn a_griefer_bisects_by_a_made_up_trace_and_never_steps() {
        let (proposer, griefer) = (Address([1; 20]), Address([2; 20]));
        let mut g = record(proposer, griefer);
        let truth: Vec<Hash> =
            (0..5u8).map(|i| if i == 0 { Hash::of(b"c0") } else { Hash::of(&[i]) }).collect();
        g.game.hi_commit = truth[4];
        g.game.bisect(vec![truth[2]], 1).unwrap();
        let seat = Seat { me: griefer, slot: 2, shard_mate: false };
        let b = Byzantine::Griefer { percent: 100 };
        // up to half-way it agrees with the truth
        assert_eq!(b.next_actions(&g, &seat, &truth, true), vec![Plan::Pick(1)]);
        g.game.pick(1, 3).unwrap();
        g.game.bisect(vec![truth[3]], 4).unwrap();
        // past it, it disputes a true commitment
        assert_eq!(b.next_actions(&g, &seat, &truth, true), vec![Plan::Pick(0)], "disputes the true c_3");
        assert_eq!(
            Honest.next_actions(&g, &seat, &truth),
            vec![Plan::Pick(1)],
            "the truth disputes c_4 only"
        );
        g.game.pick(0, 5).unwrap();
        assert!(b.next_actions(&g, &seat, &truth, true).is_empty(), "no step to show");
    }
}
