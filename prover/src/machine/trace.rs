//! The tracer: a revm `Inspector` on the same EVM as the state-transition
//! function, counting a transaction's instructions over every frame and
//! hashing `s_j` only at the indices asked for.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use bridge::Hash;
use revm::context::{BlockEnv, CfgEnv, Context, TxEnv};
use revm::interpreter::{
    CallInputs, CallOutcome, CreateInputs, CreateOutcome, Interpreter, InterpreterAction,
};
use revm::{DatabaseRef, InspectEvm, Inspector, MainBuilder, MainContext};

use super::journal;
use super::*;
use crate::bridge::ShardPrecompiles;
use crate::{Error, Overlay, Result};

/// What tracing one transaction found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstructionTrace {
    /// Instructions it ran, over every frame (`N`).
    pub count: u64,
    /// `s_j` at each requested index below `count`, in order.
    pub states: Vec<MachineState>,
    /// The machine after the transaction's frame ended (`None` for a
    /// create transaction: its end is not traced yet).
    pub end: Option<EndState>,
}

/// A caller suspended under an open frame, kept raw: its record is hashed
/// only when a state inside the frame is asked for (a call that ends at
/// once, or runs no requested instruction, never hashes its caller's
/// memory or stack).
struct Suspended {
    /// Its state's scalars and journal; frames, input, stack and memory
    /// are filled in when it is hashed.
    state: MachineState,
    /// Its input but the calldata: target, caller, value.
    input: (Address, Address, U256),
    stack: Vec<U256>,
    /// Where its memory sits in revm's shared buffer (intact while the
    /// callee runs).
    memory_at: usize,
    ret_offset: u64,
    ret_len: u64,
    create: bool,
    /// The callee's calldata in its memory: offset and length.
    args: (u64, u64),
    /// How many logs the journal held when it was suspended.
    logs_at: usize,
}

/// A frame open in the replay.
struct OpenFrame {
    /// The caller suspended under it (`None` for the transaction's frame).
    suspended: Option<Suspended>,
    /// Once hashed: the caller's record and memory.
    record: Option<(CallerRecord, Arc<Vec<u8>>)>,
    /// Its calldata: the transaction's from the start, a callee's once its
    /// caller is hashed.
    calldata: Option<DataRef>,
    /// Its last return data.
    return_data: DataRef,
    /// Whether RIPEMD-160's account was touched when it opened (see
    /// [`Tracer::frame_end`]).
    ripemd_touched: bool,
}

/// Counts instructions and snapshots the requested ones.
pub(super) struct Tracer {
    pub(super) next: u64,
    /// Whether every instruction goes out of line (coverage, a copy-in to
    /// flush): with `watch` and [`OUT_OF_LINE`] all the per-instruction
    /// path reads.
    slow: bool,
    /// The next index whose state or frame is asked for.
    watch: u64,
    /// Whether `step_end` has work (after a call, create or long
    /// instruction).
    end_work: bool,
    wanted: Vec<u64>,
    cursor: usize,
    pub(super) states: Vec<MachineState>,
    frames: Vec<OpenFrame>,
    /// The memory ranges of the call or create instruction about to run:
    /// its arguments, then where its output goes.
    ranges: Option<(u64, u64, u64, u64, bool)>,
    /// The caller a call or create instruction suspended, until the
    /// callee's frame opens.
    pending: Option<Suspended>,
    /// The journal's last hash, and what it was taken at: the lengths of
    /// revm's undo log and logs, the accounts and slots loaded, and the
    /// reverts so far (every change to the journal changes one of them).
    journal_cache: Option<([usize; 5], Hash)>,
    /// Frames ended by a revert or a halt so far.
    reverts: usize,
    /// The journal at the transaction's frame's checkpoint (the frames
    /// chain's base).
    pub(super) checkpoint: Hash,
    /// The machine after the transaction's frame ended.
    pub(super) end: Option<EndState>,
    /// For a create transaction: the logs when its frame was asked for.
    top_create: Option<usize>,
    /// The shard it runs on (its messages' source).
    shard: bridge::ShardId,
    /// The ids of the messages it sent (kept with the journal).
    pub(super) end_messages: Vec<Hash>,
    /// Its journal: the entries and the logs' parts (kept only when
    /// `keep_end_journal`: the item's prover needs them, a round does not).
    pub(super) end_journal: Option<(BTreeMap<JournalKey, Vec<u8>>, JournalRoot)>,
    /// The codes of the accounts it created (kept with the journal).
    pub(super) end_codes: BTreeMap<B256, Vec<u8>>,
    keep_end_journal: bool,
    /// Whether to stop at the first state after the transaction's start
    /// (its first instruction, or its frame's end if it runs none): the
    /// prologue's step.
    stop_at_first: bool,
    /// That state's hash, and the keys read up to it.
    pub(super) first: Option<(Hash, std::collections::BTreeSet<crate::StateKey>)>,
    /// The output of the frame about to return, by reference into its
    /// memory.
    output: Option<DataRef>,
    /// The index whose raw frame to keep, for a step.
    keep: Option<u64>,
    pub(super) kept: Option<Frame>,
    /// How many frames were open at the kept index.
    kept_depth: usize,
    /// Whether the kept instruction ended its frame.
    pub(super) kept_ended: bool,
    /// Whether to look for the first instruction a step does not cover.
    pub(super) check_coverage: bool,
    /// That instruction: its index and opcode.
    pub(super) uncovered: Option<(u64, u8)>,
    /// The long instruction running ([`Partial::Range`]): its sub-steps
    /// past the first are counted once it did not halt.
    long: Option<Long>,
    /// A call to SHA-256, RIPEMD-160 or identity with a long input about
    /// to run ([`Partial::Digest`]).
    hashed: Option<Long>,
    /// A callee's output being copied into its caller in sub-steps
    /// ([`Partial::CopyIn`]) whose states are asked for: taken at the
    /// caller's next instruction.
    copy_in: Option<CopyIn>,
}

