//! `optishard-bench dispute`: the dispute game's figures.
//!
//! - rounds against `n` and `k`, played (a lie at a random position,
//!   bisected by the real game rules) and compared with ⌈log_k n⌉;
//! - the single step of an ETH transfer, an ERC-20 transfer and a
//!   cross-shard message delivery, each the middle item of a 200-item
//!   block: encoded step and witness bytes, and the referee's verification
//!   time (`prover::game::verify_step`: item proof, witness, re-execution);
//!   and a call loading 64 different 24 KiB contracts, whose whole-item
//!   step (1.5 MiB of code) no move carries: since `stf_version` 4 it
//!   succeeds and a dispute over it descends to level 2;
//! - on the deterministic tier, a wrong receipt whose block's messages
//!   were consumed on another shard: slots from the fraudulent header's
//!   inclusion to its invalidation, and from then until every affected
//!   shard's accepted head passed the discarded heights again (the cascade
//!   rebuilt).

use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes, TxKind, U256};
use anyhow::{Context, Result};
use bench::{Workload, params};
use bridge::game::{Game, GameParams, Phase, StepVerdict};
use bridge::{Hash, MerkleTree, Message, MessageKind, ShardId};
use prover::game::{Step, verify_step};
use prover::{AuthState, Execution, Item, Mode, execute_items, recover_all};
use serde_json::json;

/// Bisects `g` at its level until one step is left: the defender posts
/// `claim`, the challenger picks the first sub-range `truth` disputes.
fn bisect_to_step(g: &mut Game, claim: impl Fn(u64) -> Hash, truth: impl Fn(u64) -> Hash) {
    while matches!(g.phase, Phase::Bisect) {
        let pts = g.points();
        g.bisect(pts.iter().map(|p| claim(*p)).collect(), 0).expect("defender's turn");
        let j = pts.iter().position(|p| claim(*p) != truth(*p)).unwrap_or(pts.len());
        g.pick(j, 0).expect("challenger's turn");
    }
}

/// A trace whose `i`-th state is `i`'s hash (`tag`ged), and a defender's
/// that departs from it at `lie`.
fn traces(tag: &'static [u8], lie: u64) -> (impl Fn(u64) -> Hash, impl Fn(u64) -> Hash) {
    let truth = move |i: u64| Hash::of(&[&i.to_be_bytes()[..], tag].concat());
    let claim = move |i: u64| {
        if i >= lie { Hash::of(&[&i.to_be_bytes()[..], tag, b"lie"].concat()) } else { truth(i) }
    };
    (truth, claim)
}

/// Plays a game over `n` steps where the defender's trace departs from
/// the truth at `lie`; returns the rounds played.
fn play(n: u64, k: u64, lie: u64) -> u32 {
    let (truth, claim) = traces(b"c", lie);
    let mut g = Game::open(GameParams { k, clock_slots: 1_000 }, n, truth(0), claim(n), 0);
    bisect_to_step(&mut g, &claim, &truth);
    assert_eq!((g.lo + 1, g.hi), (lie, lie), "bisected to the first wrong step");
    g.rounds
}

/// Plays a two-level game: level 1 over `n` items with the defender's
/// trace departing at item `lie`, a descent into that item's trace of
/// `last` steps, departing at `lie2`; returns the rounds of both levels.
fn play_two(n: u64, last: u64, k: u64, lie: u64, lie2: u64) -> u32 {
    let (truth, claim) = traces(b"c", lie);
    let mut g = Game::open(GameParams { k, clock_slots: 1_000 }, n, truth(0), claim(n), 0);
    bisect_to_step(&mut g, &claim, &truth);
    g.descend(Hash::of(b"the item"), last, 0).expect("at level 1's step");
    let start = g.lo_commit;
    let (t2, c2) = traces(b"T", lie2);
    let truth2 = |j: u64| if j == 0 { start } else { t2(j) };
    let claim2 = |j: u64| if j == 0 { start } else { c2(j) };
    bisect_to_step(&mut g, claim2, truth2);
    assert_eq!((g.lo + 1, g.hi), (lie2, lie2), "bisected to the first wrong step of the item");
    g.rounds
}

/// One step's figures: the item at `index` of `exec` over `state` at `base`.
fn step_figures(
    name: &str,
    state: &AuthState,
    base: u64,
    exec: &Execution,
    index: usize,
    p: &prover::BlockParams,
    runs: u32,
) -> Result<serde_json::Value> {
    let leaves: Vec<Hash> = exec.items.iter().map(Item::item_hash).collect();
    let witness = prover::produce_witness(state, base, exec, index, &Default::default())?;
    let trace = exec.trace(state, base)?;
    let agreed =
        if index == 0 { bridge::TraceCommitment::start(state.root(base)?) } else { trace[index - 1] };
    let claimed = trace[index].hash();
    let step = Step {
        index: index as u64,
        item: exec.items[index].clone(),
        proof: MerkleTree::new(&leaves).proof(index).context("item proof")?,
        witness,
    };
    let encoded = step.encode();
    let decoded = Step::decode(&encoded)?;
    let items_root = exec.items_root();
    let mut times: Vec<Duration> = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let t = Instant::now();
        let v = verify_step(p, &items_root, &decoded, &agreed.hash(), &claimed, &|_| None);
        times.push(t.elapsed());
        anyhow::ensure!(v == StepVerdict::Upheld, "{name}: the honest step must be upheld, got {v:?}");
    }
    times.sort();
    let median = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    println!(
        "{name:<22} step {:>6} B, witness {:>6} B ({} proofs, {} code bytes); verify_step median {:>7.1} us, p99 {:>7.1} us",
        encoded.len(),
        step.witness.encoded_len(),
        step.witness.proofs.len(),
        step.witness.codes.iter().map(|c| c.len()).sum::<usize>(),
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
    Ok(json!({
        "item": name, "step_bytes": encoded.len(), "witness_bytes": step.witness.encoded_len(),
        "verify_us_median": median.as_secs_f64() * 1e6, "verify_us_p99": p99.as_secs_f64() * 1e6,
    }))
}

