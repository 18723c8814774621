//! The block-local database every execution runs on: a cache of reads and
//! writes over a read-only base (the committed state, or a witness), which
//! records what each item reads (what its witness must prove), the balance
//! moves of the block, and meters each item's witness against its budget.

use std::collections::{BTreeSet, HashMap};

use alloy_primitives::{Address, B256, U256};
use revm::context_interface::ContextTr;
use revm::primitives::KECCAK_EMPTY;
use revm::state::{AccountInfo, EvmState};
use revm::{Database, DatabaseRef};

use crate::exec::ShardEvm;
use crate::state::{AccountState, ChangeSet, StateKey, encode_slot};
use crate::{Error, Result};

/// What one item's witness may cost, in bytes: the single step that
/// re-executes it must fit in a dispute move ([`bridge::MAX_STEP_BYTES`])
/// whatever the item does, or an honest defender could not answer. While
/// the EVM runs an item, every distinct account or slot it reads (or writes
/// without reading) costs [`ENTRY_ALLOWANCE`], every code it loads `4 +`
/// its length, and every block hash 40 bytes; an item that goes over fails
/// like one out of gas (a transaction pays its whole gas limit and changes
/// nothing else; a message is refunded). Gas alone does not bound this: a
/// call to a contract costs 2,600 gas and loads up to 24 KiB of code.
///
/// The bound: a step is its item (≤ [`crate::MAX_TX_BYTES`]), the item's
/// proof (< 1 KiB), the witness's fixed part and frontiers (< 3 KiB), the
/// entries charged (≤ this budget), the entry that went over (≤ 24 KiB of
/// code) and what failing reads afterwards (a fee recipient, the bridge's
/// channel slots: ≤ 4 entries). 128 + 1 + 3 + 320 + 24 + 18 < 512 KiB.
pub const WITNESS_BUDGET: usize = 320 << 10;

/// What one proven account or slot costs against [`WITNESS_BUDGET`]: its
/// key (≤ 53 bytes), its value (≤ 73) and a proof with up to 64 non-empty
/// siblings (65 bytes each) among 256 levels (empty ones 1 byte), and its
/// leaf. Keys are blake3 hashes, so a path with more than 64 non-empty
/// siblings needs two stored keys sharing a 64-bit prefix: about 2^64
/// hashes of grinding. Typical proofs carry log2(keys) ≈ 20–30.
pub const ENTRY_ALLOWANCE: usize = 4_608;

/// What one item's run read, against [`WITNESS_BUDGET`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes charged.
    pub used: usize,
    /// Distinct accounts read or written, the one that went over included
    /// ([`ENTRY_ALLOWANCE`] each).
    pub accounts: usize,
    /// Distinct storage slots read or written ([`ENTRY_ALLOWANCE`] each).
    pub slots: usize,
    /// Distinct codes loaded or created (4 + their length each; a created
    /// one also [`ENTRY_ALLOWANCE`]).
    pub codes: usize,
    /// Their total length.
    pub code_bytes: usize,
    /// Block hashes read (40 bytes each).
    pub block_hashes: usize,
}

impl std::fmt::Display for Footprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "it touches {} accounts and {} storage slots ({} B each), {} codes ({} B) and {} block hashes: \
             {} B of witness, over the budget of {} B",
            self.accounts,
            self.slots,
            ENTRY_ALLOWANCE,
            self.codes,
            self.code_bytes,
            self.block_hashes,
            self.used,
            WITNESS_BUDGET
        )
    }
}

/// A revm database: a block-local cache of reads and writes over a
/// read-only base (the committed state, or a witness). Records what each
/// item reads so witnesses can be cut.
pub struct Overlay<R> {
    base: R,
    pub(crate) accounts: HashMap<Address, Option<AccountState>>,
    pub(crate) storage: HashMap<(Address, U256), U256>,
    code: HashMap<B256, revm::bytecode::Bytecode>,
    reads: BTreeSet<StateKey>,
    block_hashes_read: BTreeSet<u64>,
    /// Balances of accounts written so far: new values in, old values out.
    pub(crate) balance_moves: BalanceMoves,
    /// What the current item's reads cost against [`WITNESS_BUDGET`].
    footprint: usize,
    /// Whether going over the budget fails the read (while the EVM runs an
    /// item; protocol reads around it are charged but never fail).
    pub(crate) metered: bool,
    /// What the current item was charged for keys it writes without
    /// reading, and the key that went over (not in `reads`): what
    /// [`Footprint`] reports besides the reads.
    unread: Footprint,
}

