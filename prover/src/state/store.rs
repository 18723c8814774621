//! The seam under the authenticated state: a versioned store of Jellyfish
//! Merkle tree nodes and values. `MemStore` lives here; the rocksdb store
//! lives in the `shard` crate. Both pass the same suite (`shard`'s tests).

use std::collections::{BTreeMap, BTreeSet};

use jmt::storage::{NibblePath, Node, NodeKey, StaleNodeIndex, TreeUpdateBatch};
use jmt::{KeyHash, Version};
use parking_lot::RwLock;

use crate::Result;

/// A versioned node-and-value store for the state tree.
///
/// Versions are block heights. Writing version `v` makes it the latest;
/// every version from [`StateStore::oldest_version`] to the latest stays
/// readable until pruned, and the store can be rolled back to any of them.
pub trait StateStore: Send + Sync {
    /// A tree node, if present.
    fn get_node(&self, key: &NodeKey) -> Result<Option<Node>>;

    /// The newest value of `key` written at a version `<= max_version`
    /// (`None` if never written or deleted).
    fn get_value(&self, max_version: Version, key: KeyHash) -> Result<Option<Vec<u8>>>;

    /// The newest committed version, `None` before genesis.
    fn latest_version(&self) -> Result<Option<Version>>;

    /// The oldest version still readable.
    fn oldest_version(&self) -> Result<Version>;

    /// Atomically writes the nodes and values of `version` and makes it the latest.
    fn write(&self, version: Version, batch: &TreeUpdateBatch) -> Result<()>;

    /// Drops every version after `version`, which becomes the latest.
    fn rollback(&self, version: Version) -> Result<()>;

    /// Frees nodes no version `>= keep_from` needs; older versions become unreadable.
    fn prune(&self, keep_from: Version) -> Result<()>;
}

/// The smallest node key of a version: nodes order by version first.
pub(crate) fn first_node_key(version: Version) -> NodeKey {
    NodeKey::new(version, std::iter::empty().collect::<NibblePath>())
}

#[derive(Default)]
struct MemInner {
    nodes: BTreeMap<NodeKey, Node>,
    values: BTreeMap<(KeyHash, Version), Option<Vec<u8>>>,
    /// Keys written at each version, so rollback finds them.
    written: BTreeMap<Version, Vec<KeyHash>>,
    stale: BTreeSet<StaleNodeIndex>,
    latest: Option<Version>,
    oldest: Version,
}

/// The in-memory [`StateStore`], for tests and for scratch execution.
#[derive(Default)]
pub struct MemStore {
    inner: RwLock<MemInner>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StateStore for MemStore {
    fn get_node(&self, key: &NodeKey) -> Result<Option<Node>> {
        Ok(self.inner.read().nodes.get(key).cloned())
    }

    fn get_value(&self, max_version: Version, key: KeyHash) -> Result<Option<Vec<u8>>> {
        let inner = self.inner.read();
        Ok(inner.values.range((key, 0)..=(key, max_version)).next_back().and_then(|(_, v)| v.clone()))
    }

    fn latest_version(&self) -> Result<Option<Version>> {
        Ok(self.inner.read().latest)
    }

    fn oldest_version(&self) -> Result<Version> {
        Ok(self.inner.read().oldest)
    }

    fn write(&self, version: Version, batch: &TreeUpdateBatch) -> Result<()> {
        let mut inner = self.inner.write();
        for (k, n) in batch.node_batch.nodes() {
            inner.nodes.insert(k.clone(), n.clone());
        }
        let mut keys = Vec::new();
        for ((v, k), val) in batch.node_batch.values() {
            inner.values.insert((*k, *v), val.clone());
            keys.push(*k);
        }
        inner.written.entry(version).or_default().extend(keys);
        inner.stale.extend(batch.stale_node_index_batch.iter().cloned());
        inner.latest = Some(version);
        Ok(())
    }

    fn rollback(&self, version: Version) -> Result<()> {
        let mut inner = self.inner.write();
        inner.nodes.split_off(&first_node_key(version + 1));
        let later = inner.written.split_off(&(version + 1));
        for (v, keys) in later {
            for k in keys {
                inner.values.remove(&(k, v));
            }
        }
        inner.stale.retain(|s| s.stale_since_version <= version);
        inner.latest = Some(version);
        Ok(())
    }

    fn prune(&self, keep_from: Version) -> Result<()> {
        let mut inner = self.inner.write();
        let stale: Vec<StaleNodeIndex> =
            inner.stale.iter().take_while(|s| s.stale_since_version <= keep_from).cloned().collect();
        for s in stale {
            inner.nodes.remove(&s.node_key);
            inner.stale.remove(&s);
        }
        inner.oldest = inner.oldest.max(keep_from);
        Ok(())
    }
}
