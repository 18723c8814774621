//! Witnesses for single items, and the stateless executor that re-runs an
//! item from its witness alone (the dispute game's single step).

use std::collections::{BTreeMap, HashMap};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use bridge::{Hash, TraceCommitment, TraceState};
use revm::DatabaseRef;
use revm::bytecode::Bytecode;
use revm::state::AccountInfo;
use serde::{Deserialize, Serialize};

use crate::exec::{BlockParams, Execution, Item, Mode, execute_items_after};
use crate::state::{AccountState, AuthState, PartialTree, StateKey, StateProof, decode_slot};
use crate::{Error, Receipt, Result};

/// Everything needed to re-execute one item without the state: proofs of
/// every account and slot it reads and every key it writes against the
/// state root of `pre`, the code it runs, and the block hashes it reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    /// `c_{i-1}`: the commitment the item starts from.
    pub pre: TraceCommitment,
    /// The outbox and receipts frontiers and gas behind `pre` (checked
    /// against it), which the item's messages and receipt extend.
    pub trace: TraceState,
    /// State proofs against `pre.state_root`.
    pub proofs: Vec<StateProof>,
    /// Bytecode read, checked against the code hashes of proven accounts.
    pub codes: Vec<Bytes>,
    /// Block hashes read by `BLOCKHASH`.
    pub block_hashes: Vec<(u64, B256)>,
}

impl Witness {
    /// Size of the witness in its compact binary form (proofs, values, code).
    pub fn encoded_len(&self) -> usize {
        let proofs: usize = self
            .proofs
            .iter()
            .map(|p| {
                p.key.to_bytes().len() + p.value.as_ref().map_or(1, |v| 1 + v.len()) + p.proof.encoded_len()
            })
            .sum();
        let codes: usize = self.codes.iter().map(|c| 4 + c.len()).sum();
        let trace = 24
            + 32 * (self.trace.outbox.len().count_ones() + self.trace.receipts.len().count_ones()) as usize;
        104 + trace + proofs + codes + self.block_hashes.len() * 40
    }

    /// How many entries (proofs, codes, block hashes) the witness has.
    pub fn entries(&self) -> usize {
        self.proofs.len() + self.codes.len() + self.block_hashes.len()
    }

    /// The witness with entry `n` (counting proofs, then codes, then block
    /// hashes) removed — for minimality tests and fault injection.
    pub fn without_entry(&self, n: usize) -> Witness {
        let mut w = self.clone();
        if n < w.proofs.len() {
            w.proofs.remove(n);
        } else if n - w.proofs.len() < w.codes.len() {
            w.codes.remove(n - self.proofs.len());
        } else {
            w.block_hashes.remove(n - self.proofs.len() - self.codes.len());
        }
        w
    }
}

/// Cuts the witness of item `index` (0-based) of a block executed over
/// `state` at version `base`. `block_hashes` answers `BLOCKHASH`.
pub fn produce_witness(
    state: &AuthState,
    base: u64,
    execution: &Execution,
    index: usize,
    block_hashes: &BTreeMap<u64, B256>,
) -> Result<Witness> {
    let outcome = execution.outcomes.get(index).ok_or_else(|| {
        Error::WitnessMismatch(format!("item {index} out of range ({} items)", execution.outcomes.len()))
    })?;
    let before: Vec<_> = execution.outcomes[..index].iter().map(|o| o.changes.clone()).collect();
    let view = state.view_after(base, &before)?;
    let trace =
        if index == 0 { TraceState::start() } else { execution.trace_states().swap_remove(index - 1) };
    let pre = trace.commitment(view.root()?);

    let mut proofs = Vec::new();
    let mut codes = Vec::new();
    let keys = outcome
        .reads
        .iter()
        .chain(outcome.changes.keys())
        .copied()
        .collect::<std::collections::BTreeSet<_>>();
    for key in keys {
        let read_code = matches!(key, StateKey::Code(_)) && outcome.reads.contains(&key);
        let written = outcome.changes.contains_key(&key);
        if read_code {
            let p = view.prove(key)?;
            let code = p.value.clone().ok_or_else(|| Error::MissingPath(key.to_string()))?;
            codes.push(Bytes::from(code));
            if written {
                proofs.push(p);
            }
        } else {
            proofs.push(view.prove(key)?);
        }
    }
    let block_hashes = outcome
        .block_hashes_read
        .iter()
        .map(|n| (*n, block_hashes.get(n).copied().unwrap_or_default()))
        .collect();
    Ok(Witness { pre, trace, proofs, codes, block_hashes })
}

