//! What one instruction touches besides the stack words it reads: which
//! opcodes a step covers, the memory and data words it reads or writes,
//! the journal entries, the frame's input, a block hash. The prover (what
//! a step carries), the verifier (what it checks a step carries exactly)
//! and the tracer's coverage check all ask here, so they cannot disagree.

use super::step::StepData;
use super::*;
use crate::bridge::ShardPrecompiles;

/// Longest range a step carries whole: a precompile call's input or
/// output (a longer one halts the call, [`crate::ranges`], before it
/// touches memory). A KECCAK256, a log or a copy carries at most
/// [`SUB_STEP`] bytes of its range a step, however long the range.
pub const MAX_STEP_RANGE: u64 = crate::ranges::MAX_RANGE;

/// Longest init code CREATE and CREATE2 take (EIP-3860): a create's step
/// carries all of it.
pub const MAX_INITCODE: u64 = 2 * MAX_CODE;

/// Longest code a create deposits (EIP-170): the output a create's frame
/// returns rides in its last step up to this length (a longer one fails
/// without being read).
pub const MAX_CODE: u64 = 24_576;

/// The words of `[offset, offset + len)`: none if longer than
/// [`MAX_STEP_RANGE`] or past any memory gas can buy (the instruction
/// halts first).
pub(super) fn range_words(offset: &U256, len: &U256) -> Vec<u64> {
    whole_or_none(offset, len, MAX_STEP_RANGE)
}

/// The words of a range read whole up to `limit` (a step's range, a
/// create's init code, the code its frame returns): none past it, where
/// the instruction halts (a precompile's input, init code) or the create
/// fails (code) without reading them, and none for a range reaching past
/// 2^32 bytes, which costs more gas than any state may hold
/// (`MachineState::gas_within`).
fn whole_or_none(offset: &U256, len: &U256, limit: u64) -> Vec<u64> {
    match (small(offset), small(len)) {
        (Some(offset), Some(len)) if len > 0 && len <= limit => {
            (offset / 32..=(offset + len - 1) / 32).collect()
        }
        _ => vec![],
    }
}

/// The calldata tree's words `opcode` reads (data `len` long at `offset`
/// of its tree): CALLDATALOAD's word at the offset on top, CALLDATACOPY's
/// range.
pub(super) fn calldata_words(opcode: u8, top: &[U256], len: u64, offset: u64, part: Part) -> Vec<u64> {
    match (opcode, top) {
        (0x35, [.., from]) => StepData::words_of(len, offset, from, &U256::from(32)),
        (0x37, [size, from, _]) => {
            let (from, size) = in_part(from, size, part);
            StepData::words_of(len, offset, &from, &size)
        }
        _ => vec![],
    }
}

/// The return data tree's words RETURNDATACOPY reads.
pub(super) fn return_data_words(opcode: u8, top: &[U256], len: u64, offset: u64, part: Part) -> Vec<u64> {
    match (opcode, top) {
        (0x3e, [size, from, _]) => {
            let (from, size) = in_part(from, size, part);
            StepData::words_of(len, offset, &from, &size)
        }
        _ => vec![],
    }
}

/// The part of a long instruction's range a sub-step does: bytes
/// `[start, end)` of it (`None`: the whole range, in one step).
pub(super) type Part = Option<(u64, u64)>;

/// A range `[offset, offset + len)` cut to `part` of it.
fn in_part(offset: &U256, len: &U256, part: Part) -> (U256, U256) {
    match part {
        Some((start, end)) => (offset.saturating_add(U256::from(start)), U256::from(end - start)),
        None => (*offset, *len),
    }
}

