//! Level 2's whole item (issue 16): from `s_0` through the prologue, every
//! instruction, the epilogue (refund, fees, receipt) and the journal's
//! commit into the state, entry by entry, to exactly level 1's `c_i`.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use bridge::{Hash, TraceState};
use prover::machine::{
    InstructionVerdict, ItemStep, StepEnv, item_coverage, item_step, item_trace, verify_item_step,
};
use prover::{AuthState, SignedTx};

use crate::machine::{Contract, TARGET, state};
use crate::support::{params, sign_1559, signer};

const OTHER: Address = Address::repeat_byte(0xc1);
const FRESH: Address = Address::repeat_byte(0xe7);

/// Level 1's `c_1` of `item` alone over `s` at `version`.
fn level_one_at(s: &AuthState, version: u64, item: &prover::Item) -> bridge::TraceCommitment {
    crate::machine::level_one_item(s, version, item).trace(s, version).unwrap().pop().unwrap()
}

/// Every step of `tx`'s trace, each from the replay's `T_j`, re-executes to
/// `T_{j+1}`; the trace ends on level 1's `c_1`; a step past the end stays
/// there. Returns the trace's states and its instruction count.
pub(crate) fn walk(s: &AuthState, tx: &SignedTx) -> (Vec<Hash>, u64) {
    walk_at(s, 0, tx)
}

/// [`walk`] over `s` at `version` (in block `version + 1`).
pub(crate) fn walk_at(s: &AuthState, version: u64, tx: &SignedTx) -> (Vec<Hash>, u64) {
    walk_item(s, version, &prover::Item::Tx(tx.clone()))
}

/// [`walk`] of any item (a transaction or a call message).
pub(crate) fn walk_item(s: &AuthState, version: u64, item: &prover::Item) -> (Vec<Hash>, u64) {
    let pre = TraceState::start();
    let p = params(version + 1);
    let reader = || s.reader(version).unwrap();
    assert_eq!(item_coverage(reader(), &p, item).unwrap(), None, "every step is covered");
    let head = item_trace(reader(), &p, item, &pre, &[]).unwrap();
    let all: Vec<u64> = (0..=head.last + 1).collect();
    let t = item_trace(reader(), &p, item, &pre, &all).unwrap();
    let c1 = level_one_at(s, version, item);
    assert_eq!(t.end, c1, "the trace ends on level 1's c_1");
    assert_eq!(t.states[t.last as usize], c1.hash());
    assert_eq!(t.states[t.last as usize + 1], c1.hash(), "past its end a trace stays at c_i");
    let env = StepEnv::new(p.clone(), item, bridge::TraceCommitment::start(s.root(version).unwrap()));
    for j in 0..=t.last {
        let step = item_step(reader(), &p, item, &pre, j).unwrap();
        let wire = bridge::Encode::encode(&step);
        assert_eq!(bridge::decode_exact::<ItemStep>(&wire).unwrap(), step, "the wire form is the step");
        let kind = match &step {
            ItemStep::Prologue(_) => "prologue",
            ItemStep::Instruction(_) => "instruction",
            ItemStep::Epilogue(_) => "epilogue",
            ItemStep::Commit(_) => "commit",
            ItemStep::Done(_) => "done",
        };
        assert_eq!(
            verify_item_step(&step, &t.states[j as usize], &env),
            InstructionVerdict::Next(t.states[j as usize + 1]),
            "step {j} ({kind}) of {}",
            t.last
        );
    }
    (t.states, t.instructions)
}

fn tx_to(to: Address, value: u64, data: Vec<u8>) -> SignedTx {
    sign_1559(&signer(0), 0, TxKind::Call(to), U256::from(value), Bytes::from(data), 1_000_000)
}

