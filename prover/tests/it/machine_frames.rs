//! Level 2's calls and returns (issue 16): a call instruction's step
//! opens the callee's frame (or, when the call ends at once — a
//! precompile, no code, too little balance — resumes the caller), and a
//! callee's last instruction's step resumes its caller from the record
//! `s_j`'s frames chain holds.

use alloy_primitives::{Address, TxKind, U256};
use prover::machine::{
    InstructionStep, InstructionVerdict, instruction_step, trace_transaction, verify_instruction,
};

use crate::machine::{Contract, TARGET, env, state, trace};
use crate::support::{params, sign_1559, signer};

const RETURNER: Address = Address::repeat_byte(0xd1);
const REVERTER: Address = Address::repeat_byte(0xd2);
const BURNER: Address = Address::repeat_byte(0xd3);
const WRITER: Address = Address::repeat_byte(0xd4);
const NESTER: Address = Address::repeat_byte(0xd5);
const PAYEE: Address = Address::repeat_byte(0xe8);
const OVERFLOWER: Address = Address::repeat_byte(0xd6);

fn push20(code: &mut Vec<u8>, a: Address) {
    code.push(0x73);
    code.extend_from_slice(a.as_slice());
}

/// `kind` (CALL, STATICCALL, DELEGATECALL) to `to` with `value` (CALL
/// only), arguments `[args, args + args_len)`, output to `[ret, ret +
/// ret_len)` (the last four, in order), all the gas; then POP the flag.
fn call(code: &mut Vec<u8>, kind: u8, to: Address, value: u8, [args, args_len, ret, ret_len]: [u8; 4]) {
    code.extend([0x60, ret_len, 0x60, ret, 0x60, args_len, 0x60, args]);
    if kind == 0xf1 {
        code.extend([0x60, value]);
    }
    push20(code, to);
    code.extend([0x5a, kind, 0x50]);
}

/// Callees: one returning 40 bytes (after an SSTORE), one reverting with
/// 4 bytes after an SSTORE, one burning all its gas, one writing storage
/// (a halt under STATICCALL), one calling the returner in turn.
fn callees() -> Vec<Contract> {
    let mut returner = vec![0x60, 0x07, 0x60, 0x01, 0x55, 0x7f];
    returner.extend((1..=32u8).map(|b| b.wrapping_mul(29)));
    returner.extend([0x60, 0x03, 0x52, 0x36, 0x60, 0x00, 0x52]); // MSTORE w at 3, CALLDATASIZE at 0
    returner.extend([0x60, 0x28, 0x60, 0x00, 0xf3]); // RETURN 40 bytes
    let reverter = vec![
        0x60, 0x09, 0x60, 0x02, 0x55, 0x63, 0xde, 0xad, 0xbe, 0xef, 0x60, 0x00, 0x52, 0x60, 0x04, 0x60, 0x1c,
        0xfd,
    ];
    let burner = vec![0x5b, 0x60, 0x00, 0x56]; // JUMPDEST, PUSH1 0, JUMP: a loop to the end of its gas
    let writer = vec![0x60, 0x01, 0x60, 0x01, 0x55, 0x00];
    let mut nester = Vec::new();
    call(&mut nester, 0xf1, RETURNER, 0, [0, 0, 0, 32]);
    nester.extend([0x60, 0x20, 0x60, 0x00, 0xf3]);
    // 1,025 PUSH0s: the last overflows the stack and halts the frame
    let overflower = vec![0x5f; 1025];
    vec![
        (OVERFLOWER, overflower, vec![]),
        (RETURNER, returner, vec![]),
        (REVERTER, reverter, vec![]),
        (BURNER, burner, vec![]),
        (WRITER, writer, vec![]),
        (NESTER, nester, vec![]),
    ]
}

/// Replaces the GAS at `at` (a call's gas) by PUSH2 3000.
fn three_thousand_gas(code: &mut Vec<u8>, at: usize) {
    assert_eq!(code[at], 0x5a);
    code.splice(at..at + 1, [0x61, 0x0b, 0xb8]);
}