fn items(raws: &[Bytes]) -> Result<Vec<Item>> {
    Ok(recover_all(raws).into_iter().map(|r| r.map(Item::Tx)).collect::<Result<_, _>>()?)
}

/// Runs the figures; prints a table and one JSON line.
pub(crate) fn run() -> Result<()> {
    // rounds against n and k
    println!("rounds to one step (played, lie at a random position) vs ceil(log_k n):");
    let mut rounds = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for n in [16u64, 256, 4_096, 65_536, 1_000_000] {
        let mut line = format!("  n = {n:>9}:");
        for k in [2u64, 4, 8, 16] {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let lie = 1 + seed % n;
            let played = play(n, k, lie);
            let bound = Game::rounds_for(n, k);
            anyhow::ensure!(played <= bound, "n {n} k {k}: {played} rounds > {bound}");
            line.push_str(&format!("  k={k}: {played}/{bound}"));
            rounds.push(json!({"n": n, "k": k, "played": played, "bound": bound}));
        }
        println!("{line}");
    }

    // both levels: rounds = ceil(log_k n) + ceil(log_k L)
    println!("rounds to one instruction (two levels played) vs ceil(log_k n) + ceil(log_k L):");
    let mut two_levels = Vec::new();
    for n in [10u64, 100, 1_000, 10_000] {
        for last in [1u64 << 10, 1 << 16, 1 << 20, 1 << 24] {
            let mut line = format!("  n = {n:>6}, L = 2^{:>2}:", last.trailing_zeros());
            for k in [2u64, 8, 64] {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let (lie, lie2) = (1 + seed % n, 1 + (seed >> 20) % last);
                let played = play_two(n, last, k, lie, lie2);
                let bound = Game::rounds_for(n, k) + Game::rounds_for(last, k);
                anyhow::ensure!(played <= bound, "n {n} L {last} k {k}: {played} rounds > {bound}");
                line.push_str(&format!("  k={k}: {played}/{bound}"));
                two_levels.push(json!({"n": n, "last": last, "k": k, "played": played, "bound": bound}));
            }
            println!("{line}");
        }
    }

    // the single step of three kinds of item, each the middle of a 200-item block
    let w = Workload::new(31_337, 200);
    let mut steps = Vec::new();
    {
        let state = AuthState::in_memory();
        bench::fund(&state, &w.addresses())?;
        let raws: Vec<Bytes> = (0..200)
            .map(|i| {
                w.sign(i, 0, TxKind::Call(Address::repeat_byte(0x11)), U256::from(1), Bytes::new(), 21_000)
            })
            .collect();
        let exec = execute_items(state.reader(0)?, &params(1), items(&raws)?, Mode::Verify)?;
        steps.push(step_figures("ETH transfer", &state, 0, &exec, 100, &params(1), 500)?);
    }
    {
        let state = AuthState::in_memory();
        bench::fund(&state, &w.addresses())?;
        let deploy =
            w.sign(0, 0, TxKind::Create, U256::ZERO, bench::token_bin(U256::from(10u64.pow(24))), 2_000_000);
        let exec = execute_items(state.reader(0)?, &params(1), items(&[deploy])?, Mode::Verify)?;
        let token = exec.outcomes[0].receipt.contract_address.context("token deployed")?;
        state.commit(1, &exec.block_changes())?;
        let raws: Vec<Bytes> = (0..200u64)
            .map(|i| {
                let to = Address::repeat_byte(0x20 + (i % 50) as u8);
                bench::token_transfer_call(to, U256::from(5)).clone()
            })
            .enumerate()
            .map(|(i, call)| w.sign(0, 1 + i as u64, TxKind::Call(token), U256::ZERO, call, 100_000))
            .collect();
        let exec = execute_items(state.reader(1)?, &params(2), items(&raws)?, Mode::Verify)?;
        steps.push(step_figures("ERC-20 transfer", &state, 1, &exec, 100, &params(2), 500)?);
    }
    {
        let state = AuthState::in_memory();
        bench::fund(&state, &w.addresses())?;
        let mut p = params(1);
        p.shards = 2;
        let msgs: Vec<Item> = (0..200u64)
            .map(|nonce| {
                Item::Message(Message {
                    src: ShardId(1),
                    dst: ShardId(0),
                    nonce,
                    sender: Address::repeat_byte(0xab),
                    to: Address::repeat_byte(0x30 + (nonce % 50) as u8),
                    value: U256::from(1_000_000u64),
                    gas_limit: bridge::DEFAULT_MESSAGE_GAS,
                    data: vec![],
                    kind: MessageKind::Call,
                })
            })
            .collect();
        let exec = execute_items(state.reader(0)?, &p, msgs, Mode::Verify)?;
        steps.push(step_figures("cross-shard message", &state, 0, &exec, 100, &p, 500)?);
    }

    {
        // a call loading 64 different 24 KiB contracts (1.5 MiB of code):
        // it succeeds (no witness budget for transactions since stf v4),
        // and its whole-item step is more than a move carries
        let state = AuthState::in_memory();
        bench::fund(&state, &w.addresses())?;
        let mut c = prover::ChangeSet::new();
        let mut reader = Vec::new();
        for i in 0..64u64 {
            let target = Address::left_padding_from(&(0x1000 + i).to_be_bytes());
            let mut code = vec![0u8; 24_576];
            code[1..9].copy_from_slice(&i.to_be_bytes());
            deploy(&mut c, target, &code);
            reader.push(0x73); // PUSH20 target BALANCE POP
            reader.extend_from_slice(target.as_slice());
            reader.extend_from_slice(&[0x31, 0x50]);
        }
        reader.push(0x00);
        let reader_addr = Address::repeat_byte(0xaa);
        deploy(&mut c, reader_addr, &reader);
        state.commit(1, &c)?;
        let raws: Vec<Bytes> = (0..3)
            .map(|i| w.sign(i, 0, TxKind::Call(reader_addr), U256::ZERO, Bytes::new(), 500_000))
            .collect();
        let exec = execute_items(state.reader(1)?, &params(2), items(&raws)?, Mode::Verify)?;
        anyhow::ensure!(exec.outcomes[1].receipt.success, "the call loading 64 codes succeeds");
        steps.push(step_figures("call of 64 x 24 KiB codes", &state, 1, &exec, 1, &params(2), 500)?);
    }

    {
        // the worst compute-bound item: a transaction at the per-transaction
        // gas cap (2^24) spending it all in one BLAKE2F call (1 gas a
        // round), which the referee re-executes whole for one step
        let state = AuthState::in_memory();
        bench::fund(&state, &w.addresses())?;
        let gas = 1u64 << 24;
        // all the call may forward (63/64 of what is left after the
        // intrinsic cost and a few opcodes) goes to rounds
        let rounds = ((gas - 30_000) / 64 * 63 - 10_000) as u32;
        let mut input = rounds.to_be_bytes().to_vec();
        input.extend_from_slice(&[0u8; 64 + 128 + 16]);
        input.push(1);
        let mut caller = Vec::new();
        // CALLDATACOPY the 213-byte input, STATICCALL 0x09 with all gas
        caller.extend_from_slice(&[0x60, 213, 0x5f, 0x5f, 0x37]);
        caller.extend_from_slice(&[0x60, 64, 0x5f, 0x60, 213, 0x5f, 0x60, 0x09, 0x5a, 0xfa, 0x00]);
        let caller_addr = Address::repeat_byte(0xbb);
        let mut c = prover::ChangeSet::new();
        deploy(&mut c, caller_addr, &caller);
        state.commit(1, &c)?;
        let raws = vec![w.sign(0, 0, TxKind::Call(caller_addr), U256::ZERO, Bytes::from(input), gas)];
        let mut p = params(2);
        p.gas_limit = p.gas_limit.max(gas);
        let exec = execute_items(state.reader(1)?, &p, items(&raws)?, Mode::Verify)?;
        anyhow::ensure!(exec.outcomes[0].receipt.gas_used > gas / 2, "the rounds ran");
        steps.push(step_figures("BLAKE2F at the gas cap", &state, 1, &exec, 0, &p, 5)?);
    }

    let level2 = level2_round_figures(&w)?;

    // slots to invalidation and cascade rebuild, deterministic tier
    let cascade = cascade_figures()?;
    println!(
        "wrong receipt on shard 1 (window {} slots): invalidated {} slots after inclusion ({} rounds); cascade to {} shard(s); every affected shard past the discarded heights again {} slots later",
        cascade["window"],
        cascade["slots_to_invalidation"],
        cascade["rounds"],
        cascade["shards_reached"],
        cascade["slots_to_rebuild"]
    );
    println!(
        "{}",
        json!({"rounds": rounds, "two_levels": two_levels, "steps": steps, "level2": level2, "cascade": cascade})
    );
    Ok(())
}

