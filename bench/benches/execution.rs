#![allow(missing_docs)] // criterion macros generate undocumented items
//! Criterion benches: block execution, state commitment, proofs, witnesses.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use bench::{Workload, params};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prover::{AccountState, AuthState, ChangeSet, Item, Mode, StateKey, execute_items, recover_all};

fn funded(w: &Workload) -> AuthState {
    let state = AuthState::in_memory();
    bench::fund(&state, &w.addresses()).unwrap();
    state
}

fn items(raws: &[Bytes]) -> Vec<Item> {
    recover_all(raws).into_iter().map(|r| Item::Tx(r.unwrap())).collect()
}

fn block_execution(c: &mut Criterion) {
    let w = Workload::new(31_337, 100);
    let state = funded(&w);
    let txs = items(&w.transfers(10, 0));
    let mut g = c.benchmark_group("block_execution");
    g.throughput(Throughput::Elements(txs.len() as u64));
    g.bench_function("eth_transfers_1000", |b| {
        b.iter_batched(
            || txs.clone(),
            |t| execute_items(state.reader(0).unwrap(), &params(1), t, Mode::Verify).unwrap(),
            BatchSize::LargeInput,
        )
    });

    // ERC-20: deploy, fund every sender, then a block of token transfers
    let deployer = Workload::new(31_337, 100);
    let deploy = deployer.sign(
        0,
        0,
        TxKind::Create,
        U256::ZERO,
        bench::token_bin(U256::from(10u64.pow(30))),
        2_000_000,
    );
    let exec = execute_items(state.reader(0).unwrap(), &params(1), items(&[deploy]), Mode::Verify).unwrap();
    let token = exec.outcomes[0].receipt.contract_address.unwrap();
    state.commit(1, &exec.block_changes()).unwrap();
    let fund: Vec<Bytes> = (1..100u64)
        .map(|i| {
            deployer.sign(
                0,
                i,
                TxKind::Call(token),
                U256::ZERO,
                bench::token_transfer_call(deployer.addresses()[i as usize], U256::from(10u64.pow(20))),
                100_000,
            )
        })
        .collect();
    let exec = execute_items(state.reader(1).unwrap(), &params(2), items(&fund), Mode::Verify).unwrap();
    state.commit(2, &exec.block_changes()).unwrap();
    // sender 0 spent nonces 0..100 on the deploy and funding: leave it out
    let transfers: Vec<Bytes> = w
        .token_transfers(token, 10, 0)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 100 != 0)
        .map(|(_, t)| t)
        .collect();
    let token_items = items(&transfers);
    g.throughput(Throughput::Elements(token_items.len() as u64));
    g.bench_function("erc20_transfers", |b| {
        b.iter_batched(
            || token_items.clone(),
            |t| execute_items(state.reader(2).unwrap(), &params(3), t, Mode::Build).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn state_commitment(c: &mut Criterion) {
    let w = Workload::new(31_337, 10_000);
    let state = funded(&w);
    let changes: ChangeSet = w
        .addresses()
        .iter()
        .map(|a| {
            (
                StateKey::Account(*a),
                Some(AccountState { nonce: 1, balance: U256::from(5), ..Default::default() }.encode()),
            )
        })
        .collect();
    let mut g = c.benchmark_group("state");
    g.throughput(Throughput::Elements(changes.len() as u64));
    g.bench_function("update_and_root_10k_accounts", |b| b.iter(|| state.prepare(1, &changes).unwrap().root));
    let proof = state.prove(StateKey::Account(w.addresses()[7]), 0).unwrap();
    let root = state.root(0).unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_account_proof", |b| b.iter(|| proof.verify(&root).unwrap()));
    g.finish();
}

fn witnesses(c: &mut Criterion) {
    let w = Workload::new(31_337, 2);
    let state = funded(&w);
    let deploy =
        w.sign(0, 0, TxKind::Create, U256::ZERO, bench::token_bin(U256::from(10u64.pow(18))), 2_000_000);
    let exec = execute_items(state.reader(0).unwrap(), &params(1), items(&[deploy]), Mode::Verify).unwrap();
    let token = exec.outcomes[0].receipt.contract_address.unwrap();
    state.commit(1, &exec.block_changes()).unwrap();
    let t = w.sign(
        0,
        1,
        TxKind::Call(token),
        U256::ZERO,
        bench::token_transfer_call(Address::repeat_byte(7), U256::from(5)),
        100_000,
    );
    let exec = execute_items(state.reader(1).unwrap(), &params(2), items(&[t]), Mode::Verify).unwrap();
    let mut g = c.benchmark_group("witness_erc20_transfer");
    g.bench_function("produce", |b| {
        b.iter(|| prover::produce_witness(&state, 1, &exec, 0, &Default::default()).unwrap())
    });
    let witness = prover::produce_witness(&state, 1, &exec, 0, &Default::default()).unwrap();
    g.bench_function("stateless_execute", |b| {
        b.iter(|| prover::execute_stateless(&params(2), &exec.items[0], &witness).unwrap())
    });
    g.finish();
}

criterion_group!(benches, block_execution, state_commitment, witnesses);
criterion_main!(benches);