/// Storage writes of every kind (a new slot, an overwrite, a clear that
/// refunds, a write back to the original), a read, transient storage and
/// two logs, then STOP.
fn writer() -> Vec<u8> {
    vec![
        0x60, 0x2a, 0x60, 0x07, 0x55, // SSTORE 7 := 42 (new)
        0x60, 0x05, 0x60, 0x01, 0x55, // SSTORE 1 := 5 (was 1)
        0x60, 0x00, 0x60, 0x02, 0x55, // SSTORE 2 := 0 (was 2: a refund)
        0x60, 0x09, 0x60, 0x03, 0x55, 0x60, 0x03, 0x60, 0x03, 0x55, // slot 3: 9, then back to 3
        0x60, 0x04, 0x54, 0x50, // SLOAD 4, POP
        0x60, 0x0b, 0x60, 0x05, 0x5d, // TSTORE 5 := 11
        0x60, 0x05, 0x5c, 0x60, 0x00, 0x52, // TLOAD 5, MSTORE at 0
        0x60, 0x20, 0x60, 0x00, 0xa0, // LOG0 of the word
        0x60, 0x63, 0x60, 0x04, 0x60, 0x1c, 0xa1, // LOG1 topic 0x63
        0x00,
    ]
}

fn writer_state() -> AuthState {
    let slots = vec![(1, 1), (2, 2), (3, 3), (4, 4)];
    state(&[(TARGET, writer(), slots), (OTHER, vec![0x60, 0x01, 0x60, 0x00, 0xfd], vec![])])
}

/// A transfer to an account without code runs no instruction: the
/// prologue's step reaches the frame's end, the epilogue pays for 21,000
/// gas, and the commits write the sender, the payee and the beneficiary.
#[test]
fn a_transfer_is_a_prologue_an_epilogue_and_commits() {
    let s = writer_state();
    let (states, n) = walk(&s, &tx_to(FRESH, 1_000, vec![]));
    assert_eq!(n, 0);
    assert!(states.len() >= 5, "start, end, settled, and a commit per account");
}

/// Every storage write's kind, transient storage and logs: the commits
/// write exactly level 1's state root, the receipt commits the logs.
#[test]
fn writes_refunds_and_logs_commit_to_level_ones_state() {
    let s = writer_state();
    let (_, n) = walk(&s, &tx_to(TARGET, 7, vec![]));
    assert!(n > 20);
}

/// A reverted transaction keeps only its fee and nonce; one that runs out
/// of gas pays for all of it; each ends on level 1's `c_1`.
#[test]
fn a_revert_and_an_out_of_gas_settle_like_level_one() {
    let s = writer_state();
    walk(&s, &tx_to(OTHER, 0, vec![]));
    let burner: Contract = (FRESH, vec![0x5b, 0x60, 0x00, 0x56], vec![]);
    let s = state(&[burner]);
    let tx = sign_1559(&signer(0), 0, TxKind::Call(FRESH), U256::ZERO, Bytes::new(), 30_000);
    walk(&s, &tx);
}

/// The frames test's caller: calls, returns, a revert in a nested call,
/// halts, value to a fresh account, precompiles, all the way to `c_1`.
#[test]
fn every_frame_boundary_ends_on_level_ones_commitment() {
    let s = state(&crate::machine_frames::contracts());
    walk(&s, &crate::machine_frames::tx());
}

fn refused(v: InstructionVerdict) -> bool {
    matches!(v, InstructionVerdict::Rejected(_))
}