/// The length of the range KECCAK256, a log or a copy absorbs or moves
/// (given the stack words it reads): `None` for another instruction, or a
/// length past any memory gas can buy (the instruction halts).
pub(super) fn ranged_len(opcode: u8, top: &[U256]) -> Option<u64> {
    let len = match (opcode, top) {
        (0x20, [len, _]) | (0xa0..=0xa4, [.., len, _]) => len,
        (0x37 | 0x39 | 0x3e | 0x5e, [len, _, _]) | (0x3c, [len, _, _, _]) => len,
        _ => return None,
    };
    small(len)
}

/// The identity precompile's address.
pub(super) const IDENTITY: Address = Address::with_last_byte(4);

/// Whether `address` is SHA-256's, RIPEMD-160's or identity's precompile:
/// those whose long input runs in sub-steps ([`Partial::Digest`]).
pub(super) fn is_digest(address: &Address) -> bool {
    DigestState::start(address).is_some()
}

/// For a call to SHA-256, RIPEMD-160 or identity (given the stack words
/// it reads) whose input is longer than a part: the input's length. Its
/// input is absorbed a part a sub-step before the call itself runs.
pub(super) fn hashed_input(opcode: u8, top: &[U256]) -> Option<u64> {
    match (opcode, top) {
        (0xf1 | 0xf2, [_, _, args_len, args_offset, _, to, _])
        | (0xf4 | 0xfa, [_, _, args_len, args_offset, to, _])
            if is_digest(&Address::from_word(B256::from(*to))) && small(args_offset).is_some() =>
        {
            small(args_len).filter(|len| *len > SUB_STEP)
        }
        _ => None,
    }
}

/// How many steps an instruction takes when its first does not halt it:
/// one per [`SUB_STEP`] bytes of a KECCAK256's, a log's or a copy's range
/// or of a SHA-256, RIPEMD-160 or identity call's input, one for any
/// other.
pub fn sub_steps(opcode: u8, top: &[U256]) -> u64 {
    ranged_len(opcode, top).or(hashed_input(opcode, top)).map_or(1, |len| len.div_ceil(SUB_STEP).max(1))
}

/// The part sub-step `c` of a long instruction does (`None` when the
/// instruction takes one step, or has no such sub-step): in order, but
/// back to front for MCOPY to a destination above its source, as memmove
/// does, so no part reads bytes an earlier one wrote.
pub(super) fn part(opcode: u8, top: &[U256], c: u64) -> Part {
    let len = ranged_len(opcode, top).or(hashed_input(opcode, top))?;
    if len <= SUB_STEP || c >= len.div_ceil(SUB_STEP) {
        return None;
    }
    let backward = matches!((opcode, top), (0x5e, [_, src, dest]) if dest > src);
    Some(if backward {
        let end = len - c * SUB_STEP;
        (end.saturating_sub(SUB_STEP), end)
    } else {
        (c * SUB_STEP, ((c + 1) * SUB_STEP).min(len))
    })
}

/// How much of a callee's output its caller's memory takes: `None` if
/// that is longer than one step moves, and so is copied after the return
/// in sub-steps of the caller ([`Partial::CopyIn`]).
pub(super) fn copied_now(len: &U256, ret_len: u64) -> Option<U256> {
    let n = (*len).min(U256::from(ret_len));
    (n <= U256::from(SUB_STEP)).then_some(n)
}

/// Whether `opcode` reads the last return data (RETURNDATASIZE,
/// RETURNDATACOPY).
pub(super) fn reads_return_data(opcode: u8) -> bool {
    matches!(opcode, 0x3d | 0x3e)
}

/// Whether `opcode` touches only the stack, pc and gas.
pub fn is_stack_only(opcode: u8) -> bool {
    matches!(opcode, 0x01..=0x0b | 0x10..=0x1e | 0x50 | 0x56..=0x58 | 0x5a | 0x5b | 0x5f..=0x9f)
}

/// Whether `opcode` reads the frame's input (ADDRESS, CALLER, CALLVALUE,
/// CALLDATALOAD, CALLDATASIZE).
pub(super) fn reads_input(opcode: u8) -> bool {
    matches!(opcode, 0x30 | 0x33..=0x37)
}

