//! Calls and returns as steps: what happens between a call instruction
//! and the callee's first instruction (or, when the call ends at once, the
//! caller's next one), and between a callee's last instruction and its
//! caller's next. Both follow revm's handler (`EthFrame::make_call_frame`
//! and `EthFrame::return_result`): the verifier drives revm's own
//! `return_result` on the caller it rebuilds from its record.

use revm::bytecode::Bytecode;
use revm::context::JournalTr;
use revm::context::result::EVMError;
use revm::context_interface::journaled_state::account::JournaledAccountTr;
use revm::handler::{CallFrame, CreateFrame, EthFrame, FrameData, FrameResult, PrecompileProvider};
use revm::interpreter::interpreter::ExtBytecode;
use revm::interpreter::{
    CallInput, CallInputs, CallOutcome, CallValue, CreateInputs, CreateOutcome, Gas, InstructionResult,
    InterpreterResult, SharedMemory,
};

use super::host::StepHost;
use super::step::{Checked, Next, read_words};
use super::*;
use crate::Error;
use crate::bridge::ShardPrecompiles;

/// Deepest a call may open a frame (revm's `CALL_STACK_LIMIT`).
const CALL_STACK_LIMIT: u64 = 1024;

/// After a call instruction asked for a new frame (`interp` is the caller
/// right after it): the callee's first state, or the caller's next when
/// the call ends at once (too deep, too poor, a precompile, no code).
pub(super) fn enter(
    next: &mut Next<'_>,
    interp: &mut Interpreter<EthInterpreter>,
    host: &mut StepHost,
    precompiles: &mut ShardPrecompiles,
    inputs: Box<CallInputs>,
) -> Checked<InstructionVerdict> {
    let s = &next.step.state;
    // the journal as the callee's checkpoint sees it: after the call
    // instruction loaded its accounts, before any value moves
    let checkpoint = next.journal(host)?;
    let ended =
        |result: InstructionResult, gas: Gas| InterpreterResult { result, output: Default::default(), gas };
    let gas = Gas::new(inputs.gas_limit);
    let depth = s.depth + 1;
    // revm's transfer assumes both accounts loaded, as the call instruction
    // leaves them in any state a transaction reaches
    let state = &host.journaled_state.inner.state;
    let transfers = matches!(inputs.value, CallValue::Transfer(_));
    if transfers && (!state.contains_key(&inputs.caller) || !state.contains_key(&inputs.target_address)) {
        return Err("a call whose accounts are not in the journal".into());
    }
    let outcome = if depth > CALL_STACK_LIMIT {
        Some(ended(InstructionResult::CallTooDeep, gas))
    } else if let CallValue::Transfer(value) = inputs.value
        && let Some(e) = host.journaled_state.transfer_loaded(inputs.caller, inputs.target_address, value)
    {
        Some(ended(e.into(), gas))
    } else if precompiles.addresses().contains(&inputs.bytecode_address) {
        let result = precompiles.run(host, &inputs).map_err(|e| format!("the precompile failed: {e}"))?;
        Some(result.ok_or("a precompile that did not run")?)
    } else if inputs.known_bytecode.1.is_empty() {
        Some(ended(InstructionResult::Stop, gas))
    } else {
        None
    };
    // the journal after the value moved (the checkpoint if the call failed)
    let moved = next.journal(host)?;
    let Some(result) = outcome else {
        // a new frame: the callee's first instruction, the caller suspended
        // under it
        let record = suspended(next, interp, checkpoint, &inputs.return_memory_offset, false);
        let calldata = match &inputs.input {
            CallInput::SharedBuffer(range) if !range.is_empty() => {
                data_hash(range.len() as u64, &s.memory, range.start as u64)
            }
            _ => DataRef::empty().hash(),
        };
        let code = inputs.known_bytecode.1.original_bytes();
        let callee = MachineState {
            is_static: inputs.is_static,
            code_hash: inputs.known_bytecode.0,
            gas_remaining: inputs.gas_limit,
            input: input_hash(&inputs.target_address, &inputs.caller, &inputs.value.get(), &calldata),
            ..frame_start(s, &record, &code, moved)
        };
        return Ok(InstructionVerdict::Next(callee.commitment()));
    };
    // the call ended at once: the caller takes the result as from a frame
    let ok = result.result.is_ok();
    let journal = if ok { moved } else { checkpoint };
    let ret = inputs.return_memory_offset.clone();
    // a long-input identity call's output is its input, in the tree its
    // sub-steps built; the caller takes as much of it as its range holds,
    // in sub-steps after the call when that is longer than one moves
    let (output, copy_in) = match next.digest_tree {
        Some((root, len)) if ok => {
            let taken = len.min(ret.len() as u64);
            let copy_in =
                (taken > SUB_STEP).then_some(Partial::CopyIn { dest: ret.start as u64, len: taken, done: 0 });
            (data_hash(len, &root, 0), copy_in)
        }
        _ if result.output.is_empty() => (DataRef::empty().hash(), None),
        _ => (DataRef::of_bytes(&result.output).hash(), None),
    };
    let range = if copy_in.is_some() { ret.start..ret.start } else { ret };
    resume(interp, host, result, range, inputs.charged_new_account_state_gas)?;
    let mut after = next.after(interp, journal, output);
    after.partial = copy_in.unwrap_or_default();
    Ok(InstructionVerdict::Next(after.commitment()))
}