/// The caller: every kind of frame boundary, one after another.
fn caller() -> Vec<u8> {
    let mut c = vec![0x7f];
    c.extend((0..32u8).map(|b| b.wrapping_mul(5).wrapping_add(1)));
    c.extend([0x60, 0x00, 0x52]); // memory: a word of arguments
    call(&mut c, 0xf1, RETURNER, 0, [2, 36, 64, 40]); // a call returning data
    call(&mut c, 0xf1, REVERTER, 0, [0, 0, 8, 32]); // a revert: its SSTORE undone
    // out of gas in the callee, given 3,000 gas
    let at = c.len();
    call(&mut c, 0xf1, BURNER, 0, [0, 0, 0, 0]);
    three_thousand_gas(&mut c, at + 8 + 2 + 21);
    // an SSTORE under STATICCALL halts (and burns what it was given)
    let at = c.len();
    call(&mut c, 0xfa, WRITER, 0, [0, 0, 0, 0]);
    three_thousand_gas(&mut c, at + 8 + 21);
    call(&mut c, 0xf4, RETURNER, 0, [0, 4, 0, 0]); // DELEGATECALL: the returner's SSTORE lands here
    call(&mut c, 0xf1, NESTER, 0, [0, 0, 128, 32]); // two frames deep
    // a stack overflow in the callee (given 3,000 gas)
    let at = c.len();
    call(&mut c, 0xf1, OVERFLOWER, 0, [0, 0, 0, 0]);
    three_thousand_gas(&mut c, at + 8 + 2 + 21);
    call(&mut c, 0xf1, PAYEE, 5, [0, 0, 0, 0]); // value to an account with no code
    call(&mut c, 0xf1, PAYEE, 0xff, [0, 0, 0, 0]); // more value than the caller has: fails at once
    call(&mut c, 0xf1, Address::with_last_byte(4), 0, [0, 40, 200, 40]); // the identity precompile
    call(&mut c, 0xfa, Address::with_last_byte(2), 0, [3, 33, 96, 32]); // SHA-256
    c.extend([0x3d, 0x50, 0x00]); // RETURNDATASIZE, POP, STOP
    c
}

pub(crate) fn tx() -> prover::SignedTx {
    sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::from(0x100), Default::default(), 3_000_000)
}

pub(crate) fn contracts() -> Vec<Contract> {
    let mut all = callees();
    all.push((TARGET, caller(), vec![]));
    all
}

fn step(s: &prover::AuthState, j: u64) -> InstructionStep {
    let step = instruction_step(s.reader(0).unwrap(), &params(1), &tx(), j).unwrap();
    let wire = bridge::Encode::encode(&step);
    assert_eq!(bridge::decode_exact::<InstructionStep>(&wire).unwrap(), step, "the wire form is the step");
    step
}

/// Every instruction of the caller and its callees — the calls, the
/// returns, the revert, the halts, the precompiles, the value transfers —
/// re-executes alone to the replay's next state; only the transaction's
/// last instruction (its epilogue is not a step yet) is not covered.
#[test]
fn every_call_and_return_re_executes_alone_to_the_next_state() {
    let s = state(&contracts());
    let t = trace(&s, &tx(), &(0..2000).collect::<Vec<_>>());
    assert!(t.count < 2000, "{} instructions", t.count);
    let (mut pushes, mut pops) = (0, 0);
    for j in 0..t.count - 1 {
        let (now, then) = (&t.states[j as usize], &t.states[j as usize + 1]);
        let st = step(&s, j);
        let v = verify_instruction(&st, &now.commitment(), &env(&tx()));
        assert_eq!(
            v,
            InstructionVerdict::Next(then.commitment()),
            "instruction {j} ({:#x}) at depth {} to depth {}",
            now.opcode,
            now.depth,
            then.depth
        );
        pushes += u32::from(then.depth > now.depth);
        pops += u32::from(then.depth < now.depth);
        assert_eq!(st.caller.is_some(), then.depth < now.depth, "a frame's end carries its caller");
    }
    assert_eq!((pushes, pops), (8, 8), "eight frames opened and closed (the rest ended at once)");
    let last = &t.states[t.count as usize - 1];
    assert_eq!(last.depth, 0);
    let st = step(&s, t.count - 1);
    assert!(st.checkpoint.is_some(), "the transaction's end carries its checkpoint");
    let v = verify_instruction(&st, &last.commitment(), &env(&tx()));
    assert_eq!(v, InstructionVerdict::Next(t.end.unwrap().commitment()), "the transaction's frame's end");
}

/// A frame's end whose caller is not the one `s_j`'s frames chain holds,
/// or whose caller memory words are not the caller's, proves nothing; and
/// a frame's end without its caller proves nothing.
#[test]
fn a_return_with_another_caller_proves_nothing() {
    let s = state(&contracts());
    let t = trace(&s, &tx(), &(0..2000).collect::<Vec<_>>());
    // the returner's RETURN under the first call
    let j = (0..t.count - 1)
        .find(|&j| t.states[j as usize].opcode == 0xf3 && t.states[j as usize].depth == 1)
        .unwrap();
    let now = t.states[j as usize].commitment();
    let honest = step(&s, j);
    assert!(matches!(verify_instruction(&honest, &now, &env(&tx())), InstructionVerdict::Next(_)));
    let reject = |st: &InstructionStep| {
        matches!(verify_instruction(st, &now, &env(&tx())), InstructionVerdict::Rejected(_))
    };
    let mut gas = honest.clone();
    gas.caller.as_mut().unwrap().record.state.gas_remaining += 1;
    assert!(reject(&gas), "a caller with more gas");
    let mut range = honest.clone();
    range.caller.as_mut().unwrap().record.ret_len += 1;
    assert!(reject(&range), "another output range");
    let mut word = honest.clone();
    word.caller.as_mut().unwrap().memory.words[0].1[0] ^= 1;
    assert!(reject(&word), "another caller memory word");
    let mut none = honest.clone();
    none.caller = None;
    assert!(reject(&none), "no caller");
    let mut output = honest.clone();
    output.memory.words[0].1[5] ^= 1;
    assert!(reject(&output), "another output word");
}

