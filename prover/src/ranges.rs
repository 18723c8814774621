//! The one rule by which a shard's EVM departs from Ethereum's (since
//! `stf_version` 4, with the witness budget gone): an instruction naming a
//! memory range longer than [`MAX_RANGE`] that a dispute's one-instruction
//! step would have to carry halts, as if out of gas.
//!
//! A dispute ends on one instruction the beacon re-executes from a step
//! that carries every memory word it touches. Gas bounds how long a range
//! may be (a 2 MiB copy costs about 9M gas, within one transaction), but
//! not within what one step may carry ([`bridge::MAX_STEP_BYTES`]), so a
//! range past [`MAX_RANGE`] could not be refuted. At 128 KiB every range a
//! transaction's own calldata can fill fits (a transaction is at most
//! [`crate::MAX_TX_BYTES`]), and Ethereum contracts seldom name longer
//! ones in one instruction: KECCAK256, LOG0–LOG4, CALLDATACOPY, CODECOPY,
//! EXTCODECOPY, RETURNDATACOPY and MCOPY longer than that; a call whose
//! arguments or output range is; RETURN or REVERT of more than that to a
//! caller (the transaction's own frame's output is never carried).
//!
//! The STF ([`crate::exec`]), the tracer and the level-2 verifier all run
//! the same guarded instruction table ([`guard_ranges`]), so every node
//! and the referee agree where an instruction halts.

use alloy_primitives::U256;
use revm::bytecode::opcode::{
    CALL, CALLCODE, CALLDATACOPY, CODECOPY, DELEGATECALL, EXTCODECOPY, KECCAK256, LOG0, LOG1, LOG2, LOG3,
    LOG4, MCOPY, RETURN, RETURNDATACOPY, REVERT, STATICCALL,
};
use revm::handler::instructions::EthInstructions;
use revm::interpreter::instructions::{contract, control, host, memory, system};
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::interpreter_types::InputsTr;
use revm::interpreter::{Host, Instruction, InstructionContext, InstructionExecResult, InstructionResult};

/// Longest memory range one instruction may name (see the module's
/// docs): 128 KiB.
pub const MAX_RANGE: u64 = 128 << 10;

/// The opcodes [`MAX_RANGE`] guards.
const GUARDED: [u8; 17] = [
    KECCAK256,
    CALLDATACOPY,
    CODECOPY,
    EXTCODECOPY,
    RETURNDATACOPY,
    MCOPY,
    LOG0,
    LOG1,
    LOG2,
    LOG3,
    LOG4,
    CALL,
    CALLCODE,
    DELEGATECALL,
    STATICCALL,
    RETURN,
    REVERT,
];

/// Whether `opcode`, reading the stack words `top` (bottom first) in a
/// frame at call depth `depth`, names a range past [`MAX_RANGE`].
pub fn over_range(opcode: u8, top: &[U256], depth: usize) -> bool {
    let long = |w: &U256| *w > U256::from(MAX_RANGE);
    match (opcode, top) {
        (KECCAK256, [len, _]) => long(len),
        (LOG0..=LOG4, [.., len, _]) => long(len),
        (CALLDATACOPY | CODECOPY | RETURNDATACOPY | MCOPY, [len, _, _]) => long(len),
        (EXTCODECOPY, [len, _, _, _]) => long(len),
        (CALL | CALLCODE, [ret_len, _, args_len, _, _, _, _])
        | (DELEGATECALL | STATICCALL, [ret_len, _, args_len, _, _, _]) => long(ret_len) || long(args_len),
        (RETURN | REVERT, [len, _]) => depth > 0 && long(len),
        _ => false,
    }
}

/// The stack words `opcode` reads.
fn inputs(opcode: u8) -> usize {
    revm::bytecode::opcode::OpCode::new(opcode).map_or(0, |o| o.inputs() as usize)
}

