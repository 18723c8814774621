//! Level 2 of the dispute game (issue 16): the EVM machine state `s_j`
//! before each instruction of one transaction, the tracer that counts the
//! transaction's instructions and snapshots `s_j` at the indices a
//! bisection round asks for, the one-instruction step, and the item's
//! whole trace around them (prologue, epilogue, the journal's commit). Provers never
//! hash every instruction: to answer a round they replay the item and hash
//! only the `k - 1` requested states (Cannon and BoLD do the same over
//! MIPS/WAVM steps, Specular over EVM opcodes).
//!
//! `s_j` commits to everything the next instruction depends on, each part
//! shaped so a one-instruction step carries only what it touches: the
//! frame's code hash, pc, gas and refund, call depth and a hash chain of
//! the suspended caller frames, the frame's input (target, caller, value,
//! calldata by reference into a word tree), the stack as a hash chain (a
//! step carries the words it pops and the chain below them), memory as a
//! Merkle root over 32-byte words, the last return data (by reference),
//! and the transaction's journal (a Merkle map of its warm entries and a
//! chain of its logs).
//!
//! Files: `trace.rs` (the tracer), `memory.rs` (word trees), `journal.rs`,
//! `step.rs` (the step, its prover and verifier), `frames.rs` (calls and
//! returns), `touches.rs` (what each instruction touches), `item.rs` (the item's trace `T_0 … T_L`, its prologue and
//! coverage), `settle.rs` (the epilogue and the commits), `host.rs`,
//! `codec.rs`.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use bridge::{Hash, hash_domain};
use revm::DatabaseRef;
use revm::context::TxEnv;
use revm::context_interface::LocalContextTr;
use revm::interpreter::Interpreter;
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::interpreter_types::{
    InputsTr, Jumps, LegacyBytecode, LoopControl, MemoryTr, ReturnData,
};

use crate::{BlockParams, Error, Result, SignedTx};

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
    /// An instruction part-way through its sub-steps ([`Partial::None`]
    /// between instructions).
    pub partial: Partial,
}

/// Where a long instruction is between its sub-steps. An instruction
/// whose memory range is longer than [`SUB_STEP`] runs as one step per
/// [`SUB_STEP`] bytes of it, so no step carries more than that much of a
/// range: the first pays the whole instruction's gas and memory growth as
/// revm charges it and does its first part; each next does the next part
/// with pc and stack left alone; the last pops the operands and moves pc.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Partial {
    /// Between instructions.
    #[default]
    None,
    /// KECCAK256, a log or a copy at pc (its operands still on the stack,
    /// its gas paid): `done` bytes of its range moved or absorbed, and for
    /// KECCAK256 and a log the sponge over them.
    Range {
        /// Bytes of the range done (whole sub-steps).
        done: u64,
        /// The sponge over them (zero for a copy).
        sponge: Sponge,
    },
    /// A call to SHA-256, RIPEMD-160 or identity whose input is longer
    /// than a part, at pc (nothing of the call done yet): `done` bytes of
    /// its input absorbed into `state` (a hash's state, or identity's
    /// output tree); the last sub-step makes the call.
    Digest {
        /// Bytes of the input absorbed (whole sub-steps).
        done: u64,
        /// What the precompile made of them.
        state: DigestState,
    },
    /// The frame resumed past a call whose output is being copied into its
    /// memory: `len` bytes (its return data's first) to `dest`, `done` of
    /// them so far.
    CopyIn {
        /// Where the output goes in memory.
        dest: u64,
        /// How many bytes are copied.
        len: u64,
        /// Bytes copied so far.
        done: u64,
    },
}

impl Partial {
    /// Its bytes in `s_j`.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Partial::None => vec![0],
            Partial::Range { done, sponge } => [&[1u8][..], &done.to_be_bytes(), &sponge.to_bytes()].concat(),
            Partial::CopyIn { dest, len, done } => {
                [&[2u8][..], &dest.to_be_bytes(), &len.to_be_bytes(), &done.to_be_bytes()].concat()
            }
            Partial::Digest { done, state } => [&[3u8][..], &done.to_be_bytes(), &state.to_bytes()].concat(),
        }
    }
}

