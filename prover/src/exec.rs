//! The state-transition function: one block's items over a pre-state.
//!
//! Proposers, importing validators and the stateless step verifier all call
//! [`execute_items`]; only the database underneath differs (the committed
//! state, or a witness).

use std::collections::{BTreeSet, HashMap};

use alloy_primitives::{Address, B256, U256};
use bridge::{Hash, ShardId, TraceCommitment, accumulate, merkle_root};
use revm::context::result::{EVMError, ExecutionResult, Output};
use revm::context::{BlockEnv, CfgEnv};
use revm::context_interface::ContextTr;
use revm::primitives::KECCAK_EMPTY;
use revm::primitives::hardfork::SpecId;
use revm::state::{AccountInfo, EvmState};
use revm::{Context, Database, DatabaseRef, ExecuteEvm, MainBuilder, MainContext};
use serde::{Deserialize, Serialize};

use crate::state::{AccountState, AuthState, ChangeSet, StateKey, encode_slot};
use crate::{Error, Receipt, Result, SignedTx};

/// The EVM rules shards run.
pub const SPEC: SpecId = SpecId::OSAKA;

/// Everything about a block that execution depends on besides its items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockParams {
    /// The shard.
    pub shard: ShardId,
    /// Ethereum chain id (base + shard id).
    pub chain_id: u64,
    /// Block height.
    pub number: u64,
    /// Unix seconds.
    pub timestamp: u64,
    /// Receives priority fees.
    pub beneficiary: Address,
    /// Block gas limit.
    pub gas_limit: u64,
    /// EIP-1559 base fee.
    pub base_fee: u64,
    /// `PREVRANDAO` value.
    pub prevrandao: B256,
}

impl BlockParams {
    fn block_env(&self) -> BlockEnv {
        BlockEnv {
            number: U256::from(self.number),
            beneficiary: self.beneficiary,
            timestamp: U256::from(self.timestamp),
            gas_limit: self.gas_limit,
            basefee: self.base_fee,
            difficulty: U256::ZERO,
            prevrandao: Some(self.prevrandao),
            ..Default::default()
        }
    }

    /// revm configuration for this shard.
    pub fn cfg_env(&self) -> CfgEnv {
        let mut cfg = CfgEnv::new_with_spec(SPEC);
        cfg.chain_id = self.chain_id;
        cfg
    }
}

/// One item of a block. Inbox messages join transactions in a later issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A user transaction.
    Tx(SignedTx),
}

impl Item {
    /// Leaf of the block's items tree.
    pub fn item_hash(&self) -> Hash {
        match self {
            Item::Tx(tx) => tx.item_hash(),
        }
    }

    /// Ethereum hash of the item.
    pub fn tx_hash(&self) -> B256 {
        match self {
            Item::Tx(tx) => tx.hash,
        }
    }
}

/// How the block producer treats an item that cannot be included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Proposer: skip invalid items (and items over the gas limit) and report them.
    Build,
    /// Importer / verifier: any invalid item makes the block invalid.
    Verify,
}

/// What one included item did.
#[derive(Clone, Debug)]
pub struct ItemOutcome {
    /// Its receipt.
    pub receipt: Receipt,
    /// `receipt.hash()`, computed once for the receipts root and the trace.
    pub receipt_hash: Hash,
    /// State writes it made (only values that changed).
    pub changes: ChangeSet,
    /// Keys it read (accounts, storage, code hashes as `Code` keys).
    pub reads: BTreeSet<StateKey>,
    /// Block hashes it read.
    pub block_hashes_read: BTreeSet<u64>,
}

/// An item the proposer left out.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// Index in the candidate list.
    pub index: usize,
    /// The item's hash.
    pub hash: B256,
    /// Why.
    pub reason: String,
    /// Left out only because the block had no gas left for it: it stays
    /// valid for a later block.
    pub block_full: bool,
}

/// Result of executing a list of items.
#[derive(Clone, Debug)]
pub struct Execution {
    /// Items included, in order.
    pub items: Vec<Item>,
    /// Their outcomes.
    pub outcomes: Vec<ItemOutcome>,
    /// Items left out (only in [`Mode::Build`]).
    pub rejected: Vec<Rejected>,
    /// Gas used by all included items.
    pub gas_used: u64,
}

impl Execution {
    /// All writes of the block, merged in order.
    pub fn block_changes(&self) -> ChangeSet {
        let mut all = ChangeSet::new();
        for o in &self.outcomes {
            all.extend(o.changes.iter().map(|(k, v)| (*k, v.clone())));
        }
        all
    }

    /// Receipts in item order.
    pub fn receipts(&self) -> Vec<Receipt> {
        self.outcomes.iter().map(|o| o.receipt.clone()).collect()
    }

    /// Merkle root of the receipts.
    pub fn receipts_root(&self) -> Hash {
        merkle_root(&self.outcomes.iter().map(|o| o.receipt_hash).collect::<Vec<_>>())
    }

    /// Merkle root of the items.
    pub fn items_root(&self) -> Hash {
        merkle_root(&self.items.iter().map(Item::item_hash).collect::<Vec<_>>())
    }