/// After CREATE or CREATE2 asked for a new frame (`interp` is the creator
/// right after it): the init code's first state, or the creator's next
/// when the create fails at once (too deep, too poor, the nonce at its
/// limit, an address in use). Follows revm's `EthFrame::make_create_frame`
/// on the step's journal: the creator's nonce goes up and the new address
/// is loaded before the create's checkpoint (a failed create keeps both),
/// then the account is created and the value moves.
pub(super) fn create(
    next: &mut Next<'_>,
    interp: &mut Interpreter<EthInterpreter>,
    host: &mut StepHost,
    inputs: &CreateInputs,
    claimed: Address,
    spec: revm::primitives::hardfork::SpecId,
) -> Checked<InstructionVerdict> {
    let s = &next.step.state;
    let depth = s.depth + 1;
    let caller = inputs.caller();
    let journal = &mut host.journaled_state;
    let failed = if depth > CALL_STACK_LIMIT {
        Some(InstructionResult::CallTooDeep)
    } else {
        let creator =
            journal.inner.state.get_mut(&caller).ok_or("a create whose creator is not in the journal")?;
        if creator.info.balance < inputs.value() {
            Some(InstructionResult::OutOfFunds)
        } else {
            let bumped = {
                let mut creator = journal.load_account_mut(caller).map_err(|e| e.to_string())?;
                let old_nonce = creator.nonce();
                creator.bump_nonce().then_some(old_nonce)
            };
            if let Some(old_nonce) = bumped {
                let created = inputs.created_address(old_nonce);
                if created != claimed {
                    return Err("not the address the create makes".into());
                }
                journal.load_account(created).map_err(|e| e.to_string())?;
                None
            } else {
                Some(InstructionResult::Return)
            }
        }
    };
    // the journal a failure of the init code restores
    let checkpoint = next.journal(host)?;
    let failed = failed.or_else(|| {
        host.journaled_state
            .create_account_checkpoint(caller, claimed, inputs.value(), spec)
            .err()
            .map(Into::into)
    });
    if let Some(result) = failed {
        let result =
            InterpreterResult { result, output: Default::default(), gas: Gas::new(inputs.gas_limit()) };
        let journal = next.journal(host)?;
        // revm's early failures name no address (a nonce at its limit
        // "returns" with none: zero pushed)
        resume_create(interp, host, result, None)?;
        return Ok(InstructionVerdict::Next(
            next.after(interp, journal, DataRef::empty().hash()).commitment(),
        ));
    }
    let moved = next.journal(host)?;
    let record = suspended(next, interp, checkpoint, &(0..0), true);
    let code = inputs.init_code();
    let init = MachineState {
        is_static: false,
        code_hash: alloy_primitives::keccak256(code),
        gas_remaining: inputs.gas_limit(),
        input: input_hash(&claimed, &caller, &inputs.value(), &DataRef::empty().hash()),
        ..frame_start(s, &record, code, moved)
    };
    Ok(InstructionVerdict::Next(init.commitment()))
}

