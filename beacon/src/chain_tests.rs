//! The beacon chain's rules, tested on its own (no network).
/// Breaks one rule of a valid header.
type Breaker = fn(&mut ShardHeader);

use super::*;
use bridge::{ShardHeader, ValidatorInfo, ValidatorKey};

fn beacon_key() -> ValidatorKey {
    ValidatorKey::derive(b"beacon")
}

fn setup() -> (ChainSpec, Vec<ValidatorKey>) {
    let keys: Vec<ValidatorKey> = (0..4u32).map(|i| ValidatorKey::derive(&i.to_be_bytes())).collect();
    let genesis = |s: u32| ShardHeader {
        shard: ShardId(s),
        post_state_root: Hash::of(&s.to_be_bytes()),
        gas_limit: 30_000_000,
        base_fee: 1_000_000_000,
        ..Default::default()
    };
    let spec = ChainSpec {
        genesis_time_ms: 0,
        slot_ms: 1000,
        shards: 2,
        chain_id_base: 1,
        seed: Hash::of(b"seed"),
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorInfo { address: k.address(), shard: ShardId(i as u32 / 2), bond_gwei: 32 })
            .collect(),
        shard_genesis: vec![genesis(0), genesis(1)],
        beacon: beacon_key().address(),
        challenge_window_slots: 16,
        dispute_k: 4,
        game_clock_slots: 0,
        stf_version: bridge::STF_VERSION,
        challengers: vec![],
        dispute_stake_gwei: 1,
        slash_reward_percent: 50,
    };
    (spec, keys)
}

fn key_for<'a>(spec: &ChainSpec, keys: &'a [ValidatorKey], shard: u32, slot: u64) -> &'a ValidatorKey {
    let p = spec.proposer(ShardId(shard), slot).unwrap();
    keys.iter().find(|k| k.address() == p).unwrap()
}

fn other_key<'a>(spec: &ChainSpec, keys: &'a [ValidatorKey], shard: u32, slot: u64) -> &'a ValidatorKey {
    let p = spec.proposer(ShardId(shard), slot).unwrap();
    keys.iter()
        .find(|k| k.address() != p && spec.validator(&k.address()).unwrap().shard == ShardId(shard))
        .unwrap()
}

/// A valid child of `parent` in `slot` with `txs`, before signing.
fn child(
    spec: &ChainSpec,
    parent: &ShardHeader,
    slot: u64,
    key: &ValidatorKey,
    txs: &[Vec<u8>],
) -> ShardHeader {
    let body = ShardBlock {
        header: SignedHeader::sign(ShardHeader::default(), key),
        inbox: vec![],
        txs: txs.to_vec(),
    };
    let mut h = ShardHeader {
        shard: parent.shard,
        height: parent.height + 1,
        parent_hash: parent.hash(),
        beacon_slot: slot,
        timestamp: spec.slot_timestamp(slot),
        proposer: key.address(),
        pre_state_root: parent.post_state_root,
        items_root: body.items_root(),
        post_state_root: Hash::of(&slot.to_be_bytes()),
        gas_used: 21_000 * txs.len() as u64,
        gas_limit: parent.gas_limit,
        base_fee: bridge::next_base_fee(parent),
        ..Default::default()
    };
    h.trace_root = h.last_commitment().hash();
    h
}

fn signed(h: ShardHeader, key: &ValidatorKey, txs: &[Vec<u8>]) -> ShardBlock {
    ShardBlock { header: SignedHeader::sign(h, key), inbox: vec![], txs: txs.to_vec() }
}

fn block(spec: &ChainSpec, keys: &[ValidatorKey], parent: &ShardHeader, slot: u64) -> ShardBlock {
    let key = key_for(spec, keys, parent.shard.0, slot);
    let txs = vec![vec![slot as u8; 3]];
    signed(child(spec, parent, slot, key, &txs), key, &txs)
}

use bridge::SignedHeader;

fn open(dir: &std::path::Path, spec: &ChainSpec) -> BeaconChain {
    BeaconChain::open(spec.clone(), BeaconDb::open(dir, false).unwrap(), beacon_key()).unwrap()
}

