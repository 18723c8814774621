//! Level 2's machine states (issue 16, begun): a transaction's instruction
//! count and `s_j` at requested indices, from a replay that hashes only the
//! states asked for.

use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
use prover::machine::{InstructionTrace, trace_transaction};
use prover::{AccountState, AuthState, SignedTx, StateKey};

use crate::support::{params, sign_1559, signer};

/// A contract: its address, code and storage slots.
pub(crate) type Contract = (Address, Vec<u8>, Vec<(u64, u64)>);

/// Level 1's run of `tx` alone over `s` at `version` (in block `version + 1`).
pub(crate) fn level_one_run(s: &AuthState, version: u64, tx: &SignedTx) -> prover::Execution {
    level_one_item(s, version, &prover::Item::Tx(tx.clone()))
}

/// Level 1's run of `item` alone over `s` at `version`.
pub(crate) fn level_one_item(s: &AuthState, version: u64, item: &prover::Item) -> prover::Execution {
    let reader = s.reader(version).unwrap();
    let items = vec![item.clone()];
    prover::execute_items(reader, &crate::support::params(version + 1), items, prover::Mode::Verify).unwrap()
}

/// A state with signer 0 funded and `contracts` deployed.
pub(crate) fn state(contracts: &[Contract]) -> AuthState {
    let state = AuthState::in_memory();
    let mut c = prover::system_accounts();
    let a = AccountState { nonce: 0, balance: U256::from(10u128.pow(24)), ..Default::default() };
    c.insert(StateKey::Account(signer(0).address()), Some(a.encode()));
    for (address, code, slots) in contracts {
        let code_hash = keccak256(code);
        let a = AccountState { nonce: 1, balance: U256::ZERO, code_hash };
        c.insert(StateKey::Account(*address), Some(a.encode()));
        c.insert(StateKey::Code(code_hash), Some(code.clone()));
        for (slot, value) in slots {
            c.insert(
                StateKey::Storage(*address, U256::from(*slot)),
                Some(prover::encode_slot(U256::from(*value))),
            );
        }
    }
    let root = state.commit(0, &c).unwrap();
    PRE_ROOT.with(|r| *r.borrow_mut() = root);
    state
}

fn call(to: Address, gas: u64) -> SignedTx {
    sign_1559(&signer(0), 0, TxKind::Call(to), U256::ZERO, Bytes::new(), gas)
}

/// What a step may read besides the state: the block and the transaction.
pub(crate) fn env(tx: &SignedTx) -> prover::machine::StepEnv {
    prover::machine::StepEnv::new(
        params(1),
        tx,
        bridge::TraceCommitment::start(PRE_ROOT.with(|r| *r.borrow())),
    )
}

thread_local! {
    /// The state root the test's transaction starts from (set by [`state`]).
    static PRE_ROOT: std::cell::RefCell<bridge::Hash> = const { std::cell::RefCell::new(bridge::Hash::ZERO) };
}

pub(crate) fn trace(state: &AuthState, tx: &SignedTx, at: &[u64]) -> InstructionTrace {
    trace_transaction(state.reader(0).unwrap(), &params(1), tx, at).unwrap()
}

pub(crate) const TARGET: Address = Address::repeat_byte(0xc0);

/// `n` rounds of a 7-instruction loop: 7n + 2 instructions.
pub(crate) fn looper(n: u32) -> Vec<u8> {
    let n = n.to_be_bytes();
    vec![
        0x62, n[1], n[2], n[3], // PUSH3 n
        0x5b, // JUMPDEST (pc 4)
        0x60, 0x01, // PUSH1 1
        0x90, // SWAP1
        0x03, // SUB
        0x80, // DUP1
        0x60, 0x04, // PUSH1 4
        0x57, // JUMPI
        0x00, // STOP
    ]
}