/// The epilogue's step proves nothing with any part altered: another
/// frame end, another trace before the item, a sender's entry it does not
/// hold, a missing beneficiary.
#[test]
fn an_altered_epilogue_proves_nothing() {
    let s = writer_state();
    let tx = tx_to(TARGET, 7, vec![]);
    let pre = TraceState::start();
    let t = item_trace(s.reader(0).unwrap(), &params(1), &tx, &pre, &[]).unwrap();
    let j = t.instructions + 1;
    let agreed = item_trace(s.reader(0).unwrap(), &params(1), &tx, &pre, &[j]).unwrap().states[0];
    let env = StepEnv::new(params(1), &tx, bridge::TraceCommitment::start(s.root(0).unwrap()));
    let ItemStep::Epilogue(step) = item_step(s.reader(0).unwrap(), &params(1), &tx, &pre, j).unwrap() else {
        panic!("the step after the frame's end is the epilogue's")
    };
    let honest = verify_item_step(&ItemStep::Epilogue(step.clone()), &agreed, &env);
    assert!(matches!(honest, InstructionVerdict::Next(_)));

    let mut gas = step.clone();
    gas.end.gas_remaining += 1;
    assert!(refused(verify_item_step(&ItemStep::Epilogue(gas), &agreed, &env)), "another end");
    let mut trace = step.clone();
    trace.trace.push([], &Hash::of(b"a receipt"), 21_000);
    assert!(refused(verify_item_step(&ItemStep::Epilogue(trace), &agreed, &env)), "another trace");
    let mut entry = step.clone();
    let v = entry.entries[0].value.as_mut().expect("the sender is warm");
    v[31] ^= 1;
    assert!(refused(verify_item_step(&ItemStep::Epilogue(entry), &agreed, &env)), "a balance the map lacks");
    let mut fewer = step.clone();
    fewer.entries.pop();
    assert!(refused(verify_item_step(&ItemStep::Epilogue(fewer), &agreed, &env)), "no beneficiary");
    let other = Hash::of(b"another state");
    assert!(refused(verify_item_step(&ItemStep::Epilogue(step), &other, &env)), "another agreed state");
}

/// A commit step proves nothing with any part altered: a state value the
/// state root does not hold, a write without its value, a slot without its
/// account's entry, an entry the map does not hold; `c_i`'s step stays
/// only at `c_i`.
#[test]
fn an_altered_commit_proves_nothing() {
    let s = writer_state();
    let tx = tx_to(TARGET, 7, vec![]);
    let pre = TraceState::start();
    let t = item_trace(s.reader(0).unwrap(), &params(1), &tx, &pre, &[]).unwrap();
    let all: Vec<u64> = (0..=t.last).collect();
    let t = item_trace(s.reader(0).unwrap(), &params(1), &tx, &pre, &all).unwrap();
    let env = StepEnv::new(params(1), &tx, bridge::TraceCommitment::start(s.root(0).unwrap()));
    let mut slots = 0;
    for j in t.instructions + 2..t.last {
        let ItemStep::Commit(step) = item_step(s.reader(0).unwrap(), &params(1), &tx, &pre, j).unwrap()
        else {
            panic!("a commit step")
        };
        let agreed = t.states[j as usize];
        let check = |c: &prover::machine::CommitStep| {
            verify_item_step(&ItemStep::Commit(Box::new(c.clone())), &agreed, &env)
        };
        assert_eq!(check(&step), InstructionVerdict::Next(t.states[j as usize + 1]));
        if let Some(current) = &step.current {
            let mut other = step.clone();
            let value = other.current.as_mut().unwrap();
            value.value = Some(vec![7; current.value.as_ref().map_or(32, Vec::len)]);
            assert!(refused(check(&other)), "step {j}: a value the state does not hold");
            let mut none = step.clone();
            none.current = None;
            assert!(refused(check(&none)), "step {j}: a write without its value");
        }
        if step.account.is_some() {
            slots += 1;
            let mut none = step.clone();
            none.account = None;
            assert!(refused(check(&none)), "step {j}: a slot without its account");
            let mut other = step.clone();
            if let Some(v) = other.account.as_mut().unwrap().value.as_mut() {
                v[0] ^= 1;
            }
            assert!(refused(check(&other)), "step {j}: an account entry the map lacks");
        }
        let mut entry = step.clone();
        entry.entry.value.as_mut().unwrap()[0] ^= 1;
        assert!(refused(check(&entry)), "step {j}: an entry the map lacks");
    }
    assert!(slots >= 4, "the slots written and read are committed ({slots})");
    let done = prover::machine::verify_done(&t.end, &t.states[t.last as usize]);
    assert_eq!(done, InstructionVerdict::Next(t.end.hash()));
    let other = bridge::TraceCommitment { gas_used: t.end.gas_used + 1, ..t.end };
    assert!(refused(prover::machine::verify_done(&other, &t.states[t.last as usize])));
}

