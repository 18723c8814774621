//! Level 2 in the game (issue 16): level 1 pins one transaction, the
//! defender descends into its trace, the game bisects it with the same
//! rules, and one instruction's step (or the prologue's, the epilogue's, a
//! commit's) decides. A liar's trace is the honest one up to the step it
//! lies at and its own after it; a griefer picks the sub-range it likes.

use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
use bridge::game::{Game, GameParams, Phase, StepVerdict};
use bridge::{Hash, TraceCommitment, TraceState};
use prover::game::{Instructions, MachineStep, StepContext, StepMachine};
use prover::machine::{ItemStep, item_step, item_trace, trace_transaction};
use prover::{AuthState, SignedTx};

use crate::support::{params, sign_1559, signer};

/// The item's trace at `points`, by the honest execution.
fn honest(s: &AuthState, tx: &prover::Item, points: &[u64]) -> Vec<Hash> {
    item_trace(s.reader(0).unwrap(), &params(1), tx, &TraceState::start(), points).unwrap().states
}

/// A challenger's pick: the points, what was posted, the truth there.
type Picker<'a> = &'a dyn Fn(&[u64], &[Hash], &[Hash]) -> usize;

/// How the game went: the step that decided it and the verdict.
pub(crate) struct Played {
    pub(crate) step: ItemStep,
    pub(crate) verdict: StepVerdict,
    pub(crate) rounds: u32,
    pub(crate) last: u64,
}

/// Plays level 2 of a one-item game: the defender claims `claimed` as
/// `c_1` with a trace of `last` steps whose state at `j` is
/// `defender(j, honest_j)`, the challenger picks by `pick(points, posted,
/// honest)`; at the step, the honest execution's step is shown.
pub(crate) fn play(
    s: &AuthState,
    tx: &SignedTx,
    k: u64,
    defender: &dyn Fn(u64, Hash) -> Hash,
    pick: Picker<'_>,
) -> Played {
    play_item(s, &prover::Item::Tx(tx.clone()), k, defender, pick)
}

/// [`play`] over any item (a transaction or a call message).
pub(crate) fn play_item(
    s: &AuthState,
    tx: &prover::Item,
    k: u64,
    defender: &dyn Fn(u64, Hash) -> Hash,
    pick: Picker<'_>,
) -> Played {
    let pre = TraceCommitment::start(s.root(0).unwrap());
    let head = item_trace(s.reader(0).unwrap(), &params(1), tx, &TraceState::start(), &[]).unwrap();
    let last = head.last;
    let claimed = defender(last, head.end.hash());
    let mut g = Game::open(GameParams { k, clock_slots: 100 }, 1, pre.hash(), claimed, 0);
    assert_eq!(g.phase, Phase::Step, "level 1 pinned the one item");
    g.descend(tx.item_hash(), last, 1).unwrap();
    assert_eq!(
        (g.level(), g.lo, g.hi, g.lo_commit),
        (2, 0, last, bridge::item_start(&pre.hash(), &tx.item_hash()))
    );
    let mut slot = 2;
    while g.phase == Phase::Bisect {
        let points = g.points();
        let truth = honest(s, tx, &points);
        let posted: Vec<Hash> = points.iter().zip(&truth).map(|(p, h)| defender(*p, *h)).collect();
        g.bisect(posted.clone(), slot).unwrap();
        g.pick(pick(&points, &posted, &truth), slot + 1).unwrap();
        slot += 2;
    }
    assert_eq!(g.phase, Phase::Step);
    assert_eq!(g.hi, g.lo + 1);
    let step = item_step(s.reader(0).unwrap(), &params(1), tx, &TraceState::start(), g.lo).unwrap();
    let shown = MachineStep { index: g.lo, pre, item: tx.clone(), step: step.clone() };
    let wire = shown.encode();
    let prover::game::AnyStep::Machine(decoded) = prover::game::AnyStep::decode(&wire).unwrap() else {
        panic!("a level-2 step decodes as one")
    };
    assert_eq!(*decoded, shown);
    let p = params(1);
    let ctx = StepContext { params: &p, items_root: &Hash::ZERO, block_hash: &|_| None };
    let verdict = Instructions::verify(&ctx, &g, &decoded);
    Played { step, verdict, rounds: g.rounds, last }
}