/// A straight-line program: every state is what the instruction semantics
/// say (pc, opcode, stack height, memory size), and the instruction count
/// includes the final STOP.
#[test]
fn each_state_is_the_machine_before_its_instruction() {
    // PUSH1 2, PUSH1 3, ADD, PUSH1 0, MSTORE, STOP
    let code = vec![0x60, 0x02, 0x60, 0x03, 0x01, 0x60, 0x00, 0x52, 0x00];
    let s = state(&[(TARGET, code, vec![])]);
    let t = trace(&s, &call(TARGET, 100_000), &(0..10).collect::<Vec<_>>());
    assert_eq!(t.count, 6);
    assert_eq!(t.states.len(), 6, "indices past the count are not states");
    let shape: Vec<(u64, u8, u32, u64)> =
        t.states.iter().map(|s| (s.pc, s.opcode, s.stack_len, s.memory_len)).collect();
    assert_eq!(
        shape,
        vec![
            (0, 0x60, 0, 0),
            (2, 0x60, 1, 0),
            (4, 0x01, 2, 0),
            (5, 0x60, 1, 0),
            (7, 0x52, 2, 0),
            (8, 0x00, 0, 32)
        ]
    );
    assert_eq!(t.states[2].stack, prover::machine::stack_chain(&[U256::from(2), U256::from(3)]));
    // gas falls by each instruction's cost: PUSH1 3, ADD 3, MSTORE 3 + 3 for memory
    let gas: Vec<u64> = t.states.iter().map(|s| s.gas_remaining).collect();
    assert_eq!(gas[0] - gas[1], 3);
    assert_eq!(gas[2] - gas[3], 3);
    assert_eq!(gas[4] - gas[5], 6);
    let commitments: std::collections::BTreeSet<_> = t.states.iter().map(|s| s.commitment()).collect();
    assert_eq!(commitments.len(), 6, "every state differs");
}

/// A prover answers a round by replaying and hashing only the requested
/// states: those equal the states of a replay that hashes every one, and a
/// replay is deterministic. Over a million instructions the count is exact.
#[test]
fn sparse_snapshots_equal_dense_ones_and_counts_are_exact() {
    let s = state(&[(TARGET, looper(50), vec![])]);
    let tx = call(TARGET, 100_000);
    let dense = trace(&s, &tx, &(0..400).collect::<Vec<_>>());
    assert_eq!(dense.count, 7 * 50 + 2);
    let asked = [351, 0, 7, 200, 77, 7];
    let sparse = trace(&s, &tx, &asked);
    assert_eq!(sparse.count, dense.count);
    let mut want: Vec<u64> = asked.to_vec();
    want.sort_unstable();
    want.dedup();
    assert_eq!(sparse.states.iter().map(|s| s.index).collect::<Vec<_>>(), want);
    for st in &sparse.states {
        assert_eq!(st, &dense.states[st.index as usize]);
    }
    assert_eq!(trace(&s, &tx, &asked), sparse, "deterministic");

    // a million-instruction loop: 7n + 2 exactly, and each round's first
    // instruction is the JUMPDEST at pc 4
    let n = 150_000u32;
    let s = state(&[(TARGET, looper(n), vec![])]);
    let tx = call(TARGET, 5_000_000);
    let rounds: Vec<u64> = (0..64u64).map(|i| 1 + 7 * i * (u64::from(n) / 64)).collect();
    let big = trace(&s, &tx, &rounds);
    assert_eq!(big.count, 7 * u64::from(n) + 2);
    assert!(big.count >= 1_000_000);
    assert!(big.states.iter().all(|s| s.pc == 4 && s.opcode == 0x5b), "every round starts at the JUMPDEST");
}

/// A state depends on what was read only from the instruction that read
/// it: two states of the world differing in one slot give the same `s_j`
/// up to the SLOAD and different ones after (the stack and the journal).
#[test]
fn a_state_reflects_storage_from_the_instruction_that_reads_it() {
    // PUSH1 0, SLOAD, PUSH1 1, ADD, PUSH1 0, SSTORE, STOP
    let code = vec![0x60, 0x00, 0x54, 0x60, 0x01, 0x01, 0x60, 0x00, 0x55, 0x00];
    let all: Vec<u64> = (0..7).collect();
    let tx = call(TARGET, 100_000);
    let a = trace(&state(&[(TARGET, code.clone(), vec![(0, 5)])]), &tx, &all);
    let b = trace(&state(&[(TARGET, code, vec![(0, 6)])]), &tx, &all);
    assert_eq!(a.count, 7);
    for j in 0..=1 {
        assert_eq!(a.states[j].commitment(), b.states[j].commitment(), "before the SLOAD ({j})");
    }
    for j in 2..7 {
        assert_ne!(a.states[j].commitment(), b.states[j].commitment(), "after the SLOAD ({j})");
        assert_ne!(a.states[j].journal, b.states[j].journal, "the loaded slot is in the journal ({j})");
    }
    // the SSTORE's write shows in the journal of the state after it
    assert_ne!(a.states[5].journal, a.states[6].journal);
}

