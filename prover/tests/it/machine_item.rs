//! Level 2's steps around a transaction's instructions (issue 16): the
//! prologue's step from `s_0` to the first instruction (or the frame's
//! end when it runs none).

use alloy_primitives::{Address, TxKind, U256};
use prover::machine::{InstructionVerdict, prologue_step, trace_transaction, verify_prologue};

use crate::machine::{TARGET, env, state};
use crate::support::{params, sign_1559, signer};

const NOBODY: Address = Address::repeat_byte(0xe9);

/// The prologue's step re-runs the transaction's start from the values it
/// carries to exactly the replay's first state: the first instruction of
/// a call to code, the frame's end of a transfer to an account without
/// code (and of one to an account that does not exist), with and without
/// value.
#[test]
fn the_prologue_reaches_the_first_state() {
    let code = vec![0x60, 0x07, 0x60, 0x01, 0x55, 0x00];
    let s = state(&[(TARGET, code, vec![(1, 5)])]);
    for (to, value) in [(TARGET, 0u64), (TARGET, 9), (NOBODY, 0), (NOBODY, 12), (signer(1).address(), 3)] {
        let tx = sign_1559(&signer(0), 0, TxKind::Call(to), U256::from(value), Default::default(), 100_000);
        let t = trace_transaction(s.reader(0).unwrap(), &params(1), &tx, &[0]).unwrap();
        let first = match t.states.first() {
            Some(st) => st.commitment(),
            None => t.end.clone().unwrap().commitment(),
        };
        let step = prologue_step(s.reader(0).unwrap(), &params(1), &tx).unwrap();
        assert!(!step.pre.is_empty());
        assert_eq!(
            verify_prologue(&step, &env(&tx)),
            InstructionVerdict::Next(first),
            "to {to} value {value}"
        );
        // every value it carries is needed, and every one is proven
        for k in 0..step.pre.len() {
            let mut fewer = step.clone();
            fewer.pre.remove(k);
            assert!(
                matches!(verify_prologue(&fewer, &env(&tx)), InstructionVerdict::Rejected(_)),
                "without {k}"
            );
            let mut other = step.clone();
            other.pre[k].value = Some(vec![1; 72]);
            assert!(
                matches!(verify_prologue(&other, &env(&tx)), InstructionVerdict::Rejected(_)),
                "altered {k}"
            );
        }
        if !step.codes.is_empty() {
            let mut no_code = step.clone();
            no_code.codes.clear();
            assert!(matches!(verify_prologue(&no_code, &env(&tx)), InstructionVerdict::Rejected(_)));
        }
    }
}

/// BLOCKHASH of one of the 256 blocks below is a step: it carries the
/// block's hash, which the referee vouches for from its header chain
/// (`StepEnv::block_hashes`); another hash, or one the referee does not
/// vouch for, proves nothing. A block outside the window reads zero with
/// nothing carried.
#[test]
fn blockhash_is_a_step_vouched_for_by_the_header_chain() {
    use prover::machine::{InstructionStep, instruction_step, verify_instruction};
    // BLOCKHASH(0), POP, BLOCKHASH(1000), POP, STOP (the block is number 1)
    let code = vec![0x60, 0x00, 0x40, 0x50, 0x61, 0x03, 0xe8, 0x40, 0x50, 0x00];
    let s = state(&[(TARGET, code, vec![])]);
    let hash = alloy_primitives::B256::repeat_byte(0x42);
    let reader = || s.reader(0).unwrap().with_block_hashes([(0, hash)].into_iter().collect());
    let tx = sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::ZERO, Default::default(), 100_000);
    let t = trace_transaction(reader(), &params(1), &tx, &[1, 2, 4, 5]).unwrap();
    let mut env = env(&tx);
    env.block_hashes.insert(0, hash);
    let step = instruction_step(reader(), &params(1), &tx, 1).unwrap();
    assert_eq!(step.block_hash, Some((0, hash)));
    let wire = bridge::Encode::encode(&step);
    assert_eq!(bridge::decode_exact::<InstructionStep>(&wire).unwrap(), step);
    let (agreed, next) = (t.states[0].commitment(), t.states[1].commitment());
    assert_eq!(verify_instruction(&step, &agreed, &env), InstructionVerdict::Next(next));
    let mut other = step.clone();
    other.block_hash = Some((0, alloy_primitives::B256::repeat_byte(0x43)));
    assert!(matches!(verify_instruction(&other, &agreed, &env), InstructionVerdict::Rejected(_)));
    let mut none = step.clone();
    none.block_hash = None;
    assert!(matches!(verify_instruction(&none, &agreed, &env), InstructionVerdict::Rejected(_)));
    let unvouched = crate::machine::env(&tx);
    assert!(matches!(verify_instruction(&step, &agreed, &unvouched), InstructionVerdict::Rejected(_)));
    // a block outside the window: zero, nothing carried
    let far = instruction_step(reader(), &params(1), &tx, 4).unwrap();
    assert_eq!(far.block_hash, None);
    let (agreed, next) = (t.states[2].commitment(), t.states[3].commitment());
    assert_eq!(verify_instruction(&far, &agreed, &unvouched), InstructionVerdict::Next(next));
}
