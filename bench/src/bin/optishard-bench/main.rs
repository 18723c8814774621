//! `optishard-bench`: measurements that need more than criterion.
//!
//! - `node-vs-minimal`: blocks of signed ETH transfers through the node's own
//!   path (parallel signature recovery, execution, state commitment, rocksdb
//!   commit) against a minimal loop (the same recovery, then revm over an
//!   in-memory database), on the same transactions, as a ratio.
//! - `rpc-load`: pre-signed transfers sent in JSON-RPC batches to any
//!   Ethereum node (the optishard dev node, anvil); reports included tx/s.
//! - `witness`: witness size and stateless re-execution time of an ERC-20 transfer.
//! - `dispute`: rounds against `n` and `k`, the single step's bytes and
//!   verification time per kind of item, slots to invalidation and cascade.
//! - `testnet`: what a running local testnet sustains (blocks/s, headers per
//!   slot, transactions, CPU and memory per node).

mod dispute;
mod testnet_observe;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes, TxKind, U256};
use anyhow::{Context, Result, bail};
use bench::{Workload, params};
use clap::{Parser, Subcommand};
use prover::{AuthState, Item, Mode, execute_items, recover_all};
use revm::database::{CacheDB, EmptyDB};
use revm::{Context as EvmContext, ExecuteCommitEvm, MainBuilder, MainContext};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "optishard-bench", about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Node block path vs minimal recover+execute loop, as a ratio.
    NodeVsMinimal {
        /// Transactions per block.
        #[arg(long, default_value_t = 10_000)]
        txs: u64,
        /// Blocks to run.
        #[arg(long, default_value_t = 5)]
        blocks: u64,
        /// Distinct senders.
        #[arg(long, default_value_t = 1_000)]
        senders: usize,
    },
    /// Included transactions per second through JSON-RPC batches.
    RpcLoad {
        /// Node URL.
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        url: String,
        /// Transactions to send.
        #[arg(long, default_value_t = 50_000)]
        txs: u64,
        /// Calls per JSON-RPC batch.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Batches in flight.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Label for the report line.
        #[arg(long, default_value = "node")]
        label: String,
    },
    /// Witness size and stateless re-execution time of an ERC-20 transfer.
    Witness,
    /// Dispute game figures: rounds, single-step bytes and verification time, cascade.
    Dispute,
    /// The largest transaction run by the state-transition function and
    /// replayed by level 2's tracer, as a ratio.
    Replay,
    /// Observe a running local testnet: blocks/s, headers/slot, CPU and memory per node.
    Testnet {
        /// The testnet's directory.
        #[arg(long, default_value = "optishard-testnet")]
        datadir: std::path::PathBuf,
        /// How long to observe.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Transfers per second to offer, spread over every validator (0: none).
        #[arg(long, default_value_t = 0)]
        tps: u64,
        /// Percent of the transfers that cross shards (through the bridge).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
        cross: u8,
    },
}

/// Executes, commits to the state tree and persists one block; returns the
/// time spent in execution, state-root computation and the rocksdb commit.
fn node_block(db: &shard::ShardDb, state: &AuthState, h: u64, items: Vec<Item>) -> Result<[Duration; 3]> {
    let p = Instant::now();
    let exec = execute_items(state.reader(h)?, &params(h + 1), items, Mode::Build)?;
    let d_exec = p.elapsed();
    if !exec.rejected.is_empty() {
        bail!("{} transactions rejected: {}", exec.rejected.len(), exec.rejected[0].reason);
    }
    let p = Instant::now();
    let prepared = state.prepare(h + 1, &exec.block_changes())?;
    let d_root = p.elapsed();
    let p = Instant::now();
    let header = bridge::ShardHeader {
        height: h + 1,
        post_state_root: prepared.root,
        receipts_root: exec.receipts_root(),
        items_root: exec.items_root(),
        trace_root: exec.final_commitment(prepared.root).hash(),
        ..Default::default()
    };
    let mut body = shard::StoredBody::empty(Default::default());
    for tx in exec.items.iter().filter_map(|i| if let Item::Tx(tx) = i { Some(tx) } else { None }) {
        body.txs.push(tx.raw.clone());
        body.senders.push(tx.sender);
        body.hashes.push(tx.hash);
    }
    db.commit_block(
        &header,
        &body,
        &exec.receipts(),
        &exec.outbox(),
        &shard::Supply::default(),
        &prepared.batch,
    )?;
    Ok([d_exec, d_root, p.elapsed()])
}

