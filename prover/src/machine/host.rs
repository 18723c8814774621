//! The host one instruction runs against: the block, the transaction,
//! the journal entries a step carries and, for the absent ones, their
//! values before the item, proven against its state root.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use revm::DatabaseRef;
use revm::MainContext;
use revm::bytecode::Bytecode;
use revm::context::{BlockEnv, CfgEnv, Context, TxEnv};

use super::journal;
use super::step::Checked;
use super::touches::{Hints, delegate_of, step_keys};
use super::*;
use crate::bridge::ShardPrecompiles;
use crate::state::{AccountState, PartialTree, StateKey, StateProof, decode_slot};
use crate::{Error, Result};

/// The state a step's journal part says the item started with: the
/// accounts and slots of its absent entries, and the code it carries. A
/// read of anything else is recorded: the step lacked it.
#[derive(Default)]
pub(super) struct StepDb {
    accounts: BTreeMap<Address, Option<revm::state::AccountInfo>>,
    storage: BTreeMap<(Address, U256), U256>,
    codes: BTreeMap<B256, revm::bytecode::Bytecode>,
    /// Block hashes the referee vouched for (BLOCKHASH).
    pub(super) block_hashes: BTreeMap<u64, B256>,
    pub(super) missed: std::cell::RefCell<Option<String>>,
}

impl StepDb {
    /// The state a list of proven values says the item started with:
    /// every proof checked against the state root `root`, every code by
    /// its hash.
    pub(super) fn from_proofs(proofs: &[StateProof], codes: &[Vec<u8>], root: &Hash) -> Checked<StepDb> {
        let mut db = StepDb::default();
        for p in proofs {
            p.verify(root).map_err(|e| format!("state before the item: {e}"))?;
            db.insert(p)?;
        }
        for code in codes {
            let code = Bytecode::new_raw_checked(code.clone().into()).map_err(|_| "a malformed code")?;
            db.codes.insert(code.hash_slow(), code);
        }
        Ok(db)
    }

    /// Takes a proven value (already checked) into the state.
    fn insert(&mut self, p: &StateProof) -> Checked<()> {
        match (p.key, &p.value) {
            (StateKey::Account(a), v) => {
                let info = v.as_deref().map(AccountState::decode).transpose().map_err(|e| e.to_string())?;
                // code is loaded by hash, only by the instructions that read it
                let info = info.map(|i| revm::state::AccountInfo { code: None, ..i.to_info() });
                self.accounts.insert(a, info);
            }
            (StateKey::Storage(a, slot), v) => {
                let value = v.as_deref().map(decode_slot).transpose().map_err(|e| e.to_string())?;
                self.storage.insert((a, slot), value.unwrap_or_default());
            }
            (StateKey::Code(_), _) => return Err("a code is carried by itself, not proven".into()),
        }
        Ok(())
    }

    /// The code hash of `address` before the item, if the step proved it.
    pub(super) fn proven_code_hash(&self, address: &Address) -> Option<B256> {
        self.accounts
            .get(address)
            .map(|a| a.as_ref().map_or(revm::primitives::KECCAK_EMPTY, |info| info.code_hash))
    }

    fn miss<T>(&self, what: String) -> Result<T> {
        *self.missed.borrow_mut() = Some(what.clone());
        Err(Error::MissingPath(what))
    }
}

impl DatabaseRef for StepDb {
    type Error = Error;

    fn basic_ref(&self, address: Address) -> Result<Option<revm::state::AccountInfo>> {
        match self.accounts.get(&address) {
            Some(a) => Ok(a.clone()),
            None => self.miss(format!("account {address}")),
        }
    }

