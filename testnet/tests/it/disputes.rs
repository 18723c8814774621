//! Fraud proofs on the deterministic tier: a lying proposer's header is
//! disputed by an honest shard-mate, bisected to one step the beacon
//! re-executes, discarded with its descendants, and the liar slashed; the
//! shard continues from the last valid header.

use bridge::game::{Game, Outcome, Side};
use bridge::{Ending, GameRecord, ShardId};
use shard::Fault;
use testnet::Testnet;

use crate::support::{audit_at_beacon_heads, balance, members, send};

/// Makes validator `liar` play `fault` until the beacon accepts a header
/// it proposes from now on with at least `min_txs` transactions, then
/// makes it honest again; returns that accepted head.
fn first_lie(t: &mut Testnet, liar: usize, fault: Fault, min_txs: usize, limit: u64) -> bridge::ShardHead {
    let (shard, addr) = t.validator_info(liar);
    let since = t.slot();
    t.set_fault(liar, Some(fault));
    run_until(t, limit, |t| {
        let head = t.beacon().heads()[shard.0 as usize];
        head.slot > since
            && t.node(liar).unwrap().block(head.height).ok().flatten().is_some_and(|b| {
                b.header.header.hash() == head.hash
                    && b.header.header.proposer == addr
                    && b.txs.len() >= min_txs
            })
    });
    t.set_fault(liar, None);
    t.beacon().heads()[shard.0 as usize]
}

/// Every game the beacon knows of (open or ended), oldest first.
fn games(t: &Testnet) -> Vec<GameRecord> {
    t.beacon().all_games(1000).unwrap().into_iter().map(|l| l.record).collect()
}

/// Steps until `done` holds, at most `limit` slots.
fn run_until(t: &mut Testnet, limit: u64, mut done: impl FnMut(&Testnet) -> bool) {
    for _ in 0..limit {
        if done(t) {
            return;
        }
        t.step();
    }
    assert!(done(t), "not reached within {limit} slots (slot {})", t.slot());
}

/// The per-game ledger (issue 15): from the spec's bonds and every game's
/// record, what each party must hold now — a stake locked by a game is
/// still locked while it is open (the defender's, the challenger's, an
/// acting stand-in's), and once it ended has been unlocked, or slashed to
/// the party the outcome names (the winner, or the challenger a losing
/// stand-in paid), exactly once. Checked against the beacon's bonds,
/// party by party, with the treasury; unlike a sum every bond operation
/// conserves, this fails when any stake goes to the wrong party, is
/// returned twice or is never returned.
fn assert_ledger(t: &Testnet) {
    let logs = t.beacon().all_games(100_000).unwrap();
    let bonds = t.beacon().games().1;
    let mut want: std::collections::BTreeMap<bridge::Address, (u128, u128, u128, u128)> = Default::default();
    for v in &t.spec().validators {
        want.entry(v.address).or_default().0 += u128::from(v.bond_gwei);
    }
    for c in &t.spec().challengers {
        want.entry(c.address).or_default().0 += u128::from(c.bond_gwei);
    }
    let mut treasury = 0u128;
    for l in &logs {
        let g = &l.record;
        if g.is_open() {
            // (.1: locked)
            want.entry(g.defender).or_default().1 += u128::from(g.stakes[0]);
            want.entry(g.challenger).or_default().1 += u128::from(g.stakes[1]);
            if let Some(s) = g.acting {
                want.entry(s).or_default().1 += u128::from(g.acting_stake);
            }
        }
        for m in &l.slashed {
            // the outcome names who pays and who is paid
            match &g.ended {
                Some((_, Ending::Decided { outcome })) => {
                    let winner = g.party(outcome.winner());
                    assert!(m.to.is_none_or(|to| to == winner || to == g.challenger), "game {}: {m:?}", g.id);
                    assert!(m.from != winner, "game {}: the winner paid: {m:?}", g.id);
                }
                // a losing stand-in pays the challenger and the game goes on
                _ => assert_eq!(m.to, Some(g.challenger), "game {}: {m:?}", g.id),
            }
            // (.2: slashed from, .3: rewarded to)
            want.entry(m.from).or_default().2 += u128::from(m.reward_gwei + m.treasury_gwei);
            if let Some(to) = m.to {
                want.entry(to).or_default().3 += u128::from(m.reward_gwei);
            }
            treasury += u128::from(m.treasury_gwei);
        }
    }
    for (who, (bond, locked, slashed, rewarded)) in &want {
        let b = bonds.parties.get(who).cloned().unwrap_or_default();
        let held = u128::from(b.free)
            + u128::from(b.locked)
            + b.withdrawing.iter().map(|(a, _)| u128::from(*a)).sum::<u128>()
            + u128::from(b.withdrawn);
        assert_eq!(u128::from(b.locked), *locked, "{who}: stakes locked by its open games");
        assert_eq!(u128::from(b.slashed), *slashed, "{who}: slashed by its games");
        assert_eq!(u128::from(b.rewarded), *rewarded, "{who}: rewarded by its games");
        assert_eq!(held, bond - slashed + rewarded, "{who}: bond − slashed + rewarded");
    }
    assert_eq!(u128::from(bonds.treasury), treasury, "the treasury holds what games sent it");
}

/// Validators of [`griefed_silent_proposer`]'s single shard: the honest
/// proposer that never answers its games, the lying stand-in, and the
/// griefer that disputed the proposer's header (validator 2 is honest).
const PROPOSER: usize = 0;
const LIAR: usize = 1;
const GRIEFER: usize = 3;

/// One shard of four validators where a griefer has just disputed an honest
/// header whose proposer stays silent, and a byzantine shard-mate stands
/// in with commitments no execution gives (so the game starts over each
/// time it loses), until an honest shard-mate takes over.
fn griefed_silent_proposer(dir: &std::path::Path) -> Testnet {
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(4)
        .seed(59)
        // four validators: up to four runs of a game, so the default clock
        // is the window over 8; 80 slots give each run 10 (an honest
        // stand-in inherits half, enough to bisect and step)
        .challenge_window_slots(80)
        .txs_per_slot(6)
        .build(dir)
        .unwrap();
    t.run(3);
    let proposer = t.validator_info(PROPOSER).1;
    t.set_fault(PROPOSER, Some(Fault::SilentDefender));
    t.set_fault(LIAR, Some(Fault::LyingStandIn));
    t.set_fault_rate(GRIEFER, Some(Fault::GriefingChallenger), 100);
    // until the griefer disputes one of the proposer's headers
    run_until(&mut t, 30, |t| games(t).iter().any(|g| g.defender == proposer));
    t.set_fault(GRIEFER, None);
    t
}

/// The first validator index of `shard`.
fn first_of(t: &Testnet, shard: u32) -> usize {
    (0..t.validator_count()).find(|i| t.validator_info(*i).0 == ShardId(shard)).unwrap()
}

/// Level 2 end to end (issue 16): with every agent deciding a pinned item
/// in its own trace (as for an item whose whole-item step does not fit in a
/// move), the lying proposer's agent descends into the last transaction,
/// both agents bisect its instructions, epilogue and commits with their own
/// replays, and the single step the beacon re-executes with revm refutes the
/// lie; the header is discarded as at level 1.
#[test]
fn a_wrong_state_root_is_refuted_inside_its_transaction_at_level_two() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(2)
        .validators_per_shard(2)
        .seed(43)
        .challenge_window_slots(96)
        .txs_per_slot(6)
        .build(dir.path())
        .unwrap();
    t.set_level_one_limit(0);
    t.run(4);
    let liar = first_of(&t, 1);
    let liar_addr = t.validator_info(liar).1;
    let spec = t.spec().clone();
    let lie = first_lie(&mut t, liar, Fault::WrongStateRoot, 1, 40);
    let lie_block = t.beacon().shard_blocks(ShardId(1), lie.height, 1, usize::MAX).unwrap().remove(0);
    let items = (lie_block.inbox.len() + lie_block.txs.len()) as u64;
    run_until(&mut t, 8, |t| games(t).iter().any(|g| g.header == lie.hash));
    run_until(&mut t, 90, |t| games(t).iter().any(|g| g.header == lie.hash && !g.is_open()));
    let g = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    assert_eq!(g.defender, liar_addr);
    let (_, ending) = g.ended.clone().unwrap();
    assert_eq!(ending, Ending::Decided { outcome: Outcome::StepRefuted { winner: Side::Challenger } });
    let d = g.game.descent.clone().expect("the game descended into the item");
    assert_eq!(d.lo, items - 1, "the lie is in the last commitment: the last item");
    assert_eq!((g.game.lo, g.game.hi), (d.last - 1, d.last), "the lie is the item trace's end");
    let level_one = Game::rounds_for(items, spec.dispute_k);
    assert!(
        g.game.rounds <= level_one + Game::rounds_for(d.last, spec.dispute_k),
        "{} rounds for {items} items and a trace of {}",
        g.game.rounds,
        d.last
    );
    let log = t.beacon().game(&g.id).unwrap().unwrap();
    let step = log.step.expect("the step was verified");
    assert_eq!((step.level, step.verdict.as_str()), (2, "refuted"));
    assert!(step.step_bytes < 64 << 10, "a level-2 step of {} bytes", step.step_bytes);
    let status = t.beacon().header_status(ShardId(1), lie.height).unwrap().unwrap();
    assert!(status.discarded.iter().any(|x| x.hash == lie.hash && x.proven && x.game == g.id));
    assert_ledger(&t);
}

