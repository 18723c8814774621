//! Level 2 of the dispute game (issue 16, begun): the EVM machine state
//! `s_j` before each instruction of one transaction, and the tracer that
//! counts the transaction's instructions and snapshots `s_j` at the
//! indices a bisection round asks for. Provers never hash every
//! instruction: to answer a round they replay the item and hash only the
//! `k - 1` requested states (Cannon and BoLD do the same over MIPS/WAVM
//! steps, Specular over EVM opcodes).
//!
//! `s_j` commits to everything the next instruction depends on, each part
//! shaped so a one-instruction step can carry only what it touches: the
//! frame's code hash, pc, gas and refund, call depth and a hash chain of the
//! caller frames' states, the frame's input (target, caller, value,
//! calldata), the stack as a hash chain (a step carries the words it pops
//! and the chain below them), memory as a Merkle root over 32-byte words, the
//! last return data, and the transaction's journal so far (touched
//! accounts with their storage and warmth, transient storage, logs).
//!
//! What is not here yet: the one-instruction step and its verifier, the
//! game's second level, messages (only transactions are traced), and the
//! prologue and epilogue (nonce, fees, refund) as steps of their own.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};
use bridge::{Hash, hash_domain};
use revm::context::{BlockEnv, CfgEnv, Context, TxEnv};
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::interpreter_types::{
    InputsTr, Jumps, LegacyBytecode, LoopControl, MemoryTr, ReturnData,
};
use revm::interpreter::{CallInputs, CallOutcome, CreateInputs, CreateOutcome, Interpreter};
use revm::{DatabaseRef, InspectEvm, Inspector, MainBuilder, MainContext};

use crate::bridge::ShardPrecompiles;
use crate::{BlockParams, Error, Overlay, Result, SignedTx};

/// The machine state before one instruction, in the parts a step proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineState {
    /// The instruction's index in the transaction (`j` of `s_j`).
    pub index: u64,
    /// Its program counter in the frame's code.
    pub pc: u64,
    /// The opcode about to run.
    pub opcode: u8,
    /// Call depth (0: the transaction's own frame).
    pub depth: u64,
    /// The frame's code hash.
    pub code_hash: B256,
    /// Gas left in the frame.
    pub gas_remaining: u64,
    /// Refund counter of the frame.
    pub gas_refunded: i64,
    /// Hash chain of the caller frames' states (zero at depth 0).
    pub frames: Hash,
    /// The frame's input: target, caller, value, calldata.
    pub input: Hash,
    /// Hash chain of the stack, bottom word first.
    pub stack: Hash,
    /// Words on the stack.
    pub stack_len: u32,
    /// Merkle root of memory's 32-byte words.
    pub memory: Hash,
    /// Memory size in bytes.
    pub memory_len: u64,
    /// Hash of the last call's return data.
    pub return_data: Hash,
    /// The transaction's journal so far.
    pub journal: Hash,
}

impl MachineState {
    /// `s_j`: the hash the game bisects over.
    pub fn commitment(&self) -> Hash {
        hash_domain(
            b"optishard.machine_state",
            &[
                &self.pc.to_be_bytes(),
                &[self.opcode],
                &self.depth.to_be_bytes(),
                self.code_hash.as_slice(),
                &self.gas_remaining.to_be_bytes(),
                &self.gas_refunded.to_be_bytes(),
                &self.frames.0,
                &self.input.0,
                &self.stack.0,
                &self.stack_len.to_be_bytes(),
                &self.memory.0,
                &self.memory_len.to_be_bytes(),
                &self.return_data.0,
                &self.journal.0,
            ],
        )
    }
}

/// What a frame runs with: its target, caller, value and calldata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInput {
    /// The account whose storage and balance the frame uses.
    pub target: Address,
    /// Who called it.
    pub caller: Address,
    /// The value sent.
    pub value: U256,
    /// The calldata.
    pub calldata: Vec<u8>,
}

/// The hash of a frame's input in `s_j`: its calldata as a Merkle root of
/// 32-byte words (zero past its length, as memory), so a step reading the
/// calldata carries only the words it reads.
fn input_hash(target: &Address, caller: &Address, value: &U256, len: u64, root: &Hash) -> Hash {
    hash_domain(
        b"optishard.frame_input",
        &[target.as_slice(), caller.as_slice(), &value.to_be_bytes::<32>(), &len.to_be_bytes(), &root.0],
    )
}

