//! The one-instruction step and its verifier.

use std::collections::BTreeMap;

use revm::bytecode::Bytecode;

use super::journal::{self, JournalTree};
use super::*;
use crate::state::{AccountState, PartialTree, SmtProof, StateKey, StateProof, decode_slot};

/// The single step of one instruction that touches only the stack, pc,
/// gas and memory words (arithmetic, comparison, bitwise,
/// PUSH/DUP/SWAP/POP, jumps, PC, GAS, MLOAD, MSTORE, MSTORE8, MSIZE):
/// `s_j` in parts, the frame's code, the stack words the instruction reads
/// with the chain below them, and the memory words it touches with their
/// paths. Other instructions (copies, state, calls, logs, returns) need
/// more parts and are not steps yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstructionStep {
    /// `s_j`, its parts.
    pub state: MachineState,
    /// The frame's code.
    pub code: Vec<u8>,
    /// The words the instruction reads, bottom first.
    pub top: Vec<U256>,
    /// The chain of the stack below them.
    pub below: Hash,
    /// The memory words it touches (zero past the memory's size), with
    /// their multiproof in `s_j`'s memory tree.
    pub memory: Words,
    /// The frame's input, for the instructions that read it or act on
    /// the frame's account.
    pub input: Option<StepInput>,
    /// The journal entries the instruction touches, for the instructions
    /// that read or write state, transient storage or logs.
    pub journal: Option<StepJournal>,
    /// The last return data, for the instructions that read it.
    pub return_data: Option<StepData>,
}

/// Data a frame reads as a word tree (calldata, return data): its length,
/// its root, and the words an instruction reads (zero past the length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepData {
    /// Its length in bytes.
    pub len: u64,
    /// Its root.
    pub root: Hash,
    /// The words read, with their multiproof.
    pub words: Words,
}

impl StepData {
    /// Its hash in `s_j`.
    pub fn hash(&self) -> Hash {
        data_hash(self.len, &self.root)
    }

    fn of(data: &[u8], indices: Vec<u64>) -> StepData {
        let padded = padded(data);
        StepData { len: data.len() as u64, root: memory_root(&padded), words: prove_words(&padded, indices) }
    }

    /// The data as the instruction sees it: the words read in place,
    /// zero elsewhere; `None` if the words are not exactly `read`, not in
    /// the data's tree, not zero past its length, or it is longer than
    /// any frame's data.
    fn bytes(&self, read: &[u64]) -> Option<Vec<u8>> {
        if self.words.indices() != read
            || (!read.is_empty() && self.words.root() != Some(self.root))
            || self.words.words.iter().any(|(w, word)| w * 32 >= self.len && *word != [0u8; 32])
            || self.len > MAX_FRAME_INPUT
        {
            return None;
        }
        let mut data = vec![0u8; self.len as usize];
        for (w, word) in &self.words.words {
            let at = *w as usize * 32;
            if at < data.len() {
                let end = (at + 32).min(data.len());
                data[at..end].copy_from_slice(&word[..end - at]);
            }
        }
        Some(data)
    }
}

/// What a state instruction's step carries of the journal: its parts, the
/// entries the instruction touches (each present or absent, proven in the
/// journal's map), the value at the item's start of each absent one
/// (proven against `c_{i-1}`'s state root), and the code it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepJournal {
    /// The journal's parts in `s_j`.
    pub root: JournalRoot,
    /// The entries touched, in the order [`journal_keys`] gives them.
    pub entries: Vec<JournalProof>,
    /// For each absent entry with a state key, in order: its value when
    /// the item started.
    pub pre: Vec<StateProof>,
    /// The code EXTCODESIZE reads (checked against its hash).
    pub code: Option<Vec<u8>>,
}

/// One journal entry (or its absence) with its proof in the journal's map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalProof {
    /// The key.
    pub key: JournalKey,
    /// Its entry, `None` if absent (cold, or a zero transient slot).
    pub value: Option<Vec<u8>>,
    /// Its proof against the map's root.
    pub proof: SmtProof,
}