/// A liar that tells the truth up to `T_at` and lies from `T_{at+1}` on.
pub(crate) fn liar(at: u64) -> impl Fn(u64, Hash) -> Hash {
    move |j, truth| if j <= at { truth } else { Hash::of(&[b"a lie".as_slice(), &j.to_be_bytes()].concat()) }
}

/// The honest challenger picks the first sub-range whose end it disputes.
pub(crate) fn first_disputed(_: &[u64], posted: &[Hash], truth: &[Hash]) -> usize {
    posted.iter().zip(truth).position(|(p, t)| p != t).unwrap_or(posted.len())
}

/// A griefer that drives the game to the step ending at `T_{at+1}`.
pub(crate) fn towards(at: u64) -> impl Fn(&[u64], &[Hash], &[Hash]) -> usize {
    move |points, _, _| points.iter().position(|p| *p > at).unwrap_or(points.len())
}

const TARGET: Address = Address::repeat_byte(0xc0);

/// A lie in the middle of a long transaction: a loop of more than a million
/// instructions, then one SSTORE whose result the defender states wrongly.
/// Bisection pins that SSTORE, and its one-instruction step refutes the lie.
#[test]
fn a_wrong_sstore_after_a_million_instructions_is_refuted_by_its_step() {
    let mut code = crate::machine::looper(150_000);
    code.pop(); // the STOP
    code.extend([0x60, 0x2a, 0x60, 0x01, 0x55, 0x00]); // SSTORE 1 := 42, STOP
    let s = crate::machine::state(&[(TARGET, code, vec![])]);
    let tx = sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::ZERO, Bytes::new(), 5_000_000);
    let n = trace_transaction(s.reader(0).unwrap(), &params(1), &tx, &[]).unwrap().count;
    assert!(n >= 1_000_000, "{n} instructions");
    // the SSTORE is the second-to-last instruction: s_{n-2}, at T_{n-1}
    let at = n - 1;
    let played = play(&s, &tx, 16, &liar(at), &first_disputed);
    let ItemStep::Instruction(step) = &played.step else { panic!("an instruction's step decides") };
    assert_eq!(step.state.opcode, 0x55, "the SSTORE");
    assert!(matches!(played.verdict, StepVerdict::Refuted { .. }), "{:?}", played.verdict);
    assert!(played.last > n + 2, "instructions, the end, the epilogue and the commits");
    assert!(played.rounds <= Game::rounds_for(played.last, 16), "{} rounds", played.rounds);
    let size = bridge::Encode::encode(&played.step).len();
    assert!(size < 16 << 10, "the SSTORE's step is {size} bytes");
}

/// At every kind of boundary — a call into another contract, a revert in
/// a nested call, an out-of-gas halt, a precompile, the fee epilogue, a
/// journal entry's commit — a lie is refuted by the step there, and an
/// honest defender driven there by a griefer wins with the same step.
#[test]
fn a_lie_at_each_boundary_is_refuted_and_the_truth_upheld() {
    let s = crate::machine::state(&crate::machine_frames::contracts());
    let tx = crate::machine_frames::tx();
    let t =
        trace_transaction(s.reader(0).unwrap(), &params(1), &tx, &(0..5_000).collect::<Vec<_>>()).unwrap();
    let states = &t.states;
    let n = t.count;
    let burner = keccak256([0x5b, 0x60, 0x00, 0x56]);
    // T index of instruction j is j + 1
    let first = |f: &dyn Fn(usize) -> bool| (0..states.len()).find(|j| f(*j)).map(|j| j as u64 + 1).unwrap();
    let call = first(&|j| states[j].opcode == 0xf1 && states[j].depth == 0);
    let revert = first(&|j| states[j].opcode == 0xfd && states[j].depth == 1);
    let out_of_gas =
        first(&|j| states[j].code_hash == burner && states.get(j + 1).is_some_and(|next| next.depth == 0));
    let precompile =
        (0..states.len()).rev().find(|j| states[*j].opcode == 0xfa && states[*j].depth == 0).unwrap() as u64
            + 1;
    let epilogue = n + 1;
    let commit = n + 3;
    for (name, at, kind) in [
        ("a call", call, "instruction"),
        ("a nested revert", revert, "instruction"),
        ("out of gas", out_of_gas, "instruction"),
        ("a precompile", precompile, "instruction"),
        ("the fee epilogue", epilogue, "epilogue"),
        ("a commit", commit, "commit"),
    ] {
        let lied = play(&s, &tx, 8, &liar(at), &first_disputed);
        let shown = match &lied.step {
            ItemStep::Instruction(_) => "instruction",
            ItemStep::Epilogue(_) => "epilogue",
            ItemStep::Commit(_) => "commit",
            ItemStep::Prologue(_) => "prologue",
            ItemStep::Done(_) => "done",
        };
        assert_eq!(shown, kind, "{name}: the step at the lie");
        assert!(matches!(lied.verdict, StepVerdict::Refuted { .. }), "{name}: {:?}", lied.verdict);
        let honest = play(&s, &tx, 8, &|_, truth| truth, &towards(at));
        assert_eq!(honest.step, lied.step, "{name}: the griefer drove the game to the same step");
        assert_eq!(honest.verdict, StepVerdict::Upheld, "{name}");
    }
}

