//! Level 2's state instructions (issue 16): a step of SLOAD, SSTORE,
//! TLOAD, TSTORE, BALANCE, SELFBALANCE, EXTCODESIZE, EXTCODEHASH or LOGn
//! carries the journal entries it touches, each proven in `s_j`'s journal
//! map, and for an entry the journal lacks its value at the item's start,
//! proven against the state root the item starts from.

use alloy_primitives::{Address, TxKind, U256};
use prover::machine::{
    InstructionStep, InstructionVerdict, JournalKey, instruction_step, verify_instruction,
};

use crate::machine::{Contract, TARGET, env, state, trace};
use crate::support::{params, sign_1559, signer};

const OTHER: Address = Address::repeat_byte(0xd0);
const FRESH: Address = Address::repeat_byte(0xe7);

fn push20(code: &mut Vec<u8>, a: Address) {
    code.push(0x73);
    code.extend_from_slice(a.as_slice());
}

/// One of each journal instruction, cold and warm, present and absent.
fn program() -> Vec<u8> {
    let mut c = vec![
        0x60, 0x2a, 0x60, 0x01, 0x55, // SSTORE slot 1 := 42 (was 5)
        0x60, 0x01, 0x54, // SLOAD slot 1 (warm)
        0x60, 0x07, 0x54, // SLOAD slot 7 (cold, 9)
        0x60, 0x00, 0x60, 0x09, 0x55, // SSTORE slot 9 := 0 (refund)
        0x60, 0x05, 0x60, 0x03, 0x5d, // TSTORE t3 := 5
        0x60, 0x03, 0x5c, // TLOAD t3
        0x60, 0x04, 0x5c, // TLOAD t4 (zero)
    ];
    push20(&mut c, FRESH);
    c.push(0x31); // BALANCE of a fresh account
    c.extend([0x33, 0x31]); // CALLER BALANCE (warm)
    c.push(0x47); // SELFBALANCE
    c.extend([0x30, 0x3b]); // ADDRESS EXTCODESIZE
    push20(&mut c, OTHER);
    c.push(0x3b); // EXTCODESIZE of another contract (cold: its code)
    push20(&mut c, OTHER);
    c.push(0x3f); // EXTCODEHASH (warm now)
    push20(&mut c, FRESH);
    c.push(0x3f); // EXTCODEHASH of an empty account
    c.push(0x7f); // PUSH32 a word, MSTORE at 0
    c.extend((0..32u8).map(|b| b.wrapping_mul(7)));
    c.extend([0x60, 0x00, 0x52]);
    c.extend([0x60, 0x99, 0x60, 0x28, 0x60, 0x03, 0xa1]); // LOG1 topic 0x99, 40 bytes at 3
    c.extend([0x60, 0x00, 0x60, 0x00, 0xa0]); // LOG0, no data
    c.push(0x00);
    c
}

fn contracts() -> Vec<Contract> {
    vec![(TARGET, program(), vec![(1, 5), (7, 9), (9, 3)]), (OTHER, vec![0x60, 0x01, 0x00], vec![])]
}

fn tx() -> prover::SignedTx {
    sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::from(3), Default::default(), 1_000_000)
}

fn step(s: &prover::AuthState, j: u64) -> InstructionStep {
    let step = instruction_step(s.reader(0).unwrap(), &params(1), &tx(), j).unwrap();
    let wire = bridge::Encode::encode(&step);
    assert_eq!(bridge::decode_exact::<InstructionStep>(&wire).unwrap(), step, "the wire form is the step");
    step
}

/// Every instruction of the program re-executes alone to the replay's next
/// state, the journal instructions included.
#[test]
fn each_journal_instruction_re_executes_alone_to_the_next_state() {
    let s = state(&contracts());
    let t = trace(&s, &tx(), &(0..200).collect::<Vec<_>>());
    let mut seen = std::collections::BTreeSet::new();
    for j in 0..t.count - 1 {
        let now = &t.states[j as usize];
        let step = step(&s, j);
        assert_eq!(&step.state, now);
        let v = verify_instruction(&step, &now.commitment(), &env(&tx()));
        assert_eq!(
            v,
            InstructionVerdict::Next(t.states[j as usize + 1].commitment()),
            "instruction {j} ({:#x})",
            now.opcode
        );
        if step.journal.is_some() {
            seen.insert(now.opcode);
        }
    }
    let all = [0x31, 0x3b, 0x3f, 0x47, 0x54, 0x55, 0x5c, 0x5d, 0xa0, 0xa1];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), all, "every journal instruction carried its entries");
}