#[test]
fn a_wrong_state_root_is_bisected_refuted_and_discarded() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(2)
        .validators_per_shard(2)
        .seed(41)
        .challenge_window_slots(64)
        .txs_per_slot(12)
        .build(dir.path())
        .unwrap();
    t.run(4);
    let liar = first_of(&t, 1);
    let liar_addr = t.validator_info(liar).1;
    let spec = t.spec().clone();
    let bonds_before = t.beacon().games().1;
    let lie = first_lie(&mut t, liar, Fault::WrongStateRoot, 0, 40);
    let lie_block = t.beacon().shard_blocks(ShardId(1), lie.height, 1, usize::MAX).unwrap().remove(0);
    let items = (lie_block.inbox.len() + lie_block.txs.len()) as u64;
    assert!(items > 1, "a block with something to bisect");
    let included = t.slot();

    // an honest mate opens a game within a few slots and wins it
    run_until(&mut t, 8, |t| games(t).iter().any(|g| g.header == lie.hash));
    let opened = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    assert!(
        opened.opened_slot <= included + 3,
        "opened at {} for inclusion at {included}",
        opened.opened_slot
    );
    assert_eq!(opened.defender, liar_addr);
    assert_ne!(opened.challenger, liar_addr);
    run_until(&mut t, 60, |t| games(t).iter().any(|g| g.header == lie.hash && !g.is_open()));
    let g = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    let (_, ending) = g.ended.clone().unwrap();
    assert_eq!(ending, Ending::Decided { outcome: Outcome::StepRefuted { winner: Side::Challenger } });
    assert_eq!(g.game.rounds, Game::rounds_for(items, spec.dispute_k), "⌈log_k n⌉ rounds for n = {items}");
    assert_eq!((g.game.lo, g.game.hi), (items - 1, items), "the lie is in the last commitment only");
    let log = t.beacon().game(&g.id).unwrap().unwrap();
    let step = log.step.expect("the step was verified");
    assert_eq!(step.verdict, "refuted");
    assert!(step.witness_bytes > 0 && step.witness_bytes < 10_000, "witness of {} bytes", step.witness_bytes);

    // the liar is slashed, the challenger rewarded, value conserved
    let bonds = t.beacon().games().1;
    let stake = spec.dispute_stake_gwei;
    assert_eq!(bonds.parties[&liar_addr].slashed, stake);
    let reward = stake * spec.slash_reward_percent / 100;
    assert_eq!(bonds.parties[&g.challenger].rewarded, reward);
    assert_eq!(bonds.parties[&g.challenger].free, bonds_before.parties[&g.challenger].free + reward);
    assert_eq!(bonds.treasury, stake - reward);
    assert_ledger(&t);

    // the header is discarded; the shard continues from the last valid one
    let status = t.beacon().header_status(ShardId(1), lie.height).unwrap().unwrap();
    let discarded = status.discarded.iter().find(|d| d.hash == lie.hash).expect("recorded as discarded");
    assert!(discarded.proven && discarded.game == g.id);
    run_until(&mut t, 30, |t| t.beacon().heads()[1].height > lie.height + 2);
    for i in 0..t.validator_count() {
        if t.validator_info(i).0 != ShardId(1) {
            continue;
        }
        let node = t.node(i).unwrap();
        let at = node.block(lie.height).unwrap().unwrap();
        assert_ne!(at.header.header.hash(), lie.hash, "validator {i} rebuilt the height");
        assert_eq!(
            t.beacon().shard_blocks(ShardId(1), lie.height, 1, usize::MAX).unwrap()[0].header.header.hash(),
            at.header.header.hash()
        );
    }
    // honest parties were never slashed
    for (addr, b) in &bonds.parties {
        if *addr != liar_addr {
            assert_eq!(b.slashed, 0, "{addr} slashed");
        }
    }
}

/// The scenario: shard 1's proposer commits a wrong receipt in a
/// block that consumes messages from shard 0 while both shards keep
/// sending to each other. The honest mate wins the game; shard 1 continues
/// from the last valid header, shard 0's blocks that consumed messages of
/// the discarded blocks are discarded too and rebuilt (a cascade); every
/// transfer still lands exactly once, the audit holds at every slot, and
/// no discarded header is ever final.
#[test]
fn a_wrong_receipt_cascades_to_the_shard_that_consumed_its_messages() {
    use alloy_primitives::{Address, U256};
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(2)
        .validators_per_shard(2)
        .seed(43)
        .challenge_window_slots(48)
        .txs_per_slot(0)
        .build(dir.path())
        .unwrap();
    let (s0, s1) = (members(&t, 0), members(&t, 1));
    let liar = s1[0];
    let liar_addr = t.validator_info(liar).1;
    let mut expected: HashMap<(u32, Address), U256> = HashMap::new();
    let mut discarded_seen: Vec<bridge::Invalidation> = Vec::new();
    let mut lie: Option<u64> = None;
    let mut n = 0u8;
    for round in 0..70u64 {
        if round < 30 {
            for (src, dst, from) in [(0u32, 1u32, 3usize), (1, 0, 4)] {
                n = n.wrapping_add(1);
                let to = Address::repeat_byte(0x40 + n % 100);
                let value = 1_000_000_000u64 + u64::from(n);
                *expected.entry((dst, to)).or_default() += U256::from(value);
                let raw = send(&mut t, src, from, dst, to, u128::from(value));
                let m = members(&t, src);
                t.submit(m[round as usize % m.len()], &raw).unwrap();
            }
        }
        // the liar lies once, in a block that consumes shard 0's messages
        if round == 8 {
            t.set_fault(liar, Some(Fault::WrongReceipt));
        }
        t.step();
        if lie.is_none() && round >= 8 {
            let head = t.beacon().heads()[1];
            if let Ok(Some(b)) = t.node(liar).unwrap().block(head.height)
                && b.header.header.hash() == head.hash
                && b.header.header.proposer == liar_addr
                && b.header.header.beacon_slot > 9
            {
                assert!(!b.inbox.is_empty() || !b.txs.is_empty());
                lie = Some(head.height);
                t.set_fault(liar, None);
            }
        }
        for b in t.beacon().db().blocks_from(t.slot(), 1).unwrap() {
            discarded_seen.extend(b.invalidated.clone());
        }
        let audit = audit_at_beacon_heads(&t).expect("accepted heads held");
        assert!(audit.holds, "conservation broken at slot {}: {audit:?}", t.slot());
        // nothing discarded is final
        let fin = t.beacon().finalized();
        for inv in &discarded_seen {
            let st = t.beacon().header_status(inv.shard, inv.height).unwrap().unwrap();
            if fin[inv.shard.0 as usize] >= inv.height {
                assert_ne!(st.hash, inv.header, "a discarded header became final");
            }
        }
    }
    let lie = lie.expect("the liar proposed an accepted block");
    eprintln!("lie at {lie}, discarded: {discarded_seen:?}");
    let proven = discarded_seen.iter().find(|i| i.cause.is_none()).expect("the lie was proven");
    assert_eq!((proven.shard, proven.height), (ShardId(1), lie));
    let cascade = discarded_seen.iter().find(|i| i.shard == ShardId(0)).expect("the cascade reached shard 0");
    assert_eq!(cascade.cause.map(|c| c.0), Some(ShardId(1)));
    assert!(cascade.cause.unwrap().1 >= lie);
    let g = t.beacon().game(&proven.game).unwrap().unwrap();
    assert!(matches!(g.record.ended, Some((_, Ending::Decided { outcome: Outcome::StepRefuted { .. } }))));
    assert_eq!(
        g.record.game.rounds,
        Game::rounds_for(g.record.items, t.spec().dispute_k),
        "⌈log_k n⌉ rounds"
    );
    assert!(g.record.opened_slot <= g.record.game.turn_since, "opened before it was played");
    // every transfer landed exactly once on both validators of its destination
    for ((dst, to), v) in &expected {
        for &i in if *dst == 0 { &s0 } else { &s1 } {
            assert_eq!(balance(&t, i, *to), *v, "{to} on shard {dst}, validator {i}");
        }
    }
    let audit = audit_at_beacon_heads(&t).unwrap();
    assert!(audit.holds && audit.in_flight.is_zero(), "{audit:?}");
    // messages the discarded shard-0 blocks had consumed show where they
    // had been, and their new fate: consumed again by a block that stands
    let node = t.node(s0[1]).unwrap();
    let mut again = 0;
    for h in cascade.height..=node.head().header.height {
        for e in node.block(h).unwrap().unwrap().inbox {
            let id = alloy_primitives::B256::from(e.message.id().0);
            if let Some(from) = node.reverted_from(&id) {
                assert_eq!(from.role, "consumed");
                assert!(from.height >= cascade.height);
                again += 1;
            }
        }
    }
    assert!(again > 0, "some consumed messages were reverted, then executed again");
}

/// A griefing challenger disputes honest headers: the honest defender's
/// step is upheld every time and the griefer loses its stake each time;
/// the headers stand (and finalize once their games end).
#[test]
fn a_griefing_challenger_loses_its_bond_and_honest_headers_stand() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(3)
        .seed(44)
        .challenge_window_slots(24)
        .txs_per_slot(10)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let griefer = 2;
    let griefer_addr = t.validator_info(griefer).1;
    let bonds_before = t.beacon().games().1;
    t.set_fault_rate(griefer, Some(Fault::GriefingChallenger), 30);
    t.run(12);
    t.set_fault(griefer, None);
    run_until(&mut t, 80, |t| {
        let g = games(t);
        !g.is_empty() && g.iter().all(|g| !g.is_open())
    });
    let all = games(&t);
    assert!(all.len() >= 2, "the griefer opened games ({})", all.len());
    for g in &all {
        assert_eq!(g.challenger, griefer_addr);
        let (_, ending) = g.ended.clone().unwrap();
        assert!(
            matches!(ending, Ending::Decided { outcome: Outcome::StepUpheld { winner: Side::Defender } }),
            "game {} on height {} ended {ending:?}",
            g.id,
            g.height
        );
        let status = t.beacon().header_status(ShardId(0), g.height).unwrap().unwrap();
        assert_eq!(status.hash, g.header, "the honest header stands");
        assert!(status.discarded.is_empty());
    }
    let bonds = t.beacon().games().1;
    let stake = t.spec().dispute_stake_gwei;
    let own = all.iter().filter(|g| g.defender == griefer_addr).count() as u64;
    assert_eq!(bonds.parties[&griefer_addr].slashed, stake * all.len() as u64);
    for (addr, b) in &bonds.parties {
        if *addr != griefer_addr {
            assert_eq!(b.slashed, 0, "honest {addr} slashed");
        }
    }
    // challenging itself never paid: the griefer lost the treasury's share of every stake
    let reward = stake * t.spec().slash_reward_percent / 100;
    assert_eq!(bonds.parties[&griefer_addr].rewarded, reward * own);
    assert!(bonds.parties[&griefer_addr].free < bonds_before.parties[&griefer_addr].free);
    assert_ledger(&t);
    // the disputed headers finalize once their games are over and the window passed
    let top = all.iter().map(|g| g.height).max().unwrap();
    run_until(&mut t, 60, |t| t.beacon().finalized()[0] >= top);
}

