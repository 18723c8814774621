//! The one-instruction step and its verifier.

use revm::bytecode::Bytecode;

use super::host::{Opened, StepDb, StepHost, host_for, open_journal};
use super::journal::{self, JournalTree};
use super::touches::*;
use super::trace::{Frame, Tracer, run_tracer};
use super::*;
use crate::bridge::ShardPrecompiles;
use crate::state::{PartialTree, SmtProof, StateKey, StateProof};

/// The single step of one instruction ([`is_covered`]): `s_j` in parts,
/// the frame's code, the stack words the instruction reads with the chain
/// below them, the memory words it touches with their paths, and the parts
/// its kind needs besides (the frame's input, journal entries, return
/// data, the caller a frame's end resumes, a block hash).
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
    /// For a frame's last instruction: the caller it resumes.
    pub caller: Option<CallerPart>,
    /// For the transaction's frame's last instruction: the journal at its
    /// checkpoint (the frames chain's base), which a failure restores.
    pub checkpoint: Option<Hash>,
    /// For BLOCKHASH of one of the 256 blocks below: the block's number and
    /// hash (the referee vouches for it from its header chain:
    /// [`StepEnv::block_hashes`]).
    pub block_hash: Option<(u64, B256)>,
}

/// The caller a frame's last instruction resumes: its record (proven by
/// `s_j`'s frames chain) and the words of its memory the output is
/// copied to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerPart {
    /// The suspended caller.
    pub record: CallerRecord,
    /// Its memory words the output lands in, with their multiproof.
    pub memory: Words,
}

/// Data by reference (calldata, return data) as a step carries it: its
/// length, its tree's root, where it starts in the tree, and the tree's
/// words an instruction reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepData {
    /// Its length in bytes.
    pub len: u64,
    /// Its tree's root.
    pub root: Hash,
    /// Where it starts in the tree.
    pub offset: u64,
    /// The tree's words read, with their multiproof.
    pub words: Words,
}

impl StepData {
    /// Its hash in `s_j`.
    pub fn hash(&self) -> Hash {
        data_hash(self.len, &self.root, self.offset)
    }

    pub(super) fn of(data: &DataRef, indices: Vec<u64>) -> StepData {
        StepData {
            len: data.len,
            root: data.root,
            offset: data.offset,
            words: prove_words(&data.tree, indices),
        }
    }

    /// The data as the instruction sees it: the tree's words read in
    /// place, zero elsewhere; `None` if the words are not exactly `read`,
    /// not in the tree, or the data is longer than any frame's.
    pub(super) fn bytes(&self, read: &[u64]) -> Option<Vec<u8>> {
        if self.words.indices() != read
            || (!read.is_empty() && self.words.root() != Some(self.root))
            || self.len > MAX_FRAME_INPUT
        {
            return None;
        }
        let mut data = vec![0u8; self.len as usize];
        for (w, word) in &self.words.words {
            // the word's bytes that fall in the data
            for (k, b) in word.iter().enumerate() {
                let at = (w * 32 + k as u64).checked_sub(self.offset).filter(|at| *at < self.len);
                if let Some(at) = at {
                    data[at as usize] = *b;
                }
            }
        }
        Some(data)
    }

    /// The tree's words holding bytes `[from, from + size)` of the data
    /// (none past its end: a read there reads zeros).
    pub(super) fn words_of(len: u64, offset: u64, from: &U256, size: &U256) -> Vec<u64> {
        match (small(from), small(size)) {
            (Some(f), Some(n)) if n > 0 && f < len => {
                // an offset near the top is a made-up state's: no words
                let (Some(start), Some(end)) = (offset.checked_add(f), offset.checked_add((f + n).min(len)))
                else {
                    return vec![];
                };
                (start / 32..=(end - 1) / 32).collect()
            }
            _ => vec![],
        }
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
    /// The codes it reads (each checked against its hash): the account
    /// EXTCODESIZE, EXTCODECOPY or a call names, and for a call through
    /// an EIP-7702 delegation, the delegate's.
    pub codes: Vec<Vec<u8>>,
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
        input_hash(&self.target, &self.caller, &self.value, &self.calldata.hash())
    }
}

