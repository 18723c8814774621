//! The deterministic tier against adversaries: one test per attack a peer
//! or validator can play on a shard (issue: no peer and no load can stall,
//! frame or crash a shard).

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use bridge::{Encode, ShardBlock, ShardHeader, ShardId, SignedHeader, SyncRequest, decode_exact};
use net::{NetEvent, Network, Topic};
use testnet::{Testnet, Turn};

/// Heights of every shard-`shard` header the beacon included, with the slot that included it.
fn included(t: &Testnet, shard: u32) -> Vec<(u64, u64)> {
    let blocks = t.beacon().db().blocks_from(1, usize::MAX).unwrap();
    blocks
        .iter()
        .flat_map(|b| {
            b.headers
                .iter()
                .filter(|h| h.header.shard == ShardId(shard))
                .map(|h| (b.slot, h.header.height))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The next slot after `after` whose shard-0 proposer is validator `i`
/// and that satisfies `also`.
fn next_slot_of(t: &Testnet, i: usize, after: u64, also: impl Fn(u64) -> bool) -> u64 {
    let me = t.validator_info(i).1;
    (after + 1..).find(|s| t.spec().proposer(ShardId(0), *s) == Some(me) && also(*s)).unwrap()
}

/// A block on top of `node`'s head, signed by `key` for `slot`, valid in
/// every field but what the caller changes afterwards.
fn block_on_head(
    t: &Testnet,
    node: usize,
    key: &bridge::ValidatorKey,
    slot: u64,
    txs: Vec<Vec<u8>>,
) -> ShardBlock {
    let head = t.node(node).unwrap().head();
    let mut b = ShardBlock { header: SignedHeader::sign(ShardHeader::default(), key), inbox: vec![], txs };
    let h = ShardHeader {
        shard: ShardId(0),
        height: head.header.height + 1,
        parent_hash: head.hash,
        beacon_slot: slot,
        timestamp: t.spec().slot_timestamp(slot),
        proposer: key.address(),
        pre_state_root: head.header.post_state_root,
        items_root: b.items_root(),
        post_state_root: head.header.post_state_root,
        base_fee: bridge::next_base_fee(&head.header),
        gas_limit: head.header.gas_limit,
        ..Default::default()
    };
    b.header = SignedHeader::sign(h, key);
    b
}

#[test]
fn a_tampered_body_under_an_honest_header_is_the_relayers_fault_not_the_proposers() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(31).build(dir.path()).unwrap();
    t.run(2);
    // validator 0 proposes while cut off, so only the rogue gets its block
    let slot = next_slot_of(&t, 0, t.slot(), |_| true);
    while t.slot() + 1 < slot {
        t.step();
    }
    t.set_partitioned(0, true);
    t.step();
    let honest = t.node(0).unwrap().block(t.node(0).unwrap().head().header.height).unwrap().unwrap();
    assert_eq!(honest.header.header.beacon_slot, slot);
    assert!(honest.txs.len() >= 2, "the block carries transactions to tamper with");
    let (rogue, _rx) = t.hub().join(999);
    rogue.subscribe(Topic::ShardBlocks(ShardId(0)));
    // the honest signed header, its transactions reordered
    let mut tampered = honest.clone();
    tampered.txs.swap(0, 1);
    rogue.publish(Topic::ShardBlocks(ShardId(0)), tampered.encode());
    // and with one transaction dropped
    let mut shorter = honest.clone();
    shorter.txs.pop();
    rogue.publish(Topic::ShardBlocks(ShardId(0)), shorter.encode());
    t.pump();
    let node1 = t.node(1).unwrap().clone();
    assert!(node1.mismatches().is_empty(), "no mismatch is recorded against the honest proposer");
    assert_eq!(node1.metrics().mismatches.get(), 0);
    let v = t.validator_net(1).verdicts_from(&rogue.local_peer());
    assert_eq!((v.accepted, v.rejected), (0, 2), "both tampered copies rejected, none relayed");
    assert!(t.peer_score(1, &rogue.local_peer()).unwrap() < 0.0, "the relayer pays");
    assert!(t.beacon_peer_score(&rogue.local_peer()).unwrap() < 0.0, "the beacon refused them too");
    assert!(t.beacon().heads()[0].hash != honest.header.header.hash());
    // the honest body still imports, and the beacon takes it within its window
    rogue.publish(Topic::ShardBlocks(ShardId(0)), honest.encode());
    t.pump();
    assert_eq!(node1.head().hash, honest.header.header.hash(), "the honest block imports");
    assert_eq!(t.beacon().heads()[0].hash, honest.header.header.hash());
    assert!(node1.mismatches().is_empty());
    t.set_partitioned(0, false);
    t.run(3);
    assert_eq!(t.node(0).unwrap().head().hash, node1.head().hash, "the proposer's block is canonical");
}

#[test]
fn a_far_future_block_changes_nothing_and_costs_its_signer() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(32).build(dir.path()).unwrap();
    t.run(3);
    let far = next_slot_of(&t, 0, t.slot() + 10, |_| true);
    let key = t.validator_key(0).clone();
    // a block valid in every way but its slot: built, signed, then
    // dropped from validator 0's own chain
    let node0 = t.node(0).unwrap().clone();
    let height = node0.head().header.height;
    let future = node0.propose(far, t.spec(), &key, vec![]).unwrap();
    node0.revert_to(height).unwrap();
    let net0 = t.validator_net(0).clone();
    net0.publish(Topic::ShardBlocks(ShardId(0)), future.encode());
    net0.publish(Topic::Submissions, future.encode());
    t.pump();
    let signer = t.peer(0);
    assert!(t.peer_score(1, &signer).unwrap() < 0.0, "the shard-mate scored the signer down");
    assert!(t.beacon_peer_score(&signer).unwrap() < 0.0, "the beacon scored the signer down");
    assert!(t.beacon().rejections(10).iter().any(|r| r.rejection.label() == "future_slot"));
    assert_eq!(t.validator_status(1).unwrap().future_blocks, 0, "not held either");
    let before = t.slot();
    t.run(6);
    let after: Vec<u64> = included(&t, 0).into_iter().filter(|(s, _)| *s > before).map(|(s, _)| s).collect();
    assert_eq!(after, (before + 1..=before + 6).collect::<Vec<_>>(), "every proposer kept its slot");
    assert_eq!(t.node(1).unwrap().head().hash, t.node(0).unwrap().head().hash);
}

#[test]
fn a_proposer_killed_right_after_submitting_does_not_stall_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(2).validators_per_shard(3).seed(33).build(dir.path()).unwrap();
    t.run(3);
    // a slot of validator 0 followed by two slots of the others
    let me = t.validator_info(0).1;
    let slot =
        next_slot_of(&t, 0, t.slot(), |s| (1..=2).all(|k| t.spec().proposer(ShardId(0), s + k) != Some(me)));
    while t.slot() + 1 < slot {
        t.step();
    }
    let mates: Vec<usize> = (1..3).collect();
    let mut mates_had_it = Vec::new();
    // validator 0's block reaches the beacon and no one else; then it dies
    t.step_with(|t, turn| match turn {
        Turn::Before(0) => mates.iter().for_each(|m| t.set_partitioned(*m, true)),
        Turn::After(0) => {
            t.pump();
            t.crash(0);
            let beacon_height = t.beacon().heads()[0].height;
            mates_had_it =
                mates.iter().map(|m| t.node(*m).unwrap().head().header.height >= beacon_height).collect();
            mates.iter().for_each(|m| t.set_partitioned(*m, false));
        }
        _ => {}
    });
    let height = t.beacon().heads()[0].height;
    assert_eq!(t.beacon().heads()[0].slot, slot, "the beacon took the block");
    assert_eq!(mates_had_it, vec![false, false], "no shard-mate got the body from the proposer");
    t.run(2);
    let next: Vec<(u64, u64)> = included(&t, 0).into_iter().filter(|(s, _)| *s > slot).collect();
    assert!(!next.is_empty(), "a header of slot {} or {} is on the beacon: {next:?}", slot + 1, slot + 2);
    for m in &mates {
        let n = t.node(*m).unwrap();
        assert!(
            n.head().header.height > height,
            "validator {m} fetched the dead proposer's body and moved on"
        );
        assert_eq!(
            n.block(height).unwrap().unwrap().header.header.hash(),
            t.beacon().db().shard_header(ShardId(0), height).unwrap().unwrap().header.header.hash()
        );
    }
}

