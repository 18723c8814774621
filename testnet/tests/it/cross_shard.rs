//! Cross-shard messages on the deterministic tier: whole clusters in one
//! process, the relay between real validators and the beacon.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use bridge::{MessageKind, ShardId};
use testnet::Testnet;

use crate::support::{audit_at_beacon_heads, balance, members, send};

const ETH: u128 = 1_000_000_000_000_000_000;

#[test]
fn a_transfer_to_another_shard_arrives_exactly_once_and_a_failed_one_is_refunded() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(4)
        .validators_per_shard(2)
        .seed(11)
        .txs_per_slot(3)
        .build(dir.path())
        .unwrap();
    // shard 2 gets a contract that takes no value (the Store: no receive function)
    let store_bin = hex::decode(include_str!("../../../testdata/contracts/Store.bin").trim()).unwrap();
    let deploy = t.call(ShardId(2), 9, TxKind::Create, U256::ZERO, store_bin.into(), 1_000_000);
    let (s0, s2) = (members(&t, 0), members(&t, 2));
    t.submit(s2[0], &deploy).unwrap();
    t.run(2);
    let store = t.account(9).create(0);
    assert!(t.node(s2[0]).unwrap().state().account(store, 2).unwrap().is_some(), "store deployed");

    let fresh = Address::repeat_byte(0x77);
    let sender = t.account(8);
    let before = balance(&t, s0[0], sender);
    let ok = send(&mut t, 0, 8, 2, fresh, 3 * ETH);
    let bounce = send(&mut t, 0, 8, 2, store, 2 * ETH);
    t.submit(s0[1], &ok).unwrap();
    t.submit(s0[1], &bounce).unwrap();
    t.run(10);

    // the transfer arrived once, on both validators of shard 2
    for &i in &s2 {
        assert_eq!(balance(&t, i, fresh), U256::from(3 * ETH), "validator {i}");
        assert_eq!(balance(&t, i, store), U256::ZERO, "the store took no value");
        let node = t.node(i).unwrap();
        assert_eq!(node.inbound_next(ShardId(0)).unwrap(), 2, "both messages consumed once");
        assert_eq!(node.outbox_page(ShardId(0), 0, 10).unwrap().len(), 1, "one refund sent back");
    }
    // the refund came back to the sender on shard 0: it paid only fees
    for &i in &s0 {
        let node = t.node(i).unwrap();
        assert_eq!(node.inbound_next(ShardId(2)).unwrap(), 1, "the refund was consumed");
        let refund = &t.node(s2[0]).unwrap().outbox_page(ShardId(0), 0, 1).unwrap()[0].message;
        assert!(matches!(refund.kind, MessageKind::Refund { .. }));
        assert_eq!((refund.to, refund.value), (sender, U256::from(2 * ETH)));
        let paid = before - balance(&t, i, sender);
        assert!(paid > U256::from(3 * ETH) && paid < U256::from(3 * ETH + ETH / 100), "paid {paid}");
    }
    // every validator of a shard agrees, and every header is on the beacon
    for s in 0..4 {
        let heads: Vec<_> = members(&t, s).iter().map(|i| t.node(*i).unwrap().head()).collect();
        assert!(heads.iter().all(|h| h.hash == heads[0].hash), "shard {s} validators disagree");
        assert_eq!(t.beacon().heads()[s as usize].hash, heads[0].hash);
    }
}

/// The next slot whose shard-`shard` proposer is one of its validators,
/// stepped to just before it: `(slot, that proposer, another validator)`.
fn forger_slot(t: &mut Testnet, shard: u32) -> (u64, usize, usize) {
    let vals = members(t, shard);
    let of = |t: &Testnet, s: u64| {
        vals.iter().copied().find(|i| t.spec().proposer(ShardId(shard), s) == Some(t.validator_info(*i).1))
    };
    let slot = (t.slot() + 1..).find(|s| of(t, *s).is_some()).unwrap();
    while t.slot() + 1 < slot {
        t.step();
    }
    let rogue = of(t, slot).unwrap();
    (slot, rogue, *vals.iter().find(|i| **i != rogue).unwrap())
}

