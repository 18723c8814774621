//! Long instructions as several steps ([`Partial`]): a KECCAK256, log or
//! copy whose range is longer than [`SUB_STEP`] does one part of it per
//! step, and a callee's output longer than that reaches its caller's
//! memory in sub-steps of the caller after the return. No step then
//! carries more than [`SUB_STEP`] bytes of a range (two such parts for
//! MCOPY), whatever the range's length.

use super::host::StepHost;
use super::step::{Checked, InstructionStep, Next, StepData};
use super::touches::{part, sub_steps};
use super::*;

/// The destination offset of a copy (`None` for KECCAK256 and a log,
/// which write no memory).
pub(super) fn destination(opcode: u8, top: &[U256]) -> Option<u64> {
    match (opcode, top) {
        (0x37 | 0x39 | 0x3e | 0x5e, [_, _, dest]) | (0x3c, [_, _, dest, _]) => dest.try_into().ok(),
        _ => None,
    }
}

/// The source offset in memory KECCAK256 or a log absorbs.
pub(super) fn absorbed(opcode: u8, top: &[U256]) -> Option<u64> {
    match (opcode, top) {
        (0x20, [_, offset]) | (0xa0..=0xa4, [.., _, offset]) => offset.try_into().ok(),
        _ => None,
    }
}

/// Bytes `[from, to)` of memory as `words` hold them (zero where they
/// hold none).
fn bytes_of(words: &Words, from: u64, to: u64) -> Vec<u8> {
    let mut out = vec![0u8; (to - from) as usize];
    for (i, w) in &words.words {
        for (k, b) in w.iter().enumerate() {
            let at = i * 32 + k as u64;
            if at >= from && at < to {
                out[(at - from) as usize] = *b;
            }
        }
    }
    out
}

/// The step's words with bytes `[from, to)` taken from `fresh` (the
/// memory an instruction wrote), the rest as carried.
fn with_bytes(words: &Words, from: u64, to: u64, fresh: impl Fn(u64) -> u8) -> Vec<[u8; 32]> {
    words
        .words
        .iter()
        .map(|(i, w)| {
            let mut out = *w;
            for (k, b) in out.iter_mut().enumerate() {
                let at = i * 32 + k as u64;
                if at >= from && at < to {
                    *b = fresh(at);
                }
            }
            out
        })
        .collect()
}

/// `s_{j+1}` after sub-step `c` (part `[start, end)` of the range) of a
/// long instruction that did not halt: revm ran it over the step's words,
/// so its gas and memory growth (paid by the first sub-step), and for a
/// copy the part's destination bytes, are revm's; KECCAK256 and a log
/// absorb the part into the sponge, and their last sub-step takes the
/// hash from it.
pub(super) fn after_part(
    next: &mut Next<'_>,
    interp: &Interpreter<EthInterpreter>,
    host: &StepHost,
    c: u64,
    (start, end): (u64, u64),
) -> Checked<InstructionVerdict> {
    let step = next.step;
    let s = &step.state;
    let (op, top) = (s.opcode, step.top.as_slice());
    let last = c + 1 == sub_steps(op, top);
    let memory = match destination(op, top) {
        Some(dest) => {
            let now = interp.memory.slice(0..interp.memory.size());
            let fresh = |at: u64| now.get(at as usize).copied().unwrap_or(0);
            let written = with_bytes(&step.memory, dest + start, dest + end, fresh);
            step.memory.root_with(&written).ok_or("the part's memory words")?
        }
        None => s.memory,
    };
    let mut sponge = match s.partial {
        Partial::Range { sponge, .. } => sponge,
        _ => Sponge::default(),
    };
    let digest = match absorbed(op, top) {
        Some(offset) => {
            let data = bytes_of(&step.memory, offset + start, offset + end);
            if last {
                Some(sponge.finish(&data))
            } else {
                sponge.absorb(&data).ok_or("a part not of whole blocks")?;
                None
            }
        }
        None => None,
    };
    let is_log = matches!(op, 0xa0..=0xa4);
    // a log's journal changes once, by the log its last sub-step hashes
    // (revm's own log holds the step's words, not the data)
    let journal = match (is_log, digest) {
        (true, Some(data_hash)) => {
            let j = step.journal.as_ref().ok_or("a log's step carries its journal")?;
            let log = host.journaled_state.inner.logs.last().ok_or("a log that logged nothing")?;
            // the bridge's logs are messages, which come from its
            // precompile, never from code
            if log.address == bridge::BRIDGE_ADDRESS {
                return Err("code logging as the bridge".into());
            }
            let len = super::touches::ranged_len(op, top).ok_or("a log's length")?;
            let leaf = crate::receipt::log_leaf(&log.address, log.data.topics(), &data_hash, len);
            JournalRoot {
                logs: crate::receipt::extend_log(j.root.logs, leaf),
                logs_count: j.root.logs_count + 1,
                ..j.root
            }
            .commitment()
        }
        (true, None) => s.journal,
        (false, _) => next.journal(host)?,
    };
    // the first sub-step paid for the whole instruction
    let (gas_remaining, gas_refunded) = if c == 0 {
        (interp.gas.remaining(), interp.gas.refunded())
    } else {
        (s.gas_remaining, s.gas_refunded)
    };
    if !last {
        return Ok(InstructionVerdict::Next(
            MachineState {
                index: s.index + 1,
                gas_remaining,
                gas_refunded,
                memory,
                memory_len: interp.memory.size() as u64,
                journal,
                partial: Partial::Range { done: (c + 1) * SUB_STEP, sponge },
                ..s.clone()
            }
            .commitment(),
        ));
    }
    let mut after = next.after(interp, journal, s.return_data);
    after.gas_remaining = gas_remaining;
    after.gas_refunded = gas_refunded;
    after.memory = memory;
    if let (0x20, Some(hash)) = (op, digest) {
        after.stack = extend_chain(step.below, &[U256::from_be_bytes(hash.0)]);
    }
    after.partial = Partial::None;
    Ok(InstructionVerdict::Next(after.commitment()))
}