#[test]
fn accepts_only_the_scheduled_proposer_extending_the_chain() {
    let (spec, keys) = setup();
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path(), &spec);
    let g0 = spec.shard_genesis[0].clone();
    let txs = vec![vec![1u8; 3]];

    let wrong_key = other_key(&spec, &keys, 0, 1);
    let wrong = signed(child(&spec, &g0, 1, wrong_key, &txs), wrong_key, &txs);
    assert!(matches!(chain.submit(wrong, 1), Err(Rejection::NotScheduled { slot: 1, .. })));
    let k1 = key_for(&spec, &keys, 0, 1);
    let mut h = child(&spec, &g0, 1, k1, &txs);
    h.proposer = keys[3].address();
    assert!(matches!(chain.submit(signed(h, k1, &txs), 1), Err(Rejection::ProposerMismatch { .. })));
    let mut bad_sig = block(&spec, &keys, &g0, 1);
    bad_sig.header.signature.0[64] = 9;
    assert!(matches!(chain.submit(bad_sig, 1), Err(Rejection::BadSignature { .. })));
    let future = block(&spec, &keys, &g0, 5);
    assert!(matches!(chain.submit(future, 1), Err(Rejection::FutureSlot { slot: 5, current: 1 })));
    let mut h = child(&spec, &g0, 1, k1, &txs);
    h.parent_hash = Hash::of(b"elsewhere");
    assert!(matches!(chain.submit(signed(h, k1, &txs), 1), Err(Rejection::NotExtending { .. })));

    let b1 = block(&spec, &keys, &g0, 1);
    let h1 = b1.header.clone();
    assert_eq!(chain.submit(b1.clone(), 1), Ok(Submitted::Accepted));
    assert_eq!(chain.submit(b1.clone(), 1), Err(Rejection::Duplicate));
    // a second block at the same height conflicts with the accepted one
    let fork = block(&spec, &keys, &g0, 2);
    assert!(matches!(chain.submit(fork, 2), Err(Rejection::NotExtending { .. })));
    let sealed = chain.seal(1).unwrap().unwrap();
    assert_eq!(sealed.headers, vec![h1.clone()]);
    assert_eq!(sealed.heads[0].height, 1);
    assert_eq!(sealed.heads[1], spec.genesis_head(ShardId(1)));
    assert!(sealed.signed_by(&spec.beacon));
    assert!(chain.seal(1).unwrap().is_none(), "one block per slot");
    assert_eq!(chain.rejections(100).len(), 6, "every refusal but the duplicate is kept");

    // a child arriving before its parent waits for it
    let b2 = block(&spec, &keys, &h1.header, 2);
    let b3 = block(&spec, &keys, &b2.header.header, 3);
    assert_eq!(chain.submit(b3.clone(), 3), Ok(Submitted::Pending));
    assert_eq!(chain.submit(b2.clone(), 3), Ok(Submitted::Accepted));
    assert_eq!(chain.heads()[0].height, 3);
    let sealed = chain.seal(3).unwrap().unwrap();
    assert_eq!(sealed.headers, vec![b2.header.clone(), b3.header.clone()]);
    assert_eq!(chain.shard_headers(ShardId(0), 1, 10).unwrap().len(), 3);
    // every accepted body is retrievable from the beacon
    assert_eq!(chain.shard_blocks(ShardId(0), 1, 10, 1 << 20).unwrap(), vec![b1, b2, b3.clone()]);
    assert!(chain.shard_headers(ShardId(0), u64::MAX - 1, usize::MAX).unwrap().is_empty());

    // reopening resumes from the stored head, and checks the next header against it
    drop(chain);
    let chain = open(dir.path(), &spec);
    assert_eq!(chain.head().unwrap().0, 3);
    assert_eq!(chain.heads()[0].hash, b3.header.header.hash());
    let b4 = block(&spec, &keys, &b3.header.header, 4);
    assert_eq!(chain.submit(b4, 4), Ok(Submitted::Accepted));
    assert_eq!(chain.seal(4).unwrap().unwrap().parent, sealed.hash());
}

#[test]
fn refuses_headers_that_break_a_rule_execution_cannot_see() {
    let (spec, keys) = setup();
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path(), &spec);
    let g0 = spec.shard_genesis[0].clone();
    let k = key_for(&spec, &keys, 0, 2);
    let txs = vec![vec![9u8; 4], vec![8u8; 4]];
    let cases: Vec<(&str, Breaker)> = vec![
        ("pre_state_root", |h| h.pre_state_root = Hash::of(b"x")),
        ("timestamp", |h| h.timestamp += 1),
        ("timestamp", |h| h.timestamp -= 1),
        ("base_fee", |h| h.base_fee -= 1),
        ("gas_used", |h| h.gas_used = h.gas_limit + 1),
        ("gas_limit", |h| h.gas_limit *= 2),
        ("height", |h| h.height = 0),
    ];
    for (rule, break_it) in cases {
        let mut h = child(&spec, &g0, 2, k, &txs);
        break_it(&mut h);
        let err = chain.submit(signed(h, k, &txs), 2).unwrap_err();
        assert!(err.label() == rule || (rule == "height" && err.label() == "not_extending"), "{rule}: {err}");
        assert!(err.is_fault() || rule == "height");
    }
    // a body that is not the one the header commits to
    let h = child(&spec, &g0, 2, k, &txs);
    let swapped = vec![txs[1].clone(), txs[0].clone()];
    let err = chain.submit(signed(h.clone(), k, &swapped), 2).unwrap_err();
    assert_eq!(err.label(), "items_root");
    let records = chain.rejections(100);
    let json = serde_json::to_value(&records[records.len() - 1]).unwrap();
    assert_eq!(json["reason"], "invalid");
    assert_eq!(json["rule"], "items_root");
    // too late: past its inclusion window
    let late = current_after_window(2);
    assert!(matches!(chain.submit(signed(h.clone(), k, &txs), late), Err(Rejection::TooLate { .. })));
    // the valid one still goes in
    assert_eq!(chain.submit(signed(h, k, &txs), 2), Ok(Submitted::Accepted));
    assert_eq!(chain.heads()[0].height, 1);
}