/// A scheduled proposer of shard 1 signs blocks whose inbox holds a
/// tampered message (its proof no longer matches) or a message of a source
/// header the beacon never accepted. Its shard-mate refuses them (the
/// tampered one costs the sender score; the unknown header is held, not
/// punished: it might be behind), the beacon refuses both with
/// `bad_inbox`, nothing is consumed, and the real message is still
/// delivered exactly once afterwards.
#[test]
fn forged_inbox_messages_are_refused_and_change_nothing() {
    use bridge::{Encode, InboxEntry, MerkleTree};
    use net::{Network, Topic};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(2).validators_per_shard(2).seed(12).build(dir.path()).unwrap();
    t.run(2);
    let (s0, s1) = (members(&t, 0), members(&t, 1));
    let to = Address::repeat_byte(0x55);
    let raw = send(&mut t, 0, 7, 1, to, ETH);
    t.submit(s0[0], &raw).unwrap();
    t.run(1);
    let real = t.node(s0[0]).unwrap().outbox_page(ShardId(1), 0, 1).unwrap().remove(0);

    // the next slot of a shard-1 validator: it plays the forger
    let (slot, rogue, mate) = forger_slot(&mut t, 1);
    let key = t.validator_key(rogue).clone();
    let tampered = {
        let mut e = real.clone();
        e.message.value = U256::from(1000 * ETH);
        e
    };
    let unaccepted = {
        let mut m = real.message.clone();
        m.value = U256::from(500 * ETH);
        let proof = MerkleTree::new(&[m.id()]).proof(0).unwrap();
        InboxEntry { message: m, height: 10_000, proof }
    };
    let node = t.node(rogue).unwrap().clone();
    let mate_head = t.node(mate).unwrap().head().hash;
    for (forged, punished) in [(tampered, true), (unaccepted, false)] {
        let height = node.head().header.height;
        let block = node.propose(slot, t.spec(), &key, vec![forged]).unwrap();
        assert_eq!(block.inbox.len(), 1, "the execution does not check proofs: the block carries it");
        node.revert_to(height).unwrap();
        let score = t.peer_score(mate, &t.peer(rogue)).unwrap_or(0.0);
        let net = t.validator_net(rogue).clone();
        net.publish(Topic::ShardBlocks(ShardId(1)), block.encode());
        t.pump();
        assert_eq!(t.node(mate).unwrap().head().hash, mate_head, "the mate did not import it");
        assert_ne!(t.beacon().heads()[1].hash, block.header.header.hash(), "the beacon did not take it");
        assert_eq!(t.peer_score(mate, &t.peer(rogue)).unwrap() < score, punished);
    }
    let refused = t.beacon().rejections(10).iter().filter(|r| r.rejection.label() == "bad_inbox").count();
    assert_eq!(refused, 2, "the beacon refused both, with their reason");
    t.run(6);
    for i in s1 {
        assert_eq!(balance(&t, i, to), U256::from(ETH), "the real message, once");
        assert_eq!(t.node(i).unwrap().inbound_next(ShardId(0)).unwrap(), 1);
    }
}