/// Whether `opcode` reads or writes the journal: storage (SLOAD, SSTORE),
/// transient storage (TLOAD, TSTORE), an account (BALANCE, EXTCODESIZE,
/// EXTCODEHASH, SELFBALANCE), the logs (LOG0–LOG4), or the frame's account
/// and its beneficiary (SELFDESTRUCT).
pub fn touches_journal(opcode: u8) -> bool {
    matches!(opcode, 0x31 | 0x3b | 0x3c | 0x3f | 0x47 | 0x54 | 0x55 | 0x5c | 0x5d | 0xa0..=0xa4 | 0xff)
}

/// Whether a step carries the frame's input: to read it, or for the
/// frame's account (storage, transient storage, its balance, its logs).
pub(super) fn needs_input(opcode: u8, create_end: bool) -> bool {
    reads_input(opcode)
        || is_call(opcode)
        || is_create(opcode)
        || matches!(opcode, 0x47 | 0x54 | 0x55 | 0x5c | 0x5d | 0xa0..=0xa4 | 0xff)
        || (create_end && deposits(opcode))
}

/// CREATE, CREATE2.
pub(super) fn is_create(opcode: u8) -> bool {
    matches!(opcode, 0xf0 | 0xf5)
}

/// Whether `opcode` ending a create's frame deposits code (STOP, RETURN:
/// the frame's account gets its code; a revert or halt restores the
/// create's checkpoint and touches nothing).
pub(super) fn deposits(opcode: u8) -> bool {
    matches!(opcode, 0x00 | 0xf3)
}

/// CALL, CALLCODE, DELEGATECALL, STATICCALL.
pub(super) fn is_call(opcode: u8) -> bool {
    matches!(opcode, 0xf1 | 0xf2 | 0xf4 | 0xfa)
}

/// Whether a step carries journal entries: the journal instructions and
/// the calls (the caller's and the called account).
pub(super) fn carries_journal(opcode: u8, create_end: bool) -> bool {
    touches_journal(opcode) || is_call(opcode) || is_create(opcode) || (create_end && deposits(opcode))
}

/// The account a call names (below its gas on the stack).
pub(super) fn called(top: &[U256]) -> Address {
    top.len().checked_sub(2).map_or(Address::ZERO, |i| Address::from_word(B256::from(top[i])))
}

/// Whether a call instruction calls a precompile.
pub(super) fn calls_precompile(opcode: u8, top: &[U256], precompiles: &ShardPrecompiles) -> bool {
    is_call(opcode) && precompiles.addresses().contains(&called(top))
}

/// What the memory words an instruction touches depend on beside its
/// stack words: whether a call calls a precompile (its input and output
/// are in the step), and for a frame's last instruction the length its
/// caller takes of the output.
pub(super) struct Touch {
    pub(super) precompile: bool,
    /// The part of a long instruction's range the step does.
    pub(super) part: Part,
    pub(super) ret_len: Option<u64>,
    /// Whether the instruction's frame is a create's (its end deposits
    /// the output as code).
    pub(super) create_end: bool,
}

