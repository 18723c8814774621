//! Long ranges at level 2 (`stf_version` 5): a KECCAK256, log or copy
//! longer than `SUB_STEP` runs as one step per part of it, and a callee's
//! long output reaches its caller's memory in sub-steps of the caller, so
//! such a transaction runs exactly as on Ethereum (the 128 KiB range rule
//! of version 4 is gone but for a precompile's input) and no step carries
//! more than a part of a range.

use alloy_primitives::{Address, Bytes, Log, TxKind, U256};
use bridge::game::StepVerdict;
use prover::SignedTx;
use prover::machine::{ItemStep, item_step, item_trace, trace_transaction};

use crate::machine::{Contract, TARGET, state};
use crate::machine_game::{first_disputed, liar, play, towards};
use crate::support::{params, sign_1559, signer};

const OTHER: Address = Address::repeat_byte(0xc1);
const SHA256: Address = Address::with_last_byte(2);
const RIPEMD160: Address = Address::with_last_byte(3);
const IDENTITY: Address = Address::with_last_byte(4);
const BN_ADD: Address = Address::with_last_byte(6);

/// PUSH4 `v`.
fn push(v: u32) -> Vec<u8> {
    [&[0x63u8][..], &v.to_be_bytes()].concat()
}

/// PUSH20 `a`.
fn push_address(a: Address) -> Vec<u8> {
    [&[0x73u8][..], a.as_slice()].concat()
}

/// `op` with its operands pushed (the last on top).
fn with(operands: &[u32], op: u8) -> Vec<u8> {
    let mut code: Vec<u8> = operands.iter().flat_map(|v| push(*v)).collect();
    code.push(op);
    code
}

/// KECCAK256 of `[offset, offset + len)`, then LOG0 of nothing with the
/// hash as LOG1's topic (so the receipt shows it).
fn hash_and_log(offset: u32, len: u32) -> Vec<u8> {
    let mut code = with(&[len, offset], 0x20);
    code.extend(with(&[0, 0], 0xa1));
    code
}

/// `code` padded past STOP with pattern bytes to `len` (data for
/// CODECOPY and EXTCODECOPY).
fn padded(mut code: Vec<u8>, len: usize) -> Vec<u8> {
    code.push(0x00);
    let start = code.len();
    code.extend((start..len).map(|i| (i * 31 + 7) as u8));
    code
}

/// `tx` over `contracts` on plain revm (Ethereum's EVM, no shard rule):
/// whether it succeeded, its gas and its logs.
fn on_ethereum(contracts: &[Contract], tx: &SignedTx) -> (bool, u64, Vec<Log>) {
    use revm::database::{CacheDB, EmptyDB};
    use revm::state::{AccountInfo, Bytecode};
    use revm::{ExecuteEvm, MainBuilder, MainContext};
    let mut db = CacheDB::new(EmptyDB::default());
    db.insert_account_info(
        signer(0).address(),
        AccountInfo { balance: U256::from(10u128.pow(24)), ..Default::default() },
    );
    for (address, code, _) in contracts {
        let code = Bytecode::new_raw(Bytes::from(code.clone()));
        db.insert_account_info(
            *address,
            AccountInfo { nonce: 1, code_hash: code.hash_slow(), code: Some(code), ..Default::default() },
        );
    }
    let p = params(1);
    let mut evm =
        revm::Context::mainnet().with_db(db).with_block(p.block_env()).with_cfg(p.cfg_env()).build_mainnet();
    let r = evm.transact(tx.tx_env()).unwrap().result;
    (r.is_success(), r.tx_gas_used(), r.logs().to_vec())
}