/// The largest transaction: a loop at the 2^24 per-transaction gas cap,
/// over a state holding its contract and the workload's funded accounts.
fn largest_loop(w: &Workload) -> Result<(AuthState, prover::SignedTx, prover::BlockParams)> {
    let state = AuthState::in_memory();
    bench::fund(&state, &w.addresses())?;
    let gas = 1u64 << 24;
    // PUSH3 n; JUMPDEST; PUSH1 1; SWAP1; SUB; DUP1; PUSH1 4; JUMPI; STOP (26 gas a round)
    let n = ((gas - 30_000) / 26) as u32;
    let b = n.to_be_bytes();
    let code = vec![0x62, b[1], b[2], b[3], 0x5b, 0x60, 0x01, 0x90, 0x03, 0x80, 0x60, 0x04, 0x57, 0x00];
    let looper = Address::repeat_byte(0xcc);
    let mut c = prover::ChangeSet::new();
    deploy(&mut c, looper, &code);
    state.commit(1, &c)?;
    let raw = w.sign(0, 0, TxKind::Call(looper), U256::ZERO, Bytes::new(), gas);
    let tx = prover::SignedTx::decode(&raw).context("the transaction decodes")?;
    let mut p = params(2);
    p.gas_limit = p.gas_limit.max(gas);
    Ok((state, tx, p))
}

