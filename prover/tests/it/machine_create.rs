//! CREATE and CREATE2 at level 2 (issue 16): the create instruction
//! (nonce, address, checkpoint, value), the init code's end (the code
//! deposited, or the create failed and its checkpoint restored) and the
//! commit of a created account's code are steps, so an item that deploys
//! contracts is decided one instruction at a time like any other.

use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
use bridge::TraceState;
use prover::SignedTx;
use prover::machine::{
    InstructionVerdict, ItemStep, StepEnv, item_coverage, item_step, item_trace, verify_item_step,
};

use crate::machine::{TARGET, state};
use crate::machine_settle::walk;
use crate::support::{params, sign_1559, signer};

/// A tiny assembler: PUSHn of the value's minimal width.
fn push(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut out = vec![0x60 + (7 - skip) as u8];
    out.extend_from_slice(&bytes[skip..]);
    out
}

/// Stores `code` in memory at `at` (32-byte words, zero-padded).
fn store(code: &[u8], at: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, chunk) in code.chunks(32).enumerate() {
        let mut word = [0u8; 32];
        word[..chunk.len()].copy_from_slice(chunk);
        out.push(0x7f);
        out.extend(word);
        out.extend(push(at + 32 * i as u64));
        out.push(0x52);
    }
    out
}

/// CREATE of `len` bytes at `at` with `value`, the result stored in slot
/// `slot`.
fn create(at: u64, len: u64, value: u64, slot: u64) -> Vec<u8> {
    [push(len), push(at), push(value), vec![0xf0], push(slot), vec![0x55]].concat()
}

/// CREATE2 with `salt`, the result stored in slot `slot`.
fn create2(at: u64, len: u64, value: u64, salt: u64, slot: u64) -> Vec<u8> {
    [push(salt), push(len), push(at), push(value), vec![0xf5], push(slot), vec![0x55]].concat()
}

/// Runtime code answering 42.
fn answer() -> Vec<u8> {
    vec![0x60, 0x2a, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3]
}

/// Init code that writes slot 1 of the new account and deploys `runtime`
/// (at most 32 bytes, stored at 0 and returned).
fn deployer(runtime: &[u8]) -> Vec<u8> {
    let mut word = [0u8; 32];
    word[..runtime.len()].copy_from_slice(runtime);
    let mut code = vec![0x60, 0x2a, 0x60, 0x01, 0x55]; // SSTORE 1 := 42
    code.push(0x7f);
    code.extend(word);
    code.extend([0x60, 0x00, 0x52]); // MSTORE at 0
    code.extend(push(runtime.len() as u64));
    code.extend([0x60, 0x00, 0xf3]); // RETURN
    code
}

fn tx(value: u64, gas: u64) -> SignedTx {
    sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::from(value), Bytes::new(), gas)
}

/// A factory exercising the ways a create ends, in one transaction:
/// CREATE of a contract it then calls; CREATE2 with value; init code that
/// reverts with data (read back through RETURNDATACOPY); more value than
/// the factory has; init code that self-destructs; a create inside a
/// create; empty init code; last, the same CREATE2 again (the address is
/// taken: the create fails and burns the gas it was given).
fn factory() -> Vec<u8> {
    let mut code = Vec::new();
    let ok = deployer(&answer());
    code.extend(store(&ok, 0));
    code.extend(create(0, ok.len() as u64, 0, 0x10));
    // call the new contract, keep its answer
    code.extend([push(32), push(0x200), push(0), push(0), push(0)].concat());
    code.extend([push(0x10), vec![0x54, 0x5a, 0xf1, 0x50]].concat()); // SLOAD, GAS, CALL, POP
    code.extend([push(0x200), vec![0x51], push(0x11), vec![0x55]].concat());
    code.extend(create2(0, ok.len() as u64, 5, 7, 0x12));
    // init code reverting with a word of data
    let reverts = [push(0xdead), push(0), vec![0x52], push(32), push(0), vec![0xfd]].concat();
    code.extend(store(&reverts, 0x400));
    code.extend(create(0x400, reverts.len() as u64, 0, 0x14));
    code.extend([vec![0x3d], push(0x15), vec![0x55]].concat()); // RETURNDATASIZE
    code.extend(
        [push(32), push(0), push(0x300), vec![0x3e], push(0x300), vec![0x51], push(0x16), vec![0x55]]
            .concat(),
    );
    // more value than the factory holds
    code.extend(create(0, ok.len() as u64, 1_000_000, 0x18));
    // init code that self-destructs to its creator
    code.extend(store(&[0x33, 0xff], 0x600));
    code.extend(create(0x600, 2, 3, 0x19));
    // a create inside a create: the inner deploys `answer`
    let inner = deployer(&answer());
    let mut outer = store(&inner, 0);
    outer.extend(create(0, inner.len() as u64, 0, 0x02));
    outer.extend([0x00]);
    code.extend(store(&outer, 0x700));
    code.extend(create(0x700, outer.len() as u64, 0, 0x1a));
    // empty init code: an account with a nonce and no code
    code.extend(create(0, 0, 0, 0x1c));
    // the salted address again: taken
    code.extend(create2(0, ok.len() as u64, 0, 7, 0x13));
    code.push(0x00);
    code
}