/// What one step of an item may read besides the machine state: the block
/// the item is in, the item (a transaction) itself, and the trace
/// commitment before it (`c_{i-1}`, whose state root every value at the
/// item's start is proven against). The referee has all three once level 1
/// pinned the item.
#[derive(Clone, Debug)]
pub struct StepEnv {
    /// The block.
    pub params: BlockParams,
    /// The transaction.
    pub tx: TxEnv,
    /// Its hash (its receipt's).
    pub tx_hash: B256,
    /// Its leaf in the block's items tree (what `s_0` names it by).
    pub item: Hash,
    /// `c_{i-1}`.
    pub pre: bridge::TraceCommitment,
    /// The call message the item is (`None` for a transaction): it runs
    /// from the bridge with no fee, and settles as a delivery does.
    pub message: Option<bridge::Message>,
    /// Hashes of blocks below the item's, by the referee's header chain:
    /// what a BLOCKHASH step's hash is checked against (the referee fills
    /// in the one number a step names).
    pub block_hashes: std::collections::BTreeMap<u64, B256>,
}

impl StepEnv {
    /// The environment of `item` in the block `params`, after `pre`.
    pub fn new<I: TraceItem + ?Sized>(
        params: BlockParams,
        item: &I,
        pre: bridge::TraceCommitment,
    ) -> StepEnv {
        StepEnv {
            params,
            tx: item.run_env(),
            tx_hash: item.receipt_id(),
            item: item.leaf(),
            pre,
            message: item.as_message().cloned(),
            block_hashes: Default::default(),
        }
    }

    /// The bridge's `messageSender()` while the item runs: a message's
    /// source and sender.
    pub(super) fn delivering(&self) -> Option<(bridge::ShardId, Address)> {
        self.message.as_ref().map(|m| (m.src, m.sender))
    }
}

/// What a level-2 trace runs: a transaction, or a call message delivered
/// from another shard (run from the bridge, as `exec::deliver` does).
pub trait TraceItem {
    /// The revm transaction it runs as.
    fn run_env(&self) -> TxEnv;
    /// Its leaf in the block's items tree.
    fn leaf(&self) -> Hash;
    /// Its receipt's hash field: a transaction's hash, a message's id.
    fn receipt_id(&self) -> B256;
    /// The message it is, if it is one.
    fn as_message(&self) -> Option<&bridge::Message> {
        None
    }
}

impl TraceItem for SignedTx {
    fn run_env(&self) -> TxEnv {
        self.tx_env()
    }

    fn leaf(&self) -> Hash {
        self.item_hash()
    }

    fn receipt_id(&self) -> B256 {
        self.hash
    }
}

impl TraceItem for bridge::Message {
    fn run_env(&self) -> TxEnv {
        crate::exec::delivery_env(self)
    }

    fn leaf(&self) -> Hash {
        bridge::message_item_hash(&self.id())
    }

    fn receipt_id(&self) -> B256 {
        B256::from(self.id().0)
    }

    fn as_message(&self) -> Option<&bridge::Message> {
        Some(self)
    }
}

impl TraceItem for crate::Item {
    fn run_env(&self) -> TxEnv {
        match self {
            crate::Item::Tx(tx) => tx.run_env(),
            crate::Item::Message(m) => m.run_env(),
        }
    }

    fn leaf(&self) -> Hash {
        self.item_hash()
    }

    fn receipt_id(&self) -> B256 {
        self.tx_hash()
    }

    fn as_message(&self) -> Option<&bridge::Message> {
        match self {
            crate::Item::Tx(_) => None,
            crate::Item::Message(m) => Some(m),
        }
    }
}

/// What re-executing one instruction decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstructionVerdict {
    /// `s_{j+1}`: the game compares it with the claimed one.
    Next(Hash),
    /// Not a step the referee takes: an opcode no fork the shards run
    /// defines as a frame (EOF's), or a prologue or epilogue of what the
    /// level-2 machine does not step through (an authorization list).
    Unsupported(u8),
    /// The step proves nothing: its parts are not `s_j`'s.
    Rejected(String),
}

