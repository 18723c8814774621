//! The dev node: one shard, one proposer, blocks at a fixed interval from
//! the mempool, persisted in rocksdb.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, B256, U256};
use bridge::{
    Address as BAddress, ChainSpec, Encode, Hash, InboxEntry, Message, MismatchEvidence, ShardBlock,
    ShardHeader, ShardId, Signature, SignedHeader, ValidatorKey,
};
use parking_lot::{Mutex, RwLock};
use prover::{AuthState, BlockParams, Item, Mode, SignedTx, execute_items};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{ShardConfig, genesis, now_secs};
use crate::fault::{Fault, Reverted, RevertedFrom};
use crate::import::{BlockError, BoundBlock, Expected, MAX_EVIDENCE, Mismatch};
use crate::mempool::Mempool;
use crate::metrics::ShardMetrics;
use crate::store::{ShardDb, StoredBody};
use crate::{Error, Result};

/// Told about every transaction a user submits over RPC.
pub type TxListener = Box<dyn Fn(&[u8]) + Send + Sync>;

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
    mismatches: Mutex<Vec<Mismatch>>,
    tx_listener: std::sync::OnceLock<TxListener>,
    metrics: ShardMetrics,
    restored: Mutex<Vec<Vec<u8>>>,
    /// The newest final height the beacon reported (`u64::MAX`: no beacon,
    /// the dev chain, which keeps `state_history` versions).
    finalized: std::sync::atomic::AtomicU64,
    /// A fault this node plays (testnets' byzantine modes), and the
    /// percentage of its chances it plays it at.
    fault: Mutex<Option<(Fault, u8)>>,
    /// Transactions and messages of reverted blocks (recent ones): what
    /// the RPC shows as `reverted` until they find their new fate.
    reverted: Mutex<Reverted>,
    /// The network's slot schedule, once a validator drives this node (the
    /// dev chain has none: it makes a block every `block_time_ms`).
    schedule: std::sync::OnceLock<ChainSpec>,
    /// The newest beacon slot the driving validator has seen start.
    slot: std::sync::atomic::AtomicU64,
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
        let mut mismatches = Vec::new();
        for (hash, record) in db.mismatch_records()? {
            match crate::import::decode_evidence(&record) {
                Ok(ev) => mismatches.push(Mismatch::from_evidence(&ev)),
                Err(e) => {
                    // a record of an older format or a damaged one: evidence
                    // we cannot use is dropped, not trusted
                    warn!(target: "shard", block = %hash, error = %e, "dropping unreadable mismatch evidence");
                    db.delete_mismatch(&hash)?;
                }
            }
        }
        // what earlier reverts took away, for the RPC's `revertedFrom`
        let db_reverted = db.reverted_records()?;
        let node = Arc::new(ShardNode {
            pool: Mutex::new(Mempool::new(config.mempool_max_txs)),
            config,
            db,
            state,
            head: RwLock::new(Head { header, hash }),
            recent_hashes: RwLock::new(recent),
            head_tx,
            produce_lock: Mutex::new(()),
            mismatches: Mutex::new(mismatches),
            tx_listener: std::sync::OnceLock::new(),
            metrics: ShardMetrics::default(),
            finalized: std::sync::atomic::AtomicU64::new(u64::MAX),
            fault: Mutex::new(None),
            reverted: Mutex::new({
                let mut r = Reverted::default();
                for (id, from) in db_reverted {
                    r.insert(id, from);
                }
                r
            }),
            restored: Mutex::new(Vec::new()),
            schedule: std::sync::OnceLock::new(),
            slot: std::sync::atomic::AtomicU64::new(0),
        });
        node.restore_reverted()?;
        Ok(node)
    }

    /// Puts the transactions of blocks reverted before a crash back in the
    /// pool (they were only in memory): a transaction whose receipt a
    /// reverted block served is included again even if this node died
    /// right after the revert. Ones included since, or stale, are forgotten.
    fn restore_reverted(&self) -> Result<()> {
        let mut forget = Vec::new();
        let mut restored = self.restored.lock();
        let head = self.head().header.height;
        for (hash, raw) in self.db.reverted_txs()? {
            let Ok(tx) = SignedTx::decode(&raw) else {
                forget.push(hash);
                continue;
            };
            let nonce = self.state.account(tx.sender, head)?.map_or(0, |a| a.nonce);
            if self.db.tx_location(&hash)?.is_some() || tx.envelope.nonce() < nonce {
                forget.push(hash);
                continue;
            }
            if self.pool.lock().add(tx).is_ok() {
                restored.push(raw);
            }
        }
        if !forget.is_empty() {
            self.db.forget_reverted(&forget)?;
        }
        if !restored.is_empty() {
            info!(target: "shard", txs = restored.len(), "restored transactions of reverted blocks to the pool");
        }
        Ok(())
    }

    /// The transactions [`ShardNode::open`] restored from reverted blocks
    /// (a validator gossips them once it is on the network).
    pub fn take_restored_txs(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.restored.lock())
    }

    fn write_genesis(config: &ShardConfig, db: &ShardDb, state: &AuthState) -> Result<()> {
        let (header, prepared) = genesis(config, state)?;
        let body = StoredBody::empty(Signature::default());
        let funded = config.genesis.iter().fold(U256::ZERO, |a, g| a + g.balance);
        db.commit_block(&header, &body, &[], &[], &crate::Supply::genesis(funded), &prepared.batch)?;
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
        bridge::next_base_fee(&self.head.read().header)
    }

    /// Block parameters of the next block.
    pub fn next_params(&self) -> BlockParams {
        self.params_after(&self.head())
    }

    /// Block parameters of the block after `head`.
    fn params_after(&self, head: &Head) -> BlockParams {
        BlockParams {
            shard: self.config.shard,
            shards: self.config.shards,
            chain_id: self.config.chain_id(),
            number: head.header.height + 1,
            timestamp: now_secs().max(head.header.timestamp),
            beneficiary: self.config.coinbase,
            gas_limit: self.config.block_gas_limit,
            base_fee: bridge::next_base_fee(&head.header),
            prevrandao: B256::from(head.hash.0),
            fork: prover::SPEC,
        }
    }

    /// Blocks are made on `spec`'s slots from now on (a validator drives
    /// this node); the pending block contexts follow that schedule.
    pub fn set_schedule(&self, spec: ChainSpec) {
        let _ = self.schedule.set(spec);
    }

    /// Beacon slot `slot` has started (the driving validator's clock).
    pub fn set_slot(&self, slot: u64) {
        self.slot.fetch_max(slot, std::sync::atomic::Ordering::Relaxed);
    }

    /// The contexts of the blocks a transaction sent now may land in, the
    /// likeliest first: the next height, its base fee and prevrandao, and
    /// for each block that may be built soon (see [`crate::pending`]) its
    /// timestamp and proposer. On a network shard those are the slots from
    /// the first one not yet built on the local head (its timestamp is the
    /// second its slot starts in, its beneficiary its scheduled proposer);
    /// on the dev chain, the wall-clock seconds of the next blocks. What
    /// `eth_call` and `eth_estimateGas` run in (an estimate must be enough
    /// in whichever of them the transaction lands in), with the height of
    /// the head whose state they run over (one snapshot of the head).
    pub fn pending_params(&self) -> (u64, Vec<BlockParams>) {
        // one snapshot of the head: the state they run over and the next
        // block's number, base fee and prevrandao all come from it
        let head = self.head();
        let base = self.params_after(&head);
        let (shard, coinbase) = (self.config.shard, self.config.coinbase);
        let blocks = match self.schedule.get() {
            Some(spec) => {
                let now = self.slot.load(std::sync::atomic::Ordering::Relaxed);
                crate::pending::slot_blocks(spec, shard, coinbase, now, head.header.beacon_slot)
            }
            None => crate::pending::dev_blocks(now_secs(), head.header.timestamp, coinbase),
        };
        (head.header.height, crate::pending::landing_contexts(&base, &blocks))
    }

    /// The hashes `BLOCKHASH` may read in block `height`: the 256 below it
    /// (from the database, whatever the head is now).
    pub fn block_hashes_below(&self, height: u64) -> Result<BTreeMap<u64, B256>> {
        let mut out = BTreeMap::new();
        for n in height.saturating_sub(256)..height {
            if let Some(h) = self.db.header(n)? {
                out.insert(n, B256::from(h.hash().0));
            }
        }
        Ok(out)
    }

    /// Recent block hashes for `BLOCKHASH`.
    pub fn recent_hashes(&self) -> BTreeMap<u64, B256> {
        self.recent_hashes.read().clone()
    }

    /// The next nonce this shard expects on the channel from `src` (its
    /// inbound counter at the head).
    pub fn inbound_next(&self, src: ShardId) -> Result<u64> {
        let h = self.head.read().header.height;
        let v = self.state.storage(bridge::BRIDGE_ADDRESS, prover::inbound_slot(src), h)?;
        u64::try_from(v).map_err(|_| Error::Corrupt("inbound counter overflow".into()))
    }

    /// The messages of channel `(this shard → dst)` from nonce `from` on
    /// (at most `count`, contiguous), each with its source height and its
    /// proof against that block's `outbox_root` — what a destination's
    /// relay asks for. From this node's chain: the asker checks each entry
    /// against the beacon-accepted header.
    pub fn outbox_page(&self, dst: ShardId, from: u64, count: u32) -> Result<Vec<InboxEntry>> {
        let count = count.min(bridge::MAX_MESSAGES_PER_REQUEST);
        let mut out = Vec::new();
        let mut trees: BTreeMap<u64, (Vec<Message>, bridge::MerkleTree)> = BTreeMap::new();
        for nonce in (from..from.saturating_add(count as u64)).take(count as usize) {
            let Some((height, index)) = self.db.outbox_location(dst, nonce)? else { break };
            let (msgs, tree) = match trees.entry(height) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let msgs = self.db.outbox(height)?;
                    let tree = bridge::MerkleTree::new(&msgs.iter().map(Message::id).collect::<Vec<_>>());
                    e.insert((msgs, tree))
                }
            };
            let Some(entry) = outbox_entry(msgs, tree, height, index) else {
                return Err(Error::Corrupt(format!(
                    "outbox index of {dst}/{nonce} points past block {height}"
                )));
            };
            if entry.message.dst != dst || entry.message.nonce != nonce {
                return Err(Error::Corrupt(format!("outbox index of {dst}/{nonce} names another message")));
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// Message `id` as this shard emitted it, with its source height and
    /// proof against that block's `outbox_root` (`None`: not emitted here,
    /// or reverted meanwhile).
    pub fn sent_message(&self, id: &Hash) -> Result<Option<InboxEntry>> {
        let Some((height, index)) = self.db.message_sent(id)? else { return Ok(None) };
        let msgs = self.db.outbox(height)?;
        let tree = bridge::MerkleTree::new(&msgs.iter().map(Message::id).collect::<Vec<_>>());
        Ok(outbox_entry(&msgs, &tree, height, index).filter(|e| e.message.id() == *id))
    }

    /// Makes this node play `fault` (`None`: honest) at `rate_percent` of
    /// its chances (each proposal, each header it could grieve).
    pub fn set_fault(&self, fault: Option<Fault>, rate_percent: u8) {
        *self.fault.lock() = fault.map(|f| (f, rate_percent.min(100)));
    }

    /// The fault this node plays, and its rate.
    pub fn fault(&self) -> Option<(Fault, u8)> {
        *self.fault.lock()
    }

    /// Records the newest final height the beacon reported.
    pub fn set_finalized(&self, height: u64) {
        self.finalized.store(height, std::sync::atomic::Ordering::Release);
    }

    /// The newest final height the beacon reported (`None` on the dev chain).
    pub fn finalized(&self) -> Option<u64> {
        match self.finalized.load(std::sync::atomic::Ordering::Acquire) {
            u64::MAX => None,
            f => Some(f),
        }
    }

    /// The supply totals after block `height`.
    pub fn supply(&self, height: u64) -> Result<Option<crate::Supply>> {
        self.db.supply(height)
    }

    /// The totals after a block executed on top of `parent`.
    fn next_supply(&self, parent: u64, exec: &prover::Execution, base_fee: u64) -> Result<crate::Supply> {
        let prev =
            self.db.supply(parent)?.ok_or_else(|| Error::Corrupt(format!("no supply record at {parent}")))?;
        Ok(prev.next(parent + 1, exec, base_fee))
    }

    /// Account nonce at the head.
    pub fn state_nonce(&self, address: &Address) -> Result<u64> {
        let h = self.head.read().header.height;
        Ok(self.state.account(*address, h)?.map_or(0, |a| a.nonce))
    }

    /// Builds, executes and commits the next block from the pool (the dev
    /// node's single proposer). Returns the new head header.
    pub fn produce_block(&self) -> Result<ShardHeader> {
        let _one_at_a_time = self.produce_lock.lock();
        let params = self.next_params();
        let built = self.build(0, params.timestamp, params.beneficiary, Vec::new())?;
        self.commit(built, Signature::default(), true)
    }

    /// Builds the block of beacon `slot` as its scheduled proposer, signs
    /// and commits it, and returns it for gossip. `inbox`: verified inbox
    /// messages offered for it, in channel order (those invalid in their
    /// position are left out). Its timestamp is the second `slot` starts
    /// in (`spec.slot_timestamp`); a header that breaks any rule the beacon
    /// and importers check (`bridge::check_header`: a slot not after its
    /// parent's, a timestamp not its slot's, …) is refused here, unsigned.
    pub fn propose(
        &self,
        slot: u64,
        spec: &ChainSpec,
        key: &ValidatorKey,
        inbox: Vec<InboxEntry>,
    ) -> Result<ShardBlock> {
        let _one_at_a_time = self.produce_lock.lock();
        let head = self.head();
        let built = self.build(slot, spec.slot_timestamp(slot), Address::from(key.address().0), inbox)?;
        bridge::check_header(spec, &head.header, &head.hash, &built.header).map_err(Error::Header)?;
        let signed = SignedHeader::sign(built.header.clone(), key);
        let txs = built.body.txs.iter().map(|t| t.to_vec()).collect();
        let inbox = built.body.inbox.clone();
        self.commit(built, signed.signature, true)?;
        Ok(ShardBlock { header: signed, inbox, txs })
    }

    fn build(&self, slot: u64, timestamp: u64, proposer: Address, inbox: Vec<InboxEntry>) -> Result<Built> {
        let head = self.head();
        let height = head.header.height;
        let mut params = self.next_params();
        params.timestamp = timestamp;
        params.beneficiary = proposer;
        let candidates = {
            let pool = self.pool.lock();
            let nonce = |a: &Address| self.state.account(*a, height).ok().flatten().map_or(0, |x| x.nonce);
            pool.select(nonce, params.gas_limit, self.config.max_block_txs)
        };
        let items: Vec<Item> = inbox
            .iter()
            .map(|e| Item::Message(e.message.clone()))
            .chain(candidates.iter().map(|t| Item::Tx(SignedTx::clone(t))))
            .collect();
        let reader = self.state.reader(height)?.with_block_hashes(self.recent_hashes());
        let mut exec = execute_items(reader, &params, items, Mode::Build)?;
        let draw = crate::fault::draw_seed(slot, &proposer);
        self.inject_outbox_fault(&draw, slot, height, &mut exec)?;
        let prepared = self.state.prepare(height + 1, &exec.block_changes())?;
        let base = ShardHeader {
            shard: self.config.shard,
            height: height + 1,
            parent_hash: head.hash,
            beacon_slot: slot,
            timestamp: params.timestamp,
            proposer: BAddress(params.beneficiary.0.0),
            gas_limit: params.gas_limit,
            base_fee: params.base_fee,
            ..Default::default()
        };
        let mut header = with_execution(base, head.header.post_state_root, &exec, prepared.root);
        self.inject_header_fault(&draw, slot, &exec, &prepared.root, &mut header);
        let supply = self.next_supply(height, &exec, params.base_fee)?;
        Ok(Built::new(header, exec, prepared, inbox, supply))
    }

    /// Stage 3 of import (see [`crate::import`]): checks a bound block's
    /// header against the head (the beacon's own rule), re-executes it and
    /// compares every root. A bound body that re-executes to other roots is
    /// a mismatch: the block and this node's execution are kept as
    /// evidence, and the block is not imported.
    pub fn import(
        &self,
        bound: BoundBlock,
        spec: &ChainSpec,
        sources: &dyn crate::SourceHeaders,
    ) -> Result<ShardHeader, BlockError> {
        let _one_at_a_time = self.produce_lock.lock();
        let head = self.head();
        let h = &bound.block.header.header;
        if h.shard != self.config.shard {
            return Err(BlockError::WrongShard(h.shard));
        }
        if h.height != head.header.height + 1 || h.parent_hash != head.hash {
            return Err(BlockError::NotNext { height: h.height, head: head.header.height });
        }
        bridge::check_header(spec, &head.header, &head.hash, h).map_err(BlockError::Header)?;
        crate::check_inbox(&bound.block, spec.shards, sources)?;
        let raws: Vec<alloy_primitives::Bytes> = bound.block.txs.iter().map(|t| t.clone().into()).collect();
        let mut items: Vec<Item> =
            bound.block.inbox.iter().map(|e| Item::Message(e.message.clone())).collect();
        for r in prover::recover_all(&raws) {
            match r {
                Ok(tx) => items.push(Item::Tx(tx)),
                // a signed, bound block with an undecodable item is invalid
                // in its position: a claim to dispute, like a wrong root
                Err(_) => return Err(self.mismatch(&bound, h.clone())),
            }
        }
        let mut params = self.next_params();
        params.timestamp = h.timestamp;
        params.base_fee = h.base_fee;
        params.beneficiary = Address::from(h.proposer.0);
        let reader = self.state.reader(head.header.height)?.with_block_hashes(self.recent_hashes());
        let exec = match execute_items(reader, &params, items, Mode::Verify) {
            Ok(exec) => exec,
            // an item invalid in its position is the proposer's claim gone wrong
            Err(prover::Error::InvalidTransaction { .. }) => return Err(self.mismatch(&bound, h.clone())),
            // anything else failed here, not in the block
            Err(e) => return Err(BlockError::Node(e.into())),
        };
        let prepared = self.state.prepare(h.height, &exec.block_changes())?;
        let header = with_execution(h.clone(), head.header.post_state_root, &exec, prepared.root);
        let supply = self.next_supply(head.header.height, &exec, h.base_fee)?;
        let computed = Built::new(header, exec, prepared, bound.block.inbox.clone(), supply);
        if computed.header != *h {
            return Err(self.mismatch(&bound, computed.header));
        }
        self.commit(computed, bound.block.header.signature, false).map_err(BlockError::Node)
    }

    /// Runs every import stage on a decoded block (tests, tools). `current`
    /// is this node's slot.
    pub fn import_block(
        &self,
        block: &ShardBlock,
        spec: &ChainSpec,
        current: u64,
        sources: &dyn crate::SourceHeaders,
    ) -> Result<ShardHeader, BlockError> {
        let expected =
            Expected { spec, shard: self.config.shard, head_height: self.head().header.height, current };
        let bound = BoundBlock::from_block(block.clone(), &expected)?;
        self.import(bound, spec, sources)
    }

    /// Keeps the evidence of a mismatch (deduplicated by header, at most
    /// [`MAX_EVIDENCE`] records, oldest slot evicted first) and returns the error.
    fn mismatch(&self, bound: &BoundBlock, computed: ShardHeader) -> BlockError {
        let ev = MismatchEvidence::new(bound.block.clone(), computed);
        let m = Mismatch::from_evidence(&ev);
        warn!(target: "shard", height = m.height, slot = m.slot, proposer = %m.proposer, field = %m.field,
            claimed = %m.claimed, computed = %m.computed, "root mismatch: block does not re-execute to its header");
        self.metrics.mismatches.inc();
        let mut all = self.mismatches.lock();
        // one record per header, and per (proposer, slot): a proposer signing
        // many variants of its block cannot flush everyone else's evidence
        if !all.iter().any(|x| x.block_hash == m.block_hash || (x.proposer == m.proposer && x.slot == m.slot))
        {
            // kept across restarts, in the canonical encoding: the evidence a dispute opens from
            if let Err(e) = self.db.put_mismatch(&m.block_hash, &ev.encode()) {
                warn!(target: "shard", error = %e, "could not store the mismatch evidence");
            }
            all.push(m);
            while all.len() > MAX_EVIDENCE {
                let oldest =
                    all.iter().enumerate().min_by_key(|(_, x)| x.slot).map(|(i, _)| i).expect("non-empty");
                let gone = all.remove(oldest);
                if let Err(e) = self.db.delete_mismatch(&gone.block_hash) {
                    warn!(target: "shard", error = %e, "could not delete old mismatch evidence");
                }
            }
        }
        BlockError::Mismatch(Box::new(ev))
    }

    /// The stored evidence of the mismatch in block `block_hash`.
    pub fn mismatch_evidence(&self, block_hash: &Hash) -> Result<Option<MismatchEvidence>> {
        match self.db.get_mismatch(block_hash)? {
            None => Ok(None),
            Some(b) => crate::import::decode_evidence(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("mismatch evidence {block_hash}: {e}"))),
        }
    }

    /// Root mismatches found while importing blocks.
    pub fn mismatches(&self) -> Vec<Mismatch> {
        self.mismatches.lock().clone()
    }

    /// Node metrics.
    pub fn metrics(&self) -> &ShardMetrics {
        &self.metrics
    }

    /// The signed block at `height` as gossiped (for sync).
    pub fn block(&self, height: u64) -> Result<Option<ShardBlock>> {
        let (Some(header), Some(body)) = (self.db.header(height)?, self.db.body(height)?) else {
            return Ok(None);
        };
        Ok(Some(ShardBlock {
            header: SignedHeader { header, signature: body.signature },
            inbox: body.inbox,
            txs: body.txs.iter().map(|t| t.to_vec()).collect(),
        }))
    }

    fn commit(&self, built: Built, signature: Signature, produced: bool) -> Result<ShardHeader> {
        let Built { header, mut body, receipts, outbox, supply, batch, rejected } = built;
        body.signature = signature;
        self.db.commit_block(&header, &body, &receipts, &outbox, &supply, &batch)?;
        self.metrics.messages(
            &outbox,
            body.inbox.iter().zip(&receipts).map(|(e, r)| (e.message.src, e.message.dst, r.success)),
        );
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
            for r in &rejected {
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
            self.metrics.mempool.set(pool.len() as i64);
        }
        if header.height.is_multiple_of(64) {
            // state versions back to the last final header stay (any
            // non-final block can still be reverted); the dev chain keeps
            // a fixed count
            let keep_from = match self.finalized.load(std::sync::atomic::Ordering::Acquire) {
                u64::MAX => header.height.saturating_sub(self.config.state_history),
                f => f.min(header.height),
            };
            if keep_from > 0 {
                self.state.prune(keep_from)?;
            }
        }
        self.metrics.block(&header, body.txs.len(), produced);
        let _ = self.head_tx.send(header.height);
        info!(target: "shard", height = header.height, slot = header.beacon_slot, txs = body.txs.len(), gas = header.gas_used,
            root = %header.post_state_root, "{}", if produced { "produced block" } else { "imported block" });
        Ok(header)
    }

    /// Reverts the chain to `height` (blocks above it are deleted, their
    /// transactions go back to the pool): the beacon accepted another block.
    pub fn revert_to(&self, height: u64) -> Result<usize> {
        let _one_at_a_time = self.produce_lock.lock();
        let head = self.head();
        if height >= head.header.height {
            return Ok(0);
        }
        // the state must still hold that version (nothing is deleted if not)
        self.state.reader(height)?;
        let mut txs = Vec::new();
        let mut records = Vec::new();
        for h in height + 1..=head.header.height {
            let block_hash = self.db.header(h)?.map(|x| x.hash()).unwrap_or_default();
            let from = |role| RevertedFrom { height: h, block_hash, role };
            if let Some(b) = self.db.body(h)? {
                records.extend(b.hashes.iter().map(|hash| (*hash, from("tx"))));
                records.extend(b.inbox.iter().map(|e| (B256::from(e.message.id().0), from("consumed"))));
                txs.extend(b.txs);
            }
            records.extend(self.db.outbox(h)?.iter().map(|m| (B256::from(m.id().0), from("sent"))));
        }
        // remembered on disk in the revert's own batch, so a restart keeps them
        self.db.revert_blocks(height, head.header.height, &records)?;
        {
            let mut reverted = self.reverted.lock();
            for (id, from) in records {
                reverted.insert(id, from);
            }
        }
        self.state.rollback(height)?;
        let header =
            self.db.header(height)?.ok_or_else(|| Error::Corrupt(format!("missing header {height}")))?;
        let hash = header.hash();
        // the last 256 hashes below the new head, from disk: a deep revert
        // must not leave BLOCKHASH (or the fork check) without them
        let mut recent = BTreeMap::new();
        for h in height.saturating_sub(255)..=height {
            if let Some(hd) = self.db.header(h)? {
                recent.insert(h, B256::from(hd.hash().0));
            }
        }
        *self.recent_hashes.write() = recent;
        *self.head.write() = Head { header, hash };
        {
            let mut pool = self.pool.lock();
            for raw in &txs {
                if let Ok(tx) = SignedTx::decode(raw) {
                    let _ = pool.add(tx);
                }
            }
            self.metrics.mempool.set(pool.len() as i64);
        }
        // and to the shard's other validators, whose pools dropped them when
        // they imported the reverted block: whoever proposes next includes them
        if let Some(f) = self.tx_listener.get() {
            for raw in &txs {
                f(raw);
            }
        }
        warn!(target: "shard", from = head.header.height, to = height, txs = txs.len(), "reverted blocks the beacon did not accept");
        let _ = self.head_tx.send(height);
        Ok((head.header.height - height) as usize)
    }

    /// Where `id` (a transaction hash or message id) was before a revert
    /// took its block away (recent reverts only).
    pub fn reverted_from(&self, id: &B256) -> Option<RevertedFrom> {
        self.reverted.lock().by_id.get(id).copied()
    }

    /// Installs the function told about every transaction accepted over RPC
    /// (a validator gossips them to the shard's other validators).
    pub fn set_tx_listener(&self, f: TxListener) {
        let _ = self.tx_listener.set(f);
    }

    /// Admits a transaction submitted by a user: added to the pool and
    /// passed to the transaction listener.
    pub fn submit_user_tx(&self, raw: &[u8]) -> Result<B256, TxRejected> {
        let hash = self.admit_tx(raw)?;
        if let Some(f) = self.tx_listener.get() {
            f(raw);
        }
        Ok(hash)
    }

    /// Checks a raw transaction as Ethereum nodes do at admission (decoding,
    /// signature, chain id, gas, fee, nonce, balance) and adds it to the pool.
    pub fn admit_tx(&self, raw: &[u8]) -> Result<B256, TxRejected> {
        let tx = SignedTx::decode(raw).map_err(|e| match e {
            prover::TxDecodeError::BadSignature(_) => TxRejected::malformed("invalid sender"),
            other => TxRejected::malformed(other.to_string()),
        })?;
        let cfg = &self.config;
        let env = &tx.envelope;
        if env.chain_id() != Some(cfg.chain_id()) {
            return Err(TxRejected::malformed(format!(
                "invalid chain id: have {}, want {} (sign for this shard's chain id)",
                env.chain_id().map_or("none".into(), |c| c.to_string()),
                cfg.chain_id()
            )));
        }
        let most = cfg.block_gas_limit.min(TX_GAS_CAP);
        if env.gas_limit() > most {
            return Err(TxRejected::malformed(format!(
                "exceeds block gas limit: gas {}, at most {most} per transaction (lower the gas limit)",
                env.gas_limit()
            )));
        }
        let tx_env = tx.tx_env();
        let floor =
            revm::context_interface::cfg::gas::calculate_initial_tx_gas_for_tx(&tx_env, prover::SPEC, None);
        let intrinsic = floor.initial_total_gas().max(floor.floor_gas);
        if env.gas_limit() < intrinsic {
            return Err(TxRejected::malformed(format!(
                "intrinsic gas too low: gas {}, minimum needed {intrinsic}",
                env.gas_limit()
            )));
        }
        let base_fee = self.next_base_fee() as u128;
        if env.max_fee_per_gas() < base_fee {
            return Err(TxRejected::state(format!(
                "max fee per gas less than block base fee: address {}, maxFeePerGas: {}, baseFee: {base_fee}",
                tx.sender,
                env.max_fee_per_gas()
            )));
        }
        let head = self.head().header.height;
        let acct = self.state.account(tx.sender, head)?.unwrap_or_default();
        if env.nonce() < acct.nonce {
            return Err(TxRejected::state(format!(
                "nonce too low: next nonce {}, tx nonce {}",
                acct.nonce,
                env.nonce()
            )));
        }
        // value is the sender's number: a value near 2^256 must not wrap the sum
        let cost =
            (U256::from(env.gas_limit()) * U256::from(env.max_fee_per_gas())).saturating_add(env.value());
        if acct.balance < cost {
            return Err(TxRejected::unfunded(format!(
                "insufficient funds for gas * price + value: balance {}, tx cost {cost}, overshot {}",
                acct.balance,
                cost - acct.balance
            )));
        }
        let hash = tx.hash;
        let mut pool = self.pool.lock();
        pool.add(tx).map_err(|e| TxRejected::state(e.to_string()))?;
        self.metrics.mempool.set(pool.len() as i64);
        Ok(hash)
    }
}

