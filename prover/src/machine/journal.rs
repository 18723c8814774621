//! The transaction's journal as `s_j` commits to it, shaped so a step
//! touching state carries one entry and its path, not the journal.
//!
//! The journal is a sparse Merkle map (the state tree's own kind, blake3,
//! [`PartialTree`]) from [`JournalKey`] to the entry's canonical bytes, and a
//! hash chain of the logs, and a hash chain of the ids of the messages the
//! bridge sent. An entry is in the map exactly while it is *warm*: an
//! account or slot the transaction has loaded (and not lost in a reverted
//! frame), with its present value (and, for a slot, its value at the
//! transaction's start); non-zero transient storage. Everything else reads
//! as it was when the item started: revm keeps an account or slot first
//! loaded in a reverted frame as a cold entry whose value is the one before
//! the transaction, so leaving cold entries out loses nothing, and a step
//! reading a key the map lacks proves its value against `c_{i-1}`'s state
//! root instead. The addresses and slots a transaction starts warm
//! (coinbase, precompiles, the access list) follow from the block and the
//! transaction, which the referee has; revm loads them without journaling
//! the load, so a failed frame leaves them loaded: the map holds them only
//! once changed (`account_held`, `slot_held`), so the journal after a
//! failed frame is its checkpoint's, as revm's is in all that matters.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, Log, U256};
use bridge::{Hash, ShardId, hash_domain};
use revm::context::journal::{JournalEntry, JournalInner};
use revm::state::{Account, AccountInfo, AccountStatus, EvmStorageSlot, TransactionId};

use crate::state::{PartialTree, SmtProof, StateKey};

/// A key of the journal's map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum JournalKey {
    /// A warm account: balance, nonce, code hash, status.
    Account(Address),
    /// A warm storage slot: its value at the transaction's start and now.
    Slot(Address, U256),
    /// A non-zero transient storage slot.
    Transient(Address, U256),
}

impl JournalKey {
    /// Its tag and bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            JournalKey::Account(a) => [&[1u8][..], a.as_slice()].concat(),
            JournalKey::Slot(a, k) => [&[2u8][..], a.as_slice(), &k.to_be_bytes::<32>()].concat(),
            JournalKey::Transient(a, k) => [&[3u8][..], a.as_slice(), &k.to_be_bytes::<32>()].concat(),
        }
    }

    /// Its position in the map: a hash whose top two bits are its kind's
    /// (slots `00`, transient slots `01`, accounts `10`), so the journal's
    /// commit into the state, which takes the leftmost entry first, takes
    /// every slot while its account's entry (which decides whether the slot
    /// is written) is still in the map.
    pub fn key_hash(&self) -> [u8; 32] {
        let mut h = hash_domain(b"optishard.journal_key", &[&self.to_bytes()]).0;
        let kind = match self {
            JournalKey::Slot(..) => 0x00,
            JournalKey::Transient(..) => 0x40,
            JournalKey::Account(_) => 0x80,
        };
        h[0] = (h[0] & 0x3f) | kind;
        h
    }

    /// The state key whose value at the item's start an absent entry reads.
    pub fn pre_key(&self) -> Option<StateKey> {
        match *self {
            JournalKey::Account(a) => Some(StateKey::Account(a)),
            JournalKey::Slot(a, k) => Some(StateKey::Storage(a, k)),
            JournalKey::Transient(..) => None,
        }
    }
}

/// The journal's parts in `s_j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalRoot {
    /// Root of the entries' map.
    pub entries: [u8; 32],
    /// Hash chain of the logs emitted so far.
    pub logs: Hash,
    /// How many logs.
    pub logs_count: u64,
    /// Hash chain of the ids of the messages the bridge sent so far (its
    /// `MessageSent` logs): what the epilogue adds to the outbox.
    pub messages: Hash,
}

impl JournalRoot {
    /// The journal's hash in `s_j`.
    pub fn commitment(&self) -> Hash {
        hash_domain(
            b"optishard.journal",
            &[&self.entries, &self.logs.0, &self.logs_count.to_be_bytes(), &self.messages.0],
        )
    }

    /// The logs' parts of a journal that emitted `logs` (shard `shard`'s),
    /// its map's root left zero.
    pub(crate) fn of_logs(logs: &[Log], shard: ShardId) -> JournalRoot {
        JournalRoot { entries: [0; 32], logs_count: 0, logs: Hash::ZERO, messages: Hash::ZERO }
            .extended(logs, shard)
    }

    /// These parts after `logs` more were emitted.
    pub(crate) fn extended(&self, logs: &[Log], shard: ShardId) -> JournalRoot {
        let ids: Vec<Hash> =
            crate::bridge::messages_in(logs, shard).iter().map(bridge::Message::id).collect();
        JournalRoot {
            entries: self.entries,
            logs: extend_logs(self.logs, logs),
            logs_count: self.logs_count + logs.len() as u64,
            messages: extend_messages(self.messages, &ids),
        }
    }
}

/// The messages' chain over `below` extended by the ids `ids`.
pub(crate) fn extend_messages(below: Hash, ids: &[Hash]) -> Hash {
    ids.iter().fold(below, |below, id| hash_domain(b"optishard.messages", &[&below.0, &id.0]))
}

/// The account's entry: balance, nonce, code hash, status (without the
/// cold flag: an entry is warm).
pub(crate) fn account_entry(info: &AccountInfo, status: AccountStatus) -> Vec<u8> {
    let mut out = Vec::with_capacity(73);
    out.extend_from_slice(&info.balance.to_be_bytes::<32>());
    out.extend_from_slice(&info.nonce.to_be_bytes());
    out.extend_from_slice(info.code_hash.as_slice());
    out.push((status - AccountStatus::Cold).bits());
    out
}