/// The state an item starts from, as its prover needs it: read by revm,
/// and any key proven against its root.
pub trait ProvableState: DatabaseRef<Error = Error> {
    /// `key`'s value and proof against the state's root.
    fn prove(&self, key: StateKey) -> Result<StateProof>;
    /// The state's root.
    fn root(&self) -> Result<Hash>;
}

impl ProvableState for crate::state::ViewReader {
    fn prove(&self, key: StateKey) -> Result<StateProof> {
        crate::state::ViewReader::prove(self, key)
    }

    fn root(&self) -> Result<Hash> {
        crate::state::ViewReader::root(self)
    }
}

impl ProvableState for crate::StateReader {
    fn prove(&self, key: StateKey) -> Result<StateProof> {
        crate::StateReader::prove(self, key)
    }

    fn root(&self) -> Result<Hash> {
        crate::StateReader::root(self)
    }
}

/// The step of instruction `j` of `tx` (over `base`, in block `params`).
pub fn instruction_step<R: ProvableState + Clone, I: TraceItem + ?Sized>(
    base: R,
    params: &BlockParams,
    tx: &I,
    j: u64,
) -> Result<InstructionStep> {
    let mut t = run_tracer(base.clone(), params, tx, Tracer::new(&[j], Some(j)))?;
    let ended = t.kept_ended;
    let checkpoint = (ended && t.states.first().is_some_and(|s| s.depth == 0)).then_some(t.checkpoint);
    let (Some(state), Some(frame)) = (t.states.pop(), t.kept.take()) else {
        return Err(Error::Execution(format!("the transaction runs {} instructions, none at {j}", t.next)));
    };
    let Frame { stack, code, memory, input, journal, logs, ext_codes, return_data, caller } = frame;
    if let Partial::CopyIn { dest, len, done } = state.partial {
        return Ok(super::parts::copy_in_step(state, &memory, &return_data, (dest, len, done)));
    }
    let op = state.opcode;
    let n = reads(op).min(stack.len());
    let split = stack.len() - n;
    let top = stack[split..].to_vec();
    // the caller a frame's last instruction resumes
    let caller = caller.filter(|_| ended);
    let precompiles = ShardPrecompiles::new(params.fork, params.shard, params.shards);
    let creates = tx.run_env().kind.is_create();
    let create_end = caller.as_ref().map_or(state.depth == 0 && creates, |c| c.0.create);
    let part = super::parts::part_of(&state, &top);
    let touch = Touch {
        precompile: calls_precompile(op, &top, &precompiles),
        part,
        ret_len: caller.as_ref().map(|c| c.0.ret_len),
        create_end,
    };
    let created = if is_create(op) {
        let nonce = match journal.get(&JournalKey::Account(input.target)) {
            Some(entry) => journal::account_of(entry, Default::default()).map_or(0, |a| a.info.nonce),
            None => base.basic_ref(input.target)?.map_or(0, |a| a.nonce),
        };
        created_address(op, &top, input.target, nonce, &memory)
    } else {
        Address::ZERO
    };
    let channel = if called(&top) == bridge::BRIDGE_ADDRESS {
        call_args(op, &top, &memory).map_or(U256::ZERO, |input| channel_of(&input))
    } else {
        U256::ZERO
    };
    let memory = prove_words(&memory, touched_words(op, &top, &touch));
    // a long-input precompile call's sub-step between its first and its last carries
    // its input's part and its stack only (the first runs the call)
    let absorbing =
        hashed_input(op, &top).zip(part).is_some_and(|(len, (start, end))| start > 0 && end != len);
    let journal = (carries_journal(op, create_end) && !absorbing)
        .then(|| -> Result<StepJournal> {
            let tree = JournalTree::of(&journal);
            let mut entries = Vec::new();
            let mut pre = Vec::new();
            let delegate = ext_codes.first().and_then(|c| delegate_of(c)).unwrap_or_default();
            for key in step_keys(op, &top, input.target, create_end, Hints { created, channel, delegate }) {
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
                codes: ext_codes,
            })
        })
        .transpose()?;
    let input = (needs_input(op, create_end) && !absorbing).then(|| {
        let read = calldata_words(op, &top, input.calldata.len, input.calldata.offset, part);
        StepInput {
            target: input.target,
            caller: input.caller,
            value: input.value,
            calldata: StepData::of(&input.calldata, read),
        }
    });
    let return_data = reads_return_data(op).then(|| {
        StepData::of(&return_data, return_data_words(op, &top, return_data.len, return_data.offset, part))
    });
    let caller = caller.map(|(record, memory)| CallerPart {
        memory: prove_words(&memory, caller_words(op, &top, &record)),
        record,
    });
    let block_hash = match blockhash_read(op, &top, params.number) {
        Some(n) => Some((n, base.block_hash_ref(n)?)),
        None => None,
    };
    Ok(InstructionStep {
        below: stack_chain(&stack[..split]),
        top,
        state,
        code,
        memory,
        input,
        journal,
        return_data,
        caller,
        checkpoint,
        block_hash,
    })
}