/// Osaka's per-transaction gas cap (EIP-7825).
pub(crate) const TX_GAS_CAP: u64 = 1 << 24;

/// A transaction refused at admission.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TxRejected {
    /// Ethereum-style message.
    pub message: String,
    /// The transaction itself is invalid (undecodable, bad signature, wrong
    /// chain, impossible gas) rather than merely not valid now.
    pub malformed: bool,
    /// Its sender cannot pay for it: junk a relaying peer could have
    /// refused itself (as opposed to a stale nonce or a base fee that moved,
    /// which honest peers relay in a race).
    pub unfunded: bool,
}

impl TxRejected {
    fn malformed(m: impl Into<String>) -> Self {
        TxRejected { message: m.into(), malformed: true, unfunded: false }
    }
    fn state(m: impl Into<String>) -> Self {
        TxRejected { message: m.into(), malformed: false, unfunded: false }
    }
    fn unfunded(m: impl Into<String>) -> Self {
        TxRejected { message: m.into(), malformed: false, unfunded: true }
    }
}

impl From<prover::Error> for TxRejected {
    fn from(e: prover::Error) -> Self {
        TxRejected::state(e.to_string())
    }
}

/// Outbox message `index` of block `height` (`msgs`, their tree) with its proof.
fn outbox_entry(msgs: &[Message], tree: &bridge::MerkleTree, height: u64, index: u32) -> Option<InboxEntry> {
    let (message, proof) = (msgs.get(index as usize)?, tree.proof(index as usize)?);
    Some(InboxEntry { message: message.clone(), height, proof })
}

