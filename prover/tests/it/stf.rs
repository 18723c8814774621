//! The state-transition function on real Ethereum transactions, and
//! stateless re-execution of every item from its witness.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_sol_types::{SolCall, sol};
use proptest::prelude::*;
use prover::{Item, Mode, SignedTx, execute_stateless, produce_witness};

use crate::support::*;

sol! {
    interface IPinger {
        function onPing(bytes data) external payable;
    }

    interface IStore {
        function set(uint256 key, uint256 value) external;
        function clear(uint256 key) external;
        function get(uint256 key) external view returns (uint256);
        function spin(uint256 rounds) external;
        event ValueSet(address indexed who, uint256 indexed key, uint256 value);
    }
}

fn call(s: u8, nonce: u64, to: Address, data: Vec<u8>, gas: u64) -> SignedTx {
    sign_1559(&signer(s), nonce, TxKind::Call(to), U256::ZERO, Bytes::from(data), gas)
}

fn deploy(s: u8, nonce: u64) -> SignedTx {
    sign_1559(&signer(s), nonce, TxKind::Create, U256::ZERO, store_bin(), 1_000_000)
}

#[test]
fn transfers_move_value_charge_fees_and_bump_nonces() {
    let mut chain = Chain::new(2);
    let (a, b) = (signer(0).address(), signer(1).address());
    let to = Address::repeat_byte(0x77);
    let txs = vec![
        sign_1559(&signer(0), 0, TxKind::Call(to), U256::from(1000), Bytes::new(), 21_000),
        sign_legacy(&signer(1), 0, to, U256::from(5)),
    ];
    let exec = chain.execute(txs, Mode::Verify);
    assert!(exec.rejected.is_empty());
    assert!(exec.outcomes.iter().all(|o| o.receipt.success && o.receipt.gas_used == 21_000));
    assert_eq!(exec.gas_used, 42_000);
    chain.commit(&exec);
    let st = &chain.state;
    assert_eq!(st.account(to, 1).unwrap().unwrap().balance, U256::from(1005));
    let start = U256::from(10u128.pow(24));
    // 1559: base fee 7 + tip 2 per gas; legacy: pays 50 per gas
    assert_eq!(st.account(a, 1).unwrap().unwrap().balance, start - U256::from(1000 + 21_000 * 9));
    assert_eq!(st.account(b, 1).unwrap().unwrap().balance, start - U256::from(5 + 21_000 * 50));
    assert_eq!(st.account(a, 1).unwrap().unwrap().nonce, 1);
    // the proposer gets the tips; the base fee is burned
    let tips = 21_000 * 2 + 21_000 * (50 - BASE_FEE);
    assert_eq!(st.account(params(1).beneficiary, 1).unwrap().unwrap().balance, U256::from(tips));
}

#[test]
fn invalid_transactions_are_skipped_when_building_and_fatal_when_verifying() {
    let chain = Chain::new(2);
    let to = Address::repeat_byte(0x77);
    let poor = alloy_signer_local::PrivateKeySigner::random();
    let cases = vec![
        (sign_1559(&signer(0), 5, TxKind::Call(to), U256::ZERO, Bytes::new(), 21_000), "nonce"),
        (sign_1559(&poor, 0, TxKind::Call(to), U256::from(1), Bytes::new(), 21_000), "funds"),
        (sign_1559(&signer(1), 0, TxKind::Call(to), U256::ZERO, Bytes::new(), 20_000), "intrinsic"),
    ];
    for (tx, what) in cases {
        let hash = tx.hash;
        let exec = chain.execute(vec![tx.clone()], Mode::Build);
        assert!(exec.outcomes.is_empty(), "{what}: must not be included");
        assert_eq!(exec.rejected.len(), 1, "{what}");
        assert_eq!(exec.rejected[0].hash, hash);
        assert!(!exec.rejected[0].block_full, "{what}: invalid, not merely late");
        let reader = chain.state.reader(0).unwrap();
        let err = prover::execute_items(reader, &params(1), vec![Item::Tx(tx)], Mode::Verify);
        assert!(err.is_err(), "{what}: a block containing it is invalid");
    }
}

#[test]
fn a_full_block_leaves_valid_transactions_for_later() {
    let chain = Chain::new(1);
    let to = Address::repeat_byte(0x77);
    let mut p = params(1);
    p.gas_limit = 50_000;
    let txs: Vec<Item> = (0..3)
        .map(|n| Item::Tx(sign_1559(&signer(0), n, TxKind::Call(to), U256::ZERO, Bytes::new(), 21_000)))
        .collect();
    let exec = prover::execute_items(chain.state.reader(0).unwrap(), &p, txs, Mode::Build).unwrap();
    assert_eq!(exec.outcomes.len(), 2);
    assert_eq!(exec.rejected.len(), 1);
    assert!(exec.rejected[0].block_full);
}