    /// Receipt accumulators after each item (`receipts_acc` of `c_1..c_n`).
    pub fn receipt_accumulators(&self) -> Vec<Hash> {
        let mut acc = Hash::ZERO;
        self.outcomes
            .iter()
            .map(|o| {
                acc = accumulate(&acc, &o.receipt_hash);
                acc
            })
            .collect()
    }

    /// `c_n`, given the post-state root.
    pub fn final_commitment(&self, post_state_root: Hash) -> TraceCommitment {
        TraceCommitment {
            state_root: post_state_root,
            outbox_acc: Hash::ZERO,
            receipts_acc: self.outcomes.iter().fold(Hash::ZERO, |acc, o| accumulate(&acc, &o.receipt_hash)),
        }
    }

    /// Every trace commitment `c_1..c_n`, computing the intermediate state
    /// roots over `state` at `base` (nothing is written). This is the lazy
    /// part of the trace: only disputes and tests need it.
    pub fn trace(&self, state: &AuthState, base: u64) -> Result<Vec<TraceCommitment>> {
        let changes: Vec<ChangeSet> = self.outcomes.iter().map(|o| o.changes.clone()).collect();
        let roots = state.roots_after(base, &changes)?;
        Ok(roots
            .into_iter()
            .zip(self.receipt_accumulators())
            .map(|(state_root, receipts_acc)| TraceCommitment {
                state_root,
                outbox_acc: Hash::ZERO,
                receipts_acc,
            })
            .collect())
    }
}

/// A revm database: a block-local cache of reads and writes over a
/// read-only base (the committed state, or a witness). Records what each
/// item reads so witnesses can be cut.
pub struct Overlay<R> {
    base: R,
    accounts: HashMap<Address, Option<AccountState>>,
    storage: HashMap<(Address, U256), U256>,
    code: HashMap<B256, revm::bytecode::Bytecode>,
    reads: BTreeSet<StateKey>,
    block_hashes_read: BTreeSet<u64>,
}

impl<R: DatabaseRef<Error = Error>> Overlay<R> {
    /// An empty overlay over `base`.
    pub fn new(base: R) -> Self {
        Overlay {
            base,
            accounts: HashMap::new(),
            storage: HashMap::new(),
            code: HashMap::new(),
            reads: BTreeSet::new(),
            block_hashes_read: BTreeSet::new(),
        }
    }

    fn account(&mut self, address: Address) -> Result<Option<AccountState>> {
        self.reads.insert(StateKey::Account(address));
        if let Some(a) = self.accounts.get(&address) {
            return Ok(*a);
        }
        let a = self.base.basic_ref(address)?.as_ref().map(AccountState::from_info);
        self.accounts.insert(address, a);
        Ok(a)
    }

    fn slot(&mut self, address: Address, slot: U256) -> Result<U256> {
        self.reads.insert(StateKey::Storage(address, slot));
        if let Some(v) = self.storage.get(&(address, slot)) {
            return Ok(*v);
        }
        let v = self.base.storage_ref(address, slot)?;
        self.storage.insert((address, slot), v);
        Ok(v)
    }

    /// Applies one item's state diff; returns the keys whose values changed.
    fn commit_item(&mut self, state: EvmState) -> Result<ChangeSet> {
        let mut changes = ChangeSet::new();
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            let before = self.account(address)?;
            // Post-Cancun SELFDESTRUCT removes only accounts created in the
            // same transaction, so their storage is all in `account.storage`.
            let removed = account.is_selfdestructed() || account.is_empty();
            if removed {
                if before.is_some() {
                    changes.insert(StateKey::Account(address), None);
                }
                self.accounts.insert(address, None);
                for slot in account.storage.keys() {
                    if !self.slot(address, *slot)?.is_zero() {
                        changes.insert(StateKey::Storage(address, *slot), None);
                    }
                    self.storage.insert((address, *slot), U256::ZERO);
                }
                continue;
            }
            let info: &AccountInfo = &account.info;
            let after = AccountState::from_info(info);
            if before != Some(after) {
                changes.insert(StateKey::Account(address), Some(after.encode()));
                self.accounts.insert(address, Some(after));
            }
            if let Some(code) =
                info.code.as_ref().filter(|_| account.is_created() && info.code_hash != KECCAK_EMPTY)
            {
                changes.insert(StateKey::Code(info.code_hash), Some(code.original_bytes().to_vec()));
                self.code.insert(info.code_hash, code.clone());
            }
            for (slot, value) in account.changed_storage_slots() {
                let new = value.present_value();
                if new == value.original_value() {
                    continue;
                }
                changes.insert(StateKey::Storage(address, *slot), (!new.is_zero()).then(|| encode_slot(new)));
                self.storage.insert((address, *slot), new);
            }
        }
        Ok(changes)
    }

    fn take_reads(&mut self) -> (BTreeSet<StateKey>, BTreeSet<u64>) {
        (std::mem::take(&mut self.reads), std::mem::take(&mut self.block_hashes_read))
    }
}