/// Runs `tx` over `contracts` at both levels: level 1 gives exactly plain
/// revm's result, gas and logs; every step of its level-2 trace is upheld
/// and the trace ends on level 1's `c_1`; returns its instruction count
/// and its largest instruction step's bytes.
fn as_on_ethereum(contracts: &[Contract], tx: &SignedTx) -> (u64, usize) {
    let s = state(contracts);
    let exec = crate::machine::level_one_run(&s, 0, tx);
    let receipt = &exec.outcomes[0].receipt;
    let (success, gas, logs) = on_ethereum(contracts, tx);
    assert_eq!((receipt.success, receipt.gas_used), (success, gas), "level 1 is Ethereum");
    assert_eq!(receipt.logs, logs, "with Ethereum's logs");
    let (_, n) = crate::machine_settle::walk(&s, tx);
    let head = item_trace(s.reader(0).unwrap(), &params(1), tx, &bridge::TraceState::start(), &[]).unwrap();
    let largest = (1..=n)
        .map(|j| item_step(s.reader(0).unwrap(), &params(1), tx, &bridge::TraceState::start(), j).unwrap())
        .filter(|step| matches!(step, ItemStep::Instruction(_)))
        .map(|step| bridge::Encode::encode(&step).len())
        .max()
        .unwrap_or(0);
    assert_eq!(head.instructions, n);
    (n, largest)
}

fn tx_to(to: Address, data: Vec<u8>, gas: u64) -> SignedTx {
    sign_1559(&signer(0), 0, TxKind::Call(to), U256::ZERO, Bytes::from(data), gas)
}

/// Long copies of every kind (CODECOPY, CALLDATACOPY, EXTCODECOPY, MCOPY
/// both ways over overlapping ranges), a 200,000-byte KECCAK256 and a
/// 150,000-byte LOG2, all at unaligned offsets: Ethereum's result, gas and
/// logs at level 1, every sub-step upheld at level 2, and no step carrying
/// more than a part of a range beside the code.
#[test]
fn long_ranges_run_in_sub_steps_exactly_as_on_ethereum() {
    let other = padded(vec![], 12_000);
    let mut code = Vec::new();
    code.extend(with(&[11_000, 0, 5], 0x39)); // CODECOPY 11,000 bytes of its code to 5
    code.extend(with(&[14_997, 3, 20_001], 0x37)); // CALLDATACOPY 14,997 to 20,001
    code.extend(with_ops(&[12_000, 2, 50_003])); // EXTCODECOPY 12,000 of OTHER's to 50,003
    code.extend(push_address(OTHER));
    code.push(0x3c);
    code.extend(with(&[30_000, 7, 10_003], 0x5e)); // MCOPY up over itself: back to front
    code.extend(with(&[25_000, 9_000, 2], 0x5e)); // MCOPY down over itself: front to back
    code.extend(hash_and_log(1, 200_000));
    code.extend(with(&[0xbeef, 0xcafe, 150_000, 3], 0xa2)); // LOG2 of 150,000 bytes
    let code = padded(code, 11_000);
    let calldata: Vec<u8> = (0..15_000u32).map(|i| (i * 13 + 1) as u8).collect();
    let contracts = [(TARGET, code, vec![]), (OTHER, other, vec![])];
    let tx = tx_to(TARGET, calldata, 2_000_000);
    let (n, largest) = as_on_ethereum(&contracts, &tx);
    // 3 + 4 + 3 + 7 + 6 + 46 + 35 parts where 7 instructions would be one
    // step each
    assert!(n > 100, "{n} steps");
    assert!(largest < 64 << 10, "the largest step is {largest} bytes");
}

/// EXTCODECOPY's operands: `with` with no op, then the address and 0x3c.
fn with_ops(operands: &[u32]) -> Vec<u8> {
    operands.iter().flat_map(|v| push(*v)).collect()
}