/// SELFDESTRUCT (after Cancun: the balance moves to the beneficiary, the
/// account stays) ends its frame as a step that carries both accounts'
/// entries: as the transaction's own frame, and as a callee, to a fresh
/// beneficiary and to itself; each trace ends on level 1's `c_1`.
#[test]
fn selfdestruct_moves_the_balance_and_ends_on_level_ones_commitment() {
    const DOOMED: Address = Address::repeat_byte(0xd7);
    const SELF: Address = Address::repeat_byte(0xd8);
    let mut to_fresh = vec![0x73];
    to_fresh.extend_from_slice(FRESH.as_slice());
    to_fresh.push(0xff);
    let mut to_self = vec![0x73];
    to_self.extend_from_slice(SELF.as_slice());
    to_self.push(0xff);
    // a caller: CALL the doomed contract with no value, then SSTORE 1 := 1
    let mut caller = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x73];
    caller.extend_from_slice(DOOMED.as_slice());
    caller.extend([0x5a, 0xf1, 0x50, 0x60, 0x01, 0x60, 0x01, 0x55, 0x00]);
    let s = state(&[(DOOMED, to_fresh, vec![]), (SELF, to_self, vec![]), (TARGET, caller, vec![])]);
    walk(&s, &tx_to(DOOMED, 5_000, vec![]));
    walk(&s, &tx_to(SELF, 5_000, vec![]));
    walk(&s, &tx_to(TARGET, 0, vec![]));
}