/// A defender that stops answering loses on time, even on an honest
/// header: the protocol cannot tell silence from guilt.
#[test]
fn a_silent_defender_loses_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(2)
        .seed(45)
        .challenge_window_slots(40)
        .txs_per_slot(6)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let (silent, griefer) = (0, 1);
    t.set_fault(silent, Some(Fault::SilentDefender));
    t.set_fault_rate(griefer, Some(Fault::GriefingChallenger), 100);
    // the first game against the silent validator's header
    run_until(&mut t, 20, |t| games(t).iter().any(|g| g.defender == t.validator_info(silent).1));
    t.set_fault(griefer, None);
    let g = games(&t).into_iter().find(|g| g.defender == t.validator_info(silent).1).unwrap();
    let clock = t.spec().game_clock();
    run_until(&mut t, 3 * clock, |t| games(t).iter().any(|x| x.id == g.id && !x.is_open()));
    let g = games(&t).into_iter().find(|x| x.id == g.id).unwrap();
    let (at, ending) = g.ended.clone().unwrap();
    assert_eq!(ending, Ending::Decided { outcome: Outcome::Timeout { winner: Side::Challenger } });
    assert!(at >= g.opened_slot + clock, "lost when its clock ran out ({at} vs opened {})", g.opened_slot);
    let status = t.beacon().header_status(ShardId(0), g.height).unwrap().unwrap();
    assert!(status.discarded.iter().any(|d| d.hash == g.header && d.proven));
    assert!(t.beacon().games().1.parties[&t.validator_info(silent).1].slashed > 0);
}

/// Moves that prove nothing change nothing: a step with a witness missing
/// an entry is refused and the game waits for a real one; a game against
/// a header whose window closed, an unknown header, or by an unbonded key
/// is refused; a move out of turn is refused.
#[test]
fn bad_steps_late_games_and_strangers_decide_nothing() {
    use beacon::MoveRejection;
    use bridge::{Action, SignedMove, ValidatorKey};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(2)
        .seed(46)
        .challenge_window_slots(16)
        .txs_per_slot(8)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let spec_hash = t.spec().hash();
    let liar = 0;
    first_lie(&mut t, liar, Fault::WrongStateRoot, 0, 20);
    // out of turn: the liar (defender) tries to pick
    run_until(&mut t, 6, |t| !games(t).is_empty());
    let g = games(&t).remove(0);
    // a proposer cannot dispute its own header (it could squat its game slots)
    let own = SignedMove::sign(
        Action::Open { shard: ShardId(0), height: g.height, header: g.header, item: Some(1) },
        &spec_hash,
        t.validator_key(liar),
    );
    assert!(matches!(t.beacon().submit_move(own, t.slot()), Err(MoveRejection::OwnHeader)));
    // a step over the size limit, built without the decoder (as JSON-RPC does)
    let huge = SignedMove::sign(
        Action::Step { game: g.id, at: g.position(), step: vec![0; bridge::MAX_STEP_BYTES + 1] },
        &spec_hash,
        t.validator_key(1),
    );
    assert!(matches!(t.beacon().submit_move(huge, t.slot()), Err(MoveRejection::BadStep(_))));
    let pick = SignedMove::sign(
        Action::Pick { game: g.id, at: g.position(), index: 0 },
        &spec_hash,
        t.validator_key(liar),
    );
    assert!(matches!(
        t.beacon().submit_move(pick, t.slot()),
        Err(MoveRejection::NotAParty { side: bridge::game::Side::Challenger, .. })
    ));
    // wait for the single step, and send a witness missing an entry first
    run_until(&mut t, 30, |t| {
        games(t).iter().any(|x| x.id == g.id && (x.game.phase == bridge::game::Phase::Step || !x.is_open()))
    });
    let at_step = games(&t).into_iter().find(|x| x.id == g.id).unwrap();
    assert!(at_step.is_open(), "still at the step when a bad witness comes");
    let mate = 1;
    let node = t.node(mate).unwrap();
    let block = node.mismatch_evidence(&g.header).unwrap().unwrap().block;
    let exec = shard::reexecute(node, t.spec(), &block).unwrap().exec;
    let index = at_step.game.lo;
    let leaves: Vec<bridge::Hash> = exec.items.iter().map(prover::Item::item_hash).collect();
    let hashes = node.block_hashes_below(g.height).unwrap();
    let witness =
        prover::produce_witness(node.state(), g.height - 1, &exec, index as usize, &hashes).unwrap();
    let good = prover::game::Step {
        index,
        item: exec.items[index as usize].clone(),
        proof: bridge::MerkleTree::new(&leaves).proof(index as usize).unwrap(),
        witness: witness.clone(),
    };
    let mut bad = good.clone();
    bad.witness = witness.without_entry(0);
    let key = t.validator_key(mate).clone();
    let send = |t: &Testnet, s: &prover::game::Step| {
        let mv = SignedMove::sign(
            Action::Step { game: g.id, at: at_step.position(), step: s.encode() },
            &spec_hash,
            &key,
        );
        t.beacon().submit_move(mv, t.slot())
    };
    assert!(matches!(send(&t, &bad), Err(MoveRejection::BadStep(_))));
    let mut other = good.clone();
    other.index += 1;
    assert!(matches!(send(&t, &other), Err(MoveRejection::BadStep(_))), "a step of another position");
    let still = games(&t).into_iter().find(|x| x.id == g.id).unwrap();
    assert!(
        still.is_open() && still.game.phase == bridge::game::Phase::Step,
        "a bad witness decided nothing"
    );
    assert_eq!(t.beacon().game(&g.id).unwrap().unwrap().rejected_steps, 2);
    // a party whose steps keep proving nothing is not listened to past a
    // few (each costs the referee a re-execution); the other party still is
    let liar_key = t.validator_key(liar).clone();
    let send_as = |t: &Testnet, k: &bridge::ValidatorKey, s: &prover::game::Step| {
        let mv = SignedMove::sign(
            Action::Step { game: g.id, at: at_step.position(), step: s.encode() },
            &spec_hash,
            k,
        );
        t.beacon().submit_move(mv, t.slot())
    };
    for _ in 0..beacon::MAX_REJECTED_STEPS {
        assert!(matches!(send_as(&t, &liar_key, &bad), Err(MoveRejection::BadStep(_))));
    }
    assert!(
        matches!(send_as(&t, &liar_key, &bad), Err(MoveRejection::StepsExhausted { .. })),
        "no longer looked at"
    );
    // the good step decides
    send(&t, &good).unwrap();
    // once: the game has moved on from the position the step answered
    assert!(matches!(send(&t, &good), Err(MoveRejection::StalePosition { .. })), "decided once");
    t.step();
    let done = games(&t).into_iter().find(|x| x.id == g.id).unwrap();
    assert!(matches!(done.ended, Some((_, Ending::Decided { outcome: Outcome::StepRefuted { .. } }))));

    // late, unknown, unbonded
    run_until(&mut t, 40, |t| t.slot() > 40);
    let old = t.beacon().shard_headers(ShardId(0), 1, 1).unwrap().remove(0);
    let late = SignedMove::sign(
        Action::Open { shard: ShardId(0), height: 1, header: old.header.header.hash(), item: None },
        &spec_hash,
        &key,
    );
    assert!(matches!(t.beacon().submit_move(late, t.slot()), Err(MoveRejection::WindowClosed { .. })));
    let head = t.beacon().heads()[0];
    let unknown = SignedMove::sign(
        Action::Open {
            shard: ShardId(0),
            height: head.height,
            header: bridge::Hash::of(b"no such header"),
            item: None,
        },
        &spec_hash,
        &key,
    );
    assert!(matches!(t.beacon().submit_move(unknown, t.slot()), Err(MoveRejection::UnknownHeader { .. })));
    let stranger = ValidatorKey::derive(b"not bonded");
    let mv = SignedMove::sign(
        Action::Open { shard: ShardId(0), height: head.height, header: head.hash, item: None },
        &spec_hash,
        &stranger,
    );
    assert!(matches!(t.beacon().submit_move(mv, t.slot()), Err(MoveRejection::NotBonded { .. })));
    // a signature over another network's spec recovers to a stranger
    let forged = SignedMove::sign(
        Action::Open { shard: ShardId(0), height: head.height, header: head.hash, item: None },
        &bridge::Hash::of(b"another network"),
        &key,
    );
    assert!(matches!(t.beacon().submit_move(forged, t.slot()), Err(MoveRejection::NotBonded { .. })));
}

