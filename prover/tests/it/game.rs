//! The dispute game's rules on real block traces: k-section to one step,
//! the step re-executed from its witness, clocks.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use bridge::{Hash, MerkleTree};
use proptest::prelude::*;
use prover::game::{Game, GameParams, Outcome, Phase, Side, Step, StepVerdict, verify_step};
use prover::{Item, Mode, produce_witness};

use crate::support::*;

const PARAMS: GameParams = GameParams { k: 4, clock_slots: 10 };

/// A block of `n` transfers on a fresh chain: its items, trace `c_0..c_n`
/// (hashes) and everything a step needs.
struct Block {
    chain: Chain,
    exec: prover::Execution,
    trace: Vec<Hash>,
}

fn block(n: usize) -> Block {
    let chain = Chain::new(4);
    let txs = (0..n)
        .map(|i| {
            let to = TxKind::Call(Address::repeat_byte(0x10 + (i % 5) as u8));
            sign_1559(&signer((i % 4) as u8), (i / 4) as u64, to, U256::from(i + 1), Bytes::new(), 21_000)
        })
        .collect();
    let exec = chain.execute(txs, Mode::Verify);
    let c0 = bridge::TraceCommitment::start(chain.state.root(0).unwrap());
    let mut trace = vec![c0.hash()];
    trace.extend(exec.trace(&chain.state, 0).unwrap().iter().map(|c| c.hash()));
    Block { chain, exec, trace }
}

impl Block {
    fn step(&self, index: u64) -> Step {
        let leaves: Vec<Hash> = self.exec.items.iter().map(Item::item_hash).collect();
        let proof = MerkleTree::new(&leaves).proof(index as usize).unwrap();
        let witness =
            produce_witness(&self.chain.state, 0, &self.exec, index as usize, &self.chain.block_hashes())
                .unwrap();
        Step { index, item: self.exec.items[index as usize].clone(), proof, witness }
    }

    fn items_root(&self) -> Hash {
        self.exec.items_root()
    }

    /// The header chain's hash of block `n`.
    fn hash_of(&self, n: u64) -> Option<alloy_primitives::B256> {
        self.chain.block_hashes().get(&n).copied()
    }
}

/// Plays a game where the defender claims `claim` (its commitments) and
/// the challenger believes `truth`; the challenger picks the first posted
/// point it disagrees with. Returns the game once over, and the step.
fn play(b: &Block, claim: &[Hash], truth: &[Hash]) -> Game {
    let n = claim.len() as u64 - 1;
    let mut g = Game::open(PARAMS, n, claim[0], claim[n as usize], 1);
    let mut slot = 1;
    while matches!(g.phase, Phase::Bisect | Phase::Pick { .. }) {
        slot += 1;
        let pts = g.points();
        g.bisect(pts.iter().map(|p| claim[*p as usize]).collect(), slot).unwrap();
        slot += 1;
        let j = pts.iter().position(|p| claim[*p as usize] != truth[*p as usize]).unwrap_or(pts.len());
        g.pick(j, slot).unwrap();
    }
    assert_eq!(g.phase, Phase::Step);
    let step = b.step(g.lo);
    let verdict =
        verify_step(&params(1), &b.items_root(), &step, &g.lo_commit, &g.hi_commit, &|n| b.hash_of(n));
    g.settle(&verdict, slot + 1).unwrap();
    g
}

#[test]
fn a_wrong_claim_loses_and_an_honest_one_wins() {
    let b = block(13);
    let n = b.trace.len() - 1;
    assert_eq!(n, 13);
    // the defender lies from item 9 on (a wrong state after it)
    let mut lie = b.trace.clone();
    for c in lie.iter_mut().skip(9) {
        *c = Hash::of(&c.0);
    }
    let g = play(&b, &lie, &b.trace);
    assert_eq!(g.outcome(), Some(&Outcome::StepRefuted { winner: Side::Challenger }));
    assert_eq!((g.lo, g.hi), (8, 9), "bisected to the first wrong step");
    assert!(g.rounds <= Game::rounds_for(13, 4));
    // a griefing challenger disputing the honest trace from item 5 on
    let mut wrong_belief = b.trace.clone();
    for c in wrong_belief.iter_mut().skip(5) {
        *c = Hash::of(b"griefer");
    }
    let g = play(&b, &b.trace, &wrong_belief);
    assert_eq!(g.outcome(), Some(&Outcome::StepUpheld { winner: Side::Defender }));
}