/// `optishard-bench replay`: the largest transaction run by the
/// state-transition function (no inspector) and replayed by level 2's
/// tracer counting its instructions, medians of 5 in one run, as a ratio.
pub(crate) fn replay_figures() -> Result<()> {
    let w = Workload::new(31_337, 4);
    let (state, tx, p) = largest_loop(&w)?;
    let (mut stf, mut traced, mut whole, mut round) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut count = 0;
    let pre = bridge::TraceState::start();
    for _ in 0..5 {
        let t = Instant::now();
        execute_items(state.reader(1)?, &p, vec![Item::Tx(tx.clone())], Mode::Verify)?;
        stf.push(t.elapsed());
        let t = Instant::now();
        count = prover::machine::trace_transaction(state.reader(1)?, &p, &tx, &[])?.count;
        traced.push(t.elapsed());
        let t = Instant::now();
        let last = prover::machine::item_trace(state.reader(1)?, &p, &tx, &pre, &[])?.last;
        whole.push(t.elapsed());
        let at: Vec<u64> = (1..64).map(|i| i * last / 64).collect();
        let t = Instant::now();
        prover::machine::item_trace(state.reader(1)?, &p, &tx, &pre, &at)?;
        round.push(t.elapsed());
    }
    round.sort();
    stf.sort();
    traced.sort();
    whole.sort();
    let (a, b, c) = (stf[2].as_secs_f64() * 1e3, traced[2].as_secs_f64() * 1e3, whole[2].as_secs_f64() * 1e3);
    println!(
        "the largest transaction ({count} instructions): state-transition function {a:.1} ms, level 2's counting replay {b:.1} ms ({:.2}x), its whole trace (epilogue and commits too) {c:.1} ms ({:.2}x), a round of 63 states over it {:.1} ms (medians of 5)",
        b / a,
        c / a,
        round[2].as_secs_f64() * 1e3
    );
    println!(
        "{}",
        json!({"instructions": count, "stf_ms": a, "replay_ms": b, "item_trace_ms": c, "round_ms": round[2].as_secs_f64() * 1e3, "ratio": b / a})
    );
    Ok(())
}