/// A call opens a frame: the callee's states are at depth 1 under a chain
/// of the caller's state at the CALL, with the callee's own code and input;
/// back in the caller, depth and chain are as before and the return data
/// is the callee's.
#[test]
fn a_call_opens_a_frame_under_the_callers_state() {
    let callee = Address::repeat_byte(0xc1);
    // callee: PUSH1 0x2a, PUSH1 0, MSTORE, PUSH1 32, PUSH1 0, RETURN
    let callee_code = vec![0x60, 0x2a, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3];
    // caller: CALL(gas 0xffff, callee, 0, 0, 0, 0, 0), STOP
    let mut caller_code = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x73];
    caller_code.extend_from_slice(callee.as_slice());
    caller_code.extend_from_slice(&[0x61, 0xff, 0xff, 0xf1, 0x00]);
    let s = state(&[(TARGET, caller_code, vec![]), (callee, callee_code, vec![])]);
    let t = trace(&s, &call(TARGET, 200_000), &(0..20).collect::<Vec<_>>());
    // 8 in the caller before and at the CALL, 6 in the callee, the STOP
    assert_eq!(t.count, 8 + 6 + 1);
    let call_state = &t.states[7];
    assert_eq!((call_state.opcode, call_state.depth), (0xf1, 0));
    for st in &t.states[8..14] {
        assert_eq!(st.depth, 1);
        assert_ne!(st.frames, bridge::Hash::ZERO, "under the caller's state");
        assert_ne!(st.code_hash, call_state.code_hash, "the callee's code");
        assert_ne!(st.input, call_state.input, "the callee's input");
    }
    assert_eq!(t.states[8].stack_len, 0, "a fresh stack");
    let back = &t.states[14];
    assert_eq!((back.opcode, back.depth, back.frames), (0x00, 0, t.states[0].frames), "back on the base");
    assert_eq!(back.code_hash, call_state.code_hash);
    let mut word = [0u8; 32];
    word[31] = 0x2a;
    let root = prover::machine::memory_root(&word);
    // the return data by reference: 32 bytes at 0 of the callee's memory
    let data = [&32u64.to_be_bytes()[..], &root.0, &0u64.to_be_bytes()];
    assert_eq!(back.return_data, bridge::hash_domain(b"optishard.data", &data));
    assert_eq!(back.stack_len, 1, "the CALL's success flag");
}

mod one_instruction {
    use proptest::prelude::*;
    use prover::machine::{
        InstructionVerdict, MachineState, instruction_step, is_stack_only, verify_instruction,
    };

    use super::*;

    fn step_verdict(s: &AuthState, tx: &SignedTx, j: u64, agreed: &MachineState) -> InstructionVerdict {
        let step = instruction_step(s.reader(0).unwrap(), &params(1), tx, j).unwrap();
        assert_eq!(&step.state, agreed, "the step carries s_{j}");
        // the wire form is the step, exactly
        let wire = bridge::Encode::encode(&step);
        assert_eq!(bridge::decode_exact::<prover::machine::InstructionStep>(&wire).unwrap(), step);
        verify_instruction(&step, &agreed.commitment(), &env(tx))
    }

    /// Every instruction of the loop, jumps taken and not taken included,
    /// re-executes alone to the next state of the replay.
    #[test]
    fn each_loop_instruction_re_executes_alone_to_the_next_state() {
        let s = state(&[(TARGET, looper(3), vec![])]);
        let tx = call(TARGET, 100_000);
        let t = trace(&s, &tx, &(0..100).collect::<Vec<_>>());
        assert_eq!(t.count, 23);
        for j in 0..t.count - 1 {
            let st = &t.states[j as usize];
            assert!(is_stack_only(st.opcode), "op {:#x}", st.opcode);
            let v = step_verdict(&s, &tx, j, st);
            assert_eq!(v, InstructionVerdict::Next(t.states[j as usize + 1].commitment()), "instruction {j}");
        }
        // the final STOP ends the transaction's frame
        let last = &t.states[t.count as usize - 1];
        let end = t.end.unwrap().commitment();
        assert_eq!(step_verdict(&s, &tx, t.count - 1, last), InstructionVerdict::Next(end));
    }

