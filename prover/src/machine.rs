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

/// The hash chain of a stack, bottom word first: a step popping `n` words
/// carries them and the chain below them.
pub fn stack_chain(words: &[U256]) -> Hash {
    words
        .iter()
        .fold(Hash::ZERO, |below, w| hash_domain(b"optishard.stack", &[&below.0, &w.to_be_bytes::<32>()]))
}

/// The Merkle root of memory's 32-byte words (memory is always a whole
/// number of words).
pub fn memory_root(memory: &[u8]) -> Hash {
    let words: Vec<Hash> = memory.chunks(32).map(|w| hash_domain(b"optishard.memory_word", &[w])).collect();
    bridge::merkle_root(&words)
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
    kept: Option<(Vec<U256>, Vec<u8>)>,
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
        let input = &interp.input;
        let calldata = match input.input() {
            revm::interpreter::CallInput::Bytes(b) => b.to_vec(),
            // an empty range may lie past the buffer (revm marks "none" so)
            revm::interpreter::CallInput::SharedBuffer(range) if range.is_empty() => Vec::new(),
            revm::interpreter::CallInput::SharedBuffer(range) => {
                interp.memory.global_slice(range.clone()).to_vec()
            }
        };
        let input_hash = hash_domain(
            b"optishard.frame_input",
            &[
                input.target_address().as_slice(),
                input.caller_address().as_slice(),
                &input.call_value().to_be_bytes::<32>(),
                &calldata,
            ],
        );
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
            self.kept = Some((interp.stack.data().clone(), code));
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

/// The single step of one instruction that touches only the stack, pc and
/// gas (arithmetic, comparison, bitwise, PUSH/DUP/SWAP/POP, jumps, PC,
/// GAS): `s_j` in parts, the frame's code, and the stack words the
/// instruction reads with the chain below them. Other instructions (memory,
/// state, calls, logs, returns) need more parts and are not steps yet.
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
    let (Some(state), Some((stack, code))) = (t.states.pop(), t.kept.take()) else {
        return Err(Error::Execution(format!("the transaction runs {} instructions, none at {j}", t.next)));
    };
    let n = reads(state.opcode).min(stack.len());
    let split = stack.len() - n;
    Ok(InstructionStep { below: stack_chain(&stack[..split]), top: stack[split..].to_vec(), state, code })
}

/// The stack chain over `below` extended by `words`.
fn extend_chain(below: Hash, words: &[U256]) -> Hash {
    words.iter().fold(below, |below, w| hash_domain(b"optishard.stack", &[&below.0, &w.to_be_bytes::<32>()]))
}

/// Checks `step` against the agreed `s_j` and runs its one instruction
/// with revm: `s_{j+1}`.
pub fn verify_instruction(
    step: &InstructionStep,
    agreed: &Hash,
    spec: revm::primitives::hardfork::SpecId,
) -> InstructionVerdict {
    use revm::bytecode::Bytecode;
    use revm::interpreter::instructions::gas_table_spec;
    use revm::interpreter::interpreter::ExtBytecode;
    use revm::interpreter::{SharedMemory, instruction_table};
    let s = &step.state;
    if s.commitment() != *agreed {
        return InstructionVerdict::Rejected("the state's parts are not the agreed s_j".into());
    }
    if !is_stack_only(s.opcode) {
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
    let mut bytecode = ExtBytecode::new(Bytecode::new_raw(step.code.clone().into()));
    bytecode.absolute_jump(s.pc as usize);
    let mut interp =
        Interpreter::new(SharedMemory::new(), bytecode, Default::default(), false, spec, s.gas_remaining);
    interp.gas.set_refund(s.gas_refunded);
    if !step.top.iter().all(|w| interp.stack.push(*w)) {
        return InstructionVerdict::Rejected("more stack words than a stack holds".into());
    }
    // a stack-only instruction never calls its host
    let mut host = Context::mainnet().with_db(revm::database::EmptyDB::default());
    let table = instruction_table::<EthInterpreter, _>();
    let result = interp.step(&table, &gas_table_spec(spec), &mut host);
    let below_len = s.stack_len as usize - step.top.len();
    let next = MachineState {
        index: s.index + 1,
        pc: interp.bytecode.pc() as u64,
        opcode: step.code.get(interp.bytecode.pc()).copied().unwrap_or(0x00),
        gas_remaining: interp.gas.remaining(),
        gas_refunded: interp.gas.refunded(),
        stack: extend_chain(step.below, interp.stack.data()),
        stack_len: (below_len + interp.stack.len()) as u32,
        ..s.clone()
    };
    match result {
        Ok(()) if interp.bytecode.action().is_none() => InstructionVerdict::Next(next.commitment()),
        // a halt (out of gas, bad jump, stack under- or overflow) ends the
        // frame: a step of its own, not covered yet
        _ => InstructionVerdict::Unsupported(s.opcode),
    }
}
