//! The deterministic tier: whole clusters in one process.

use bridge::{Encode, ShardBlock, ShardId, SignedHeader};
use net::{Network, Topic};
use testnet::Testnet;

fn headers_per_block(t: &Testnet) -> Vec<(u64, usize)> {
    t.beacon().db().blocks_from(1, usize::MAX).unwrap().iter().map(|b| (b.slot, b.headers.len())).collect()
}

#[test]
fn same_seed_gives_byte_identical_chains() {
    let run = |seed: u64| {
        let dir = tempfile::tempdir().unwrap();
        let mut t =
            Testnet::builder().shards(4).validators_per_shard(2).seed(seed).build(dir.path()).unwrap();
        t.run(12);
        let shards: Vec<Vec<u8>> = (0..t.validator_count()).map(|i| t.shard_chain_bytes(i)).collect();
        (t.beacon_chain_bytes(), shards)
    };
    let (beacon_a, shards_a) = run(7);
    let (beacon_b, shards_b) = run(7);
    assert!(!beacon_a.is_empty());
    assert_eq!(beacon_a, beacon_b, "beacon chains differ between runs of one seed");
    assert_eq!(shards_a, shards_b, "shard chains differ between runs of one seed");
    let (beacon_c, _) = run(8);
    assert_ne!(beacon_a, beacon_c, "another seed gives another chain");
}

#[test]
fn every_shard_commits_every_slot_and_validators_agree() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(4)
        .validators_per_shard(2)
        .seed(3)
        .txs_per_slot(30)
        .build(dir.path())
        .unwrap();
    t.run(10);
    for (slot, n) in headers_per_block(&t) {
        assert_eq!(n, 4, "beacon block of slot {slot} includes one header per shard");
    }
    for s in 0..4 {
        let members: Vec<usize> =
            (0..t.validator_count()).filter(|i| t.validator_info(*i).0 == ShardId(s)).collect();
        let heads: Vec<_> = members.iter().map(|i| t.node(*i).unwrap().head()).collect();
        assert_eq!(heads[0].header.height, 10);
        assert!(heads.iter().all(|h| h.hash == heads[0].hash), "shard {s} validators disagree");
        assert_eq!(t.beacon().heads()[s as usize].hash, heads[0].hash);
        // transactions sent to either validator were included
        let txs: usize =
            (1..=10).map(|h| t.node(members[0]).unwrap().block(h).unwrap().unwrap().txs.len()).sum();
        assert_eq!(txs, 300, "every submitted transfer on shard {s} is included");
        assert!(t.node(members[1]).unwrap().mismatches().is_empty());
    }
}

#[test]
fn a_crashed_validator_catches_up_and_a_crashed_proposer_only_misses_its_slots() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(2).validators_per_shard(3).seed(11).build(dir.path()).unwrap();
    t.run(3);
    // validator 0 (shard 0) goes down for 8 slots
    t.crash(0);
    let (shard, down) = t.validator_info(0);
    let before = t.slot();
    t.run(8);
    let missed: Vec<u64> =
        (before + 1..=t.slot()).filter(|s| t.spec().proposer(shard, *s) == Some(down)).collect();
    for (slot, n) in headers_per_block(&t).into_iter().filter(|(s, _)| *s > before) {
        let expect = if missed.contains(&slot) { 1 } else { 2 };
        assert_eq!(n, expect, "slot {slot}: only the crashed proposer's slots lack shard 0's header");
    }
    t.restart(0).unwrap();
    t.run(4);
    let head = t.node(0).unwrap().head();
    assert_eq!(head.hash, t.node(1).unwrap().head().hash, "restarted validator caught up and agrees");
    assert_eq!(head.hash, t.beacon().heads()[0].hash);
    let bytes = t.shard_chain_bytes(0);
    assert_eq!(bytes, t.shard_chain_bytes(1), "every block and root agrees");
}