/// Level 2 (issue 16): what an honest agent spends answering one
/// round of an instruction bisection over the largest transaction (a loop
/// at the 2^24 per-transaction gas cap): a replay that hashes the `k - 1`
/// requested machine states (k = 64), against a replay that only counts.
fn level2_round_figures(w: &Workload) -> Result<serde_json::Value> {
    let (state, tx, p) = largest_loop(w)?;
    let count = prover::machine::trace_transaction(state.reader(1)?, &p, &tx, &[])?.count;
    let at: Vec<u64> = (1..64).map(|i| i * count / 64).collect();
    let (mut counting, mut answering) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let t = Instant::now();
        prover::machine::trace_transaction(state.reader(1)?, &p, &tx, &[])?;
        counting.push(t.elapsed());
        let t = Instant::now();
        let round = prover::machine::trace_transaction(state.reader(1)?, &p, &tx, &at)?;
        answering.push(t.elapsed());
        anyhow::ensure!(round.states.len() == 63, "63 states asked");
    }
    // the whole item trace (instructions, epilogue, commits): a round of
    // level 2 as the agent answers it
    let pre = bridge::TraceState::start();
    let last = prover::machine::item_trace(state.reader(1)?, &p, &tx, &pre, &[])?.last;
    let item_at: Vec<u64> = (1..64).map(|i| i * last / 64).collect();
    let mut item_round = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let round = prover::machine::item_trace(state.reader(1)?, &p, &tx, &pre, &item_at)?;
        item_round.push(t.elapsed());
        anyhow::ensure!(round.states.len() == 63, "63 states asked");
    }
    item_round.sort();
    println!(
        "level 2: the item's whole trace has {last} steps; answering a round over it (63 states) {:.0} ms (median of 3)",
        item_round[1].as_secs_f64() * 1e3
    );
    counting.sort();
    answering.sort();
    let rounds = Game::rounds_for(count, 64);
    println!(
        "level 2: a loop at the 2^24 gas cap runs {count} instructions ({rounds} rounds at k = 64); replay counting only {:.0} ms, answering a round (63 states) {:.0} ms (medians of 3)",
        counting[1].as_secs_f64() * 1e3,
        answering[1].as_secs_f64() * 1e3
    );
    let steps = vec![
        // SUB in the loop, the contract padded to the 24 KiB code limit
        instruction_step_figure(
            w,
            "stack (SUB), 24 KiB code",
            &code_padded(&[0x60, 0x05, 0x60, 0x03, 0x03, 0x00]),
            &[],
            2,
            &Extra::default(),
        )?,
        // an unaligned MSTORE far out, expanding memory
        instruction_step_figure(
            w,
            "memory (MSTORE, unaligned, expanding)",
            &code_padded(&[0x60, 0x2a, 0x61, 0x10, 0x01, 0x52, 0x00]),
            &[],
            2,
            &Extra::default(),
        )?,
        // CALLDATALOAD of a transaction with ~120 KiB of calldata
        instruction_step_figure(
            w,
            "input (CALLDATALOAD, 120 KiB calldata)",
            &code_padded(&[0x60, 0x04, 0x35, 0x00]),
            &vec![7u8; 120 << 10],
            1,
            &Extra::default(),
        )?,
        // SSTORE of a cold slot of a contract with 10^4 slots: the slot's
        // value before the item proven against the state root
        instruction_step_figure(
            w,
            "state (SSTORE, cold slot of 10^4)",
            &code_padded(&[0x60, 0x01, 0x61, 0x27, 0x0f, 0x55, 0x00]),
            &[],
            2,
            &Extra { slots: 10_000, other: None },
        )?,
        // EXTCODESIZE of another 24 KiB contract: both codes ride in the step
        instruction_step_figure(
            w,
            "account (EXTCODESIZE, another 24 KiB code)",
            &code_padded(&[
                0x73, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce,
                0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0x3b, 0x00,
            ]),
            &[],
            1,
            &Extra { slots: 0, other: Some(code_padded(&[0x00])) },
        )?,
        // LOG4 of 4 KiB (the longest a step carries), unaligned, expanding
        instruction_step_figure(
            w,
            "log (LOG4, 4 KiB data, unaligned)",
            &code_padded(&[0x60, 1, 0x60, 2, 0x60, 3, 0x60, 4, 0x61, 0x10, 0x00, 0x60, 0x07, 0xa4, 0x00]),
            &[],
            6,
            &Extra::default(),
        )?,
        // MCOPY of 4 KiB between unaligned ranges, expanding
        instruction_step_figure(
            w,
            "copy (MCOPY, 4 KiB, unaligned)",
            &code_padded(&[0x61, 0x10, 0x00, 0x61, 0x00, 0x11, 0x61, 0x20, 0x05, 0x5e, 0x00]),
            &[],
            3,
            &Extra::default(),
        )?,
        // KECCAK256 of 4 KiB, unaligned
        instruction_step_figure(
            w,
            "hash (KECCAK256, 4 KiB, unaligned)",
            &code_padded(&[0x61, 0x10, 0x00, 0x60, 0x07, 0x20, 0x00]),
            &[],
            2,
            &Extra::default(),
        )?,
        // EXTCODECOPY of 4 KiB of another 24 KiB contract into memory: both
        // codes and the memory words ride in the step
        instruction_step_figure(
            w,
            "account copy (EXTCODECOPY 4 KiB of another 24 KiB code)",
            &code_padded(&[
                0x61, 0x10, 0x00, 0x60, 0x07, 0x60, 0x03, 0x73, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce,
                0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0x3c, 0x00,
            ]),
            &[],
            4,
            &Extra { slots: 0, other: Some(code_padded(&[0x00])) },
        )?,
        // a long range runs in sub-steps of `SUB_STEP` bytes (4,352): the
        // first pays and grows memory (revm runs the whole instruction),
        // each next one moves or absorbs one part
        instruction_step_figure(
            w,
            "hash (KECCAK256 of 1 MiB): first sub-step",
            &code_padded(&[0x62, 0x10, 0x00, 0x00, 0x60, 0x07, 0x20, 0x00]),
            &[],
            2,
            &Extra::default(),
        )?,
        instruction_step_figure(
            w,
            "hash (KECCAK256 of 1 MiB): a middle sub-step",
            &code_padded(&[0x62, 0x10, 0x00, 0x00, 0x60, 0x07, 0x20, 0x00]),
            &[],
            2 + 120,
            &Extra::default(),
        )?,
        // MCOPY of 512 KiB up over itself (back to front), unaligned
        instruction_step_figure(
            w,
            "copy (MCOPY 512 KiB): first sub-step",
            &code_padded(&[0x62, 0x08, 0x00, 0x00, 0x60, 0x11, 0x62, 0x08, 0x00, 0x05, 0x5e, 0x00]),
            &[],
            3,
            &Extra::default(),
        )?,
        instruction_step_figure(
            w,
            "copy (MCOPY 512 KiB): a middle sub-step",
            &code_padded(&[0x62, 0x08, 0x00, 0x00, 0x60, 0x11, 0x62, 0x08, 0x00, 0x05, 0x5e, 0x00]),
            &[],
            3 + 60,
            &Extra::default(),
        )?,
        // LOG0 of 512 KiB: its last sub-step hashes the log into the journal
        instruction_step_figure(
            w,
            "log (LOG0 of 512 KiB): last sub-step",
            &code_padded(&[0x62, 0x08, 0x00, 0x00, 0x60, 0x07, 0xa0, 0x00]),
            &[],
            2 + 120,
            &Extra::default(),
        )?,
        // a call whose callee returns 256 KiB into the caller's memory: the
        // copy runs in sub-steps of the caller after the return
        instruction_step_figure(
            w,
            "copy into a caller (256 KiB output): a middle sub-step",
            &code_padded(&[
                0x62, 0x04, 0x00, 0x00, 0x60, 0x07, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x73, 0xce, 0xce,
                0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce, 0xce,
                0xce, 0xce, 0xce, 0x5a, 0xf1, 0x00,
            ]),
            &[],
            11 + 30,
            &Extra { slots: 0, other: Some(code_padded(&[0x62, 0x04, 0x00, 0x00, 0x60, 0x00, 0xf3])) },
        )?,
        // identity of 1 MiB: its input absorbed a part a sub-step into its
        // output's word tree, the call on the last (the caller taking 32
        // bytes); of 512 KiB into a 512 KiB range, the output copied in
        // after the call a part a sub-step
        instruction_step_figure(
            w,
            "precompile (identity of 1 MiB): first sub-step",
            &code_padded(&identity_call(0x10_0000, 0x20)),
            &[],
            6,
            &Extra::default(),
        )?,
        instruction_step_figure(
            w,
            "precompile (identity of 1 MiB): a middle sub-step",
            &code_padded(&identity_call(0x10_0000, 0x20)),
            &[],
            6 + 120,
            &Extra::default(),
        )?,
        instruction_step_figure(
            w,
            "precompile (identity of 1 MiB): the call, last sub-step",
            &code_padded(&identity_call(0x10_0000, 0x20)),
            &[],
            6 + 240,
            &Extra::default(),
        )?,
        instruction_step_figure(
            w,
            "precompile (identity of 512 KiB): output copied in, middle",
            &code_padded(&identity_call(0x8_0000, 0x8_0000)),
            &[],
            6 + 121 + 60,
            &Extra::default(),
        )?,
        // RIPEMD-160 of 1 MiB, as SHA-256
        instruction_step_figure(
            w,
            "precompile (RIPEMD-160 of 1 MiB): a middle sub-step",
            &code_padded(&[
                0x60, 0x20, 0x60, 0x00, 0x62, 0x10, 0x00, 0x00, 0x60, 0x00, 0x60, 0x03, 0x5a, 0xfa, 0x00,
            ]),
            &[],
            6 + 120,
            &Extra::default(),
        )?,
        instruction_step_figure(
            w,
            "precompile (RIPEMD-160 of 1 MiB): the call, last sub-step",
            &code_padded(&[
                0x60, 0x20, 0x60, 0x00, 0x62, 0x10, 0x00, 0x00, 0x60, 0x00, 0x60, 0x03, 0x5a, 0xfa, 0x00,
            ]),
            &[],
            6 + 240,
            &Extra::default(),
        )?,
        // a precompile but those three runs on its whole input in one
        // step, its curve arithmetic and all: BN254's pairing
        instruction_step_figure(
            w,
            "precompile (BN254 pairing, 2 pairs)",
            &code_padded(&calldata_to_precompile(8)),
            &bn254_pairs(2),
            10,
            &Extra::default(),
        )?,
        instruction_step_figure(
            w,
            "precompile (BN254 pairing, 32 pairs)",
            &code_padded(&calldata_to_precompile(8)),
            &bn254_pairs(32),
            // its 6 KiB CALLDATACOPY takes two sub-steps
            11,
            &Extra::default(),
        )?,
        // SHA-256 of 1 MiB: its input absorbed a part a sub-step, the call
        // on the last
        instruction_step_figure(
            w,
            "precompile (SHA-256 of 1 MiB): a middle sub-step",
            &code_padded(&[
                0x60, 0x20, 0x60, 0x00, 0x62, 0x10, 0x00, 0x00, 0x60, 0x00, 0x60, 0x02, 0x5a, 0xfa, 0x00,
            ]),
            &[],
            6 + 120,
            &Extra::default(),
        )?,
        instruction_step_figure(
            w,
            "precompile (SHA-256 of 1 MiB): the call, last sub-step",
            &code_padded(&[
                0x60, 0x20, 0x60, 0x00, 0x62, 0x10, 0x00, 0x00, 0x60, 0x00, 0x60, 0x02, 0x5a, 0xfa, 0x00,
            ]),
            &[],
            6 + 240,
            &Extra::default(),
        )?,
        // CREATE2 of 48 KiB of init code (EIP-3860's limit) from a 24 KiB
        // contract: the init code's words and the creator's code ride in it
        instruction_step_figure(
            w,
            "create (CREATE2, 48 KiB init code)",
            &code_padded(&[0x60, 0x01, 0x61, 0xc0, 0x00, 0x60, 0x00, 0x60, 0x00, 0xf5, 0x00]),
            &[],
            4,
            &Extra::default(),
        )?,
        // a contract's send through the bridge precompile (its calldata
        // copied to memory, then CALL): the caller, the bridge, the channel
        instruction_step_figure(
            w,
            "bridge send (CALL to the precompile)",
            &code_padded(&bridge_sender()),
            &bridge_send_calldata(),
            11,
            &Extra::default(),
        )?,
    ];
    let tail = tail_step_figures(w)?;
    Ok(json!({
        "instructions": count, "rounds_k64": rounds, "item_trace_last": last,
        "answer_item_round_ms": item_round[1].as_secs_f64() * 1e3, "tail": tail,
        "replay_ms": counting[1].as_secs_f64() * 1e3, "answer_round_ms": answering[1].as_secs_f64() * 1e3,
        "instruction_steps": steps,
    }))
}

