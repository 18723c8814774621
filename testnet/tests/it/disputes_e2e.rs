//! Fraud proofs through real processes: `testnet up --byzantine` makes a
//! validator of shard 1 commit wrong receipts; an honest challenger (its
//! shard-mate's, over libp2p) disputes, the beacon referees, the header is
//! discarded and the liar slashed — all read back over JSON-RPC, the CLI
//! and metrics.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use testnet::Manifest;

use crate::local_testnet::{call, free_base_port, optishard, rpc, run_scenario, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byzantine_validator_is_disputed_slashed_and_its_header_discarded() {
    run_scenario(180, |dir| async move { scenario(&dir).await }).await;
}

async fn scenario(dir: &Path) {
    let d = dir.to_str().unwrap();
    let base = free_base_port(9).to_string();
    let up = optishard(&[
        "testnet",
        "up",
        "--shards",
        "2",
        "--validators-per-shard",
        "2",
        "--slot-ms",
        "400",
        "--challenge-window-slots",
        "60",
        "--challengers",
        "1",
        "--byzantine",
        "shard=1,validator=0,fault=wrong-receipt",
        "--datadir",
        d,
        "--base-port",
        &base,
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let m: Manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m.byzantine.len(), 1, "the manifest records the byzantine validator");
    assert!(m.nodes.iter().any(|n| n.role == "challenger"), "a standalone challenger runs");
    let beacon = m.nodes.iter().find(|n| n.role == "beacon").unwrap().rpc_url.clone();
    let liar = m.nodes.iter().find(|n| n.name == "shard1-v0").unwrap();
    let honest = m.nodes.iter().find(|n| n.name == "shard1-v1").unwrap();
    let http = reqwest::Client::new();
    let signer = shard::dev_accounts().remove(5).0;
    let shard0 = m.nodes.iter().find(|n| n.name == "shard0-v1").unwrap();
    let urls = [shard0.rpc_url.clone(), honest.rpc_url.clone()];
    let chain_ids = [shard0.chain_id.unwrap(), honest.chain_id.unwrap()];

    // cross-shard transfers both ways (shard 1's blocks consume shard 0's
    // messages, and the other way round) until a game against the liar ended
    let mut nonces = [0u64; 2];
    let mut sent_to_1: Vec<String> = Vec::new();
    let mut included_at: std::collections::HashMap<String, String> = Default::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let game = loop {
        for src in 0..2usize {
            use alloy_sol_types::SolCall;
            let data = prover::IBridge::sendCall {
                dstShard: 1 - src as u32,
                to: alloy_primitives::Address::repeat_byte(0x51),
                data: Default::default(),
            }
            .abi_encode();
            let raw = testnet::sign_call(
                &signer,
                chain_ids[src],
                nonces[src],
                alloy_primitives::TxKind::Call(bridge::BRIDGE_ADDRESS),
                alloy_primitives::U256::from(1_000u64),
                data.into(),
                300_000,
            );
            let hex_raw = format!("0x{}", hex::encode(&raw));
            if let Ok(hash) = call(&http, &urls[src], "eth_sendRawTransaction", json!([hex_raw])).await {
                nonces[src] += 1;
                if src == 1 {
                    sent_to_1.push(hash.as_str().unwrap_or_default().to_string());
                }
            }
        }
        // where the liar's node has each transaction now (its block may
        // be the one the game discards)
        for h in &sent_to_1 {
            if let Ok(rc) = call(&http, &liar.rpc_url, "eth_getTransactionReceipt", json!([h])).await
                && let Some(block) = rc["blockHash"].as_str()
            {
                included_at.insert(h.clone(), block.to_string());
            }
        }
        let games = call(&http, &beacon, "beacon_games", json!([1, "ended"])).await.unwrap_or(Value::Null);
        let won = games.as_array().into_iter().flatten().find(|g| {
            g["record"]["defender"] == liar.address
                && g["record"]["ended"][1]["outcome"]["reason"] == "step_refuted"
        });
        if let Some(g) = won {
            break g.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no game against the liar ended; games: {games}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let r = &game["record"];
    assert_ne!(r["challenger"], liar.address);
    assert_eq!(r["ended"][1]["outcome"]["winner"], "challenger");
    let (items, rounds) = (r["items"].as_u64().unwrap(), r["game"]["rounds"].as_u64().unwrap());
    assert_eq!(rounds, u64::from(bridge::game::Game::rounds_for(items, 4)), "{game}");
    assert_eq!(game["step"]["verdict"], "refuted");
    assert!(game["step"]["witnessBytes"].as_u64().unwrap() > 0);
    assert!(game["moves"].as_array().unwrap().iter().any(|m| m["action"] == "open"));
    // the beacon_game RPC gives the same game
    let one = rpc(&http, &beacon, "beacon_game", json!([r["id"]])).await;
    assert_eq!(one["record"]["id"], r["id"]);
    // the header shows as discarded, proven by that game
    let status = rpc(&http, &beacon, "beacon_headerStatus", json!([1, r["height"]])).await;
    let discarded = status["discarded"].as_array().unwrap();
    assert!(
        discarded.iter().any(|x| x["hash"] == r["header"] && x["game"] == r["id"] && x["proven"] == true),
        "{status}"
    );
    // the liar is slashed, the winner rewarded
    let bonds = rpc(&http, &beacon, "beacon_bonds", json!([])).await;
    assert!(bonds["parties"][liar.address.as_str()]["slashed"].as_u64().unwrap() > 0, "{bonds}");
    let winner = r["challenger"].as_str().unwrap();
    assert!(bonds["parties"][winner]["rewarded"].as_u64().unwrap() > 0);
    assert!(bonds["treasury"].as_u64().unwrap() > 0);
    // metrics, status and the audit
    let metrics = http
        .get(&m.nodes.iter().find(|n| n.role == "beacon").unwrap().metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "optishard_beacon_games_ended_total{outcome=\"step_refuted\",winner=\"challenger\",level=\"1\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("optishard_beacon_invalidated_headers_total{why=\"proven\"}"));
    let st = optishard(&["testnet", "status", "--datadir", d, "--json"]);
    assert!(st.status.success(), "{}", text(&st));
    let st: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["byzantine"][0]["fault"], "wrong-receipt");
    assert!(st["open_games"].is_array());
    // the beacon block that settled it discarded the header (and, when shard
    // 0 had consumed its messages, shard 0's consuming blocks: a cascade)
    let settled = r["ended"][0].as_u64().unwrap();
    let block = rpc(&http, &beacon, "beacon_getBlock", json!([settled])).await;
    let inv = block["invalidated"].as_array().unwrap();
    assert!(
        inv.iter().any(|i| i["shard"] == 1 && i["header"] == r["header"] && i["cause"].is_null()),
        "{block}"
    );
    for i in inv.iter().filter(|i| i["shard"] == 0) {
        assert_eq!(i["cause"][0], 1, "shard 0 was discarded for consuming shard 1's messages: {i}");
    }
    // shard 1 continues past the discarded height
    let height = r["height"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while rpc(&http, &beacon, "beacon_head", json!([])).await["heads"][1]["height"].as_u64().unwrap()
        <= height
    {
        assert!(std::time::Instant::now() < deadline, "shard 1 did not continue");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let audit = optishard(&["testnet", "audit", "--datadir", d]);
    assert!(audit.status.success(), "{}", text(&audit));
    // every transaction last seen in a block the beacon discarded shows, on
    // the liar's node, that it was reverted, and its new fate (whether any
    // landed there depends on timing, which the protocol does not promise)
    let head1 = rpc(&http, &beacon, "beacon_head", json!([])).await["heads"][1]["height"].as_u64().unwrap();
    let mut discarded_blocks = std::collections::HashSet::new();
    for h in height..=head1 {
        let st = rpc(&http, &beacon, "beacon_headerStatus", json!([1, h])).await;
        for d in st["discarded"].as_array().into_iter().flatten() {
            discarded_blocks.insert(d["hash"].as_str().unwrap_or_default().to_string());
        }
    }
    assert!(discarded_blocks.contains(r["header"].as_str().unwrap()));
    for (h, block) in included_at.iter().filter(|(_, b)| discarded_blocks.contains(*b)) {
        let st = rpc(&http, &liar.rpc_url, "optishard_getTransactionStatus", json!([h])).await;
        assert!(!st["revertedFrom"].is_null(), "{h} was in discarded block {block}: {st}");
        assert!(["included", "reverted", "dropped"].contains(&st["status"].as_str().unwrap()), "{st}");
    }
}

/// Without an honest challenger (`--challengers 0`, every validator's
/// challenger off) a lie becomes final, and `testnet audit` says so: it
/// names the final header an honest validator's re-execution refutes and
/// exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_challenger_the_audit_reports_the_invalid_header_that_became_final() {
    run_scenario(120, |dir| async move { unchallenged(&dir).await }).await;
}

async fn unchallenged(dir: &Path) {
    let d = dir.to_str().unwrap();
    let base = free_base_port(5).to_string();
    let up = optishard(&[
        "testnet",
        "up",
        "--shards",
        "1",
        "--validators-per-shard",
        "2",
        "--slot-ms",
        "300",
        "--challenge-window-slots",
        "10",
        "--challengers",
        "0",
        "--no-challenger",
        "--byzantine",
        "shard=0,validator=0,fault=wrong-state-root",
        "--datadir",
        d,
        "--base-port",
        &base,
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let m: Manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(m.nodes.iter().all(|n| n.role != "challenger"));
    let beacon = m.nodes.iter().find(|n| n.role == "beacon").unwrap().rpc_url.clone();
    let honest = m.nodes.iter().find(|n| n.name == "shard0-v1").unwrap().rpc_url.clone();
    let http = reqwest::Client::new();
    // the honest validator refutes a lying header, which then becomes final
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mm = call(&http, &honest, "optishard_mismatches", json!([])).await.unwrap_or(Value::Null);
        let fin = call(&http, &beacon, "beacon_head", json!([])).await.unwrap_or(Value::Null)["finalized"][0]
            .as_u64()
            .unwrap_or(0);
        if mm.as_array().into_iter().flatten().any(|x| x["height"].as_u64().is_some_and(|h| h <= fin)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no refuted header became final: {mm}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let games = rpc(&http, &beacon, "beacon_games", json!([])).await;
    assert_eq!(games, json!([]), "nobody disputed");
    let audit = optishard(&["testnet", "audit", "--datadir", d]);
    assert!(!audit.status.success(), "{}", text(&audit));
    assert!(text(&audit).contains("INVALID FINAL HEADER: shard 0"), "{}", text(&audit));
}