#[test]
fn contracts_deploy_write_storage_emit_logs_and_revert() {
    let mut chain = Chain::new(1);
    let exec = chain.execute(vec![deploy(0, 0)], Mode::Verify);
    let contract = exec.outcomes[0].receipt.contract_address.expect("created");
    assert!(exec.outcomes[0].receipt.success);
    chain.commit(&exec);
    let code = chain.state.account(contract, 1).unwrap().unwrap().code_hash;
    assert!(chain.state.code(code, 1).unwrap().is_some(), "code stored under its hash");

    let set = IStore::setCall { key: U256::from(3), value: U256::from(42) }.abi_encode();
    let bad = IStore::setCall { key: U256::from(3), value: U256::ZERO }.abi_encode();
    let oog = IStore::spinCall { rounds: U256::from(100_000) }.abi_encode();
    let exec = chain.execute(
        vec![
            call(0, 1, contract, set, 200_000),
            call(0, 2, contract, bad, 200_000),
            call(0, 3, contract, oog, 100_000),
        ],
        Mode::Verify,
    );
    let r = exec.receipts();
    assert!(r[0].success);
    assert_eq!(r[0].logs.len(), 1);
    assert_eq!(r[0].logs[0].address, contract);
    assert_eq!(r[0].logs[0].topics()[0], <IStore::ValueSet as alloy_sol_types::SolEvent>::SIGNATURE_HASH);
    assert!(!r[1].success, "require(value != 0) reverts");
    assert!(r[1].logs.is_empty());
    // Error(string) selector followed by the reason
    assert_eq!(&r[1].output[..4], &[0x08, 0xc3, 0x79, 0xa0]);
    assert!(String::from_utf8_lossy(&r[1].output).contains("value must be non-zero"));
    assert!(!r[2].success, "out of gas");
    assert_eq!(r[2].gas_used, 100_000);
    chain.commit(&exec);
    assert_eq!(chain.state.storage(contract, U256::ZERO, 2).unwrap(), U256::ZERO);
    // values[3] lives at keccak(3 . 0)
    let slot = alloy_primitives::keccak256([U256::from(3).to_be_bytes::<32>(), [0u8; 32]].concat());
    assert_eq!(chain.state.storage(contract, U256::from_be_bytes(slot.0), 2).unwrap(), U256::from(42));
    assert_eq!(chain.state.storage(contract, U256::from(1), 2).unwrap(), U256::from(1), "count");
}

#[derive(Clone, Debug)]
enum Op {
    Transfer { from: u8, to: u8, amount: u64 },
    Deploy { from: u8 },
    Set { from: u8, key: u8, value: u8 },
    Clear { from: u8, key: u8 },
    Spin { from: u8, rounds: u16, gas: u32 },
    Fresh { from: u8, amount: u64 },
    Send { from: u8, dst: u32, amount: u64 },
}

/// An inbox message of a random block: a call to the Pinger (which may be
/// asked to fail, or given too little gas), to an account, to the Store
/// (no such function: fails), or a refund.
#[derive(Clone, Debug)]
enum Msg {
    Call { src: u32, target: u8, value: u64, fail: bool, starve: bool },
    Refund { src: u32, value: u64 },
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        (1u32..4, 0u8..3, 0u64..1000, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(src, target, value, fail, starve)| Msg::Call { src, target, value, fail, starve }),
        (1u32..4, 1u64..1000).prop_map(|(src, value)| Msg::Refund { src, value }),
    ]
}