/// A frame's input as a step carries it: everything but the calldata,
/// which is its length, its root and the words the instruction reads
/// (zero past the length), each with its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepInput {
    /// The frame's target.
    pub target: Address,
    /// Its caller.
    pub caller: Address,
    /// The value sent.
    pub value: U256,
    /// The calldata, with the words read.
    pub calldata: StepData,
}

impl StepInput {
    /// Its hash in `s_j`.
    pub fn hash(&self) -> Hash {
        input_hash(&self.target, &self.caller, &self.value, self.calldata.len, &self.calldata.root)
    }
}

/// Longest range a copy, KECCAK256 or a log reads or writes in one step
/// (its words ride in the step); a longer one is not a step yet.
pub const MAX_STEP_RANGE: u64 = 1024;

/// The words of `[offset, offset + len)`, `len` at most
/// [`MAX_STEP_RANGE`]: `None` if longer or past any memory gas can buy.
fn range_words(offset: &U256, len: &U256) -> Option<Vec<u64>> {
    let len = small(len).filter(|l| *l <= MAX_STEP_RANGE)?;
    if len == 0 {
        return Some(vec![]);
    }
    let offset = small(offset)?;
    Some((offset / 32..=(offset + len - 1) / 32).collect())
}

/// The words of `[offset, offset + len)` of data `data_len` long that
/// hold data (a read past the end reads zeros, no word).
fn data_words(offset: &U256, len: &U256, data_len: u64) -> Vec<u64> {
    match (small(offset), small(len)) {
        (Some(o), Some(l)) if l > 0 && o < data_len => (o / 32..=((o + l).min(data_len) - 1) / 32).collect(),
        _ => vec![],
    }
}

/// The calldata words `opcode` reads (none past the calldata's end):
/// CALLDATALOAD's word at the offset on top, CALLDATACOPY's range.
fn calldata_words(opcode: u8, top: &[U256], len: u64) -> Vec<u64> {
    match (opcode, top) {
        // the word of its first byte to the word of its last
        (0x35, [.., o]) => small(o).map_or(vec![], |o| (o / 32..=o.div_ceil(32)).collect()),
        (0x37, [size, offset, _]) => data_words(offset, size, len),
        _ => vec![],
    }
}

/// The return-data words RETURNDATACOPY reads.
fn return_data_words(opcode: u8, top: &[U256], len: u64) -> Vec<u64> {
    match (opcode, top) {
        (0x3e, [size, offset, _]) => data_words(offset, size, len),
        _ => vec![],
    }
}

/// Whether `opcode` reads the last return data (RETURNDATASIZE,
/// RETURNDATACOPY).
fn reads_return_data(opcode: u8) -> bool {
    matches!(opcode, 0x3d | 0x3e)
}

/// What one instruction may read besides the machine state: the block the
/// item is in, the item (a transaction) itself, and the state root the item
/// starts from (`c_{i-1}`'s). The referee has all three once level 1 pinned
/// the item.
#[derive(Clone, Debug)]
pub struct StepEnv {
    /// The block.
    pub params: BlockParams,
    /// The transaction.
    pub tx: TxEnv,
    /// The state root before the item.
    pub pre_root: Hash,
}

/// What re-executing one instruction decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstructionVerdict {
    /// `s_{j+1}`: the game compares it with the claimed one.
    Next(Hash),
    /// Not an instruction a step covers yet.
    Unsupported(u8),
    /// The step proves nothing: its parts are not `s_j`'s.
    Rejected(String),
}

/// Whether `opcode` touches only the stack, pc and gas.
pub fn is_stack_only(opcode: u8) -> bool {
    matches!(opcode, 0x01..=0x0b | 0x10..=0x1d | 0x50 | 0x56..=0x58 | 0x5a | 0x5b | 0x5f..=0x9f)
}

/// Whether `opcode` reads the frame's input (ADDRESS, CALLER, CALLVALUE,
/// CALLDATALOAD, CALLDATASIZE).
fn reads_input(opcode: u8) -> bool {
    matches!(opcode, 0x30 | 0x33..=0x37)
}