/// A factory whose one create runs `init`, its result popped (a failed
/// create leaves its creator 1/64 of the gas: no SSTORE).
fn one_create(init: &[u8]) -> Vec<u8> {
    let mut code = store(init, 0);
    code.extend([push(init.len() as u64), push(0), push(0), vec![0xf0, 0x50, 0x00]].concat());
    code
}

#[test]
fn every_way_a_create_ends_is_a_step_and_ends_on_level_ones_commitment() {
    let s = state(&[(TARGET, factory(), vec![])]);
    let (states, n) = walk(&s, &tx(1_000, 3_000_000));
    assert!(n > 100, "{n} instructions");
    assert!(states.len() as u64 > n);
    // what level 1 says happened (the walk showed level 2 agrees)
    let exec = crate::machine::level_one_run(&s, 0, &tx(1_000, 3_000_000));
    assert!(exec.outcomes[0].receipt.success);
    s.commit(1, &exec.outcomes[0].changes).unwrap();
    let slot = |k: u64| s.storage(TARGET, U256::from(k), 1).unwrap();
    let created = Address::from_word(slot(0x10).into());
    assert_eq!(created, TARGET.create(1), "CREATE's address is the factory's nonce's");
    assert_eq!(slot(0x11), U256::from(42), "the new contract answered");
    let account = s.account(created, 1).unwrap().unwrap();
    assert_eq!(account.code_hash, keccak256(answer()));
    assert_eq!(s.code(account.code_hash, 1).unwrap().unwrap().to_vec(), answer(), "its code is stored");
    assert_eq!(
        s.storage(created, U256::from(1), 1).unwrap(),
        U256::from(42),
        "its init code wrote its storage"
    );
    let salted = Address::from_word(slot(0x12).into());
    assert_eq!(
        salted,
        TARGET.create2_from_code(alloy_primitives::B256::with_last_byte(7), deployer(&answer()))
    );
    assert_eq!(s.account(salted, 1).unwrap().unwrap().balance, U256::from(5));
    for (k, what) in [(0x13, "a taken address"), (0x14, "a revert"), (0x18, "too poor")] {
        assert_eq!(slot(k), U256::ZERO, "{what} creates nothing");
    }
    assert_eq!(slot(0x15), U256::from(32), "the revert's data is the return data");
    assert_eq!(slot(0x16), U256::from(0xdead));
    assert_ne!(slot(0x19), U256::ZERO, "a self-destructing init code succeeds");
    assert_ne!(slot(0x1a), U256::ZERO, "the outer create succeeded");
    assert_ne!(slot(0x1c), U256::ZERO, "empty init code creates an account");
}

/// The creates that fail by a halt, each burning the gas it was given:
/// init code that runs out of it, a deposit it cannot pay for (1,000
/// bytes at 200 gas each), code starting with `0xEF`, code over EIP-170's
/// 24,576 bytes. Each fails as level 1 says, its checkpoint restored
/// (the creator's nonce still bumped), and the creator goes on.
#[test]
fn a_create_that_halts_fails_as_level_one_says() {
    let spin = vec![0x5b, 0x60, 0x00, 0x56]; // JUMPDEST, PUSH1 0, JUMP
    let deposit = [push(1_000), push(0), vec![0xf3]].concat();
    let ef = [push(0xef), push(0), vec![0x53], push(1), push(0), vec![0xf3]].concat();
    let big = [push(24_577), push(0), vec![0xf3]].concat();
    for (what, init, gas) in [
        ("out of gas", spin, 60_000),
        ("deposit", deposit, 150_000),
        ("0xEF", ef, 200_000),
        ("too long", big, 200_000),
    ] {
        let s = state(&[(TARGET, one_create(&init), vec![])]);
        let (_, n) = walk(&s, &tx(0, gas));
        assert!(n > 10, "{what}");
        let exec = crate::machine::level_one_run(&s, 0, &tx(0, gas));
        assert!(exec.outcomes[0].receipt.success, "{what}: the creator goes on");
        s.commit(1, &exec.outcomes[0].changes).unwrap();
        assert_eq!(s.account(TARGET.create(1), 1).unwrap(), None, "{what}: nothing created");
        assert_eq!(s.account(TARGET, 1).unwrap().unwrap().nonce, 2, "{what}: the nonce is bumped");
    }
}