/// Thousands of messages among 4 shards, a fifth of them failing on their
/// destination (the target takes no value: refunded), while validators
/// crash and restart (never both of a shard) and proposers change every
/// slot: every message is consumed exactly once, in channel order, every
/// emitted message is consumed, each recipient got exactly its value, and
/// the conservation audit holds at every slot.
#[test]
fn thousands_of_messages_with_failures_and_restarts_are_consumed_exactly_once() {
    use rand::{Rng, SeedableRng};
    use std::collections::{BTreeMap, HashMap, HashSet};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(4)
        .validators_per_shard(2)
        .seed(21)
        .txs_per_slot(0)
        .build(dir.path())
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    // every shard gets a Store (it takes no value: messages to it fail)
    let store_bin: Bytes =
        hex::decode(include_str!("../../../testdata/contracts/Store.bin").trim()).unwrap().into();
    for s in 0..4 {
        let raw = t.call(ShardId(s), 9, TxKind::Create, U256::ZERO, store_bin.clone(), 1_000_000);
        t.submit(members(&t, s)[0], &raw).unwrap();
    }
    t.run(2);
    let store = t.account(9).create(0);
    let mut expected: HashMap<(u32, Address), U256> = HashMap::new();
    let mut sent = 0;
    let mut down: Option<(usize, u64)> = None;
    for round in 0..60u64 {
        for src in 0..4u32 {
            let live: Vec<usize> = members(&t, src).into_iter().filter(|i| t.node(*i).is_some()).collect();
            for _ in 0..12 {
                let dst = (src + rng.gen_range(1..4)) % 4;
                let from = rng.gen_range(0..8);
                let value = rng.gen_range(1..ETH / 10);
                let to = if rng.gen_bool(0.2) { store } else { Address::from(rng.r#gen::<[u8; 20]>()) };
                if to != store {
                    *expected.entry((dst, to)).or_default() += U256::from(value);
                }
                let raw = send(&mut t, src, from, dst, to, value);
                t.submit(live[rng.gen_range(0..live.len())], &raw).unwrap();
                sent += 1;
            }
        }
        t.step();
        // crash a validator now and then (after its pool went out by
        // gossip), restart it a few slots later
        match down {
            Some((i, until)) if round >= until => {
                t.restart(i).unwrap();
                down = None;
            }
            None if round % 7 == 3 => {
                let i = rng.gen_range(0..t.validator_count());
                t.crash(i);
                down = Some((i, round + rng.gen_range(1..4)));
            }
            _ => {}
        }
        let audit = audit_at_beacon_heads(&t).expect("every accepted head is held by a live validator");
        assert!(audit.holds, "conservation broken at slot {}: {audit:?}", t.slot());
    }
    if let Some((i, _)) = down {
        t.restart(i).unwrap();
    }
    // no new sends: let everything (refunds included) land
    for _ in 0..40 {
        t.step();
        let audit = audit_at_beacon_heads(&t).unwrap();
        assert!(audit.holds, "conservation broken at slot {}", t.slot());
        if audit.in_flight.is_zero() {
            break;
        }
    }
    let audit = audit_at_beacon_heads(&t).unwrap();
    assert!(audit.in_flight.is_zero(), "value still in flight: {}", audit.in_flight);

    // a validator restarted late may still be catching up: let it settle
    t.run(3);
    // every emitted message consumed exactly once, in channel order
    let mut emitted = HashSet::new();
    let mut consumed = HashSet::new();
    let mut last_nonce: BTreeMap<(u32, u32), u64> = BTreeMap::new();
    let mut calls = 0;
    for s in 0..4u32 {
        let i = members(&t, s)[0];
        let node = t.node(i).unwrap();
        for h in 1..=node.head().header.height {
            for m in node.db().outbox(h).unwrap() {
                calls += usize::from(m.kind == MessageKind::Call);
                assert!(emitted.insert(m.id()), "message emitted twice");
            }
            for e in node.block(h).unwrap().unwrap().inbox {
                let m = e.message;
                assert!(consumed.insert(m.id()), "message {} consumed twice", m.id());
                let next = last_nonce.entry((m.src.0, s)).or_insert(0);
                assert_eq!(m.nonce, *next, "channel {} -> {s} out of order", m.src);
                *next += 1;
            }
        }
    }
    assert_eq!(calls, sent, "every send emitted a message");
    assert_eq!(consumed, emitted, "every emitted message consumed, nothing else");
    for ((dst, to), value) in expected {
        let i = members(&t, dst)[0];
        assert_eq!(balance(&t, i, to), value, "recipient {to} on shard {dst}");
    }
    for s in 0..4 {
        let heads: Vec<_> = members(&t, s).iter().map(|i| t.node(*i).unwrap().head()).collect();
        assert!(
            heads.iter().all(|h| h.hash == heads[0].hash),
            "shard {s} validators disagree: {:?} beacon {:?}",
            heads.iter().map(|h| (h.header.height, h.hash)).collect::<Vec<_>>(),
            t.beacon().heads()[s as usize]
        );
    }
    eprintln!("{sent} sends, {} messages with refunds, audit {audit:?}", emitted.len());
}

/// A header becomes final once the challenge window has passed since its
/// inclusion (its parent and its source headers final); the beacon says
/// which source headers a destination header depends on, and validators
/// learn finality from beacon blocks (the RPC's `finalized` tag).
#[test]
fn headers_finalize_after_the_window_with_their_sources() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder()
        .shards(2)
        .validators_per_shard(2)
        .seed(13)
        .challenge_window_slots(4)
        .build(dir.path())
        .unwrap();
    t.run(1);
    let (s0, s1) = (members(&t, 0), members(&t, 1));
    let raw = send(&mut t, 0, 5, 1, Address::repeat_byte(0x66), ETH);
    t.submit(s0[0], &raw).unwrap();
    t.run(3);
    // the destination block that consumed it, and the source block it came from
    let node1 = t.node(s1[0]).unwrap().clone();
    let (h1, entry) = (1..=node1.head().header.height)
        .find_map(|h| node1.block(h).unwrap().unwrap().inbox.first().cloned().map(|e| (h, e)))
        .expect("the message was consumed");
    let status = t.beacon().header_status(ShardId(1), h1).unwrap().unwrap();
    assert_eq!(status.status, "pending");
    assert_eq!(status.depends_on, vec![beacon::DependsOn { shard: ShardId(0), height: entry.height }]);
    assert_eq!(status.earliest_final_slot, status.included_slot + 4);
    while t.slot() < status.earliest_final_slot {
        assert_eq!(t.beacon().header_status(ShardId(1), h1).unwrap().unwrap().status, "pending");
        t.step();
    }
    let done = t.beacon().header_status(ShardId(1), h1).unwrap().unwrap();
    assert_eq!((done.status, done.finalized_slot), ("final", Some(status.earliest_final_slot)));
    assert_eq!(t.beacon().header_status(ShardId(0), entry.height).unwrap().unwrap().status, "final");
    // finality trails the head by the window, on the beacon and on validators
    t.run(6);
    let fin = t.beacon().finalized();
    for (s, (f, head)) in fin.iter().zip(t.beacon().heads()).enumerate() {
        assert!(f + 6 >= head.height && *f < head.height, "shard {s}: final {f} head {}", head.height);
    }
    let status1 = t.validator_status(s1[0]).unwrap();
    assert_eq!(status1.finalized_height, fin[1]);
    assert_eq!(node1.finalized(), Some(fin[1]));
}

/// A scheduled proposer hand-builds blocks around an honest one: one that
/// replays a message its shard already consumed (proof and header valid,
/// channel order not), one with a message for another shard. Mates refuse
/// both (the replay re-executes to an invalid item: a mismatch, with
/// evidence; the misrouted one is refused before execution), the beacon
/// refuses both with `bad_inbox`, and the shard carries on.
#[test]
fn replayed_and_misrouted_inbox_messages_are_refused() {
    use bridge::{Encode, ShardBlock, SignedHeader};
    use net::{Network, Topic};
    let dir = tempfile::tempdir().unwrap();
    let mut t = Testnet::builder().shards(2).validators_per_shard(2).seed(14).build(dir.path()).unwrap();
    t.run(2);
    let (s0, s1) = (members(&t, 0), members(&t, 1));
    let raw = send(&mut t, 0, 7, 1, Address::repeat_byte(0x44), ETH);
    t.submit(s0[0], &raw).unwrap();
    t.run(4);
    let real = t.node(s0[0]).unwrap().outbox_page(ShardId(1), 0, 1).unwrap().remove(0);
    assert_eq!(t.node(s1[0]).unwrap().inbound_next(ShardId(0)).unwrap(), 1, "consumed once");

    let (slot, rogue, mate) = forger_slot(&mut t, 1);
    let key = t.validator_key(rogue).clone();
    let node = t.node(rogue).unwrap().clone();
    let mate_node = t.node(mate).unwrap().clone();
    let (mate_head, mismatches) = (mate_node.head().hash, mate_node.metrics().mismatches.get());
    let misrouted = {
        let mut e = real.clone();
        e.message.dst = ShardId(0);
        e
    };
    for (forged, reason) in [(real.clone(), "expected 1"), (misrouted, "in a block of shard 1")] {
        let height = node.head().header.height;
        let honest = node.propose(slot, t.spec(), &key, vec![]).unwrap();
        node.revert_to(height).unwrap();
        let mut block = ShardBlock { inbox: vec![forged], ..honest };
        let mut header = block.header.header.clone();
        header.items_root = block.items_root();
        block.header = SignedHeader::sign(header, &key);
        t.validator_net(rogue).clone().publish(Topic::ShardBlocks(ShardId(1)), block.encode());
        t.pump();
        assert_eq!(mate_node.head().hash, mate_head, "the mate did not import it");
        let r = t.beacon().rejections(1).remove(0);
        assert_eq!(r.rejection.label(), "bad_inbox");
        assert!(r.message.contains(reason), "{}", r.message);
    }
    assert_eq!(
        mate_node.metrics().mismatches.get(),
        mismatches + 1,
        "the replay is a mismatch, kept as evidence"
    );
    assert_eq!(mate_node.metrics().messages_refused.get(), 1, "the misrouted entry is counted");
    t.run(4);
    for i in s1 {
        assert_eq!(t.node(i).unwrap().inbound_next(ShardId(0)).unwrap(), 1, "still consumed once");
        assert_eq!(balance(&t, i, Address::repeat_byte(0x44)), U256::from(ETH));
    }
}