/// A callee's long output: copied into its caller's memory (160,000 bytes
/// returned into a 150,000-byte range) in sub-steps of the caller; the
/// same output by reference only (no range) and read in part by a long
/// RETURNDATACOPY; a revert's 9,000 bytes copied in. Ethereum's result at
/// level 1, every sub-step upheld at level 2.
#[test]
fn a_long_output_reaches_its_callers_memory_in_sub_steps() {
    // OTHER: CODECOPY its 10,000 bytes to 7, RETURN 160,000 from 0 (or,
    // with calldata, REVERT 9,000)
    let mut other = with(&[10_000, 0, 7], 0x39);
    other.extend([0x36, 0x60, 0x00, 0x14]); // CALLDATASIZE, PUSH1 0, EQ
    let jump_at = other.len() + 6;
    other.extend(push(jump_at as u32 + 11));
    other.push(0x57); // JUMPI to the RETURN
    other.extend(with(&[9_000, 1], 0xfd)); // REVERT
    assert_eq!(other.len(), jump_at + 11);
    other.push(0x5b);
    other.extend(with(&[160_000, 0], 0xf3)); // RETURN
    let other = padded(other, 10_000);
    // TARGET: CALL OTHER (no data) into [3, 150,003); hash it; CALL again
    // into nothing; RETURNDATACOPY 50,000 from 1,000 to 200,000; hash it;
    // CALL OTHER with a byte of data (it reverts) into [7, 9,007); hash it
    let call = |args: u32, ret_offset: u32, ret_len: u32| {
        let mut c = with_ops(&[ret_len, ret_offset, args, 0, 0]);
        c.extend(push_address(OTHER));
        c.extend([0x5a, 0xf1, 0x50]);
        c
    };
    let mut code = call(0, 3, 150_000);
    code.extend(hash_and_log(3, 150_000));
    code.extend(call(0, 0, 0));
    code.extend(with(&[50_000, 1_000, 200_000], 0x3e));
    code.extend(hash_and_log(200_000, 50_000));
    code.extend(call(1, 7, 9_000));
    code.extend(hash_and_log(7, 9_000));
    let contracts = [(TARGET, padded(code, 0), vec![]), (OTHER, other, vec![])];
    let tx = tx_to(TARGET, vec![], 3_000_000);
    let (_, largest) = as_on_ethereum(&contracts, &tx);
    assert!(largest < 64 << 10, "the largest step is {largest} bytes");
}

/// A KECCAK256 whose memory growth its gas cannot pay halts on its first
/// step, as on Ethereum; a long KECCAK256 in a frame with too little gas
/// for its words likewise.
#[test]
fn a_long_instruction_its_gas_cannot_pay_halts_on_its_first_step() {
    for (len, gas) in [(3_000_000u32, 1_000_000u64), (100_000, 40_000)] {
        let code = padded(hash_and_log(0, len), 0);
        let contracts = [(TARGET, code, vec![])];
        let tx = tx_to(TARGET, vec![], gas);
        let (success, ..) = on_ethereum(&contracts, &tx);
        assert!(!success, "{len} bytes on {gas} gas fail on Ethereum too");
        let (n, _) = as_on_ethereum(&contracts, &tx);
        assert_eq!(n, 3, "two pushes and the halting KECCAK256: no sub-steps");
    }
}

/// The rule left: a call to a precompile but SHA-256, RIPEMD-160 and
/// identity (here BN254's addition) with an input past 128 KiB halts (on
/// Ethereum it runs); the same input to a contract, or to identity, runs
/// as on Ethereum.
#[test]
fn only_other_precompiles_keep_the_range_rule() {
    let call = |to: Address| {
        let mut c = with_ops(&[32, 0, 140_000, 0]);
        c.extend(push_address(to));
        c.extend([0x5a, 0xfa, 0x60, 0x00, 0x55, 0x00]); // STATICCALL, SSTORE 0 := success
        c
    };
    let contracts = [(TARGET, call(OTHER), vec![]), (OTHER, vec![0x00], vec![])];
    as_on_ethereum(&contracts, &tx_to(TARGET, vec![], 1_000_000));
    as_on_ethereum(&[(TARGET, call(IDENTITY), vec![])], &tx_to(TARGET, vec![], 1_000_000));
    let contracts = [(TARGET, call(BN_ADD), vec![])];
    let tx = tx_to(TARGET, vec![], 1_000_000);
    let s = state(&contracts);
    let exec = crate::machine::level_one_run(&s, 0, &tx);
    assert!(on_ethereum(&contracts, &tx).0, "Ethereum runs it");
    let receipt = &exec.outcomes[0].receipt;
    assert!(!receipt.success, "the shard halts the call");
    assert_eq!(receipt.gas_used, 1_000_000, "a halt takes all the gas");
    crate::machine_settle::walk(&s, &tx);
}