/// revm's KECCAK256 (`instructions::system::keccak256`) without the
/// hash: the gas it charges, the memory it grows, a zero word where the
/// hash goes. A long KECCAK256's first sub-step runs it in place of
/// revm's (its parts absorb the range), so that step costs a part's work,
/// not the whole range's hash. A halt's reason differs from revm's only
/// where [`EndState`] does not tell them apart.
pub(super) fn keccak_charge<H: revm::interpreter::Host + ?Sized>(
    ctx: revm::interpreter::InstructionContext<'_, H, EthInterpreter>,
) -> revm::interpreter::InstructionExecResult {
    use revm::interpreter::InstructionResult;
    let interp = ctx.interpreter;
    let offset = interp.stack.pop()?;
    let len = interp.stack.pop()?;
    let len = usize::try_from(len).map_err(|_| InstructionResult::InvalidOperandOOG)?;
    if !interp.gas.record_regular_cost(ctx.host.gas_params().keccak256_cost(len)) {
        return Err(InstructionResult::OutOfGas);
    }
    if len != 0 {
        let from = usize::try_from(offset).map_err(|_| InstructionResult::InvalidOperandOOG)?;
        interp.resize_memory(ctx.host.gas_params(), from, len)?;
    }
    if !interp.stack.push(U256::ZERO) {
        return Err(InstructionResult::StackOverflow);
    }
    Ok(())
}

/// Whether a long instruction's ranges lie in the state's memory, as
/// its first sub-step left them (so a later one grows no memory).
pub(super) fn within_memory(s: &MachineState, top: &[U256]) -> Checked<()> {
    let len = super::touches::ranged_len(s.opcode, top).ok_or("not a long instruction")?;
    let starts = match (s.opcode, top) {
        (0x5e, [_, src, dest]) => vec![src.try_into().ok(), dest.try_into().ok()],
        _ => vec![destination(s.opcode, top).or(absorbed(s.opcode, top))],
    };
    let inside =
        |at: &Option<u64>| at.and_then(|a| a.checked_add(len)).is_some_and(|end| end <= s.memory_len);
    if starts.iter().all(inside) { Ok(()) } else { Err("a sub-step's range past the state's memory".into()) }
}

/// A KECCAK256 sub-step past the first, without revm (which would hash
/// the whole range again): the part absorbed; the last one pops the
/// operands, pushes the hash and moves pc.
pub(super) fn keccak_part(
    step: &InstructionStep,
    c: u64,
    (start, end): (u64, u64),
) -> Checked<InstructionVerdict> {
    let s = &step.state;
    if carries_frame_parts(step) || step.return_data.is_some() {
        return Err("a KECCAK256 step carries its stack and memory words only".into());
    }
    let offset = absorbed(s.opcode, &step.top).ok_or("KECCAK256's offset")?;
    let Partial::Range { mut sponge, .. } = s.partial else { return Err("not a sub-step".into()) };
    let data = bytes_of(&step.memory, offset + start, offset + end);
    if c + 1 < sub_steps(s.opcode, &step.top) {
        sponge.absorb(&data).ok_or("a part not of whole blocks")?;
        let partial = Partial::Range { done: (c + 1) * SUB_STEP, sponge };
        return Ok(InstructionVerdict::Next(
            MachineState { index: s.index + 1, partial, ..s.clone() }.commitment(),
        ));
    }
    let hash = sponge.finish(&data);
    let pc = s.pc + 1;
    Ok(InstructionVerdict::Next(
        MachineState {
            index: s.index + 1,
            pc,
            opcode: step.code.get(pc as usize).copied().unwrap_or(0x00),
            stack: extend_chain(step.below, &[U256::from_be_bytes(hash.0)]),
            stack_len: s.stack_len - 1,
            partial: Partial::None,
            ..s.clone()
        }
        .commitment(),
    ))
}

