//! rocksdb persistence for a shard: the state tree (a [`StateStore`]) and the
//! chain (headers, bodies, receipts, indexes) in one database, so a block
//! and the state it produces are committed in one atomic write.

use std::path::Path;
use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes};
use bridge::{
    Decode, Encode, Hash, InboxEntry, Message, ShardHeader, ShardId, decode_exact, decode_list, encode_list,
};
use prover::jmt_types::{KeyHash, Node, NodeKey, TreeUpdateBatch, Version};
use prover::{Receipt, StateStore};
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::fault::{KEPT_REVERTED, RevertedFrom};
use crate::{Error, Result};

const CF_NODES: &str = "state_nodes";
const CF_VALUES: &str = "state_values";
/// The newest value of every key: one point lookup (with a bloom filter for
/// absent keys) serves reads at the latest version, the common case.
const CF_LATEST: &str = "state_latest";
const CF_WRITTEN: &str = "state_written";
const CF_STALE: &str = "state_stale";
const CF_META: &str = "meta";
const CF_HEADERS: &str = "headers";
const CF_BODIES: &str = "bodies";
const CF_RECEIPTS: &str = "receipts";
const CF_TX_INDEX: &str = "tx_index";
const CF_BLOCK_INDEX: &str = "block_index";
/// Each block's outbox (the messages it emitted), by height.
const CF_OUTBOX: &str = "outbox";
/// Where each outbound message sits: `(dst, nonce)` → `(height, index)`.
const CF_OUTBOX_INDEX: &str = "outbox_index";
/// The shard's supply totals after each block, by height.
const CF_SUPPLY: &str = "supply";
/// Where each message this shard emitted (`o` ‖ id) or consumed (`i` ‖ id)
/// sits: `(height, index)` in the block's outbox or items.
const CF_MESSAGE_INDEX: &str = "message_index";
/// Where each reverted transaction or message had been (id → sequence,
/// height, block hash, role), for the RPC's `revertedFrom`.
const CF_REVERTED_FROM: &str = "reverted_from";
/// The same, by sequence (oldest first), to keep only the newest.
const CF_REVERTED_ORDER: &str = "reverted_order";
const CFS: [&str; 17] = [
    CF_NODES,
    CF_VALUES,
    CF_LATEST,
    CF_WRITTEN,
    CF_STALE,
    CF_META,
    CF_HEADERS,
    CF_BODIES,
    CF_RECEIPTS,
    CF_TX_INDEX,
    CF_BLOCK_INDEX,
    CF_OUTBOX,
    CF_OUTBOX_INDEX,
    CF_SUPPLY,
    CF_MESSAGE_INDEX,
    CF_REVERTED_FROM,
    CF_REVERTED_ORDER,
];

const META_STATE_LATEST: &[u8] = b"state_latest";
const META_STATE_OLDEST: &[u8] = b"state_oldest";
const META_HEAD: &[u8] = b"head";
const META_SCHEMA: &[u8] = b"schema";
/// The next sequence number of a reverted-item record.
const META_REVERTED_SEQ: &[u8] = b"reverted_seq";

/// The version of what this build writes (bumped when an encoding
/// changes). A database written before versions were recorded counts as 1.
pub const SHARD_SCHEMA: u64 = 1;
/// Prefix of mismatch records (JSON), keyed by the block hash.
const META_MISMATCH: &[u8] = b"mismatch/";
/// Transactions of reverted blocks, by hash: kept until they are included
/// again or go stale, so a crash right after a revert (the pool is memory
/// only) loses none of them.
const META_REVERTED: &[u8] = b"reverted/";

fn db_err(e: rocksdb::Error) -> Error {
    Error::Db(e.to_string())
}

fn state_err(e: impl std::fmt::Display) -> prover::Error {
    prover::Error::Store(e.to_string())
}

/// A block body as stored: the transactions with their recovered senders
/// and hashes, so loading a block never re-recovers signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBody {
    /// EIP-2718 encodings.
    pub txs: Vec<Bytes>,
    /// Recovered senders.
    pub senders: Vec<Address>,
    /// Transaction hashes.
    pub hashes: Vec<B256>,
    /// The proposer's signature of the header (zero on a dev chain).
    pub signature: bridge::Signature,
    /// The inbox messages the block consumed (its first items).
    pub inbox: Vec<InboxEntry>,
}

impl StoredBody {
    /// An empty body signed with `signature`.
    pub fn empty(signature: bridge::Signature) -> Self {
        StoredBody { txs: vec![], senders: vec![], hashes: vec![], signature, inbox: vec![] }
    }