/// Bytes of a range one sub-step moves or absorbs: 32 Keccak blocks,
/// 136 memory words (a whole number of both).
pub const SUB_STEP: u64 = 32 * sponge::RATE as u64;

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
                &self.partial.to_bytes(),
            ],
        )
    }
}

/// Data a frame reads by reference into a word tree (calldata, return
/// data): `len` bytes from byte `offset` of the tree with `root`. A
/// transaction's calldata is a tree of its own (offset 0); a callee's is
/// the caller's memory, which cannot change while the callee runs; return
/// data is the returning frame's memory. So a call or a return never
/// hashes the data it passes into a new tree.
#[derive(Clone, Debug)]
pub struct DataRef {
    /// Its length in bytes.
    pub len: u64,
    /// The tree's root.
    pub root: Hash,
    /// Where the data starts in the tree.
    pub offset: u64,
    /// The tree's bytes (whole words), for a prover.
    pub tree: Arc<Vec<u8>>,
}

impl DataRef {
    /// No data.
    pub fn empty() -> DataRef {
        DataRef { len: 0, root: memory_root(&[]), offset: 0, tree: Arc::new(Vec::new()) }
    }

    /// Data in a tree of its own.
    pub fn of_bytes(data: &[u8]) -> DataRef {
        if data.is_empty() {
            return DataRef::empty();
        }
        let tree = padded(data);
        DataRef { len: data.len() as u64, root: memory_root(&tree), offset: 0, tree: Arc::new(tree) }
    }

    /// `len` bytes at `offset` of a frame's memory (root `root`).
    pub fn in_memory(memory: Arc<Vec<u8>>, root: Hash, offset: u64, len: u64) -> DataRef {
        if len == 0 {
            return DataRef::empty();
        }
        DataRef { len, root, offset, tree: memory }
    }

    /// Its hash in `s_j`.
    pub fn hash(&self) -> Hash {
        data_hash(self.len, &self.root, self.offset)
    }

    /// The data's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len as usize];
        let start = (self.offset as usize).min(self.tree.len());
        let end = (self.offset as usize).saturating_add(out.len()).min(self.tree.len());
        out[..end - start].copy_from_slice(&self.tree[start..end]);
        out
    }
}

/// The hash in `s_j` of data by reference.
pub(crate) fn data_hash(len: u64, root: &Hash, offset: u64) -> Hash {
    hash_domain(b"optishard.data", &[&len.to_be_bytes(), &root.0, &offset.to_be_bytes()])
}

/// What a frame runs with: its target, caller, value and calldata.
#[derive(Clone, Debug)]
pub struct FrameInput {
    /// The account whose storage and balance the frame uses.
    pub target: Address,
    /// Who called it.
    pub caller: Address,
    /// The value sent.
    pub value: U256,
    /// The calldata, by reference.
    pub calldata: DataRef,
}

/// The hash of a frame's input in `s_j`.
pub(crate) fn input_hash(target: &Address, caller: &Address, value: &U256, calldata: &Hash) -> Hash {
    hash_domain(
        b"optishard.frame_input",
        &[target.as_slice(), caller.as_slice(), &value.to_be_bytes::<32>(), &calldata.0],
    )
}

impl FrameInput {
    /// Its hash in `s_j`.
    pub fn hash(&self) -> Hash {
        input_hash(&self.target, &self.caller, &self.value, &self.calldata.hash())
    }
}

/// A caller suspended under a call: its state right after the call
/// instruction ran (arguments popped, gas charged, pc past the call,
/// memory expanded), with the journal as it was at the callee's checkpoint
/// (what a revert restores) in place of its journal and no return data
/// (the callee's return replaces it), and the memory range the callee's
/// output is copied to. The frames chain of `s_j` is a hash chain of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerRecord {
    /// The suspended caller.
    pub state: MachineState,
    /// Where the output goes in its memory.
    pub ret_offset: u64,
    /// How many bytes of it at most.
    pub ret_len: u64,
    /// Whether the frame it opened is a create's (whose end deposits
    /// code and pushes the new address, not a call's).
    pub create: bool,
}

impl CallerRecord {
    /// Its hash in the frames chain.
    pub fn hash(&self) -> Hash {
        hash_domain(
            b"optishard.caller",
            &[
                &self.state.commitment().0,
                &self.ret_offset.to_be_bytes(),
                &self.ret_len.to_be_bytes(),
                &[u8::from(self.create)],
            ],
        )
    }
}

