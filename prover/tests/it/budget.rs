//! The witness budget's end: since `stf_version` 4 a transaction, and
//! since version 5 a delivered message, runs as on Ethereum however much
//! it reads; one whose level-1 step does not fit in a move is decided at
//! level 2. (The budget stays only for an EIP-7702 authorization list,
//! which shards refuse.)

use alloy_consensus::{SignableTransaction, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use bridge::{Hash, MerkleTree, Message, MessageKind, ShardId};
use prover::game::{Step, StepVerdict, verify_step};
use prover::{
    AccountState, AuthState, ENTRY_ALLOWANCE, Item, MAX_TX_BYTES, Mode, SignedTx, StateKey, TxDecodeError,
    WITNESS_BUDGET, produce_witness,
};

use crate::support::*;

/// EIP-170's largest contract.
const MAX_CODE: usize = 24_576;

fn target(i: usize) -> Address {
    Address::left_padding_from(&(0x1000 + i as u64).to_be_bytes())
}

/// Code that reads the balance of targets `0..n` (`PUSH20 a BALANCE POP`
/// each), which loads every target's account and code.
fn reader_code(n: usize) -> Vec<u8> {
    let mut code = Vec::new();
    for i in 0..n {
        code.push(0x73);
        code.extend_from_slice(target(i).as_slice());
        code.extend_from_slice(&[0x31, 0x50]);
    }
    code.push(0x00);
    code
}

/// A chain whose genesis funds two signers and holds `targets` contracts of
/// the largest size, all different, and readers of 8 and of all of them.
fn chain(targets: usize) -> (Chain, Address, Address) {
    let state = AuthState::in_memory();
    let mut c = prover::system_accounts();
    for i in 0..2 {
        let a = AccountState { nonce: 0, balance: U256::from(10u128.pow(24)), ..Default::default() };
        c.insert(StateKey::Account(signer(i).address()), Some(a.encode()));
    }
    let mut deploy = |address: Address, code: Vec<u8>| {
        let code_hash = keccak256(&code);
        let a = AccountState { nonce: 1, balance: U256::from(1), code_hash };
        c.insert(StateKey::Account(address), Some(a.encode()));
        c.insert(StateKey::Code(code_hash), Some(code));
    };
    for i in 0..targets {
        let mut code = vec![0x00; MAX_CODE];
        code[1..9].copy_from_slice(&(i as u64).to_be_bytes());
        deploy(target(i), code);
    }
    let (small, all) = (Address::repeat_byte(0xa8), Address::repeat_byte(0xaa));
    deploy(small, reader_code(8));
    deploy(all, reader_code(targets));
    state.commit(0, &c).unwrap();
    (Chain { state, height: 0 }, small, all)
}

fn call(from: u8, nonce: u64, to: Address, gas: u64) -> SignedTx {
    sign_1559(&signer(from), nonce, TxKind::Call(to), U256::ZERO, Bytes::new(), gas)
}

fn step(chain: &Chain, exec: &prover::Execution, index: usize) -> Step {
    let leaves: Vec<Hash> = exec.items.iter().map(Item::item_hash).collect();
    let proof = MerkleTree::new(&leaves).proof(index).unwrap();
    let witness = produce_witness(&chain.state, 0, exec, index, &chain.block_hashes()).unwrap();
    Step { index: index as u64, item: exec.items[index].clone(), proof, witness }
}

/// `c_0 … c_n` of a block executed on top of version 0.
fn trace(chain: &Chain, exec: &prover::Execution) -> Vec<Hash> {
    let mut t = vec![bridge::TraceCommitment::start(chain.state.root(0).unwrap()).hash()];
    t.extend(exec.trace(&chain.state, 0).unwrap().iter().map(|c| c.hash()));
    t
}

fn verdict(chain: &Chain, exec: &prover::Execution, index: usize, claimed: &Hash) -> StepVerdict {
    let t = trace(chain, exec);
    verify_step(&params(1), &exec.items_root(), &step(chain, exec, index), &t[index], claimed, &|n| {
        chain.block_hashes().get(&n).copied()
    })
}

/// A transaction loading 64 of the largest contracts (1.5 MiB of code, far
/// over versions 2–3's budget) succeeds as on Ethereum, importers agree,
/// and its level-1 step is more than a move carries: every one of its
/// steps is a level-2 step, so a dispute over it descends.
#[test]
fn a_transaction_reading_more_than_a_step_carries_succeeds_and_is_decided_at_level_two() {
    const TARGETS: usize = 64;
    const { assert!(TARGETS * MAX_CODE > bridge::MAX_STEP_BYTES) };
    let (chain, small, all) = chain(TARGETS);
    let gas = 500_000;
    let txs = vec![
        sign_legacy(&signer(1), 0, Address::repeat_byte(0x77), U256::from(5)),
        call(0, 0, all, gas),
        call(1, 1, small, gas),
    ];
    let exec = chain.execute(txs.clone(), Mode::Build);
    assert!(exec.rejected.is_empty(), "{:?}", exec.rejected);
    let heavy = &exec.outcomes[1];
    assert!(heavy.receipt.success, "{:?}", heavy.receipt);
    // 64 cold account loads (2,600 each) and the loop around them: what
    // Ethereum charges, nowhere near the whole limit
    assert!(
        heavy.receipt.gas_used > 64 * 2_600 && heavy.receipt.gas_used < gas,
        "{}",
        heavy.receipt.gas_used
    );
    let codes = heavy.reads.iter().filter(|k| matches!(k, StateKey::Code(_))).count();
    assert_eq!(codes, TARGETS + 1, "every code read");
    assert!(exec.outcomes[2].receipt.success);
    let verified = chain.execute(txs.clone(), Mode::Verify);
    assert_eq!(verified.receipts_root(), exec.receipts_root());
    // its level-1 step would not fit in a move; level 2 covers every step
    let s = step(&chain, &exec, 1);
    assert!(s.encode().len() > bridge::MAX_STEP_BYTES, "{} bytes", s.encode().len());
    let reader = chain.state.reader(0).unwrap();
    let p = params(1);
    assert_eq!(prover::machine::item_coverage(reader, &p, &txs[1]).unwrap(), None);
    // the small one's step fits and decides both ways
    let t = trace(&chain, &exec);
    assert!(step(&chain, &exec, 2).encode().len() <= bridge::MAX_STEP_BYTES);
    assert_eq!(verdict(&chain, &exec, 2, &t[3]), StepVerdict::Upheld);
    assert!(matches!(verdict(&chain, &exec, 2, &t[2]), StepVerdict::Refuted { .. }));
}

/// A delivered call reading 40 contracts' codes (more than the witness
/// budget let a message read before `stf_version` 5, when it was
/// refunded) runs as a transaction would: it succeeds, its level-1 step
/// is larger than a move, and level 2 covers every step of its trace.
#[test]
fn a_message_reading_more_than_the_old_witness_budget_runs_and_is_decided_at_level_two() {
    let (chain, _, all) = chain(40);
    let m = Message {
        src: ShardId(1),
        dst: ShardId(0),
        nonce: 0,
        sender: Address::repeat_byte(0xab),
        to: all,
        value: U256::from(1_000),
        gas_limit: 400_000,
        data: vec![],
        kind: MessageKind::Call,
    };
    let exec = chain.execute_items(vec![Item::Message(m.clone())], Mode::Verify).unwrap();
    let o = &exec.outcomes[0];
    assert!(o.receipt.success, "{}", String::from_utf8_lossy(&o.receipt.output));
    assert!(o.receipt.gas_used > 40 * 2_600 && o.receipt.gas_used < m.gas_limit, "{}", o.receipt.gas_used);
    assert!(o.messages.is_empty(), "no refund");
    assert!(
        step(&chain, &exec, 0).encode().len() > bridge::MAX_STEP_BYTES,
        "its whole-item step does not fit"
    );
    let reader = chain.state.reader(0).unwrap();
    assert_eq!(prover::machine::item_coverage(reader, &params(1), &Item::Message(m)).unwrap(), None);
}

#[test]
fn a_transaction_over_128_kib_is_refused_before_its_signature_is_checked() {
    let s = signer(0);
    let tx = TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce: 0,
        gas_price: 50,
        gas_limit: 30_000_000,
        to: TxKind::Call(Address::repeat_byte(1)),
        value: U256::ZERO,
        input: Bytes::from(vec![1u8; MAX_TX_BYTES]),
    };
    let sig = s.sign_hash_sync(&tx.signature_hash()).unwrap();
    let envelope = TxEnvelope::from(tx.into_signed(sig));
    let raw = envelope.encoded_2718();
    assert!(matches!(SignedTx::decode(&raw), Err(TxDecodeError::TooLarge(n)) if n == raw.len()));
    assert!(matches!(SignedTx::from_envelope(envelope), Err(TxDecodeError::TooLarge(_))));
    // garbage of that size is refused by length alone
    assert!(matches!(SignedTx::decode(&vec![0xff; MAX_TX_BYTES + 1]), Err(TxDecodeError::TooLarge(_))));
}

