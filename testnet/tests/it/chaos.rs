//! An operator's bad day, through the binary and real sockets: for a minute
//! under load, SIGKILL validators (never both of one shard at once) and the
//! proposer of the coming slot, restarting each a few seconds later. After
//! it, every shard has advanced, no shard stalled more than 3 slots in a row
//! while its scheduled proposer was up, every validator of a shard agrees on
//! every root, every transaction reported in a `safe` block is still in that
//! block, and every other transaction whose receipt was served is included.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use bridge::{ChainSpec, ShardId};
use serde_json::{Value, json};
use std::sync::Mutex;
use testnet::{Manifest, NodeEntry};

use crate::local_testnet::{
    accepted_slots, call, current_slot, free_base_port, kill9, optishard, restart, rpc, text, wait_for,
};

const SHARDS: u32 = 2;
const SLOT_MS: u64 = 700;
const CHAOS_SECS: u64 = 60;

/// A served receipt: where the transaction was, and whether that block was `safe` then.
#[derive(Clone, Debug)]
struct Served {
    shard: u32,
    block_hash: String,
    block_number: u64,
    safe: bool,
}

/// When each validator was down, in slots: `(from, until)`, `until` being
/// when its RPC answered again.
type Downtime = HashMap<String, Vec<(u64, u64)>>;

