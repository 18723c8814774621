use std::time::Duration;

use shard::{NodeHandle, ShardConfig, dev_accounts};

/// A dev node on a free port in a temporary directory.
pub(crate) async fn dev_node(dir: &tempfile::TempDir) -> NodeHandle {
    let cfg = ShardConfig {
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        datadir: dir.path().to_path_buf(),
        block_time_ms: 100,
        genesis: dev_accounts().into_iter().map(|(_, g)| g).collect(),
        rpc_max_request_bytes: 1 << 20,
        ..ShardConfig::default()
    };
    tokio::time::timeout(Duration::from_secs(30), shard::start(cfg))
        .await
        .expect("start in time")
        .expect("node starts")
}

pub(crate) fn store_bin() -> alloy_primitives::Bytes {
    let hex = include_str!("../../../testdata/contracts/Store.bin");
    alloy_primitives::Bytes::from(hex::decode(hex.trim()).unwrap())
}