/// The randomized run: 4 shards, one validator per shard playing one
/// fault mode at 10 % of its chances (wrong state root, wrong receipt,
/// silent defender, griefing challenger), cross-shard sends every slot.
/// Every discarded header went within its window, no honest party is ever
/// slashed, no header a dispute discarded is final, every final header
/// re-executes on an honest validator, every send lands exactly once, and
/// the audit holds at every slot.
#[test]
fn a_randomized_run_with_every_fault_mode_keeps_every_invariant() {
    use alloy_primitives::{Address, U256};
    use rand::{Rng, SeedableRng};
    use std::collections::{HashMap, HashSet};
    let dir = tempfile::tempdir().unwrap();
    let window = 40;
    let mut t = Testnet::builder()
        .shards(4)
        .validators_per_shard(3)
        .seed(47)
        .challenge_window_slots(window)
        .txs_per_slot(2)
        .build(dir.path())
        .unwrap();
    // not the testnet's own seed: its background transfers draw from that one
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4_747);
    let faults =
        [Fault::WrongStateRoot, Fault::WrongReceipt, Fault::SilentDefender, Fault::GriefingChallenger];
    let mut byzantine = HashSet::new();
    for (s, f) in faults.iter().enumerate() {
        let i = members(&t, s as u32)[0];
        t.set_fault_rate(i, Some(*f), 10);
        byzantine.insert(t.validator_info(i).1);
    }
    let mut expected: HashMap<(u32, Address), U256> = HashMap::new();
    let mut invalidated: Vec<(u64, bridge::Invalidation)> = Vec::new();
    let slots = 700u64;
    for round in 0..slots {
        if round < slots - 2 * window - 20 {
            for _ in 0..3 {
                let src = rng.gen_range(0..4u32);
                let dst = (src + rng.gen_range(1..4)) % 4;
                let to = Address::from(rng.r#gen::<[u8; 20]>());
                let value = rng.gen_range(1..1_000_000_000u64);
                *expected.entry((dst, to)).or_default() += U256::from(value);
                let raw = send(&mut t, src, 3 + rng.gen_range(0..4), dst, to, u128::from(value));
                let m = members(&t, src);
                t.submit(m[rng.gen_range(0..m.len())], &raw).unwrap();
            }
        }
        t.step();
        for b in t.beacon().db().blocks_from(t.slot(), 1).unwrap() {
            invalidated.extend(b.invalidated.iter().map(|i| (b.slot, i.clone())));
        }
        // what is final always conserves value (a fabricated message breaks
        // it only in optimistic state, until the cascade takes it back)
        let audit = audit_at_final(&t, &byzantine);
        assert!(audit.holds, "conservation at the final heights broken at slot {}: {audit:?}", t.slot());
    }
    // the byzantine stop; the network settles
    for i in 0..t.validator_count() {
        t.set_fault(i, None);
    }
    t.run(2 * window + 10);

    let all = games(&t);
    let ended: Vec<&GameRecord> = all.iter().filter(|g| !g.is_open()).collect();
    eprintln!(
        "{} games ({} ended), {} invalidations, heads {:?}, finalized {:?}",
        all.len(),
        ended.len(),
        invalidated.len(),
        t.beacon().heads().iter().map(|h| h.height).collect::<Vec<_>>(),
        t.beacon().finalized()
    );
    assert!(invalidated.iter().any(|(_, i)| i.cause.is_none()), "some fraud was proven");
    assert!(
        ended
            .iter()
            .any(|g| matches!(g.ended, Some((_, Ending::Decided { outcome: Outcome::StepUpheld { .. } })))),
        "some griefing was refuted"
    );
    // no honest party slashed, and every stake went where its game says
    for (addr, b) in &t.beacon().games().1.parties {
        if !byzantine.contains(addr) {
            assert_eq!(b.slashed, 0, "honest {addr} slashed");
        }
    }
    assert_ledger(&t);
    // every proven header went within its window, and every game ended within two
    for g in &ended {
        let (at, _) = g.ended.clone().unwrap();
        let included = t
            .beacon()
            .header_status(g.shard, g.height)
            .unwrap()
            .map(|s| {
                s.discarded.iter().find(|d| d.hash == g.header).map_or(s.included_slot, |d| d.included_slot)
            })
            .unwrap();
        assert!(at <= included + 2 * window, "game {} ended at {at}, header included at {included}", g.id);
    }
    for (slot, inv) in &invalidated {
        let d = t.beacon().db().discarded(inv.shard, inv.height).unwrap();
        let rec = d.iter().find(|d| d.hash == inv.header).expect("recorded");
        assert!(*slot <= rec.included_slot + 2 * window);
        // never final: its height is final only with another header
        let status = t.beacon().header_status(inv.shard, inv.height).unwrap().unwrap();
        assert_ne!(status.hash, inv.header);
    }
    // every final header is on every honest validator's chain (it re-executed there)
    let fin = t.beacon().finalized();
    for s in 0..4u32 {
        assert!(fin[s as usize] > 0, "shard {s} finalized something");
        for i in members(&t, s) {
            if byzantine.contains(&t.validator_info(i).1) {
                continue;
            }
            let node = t.node(i).unwrap();
            for h in 1..=fin[s as usize] {
                let ours = node.block(h).unwrap().unwrap().header.header.hash();
                let beacon =
                    t.beacon().db().shard_header(ShardId(s), h).unwrap().unwrap().header.header.hash();
                assert_eq!(ours, beacon, "final header {s}/{h} is not validator {i}'s");
            }
        }
    }
    // no fabricated value survived, and everything balances at the heads
    for i in 0..t.validator_count() {
        assert_eq!(balance(&t, i, shard::FABRICATED_RECIPIENT), U256::ZERO, "validator {i}");
    }
    let audit = audit_at_beacon_heads(&t).unwrap();
    assert!(audit.holds, "{audit:?}");
    // every send landed exactly once
    for ((dst, to), v) in &expected {
        for i in members(&t, *dst) {
            assert_eq!(balance(&t, i, *to), *v, "{to} on shard {dst}, validator {i}");
        }
    }
}

/// Two honest mates dispute the same lie in parallel: one game proves it,
/// the other ends void with both stakes returned. A bond withdrawal waits
/// one challenge window; one the bond does not cover is refused.
#[test]
fn parallel_games_on_one_lie_end_once_and_withdrawals_wait_a_window() {
    use beacon::MoveRejection;
    use bridge::{Action, SignedMove};
    let dir = tempfile::tempdir().unwrap();
    let window = 24;
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(3)
        .seed(48)
        .challenge_window_slots(window)
        .txs_per_slot(8)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let liar = 0;
    let liar_addr = t.validator_info(liar).1;
    let before = t.beacon().games().1;
    let lie = first_lie(&mut t, liar, Fault::WrongStateRoot, 0, 20);
    run_until(&mut t, 40, |t| {
        let g: Vec<_> = games(t).into_iter().filter(|g| g.header == lie.hash).collect();
        g.len() == 2 && g.iter().all(|g| !g.is_open())
    });
    let g: Vec<GameRecord> = games(&t).into_iter().filter(|g| g.header == lie.hash).collect();
    let won: Vec<_> = g.iter().filter(|g| matches!(g.ended, Some((_, Ending::Decided { .. })))).collect();
    let void: Vec<_> = g.iter().filter(|g| matches!(g.ended, Some((_, Ending::Void)))).collect();
    assert_eq!((won.len(), void.len()), (1, 1), "{g:?}");
    let bonds = t.beacon().games().1;
    let stake = t.spec().dispute_stake_gwei;
    assert_eq!(bonds.parties[&liar_addr].slashed, stake, "slashed once, not per game");
    let v = void[0].challenger;
    assert_eq!(bonds.parties[&v].free, before.parties[&v].free, "the void game's stake came back");
    assert_eq!(bonds.parties[&v].locked, 0);

    // withdrawals
    let key = t.validator_key(1).clone();
    let me = key.address();
    let spec_hash = t.spec().hash();
    let free = t.beacon().games().1.parties[&me].free;
    let too_much = SignedMove::sign(Action::Withdraw { amount_gwei: free + 1, nonce: 0 }, &spec_hash, &key);
    assert!(matches!(t.beacon().submit_move(too_much, t.slot()), Err(MoveRejection::BadWithdrawal(_))));
    let asked_at = t.slot();
    let w = SignedMove::sign(Action::Withdraw { amount_gwei: 1_000, nonce: 0 }, &spec_hash, &key);
    t.beacon().submit_move(w.clone(), asked_at).unwrap();
    // anyone replaying it (it is public in the beacon block) is refused
    assert!(matches!(t.beacon().submit_move(w, asked_at), Err(MoveRejection::BadWithdrawal(_))));
    t.step();
    let b = &t.beacon().games().1.parties[&me];
    assert_eq!((b.free, b.withdrawn, b.withdrawing.len()), (free - 1_000, 0, 1));
    run_until(&mut t, window + 4, |t| t.beacon().games().1.parties[&me].withdrawn == 1_000);
    assert!(t.slot() >= asked_at + window, "paid only after one window");
    assert_ledger(&t);
    // one party cannot fill a beacon block with moves
    let mut refused = None;
    for nonce in 1..=beacon::MAX_MOVES_PER_PARTY as u64 + 1 {
        let w = SignedMove::sign(Action::Withdraw { amount_gwei: 1, nonce }, &spec_hash, &key);
        if let Err(e) = t.beacon().submit_move(w, t.slot()) {
            refused = Some((nonce, e));
            break;
        }
    }
    assert!(matches!(refused, Some((_, MoveRejection::Full))), "{refused:?}");
    let other =
        SignedMove::sign(Action::Withdraw { amount_gwei: 1, nonce: 0 }, &spec_hash, t.validator_key(2));
    t.beacon().submit_move(other, t.slot()).expect("another party still has room");
}

/// The network's supply audit at each shard's final height, read from an
/// honest validator (`honest` excludes the byzantine ones).
fn audit_at_final(t: &Testnet, byzantine: &std::collections::HashSet<bridge::Address>) -> shard::Audit {
    let fin = t.beacon().finalized();
    let shards = (0..fin.len() as u32)
        .map(|s| {
            members(t, s)
                .into_iter()
                .filter(|i| !byzantine.contains(&t.validator_info(*i).1))
                .filter_map(|i| t.node(i))
                .find_map(|n| n.supply(fin[s as usize]).ok().flatten())
                .expect("an honest validator holds the final height")
        })
        .collect();
    shard::Audit::of(shards)
}

