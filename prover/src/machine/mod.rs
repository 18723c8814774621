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
    /// Whether the frame is static (a STATICCALL's, or under one).
    pub is_static: bool,
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
                &[u8::from(self.is_static)],
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

/// The hash in `s_j` of data a frame reads as a word tree (the last
/// return data): its length and root.
fn data_hash(len: u64, root: &Hash) -> Hash {
    hash_domain(b"optishard.data", &[&len.to_be_bytes(), &root.0])
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
    /// The journal's entries, and its logs' parts (the entries' root is
    /// left for the step to fill in).
    journal: BTreeMap<JournalKey, Vec<u8>>,
    logs: JournalRoot,
    /// The code EXTCODESIZE or EXTCODECOPY would read.
    ext_code: Option<Vec<u8>>,
    /// The last return data.
    return_data: Vec<u8>,
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
            is_static: interp.runtime_flag.is_static,
            code_hash: interp.bytecode.get_or_calculate_hash(),
            gas_remaining: interp.gas.remaining(),
            gas_refunded: interp.gas.refunded(),
            frames: self.frames_chain(),
            input: input_hash,
            stack: stack_chain(interp.stack.data()),
            stack_len: interp.stack.len() as u32,
            memory: memory_root(&memory),
            memory_len: memory.len() as u64,
            return_data: {
                let data = interp.return_data.buffer();
                data_hash(data.len() as u64, &memory_root(&padded(data)))
            },
            journal: journal::journal_root(&ctx.journaled_state.inner).commitment(),
        }
    }
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
            let ext_code = matches!(interp.bytecode.opcode(), 0x3b | 0x3c)
                .then(|| interp.stack.data().last().map(|w| Address::from_word(B256::from(*w))))
                .flatten()
                .and_then(|a| code_of(ctx, a));
            let inner = &ctx.journaled_state.inner;
            let logs = JournalRoot {
                entries: [0; 32],
                logs: journal::extend_logs(Hash::ZERO, &inner.logs),
                logs_count: inner.logs.len() as u64,
            };
            self.kept = Some(Frame {
                stack: interp.stack.data().clone(),
                code,
                memory,
                input: FrameInput::of(interp),
                journal: journal::entries_of(inner),
                logs,
                ext_code,
                return_data: interp.return_data.buffer().to_vec(),
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

/// The code of `address` as the transaction sees it: from the journal
/// (it may have been created in it), else the state; `None` for none.
fn code_of<R: DatabaseRef<Error = Error>>(ctx: &mut ShardContext<R>, address: Address) -> Option<Vec<u8>> {
    use revm::Database;
    let info = match ctx.journaled_state.inner.state.get(&address) {
        Some(a) => a.info.clone(),
        None => ctx.journaled_state.database.basic(address).ok()??,
    };
    if info.code_hash == revm::primitives::KECCAK_EMPTY {
        return None;
    }
    let code = match info.code {
        Some(c) => c,
        None => ctx.journaled_state.database.code_by_hash(info.code_hash).ok()?,
    };
    Some(code.original_bytes().to_vec())
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

mod codec;
mod journal;
mod memory;
mod step;

pub use journal::{JournalKey, JournalRoot};
pub use memory::{MEMORY_DEPTH, Words, memory_root};
use memory::{padded, prove_words};
pub use step::*;