/// `base` with the roots and gas that `exec`, run on `pre_state_root`, produced.
fn with_execution(
    base: ShardHeader,
    pre_state_root: Hash,
    exec: &prover::Execution,
    post_state_root: Hash,
) -> ShardHeader {
    ShardHeader {
        pre_state_root,
        items_root: exec.items_root(),
        post_state_root,
        outbox_root: exec.outbox_root(),
        receipts_root: exec.receipts_root(),
        trace_root: exec.final_commitment(post_state_root).hash(),
        gas_used: exec.gas_used,
        ..base
    }
}

struct Built {
    header: ShardHeader,
    body: StoredBody,
    receipts: Vec<prover::Receipt>,
    outbox: Vec<Message>,
    supply: crate::Supply,
    batch: prover::jmt_types::TreeUpdateBatch,
    rejected: Vec<prover::Rejected>,
}

impl Built {
    /// `inbox`: the entries offered; the body keeps those executed.
    fn new(
        header: ShardHeader,
        exec: prover::Execution,
        prepared: prover::PreparedVersion,
        inbox: Vec<InboxEntry>,
        supply: crate::Supply,
    ) -> Self {
        let mut body = StoredBody::empty(Signature::default());
        let mut offered: HashMap<Hash, InboxEntry> = inbox.into_iter().map(|e| (e.message.id(), e)).collect();
        for item in &exec.items {
            match item {
                Item::Tx(tx) => {
                    body.txs.push(tx.raw.clone());
                    body.senders.push(tx.sender);
                    body.hashes.push(tx.hash);
                }
                Item::Message(m) => {
                    body.inbox.push(offered.remove(&m.id()).expect("executed messages are offered entries"))
                }
            }
        }
        let outbox = exec.outbox();
        Built {
            header,
            body,
            receipts: exec.receipts(),
            outbox,
            supply,
            batch: prepared.batch,
            rejected: exec.rejected,
        }
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
    let (rpc_addr, rpc, _) = crate::rpc::serve(node.clone(), None, None).await?;
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
