//! The one rule by which a shard's EVM departs from Ethereum's (since
//! `stf_version` 5; since version 6 SHA-256, RIPEMD-160 and identity are
//! out of it): a call to another precompile naming an input or output
//! range longer than [`MAX_RANGE`] halts, as if out of gas.
//!
//! A dispute ends on one step the beacon re-executes, carrying every
//! memory word it touches. A long KECCAK256, log or copy runs as several
//! level-2 steps of [`crate::machine::SUB_STEP`] bytes each, a long
//! output reaches its caller's memory the same way, and so does the input
//! of SHA-256, RIPEMD-160 and identity (absorbed a part a sub-step into
//! the hash's state, or identity's output tree); but any other precompile
//! runs on its whole input in one step, so that input (and the output
//! copied back) must fit what a step may carry
//! ([`bridge::MAX_STEP_BYTES`]). 128 KiB covers every gas-priced use of
//! those precompiles but a BLS12-381 pairing or MSM near the gas cap
//! (BN254's pairing at the 2^24 cap reads 94 KB; ecrecover, BN254's
//! addition and multiplication, blake2f and the point evaluation read a
//! fixed length, modexp at most 3 KiB since EIP-7823, the bridge at most
//! 64 KiB of message data), which contracts seldom make; a call to any
//! other account is unbounded.
//!
//! The STF ([`crate::exec`]), the tracer and the level-2 verifier all run
//! the same guarded instruction table ([`guard_ranges`]), so every node
//! and the referee agree where an instruction halts.

use alloy_primitives::{Address, B256, U256};
use revm::bytecode::opcode::{CALL, CALLCODE, DELEGATECALL, STATICCALL};
use revm::handler::instructions::EthInstructions;
use revm::interpreter::instructions::contract;
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::interpreter_types::RuntimeFlag;
use revm::interpreter::{Host, Instruction, InstructionContext, InstructionExecResult, InstructionResult};
use revm::precompile::{PrecompileSpecId, Precompiles};
use revm::primitives::hardfork::SpecId;

/// Longest input or output range a call to a precompile may name (see
/// the module's docs): 128 KiB.
pub const MAX_RANGE: u64 = 128 << 10;

/// Whether `address` runs a precompile on a shard under `spec`:
/// Ethereum's, or the bridge.
pub fn is_precompile(spec: SpecId, address: &Address) -> bool {
    *address == bridge::BRIDGE_ADDRESS
        || Precompiles::new(PrecompileSpecId::from_spec_id(spec)).contains(address)
}

/// Whether a call (`opcode`, reading the stack words `top`, bottom first)
/// names a range past [`MAX_RANGE`] for a precompile under `spec` other
/// than SHA-256, RIPEMD-160 and identity.
pub fn over_range(opcode: u8, top: &[U256], spec: SpecId) -> bool {
    let long = |w: &U256| *w > U256::from(MAX_RANGE);
    let named = |w: &U256| Address::from_word(B256::from(*w));
    match (opcode, top) {
        (CALL | CALLCODE, [ret_len, _, args_len, _, _, to, _])
        | (DELEGATECALL | STATICCALL, [ret_len, _, args_len, _, to, _]) => {
            // SHA-256's, RIPEMD-160's and identity's input runs in
            // sub-steps, and so does identity's output; a hash is 32 bytes
            (long(ret_len) || long(args_len))
                && is_precompile(spec, &named(to))
                && crate::machine::DigestState::start(&named(to)).is_none()
        }
        _ => false,
    }
}

/// `OP`'s instruction, halting first when it calls a precompile with a
/// range past [`MAX_RANGE`].
fn guarded<const OP: u8, H: Host + ?Sized>(
    ctx: InstructionContext<'_, H, EthInterpreter>,
) -> InstructionExecResult {
    let stack = ctx.interpreter.stack.data();
    let n = if matches!(OP, CALL | CALLCODE) { 7 } else { 6 };
    let spec = ctx.interpreter.runtime_flag.spec_id();
    if stack.len() >= n && over_range(OP, &stack[stack.len() - n..], spec) {
        return Err(InstructionResult::MemoryLimitOOG);
    }
    match OP {
        CALL => contract::call::<CALL, _, _>(ctx),
        CALLCODE => contract::call::<CALLCODE, _, _>(ctx),
        DELEGATECALL => contract::call::<DELEGATECALL, _, _>(ctx),
        _ => contract::call::<STATICCALL, _, _>(ctx),
    }
}

/// Puts the guard in front of the four calls (static gas unchanged).
pub fn guard_ranges<H: Host>(table: &mut EthInstructions<EthInterpreter, H>) {
    for op in [CALL, CALLCODE, DELEGATECALL, STATICCALL] {
        let gas = table.gas_table()[op as usize];
        let f: fn(InstructionContext<'_, H, EthInterpreter>) -> InstructionExecResult = match op {
            CALL => guarded::<CALL, H>,
            CALLCODE => guarded::<CALLCODE, H>,
            DELEGATECALL => guarded::<DELEGATECALL, H>,
            _ => guarded::<STATICCALL, H>,
        };
        table.insert_instruction(op, Instruction::new(f), gas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_to_a_precompile_past_the_limit_is_over() {
        let max = U256::from(MAX_RANGE);
        let over = max + U256::from(1);
        let spec = SpecId::OSAKA;
        let to = |a: Address| U256::from_be_bytes(a.into_word().0);
        let call =
            |ret: U256, args: U256, at: U256| [ret, U256::ZERO, args, U256::ZERO, U256::ZERO, at, U256::ZERO];
        let bn_add = to(Address::with_last_byte(6));
        assert!(over_range(CALL, &call(over, U256::ZERO, bn_add), spec));
        assert!(over_range(CALL, &call(U256::ZERO, over, bn_add), spec));
        for sub_stepped in 2..=4 {
            let at = to(Address::with_last_byte(sub_stepped));
            assert!(
                !over_range(CALL, &call(over, over, at), spec),
                "{sub_stepped}'s input runs in sub-steps"
            );
        }
        assert!(over_range(
            STATICCALL,
            &[U256::ZERO, U256::ZERO, over, U256::ZERO, to(bridge::BRIDGE_ADDRESS), U256::ZERO],
            spec
        ));
        assert!(!over_range(CALL, &call(max, max, bn_add), spec));
        let contract = to(Address::repeat_byte(0x42));
        assert!(!over_range(CALL, &call(over, over, contract), spec), "a contract's call is unbounded");
        assert!(!over_range(revm::bytecode::opcode::KECCAK256, &[over, U256::ZERO], spec));
    }
}