mod random_items {
    //! Random short programs of storage, transient storage, logs, value
    //! transfers and balance reads, ending in STOP or REVERT, under random
    //! gas (some run out): every step of each item's whole trace is upheld
    //! and the trace ends on level 1's `c_1`.

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Store(u8, u8),
        Load(u8),
        TStore(u8, u8),
        Log(u8),
        Pay(u8, u8),
        Balance(u8),
        /// KECCAK256, MCOPY up, CALLDATACOPY, LOG1, MCOPY down, or a call
        /// to SHA-256, RIPEMD-160 or identity (its output copied back over
        /// the input's range) (`.0`) over `RANGES[.1]` bytes: around one
        /// sub-step, and past the 128 KiB limit of `stf_version` 4.
        Range(u8, usize),
    }

    const RANGES: [u32; 7] = [0, 31, 4_352, 4_353, 13_057, 131_073, 200_000];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Store(k, v % 3)),
            1 => (0u8..6).prop_map(Op::Load),
            1 => (0u8..4, any::<u8>()).prop_map(|(k, v)| Op::TStore(k, v % 2)),
            1 => (0u8..3).prop_map(Op::Log),
            1 => (0u8..4, 0u8..40).prop_map(|(to, v)| Op::Pay(to, v)),
            1 => (0u8..4).prop_map(Op::Balance),
            1 => (0u8..8, 0..RANGES.len()).prop_map(|(k, l)| Op::Range(k, l)),
        ]
    }

    fn payee(i: u8) -> Address {
        Address::repeat_byte(0xa0 + i)
    }

    fn program(ops: &[Op], revert: bool) -> Vec<u8> {
        let mut c = Vec::new();
        for op in ops {
            match *op {
                Op::Store(k, v) => c.extend([0x60, v, 0x60, k, 0x55]),
                Op::Load(k) => c.extend([0x60, k, 0x54, 0x50]),
                Op::TStore(k, v) => c.extend([0x60, v, 0x60, k, 0x5d]),
                Op::Log(n) => {
                    for t in 0..n {
                        c.extend([0x60, t + 1]);
                    }
                    c.extend([0x60, 0x20, 0x60, 0x00, 0xa0 + n]);
                }
                Op::Pay(to, v) => {
                    c.extend([0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, v, 0x73]);
                    c.extend_from_slice(payee(to).as_slice());
                    c.extend([0x5a, 0xf1, 0x50]);
                }
                Op::Balance(to) => {
                    c.push(0x73);
                    c.extend_from_slice(payee(to).as_slice());
                    c.extend([0x31, 0x50]);
                }
                Op::Range(kind, l) => {
                    let b = RANGES[l].to_be_bytes();
                    let len = [0x62, b[1], b[2], b[3]];
                    match kind {
                        0 => c.extend([&len[..], &[0x60, 0x20, 0x20, 0x50]].concat()),
                        1 => c.extend([&len[..], &[0x60, 0x11, 0x61, 0x01, 0x05, 0x5e]].concat()),
                        2 => c.extend([&len[..], &[0x60, 0x00, 0x60, 0x40, 0x37]].concat()),
                        3 => c.extend([&[0x60, 0x09][..], &len, &[0x60, 0x07, 0xa1]].concat()),
                        4 => c.extend([&len[..], &[0x61, 0x01, 0x05, 0x60, 0x05, 0x5e]].concat()),
                        // STATICCALL SHA-256 or RIPEMD-160 over [0x11, 0x11 +
                        // len) into [0x40, 0x60), POP
                        5 | 6 => {
                            c.extend([0x60, 0x20, 0x60, 0x40]);
                            c.extend(len);
                            c.extend([0x60, 0x11, 0x60, kind - 3, 0x5a, 0xfa, 0x50]);
                        }
                        // STATICCALL identity over [0x11, 0x11 + len) into
                        // [0x40, 0x40 + len), POP
                        _ => {
                            c.extend(len);
                            c.extend([0x60, 0x40]);
                            c.extend(len);
                            c.extend([0x60, 0x11, 0x60, 0x04, 0x5a, 0xfa, 0x50]);
                        }
                    }
                }
            }
        }
        c.extend(if revert { vec![0x60, 0x00, 0x60, 0x00, 0xfd] } else { vec![0x00] });
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random items of storage, transient storage, logs, payments,
        /// balance reads and ranges of one step or several (over calldata
        /// copied into memory), ending in STOP or REVERT, sometimes out of gas: every
        /// step is upheld and the trace ends on level 1's `c_1`.
        #[test]
        fn every_step_of_a_random_item_is_upheld_and_ends_on_level_one(
            ops in prop::collection::vec(op(), 1..14),
            revert in prop::bool::weighted(0.2),
            gas in prop::sample::select(vec![40_000u64, 90_000, 1_000_000]),
        ) {
            let code = program(&ops, revert);
            let s = state(&[(TARGET, code, vec![(1, 1), (2, 2), (3, 3)])]);
            let calldata: Vec<u8> = (0..100u32).map(|i| (i * 7 + 1) as u8).collect();
            let tx = sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::from(1_000), calldata.into(), gas);
            walk(&s, &tx);
        }

        /// The same random programs delivered as call messages from
        /// another shard (with value, calldata, sometimes too little gas):
        /// every step of the delivery is upheld and its trace ends on
        /// level 1's `c_1`, refund and all when the call fails.
        #[test]
        fn every_step_of_a_random_delivery_is_upheld_and_ends_on_level_one(
            ops in prop::collection::vec(op(), 1..14),
            revert in prop::bool::weighted(0.2),
            gas in prop::sample::select(vec![30_000u64, 90_000, 1_000_000]),
            value in 0u64..3,
        ) {
            let code = program(&ops, revert);
            let s = state(&[(TARGET, code, vec![(1, 1), (2, 2), (3, 3)])]);
            let m = bridge::Message {
                src: bridge::ShardId(2),
                dst: bridge::ShardId(0),
                nonce: 0,
                sender: Address::repeat_byte(0xab),
                to: TARGET,
                value: U256::from(value),
                gas_limit: gas,
                data: (0..100u32).map(|i| (i * 7 + 1) as u8).collect(),
                kind: bridge::MessageKind::Call,
            };
            walk_item(&s, 0, &prover::Item::Message(m));
        }
    }
}