/// A long instruction about to run.
struct Long {
    index: u64,
    /// Its sub-steps.
    steps: u64,
    opcode: u8,
    /// The stack words it reads.
    top: Vec<U256>,
    /// When one of its sub-steps past the first is asked for: its state
    /// and memory before it, and its raw frame if that is to be kept.
    before: Option<(MachineState, Vec<u8>, Option<Frame>)>,
}

/// A copy of a callee's output into its caller after the return whose
/// sub-steps are asked for.
struct CopyIn {
    /// The first sub-step's index.
    first: u64,
    steps: u64,
    dest: u64,
    len: u64,
    /// The caller's bytes at `[dest, dest + len)` before the copy.
    before: Vec<u8>,
}

/// A frame's raw parts at one instruction (what its step carries).
#[derive(Clone)]
pub(super) struct Frame {
    pub(super) stack: Vec<U256>,
    pub(super) code: Vec<u8>,
    pub(super) memory: Vec<u8>,
    pub(super) input: FrameInput,
    /// The journal's entries, and its logs' parts (the entries' root is
    /// left for the step to fill in).
    pub(super) journal: BTreeMap<JournalKey, Vec<u8>>,
    pub(super) logs: JournalRoot,
    /// The code of the account the instruction names (EXTCODESIZE,
    /// EXTCODECOPY, a call).
    pub(super) ext_codes: Vec<Vec<u8>>,
    /// The last return data.
    pub(super) return_data: DataRef,
    /// The caller suspended under the frame and its memory.
    pub(super) caller: Option<(CallerRecord, Arc<Vec<u8>>)>,
}

type ShardContext<R> = Context<BlockEnv, TxEnv, CfgEnv, Overlay<R>>;

/// RIPEMD-160's precompile address.
const RIPEMD160: Address = Address::with_last_byte(3);

/// Whether RIPEMD-160's account is touched in the journal now.
fn ripemd_touched<R: DatabaseRef<Error = Error>>(ctx: &ShardContext<R>) -> bool {
    ctx.journaled_state.inner.state.get(&RIPEMD160).is_some_and(|a| a.is_touched())
}

/// The opcodes the tracer looks at beyond counting: the calls, the
/// creates, RETURN and REVERT, and those a long range splits into
/// sub-steps (KECCAK256, the copies, the logs).
const OUT_OF_LINE: [bool; 256] = {
    let mut t = [false; 256];
    let ops = [
        0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xfa, 0xfd, 0x20, 0x37, 0x39, 0x3c, 0x3e, 0x5e, 0xa0, 0xa1, 0xa2,
        0xa3, 0xa4,
    ];
    let mut i = 0;
    while i < ops.len() {
        t[ops[i]] = true;
        i += 1;
    }
    t
};

/// A stack word as a memory offset or length (saturating: a range past
/// any memory gas can buy fails the instruction before it is used).
fn offset(word: &U256) -> u64 {
    u64::try_from(*word).unwrap_or(u64::MAX)
}

impl Tracer {
    pub(super) fn new(wanted: &[u64], keep: Option<u64>) -> Tracer {
        let mut wanted = wanted.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let watch = wanted.first().copied().unwrap_or(u64::MAX).min(keep.unwrap_or(u64::MAX));
        Tracer {
            next: 0,
            slow: false,
            watch,
            end_work: false,
            wanted,
            cursor: 0,
            states: Vec::new(),
            frames: Vec::new(),
            ranges: None,
            pending: None,
            output: None,
            keep,
            kept: None,
            kept_depth: 0,
            kept_ended: false,
            check_coverage: false,
            uncovered: None,
            journal_cache: None,
            reverts: 0,
            checkpoint: Hash::ZERO,
            end: None,
            end_journal: None,
            top_create: None,
            shard: bridge::ShardId(0),
            end_messages: Vec::new(),
            end_codes: BTreeMap::new(),
            keep_end_journal: false,
            stop_at_first: false,
            first: None,
            long: None,
            hashed: None,
            copy_in: None,
        }
    }

    /// A tracer that also keeps the journal at the transaction frame's end.
    pub(super) fn keeping_end_journal(self) -> Tracer {
        Tracer { keep_end_journal: true, ..self }
    }

    /// A tracer that finds the first instruction a step does not cover.
    pub(super) fn coverage() -> Tracer {
        Tracer { check_coverage: true, slow: true, ..Tracer::new(&[], None) }
    }

    /// A tracer that stops at the first state after the transaction's
    /// start.
    pub(super) fn first() -> Tracer {
        Tracer { stop_at_first: true, ..Tracer::new(&[0], None) }
    }