/// Checks `step` against the agreed `s_j` and runs its one instruction
/// with revm: `s_{j+1}`.
pub fn verify_instruction(step: &InstructionStep, agreed: &Hash, env: &StepEnv) -> InstructionVerdict {
    match verify(step, agreed, env) {
        Ok(next) => next,
        Err(reason) => InstructionVerdict::Rejected(reason),
    }
}

/// A step's verdict, or why it proves nothing.
pub(super) type Checked<T> = std::result::Result<T, String>;

fn verify(step: &InstructionStep, agreed: &Hash, env: &StepEnv) -> Checked<InstructionVerdict> {
    use revm::interpreter::interpreter::ExtBytecode;
    use revm::interpreter::{InterpreterAction, SharedMemory};
    let s = &step.state;
    if s.commitment() != *agreed {
        return Err("the state's parts are not the agreed s_j".into());
    }
    // parts a colluding pair agreed on may be anything: bound them before
    // allocating for them
    let gas_limit = env.tx.gas_limit;
    let caller_ok = |c: &CallerPart| c.record.plausible() && c.record.state.gas_within(gas_limit);
    if !s.plausible() || !s.gas_within(gas_limit) || step.caller.as_ref().is_some_and(|c| !caller_ok(c)) {
        return Err("the state's parts are past any a transaction reaches".into());
    }
    // a frame resumed past a call, copying the call's output in
    if let Partial::CopyIn { dest, len, done } = s.partial {
        return super::parts::verify_copy_in(step, dest, len, done);
    }
    if !is_covered(s.opcode) {
        return Ok(InstructionVerdict::Unsupported(s.opcode));
    }
    // past the code's end a frame runs STOP: a PUSH cut short by the end
    // leaves pc up to 32 bytes past it (revm pads the code with zeros)
    if alloy_primitives::keccak256(&step.code) != s.code_hash
        || s.pc > step.code.len() as u64 + 32
        || step.code.get(s.pc as usize).copied().unwrap_or(0x00) != s.opcode
    {
        return Err("the code is not the frame's, or not this opcode at pc".into());
    }
    let n = reads(s.opcode);
    if step.top.len() != n.min(s.stack_len as usize) || extend_chain(step.below, &step.top) != s.stack {
        return Err("the stack words are not the state's".into());
    }
    // which sub-step of a long instruction this is (0: its first, or the
    // instruction's only step)
    let c = super::parts::sub_step_of(s, &step.top).ok_or("not a sub-step of this instruction")?;
    let part = part(s.opcode, &step.top, c);
    let spec = env.params.fork;
    let mut precompiles = ShardPrecompiles::new(spec, env.params.shard, env.params.shards);
    precompiles.delivering = env.delivering();
    // the caller a frame's end resumes, proven under s_j's frames chain
    if let Some(c) = &step.caller
        && (c.record.state.depth + 1 != s.depth || push_frame(c.record.state.frames, &c.record) != s.frames)
    {
        return Err("the caller is not the one s_j's frames chain holds".into());
    }
    // whether the frame is a create's: its caller's record says so, or it
    // is a create transaction's own
    let create_end =
        step.caller.as_ref().map_or(s.depth == 0 && env.tx.kind.is_create(), |c| c.record.create);
    let touch = Touch {
        precompile: calls_precompile(s.opcode, &step.top, &precompiles),
        part,
        ret_len: step.caller.as_ref().map(|c| c.record.ret_len),
        create_end,
    };
    // the memory words: exactly those touched, in s_j's memory tree, zero
    // past its size
    let touched = touched_words(s.opcode, &step.top, &touch);
    if step.memory.indices() != touched {
        return Err("not the memory words the instruction touches".into());
    }
    if !touched.is_empty() && step.memory.root() != Some(s.memory) {
        return Err("the memory words are not the state's".into());
    }
    if step.memory.words.iter().any(|(i, w)| i * 32 >= s.memory_len && *w != [0u8; 32]) {
        return Err("memory past its size is zero".into());
    }
    let hashed = hashed_input(s.opcode, &step.top);
    // what a long-input call's last sub-step makes of its input
    let mut digest_tree = None;
    match (part, hashed) {
        // a SHA-256, RIPEMD-160 or identity call with a long input: its
        // first sub-step runs the call (the precompile charging its gas,
        // reading nothing), which stands only if the precompile did not
        // succeed (else it absorbs the first part: below); the next ones
        // absorb a part each; on the last the call runs again, the
        // precompile giving what they made
        (Some(part), Some(len)) if part.0 > 0 && part.1 != len => {
            return super::parts::digest_part(step, part, false);
        }
        (Some(part), Some(len)) if part.1 == len => {
            let output = super::parts::digest_output(step, part)?;
            precompiles.charged = Some(output.bytes.into());
            digest_tree = output.tree;
        }
        (Some(_), Some(_)) => precompiles.charged = Some(Default::default()),
        (Some(part), None) if c > 0 => {
            // the first sub-step grew memory over the whole range
            super::parts::within_memory(s, &step.top)?;
            if s.opcode == 0x20 {
                return super::parts::keccak_part(step, c, part);
            }
        }
        _ => {}
    }
    let input = match (&step.input, needs_input(s.opcode, create_end)) {
        (Some(i), true) if i.hash() == s.input => {
            // the calldata words read: exactly those, in the input's tree;
            // the rest of the calldata is never read
            let read = calldata_words(s.opcode, &step.top, i.calldata.len, i.calldata.offset, part);
            let calldata = i.calldata.bytes(&read).ok_or("the calldata words are not the input's")?;
            revm::interpreter::InputsImpl {
                target_address: i.target,
                bytecode_address: None,
                caller_address: i.caller,
                input: revm::interpreter::CallInput::Bytes(calldata.into()),
                call_value: i.value,
                depth: s.depth as usize,
            }
        }
        // the frame's depth is the state's (what the range guard reads)
        (None, false) => revm::interpreter::InputsImpl { depth: s.depth as usize, ..Default::default() },
        _ => return Err("the frame's input is not the state's".into()),
    };
    // the journal entries it touches, and the state before the item for
    // the absent ones
    let (db, opened, mut tree) = if carries_journal(s.opcode, create_end) {
        open_journal(step, env, create_end)?
    } else if step.journal.is_some() {
        return Err("a journal part the instruction does not touch".into());
    } else {
        (StepDb::default(), Vec::new(), PartialTree::Empty)
    };
    // BLOCKHASH of a block below: the hash the step carries, vouched for
    // by the referee's header chain
    let mut db = db;
    match (blockhash_read(s.opcode, &step.top, env.params.number), step.block_hash) {
        (Some(n), Some((m, hash))) if n == m && env.block_hashes.get(&n) == Some(&hash) => {
            db.block_hashes.insert(n, hash);
        }
        (None, None) => {}
        _ => return Err("not the hash of the block BLOCKHASH names by the header chain".into()),
    }
    let mut host = host_for(db, &opened, env)?;
    // memory in the host's buffer, as revm sets it up (a precompile reads
    // its input from there)
    let mut memory = SharedMemory::new_with_buffer(host.local.shared_memory_buffer().clone());
    memory.resize(s.memory_len as usize);
    for (i, w) in &step.memory.words {
        if i * 32 < s.memory_len {
            memory.set(*i as usize * 32, w);
        }
    }
    // a frame runs its code as legacy bytecode, as revm's call and create
    // frames do (init code may begin like an EIP-7702 designation)
    let mut bytecode = ExtBytecode::new(Bytecode::new_legacy(step.code.clone().into()));
    bytecode.absolute_jump(s.pc as usize);
    // a sub-step past the first runs on gas the first paid: revm's charge
    // for it is not taken
    let gas = if c == 0 || hashed.is_some() { s.gas_remaining } else { u64::MAX / 2 };
    let mut interp = Interpreter::new(memory, bytecode, input, s.is_static, spec, gas);
    interp.gas.set_refund(s.gas_refunded);
    match (&step.return_data, reads_return_data(s.opcode)) {
        (Some(r), true) if r.hash() == s.return_data => {
            let read = return_data_words(s.opcode, &step.top, r.len, r.offset, part);
            let data = r.bytes(&read).ok_or("the return data words are not the state's")?;
            interp.return_data.set_buffer(data.into());
        }
        (None, false) => {}
        _ => return Err("the return data is not the state's".into()),
    }
    // the memory expansion already paid for (revm charges growth from it)
    let words = s.memory_len.div_ceil(32) as usize;
    let paid = revm::context_interface::cfg::GasParams::new_spec(spec).memory_cost(words);
    let _ = interp.gas.memory_mut().set_words_num(words, paid);
    // the words below stand in as placeholders, so revm's own stack
    // limit is the real one; the instruction never reads them
    let below_len = s.stack_len as usize - step.top.len();
    if !std::iter::repeat_n(U256::ZERO, below_len)
        .chain(step.top.iter().copied())
        .all(|w| interp.stack.push(w))
    {
        return Err("more stack words than a stack holds".into());
    }
    // the shard's instruction table: Ethereum's, ranges past
    // `ranges::MAX_RANGE` halting
    let mut instructions = revm::handler::instructions::EthInstructions::new_mainnet_with_spec(spec);
    crate::ranges::guard_ranges(&mut instructions);
    if s.opcode == 0x20 && part.is_some() {
        // the first sub-step of a long KECCAK256 charges; its parts hash
        let gas = instructions.gas_table()[0x20];
        instructions.insert_instruction(
            0x20,
            revm::interpreter::Instruction::new(super::parts::keccak_charge),
            gas,
        );
    }
    // revm assumes what a whole transaction guarantees (the frame's
    // account is loaded): a step that breaks it must not take the referee
    // down
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let result = interp.step(instructions.instruction_table(), instructions.gas_table(), &mut host);
        if let Err(e) = result
            && interp.bytecode.action().is_none()
        {
            interp.halt(e);
        }
    }));
    if run.is_err() {
        return Err("the step's parts break the instruction".into());
    }
    if let Some(missing) = host.journaled_state.database.0.missed.borrow().clone() {
        return Err(format!("the step lacks {missing}"));
    }
    let action = interp.bytecode.action().take();
    interp.bytecode.reset_action();
    let mut next =
        Next { step, opened: &opened, tree: &mut tree, shard: env.params.shard, digest_tree: None };
    match action {
        Some(InterpreterAction::NewFrame(revm::interpreter::FrameInput::Call(inputs))) => {
            if step.caller.is_some() {
                return Err("a call carries no caller".into());
            }
            next.digest_tree = digest_tree;
            let verdict =
                guarded(|| frames::enter(&mut next, &mut interp, &mut host, &mut precompiles, inputs));
            match (part, hashed) {
                // the first sub-step of a long-input call whose precompile
                // succeeded (and so paid for every word): it absorbs
                (Some(part), Some(len))
                    if part.1 != len && precompiles.charged_ok == Some(true) && verdict.is_ok() =>
                {
                    super::parts::digest_part(step, part, true)
                }
                _ => verdict,
            }
        }
        Some(InterpreterAction::NewFrame(revm::interpreter::FrameInput::Create(inputs))) => {
            if step.caller.is_some() {
                return Err("a create carries no caller".into());
            }
            let claimed = super::host::claimed_created(step);
            guarded(|| frames::create(&mut next, &mut interp, &mut host, &inputs, claimed, spec))
        }
        Some(InterpreterAction::NewFrame(_)) => Ok(InstructionVerdict::Unsupported(s.opcode)),
        Some(InterpreterAction::Return(_)) if c > 0 && hashed.is_none() => {
            Err("a paid sub-step does not end its frame".into())
        }
        Some(InterpreterAction::Return(result)) => match &step.caller {
            Some(_) => guarded(|| frames::leave(&mut next, &mut host, result, spec)),
            None if s.depth == 0 => {
                let checkpoint = step.checkpoint.ok_or("the transaction's end carries its checkpoint")?;
                if frames_base(&checkpoint) != s.frames {
                    return Err("not the checkpoint s_j's frames chain holds".into());
                }
                let mut result = result;
                if create_end && result.result.is_ok() {
                    // a create transaction's frame deposits its code
                    let address =
                        step.input.as_ref().ok_or("a create's end carries its frame's input")?.target;
                    frames::deposit(&mut host, &mut result, address, spec)?;
                }
                let ok = result.result.is_ok();
                let output = match (s.opcode, step.top.as_slice()) {
                    // a create's output is its code, no output, unless it reverted
                    _ if create_end && result.result != revm::interpreter::InstructionResult::Revert => {
                        DataRef::empty().hash()
                    }
                    (0xf3 | 0xfd, [_, offset]) if !result.output.is_empty() => {
                        data_hash(result.output.len() as u64, &s.memory, offset.saturating_to::<u64>())
                    }
                    _ => DataRef::empty().hash(),
                };
                let end = EndState {
                    result: end_class(result.result),
                    gas_remaining: result.gas.remaining(),
                    gas_refunded: result.gas.refunded(),
                    output,
                    journal: if ok { next.journal(&host)? } else { checkpoint },
                };
                Ok(InstructionVerdict::Next(end.commitment()))
            }
            None => Err("a frame's end carries the caller it resumes".into()),
        },
        None if step.caller.is_some() || step.checkpoint.is_some() => {
            Err("a caller or checkpoint the instruction does not resume".into())
        }
        None => match part {
            Some(part) => super::parts::after_part(&mut next, &interp, &host, c, part),
            None => {
                let journal = next.journal(&host)?;
                Ok(InstructionVerdict::Next(next.after(&interp, journal, s.return_data).commitment()))
            }
        },
    }
}