#[test]
fn a_flood_of_future_blocks_and_garbage_sync_answers_leave_the_shard_moving() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(34).build(dir.path()).unwrap();
    t.run(2);
    let (rogue, mut rx) = t.hub().join(999);
    rogue.subscribe(Topic::ShardBlocks(ShardId(0)));
    // 300 blocks far above the head, each signed by the next slot's real
    // proposer (a byzantine validator's flood, inside the clock-skew
    // allowance), bodies bound to their headers
    let slot = t.slot() + 1;
    let proposer = t.spec().proposer(ShardId(0), slot).unwrap();
    let i = (0..2).find(|i| t.validator_info(*i).1 == proposer).unwrap();
    let key = t.validator_key(i).clone();
    for k in 0..300u64 {
        let mut b = block_on_head(&t, 0, &key, slot, vec![vec![k as u8; 1000]]);
        b.header.header.height += 1 + k;
        b.header.header.parent_hash = bridge::Hash::of(&k.to_be_bytes());
        b.header = SignedHeader::sign(b.header.header.clone(), &key);
        rogue.publish(Topic::ShardBlocks(ShardId(0)), b.encode());
    }
    let mut garbage_answers = 0;
    let start = t.node(0).unwrap().head().header.height;
    for _ in 0..10 {
        t.pump();
        // answer every sync request with a hostile list: a huge count, few bytes
        while let Ok(ev) = rx.try_recv() {
            if let NetEvent::Request { id, data, .. } = ev {
                assert!(decode_exact::<SyncRequest>(&data).is_ok());
                let mut junk = u32::MAX.encode();
                junk.extend_from_slice(&[7; 16]);
                rogue.respond(id, junk);
                garbage_answers += 1;
            }
        }
        t.step();
    }
    for v in 0..2 {
        let status = t.validator_status(v).unwrap();
        assert!(status.future_blocks <= 64, "validator {v} holds {} future blocks", status.future_blocks);
        assert_eq!(t.validator_net(v).verdicts_from(&rogue.local_peer()).accepted, 0, "nothing relayed");
        let head = t.node(v).unwrap().head().header.height;
        assert_eq!(head, start + 10, "validator {v}'s shard kept moving");
    }
    assert_eq!(t.node(0).unwrap().head().hash, t.node(1).unwrap().head().hash);
    assert!(garbage_answers <= 20, "sync backs off after fruitless answers ({garbage_answers} requests)");
}