/// In the game: a lie in the middle of a long KECCAK256 (its sponge), in
/// the middle of a long MCOPY and in the middle of a copy into a caller is
/// refuted by the sub-step there, and an honest defender a griefer drives
/// to the same sub-step wins with it.
#[test]
fn a_lie_inside_a_long_instruction_is_refuted_by_its_sub_step() {
    let mut other = with(&[20_000, 0], 0xf3); // RETURN 20,000 from 0
    other = padded(other, 0);
    let mut code = with(&[9_000, 0, 1], 0x39); // CODECOPY 9,000 of its own to 1
    code.extend(with(&[20_000, 1, 4_001], 0x5e)); // MCOPY 20,000 up by 4,000
    code.extend(hash_and_log(0, 40_000));
    code.extend(with_ops(&[20_000, 100, 0, 0, 0]));
    code.extend(push_address(OTHER));
    code.extend([0x5a, 0xf1, 0x50, 0x00]);
    let code = padded(code, 9_000);
    let s = state(&[(TARGET, code, vec![]), (OTHER, other, vec![])]);
    let tx = tx_to(TARGET, vec![], 1_000_000);
    let t = trace_transaction(s.reader(0).unwrap(), &params(1), &tx, &(0..500).collect::<Vec<_>>()).unwrap();
    let mid = |f: &dyn Fn(&prover::machine::MachineState) -> bool| {
        let at: Vec<usize> = (0..t.states.len()).filter(|j| f(&t.states[*j])).collect();
        assert!(at.len() >= 3, "a long instruction has sub-steps");
        at[at.len() / 2] as u64 + 1
    };
    use prover::machine::Partial;
    let keccak = mid(&|s| s.opcode == 0x20 && matches!(s.partial, Partial::Range { .. }));
    let mcopy = mid(&|s| s.opcode == 0x5e && matches!(s.partial, Partial::Range { .. }));
    let copy_in = mid(&|s| matches!(s.partial, Partial::CopyIn { .. }));
    for (name, at) in [("KECCAK256", keccak), ("MCOPY", mcopy), ("a copy into the caller", copy_in)] {
        let lied = play(&s, &tx, 4, &liar(at), &first_disputed);
        let ItemStep::Instruction(step) = &lied.step else { panic!("{name}: an instruction's step decides") };
        assert_ne!(step.state.partial, Partial::None, "{name}: a sub-step decides");
        let shown = prover::machine::step_name(&step.state, &step.top);
        assert!(shown.contains(", part ") && !shown.contains("part 1 of"), "{name}: {shown}");
        assert!(matches!(lied.verdict, StepVerdict::Refuted { .. }), "{name}: {:?}", lied.verdict);
        let honest = play(&s, &tx, 4, &|_, truth| truth, &towards(at));
        assert_eq!(honest.step, lied.step, "{name}: the griefer drove the game to the same step");
        assert_eq!(honest.verdict, StepVerdict::Upheld, "{name}");
    }
}

/// A call to `to` (gas `gas`, or all it may forward) over the input
/// `[1, 1 + len)` (its own code copied to 3, zeros past it) with its
/// output copied to `ret`; logs the call's success, the output's first
/// word, and for a long output range the hash of that range.
fn precompile_call(to: Address, len: u32, gas: Option<u32>, (ret_offset, ret_len): (u32, u32)) -> Vec<u8> {
    let mut c = with(&[9_000, 0, 3], 0x39);
    c.extend(with_ops(&[ret_len, ret_offset, len, 1]));
    c.extend(push_address(to));
    match gas {
        Some(g) => c.extend(push(g)),
        None => c.push(0x5a),
    }
    c.push(0xfa);
    c.extend(with(&[0, 0], 0xa1)); // LOG1 the success
    c.extend(with(&[ret_offset], 0x51));
    c.extend(with(&[0, 0], 0xa1)); // LOG1 the output's first word
    if ret_len > 32 && to == IDENTITY {
        c.extend(hash_and_log(ret_offset, ret_len));
    }
    padded(c, 9_000)
}

