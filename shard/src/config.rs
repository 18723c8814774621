//! A shard node's settings and genesis: [`ShardConfig`] (serde, so TOML
//! files and `--dump-config` work), the dev accounts, and the genesis state
//! and header every node of a shard computes the same.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, U256};
use bridge::{Hash, ShardHeader, ShardId};
use prover::{AccountState, AuthState, StateKey};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The standard development mnemonic (Hardhat, Foundry, Ganache).
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Ethereum chain id of shard 0; shard `s` uses `base + s`.
pub const DEFAULT_CHAIN_ID_BASE: u64 = 31_337;

/// An account funded at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisAccount {
    /// The account.
    pub address: Address,
    /// Its balance in wei.
    pub balance: U256,
}

/// The ten accounts of [`DEV_MNEMONIC`] (m/44'/60'/0'/0/i), each with 10,000 ETH.
pub fn dev_accounts() -> Vec<(alloy_signer_local::PrivateKeySigner, GenesisAccount)> {
    (0..10u32)
        .map(|i| {
            let signer =
                alloy_signer_local::MnemonicBuilder::<alloy_signer_local::coins_bip39::English>::default()
                    .phrase(DEV_MNEMONIC)
                    .index(i)
                    .and_then(|b| b.build())
                    .expect("the dev mnemonic derives");
            let acct = GenesisAccount {
                address: signer.address(),
                balance: U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18)),
            };
            (signer, acct)
        })
        .collect()
}

/// Settings of a shard node (serde, so TOML files and `--dump-config` work).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShardConfig {
    /// The shard this node runs.
    pub shard: ShardId,
    /// Chain id of shard 0; this shard's is `chain_id_base + shard`.
    pub chain_id_base: u64,
    /// Number of shards in the network (messages go to shards below it;
    /// a validator takes it from the chain spec).
    pub shards: u32,
    /// JSON-RPC listen address.
    pub rpc_addr: SocketAddr,
    /// Data directory (rocksdb lives in `DIR/db`).
    pub datadir: PathBuf,
    /// Block interval.
    pub block_time_ms: u64,
    /// Gas limit of every block.
    pub block_gas_limit: u64,
    /// Most transactions in one block.
    pub max_block_txs: usize,
    /// Most pending transactions.
    pub mempool_max_txs: usize,
    /// Base fee of block 1, in wei.
    pub initial_base_fee: u64,
    /// Receives priority fees.
    pub coinbase: Address,
    /// Accounts funded at genesis.
    pub genesis: Vec<GenesisAccount>,
    /// fsync every block commit (durability against power loss, not only crashes).
    pub fsync: bool,
    /// Largest JSON-RPC request body.
    pub rpc_max_request_bytes: u32,
    /// Most calls in one JSON-RPC batch.
    pub rpc_max_batch: u32,
    /// State versions kept readable (older ones are pruned).
    pub state_history: u64,
    /// Genesis time in unix seconds (a network's nodes must agree; the dev
    /// node uses its first start).
    pub genesis_timestamp: Option<u64>,
    /// Prometheus metrics listen address (validator mode).
    pub metrics_addr: SocketAddr,
    /// p2p listen IP (validator mode).
    pub p2p_ip: std::net::IpAddr,
    /// p2p port, TCP and QUIC (validator mode).
    pub p2p_port: u16,
    /// Multiaddrs of peers to join (validator mode).
    pub bootnodes: Vec<String>,
    /// Run the challenger: open dispute games against accepted headers this
    /// node's re-execution refutes (validator mode; on by default).
    pub challenger: bool,
    /// A byzantine behaviour to play (testnets' fault injection).
    pub fault: Option<crate::Fault>,
    /// Percent of its chances the fault is played at.
    pub fault_rate_percent: u8,
    /// Serve the `admin_*` methods on the JSON-RPC endpoint (off by
    /// default): a scenario runner switches faults, the challenger and
    /// links at runtime through them. Never on a public endpoint.
    pub admin_rpc: bool,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            shard: ShardId(0),
            chain_id_base: DEFAULT_CHAIN_ID_BASE,
            shards: 1,
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            datadir: PathBuf::from("optishard-data"),
            block_time_ms: 500,
            block_gas_limit: 1_000_000_000,
            max_block_txs: 40_000,
            mempool_max_txs: 500_000,
            initial_base_fee: 1_000_000_000,
            coinbase: Address::ZERO,
            genesis: Vec::new(),
            fsync: false,
            rpc_max_request_bytes: 32 << 20,
            rpc_max_batch: 20_000,
            state_history: 256,
            genesis_timestamp: None,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 6060)),
            challenger: true,
            fault: None,
            fault_rate_percent: 100,
            admin_rpc: false,
            p2p_ip: [127, 0, 0, 1].into(),
            p2p_port: 30303,
            bootnodes: Vec::new(),
        }
    }
}

impl ShardConfig {
    /// The shard's Ethereum chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id_base + self.shard.0 as u64
    }

    /// Rejects settings the node cannot run with.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.admin_rpc && !net::admin_bind_allowed(self.rpc_addr.ip()) {
            return bad("admin_rpc serves the admin_* methods only on a loopback or private rpc_addr");
        }
        if self.block_time_ms == 0 {
            return bad("block_time_ms must be > 0");
        }
        if self.block_gas_limit < 21_000 {
            return bad("block_gas_limit must be at least 21000");
        }
        if self.max_block_txs == 0 || self.mempool_max_txs == 0 {
            return bad("max_block_txs and mempool_max_txs must be > 0");
        }
        if self.state_history == 0 {
            return bad("state_history must be > 0");
        }
        if self.shard.0 >= self.shards {
            return bad("shard must be below shards");
        }
        // an empty account cannot exist since EIP-161 (a touch deletes it),
        // and level 2's journal relies on there being none (`prover::machine`
        // reverts RIPEMD-160's touch as any other)
        if let Some(a) = self.genesis.iter().find(|a| a.balance.is_zero()) {
            return Err(Error::Config(format!(
                "genesis account {} has no balance: an empty account cannot be in genesis (EIP-161)",
                a.address
            )));
        }
        Ok(())
    }
}

pub(crate) fn genesis(
    config: &ShardConfig,
    state: &AuthState,
) -> Result<(ShardHeader, prover::PreparedVersion)> {
    let mut changes = prover::system_accounts();
    for acct in &config.genesis {
        let a = AccountState { balance: acct.balance, ..Default::default() };
        changes.insert(StateKey::Account(acct.address), Some(a.encode()));
    }
    let prepared = state.prepare(0, &changes)?;
    let header = ShardHeader {
        shard: config.shard,
        height: 0,
        parent_hash: Hash::ZERO,
        timestamp: config.genesis_timestamp.unwrap_or_else(now_secs),
        pre_state_root: prepared.root,
        items_root: bridge::merkle_root(&[]),
        post_state_root: prepared.root,
        outbox_root: bridge::merkle_root(&[]),
        receipts_root: bridge::merkle_root(&[]),
        trace_root: bridge::TraceCommitment::start(prepared.root).hash(),
        gas_limit: config.block_gas_limit,
        base_fee: config.initial_base_fee,
        ..Default::default()
    };
    Ok((header, prepared))
}

/// The genesis header a node with `config` writes (computed in memory):
/// what a network's [`ChainSpec::shard_genesis`] lists.
pub fn genesis_header(config: &ShardConfig) -> Result<ShardHeader> {
    config.validate()?;
    let state = AuthState::new(std::sync::Arc::new(prover::MemStore::default()));
    Ok(genesis(config, &state)?.0)
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