/// The witness that item `rejected.index` is invalid in its position: a
/// block executed in [`Mode::Build`] over `state` at `base` whose items
/// before it were all included (`execution.outcomes[..index]`), the trace
/// state after them, and proofs of what the item read before it failed.
/// Re-executed statelessly it fails as invalid: the step's verdict refutes
/// any claim that a valid block holds it there.
pub fn produce_invalid_witness(
    state: &AuthState,
    base: u64,
    execution: &Execution,
    rejected: &crate::Rejected,
) -> Result<Witness> {
    let index = rejected.index;
    if execution.outcomes.len() < index || execution.rejected.iter().any(|r| r.index < index) {
        return Err(Error::WitnessMismatch(format!("items before {index} were not all included")));
    }
    let before: Vec<_> = execution.outcomes[..index].iter().map(|o| o.changes.clone()).collect();
    let view = state.view_after(base, &before)?;
    let trace =
        if index == 0 { TraceState::start() } else { execution.trace_states().swap_remove(index - 1) };
    let pre = trace.commitment(view.root()?);
    let proofs = rejected.reads.iter().map(|k| view.prove(*k)).collect::<Result<Vec<_>>>()?;
    Ok(Witness { pre, trace, proofs, codes: vec![], block_hashes: vec![] })
}

/// A revm database that knows only a witness: any other read is an error.
struct WitnessDb {
    accounts: HashMap<Address, Option<AccountState>>,
    storage: HashMap<(Address, U256), U256>,
    codes: HashMap<B256, Bytecode>,
    block_hashes: HashMap<u64, B256>,
}

impl DatabaseRef for WitnessDb {
    type Error = Error;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>> {
        let a = self.accounts.get(&address).ok_or(Error::MissingAccount(address))?;
        Ok(a.map(AccountState::to_info))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode> {
        self.codes.get(&code_hash).cloned().ok_or(Error::MissingCode(code_hash))
    }

    fn storage_ref(&self, address: Address, slot: U256) -> Result<U256> {
        self.storage.get(&(address, slot)).copied().ok_or(Error::MissingStorage { address, slot })
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256> {
        self.block_hashes.get(&number).copied().ok_or(Error::MissingBlockHash(number))
    }
}

/// Re-executes one item from its witness alone and returns `c_i` and the
/// item's receipt. Fails if the witness does not verify against
/// `witness.pre`, or if execution needs anything the witness lacks.
pub fn execute_stateless(
    params: &BlockParams,
    item: &Item,
    witness: &Witness,
) -> Result<(TraceCommitment, Receipt)> {
    let root = witness.pre.state_root;
    if !witness.trace.matches(&witness.pre) {
        return Err(Error::WitnessMismatch("frontiers or gas do not match the pre-commitment".into()));
    }
    let mut db = WitnessDb {
        accounts: HashMap::new(),
        storage: HashMap::new(),
        codes: HashMap::new(),
        block_hashes: witness.block_hashes.iter().copied().collect(),
    };
    let mut opened = BTreeMap::new();
    for p in &witness.proofs {
        p.verify(&root)?;
        match p.key {
            StateKey::Account(a) => {
                db.accounts.insert(a, p.value.as_deref().map(AccountState::decode).transpose()?);
            }
            StateKey::Storage(a, s) => {
                let v = p.value.as_deref().map(decode_slot).transpose()?.unwrap_or_default();
                db.storage.insert((a, s), v);
            }
            StateKey::Code(_) => {}
        }
        opened.insert(p.key.key_hash().0, &p.proof);
    }
    for code in &witness.codes {
        let hash = keccak256(code);
        let used = db.accounts.values().flatten().any(|a| a.code_hash == hash);
        if !used {
            return Err(Error::WitnessMismatch(format!("code {hash} belongs to no proven account")));
        }
        db.codes.insert(hash, Bytecode::new_raw(code.clone()));
    }

    let exec = execute_items_after(db, params, vec![item.clone()], Mode::Verify, witness.trace.gas_used)?;
    let outcome =
        exec.outcomes.into_iter().next().ok_or_else(|| Error::Execution("item not executed".into()))?;

    let mut tree = PartialTree::from_proofs(opened.iter().map(|(k, p)| (k, *p)))?;
    for (key, value) in &outcome.changes {
        let kh = key.key_hash().0;
        // every written key must be opened by its own proof, so a witness
        // never relies on a neighbour's path by accident
        if !opened.contains_key(&kh) {
            return Err(Error::MissingPath(key.to_string()));
        }
        tree.update(&kh, value.as_deref())?;
    }
    let mut trace = witness.trace.clone();
    outcome.extend(&mut trace);
    let post = trace.commitment(Hash(tree.hash()));
    Ok((post, outcome.receipt))
}