/// `n` rounds of `body` (which must leave the stack as it found it, the
/// counter on top): PUSH2 n; JUMPDEST; body; PUSH1 1; SWAP1; SUB; DUP1;
/// PUSH1 3; JUMPI; STOP.
pub(crate) fn repeat(n: u16, body: &[u8]) -> Vec<u8> {
    let n = n.to_be_bytes();
    let mut c = vec![0x61, n[0], n[1], 0x5b];
    c.extend_from_slice(body);
    c.extend([0x60, 0x01, 0x90, 0x03, 0x80, 0x60, 0x03, 0x57, 0x00]);
    c
}

/// What plain revm (Ethereum's Osaka rules, no shard) makes of `code` at
/// `TARGET` called by `tx`: success and gas used.
fn on_ethereum(code: &[u8], tx: &SignedTx) -> (bool, u64) {
    use revm::database::{CacheDB, EmptyDB};
    use revm::state::{AccountInfo, Bytecode};
    use revm::{ExecuteEvm, MainBuilder, MainContext};
    let mut db = CacheDB::new(EmptyDB::default());
    db.insert_account_info(
        signer(0).address(),
        AccountInfo { balance: U256::from(10u128.pow(24)), ..Default::default() },
    );
    let code = Bytecode::new_raw(Bytes::from(code.to_vec()));
    db.insert_account_info(
        TARGET,
        AccountInfo { nonce: 1, code_hash: code.hash_slow(), code: Some(code), ..Default::default() },
    );
    let p = params(1);
    let mut evm =
        revm::Context::mainnet().with_db(db).with_block(p.block_env()).with_cfg(p.cfg_env()).build_mainnet();
    let r = evm.transact(tx.tx_env()).unwrap().result;
    (r.is_success(), r.tx_gas_used())
}