impl<R: DatabaseRef<Error = Error>> Database for Overlay<R> {
    type Error = Error;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>> {
        let Some(a) = self.account(address)? else { return Ok(None) };
        // revm runs the code it is handed with the account, so hand it over
        let code = if a.code_hash == KECCAK_EMPTY { None } else { Some(self.code_by_hash(a.code_hash)?) };
        Ok(Some(AccountInfo { code, ..a.to_info() }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<revm::bytecode::Bytecode> {
        if code_hash == KECCAK_EMPTY {
            return Ok(revm::bytecode::Bytecode::default());
        }
        self.reads.insert(StateKey::Code(code_hash));
        if let Some(c) = self.code.get(&code_hash) {
            return Ok(c.clone());
        }
        let c = self.base.code_by_hash_ref(code_hash)?;
        self.code.insert(code_hash, c.clone());
        Ok(c)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256> {
        self.slot(address, index)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256> {
        self.block_hashes_read.insert(number);
        self.base.block_hash_ref(number)
    }
}

/// Executes `candidates` in order over `base`: the one state-transition function.
pub fn execute_items<R: DatabaseRef<Error = Error>>(
    base: R,
    params: &BlockParams,
    candidates: Vec<Item>,
    mode: Mode,
) -> Result<Execution> {
    let ctx = Context::mainnet()
        .with_db(Overlay::new(base))
        .with_block(params.block_env())
        .with_cfg(params.cfg_env());
    let mut evm = ctx.build_mainnet();
    let mut out = Execution { items: Vec::new(), outcomes: Vec::new(), rejected: Vec::new(), gas_used: 0 };
    for (index, item) in candidates.into_iter().enumerate() {
        let Item::Tx(tx) = &item;
        let reject = |reason: String, block_full: bool, out: &mut Execution| -> Result<()> {
            match mode {
                Mode::Build => {
                    out.rejected.push(Rejected { index, hash: tx.hash, reason, block_full });
                    Ok(())
                }
                Mode::Verify => Err(Error::InvalidTransaction { hash: tx.hash, reason }),
            }
        };
        let tx_env = tx.tx_env();
        if out.gas_used.saturating_add(tx_env.gas_limit) > params.gas_limit {
            reject(
                format!("gas limit {} exceeds the block's remaining gas", tx_env.gas_limit),
                tx_env.gas_limit <= params.gas_limit,
                &mut out,
            )?;
            continue;
        }
        let result = evm.transact(tx_env);
        let db = evm.ctx.db_mut();
        let res = match result {
            Ok(r) => r,
            Err(EVMError::Transaction(e)) => {
                db.take_reads();
                reject(e.to_string(), false, &mut out)?;
                continue;
            }
            Err(EVMError::Database(e)) => return Err(e),
            Err(other) => return Err(Error::Execution(other.to_string())),
        };
        let changes = db.commit_item(res.state)?;
        let (reads, block_hashes_read) = db.take_reads();
        let receipt = to_receipt(tx, res.result);
        out.gas_used += receipt.gas_used;
        let receipt_hash = receipt.hash();
        out.outcomes.push(ItemOutcome { receipt, receipt_hash, changes, reads, block_hashes_read });
        out.items.push(item);
    }
    Ok(out)
}

fn to_receipt(tx: &SignedTx, result: ExecutionResult) -> Receipt {
    let (success, gas, logs, contract_address, output) = match result {
        ExecutionResult::Success { gas, logs, output, .. } => match output {
            Output::Create(data, addr) => (true, gas, logs, addr, data),
            Output::Call(data) => (true, gas, logs, None, data),
        },
        // a failed item keeps its revert data for clients but emits nothing
        ExecutionResult::Revert { gas, output, .. } => (false, gas, vec![], None, output),
        ExecutionResult::Halt { gas, .. } => (false, gas, vec![], None, Default::default()),
    };
    Receipt {
        tx_hash: tx.hash,
        tx_type: tx.envelope.tx_type() as u8,
        success,
        gas_used: gas.tx_gas_used(),
        logs,
        contract_address,
        output,
    }
}

/// Simulates one call over `base` without committing anything (`eth_call`,
/// `eth_estimateGas`). Balance, nonce and base-fee checks are relaxed as
/// Ethereum nodes relax them for calls.
pub fn simulate<R: DatabaseRef<Error = Error>>(
    base: R,
    params: &BlockParams,
    tx: revm::context::TxEnv,
) -> Result<ExecutionResult> {
    let mut cfg = params.cfg_env();
    cfg.disable_nonce_check = true;
    // calls may use more gas than one transaction may (as on Ethereum nodes)
    cfg.tx_gas_limit_cap = Some(u64::MAX);
    let mut block = params.block_env();
    if tx.gas_price == 0 {
        block.basefee = 0;
    }
    let ctx = Context::mainnet().with_db(Overlay::new(base)).with_block(block).with_cfg(cfg);
    let mut evm = ctx.build_mainnet();
    match evm.transact(tx) {
        Ok(r) => Ok(r.result),
        Err(EVMError::Database(e)) => Err(e),
        Err(EVMError::Transaction(e)) => {
            Err(Error::InvalidTransaction { hash: B256::ZERO, reason: e.to_string() })
        }
        Err(other) => Err(Error::Execution(other.to_string())),
    }
}