/// Whether `opcode` reads or writes the journal: storage (SLOAD, SSTORE),
/// transient storage (TLOAD, TSTORE), an account (BALANCE, EXTCODESIZE,
/// EXTCODEHASH, SELFBALANCE) or the logs (LOG0–LOG4).
pub fn touches_journal(opcode: u8) -> bool {
    matches!(opcode, 0x31 | 0x3b | 0x3c | 0x3f | 0x47 | 0x54 | 0x55 | 0x5c | 0x5d | 0xa0..=0xa4)
}

/// Whether a step carries the frame's input: to read it, or for the
/// frame's account (storage, transient storage, its balance, its logs).
fn needs_input(opcode: u8) -> bool {
    reads_input(opcode) || matches!(opcode, 0x47 | 0x54 | 0x55 | 0x5c | 0x5d | 0xa0..=0xa4)
}

/// Whether a step covers `opcode`: stack-only; MLOAD, MSTORE, MSTORE8,
/// MSIZE; the frame's input (ADDRESS, CALLER, CALLVALUE, CALLDATALOAD,
/// CALLDATASIZE); the transaction's and block's (ORIGIN, GASPRICE,
/// COINBASE, TIMESTAMP, NUMBER, PREVRANDAO, GASLIMIT, CHAINID, BASEFEE);
/// the journal's ([`touches_journal`]); KECCAK256, CODESIZE, CODECOPY,
/// RETURNDATASIZE, RETURNDATACOPY and MCOPY.
pub fn is_covered(opcode: u8) -> bool {
    is_stack_only(opcode)
        || reads_input(opcode)
        || touches_journal(opcode)
        || reads_return_data(opcode)
        || matches!(opcode, 0x20 | 0x38 | 0x39 | 0x5e | 0x51..=0x53 | 0x59 | 0x32 | 0x3a | 0x41..=0x46 | 0x48)
}

/// A stack word as an offset or length a step can carry memory for.
fn small(word: &U256) -> Option<u64> {
    u64::try_from(*word).ok().filter(|o| *o < 1 << 32)
}

/// The memory words `opcode` touches, given the stack words it reads
/// (bottom first), ascending: `None` when a range is past any memory gas
/// can buy (the instruction halts) or longer than [`MAX_STEP_RANGE`].
fn touched_words(opcode: u8, top: &[U256]) -> Option<Vec<u64>> {
    let one = U256::from(1);
    let word = U256::from(32);
    let mut words = match (opcode, top) {
        (0x51 | 0x52, [.., offset]) => range_words(offset, &word)?,
        (0x53, [.., offset]) => range_words(offset, &one)?,
        // KECCAK256, LOGn: offset on top, then the length
        (0x20, [len, offset]) => range_words(offset, len)?,
        (0xa0..=0xa4, [.., len, offset]) => range_words(offset, len)?,
        // copies into memory: destination on top, then the source's offset, then the length
        (0x37 | 0x39 | 0x3e, [len, _, dest]) => range_words(dest, len)?,
        (0x3c, [len, _, dest, _]) => range_words(dest, len)?,
        (0x5e, [len, src, dest]) => [range_words(dest, len)?, range_words(src, len)?].concat(),
        _ => vec![],
    };
    words.sort_unstable();
    words.dedup();
    Some(words)
}

/// The journal entries `opcode` touches, given the stack words it reads and
/// the frame's account.
pub fn journal_keys(opcode: u8, top: &[U256], target: Address) -> Vec<JournalKey> {
    let word = top.last().copied().unwrap_or_default();
    let address = Address::from_word(B256::from(word));
    match opcode {
        0x54 | 0x55 => vec![JournalKey::Account(target), JournalKey::Slot(target, word)],
        0x5c | 0x5d => vec![JournalKey::Transient(target, word)],
        0x31 | 0x3b | 0x3c | 0x3f => vec![JournalKey::Account(address)],
        0x47 => vec![JournalKey::Account(target)],
        _ => vec![],
    }
}

