//! What one instruction touches besides the stack words it reads: which
//! opcodes a step covers, the memory and data words it reads or writes,
//! the journal entries, the frame's input, a block hash. The prover (what
//! a step carries), the verifier (what it checks a step carries exactly)
//! and the tracer's coverage check all ask here, so they cannot disagree.

use super::step::StepData;
use super::*;
use crate::bridge::ShardPrecompiles;

/// Longest range a copy, KECCAK256 or a log reads or writes in one step
/// (its words ride in the step); a longer one is not a step yet.
pub const MAX_STEP_RANGE: u64 = 4096;

/// The words of `[offset, offset + len)`, `len` at most
/// [`MAX_STEP_RANGE`]: `None` if longer or past any memory gas can buy.
pub(super) fn range_words(offset: &U256, len: &U256) -> Option<Vec<u64>> {
    if len.is_zero() {
        return Some(vec![]);
    }
    // a range reaching past 2^32 bytes costs more gas than any state may
    // hold (`MachineState::gas_within`): the instruction halts before it
    // touches memory
    let (Some(offset), Some(len)) = (small(offset), small(len)) else { return Some(vec![]) };
    if len > MAX_STEP_RANGE {
        return None;
    }
    Some((offset / 32..=(offset + len - 1) / 32).collect())
}

/// The calldata tree's words `opcode` reads (data `len` long at `offset`
/// of its tree): CALLDATALOAD's word at the offset on top, CALLDATACOPY's
/// range.
pub(super) fn calldata_words(opcode: u8, top: &[U256], len: u64, offset: u64) -> Vec<u64> {
    match (opcode, top) {
        (0x35, [.., from]) => StepData::words_of(len, offset, from, &U256::from(32)),
        (0x37, [size, from, _]) => StepData::words_of(len, offset, from, size),
        _ => vec![],
    }
}

/// The return data tree's words RETURNDATACOPY reads.
pub(super) fn return_data_words(opcode: u8, top: &[U256], len: u64, offset: u64) -> Vec<u64> {
    match (opcode, top) {
        (0x3e, [size, from, _]) => StepData::words_of(len, offset, from, size),
        _ => vec![],
    }
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
pub(super) fn needs_input(opcode: u8) -> bool {
    reads_input(opcode)
        || is_call(opcode)
        || matches!(opcode, 0x47 | 0x54 | 0x55 | 0x5c | 0x5d | 0xa0..=0xa4 | 0xff)
}

/// CALL, CALLCODE, DELEGATECALL, STATICCALL.
pub(super) fn is_call(opcode: u8) -> bool {
    matches!(opcode, 0xf1 | 0xf2 | 0xf4 | 0xfa)
}

/// Whether a step carries journal entries: the journal instructions and
/// the calls (the caller's and the called account).
pub(super) fn carries_journal(opcode: u8) -> bool {
    touches_journal(opcode) || is_call(opcode)
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
    pub(super) ret_len: Option<u64>,
}

/// Whether a step covers `opcode`: stack-only; MLOAD, MSTORE, MSTORE8,
/// MSIZE; the frame's input (ADDRESS, CALLER, CALLVALUE, CALLDATALOAD,
/// CALLDATASIZE); the transaction's and block's (ORIGIN, GASPRICE,
/// COINBASE, TIMESTAMP, NUMBER, PREVRANDAO, GASLIMIT, CHAINID, BASEFEE,
/// BLOBHASH, BLOBBASEFEE, BLOCKHASH);
/// the journal's ([`touches_journal`]); KECCAK256, CODESIZE, CODECOPY,
/// RETURNDATASIZE, RETURNDATACOPY and MCOPY.
pub fn is_covered(opcode: u8) -> bool {
    // STOP, RETURN, REVERT, INVALID and undefined opcodes end a frame
    let ends =
        matches!(opcode, 0x00 | 0xf3 | 0xfd | 0xfe) || revm::bytecode::opcode::OpCode::new(opcode).is_none();
    ends || is_call(opcode)
        || is_stack_only(opcode)
        || reads_input(opcode)
        || touches_journal(opcode)
        || reads_return_data(opcode)
        || matches!(opcode, 0x20 | 0x38 | 0x39 | 0x5e | 0x51..=0x53 | 0x59 | 0x32 | 0x3a | 0x40..=0x46 | 0x48..=0x4a)
}

/// Whether the verifier covers `opcode` with the stack words `top` it
/// reads (a caller taking `ret_len` bytes of a frame end's output): a
/// covered opcode, memory ranges within [`MAX_STEP_RANGE`], no call to the
/// bridge. (A call through an EIP-7702 delegation and a create's frame are
/// the tracer's to see.)
pub(super) fn instruction_covered(
    opcode: u8,
    top: &[U256],
    precompiles: &ShardPrecompiles,
    ret_len: Option<u64>,
) -> bool {
    let touch = Touch { precompile: calls_precompile(opcode, top, precompiles), ret_len };
    is_covered(opcode)
        && !(touch.precompile && called(top) == bridge::BRIDGE_ADDRESS)
        && touched_words(opcode, top, &touch).is_some()
}

/// A stack word as an offset or length a step can carry memory for.
pub(super) fn small(word: &U256) -> Option<u64> {
    u64::try_from(*word).ok().filter(|o| *o < 1 << 32)
}

/// The memory words `opcode` touches, given the stack words it reads
/// (bottom first), ascending: `None` when a range is past any memory gas
/// can buy (the instruction halts) or longer than [`MAX_STEP_RANGE`].
pub(super) fn touched_words(opcode: u8, top: &[U256], touch: &Touch) -> Option<Vec<u64>> {
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
        // a precompile's input and the range its output is copied to
        (0xf1 | 0xf2 | 0xf4 | 0xfa, [ret_len, ret_offset, args_len, args_offset, ..]) if touch.precompile => {
            [range_words(args_offset, args_len)?, range_words(ret_offset, ret_len)?].concat()
        }
        // the output's part the caller takes
        (0xf3 | 0xfd, [len, offset]) => match touch.ret_len {
            Some(ret_len) => range_words(offset, &(*len).min(U256::from(ret_len)))?,
            None => vec![],
        },
        _ => vec![],
    };
    words.sort_unstable();
    words.dedup();
    Some(words)
}

/// The caller's memory words a frame's last instruction copies its output
/// to (`None` if more than a step carries).
pub(super) fn caller_words(opcode: u8, top: &[U256], record: &CallerRecord) -> Option<Vec<u64>> {
    match (opcode, top) {
        (0xf3 | 0xfd, [len, _]) => {
            range_words(&U256::from(record.ret_offset), &(*len).min(U256::from(record.ret_len)))
        }
        _ => Some(vec![]),
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