/// The step of instruction `j`, which must touch the journal.
fn journal_step(s: &prover::AuthState, j: u64) -> (InstructionStep, bridge::Hash) {
    let t = trace(s, &tx(), &[j]);
    let st = step(s, j);
    assert!(st.journal.is_some(), "instruction {j} ({:#x}) touches the journal", st.state.opcode);
    (st, t.states[0].commitment())
}

fn rejected(step: &InstructionStep, agreed: &bridge::Hash) -> bool {
    matches!(verify_instruction(step, agreed, &env(&tx())), InstructionVerdict::Rejected(_))
}

/// A state step whose entries are not `s_j`'s, or whose values before the
/// item are not the state's, proves nothing: another entry value, another
/// value at the item's start, an absence claimed for a present entry, a
/// proof left out, another key, other logs.
#[test]
fn a_journal_step_with_altered_entries_proves_nothing() {
    let s = state(&contracts());
    // the second SLOAD: its account is in the journal, its slot is not
    let (cold, agreed) = journal_step(&s, 6);
    assert_eq!(cold.state.opcode, 0x54);
    let j = cold.journal.as_ref().unwrap();
    assert!(j.entries[0].value.is_some() && j.entries[1].value.is_none(), "a warm account, a cold slot");
    assert_eq!(j.pre.len(), 1, "the cold slot's value before the item");
    assert!(matches!(verify_instruction(&cold, &agreed, &env(&tx())), InstructionVerdict::Next(_)));

    let mut value = cold.clone();
    value.journal.as_mut().unwrap().entries[0].value.as_mut().unwrap()[31] ^= 1;
    assert!(rejected(&value, &agreed), "another account entry");
    let mut pre = cold.clone();
    pre.journal.as_mut().unwrap().pre[0].value = Some(prover::encode_slot(U256::from(10)));
    assert!(rejected(&pre, &agreed), "another value before the item");
    let mut dropped = cold.clone();
    dropped.journal.as_mut().unwrap().pre.clear();
    assert!(rejected(&dropped, &agreed), "a value before the item left out");
    let mut absent = cold.clone();
    absent.journal.as_mut().unwrap().entries[0].value = None;
    assert!(rejected(&absent, &agreed), "a present entry claimed absent");
    let mut key = cold.clone();
    key.journal.as_mut().unwrap().entries[1].key = JournalKey::Slot(TARGET, U256::from(8));
    assert!(rejected(&key, &agreed), "another slot");
    let mut logs = cold.clone();
    logs.journal.as_mut().unwrap().root.logs_count += 1;
    assert!(rejected(&logs, &agreed), "other logs");
    let mut none = cold.clone();
    none.journal = None;
    assert!(rejected(&none, &agreed), "no journal part");

    // the first SLOAD, warm: its slot is in the journal and needs nothing
    // from the state before the item
    let (warm, agreed) = journal_step(&s, 4);
    let j = warm.journal.as_ref().unwrap();
    assert!(j.entries.iter().all(|e| e.value.is_some()) && j.pre.is_empty());
    let mut claimed = warm.clone();
    let jj = claimed.journal.as_mut().unwrap();
    jj.entries[1].value =
        Some([U256::from(5).to_be_bytes::<32>(), U256::from(5).to_be_bytes::<32>()].concat());
    assert!(rejected(&claimed, &agreed), "the slot's value before the SSTORE");
}

/// An instruction of a static frame that writes state halts: in the
/// transaction's frame, its end, with the journal at its checkpoint.
#[test]
fn a_static_flag_is_part_of_the_state() {
    let s = state(&contracts());
    let (st, agreed) = journal_step(&s, 2);
    assert_eq!(st.state.opcode, 0x55);
    let honest = verify_instruction(&st, &agreed, &env(&tx()));
    let mut flipped = st.clone();
    flipped.state.is_static = true;
    assert!(rejected(&flipped, &agreed), "another static flag is another state");
    // the halt ends the transaction's frame, which needs its checkpoint
    let t = trace(&s, &tx(), &[]);
    let last = step(&s, t.count - 1);
    flipped.checkpoint = last.checkpoint;
    let v = verify_instruction(&flipped, &flipped.state.commitment(), &env(&tx()));
    assert!(
        matches!(v, InstructionVerdict::Next(_)) && v != honest,
        "an SSTORE in a static frame halts: {v:?}"
    );
}