/// Ranges: KECCAK256 of exactly `ranges::MAX_RANGE` bytes, one byte past
/// it (which halted under `stf_version` 4) and a RETURNDATACOPY of 5,000
/// succeed at level 1 and are steps (sub-steps) at level 2.
#[test]
fn ranges_at_and_past_the_old_limit_succeed_at_both_levels() {
    let max = prover::ranges::MAX_RANGE as u32;
    let keccak = |len: u32| {
        let l = len.to_be_bytes();
        vec![0x60, 0x02, 0x60, 0x01, 0x55, 0x62, l[1], l[2], l[3], 0x60, 0x00, 0x20, 0x60, 0x03, 0x55, 0x00]
    };
    // a call to OTHER, which returns 5,000 bytes, all copied back
    let mut copies = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x73];
    copies.extend_from_slice(OTHER.as_slice());
    copies.extend([0x5a, 0xf1, 0x50, 0x3d, 0x60, 0x00, 0x60, 0x00, 0x3e, 0x00]);
    let returns = vec![0x61, 0x13, 0x88, 0x60, 0x00, 0xf3];
    for (name, code, success) in [
        ("KECCAK256 at the limit", keccak(max), true),
        ("RETURNDATACOPY", copies, true),
        ("past it", keccak(max + 1), true),
    ] {
        let s = state(&[(TARGET, code, vec![]), (OTHER, returns.clone(), vec![])]);
        let tx = tx_to(TARGET, 0, vec![]);
        walk(&s, &tx);
        let exec = crate::machine::level_one_run(&s, 0, &tx);
        let receipt = &exec.outcomes[0].receipt;
        assert_eq!(receipt.success, success, "{name}");
        if !success {
            assert_eq!(receipt.gas_used, 1_000_000, "{name}: a halt takes all the gas");
        }
    }
}

/// EIP-7702 accounts at level 2: a transaction to an account delegated to
/// code (its prologue loads the delegate), a contract calling it with
/// value and statically, and the delegate's code writing the account's
/// own storage and logging; each ends on level 1's `c_1`.
#[test]
fn calls_through_an_eip_7702_delegation_are_steps() {
    // the delegate's code: SSTORE 1 := CALLVALUE, LOG0 of nothing, STOP
    let delegate = vec![0x34, 0x60, 0x01, 0x55, 0x60, 0x00, 0x60, 0x00, 0xa0, 0x00];
    let mut designation = vec![0xef, 0x01, 0x00];
    designation.extend_from_slice(FRESH.as_slice());
    // the caller: CALL OTHER with 3 wei, then STATICCALL OTHER (the write
    // fails in a static frame), STOP
    let mut caller = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x03, 0x73];
    caller.extend_from_slice(OTHER.as_slice());
    caller.extend([0x5a, 0xf1, 0x50, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x73]);
    caller.extend_from_slice(OTHER.as_slice());
    caller.extend([0x5a, 0xfa, 0x50, 0x00]);
    let s = state(&[(TARGET, caller, vec![]), (OTHER, designation, vec![(1, 9)]), (FRESH, delegate, vec![])]);
    assert_eq!(item_coverage(s.reader(0).unwrap(), &params(1), &tx_to(OTHER, 0, vec![])).unwrap(), None);
    walk(&s, &tx_to(OTHER, 5, vec![]));
    walk(&s, &tx_to(TARGET, 10, vec![]));
}