    /// Index in the block's receipts of transaction `i` (the inbox
    /// messages' receipts come first).
    pub fn receipt_index(&self, i: usize) -> usize {
        self.inbox.len() + i
    }
}

impl Encode for StoredBody {
    fn encode_to(&self, out: &mut Vec<u8>) {
        let raws: Vec<Vec<u8>> = self.txs.iter().map(|t| t.to_vec()).collect();
        encode_list(&raws, out);
        let senders: Vec<[u8; 20]> = self.senders.iter().map(|a| a.0.0).collect();
        encode_list(&senders, out);
        let hashes: Vec<[u8; 32]> = self.hashes.iter().map(|h| h.0).collect();
        encode_list(&hashes, out);
        self.signature.encode_to(out);
        encode_list(&self.inbox, out);
    }
}

impl Decode for StoredBody {
    fn decode(input: &mut &[u8]) -> Result<Self, bridge::DecodeError> {
        let txs = decode_list::<Vec<u8>>(input)?.into_iter().map(Bytes::from).collect();
        let senders = decode_list::<[u8; 20]>(input)?.into_iter().map(Address::from).collect();
        let hashes = decode_list::<[u8; 32]>(input)?.into_iter().map(B256::from).collect();
        let signature = bridge::Signature::decode(input)?;
        let inbox = decode_list(input)?;
        Ok(StoredBody { txs, senders, hashes, signature, inbox })
    }
}

/// Where a transaction was included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
}

impl TxLocation {
    fn decode(b: &[u8]) -> Option<Self> {
        (b.len() == 12).then(|| TxLocation {
            height: u64::from_be_bytes(b[..8].try_into().expect("length checked")),
            index: u32::from_be_bytes(b[8..].try_into().expect("length checked")),
        })
    }
}

/// A block's stored parts, read together.
#[derive(Clone, Debug)]
pub struct StoredBlock {
    /// The header.
    pub header: ShardHeader,
    /// The body.
    pub body: StoredBody,
    /// One receipt per transaction.
    pub receipts: Vec<Receipt>,
}

fn message_key(role: u8, id: &Hash) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = role;
    k[1..].copy_from_slice(&id.0);
    k
}

fn outbox_key(dst: ShardId, nonce: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&dst.0.to_be_bytes());
    k[4..].copy_from_slice(&nonce.to_be_bytes());
    k
}

fn decode_receipts(height: u64, bytes: &[u8]) -> Result<Vec<Receipt>> {
    let corrupt = |e: bridge::DecodeError| Error::Corrupt(format!("receipts {height}: {e}"));
    let mut input = bytes;
    let n = u32::decode(&mut input).map_err(corrupt)?;
    let mut out = Vec::with_capacity((n as usize).min(input.len()));
    for _ in 0..n {
        let mut r = Receipt::decode(&mut input).map_err(corrupt)?;
        r.output = Bytes::from(Vec::<u8>::decode(&mut input).map_err(corrupt)?);
        out.push(r);
    }
    Ok(out)
}

/// The shard's rocksdb database.
#[derive(Clone)]
pub struct ShardDb {
    db: Arc<DB>,
    write_opts: Arc<WriteOptions>,
    /// Mirror of the persisted latest state version (`u64::MAX` = none),
    /// read on every state read; updated after each write that changes it.
    latest: Arc<std::sync::atomic::AtomicU64>,
}