/// Runs `f` so that a revm assumption a made-up state breaks is a refused
/// step, not a crash of the referee.
fn guarded<T>(f: impl FnOnce() -> Checked<T>) -> Checked<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err("the step's parts break the frame's change".into()))
}

/// What computing `s_{j+1}` needs beside the interpreter: the step and the
/// journal's opened map.
pub(super) struct Next<'a> {
    pub(super) step: &'a InstructionStep,
    pub(super) opened: &'a Opened,
    pub(super) tree: &'a mut PartialTree,
    /// The shard the item runs on (its messages' source).
    pub(super) shard: bridge::ShardId,
    /// A long-input identity call's output (its input), by the tree its
    /// sub-steps built: root and length.
    pub(super) digest_tree: Option<(Hash, u64)>,
}

impl Next<'_> {
    /// The journal's hash after the instruction: the opened entries as the
    /// host holds them now, and the logs it emitted.
    pub(super) fn journal(&mut self, host: &StepHost) -> Checked<Hash> {
        let Some(j) = &self.step.journal else { return Ok(self.step.state.journal) };
        let inner = &host.journaled_state.inner;
        // the instruction touched exactly the entries carried
        let keys: Vec<_> = self.opened.iter().map(|(k, _)| *k).collect();
        if journal::entries_of(inner).keys().any(|k| !keys.contains(k)) {
            return Err("the instruction touched an entry the step lacks".into());
        }
        for key in &keys {
            self.tree
                .update(&key.key_hash(), journal::entry_in(inner, key).as_deref())
                .map_err(|_| "the journal's paths do not open the entries")?;
        }
        Ok(JournalRoot {
            // a log touches no entry: the map is as it was
            entries: if keys.is_empty() { j.root.entries } else { self.tree.hash() },
            ..j.root.extended(&inner.logs, self.shard)
        }
        .commitment())
    }

    /// `s_{j+1}` in the same frame: the interpreter after the instruction,
    /// the stack's chain extended over the words left, memory's root from
    /// the same multiproof.
    pub(super) fn after(
        &self,
        interp: &Interpreter<EthInterpreter>,
        journal: Hash,
        return_data: Hash,
    ) -> MachineState {
        let (step, s) = (self.step, &self.step.state);
        let below_len = s.stack_len as usize - step.top.len();
        let written = read_words(interp, &step.memory);
        let stack = interp.stack.data().get(below_len..).unwrap_or_default();
        let memory =
            if written.is_empty() { s.memory } else { step.memory.root_with(&written).unwrap_or(s.memory) };
        MachineState {
            index: s.index + 1,
            pc: interp.bytecode.pc() as u64,
            opcode: step.code.get(interp.bytecode.pc()).copied().unwrap_or(0x00),
            gas_remaining: interp.gas.remaining(),
            gas_refunded: interp.gas.refunded(),
            stack: extend_chain(step.below, stack),
            stack_len: interp.stack.len() as u32,
            memory,
            memory_len: interp.memory.size() as u64,
            return_data,
            journal,
            partial: Partial::None,
            ..s.clone()
        }
    }
}