fn current_after_window(slot: u64) -> u64 {
    slot + bridge::INCLUSION_SLOTS + 1
}

#[test]
fn held_children_are_bounded_and_the_highest_go_first() {
    let (spec, keys) = setup();
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path(), &spec);
    let g0 = spec.shard_genesis[0].clone();
    assert!(chain.pending().0 == 0);
    // a flood of 40 signed blocks above a parent that never arrives
    let mut parent = block(&spec, &keys, &g0, 5).header.header;
    for _ in 0..40 {
        let b = block(&spec, &keys, &parent, 5);
        parent = b.header.header.clone();
        assert_eq!(chain.submit(b, 5), Ok(Submitted::Pending));
    }
    let (held, bytes, evicted) = chain.pending();
    assert_eq!((held, evicted), (MAX_PENDING_PER_SHARD, 40 - MAX_PENDING_PER_SHARD as u64));
    assert!(bytes < MAX_PENDING_BYTES);
    // held blocks expire with their inclusion window
    let late = block(&spec, &keys, &parent, 5 + bridge::INCLUSION_SLOTS);
    assert_eq!(chain.submit(late, 5 + bridge::INCLUSION_SLOTS + 1), Ok(Submitted::Pending));
    assert_eq!(chain.pending().0, 1);
}

/// A pause touches every open game, and a game record in its Pick phase
/// at k = 64 carries 63 commitments: 1,024 of them are more than a beacon
/// block may gossip (issue 15). A sealed block never passes the limit;
/// the records that do not fit come in the next blocks, ended games
/// first, each exactly once.
#[test]
fn a_sealed_block_never_passes_its_gossip_limit() {
    use bridge::game::{Game, GameParams, Phase};
    let (spec, _) = setup();
    let dir = tempfile::tempdir().unwrap();
    let chain = open(dir.path(), &spec);
    let record = |i: u32, ended: bool| {
        let mut game = Game::open(GameParams { k: 64, clock_slots: 100 }, 1 << 20, Hash::ZERO, Hash::ZERO, 1);
        game.phase =
            Phase::Pick { posted: (0..63u32).map(|j| Hash::of(&(i * 100 + j).to_be_bytes())).collect() };
        bridge::GameRecord {
            id: Hash::of(&i.to_be_bytes()),
            shard: ShardId(0),
            height: 1,
            header: Hash::of(b"h"),
            items: 1 << 20,
            receipt_item: None,
            defender: Address([1; 20]),
            challenger: Address([2; 20]),
            opened_slot: 1,
            stakes: [1, 1],
            game,
            moves: 0,
            ended: ended.then_some((1, bridge::Ending::Void)),
            acting: None,
            acting_stake: 0,
            resets: 0,
            stood_in: vec![],
        }
    };
    let n = 1024u32;
    {
        let mut state = chain.state.write();
        for i in 0..n {
            let g = record(i, i % 8 == 0);
            state.referee.log(&g);
            state.referee.touched.insert(g.id);
        }
    }
    use bridge::Encode;
    let size: usize = (0..n).map(|i| record(i, false).encode().len()).sum();
    assert!(size > 2 << 20, "the records alone are more than a block may carry: {size}");
    let mut seen = std::collections::BTreeSet::new();
    for slot in 1..=4 {
        let b = chain.seal(slot).unwrap().unwrap();
        assert!(b.encode().len() <= MAX_BEACON_BLOCK_BYTES, "slot {slot}: {} bytes", b.encode().len());
        if slot == 1 {
            assert!(b.games.iter().take(n as usize / 8).all(|g| !g.is_open()), "ended games first");
        }
        for g in &b.games {
            assert!(seen.insert(g.id), "game {} carried twice", g.id);
        }
    }
    assert_eq!(seen.len(), n as usize, "every record carried");
    assert!(chain.state.read().referee.touched.is_empty());
}