#[test]
fn junk_transaction_gossip_is_not_relayed_and_a_persistent_sender_pays() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(35).build(dir.path()).unwrap();
    t.run(3);
    let (rogue, _rx) = t.hub().join(999);
    let chain = t.spec().chain_id(ShardId(0));
    let batch = |txs: Vec<Vec<u8>>| {
        let mut out = Vec::new();
        bridge::encode_list(&txs, &mut out);
        out
    };
    // well-formed, right chain, validly signed, but from unfunded senders
    let unfunded: Vec<Vec<u8>> = (0..5)
        .map(|k| {
            let signer = PrivateKeySigner::from_bytes(&[k as u8 + 1; 32].into()).unwrap();
            testnet::sign_transfer(&signer, chain, 0, Address::ZERO, 1).to_vec()
        })
        .collect();
    // and a stale nonce from a funded account (nonce 0 was used in slot 1)
    let dev = shard::dev_accounts();
    let used = (0..dev.len())
        .find(|k| t.node(0).unwrap().state_nonce(&dev[*k].1.address).unwrap() > 0)
        .expect("the workload used some account");
    let stale = testnet::sign_transfer(&dev[used].0, chain, 0, Address::ZERO, 1).to_vec();
    let junk: Vec<_> = unfunded.iter().chain([&stale]).map(alloy_primitives::keccak256).collect();
    rogue.publish(Topic::ShardTxs(ShardId(0)), batch(unfunded.clone()));
    rogue.publish(Topic::ShardTxs(ShardId(0)), batch(vec![stale]));
    t.pump();
    for v in 0..2 {
        let verdicts = t.validator_net(v).verdicts_from(&rogue.local_peer());
        assert_eq!(verdicts.accepted, 0, "validator {v} relayed junk");
        assert_eq!(verdicts.ignored, 2);
        let pool = t.node(v).unwrap().pool().lock();
        assert!(junk.iter().all(|h| pool.get(h).is_none()), "validator {v} pooled junk");
    }
    // a peer that keeps sending junk is scored down
    for _ in 0..60 {
        rogue.publish(Topic::ShardTxs(ShardId(0)), batch(unfunded.clone()));
    }
    t.pump();
    for v in 0..2 {
        assert!(t.validator_net(v).verdicts_from(&rogue.local_peer()).rejected > 0);
        assert!(t.peer_score(v, &rogue.local_peer()).unwrap() < 0.0);
    }
    // honest transaction gossip between validators is still relayed
    t.run(2);
    let honest = t.validator_net(1).verdicts_from(&t.peer(0));
    assert!(honest.accepted > 0 && honest.rejected == 0, "{honest:?}");
}