/// The words `words` names, as `interp`'s memory holds them now.
pub(super) fn read_words(interp: &Interpreter<EthInterpreter>, words: &Words) -> Vec<[u8; 32]> {
    words
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
        .collect()
}

/// Most memory a state may hold (far past what a transaction's gas buys).
pub const MAX_MEMORY: u64 = 8 << 20;

impl MachineState {
    /// Whether its sizes are ones a transaction can reach: memory whole
    /// words within [`MAX_MEMORY`], a stack within 1,024 words, a depth
    /// within 1,024 frames.
    fn plausible(&self) -> bool {
        self.memory_len <= MAX_MEMORY
            && self.memory_len.is_multiple_of(32)
            && self.stack_len <= 1024
            && self.depth <= 1024
    }
}

impl MachineState {
    /// Whether its gas and refund are within the transaction's gas limit
    /// (so memory the instruction may buy stays within a few MiB).
    fn gas_within(&self, limit: u64) -> bool {
        self.gas_remaining <= limit && self.gas_refunded.unsigned_abs() <= limit
    }
}

impl CallerRecord {
    /// Whether its state is plausible and its output range within its
    /// memory.
    fn plausible(&self) -> bool {
        self.state.plausible()
            && (self.ret_len == 0
                || self.ret_offset.checked_add(self.ret_len).is_some_and(|end| end <= self.state.memory_len))
    }
}

/// Longest code a step carries: a contract's code (EIP-170, 24 KiB) or an
/// init code (EIP-3860, 48 KiB).
pub const MAX_STEP_CODE: usize = 48 << 10;
/// Longest frame input a step stands for (its calldata is carried as a
/// root and the words read; the referee holds the calldata's length in
/// memory while it runs the instruction).
pub const MAX_FRAME_INPUT: u64 = 8 << 20;
/// Most stack words an instruction reads (SWAP16).
pub(super) const MAX_STEP_WORDS: usize = 17;
/// Most memory words a step carries: a create's init code, or a
/// precompile call's input and output (each unaligned; a sub-step's parts
/// are far shorter).
pub(super) const MAX_STEP_MEMORY_WORDS: usize = {
    let mcopy = 2 * ((MAX_STEP_RANGE as usize).div_ceil(32) + 1);
    let create = (MAX_INITCODE as usize).div_ceil(32) + 1;
    if mcopy > create { mcopy } else { create }
};
/// Most journal entries an instruction touches here (a call to the
/// bridge: the caller, the bridge, its channel's slot).
pub(super) const MAX_STEP_ENTRIES: usize = 3;