/// The stack words `opcode` reads.
fn reads(opcode: u8) -> usize {
    revm::bytecode::opcode::OpCode::new(opcode).map_or(0, |o| o.inputs() as usize)
}

/// The state an item starts from, as its prover needs it: read by revm,
/// and any key proven against its root.
pub trait ProvableState: DatabaseRef<Error = Error> {
    /// `key`'s value and proof against the state's root.
    fn prove(&self, key: StateKey) -> Result<StateProof>;
}

impl ProvableState for crate::StateReader {
    fn prove(&self, key: StateKey) -> Result<StateProof> {
        crate::StateReader::prove(self, key)
    }
}

/// The step of instruction `j` of `tx` (over `base`, in block `params`).
pub fn instruction_step<R: ProvableState + Clone>(
    base: R,
    params: &BlockParams,
    tx: &SignedTx,
    j: u64,
) -> Result<InstructionStep> {
    let tracer = Tracer {
        next: 0,
        wanted: vec![j],
        cursor: 0,
        states: Vec::new(),
        frames: Vec::new(),
        opening: None,
        keep: Some(j),
        kept: None,
    };
    let mut t = run_tracer(base.clone(), params, tx, tracer)?;
    let (Some(state), Some(Frame { stack, code, memory, input, journal, logs, ext_code, return_data })) =
        (t.states.pop(), t.kept.take())
    else {
        return Err(Error::Execution(format!("the transaction runs {} instructions, none at {j}", t.next)));
    };
    let n = reads(state.opcode).min(stack.len());
    let split = stack.len() - n;
    let top = stack[split..].to_vec();
    let memory = prove_words(&memory, touched_words(state.opcode, &top).unwrap_or_default());
    let journal = touches_journal(state.opcode)
        .then(|| -> Result<StepJournal> {
            let tree = JournalTree::of(&journal);
            let mut entries = Vec::new();
            let mut pre = Vec::new();
            for key in journal_keys(state.opcode, &top, input.target) {
                let value = journal.get(&key).cloned();
                if let (None, Some(k)) = (&value, key.pre_key()) {
                    pre.push(base.prove(k)?);
                }
                entries.push(JournalProof { key, value, proof: tree.prove(&key) });
            }
            Ok(StepJournal {
                root: JournalRoot { entries: tree.root(), ..logs },
                entries,
                pre,
                code: ext_code,
            })
        })
        .transpose()?;
    let input = needs_input(state.opcode).then(|| {
        let read = calldata_words(state.opcode, &top, input.calldata.len() as u64);
        StepInput {
            target: input.target,
            caller: input.caller,
            value: input.value,
            calldata: StepData::of(&input.calldata, read),
        }
    });
    let return_data = reads_return_data(state.opcode)
        .then(|| StepData::of(&return_data, return_data_words(state.opcode, &top, return_data.len() as u64)));
    Ok(InstructionStep {
        below: stack_chain(&stack[..split]),
        top,
        state,
        code,
        memory,
        input,
        journal,
        return_data,
    })
}

/// The state a step's journal part says the item started with: the
/// accounts and slots of its absent entries, and the code it carries. A
/// read of anything else is recorded: the step lacked it.
#[derive(Default)]
struct StepDb {
    accounts: BTreeMap<Address, Option<revm::state::AccountInfo>>,
    storage: BTreeMap<(Address, U256), U256>,
    code: Option<revm::bytecode::Bytecode>,
    missed: std::cell::RefCell<Option<String>>,
}