/// Messages in channel order (`inbound` holds each channel's next nonce).
fn messages(ms: &[Msg], pinger: Address, store: Address, inbound: &mut [u64; 4]) -> Vec<Item> {
    ms.iter()
        .map(|m| {
            let src = match m {
                Msg::Call { src, .. } | Msg::Refund { src, .. } => *src,
            };
            let nonce = inbound[src as usize];
            inbound[src as usize] += 1;
            let base = bridge::Message {
                src: bridge::ShardId(src),
                dst: bridge::ShardId(0),
                nonce,
                sender: signer(src as u8).address(),
                to: pinger,
                value: U256::ZERO,
                gas_limit: 200_000,
                data: vec![],
                kind: bridge::MessageKind::Call,
            };
            let m = match m {
                Msg::Call { target, value, fail, starve, .. } => {
                    let data =
                        IPinger::onPingCall { data: Bytes::from(if *fail { vec![0xff] } else { vec![1] }) }
                            .abi_encode();
                    let (to, data) = match target {
                        0 => (pinger, data),
                        1 => (Address::repeat_byte(0x5e), vec![]),
                        _ => (store, data),
                    };
                    let gas_limit = if *starve { bridge::Message::min_gas(&data) + 50 } else { 200_000 };
                    bridge::Message { to, data, gas_limit, value: U256::from(*value), ..base }
                }
                Msg::Refund { value, .. } => bridge::Message {
                    sender: bridge::BRIDGE_ADDRESS,
                    to: signer(1).address(),
                    value: U256::from(*value),
                    gas_limit: 0,
                    kind: bridge::MessageKind::Refund { of: bridge::Hash::of(&nonce.to_be_bytes()) },
                    ..base
                },
            };
            Item::Message(m)
        })
        .collect()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4, 0u8..4, 0u64..1000).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        (0u8..4).prop_map(|from| Op::Deploy { from }),
        (0u8..4, 0u8..6, 0u8..4).prop_map(|(from, key, value)| Op::Set { from, key, value }),
        (0u8..4, 0u8..6).prop_map(|(from, key)| Op::Clear { from, key }),
        (0u8..4, 0u16..200, 30_000u32..120_000).prop_map(|(from, rounds, gas)| Op::Spin {
            from,
            rounds,
            gas
        }),
        (0u8..4, 1u64..1000).prop_map(|(from, amount)| Op::Fresh { from, amount }),
        (0u8..4, 1u32..4, 0u64..1000).prop_map(|(from, dst, amount)| Op::Send { from, dst, amount }),
    ]
}