/// The issue's large transactions: 1 wei to each of 200 fresh accounts, an
/// ERC-20-style batch (a balance slot written and a Transfer log for each
/// of 200 recipients), 300 fresh storage slots. Each succeeds in one
/// transaction with the gas plain revm (Ethereum) charges, its level-2
/// trace ends on level 1's `c_1`, and a lie in the middle of the
/// instructions, at the epilogue and at the last commit is refuted while
/// the honest defender driven to the same step is upheld.
#[test]
fn the_large_transactions_of_the_issue_are_decided_at_level_two() {
    // CALL(gas, 0x10000 + i, 1 wei, no data): PUSH1 0 x4, PUSH1 1,
    // DUP6 (the counter), PUSH3 0x010000, ADD, GAS, CALL, POP
    let payout = repeat(
        200,
        &[
            0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x01, 0x85, 0x62, 0x01, 0x00, 0x00, 0x01,
            0x5a, 0xf1, 0x50,
        ],
    );
    // balanceOf[i] := 7 at keccak(i . 0), then LOG3(Transfer, from 1, to i)
    let transfer_topic = keccak256(b"Transfer(address,address,uint256)");
    let mut token = vec![
        0x80, 0x60, 0x00, 0x52, // MSTORE i at 0
        0x60, 0x00, 0x60, 0x20, 0x52, // MSTORE 0 at 32
        0x60, 0x07, 0x60, 0x40, 0x60, 0x00, 0x20, 0x55, // SSTORE keccak(0..64) := 7
        0x60, 0x07, 0x60, 0x40, 0x52, // the value at 64
        0x80, 0x60, 0x01, 0x7f, // to = i, from = 1, the topic
    ];
    token.extend_from_slice(transfer_topic.as_slice());
    token.extend([0x60, 0x20, 0x60, 0x40, 0xa3]); // LOG3 of the value
    let token = repeat(200, &token);
    let slots = repeat(300, &[0x80, 0x80, 0x55]);
    for (name, code, value) in
        [("payout", payout, 1_000u64), ("token batch", token, 0), ("300 slots", slots, 0)]
    {
        let s = crate::machine::state(&[(TARGET, code.clone(), vec![])]);
        let tx = sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::from(value), Bytes::new(), 12_000_000);
        let exec = crate::machine::level_one_run(&s, 0, &tx);
        let receipt = &exec.outcomes[0].receipt;
        assert!(receipt.success, "{name}: {receipt:?}");
        assert_eq!((receipt.success, receipt.gas_used), on_ethereum(&code, &tx), "{name}: Ethereum's gas");
        let t = item_trace(s.reader(0).unwrap(), &params(1), &tx, &TraceState::start(), &[]).unwrap();
        assert_eq!(t.end, exec.trace(&s, 0).unwrap()[0], "{name}: level 2 ends on level 1's c_1");
        let entries = t.last - t.instructions - 2;
        assert!(entries >= 200, "{name}: {entries} journal entries");
        for (at, kind) in
            [(t.instructions / 2, "instruction"), (t.instructions + 1, "epilogue"), (t.last - 1, "commit")]
        {
            let lied = play(&s, &tx, 16, &liar(at), &first_disputed);
            let shown = match &lied.step {
                ItemStep::Instruction(_) => "instruction",
                ItemStep::Epilogue(_) => "epilogue",
                ItemStep::Commit(_) => "commit",
                _ => "other",
            };
            assert_eq!(shown, kind, "{name}: the step at {at}");
            assert!(
                matches!(lied.verdict, StepVerdict::Refuted { .. }),
                "{name} at {at}: {:?}",
                lied.verdict
            );
            let honest = play(&s, &tx, 16, &|_, truth| truth, &towards(at));
            assert_eq!(honest.verdict, StepVerdict::Upheld, "{name} at {at}");
        }
    }
}

/// A level-2 step off the wire: a length past a transaction's limit is
/// refused before anything is read or allocated, and a truncated, padded or
/// re-tagged step does not decode.
#[test]
fn a_tampered_level_two_step_does_not_decode() {
    use prover::game::AnyStep;
    let s = crate::machine::state(&[(TARGET, vec![0x60, 0x01, 0x60, 0x01, 0x55, 0x00], vec![])]);
    let tx = sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::ZERO, Bytes::new(), 100_000);
    let pre = TraceCommitment::start(s.root(0).unwrap());
    let step = item_step(s.reader(0).unwrap(), &params(1), &tx, &TraceState::start(), 3).unwrap();
    let wire = MachineStep { index: 3, pre, item: prover::Item::Tx(tx.clone()), step }.encode();
    assert!(matches!(AnyStep::decode(&wire), Ok(AnyStep::Machine(_))));
    // the raw transaction's length sits after the index, the tag, c_lo
    // and the item's tag
    let at = 8 + 1 + bridge::Encode::encode(&pre).len() + 1;
    for len in [u32::MAX, prover::MAX_TX_BYTES as u32 + 1] {
        let mut long = wire.clone();
        long[at..at + 4].copy_from_slice(&len.to_be_bytes());
        assert!(
            matches!(AnyStep::decode(&long), Err(bridge::DecodeError::TooLong { what: "transaction", .. })),
            "a {len}-byte transaction"
        );
    }
    assert!(AnyStep::decode(&wire[..wire.len() - 1]).is_err(), "truncated");
    assert!(AnyStep::decode(&[wire.as_slice(), &[0]].concat()).is_err(), "padded");
    let mut retagged = wire.clone();
    retagged[at + 4 + tx.raw.len()] = 9; // the item step's kind
    assert!(AnyStep::decode(&retagged).is_err(), "an unknown step kind");
}

