//! The dev node: one shard, one proposer, blocks at a fixed interval from
//! the mempool, persisted in rocksdb.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_eips::eip1559::{BaseFeeParams, calc_next_block_base_fee};
use alloy_primitives::{Address, B256, U256};
use bridge::{Address as BAddress, Hash, ShardHeader, ShardId};
use parking_lot::{Mutex, RwLock};
use prover::{
    AccountState, AuthState, BlockParams, ChangeSet, Item, Mode, SignedTx, StateKey, execute_items,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::mempool::Mempool;
use crate::store::{ShardDb, StoredBody};
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
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            shard: ShardId(0),
            chain_id_base: DEFAULT_CHAIN_ID_BASE,
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
        Ok(())
    }
}

/// The head of the chain.
#[derive(Clone, Debug)]
pub struct Head {
    /// The last committed header.
    pub header: ShardHeader,
    /// Its hash.
    pub hash: Hash,
}

/// A running shard node's state, shared by block production and RPC.
pub struct ShardNode {
    config: ShardConfig,
    db: ShardDb,
    state: AuthState,
    pool: Mutex<Mempool>,
    head: RwLock<Head>,
    recent_hashes: RwLock<BTreeMap<u64, B256>>,
    head_tx: watch::Sender<u64>,
    produce_lock: Mutex<()>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl ShardNode {
    /// Opens the database, writes genesis on first start, and recovers the
    /// head after a crash.
    pub fn open(config: ShardConfig) -> Result<Arc<Self>> {
        config.validate()?;
        std::fs::create_dir_all(&config.datadir)
            .map_err(|e| Error::Config(format!("datadir {}: {e}", config.datadir.display())))?;
        let db = ShardDb::open(&config.datadir.join("db"), config.fsync)?;
        let state = AuthState::new(db.state_store());
        if db.head()?.is_none() {
            Self::write_genesis(&config, &db, &state)?;
        }
        let height = db.head()?.ok_or_else(|| Error::Corrupt("no head after genesis".into()))?;
        // block and state are written in one batch; this only repairs a
        // database written by something else
        if let Some(v) = state.latest_version()?
            && v > height
        {
            warn!(target: "shard", state = v, head = height, "state ahead of chain head, rolling back");
            state.rollback(height)?;
        }
        let header = db.header(height)?.ok_or_else(|| Error::Corrupt(format!("missing header {height}")))?;
        let hash = header.hash();
        let mut recent = BTreeMap::new();
        for h in height.saturating_sub(255)..=height {
            if let Some(hd) = db.header(h)? {
                recent.insert(h, B256::from(hd.hash().0));
            }
        }
        info!(target: "shard", shard = %config.shard, height, root = %header.post_state_root, "opened chain");
        let (head_tx, _) = watch::channel(height);
        Ok(Arc::new(ShardNode {
            pool: Mutex::new(Mempool::new(config.mempool_max_txs)),
            config,
            db,
            state,
            head: RwLock::new(Head { header, hash }),
            recent_hashes: RwLock::new(recent),
            head_tx,
            produce_lock: Mutex::new(()),
        }))
    }

    fn write_genesis(config: &ShardConfig, db: &ShardDb, state: &AuthState) -> Result<()> {
        let mut changes = ChangeSet::new();
        for acct in &config.genesis {
            let a = AccountState { balance: acct.balance, ..Default::default() };
            changes.insert(StateKey::Account(acct.address), Some(a.encode()));
        }
        let prepared = state.prepare(0, &changes)?;
        let header = ShardHeader {
            shard: config.shard,
            height: 0,
            parent_hash: Hash::ZERO,
            timestamp: now_secs(),
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
        let body = StoredBody { txs: vec![], senders: vec![], hashes: vec![] };
        db.commit_block(&header, &body, &[], &prepared.batch)?;
        info!(target: "shard", root = %prepared.root, accounts = config.genesis.len(), "wrote genesis");
        Ok(())
    }

    /// The node's settings.
    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// The database.
    pub fn db(&self) -> &ShardDb {
        &self.db
    }

    /// The authenticated state.
    pub fn state(&self) -> &AuthState {
        &self.state
    }

    /// The current head.
    pub fn head(&self) -> Head {
        self.head.read().clone()
    }

    /// Subscribes to new head heights.
    pub fn subscribe_head(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }

    /// The pending pool.
    pub fn pool(&self) -> &Mutex<Mempool> {
        &self.pool
    }

    /// Base fee the next block will charge.
    pub fn next_base_fee(&self) -> u64 {
        let h = &self.head.read().header;
        if h.height == 0 {
            return self.config.initial_base_fee;
        }
        calc_next_block_base_fee(h.gas_used, h.gas_limit, h.base_fee, BaseFeeParams::ethereum())
    }

    /// Block parameters of the next block.
    pub fn next_params(&self) -> BlockParams {
        let head = self.head();
        BlockParams {
            shard: self.config.shard,
            chain_id: self.config.chain_id(),
            number: head.header.height + 1,
            timestamp: now_secs().max(head.header.timestamp),
            beneficiary: self.config.coinbase,
            gas_limit: self.config.block_gas_limit,
            base_fee: self.next_base_fee(),
            prevrandao: B256::from(head.hash.0),
        }
    }

    /// Recent block hashes for `BLOCKHASH`.
    pub fn recent_hashes(&self) -> BTreeMap<u64, B256> {
        self.recent_hashes.read().clone()
    }

    /// Account nonce at the head.
    pub fn state_nonce(&self, address: &Address) -> Result<u64> {
        let h = self.head.read().header.height;
        Ok(self.state.account(*address, h)?.map_or(0, |a| a.nonce))
    }

    /// Builds, executes and commits the next block from the pool. Returns
    /// the new head header.
    pub fn produce_block(&self) -> Result<ShardHeader> {
        let _one_at_a_time = self.produce_lock.lock();
        let head = self.head();
        let height = head.header.height;
        let params = self.next_params();
        let candidates = {
            let pool = self.pool.lock();
            let nonce = |a: &Address| self.state.account(*a, height).ok().flatten().map_or(0, |x| x.nonce);
            pool.select(nonce, params.gas_limit, self.config.max_block_txs)
        };
        let items: Vec<Item> = candidates.iter().map(|t| Item::Tx(SignedTx::clone(t))).collect();
        let reader = self.state.reader(height)?.with_block_hashes(self.recent_hashes());
        let exec = execute_items(reader, &params, items, Mode::Build)?;
        let prepared = self.state.prepare(height + 1, &exec.block_changes())?;
        let header = ShardHeader {
            shard: self.config.shard,
            height: height + 1,
            parent_hash: head.hash,
            beacon_slot: 0,
            timestamp: params.timestamp,
            proposer: BAddress(params.beneficiary.0.0),
            pre_state_root: head.header.post_state_root,
            items_root: exec.items_root(),
            post_state_root: prepared.root,
            outbox_root: bridge::merkle_root(&[]),
            receipts_root: exec.receipts_root(),
            trace_root: exec.final_commitment(prepared.root).hash(),
            gas_used: exec.gas_used,
            gas_limit: params.gas_limit,
            base_fee: params.base_fee,
        };
        let mut body = StoredBody { txs: vec![], senders: vec![], hashes: vec![] };
        for Item::Tx(tx) in &exec.items {
            body.txs.push(tx.raw.clone());
            body.senders.push(tx.sender);
            body.hashes.push(tx.hash);
        }
        self.db.commit_block(&header, &body, &exec.receipts(), &prepared.batch)?;
        let hash = header.hash();
        {
            let mut recent = self.recent_hashes.write();
            recent.insert(header.height, B256::from(hash.0));
            while recent.len() > 256 {
                recent.pop_first();
            }
        }
        *self.head.write() = Head { header: header.clone(), hash };
        {
            let mut pool = self.pool.lock();
            for h in &body.hashes {
                pool.remove(h);
            }
            for r in &exec.rejected {
                // a full block is no reason to drop a transaction
                if !r.block_full {
                    warn!(target: "shard", tx = %r.hash, reason = %r.reason, "dropping invalid transaction");
                    pool.remove(&r.hash);
                }
            }
            let senders: std::collections::HashSet<Address> = body.senders.iter().copied().collect();
            for s in senders {
                let n = self.state.account(s, header.height)?.map_or(0, |a| a.nonce);
                pool.prune_sender(&s, n);
            }
        }
        if header.height > self.config.state_history && header.height.is_multiple_of(64) {
            self.state.prune(header.height - self.config.state_history)?;
        }
        let _ = self.head_tx.send(header.height);
        info!(target: "shard", height = header.height, txs = body.txs.len(), gas = header.gas_used, root = %header.post_state_root, "produced block");
        Ok(header)
    }
}

/// A started node: the block producer and the RPC server.
pub struct NodeHandle {
    /// The node.
    pub node: Arc<ShardNode>,
    /// The address the RPC server listens on.
    pub rpc_addr: SocketAddr,
    rpc: jsonrpsee::server::ServerHandle,
    stop: watch::Sender<bool>,
    producer: tokio::task::JoinHandle<()>,
}

impl NodeHandle {
    /// Stops the producer and the RPC server and waits for both.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.rpc.stop();
        self.rpc.stopped().await;
        let _ = self.producer.await;
    }
}

/// Opens the node and starts block production and the JSON-RPC server.
pub async fn start(config: ShardConfig) -> Result<NodeHandle> {
    let node = ShardNode::open(config.clone())?;
    let (rpc_addr, rpc) = crate::rpc::serve(node.clone()).await?;
    let (stop, mut stopped) = watch::channel(false);
    let producer_node = node.clone();
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(producer_node.config.block_time_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => break,
            }
            let n = producer_node.clone();
            match tokio::task::spawn_blocking(move || n.produce_block()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(target: "shard", error = %e, "block production failed"),
                Err(e) => warn!(target: "shard", error = %e, "block production panicked"),
            }
        }
    });
    info!(target: "shard", %rpc_addr, chain_id = config.chain_id(), "shard node started");
    Ok(NodeHandle { node, rpc_addr, rpc, stop, producer })
}