/// The account an entry stands for, warm in transaction `id` (its code
/// left to be loaded by hash).
pub(crate) fn account_of(entry: &[u8], id: TransactionId) -> Option<Account> {
    let bytes: &[u8; 73] = entry.try_into().ok()?;
    let info = AccountInfo {
        balance: U256::from_be_slice(&bytes[..32]),
        nonce: u64::from_be_bytes(bytes[32..40].try_into().ok()?),
        code_hash: B256::from_slice(&bytes[40..72]),
        code: None,
        ..Default::default()
    };
    let status = AccountStatus::from_bits(bytes[72]).filter(|s| !s.contains(AccountStatus::Cold))?;
    let mut account = Account::from(info);
    account.status = status;
    account.transaction_id = id;
    Some(account)
}

/// A slot's entry: its value at the transaction's start, then now.
pub(crate) fn slot_entry(slot: &EvmStorageSlot) -> Vec<u8> {
    [slot.original_value.to_be_bytes::<32>(), slot.present_value.to_be_bytes::<32>()].concat()
}

pub(crate) fn slot_of(entry: &[u8], id: TransactionId) -> Option<EvmStorageSlot> {
    let bytes: &[u8; 64] = entry.try_into().ok()?;
    Some(EvmStorageSlot::new_changed(
        U256::from_be_slice(&bytes[..32]),
        U256::from_be_slice(&bytes[32..]),
        id,
    ))
}

/// The entry of `key` in a revm journal: `None` if it is not warm (or a
/// zero transient slot).
pub(crate) fn entry_in(inner: &JournalInner<JournalEntry>, key: &JournalKey) -> Option<Vec<u8>> {
    match key {
        JournalKey::Account(a) => inner
            .state
            .get(a)
            .filter(|acc| account_held(inner, a, acc))
            .map(|acc| account_entry(&acc.info, acc.status)),
        JournalKey::Slot(a, k) => inner
            .state
            .get(a)
            .and_then(|acc| acc.storage.get(k))
            .filter(|s| slot_held(inner, a, k, s))
            .map(slot_entry),
        JournalKey::Transient(a, k) => {
            let v = inner.transient_storage.get_value(*a, *k);
            (!v.is_zero()).then(|| v.to_be_bytes::<32>().to_vec())
        }
    }
}

/// Whether the map holds a loaded account: it is warm, and unless the
/// transaction starts it warm (a precompile, the coinbase, the access
/// list), it was touched or holds a slot the map holds. revm loads such an
/// address without journaling it, so a frame that loaded it and failed
/// leaves it loaded, as the state holds it: out of the map, as it was at
/// the frame's checkpoint.
fn account_held(inner: &JournalInner<JournalEntry>, a: &Address, acc: &Account) -> bool {
    !acc.is_cold_transaction_id(inner.transaction_id)
        && (!inner.warm_addresses.is_warm(a)
            || acc.is_touched()
            || acc.storage.iter().any(|(k, s)| slot_held(inner, a, k, s)))
}

/// Whether the map holds a loaded slot: it is warm, and unless the access
/// list starts it warm, it differs from its value at the transaction's
/// start (as [`account_held`], for the same reason).
fn slot_held(inner: &JournalInner<JournalEntry>, a: &Address, k: &U256, s: &EvmStorageSlot) -> bool {
    !s.is_cold_transaction_id(inner.transaction_id)
        && (!inner.warm_addresses.is_storage_warm(a, k) || s.present_value != s.original_value)
}

/// Every entry of a revm journal, by key.
pub(crate) fn entries_of(inner: &JournalInner<JournalEntry>) -> BTreeMap<JournalKey, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (address, account) in &inner.state {
        let key = JournalKey::Account(*address);
        if let Some(e) = entry_in(inner, &key) {
            out.insert(key, e);
        }
        for slot in account.storage.keys() {
            let key = JournalKey::Slot(*address, *slot);
            if let Some(e) = entry_in(inner, &key) {
                out.insert(key, e);
            }
        }
    }
    for (address, slots) in inner.transient_storage.iter() {
        for (slot, value) in slots {
            if !value.is_zero() {
                out.insert(JournalKey::Transient(*address, *slot), value.to_be_bytes::<32>().to_vec());
            }
        }
    }
    out
}

pub(crate) use crate::receipt::extend_logs;

/// The whole map of a journal, for the prover: its root and any key's
/// proof.
pub(crate) struct JournalTree(PartialTree);

impl JournalTree {
    pub(crate) fn of(entries: &BTreeMap<JournalKey, Vec<u8>>) -> JournalTree {
        let mut tree = PartialTree::Empty;
        for (key, value) in entries {
            // a tree built from nothing opens every path
            tree.update(&key.key_hash(), Some(value)).expect("a whole tree has no opaque subtree");
        }
        JournalTree(tree)
    }

    pub(crate) fn root(&self) -> [u8; 32] {
        self.0.hash()
    }

    pub(crate) fn prove(&self, key: &JournalKey) -> SmtProof {
        self.0.prove(&key.key_hash()).expect("a whole tree proves every key")
    }

    pub(crate) fn remove(&mut self, key: &JournalKey) {
        self.0.update(&key.key_hash(), None).expect("a whole tree has no opaque subtree");
    }
}

/// The journal's parts of a revm journal.
pub(crate) fn journal_root(inner: &JournalInner<JournalEntry>, shard: ShardId) -> JournalRoot {
    JournalRoot {
        entries: JournalTree::of(&entries_of(inner)).root(),
        ..JournalRoot::of_logs(&inner.logs, shard)
    }
}