/// The item trace's last steps for a transaction writing 300 fresh slots
/// (a contract at the 24 KiB code limit): the epilogue's step and the
/// largest of its commit steps (the map holds every written slot), their
/// bytes and verification times.
fn tail_step_figures(w: &Workload) -> Result<serde_json::Value> {
    let state = AuthState::in_memory();
    bench::fund(&state, &w.addresses())?;
    let target = Address::repeat_byte(0xcd);
    // PUSH2 300; JUMPDEST; DUP1; DUP1; SSTORE; PUSH1 1; SWAP1; SUB; DUP1; PUSH1 3; JUMPI; STOP
    let code = code_padded(&[
        0x61, 0x01, 0x2c, 0x5b, 0x80, 0x80, 0x55, 0x60, 0x01, 0x90, 0x03, 0x80, 0x60, 0x03, 0x57, 0x00,
    ]);
    let reverter = Address::repeat_byte(0xcf);
    let mut c = prover::ChangeSet::new();
    deploy(&mut c, target, &code);
    deploy(&mut c, reverter, &[0x60, 0x00, 0x60, 0x00, 0xfd]);
    state.commit(1, &c)?;
    let raw = w.sign(0, 0, TxKind::Call(target), U256::ZERO, Bytes::new(), 8_000_000);
    let tx = prover::Item::Tx(prover::SignedTx::decode(&raw).context("the transaction decodes")?);
    // the same writes delivered from shard 1 as a call message (level 2
    // since stf_version 5), and a delivered call that fails (its refund)
    let message = |to: Address, gas_limit: u64| {
        prover::Item::Message(bridge::Message {
            src: bridge::ShardId(1),
            dst: bridge::ShardId(0),
            nonce: 0,
            sender: Address::repeat_byte(0xab),
            to,
            value: U256::from(5),
            gas_limit,
            data: vec![],
            kind: bridge::MessageKind::Call,
        })
    };
    let p = prover::BlockParams { shards: 2, ..params(2) };
    let mut out = Vec::new();
    for (name, item) in [
        ("transaction, 300 fresh slots", tx),
        ("delivered call, 300 fresh slots", message(target, 8_000_000)),
        ("delivered call that reverts (refund)", message(reverter, 100_000)),
    ] {
        let (epilogue, commit, entries, instructions) = tail_of(&state, &p, &item)?;
        println!("  epilogue ({name:<38}) step {:>7} B; verify median {:>7.1} us", epilogue.0, epilogue.1);
        println!(
            "  commit, largest of {entries:>3} entries ({name}) step {:>7} B; verify median {:>7.1} us",
            commit.0, commit.1
        );
        out.push(json!({
            "item": name, "instructions": instructions, "entries": entries,
            "epilogue_bytes": epilogue.0, "epilogue_verify_us": epilogue.1,
            "largest_commit_bytes": commit.0, "largest_commit_verify_us": commit.1,
        }));
    }
    Ok(json!(out))
}