    /// Hashes the suspended callers no state has needed yet, bottom up
    /// (a record holds the chain of those below it and its frame's input,
    /// whose calldata is its own caller's memory). Their memory is read
    /// from revm's shared buffer, which `interp` (the frame on top) sees.
    fn resolve(&mut self, interp: &Interpreter<EthInterpreter>) {
        let mut chain = frames_base(&self.checkpoint);
        for k in 0..self.frames.len() {
            if let Some((record, _)) = &self.frames[k].record {
                chain = push_frame(chain, record);
                continue;
            }
            let Some(s) = &self.frames[k].suspended else { continue };
            let calldata =
                self.frames[k - 1].calldata.as_ref().map_or_else(|| DataRef::empty().hash(), DataRef::hash);
            let (target, caller, value) = s.input;
            let end = s.memory_at + s.state.memory_len as usize;
            let memory = Arc::new(if end > s.memory_at {
                interp.memory.global_slice(s.memory_at..end).to_vec()
            } else {
                Vec::new()
            });
            let root = memory_root(&memory);
            let state = MachineState {
                frames: chain,
                input: input_hash(&target, &caller, &value, &calldata),
                stack: stack_chain(&s.stack),
                memory: root,
                ..s.state.clone()
            };
            let record =
                CallerRecord { state, ret_offset: s.ret_offset, ret_len: s.ret_len, create: s.create };
            chain = push_frame(chain, &record);
            let calldata = if s.create {
                DataRef::empty()
            } else {
                DataRef::in_memory(memory.clone(), root, s.args.0, s.args.1)
            };
            self.frames[k].calldata = Some(calldata);
            self.frames[k].record = Some((record, memory));
        }
    }

    fn frames_chain(&self) -> Hash {
        self.frames
            .iter()
            .filter_map(|f| f.record.as_ref())
            .fold(frames_base(&self.checkpoint), |below, (r, _)| push_frame(below, r))
    }

    fn input(&self, interp: &Interpreter<EthInterpreter>) -> FrameInput {
        let input = &interp.input;
        FrameInput {
            target: input.target_address(),
            caller: input.caller_address(),
            value: input.call_value(),
            calldata: self.frames.last().and_then(|f| f.calldata.clone()).unwrap_or_else(DataRef::empty),
        }
    }

    /// The journal's hash in `s_j`, rebuilt only when the journal may have
    /// changed since it was last taken.
    fn journal<R: DatabaseRef<Error = Error>>(&mut self, ctx: &ShardContext<R>) -> Hash {
        let inner = &ctx.journaled_state.inner;
        let slots = inner.state.values().map(|a| a.storage.len()).sum();
        let key = [inner.journal.len(), inner.logs.len(), inner.state.len(), slots, self.reverts];
        match self.journal_cache {
            Some((k, hash)) if k == key => hash,
            _ => {
                let hash = journal::journal_root(inner, self.shard).commitment();
                self.journal_cache = Some((key, hash));
                hash
            }
        }
    }

    /// `s_j` of the interpreter.
    fn snapshot<R: DatabaseRef<Error = Error>>(
        &mut self,
        index: u64,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &ShardContext<R>,
    ) -> MachineState {
        self.resolve(interp);
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
            input: self.input(interp).hash(),
            stack: stack_chain(interp.stack.data()),
            stack_len: interp.stack.len() as u32,
            memory: memory_root(&memory),
            memory_len: memory.len() as u64,
            return_data: self.frames.last().map_or_else(DataRef::empty, |f| f.return_data.clone()).hash(),
            journal: self.journal(ctx),
            partial: Partial::None,
        }
    }

    /// The frame `frames` opened (calldata `calldata` if the instruction
    /// that opened it is known, else the transaction's frame).
    fn open(&mut self, calldata: impl FnOnce() -> DataRef, ripemd_touched: bool) {
        let frame = match self.pending.take() {
            Some(s) => OpenFrame {
                suspended: Some(s),
                record: None,
                calldata: None,
                return_data: DataRef::empty(),
                ripemd_touched,
            },
            None => OpenFrame {
                suspended: None,
                record: None,
                calldata: Some(calldata()),
                return_data: DataRef::empty(),
                ripemd_touched,
            },
        };
        self.frames.push(frame);
    }

    /// The frame on top returned `output`: its caller's return data is
    /// that output, by reference into the returning frame's memory.
    fn close(
        &mut self,
        output: &[u8],
        ok: bool,
        end: Option<(u8, &revm::interpreter::Gas, Hash)>,
        buffer: &[u8],
    ) {
        if !ok {
            self.reverts += 1;
        }
        if self.keep.is_some_and(|k| k + 1 == self.next) && self.frames.len() == self.kept_depth {
            self.kept_ended = true;
        }
        let closed = self.frames.pop();
        // a long-input identity call's output (its input) reaches its
        // caller as a returning frame's does
        let identity = ok
            && self
                .hashed
                .as_ref()
                .is_some_and(|h| super::touches::called(&h.top) == super::touches::IDENTITY);
        if self.hashed.is_some() {
            // the frame a long-input precompile call opened: its precompile's end
            self.hashed_end(ok);
        }
        let returned = self.output.take().filter(|o| o.len == output.len() as u64);
        // an output longer than a step moves reaches the caller's memory
        // in sub-steps of the caller
        if let (Some(s), true) = (closed.and_then(|f| f.suspended), returned.is_some() || identity)
            && !s.create
            && (output.len() as u64).min(s.ret_len) > SUB_STEP
        {
            let len = (output.len() as u64).min(s.ret_len);
            let (first, steps) = (self.next, len.div_ceil(SUB_STEP));
            self.next += steps;
            let asked = |j: u64| j >= first && j < first + steps;
            if self.wanted.get(self.cursor).is_some_and(|j| asked(*j)) || self.keep.is_some_and(asked) {
                let at = s.memory_at + s.ret_offset as usize;
                // the call grew the caller's memory over its output's range
                let before = buffer.get(at..at + len as usize).map(<[u8]>::to_vec).unwrap_or_default();
                debug_assert_eq!(before.len() as u64, len, "the caller's memory holds the output's range");
                self.copy_in = Some(CopyIn { first, steps, dest: s.ret_offset, len, before });
            }
            self.rewatch();
        }
        let data = match returned {
            _ if output.is_empty() => DataRef::empty(),
            Some(o) => o,
            // a precompile's output has no memory: a tree of its own
            None => DataRef::of_bytes(output),
        };
        match self.frames.last_mut() {
            Some(caller) => caller.return_data = data,
            None => {
                if let Some((result, gas, journal)) = end {
                    self.end = Some(EndState {
                        result,
                        gas_remaining: gas.remaining(),
                        gas_refunded: gas.refunded(),
                        output: data.hash(),
                        journal,
                    });
                }
            }
        }
    }
}

