//! Authenticated state: accounts, storage and code in a Jellyfish Merkle
//! tree hashed with blake3, versioned by block height, over a [`StateStore`].

mod keys;
mod proof;
mod store;

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, U256};
use bridge::Hash;
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, Version};
use serde::{Deserialize, Serialize};

pub use keys::{AccountState, StateKey, code_matches, decode_slot, encode_slot};
pub use proof::{PLACEHOLDER, PartialTree, SmtLeaf, SmtProof, SmtSibling, value_hash};
pub use store::{MemStore, StateStore};

use crate::{Error, Result};

/// The tree's hash function: blake3 behind jmt's hasher trait.
#[derive(Clone, Default)]
pub struct Blake3Hasher(blake3::Hasher);

impl jmt::SimpleHasher for Blake3Hasher {
    fn new() -> Self {
        Blake3Hasher(blake3::Hasher::new())
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finalize(self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

type Tree<'a, R> = JellyfishMerkleTree<'a, R, Blake3Hasher>;

/// Writes of one item or one block: key to new value, `None` deletes.
pub type ChangeSet = BTreeMap<StateKey, Option<Vec<u8>>>;

fn jmt_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

/// Adapts a [`StateStore`] to jmt's reader.
struct StoreReader<'a>(&'a dyn StateStore);

impl TreeReader for StoreReader<'_> {
    fn get_node_option(&self, key: &NodeKey) -> anyhow::Result<Option<Node>> {
        self.0.get_node(key).map_err(anyhow::Error::new)
    }
    fn get_value_option(&self, max_version: Version, key: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        self.0.get_value(max_version, key).map_err(anyhow::Error::new)
    }
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Err(anyhow::anyhow!("state restore is not supported"))
    }
}

/// Versions after `base` from an uncommitted batch, older ones from the store.
struct OverlayReader<'a> {
    store: &'a dyn StateStore,
    base: Version,
    nodes: &'a BTreeMap<NodeKey, Node>,
    values: &'a BTreeMap<(KeyHash, Version), Option<Vec<u8>>>,
}

impl TreeReader for OverlayReader<'_> {
    fn get_node_option(&self, key: &NodeKey) -> anyhow::Result<Option<Node>> {
        if key.version() > self.base {
            return Ok(self.nodes.get(key).cloned());
        }
        self.store.get_node(key).map_err(anyhow::Error::new)
    }
    fn get_value_option(&self, max_version: Version, key: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
        if max_version > self.base
            && let Some((_, v)) = self.values.range((key, self.base + 1)..=(key, max_version)).next_back()
        {
            return Ok(v.clone());
        }
        self.store.get_value(max_version.min(self.base), key).map_err(anyhow::Error::new)
    }
    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Err(anyhow::anyhow!("state restore is not supported"))
    }
}

/// A key's value and its proof against a state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateProof {
    /// The key proven.
    pub key: StateKey,
    /// Its value, `None` if absent.
    pub value: Option<Vec<u8>>,
    /// Merkle proof of `value` (or absence).
    pub proof: SmtProof,
}

impl StateProof {
    /// Checks the proof against `root`.
    pub fn verify(&self, root: &Hash) -> Result<()> {
        self.proof.verify(&root.0, &self.key.key_hash().0, self.value.as_deref())
    }
}

/// The authenticated state over a store: reads, proofs, commits, rollback.
#[derive(Clone)]
pub struct AuthState {
    store: Arc<dyn StateStore>,
}