    /// A step whose parts are not the agreed state proves nothing: another
    /// stack word, another gas, another code, or a state that is not `s_j`.
    #[test]
    fn a_step_with_altered_parts_proves_nothing() {
        let s = state(&[(TARGET, looper(3), vec![])]);
        let tx = call(TARGET, 100_000);
        let t = trace(&s, &tx, &[4]);
        let agreed = t.states[0].commitment();
        let honest = instruction_step(s.reader(0).unwrap(), &params(1), &tx, 4).unwrap();
        assert_eq!(t.states[0].opcode, 0x03, "SUB reads two words");
        let reject = |step: &prover::machine::InstructionStep| {
            matches!(verify_instruction(step, &agreed, &env(&tx)), InstructionVerdict::Rejected(_))
        };
        let mut word = honest.clone();
        word.top[0] += U256::from(1);
        assert!(reject(&word), "a stack word");
        let mut gas = honest.clone();
        gas.state.gas_remaining -= 1;
        assert!(reject(&gas), "gas");
        let mut code = honest.clone();
        code.code.push(0x00);
        assert!(reject(&code), "code");
        let mut fewer = honest.clone();
        fewer.below = bridge::Hash::of(b"another stack below");
        assert!(reject(&fewer), "the chain below");
    }

    /// One stack-only instruction of a random program.
    #[derive(Clone, Debug)]
    enum Op {
        Push(Vec<u8>),
        Simple(u8),
        /// MLOAD, MSTORE or MSTORE8 at a pushed offset.
        Memory(u8, u16),
        /// A journal instruction on a pushed key (slot, address or log
        /// offset), with a pushed log length for LOGn.
        Journal(u8, u8, u8),
        /// KECCAK256 of a range, or a copy (CALLDATACOPY, CODECOPY,
        /// MCOPY) of a range to a destination: op, offset, length, destination.
        Range(u8, u16, u16, u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..=32).prop_map(Op::Push),
            (prop::sample::select(vec![0x51u8, 0x52, 0x53]), 0u16..2048)
                .prop_map(|(o, at)| Op::Memory(o, at)),
            (
                prop::sample::select(vec![
                    0x31u8, 0x3b, 0x3f, 0x47, 0x54, 0x55, 0x5c, 0x5d, 0xa0, 0xa1, 0xa2
                ]),
                0u8..6,
                0u8..70,
            )
                .prop_map(|(o, key, len)| Op::Journal(o, key, len)),
            (prop::sample::select(vec![0x20u8, 0x37, 0x39, 0x5e]), 0u16..4200, 0u16..=4096, 0u16..4200)
                .prop_map(|(o, at, len, dest)| Op::Range(o, at, len, dest)),
            prop::sample::select(
                [
                    (0x01..=0x0bu8).collect::<Vec<_>>(),
                    (0x10..=0x1d).collect(),
                    vec![0x50, 0x58, 0x59, 0x5a, 0x5b],
                    // the frame's input, the transaction's and the block's
                    vec![
                        0x30, 0x32, 0x33, 0x34, 0x35, 0x36, 0x3a, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x48,
                        0x49, 0x4a
                    ],
                    // the code's and the return data's sizes
                    vec![0x38, 0x3d],
                    (0x80..=0x9f).collect(),
                ]
                .concat()
            )
            .prop_map(Op::Simple),
        ]
    }

    /// The program: 17 words pushed, then the ops that fit the stack, STOP.
    fn program(ops: &[Op], seed: u8) -> Vec<u8> {
        let mut code = Vec::new();
        for i in 0..17u8 {
            code.push(0x7f);
            code.extend((0..32u8).map(|b| b.wrapping_mul(31).wrapping_add(i).wrapping_add(seed)));
        }
        let mut depth = 17usize;
        for op in ops {
            match op {
                Op::Push(data) if depth < 1024 => {
                    code.push(0x5f + data.len() as u8);
                    code.extend(data);
                    depth += 1;
                }
                Op::Simple(o) => {
                    let info = revm::bytecode::opcode::OpCode::new(*o).unwrap();
                    let (i, out) = (info.inputs() as usize, info.outputs() as usize);
                    if i <= depth && depth - i + out <= 1024 {
                        code.push(*o);
                        depth = depth - i + out;
                    }
                }
                // PUSH2 offset, then the memory op (a store's value is the word below)
                Op::Memory(o, at) if depth < 1023 && (*o == 0x51 || depth >= 1) => {
                    code.extend([0x61, (at >> 8) as u8, *at as u8, *o]);
                    depth = if *o == 0x51 { depth + 1 } else { depth - 1 };
                }
                // SELFBALANCE pushes; the others take a pushed key, stores
                // and logs take more below it
                Op::Journal(0x47, _, _) if depth < 1024 => {
                    code.push(0x47);
                    depth += 1;
                }
                Op::Journal(o @ (0x31 | 0x3b | 0x3f | 0x54 | 0x5c), key, _) if depth < 1024 => {
                    // an address among the precompiles, the target or the caller
                    code.extend([0x60, key.wrapping_mul(3), *o]);
                    depth += 1;
                }
                Op::Journal(o @ (0x55 | 0x5d), key, _) if (1..1024).contains(&depth) => {
                    code.extend([0x60, *key, *o]);
                    depth -= 1;
                }
                Op::Journal(o @ 0xa0..=0xa2, at, len) if depth >= (o - 0xa0) as usize && depth < 1023 => {
                    code.extend([0x60, *len, 0x60, at.wrapping_mul(11), *o]);
                    depth -= (o - 0xa0) as usize;
                }
                Op::Range(0x20, at, len, _) if depth < 1023 => {
                    code.extend([0x61, (len >> 8) as u8, *len as u8, 0x61, (at >> 8) as u8, *at as u8, 0x20]);
                    depth += 1;
                }
                Op::Range(o, at, len, dest) if depth < 1022 => {
                    for v in [len, at, dest] {
                        code.extend([0x61, (v >> 8) as u8, *v as u8]);
                    }
                    code.push(*o);
                }
                _ => {}
            }
        }
        code.push(0x00);
        code
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random programs of covered instructions (stack-only, and memory
        /// loads and stores at random offsets, unaligned and expanding):
        /// the verifier upholds every honest
        /// step (it re-executes to the replay's next state), and a claim
        /// of the next state with any part altered is not what it computes.
        #[test]
        fn every_honest_step_of_a_random_program_is_upheld_and_altered_claims_are_not(
            ops in prop::collection::vec(op(), 1..40),
            seed in any::<u8>(),
        ) {
            let s = state(&[(TARGET, program(&ops, seed), vec![(0, 1), (2, 7), (4, 0)])]);
            // with calldata and value, for the instructions that read them
            let calldata: Vec<u8> = (0..40u8).map(|b| b.wrapping_mul(seed)).collect();
            let tx = sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::from(7), calldata.into(), 1_000_000);
            let t = trace(&s, &tx, &(0..200).collect::<Vec<_>>());
            for j in 0..t.count.saturating_sub(1) {
                let (now, next) = (&t.states[j as usize], &t.states[j as usize + 1]);
                let v = step_verdict(&s, &tx, j, now);
                prop_assert_eq!(&v, &InstructionVerdict::Next(next.commitment()), "instruction {} ({:#x})", j, now.opcode);
                let InstructionVerdict::Next(computed) = v else { unreachable!() };
                let altered = [
                    MachineState { pc: next.pc + 1, ..next.clone() },
                    MachineState { gas_remaining: next.gas_remaining ^ 1, ..next.clone() },
                    MachineState { stack: bridge::Hash::of(b"another stack"), ..next.clone() },
                    MachineState { stack_len: next.stack_len + 1, ..next.clone() },
                    MachineState { gas_refunded: next.gas_refunded + 1, ..next.clone() },
                ];
                for a in &altered {
                    prop_assert_ne!(a.commitment(), computed);
                }
            }
        }
    }
}