/// A new frame's first state under `s` (the instruction that opened it),
/// its caller suspended as `record`, running `code` from its start with an
/// empty stack, memory and return data, and the journal `journal`; its
/// static flag, code hash, gas and input are the opener's to set.
fn frame_start(s: &MachineState, record: &CallerRecord, code: &[u8], journal: Hash) -> MachineState {
    MachineState {
        index: s.index + 1,
        pc: 0,
        opcode: code.first().copied().unwrap_or(0x00),
        depth: s.depth + 1,
        is_static: false,
        code_hash: B256::ZERO,
        gas_remaining: 0,
        gas_refunded: 0,
        frames: push_frame(s.frames, record),
        input: Hash::ZERO,
        stack: Hash::ZERO,
        stack_len: 0,
        memory: memory_root(&[]),
        memory_len: 0,
        return_data: DataRef::empty().hash(),
        journal,
        partial: Partial::None,
    }
}

/// Gives the creator `interp` a create's result as revm's handler does:
/// the address (or zero) pushed, the output as return data if it
/// reverted, unused gas back.
fn resume_create(
    interp: &mut Interpreter<EthInterpreter>,
    host: &mut StepHost,
    result: InterpreterResult,
    address: Option<Address>,
) -> Checked<()> {
    let data = FrameData::Create(CreateFrame { created_address: address.unwrap_or_default() });
    return_to(interp, host, data, FrameResult::Create(CreateOutcome::new(result, address)))
}

/// Runs revm's own `return_result` on the suspended frame `interp` as
/// `data` (a call's or a create's) taking `outcome`.
fn return_to(
    interp: &mut Interpreter<EthInterpreter>,
    host: &mut StepHost,
    data: FrameData,
    outcome: FrameResult,
) -> Checked<()> {
    let mut frame = EthFrame::invalid();
    std::mem::swap(&mut frame.interpreter, interp);
    frame.data = data;
    let done = frame.return_result::<_, EVMError<Error>>(host, outcome);
    std::mem::swap(&mut frame.interpreter, interp);
    done.map_err(|e| format!("the caller cannot take the result: {e}"))
}

/// What a create's frame ending with `result` leaves, as revm's
/// `return_create` decides it: on success its output becomes the new
/// account's code (at most [`super::touches::MAX_CODE`] bytes, not starting with `0xEF`,
/// its deposit paid from the frame's gas), else the create failed.
pub(super) fn deposit(
    host: &mut StepHost,
    result: &mut InterpreterResult,
    address: Address,
    spec: revm::primitives::hardfork::SpecId,
) -> Checked<()> {
    use revm::context_interface::Cfg;
    use revm::primitives::hardfork::SpecId::{LONDON, SPURIOUS_DRAGON};
    if !result.result.is_ok() {
        return Ok(());
    }
    if !host.journaled_state.inner.state.contains_key(&address) {
        // agreed parts of a made-up state may lack the created account,
        // which revm's `set_code` would take down the referee over
        return Err("a create's end whose account is not in the journal".into());
    }
    let len = result.output.len();
    if spec.is_enabled_in(SPURIOUS_DRAGON) && len > host.cfg.max_code_size() {
        result.result = InstructionResult::CreateContractSizeLimit;
    } else if spec.is_enabled_in(LONDON) && result.output.first() == Some(&0xEF) {
        result.result = InstructionResult::CreateContractStartingWithEF;
    } else if !result.gas.record_regular_cost(host.cfg.gas_params().code_deposit_cost(len)) {
        result.result = InstructionResult::OutOfGas;
    } else {
        host.journaled_state.set_code(address, Bytecode::new_legacy(result.output.clone()));
        result.result = InstructionResult::Return;
    }
    Ok(())
}

/// The caller as a call leaves it suspended: past the call instruction,
/// its journal the callee's checkpoint, no return data.
fn suspended(
    next: &Next<'_>,
    interp: &Interpreter<EthInterpreter>,
    checkpoint: Hash,
    ret: &std::ops::Range<usize>,
    create: bool,
) -> CallerRecord {
    let mut state = next.after(interp, checkpoint, Hash::ZERO);
    state.index = 0;
    let (ret_offset, ret_len) = if ret.is_empty() { (0, 0) } else { (ret.start as u64, ret.len() as u64) };
    CallerRecord { state, ret_offset, ret_len, create }
}

/// Gives the caller `interp` a call's result as revm's handler does: the
/// success flag pushed, the output copied to its range, unused gas back.
fn resume(
    interp: &mut Interpreter<EthInterpreter>,
    host: &mut StepHost,
    result: InterpreterResult,
    range: std::ops::Range<usize>,
    charged_new_account_state_gas: bool,
) -> Checked<()> {
    let data = FrameData::Call(CallFrame { return_memory_range: range.clone() });
    let mut outcome = CallOutcome::new(result, range);
    outcome.charged_new_account_state_gas = charged_new_account_state_gas;
    return_to(interp, host, data, FrameResult::Call(outcome))
}