impl AuthState {
    /// Wraps a store.
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        AuthState { store }
    }

    /// An empty in-memory state.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(MemStore::new()))
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The newest committed version.
    pub fn latest_version(&self) -> Result<Option<Version>> {
        self.store.latest_version()
    }

    fn check_version(&self, version: Version) -> Result<()> {
        let latest = self.store.latest_version()?;
        let oldest = self.store.oldest_version()?;
        if latest.is_none_or(|l| version > l) || version < oldest {
            return Err(Error::MissingVersion { version, latest, oldest });
        }
        Ok(())
    }

    /// The state root at `version`.
    pub fn root(&self, version: Version) -> Result<Hash> {
        self.check_version(version)?;
        let reader = StoreReader(&*self.store);
        let root = Tree::new(&reader).get_root_hash(version).map_err(jmt_err)?;
        Ok(Hash(root.0))
    }

    /// The raw value of `key` at `version`.
    pub fn get(&self, key: &StateKey, version: Version) -> Result<Option<Vec<u8>>> {
        self.check_version(version)?;
        self.store.get_value(version, key.key_hash())
    }

    /// An account at `version`, `None` if it does not exist.
    pub fn account(&self, address: Address, version: Version) -> Result<Option<AccountState>> {
        self.check_version(version)?;
        self.account_unchecked(address, version)
    }

    /// A storage slot at `version` (zero when unset).
    pub fn storage(&self, address: Address, slot: U256, version: Version) -> Result<U256> {
        self.check_version(version)?;
        self.storage_unchecked(address, slot, version)
    }

    /// Code by hash at `version`.
    pub fn code(&self, hash: B256, version: Version) -> Result<Option<Bytes>> {
        self.check_version(version)?;
        self.code_unchecked(hash, version)
    }

    // The `_unchecked` reads serve `StateReader`, which checks its version
    // once when made rather than on every read of a block's execution.
    fn account_unchecked(&self, address: Address, version: Version) -> Result<Option<AccountState>> {
        self.store
            .get_value(version, StateKey::Account(address).key_hash())?
            .map(|b| AccountState::decode(&b))
            .transpose()
    }

    fn storage_unchecked(&self, address: Address, slot: U256, version: Version) -> Result<U256> {
        match self.store.get_value(version, StateKey::Storage(address, slot).key_hash())? {
            Some(b) => decode_slot(&b),
            None => Ok(U256::ZERO),
        }
    }

    fn code_unchecked(&self, hash: B256, version: Version) -> Result<Option<Bytes>> {
        Ok(self.store.get_value(version, StateKey::Code(hash).key_hash())?.map(Bytes::from))
    }

    /// `key`'s value with a proof against the root of `version`.
    pub fn prove(&self, key: StateKey, version: Version) -> Result<StateProof> {
        self.check_version(version)?;
        let reader = StoreReader(&*self.store);
        let (value, proof) = Tree::new(&reader).get_with_proof(key.key_hash(), version).map_err(jmt_err)?;
        Ok(StateProof { key, value, proof: SmtProof::from_jmt(&proof)? })
    }

    /// Writes `changes` as `version` (the next version, or 0 on an empty
    /// store) and returns the new root.
    pub fn commit(&self, version: Version, changes: &ChangeSet) -> Result<Hash> {
        let prepared = self.prepare(version, changes)?;
        self.store.write(version, &prepared.batch)?;
        Ok(prepared.root)
    }

    /// Computes version `version` from `changes` without writing it: the
    /// root, and the batch a store writes to make it the latest.
    pub fn prepare(&self, version: Version, changes: &ChangeSet) -> Result<PreparedVersion> {
        let expected = self.store.latest_version()?.map_or(0, |v| v + 1);
        if version != expected {
            return Err(Error::Store(format!("commit of version {version}, expected {expected}")));
        }
        let reader = StoreReader(&*self.store);
        let tree = Tree::new(&reader);
        // jmt's sorted batch insertion is several times faster than key-by-key
        // updates but takes no deletions and no empty sets; the root depends
        // only on the content, so both paths give the same version
        let (root, batch) = if !changes.is_empty() && changes.values().all(Option::is_some) {
            let set = changes.iter().map(|(k, v)| (k.key_hash(), v.clone().unwrap_or_default())).collect();
            let (mut roots, batch) = tree.batch_put_value_sets(vec![set], None, version).map_err(jmt_err)?;
            (roots.pop().ok_or_else(|| Error::Store("jmt returned no root".into()))?, batch)
        } else {
            let set = changes.iter().map(|(k, v)| (k.key_hash(), v.clone()));
            tree.put_value_set(set, version).map_err(jmt_err)?
        };
        Ok(PreparedVersion { version, root: Hash(root.0), batch })
    }

    /// Roots after applying each change set in turn on top of `base`,
    /// without writing anything (the per-item state roots of a block).
    pub fn roots_after(&self, base: Version, changesets: &[ChangeSet]) -> Result<Vec<Hash>> {
        Ok(self.view_after(base, changesets)?.roots)
    }

    /// The state after applying `changesets` on top of `base`, uncommitted,
    /// for proofs against an intermediate state of a block.
    pub fn view_after(&self, base: Version, changesets: &[ChangeSet]) -> Result<StateView> {
        self.check_version(base)?;
        if changesets.is_empty() {
            return Ok(StateView {
                state: self.clone(),
                base,
                nodes: BTreeMap::new(),
                values: BTreeMap::new(),
                roots: vec![],
            });
        }
        let reader = StoreReader(&*self.store);
        let sets =
            changesets.iter().map(|c| c.iter().map(|(k, v)| (k.key_hash(), v.clone())).collect::<Vec<_>>());
        let (roots, batch) = Tree::new(&reader).put_value_sets(sets, base + 1).map_err(jmt_err)?;
        Ok(StateView {
            state: self.clone(),
            base,
            nodes: batch.node_batch.nodes().clone(),
            values: batch.node_batch.values().iter().map(|((v, k), val)| ((*k, *v), val.clone())).collect(),
            roots: roots.into_iter().map(|r| Hash(r.0)).collect(),
        })
    }

    /// Drops every version after `version`.
    pub fn rollback(&self, version: Version) -> Result<()> {
        self.check_version(version)?;
        self.store.rollback(version)
    }

    /// Frees what versions before `keep_from` alone need.
    pub fn prune(&self, keep_from: Version) -> Result<()> {
        self.store.prune(keep_from)
    }

    /// A revm database reading the state at `version`.
    pub fn reader(&self, version: Version) -> Result<StateReader> {
        self.check_version(version)?;
        Ok(StateReader { state: self.clone(), version, block_hashes: BTreeMap::new() })
    }
}