/// Whether a step carries any part beside its stack, memory and return
/// data: the frame's input, journal entries, a caller, a checkpoint, a
/// block hash (none of which a sub-step past the first touches).
fn carries_frame_parts(step: &InstructionStep) -> bool {
    step.input.is_some()
        || step.journal.is_some()
        || step.caller.is_some()
        || step.checkpoint.is_some()
        || step.block_hash.is_some()
}

/// The sub-step `c` of a long instruction a state is at: `0` between
/// instructions; `None` if its partial part is not one of this
/// instruction's.
pub(super) fn sub_step_of(s: &MachineState, top: &[U256]) -> Option<u64> {
    let m = sub_steps(s.opcode, top);
    match s.partial {
        Partial::None => Some(0),
        Partial::Range { done, sponge } => {
            let c = done / SUB_STEP;
            let ranged = super::touches::ranged_len(s.opcode, top).is_some();
            let sponged = absorbed(s.opcode, top).is_some() || sponge == Sponge::default();
            (ranged && m > 1 && done > 0 && done.is_multiple_of(SUB_STEP) && c < m && sponged).then_some(c)
        }
        Partial::Digest { done, state } => {
            let c = done / SUB_STEP;
            let hashed = super::touches::hashed_input(s.opcode, top).is_some();
            let of_callee = state.is_of(&super::touches::called(top));
            // identity's tree holds a word per 32 bytes absorbed
            let counted = match state {
                DigestState::Identity(tree) => tree.count() == done / 32,
                _ => true,
            };
            (hashed && of_callee && counted && done > 0 && done.is_multiple_of(SUB_STEP) && c < m)
                .then_some(c)
        }
        Partial::CopyIn { .. } => None,
    }
}

/// A long-input SHA-256, RIPEMD-160 or identity call's sub-step before
/// its last: the part of its input absorbed, nothing else (the call runs
/// on the last sub-step). The first (`first`) carries the call's parts
/// too: it ran the call to learn the precompile succeeds.
pub(super) fn digest_part(
    step: &InstructionStep,
    (start, end): (u64, u64),
    first: bool,
) -> Checked<InstructionVerdict> {
    let s = &step.state;
    if !first && (carries_frame_parts(step) || step.return_data.is_some()) {
        return Err("a precompile input's step carries its stack and memory words only".into());
    }
    let [_, _, _, args_offset, ..] = step.top.as_slice() else { return Err("a call's operands".into()) };
    let offset = u64::try_from(*args_offset).map_err(|_| "a call's input offset")?;
    let mut state = match (s.partial, first) {
        (Partial::Digest { state, .. }, false) => state,
        (Partial::None, true) => DigestState::start(&super::touches::called(&step.top))
            .ok_or("not a call to SHA-256, RIPEMD-160 or identity")?,
        _ => return Err("not a precompile input's sub-step".into()),
    };
    state
        .absorb(&bytes_of(&step.memory, offset + start, offset + end))
        .ok_or("a part not of whole blocks")?;
    let partial = Partial::Digest { done: end, state };
    Ok(InstructionVerdict::Next(MachineState { index: s.index + 1, partial, ..s.clone() }.commitment()))
}

/// What a long-input call's last sub-step makes of the input its earlier
/// sub-steps absorbed and its last part: the precompile's output (a
/// hash), or for identity the output's tree root (the output is the
/// input) and the output's first bytes its caller takes now (none when
/// those are copied in sub-steps after the call).
pub(super) fn digest_output(step: &InstructionStep, (start, end): (u64, u64)) -> Checked<DigestOutput> {
    let [ret_len, _, args_len, args_offset, ..] = step.top.as_slice() else {
        return Err("a call's operands".into());
    };
    let (offset, len) = (u64::try_from(*args_offset), u64::try_from(*args_len));
    let (Ok(offset), Ok(len)) = (offset, len) else { return Err("a call's input".into()) };
    let Partial::Digest { state, .. } = step.state.partial else {
        return Err("not a precompile input's sub-step".into());
    };
    let hash = state
        .finish(&bytes_of(&step.memory, offset + start, offset + end), len)
        .ok_or("the input's words")?;
    Ok(match state {
        DigestState::Identity(_) => {
            let n = (*ret_len).min(U256::from(len)).saturating_to::<u64>();
            let now = if n <= SUB_STEP { bytes_of(&step.memory, offset, offset + n) } else { Vec::new() };
            DigestOutput { bytes: now, tree: Some((Hash(hash.0), len)) }
        }
        _ => DigestOutput { bytes: hash.to_vec(), tree: None },
    })
}