/// After a callee's last instruction (`result`, its output in the callee's
/// memory): the caller's next state, rebuilt from its record.
pub(super) fn leave(
    next: &mut Next<'_>,
    host: &mut StepHost,
    result: InterpreterResult,
    spec: revm::primitives::hardfork::SpecId,
) -> Checked<InstructionVerdict> {
    let step = next.step;
    let s = &step.state;
    let caller = step.caller.as_ref().ok_or("a frame's end carries the caller it resumes")?;
    let record = &caller.record;
    let c = &record.state;
    // the caller's memory: its words the output lands in now, in its tree
    // (a longer output is copied after the return, in sub-steps)
    let wanted = super::touches::caller_words(s.opcode, &step.top, record);
    if caller.memory.indices() != wanted {
        return Err("not the caller's memory words the output lands in".into());
    }
    if !wanted.is_empty() && caller.memory.root() != Some(c.memory) {
        return Err("the caller's memory words are not its state's".into());
    }
    let mut memory = SharedMemory::new_with_buffer(host.local.shared_memory_buffer().clone());
    memory.resize(c.memory_len as usize);
    for (i, w) in &caller.memory.words {
        if i * 32 + 32 <= c.memory_len {
            memory.set(*i as usize * 32, w);
        }
    }
    let mut interp = Interpreter::new(
        memory,
        ExtBytecode::default(),
        Default::default(),
        c.is_static,
        spec,
        c.gas_remaining,
    );
    interp.gas.set_refund(c.gas_refunded);
    // the caller's stack words stand in as placeholders (revm's limit is
    // then the real one); the result lands on top of them
    let below = c.stack_len as usize;
    if !std::iter::repeat_n(U256::ZERO, below).all(|w| interp.stack.push(w)) {
        return Err("more stack words than a stack holds".into());
    }
    // the output by reference into the callee's memory (RETURN and REVERT
    // name it; any other end returns none)
    let output = match (s.opcode, step.top.as_slice()) {
        (0xf3 | 0xfd, [_, offset]) if !result.output.is_empty() => {
            data_hash(result.output.len() as u64, &s.memory, offset.saturating_to::<u64>())
        }
        _ => DataRef::empty().hash(),
    };
    let mut result = result;
    let output = if record.create {
        // the init code's end: the code deposited, or the create failed
        // (its caller sees the output only if it reverted)
        if result.result.is_ok() {
            let address = step.input.as_ref().ok_or("a create's end carries its frame's input")?.target;
            deposit(host, &mut result, address, spec)?;
        }
        if result.result == InstructionResult::Revert { output } else { DataRef::empty().hash() }
    } else {
        output
    };
    let ok = result.result.is_ok();
    let journal = if ok { next.journal(host)? } else { c.journal };
    let mut copy_in = Partial::None;
    if record.create {
        let address = step.input.as_ref().map_or(Address::ZERO, |i| i.target);
        resume_create(&mut interp, host, result, Some(address))?;
    } else {
        let copied = (result.output.len() as u64).min(record.ret_len);
        if copied > SUB_STEP {
            copy_in = Partial::CopyIn { dest: record.ret_offset, len: copied, done: 0 };
        }
        let end =
            if copy_in == Partial::None { record.ret_offset + record.ret_len } else { record.ret_offset };
        // (EIP-8037's state gas for a new account is zero before Amsterdam,
        // so a frame's record need not carry whether its call charged it)
        resume(&mut interp, host, result, record.ret_offset as usize..end as usize, false)?;
    }
    let written = read_words(&interp, &caller.memory);
    let memory =
        if written.is_empty() { c.memory } else { caller.memory.root_with(&written).unwrap_or(c.memory) };
    let back = MachineState {
        index: s.index + 1,
        gas_remaining: interp.gas.remaining(),
        gas_refunded: interp.gas.refunded(),
        stack: extend_chain(c.stack, interp.stack.data().get(below..).unwrap_or_default()),
        stack_len: interp.stack.len() as u32,
        memory,
        memory_len: interp.memory.size() as u64,
        return_data: output,
        journal,
        partial: copy_in,
        ..c.clone()
    };
    Ok(InstructionVerdict::Next(back.commitment()))
}