/// A memory step carries the words it touches with their paths: a word or
/// a path that is not the state's proves nothing, and memory past the
/// size must be zero.
#[test]
fn a_memory_step_proves_its_words_against_the_state() {
    use prover::machine::{InstructionVerdict, instruction_step, verify_instruction};
    // PUSH1 0x2a, PUSH1 0, MSTORE, PUSH1 0x10, MLOAD, STOP: the MLOAD spans
    // the stored word and the one past the memory's size
    let code = vec![0x60, 0x2a, 0x60, 0x00, 0x52, 0x60, 0x10, 0x51, 0x00];
    let s = state(&[(TARGET, code, vec![])]);
    let tx = call(TARGET, 100_000);
    let t = trace(&s, &tx, &[4, 5]);
    let (agreed, next) = (t.states[0].commitment(), t.states[1].commitment());
    assert_eq!(t.states[0].opcode, 0x51);
    let honest = instruction_step(s.reader(0).unwrap(), &params(1), &tx, 4).unwrap();
    assert_eq!(honest.memory.indices(), vec![0, 1], "two words");
    let env = env(&tx);
    assert_eq!(verify_instruction(&honest, &agreed, &env), InstructionVerdict::Next(next));
    assert_eq!(t.states[1].memory_len, 64, "the load expanded memory");
    let reject = |step: &prover::machine::InstructionStep| {
        matches!(verify_instruction(step, &agreed, &env), InstructionVerdict::Rejected(_))
    };
    let mut word = honest.clone();
    word.memory.words[0].1[31] ^= 1;
    assert!(reject(&word), "a word");
    let mut beyond = honest.clone();
    beyond.memory.words[1].1[0] = 1;
    assert!(reject(&beyond), "memory past its size is zero");
    let mut path = honest.clone();
    path.memory.siblings[3] = bridge::Hash::of(b"another sibling");
    assert!(reject(&path), "a path");
    let mut fewer = honest.clone();
    fewer.memory.words.pop();
    assert!(reject(&fewer), "a touched word left out");
}