/// An estimate runs a transaction as a block would: since version 4 no
/// budget, however much it reads.
#[test]
fn an_estimate_of_a_heavy_transaction_succeeds() {
    let (chain, small, all) = chain(16);
    let reader = chain.state.reader(0).unwrap();
    let env = |to: Address| revm::context::TxEnv {
        caller: signer(0).address(),
        gas_limit: 1_000_000,
        gas_price: 100,
        kind: TxKind::Call(to),
        chain_id: Some(CHAIN_ID),
        ..Default::default()
    };
    assert!(prover::simulate(reader.clone(), &params(1), env(all), true).unwrap().is_success());
    assert!(prover::simulate(reader.clone(), &params(1), env(all), false).unwrap().is_success());
    assert!(prover::simulate(reader, &params(1), env(small), true).unwrap().is_success());
}

/// Code that reads the balance of `n` addresses nobody holds, then calls
/// the bridge with its own calldata and value (`send`).
fn reader_then_send(n: usize) -> Vec<u8> {
    let mut code = Vec::new();
    for i in 0..n {
        code.push(0x73);
        code.extend_from_slice(Address::left_padding_from(&(0x5000 + i as u64).to_be_bytes()).as_slice());
        code.extend_from_slice(&[0x31, 0x50]);
    }
    // CALLDATACOPY(0, 0, CALLDATASIZE); CALL(GAS, bridge, CALLVALUE, 0, CALLDATASIZE, 0, 0)
    code.extend_from_slice(&[
        0x36, 0x60, 0x00, 0x60, 0x00, 0x37, 0x60, 0x00, 0x60, 0x00, 0x36, 0x60, 0x00, 0x34,
    ]);
    code.push(0x73);
    code.extend_from_slice(bridge::BRIDGE_ADDRESS.as_slice());
    code.extend_from_slice(&[0x5a, 0xf1, 0x50, 0x00]);
    code
}