/// A computed, unwritten state version (see [`AuthState::prepare`]).
pub struct PreparedVersion {
    /// The version it becomes.
    pub version: Version,
    /// Its state root.
    pub root: Hash,
    /// Nodes and values to write.
    pub batch: jmt::storage::TreeUpdateBatch,
}

/// An uncommitted state on top of a committed version (see [`AuthState::view_after`]).
pub struct StateView {
    state: AuthState,
    base: Version,
    nodes: BTreeMap<NodeKey, Node>,
    /// Values written after `base`, by key then version.
    values: BTreeMap<(KeyHash, Version), Option<Vec<u8>>>,
    roots: Vec<Hash>,
}

impl StateView {
    fn version(&self) -> Version {
        self.base + self.roots.len() as Version
    }

    /// The view's state root.
    pub fn root(&self) -> Result<Hash> {
        match self.roots.last() {
            Some(r) => Ok(*r),
            None => self.state.root(self.base),
        }
    }

    /// `key`'s value in the view.
    pub fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>> {
        let reader = OverlayReader {
            store: &*self.state.store,
            base: self.base,
            nodes: &self.nodes,
            values: &self.values,
        };
        reader.get_value_option(self.version(), key.key_hash()).map_err(jmt_err)
    }

    /// `key`'s value and proof against [`StateView::root`].
    pub fn prove(&self, key: StateKey) -> Result<StateProof> {
        if self.roots.is_empty() {
            return self.state.prove(key, self.base);
        }
        let reader = OverlayReader {
            store: &*self.state.store,
            base: self.base,
            nodes: &self.nodes,
            values: &self.values,
        };
        let (value, proof) =
            Tree::new(&reader).get_with_proof(key.key_hash(), self.version()).map_err(jmt_err)?;
        Ok(StateProof { key, value, proof: SmtProof::from_jmt(&proof)? })
    }
}

/// Reads the committed state at one version, for revm.
#[derive(Clone)]
pub struct StateReader {
    state: AuthState,
    version: Version,
    block_hashes: BTreeMap<u64, B256>,
}

impl StateReader {
    /// Makes `BLOCKHASH` answer from these (number → hash).
    pub fn with_block_hashes(mut self, hashes: BTreeMap<u64, B256>) -> Self {
        self.block_hashes = hashes;
        self
    }

    /// The version read.
    pub fn version(&self) -> Version {
        self.version
    }

    /// `key`'s value and proof against the root of the version read.
    pub fn prove(&self, key: StateKey) -> Result<StateProof> {
        self.state.prove(key, self.version)
    }

    /// The root of the version read.
    pub fn root(&self) -> Result<Hash> {
        self.state.root(self.version)
    }
}

impl revm::DatabaseRef for StateReader {
    type Error = Error;

    fn basic_ref(&self, address: Address) -> Result<Option<revm::state::AccountInfo>> {
        Ok(self.state.account_unchecked(address, self.version)?.map(AccountState::to_info))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<revm::bytecode::Bytecode> {
        match self.state.code_unchecked(code_hash, self.version)? {
            Some(code) => Ok(revm::bytecode::Bytecode::new_raw(code)),
            None => Err(Error::MissingCode(code_hash)),
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256> {
        self.state.storage_unchecked(address, index, self.version)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256> {
        // as on Ethereum, an unknown (too old or future) block hashes to zero
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }
}

impl revm::database_interface::DBErrorMarker for Error {}

/// Reads an uncommitted [`StateView`] (a block's state after some of its
/// items), for revm and for proofs against its root.
#[derive(Clone)]
pub struct ViewReader {
    view: Arc<StateView>,
    block_hashes: BTreeMap<u64, B256>,
}

impl ViewReader {
    /// Reads `view`, `BLOCKHASH` answering from `block_hashes`.
    pub fn new(view: StateView, block_hashes: BTreeMap<u64, B256>) -> Self {
        ViewReader { view: Arc::new(view), block_hashes }
    }

    /// `key`'s value and proof against the view's root.
    pub fn prove(&self, key: StateKey) -> Result<StateProof> {
        self.view.prove(key)
    }

    /// The view's root.
    pub fn root(&self) -> Result<Hash> {
        self.view.root()
    }
}

impl revm::DatabaseRef for ViewReader {
    type Error = Error;

    fn basic_ref(&self, address: Address) -> Result<Option<revm::state::AccountInfo>> {
        let value = self.view.get(&StateKey::Account(address))?;
        Ok(value.map(|b| AccountState::decode(&b)).transpose()?.map(AccountState::to_info))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<revm::bytecode::Bytecode> {
        match self.view.get(&StateKey::Code(code_hash))? {
            Some(code) => Ok(revm::bytecode::Bytecode::new_raw(Bytes::from(code))),
            None => Err(Error::MissingCode(code_hash)),
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256> {
        match self.view.get(&StateKey::Storage(address, index))? {
            Some(b) => decode_slot(&b),
            None => Ok(U256::ZERO),
        }
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256> {
        Ok(self.block_hashes.get(&number).copied().unwrap_or_default())
    }
}