/// Calldata padded to whole words, for its tree.
fn padded(calldata: &[u8]) -> Vec<u8> {
    let mut v = calldata.to_vec();
    v.resize(calldata.len().div_ceil(32) * 32, 0);
    v
}

impl FrameInput {
    /// Its hash in `s_j`.
    pub fn hash(&self) -> Hash {
        let root = memory_root(&padded(&self.calldata));
        input_hash(&self.target, &self.caller, &self.value, self.calldata.len() as u64, &root)
    }

    fn of(interp: &Interpreter<EthInterpreter>) -> FrameInput {
        let input = &interp.input;
        let calldata = match input.input() {
            revm::interpreter::CallInput::Bytes(b) => b.to_vec(),
            // an empty range may lie past the buffer (revm marks "none" so)
            revm::interpreter::CallInput::SharedBuffer(range) if range.is_empty() => Vec::new(),
            revm::interpreter::CallInput::SharedBuffer(range) => {
                interp.memory.global_slice(range.clone()).to_vec()
            }
        };
        FrameInput {
            target: input.target_address(),
            caller: input.caller_address(),
            value: input.call_value(),
            calldata,
        }
    }
}

/// The hash chain of a stack, bottom word first: a step popping `n` words
/// carries them and the chain below them.
pub fn stack_chain(words: &[U256]) -> Hash {
    extend_chain(Hash::ZERO, words)
}

/// The stack chain over `below` extended by `words`.
fn extend_chain(below: Hash, words: &[U256]) -> Hash {
    words.iter().fold(below, |below, w| hash_domain(b"optishard.stack", &[&below.0, &w.to_be_bytes::<32>()]))
}

/// Depth of the memory tree: one leaf per 32-byte word, 2^32 words (far
/// past what gas can buy), so memory growth never changes the tree's
/// shape: words past the memory's size are zero leaves, and a step that
/// expands memory proves nothing about the new words.
pub const MEMORY_DEPTH: usize = 32;

fn word_leaf(word: &[u8]) -> Hash {
    hash_domain(b"optishard.memory_word", &[word])
}

fn memory_node(left: &Hash, right: &Hash) -> Hash {
    hash_domain(b"optishard.memory_node", &[&left.0, &right.0])
}

/// The roots of all-zero subtrees, by height.
fn zero_subtrees() -> &'static [Hash; MEMORY_DEPTH + 1] {
    static ZEROS: std::sync::OnceLock<[Hash; MEMORY_DEPTH + 1]> = std::sync::OnceLock::new();
    ZEROS.get_or_init(|| {
        let mut z = [word_leaf(&[0u8; 32]); MEMORY_DEPTH + 1];
        for h in 1..=MEMORY_DEPTH {
            z[h] = memory_node(&z[h - 1], &z[h - 1]);
        }
        z
    })
}

/// The levels of the memory tree that differ from zero subtrees: level 0
/// the words' leaves, each next level half as long.
fn memory_levels(memory: &[u8]) -> Vec<Vec<Hash>> {
    let z = zero_subtrees();
    let mut levels = vec![memory.chunks(32).map(word_leaf).collect::<Vec<_>>()];
    for h in 0..MEMORY_DEPTH {
        let below = &levels[h];
        let next = below.chunks(2).map(|pair| memory_node(&pair[0], pair.get(1).unwrap_or(&z[h]))).collect();
        levels.push(next);
    }
    levels
}

/// The Merkle root of memory's 32-byte words (memory is always a whole
/// number of words), in a tree of depth [`MEMORY_DEPTH`].
pub fn memory_root(memory: &[u8]) -> Hash {
    memory_levels(memory)[MEMORY_DEPTH].first().copied().unwrap_or(zero_subtrees()[MEMORY_DEPTH])
}

/// The sibling path of word `index` in memory's tree, leaf level first.
pub fn memory_path(memory: &[u8], index: u64) -> Vec<Hash> {
    path_in(&memory_levels(memory), index)
}

fn path_in(levels: &[Vec<Hash>], index: u64) -> Vec<Hash> {
    let z = zero_subtrees();
    (0..MEMORY_DEPTH).map(|h| levels[h].get(((index >> h) ^ 1) as usize).copied().unwrap_or(z[h])).collect()
}

/// Words `indices` of `data` (whole words; zero past its end), each with
/// its path in `data`'s tree (built once for all of them).
fn words_with_paths(data: &[u8], indices: Vec<u64>) -> Vec<(u64, [u8; 32], Vec<Hash>)> {
    if indices.is_empty() {
        return Vec::new();
    }
    let levels = memory_levels(data);
    indices
        .into_iter()
        .map(|i| {
            let mut word = [0u8; 32];
            if let Some(w) = data.get(i as usize * 32..i as usize * 32 + 32) {
                word.copy_from_slice(w);
            }
            (i, word, path_in(&levels, i))
        })
        .collect()
}

