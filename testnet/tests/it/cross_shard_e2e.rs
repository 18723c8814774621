//! Cross-shard messages through the real binary: `testnet up` with four
//! shards, transactions over JSON-RPC, statuses walking to `finalized`.

use std::path::Path;
use std::time::Duration;

use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_sol_types::{SolCall, SolEvent, sol};
use bridge::BRIDGE_ADDRESS;
use prover::IBridge;
use serde_json::{Value, json};
use testnet::Manifest;

use crate::local_testnet::{call, free_base_port, optishard, rpc, run_scenario, text, wait_for};

sol! {
    interface IPinger {
        function ping(uint32 dst, address to, bytes data) external payable returns (bytes32);
        function pings() external view returns (uint256);
        event Pinged(uint32 srcShard, address sender, uint256 value, bytes data);
    }
}

// the published ABI, as any alloy client would load it (the generated event
// constructor takes one argument per field)
#[allow(clippy::too_many_arguments)]
mod published {
    alloy_sol_types::sol!(PublishedBridge, "../contracts/IBridge.json");
}
use published::PublishedBridge;

const ETH: u128 = 1_000_000_000_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_calls_and_refunds_cross_shards_and_finalize() {
    run_scenario(240, |dir| async move { scenario(&dir).await }).await;
}

struct Net {
    http: reqwest::Client,
    urls: Vec<String>,
    chain_ids: Vec<u64>,
    nonces: std::collections::HashMap<(usize, usize), u64>,
}

impl Net {
    /// Signs and sends a transaction from dev account `from` on `shard`;
    /// returns its receipt once included.
    async fn send(&mut self, shard: usize, from: usize, to: TxKind, value: u128, data: Vec<u8>) -> Value {
        let signer = shard::dev_accounts().remove(from).0;
        let nonce = self.nonces.entry((shard, from)).or_insert(0);
        let raw = testnet::sign_call(
            &signer,
            self.chain_ids[shard],
            *nonce,
            to,
            U256::from(value),
            data.into(),
            2_000_000,
        );
        *nonce += 1;
        let url = &self.urls[shard];
        let hash =
            rpc(&self.http, url, "eth_sendRawTransaction", json!([format!("0x{}", hex::encode(&raw))])).await;
        poll(
            &format!("receipt of {hash}"),
            30,
            || call(&self.http, url, "eth_getTransactionReceipt", json!([hash])),
            |r| !r.is_null(),
        )
        .await
    }