impl<R: DatabaseRef<Error = Error>> Inspector<ShardContext<R>, EthInterpreter> for Tracer {
    fn initialize_interp(&mut self, interp: &mut Interpreter<EthInterpreter>, ctx: &mut ShardContext<R>) {
        // a create's frame: its creator's record (or for a create
        // transaction, the frames chain's base) holds the journal the
        // create's checkpoint restores (the creator's nonce up, the new
        // address loaded), which revm took after the create instruction ran
        let top = self.frames.len() == 1;
        let logs_at = match self.frames.last().and_then(|f| f.suspended.as_ref()) {
            Some(s) if s.create => s.logs_at,
            None if top && self.top_create.is_some() => self.top_create.unwrap_or_default(),
            _ => return,
        };
        let inner = &ctx.journaled_state.inner;
        let created = interp.input.target_address();
        let at = inner.journal.iter().rposition(
            |e| matches!(e, revm::context::journal::JournalEntry::AccountCreated { address, .. } if *address == created),
        );
        let Some(journal_i) = at else { return };
        let mut restored = inner.clone();
        restored.checkpoint_revert(revm::context_interface::journaled_state::JournalCheckpoint {
            log_i: logs_at,
            journal_i,
            selfdestructed_i: inner.selfdestructed_addresses.len(),
        });
        let checkpoint = journal::journal_root(&restored, self.shard).commitment();
        match self.frames.last_mut().and_then(|f| f.suspended.as_mut()) {
            Some(s) => s.state.journal = checkpoint,
            // a create transaction's frame: the frames chain's base
            None => self.checkpoint = checkpoint,
        }
    }

    fn step(&mut self, interp: &mut Interpreter<EthInterpreter>, ctx: &mut ShardContext<R>) {
        let index = self.next;
        self.next += 1;
        let opcode = interp.bytecode.opcode();
        // the common instruction: counted, nothing else (the rest is out of
        // line, so the replay's per-instruction cost is a few loads)
        if !self.slow && index != self.watch && !OUT_OF_LINE[opcode as usize] {
            return;
        }
        self.out_of_line(index, opcode, interp, ctx);
    }

    fn step_end(&mut self, interp: &mut Interpreter<EthInterpreter>, ctx: &mut ShardContext<R>) {
        if self.end_work {
            self.end_work = false;
            // a call that opened no frame ran no precompile
            if !matches!(interp.bytecode.action(), Some(InterpreterAction::NewFrame(_))) {
                self.hashed = None;
            }
            self.step_end_slow(interp, ctx);
            self.long_end(interp, ctx);
        }
    }

    fn call(&mut self, ctx: &mut ShardContext<R>, inputs: &mut CallInputs) -> Option<CallOutcome> {
        if self.frames.is_empty() {
            // the transaction's frame: its checkpoint is the journal now
            self.checkpoint = self.journal(ctx);
        }
        let touched = ripemd_touched(ctx);
        self.open(|| DataRef::of_bytes(&inputs.input.bytes(ctx)), touched);
        None
    }

    fn call_end(&mut self, ctx: &mut ShardContext<R>, _: &CallInputs, outcome: &mut CallOutcome) {
        let r = &outcome.result;
        self.frame_end(ctx, &r.output, r.result, &r.gas);
    }

    fn create(&mut self, ctx: &mut ShardContext<R>, _: &mut CreateInputs) -> Option<CreateOutcome> {
        if self.frames.is_empty() {
            self.checkpoint = self.journal(ctx);
            self.top_create = Some(ctx.journaled_state.inner.logs.len());
        }
        let touched = ripemd_touched(ctx);
        self.open(DataRef::empty, touched);
        None
    }