/// The output a long-input call's last sub-step gives its caller.
pub(super) struct DigestOutput {
    /// The bytes the precompile returns now: a hash, or the first bytes
    /// of identity's output its caller takes (none if those are copied in
    /// sub-steps after the call).
    pub(super) bytes: Vec<u8>,
    /// Identity's output: its tree's root and length (the return data).
    pub(super) tree: Option<(Hash, u64)>,
}

/// The part a sub-step does: `None` for an instruction in one step.
pub(super) fn part_of(s: &MachineState, top: &[U256]) -> super::touches::Part {
    part(s.opcode, top, sub_step_of(s, top).unwrap_or(0))
}

/// The bytes a copy-in sub-step moves: `[done, done + SUB_STEP)` of the
/// output, cut at its length.
fn copy_part(len: u64, done: u64) -> (u64, u64) {
    (done, (done + SUB_STEP).min(len))
}

/// The memory words and the return data's words a copy-in sub-step
/// touches.
pub(super) fn copy_in_words(dest: u64, len: u64, done: u64, return_data: (u64, u64)) -> (Vec<u64>, Vec<u64>) {
    let (from, to) = copy_part(len, done);
    let memory = ((dest + from) / 32..=(dest + to - 1) / 32).collect();
    let (data_len, data_offset) = return_data;
    let read = StepData::words_of(data_len, data_offset, &U256::from(from), &U256::from(to - from));
    (memory, read)
}

/// A copy-in sub-step: the next part of the frame's return data (the
/// output of the call it resumed from) into its memory. Nothing but the
/// memory and the return data changes, until the last part ends the
/// copy.
pub(super) fn verify_copy_in(
    step: &InstructionStep,
    dest: u64,
    len: u64,
    done: u64,
) -> Checked<InstructionVerdict> {
    let s = &step.state;
    if len <= SUB_STEP || done >= len || !done.is_multiple_of(SUB_STEP) {
        return Err("not a copy's sub-step".into());
    }
    if dest.checked_add(len).is_none_or(|end| end > s.memory_len) {
        return Err("a copy past the frame's memory".into());
    }
    if !step.code.is_empty() || !step.top.is_empty() || step.below != s.stack || carries_frame_parts(step) {
        return Err("a copy's sub-step carries its memory and return data only".into());
    }
    let r = step.return_data.as_ref().ok_or("a copy's sub-step carries the return data")?;
    if r.hash() != s.return_data || r.len < len {
        return Err("the return data is not the state's".into());
    }
    let (memory, read) = copy_in_words(dest, len, done, (r.len, r.offset));
    if step.memory.indices() != memory || step.memory.root() != Some(s.memory) {
        return Err("not the memory words the part lands in".into());
    }
    let data = r.bytes(&read).ok_or("the return data words are not the state's")?;
    let (from, to) = copy_part(len, done);
    let written = with_bytes(&step.memory, dest + from, dest + to, |at| data[(at - dest) as usize]);
    let root = step.memory.root_with(&written).ok_or("the part's memory words")?;
    let partial = if to == len { Partial::None } else { Partial::CopyIn { dest, len, done: to } };
    Ok(InstructionVerdict::Next(
        MachineState { index: s.index + 1, memory: root, partial, ..s.clone() }.commitment(),
    ))
}

/// The step of a copy-in sub-step, from the frame's memory as it is at
/// the sub-step and its return data.
pub(super) fn copy_in_step(
    state: MachineState,
    memory: &[u8],
    return_data: &DataRef,
    (dest, len, done): (u64, u64, u64),
) -> InstructionStep {
    let (words, read) = copy_in_words(dest, len, done, (return_data.len, return_data.offset));
    InstructionStep {
        code: Vec::new(),
        top: Vec::new(),
        below: state.stack,
        memory: super::prove_words(memory, words),
        input: None,
        journal: None,
        return_data: Some(StepData::of(return_data, read)),
        caller: None,
        checkpoint: None,
        block_hash: None,
        state,
    }
}
