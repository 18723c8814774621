//! A validator (or follower) as a process: p2p, the slot clock driving
//! [`Validator`], JSON-RPC and metrics ([`start_validator`], [`start_node`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bridge::{ChainSpec, ValidatorKey};
use net::prometheus_client::registry::Registry;
use net::{NetMetrics, P2pConfig, P2pNetwork, Topic, now_ms};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::info;

use crate::config::ShardConfig;
use crate::dispute::{AgentMode, DisputeAgent};
use crate::node::ShardNode;
use crate::validator::{PROPOSAL_DELAY_MS, Validator};
use crate::{Error, Result};

/// A running validator process.
pub struct ValidatorHandle {
    /// The node.
    pub node: Arc<ShardNode>,
    /// JSON-RPC address.
    pub rpc_addr: SocketAddr,
    /// Metrics address.
    pub metrics_addr: SocketAddr,
    /// p2p addresses (with `/p2p/<id>`).
    pub p2p_addrs: Vec<net::Multiaddr>,
    tasks: net::NodeTasks,
}

impl ValidatorHandle {
    /// Stops the node and waits for it.
    pub async fn stop(self) {
        self.tasks.stop().await;
    }
}

/// Runs a validator (or, without a key, a follower) of `config.shard` on
/// the network `spec` describes: p2p, slot clock, JSON-RPC and metrics.
pub async fn start_validator(
    spec: ChainSpec,
    key: Option<ValidatorKey>,
    config: ShardConfig,
) -> Result<ValidatorHandle> {
    start_node(spec, key, None, config).await
}

/// Runs a validator (`key`) or a follower of `config.shard`, with a dispute
/// agent signing with `agent_key` (a standalone challenger's follower) or,
/// for a validator, its own key.
pub async fn start_node(
    spec: ChainSpec,
    key: Option<ValidatorKey>,
    agent_key: Option<ValidatorKey>,
    mut config: ShardConfig,
) -> Result<ValidatorHandle> {
    spec.validate().map_err(Error::Config)?;
    config.chain_id_base = spec.chain_id_base;
    config.shards = spec.shards;
    config.genesis_timestamp = Some(spec.genesis_time_ms / 1000);
    let node = ShardNode::open(config.clone())?;
    let mut registry = Registry::default();
    let net_metrics = NetMetrics::default();
    net_metrics.register(&mut registry);
    node.metrics().register(&mut registry);
    let mut p2p =
        P2pConfig::for_node(&config.datadir, config.p2p_ip, config.p2p_port, &config.bootnodes, spec.hash())
            .map_err(Error::Config)?;
    // joined before any connection (Validator::new subscribes the same)
    p2p.topics = vec![Topic::ShardBlocks(config.shard), Topic::ShardTxs(config.shard), Topic::BeaconBlocks];
    let (net, mut events) = P2pNetwork::start(p2p, net_metrics).await.map_err(Error::Rpc)?;
    let p2p_addrs = net.listen_addrs();
    node.set_fault(config.fault, config.fault_rate_percent);
    let (challenger_tx, mut challenger_rx) = tokio::sync::mpsc::unbounded_channel();
    // the loop keeps a sender, so without the admin RPC the channel stays open and quiet
    let challenger_keep = challenger_tx.clone();
    let admin = config.admin_rpc.then(|| crate::rpc::Admin { net: net.clone(), challenger: challenger_tx });
    let mut validator = Validator::new(node.clone(), net, spec.clone(), key)?;
    validator.set_challenger(config.challenger);
    if let Some(k) = agent_key {
        if spec.bonded().iter().all(|(a, _)| *a != k.address()) {
            return Err(Error::Config(format!(
                "challenger key {} has no bond in the genesis registry",
                k.address()
            )));
        }
        validator.set_agent(Some(DisputeAgent::new(k, &spec, config.shard, AgentMode::default())));
    }
    validator.observe_slot(spec.slot_at(now_ms()));
    let (rpc_addr, rpc, rpc_metrics) =
        crate::rpc::serve(node.clone(), Some(validator.status()), admin).await?;
    rpc_metrics.register(&mut registry);
    let metrics_srv = net::serve_metrics(config.metrics_addr, Arc::new(Mutex::new(registry)))
        .await
        .map_err(|e| Error::Config(format!("metrics on {}: {e}", config.metrics_addr)))?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let _challenger_keep = challenger_keep;
        let mut slot = spec.slot_at(now_ms());
        let mut flush = tokio::time::interval(Duration::from_millis(50));
        // a slot's work starts a moment after its boundary: the beacon seals
        // the previous slot's block at that boundary, and the relay's fetch
        // of the messages it commits can then make this slot's block
        let delay = (spec.slot_ms / 10).min(PROPOSAL_DELAY_MS);
        loop {
            let wait = (spec.slot_start_ms(slot + 1) + delay).saturating_sub(now_ms());
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => tokio::task::block_in_place(|| {
                        // the clock, not the last tick, judges a block's slot
                        // (a busy node's tick can run late)
                        validator.observe_slot(spec.slot_at(now_ms()));
                        validator.on_event(ev)
                    }),
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {
                    slot = (slot + 1).max(spec.slot_at(now_ms()));
                    tokio::task::block_in_place(|| validator.on_slot(slot));
                }
                _ = flush.tick() => validator.flush_txs(),
                Some(on) = challenger_rx.recv() => validator.set_challenger(on),
                _ = stopped.changed() => break,
            }
        }
    });
    info!(target: "shard", shard = %config.shard, %rpc_addr, metrics = %metrics_srv.addr, p2p = ?p2p_addrs, "validator started");
    Ok(ValidatorHandle {
        node,
        rpc_addr,
        metrics_addr: metrics_srv.addr,
        p2p_addrs,
        tasks: net::NodeTasks::new(stop, task, rpc, metrics_srv),
    })
}