/// An account first loaded in a frame that reverted is cold again: the
/// journal lacks it, and a later read proves its value against the state
/// before the item and pays for a cold access again.
#[test]
fn an_entry_loaded_in_a_reverted_frame_is_cold_again() {
    // OTHER: BALANCE of FRESH, then REVERT
    let mut other = Vec::new();
    push20(&mut other, FRESH);
    other.extend([0x31, 0x50, 0x60, 0x00, 0x60, 0x00, 0xfd]);
    // TARGET: CALL OTHER, POP, BALANCE of FRESH, STOP
    let mut code = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00];
    push20(&mut code, OTHER);
    code.extend([0x5a, 0xf1, 0x50]);
    push20(&mut code, FRESH);
    code.extend([0x31, 0x00]);
    let s = state(&[(TARGET, code, vec![]), (OTHER, other, vec![])]);
    let t = trace(&s, &tx(), &(0..64).collect::<Vec<_>>());
    // the last BALANCE is the instruction before the final STOP
    let j = t.count - 2;
    let now = &t.states[j as usize];
    assert_eq!((now.opcode, now.depth), (0x31, 0));
    let st = step(&s, j);
    let journal = st.journal.as_ref().unwrap();
    assert_eq!(journal.entries[0].key, JournalKey::Account(FRESH));
    assert!(journal.entries[0].value.is_none(), "cold again after the revert");
    assert_eq!(journal.pre.len(), 1);
    let next = &t.states[j as usize + 1];
    assert_eq!(now.gas_remaining - next.gas_remaining, 2600, "a cold access again");
    assert_eq!(
        verify_instruction(&st, &now.commitment(), &env(&tx())),
        InstructionVerdict::Next(next.commitment())
    );
}

/// After a call returns, the copies re-execute alone: RETURNDATASIZE and
/// RETURNDATACOPY read the return data's words, EXTCODECOPY the other
/// contract's code, KECCAK256 the memory they wrote; a range longer than a
/// step carries is not a step yet.
#[test]
fn copies_and_hashes_after_a_call_re_execute_alone() {
    // OTHER: PUSH32 w, PUSH1 0, MSTORE, RETURN 40 bytes from 0
    let mut other = vec![0x7f];
    other.extend((1..=32u8).map(|b| b.wrapping_mul(13)));
    other.extend([0x60, 0x00, 0x52, 0x60, 0x28, 0x60, 0x00, 0xf3]);
    let mut code = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00];
    push20(&mut code, OTHER);
    code.extend([0x5a, 0xf1, 0x50]); // CALL, POP
    code.extend([0x3d, 0x50]); // RETURNDATASIZE, POP
    code.extend([0x60, 0x1e, 0x60, 0x03, 0x60, 0x05, 0x3e]); // RETURNDATACOPY 30 bytes from 3 to 5
    code.extend([0x60, 0x0a, 0x60, 0x01, 0x60, 0x64]); // EXTCODECOPY 10 bytes from 1 to 100
    push20(&mut code, OTHER);
    code.push(0x3c);
    code.extend([0x60, 0x40, 0x60, 0x00, 0x20, 0x50]); // KECCAK256 of 64 bytes from 0, POP
    code.extend([0x61, 0x10, 0x00, 0x60, 0x01, 0x20, 0x50]); // KECCAK256 of 4,096 bytes from 1: a step
    code.extend([0x61, 0x10, 0x01, 0x60, 0x00, 0x20]); // KECCAK256 of 4,097 bytes: too long for a step
    code.push(0x00);
    let s = state(&[(TARGET, code, vec![]), (OTHER, other, vec![])]);
    let t = trace(&s, &tx(), &(0..200).collect::<Vec<_>>());
    let back = t.states.iter().position(|st| st.depth == 0 && st.opcode == 0x50).unwrap();
    let mut seen = Vec::new();
    for j in back as u64..t.count - 2 {
        let now = &t.states[j as usize];
        let v = verify_instruction(&step(&s, j), &now.commitment(), &env(&tx()));
        assert_eq!(
            v,
            InstructionVerdict::Next(t.states[j as usize + 1].commitment()),
            "instruction {j} ({:#x})",
            now.opcode
        );
        seen.push(now.opcode);
    }
    for op in [0x3d, 0x3e, 0x3c, 0x20] {
        assert!(seen.contains(&op), "{op:#x} re-executed");
    }
    let long = &t.states[t.count as usize - 2];
    assert_eq!(long.opcode, 0x20);
    let v = verify_instruction(&step(&s, t.count - 2), &long.commitment(), &env(&tx()));
    assert_eq!(
        v,
        InstructionVerdict::Next(t.states[t.count as usize - 1].commitment()),
        "a 4,097-byte KECCAK256"
    );
}