    fn code_by_hash_ref(&self, hash: B256) -> Result<revm::bytecode::Bytecode> {
        match self.codes.get(&hash) {
            Some(c) => Ok(c.clone()),
            None => self.miss(format!("code {hash}")),
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256> {
        match self.storage.get(&(address, index)) {
            Some(v) => Ok(*v),
            None => self.miss(format!("storage {address}[{index:#x}]")),
        }
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256> {
        match self.block_hashes.get(&number) {
            Some(h) => Ok(*h),
            None => self.miss(format!("block hash {number}")),
        }
    }
}

pub(super) type StepHost = Context<BlockEnv, TxEnv, CfgEnv, revm::database::WrapDatabaseRef<StepDb>>;

/// The entries a step opened, with their values in `s_j`.
pub(super) type Opened = Vec<(JournalKey, Option<Vec<u8>>)>;

/// The journal entries `step` carries, checked against `s_j` and the
/// state root the item starts from: the host's database (the absent
/// entries' values at the item's start) and the opened map.
pub(super) fn open_journal(
    step: &InstructionStep,
    env: &StepEnv,
    create_end: bool,
) -> std::result::Result<(StepDb, Opened, PartialTree), String> {
    let s = &step.state;
    let j = step.journal.as_ref().ok_or("a state instruction's step carries its journal entries")?;
    if j.root.commitment() != s.journal {
        return Err("the journal's parts are not the state's".into());
    }
    let target = step.input.as_ref().map_or(Address::ZERO, |i| i.target);
    // what the step says the instruction names besides its stack: checked
    // by revm's run (the address created, the bridge's slot touched, the
    // delegate loaded from the named account's code, which its hash proves)
    let delegate = j.codes.first().and_then(|c| delegate_of(c)).unwrap_or_default();
    let hints = Hints { created: claimed_created(step), channel: claimed_channel(step), delegate };
    let keys = step_keys(s.opcode, &step.top, target, create_end, hints);
    let (db, opened, tree) = open_entries(&j.root, &j.entries, &j.pre, &j.codes, &keys, env)?;
    if super::touches::is_call(s.opcode) {
        check_called_code(&j.codes, super::touches::called(&step.top), &db, &opened)?;
    }
    Ok((db, opened, tree))
}

/// A call's codes are the called account's, by the code hash its opened
/// entry or its proof holds, then its delegate's: so the delegate the
/// designation names (which decides the step's entries) is the one the
/// call loads. revm may skip loading a cold delegate for want of gas
/// without reading the database, so a delegate left out would not show as
/// a miss.
fn check_called_code(codes: &[Vec<u8>], named: Address, db: &StepDb, opened: &Opened) -> Result<(), String> {
    let held = opened.iter().find(|(k, _)| *k == JournalKey::Account(named)).and_then(|(_, v)| v.as_deref());
    let hash = match held {
        Some(entry) => {
            journal::account_of(entry, Default::default()).ok_or("a malformed account entry")?.info.code_hash
        }
        None => db.proven_code_hash(&named).ok_or("the called account is not in the step")?,
    };
    let ok = match codes.first() {
        None => hash == revm::primitives::KECCAK_EMPTY,
        Some(code) => alloy_primitives::keccak256(code) == hash,
    };
    let delegated = codes.first().and_then(|c| delegate_of(c)).is_some();
    if !ok || codes.len() > 1 + usize::from(delegated) {
        return Err("not the called account's code".into());
    }
    Ok(())
}

/// The address a create's step says it makes (its second entry): checked
/// against revm's once the instruction ran.
pub(super) fn claimed_created(step: &InstructionStep) -> Address {
    match step.journal.as_ref().and_then(|j| j.entries.get(1)).map(|e| e.key) {
        Some(JournalKey::Account(a)) if super::touches::is_create(step.state.opcode) => a,
        _ => Address::ZERO,
    }
}

/// The bridge's slot a call to it says it sends on (its third entry):
/// the precompile may touch no other.
pub(super) fn claimed_channel(step: &InstructionStep) -> U256 {
    match step.journal.as_ref().and_then(|j| j.entries.get(2)).map(|e| e.key) {
        Some(JournalKey::Slot(a, k)) if a == bridge::BRIDGE_ADDRESS => k,
        _ => U256::ZERO,
    }
}

/// Journal entries carried by a step, which must be exactly `keys`, each
/// checked against the map's root `root`, and each absent one's value at
/// the item's start against its state root (`pre`, in order): the host's
/// database, the opened entries and the opened map.
pub(super) fn open_entries(
    root: &JournalRoot,
    entries: &[JournalProof],
    pre: &[StateProof],
    codes: &[Vec<u8>],
    keys: &[JournalKey],
    env: &StepEnv,
) -> std::result::Result<(StepDb, Opened, PartialTree), String> {
    if entries.iter().map(|e| e.key).ne(keys.iter().copied()) {
        return Err("not the journal entries the step touches".into());
    }
    let pre_root = env.pre.state_root;
    let mut db = StepDb::from_proofs(&[], codes, &pre_root)?;
    let mut pre = pre.iter();
    for e in entries {
        e.proof
            .verify(&root.entries, &e.key.key_hash(), e.value.as_deref())
            .map_err(|err| format!("journal entry {:?}: {err}", e.key))?;
        let (None, Some(k)) = (&e.value, e.key.pre_key()) else { continue };
        let p = pre
            .next()
            .filter(|p| p.key == k)
            .ok_or("an absent entry's value at the item's start is missing")?;
        p.verify(&pre_root).map_err(|err| format!("state before the item: {err}"))?;
        db.insert(p)?;
    }
    if pre.next().is_some() {
        return Err("more state proofs than absent entries".into());
    }
    let opened: Vec<_> = entries.iter().map(|e| (e.key, e.value.clone())).collect();
    let hashes: Vec<_> = entries.iter().map(|e| e.key.key_hash()).collect();
    let tree = PartialTree::from_proofs(hashes.iter().zip(entries.iter().map(|e| &e.proof)))
        .map_err(|e| e.to_string())?;
    Ok((db, opened, tree))
}

/// A host for one instruction: the block, the transaction, the warm
/// addresses revm sets up before a transaction (precompiles, coinbase,
/// access list), and the present journal entries in its journal.
pub(super) fn host_for(
    db: StepDb,
    entries: &[(JournalKey, Option<Vec<u8>>)],
    env: &StepEnv,
) -> Result<StepHost, String> {
    use revm::context::JournalTr;
    use revm::primitives::hardfork::SpecId;
    let spec = env.params.fork;
    let mut cfg = env.params.cfg_env();
    crate::exec::delivering_cfg(&mut cfg, env.message.as_ref());
    let mut host = Context::mainnet()
        .with_db(revm::database::WrapDatabaseRef(db))
        .with_cfg(cfg)
        .with_block(env.params.block_env())
        .with_tx(env.tx.clone());
    let journal = &mut host.journaled_state;
    journal.set_spec_id(spec);
    let precompiles = ShardPrecompiles::new(spec, env.params.shard, env.params.shards);
    journal.warm_precompiles(precompiles.addresses());
    if spec.is_enabled_in(SpecId::SHANGHAI) {
        journal.warm_coinbase_account(env.params.beneficiary);
    }
    if env.tx.tx_type != 0 {
        let mut map: revm::primitives::AddressMap<revm::primitives::HashSet<U256>> = Default::default();
        for item in env.tx.access_list.iter() {
            map.entry(item.address)
                .or_default()
                .extend(item.storage_keys.iter().map(|k| U256::from_be_bytes(k.0)));
        }
        journal.warm_access_list(map);
    }
    let id = journal.inner.transaction_id;
    for (key, value) in entries {
        let Some(value) = value else { continue };
        match *key {
            JournalKey::Account(a) => {
                let account = journal::account_of(value, id).ok_or("a malformed account entry")?;
                journal.inner.state.insert(a, account);
            }
            JournalKey::Slot(a, k) => {
                let slot = journal::slot_of(value, id).ok_or("a malformed slot entry")?;
                let account = journal.inner.state.get_mut(&a).ok_or("a warm slot of a cold account")?;
                account.storage.insert(k, slot);
            }
            JournalKey::Transient(a, k) => {
                let v = U256::from_be_slice(
                    value.get(..32).filter(|_| value.len() == 32).ok_or("a malformed transient entry")?,
                );
                journal.inner.transient_storage.insert_value(a, k, v);
            }
        }
    }
    Ok(host)
}
