//! Plumbing every node process shares: its p2p identity and settings, the
//! wall clock, and the handle that stops its tasks and servers.

use std::net::IpAddr;
use std::path::Path;

use bridge::Hash;
use tokio::sync::watch;

use crate::{MetricsServer, Multiaddr, P2pConfig};

/// Unix time in milliseconds (the only wall clock node processes read).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Parses bootnode multiaddrs.
pub fn parse_bootnodes(list: &[String]) -> Result<Vec<Multiaddr>, String> {
    list.iter().map(|s| s.parse().map_err(|e| format!("bootnode {s:?}: {e}"))).collect()
}

/// Reads `DIR/p2p.key` (hex ed25519 secret), creating it on first start, so
/// a node keeps its peer id across restarts.
pub fn load_or_create_p2p_key(datadir: &Path) -> Result<[u8; 32], String> {
    let path = datadir.join("p2p.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key)
            .map_err(|_| format!("{} is not a 32-byte hex key", path.display()))?;
        return Ok(key);
    }
    let key: [u8; 32] = rand::random();
    std::fs::write(&path, hex::encode(key)).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(key)
}

impl P2pConfig {
    /// A node process's p2p settings: identity from `DIR/p2p.key`, TCP and
    /// QUIC on `ip:port`, the given bootnodes.
    pub fn for_node(
        datadir: &Path,
        ip: IpAddr,
        port: u16,
        bootnodes: &[String],
        network: Hash,
    ) -> Result<Self, String> {
        let mut cfg = P2pConfig::new(load_or_create_p2p_key(datadir)?, network, ip, port);
        cfg.bootnodes = parse_bootnodes(bootnodes)?;
        Ok(cfg)
    }
}

/// A node process's running parts: its event loop, JSON-RPC server and
/// metrics endpoint.
pub struct NodeTasks {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    rpc: jsonrpsee::server::ServerHandle,
    metrics: MetricsServer,
}

impl NodeTasks {
    /// Bundles the parts; `stop` is what the event loop watches.
    pub fn new(
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
        rpc: jsonrpsee::server::ServerHandle,
        metrics: MetricsServer,
    ) -> Self {
        NodeTasks { stop, task, rpc, metrics }
    }

    /// Stops everything and waits for the event loop.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.rpc.stop();
        self.rpc.stopped().await;
        self.metrics.stop();
        let _ = self.task.await;
    }
}