/// The root of a tree in which `words` (index, 32 bytes, sibling path)
/// sit, the paths all of one tree: siblings that are other given words'
/// nodes are taken from those (so several words' paths combine). `None`
/// if a path has the wrong length.
pub fn memory_root_with(words: &[(u64, [u8; 32], Vec<Hash>)]) -> Option<Hash> {
    if words.is_empty() || words.iter().any(|(_, _, p)| p.len() != MEMORY_DEPTH) {
        return None;
    }
    let mut nodes: BTreeMap<u64, Hash> = words.iter().map(|(i, w, _)| (*i, word_leaf(w))).collect();
    for h in 0..MEMORY_DEPTH {
        let mut up = BTreeMap::new();
        for (i, node) in &nodes {
            let sibling = match nodes.get(&(i ^ 1)) {
                Some(s) => *s,
                None => {
                    // the sibling from the path of a word under this node
                    let (_, _, path) = words.iter().find(|(w, _, _)| w >> h == *i)?;
                    path[h]
                }
            };
            let parent = if i & 1 == 0 { memory_node(node, &sibling) } else { memory_node(&sibling, node) };
            up.insert(i >> 1, parent);
        }
        nodes = up;
    }
    nodes.into_values().next()
}

/// What tracing one transaction found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstructionTrace {
    /// Instructions it ran, over every frame (`N`).
    pub count: u64,
    /// `s_j` at each requested index below `count`, in order.
    pub states: Vec<MachineState>,
}

/// Counts instructions and snapshots the requested ones.
struct Tracer {
    next: u64,
    wanted: Vec<u64>,
    cursor: usize,
    states: Vec<MachineState>,
    /// Per open frame, the state of the caller at the instruction that
    /// opened it (`None` for the transaction's own frame).
    frames: Vec<Option<Hash>>,
    /// The caller's state at the last call or create instruction.
    opening: Option<Hash>,
    /// The index whose raw frame (stack words, code) to keep, for a step.
    keep: Option<u64>,
    kept: Option<Frame>,
}

/// A frame's raw parts at one instruction (what its step carries).
struct Frame {
    stack: Vec<U256>,
    code: Vec<u8>,
    memory: Vec<u8>,
    input: FrameInput,
}

type ShardContext<R> = Context<BlockEnv, TxEnv, CfgEnv, Overlay<R>>;

impl Tracer {
    fn frames_chain(&self) -> Hash {
        self.frames
            .iter()
            .flatten()
            .fold(Hash::ZERO, |below, f| hash_domain(b"optishard.frames", &[&below.0, &f.0]))
    }

    fn snapshot<R: DatabaseRef<Error = Error>>(
        &self,
        index: u64,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &ShardContext<R>,
    ) -> MachineState {
        let input_hash = FrameInput::of(interp).hash();
        let memory = interp.memory.slice(0..interp.memory.size()).to_vec();
        MachineState {
            index,
            pc: interp.bytecode.pc() as u64,
            opcode: interp.bytecode.opcode(),
            depth: self.frames.len().saturating_sub(1) as u64,
            code_hash: interp.bytecode.get_or_calculate_hash(),
            gas_remaining: interp.gas.remaining(),
            gas_refunded: interp.gas.refunded(),
            frames: self.frames_chain(),
            input: input_hash,
            stack: stack_chain(interp.stack.data()),
            stack_len: interp.stack.len() as u32,
            memory: memory_root(&memory),
            memory_len: memory.len() as u64,
            return_data: hash_domain(b"optishard.return_data", &[interp.return_data.buffer()]),
            journal: journal_hash(ctx),
        }
    }
}