/// A fabricated outbox message (1 ETH from nothing) is consumed by its
/// destination, then the source header is proven invalid and the cascade
/// takes the mint back: the recipient ends with nothing, the audit at the
/// final heights holds at every slot, and after the rebuild it holds at the
/// accepted heads too.
#[test]
fn a_fabricated_message_is_minted_then_taken_back_by_the_cascade() {
    use alloy_primitives::U256;
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(2)
        .validators_per_shard(2)
        .seed(49)
        .challenge_window_slots(40)
        .txs_per_slot(6)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let (s0, s1) = (members(&t, 0), members(&t, 1));
    let liar = s0[0];
    let byz: std::collections::HashSet<_> = [t.validator_info(liar).1].into_iter().collect();
    let since = t.slot();
    t.set_fault(liar, Some(Fault::FabricatedMessage));
    let mut minted = false;
    let mut invalidations = Vec::new();
    for _ in 0..60 {
        t.step();
        if t.slot() > since + 1 && t.node(liar).unwrap().head().header.beacon_slot > since {
            t.set_fault(liar, None);
        }
        minted |= s1.iter().any(|i| balance(&t, *i, shard::FABRICATED_RECIPIENT) > U256::ZERO);
        for b in t.beacon().db().blocks_from(t.slot(), 1).unwrap() {
            invalidations.extend(b.invalidated.clone());
        }
        let audit = audit_at_final(&t, &byz);
        assert!(audit.holds, "conservation at the final heights broken at slot {}: {audit:?}", t.slot());
    }
    assert!(minted, "the destination consumed the fabricated message");
    assert!(invalidations.iter().any(|i| i.shard == ShardId(0) && i.cause.is_none()), "{invalidations:?}");
    assert!(
        invalidations.iter().any(|i| i.shard == ShardId(1) && i.cause.is_some_and(|c| c.0 == ShardId(0)))
    );
    for i in s1 {
        assert_eq!(balance(&t, i, shard::FABRICATED_RECIPIENT), U256::ZERO, "validator {i} kept the mint");
    }
    let audit = audit_at_beacon_heads(&t).unwrap();
    assert!(audit.holds, "{audit:?}");
}

/// A silent proposer's honest header is defended by a shard-mate that
/// re-executed it: once half the proposer's clock has run, the mate plays
/// the defender's moves and the step; the griefer loses, the header stands.
#[test]
fn a_shard_mate_stands_in_for_a_silent_proposer() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(3)
        .seed(50)
        .challenge_window_slots(40)
        .txs_per_slot(6)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let (silent, griefer) = (0, 1);
    let silent_addr = t.validator_info(silent).1;
    t.set_fault(silent, Some(Fault::SilentDefender));
    t.set_fault_rate(griefer, Some(Fault::GriefingChallenger), 100);
    run_until(&mut t, 20, |t| games(t).iter().any(|g| g.defender == silent_addr));
    t.set_fault(griefer, None);
    let g = games(&t).into_iter().find(|g| g.defender == silent_addr).unwrap();
    let clock = t.spec().game_clock();
    run_until(&mut t, 3 * clock, |t| games(t).iter().any(|x| x.id == g.id && !x.is_open()));
    let g = games(&t).into_iter().find(|x| x.id == g.id).unwrap();
    assert!(
        matches!(
            g.ended,
            Some((_, Ending::Decided { outcome: Outcome::StepUpheld { winner: Side::Defender } }))
        ),
        "{:?}",
        g.ended
    );
    let log = t.beacon().game(&g.id).unwrap().unwrap();
    assert!(log.moves.iter().any(|m| m.party == t.validator_info(2).1), "the mate moved: {:?}", log.moves);
    assert!(log.moves.iter().all(|m| m.party != silent_addr), "the proposer stayed silent");
    let status = t.beacon().header_status(ShardId(0), g.height).unwrap().unwrap();
    assert_eq!(status.hash, g.header, "the honest header stands");
    let bonds = t.beacon().games().1;
    assert_eq!(bonds.parties[&silent_addr].slashed, 0);
    assert!(bonds.parties[&t.validator_info(griefer).1].slashed > 0);
}

/// Games against one item's receipt: the defender first claims `c_j` with
/// its receipts proven to be the header's first `j`; an honest header's
/// claim stands and the challenger loses; a claim whose receipts are not the
/// header's is refused; a proposer whose header's receipts are not its
/// execution's cannot claim, and loses on time.
#[test]
fn receipt_games_bind_the_defenders_claim_to_the_header() {
    use beacon::MoveRejection;
    use bridge::{Action, Frontier, MerkleTree, SignedMove, TraceCommitment};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(2)
        .seed(51)
        .challenge_window_slots(60)
        .txs_per_slot(8)
        .build(dir.path())
        .unwrap();
    t.run(4);
    let spec_hash = t.spec().hash();
    // an honest header with a few items, disputed by the validator that did not propose it
    let head = t.beacon().heads()[0];
    let block = t.beacon().shard_blocks(ShardId(0), head.height, 1, usize::MAX).unwrap().remove(0);
    assert!(block.txs.len() >= 3);
    let proposer = (0..2).find(|i| t.validator_info(*i).1 == block.header.header.proposer).unwrap();
    let other = 1 - proposer;
    t.set_challenger(other, false);
    let open = |t: &Testnet, who: usize, height: u64, header: bridge::Hash, j: u64| {
        let mv = SignedMove::sign(
            Action::Open { shard: ShardId(0), height, header, item: Some(j) },
            &spec_hash,
            t.validator_key(who),
        );
        t.beacon().submit_move(mv, t.slot())
    };
    open(&t, other, head.height, head.hash, 99).unwrap_err();
    open(&t, other, head.height, head.hash, 2).unwrap();
    let g = games(&t).into_iter().find(|g| g.header == head.hash).unwrap();
    assert_eq!((g.receipt_item, g.claimed(), g.game.hi), (Some(2), false, 2));
    // a claim whose receipts are not the header's first two
    let fake = Frontier::of(&[bridge::Hash::of(b"r0"), bridge::Hash::of(b"r1")]);
    let proof = MerkleTree::new(&[bridge::Hash::of(b"r0"), bridge::Hash::of(b"r1"), bridge::Hash::of(b"r2")])
        .prefix_proof(2)
        .unwrap();
    let commitment = TraceCommitment { receipts_root: fake.root(), ..Default::default() };
    let bad = SignedMove::sign(
        Action::Claim { game: g.id, at: g.position(), commitment, receipts: fake, proof },
        &spec_hash,
        t.validator_key(proposer),
    );
    assert!(matches!(t.beacon().submit_move(bad, t.slot()), Err(MoveRejection::BadClaim { .. })));
    // a bisection before the claim is refused
    let early = SignedMove::sign(
        Action::Bisect { game: g.id, at: g.position(), commitments: vec![bridge::Hash::ZERO] },
        &spec_hash,
        t.validator_key(proposer),
    );
    assert!(matches!(t.beacon().submit_move(early, t.slot()), Err(MoveRejection::Unclaimed)));
    run_until(&mut t, 30, |t| games(t).iter().any(|x| x.id == g.id && !x.is_open()));
    let g = games(&t).into_iter().find(|x| x.id == g.id).unwrap();
    assert!(g.claimed(), "the honest defender claimed");
    assert_eq!(
        g.ended.unwrap().1,
        Ending::Decided { outcome: Outcome::StepUpheld { winner: Side::Defender } }
    );
    assert_eq!(g.game.rounds, Game::rounds_for(2, t.spec().dispute_k));

    // a lying proposer (the last receipt altered) cannot claim the last receipt
    let liar = proposer;
    let lie = first_lie(&mut t, liar, Fault::WrongReceipt, 1, 20);
    let n = t.node(liar).unwrap().block(lie.height).unwrap().unwrap().txs.len() as u64;
    open(&t, other, lie.height, lie.hash, n).unwrap();
    let clock = t.spec().game_clock();
    run_until(&mut t, 3 * clock, |t| games(t).iter().any(|x| x.header == lie.hash && !x.is_open()));
    let g = games(&t).into_iter().find(|x| x.header == lie.hash).unwrap();
    assert!(!g.claimed());
    assert_eq!(
        g.ended.unwrap().1,
        Ending::Decided { outcome: Outcome::Timeout { winner: Side::Challenger } }
    );
    let status = t.beacon().header_status(ShardId(0), lie.height).unwrap().unwrap();
    assert!(status.discarded.iter().any(|d| d.hash == lie.hash && d.proven));
}

/// The beacon restarts in the middle of a game (its state reopened from
/// rocksdb, as after a crash): the game, the bonds and the moves sealed so
/// far are all there, moves lost with the unsealed slot are sent again, and
/// the game ends as it would have.
#[test]
fn a_game_survives_a_beacon_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(2)
        .seed(52)
        .challenge_window_slots(60)
        .txs_per_slot(12)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let liar = 0;
    let liar_addr = t.validator_info(liar).1;
    let lie = first_lie(&mut t, liar, Fault::WrongStateRoot, 5, 20);
    run_until(&mut t, 20, |t| games(t).iter().any(|g| g.header == lie.hash && g.moves >= 2));
    let before = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    assert!(before.is_open());
    let sealed_bonds = t.beacon().games().1;
    t.restart_beacon().unwrap();
    let after = games(&t).into_iter().find(|g| g.header == lie.hash).expect("the game survived");
    assert!(after.is_open() && after.moves <= before.moves);
    assert_eq!(t.beacon().games().1, sealed_bonds, "bonds as sealed");
    run_until(&mut t, 40, |t| games(t).iter().any(|g| g.header == lie.hash && !g.is_open()));
    let g = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    assert_eq!(
        g.ended.unwrap().1,
        Ending::Decided { outcome: Outcome::StepRefuted { winner: Side::Challenger } }
    );
    assert_eq!(t.beacon().games().1.parties[&liar_addr].slashed, t.spec().dispute_stake_gwei);
}