/// Whether a step covers `opcode`: stack-only; MLOAD, MSTORE, MSTORE8,
/// MSIZE; the frame's input (ADDRESS, CALLER, CALLVALUE, CALLDATALOAD,
/// CALLDATASIZE); the transaction's and block's (ORIGIN, GASPRICE,
/// COINBASE, TIMESTAMP, NUMBER, PREVRANDAO, GASLIMIT, CHAINID, BASEFEE,
/// BLOBHASH, BLOBBASEFEE, BLOCKHASH);
/// the journal's ([`touches_journal`]); KECCAK256, CODESIZE, CODECOPY,
/// RETURNDATASIZE, RETURNDATACOPY and MCOPY; the calls; CREATE and
/// CREATE2.
pub fn is_covered(opcode: u8) -> bool {
    // STOP, RETURN, REVERT, INVALID and undefined opcodes end a frame, and
    // so do the opcodes revm knows from forks after Osaka, the latest a
    // shard runs (SLOTNUM, DUPN, SWAPN, EXCHANGE: not activated, they halt
    // before touching anything; a fork activating them must cover them)
    let later_fork = matches!(opcode, 0x4b | 0xe6..=0xe8);
    let ends = matches!(opcode, 0x00 | 0xf3 | 0xfd | 0xfe)
        || later_fork
        || revm::bytecode::opcode::OpCode::new(opcode).is_none();
    ends || is_call(opcode)
        || is_create(opcode)
        || is_stack_only(opcode)
        || reads_input(opcode)
        || touches_journal(opcode)
        || reads_return_data(opcode)
        || matches!(opcode, 0x20 | 0x38 | 0x39 | 0x5e | 0x51..=0x53 | 0x59 | 0x32 | 0x3a | 0x40..=0x46 | 0x48..=0x4a)
}

/// A stack word as an offset or length a step can carry memory for.
pub(super) fn small(word: &U256) -> Option<u64> {
    u64::try_from(*word).ok().filter(|o| *o < 1 << 32)
}

/// The memory words `opcode` touches, given the stack words it reads
/// (bottom first), ascending: none of a range past any memory gas can buy
/// (the instruction halts before it touches memory).
pub(super) fn touched_words(opcode: u8, top: &[U256], touch: &Touch) -> Vec<u64> {
    let one = U256::from(1);
    let word = U256::from(32);
    let cut = |offset: &U256, len: &U256| {
        let (offset, len) = in_part(offset, len, touch.part);
        range_words(&offset, &len)
    };
    let long = |w: &U256| *w > U256::from(crate::ranges::MAX_RANGE);
    let mut words = match (opcode, top) {
        (0x51 | 0x52, [.., offset]) => range_words(offset, &word),
        (0x53, [.., offset]) => range_words(offset, &one),
        // KECCAK256, LOGn: offset on top, then the length
        (0x20, [len, offset]) => cut(offset, len),
        (0xa0..=0xa4, [.., len, offset]) => cut(offset, len),
        // copies into memory: destination on top, then the source's offset, then the length
        (0x37 | 0x39 | 0x3e, [len, _, dest]) => cut(dest, len),
        (0x3c, [len, _, dest, _]) => cut(dest, len),
        (0x5e, [len, src, dest]) => [cut(dest, len), cut(src, len)].concat(),
        // SHA-256's, RIPEMD-160's and identity's input, a part a sub-step
        // when long; once the call runs (on the last), the output's range
        // the caller takes now: a hash's 32 bytes, or identity's input
        // (its output) as far as the caller takes it, if one step moves
        // that much (else it is copied after, in sub-steps)
        (0xf1 | 0xf2 | 0xf4 | 0xfa, [ret_len, ret_offset, args_len, args_offset, ..])
            if touch.precompile && is_digest(&called(top)) =>
        {
            let last = touch.part.is_none_or(|(_, end)| hashed_input(opcode, top) == Some(end));
            let mut words = cut(args_offset, args_len);
            if last && called(top) == IDENTITY {
                if let Some(n) = (*ret_len).min(*args_len).try_into().ok().filter(|n: &u64| *n <= SUB_STEP) {
                    words.extend(range_words(args_offset, &U256::from(n)));
                    words.extend(range_words(ret_offset, &U256::from(n)));
                }
            } else if last {
                words.extend(range_words(ret_offset, &(*ret_len).min(U256::from(32))));
            }
            words
        }
        // any other precompile's input and the range its output is copied
        // to (a call naming a longer one halts before touching memory)
        (0xf1 | 0xf2 | 0xf4 | 0xfa, [ret_len, ret_offset, args_len, args_offset, ..]) if touch.precompile => {
            if long(ret_len) || long(args_len) {
                vec![]
            } else {
                [range_words(args_offset, args_len), range_words(ret_offset, ret_len)].concat()
            }
        }
        // a create's init code
        (0xf0, [len, offset, _]) | (0xf5, [_, len, offset, _]) => whole_or_none(offset, len, MAX_INITCODE),
        // the code a create's frame returns
        (0xf3, [len, offset]) if touch.create_end => whole_or_none(offset, len, MAX_CODE),
        // the output's part the caller takes now (a longer one is copied
        // after the return, in the caller's sub-steps)
        (0xf3 | 0xfd, [len, offset]) => match touch.ret_len.map(|r| copied_now(len, r)) {
            Some(Some(n)) => range_words(offset, &n),
            _ => vec![],
        },
        _ => vec![],
    };
    words.sort_unstable();
    words.dedup();
    words
}