/// A step's bytes and its verification's median of 200, in µs.
type StepFigure = (usize, f64);

/// An item's epilogue step and its largest commit step, its journal
/// entries and instructions.
fn tail_of(
    state: &AuthState,
    p: &prover::BlockParams,
    item: &prover::Item,
) -> Result<(StepFigure, StepFigure, u64, u64)> {
    use prover::machine::{InstructionVerdict, ItemStep, StepEnv, item_step, item_trace, verify_item_step};
    let pre = bridge::TraceState::start();
    let head = item_trace(state.reader(1)?, p, item, &pre, &[])?;
    let all: Vec<u64> = (head.instructions + 1..=head.last).collect();
    let t = item_trace(state.reader(1)?, p, item, &pre, &all)?;
    let env = StepEnv::new(p.clone(), item, bridge::TraceCommitment::start(state.root(1)?));
    let measure = |j: u64| -> Result<StepFigure> {
        let step = item_step(state.reader(1)?, p, item, &pre, j)?;
        let bytes = bridge::Encode::encode(&step).len();
        let i = (j - head.instructions - 1) as usize;
        let (agreed, next) = (t.states[i], t.states[i + 1]);
        let mut times = Vec::new();
        for _ in 0..200 {
            let s = Instant::now();
            let v = verify_item_step(&step, &agreed, &env);
            times.push(s.elapsed());
            anyhow::ensure!(v == InstructionVerdict::Next(next), "step {j}: the honest step re-executes");
        }
        times.sort();
        anyhow::ensure!(matches!(step, ItemStep::Epilogue(_) | ItemStep::Commit(_)), "a tail step");
        Ok((bytes, times[100].as_secs_f64() * 1e6))
    };
    let epilogue = measure(head.instructions + 1)?;
    let mut largest = (0, head.instructions + 2);
    for j in head.instructions + 2..head.last {
        let step = item_step(state.reader(1)?, p, item, &pre, j)?;
        let bytes = bridge::Encode::encode(&step).len();
        if bytes > largest.0 {
            largest = (bytes, j);
        }
    }
    let commit = measure(largest.1)?;
    Ok((epilogue, commit, head.last - head.instructions - 2, head.instructions))
}

/// Code that copies its calldata to memory and CALLs the bridge with it
/// (the CALL is its 12th instruction, index 11).
fn bridge_sender() -> Vec<u8> {
    let mut code =
        vec![0x36, 0x60, 0x00, 0x60, 0x00, 0x37, 0x60, 0x00, 0x60, 0x00, 0x36, 0x60, 0x00, 0x60, 0x00, 0x73];
    code.extend_from_slice(bridge::BRIDGE_ADDRESS.as_slice());
    code.extend([0x5a, 0xf1, 0x00]);
    code
}

/// `send(1, 0x44…44, "")`: a message to shard 1.
fn bridge_send_calldata() -> Vec<u8> {
    use alloy_sol_types::SolCall;
    prover::IBridge::sendCall { dstShard: 1, to: Address::repeat_byte(0x44), data: Bytes::new() }.abi_encode()
}

/// Puts a contract with `code` at `address` into `c` (nonce 1, no balance).
fn deploy(c: &mut prover::ChangeSet, address: Address, code: &[u8]) {
    let code_hash = alloy_primitives::keccak256(code);
    let a = prover::AccountState { nonce: 1, balance: U256::ZERO, code_hash };
    c.insert(prover::StateKey::Account(address), Some(a.encode()));
    c.insert(prover::StateKey::Code(code_hash), Some(code.to_vec()));
}

/// `prefix` followed by STOPs up to the 24 KiB code limit.
fn code_padded(prefix: &[u8]) -> Vec<u8> {
    let mut code = prefix.to_vec();
    code.resize(24 << 10, 0x00);
    code
}

/// What a step figure's state holds besides the contract: storage slots
/// `0..slots` of the contract (each 1), and another contract's code at
/// `0xcece…`.
#[derive(Default)]
struct Extra {
    slots: u64,
    other: Option<Vec<u8>>,
}

/// One instruction step's figures: the step of instruction `j` of a call
/// with `calldata` to a contract with `code`, its encoded size and the
/// referee's verification time.
/// STATICCALL identity over `[0, len)` into `[len, len + ret_len)` with
/// all the gas, then STOP (the call is instruction 6).
fn identity_call(len: u32, ret_len: u32) -> Vec<u8> {
    let (l, r) = (len.to_be_bytes(), ret_len.to_be_bytes());
    vec![
        0x62, r[1], r[2], r[3], 0x62, l[1], l[2], l[3], 0x62, l[1], l[2], l[3], 0x60, 0x00, 0x60, 0x04, 0x5a,
        0xfa, 0x00,
    ]
}

/// Copies the calldata to memory and STATICCALLs precompile `at` over it
/// into `[0, 32)` with all the gas, then STOP (the call is instruction 10,
/// or 11 when the copy is longer than a sub-step).
fn calldata_to_precompile(at: u8) -> Vec<u8> {
    vec![
        0x36, 0x60, 0x00, 0x60, 0x00, 0x37, 0x60, 0x20, 0x60, 0x00, 0x36, 0x60, 0x00, 0x60, at, 0x5a, 0xfa,
        0x00,
    ]
}

/// `n` pairs of BN254's generators of G1 and G2 (EIP-197's encoding).
fn bn254_pairs(n: usize) -> Vec<u8> {
    let word = |dec: &str| U256::from_str_radix(dec, 10).expect("a field element").to_be_bytes::<32>();
    let pair: Vec<u8> = [
        word("1"),
        word("2"),
        word("11559732032986387107991004021392285783925812861821192530917403151452391805634"),
        word("10857046999023057135944570762232829481370756359578518086990519993285655852781"),
        word("4082367875863433681332203403145435568316851327593401208105741076214120093531"),
        word("8495653923123431417604973247489272438418190587263600148770280649306958101930"),
    ]
    .concat();
    pair.repeat(n)
}