    fn create_end(&mut self, ctx: &mut ShardContext<R>, _: &CreateInputs, outcome: &mut CreateOutcome) {
        // a create's caller sees its output only if it reverted (its code
        // is no output)
        let r = &outcome.result;
        let output = if r.result == revm::interpreter::InstructionResult::Revert {
            r.output.clone()
        } else {
            Default::default()
        };
        self.frame_end(ctx, &output, r.result, &r.gas);
    }
}

impl Tracer {
    /// A frame returned `output`: closed, and for the transaction's own
    /// frame, the machine's end (with the journal for the item's prover).
    fn frame_end<R: DatabaseRef<Error = Error>>(
        &mut self,
        ctx: &mut ShardContext<R>,
        output: &[u8],
        result: revm::interpreter::InstructionResult,
        gas: &revm::interpreter::Gas,
    ) {
        // Ethereum's one exception to a revert (revm's
        // `JournalEntry::AccountTouched`): RIPEMD-160's account stays
        // touched, a relic of a 2016 consensus bug. A touch changes no state
        // here (a shard holds no empty account: EIP-161 and its genesis
        // keep it so), so level 2 reverts it as any other and its journal
        // holds RIPEMD-160's account only as the frame's checkpoint did
        if !result.is_ok()
            && self.frames.last().is_some_and(|f| !f.ripemd_touched)
            && let Some(account) = ctx.journaled_state.inner.state.get_mut(&RIPEMD160)
        {
            account.unmark_touch();
        }
        let end = (self.frames.len() == 1).then(|| self.journal(ctx));
        if end.is_some() && self.keep_end_journal {
            let inner = &ctx.journaled_state.inner;
            let logs = JournalRoot::of_logs(&inner.logs, self.shard);
            self.end_journal = Some((journal::entries_of(inner), logs));
            self.end_messages =
                crate::bridge::messages_in(&inner.logs, self.shard).iter().map(bridge::Message::id).collect();
            self.end_codes = inner
                .state
                .values()
                .filter(|a| a.is_created() && a.info.code_hash != revm::primitives::KECCAK_EMPTY)
                .filter_map(|a| Some((a.info.code_hash, a.info.code.as_ref()?.original_bytes().to_vec())))
                .collect();
        }
        let buffer = ctx.local.shared_memory_buffer().clone();
        self.close(output, result.is_ok(), end.map(|j| (end_class(result), gas, j)), &buffer.borrow());
        if self.stop_at_first
            && self.first.is_none()
            && let Some(end) = &self.end
        {
            // a transaction that runs no instruction: its first state is its end
            self.first = Some((end.commitment(), ctx.journaled_state.database.reads().clone()));
        }
    }
}

impl Tracer {
    /// Records instruction `index` if its step would not be covered: the
    /// verifier's classification of its opcode (every range is carried,
    /// in parts past [`SUB_STEP`], or halts first).
    #[inline(never)]
    fn check(&mut self, index: u64, opcode: u8) {
        if !super::touches::is_covered(opcode) {
            self.uncovered = Some((index, opcode));
        }
    }

    /// Everything but counting: a copy-in's states to flush, coverage, a
    /// call, create, return or long instruction, a state or frame asked
    /// for.
    #[inline(never)]
    fn out_of_line<R: DatabaseRef<Error = Error>>(
        &mut self,
        index: u64,
        opcode: u8,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut ShardContext<R>,
    ) {
        if self.copy_in.is_some() {
            self.copied_in(interp, ctx);
        }
        if self.check_coverage && self.uncovered.is_none() {
            self.check(index, opcode);
        }
        // a call to SHA-256, RIPEMD-160 or identity with a long input: its sub-steps absorb the
        // input before the call runs, on the last of them
        if super::touches::is_call(opcode) {
            self.hashed_call(index, opcode, interp, ctx);
        }
        self.step_slow(index, opcode, interp, ctx);
        if matches!(opcode, 0x20 | 0x37 | 0x39 | 0x3c | 0x3e | 0x5e | 0xa0..=0xa4) {
            self.long_start(index, opcode, interp, ctx);
        }
        self.end_work = self.ranges.is_some() || self.long.is_some() || self.hashed.is_some();
        self.rewatch();
    }

    /// Before a call: if it is to SHA-256, RIPEMD-160 or identity with an input longer than a
    /// part, what its sub-steps past the first need should the precompile
    /// run and succeed (only then are they counted, at its frame's end:
    /// [`Tracer::hashed_end`]); the call itself runs as any call does.
    fn hashed_call<R: DatabaseRef<Error = Error>>(
        &mut self,
        index: u64,
        opcode: u8,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut ShardContext<R>,
    ) {
        let Some(top) = top_words(opcode, interp) else { return };
        if super::touches::hashed_input(opcode, &top).is_none() {
            return;
        }
        self.hashed = Some(self.pending(index, opcode, top, interp, ctx));
    }