impl StepDb {
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
        match &self.code {
            Some(c) if c.hash_slow() == hash => Ok(c.clone()),
            _ => self.miss(format!("code {hash}")),
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256> {
        match self.storage.get(&(address, index)) {
            Some(v) => Ok(*v),
            None => self.miss(format!("storage {address}[{index:#x}]")),
        }
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256> {
        self.miss(format!("block hash {number}"))
    }
}

type StepHost = Context<BlockEnv, TxEnv, CfgEnv, revm::database::WrapDatabaseRef<StepDb>>;

/// The entries a step opened, with their values in `s_j`.
type Opened = Vec<(JournalKey, Option<Vec<u8>>)>;

/// The journal entries `step` carries, checked against `s_j` and the
/// state root the item starts from: the host's database (the absent
/// entries' values at the item's start) and the opened map.
fn open_journal(
    step: &InstructionStep,
    env: &StepEnv,
) -> std::result::Result<(StepDb, Opened, PartialTree), String> {
    let s = &step.state;
    let j = step.journal.as_ref().ok_or("a state instruction's step carries its journal entries")?;
    if j.root.commitment() != s.journal {
        return Err("the journal's parts are not the state's".into());
    }
    let target = step.input.as_ref().map_or(Address::ZERO, |i| i.target);
    let keys = journal_keys(s.opcode, &step.top, target);
    if j.entries.iter().map(|e| e.key).collect::<Vec<_>>() != keys {
        return Err("not the journal entries the instruction touches".into());
    }
    let mut db =
        StepDb { code: j.code.as_ref().map(|c| Bytecode::new_raw(c.clone().into())), ..StepDb::default() };
    let mut pre = j.pre.iter();
    for e in &j.entries {
        e.proof
            .verify(&j.root.entries, &e.key.key_hash(), e.value.as_deref())
            .map_err(|err| format!("journal entry {:?}: {err}", e.key))?;
        let (None, Some(k)) = (&e.value, e.key.pre_key()) else { continue };
        let p = pre
            .next()
            .filter(|p| p.key == k)
            .ok_or("an absent entry's value at the item's start is missing")?;
        p.verify(&env.pre_root).map_err(|err| format!("state before the item: {err}"))?;
        match (k, &p.value) {
            (StateKey::Account(a), v) => {
                let info = v.as_deref().map(AccountState::decode).transpose().map_err(|e| e.to_string())?;
                // code is loaded by hash, only by the instructions that read it
                let info = info.map(|i| revm::state::AccountInfo { code: None, ..i.to_info() });
                db.accounts.insert(a, info);
            }
            (StateKey::Storage(a, slot), v) => {
                let value = v.as_deref().map(decode_slot).transpose().map_err(|e| e.to_string())?;
                db.storage.insert((a, slot), value.unwrap_or_default());
            }
            (StateKey::Code(_), _) => unreachable!("journal keys read no code key"),
        }
    }
    if pre.next().is_some() {
        return Err("more state proofs than absent entries".into());
    }
    let opened: Vec<_> = j.entries.iter().map(|e| (e.key, e.value.clone())).collect();
    let keys: Vec<_> = j.entries.iter().map(|e| e.key.key_hash()).collect();
    let tree = PartialTree::from_proofs(keys.iter().zip(j.entries.iter().map(|e| &e.proof)))
        .map_err(|e| e.to_string())?;
    Ok((db, opened, tree))
}

/// A host for one instruction: the block, the transaction, the warm
/// addresses revm sets up before a transaction (precompiles, coinbase,
/// access list), and the present journal entries in its journal.
fn host_for(
    db: StepDb,
    entries: &[(JournalKey, Option<Vec<u8>>)],
    env: &StepEnv,
) -> Result<StepHost, String> {
    use revm::context::JournalTr;
    use revm::primitives::hardfork::SpecId;
    let spec = env.params.fork;
    let mut host = Context::mainnet()
        .with_db(revm::database::WrapDatabaseRef(db))
        .with_cfg(env.params.cfg_env())
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

/// Checks `step` against the agreed `s_j` and runs its one instruction
/// with revm: `s_{j+1}`.
pub fn verify_instruction(step: &InstructionStep, agreed: &Hash, env: &StepEnv) -> InstructionVerdict {
    use revm::interpreter::instructions::gas_table_spec;
    use revm::interpreter::interpreter::ExtBytecode;
    use revm::interpreter::{SharedMemory, instruction_table};
    let s = &step.state;
    if s.commitment() != *agreed {
        return InstructionVerdict::Rejected("the state's parts are not the agreed s_j".into());
    }
    if !is_covered(s.opcode) {
        return InstructionVerdict::Unsupported(s.opcode);
    }
    if alloy_primitives::keccak256(&step.code) != s.code_hash
        || step.code.get(s.pc as usize) != Some(&s.opcode)
    {
        return InstructionVerdict::Rejected("the code is not the frame's, or not this opcode at pc".into());
    }
    let n = reads(s.opcode);
    if step.top.len() != n.min(s.stack_len as usize) || extend_chain(step.below, &step.top) != s.stack {
        return InstructionVerdict::Rejected("the stack words are not the state's".into());
    }
    // the memory words: exactly those touched, in s_j's memory tree, zero
    // past its size
    let Some(touched) = touched_words(s.opcode, &step.top) else {
        return InstructionVerdict::Unsupported(s.opcode);
    };
    if step.memory.indices() != touched {
        return InstructionVerdict::Rejected("not the memory words the instruction touches".into());
    }
    if !touched.is_empty() && step.memory.root() != Some(s.memory) {
        return InstructionVerdict::Rejected("the memory words are not the state's".into());
    }
    if step.memory.words.iter().any(|(i, w)| i * 32 >= s.memory_len && *w != [0u8; 32]) {
        return InstructionVerdict::Rejected("memory past its size is zero".into());
    }
    let mut memory = SharedMemory::new();
    memory.resize(s.memory_len as usize);
    for (i, w) in &step.memory.words {
        if i * 32 < s.memory_len {
            memory.set(*i as usize * 32, w);
        }
    }
    let spec = env.params.fork;
    let input = match (&step.input, needs_input(s.opcode)) {
        (Some(i), true) if i.hash() == s.input => {
            // the calldata words read: exactly those, in the input's tree,
            // zero past its length; the rest of the calldata is never read
            let read = calldata_words(s.opcode, &step.top, i.calldata.len);
            let Some(calldata) = i.calldata.bytes(&read) else {
                return InstructionVerdict::Rejected("the calldata words are not the input's".into());
            };
            revm::interpreter::InputsImpl {
                target_address: i.target,
                bytecode_address: None,
                caller_address: i.caller,
                input: revm::interpreter::CallInput::Bytes(calldata.into()),
                call_value: i.value,
                depth: s.depth as usize,
            }
        }
        (None, false) => Default::default(),
        _ => return InstructionVerdict::Rejected("the frame's input is not the state's".into()),
    };
    // the journal entries it touches, and the state before the item for
    // the absent ones
    let (db, opened, mut tree) = if touches_journal(s.opcode) {
        match open_journal(step, env) {
            Ok(parts) => parts,
            Err(reason) => return InstructionVerdict::Rejected(reason),
        }
    } else if step.journal.is_some() {
        return InstructionVerdict::Rejected("a journal part the instruction does not touch".into());
    } else {
        (StepDb::default(), Vec::new(), PartialTree::Empty)
    };
    let mut host = match host_for(db, &opened, env) {
        Ok(h) => h,
        Err(reason) => return InstructionVerdict::Rejected(reason),
    };
    let mut bytecode = ExtBytecode::new(Bytecode::new_raw(step.code.clone().into()));
    bytecode.absolute_jump(s.pc as usize);
    let mut interp = Interpreter::new(memory, bytecode, input, s.is_static, spec, s.gas_remaining);
    match (&step.return_data, reads_return_data(s.opcode)) {
        (Some(r), true) if r.hash() == s.return_data => {
            let Some(data) = r.bytes(&return_data_words(s.opcode, &step.top, r.len)) else {
                return InstructionVerdict::Rejected("the return data words are not the state's".into());
            };
            interp.return_data.set_buffer(data.into());
        }
        (None, false) => {}
        _ => return InstructionVerdict::Rejected("the return data is not the state's".into()),
    }
    interp.gas.set_refund(s.gas_refunded);
    // the memory expansion already paid for (revm charges growth from it)
    let words = s.memory_len.div_ceil(32) as usize;
    let paid = revm::context_interface::cfg::GasParams::new_spec(spec).memory_cost(words);
    let _ = interp.gas.memory_mut().set_words_num(words, paid);
    if !step.top.iter().all(|w| interp.stack.push(*w)) {
        return InstructionVerdict::Rejected("more stack words than a stack holds".into());
    }
    let table = instruction_table::<EthInterpreter, _>();
    // revm assumes what a whole transaction guarantees (the frame's
    // account is loaded): a step that breaks it must not take the referee
    // down
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        interp.step(&table, &gas_table_spec(spec), &mut host)
    }));
    let Ok(result) = run else {
        return InstructionVerdict::Rejected("the step's parts break the instruction".into());
    };
    if let Some(missing) = host.journaled_state.database.0.missed.borrow().clone() {
        return InstructionVerdict::Rejected(format!("the step lacks {missing}"));
    }
    let journal = match &step.journal {
        None => s.journal,
        Some(j) => {
            let inner = &host.journaled_state.inner;
            // the instruction touched exactly the entries carried
            let keys: Vec<_> = opened.iter().map(|(k, _)| *k).collect();
            if journal::entries_of(inner).keys().any(|k| !keys.contains(k)) {
                return InstructionVerdict::Rejected(
                    "the instruction touched an entry the step lacks".into(),
                );
            }
            for key in &keys {
                if tree.update(&key.key_hash(), journal::entry_in(inner, key).as_deref()).is_err() {
                    return InstructionVerdict::Rejected(
                        "the journal's paths do not open the entries".into(),
                    );
                }
            }
            JournalRoot {
                // a log touches no entry: the map is as it was
                entries: if keys.is_empty() { j.root.entries } else { tree.hash() },
                logs: journal::extend_logs(j.root.logs, &inner.logs),
                logs_count: j.root.logs_count + inner.logs.len() as u64,
            }
            .commitment()
        }
    };
    let below_len = s.stack_len as usize - step.top.len();
    let written: Vec<[u8; 32]> = step
        .memory
        .words
        .iter()
        .map(|(i, _)| {
            let mut word = [0u8; 32];
            let at = *i as usize * 32;
            if at + 32 <= interp.memory.size() {
                word.copy_from_slice(&interp.memory.slice(at..at + 32));
            }
            word
        })
        .collect();
    let memory_root =
        if written.is_empty() { s.memory } else { step.memory.root_with(&written).unwrap_or(s.memory) };
    let next = MachineState {
        index: s.index + 1,
        pc: interp.bytecode.pc() as u64,
        opcode: step.code.get(interp.bytecode.pc()).copied().unwrap_or(0x00),
        gas_remaining: interp.gas.remaining(),
        gas_refunded: interp.gas.refunded(),
        stack: extend_chain(step.below, interp.stack.data()),
        stack_len: (below_len + interp.stack.len()) as u32,
        memory: memory_root,
        memory_len: interp.memory.size() as u64,
        journal,
        ..s.clone()
    };
    match result {
        Ok(()) if interp.bytecode.action().is_none() => InstructionVerdict::Next(next.commitment()),
        // a halt (out of gas, bad jump, stack under- or overflow, a write
        // in a static frame) ends the frame: a step of its own, not
        // covered yet
        _ => InstructionVerdict::Unsupported(s.opcode),
    }
}

/// Longest code a step carries: a contract's code (EIP-170, 24 KiB) or an
/// init code (EIP-3860, 48 KiB).
pub const MAX_STEP_CODE: usize = 48 << 10;
/// Longest frame input a step stands for (its calldata is carried as a
/// root and the words read; the referee holds the calldata's length in
/// memory while it runs the instruction).
pub const MAX_FRAME_INPUT: u64 = 64 << 20;
/// Most stack words an instruction reads (SWAP16).
pub(super) const MAX_STEP_WORDS: usize = 17;
/// Most memory words an instruction touches here (MCOPY's two ranges,
/// each unaligned).
pub(super) const MAX_STEP_MEMORY_WORDS: usize = 2 * ((MAX_STEP_RANGE as usize).div_ceil(32) + 1);
/// Most journal entries an instruction touches here (SLOAD, SSTORE).
pub(super) const MAX_STEP_ENTRIES: usize = 2;