impl ShardDb {
    /// Opens (or creates) the database at `path`. `fsync` makes every block
    /// commit durable against power loss too, not only against a crash.
    pub fn open(path: &Path, fsync: bool) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        let cfs = CFS.iter().map(|n| {
            let mut cf_opts = Options::default();
            if *n == CF_LATEST || *n == CF_NODES {
                let mut table = rocksdb::BlockBasedOptions::default();
                table.set_bloom_filter(10.0, false);
                cf_opts.set_block_based_table_factory(&table);
            }
            ColumnFamilyDescriptor::new(*n, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(db_err)?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(fsync);
        let mut this = ShardDb {
            db: Arc::new(db),
            write_opts: Arc::new(write_opts),
            latest: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
        };
        let latest = this.meta_u64(META_STATE_LATEST)?;
        this.latest = Arc::new(std::sync::atomic::AtomicU64::new(latest.unwrap_or(u64::MAX)));
        this.check_schema(path)?;
        Ok(this)
    }

    /// Stamps a database with [`SHARD_SCHEMA`] (an unversioned one counts as
    /// 1); refuses one written in another (rather than misread it).
    fn check_schema(&self, path: &Path) -> Result<()> {
        let found = self.meta_u64(META_SCHEMA)?;
        let found = match found {
            Some(v) => v,
            None => {
                let v = if self.head()?.is_none() { SHARD_SCHEMA } else { 1 };
                self.db
                    .put_cf_opt(self.cf(CF_META), META_SCHEMA, v.to_be_bytes(), &self.write_opts)
                    .map_err(db_err)?;
                v
            }
        };
        if found != SHARD_SCHEMA {
            return Err(Error::Config(format!(
                "the shard database at {} has schema {found}, this build reads schema {SHARD_SCHEMA}: start from a fresh data directory",
                path.display()
            )));
        }
        Ok(())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column family created at open")
    }

    fn meta_u64(&self, key: &[u8]) -> Result<Option<u64>> {
        match self.db.get_cf(self.cf(CF_META), key).map_err(db_err)? {
            None => Ok(None),
            Some(b) => Ok(Some(u64::from_be_bytes(
                b.as_slice().try_into().map_err(|_| Error::Corrupt("meta value".into()))?,
            ))),
        }
    }

    /// Height of the last committed block, `None` before genesis.
    pub fn head(&self) -> Result<Option<u64>> {
        self.meta_u64(META_HEAD)
    }

    /// Commits block `height` and the state version it produced in one
    /// atomic write.
    pub fn commit_block(
        &self,
        header: &ShardHeader,
        body: &StoredBody,
        receipts: &[Receipt],
        outbox: &[Message],
        supply: &crate::Supply,
        state: &TreeUpdateBatch,
    ) -> Result<()> {
        let height = header.height;
        let mut wb = WriteBatch::default();
        self.state_batch(&mut wb, height, state).map_err(|e| Error::Db(e.to_string()))?;
        let hkey = height.to_be_bytes();
        wb.put_cf(self.cf(CF_HEADERS), hkey, header.encode());
        wb.put_cf(self.cf(CF_BODIES), hkey, body.encode());
        let mut rbytes = Vec::new();
        (receipts.len() as u32).encode_to(&mut rbytes);
        for r in receipts {
            r.encode_to(&mut rbytes);
            r.output.to_vec().encode_to(&mut rbytes);
        }
        wb.put_cf(self.cf(CF_RECEIPTS), hkey, rbytes);
        for (i, h) in body.hashes.iter().enumerate() {
            let mut loc = hkey.to_vec();
            loc.extend_from_slice(&(i as u32).to_be_bytes());
            wb.put_cf(self.cf(CF_TX_INDEX), h.as_slice(), loc);
        }
        for (i, e) in body.inbox.iter().enumerate() {
            let at = [&hkey[..], &(i as u32).to_be_bytes()].concat();
            wb.put_cf(self.cf(CF_MESSAGE_INDEX), message_key(b'i', &e.message.id()), at);
        }
        if !outbox.is_empty() {
            let mut bytes = Vec::new();
            encode_list(outbox, &mut bytes);
            wb.put_cf(self.cf(CF_OUTBOX), hkey, bytes);
            for (i, m) in outbox.iter().enumerate() {
                let at = [&hkey[..], &(i as u32).to_be_bytes()].concat();
                wb.put_cf(self.cf(CF_MESSAGE_INDEX), message_key(b'o', &m.id()), at);
                wb.put_cf(
                    self.cf(CF_OUTBOX_INDEX),
                    outbox_key(m.dst, m.nonce),
                    [&hkey[..], &(i as u32).to_be_bytes()].concat(),
                );
            }
        }
        wb.put_cf(self.cf(CF_SUPPLY), hkey, supply.encode());
        wb.put_cf(self.cf(CF_BLOCK_INDEX), header.hash().0, hkey);
        wb.put_cf(self.cf(CF_META), META_HEAD, hkey);
        self.db.write_opt(wb, &self.write_opts).map_err(db_err)?;
        self.latest.store(height, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// The mismatch record of `block_hash`.
    pub fn get_mismatch(&self, block_hash: &Hash) -> Result<Option<Vec<u8>>> {
        let key = [META_MISMATCH, &block_hash.0[..]].concat();
        self.db.get_cf(self.cf(CF_META), key).map_err(db_err)
    }

    /// Deletes the mismatch record of `block_hash`.
    pub fn delete_mismatch(&self, block_hash: &Hash) -> Result<()> {
        let key = [META_MISMATCH, &block_hash.0[..]].concat();
        self.db.delete_cf_opt(self.cf(CF_META), key, &self.write_opts).map_err(db_err)
    }

    /// Stores a mismatch record (canonical evidence) under the block's hash.
    pub fn put_mismatch(&self, block_hash: &Hash, record: &[u8]) -> Result<()> {
        let key = [META_MISMATCH, &block_hash.0[..]].concat();
        self.db.put_cf_opt(self.cf(CF_META), key, record, &self.write_opts).map_err(db_err)
    }

    /// Raw transactions of reverted blocks not yet known to be included again.
    pub fn reverted_txs(&self) -> Result<Vec<(B256, Vec<u8>)>> {
        Ok(self
            .meta_records(META_REVERTED, "reverted tx")?
            .into_iter()
            .map(|(k, v)| (B256::from(k), v))
            .collect())
    }

    /// Every `meta` record under `prefix` whose key is the prefix and a
    /// 32-byte hash.
    fn meta_records(&self, prefix: &[u8], what: &str) -> Result<Vec<([u8; 32], Vec<u8>)>> {
        let it = self.db.iterator_cf(self.cf(CF_META), IteratorMode::From(prefix, Direction::Forward));
        let mut out = Vec::new();
        for kv in it {
            let (k, v) = kv.map_err(db_err)?;
            if !k.starts_with(prefix) {
                break;
            }
            let hash = <[u8; 32]>::try_from(&k[prefix.len()..])
                .map_err(|_| Error::Corrupt(format!("{what} record key")))?;
            out.push((hash, v.to_vec()));
        }
        Ok(out)
    }

    /// Forgets reverted transactions (included again, or stale).
    pub fn forget_reverted(&self, hashes: &[B256]) -> Result<()> {
        let mut wb = WriteBatch::default();
        for h in hashes {
            wb.delete_cf(self.cf(CF_META), [META_REVERTED, h.as_slice()].concat());
        }
        self.db.write_opt(wb, &self.write_opts).map_err(db_err)
    }

    /// Every stored mismatch record, with the block hash it is kept under.
    pub fn mismatch_records(&self) -> Result<Vec<(Hash, Vec<u8>)>> {
        Ok(self.meta_records(META_MISMATCH, "mismatch")?.into_iter().map(|(k, v)| (Hash(k), v)).collect())
    }

    /// Deletes blocks `to+1 ..= from` with their receipts and indexes and
    /// makes `to` the head, in one atomic write (the state tree is rolled
    /// back separately; opening repairs a crash in between).
    pub fn revert_blocks(&self, to: u64, from: u64, reverted: &[(B256, RevertedFrom)]) -> Result<()> {
        let mut wb = WriteBatch::default();
        self.remember_reverted(&mut wb, reverted)?;
        for height in to + 1..=from {
            let hkey = height.to_be_bytes();
            if let Some(body) = self.body(height)? {
                for e in &body.inbox {
                    wb.delete_cf(self.cf(CF_MESSAGE_INDEX), message_key(b'i', &e.message.id()));
                }
                for (h, raw) in body.hashes.iter().zip(&body.txs) {
                    wb.delete_cf(self.cf(CF_TX_INDEX), h.as_slice());
                    wb.put_cf(self.cf(CF_META), [META_REVERTED, h.as_slice()].concat(), raw);
                }
            }
            if let Some(header) = self.header(height)? {
                wb.delete_cf(self.cf(CF_BLOCK_INDEX), header.hash().0);
            }
            for m in self.outbox(height)? {
                wb.delete_cf(self.cf(CF_OUTBOX_INDEX), outbox_key(m.dst, m.nonce));
                wb.delete_cf(self.cf(CF_MESSAGE_INDEX), message_key(b'o', &m.id()));
            }
            wb.delete_cf(self.cf(CF_OUTBOX), hkey);
            wb.delete_cf(self.cf(CF_SUPPLY), hkey);
            wb.delete_cf(self.cf(CF_HEADERS), hkey);
            wb.delete_cf(self.cf(CF_BODIES), hkey);
            wb.delete_cf(self.cf(CF_RECEIPTS), hkey);
        }
        wb.put_cf(self.cf(CF_META), META_HEAD, to.to_be_bytes());
        self.db.write_opt(wb, &self.write_opts).map_err(db_err)
    }

    /// Adds records of reverted items to `wb`, keeping the newest
    /// [`KEPT_REVERTED`] (the oldest are deleted in the same batch).
    fn remember_reverted(&self, wb: &mut WriteBatch, records: &[(B256, RevertedFrom)]) -> Result<()> {
        let mut seq = self.meta_u64(META_REVERTED_SEQ)?.unwrap_or(0);
        for (id, from) in records {
            let mut v = seq.to_be_bytes().to_vec();
            v.extend_from_slice(&from.height.to_be_bytes());
            v.extend_from_slice(&from.block_hash.0);
            v.push(RevertedFrom::role_code(from.role));
            wb.put_cf(self.cf(CF_REVERTED_FROM), id.as_slice(), v);
            wb.put_cf(self.cf(CF_REVERTED_ORDER), seq.to_be_bytes(), id.as_slice());
            seq += 1;
        }
        wb.put_cf(self.cf(CF_META), META_REVERTED_SEQ, seq.to_be_bytes());
        let keep_from = seq.saturating_sub(KEPT_REVERTED as u64);
        for item in self.db.iterator_cf(self.cf(CF_REVERTED_ORDER), IteratorMode::Start) {
            let (k, id) = item.map_err(db_err)?;
            let s = u64::from_be_bytes(
                k.as_ref().try_into().map_err(|_| Error::Corrupt("reverted order".into()))?,
            );
            if s >= keep_from {
                break;
            }
            wb.delete_cf(self.cf(CF_REVERTED_ORDER), &k);
            // only if that id was not reverted again since (a newer record,
            // on disk or in this batch)
            if let Some(v) = self.db.get_cf(self.cf(CF_REVERTED_FROM), &id).map_err(db_err)?
                && v.get(..8) == Some(&k[..])
                && !records.iter().any(|(r, _)| r.as_slice() == &id[..])
            {
                wb.delete_cf(self.cf(CF_REVERTED_FROM), &id);
            }
        }
        Ok(())
    }

    /// The reverted items remembered, oldest first.
    pub fn reverted_records(&self) -> Result<Vec<(B256, RevertedFrom)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_REVERTED_ORDER), IteratorMode::Start) {
            let (k, id) = item.map_err(db_err)?;
            let Some(v) = self.db.get_cf(self.cf(CF_REVERTED_FROM), &id).map_err(db_err)? else { continue };
            // a stale order entry: the id was reverted again later
            if v.get(..8) != Some(&k[..]) {
                continue;
            }
            let corrupt = || Error::Corrupt("reverted record".into());
            if v.len() != 49 || id.len() != 32 {
                return Err(corrupt());
            }
            let height = u64::from_be_bytes(v[8..16].try_into().map_err(|_| corrupt())?);
            let block_hash = Hash(v[16..48].try_into().map_err(|_| corrupt())?);
            let role = RevertedFrom::role_of(v[48]).ok_or_else(corrupt)?;
            out.push((B256::from_slice(&id), RevertedFrom { height, block_hash, role }));
        }
        Ok(out)
    }

    /// Where message `id` was emitted here: `(height, index in the outbox)`.
    pub fn message_sent(&self, id: &Hash) -> Result<Option<(u64, u32)>> {
        self.message_location(b'o', id)
    }

    /// Where message `id` was consumed here: `(height, index among the
    /// block's inbox items)`.
    pub fn message_consumed(&self, id: &Hash) -> Result<Option<(u64, u32)>> {
        self.message_location(b'i', id)
    }

    fn message_location(&self, role: u8, id: &Hash) -> Result<Option<(u64, u32)>> {
        let v = self.db.get_cf(self.cf(CF_MESSAGE_INDEX), message_key(role, id)).map_err(db_err)?;
        Ok(v.and_then(|b| {
            (b.len() == 12).then(|| {
                (
                    u64::from_be_bytes(b[..8].try_into().expect("length checked")),
                    u32::from_be_bytes(b[8..].try_into().expect("length checked")),
                )
            })
        }))
    }

    /// The supply totals after block `height`.
    pub fn supply(&self, height: u64) -> Result<Option<crate::Supply>> {
        self.get_decoded(CF_SUPPLY, height, "supply")
    }

    /// The messages block `height` emitted, in order.
    pub fn outbox(&self, height: u64) -> Result<Vec<Message>> {
        match self.db.get_cf(self.cf(CF_OUTBOX), height.to_be_bytes()).map_err(db_err)? {
            None => Ok(Vec::new()),
            Some(b) => {
                let mut input = b.as_slice();
                let out =
                    decode_list(&mut input).map_err(|e| Error::Corrupt(format!("outbox {height}: {e}")))?;
                Ok(out)
            }
        }
    }

    /// Where the message of channel `(this shard → dst)` with `nonce` sits:
    /// `(height, index in that block's outbox)`.
    pub fn outbox_location(&self, dst: ShardId, nonce: u64) -> Result<Option<(u64, u32)>> {
        Ok(self.db.get_cf(self.cf(CF_OUTBOX_INDEX), outbox_key(dst, nonce)).map_err(db_err)?.and_then(|b| {
            (b.len() == 12).then(|| {
                (
                    u64::from_be_bytes(b[..8].try_into().expect("length checked")),
                    u32::from_be_bytes(b[8..].try_into().expect("length checked")),
                )
            })
        }))
    }

    /// The header at `height`.
    pub fn header(&self, height: u64) -> Result<Option<ShardHeader>> {
        self.get_decoded(CF_HEADERS, height, "header")
    }

    /// The body at `height`.
    pub fn body(&self, height: u64) -> Result<Option<StoredBody>> {
        self.get_decoded(CF_BODIES, height, "body")
    }

    fn get_decoded<T: Decode>(&self, cf: &str, height: u64, what: &str) -> Result<Option<T>> {
        self.db
            .get_cf(self.cf(cf), height.to_be_bytes())
            .map_err(db_err)?
            .map(|b| decode_exact(&b).map_err(|e| Error::Corrupt(format!("{what} {height}: {e}"))))
            .transpose()
    }

    /// The receipts of block `height`.
    pub fn receipts(&self, height: u64) -> Result<Option<Vec<Receipt>>> {
        let bytes = self.db.get_cf(self.cf(CF_RECEIPTS), height.to_be_bytes()).map_err(db_err)?;
        bytes.map(|b| decode_receipts(height, &b)).transpose()
    }

    /// Block `height` whole (header, body, receipts), read from one
    /// snapshot: a revert and import between the reads cannot mix two
    /// blocks at the same height.
    pub fn stored_block(&self, height: u64) -> Result<Option<StoredBlock>> {
        self.block_in(&self.db.snapshot(), height)
    }

    /// The block holding transaction `hash` and its index there, read from
    /// one snapshot, and checked: the index entry and the block agree.
    pub fn tx_block(&self, hash: &B256) -> Result<Option<(u32, StoredBlock)>> {
        let snap = self.db.snapshot();
        let Some(loc) = snap.get_cf(self.cf(CF_TX_INDEX), hash.as_slice()).map_err(db_err)? else {
            return Ok(None);
        };
        let loc = TxLocation::decode(&loc).ok_or_else(|| Error::Corrupt(format!("tx index of {hash}")))?;
        let Some(block) = self.block_in(&snap, loc.height)? else { return Ok(None) };
        if block.body.hashes.get(loc.index as usize) != Some(hash)
            || block.receipts.len() != block.body.inbox.len() + block.body.txs.len()
        {
            return Err(Error::Corrupt(format!("tx index of {hash} points past block {}", loc.height)));
        }
        Ok(Some((loc.index, block)))
    }

    fn block_in(&self, snap: &rocksdb::Snapshot<'_>, height: u64) -> Result<Option<StoredBlock>> {
        let key = height.to_be_bytes();
        let get = |cf| snap.get_cf(self.cf(cf), key).map_err(db_err);
        let (Some(h), Some(b), Some(r)) = (get(CF_HEADERS)?, get(CF_BODIES)?, get(CF_RECEIPTS)?) else {
            return Ok(None);
        };
        Ok(Some(StoredBlock {
            header: decode_exact(&h).map_err(|e| Error::Corrupt(format!("header {height}: {e}")))?,
            body: decode_exact(&b).map_err(|e| Error::Corrupt(format!("body {height}: {e}")))?,
            receipts: decode_receipts(height, &r)?,
        }))
    }

    /// Where transaction `hash` was included.
    pub fn tx_location(&self, hash: &B256) -> Result<Option<TxLocation>> {
        Ok(self
            .db
            .get_cf(self.cf(CF_TX_INDEX), hash.as_slice())
            .map_err(db_err)?
            .and_then(|b| TxLocation::decode(&b)))
    }

    /// Height of the block with header hash `hash`.
    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>> {
        Ok(self
            .db
            .get_cf(self.cf(CF_BLOCK_INDEX), hash.0)
            .map_err(db_err)?
            .and_then(|b| b.as_slice().try_into().ok().map(u64::from_be_bytes)))
    }

    /// The state tree's store inside this database.
    pub fn state_store(&self) -> Arc<dyn StateStore> {
        Arc::new(self.clone())
    }

    fn state_batch(
        &self,
        wb: &mut WriteBatch,
        version: Version,
        batch: &TreeUpdateBatch,
    ) -> prover::Result<()> {
        for (key, node) in batch.node_batch.nodes() {
            wb.put_cf(self.cf(CF_NODES), node_key_bytes(key)?, borsh::to_vec(node).map_err(state_err)?);
        }
        // one entry per version listing the keys it wrote, for rollback
        let mut written = Vec::with_capacity(batch.node_batch.values().len() * 32);
        for ((v, key), value) in batch.node_batch.values() {
            let mut k = key.0.to_vec();
            k.extend_from_slice(&v.to_be_bytes());
            let stored = match value {
                None => vec![0u8],
                Some(bytes) => [&[1u8][..], bytes].concat(),
            };
            wb.put_cf(self.cf(CF_VALUES), &k, &stored);
            match value {
                Some(_) => wb.put_cf(self.cf(CF_LATEST), key.0, &stored),
                None => wb.delete_cf(self.cf(CF_LATEST), key.0),
            }
            written.extend_from_slice(&key.0);
        }
        wb.put_cf(self.cf(CF_WRITTEN), version.to_be_bytes(), written);
        for stale in &batch.stale_node_index_batch {
            let mut k = stale.stale_since_version.to_be_bytes().to_vec();
            k.extend_from_slice(&node_key_bytes(&stale.node_key)?);
            wb.put_cf(self.cf(CF_STALE), k, []);
        }
        wb.put_cf(self.cf(CF_META), META_STATE_LATEST, version.to_be_bytes());
        Ok(())
    }
}

impl ShardDb {
    /// The value of `key` at `version` from the versioned history.
    fn value_at(&self, max_version: Version, key: &[u8; 32]) -> prover::Result<Option<Vec<u8>>> {
        let mut seek = key.to_vec();
        seek.extend_from_slice(&max_version.to_be_bytes());
        let mut it = self.db.raw_iterator_cf(self.cf(CF_VALUES));
        it.seek_for_prev(&seek);
        if !it.valid() {
            it.status().map_err(state_err)?;
            return Ok(None);
        }
        match (it.key(), it.value()) {
            (Some(k), Some(v)) if k.len() == 40 && k[..32] == key[..] => match v.first() {
                Some(1) => Ok(Some(v[1..].to_vec())),
                Some(0) => Ok(None),
                _ => Err(prover::Error::Corrupt("state value tag".into())),
            },
            _ => Ok(None),
        }
    }
}

/// Nodes sort by version first, so a version's nodes form one key range.
fn node_key_bytes(key: &NodeKey) -> prover::Result<Vec<u8>> {
    let mut k = key.version().to_be_bytes().to_vec();
    k.extend(borsh::to_vec(key).map_err(state_err)?);
    Ok(k)
}

impl StateStore for ShardDb {
    fn get_node(&self, key: &NodeKey) -> prover::Result<Option<Node>> {
        let raw = self.db.get_cf(self.cf(CF_NODES), node_key_bytes(key)?).map_err(state_err)?;
        raw.map(|b| borsh::from_slice(&b).map_err(|e| prover::Error::Corrupt(format!("tree node: {e}"))))
            .transpose()
    }