    /// What an instruction at `index` that takes several steps (`top`: the
    /// stack words it reads) keeps for its sub-steps past the first: the
    /// state, memory and raw frame before it, when one of them is asked
    /// for.
    fn pending<R: DatabaseRef<Error = Error>>(
        &mut self,
        index: u64,
        opcode: u8,
        top: Vec<U256>,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut ShardContext<R>,
    ) -> Long {
        let steps = super::touches::sub_steps(opcode, &top);
        let asked = |j: u64| j > index && j < index + steps;
        let keep = self.keep.is_some_and(asked);
        // the instruction's own index may still be ahead of the cursor
        let wanted = self.wanted[self.cursor..].iter().take_while(|j| **j < index + steps).any(|j| asked(*j));
        let before = (wanted || keep).then(|| {
            let state = self.snapshot(index, interp, ctx);
            let memory = interp.memory.slice(0..interp.memory.size()).to_vec();
            let frame = keep.then(|| self.frame_now(opcode, interp, ctx));
            (state, memory, frame)
        });
        Long { index, steps, opcode, top, before }
    }

    /// The precompile a long-input call ran ended (`ok`: it
    /// succeeded, paying for every word): its sub-steps past the first are
    /// counted, and those asked for taken (the state before the call, `c`
    /// parts of the input absorbed). A failed precompile needs no hash:
    /// its call was one step.
    fn hashed_end(&mut self, ok: bool) {
        let Some(call) = self.hashed.take().filter(|_| ok) else { return };
        self.next += call.steps - 1;
        // the state is always one of the three's: `hashed_input` named the call
        let start = DigestState::start(&super::touches::called(&call.top));
        if let (Some((before, memory, frame)), Some(mut state)) = (call.before, start) {
            let offset = call.top[3].to::<u64>() as usize;
            let input = |a: u64, b: u64| -> Vec<u8> {
                (offset + a as usize..offset + b as usize)
                    .map(|i| memory.get(i).copied().unwrap_or(0))
                    .collect()
            };
            for c in 1..call.steps {
                let j = call.index + c;
                let (a, b) = super::touches::part(call.opcode, &call.top, c - 1).unwrap_or_default();
                let _ = state.absorb(&input(a, b));
                if self.keep == Some(j)
                    && let Some(frame) = &frame
                {
                    self.kept_depth = self.frames.len();
                    self.kept = Some(frame.clone());
                }
                if self.wanted.get(self.cursor) == Some(&j) {
                    let partial = Partial::Digest { done: c * SUB_STEP, state };
                    self.states.push(MachineState { index: j, partial, ..before.clone() });
                    self.cursor += 1;
                }
            }
        }
        self.rewatch();
    }

    /// The next index asked for from here on.
    fn rewatch(&mut self) {
        let wanted = self.wanted.get(self.cursor).copied().unwrap_or(u64::MAX);
        let keep = self.keep.filter(|k| *k >= self.next).unwrap_or(u64::MAX);
        self.watch = wanted.min(keep);
        self.slow = self.check_coverage || self.copy_in.is_some();
    }

    /// A call, create, return or revert, or an instruction whose state or
    /// frame is asked for.
    #[inline(never)]
    fn step_slow<R: DatabaseRef<Error = Error>>(
        &mut self,
        index: u64,
        opcode: u8,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut ShardContext<R>,
    ) {
        use revm::bytecode::opcode::{
            CALL, CALLCODE, CREATE, CREATE2, DELEGATECALL, RETURN, REVERT, STATICCALL,
        };
        let stack = interp.stack.data();
        let n = stack.len();
        let at = |k: usize| stack.get(n.wrapping_sub(k)).map_or(0, offset);
        self.ranges = match opcode {
            CALL | CALLCODE => Some((at(4), at(5), at(6), at(7), false)),
            DELEGATECALL | STATICCALL => Some((at(3), at(4), at(5), at(6), false)),
            CREATE | CREATE2 => Some((0, 0, 0, 0, true)),
            _ => None,
        };
        if matches!(opcode, RETURN | REVERT) && n >= 2 {
            let memory = Arc::new(interp.memory.slice(0..interp.memory.size()).to_vec());
            let root = memory_root(&memory);
            self.output = Some(DataRef::in_memory(memory, root, at(1), at(2)));
        }
        if self.keep == Some(index) {
            self.kept_depth = self.frames.len();
            self.kept = Some(self.frame_now(opcode, interp, ctx));
        }
        if self.wanted.get(self.cursor) == Some(&index) {
            let s = self.snapshot(index, interp, ctx);
            if self.stop_at_first && index == 0 {
                self.first = Some((s.commitment(), ctx.journaled_state.database.reads().clone()));
                // nothing past it matters (and the prologue's database
                // holds nothing past it)
                interp.halt(revm::interpreter::InstructionResult::Stop);
            }
            self.states.push(s);
            self.cursor += 1;
        }
    }

