//! rocksdb persistence of the beacon chain: blocks by slot, every accepted
//! shard header by `(shard, height)`, and the head, each block written in
//! one atomic batch.

use std::path::Path;
use std::sync::Arc;

use bridge::{
    BeaconBlock, Decode, Encode, ShardBlock, ShardId, SignedHeader, decode_exact, decode_list, encode_list,
};
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use crate::{Error, Result};

const CF_BLOCKS: &str = "blocks";
const CF_SHARD_HEADERS: &str = "shard_headers";
/// Bodies (raw transactions) of accepted shard blocks, by `(shard, height)`.
const CF_SHARD_BODIES: &str = "shard_bodies";
const CF_META: &str = "meta";
/// Headers discarded by a dispute, by `(shard, height)` ‖ header hash.
const CF_INVALID: &str = "invalid_headers";
/// Every game's log (JSON, for the RPC), by id.
const CF_GAMES: &str = "games";
/// The dispute state (open games, bonds, invalidation chain).
const META_DISPUTES: &[u8] = b"disputes";
const META_HEAD: &[u8] = b"head_slot";
const META_SCHEMA: &[u8] = b"schema";

/// The version of what this build writes (bumped when an encoding changes:
/// 2 added pauses to the dispute state and stand-ins to game records; 3
/// made in-game moves name the game position they answer; 4 records each
/// game's stand-ins and puts a receipt game's claim in the game's phases,
/// and persists refused steps with the dispute state; 5 adds a game's
/// descent into its item's level-2 trace and the `Descend` move). A
/// database written before versions were recorded counts as 1.
pub const BEACON_SCHEMA: u64 = 5;
/// `chan/` ‖ src ‖ dst → the next nonce of that channel a block may consume.
const META_CHANNEL: &[u8] = b"chan/";

/// An accepted shard header and the beacon slot that included it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IncludedHeader {
    /// The signed header.
    pub header: SignedHeader,
    /// Slot of the beacon block that included it.
    pub included_in: u64,
    /// The newest source header of each shard whose messages it consumed:
    /// it is final only once they are.
    pub depends_on: Vec<(ShardId, u64)>,
    /// Every inbound channel's next nonce after this block, by source shard
    /// (what a revert to this header restores).
    pub inbound_after: Vec<u64>,
}

/// A block the beacon accepted and has not sealed yet.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The block.
    pub block: ShardBlock,
    /// Every inbound channel's next nonce after it, by source shard.
    pub inbound_after: Vec<u64>,
}

/// A header a dispute discarded, kept for the RPC.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscardedHeader {
    /// The header's hash.
    pub hash: bridge::Hash,
    /// The slot that had included it.
    pub included_slot: u64,
    /// The slot that discarded it.
    pub invalidated_slot: u64,
    /// The game that proved fraud (here or upstream).
    pub game: bridge::Hash,
    /// Whether the game was against this very header (else it went with
    /// an invalid ancestor or source).
    pub proven: bool,
    /// For a cascade: the discarded source header it consumed messages of.
    pub cause: Option<(ShardId, u64)>,
}

/// A run of one shard's headers a dispute discarded, heights `from..=to`.
pub struct Discard {
    /// The shard.
    pub shard: ShardId,
    /// First discarded height.
    pub from: u64,
    /// Last discarded height.
    pub to: u64,
    /// Each discarded header's record, by height.
    pub records: Vec<(u64, DiscardedHeader)>,
}

/// Everything one sealed beacon block writes, in one atomic batch.
pub struct SealWrite<'a> {
    /// The block.
    pub block: &'a BeaconBlock,
    /// The shard blocks it includes, with their channel state.
    pub accepted: &'a [Accepted],
    /// Every channel's next nonce after it.
    pub channels: &'a std::collections::HashMap<(ShardId, ShardId), u64>,
    /// The encoded dispute state after it.
    pub disputes: Vec<u8>,
    /// Shard headers discarded in it.
    pub discarded: Vec<Discard>,
    /// Game logs changed in it.
    pub game_logs: Vec<(bridge::Hash, Vec<u8>)>,
}