/// The boundaries this level came to cover: a CREATE, its init code's
/// deposit, a created account's code committed, and a contract's send
/// through the bridge. A lie at each is refuted by the step there, and an
/// honest defender driven there by a griefer wins with the same step.
#[test]
fn a_lie_at_a_create_a_deposit_a_code_commit_or_a_send_is_refuted_and_the_truth_upheld() {
    use alloy_sol_types::SolCall;
    // the factory: init code returning one byte of code (STOP) stored at
    // 0, CREATE of it; then a send through the bridge of its calldata
    let init = [0x60, 0x00, 0x60, 0x00, 0x53, 0x60, 0x01, 0x60, 0x00, 0xf3]; // MSTORE8 0 at 0, RETURN 1
    let mut word = [0u8; 32];
    word[..init.len()].copy_from_slice(&init);
    let mut code = vec![0x7f];
    code.extend(word);
    code.extend([0x60, 0x00, 0x52]); // MSTORE at 0
    code.extend([0x60, init.len() as u8, 0x60, 0x00, 0x60, 0x00, 0xf0, 0x50]); // CREATE, POP
    // CALLDATACOPY(0x100, 0, CALLDATASIZE); CALL(GAS, bridge, 0, 0x100, CALLDATASIZE, 0, 0)
    code.extend([0x36, 0x60, 0x00, 0x61, 0x01, 0x00, 0x37]);
    code.extend([0x60, 0x00, 0x60, 0x00, 0x36, 0x61, 0x01, 0x00, 0x60, 0x00, 0x73]);
    code.extend_from_slice(bridge::BRIDGE_ADDRESS.as_slice());
    code.extend([0x5a, 0xf1, 0x50, 0x00]);
    let s = crate::machine::state(&[(TARGET, code, vec![])]);
    let send = prover::IBridge::sendCall { dstShard: 1, to: Address::repeat_byte(0x44), data: Bytes::new() };
    let tx =
        sign_1559(&signer(0), 0, TxKind::Call(TARGET), U256::ZERO, Bytes::from(send.abi_encode()), 1_000_000);
    let all: Vec<u64> = (0..200).collect();
    let t = trace_transaction(s.reader(0).unwrap(), &params(1), &tx, &all).unwrap();
    let states = &t.states;
    let first = |f: &dyn Fn(usize) -> bool| (0..states.len()).find(|j| f(*j)).map(|j| j as u64 + 1).unwrap();
    let create = first(&|j| states[j].opcode == 0xf0);
    let deposit = first(&|j| states[j].opcode == 0xf3 && states[j].depth == 1);
    let sends = first(&|j| states[j].opcode == 0xf1 && states[j].depth == 0);
    // the commits: find the one storing the created code
    let head = item_trace(s.reader(0).unwrap(), &params(1), &tx, &TraceState::start(), &[]).unwrap();
    let code_commit = (head.instructions + 2..head.last)
        .find(|j| {
            matches!(
                item_step(s.reader(0).unwrap(), &params(1), &tx, &TraceState::start(), *j).unwrap(),
                ItemStep::Commit(c) if c.code.is_some()
            )
        })
        .expect("the created code is committed")
        + 1;
    for (name, at, kind) in [
        ("a create", create, "instruction"),
        ("a deposit", deposit, "instruction"),
        ("a send", sends, "instruction"),
        ("a code commit", code_commit, "commit"),
    ] {
        let lied = play(&s, &tx, 8, &liar(at), &first_disputed);
        let shown = match &lied.step {
            ItemStep::Instruction(_) => "instruction",
            ItemStep::Commit(_) => "commit",
            _ => "other",
        };
        assert_eq!(shown, kind, "{name}: the step at the lie");
        assert!(matches!(lied.verdict, StepVerdict::Refuted { .. }), "{name}: {:?}", lied.verdict);
        let honest = play(&s, &tx, 8, &|_, truth| truth, &towards(at));
        assert_eq!(honest.step, lied.step, "{name}: the griefer drove the game to the same step");
        assert_eq!(honest.verdict, StepVerdict::Upheld, "{name}");
    }
}
