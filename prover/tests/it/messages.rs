//! Cross-shard messages in the state-transition function: the bridge
//! precompile on the source, delivery (call or refund) on the destination.
//! The test chain is shard 0 of 4.

use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_sol_types::{SolCall, SolEvent, SolValue, sol};
use bridge::{BRIDGE_ADDRESS, DEFAULT_MESSAGE_GAS, Message, MessageKind, ShardId, merkle_root};
use prover::{IBridge, Item, Mode, SignedTx, channel_slot, inbound_slot};

use crate::support::*;

sol! {
    interface IPinger {
        function ping(uint32 dst, address to, bytes data) external payable returns (bytes32);
        function pingAndRevert(uint32 dst, address to) external payable;
        function onPing(bytes data) external payable;
        function pings() external view returns (uint256);
        event Pinged(uint32 srcShard, address sender, uint256 value, bytes data);
    }
}

const ETH: u128 = 1_000_000_000_000_000_000;

fn send(s: u8, nonce: u64, dst: u32, to: Address, value: u128, gas: u64) -> SignedTx {
    let data = IBridge::sendCall { dstShard: dst, to, data: Bytes::new() }.abi_encode();
    sign_1559(&signer(s), nonce, TxKind::Call(BRIDGE_ADDRESS), U256::from(value), Bytes::from(data), gas)
}

fn balance(chain: &Chain, a: Address) -> U256 {
    chain.state.account(a, chain.height).unwrap().map_or(U256::ZERO, |a| a.balance)
}

fn slot(chain: &Chain, s: U256) -> U256 {
    chain.state.storage(BRIDGE_ADDRESS, s, chain.height).unwrap()
}

/// A call message from `src` to `to` on shard 0.
fn message(src: u32, nonce: u64, to: Address, value: u128, data: Vec<u8>) -> Message {
    Message {
        src: ShardId(src),
        dst: ShardId(0),
        nonce,
        sender: Address::repeat_byte(0xab),
        to,
        value: U256::from(value),
        gas_limit: 200_000,
        data,
        kind: MessageKind::Call,
    }
}

fn deploy_pinger(chain: &mut Chain, nonce: u64) -> Address {
    let tx = sign_1559(&signer(0), nonce, TxKind::Create, U256::ZERO, pinger_bin(), 2_000_000);
    let exec = chain.execute(vec![tx], Mode::Verify);
    chain.commit(&exec);
    exec.outcomes[0].receipt.contract_address.expect("deployed")
}

#[test]
fn send_burns_the_value_and_appends_a_message_to_the_outbox() {
    let mut chain = Chain::new(2);
    let (from, to) = (signer(0).address(), Address::repeat_byte(0x42));
    let before = balance(&chain, from);
    let exec =
        chain.execute(vec![send(0, 0, 2, to, ETH, 200_000), send(0, 1, 2, to, 5, 200_000)], Mode::Verify);
    let o = &exec.outcomes;
    assert!(o[0].receipt.success && o[1].receipt.success);
    let m = &o[0].messages[0];
    assert_eq!(
        (m.src, m.dst, m.nonce, m.sender, m.to, m.value, m.gas_limit, m.kind),
        (ShardId(0), ShardId(2), 0, from, to, U256::from(ETH), DEFAULT_MESSAGE_GAS, MessageKind::Call)
    );
    assert_eq!(o[1].messages[0].nonce, 1, "the channel's next nonce");
    // send returns the id, the receipt lists it and the log carries it
    assert_eq!(B256::abi_decode(&o[0].receipt.output).unwrap(), B256::from(m.id().0));
    assert_eq!(o[0].receipt.messages, vec![m.id()]);
    let log = IBridge::MessageSent::decode_log(&o[0].receipt.logs[0]).unwrap();
    assert_eq!((log.id, log.dstShard, log.sender, log.value), (B256::from(m.id().0), 2, from, m.value));
    assert_eq!(exec.outbox(), vec![m.clone(), o[1].messages[0].clone()]);
    assert_eq!(exec.outbox_root(), merkle_root(&[m.id(), o[1].messages[0].id()]));
    // the destination's gas is bought here: 30,000 + gas limit on top of the call
    assert!(o[0].receipt.gas_used > 21_000 + 30_000 + DEFAULT_MESSAGE_GAS);
    chain.commit(&exec);
    let fees = U256::from((o[0].receipt.gas_used + o[1].receipt.gas_used) * 9);
    assert_eq!(balance(&chain, from), before - U256::from(ETH + 5) - fees);
    assert_eq!(balance(&chain, BRIDGE_ADDRESS), U256::ZERO, "the value is burned, not escrowed");
    assert_eq!(slot(&chain, channel_slot(ShardId(2))), U256::from(2));
}