fn node_vs_minimal(per_block: u64, blocks: u64, senders: usize) -> Result<()> {
    let w = Workload::new(31_337, senders);
    let per_sender = per_block.div_ceil(senders as u64);
    println!("signing {} transfers ...", per_sender * senders as u64 * blocks);
    let block_txs: Vec<Vec<Bytes>> = (0..blocks).map(|b| w.transfers(per_sender, b * per_sender)).collect();
    let total = block_txs.iter().map(|b| b.len()).sum::<usize>() as f64;

    // the node's path: recovery, execution, state commitment, rocksdb commit
    let recover = |raws: &[Bytes]| -> Result<Vec<Item>> {
        Ok(recover_all(raws).into_iter().map(|r| r.map(Item::Tx)).collect::<Result<_, _>>()?)
    };
    let fresh = || -> Result<(tempfile::TempDir, shard::ShardDb, AuthState)> {
        let dir = tempfile::tempdir()?;
        let db = shard::ShardDb::open(dir.path(), false)?;
        let state = AuthState::new(db.state_store());
        bench::fund(&state, &w.addresses())?;
        Ok((dir, db, state))
    };
    let (_dir, db, state) = fresh()?;
    // the same path as the running node overlaps it: signatures of the next
    // block are recovered (as RPC admission does) while this one commits
    let (_dir2, db2, state2) = fresh()?;
    // the minimal loop: the same recovery, then revm over an in-memory db
    let mut cache = CacheDB::new(EmptyDB::default());
    for a in w.addresses() {
        cache.insert_account_info(
            a,
            revm::state::AccountInfo { balance: U256::from(10u128.pow(30)), ..Default::default() },
        );
    }
    let mut evm = EvmContext::mainnet().with_db(cache).with_block(revm::context::BlockEnv {
        basefee: 1_000_000_000,
        gas_limit: u64::MAX / 2,
        ..Default::default()
    });
    evm.cfg.chain_id = 31_337;
    let mut evm = evm.build_mainnet();

    // the three run block by block, interleaved, so a busy moment of this
    // shared machine slows all of them alike
    let (mut node, mut pipelined, mut minimal) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut phases = [Duration::ZERO; 4];
    let t = Instant::now();
    let mut items = recover(&block_txs[0])?;
    pipelined += t.elapsed();
    for (i, raws) in block_txs.iter().enumerate() {
        let t = Instant::now();
        let recovered = recover(raws)?;
        phases[0] += t.elapsed();
        let d = node_block(&db, &state, i as u64, recovered)?;
        for k in 0..3 {
            phases[k + 1] += d[k];
        }
        node += t.elapsed();

        let t = Instant::now();
        let next = block_txs.get(i + 1);
        let (recovered, done) = rayon::join(
            || next.map(|raws| recover(raws)).transpose(),
            || node_block(&db2, &state2, i as u64, std::mem::take(&mut items)),
        );
        done?;
        items = recovered?.unwrap_or_default();
        pipelined += t.elapsed();

        let t = Instant::now();
        let txs = recover_all(raws).into_iter().collect::<Result<Vec<_>, _>>()?;
        for tx in txs {
            let r = evm.transact_commit(tx.tx_env()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if !r.is_success() {
                bail!("minimal loop: transfer failed: {r:?}");
            }
        }
        minimal += t.elapsed();
    }
    let (n, m) = (total / node.as_secs_f64(), total / minimal.as_secs_f64());
    println!(
        "blocks of {per_block} ETH transfers x {blocks}, {senders} senders, {} threads",
        rayon::current_num_threads()
    );
    let p = total / pipelined.as_secs_f64();
    println!("node path     : {:>10.0} tx/s  ({:.3} s)", n, node.as_secs_f64());
    println!("node pipelined: {:>10.0} tx/s  ({:.3} s)", p, pipelined.as_secs_f64());
    println!("minimal loop  : {:>10.0} tx/s  ({:.3} s)", m, minimal.as_secs_f64());
    println!("ratio node/minimal = {:.3} (sequential), {:.3} (pipelined)", n / m, p / m);
    let us = |d: Duration| d.as_secs_f64() * 1e6 / total;
    println!(
        "node path per tx: recovery {:.1} us, execution {:.1} us, state root {:.1} us, rocksdb commit {:.1} us",
        us(phases[0]),
        us(phases[1]),
        us(phases[2]),
        us(phases[3])
    );
    Ok(())
}

async fn rpc(http: &reqwest::Client, url: &str, method: &str, params: Value) -> Result<Value> {
    let v: Value = http
        .post(url)
        .json(&json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}))
        .send()
        .await?
        .json()
        .await?;
    if let Some(e) = v.get("error") {
        bail!("{method}: {e}");
    }
    Ok(v["result"].clone())
}

