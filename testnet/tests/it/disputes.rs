//! Fraud proofs on the deterministic tier: a lying proposer's header is
//! disputed by an honest shard-mate, bisected to one step the beacon
//! re-executes, discarded with its descendants, and the liar slashed; the
//! shard continues from the last valid header.

use bridge::game::{Game, Outcome, Side};
use bridge::{Ending, GameRecord, ShardId};
use shard::Fault;
use testnet::Testnet;

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

/// The first validator index of `shard`.
fn first_of(t: &Testnet, shard: u32) -> usize {
    (0..t.validator_count()).find(|i| t.validator_info(*i).0 == ShardId(shard)).unwrap()
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
    t.set_fault(liar, Some(Fault::WrongStateRoot));
    let since = t.slot();
    // the first lying header the beacon accepts
    run_until(&mut t, 40, |t| {
        let head = t.beacon().heads()[1];
        head.slot > since
            && t.node(liar)
                .unwrap()
                .block(head.height)
                .ok()
                .flatten()
                .is_some_and(|b| b.header.header.hash() == head.hash && b.header.header.proposer == liar_addr)
    });
    t.set_fault(liar, None);
    let lie = t.beacon().heads()[1];
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
    assert_eq!(bonds.total(), bonds_before.total());

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