/// The steps a create's dispute turns on: a wrong address, a creator
/// nonce not bumped, a deposit of other code, another code committed:
/// each altered step proves nothing.
#[test]
fn an_altered_create_step_proves_nothing() {
    let s = state(&[(TARGET, factory(), vec![])]);
    let t = tx(1_000, 3_000_000);
    let pre = TraceState::start();
    assert_eq!(item_coverage(s.reader(0).unwrap(), &params(1), &t).unwrap(), None);
    let head = item_trace(s.reader(0).unwrap(), &params(1), &t, &pre, &[]).unwrap();
    let all: Vec<u64> = (0..=head.last).collect();
    let trace = item_trace(s.reader(0).unwrap(), &params(1), &t, &pre, &all).unwrap();
    let env = StepEnv::new(params(1), &t, bridge::TraceCommitment::start(s.root(0).unwrap()));
    let (mut creates, mut deposits, mut codes) = (0, 0, 0);
    for j in 0..trace.last {
        let step = item_step(s.reader(0).unwrap(), &params(1), &t, &pre, j).unwrap();
        let agreed = trace.states[j as usize];
        match &step {
            ItemStep::Instruction(i) if matches!(i.state.opcode, 0xf0 | 0xf5) => {
                creates += 1;
                // another address claimed for the new account
                let mut other = i.clone();
                let j = other.journal.as_mut().unwrap();
                j.entries[1].key = prover::machine::JournalKey::Account(Address::repeat_byte(0x77));
                let v = verify_item_step(&ItemStep::Instruction(other), &agreed, &env);
                assert!(matches!(v, InstructionVerdict::Rejected(_)), "{v:?}");
            }
            ItemStep::Instruction(i)
                if i.caller.as_ref().is_some_and(|c| c.record.create) && i.state.opcode == 0xf3 =>
            {
                deposits += 1;
                // the code returned, altered: a word not the state's
                if let Some((_, w)) = i.memory.words.first() {
                    let mut other = i.clone();
                    other.memory.words[0].1 = [w[0] ^ 1; 32];
                    let v = verify_item_step(&ItemStep::Instruction(other), &agreed, &env);
                    assert!(matches!(v, InstructionVerdict::Rejected(_)), "{v:?}");
                }
            }
            ItemStep::Commit(c) if c.code.is_some() => {
                codes += 1;
                let mut other = c.clone();
                other.code.as_mut().unwrap().code.push(0x00);
                let v = verify_item_step(&ItemStep::Commit(other), &agreed, &env);
                assert!(matches!(v, InstructionVerdict::Rejected(_)), "{v:?}");
                let mut absent = c.clone();
                let w = absent.code.as_mut().unwrap();
                w.present = !w.present;
                let v = verify_item_step(&ItemStep::Commit(absent), &agreed, &env);
                assert!(matches!(v, InstructionVerdict::Rejected(_)), "{v:?}");
            }
            _ => {}
        }
    }
    assert!(creates >= 8, "{creates} creates");
    assert!(deposits >= 3, "{deposits} deposits");
    assert!(codes >= 3, "{codes} codes committed");
}

fn deploy(init: Vec<u8>, value: u64, gas: u64) -> SignedTx {
    sign_1559(&signer(0), 0, TxKind::Create, U256::from(value), Bytes::from(init), gas)
}

/// A create transaction's own frame: its prologue, its init code (which
/// may itself create), its deposit at the end, its receipt naming the
/// contract, and the commit of its code; a failed one (a revert, code
/// over the limit, its deposit unpaid) keeps only its fee and nonce. Each
/// ends on level 1's `c_1`.
#[test]
fn a_create_transaction_is_a_trace_like_any_other() {
    let s = state(&[]);
    let ok = deployer(&answer());
    let mut nested = store(&ok, 0);
    nested.extend(create(0, ok.len() as u64, 0, 0x05));
    nested.extend(deployer(&answer())[5..].iter().copied()); // then deploy `answer` itself
    let reverts = [push(0xdead), push(0), vec![0x52], push(32), push(0), vec![0xfd]].concat();
    let big = [push(24_577), push(0), vec![0xf3]].concat();
    let deposit = [push(1_000), push(0), vec![0xf3]].concat();
    for (what, init, value, gas, success) in [
        ("a deployment", ok, 7, 200_000, true),
        ("a deployment that creates", nested, 0, 400_000, true),
        ("empty init code", vec![], 0, 100_000, true),
        ("a revert", reverts, 0, 100_000, false),
        ("code over the limit", big, 0, 200_000, false),
        ("a deposit it cannot pay", deposit, 0, 100_000, false),
    ] {
        let tx = deploy(init, value, gas);
        walk(&s, &tx);
        let exec = crate::machine::level_one_run(&s, 0, &tx);
        let receipt = &exec.outcomes[0].receipt;
        assert_eq!(receipt.success, success, "{what}");
        let created = signer(0).address().create(0);
        assert_eq!(receipt.contract_address, success.then_some(created), "{what}");
    }
}