/// The transaction's journal so far, canonically: every loaded account
/// (balance, nonce, code hash, status) with its loaded slots (original and
/// present values, warmth), transient storage, and the logs.
fn journal_hash<R: DatabaseRef<Error = Error>>(ctx: &ShardContext<R>) -> Hash {
    let inner = &ctx.journaled_state.inner;
    let mut out = Vec::new();
    let accounts: BTreeMap<&Address, _> = inner.state.iter().collect();
    for (address, account) in accounts {
        out.extend_from_slice(address.as_slice());
        out.extend_from_slice(&account.info.balance.to_be_bytes::<32>());
        out.extend_from_slice(&account.info.nonce.to_be_bytes());
        out.extend_from_slice(account.info.code_hash.as_slice());
        out.extend_from_slice(&account.status.bits().to_be_bytes());
        let slots: BTreeMap<_, _> = account.storage.iter().collect();
        out.extend_from_slice(&(slots.len() as u64).to_be_bytes());
        for (key, slot) in slots {
            out.extend_from_slice(&key.to_be_bytes::<32>());
            out.extend_from_slice(&slot.original_value.to_be_bytes::<32>());
            out.extend_from_slice(&slot.present_value.to_be_bytes::<32>());
            out.push(u8::from(slot.is_cold_transaction_id(inner.transaction_id)));
        }
    }
    let transient: BTreeMap<_, _> = inner.transient_storage.iter().collect();
    for (address, slots) in transient {
        let slots: BTreeMap<_, _> = slots.iter().collect();
        for (key, value) in slots {
            out.extend_from_slice(address.as_slice());
            out.extend_from_slice(&key.to_be_bytes::<32>());
            out.extend_from_slice(&value.to_be_bytes::<32>());
        }
    }
    for log in &inner.logs {
        out.extend_from_slice(log.address.as_slice());
        for topic in log.data.topics() {
            out.extend_from_slice(topic.as_slice());
        }
        out.extend_from_slice(&(log.data.data.len() as u64).to_be_bytes());
        out.extend_from_slice(&log.data.data);
    }
    hash_domain(b"optishard.journal", &[&out])
}

impl<R: DatabaseRef<Error = Error>> Inspector<ShardContext<R>, EthInterpreter> for Tracer {
    fn step(&mut self, interp: &mut Interpreter<EthInterpreter>, ctx: &mut ShardContext<R>) {
        use revm::bytecode::opcode::{CALL, CALLCODE, CREATE, CREATE2, DELEGATECALL, STATICCALL};
        let index = self.next;
        self.next += 1;
        let wanted = self.wanted.get(self.cursor) == Some(&index);
        let opens = matches!(
            interp.bytecode.opcode(),
            CALL | CALLCODE | DELEGATECALL | STATICCALL | CREATE | CREATE2
        );
        if self.keep == Some(index) {
            let code = interp.bytecode.bytecode_slice().to_vec();
            let memory = interp.memory.slice(0..interp.memory.size()).to_vec();
            self.kept = Some(Frame {
                stack: interp.stack.data().clone(),
                code,
                memory,
                input: FrameInput::of(interp),
            });
        }
        if wanted || opens {
            let s = self.snapshot(index, interp, ctx);
            if opens {
                self.opening = Some(s.commitment());
            }
            if wanted {
                self.states.push(s);
                self.cursor += 1;
            }
        }
    }

    fn call(&mut self, _: &mut ShardContext<R>, _: &mut CallInputs) -> Option<CallOutcome> {
        self.frames.push(self.opening.take());
        None
    }

    fn call_end(&mut self, _: &mut ShardContext<R>, _: &CallInputs, _: &mut CallOutcome) {
        self.frames.pop();
    }

    fn create(&mut self, _: &mut ShardContext<R>, _: &mut CreateInputs) -> Option<CreateOutcome> {
        self.frames.push(self.opening.take());
        None
    }

    fn create_end(&mut self, _: &mut ShardContext<R>, _: &CreateInputs, _: &mut CreateOutcome) {
        self.frames.pop();
    }
}

/// Replays `tx` over `base` (the state before it) in the block `params`
/// and returns its instruction count and `s_j` at every index of `at`
/// below it (`at` in any order; each state is hashed only if asked for).
pub fn trace_transaction<R: DatabaseRef<Error = Error>>(
    base: R,
    params: &BlockParams,
    tx: &SignedTx,
    at: &[u64],
) -> Result<InstructionTrace> {
    let mut wanted = at.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let tracer = Tracer {
        next: 0,
        wanted,
        cursor: 0,
        states: Vec::new(),
        frames: Vec::new(),
        opening: None,
        keep: None,
        kept: None,
    };
    run_tracer(base, params, tx, tracer).map(|t| InstructionTrace { count: t.next, states: t.states })
}