    fn get_value(&self, max_version: Version, key: KeyHash) -> prover::Result<Option<Vec<u8>>> {
        let latest = self.latest_version()?;
        if latest.is_some_and(|l| max_version >= l) {
            let value = match self.db.get_pinned_cf(self.cf(CF_LATEST), key.0).map_err(state_err)? {
                None => None,
                Some(v) if v.first() == Some(&1) => Some(v[1..].to_vec()),
                Some(_) => return Err(prover::Error::Corrupt("state value tag".into())),
            };
            // a block committed between the two reads would make `value` newer
            // than asked for; then read the history instead
            if self.latest_version()? == latest {
                return Ok(value);
            }
        }
        self.value_at(max_version, &key.0)
    }

    fn latest_version(&self) -> prover::Result<Option<Version>> {
        let v = self.latest.load(std::sync::atomic::Ordering::Acquire);
        Ok((v != u64::MAX).then_some(v))
    }

    fn oldest_version(&self) -> prover::Result<Version> {
        Ok(self.meta_u64(META_STATE_OLDEST).map_err(state_err)?.unwrap_or(0))
    }

    fn write(&self, version: Version, batch: &TreeUpdateBatch) -> prover::Result<()> {
        let mut wb = WriteBatch::default();
        self.state_batch(&mut wb, version, batch)?;
        self.db.write_opt(wb, &self.write_opts).map_err(state_err)?;
        self.latest.store(version, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn rollback(&self, version: Version) -> prover::Result<()> {
        let mut wb = WriteBatch::default();
        let from = (version + 1).to_be_bytes();
        let to = [0xffu8; 9].to_vec();
        wb.delete_range_cf(self.cf(CF_NODES), from.to_vec(), to.clone());
        wb.delete_range_cf(self.cf(CF_STALE), from.to_vec(), to);
        let written = self.db.iterator_cf(self.cf(CF_WRITTEN), IteratorMode::From(&from, Direction::Forward));
        let mut touched = std::collections::BTreeSet::new();
        for item in written {
            let (k, keys) = item.map_err(state_err)?;
            if k.len() != 8 || keys.len() % 32 != 0 {
                return Err(prover::Error::Corrupt("written-keys index".into()));
            }
            for key in keys.chunks_exact(32) {
                let mut vk = key.to_vec();
                vk.extend_from_slice(&k);
                wb.delete_cf(self.cf(CF_VALUES), vk);
                touched.insert(<[u8; 32]>::try_from(key).map_err(state_err)?);
            }
            wb.delete_cf(self.cf(CF_WRITTEN), &k);
        }
        // the newest value of each rolled-back key is its value at `version`
        for key in touched {
            let old = self.value_at(version, &key)?;
            match old {
                Some(v) => wb.put_cf(self.cf(CF_LATEST), key, [&[1u8][..], &v].concat()),
                None => wb.delete_cf(self.cf(CF_LATEST), key),
            }
        }
        wb.put_cf(self.cf(CF_META), META_STATE_LATEST, version.to_be_bytes());
        self.db.write_opt(wb, &self.write_opts).map_err(state_err)?;
        self.latest.store(version, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn prune(&self, keep_from: Version) -> prover::Result<()> {
        let mut wb = WriteBatch::default();
        for item in self.db.iterator_cf(self.cf(CF_STALE), IteratorMode::Start) {
            let (k, _) = item.map_err(state_err)?;
            let since = u64::from_be_bytes(k[..8].try_into().map_err(state_err)?);
            if since > keep_from {
                break;
            }
            // the node key bytes follow the 8-byte stale version
            wb.delete_cf(self.cf(CF_NODES), &k[8..]);
            wb.delete_cf(self.cf(CF_STALE), &k);
        }
        let oldest = self.oldest_version()?.max(keep_from);
        wb.put_cf(self.cf(CF_META), META_STATE_OLDEST, oldest.to_be_bytes());
        self.db.write_opt(wb, &self.write_opts).map_err(state_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverted_records_survive_a_reopen_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = ShardDb::open(dir.path(), false).unwrap();
        let rec = |i: u64, role| {
            let from = RevertedFrom { height: i, block_hash: Hash::of(&i.to_be_bytes()), role };
            (B256::left_padding_from(&i.to_be_bytes()), from)
        };
        let remember = |db: &ShardDb, records: &[(B256, RevertedFrom)]| {
            let mut wb = WriteBatch::default();
            db.remember_reverted(&mut wb, records).unwrap();
            db.db.write(wb).unwrap();
        };
        remember(&db, &[rec(1, "tx"), rec(2, "consumed"), rec(3, "sent")]);
        // id 1 reverted again, from another block
        let again = (rec(1, "tx").0, RevertedFrom { height: 9, block_hash: Hash::of(b"nine"), role: "tx" });
        remember(&db, std::slice::from_ref(&again));
        drop(db);
        let db = ShardDb::open(dir.path(), false).unwrap();
        let got = db.reverted_records().unwrap();
        assert_eq!(
            got,
            vec![rec(2, "consumed"), rec(3, "sent"), again],
            "oldest first, the newer record wins"
        );
        // past the bound the oldest go
        let many: Vec<_> = (100..100 + KEPT_REVERTED as u64).map(|i| rec(i, "tx")).collect();
        remember(&db, &many);
        let got = db.reverted_records().unwrap();
        assert_eq!(got.len(), KEPT_REVERTED);
        assert_eq!(got.first(), many.first());
    }

    #[test]
    fn a_database_of_another_schema_is_refused_and_an_unversioned_one_is_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let db = ShardDb::open(dir.path(), false).unwrap();
        assert_eq!(db.meta_u64(META_SCHEMA).unwrap(), Some(SHARD_SCHEMA));
        // written before versions were recorded: schema 1, which this build reads
        db.db.delete_cf(db.cf(CF_META), META_SCHEMA).unwrap();
        db.db.put_cf(db.cf(CF_META), META_HEAD, 3u64.to_be_bytes()).unwrap();
        drop(db);
        let db = ShardDb::open(dir.path(), false).unwrap();
        assert_eq!(db.meta_u64(META_SCHEMA).unwrap(), Some(1));
        db.db.put_cf(db.cf(CF_META), META_SCHEMA, (SHARD_SCHEMA + 1).to_be_bytes()).unwrap();
        drop(db);
        let err = ShardDb::open(dir.path(), false).err().expect("refused");
        assert!(err.to_string().contains("fresh data directory"), "{err}");
    }
}