/// Parts a colluding pair may agree on are bounded before the referee
/// allocates for them: a state claiming 2^40 bytes of memory, or a caller
/// whose output range overflows, is refused, not allocated.
#[test]
fn implausible_parts_are_refused_before_allocating() {
    let s = state(&contracts());
    let t = trace(&s, &tx(), &(0..2000).collect::<Vec<_>>());
    let j = (0..t.count - 1)
        .find(|&j| t.states[j as usize].opcode == 0xf3 && t.states[j as usize].depth == 1)
        .unwrap();
    let honest = step(&s, j);
    let mut huge = honest.clone();
    huge.state.memory_len = 1 << 40;
    let v = verify_instruction(&huge, &huge.state.commitment(), &env(&tx()));
    assert!(matches!(v, InstructionVerdict::Rejected(_)), "{v:?}");
    // a caller whose output range wraps around, under a frames chain that
    // holds it
    let mut wraps = honest.clone();
    let caller = wraps.caller.as_mut().unwrap();
    caller.record.ret_offset = u64::MAX - 3;
    wraps.state.frames =
        bridge::hash_domain(b"optishard.frames", &[&caller.record.state.frames.0, &caller.record.hash().0]);
    let v = verify_instruction(&wraps, &wraps.state.commitment(), &env(&tx()));
    assert!(matches!(v, InstructionVerdict::Rejected(_)), "{v:?}");
}

/// A create's frame runs its init code step by step under the creator's
/// record, which says it is a create's; the create instruction and the
/// init code's end (code deposit, the new address pushed) are steps too
/// (`machine_create` plays every way a create ends).
#[test]
fn a_create_frame_and_its_ends_are_steps() {
    // init code: PUSH1 0x2a, PUSH1 0, MSTORE, RETURN 32 bytes at 0
    let init = [0x60, 0x2a, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3];
    let mut word = [0u8; 32];
    word[..init.len()].copy_from_slice(&init);
    let mut code = vec![0x7f];
    code.extend(word);
    code.extend([0x60, 0x00, 0x52]); // MSTORE the init code at 0
    code.extend([0x60, init.len() as u8, 0x60, 0x00, 0x60, 0x00, 0xf0, 0x50, 0x00]); // CREATE, POP, STOP
    let s = state(&[(TARGET, code, vec![])]);
    let t = trace(&s, &tx(), &(0..100).collect::<Vec<_>>());
    for j in 0..t.count - 1 {
        let (now, then) = (&t.states[j as usize], &t.states[j as usize + 1]);
        let v = verify_instruction(&step(&s, j), &now.commitment(), &env(&tx()));
        assert_eq!(v, InstructionVerdict::Next(then.commitment()), "instruction {j} ({:#x})", now.opcode);
    }
    assert!(t.states.iter().any(|st| st.depth == 1), "the init code ran");
}

/// The transaction's frame ending in a revert, out of gas, or a halt
/// ends with the journal at its checkpoint (the prologue's changes kept,
/// the frame's undone); a success keeps its changes.
#[test]
fn the_transactions_end_keeps_or_undoes_its_frame() {
    // SSTORE, then each way to end: STOP, REVERT, INVALID, out of gas
    let ends: [(&[u8], bool); 4] = [
        (&[0x00], true),
        (&[0x60, 0x00, 0x60, 0x00, 0xfd], false),
        (&[0xfe], false),
        (&[0x5b, 0x60, 0x05, 0x56], false),
    ];
    for (end, ok) in ends {
        let mut code = vec![0x60, 0x07, 0x60, 0x01, 0x55];
        code.extend(end);
        let s = state(&[(TARGET, code, vec![])]);
        let tx = sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::from(3), Default::default(), 60_000);
        let t = trace_transaction(s.reader(0).unwrap(), &params(1), &tx, &(0..20_000).collect::<Vec<_>>())
            .unwrap();
        let last = &t.states[t.count as usize - 1];
        let st = instruction_step(s.reader(0).unwrap(), &params(1), &tx, t.count - 1).unwrap();
        let end = t.end.clone().unwrap();
        let v = verify_instruction(&st, &last.commitment(), &env(&tx));
        assert_eq!(v, InstructionVerdict::Next(end.commitment()), "end {end:?}");
        assert_eq!(
            end.journal == st.checkpoint.unwrap(),
            !ok,
            "the checkpoint's journal exactly when it failed"
        );
        let mut other = st.clone();
        other.checkpoint = Some(bridge::Hash::of(b"another checkpoint"));
        assert!(matches!(
            verify_instruction(&other, &last.commitment(), &env(&tx)),
            InstructionVerdict::Rejected(_)
        ));
    }
}
