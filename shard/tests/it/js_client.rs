//! A standard JavaScript client on its defaults (ethers v6, installed by
//! `scripts/setup.sh` from npm) drives the dev node with Uniswap V2's
//! published contracts (`testdata/js/uniswap.cjs`): deploy, calls,
//! estimate-then-send of writes whose gas depends on the block's timestamp,
//! swaps, logs, a revert reason and a transaction past the old witness budget.

use std::path::PathBuf;
use std::time::Duration;

use shard::dev_accounts;

use crate::support::{manual_dev_node, now_ms};

fn tools() -> PathBuf {
    std::env::var_os("OPTISHARD_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/optishard-tools")
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn ethers_with_uniswap_v2_works_unchanged() {
    let modules = tools().join("node_modules");
    assert!(
        modules.join("ethers").exists() && modules.join("@uniswap/v2-core").exists(),
        "ethers and @uniswap/v2-core are not in {}: run scripts/setup.sh",
        modules.display()
    );
    let dir = tempfile::tempdir().unwrap();
    // the dev chain as scripts/dev-node.sh runs it, a block every 500 ms,
    // here at .1 and .6 of each second: the client sees a block early in
    // its second and estimates the next transaction within it
    let node = manual_dev_node(&dir).await;
    let producer = {
        let node = node.node.clone();
        tokio::spawn(async move {
            loop {
                let ms = now_ms() % 500;
                tokio::time::sleep(Duration::from_millis((600 - ms) % 500 + 1)).await;
                let n = node.clone();
                tokio::task::spawn_blocking(move || n.produce_block()).await.unwrap().unwrap();
            }
        })
    };
    let (signer, _) = dev_accounts().remove(0);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/js/uniswap.cjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://{}", node.rpc_addr))
        .arg(format!("0x{}", hex::encode(signer.to_bytes())))
        .env("NODE_PATH", &modules)
        .kill_on_drop(true)
        .output();
    let out =
        tokio::time::timeout(Duration::from_secs(240), run).await.expect("the client finishes").unwrap();
    producer.abort();
    node.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ethers run failed:\n{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(r["chainId"], 31_337);
    let syncs = r["syncs"].as_array().unwrap();
    assert_eq!(syncs.len(), 4);
    for s in syncs {
        assert!(s["used"].as_u64().unwrap() <= s["estimate"].as_u64().unwrap(), "{s}");
    }
    // the case that needs the next block's context: estimated in the
    // second of the write before it, landed in a later one (each sync
    // checked it landed later and succeeded)
    assert!(
        syncs.iter().any(|s| s["sameSecond"] == true),
        "a round estimated within the write's second: {syncs:?}"
    );
    assert_eq!(r["swaps"].as_array().unwrap().len(), 4);
    assert_eq!(r["syncLogs"], 13);
    assert_eq!(r["revertReason"], "UniswapV2: INSUFFICIENT_OUTPUT_AMOUNT");
    // 80 cold BALANCEs: 80 × 2,600 gas besides the call, as on Ethereum
    let (estimate, used) = (r["wide"]["estimate"].as_u64().unwrap(), r["wide"]["used"].as_u64().unwrap());
    assert!(used > 80 * 2_600 && used <= estimate, "{}", r["wide"]);
}