/// `OP`'s instruction, halting first when it names a range past
/// [`MAX_RANGE`].
fn guarded<const OP: u8, H: Host + ?Sized>(
    ctx: InstructionContext<'_, H, EthInterpreter>,
) -> InstructionExecResult {
    let stack = ctx.interpreter.stack.data();
    let n = inputs(OP);
    if stack.len() >= n && over_range(OP, &stack[stack.len() - n..], ctx.interpreter.input.depth()) {
        return Err(InstructionResult::MemoryLimitOOG);
    }
    match OP {
        KECCAK256 => system::keccak256(ctx),
        CALLDATACOPY => system::calldatacopy(ctx),
        CODECOPY => system::codecopy(ctx),
        EXTCODECOPY => host::extcodecopy(ctx),
        RETURNDATACOPY => system::returndatacopy(ctx),
        MCOPY => memory::mcopy(ctx),
        LOG0 => host::log::<0, _>(ctx),
        LOG1 => host::log::<1, _>(ctx),
        LOG2 => host::log::<2, _>(ctx),
        LOG3 => host::log::<3, _>(ctx),
        LOG4 => host::log::<4, _>(ctx),
        CALL => contract::call::<CALL, _, _>(ctx),
        CALLCODE => contract::call::<CALLCODE, _, _>(ctx),
        DELEGATECALL => contract::call::<DELEGATECALL, _, _>(ctx),
        STATICCALL => contract::call::<STATICCALL, _, _>(ctx),
        RETURN => control::ret(ctx),
        REVERT => control::revert(ctx),
        _ => control::unknown(ctx),
    }
}

/// Puts the guard in front of every instruction [`MAX_RANGE`] bounds
/// (static gas unchanged).
pub fn guard_ranges<H: Host>(table: &mut EthInstructions<EthInterpreter, H>) {
    for op in GUARDED {
        let gas = table.gas_table()[op as usize];
        let f: fn(InstructionContext<'_, H, EthInterpreter>) -> InstructionExecResult = match op {
            KECCAK256 => guarded::<KECCAK256, H>,
            CALLDATACOPY => guarded::<CALLDATACOPY, H>,
            CODECOPY => guarded::<CODECOPY, H>,
            EXTCODECOPY => guarded::<EXTCODECOPY, H>,
            RETURNDATACOPY => guarded::<RETURNDATACOPY, H>,
            MCOPY => guarded::<MCOPY, H>,
            LOG0 => guarded::<LOG0, H>,
            LOG1 => guarded::<LOG1, H>,
            LOG2 => guarded::<LOG2, H>,
            LOG3 => guarded::<LOG3, H>,
            LOG4 => guarded::<LOG4, H>,
            CALL => guarded::<CALL, H>,
            CALLCODE => guarded::<CALLCODE, H>,
            DELEGATECALL => guarded::<DELEGATECALL, H>,
            STATICCALL => guarded::<STATICCALL, H>,
            RETURN => guarded::<RETURN, H>,
            _ => guarded::<REVERT, H>,
        };
        table.insert_instruction(op, Instruction::new(f), gas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_over_only_past_the_limit_and_a_top_frames_output_never() {
        let max = U256::from(MAX_RANGE);
        let over = max + U256::from(1);
        assert!(!over_range(KECCAK256, &[max, U256::ZERO], 0));
        assert!(over_range(KECCAK256, &[over, U256::ZERO], 0));
        assert!(over_range(LOG2, &[U256::ZERO, U256::ZERO, over, U256::ZERO], 1));
        assert!(over_range(EXTCODECOPY, &[over, U256::ZERO, U256::ZERO, U256::ZERO], 0));
        let call =
            |ret: U256, args: U256| [ret, U256::ZERO, args, U256::ZERO, U256::ZERO, U256::ZERO, U256::ZERO];
        assert!(over_range(CALL, &call(over, U256::ZERO), 0));
        assert!(over_range(CALL, &call(U256::ZERO, over), 0));
        assert!(!over_range(CALL, &call(max, max), 0));
        assert!(!over_range(RETURN, &[over, U256::ZERO], 0), "the transaction's output is not carried");
        assert!(over_range(REVERT, &[over, U256::ZERO], 1));
        assert!(!over_range(revm::bytecode::opcode::MSTORE, &[over, over], 3));
    }
}