/// Addresses and slots a transaction starts warm (its access list, the
/// precompiles, the coinbase) are loaded by revm without a journal entry,
/// so a frame that loaded them and failed leaves them loaded: the journal
/// after it is still its checkpoint's. A nested frame reads an access-list
/// slot and account, calls a precompile, and reverts; then the
/// transaction's own frame does the same and reverts too.
#[test]
fn warm_addresses_a_failed_frame_loaded_leave_the_journal_as_it_was() {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2930::{AccessList, AccessListItem};
    use alloy_signer::SignerSync;
    // SLOAD 9 (access-listed), BALANCE of OTHER (access-listed), a call to
    // the identity precompile, REVERT
    let mut loads = vec![0x60, 0x09, 0x54, 0x50, 0x73];
    loads.extend_from_slice(OTHER.as_slice());
    loads.extend([0x31, 0x50]);
    loads.extend([0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x04, 0x5a, 0xf1, 0x50]);
    let mut nested = loads.clone();
    nested.extend([0x60, 0x00, 0x60, 0x00, 0xfd]);
    // the transaction's frame: call FRESH (the nested frame), then the
    // same loads, then REVERT
    let mut top = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x73];
    top.extend_from_slice(FRESH.as_slice());
    top.extend([0x5a, 0xf1, 0x50]);
    top.extend(&loads);
    top.extend([0x60, 0x00, 0x60, 0x00, 0xfd]);
    let s = state(&[(TARGET, top, vec![(9, 1)]), (FRESH, nested, vec![(9, 2)]), (OTHER, vec![0x00], vec![])]);
    let list = AccessList(vec![
        AccessListItem { address: TARGET, storage_keys: vec![alloy_primitives::B256::with_last_byte(9)] },
        AccessListItem { address: FRESH, storage_keys: vec![alloy_primitives::B256::with_last_byte(9)] },
        AccessListItem { address: OTHER, storage_keys: vec![] },
    ]);
    let tx = TxEip1559 {
        chain_id: crate::support::CHAIN_ID,
        nonce: 0,
        gas_limit: 1_000_000,
        max_fee_per_gas: 100,
        max_priority_fee_per_gas: 2,
        to: TxKind::Call(TARGET),
        value: U256::ZERO,
        access_list: list,
        input: Bytes::new(),
    };
    let sig = signer(0).sign_hash_sync(&tx.signature_hash()).unwrap();
    let tx = SignedTx::from_envelope(TxEnvelope::from(tx.into_signed(sig))).unwrap();
    walk(&s, &tx);
}

/// A call to an account delegated to a contract the transaction already
/// warmed, with too little gas to load a cold one: honestly the call
/// proceeds. A step naming other code for the called account (so no
/// delegate, whose absence revm's skipped cold load would never report)
/// proves nothing: the codes a call's step carries are the called
/// account's by the hash its entry holds.
#[test]
fn a_calls_step_carries_the_called_accounts_own_code() {
    let mut designation = vec![0xef, 0x01, 0x00];
    designation.extend_from_slice(FRESH.as_slice());
    // BALANCE(OTHER), BALANCE(FRESH): the called account and its delegate
    // warm; then CALL MID with 2,500 gas, and MID calls OTHER with what it
    // has left (below a cold load's 2,600)
    const MID: Address = Address::repeat_byte(0xc3);
    let mut caller = vec![0x73];
    caller.extend_from_slice(OTHER.as_slice());
    caller.extend([0x31, 0x50, 0x73]);
    caller.extend_from_slice(FRESH.as_slice());
    caller.extend([0x31, 0x50, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x73]);
    caller.extend_from_slice(MID.as_slice());
    caller.extend([0x61, 0x09, 0xc4, 0xf1, 0x50, 0x00]);
    let mut mid = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x73];
    mid.extend_from_slice(OTHER.as_slice());
    mid.extend([0x5a, 0xf1, 0x60, 0x00, 0x55, 0x00]);
    let s = state(&[
        (TARGET, caller, vec![]),
        (MID, mid, vec![]),
        (OTHER, designation.clone(), vec![]),
        (FRESH, vec![0x00], vec![]),
    ]);
    let tx = tx_to(TARGET, 0, vec![]);
    walk(&s, &tx);
    let pre = TraceState::start();
    let head = item_trace(s.reader(0).unwrap(), &params(1), &tx, &pre, &[]).unwrap();
    let all: Vec<u64> = (0..=head.last).collect();
    let t = item_trace(s.reader(0).unwrap(), &params(1), &tx, &pre, &all).unwrap();
    let env = StepEnv::new(params(1), &tx, bridge::TraceCommitment::start(s.root(0).unwrap()));
    let steps: Vec<_> = (0..t.last)
        .filter_map(|j| match item_step(s.reader(0).unwrap(), &params(1), &tx, &pre, j).unwrap() {
            ItemStep::Instruction(step) => Some((j, step)),
            _ => None,
        })
        .collect();
    // MID's caller, as its last step carries it: a forger ending MID at
    // the call (out of gas for a cold delegate) shows it too
    let resumed = steps.iter().find_map(|(_, st)| st.caller.clone().filter(|_| st.state.depth == 1)).unwrap();
    let mut calls = 0;
    for (j, step) in steps {
        if step.state.opcode != 0xf1 || step.state.depth != 1 {
            continue;
        }
        calls += 1;
        let agreed = t.states[j as usize];
        assert_eq!(step.journal.as_ref().unwrap().entries.len(), 3, "the caller, the called, the delegate");
        // junk first (no delegate named, so none carried), the real
        // designation second (revm still finds the called account's code)
        for codes in [vec![vec![0x00], designation.clone()], vec![vec![0x00]], vec![]] {
            let mut forged = step.clone();
            forged.caller = Some(resumed.clone());
            let journal = forged.journal.as_mut().unwrap();
            journal.entries.truncate(2);
            journal.codes = codes;
            let v = verify_item_step(&ItemStep::Instruction(forged), &agreed, &env);
            assert!(refused(v.clone()), "{v:?}");
        }
    }
    assert_eq!(calls, 1);
}

