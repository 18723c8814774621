//! Cross-shard messages on the deterministic tier: whole clusters in one
//! process, the relay between real validators and the beacon.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_sol_types::SolCall;
use bridge::{BRIDGE_ADDRESS, MessageKind, ShardId};
use prover::IBridge;
use testnet::Testnet;

const ETH: u128 = 1_000_000_000_000_000_000;

fn members(t: &Testnet, shard: u32) -> Vec<usize> {
    (0..t.validator_count()).filter(|i| t.validator_info(*i).0 == ShardId(shard)).collect()
}

fn balance(t: &Testnet, i: usize, a: Address) -> U256 {
    let node = t.node(i).unwrap();
    let h = node.head().header.height;
    node.state().account(a, h).unwrap().map_or(U256::ZERO, |x| x.balance)
}

/// A `send` of `value` from dev account `from` on `src` to `to` on `dst`.
fn send(t: &mut Testnet, src: u32, from: usize, dst: u32, to: Address, value: u128) -> Bytes {
    let data = IBridge::sendCall { dstShard: dst, to, data: Bytes::new() }.abi_encode();
    t.call(ShardId(src), from, TxKind::Call(BRIDGE_ADDRESS), U256::from(value), data.into(), 300_000)
}

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
    let slot = (t.slot() + 1..)
        .find(|s| s1.iter().any(|i| t.spec().proposer(ShardId(1), *s) == Some(t.validator_info(*i).1)))
        .unwrap();
    while t.slot() + 1 < slot {
        t.step();
    }
    let rogue =
        *s1.iter().find(|i| t.spec().proposer(ShardId(1), slot) == Some(t.validator_info(**i).1)).unwrap();
    let mate = *s1.iter().find(|i| **i != rogue).unwrap();
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
        let block = node.propose(slot, t.spec().slot_timestamp(slot), &key, vec![forged]).unwrap();
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