fn instruction_step_figure(
    w: &Workload,
    name: &str,
    code: &[u8],
    calldata: &[u8],
    j: u64,
    extra: &Extra,
) -> Result<serde_json::Value> {
    use prover::machine::{
        InstructionVerdict, StepEnv, instruction_step, trace_transaction, verify_instruction,
    };
    let state = AuthState::in_memory();
    bench::fund(&state, &w.addresses())?;
    let target = Address::repeat_byte(0xcd);
    let mut c = prover::ChangeSet::new();
    deploy(&mut c, target, code);
    for slot in 0..extra.slots {
        c.insert(
            prover::StateKey::Storage(target, U256::from(slot)),
            Some(prover::encode_slot(U256::from(1))),
        );
    }
    if let Some(other) = &extra.other {
        deploy(&mut c, Address::repeat_byte(0xce), other);
    }
    state.commit(1, &c)?;
    // calldata pays its EIP-7623 floor (10 gas a non-zero byte more)
    let raw = w.sign(0, 0, TxKind::Call(target), U256::ZERO, Bytes::from(calldata.to_vec()), 8_000_000);
    let tx = prover::SignedTx::decode(&raw).context("the transaction decodes")?;
    // two shards, so a send through the bridge has somewhere to go
    let p = prover::BlockParams { shards: 2, ..params(2) };
    let trace = trace_transaction(state.reader(1)?, &p, &tx, &[j, j + 1])?;
    let (agreed, next) = (trace.states[0].commitment(), trace.states[1].commitment());
    let step = instruction_step(state.reader(1)?, &p, &tx, j)?;
    let bytes = bridge::Encode::encode(&step).len();
    let env = StepEnv::new(p.clone(), &tx, bridge::TraceCommitment::start(state.root(1)?));
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let v = verify_instruction(&step, &agreed, &env);
        times.push(t.elapsed());
        anyhow::ensure!(v == InstructionVerdict::Next(next), "{name}: the honest step re-executes to s_j+1");
    }
    times.sort();
    let median = times[times.len() / 2];
    println!("  {name:<40} step {bytes:>7} B; verify median {:>7.1} us", median.as_secs_f64() * 1e6);
    Ok(json!({"class": name, "step_bytes": bytes, "verify_us_median": median.as_secs_f64() * 1e6}))
}

/// The scenario on the deterministic tier, measured in slots.
fn cascade_figures() -> Result<serde_json::Value> {
    use alloy_sol_types::SolCall;
    let dir = tempfile::tempdir()?;
    let window = 64;
    let mut t = testnet::Testnet::builder()
        .shards(2)
        .validators_per_shard(2)
        .seed(43)
        .challenge_window_slots(window)
        .txs_per_slot(0)
        .build(dir.path())?;
    let members = |t: &testnet::Testnet, s: u32| -> Vec<usize> {
        (0..t.validator_count()).filter(|i| t.validator_info(*i).0 == ShardId(s)).collect()
    };
    let liar = members(&t, 1)[0];
    let liar_addr = t.validator_info(liar).1;
    let mut lie: Option<(u64, Hash)> = None;
    let mut inv_slot = None;
    let mut discarded: Vec<bridge::Invalidation> = Vec::new();
    let mut rebuilt = None;
    let mut n = 0u8;
    for round in 0..120u64 {
        for (src, dst, from) in [(0u32, 1u32, 3usize), (1, 0, 4)] {
            n = n.wrapping_add(1);
            let data =
                prover::IBridge::sendCall { dstShard: dst, to: Address::repeat_byte(n), data: Bytes::new() }
                    .abi_encode();
            let raw = t.call(
                ShardId(src),
                from,
                TxKind::Call(bridge::BRIDGE_ADDRESS),
                U256::from(1_000u64),
                data.into(),
                300_000,
            );
            let m = members(&t, src);
            t.submit(m[round as usize % m.len()], &raw).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        if round == 8 {
            t.set_fault(liar, Some(shard::Fault::WrongReceipt));
        }
        t.step();
        if lie.is_none() && round >= 8 {
            let head = t.beacon().heads()[1];
            if let Ok(Some(b)) = t.node(liar).context("liar up")?.block(head.height)
                && b.header.header.hash() == head.hash
                && b.header.header.proposer == liar_addr
                && b.header.header.beacon_slot > 9
            {
                lie = Some((t.slot(), head.hash));
                t.set_fault(liar, None);
            }
        }
        for b in t.beacon().db().blocks_from(t.slot(), 1)? {
            if !b.invalidated.is_empty() && inv_slot.is_none() {
                inv_slot = Some(b.slot);
                discarded = b.invalidated.clone();
            }
        }
        if let Some(at) = inv_slot
            && rebuilt.is_none()
        {
            let heads = t.beacon().heads();
            if discarded.iter().all(|d| heads[d.shard.0 as usize].height >= d.height) {
                rebuilt = Some(t.slot() - at);
            }
        }
        if rebuilt.is_some() {
            break;
        }
    }
    let (included, header) = lie.context("the liar proposed")?;
    let at = inv_slot.context("the lie was invalidated")?;
    let game =
        t.beacon().all_games(100)?.into_iter().find(|g| g.record.header == header).context("the game")?;
    Ok(json!({
        "window": window,
        "slots_to_invalidation": at - included,
        "rounds": game.record.game.rounds,
        "items": game.record.items,
        "shards_reached": discarded.iter().map(|d| d.shard.0).collect::<std::collections::BTreeSet<_>>().len(),
        "slots_to_rebuild": rebuilt.context("rebuilt")?,
    }))
}