fn run_tracer<R: DatabaseRef<Error = Error>>(
    base: R,
    params: &BlockParams,
    tx: &SignedTx,
    tracer: Tracer,
) -> Result<Tracer> {
    let mut evm = Context::mainnet()
        .with_db(Overlay::new(base))
        .with_block(params.block_env())
        .with_cfg(params.cfg_env())
        .build_mainnet_with_inspector(tracer)
        .with_precompiles(ShardPrecompiles::new(params.fork, params.shard, params.shards));
    evm.inspect_one_tx(tx.tx_env()).map_err(|e| Error::Execution(e.to_string()))?;
    Ok(evm.inspector)
}

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
    /// The memory words it touches (zero past the memory's size), each
    /// with its sibling path in `s_j`'s memory tree.
    pub memory: Vec<(u64, [u8; 32], Vec<Hash>)>,
    /// The frame's input, for the instructions that read it.
    pub input: Option<StepInput>,
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
    /// The calldata's length in bytes.
    pub len: u64,
    /// The calldata's root.
    pub root: Hash,
    /// The calldata words read, with their paths.
    pub words: Vec<(u64, [u8; 32], Vec<Hash>)>,
}

impl StepInput {
    /// Its hash in `s_j`.
    pub fn hash(&self) -> Hash {
        input_hash(&self.target, &self.caller, &self.value, self.len, &self.root)
    }
}

/// The calldata words CALLDATALOAD reads at the offset on the stack top
/// (none past any calldata: it reads zeros).
fn calldata_words(opcode: u8, top: &[U256]) -> Vec<u64> {
    match (opcode, top.last().and_then(|o| u64::try_from(*o).ok()).filter(|o| *o < 1 << 32)) {
        // the word of its first byte to the word of its last
        (0x35, Some(o)) => (o / 32..=o.div_ceil(32)).collect(),
        _ => vec![],
    }
}

/// What one instruction may read besides the machine state: the block the
/// item is in and the item (a transaction) itself. The referee has both
/// once level 1 pinned the item.
#[derive(Clone, Debug)]
pub struct StepEnv {
    /// The block.
    pub params: BlockParams,
    /// The transaction.
    pub tx: TxEnv,
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
    matches!(opcode, 0x30 | 0x33..=0x36)
}

/// Whether a step covers `opcode`: stack-only; MLOAD, MSTORE, MSTORE8,
/// MSIZE; the frame's input (ADDRESS, CALLER, CALLVALUE, CALLDATALOAD,
/// CALLDATASIZE); the transaction's and block's (ORIGIN, GASPRICE,
/// COINBASE, TIMESTAMP, NUMBER, PREVRANDAO, GASLIMIT, CHAINID, BASEFEE).
pub fn is_covered(opcode: u8) -> bool {
    is_stack_only(opcode)
        || reads_input(opcode)
        || matches!(opcode, 0x51..=0x53 | 0x59 | 0x32 | 0x3a | 0x41..=0x46 | 0x48)
}

/// The memory words `opcode` touches, given the stack words it reads
/// (bottom first): `None` when the offset is past any memory gas can buy
/// (the instruction halts).
fn touched_words(opcode: u8, top: &[U256]) -> Option<Vec<u64>> {
    let width = match opcode {
        0x51 | 0x52 => 32u64,
        0x53 => 1,
        _ => return Some(vec![]),
    };
    let offset: u64 = top.last()?.try_into().ok().filter(|o: &u64| *o < 1 << 32)?;
    Some((offset / 32..=(offset + width - 1) / 32).collect())
}

/// The stack words `opcode` reads.
fn reads(opcode: u8) -> usize {
    revm::bytecode::opcode::OpCode::new(opcode).map_or(0, |o| o.inputs() as usize)
}

/// The step of instruction `j` of `tx` (over `base`, in block `params`).
pub fn instruction_step<R: DatabaseRef<Error = Error>>(
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
    let mut t = run_tracer(base, params, tx, tracer)?;
    let (Some(state), Some(Frame { stack, code, memory, input })) = (t.states.pop(), t.kept.take()) else {
        return Err(Error::Execution(format!("the transaction runs {} instructions, none at {j}", t.next)));
    };
    let n = reads(state.opcode).min(stack.len());
    let split = stack.len() - n;
    let top = stack[split..].to_vec();
    let memory = words_with_paths(&memory, touched_words(state.opcode, &top).unwrap_or_default());
    let input = reads_input(state.opcode).then(|| {
        let data = padded(&input.calldata);
        let words = words_with_paths(&data, calldata_words(state.opcode, &top));
        StepInput {
            target: input.target,
            caller: input.caller,
            value: input.value,
            len: input.calldata.len() as u64,
            root: memory_root(&data),
            words,
        }
    });
    Ok(InstructionStep { below: stack_chain(&stack[..split]), top, state, code, memory, input })
}