    /// The raw parts of the frame on top (what a step at its instruction
    /// `opcode` carries).
    fn frame_now<R: DatabaseRef<Error = Error>>(
        &mut self,
        opcode: u8,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut ShardContext<R>,
    ) -> Frame {
        use revm::bytecode::opcode::{CALL, CALLCODE, DELEGATECALL, STATICCALL};
        self.resolve(interp);
        let stack = interp.stack.data();
        let n = stack.len();
        let code = interp.bytecode.bytecode_slice().to_vec();
        let memory = interp.memory.slice(0..interp.memory.size()).to_vec();
        // the account EXTCODE* names is on top; a call's is below its gas
        let named = match opcode {
            0x3b | 0x3c => stack.last(),
            CALL | CALLCODE | DELEGATECALL | STATICCALL => stack.get(n.wrapping_sub(2)),
            _ => None,
        };
        let mut ext_codes: Vec<Vec<u8>> = named
            .map(|w| Address::from_word(B256::from(*w)))
            .and_then(|a| code_of(ctx, a))
            .into_iter()
            .collect();
        // a call through a delegation runs the delegate's code
        let delegate = match (opcode, ext_codes.first()) {
            (CALL | CALLCODE | DELEGATECALL | STATICCALL, Some(c)) => super::touches::delegate_of(c),
            _ => None,
        };
        ext_codes.extend(delegate.and_then(|d| code_of(ctx, d)));
        let inner = &ctx.journaled_state.inner;
        let logs = JournalRoot::of_logs(&inner.logs, self.shard);
        let input = self.input(interp);
        let top = self.frames.last();
        Frame {
            stack: interp.stack.data().clone(),
            code,
            memory,
            input,
            journal: journal::entries_of(inner),
            logs,
            ext_codes,
            return_data: top.map_or_else(DataRef::empty, |f| f.return_data.clone()),
            caller: top.and_then(|f| f.record.clone()),
        }
    }

    /// Before a KECCAK256, log or copy: if its range is long, its
    /// sub-steps, with what their states need when one is asked for.
    #[inline(never)]
    fn long_start<R: DatabaseRef<Error = Error>>(
        &mut self,
        index: u64,
        opcode: u8,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut ShardContext<R>,
    ) {
        let Some(top) = top_words(opcode, interp) else { return };
        if super::touches::sub_steps(opcode, &top) <= 1 {
            return;
        }
        self.long = Some(self.pending(index, opcode, top, interp, ctx));
    }

    /// After a long instruction: unless its first sub-step halted, its
    /// sub-steps past the first are counted, and those asked for are the
    /// states between them (the instruction's gas paid, `c` parts of its
    /// range done, pc and stack as before it).
    #[inline(never)]
    fn long_end<R: DatabaseRef<Error = Error>>(
        &mut self,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut ShardContext<R>,
    ) {
        let Some(long) = self.long.take() else { return };
        if interp.bytecode.action().is_some() {
            return;
        }
        self.next += long.steps - 1;
        self.rewatch();
        let Some((before, pre_memory, frame)) = long.before else { return };
        let after = interp.memory.slice(0..interp.memory.size()).to_vec();
        let is_log = matches!(long.opcode, 0xa0..=0xa4);
        let journal = if is_log { before.journal } else { self.journal(ctx) };
        let entries = journal::entries_of(&ctx.journaled_state.inner);
        let top = &long.top;
        // the instruction ran, so its ranges lie in memory
        let dest = super::parts::destination(long.opcode, top).map(|d| d as usize);
        let absorbed = super::parts::absorbed(long.opcode, top).map(|o| o as usize);
        let mut sponge = Sponge::default();
        for c in 1..long.steps {
            let index = long.index + c;
            if let (Some(offset), Some((a, b))) = (absorbed, super::touches::part(long.opcode, top, c - 1)) {
                let _ = sponge.absorb(&after[offset + a as usize..offset + b as usize]);
            }
            let wanted = self.wanted.get(self.cursor) == Some(&index);
            let keep = self.keep == Some(index);
            if !wanted && !keep {
                continue;
            }
            // memory with the parts not done yet as they were before
            let mut memory = after.clone();
            if let Some(dest) = dest {
                for later in c..long.steps {
                    let Some((a, b)) = super::touches::part(long.opcode, top, later) else { continue };
                    let (from, to) = (dest + a as usize, dest + b as usize);
                    let was = pre_memory.len().clamp(from, to);
                    if was > from {
                        memory[from..was].copy_from_slice(&pre_memory[from..was]);
                    }
                    memory[was..to].fill(0);
                }
            }
            let state = MachineState {
                index,
                gas_remaining: interp.gas.remaining(),
                gas_refunded: interp.gas.refunded(),
                memory: memory_root(&memory),
                memory_len: memory.len() as u64,
                journal,
                partial: Partial::Range { done: c * SUB_STEP, sponge },
                ..before.clone()
            };
            if keep && let Some(frame) = &frame {
                self.kept_depth = self.frames.len();
                self.kept = Some(Frame { memory, journal: entries.clone(), ..frame.clone() });
            }
            if wanted {
                self.states.push(state);
                self.cursor += 1;
            }
        }
        self.rewatch();
    }

