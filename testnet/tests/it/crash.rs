//! SIGKILL while the node accepts transactions loses nothing it reported.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use serde_json::{Value, json};

/// The node process, SIGKILLed when dropped (also when the test panics).
struct Node(Child);

impl Node {
    fn sigkill(&mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(datadir: &std::path::Path) -> (Node, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_optishard"))
        .args(["shard", "--dev", "--rpc-addr", "127.0.0.1:0", "--block-time-ms", "50", "--datadir"])
        .arg(datadir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("node prints its RPC address").unwrap();
        if let Some(u) = line.strip_prefix("JSON-RPC: ") {
            break u.to_string();
        }
    };
    // keep draining stdout so the node never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    (Node(child), url)
}

async fn rpc(http: &reqwest::Client, url: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: Value = http.post(url).json(&body).send().await.unwrap().json().await.unwrap();
    v["result"].clone()
}

fn transfer(nonce: u64) -> String {
    let (signer, _) = shard::dev_accounts().remove(2);
    let tx = TxEip1559 {
        chain_id: 31_337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::left_padding_from(&(nonce + 1).to_be_bytes())),
        value: U256::from(nonce + 1),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    format!("0x{}", hex::encode(TxEnvelope::from(tx.into_signed(sig)).encoded_2718()))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_while_accepting_transactions_loses_nothing_reported() {
    let _one_at_a_time = crate::timing_sensitive().await;
    tokio::time::timeout(Duration::from_secs(240), scenario()).await.expect("finishes in time");
}

async fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let (mut child, url) = start(dir.path());
    let mut sent = Vec::new();
    let mut included: BTreeMap<String, (Value, Value)> = BTreeMap::new();
    let mut roots: BTreeMap<u64, Value> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // send, and record what the node reports as included, until enough is
    // included and more is still in flight
    let mut nonce = 0u64;
    while included.len() < 200 || sent.len() <= included.len() {
        assert!(Instant::now() < deadline, "node too slow: {} included", included.len());
        for _ in 0..20 {
            let h = rpc(&http, &url, "eth_sendRawTransaction", json!([transfer(nonce)])).await;
            sent.push(h.as_str().expect("accepted").to_string());
            nonce += 1;
        }
        for h in sent.iter().rev().take(60) {
            if included.contains_key(h) {
                continue;
            }
            let r = rpc(&http, &url, "eth_getTransactionReceipt", json!([h])).await;
            if !r.is_null() {
                included.insert(h.clone(), (r["blockNumber"].clone(), r["blockHash"].clone()));
            }
        }
        let b = rpc(&http, &url, "eth_getBlockByNumber", json!(["latest", false])).await;
        let n = u64::from_str_radix(b["number"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        roots.insert(n, b["stateRoot"].clone());
    }
    child.sigkill();

    let (mut child, url) = start(dir.path());
    for (h, (number, hash)) in &included {
        let r = rpc(&http, &url, "eth_getTransactionReceipt", json!([h])).await;
        assert!(!r.is_null(), "transaction {h} was reported included and is gone");
        assert_eq!((&r["blockNumber"], &r["blockHash"]), (number, hash), "{h} moved");
    }
    for (n, root) in &roots {
        let b = rpc(&http, &url, "eth_getBlockByNumber", json!([format!("0x{n:x}"), false])).await;
        assert_eq!(&b["stateRoot"], root, "state root of block {n} changed");
    }
    // and it keeps going from there: the next nonce is accepted
    let next =
        rpc(&http, &url, "eth_getTransactionCount", json!([shard::dev_accounts()[2].1.address, "latest"]))
            .await;
    let next = u64::from_str_radix(next.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert!(next >= included.len() as u64);
    let h = rpc(&http, &url, "eth_sendRawTransaction", json!([transfer(next)])).await;
    assert!(h.is_string());
    child.sigkill();
}