#[test]
fn a_block_with_a_wrong_root_is_recorded_as_a_mismatch_and_not_imported() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(5).build(dir.path()).unwrap();
    t.run(2);
    // validator 0 signs a block claiming a wrong state root, as a fraudulent
    // proposer would, and validator 1 re-executes it
    let node0 = t.node(0).unwrap().clone();
    let node1 = t.node(1).unwrap().clone();
    let slot =
        (t.slot() + 1..).find(|s| t.spec().proposer(ShardId(0), *s) == Some(t.validator_info(0).1)).unwrap();
    let key = testnet::NetworkParams { shards: 1, validators_per_shard: 2, seed: 5, ..Default::default() }
        .genesis(t.spec().genesis_time_ms)
        .unwrap()
        .validators[0]
        .1
        .clone();
    let honest = node0.propose(slot, t.spec(), &key, vec![]).unwrap();
    let mut header = honest.header.header.clone();
    header.post_state_root = bridge::Hash::of(b"wrong");
    // a coherent lie: the trace's last commitment agrees (else the header
    // breaks a rule the beacon checks without execution)
    header.trace_root = header.last_commitment().hash();
    let forged =
        ShardBlock { header: SignedHeader::sign(header, &key), inbox: vec![], txs: honest.txs.clone() };
    let err = node1.import_block(&forged, t.spec(), slot, &shard::NoSources).unwrap_err();
    assert!(err.to_string().contains("post_state_root"), "{err}");
    let m = node1.mismatches();
    assert_eq!(m.len(), 1);
    assert_eq!((m[0].field.as_str(), m[0].proposer), ("post_state_root", key.address()));
    assert_eq!(node1.head().header.height, 2, "not imported");
    assert_eq!(node1.metrics().mismatches.get(), 1);
    // the evidence: the signed block exactly as received and this node's own execution
    let ev = node1.mismatch_evidence(&forged.header.header.hash()).unwrap().expect("evidence kept");
    assert_eq!(ev.block, forged);
    assert_eq!(ev.computed.post_state_root, honest.header.header.post_state_root);
    assert_eq!(ev.field_names(), vec!["post_state_root".to_string(), "trace_root".to_string()]);
    // a second variant of the same slot's block adds no record: one per (proposer, slot)
    let mut other = forged.header.header.clone();
    other.receipts_root = bridge::Hash::of(b"also wrong");
    let variant =
        ShardBlock { header: SignedHeader::sign(other, &key), inbox: vec![], txs: forged.txs.clone() };
    assert!(node1.import_block(&variant, t.spec(), slot, &shard::NoSources).is_err());
    assert_eq!(node1.mismatches().len(), 1);
    // the record and its evidence survive a restart
    drop((node0, node1));
    t.crash(1);
    t.restart(1).unwrap();
    assert_eq!(t.node(1).unwrap().mismatches(), m);
    assert_eq!(t.node(1).unwrap().mismatch_evidence(&forged.header.header.hash()).unwrap(), Some(ev));
}

#[test]
fn malformed_gossip_costs_the_sender_and_the_cluster_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(9).build(dir.path()).unwrap();
    t.run(2);
    let (rogue, _rx) = t.hub().join(999);
    rogue.publish(Topic::ShardBlocks(ShardId(0)), b"not a block".to_vec());
    rogue.publish(Topic::ShardTxs(ShardId(0)), vec![0xff; 3]);
    rogue.publish(
        Topic::Submissions,
        SignedHeader { header: Default::default(), signature: Default::default() }.encode(),
    );
    rogue.publish(Topic::ShardTxs(ShardId(0)), vec![0; Topic::ShardTxs(ShardId(0)).max_bytes() + 1]);
    t.pump();
    let rogue_id = rogue.local_peer();
    for i in 0..2 {
        let score = t.peer_score(i, &rogue_id).unwrap();
        assert!(score <= -30.0, "validator {i} scored the rogue {score}");
    }
    assert!(t.beacon_peer_score(&rogue_id).unwrap() < 0.0, "the beacon scored the rogue down");
    t.run(3);
    assert_eq!(t.node(0).unwrap().head().header.height, 5, "the shard carries on");
    assert_eq!(t.node(1).unwrap().head().hash, t.node(0).unwrap().head().hash);
}

#[test]
fn a_partitioned_proposer_reverts_the_block_the_beacon_never_saw() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(21).build(dir.path()).unwrap();
    t.run(2);
    let me = t.validator_info(0).1;
    // cut validator 0 off just before a slot it proposes, followed by one it does not
    let slot = (t.slot() + 1..)
        .find(|s| {
            t.spec().proposer(ShardId(0), *s) == Some(me) && t.spec().proposer(ShardId(0), s + 1) != Some(me)
        })
        .unwrap();
    while t.slot() + 1 < slot {
        t.step();
    }
    t.set_partitioned(0, true);
    t.run(2);
    let orphan = t.node(0).unwrap().head();
    assert_eq!(orphan.header.beacon_slot, slot, "it proposed alone");
    let accepted = t.node(1).unwrap().head();
    assert_eq!(orphan.header.height, accepted.header.height, "the other validator built the same height");
    assert_ne!(orphan.hash, accepted.hash);
    t.set_partitioned(0, false);
    t.run(3);
    let n0 = t.node(0).unwrap();
    assert_eq!(n0.head().hash, t.node(1).unwrap().head().hash, "back on the beacon's chain");
    assert_eq!(t.beacon().heads()[0].hash, n0.head().hash);
    assert!(n0.metrics().reverted.get() >= 1, "the orphan was reverted");
    assert!(n0.db().height_of(&orphan.hash).unwrap().is_none(), "the orphan is gone from the index");
}