#[test]
fn bad_sends_revert_and_send_nothing() {
    let mut chain = Chain::new(1);
    let pinger = deploy_pinger(&mut chain, 0);
    let to = Address::repeat_byte(0x42);
    let with_gas = |gas: u64| IBridge::sendWithGasCall { dstShard: 1, to, gasLimit: gas, data: Bytes::new() };
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        ("to itself", IBridge::sendCall { dstShard: 0, to, data: Bytes::new() }.abi_encode(), 200_000),
        ("unknown shard", IBridge::sendCall { dstShard: 4, to, data: Bytes::new() }.abi_encode(), 200_000),
        ("gas below intrinsic", with_gas(20_999).abi_encode(), 200_000),
        ("gas above the cap", with_gas(10_000_001).abi_encode(), 11_000_000),
        ("malformed", IBridge::sendCall::SELECTOR.to_vec(), 200_000),
        ("unknown function", vec![1, 2, 3, 4], 200_000),
        ("plain transfer", vec![], 200_000),
        ("not enough gas for the destination", with_gas(150_000).abi_encode(), 120_000),
    ];
    let before = balance(&chain, signer(0).address());
    let mut txs: Vec<SignedTx> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, data, gas))| {
            sign_1559(
                &signer(0),
                i as u64 + 1,
                TxKind::Call(BRIDGE_ADDRESS),
                U256::from(7),
                data.clone().into(),
                *gas,
            )
        })
        .collect();
    // a caller that reverts after sending
    let call = IPinger::pingAndRevertCall { dst: 1, to }.abi_encode();
    txs.push(sign_1559(
        &signer(0),
        txs.len() as u64 + 1,
        TxKind::Call(pinger),
        U256::from(7),
        call.into(),
        500_000,
    ));
    let exec = chain.execute(txs, Mode::Verify);
    for (i, o) in exec.outcomes.iter().enumerate() {
        let what = cases.get(i).map_or("reverting caller", |c| c.0);
        assert!(!o.receipt.success, "{what} succeeded");
        assert!(o.messages.is_empty() && o.receipt.logs.is_empty(), "{what} sent something");
    }
    assert!(exec.outbox().is_empty());
    chain.commit(&exec);
    let fees: u64 = exec.outcomes.iter().map(|o| o.receipt.gas_used * 9).sum();
    assert_eq!(balance(&chain, signer(0).address()), before - U256::from(fees), "values came back");
    assert_eq!(slot(&chain, channel_slot(ShardId(1))), U256::ZERO);
}

#[test]
fn a_delivered_call_credits_calls_and_knows_its_sender() {
    let mut chain = Chain::new(1);
    let pinger = deploy_pinger(&mut chain, 0);
    let data = IPinger::onPingCall { data: Bytes::from_static(b"hi") }.abi_encode();
    let m = message(3, 0, pinger, 5 * ETH, data);
    let exec = chain.execute_items(vec![Item::Message(m.clone())], Mode::Verify).unwrap();
    let r = &exec.outcomes[0].receipt;
    assert!(r.success, "{}", String::from_utf8_lossy(&r.output));
    assert_eq!((r.tx_hash, r.tx_type), (B256::from(m.id().0), prover::MESSAGE_RECEIPT_TYPE));
    let pinged = IPinger::Pinged::decode_log(&r.logs[0]).unwrap();
    assert_eq!((pinged.srcShard, pinged.sender, pinged.value), (3, m.sender, m.value));
    assert!(exec.outbox().is_empty());
    chain.commit(&exec);
    assert_eq!(balance(&chain, pinger), U256::from(5 * ETH));
    assert_eq!(balance(&chain, BRIDGE_ADDRESS), U256::ZERO);
    assert_eq!(chain.state.account(BRIDGE_ADDRESS, chain.height).unwrap().unwrap().nonce, 1);
    assert_eq!(slot(&chain, inbound_slot(ShardId(3))), U256::from(1), "next on channel 3 -> 0");
    // outside a delivery, messageSender reverts
    let ask = IBridge::messageSenderCall {}.abi_encode();
    let call = sign_1559(&signer(0), 1, TxKind::Call(BRIDGE_ADDRESS), U256::ZERO, ask.into(), 100_000);
    let exec = chain.execute(vec![call], Mode::Verify);
    assert!(!exec.outcomes[0].receipt.success);
}

/// `m` with just enough gas to start its call, not to run it.
fn out_of_gas(m: Message) -> Message {
    Message { gas_limit: Message::min_gas(&m.data) + 100, ..m }
}