/// A block holding an item that is invalid in its position (a replayed
/// transaction): the challenger's trace stops before it, the bisection
/// narrows to it, and the challenger's step shows it invalid — the verdict
/// refutes the claim that a valid block holds it there.
#[test]
fn an_item_invalid_in_its_position_is_refuted_by_its_step() {
    refute_a_bad_third_item(53, false);
}

/// The same with bytes that do not decode as a transaction at all: the
/// step carries them with their proof under the items root.
#[test]
fn an_undecodable_item_is_refuted_by_its_step() {
    refute_a_bad_third_item(55, true);
}

fn refute_a_bad_third_item(seed: u64, garbage: bool) {
    use alloy_primitives::{Address, Bytes, TxKind, U256};
    use bridge::{Action, Encode, ShardBlock, ShardHeader, SignedHeader, SignedMove};
    use net::{Network, Topic};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(2)
        .seed(seed)
        .challenge_window_slots(60)
        .txs_per_slot(0)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let (liar, mate) = (0, 1);
    let key = t.validator_key(liar).clone();
    t.crash(liar);
    let slot = (t.slot() + 2..).find(|s| t.spec().proposer(ShardId(0), *s) == Some(key.address())).unwrap();
    while t.slot() + 1 < slot {
        t.step();
    }
    // two valid transfers, then the first one again (its nonce is spent)
    let a =
        t.call(ShardId(0), 6, TxKind::Call(Address::repeat_byte(0x61)), U256::from(1), Bytes::new(), 21_000);
    let b =
        t.call(ShardId(0), 7, TxKind::Call(Address::repeat_byte(0x62)), U256::from(1), Bytes::new(), 21_000);
    let third = if garbage { vec![0x02, 0xde, 0xad, 0xbe, 0xef] } else { a.to_vec() };
    let txs = vec![a.to_vec(), b.to_vec(), third];
    let head = t.node(mate).unwrap().head();
    let mut block =
        ShardBlock { header: SignedHeader::sign(ShardHeader::default(), &key), inbox: vec![], txs };
    let mut h = ShardHeader {
        shard: ShardId(0),
        height: head.header.height + 1,
        parent_hash: head.hash,
        beacon_slot: slot,
        timestamp: t.spec().slot_timestamp(slot),
        proposer: key.address(),
        pre_state_root: head.header.post_state_root,
        items_root: block.items_root(),
        post_state_root: bridge::Hash::of(b"whatever it likes"),
        gas_used: 63_000,
        gas_limit: head.header.gas_limit,
        base_fee: bridge::next_base_fee(&head.header),
        ..Default::default()
    };
    h.trace_root = h.last_commitment().hash();
    block.header = SignedHeader::sign(h, &key);
    let lie = block.header.header.hash();
    t.beacon().submit(block.clone(), slot).unwrap();
    let (rogue, _rx) = t.hub().join(999);
    rogue.subscribe(Topic::ShardBlocks(ShardId(0)));
    rogue.publish(Topic::ShardBlocks(ShardId(0)), block.encode());
    run_until(&mut t, 10, |t| games(t).iter().any(|g| g.header == lie));
    let run = shard::reexecute(t.node(mate).unwrap(), t.spec(), &block).unwrap();
    assert_eq!(run.invalid.as_ref().map(|r| r.index), Some(2), "the third item is invalid in its position");
    assert_eq!(run.undecodable.is_some(), garbage);
    let truth = run.commitments.clone();
    // the liar (crashed, so the test plays it) claims a valid trace throughout
    let spec_hash = t.spec().hash();
    for _ in 0..30 {
        let g = games(&t).into_iter().find(|g| g.header == lie).unwrap();
        if !g.is_open() {
            break;
        }
        if g.game.phase == bridge::game::Phase::Bisect {
            let commitments = g
                .game
                .points()
                .iter()
                .map(|p| truth.get(*p as usize).copied().unwrap_or(bridge::Hash::of(&p.to_be_bytes())))
                .collect();
            let mv = SignedMove::sign(
                Action::Bisect { game: g.id, at: g.position(), commitments },
                &spec_hash,
                &key,
            );
            let _ = t.beacon().submit_move(mv, t.slot());
        }
        t.step();
    }
    let g = games(&t).into_iter().find(|g| g.header == lie).unwrap();
    assert_eq!(
        g.ended.clone().unwrap().1,
        Ending::Decided { outcome: Outcome::StepRefuted { winner: Side::Challenger } }
    );
    assert_eq!((g.game.lo, g.game.hi), (2, 3), "bisected to the invalid item");
    let log = t.beacon().game(&g.id).unwrap().unwrap();
    let step = log.step.expect("a step decided it");
    assert_eq!((step.verdict.as_str(), step.submitted_by), ("refuted", t.validator_info(mate).1));
    assert_eq!(step.witness_bytes == 0, garbage, "an undecodable item needs no witness");
}

/// A proposer that withdrew its bond cannot be held to account: the beacon
/// refuses its headers, and the shard goes on with its bonded validators.
#[test]
fn an_unbonded_proposer_is_refused() {
    use bridge::{Action, SignedMove};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(2)
        .seed(54)
        .challenge_window_slots(8)
        .txs_per_slot(4)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let key = t.validator_key(1).clone();
    let free = t.beacon().games().1.parties[&key.address()].free;
    let mv = SignedMove::sign(Action::Withdraw { amount_gwei: free, nonce: 0 }, &t.spec().hash(), &key);
    t.beacon().submit_move(mv, t.slot()).unwrap();
    let height = t.beacon().heads()[0].height;
    t.run(20);
    // beacon blocks list it; it stops proposing; the shard goes on
    let (last, _) = t.beacon().head().unwrap();
    assert!(t.beacon().db().block(last).unwrap().unwrap().unbonded.contains(&key.address()));
    assert!(t.beacon().heads()[0].height > height, "the bonded validator goes on");
    let headers = t.beacon().shard_headers(ShardId(0), height + 1, 100).unwrap();
    assert!(headers.iter().all(|h| h.header.header.proposer != key.address()));
    // a header it signs anyway is refused
    let slot = (t.slot() + 1..).find(|s| t.spec().proposer(ShardId(0), *s) == Some(key.address())).unwrap();
    let block = t.node(1).unwrap().propose(slot, t.spec(), &key, vec![]).unwrap();
    let refused = t.beacon().submit(block, slot).unwrap_err();
    assert_eq!(refused.label(), "unbonded", "{refused}");
}

/// The challenger's validator crashes mid-game and restarts: its new agent
/// asks the beacon which games are open, finds its own waiting, and plays
/// it to the end.
#[test]
fn a_restarted_challenger_finds_its_game_and_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(2)
        .seed(56)
        .challenge_window_slots(60)
        .txs_per_slot(12)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let (liar, mate) = (0, 1);
    let lie = first_lie(&mut t, liar, Fault::WrongStateRoot, 5, 20);
    run_until(&mut t, 10, |t| games(t).iter().any(|g| g.header == lie.hash));
    t.crash(mate);
    t.run(3);
    let mid = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    assert!(mid.is_open(), "still open while the challenger is down");
    t.restart(mate).unwrap();
    assert!(t.games_of(mate).is_empty(), "a fresh agent knows no game");
    run_until(&mut t, 40, |t| games(t).iter().any(|g| g.header == lie.hash && !g.is_open()));
    let g = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    assert_eq!(
        g.ended.unwrap().1,
        Ending::Decided { outcome: Outcome::StepRefuted { winner: Side::Challenger } }
    );
    assert_eq!(g.challenger, t.validator_info(mate).1);
}

/// Runtime code that reads the balance of every address (`PUSH20 a
/// BALANCE POP`), loading each account and its code.
fn reader_code(targets: &[alloy_primitives::Address]) -> Vec<u8> {
    let mut code = Vec::new();
    for a in targets {
        code.push(0x73);
        code.extend_from_slice(a.as_slice());
        code.extend_from_slice(&[0x31, 0x50]);
    }
    code.push(0x00);
    code
}

/// Init code returning `runtime` (`CODECOPY` then `RETURN`).
fn init_code(runtime: &[u8]) -> alloy_primitives::Bytes {
    let len = u16::try_from(runtime.len()).unwrap().to_be_bytes();
    let mut code =
        vec![0x61, len[0], len[1], 0x60, 0x0e, 0x60, 0x00, 0x39, 0x61, len[0], len[1], 0x60, 0x00, 0xf3];
    code.extend_from_slice(runtime);
    code.into()
}

/// A user's transaction that loads more contract code than any dispute
/// move could carry (24 different 24 KiB contracts: 576 KiB) succeeds as
/// on Ethereum (stf version 4: no witness budget for transactions); a
/// griefer disputes the honest block holding it, the honest proposer,
/// whose whole-item step would not fit in a move, descends into the
/// transaction, the game ends on a level-2 step that is upheld, and the
/// header stands.
#[test]
fn an_honest_block_with_a_transaction_over_a_moves_size_survives_a_griefer_at_level_two() {
    use alloy_primitives::{TxKind, U256};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(3)
        .seed(47)
        // 40 / (2 × 3 validators) = 6 slots a clock: level 1's turns; the
        // descent adds level 2's (`level_two_allowance`: ⌈log_4 L⌉ + 2)
        .challenge_window_slots(40)
        .txs_per_slot(0)
        .build(dir.path())
        .unwrap();
    t.run(2);
    let user = 5;
    let reader = deploy_reader(&mut t, 0, user);
    let griefer = 2;
    let griefer_addr = t.validator_info(griefer).1;
    t.set_fault_rate(griefer, Some(Fault::GriefingChallenger), 100);
    let heavy = t.call(ShardId(0), user, TxKind::Call(reader), U256::ZERO, Default::default(), 600_000);
    t.submit(0, &heavy).unwrap();
    let heavy_hash = alloy_primitives::keccak256(&heavy);
    run_until(&mut t, 20, |t| stored_receipt(t, 0, heavy_hash).is_some());
    let (height, r) = stored_receipt(&t, 0, heavy_hash).unwrap();
    assert!(r.success && r.gas_used > READ_CONTRACTS * 2_600 && r.gas_used < 600_000, "{r:?}");
    // the griefer disputes the block holding it
    run_until(&mut t, 12, |t| games(t).iter().any(|g| g.height == height));
    t.set_fault(griefer, None);
    let game = games(&t).into_iter().find(|g| g.height == height).unwrap();
    assert_eq!(game.challenger, griefer_addr);
    upheld_at_level_two(&mut t, &game);
}