/// Checks `step` against the agreed `s_j` and runs its one instruction
/// with revm: `s_{j+1}`.
pub fn verify_instruction(step: &InstructionStep, agreed: &Hash, env: &StepEnv) -> InstructionVerdict {
    use revm::bytecode::Bytecode;
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
    if step.memory.iter().map(|(i, _, _)| *i).collect::<Vec<_>>() != touched {
        return InstructionVerdict::Rejected("not the memory words the instruction touches".into());
    }
    if !touched.is_empty() && memory_root_with(&step.memory) != Some(s.memory) {
        return InstructionVerdict::Rejected("the memory words are not the state's".into());
    }
    if step.memory.iter().any(|(i, w, _)| i * 32 >= s.memory_len && *w != [0u8; 32]) {
        return InstructionVerdict::Rejected("memory past its size is zero".into());
    }
    let mut memory = SharedMemory::new();
    memory.resize(s.memory_len as usize);
    for (i, w, _) in &step.memory {
        if i * 32 < s.memory_len {
            memory.set(*i as usize * 32, w);
        }
    }
    let spec = env.params.fork;
    let input = match (&step.input, reads_input(s.opcode)) {
        (Some(i), true) if i.hash() == s.input => {
            // the calldata words read: exactly those, in the input's tree,
            // zero past its length; the rest of the calldata is never read
            let read = calldata_words(s.opcode, &step.top);
            if i.words.iter().map(|(w, _, _)| *w).collect::<Vec<_>>() != read
                || (!read.is_empty() && memory_root_with(&i.words) != Some(i.root))
                || i.words.iter().any(|(w, word, _)| w * 32 >= i.len && *word != [0u8; 32])
                || i.len > MAX_FRAME_INPUT
            {
                return InstructionVerdict::Rejected("the calldata words are not the input's".into());
            }
            let mut calldata = vec![0u8; i.len as usize];
            for (w, word, _) in &i.words {
                let at = *w as usize * 32;
                if at < calldata.len() {
                    let end = (at + 32).min(calldata.len());
                    calldata[at..end].copy_from_slice(&word[..end - at]);
                }
            }
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
    let mut bytecode = ExtBytecode::new(Bytecode::new_raw(step.code.clone().into()));
    bytecode.absolute_jump(s.pc as usize);
    let mut interp = Interpreter::new(memory, bytecode, input, false, spec, s.gas_remaining);
    interp.gas.set_refund(s.gas_refunded);
    // the memory expansion already paid for (revm charges growth from it)
    let words = s.memory_len.div_ceil(32) as usize;
    let paid = revm::context_interface::cfg::GasParams::new_spec(spec).memory_cost(words);
    let _ = interp.gas.memory_mut().set_words_num(words, paid);
    if !step.top.iter().all(|w| interp.stack.push(*w)) {
        return InstructionVerdict::Rejected("more stack words than a stack holds".into());
    }
    // a stack-only instruction never calls its host
    // the host only answers the transaction's and block's environment
    let mut host = Context::mainnet()
        .with_db(revm::database::EmptyDB::default())
        .with_cfg(env.params.cfg_env())
        .with_block(env.params.block_env())
        .with_tx(env.tx.clone());
    let table = instruction_table::<EthInterpreter, _>();
    let result = interp.step(&table, &gas_table_spec(spec), &mut host);
    let below_len = s.stack_len as usize - step.top.len();
    let written: Vec<(u64, [u8; 32], Vec<Hash>)> = step
        .memory
        .iter()
        .map(|(i, _, path)| {
            let mut word = [0u8; 32];
            let at = *i as usize * 32;
            if at + 32 <= interp.memory.size() {
                word.copy_from_slice(&interp.memory.slice(at..at + 32));
            }
            (*i, word, path.clone())
        })
        .collect();
    let memory_root =
        if written.is_empty() { s.memory } else { memory_root_with(&written).unwrap_or(s.memory) };
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
        ..s.clone()
    };
    match result {
        Ok(()) if interp.bytecode.action().is_none() => InstructionVerdict::Next(next.commitment()),
        // a halt (out of gas, bad jump, stack under- or overflow) ends the
        // frame: a step of its own, not covered yet
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
const MAX_STEP_WORDS: usize = 17;
/// Most memory words an instruction touches here (an unaligned word).
const MAX_STEP_MEMORY_WORDS: usize = 2;

mod codec;