/// SHA-256, RIPEMD-160 and identity over inputs longer than a part (and
/// past 128 KiB): the input absorbed a part a sub-step (identity's into
/// its output's word tree), the call on the last, identity's long output
/// copied into the caller in sub-steps after it; the output, the gas and
/// the logs are Ethereum's, every sub-step is upheld and no step carries
/// more than a part of the input. The precompile charges for the input's
/// length without reading it: a call given exactly its price succeeds and
/// one given a unit less fails, as on Ethereum.
#[test]
fn a_long_precompile_input_is_absorbed_in_sub_steps() {
    let price = |to: Address, len: u32| {
        let words = len.div_ceil(32);
        match to {
            SHA256 => 60 + 12 * words,
            RIPEMD160 => 600 + 120 * words,
            _ => 15 + 3 * words,
        }
    };
    let mut cases = Vec::new();
    for to in [SHA256, RIPEMD160] {
        for len in [4_353u32, 20_000, 140_000] {
            cases.push((to, len, None, (0, 200_000)));
        }
        cases.push((to, 20_000, Some(price(to, 20_000)), (0, 32)));
        cases.push((to, 20_000, Some(price(to, 20_000) - 1), (0, 32)));
    }
    for len in [4_353u32, 20_000, 140_000] {
        cases.push((IDENTITY, len, None, (200_003, len)));
    }
    // output ranges: none, a word, a part, a part and a byte, two parts,
    // past the output; over the input itself, longer than a part
    for ret in [(7, 0), (7, 32), (7, 4_352), (7, 4_353), (7, 9_000), (200_000, 1_000_000), (100, 9_000)] {
        cases.push((IDENTITY, 20_000, None, ret));
    }
    cases.push((IDENTITY, 20_000, Some(price(IDENTITY, 20_000)), (7, 20_000)));
    cases.push((IDENTITY, 20_000, Some(price(IDENTITY, 20_000) - 1), (7, 20_000)));
    for (to, len, gas, ret) in cases {
        let contracts = [(TARGET, precompile_call(to, len, gas, ret), vec![])];
        let tx = tx_to(TARGET, vec![], 3_000_000);
        let name = format!("{to} over {len} bytes, gas {gas:?}, into {ret:?}");
        let (n, largest) = as_on_ethereum(&contracts, &tx);
        let parted = gas.is_none_or(|g| g == price(to, len));
        assert!(!parted || n > len as u64 / 4_352, "{name}: {n} steps");
        assert!(largest < 64 << 10, "{name}: the largest step is {largest} bytes");
    }
    // a call forwarding no gas: the precompile fails, paying nothing for
    // the words, so its input is never absorbed: one step, not 230
    for to in [SHA256, RIPEMD160, IDENTITY] {
        let mut starved = with_ops(&[32, 0, 1_000_000, 1]);
        starved.extend(push_address(to));
        // gas 0, STATICCALL, SSTORE 0 := its success, STOP
        starved.extend([0x60, 0x00, 0xfa, 0x60, 0x00, 0x55, 0x00]);
        let contracts = [(TARGET, starved.clone(), vec![])];
        let tx = tx_to(TARGET, vec![], 3_000_000);
        let (n, _) = as_on_ethereum(&contracts, &tx);
        assert!(n < 20, "{to}: a failed precompile's call is one step: {n} steps");
    }
}

/// In the game: a lie in the middle of a long SHA-256, RIPEMD-160 or
/// identity input, and in the copy of identity's long output into its
/// caller, is refuted by the sub-step there, and an honest defender a
/// griefer drives there wins with it.
#[test]
fn a_lie_inside_a_long_precompile_input_is_refuted_by_its_sub_step() {
    use prover::machine::Partial;
    for to in [SHA256, RIPEMD160, IDENTITY] {
        let s = state(&[(TARGET, precompile_call(to, 20_000, None, (25_000, 20_000)), vec![])]);
        let tx = tx_to(TARGET, vec![], 3_000_000);
        let t =
            trace_transaction(s.reader(0).unwrap(), &params(1), &tx, &(0..100).collect::<Vec<_>>()).unwrap();
        let at = |f: &dyn Fn(&Partial) -> bool| -> Vec<u64> {
            (0..t.states.len()).filter(|j| f(&t.states[*j].partial)).map(|j| j as u64 + 1).collect()
        };
        let absorbing = at(&|p| matches!(p, Partial::Digest { .. }));
        assert_eq!(absorbing.len(), 4, "{to}: 20,000 bytes: five sub-steps, four past the first");
        let mut lies = vec![absorbing[1], absorbing[3]];
        if to == IDENTITY {
            let copying = at(&|p| matches!(p, Partial::CopyIn { .. }));

            lies.push(copying[2]);
        }
        for at in lies {
            let lied = play(&s, &tx, 4, &liar(at), &first_disputed);
            assert!(matches!(lied.verdict, StepVerdict::Refuted { .. }), "{to} at {at}: {:?}", lied.verdict);
            let honest = play(&s, &tx, 4, &|_, truth| truth, &towards(at));
            assert_eq!(honest.step, lied.step);
            assert_eq!(honest.verdict, StepVerdict::Upheld, "{to} at {at}");
        }
    }
}