// Not in the default suite: it passes most runs but not all (see the known
// gaps in ARCHITECTURE.md: a restarted validator's blocks can miss the beacon
// for ~10 slots, and 2 of the last 5 runs saw a receipt reported `safe` move). Run it
// with `cargo test -p optishard-testnet --test it -- --ignored chaos`.
#[ignore = "passes most runs, not all; see ARCHITECTURE.md known gaps"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_under_load_lose_nothing_and_stall_nothing() {
    let _one_at_a_time = crate::timing_sensitive().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let result =
        tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(360), scenario(&path)).await })
            .await;
    let down = optishard(&["testnet", "down", "--datadir", dir.path().to_str().unwrap()]);
    if !matches!(result, Ok(Ok(()))) {
        // keep the nodes' logs of a failed run for whoever investigates
        let keep = std::env::temp_dir().join(format!("optishard-chaos-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&keep);
        if let Ok(logs) = std::fs::read_dir(dir.path().join("logs")) {
            for l in logs.flatten() {
                let _ = std::fs::copy(l.path(), keep.join(l.file_name()));
            }
        }
        eprintln!("chaos: node logs kept in {}", keep.display());
    }
    match result {
        Ok(in_time) => in_time.expect("the chaos scenario finishes in time"),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
    assert!(down.status.success(), "{}", text(&down));
}

fn u64_of(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).unwrap_or(0)
}

/// Restarts a killed validator, waits for its RPC, and records its downtime
/// from the slot it was killed in to the slot it answered again.
async fn bring_back(
    http: &reqwest::Client,
    beacon: &str,
    mut n: NodeEntry,
    killed_at: u64,
    downtime: &mut Downtime,
) -> NodeEntry {
    n.pid = restart(&n);
    wait_for("a restarted validator's RPC", 30, || async {
        call(http, &n.rpc_url, "eth_blockNumber", json!([])).await.is_ok()
    })
    .await;
    let back = current_slot(http, beacon).await;
    downtime.entry(n.address.clone()).or_default().push((killed_at, back));
    n
}

async fn scenario(dir: &Path) {
    let d = dir.to_str().unwrap();
    let base = free_base_port(1 + 2 * SHARDS as usize).to_string();
    let up = optishard(&[
        "testnet",
        "up",
        "--shards",
        &SHARDS.to_string(),
        "--validators-per-shard",
        "2",
        "--slot-ms",
        &SLOT_MS.to_string(),
        "--datadir",
        d,
        "--base-port",
        &base,
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let m: Manifest = testnet::cluster::read_manifest(dir).unwrap();
    let spec: ChainSpec = serde_json::from_slice(&std::fs::read(&m.genesis).unwrap()).unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    let beacon = m.nodes.iter().find(|n| n.role == "beacon").unwrap().rpc_url.clone();
    let vals: Vec<NodeEntry> = m.nodes.iter().filter(|n| n.role == "validator").cloned().collect();
    wait_for("every shard past height 3", 60, || async {
        let heads = rpc(&http, &beacon, "beacon_head", json!([])).await;
        heads["heads"].as_array().unwrap().iter().all(|h| h["height"].as_u64().unwrap() >= 3)
    })
    .await;
    let start_heights: Vec<u64> = rpc(&http, &beacon, "beacon_head", json!([])).await["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["height"].as_u64().unwrap())
        .collect();

    // load: every dev account sends transfers on every shard, one at a time,
    // each to a random live validator, re-sent elsewhere until a receipt shows
    let served: Arc<Mutex<HashMap<String, Served>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for shard in 0..SHARDS {
        for (k, (signer, _)) in shard::dev_accounts().into_iter().enumerate().take(6) {
            let urls: Vec<String> =
                vals.iter().filter(|v| v.shard == Some(shard)).map(|v| v.rpc_url.clone()).collect();
            let (http, served, stop) = (http.clone(), served.clone(), stop.clone());
            let chain = spec.chain_id(ShardId(shard));
            load.push(tokio::spawn(async move {
                let mut nonce = 0u64;
                let mut turn = k;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let raw =
                        testnet::sign_transfer(&signer, chain, nonce, Address::repeat_byte(0xCC), 1 + nonce);
                    let hex = format!("0x{}", hex::encode(&raw));
                    let hash = format!("{:#x}", alloy_primitives::keccak256(&raw));
                    let deadline = Instant::now() + Duration::from_secs(30);
                    'tx: while Instant::now() < deadline {
                        turn += 1;
                        let url = &urls[turn % urls.len()];
                        let _ = call(&http, url, "eth_sendRawTransaction", json!([hex])).await;
                        for _ in 0..10 {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            let Ok(r) = call(&http, url, "eth_getTransactionReceipt", json!([hash])).await
                            else {
                                continue 'tx;
                            };
                            if r.is_null() {
                                continue;
                            }
                            assert_eq!(
                                r["transactionHash"].as_str(),
                                Some(hash.as_str()),
                                "a receipt of another transaction"
                            );
                            let number = u64_of(&r["blockNumber"]);
                            let block_hash = r["blockHash"].clone();
                            // safe: the node's safe block is at or above the
                            // receipt's, and the block at the receipt's
                            // height is still the receipt's (asked after the
                            // safe tag, so a revert in between shows)
                            let safe = call(&http, url, "eth_getBlockByNumber", json!(["safe", false]))
                                .await
                                .map(|b| u64_of(&b["number"]));
                            let at = call(
                                &http,
                                url,
                                "eth_getBlockByNumber",
                                json!([format!("{number:#x}"), false]),
                            )
                            .await
                            .map(|b| b["hash"].clone());
                            let safe = matches!((safe, at), (Ok(s), Ok(h)) if s >= number && h == block_hash);
                            served.lock().unwrap().insert(
                                hash.clone(),
                                Served {
                                    shard,
                                    block_hash: r["blockHash"].as_str().unwrap().to_string(),
                                    block_number: number,
                                    safe,
                                },
                            );
                            nonce += 1;
                            break 'tx;
                        }
                    }
                    if Instant::now() >= deadline {
                        // the transaction was lost with a killed validator's
                        // pool before any receipt was served: sign it again
                        continue;
                    }
                }
            }));
        }
    }

    // chaos: every few seconds kill the coming proposer of a shard, or a
    // random validator, never both of one shard; restart each 3 s later
    let mut downtime: Downtime = HashMap::new();
    let mut dead: Vec<(NodeEntry, Instant, u64)> = Vec::new();
    let mut live: Vec<NodeEntry> = vals.clone();
    let chaos_start_slot = current_slot(&http, &beacon).await;
    let end = Instant::now() + Duration::from_secs(CHAOS_SECS);
    let mut kills = 0;
    let mut round = 0u64;
    while Instant::now() < end {
        round += 1;
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        // restart the ones whose time is up
        let now = Instant::now();
        let mut still = Vec::new();
        for (n, at, from_slot) in dead.drain(..) {
            if now.duration_since(at) >= Duration::from_secs(3) {
                live.push(bring_back(&http, &beacon, n, from_slot, &mut downtime).await);
            } else {
                still.push((n, at, from_slot));
            }
        }
        dead = still;
        let shard = (round % SHARDS as u64) as u32;
        if dead.iter().any(|(n, _, _)| n.shard == Some(shard)) {
            continue;
        }
        let slot = current_slot(&http, &beacon).await;
        let victim_addr = if round.is_multiple_of(2) {
            spec.proposer(ShardId(shard), slot + 1).unwrap().to_string()
        } else {
            let mates: Vec<&NodeEntry> = live.iter().filter(|n| n.shard == Some(shard)).collect();
            mates[(round as usize / 2) % mates.len()].address.clone()
        };
        let Some(i) = live.iter().position(|n| n.address == victim_addr) else { continue };
        let victim = live.remove(i);
        kill9(victim.pid);
        kills += 1;
        dead.push((victim, Instant::now(), slot));
    }
    for (n, _, from_slot) in dead.drain(..) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        live.push(bring_back(&http, &beacon, n, from_slot, &mut downtime).await);
    }
    let chaos_end_slot = current_slot(&http, &beacon).await;
    assert!(kills >= 15, "only {kills} kills");
    // let the load finish what it started, then settle
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        let _ = tokio::time::timeout(Duration::from_secs(40), l).await;
    }
    let settle = current_slot(&http, &beacon).await;
    wait_for("every validator at the beacon's head", 60, || async {
        let heads = rpc(&http, &beacon, "beacon_head", json!([])).await;
        let mut ok = true;
        for v in &live {
            let want = heads["heads"][v.shard.unwrap() as usize]["height"].as_u64().unwrap();
            let have = crate::local_testnet::height(&http, &v.rpc_url).await.unwrap_or(0);
            ok &= have >= want && current_slot(&http, &beacon).await > settle + 3;
        }
        ok
    })
    .await;

    // every shard advanced
    let heads = rpc(&http, &beacon, "beacon_head", json!([])).await;
    for s in 0..SHARDS as usize {
        let h = heads["heads"][s]["height"].as_u64().unwrap();
        assert!(h >= start_heights[s] + 20, "shard {s} advanced only from {} to {h}", start_heights[s]);
    }

    // no shard stalled more than 3 slots in a row while its scheduled proposer was up
    let is_down = |addr: &str, slot: u64| {
        downtime.get(addr).is_some_and(|spans| spans.iter().any(|(a, b)| slot >= *a && slot <= *b))
    };
    for s in 0..SHARDS {
        let included: std::collections::HashSet<u64> =
            accepted_slots(&http, &beacon, s, start_heights[s as usize]).await.into_iter().collect();
        let mut run = 0;
        let mut worst = (0, 0);
        for slot in chaos_start_slot..chaos_end_slot {
            let proposer = spec.proposer(ShardId(s), slot).unwrap().to_string();
            if included.contains(&slot) || is_down(&proposer, slot) {
                run = 0;
            } else {
                run += 1;
                if run > worst.0 {
                    worst = (run, slot);
                }
            }
        }
        assert!(
            worst.0 <= 3,
            "shard {s} missed {} slots in a row (to slot {}) with its proposer up",
            worst.0,
            worst.1
        );
    }

    // every validator of a shard agrees on every block and root
    for s in 0..SHARDS {
        let members: Vec<&NodeEntry> = live.iter().filter(|n| n.shard == Some(s)).collect();
        let top = heads["heads"][s as usize]["height"].as_u64().unwrap();
        let mut by_height: BTreeMap<u64, (Value, Value)> = BTreeMap::new();
        for n in &members {
            for h in 1..=top {
                let b =
                    rpc(&http, &n.rpc_url, "eth_getBlockByNumber", json!([format!("0x{h:x}"), false])).await;
                let got = (b["hash"].clone(), b["stateRoot"].clone());
                let want = by_height.entry(h).or_insert_with(|| got.clone());
                assert_eq!(*want, got, "shard {s} validators disagree at height {h}");
            }
        }
    }

    // receipts: safe ones are where they were; every served one is included somewhere
    let served = served.lock().unwrap().clone();
    assert!(served.len() >= 200, "only {} receipts served under load", served.len());
    let mut moved = 0;
    for (hash, sv) in &served {
        let url = &live.iter().find(|n| n.shard == Some(sv.shard)).unwrap().rpc_url;
        let r = rpc(&http, url, "eth_getTransactionReceipt", json!([hash])).await;
        assert!(
            !r.is_null(),
            "transaction {hash} had a receipt (block {}) and is now nowhere",
            sv.block_number
        );
        if sv.safe {
            assert_eq!(
                r["blockHash"].as_str().unwrap(),
                sv.block_hash,
                "{hash} was in a safe block and moved"
            );
        } else if r["blockHash"].as_str().unwrap() != sv.block_hash {
            moved += 1;
        }
    }
    eprintln!(
        "chaos: {kills} kills over slots {chaos_start_slot}..{chaos_end_slot}, {} receipts served, {moved} re-included elsewhere",
        served.len()
    );
}
