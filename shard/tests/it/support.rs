use std::time::Duration;

use shard::{NodeHandle, ShardConfig, dev_accounts};

/// A dev node on a free port in a temporary directory, making a block
/// every `block_time_ms`.
async fn dev_node_every(dir: &tempfile::TempDir, block_time_ms: u64) -> NodeHandle {
    let cfg = ShardConfig {
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        datadir: dir.path().to_path_buf(),
        block_time_ms,
        genesis: dev_accounts().into_iter().map(|(_, g)| g).collect(),
        rpc_max_request_bytes: 1 << 20,
        ..ShardConfig::default()
    };
    tokio::time::timeout(Duration::from_secs(30), shard::start(cfg))
        .await
        .expect("start in time")
        .expect("node starts")
}

/// A dev node making a block every 100 ms.
pub(crate) async fn dev_node(dir: &tempfile::TempDir) -> NodeHandle {
    dev_node_every(dir, 100).await
}

/// A dev node that makes blocks only when the test calls
/// `handle.node.produce_block()` (its timer is an hour).
pub(crate) async fn manual_dev_node(dir: &tempfile::TempDir) -> NodeHandle {
    dev_node_every(dir, 3_600_000).await
}

fn compiled(hex: &str) -> alloy_primitives::Bytes {
    alloy_primitives::Bytes::from(hex::decode(hex.trim()).unwrap())
}

pub(crate) fn store_bin() -> alloy_primitives::Bytes {
    compiled(include_str!("../../../testdata/contracts/Store.bin"))
}

pub(crate) fn clock_bin() -> alloy_primitives::Bytes {
    compiled(include_str!("../../../testdata/contracts/Clock.bin"))
}

/// Wall-clock milliseconds (tests that play with block timestamps).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