/// An instruction reading the frame's input carries it, proven against
/// `s_j`, with only the calldata words it reads: another word or length
/// proves nothing.
#[test]
fn an_input_step_carries_the_frames_input() {
    use prover::machine::{InstructionVerdict, instruction_step, verify_instruction};
    // PUSH1 4, CALLDATALOAD, CALLER, STOP
    let code = vec![0x60, 0x04, 0x35, 0x33, 0x00];
    let s = state(&[(TARGET, code, vec![])]);
    let tx = sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::ZERO, vec![7u8; 36].into(), 100_000);
    let t = trace(&s, &tx, &[1, 2, 3]);
    for (k, j) in [1u64, 2].into_iter().enumerate() {
        let step = instruction_step(s.reader(0).unwrap(), &params(1), &tx, j).unwrap();
        assert!(step.input.is_some(), "CALLDATALOAD and CALLER read the input");
        let agreed = t.states[k].commitment();
        assert_eq!(
            verify_instruction(&step, &agreed, &env(&tx)),
            InstructionVerdict::Next(t.states[k + 1].commitment())
        );
        // another calldata word (CALLDATALOAD), or another length (CALLER)
        let mut other = step.clone();
        let input = other.input.as_mut().unwrap();
        match input.calldata.words.words.first_mut() {
            Some(w) => w.1[5] ^= 1,
            None => input.calldata.len += 1,
        }
        assert!(matches!(verify_instruction(&other, &agreed, &env(&tx)), InstructionVerdict::Rejected(_)));
        let mut none = step.clone();
        none.input = None;
        assert!(matches!(verify_instruction(&none, &agreed, &env(&tx)), InstructionVerdict::Rejected(_)));
    }
}

/// A step's decoder checks every length before reading what it counts: a
/// code, input or list longer than any step carries is refused.
#[test]
fn a_steps_lengths_are_bounded_before_decoding() {
    use bridge::{DecodeError, Encode, decode_exact};
    use prover::machine::{InstructionStep, MAX_STEP_CODE, instruction_step};
    let code = vec![0x60, 0x01, 0x00];
    let s = state(&[(TARGET, code, vec![])]);
    let tx = call(TARGET, 100_000);
    let step = instruction_step(s.reader(0).unwrap(), &params(1), &tx, 0).unwrap();
    let mut big = step.clone();
    big.code = vec![0; MAX_STEP_CODE + 1];
    assert!(matches!(decode_exact::<InstructionStep>(&big.encode()), Err(DecodeError::TooLong { .. })));
    // a forged code length past the input: refused, not allocated
    let mut wire = step.encode();
    // after the code: the stack words, the chain below, no memory words
    // and siblings, and no input, journal, return data or caller
    let at = wire.len() - step.code.len() - 4 - 4 - 32 * step.top.len() - 32 - 8 - 4;
    wire[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(decode_exact::<InstructionStep>(&wire).is_err());
    assert!(decode_exact::<InstructionStep>(&step.encode()[..40]).is_err(), "truncated");
}