/// The newest source height per shard among `block`'s inbox messages.
pub fn dependencies(block: &ShardBlock) -> Vec<(ShardId, u64)> {
    let mut deps: std::collections::BTreeMap<ShardId, u64> = std::collections::BTreeMap::new();
    for e in &block.inbox {
        let h = deps.entry(e.message.src).or_default();
        *h = (*h).max(e.height);
    }
    deps.into_iter().collect()
}

/// The beacon's database.
#[derive(Clone)]
pub struct BeaconDb {
    db: Arc<DB>,
    write_opts: Arc<WriteOptions>,
}

fn db_err(e: rocksdb::Error) -> Error {
    Error::Db(e.to_string())
}

fn channel_key(src: ShardId, dst: ShardId) -> Vec<u8> {
    [META_CHANNEL, &src.0.to_be_bytes()[..], &dst.0.to_be_bytes()[..]].concat()
}

fn header_key(shard: ShardId, height: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&shard.0.to_be_bytes());
    k[4..].copy_from_slice(&height.to_be_bytes());
    k
}

impl BeaconDb {
    /// Opens or creates the database at `path`.
    pub fn open(path: &Path, fsync: bool) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_BLOCKS, CF_SHARD_HEADERS, CF_SHARD_BODIES, CF_META, CF_INVALID, CF_GAMES]
            .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(db_err)?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(fsync);
        let this = BeaconDb { db: Arc::new(db), write_opts: Arc::new(write_opts) };
        this.check_schema(path)?;
        Ok(this)
    }

    /// Stamps a new database with [`BEACON_SCHEMA`]; refuses one written in
    /// another (rather than misread it).
    fn check_schema(&self, path: &Path) -> Result<()> {
        let found = match self.db.get_cf(self.cf(CF_META), META_SCHEMA).map_err(db_err)? {
            Some(b) => u64::from_be_bytes(
                b.as_slice().try_into().map_err(|_| Error::Corrupt("schema version".into()))?,
            ),
            None if self.head_slot()?.is_none() => {
                let key = META_SCHEMA;
                self.db
                    .put_cf_opt(self.cf(CF_META), key, BEACON_SCHEMA.to_be_bytes(), &self.write_opts)
                    .map_err(db_err)?;
                return Ok(());
            }
            None => 1,
        };
        if found != BEACON_SCHEMA {
            return Err(Error::Config(format!(
                "the beacon database at {} has schema {found}, this build reads schema {BEACON_SCHEMA}: start from a fresh data directory (optishard testnet down, then up with a new --datadir)",
                path.display()
            )));
        }
        Ok(())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column family created at open")
    }

    /// Writes a sealed block: discards headers a dispute invalidated,
    /// indexes the block's shard headers with their bodies, the channels,
    /// the dispute state and game logs, and makes it the head, in one
    /// atomic write.
    pub fn commit(&self, w: SealWrite<'_>) -> Result<()> {
        let mut wb = WriteBatch::default();
        // discards first: the block's own headers may reuse those heights
        for d in &w.discarded {
            for height in d.from..=d.to {
                wb.delete_cf(self.cf(CF_SHARD_HEADERS), header_key(d.shard, height));
                wb.delete_cf(self.cf(CF_SHARD_BODIES), header_key(d.shard, height));
            }
            for (height, r) in &d.records {
                let key = [&header_key(d.shard, *height)[..], &r.hash.0[..]].concat();
                wb.put_cf(self.cf(CF_INVALID), key, serde_json::to_vec(r).expect("serializable"));
            }
        }
        let block = w.block;
        let slot = block.slot.to_be_bytes();
        wb.put_cf(self.cf(CF_BLOCKS), slot, block.encode());
        for a in w.accepted {
            let b = &a.block;
            let h = &b.header.header;
            let mut v = b.header.encode();
            block.slot.encode_to(&mut v);
            let deps = dependencies(b);
            (deps.len() as u32).encode_to(&mut v);
            for (s, height) in deps {
                s.encode_to(&mut v);
                height.encode_to(&mut v);
            }
            encode_list(&a.inbound_after, &mut v);
            wb.put_cf(self.cf(CF_SHARD_HEADERS), header_key(h.shard, h.height), v);
            let mut v = Vec::new();
            encode_list(&b.inbox, &mut v);
            encode_list(&b.txs, &mut v);
            wb.put_cf(self.cf(CF_SHARD_BODIES), header_key(h.shard, h.height), v);
        }
        for ((src, dst), n) in w.channels {
            wb.put_cf(self.cf(CF_META), channel_key(*src, *dst), n.to_be_bytes());
        }
        wb.put_cf(self.cf(CF_META), META_DISPUTES, &w.disputes);
        for (id, log) in &w.game_logs {
            wb.put_cf(self.cf(CF_GAMES), id.0, log);
        }
        wb.put_cf(self.cf(CF_META), META_HEAD, slot);
        self.db.write_opt(wb, &self.write_opts).map_err(db_err)
    }

    /// The stored dispute state (`None` before the first block).
    pub fn disputes(&self) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(CF_META), META_DISPUTES).map_err(db_err)
    }

    /// A game's log.
    pub fn game_log(&self, id: &bridge::Hash) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(CF_GAMES), id.0).map_err(db_err)
    }

    /// Every game log, newest-written order not guaranteed (by id).
    pub fn game_logs(&self, limit: usize) -> Result<Vec<Vec<u8>>> {
        let it = self.db.iterator_cf(self.cf(CF_GAMES), IteratorMode::Start);
        let mut out = Vec::new();
        for kv in it.take(limit) {
            out.push(kv.map_err(db_err)?.1.to_vec());
        }
        Ok(out)
    }

    /// Headers of `shard` at `height` that disputes discarded.
    pub fn discarded(&self, shard: ShardId, height: u64) -> Result<Vec<DiscardedHeader>> {
        let prefix = header_key(shard, height);
        let it = self.db.iterator_cf(self.cf(CF_INVALID), IteratorMode::From(&prefix, Direction::Forward));
        let mut out = Vec::new();
        for kv in it {
            let (k, v) = kv.map_err(db_err)?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(
                serde_json::from_slice(&v).map_err(|e| Error::Corrupt(format!("discarded header: {e}")))?,
            );
        }
        Ok(out)
    }

    /// The next nonce each channel's consumption must continue with, as of
    /// the sealed blocks.
    pub fn channels(&self) -> Result<std::collections::HashMap<(ShardId, ShardId), u64>> {
        let mut out = std::collections::HashMap::new();
        let it = self.db.iterator_cf(self.cf(CF_META), IteratorMode::From(META_CHANNEL, Direction::Forward));
        for kv in it {
            let (k, v) = kv.map_err(db_err)?;
            if !k.starts_with(META_CHANNEL) {
                break;
            }
            let k = &k[META_CHANNEL.len()..];
            let (Ok(src), Ok(dst), Ok(n)) = (
                <[u8; 4]>::try_from(&k[..4.min(k.len())]),
                <[u8; 4]>::try_from(k.get(4..).unwrap_or_default()),
                <[u8; 8]>::try_from(&v[..]),
            ) else {
                return Err(Error::Corrupt("channel record".into()));
            };
            out.insert(
                (ShardId(u32::from_be_bytes(src)), ShardId(u32::from_be_bytes(dst))),
                u64::from_be_bytes(n),
            );
        }
        Ok(out)
    }

    /// Slot of the newest block.
    pub fn head_slot(&self) -> Result<Option<u64>> {
        match self.db.get_cf(self.cf(CF_META), META_HEAD).map_err(db_err)? {
            None => Ok(None),
            Some(b) => Ok(Some(u64::from_be_bytes(
                b.as_slice().try_into().map_err(|_| Error::Corrupt("head slot".into()))?,
            ))),
        }
    }

    /// The block of `slot`, if the beacon produced one.
    pub fn block(&self, slot: u64) -> Result<Option<BeaconBlock>> {
        match self.db.get_cf(self.cf(CF_BLOCKS), slot.to_be_bytes()).map_err(db_err)? {
            None => Ok(None),
            Some(b) => decode_exact(&b).map(Some).map_err(|e| Error::Corrupt(format!("block {slot}: {e}"))),
        }
    }

    /// Up to `limit` blocks from slot `from` on (slots without a block are skipped).
    pub fn blocks_from(&self, from: u64, limit: usize) -> Result<Vec<BeaconBlock>> {
        let it = self
            .db
            .iterator_cf(self.cf(CF_BLOCKS), IteratorMode::From(&from.to_be_bytes(), Direction::Forward));
        let mut out = Vec::new();
        for kv in it.take(limit) {
            let (_, v) = kv.map_err(db_err)?;
            out.push(decode_exact(&v).map_err(|e| Error::Corrupt(format!("block: {e}")))?);
        }
        Ok(out)
    }

    /// The accepted block (header and body) of `shard` at `height`.
    pub fn shard_block(&self, shard: ShardId, height: u64) -> Result<Option<ShardBlock>> {
        let Some(header) = self.shard_header(shard, height)? else { return Ok(None) };
        let Some(body) =
            self.db.get_cf(self.cf(CF_SHARD_BODIES), header_key(shard, height)).map_err(db_err)?
        else {
            return Ok(None);
        };
        let mut input = body.as_slice();
        let corrupt = |e: bridge::DecodeError| Error::Corrupt(format!("body {shard}/{height}: {e}"));
        let inbox = decode_list(&mut input).map_err(corrupt)?;
        let txs = decode_list(&mut input).map_err(corrupt)?;
        Ok(Some(ShardBlock { header: header.header, inbox, txs }))
    }

    /// The accepted header of `shard` at `height`.
    pub fn shard_header(&self, shard: ShardId, height: u64) -> Result<Option<IncludedHeader>> {
        match self.db.get_cf(self.cf(CF_SHARD_HEADERS), header_key(shard, height)).map_err(db_err)? {
            None => Ok(None),
            Some(b) => {
                let corrupt =
                    |e: bridge::DecodeError| Error::Corrupt(format!("header {shard}/{height}: {e}"));
                let mut input = b.as_slice();
                let header = SignedHeader::decode(&mut input).map_err(corrupt)?;
                let included_in = u64::decode(&mut input).map_err(corrupt)?;
                let n = u32::decode(&mut input).map_err(corrupt)?;
                let mut depends_on = Vec::with_capacity((n as usize).min(64));
                for _ in 0..n {
                    depends_on.push((
                        ShardId::decode(&mut input).map_err(corrupt)?,
                        u64::decode(&mut input).map_err(corrupt)?,
                    ));
                }
                let inbound_after = decode_list(&mut input).map_err(corrupt)?;
                if !input.is_empty() {
                    return Err(corrupt(bridge::DecodeError::TrailingBytes(input.len())));
                }
                Ok(Some(IncludedHeader { header, included_in, depends_on, inbound_after }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_of_another_schema_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = BeaconDb::open(dir.path(), false).unwrap();
        let stamped = db.db.get_cf(db.cf(CF_META), META_SCHEMA).unwrap().unwrap();
        assert_eq!(stamped, BEACON_SCHEMA.to_be_bytes(), "a new database is stamped");
        drop(db);
        BeaconDb::open(dir.path(), false).expect("its own schema opens again");
        // an older build's database (no stamp, but blocks)
        let db = BeaconDb::open(dir.path(), false).unwrap();
        db.db.delete_cf(db.cf(CF_META), META_SCHEMA).unwrap();
        db.db.put_cf(db.cf(CF_META), META_HEAD, 7u64.to_be_bytes()).unwrap();
        drop(db);
        let err = BeaconDb::open(dir.path(), false).err().expect("refused");
        assert!(
            err.to_string().contains(&format!("has schema 1, this build reads schema {BEACON_SCHEMA}")),
            "{err}"
        );
        // a newer build's
        let db = rocksdb_reopen(dir.path());
        db.put_cf(db.cf_handle(CF_META).unwrap(), META_SCHEMA, 99u64.to_be_bytes()).unwrap();
        drop(db);
        let err = BeaconDb::open(dir.path(), false).err().expect("refused");
        assert!(
            err.to_string().contains("has schema 99") && err.to_string().contains("fresh data directory"),
            "{err}"
        );
    }

    fn rocksdb_reopen(path: &Path) -> DB {
        let cfs = [CF_BLOCKS, CF_SHARD_HEADERS, CF_SHARD_BODIES, CF_META, CF_INVALID, CF_GAMES];
        DB::open_cf(&Options::default(), path, cfs).unwrap()
    }
}