    async fn balance(&self, shard: usize, a: Address) -> U256 {
        let v = rpc(&self.http, &self.urls[shard], "eth_getBalance", json!([a, "latest"])).await;
        U256::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    /// Waits until `optishard_getMessage(id)` on `shard` reports `status`.
    async fn status(&self, shard: usize, id: &str, status: &str, secs: u64) -> Value {
        let url = &self.urls[shard];
        poll(
            &format!("message {id} {status} on shard {shard}"),
            secs,
            || call(&self.http, url, "optishard_getMessage", json!([id])),
            |v| v["status"] == status,
        )
        .await
    }
}

/// Calls `f` until its answer satisfies `done` (errors count as not done).
async fn poll<F, Fut>(what: &str, secs: u64, mut f: F, done: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, Value>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let last = f().await.unwrap_or(Value::Null);
        if done(&last) {
            return last;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {secs}s waiting for {what}: {last}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The id of the message a receipt's `MessageSent` log announces.
fn message_id(receipt: &Value) -> String {
    let log = receipt["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["address"].as_str().unwrap().eq_ignore_ascii_case(&format!("{BRIDGE_ADDRESS:#x}")))
        .expect("a MessageSent log");
    let topic0 = log["topics"][0].as_str().unwrap();
    assert_eq!(topic0, format!("{:#x}", IBridge::MessageSent::SIGNATURE_HASH));
    log["topics"][1].as_str().unwrap().to_string()
}

async fn scenario(dir: &Path) {
    let d = dir.to_str().unwrap();
    let base = free_base_port(9).to_string();
    let args = ["testnet", "up", "--shards", "4", "--validators-per-shard", "2", "--slot-ms", "400"];
    let up = optishard(
        &[&args[..], &["--challenge-window-slots", "8", "--datadir", d, "--base-port", &base]].concat(),
    );
    assert!(up.status.success(), "{}", text(&up));
    let m: Manifest = testnet::cluster::read_manifest(dir).unwrap();
    let spec = testnet::read_spec(&m.genesis).unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let urls: Vec<String> =
        (0..4).map(|s| m.nodes.iter().find(|n| n.shard == Some(s)).unwrap().rpc_url.clone()).collect();
    let chain_ids = (0..4).map(|s| spec.chain_id(bridge::ShardId(s))).collect();
    let mut net = Net { http: http.clone(), urls, chain_ids, nonces: Default::default() };
    wait_for("every shard past height 2", 60, || async {
        let mut ok = true;
        for u in &net.urls {
            ok &= crate::local_testnet::height(&http, u).await.unwrap_or(0) >= 2;
        }
        ok
    })
    .await;

    // 1. a transfer from shard 0 to a fresh address on shard 2, exactly once
    let fresh = Address::repeat_byte(0xf2);
    let send = IBridge::sendCall { dstShard: 2, to: fresh, data: Bytes::new() }.abi_encode();
    let r = net.send(0, 1, TxKind::Call(BRIDGE_ADDRESS), ETH, send).await;
    assert_eq!(r["status"], "0x1", "{r}");
    let id = message_id(&r);
    let on_source = net.status(0, &id, "committed", 20).await;
    assert_eq!(on_source["message"]["dst"], 2);
    // the beacon proves it included the source header
    let src_height = on_source["source"]["height"].as_u64().unwrap();
    let beacon = &m.nodes.iter().find(|n| n.role == "beacon").unwrap().rpc_url;
    let p = rpc(&http, beacon, "beacon_headerProof", json!([0, src_height])).await;
    let inclusion: bridge::HeaderInclusion = serde_json::from_value(p["inclusion"].clone()).unwrap();
    let (root, header): (bridge::Hash, bridge::Hash) = (
        serde_json::from_value(p["stateRoot"].clone()).unwrap(),
        serde_json::from_value(p["headerHash"].clone()).unwrap(),
    );
    assert!(inclusion.verify(&root, &header));
    assert!(!inclusion.verify(&root, &bridge::Hash::of(b"another header")));
    let executed = net.status(2, &id, "executed", 30).await;
    assert_eq!(executed["receipt"]["success"], true);
    assert_eq!(net.balance(2, fresh).await, U256::from(ETH));

    // through the published ABI: sendWithGas, and MessageSent decoded from the receipt
    let fresh2 = Address::repeat_byte(0xf3);
    let call =
        PublishedBridge::sendWithGasCall { dstShard: 3, to: fresh2, gasLimit: 50_000, data: Bytes::new() };
    let r = net.send(0, 1, TxKind::Call(BRIDGE_ADDRESS), ETH / 2, call.abi_encode()).await;
    let log = r["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["topics"][0].as_str() == Some(&format!("{:#x}", PublishedBridge::MessageSent::SIGNATURE_HASH))
        })
        .expect("MessageSent");
    let topics: Vec<alloy_primitives::B256> =
        log["topics"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().parse().unwrap()).collect();
    let data: Bytes = log["data"].as_str().unwrap().parse().unwrap();
    let ev = PublishedBridge::MessageSent::decode_raw_log(topics, &data).unwrap();
    assert_eq!(
        (ev.dstShard, ev.to, ev.value, ev.gasLimit, ev.nonce),
        (3, fresh2, U256::from(ETH / 2), 50_000, 0)
    );
    assert_eq!(ev.sender, shard::dev_accounts()[1].1.address);
    net.status(3, &format!("{:#x}", ev.id), "executed", 30).await;
    assert_eq!(net.balance(3, fresh2).await, U256::from(ETH / 2));

    // 2. a contract on shard 3 calls a contract on shard 1, which checks
    // messageSender(), runs, and emits a log visible on shard 1
    let pinger = hex::decode(include_str!("../../../testdata/contracts/Pinger.bin").trim()).unwrap();
    let p3 = net.send(3, 2, TxKind::Create, 0, pinger.clone()).await;
    let p1 = net.send(1, 2, TxKind::Create, 0, pinger).await;
    let (p3, p1) = (
        p3["contractAddress"].as_str().unwrap().to_string(),
        p1["contractAddress"].as_str().unwrap().to_string(),
    );
    let (p3a, p1a): (Address, Address) = (p3.parse().unwrap(), p1.parse().unwrap());
    let ping = IPinger::pingCall { dst: 1, to: p1a, data: Bytes::from_static(b"hello") }.abi_encode();
    let r = net.send(3, 2, TxKind::Call(p3a), 0, ping).await;
    let ping_id = message_id(&r);
    let executed = net.status(1, &ping_id, "executed", 30).await;
    assert_eq!(executed["receipt"]["success"], true, "{executed}");
    let logs = rpc(&http, &net.urls[1], "eth_getLogs", json!([{"address": p1, "fromBlock": "0x0"}])).await;
    let log = &logs.as_array().unwrap()[0];
    let data = hex::decode(log["data"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let pinged = IPinger::Pinged::abi_decode_data(&data).unwrap();
    assert_eq!((pinged.0, pinged.1), (3, p3a), "messageSender() named shard 3's pinger");

    // 3. a call that reverts on the destination refunds its sender
    let sender = shard::dev_accounts()[4].1.address;
    let before = net.balance(0, sender).await;
    // sent from shard 0 by account 4 straight through the bridge to the pinger's onPing
    let data = IBridge::sendCall { dstShard: 1, to: p1a, data: Bytes::from(on_ping_failing()) }.abi_encode();
    let r = net.send(0, 4, TxKind::Call(BRIDGE_ADDRESS), 2 * ETH, data).await;
    let fail_id = message_id(&r);
    let failed = net.status(1, &fail_id, "executed", 30).await;
    assert_eq!(failed["receipt"]["success"], false);
    let refund = failed["refund"].as_str().expect("a refund id").to_string();
    net.status(0, &refund, "executed", 30).await;
    let fee = U256::from_str_radix(r["gasUsed"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
        * U256::from_str_radix(r["effectiveGasPrice"].as_str().unwrap().trim_start_matches("0x"), 16)
            .unwrap();
    // the node that reported the refund executed may still be adopting
    // the block that holds it as its head (under load): read until it does
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut now = net.balance(0, sender).await;
    while now != before - fee && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = net.balance(0, sender).await;
    }
    assert_eq!(now, before - fee, "the 2 ETH came back");

    // 4. every message walks on to finalized (window: 8 slots)
    for (shard, id) in [(2, &id), (1, &ping_id), (1, &fail_id), (0, &refund)] {
        let v = net.status(shard, id, "finalized", 30).await;
        assert_eq!(v["destination"]["final"], true);
    }
    // the destination's metrics count the channel and time its phases
    let node2 = m.nodes.iter().find(|n| n.shard == Some(2)).unwrap();
    let metrics = http.get(&node2.metrics_url).send().await.unwrap().text().await.unwrap();
    for want in [
        "optishard_shard_messages_consumed_total{src=\"0\",dst=\"2\"}",
        "optishard_shard_message_latency_slots_count{phase=\"executed\"}",
        "optishard_shard_message_latency_slots_count{phase=\"finalized\"}",
        "optishard_shard_inbox_backlog",
    ] {
        assert!(metrics.contains(want), "no {want} in the metrics of {}", node2.name);
    }
    // the audit holds
    let out = optishard(&["testnet", "audit", "--datadir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("holds"), "{}", text(&out));
    // the quick start's demo: a transfer followed stage by stage
    let out = optishard(&["testnet", "demo", "--datadir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    for stage in ["committed", "executed", "balance of"] {
        assert!(text(&out).contains(stage), "no {stage} in:\n{}", text(&out));
    }
}

/// `onPing(0xff)`: the pinger's delivered call that reverts.
pub(crate) fn on_ping_failing() -> Vec<u8> {
    sol! {
        function onPing(bytes data) external payable;
    }
    onPingCall { data: Bytes::from_static(&[0xff]) }.abi_encode()
}