/// The receipt of transaction `hash` in validator `i`'s chain, and the
/// height of its block.
fn stored_receipt(t: &Testnet, i: usize, hash: alloy_primitives::B256) -> Option<(u64, prover::Receipt)> {
    let (_, block) = t.node(i).unwrap().db().tx_block(&hash).unwrap()?;
    let r = block.receipts.iter().find(|r| r.tx_hash == hash).cloned();
    Some((block.header.height, r.unwrap()))
}

/// How many 24 KiB contracts [`deploy_reader`]'s reader loads: 576 KiB of
/// code, more than a dispute move carries.
const READ_CONTRACTS: u64 = 24;

/// Deploys 24 different 24 KiB contracts on `shard` (from dev account
/// `user`, submitted to the shard's first validator) and a reader that
/// loads them all: the reader's address.
fn deploy_reader(t: &mut Testnet, shard: u32, user: usize) -> alloy_primitives::Address {
    use alloy_primitives::{TxKind, U256};
    let from = t.account(user);
    let to = members(t, shard)[0];
    let mut targets = Vec::new();
    for i in 0..READ_CONTRACTS {
        let mut runtime = vec![0u8; 24_576];
        runtime[1..9].copy_from_slice(&i.to_be_bytes());
        let raw = t.call(ShardId(shard), user, TxKind::Create, U256::ZERO, init_code(&runtime), 6_000_000);
        targets.push(from.create(i));
        t.submit(to, &raw).unwrap();
    }
    let reader_raw = t.call(
        ShardId(shard),
        user,
        TxKind::Create,
        U256::ZERO,
        init_code(&reader_code(&targets)),
        1_000_000,
    );
    let reader = from.create(READ_CONTRACTS);
    t.submit(to, &reader_raw).unwrap();
    run_until(t, 30, |t| {
        let node = t.node(to).unwrap();
        let at = node.head().header.height;
        node.state().account(reader, at).unwrap().is_some()
            && node.state().account(targets[READ_CONTRACTS as usize - 1], at).unwrap().is_some()
    });
    reader
}

/// Runs `game` to its end: the honest defender wins on an upheld level-2
/// step that fits a move, its header stands and it is not slashed.
fn upheld_at_level_two(t: &mut Testnet, game: &GameRecord) {
    let clock = t.spec().game_clock();
    run_until(t, 3 * clock, |t| games(t).iter().any(|g| g.id == game.id && !g.is_open()));
    let log = t.beacon().game(&game.id).unwrap().unwrap();
    let (_, ending) = log.record.ended.clone().unwrap();
    assert_eq!(ending, Ending::Decided { outcome: Outcome::StepUpheld { winner: Side::Defender } });
    let step = log.step.unwrap();
    assert_eq!(step.level, 2, "decided inside the item: {step:?}");
    assert!(step.step_bytes <= bridge::MAX_STEP_BYTES);
    let status = t.beacon().header_status(game.shard, game.height).unwrap().unwrap();
    assert_eq!(status.hash, game.header, "the honest header stands");
    assert!(status.discarded.is_empty());
    assert_eq!(t.beacon().games().1.parties[&game.defender].slashed, 0, "the honest proposer is not slashed");
}

/// The same heavy read delivered as a cross-shard call (stf version 5:
/// no witness budget for messages either, where version 4 refunded it): a
/// user on shard 1 sends it to shard 0, the delivery succeeds, a griefer
/// disputes the shard-0 block holding it, the honest proposer descends
/// into the message's own trace, the game ends on an upheld level-2 step,
/// and the header stands.
#[test]
fn an_honest_block_delivering_a_message_over_a_moves_size_survives_a_griefer_at_level_two() {
    use alloy_primitives::{Bytes, TxKind, U256};
    use alloy_sol_types::SolCall;
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(2)
        .validators_per_shard(3)
        .seed(48)
        .challenge_window_slots(48)
        .txs_per_slot(0)
        .build(dir.path())
        .unwrap();
    t.run(2);
    let user = 5;
    let reader = deploy_reader(&mut t, 0, user);
    let shard0 = members(&t, 0);
    // the send on shard 1, buying 600,000 gas for the delivered call
    let data =
        prover::IBridge::sendWithGasCall { dstShard: 0, to: reader, gasLimit: 600_000, data: Bytes::new() }
            .abi_encode();
    let send =
        t.call(ShardId(1), user, TxKind::Call(bridge::BRIDGE_ADDRESS), U256::ZERO, data.into(), 1_000_000);
    let shard1 = members(&t, 1);
    // a griefer disputes shard 0's blocks from here on, the one holding
    // the delivery among them
    let griefer = shard0[2];
    let griefer_addr = t.validator_info(griefer).1;
    t.set_fault_rate(griefer, Some(Fault::GriefingChallenger), 100);
    t.submit(shard1[0], &send).unwrap();
    // the message's id from the send's receipt, then its delivery on shard 0
    let send_hash = alloy_primitives::keccak256(&send);
    run_until(&mut t, 20, |t| stored_receipt(t, shard1[0], send_hash).is_some());
    let sent = stored_receipt(&t, shard1[0], send_hash).unwrap().1;
    assert!(sent.success, "{sent:?}");
    let id = alloy_primitives::B256::from(sent.messages[0].0);
    let delivered = |t: &Testnet| {
        let node = t.node(shard0[0]).unwrap();
        (1..=node.head().header.height).find_map(|h| {
            let r = node.db().receipts(h).ok().flatten()?.into_iter().find(|r| r.tx_hash == id)?;
            Some((h, r))
        })
    };
    run_until(&mut t, 30, |t| delivered(t).is_some());
    let (height, r) = delivered(&t).unwrap();
    assert!(r.success && r.gas_used > READ_CONTRACTS * 2_600 && r.gas_used < 600_000, "{r:?}");
    assert!(r.messages.is_empty(), "no refund");
    run_until(&mut t, 12, |t| games(t).iter().any(|g| g.height == height && g.shard == ShardId(0)));
    t.set_fault(griefer, None);
    let game = games(&t).into_iter().find(|g| g.height == height && g.shard == ShardId(0)).unwrap();
    assert_eq!(game.challenger, griefer_addr);
    upheld_at_level_two(&mut t, &game);
}

/// The beacon is down for far longer than a challenge window and a game
/// clock, twice: once after a lie was accepted and before anyone disputed
/// it, once in the middle of its game. Neither the window nor the clocks
/// count the downtime: the challenger still opens the game when the beacon
/// returns, the defender does not lose on time for the silence, the lie is
/// refuted by its step, nothing is finalized early, and a withdrawal
/// pending over the pause waits out the longer window.
#[test]
fn the_beacons_downtime_counts_neither_in_windows_nor_in_clocks() {
    use bridge::{Action, SignedMove};
    let dir = tempfile::tempdir().unwrap();
    let window = 30;
    let mut t = Testnet::builder()
        .shards(1)
        .validators_per_shard(2)
        .seed(58)
        .challenge_window_slots(window)
        .txs_per_slot(8)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let (liar, honest) = (0, 1);
    t.set_challenger(honest, false);
    let lie = first_lie(&mut t, liar, Fault::WrongStateRoot, 3, 20);
    let lie_status = t.beacon().header_status(ShardId(0), lie.height).unwrap().unwrap();
    let final_before = t.beacon().finalized()[0];
    assert!(final_before < lie.height);
    // the liar asks for part of its bond back
    let key = t.validator_key(liar).clone();
    let w = SignedMove::sign(Action::Withdraw { amount_gwei: 1_000, nonce: 0 }, &t.spec().hash(), &key);
    t.beacon().submit_move(w, t.slot()).unwrap();
    t.step();
    let due = t.beacon().games().1.parties[&key.address()].withdrawing[0].1;

    // down for 3 windows: in slots, the lie's window closed long ago
    t.skip_slots(3 * window);
    t.restart_beacon().unwrap();
    t.step();
    let status = t.beacon().header_status(ShardId(0), lie.height).unwrap().unwrap();
    assert_eq!(status.status, "pending", "not final on the beacon's return");
    assert!(status.earliest_final_slot >= lie_status.earliest_final_slot + 3 * window, "{status:?}");
    assert_eq!(t.beacon().finalized()[0], final_before, "the pause finalized nothing");
    let bond = &t.beacon().games().1.parties[&key.address()];
    assert_eq!((bond.withdrawn, bond.withdrawing[0].1), (0, due + 3 * window), "the withdrawal waits longer");

    // the challenger comes back and still opens its game
    t.set_challenger(honest, true);
    run_until(&mut t, 10, |t| games(t).iter().any(|g| g.header == lie.hash && g.moves >= 2));

    // down again, mid-game, for 4 clocks
    let clock = t.spec().game_clock();
    let before = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    t.skip_slots(4 * clock);
    t.restart_beacon().unwrap();
    t.step();
    let after = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    assert!(after.is_open(), "nobody lost on time for the downtime: {:?}", after.ended);
    assert!(after.game.turn_since >= before.game.turn_since + 4 * clock);
    run_until(&mut t, 4 * clock, |t| games(t).iter().any(|g| g.header == lie.hash && !g.is_open()));
    let g = games(&t).into_iter().find(|g| g.header == lie.hash).unwrap();
    assert_eq!(
        g.ended.unwrap().1,
        Ending::Decided { outcome: Outcome::StepRefuted { winner: Side::Challenger } },
        "decided by its step, not by the clock"
    );
    let status = t.beacon().header_status(ShardId(0), lie.height).unwrap().unwrap();
    assert!(status.discarded.iter().any(|d| d.hash == lie.hash && d.proven));
}