/// What a block did to the sum of all balances: the new balances of the
/// accounts it changed, and their old ones (read from the state as every
/// write already does). `Σ balances after = before + added − removed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalanceMoves {
    /// Sum of the changed accounts' balances after.
    pub added: U256,
    /// Sum of the same accounts' balances before.
    pub removed: U256,
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
            balance_moves: BalanceMoves::default(),
            footprint: 0,
            metered: false,
            unread: Footprint::default(),
        }
    }

    /// Charges `bytes` of witness to the current item.
    pub(crate) fn charge(&mut self, bytes: usize) -> Result<()> {
        self.footprint = self.footprint.saturating_add(bytes);
        if self.metered && self.footprint > WITNESS_BUDGET {
            return Err(Error::WitnessBudget { used: self.footprint });
        }
        Ok(())
    }

    /// What the current item was charged, if that went over the budget:
    /// then its run failed for it, whatever error carried that out of
    /// revm (a precompile reports a failed read as its own error).
    pub(crate) fn over_budget(&self) -> Option<usize> {
        (self.footprint > WITNESS_BUDGET).then_some(self.footprint)
    }

    /// Records a read of `key`, charging it the first time in this item.
    /// The key is recorded only if it fits, so a witness never has to
    /// prove the entry that went over.
    pub(crate) fn read(&mut self, key: StateKey) -> Result<()> {
        if !self.reads.contains(&key) {
            if let Err(e) = self.charge(ENTRY_ALLOWANCE) {
                match key {
                    StateKey::Account(_) => self.unread.accounts += 1,
                    StateKey::Storage(..) => self.unread.slots += 1,
                    StateKey::Code(_) => self.unread.codes += 1,
                }
                return Err(e);
            }
            self.reads.insert(key);
        }
        Ok(())
    }

    /// Charges the keys an EVM run would write without having read them
    /// (the slots and code of accounts it created), before they are
    /// committed: an item whose writes go over fails as well.
    pub(crate) fn charge_writes(&mut self, state: &EvmState) -> Result<()> {
        let (mut accounts, mut slots, mut codes, mut code_bytes) = (0, 0, 0, 0);
        for (address, account) in state.iter().filter(|(_, a)| a.is_touched()) {
            accounts += usize::from(!self.reads.contains(&StateKey::Account(*address)));
            if account.is_created() && account.info.code_hash != KECCAK_EMPTY {
                // proven whether or not it was read: absent, or (the same
                // code deployed before) present with the whole code
                codes += 1;
                code_bytes += account.info.code.as_ref().map_or(0, |c| c.original_bytes().len());
            }
            slots += account
                .changed_storage_slots()
                .filter(|(slot, _)| !self.reads.contains(&StateKey::Storage(*address, **slot)))
                .count();
        }
        let u = &mut self.unread;
        (u.accounts, u.slots, u.codes, u.code_bytes) =
            (u.accounts + accounts, u.slots + slots, u.codes + codes, u.code_bytes + code_bytes);
        // each written entry its allowance, each created code 4 + its length
        let entries = accounts + slots + codes;
        self.charge(entries.saturating_mul(ENTRY_ALLOWANCE).saturating_add(code_bytes + 4 * codes))
    }

    /// Runs `f` (one EVM transaction) with reads metered against the budget.
    pub(crate) fn metered<T>(evm: &mut ShardEvm<R>, f: impl FnOnce(&mut ShardEvm<R>) -> T) -> T {
        evm.ctx.db_mut().metered = true;
        let out = f(evm);
        evm.ctx.db_mut().metered = false;
        // once over the budget every further read fails too; revm returns
        // one of those errors and may keep another, which must not leak
        // into the next item
        *evm.ctx.error() = Ok(());
        out
    }

    pub(crate) fn moved(&mut self, before: Option<AccountState>, after: Option<AccountState>) {
        let m = &mut self.balance_moves;
        m.removed = m.removed.wrapping_add(before.map_or(U256::ZERO, |a| a.balance));
        m.added = m.added.wrapping_add(after.map_or(U256::ZERO, |a| a.balance));
    }

    pub(crate) fn account(&mut self, address: Address) -> Result<Option<AccountState>> {
        self.read(StateKey::Account(address))?;
        if let Some(a) = self.accounts.get(&address) {
            return Ok(*a);
        }
        let a = self.base.basic_ref(address)?.as_ref().map(AccountState::from_info);
        self.accounts.insert(address, a);
        Ok(a)
    }

    pub(crate) fn slot(&mut self, address: Address, slot: U256) -> Result<U256> {
        self.read(StateKey::Storage(address, slot))?;
        if let Some(v) = self.storage.get(&(address, slot)) {
            return Ok(*v);
        }
        let v = self.base.storage_ref(address, slot)?;
        self.storage.insert((address, slot), v);
        Ok(v)
    }

    /// Applies one item's state diff; returns the keys whose values changed.
    pub(crate) fn commit_item(&mut self, state: EvmState) -> Result<ChangeSet> {
        let reads_before = self.reads.len();
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
                    self.moved(before, None);
                }
                self.accounts.insert(address, None);
                for slot in account.storage.keys() {
                    // an account created in this transaction had no storage
                    // (revm never read its slots from the base, and neither
                    // may we: that would be witness nobody charged); any
                    // other's slots here were all read by the EVM already
                    if !account.is_created() && !self.slot(address, *slot)?.is_zero() {
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
                self.moved(before, Some(after));
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
        // everything a commit reads the EVM read first (and was charged for)
        debug_assert_eq!(self.reads.len(), reads_before, "a commit read keys the EVM did not");
        Ok(changes)
    }

    /// What the current item has read so far, against its budget (what an
    /// estimate past the budget tells the user).
    pub(crate) fn footprint(&self) -> Footprint {
        let u = &self.unread;
        let mut f = Footprint {
            used: self.footprint,
            accounts: u.accounts,
            slots: u.slots,
            codes: u.codes,
            code_bytes: u.code_bytes,
            block_hashes: self.block_hashes_read.len(),
        };
        for key in &self.reads {
            match key {
                StateKey::Account(_) => f.accounts += 1,
                StateKey::Storage(..) => f.slots += 1,
                StateKey::Code(hash) => {
                    f.codes += 1;
                    f.code_bytes += self.code.get(hash).map_or(0, |c| c.original_bytes().len());
                }
            }
        }
        f
    }

    /// The keys read so far (accounts, slots, codes).
    pub(crate) fn reads(&self) -> &BTreeSet<StateKey> {
        &self.reads
    }

    pub(crate) fn take_reads(&mut self) -> (BTreeSet<StateKey>, BTreeSet<u64>) {
        self.footprint = 0;
        self.unread = Footprint::default();
        (std::mem::take(&mut self.reads), std::mem::take(&mut self.block_hashes_read))
    }

    /// A protocol write to a storage slot (channel counters), outside any
    /// transaction: read (so a witness proves it) and recorded in `changes`.
    pub(crate) fn system_store(
        &mut self,
        address: Address,
        slot: U256,
        value: U256,
        changes: &mut ChangeSet,
    ) -> Result<()> {
        if self.slot(address, slot)? != value {
            changes.insert(StateKey::Storage(address, slot), (!value.is_zero()).then(|| encode_slot(value)));
            self.storage.insert((address, slot), value);
        }
        Ok(())
    }

    /// A protocol credit outside any transaction (a refund): creates the
    /// account if needed.
    pub(crate) fn system_credit(
        &mut self,
        address: Address,
        value: U256,
        changes: &mut ChangeSet,
    ) -> Result<()> {
        let before = self.account(address)?;
        let mut a = before.unwrap_or(AccountState { nonce: 0, balance: U256::ZERO, code_hash: KECCAK_EMPTY });
        a.balance =
            a.balance.checked_add(value).ok_or_else(|| Error::Execution("balance overflow".into()))?;
        if !value.is_zero() {
            changes.insert(StateKey::Account(address), Some(a.encode()));
            self.accounts.insert(address, Some(a));
            self.moved(before, Some(a));
        }
        Ok(())
    }

    /// A storage slot read as a counter (`u64`).
    pub(crate) fn counter(&mut self, address: Address, slot: U256) -> Result<u64> {
        u64::try_from(self.slot(address, slot)?)
            .map_err(|_| Error::Execution("channel counter overflow".into()))
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
        let c = match self.code.get(&code_hash) {
            Some(c) => c.clone(),
            None => {
                let c = self.base.code_by_hash_ref(code_hash)?;
                self.code.insert(code_hash, c.clone());
                c
            }
        };
        // charged once loaded (its length is what it costs): the witness
        // carries the code that went over, which is at most 24 KiB
        if self.reads.insert(StateKey::Code(code_hash)) {
            self.charge(4 + c.original_bytes().len())?;
        }
        Ok(c)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256> {
        self.slot(address, index)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256> {
        if !self.block_hashes_read.contains(&number) {
            self.charge(40)?;
            self.block_hashes_read.insert(number);
        }
        self.base.block_hash_ref(number)
    }
}