/// A creator whose nonce is at its limit: revm's create "returns" at once
/// with no address, so zero is pushed; level 2 agrees.
#[test]
fn a_create_from_a_nonce_at_its_limit_pushes_zero() {
    use prover::{AccountState, StateKey};
    let code = vec![0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0xf0, 0x60, 0x01, 0x55, 0x00];
    let s = AuthState::in_memory();
    let mut c = prover::system_accounts();
    let funded = AccountState { nonce: 0, balance: U256::from(10u128.pow(24)), ..Default::default() };
    c.insert(StateKey::Account(signer(0).address()), Some(funded.encode()));
    let code_hash = alloy_primitives::keccak256(&code);
    let at_limit = AccountState { nonce: u64::MAX, balance: U256::ZERO, code_hash };
    c.insert(StateKey::Account(TARGET), Some(at_limit.encode()));
    c.insert(StateKey::Code(code_hash), Some(code));
    s.commit(0, &c).unwrap();
    walk(&s, &tx_to(TARGET, 0, vec![]));
}

/// Code ending inside a PUSH's data (a PUSH32 with one byte left): revm
/// reads zeros past the end and then runs STOP with pc past the code's
/// length; level 2 walks it to level 1's end (a public state test,
/// `stRandom/randomStatetest312`, found the verifier refusing that pc).
#[test]
fn a_push_cut_short_by_the_codes_end_runs_stop_at_level_two() {
    for code in [vec![0x60, 0x01, 0x7f, 0xaa], vec![0x60, 0x01, 0x60], vec![0x7b, 0x55]] {
        let s = state(&[(OTHER, code.clone(), vec![])]);
        let (_, n) = walk(&s, &tx_to(OTHER, 0, vec![]));
        assert!(n >= 2, "{code:?}: the PUSHes and the STOP past the end: {n}");
    }
}

/// Opcodes revm knows from forks after Osaka (SLOTNUM, DUPN, SWAPN,
/// EXCHANGE) halt on a shard as undefined ones do, and level 2 walks
/// them (the public `stBadOpcode/opc4BDiffPlaces` found SLOTNUM uncovered).
#[test]
fn opcodes_of_later_forks_halt_and_are_upheld_at_level_two() {
    for op in [0x4b, 0xe6, 0xe7, 0xe8] {
        let code = vec![0x60, 0x01, 0x60, 0x02, op, 0x00];
        let s = state(&[(OTHER, code, vec![])]);
        let (_, n) = walk(&s, &tx_to(OTHER, 0, vec![]));
        assert_eq!(n, 3, "{op:#x}: two pushes and the halt");
    }
}