/// Around what versions 2–3's budget allowed, a transaction reading that
/// many accounts and then sending through the bridge always succeeds and
/// sends; importers agree, and its level-1 step (which fits) is upheld.
#[test]
fn a_transaction_reading_around_the_old_budget_then_sending_succeeds() {
    use alloy_sol_types::SolCall;
    let around = WITNESS_BUDGET / ENTRY_ALLOWANCE;
    let data = prover::IBridge::sendCall { dstShard: 1, to: Address::repeat_byte(0x44), data: Bytes::new() };
    let data = Bytes::from(data.abi_encode());
    for n in [around - 8, around, around + 2] {
        let state = AuthState::in_memory();
        let mut c = prover::system_accounts();
        let a = AccountState { nonce: 0, balance: U256::from(10u128.pow(24)), ..Default::default() };
        c.insert(StateKey::Account(signer(0).address()), Some(a.encode()));
        let code = reader_then_send(n);
        let code_hash = keccak256(&code);
        let contract = Address::repeat_byte(0xab);
        c.insert(
            StateKey::Account(contract),
            Some(AccountState { nonce: 1, balance: U256::ZERO, code_hash }.encode()),
        );
        c.insert(StateKey::Code(code_hash), Some(code));
        state.commit(0, &c).unwrap();
        let chain = Chain { state, height: 0 };
        let tx = sign_1559(&signer(0), 0, TxKind::Call(contract), U256::from(1_000), data.clone(), 1_000_000);
        let exec = chain.execute(vec![tx.clone()], Mode::Build);
        assert!(exec.rejected.is_empty(), "n = {n}: {:?}", exec.rejected);
        let o = &exec.outcomes[0];
        assert!(o.receipt.success, "n = {n}: {:?}", o.receipt);
        assert_eq!(o.messages.len(), 1, "n = {n}: sent");
        let verified = chain.execute(vec![tx], Mode::Verify);
        assert_eq!(verified.receipts_root(), exec.receipts_root(), "n = {n}");
        let t = trace(&chain, &exec);
        assert_eq!(verdict(&chain, &exec, 0, &t[1]), StepVerdict::Upheld, "n = {n}");
    }
}

/// A contract created and self-destructed in one transaction may touch
/// thousands of slots revm never reads (a new account's storage is empty):
/// committing it must not read them either, or its witness would hold
/// proofs nobody charged.
#[test]
fn a_created_and_destroyed_contract_adds_no_uncharged_reads() {
    // init code: SLOAD slots 0..500 in a loop, then SELFDESTRUCT(CALLER)
    // i = 0; loop: if i == 500 goto end; SLOAD(i); POP; i += 1; goto loop; end: SELFDESTRUCT(CALLER)
    let init: Vec<u8> = vec![
        0x60, 0x00, // PUSH1 0 (i)
        0x5b, // JUMPDEST (2)
        0x80, 0x61, 0x01, 0xf4, 0x14, // DUP1 PUSH2 500 EQ
        0x60, 0x14, 0x57, // PUSH1 end JUMPI
        0x80, 0x54, 0x50, // DUP1 SLOAD POP
        0x60, 0x01, 0x01, // PUSH1 1 ADD
        0x60, 0x02, 0x56, // PUSH1 2 JUMP
        0x5b, 0x33, 0xff, // end (0x14 = 20): JUMPDEST CALLER SELFDESTRUCT
    ];
    assert_eq!(init[20], 0x5b);
    let chain = Chain::new(1);
    let tx = sign_1559(&signer(0), 0, TxKind::Create, U256::ZERO, Bytes::from(init), 5_000_000);
    let exec = chain.execute(vec![tx.clone()], Mode::Build);
    let o = &exec.outcomes[0];
    assert!(o.receipt.success, "{:?}", o.receipt);
    assert!(o.receipt.gas_used > 500 * 2_100, "it loaded 500 slots");
    let slots = o.reads.iter().filter(|k| matches!(k, StateKey::Storage(..))).count();
    assert_eq!(slots, 0, "no slot of the new account read from the state");
    let s = step(&chain, &exec, 0);
    assert!(s.witness.encoded_len() < 64 << 10, "witness of {} bytes", s.witness.encoded_len());
    let t = trace(&chain, &exec);
    assert_eq!(verdict(&chain, &exec, 0, &t[1]), StepVerdict::Upheld);
}