/// A griefer disputes an honest proposer that stays silent; a byzantine
/// shard-mate takes the defence over first and posts commitments no
/// execution gives, trying to lose the honest header's game for its
/// proposer. Its claims lose only its own stake: each time, the game starts
/// over, until an honest shard-mate takes over and wins. The proposer is
/// never slashed, and no honest header is discarded.
#[test]
fn a_lying_stand_in_loses_its_own_stake_and_cannot_frame_the_proposer() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = griefed_silent_proposer(dir.path());
    let (proposer, liar, honest) = (PROPOSER, LIAR, 2);
    let addr = |t: &Testnet, i: usize| t.validator_info(i).1;
    run_until(&mut t, 400, |t| {
        let g = games(t);
        g.iter().any(|g| g.defender == addr(t, proposer)) && g.iter().all(|g| !g.is_open())
    });
    let all = games(&t);
    let on_proposer: Vec<&GameRecord> = all.iter().filter(|g| g.defender == addr(&t, proposer)).collect();
    assert!(
        on_proposer.iter().any(|g| g.resets >= 1),
        "the lying stand-in took a game over and lost it: {on_proposer:?}"
    );
    for g in &on_proposer {
        assert_eq!(
            g.ended.clone().unwrap().1,
            Ending::Decided { outcome: Outcome::StepUpheld { winner: Side::Defender } },
            "game {} on height {}",
            g.id,
            g.height
        );
        let status = t.beacon().header_status(ShardId(0), g.height).unwrap().unwrap();
        assert_eq!(status.hash, g.header, "the honest header stands");
        assert!(status.discarded.is_empty());
    }
    let bonds = t.beacon().games().1;
    let stake = t.spec().dispute_stake_gwei;
    assert_eq!(bonds.parties[&addr(&t, proposer)].slashed, 0, "the silent but honest proposer is not framed");
    assert_eq!(bonds.parties[&addr(&t, honest)].slashed, 0);
    assert!(bonds.parties[&addr(&t, liar)].slashed >= stake, "the liar paid for its claims");
    assert!(bonds.parties[&addr(&t, honest)].rewarded > 0, "the honest stand-in won the defence");
    assert_ledger(&t);
}

/// Replay after a restart (issue 15): every signed move ever published is
/// sent again, by anyone, at every slot, while the games run — through a
/// lying stand-in that takes a game over and loses it, so the game starts
/// over with its rounds back at 0. Before moves named the game position
/// they answer, the challenger's round-0 `Pick` of the first run was valid
/// again in the second (credited to it, choosing a range it never chose).
/// Now no replay is accepted, and the game still ends as the truth says.
#[test]
fn no_published_move_is_valid_again_after_a_game_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = griefed_silent_proposer(dir.path());
    let proposer = PROPOSER;
    let addr = |t: &Testnet, i: usize| t.validator_info(i).1;
    let mut published: Vec<bridge::SignedMove> = Vec::new();
    let mut seen_to = 0;
    let (mut accepted, mut tried_after_reset) = (Vec::new(), 0);
    for _ in 0..400 {
        t.step();
        let blocks = t.beacon().db().blocks_from(seen_to + 1, usize::MAX).unwrap();
        for b in &blocks {
            seen_to = seen_to.max(b.slot);
            published.extend(b.moves.iter().filter(|m| m.action.game().is_some()).cloned());
        }
        let open = games(&t);
        for mv in &published {
            let Some(g) = open.iter().find(|g| Some(g.id) == mv.action.game() && g.is_open()) else {
                continue;
            };
            tried_after_reset += usize::from(g.resets > 0);
            if t.beacon().submit_move(mv.clone(), t.slot()).is_ok() {
                accepted.push((g.id, g.resets, mv.action.label()));
            }
        }
        let g = games(&t);
        if g.iter().any(|g| g.defender == addr(&t, proposer)) && g.iter().all(|g| !g.is_open()) {
            break;
        }
    }
    assert!(accepted.is_empty(), "replayed moves were accepted: {accepted:?}");
    let on_proposer: Vec<GameRecord> =
        games(&t).into_iter().filter(|g| g.defender == addr(&t, proposer)).collect();
    assert!(on_proposer.iter().any(|g| g.resets >= 1), "a game started over: {on_proposer:?}");
    assert!(tried_after_reset > 0, "moves of the first run were replayed in the second");
    for g in &on_proposer {
        assert!(!g.is_open(), "game {} ended", g.id);
        assert_eq!(
            g.ended.clone().unwrap().1,
            Ending::Decided { outcome: Outcome::StepUpheld { winner: Side::Defender } },
            "the honest header's game ends for its defence"
        );
    }
    let bonds = t.beacon().games().1;
    assert_eq!(bonds.parties[&addr(&t, proposer)].slashed, 0, "the honest proposer is not framed");
    assert_ledger(&t);
}

/// The honest challenger locked out (issue 15): four colluding bonded
/// parties open every game their bonds allow on a lying header as soon as
/// it is sealed (a trace game and three receipt games each: 16, what a
/// per-header cap allowed), then stay silent. The honest challenger's
/// `Open` is still taken at once — games are bounded by the stakes they
/// lock, not by a count per header colluders can fill — and the lie is
/// discarded. (With the old cap its `Open` was refused until a colluder's
/// clock ran out.)
#[test]
fn colluders_filling_a_headers_games_cannot_keep_the_honest_challenger_out() {
    use bridge::{Action, SignedMove};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(2)
        .validators_per_shard(4)
        .seed(61)
        .challenge_window_slots(40)
        .txs_per_slot(6)
        .build(dir.path())
        .unwrap();
    t.run(3);
    let on_shard = |t: &Testnet, s: u32| -> Vec<usize> {
        (0..t.validator_count()).filter(|i| t.validator_info(*i).0 == ShardId(s)).collect()
    };
    let (mates, colluders) = (on_shard(&t, 0), on_shard(&t, 1));
    let (liar, honest) = (mates[0], mates[1]);
    for &i in &mates {
        t.set_challenger(i, false);
    }
    let lie = first_lie(&mut t, liar, Fault::WrongStateRoot, 3, 40);
    let spec_hash = t.spec().hash();
    let mut opened = 0;
    for &c in &colluders {
        for item in [None, Some(1), Some(2), Some(3)] {
            let open = Action::Open { shard: ShardId(0), height: lie.height, header: lie.hash, item };
            let mv = SignedMove::sign(open, &spec_hash, t.validator_key(c));
            t.beacon().submit_move(mv, t.slot()).unwrap_or_else(|e| panic!("colluder {c} {item:?}: {e}"));
            opened += 1;
        }
    }
    assert_eq!(opened, 16);
    let honest_addr = t.validator_info(honest).1;
    t.set_challenger(honest, true);
    // its agent sends `Open` on the next beacon block: taken at once (with a
    // count per header it waited until colluders' games ended)
    run_until(&mut t, 1, |t| games(t).iter().any(|g| g.header == lie.hash && g.challenger == honest_addr));
    run_until(&mut t, 80, |t| {
        t.beacon()
            .header_status(ShardId(0), lie.height)
            .unwrap()
            .is_some_and(|s| s.discarded.iter().any(|d| d.hash == lie.hash))
    });
    let bonds = t.beacon().games().1;
    assert_eq!(bonds.parties[&honest_addr].slashed, 0, "the honest challenger loses nothing");
    let stake = t.spec().dispute_stake_gwei;
    assert!(bonds.parties[&t.validator_info(liar).1].slashed >= stake, "the liar pays a whole stake");
    assert_ledger(&t);
}

/// A party whose steps proved nothing is not listened to past
/// `MAX_REJECTED_STEPS` in a game (each costs the referee a re-execution),
/// and a restart of the game does not give it that many again (issue 15:
/// the counts were cleared when a losing stand-in's game started over).
#[test]
fn refused_steps_count_across_a_games_restart() {
    use beacon::MoveRejection;
    use bridge::{Action, SignedMove};
    let dir = tempfile::tempdir().unwrap();
    let mut t = griefed_silent_proposer(dir.path());
    let (proposer, griefer) = (PROPOSER, GRIEFER);
    let addr = |t: &Testnet, i: usize| t.validator_info(i).1;
    let spec_hash = t.spec().hash();
    let junk = |t: &Testnet, g: &GameRecord| {
        let mv = SignedMove::sign(
            Action::Step { game: g.id, at: g.position(), step: vec![0xee; 8] },
            &spec_hash,
            t.validator_key(griefer),
        );
        t.beacon().submit_move(mv, t.slot())
    };
    let (mut first_run, mut second_run) = (None, None);
    for _ in 0..400 {
        t.step();
        let Some(g) = games(&t)
            .into_iter()
            .find(|g| g.is_open() && g.defender == addr(&t, proposer) && g.challenger == addr(&t, griefer))
        else {
            if first_run.is_some() {
                break;
            }
            continue;
        };
        if g.game.phase != bridge::game::Phase::Step {
            continue;
        }
        if g.resets == 0 && first_run.is_none() {
            let outs: Vec<_> = (0..=beacon::MAX_REJECTED_STEPS).map(|_| junk(&t, &g)).collect();
            first_run = Some((g.id, outs));
        } else if g.resets > 0
            && first_run.as_ref().is_some_and(|(id, _)| *id == g.id)
            && second_run.is_none()
        {
            second_run = Some(junk(&t, &g));
            break;
        }
    }
    let (_, outs) = first_run.expect("the griefer's game reached its step");
    for o in &outs[..beacon::MAX_REJECTED_STEPS as usize] {
        assert!(matches!(o, Err(MoveRejection::BadStep(_))), "{o:?}");
    }
    assert!(matches!(outs.last(), Some(Err(MoveRejection::StepsExhausted { .. }))), "{:?}", outs.last());
    let again = second_run.expect("the game started over and reached its step again");
    assert!(matches!(again, Err(MoveRejection::StepsExhausted { .. })), "still not listened to: {again:?}");
}