/// Ethereum's one exception to a revert: RIPEMD-160's account stays
/// touched (revm keeps its touch). It changes no state, and level 2
/// reverts that touch as any other: a frame that calls RIPEMD-160 and
/// reverts, a call to RIPEMD-160 too poor to run, and both nested under
/// a frame that succeeds each run as on Ethereum with every step upheld.
#[test]
fn a_reverted_touch_of_ripemd160_is_upheld_at_level_two() {
    // OTHER: STATICCALL RIPEMD-160 over 64 bytes (all the gas), then a
    // call to it with 10 gas (it fails), then REVERT
    let mut other = with_ops(&[32, 0, 64, 0]);
    other.extend(push_address(RIPEMD160));
    other.extend([0x5a, 0xfa, 0x50]);
    other.extend(with_ops(&[32, 0, 64, 0]));
    other.extend(push_address(RIPEMD160));
    other.extend(push(10));
    other.extend([0xfa, 0x50]);
    other.extend(with(&[0, 0], 0xfd));
    // TARGET: CALL OTHER, SSTORE 0 := its success, then the same poor
    // call to RIPEMD-160 itself
    let mut code = with_ops(&[0, 0, 0, 0, 0]);
    code.extend(push_address(OTHER));
    code.extend([0x5a, 0xf1, 0x60, 0x00, 0x55]);
    code.extend(with_ops(&[32, 0, 64, 0]));
    code.extend(push_address(RIPEMD160));
    code.extend(push(10));
    code.extend([0xfa, 0x60, 0x01, 0x55, 0x00]);
    let contracts = [(TARGET, code, vec![]), (OTHER, other, vec![])];
    as_on_ethereum(&contracts, &tx_to(TARGET, vec![], 1_000_000));
}

/// TARGET's code that copies `init` (placed after it) to memory, CREATEs
/// with it and stores the address made (zero if the create failed).
fn creating(init: &[u8]) -> Vec<u8> {
    let len = init.len() as u32;
    // CODECOPY len from 36 to 0; CREATE(0, 0, len); SSTORE 0; STOP
    let mut c = with(&[len, 36, 0], 0x39);
    c.extend(with(&[len, 0, 0], 0xf0));
    c.extend([0x60, 0x00, 0x55, 0x00]);
    assert_eq!(c.len(), 36);
    c.extend_from_slice(init);
    c
}