fn hex_u64(v: &Value) -> Result<u64> {
    let s = v.as_str().context("expected hex string")?;
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

async fn rpc_load(url: String, txs: u64, batch: usize, concurrency: usize, label: String) -> Result<()> {
    let http = reqwest::Client::new();
    let chain = hex_u64(&rpc(&http, &url, "eth_chainId", json!([])).await?)?;
    let w = Workload::dev(chain);
    let mut starts = Vec::new();
    for a in w.addresses() {
        starts.push(hex_u64(&rpc(&http, &url, "eth_getTransactionCount", json!([a, "latest"])).await?)?);
    }
    let per_sender = txs.div_ceil(w.signers.len() as u64);
    let first = *starts.iter().max().unwrap_or(&0);
    if starts.iter().any(|s| *s != first) {
        bail!("dev accounts have different nonces; use a fresh node");
    }
    eprintln!("[{label}] signing {} transfers ...", per_sender * w.signers.len() as u64);
    let raws = w.transfers(per_sender, first);
    let bodies: Vec<String> = raws
        .chunks(batch)
        .map(|chunk| {
            let calls: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| json!({"jsonrpc":"2.0","id":i,"method":"eth_sendRawTransaction","params":[format!("0x{}", hex::encode(r))]}))
                .collect();
            Value::Array(calls).to_string()
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url, bodies, next, errors) =
            (http.clone(), url.clone(), bodies.clone(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(body) = bodies.get(i) else { break };
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) => match r.json::<Vec<Value>>().await {
                        Ok(v) => {
                            let bad: Vec<&Value> = v.iter().filter(|x| x.get("error").is_some()).collect();
                            if let Some(e) = bad.first() {
                                eprintln!("rpc error: {}", e["error"]);
                            }
                            bad.len()
                        }
                        Err(e) => {
                            eprintln!("bad batch response: {e}");
                            1
                        }
                    },
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        1
                    }
                };
                errors.fetch_add(ok, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let sent = t0.elapsed();
    let target = first + per_sender;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut done = true;
        for a in w.addresses() {
            if hex_u64(&rpc(&http, &url, "eth_getTransactionCount", json!([a, "latest"])).await?)? < target {
                done = false;
                break;
            }
        }
        if done {
            break;
        }
        if Instant::now() > deadline {
            bail!("not all transactions were included within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = t0.elapsed();
    let n = raws.len() as f64;
    println!(
        "[{label}] {} transfers, batches of {batch}, {concurrency} in flight: sent in {:.2} s, all included after {:.2} s => {:.0} included tx/s ({} rpc errors)",
        raws.len(),
        sent.as_secs_f64(),
        total.as_secs_f64(),
        n / total.as_secs_f64(),
        errors.load(std::sync::atomic::Ordering::SeqCst)
    );
    Ok(())
}

fn witness_figures() -> Result<()> {
    let w = Workload::new(31_337, 2);
    let state = AuthState::in_memory();
    bench::fund(&state, &w.addresses())?;
    let deploy =
        w.sign(0, 0, TxKind::Create, U256::ZERO, bench::token_bin(U256::from(10u64.pow(18))), 2_000_000);
    let items = |raws: &[Bytes]| -> Result<Vec<Item>> {
        Ok(recover_all(raws).into_iter().map(|r| r.map(Item::Tx)).collect::<Result<_, _>>()?)
    };
    let exec = execute_items(state.reader(0)?, &params(1), items(&[deploy])?, Mode::Verify)?;
    let token = exec.outcomes[0].receipt.contract_address.context("token deployed")?;
    state.commit(1, &exec.block_changes())?;
    let transfer = w.sign(
        0,
        1,
        TxKind::Call(token),
        U256::ZERO,
        bench::token_transfer_call(Address::repeat_byte(7), U256::from(5)),
        100_000,
    );
    let exec = execute_items(state.reader(1)?, &params(2), items(&[transfer])?, Mode::Verify)?;
    let witness = prover::produce_witness(&state, 1, &exec, 0, &Default::default())?;
    let rounds = 2_000;
    let t = Instant::now();
    for _ in 0..rounds {
        prover::execute_stateless(&params(2), &exec.items[0], &witness)?;
    }
    let per = t.elapsed() / rounds;
    println!(
        "ERC-20 transfer witness: {} bytes ({} proofs, {} code bytes); stateless re-execution {:.1} us",
        witness.encoded_len(),
        witness.proofs.len(),
        witness.codes.iter().map(|c| c.len()).sum::<usize>(),
        per.as_secs_f64() * 1e6
    );
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::NodeVsMinimal { txs, blocks, senders } => node_vs_minimal(txs, blocks, senders),
        Cmd::RpcLoad { url, txs, batch, concurrency, label } => {
            tokio::runtime::Runtime::new()?.block_on(rpc_load(url, txs, batch, concurrency, label))
        }
        Cmd::Witness => witness_figures(),
        Cmd::Dispute => dispute::run(),
        Cmd::Replay => dispute::replay_figures(),
        Cmd::Testnet { datadir, seconds, tps, cross } => {
            tokio::runtime::Runtime::new()?.block_on(testnet_observe::observe(&datadir, seconds, tps, cross))
        }
    }
}