fn build(ops: &[Op], contract: Address, nonces: &mut [u64; 4], fresh: &mut u64) -> Vec<SignedTx> {
    ops.iter()
        .map(|o| {
            let from = match o {
                Op::Transfer { from, .. }
                | Op::Deploy { from }
                | Op::Set { from, .. }
                | Op::Clear { from, .. } => *from,
                Op::Spin { from, .. } | Op::Fresh { from, .. } | Op::Send { from, .. } => *from,
            };
            let n = nonces[from as usize];
            nonces[from as usize] += 1;
            match o {
                Op::Transfer { to, amount, .. } => sign_1559(
                    &signer(from),
                    n,
                    TxKind::Call(signer(*to).address()),
                    U256::from(*amount),
                    Bytes::new(),
                    21_000,
                ),
                Op::Deploy { .. } => deploy(from, n),
                Op::Set { key, value, .. } => call(
                    from,
                    n,
                    contract,
                    IStore::setCall { key: U256::from(*key), value: U256::from(*value) }.abi_encode(),
                    200_000,
                ),
                Op::Clear { key, .. } => {
                    call(from, n, contract, IStore::clearCall { key: U256::from(*key) }.abi_encode(), 100_000)
                }
                Op::Spin { rounds, gas, .. } => call(
                    from,
                    n,
                    contract,
                    IStore::spinCall { rounds: U256::from(*rounds) }.abi_encode(),
                    *gas as u64,
                ),
                Op::Send { dst, amount, .. } => {
                    let to = signer(from).address();
                    let data = prover::IBridge::sendCall {
                        dstShard: *dst,
                        to,
                        data: Bytes::from(vec![7; *dst as usize]),
                    };
                    sign_1559(
                        &signer(from),
                        n,
                        TxKind::Call(bridge::BRIDGE_ADDRESS),
                        U256::from(*amount),
                        Bytes::from(data.abi_encode()),
                        200_000,
                    )
                }
                Op::Fresh { amount, .. } => {
                    *fresh += 1;
                    let to = Address::left_padding_from(&fresh.to_be_bytes());
                    sign_legacy(&signer(from), n, to, U256::from(*amount))
                }
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For every item of blocks mixing inbox messages (calls that succeed,
    /// revert, run out of gas; refunds) and transactions (some sending
    /// messages), re-execution from its witness alone gives the full
    /// execution's `c_i`, and removing any one witness entry fails.
    #[test]
    fn stateless_equals_full_and_witnesses_are_minimal(
        first in prop::collection::vec(op(), 0..6),
        second in prop::collection::vec(op(), 1..8),
        inbox1 in prop::collection::vec(msg(), 0..4),
        inbox2 in prop::collection::vec(msg(), 0..6),
    ) {
        let mut chain = Chain::new(4);
        let mut nonces = [0u64; 4];
        let mut fresh = 0;
        let mut inbound = [0u64; 4];
        // block 1 deploys the Store and the Pinger (plus a random workload), block 2 is random
        let contract = alloy_primitives::Address::create(&signer(0).address(), 0);
        let pinger = alloy_primitives::Address::create(&signer(0).address(), 1);
        let pinger_deploy = sign_1559(&signer(0), 1, TxKind::Create, U256::ZERO, pinger_bin(), 2_000_000);
        let mut items = messages(&inbox1, pinger, contract, &mut inbound);
        items.extend([deploy(0, 0), pinger_deploy].map(Item::Tx));
        nonces[0] = 2;
        items.extend(build(&first, contract, &mut nonces, &mut fresh).into_iter().map(Item::Tx));
        let mut exec1 = chain.execute_items(items, Mode::Build).unwrap();
        prop_assert!(exec1.rejected.is_empty(), "{:?}", exec1.rejected);
        chain.commit(&exec1);
        let mut items = messages(&inbox2, pinger, contract, &mut inbound);
        items.extend(build(&second, contract, &mut nonces, &mut fresh).into_iter().map(Item::Tx));
        let exec2 = chain.execute_items(items, Mode::Build).unwrap();
        prop_assert!(exec2.rejected.is_empty(), "{:?}", exec2.rejected);
        prop_assert_eq!(exec2.outbox_root(), bridge::merkle_root(&exec2.outbox().iter().map(bridge::Message::id).collect::<Vec<_>>()));

        for (height, exec) in [(1u64, &mut exec1), (2u64, &mut exec2.clone())] {
            let base = height - 1;
            let trace = exec.trace(&chain.state, base).unwrap();
            let hashes = chain.block_hashes();
            for i in 0..exec.items.len() {
                let w = produce_witness(&chain.state, base, exec, i, &hashes).unwrap();
                let pre = if i == 0 { bridge::TraceCommitment::start(chain.state.root(base).unwrap()) } else { trace[i - 1] };
                prop_assert_eq!(w.pre, pre);
                let (ci, receipt) = execute_stateless(&params(height), &exec.items[i], &w).unwrap();
                prop_assert_eq!(ci, trace[i], "block {} item {}", height, i);
                prop_assert_eq!(&receipt, &exec.outcomes[i].receipt);
                for e in 0..w.entries() {
                    let res = execute_stateless(&params(height), &exec.items[i], &w.without_entry(e));
                    prop_assert!(res.is_err(), "block {} item {}: witness entry {} of {} was not needed", height, i, e, w.entries());
                }
            }
        }
        // the final commitment of block 2 is what the header's trace_root holds
        let trace2 = exec2.trace(&chain.state, 1).unwrap();
        let post = chain.commit(&exec2);
        prop_assert_eq!(trace2.last().unwrap().state_root, post);
        prop_assert_eq!(*trace2.last().unwrap(), exec2.final_commitment(post));
    }
}

proptest! {
    /// Bytes from the network never panic the transaction decoder; whatever
    /// decodes keeps exactly the bytes received and hashes them.
    #[test]
    fn transaction_decoder_takes_any_bytes(junk: Vec<u8>, flip in 0usize..4096, bit in 0u8..8) {
        let _ = SignedTx::decode(&junk);
        let good = sign_1559(&signer(0), 3, TxKind::Call(Address::repeat_byte(9)), U256::from(5), Bytes::new(), 21_000);
        let mut bad = good.raw.to_vec();
        let i = flip % bad.len();
        bad[i] ^= 1 << bit;
        if let Ok(tx) = SignedTx::decode(&bad) {
            prop_assert_eq!(tx.raw.as_ref(), bad.as_slice());
            prop_assert_eq!(tx.hash, alloy_primitives::keccak256(&bad));
        }
        let back = SignedTx::decode(&good.raw).unwrap();
        prop_assert_eq!(back, good);
    }

    /// Stored receipts round-trip through their canonical encoding.
    #[test]
    fn receipts_round_trip(success: bool, gas: u64, topics in 0usize..5, data: Vec<u8>) {
        let log = alloy_primitives::Log::new_unchecked(
            Address::repeat_byte(3),
            (0..topics).map(|t| alloy_primitives::B256::repeat_byte(t as u8)).collect(),
            Bytes::from(data),
        );
        let r = prover::Receipt {
            tx_hash: alloy_primitives::B256::repeat_byte(1),
            tx_type: 2,
            success,
            gas_used: gas,
            logs: vec![log],
            contract_address: success.then(|| Address::repeat_byte(4)),
            output: Bytes::new(),
            messages: (0..topics).map(|t| bridge::Hash::of(&[t as u8])).collect(),
        };
        let back: prover::Receipt = bridge::decode_exact(&bridge::Encode::encode(&r)).unwrap();
        prop_assert_eq!(back, r);
    }
}