#[test]
fn a_bad_step_submission_decides_nothing() {
    let b = block(6);
    let (agreed, claimed) = (b.trace[2], b.trace[3]);
    let mut step = b.step(2);
    assert_eq!(
        verify_step(&params(1), &b.items_root(), &step, &agreed, &claimed, &|n| b.hash_of(n)),
        StepVerdict::Upheld
    );
    // a witness missing one entry
    let full = step.witness.clone();
    step.witness = full.without_entry(0);
    assert!(matches!(
        verify_step(&params(1), &b.items_root(), &step, &agreed, &claimed, &|n| b.hash_of(n)),
        StepVerdict::Rejected(_)
    ));
    // the item of another position
    step.witness = full;
    step.index = 3;
    assert!(matches!(
        verify_step(&params(1), &b.items_root(), &step, &agreed, &claimed, &|n| b.hash_of(n)),
        StepVerdict::Rejected(_)
    ));
    // a witness that does not start at the agreed commitment
    step.index = 2;
    assert!(matches!(
        verify_step(&params(1), &b.items_root(), &step, &b.trace[1], &claimed, &|n| b.hash_of(n)),
        StepVerdict::Rejected(_)
    ));
    // a block hash the header chain does not have (the witness does not
    // decide what a height's hash is)
    let mut forged = b.step(2);
    forged.witness.block_hashes.push((0, alloy_primitives::B256::repeat_byte(9)));
    assert!(matches!(
        verify_step(&params(1), &b.items_root(), &forged, &agreed, &claimed, &|n| b.hash_of(n)),
        StepVerdict::Rejected(_)
    ));
    // a rejected step leaves the game waiting for a real one
    let mut g = Game::open(PARAMS, 1, agreed, claimed, 1);
    g.settle(&StepVerdict::Rejected("incomplete".into()), 2).unwrap();
    assert_eq!(g.phase, Phase::Step);
}

#[test]
fn a_side_that_stops_answering_loses_on_time() {
    let mut g = Game::open(PARAMS, 100, Hash::of(b"a"), Hash::of(b"b"), 5);
    assert_eq!(g.tick(10), None);
    // the defender never posts: after its 10 slots it has lost
    assert_eq!(g.tick(15), Some(&Outcome::Timeout { winner: Side::Challenger }));
    let mut g = Game::open(PARAMS, 100, Hash::of(b"a"), Hash::of(b"b"), 5);
    let posted = vec![Hash::of(b"x"); g.points().len()];
    g.bisect(posted, 8).unwrap();
    // the challenger never picks
    assert_eq!(g.tick(17), None);
    assert_eq!(g.tick(18), Some(&Outcome::Timeout { winner: Side::Defender }));
    assert_eq!(g.clocks, [7, 0], "each side's clock counts only its own turns");
    assert!(g.pick(0, 19).is_err(), "no moves after the end");
}

proptest! {
    /// Any range and k: an honest challenger against a defender lying from
    /// a random point reaches exactly the first wrong step in at most
    /// ⌈log_k n⌉ rounds; bisections of the wrong size are refused.
    #[test]
    fn k_section_reaches_the_first_wrong_step_in_log_k_rounds(n in 1u64..5000, k in 2u64..9, first_wrong in 0u64..5000) {
        let first_wrong = 1 + first_wrong % n;
        let truth: Vec<Hash> = (0..=n).map(|i| Hash::of(&i.to_be_bytes())).collect();
        let claim: Vec<Hash> = (0..=n).map(|i| if i >= first_wrong { Hash::of(b"lie") } else { truth[i as usize] }).collect();
        let params = GameParams { k, clock_slots: 1_000 };
        let mut g = Game::open(params, n, claim[0], claim[n as usize], 0);
        let mut slot = 0;
        while g.phase != Phase::Step {
            slot += 1;
            let pts = g.points();
            prop_assert!((pts.len() as u64) < k);
            prop_assert!(g.bisect(vec![Hash::ZERO; pts.len() + 1], slot).is_err());
            g.bisect(pts.iter().map(|p| claim[*p as usize]).collect(), slot).unwrap();
            let j = pts.iter().position(|p| claim[*p as usize] != truth[*p as usize]).unwrap_or(pts.len());
            g.pick(j, slot).unwrap();
        }
        prop_assert_eq!((g.lo, g.hi), (first_wrong - 1, first_wrong));
        prop_assert!(g.rounds <= Game::rounds_for(n, k), "{} rounds for n {} k {}", g.rounds, n, k);
    }
}