/// RIPEMD-160's kept touch in every kind of failed frame: a call with
/// value to it, a SELFDESTRUCT paying it, init code calling it, each in a
/// frame that reverts; a failed frame calling it after it was touched
/// (its touch stays); identity over a long input from init code. Each runs
/// as on Ethereum with every level-2 step upheld.
#[test]
fn ripemd160_touched_in_every_kind_of_failed_frame_is_upheld() {
    const MID: Address = Address::repeat_byte(0xc2);
    const SD: Address = Address::repeat_byte(0xc3);
    let ripemd_call = |value: u32| {
        let mut c = with_ops(&[32, 0, 64, 0, value]);
        c.extend(push_address(RIPEMD160));
        c.extend([0x5a, 0xf1, 0x50]);
        c
    };
    let call = |to: Address, value: u32| {
        let mut c = with_ops(&[0, 0, 0, 0, value]);
        c.extend(push_address(to));
        c.extend([0x5a, 0xf1, 0x50]);
        c
    };
    let reverting = |mut c: Vec<u8>| {
        c.extend(with(&[0, 0], 0xfd));
        c
    };
    let with_value = |to: Address, data: Vec<u8>| {
        sign_1559(&signer(0), 0, TxKind::Call(to), U256::from(100), Bytes::from(data), 3_000_000)
    };
    // a call with value to RIPEMD-160 in a frame that reverts
    let mut target = call(OTHER, 5);
    target.push(0x00);
    let contracts = [(TARGET, target, vec![]), (OTHER, reverting(ripemd_call(1)), vec![])];
    as_on_ethereum(&contracts, &with_value(TARGET, vec![]));
    // a SELFDESTRUCT paying RIPEMD-160 in a frame whose parent reverts
    let mut target = call(MID, 5);
    target.push(0x00);
    let mut sd = push_address(RIPEMD160);
    sd.push(0xff);
    let contracts = [(TARGET, target, vec![]), (MID, reverting(call(SD, 3)), vec![]), (SD, sd, vec![])];
    as_on_ethereum(&contracts, &with_value(TARGET, vec![]));
    // init code calling RIPEMD-160, then reverting
    let contracts = [(TARGET, creating(&reverting(ripemd_call(0))), vec![])];
    as_on_ethereum(&contracts, &tx_to(TARGET, vec![], 3_000_000));
    // RIPEMD-160 touched first, then a frame calling it fails
    let mut target = ripemd_call(0);
    target.extend(call(OTHER, 0));
    target.push(0x00);
    let contracts = [(TARGET, target, vec![]), (OTHER, reverting(ripemd_call(0)), vec![])];
    as_on_ethereum(&contracts, &tx_to(TARGET, vec![], 3_000_000));
    // identity over 20,000 bytes into 9,000 from init code, which returns
    // nothing
    let mut init = with_ops(&[9_000, 0, 20_000, 1]);
    init.extend(push_address(IDENTITY));
    init.extend([0x5a, 0xfa, 0x50]);
    init.extend(hash_and_log(0, 9_000));
    init.push(0x00);
    let contracts = [(TARGET, creating(&init), vec![])];
    let (n, largest) = as_on_ethereum(&contracts, &tx_to(TARGET, vec![], 3_000_000));
    assert!(n > 7, "identity's input and output in sub-steps: {n} steps");
    assert!(largest < 64 << 10, "the largest step is {largest} bytes");
}

/// A peer's bytes for a precompile input's partial state: a well-formed
/// one reads back; identity's tree with more or fewer nodes than its count
/// names, a count past the tree, an unknown state kind, or bytes cut
/// short are refused, and none is read past what the count allows.
#[test]
fn a_tampered_precompile_input_state_is_refused() {
    use bridge::{Hash, decode_exact};
    use prover::machine::{DigestState, Frontier, Partial};
    let mut tree = Frontier::default();
    for w in 0..272u32 {
        tree.push(&[w as u8; 32]).unwrap();
    }
    let good = Partial::Digest { done: 8_704, state: DigestState::Identity(tree) };
    let wire = good.to_bytes();
    assert_eq!(decode_exact::<Partial>(&wire).unwrap(), good);
    // tag 3, done, kind 2 (identity), count, then the nodes
    let with = |count: u64, nodes: usize| {
        let mut b = vec![3u8];
        b.extend(8_704u64.to_be_bytes());
        b.push(2);
        b.extend(count.to_be_bytes());
        for _ in 0..nodes {
            b.extend(Hash([7; 32]).0);
        }
        b
    };
    // 272 = 0b1_0001_0000: two nodes
    assert!(decode_exact::<Partial>(&with(272, 2)).is_ok());
    assert!(decode_exact::<Partial>(&with(272, 3)).is_err(), "a node too many");
    assert!(decode_exact::<Partial>(&with(272, 1)).is_err(), "a node short");
    assert!(decode_exact::<Partial>(&with(u64::MAX, 32)).is_err(), "a count past the tree");
    assert!(decode_exact::<Partial>(&with(1 << 32, 1)).is_err(), "a count past the tree");
    let mut unknown = wire.clone();
    unknown[9] = 9;
    assert!(decode_exact::<Partial>(&unknown).is_err(), "an unknown state kind");
    assert!(decode_exact::<Partial>(&wire[..wire.len() - 1]).is_err(), "cut short");
}