#[test]
fn a_restarted_beacon_resumes_its_chain_and_loses_no_sealed_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(2).validators_per_shard(2).seed(4).build(dir.path()).unwrap();
    t.run(4);
    let before = t.beacon_chain_bytes();
    t.restart_beacon().unwrap();
    assert_eq!(t.beacon_chain_bytes(), before, "every sealed block is still there");
    t.run(4);
    let blocks = t.beacon().db().blocks_from(0, 100).unwrap();
    assert_eq!(blocks.len(), 8, "slots 1..=8");
    for w in blocks.windows(2) {
        assert_eq!(w[1].parent, w[0].hash(), "the chain links across the restart");
    }
    assert_eq!(t.beacon().heads()[1].height, 8);
}

#[test]
fn transactions_of_a_reverted_block_survive_a_crash_and_are_included_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(23).build(dir.path()).unwrap();
    t.run(2);
    let me = t.validator_info(0).1;
    let slot = (t.slot() + 1..).find(|s| t.spec().proposer(ShardId(0), *s) == Some(me)).unwrap();
    while t.slot() + 1 < slot {
        t.step();
    }
    // validator 0 builds a block nobody sees (its RPC served receipts from it)
    t.set_partitioned(0, true);
    t.step();
    let n0 = t.node(0).unwrap().clone();
    let height = n0.head().header.height;
    let orphan = n0.block(height).unwrap().unwrap();
    assert!(!orphan.txs.is_empty());
    // it reverts the block, and dies before proposing or gossiping again
    n0.revert_to(height - 1).unwrap();
    drop(n0);
    t.crash(0);
    t.restart(0).unwrap();
    let hashes: Vec<_> = orphan.txs.iter().map(alloy_primitives::keccak256).collect();
    // the RPC still says where they had been
    for h in &hashes {
        let from = t.node(0).unwrap().reverted_from(h).expect("remembered across the crash");
        assert_eq!((from.height, from.block_hash, from.role), (height, orphan.header.header.hash(), "tx"));
    }
    {
        let pool = t.node(0).unwrap().pool().lock();
        assert!(
            hashes.iter().all(|h| pool.get(h).is_some()),
            "the reverted transactions are back in the pool"
        );
    }
    t.run(4);
    for v in 0..2 {
        let node = t.node(v).unwrap();
        for h in &hashes {
            assert!(
                node.db().tx_location(h).unwrap().is_some(),
                "validator {v} lacks reverted transaction {h}"
            );
        }
    }
    // once included again they are forgotten at the next start
    t.crash(0);
    t.restart(0).unwrap();
    assert!(t.node(0).unwrap().db().reverted_txs().unwrap().is_empty());
}

/// `eth_call` and `eth_estimateGas` at the head run in the blocks a
/// transaction sent now may land in: the next height, on every slot of the
/// next two seconds, each with its slot's timestamp and proposer.
#[test]
fn pending_block_contexts_follow_the_slot_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(8).build(dir.path()).unwrap();
    t.run(6);
    let spec = t.spec().clone();
    let node = t.node(0).unwrap().clone();
    let head = node.head();
    let (height, contexts) = node.pending_params();
    assert_eq!(height, head.header.height, "they run over the head's state");
    let first = t.slot().max(head.header.beacon_slot + 1);
    assert_eq!(contexts[0].timestamp, spec.slot_timestamp(first), "the likeliest block is the next slot's");
    let proposer = |slot: u64| alloy_primitives::Address::from(spec.proposer(ShardId(0), slot).unwrap().0);
    assert_eq!(contexts[0].beneficiary, proposer(first), "its proposer is the coinbase");
    for c in &contexts {
        assert_eq!(c.number, head.header.height + 1);
        assert_eq!(c.base_fee, bridge::next_base_fee(&head.header));
        assert_eq!(c.prevrandao.0, head.hash.0);
    }
    assert!(contexts.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    // every slot of the next two seconds is covered (500 ms slots: 4 more)
    for slot in first..=first + 4 {
        assert!(
            contexts
                .iter()
                .any(|c| c.timestamp == spec.slot_timestamp(slot) && c.beneficiary == proposer(slot)),
            "slot {slot} is covered"
        );
    }
    assert!(contexts.iter().any(|c| c.timestamp > contexts[0].timestamp), "a later second is among them");
}