/// Fault injection (issue 9 builds the dispute game on it): a proposer
/// playing `wrong-state-root` signs headers whose state root (and trace
/// root) lie. The beacon cannot tell — the header breaks no rule it can
/// check without execution — but every honest shard-mate re-executes,
/// refuses the block and keeps evidence naming the proposer and the field.
#[test]
fn a_wrong_state_root_is_caught_by_every_honest_mate() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(3).seed(34).build(dir.path()).unwrap();
    t.run(2);
    t.set_fault(0, Some(shard::Fault::WrongStateRoot));
    let slot = next_slot_of(&t, 0, t.slot(), |_| true);
    while t.slot() < slot {
        t.step();
    }
    let liar = t.node(0).unwrap().head().header.clone();
    assert_eq!(liar.beacon_slot, slot, "the faulty proposer proposed");
    assert_eq!(t.beacon().heads()[0].hash, liar.hash(), "the beacon cannot tell without executing");
    for mate in 1..3 {
        let node = t.node(mate).unwrap();
        assert_ne!(node.head().hash, liar.hash(), "validator {mate} did not import it");
        let m = node.mismatches();
        let ev = m.iter().find(|m| m.block_hash == liar.hash()).expect("evidence kept");
        assert_eq!((ev.field.as_str(), ev.proposer), ("post_state_root", t.validator_info(0).1));
        let evidence = node.mismatch_evidence(&liar.hash()).unwrap().expect("canonical evidence stored");
        assert_eq!(evidence.computed.post_state_root, t.node(0).unwrap().state().root(liar.height).unwrap());
    }
}

/// The timestamp rule (README, "Block timestamps") where a block is made
/// and where it is imported (the beacon's own check is in the beacon's
/// chain tests): a timestamp that is not the second the block's slot
/// starts in, or is before its parent's, is refused with that reason, and
/// nothing changes.
#[test]
fn a_timestamp_off_its_slot_is_refused_by_the_proposer_and_by_importers() {
    use bridge::HeaderFault;
    use shard::{BlockError, BoundBlock, Expected, NoSources};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(1).validators_per_shard(2).seed(34).build(dir.path()).unwrap();
    t.run(4);
    let slot = next_slot_of(&t, 0, t.slot(), |_| true);
    let key = t.validator_key(0).clone();
    let (node0, node1) = (t.node(0).unwrap().clone(), t.node(1).unwrap().clone());
    let head1 = node1.head();

    // the importer: a block signed by the slot's proposer, its timestamp
    // one second after its slot's
    let expected =
        Expected { spec: t.spec(), shard: ShardId(0), head_height: head1.header.height, current: slot };
    let mut late = block_on_head(&t, 1, &key, slot, vec![]);
    late.header.header.timestamp += 1;
    late.header = SignedHeader::sign(late.header.header.clone(), &key);
    let bound = BoundBlock::from_block(late, &expected).unwrap();
    let err = node1.import(bound, t.spec(), &NoSources).unwrap_err();
    assert!(matches!(err, BlockError::Header(HeaderFault::Timestamp { .. })), "{err}");
    assert!(err.is_fault(), "a signed header breaking a rule is its proposer's fault");
    // and one stamped before its parent
    let mut early = block_on_head(&t, 1, &key, slot, vec![]);
    early.header.header.timestamp = head1.header.timestamp - 1;
    early.header = SignedHeader::sign(early.header.header.clone(), &key);
    let bound = BoundBlock::from_block(early, &expected).unwrap();
    let err = node1.import(bound, t.spec(), &NoSources).unwrap_err();
    assert!(matches!(err, BlockError::Header(HeaderFault::TimestampBeforeParent { .. })), "{err}");
    assert_eq!(node1.head().hash, head1.hash, "nothing imported");

    // the proposer: under a schedule whose slot starts before its head's
    // timestamp (a misconfigured genesis time) it refuses to sign at all
    let head0 = node0.head();
    let mut skewed = t.spec().clone();
    skewed.genesis_time_ms -= 60_000;
    let err = node0.propose(slot, &skewed, &key, vec![]).unwrap_err();
    assert!(matches!(err, shard::Error::Header(HeaderFault::TimestampBeforeParent { .. })), "{err}");
    assert_eq!(node0.head().hash, head0.hash, "nothing committed");
    // under the network's schedule it proposes, stamped with its slot's second
    let block = node0.propose(slot, t.spec(), &key, vec![]).unwrap();
    assert_eq!(block.header.header.timestamp, t.spec().slot_timestamp(slot));
    assert!(block.header.header.timestamp >= head0.header.timestamp);
}