/// The base of the frames chain: the transaction's own frame, by the
/// journal at its checkpoint (taken after the transaction's prologue,
/// before its value moves), which a failure of the whole frame restores.
pub(crate) fn frames_base(checkpoint: &Hash) -> Hash {
    hash_domain(b"optishard.top_frame", &[&checkpoint.0])
}

/// The machine after the transaction's own frame ended: how it ended
/// ([`END_OK`], [`END_REVERT`] or [`END_HALT`]: all the epilogue tells
/// apart), the gas it left and its refund, its output by reference, and
/// the journal (the checkpoint's if it failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndState {
    /// How the frame ended.
    pub result: u8,
    /// Gas it left.
    pub gas_remaining: u64,
    /// Its refund counter.
    pub gas_refunded: i64,
    /// Its output's hash (by reference).
    pub output: Hash,
    /// The journal.
    pub journal: Hash,
}

impl EndState {
    /// Its hash in the item's trace.
    pub fn commitment(&self) -> Hash {
        hash_domain(
            b"optishard.end",
            &[
                &[self.result],
                &self.gas_remaining.to_be_bytes(),
                &self.gas_refunded.to_be_bytes(),
                &self.output.0,
                &self.journal.0,
            ],
        )
    }
}

/// A frame that returned or stopped.
pub const END_OK: u8 = 0;
/// A frame that reverted.
pub const END_REVERT: u8 = 1;
/// A frame that halted (out of gas, an invalid instruction, ...).
pub const END_HALT: u8 = 2;

/// How a frame's result ended it, as [`EndState`] records it.
pub(crate) fn end_class(result: revm::interpreter::InstructionResult) -> u8 {
    if result.is_ok() {
        END_OK
    } else if result.is_revert() {
        END_REVERT
    } else {
        END_HALT
    }
}

/// The frames chain with `record` pushed on `below`.
pub(crate) fn push_frame(below: Hash, record: &CallerRecord) -> Hash {
    hash_domain(b"optishard.frames", &[&below.0, &record.hash().0])
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

mod codec;
mod frames;
mod host;
mod item;
mod journal;
mod memory;
mod parts;
mod settle;
mod sponge;
mod step;
mod touches;
mod trace;

pub use item::*;
pub use journal::{JournalKey, JournalRoot};
pub use memory::Frontier;
pub use memory::{MEMORY_DEPTH, Words, memory_root};
use memory::{padded, prove_words};
pub use settle::{CommitState, CommitStep, EpilogueStep, verify_commit, verify_done, verify_epilogue};
pub use sponge::{DigestState, Ripemd160State, Sha256State, Sponge};
pub use step::*;
pub use touches::{
    MAX_CODE, MAX_INITCODE, MAX_STEP_RANGE, is_covered, is_stack_only, journal_keys, sub_steps,
    touches_journal,
};
pub use trace::{InstructionTrace, trace_transaction};

/// What a step at `state` does, for people: its opcode's mnemonic, and
/// for a sub-step the part of the instruction it does (`KECCAK256, part 3
/// of 241`; a copy of a call's output into the caller's memory); `top`
/// are the stack words the instruction reads.
pub fn step_name(state: &MachineState, top: &[U256]) -> String {
    let name = opcode_name(state.opcode);
    match state.partial {
        Partial::CopyIn { len, done, .. } => format!(
            "a call's output copied into memory, part {} of {}",
            done / SUB_STEP + 1,
            len.div_ceil(SUB_STEP)
        ),
        Partial::Range { done, .. } | Partial::Digest { done, .. } => {
            format!("{name}, part {} of {}", done / SUB_STEP + 1, sub_steps(state.opcode, top))
        }
        Partial::None if sub_steps(state.opcode, top) > 1 => {
            format!("{name}, part 1 of {}", sub_steps(state.opcode, top))
        }
        Partial::None => name,
    }
}

/// An opcode's mnemonic (`0x55`: `SSTORE`; an undefined one: `UNKNOWN`).
pub fn opcode_name(opcode: u8) -> String {
    revm::bytecode::opcode::OpCode::name_by_op(opcode).to_string()
}