    /// At the caller's first instruction after a return whose output was
    /// copied in sub-steps: the states of those asked for (the caller
    /// resumed, `c` parts of the output in its memory).
    #[inline(never)]
    fn copied_in<R: DatabaseRef<Error = Error>>(
        &mut self,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut ShardContext<R>,
    ) {
        let Some(copy) = self.copy_in.take() else { return };
        self.slow = self.check_coverage;
        let now = self.snapshot(copy.first, interp, ctx);
        let after = interp.memory.slice(0..interp.memory.size()).to_vec();
        for c in 0..copy.steps {
            let index = copy.first + c;
            let wanted = self.wanted.get(self.cursor) == Some(&index);
            let keep = self.keep == Some(index);
            if !wanted && !keep {
                continue;
            }
            let done = c * SUB_STEP;
            let mut memory = after.clone();
            let (from, to) = ((copy.dest + done) as usize, (copy.dest + copy.len) as usize);
            match (memory.get_mut(from..to), copy.before.get(done as usize..)) {
                (Some(into), Some(was)) if into.len() == was.len() => into.copy_from_slice(was),
                _ => debug_assert!(false, "the caller's memory holds the output's range"),
            }
            let state = MachineState {
                index,
                memory: memory_root(&memory),
                partial: Partial::CopyIn { dest: copy.dest, len: copy.len, done },
                ..now.clone()
            };
            if keep {
                let opcode = interp.bytecode.opcode();
                let frame = self.frame_now(opcode, interp, ctx);
                self.kept_depth = self.frames.len();
                self.kept = Some(Frame { memory, ..frame });
            }
            if wanted {
                self.states.push(state);
                self.cursor += 1;
            }
        }
    }

    /// After a call or create instruction: the caller it suspended.
    #[inline(never)]
    fn step_end_slow<R: DatabaseRef<Error = Error>>(
        &mut self,
        interp: &mut Interpreter<EthInterpreter>,
        ctx: &mut ShardContext<R>,
    ) {
        let Some((args_offset, args_len, ret_offset, ret_len, create)) = self.ranges.take() else { return };
        if !matches!(interp.bytecode.action(), Some(InterpreterAction::NewFrame(_))) {
            return;
        }
        // the caller as the callee leaves it suspended: past the call, its
        // journal the checkpoint a revert restores, no return data; hashed
        // only if a state inside the callee is asked for
        let (ret_offset, ret_len) = if ret_len == 0 { (0, 0) } else { (ret_offset, ret_len) };
        let input = &interp.input;
        let input = (input.target_address(), input.caller_address(), input.call_value());
        let state = MachineState {
            index: 0,
            pc: interp.bytecode.pc() as u64,
            opcode: interp.bytecode.opcode(),
            depth: self.frames.len().saturating_sub(1) as u64,
            is_static: interp.runtime_flag.is_static,
            code_hash: interp.bytecode.get_or_calculate_hash(),
            gas_remaining: interp.gas.remaining(),
            gas_refunded: interp.gas.refunded(),
            frames: Hash::ZERO,
            input: Hash::ZERO,
            stack: Hash::ZERO,
            stack_len: interp.stack.len() as u32,
            memory: Hash::ZERO,
            memory_len: interp.memory.size() as u64,
            return_data: Hash::ZERO,
            journal: self.journal(ctx),
            partial: Partial::None,
        };
        self.pending = Some(Suspended {
            state,
            input,
            stack: interp.stack.data().clone(),
            memory_at: interp.memory.local_memory_offset(),
            ret_offset,
            ret_len,
            create,
            args: (args_offset, args_len),
            logs_at: ctx.journaled_state.inner.logs.len(),
        });
    }
}

/// The stack words `opcode` reads, bottom first (`None` if the stack is
/// shorter: the instruction halts).
fn top_words(opcode: u8, interp: &Interpreter<EthInterpreter>) -> Option<Vec<U256>> {
    let stack = interp.stack.data();
    let at = stack.len().checked_sub(super::touches::reads(opcode))?;
    Some(stack[at..].to_vec())
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
pub fn trace_transaction<R: DatabaseRef<Error = Error>, I: TraceItem + ?Sized>(
    base: R,
    params: &BlockParams,
    tx: &I,
    at: &[u64],
) -> Result<InstructionTrace> {
    run_tracer(base, params, tx, Tracer::new(at, None)).map(|t| InstructionTrace {
        count: t.next,
        states: t.states,
        end: t.end,
    })
}

pub(super) fn run_tracer<R: DatabaseRef<Error = Error>, I: TraceItem + ?Sized>(
    base: R,
    params: &BlockParams,
    tx: &I,
    tracer: Tracer,
) -> Result<Tracer> {
    let (tracer, result) = replay(base, params, tx.run_env(), tx.as_message(), tracer);
    result.map(|()| tracer)
}

/// Replays `tx` (for a call message `message`, as a delivery runs it)
/// under `tracer`: the tracer, and whether the transaction ran (a tracer
/// stopped early may see it fail past where it stopped).
pub(super) fn replay<R: DatabaseRef<Error = Error>>(
    base: R,
    params: &BlockParams,
    tx: TxEnv,
    message: Option<&bridge::Message>,
    mut tracer: Tracer,
) -> (Tracer, Result<()>) {
    tracer.shard = params.shard;
    let mut cfg = params.cfg_env();
    crate::exec::delivering_cfg(&mut cfg, message);
    let mut precompiles = ShardPrecompiles::new(params.fork, params.shard, params.shards);
    precompiles.delivering = message.map(|m| (m.src, m.sender));
    let mut evm = Context::mainnet()
        .with_db(Overlay::new(base))
        .with_block(params.block_env())
        .with_cfg(cfg)
        .build_mainnet_with_inspector(tracer)
        .with_precompiles(precompiles);
    crate::ranges::guard_ranges(&mut evm.instruction);
    let result = evm.inspect_one_tx(tx).map(|_| ()).map_err(|e| Error::Execution(e.to_string()));
    (evm.inspector, result)
}