/// The caller's memory words a frame's last instruction copies its output
/// to now (a longer output is copied after the return, in sub-steps).
pub(super) fn caller_words(opcode: u8, top: &[U256], record: &CallerRecord) -> Vec<u64> {
    match (opcode, top) {
        (0xf3 | 0xfd, [len, _]) => match copied_now(len, record.ret_len) {
            Some(n) if !record.create => range_words(&U256::from(record.ret_offset), &n),
            _ => vec![],
        },
        _ => vec![],
    }
}

/// What decides a step's journal entries besides the stack: the address a
/// create makes, the bridge's slot a send bumps, the delegate of an
/// EIP-7702 account a call names (zero when none).
#[derive(Clone, Copy, Default)]
pub(super) struct Hints {
    pub(super) created: Address,
    pub(super) channel: U256,
    pub(super) delegate: Address,
}

/// The account an EIP-7702 designation (`0xef0100 ‖ address`) delegates
/// to.
pub(super) fn delegate_of(code: &[u8]) -> Option<Address> {
    match code {
        [0xef, 0x01, 0x00, rest @ ..] if rest.len() == 20 => Some(Address::from_slice(rest)),
        _ => None,
    }
}

/// The journal entries a step of `opcode` carries, given the stack words
/// it reads, the frame's account, whether the frame is a create's, for
/// CREATE and CREATE2 the address created (which the creator's nonce or
/// the init code decides: the verifier checks it once revm computed it),
/// and for a call to the bridge the channel slot its calldata names.
pub(super) fn step_keys(
    opcode: u8,
    top: &[U256],
    target: Address,
    create_end: bool,
    hints: Hints,
) -> Vec<JournalKey> {
    if is_create(opcode) {
        vec![JournalKey::Account(target), JournalKey::Account(hints.created)]
    } else if is_call(opcode) && called(top) == bridge::BRIDGE_ADDRESS {
        // a send reads and bumps its channel's counter, a slot of the
        // bridge's the calldata names (revm then checks the precompile
        // touched nothing else)
        let mut keys = journal_keys(opcode, top, target);
        keys.push(JournalKey::Slot(bridge::BRIDGE_ADDRESS, hints.channel));
        keys
    } else if is_call(opcode) && hints.delegate != Address::ZERO {
        // a call through an EIP-7702 delegation loads the delegate too
        let mut keys = journal_keys(opcode, top, target);
        let delegate = JournalKey::Account(hints.delegate);
        if !keys.contains(&delegate) {
            keys.push(delegate);
        }
        keys
    } else if create_end && deposits(opcode) {
        vec![JournalKey::Account(target)]
    } else {
        journal_keys(opcode, top, target)
    }
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
        // SELFDESTRUCT: the frame's account (its balance leaves) and the
        // beneficiary (the balance arrives)
        0xff if address == target => vec![JournalKey::Account(target)],
        0xff => vec![JournalKey::Account(target), JournalKey::Account(address)],
        // a call: the frame's account (the value's sender) and the called
        0xf1 | 0xf2 | 0xf4 | 0xfa => {
            let named = called(top);
            if named == target {
                vec![JournalKey::Account(target)]
            } else {
                vec![JournalKey::Account(target), JournalKey::Account(named)]
            }
        }
        _ => vec![],
    }
}