#[test]
fn a_failed_call_refunds_its_sender_and_a_refund_cannot_fail() {
    let mut chain = Chain::new(1);
    let pinger = deploy_pinger(&mut chain, 0);
    let fail = IPinger::onPingCall { data: Bytes::from_static(&[0xff]) }.abi_encode();
    let cases = [
        message(1, 0, pinger, ETH, fail),                         // reverts
        message(1, 1, pinger, ETH, vec![0xde, 0xad, 0xbe, 0xef]), // no such function
        out_of_gas(message(1, 2, pinger, ETH, IPinger::onPingCall { data: Bytes::new() }.abi_encode())),
    ];
    let exec = chain.execute_items(cases.iter().cloned().map(Item::Message).collect(), Mode::Verify).unwrap();
    for (i, (m, o)) in cases.iter().zip(&exec.outcomes).enumerate() {
        assert!(!o.receipt.success, "case {i}");
        let refund = &o.messages[0];
        assert_eq!(
            (refund.src, refund.dst, refund.nonce, refund.to),
            (ShardId(0), ShardId(1), i as u64, m.sender)
        );
        assert_eq!((refund.value, refund.kind), (m.value, MessageKind::Refund { of: m.id() }));
        assert_eq!(o.receipt.messages, vec![refund.id()]);
    }
    chain.commit(&exec);
    assert_eq!(balance(&chain, pinger), U256::ZERO, "no value stuck on the destination");
    assert_eq!(balance(&chain, BRIDGE_ADDRESS), U256::ZERO);
    assert_eq!(slot(&chain, channel_slot(ShardId(1))), U256::from(3));
    assert_eq!(slot(&chain, inbound_slot(ShardId(1))), U256::from(3));

    // a refund back to a contract that rejects plain value still lands
    let refund = Message {
        to: pinger,
        sender: BRIDGE_ADDRESS,
        kind: MessageKind::Refund { of: cases[0].id() },
        gas_limit: 0,
        data: vec![],
        ..message(2, 0, pinger, ETH, vec![])
    };
    let exec = chain.execute_items(vec![Item::Message(refund)], Mode::Verify).unwrap();
    assert!(exec.outcomes[0].receipt.success && exec.outcomes[0].receipt.gas_used == 0);
    chain.commit(&exec);
    assert_eq!(balance(&chain, pinger), U256::from(ETH));
}

#[test]
fn messages_out_of_channel_order_or_for_another_shard_are_invalid() {
    let chain = Chain::new(1);
    let to = Address::repeat_byte(0x42);
    let first = message(2, 0, to, 1, vec![]);
    let cases = vec![
        ("a gap", vec![message(2, 1, to, 1, vec![])]),
        ("a replay", vec![first.clone(), first.clone()]),
        ("another shard's", vec![Message { dst: ShardId(1), ..first.clone() }]),
        ("from itself", vec![Message { src: ShardId(0), ..first.clone() }]),
        ("from no shard", vec![Message { src: ShardId(9), ..first.clone() }]),
        ("gas below intrinsic", vec![Message { gas_limit: 100, ..first.clone() }]),
    ];
    for (what, ms) in cases {
        let items: Vec<Item> = ms.into_iter().map(Item::Message).collect();
        let n = items.len();
        assert!(chain.execute_items(items.clone(), Mode::Verify).is_err(), "{what} verified");
        let built = chain.execute_items(items, Mode::Build).unwrap();
        assert_eq!(built.rejected.len(), 1, "{what}");
        assert_eq!(built.items.len(), n - 1, "{what}");
    }
}

#[test]
fn value_reaching_the_bridge_during_a_delivery_is_neither_lost_nor_minted() {
    let mut chain = Chain::new(1);
    // messageSender() with value refuses it: the call fails and is refunded
    let ask = IBridge::messageSenderCall {}.abi_encode();
    let m = message(1, 0, BRIDGE_ADDRESS, 3 * ETH, ask);
    let exec = chain.execute_items(vec![Item::Message(m.clone())], Mode::Verify).unwrap();
    assert!(!exec.outcomes[0].receipt.success);
    assert_eq!(exec.outcomes[0].messages[0].value, m.value, "refunded");
    chain.commit(&exec);
    assert_eq!(balance(&chain, BRIDGE_ADDRESS), U256::ZERO);

    // a contract that SELFDESTRUCTs its balance to the bridge when called
    let mut runtime = vec![0x73];
    runtime.extend_from_slice(BRIDGE_ADDRESS.as_slice());
    runtime.push(0xff);
    let mut init = vec![0x60, runtime.len() as u8, 0x80, 0x60, 0x0b, 0x60, 0x00, 0x39, 0x60, 0x00, 0xf3];
    init.extend_from_slice(&runtime);
    let deploy = sign_1559(&signer(0), 0, TxKind::Create, U256::from(ETH), init.into(), 200_000);
    let exec = chain.execute(vec![deploy], Mode::Verify);
    let sink = exec.outcomes[0].receipt.contract_address.unwrap();
    chain.commit(&exec);
    assert_eq!(balance(&chain, sink), U256::from(ETH));
    let m = message(1, 1, sink, 2 * ETH, vec![]);
    let exec = chain.execute_items(vec![Item::Message(m)], Mode::Verify).unwrap();
    assert!(exec.outcomes[0].receipt.success);
    chain.commit(&exec);
    // the delivered 2 ETH and the sink's 1 ETH now sit with the bridge: kept, not destroyed
    assert_eq!(balance(&chain, sink), U256::ZERO);
    assert_eq!(balance(&chain, BRIDGE_ADDRESS), U256::from(3 * ETH));
    // and the next delivery neither spends nor loses them
    let m = message(1, 2, Address::repeat_byte(0x31), ETH, vec![]);
    let exec = chain.execute_items(vec![Item::Message(m)], Mode::Verify).unwrap();
    chain.commit(&exec);
    assert_eq!(balance(&chain, Address::repeat_byte(0x31)), U256::from(ETH));
    assert_eq!(balance(&chain, BRIDGE_ADDRESS), U256::from(3 * ETH));
}