/// The stack words `opcode` reads.
pub(super) fn reads(opcode: u8) -> usize {
    revm::bytecode::opcode::OpCode::new(opcode).map_or(0, |o| o.inputs() as usize)
}

/// The block BLOCKHASH (`opcode`, the number on top) reads from the
/// database in block `current`: one of the 256 below it (revm answers
/// zero for any other without reading).
pub(super) fn blockhash_read(opcode: u8, top: &[U256], current: u64) -> Option<u64> {
    let n = u64::try_from(*top.last()?).ok().filter(|_| opcode == 0x40)?;
    (n < current && current - n <= 256).then_some(n)
}

/// The address CREATE (from the creator's nonce) or CREATE2 (from the
/// salt and the init code in `memory`) makes, as revm derives it.
pub(super) fn created_address(
    opcode: u8,
    top: &[U256],
    creator: Address,
    nonce: u64,
    memory: &[u8],
) -> Address {
    match (opcode, top) {
        (0xf5, [salt, len, offset, _]) => {
            let (Some(offset), Some(len)) = (small(offset), small(len).filter(|l| *l <= MAX_INITCODE)) else {
                return Address::ZERO;
            };
            let mut code = vec![0u8; len as usize];
            let from = (offset as usize).min(memory.len());
            let to = (offset as usize + len as usize).min(memory.len());
            code[..to - from].copy_from_slice(&memory[from..to]);
            creator.create2_from_code(B256::from(*salt), code)
        }
        _ => creator.create(nonce),
    }
}

/// The bridge's channel slot a call's calldata (`input`) sends on: that of
/// `send`'s or `sendWithGas`'s destination shard (zero for any other
/// call, which touches no slot).
pub(super) fn channel_of(input: &[u8]) -> U256 {
    use crate::bridge::IBridge;
    use alloy_sol_types::SolCall;
    let dst = if let Ok(c) = IBridge::sendCall::abi_decode(input) {
        c.dstShard
    } else if let Ok(c) = IBridge::sendWithGasCall::abi_decode(input) {
        c.dstShard
    } else {
        return U256::ZERO;
    };
    crate::bridge::channel_slot(bridge::ShardId(dst))
}

/// The calldata CALL or CALLCODE passes (its arguments' range of
/// `memory`, zero past its end): `None` for another instruction or past
/// what a step carries.
pub(super) fn call_args(opcode: u8, top: &[U256], memory: &[u8]) -> Option<Vec<u8>> {
    let [_, _, args_len, args_offset, _, _, _] = top else { return None };
    if !matches!(opcode, 0xf1 | 0xf2) {
        return None;
    }
    let (offset, len) =
        (small(args_offset)? as usize, small(args_len).filter(|l| *l <= MAX_STEP_RANGE)? as usize);
    let mut out = vec![0u8; len];
    let from = offset.min(memory.len());
    let to = (offset + len).min(memory.len());
    out[..to - from].copy_from_slice(&memory[from..to]);
    Some(out)
}

#[cfg(test)]
mod coverage_tests {
    use super::*;

    /// Every opcode revm knows (any fork's) is a step: it runs, or it
    /// ends its frame where the shard's fork has not activated it.
    #[test]
    fn every_opcode_revm_defines_is_covered() {
        let uncovered: Vec<String> = (0..=255u8)
            .filter(|op| revm::bytecode::opcode::OpCode::new(*op).is_some() && !is_covered(*op))
            .map(|op| format!("{op:#04x} {}", revm::bytecode::opcode::OpCode::name_by_op(op)))
            .collect();
        assert!(uncovered.is_empty(), "{uncovered:?}");
    }
}
