//! The errors the shard's JSON-RPC answers with, in the shapes Ethereum
//! clients parse: codes, messages with the numbers and the remedy, revert
//! data.

use alloy_primitives::{Bytes, U256};
use jsonrpsee::types::ErrorObjectOwned;

/// JSON-RPC error codes used by Ethereum nodes.
pub(super) mod code {
    pub(in crate::rpc) const INVALID_PARAMS: i32 = -32602;
    pub(in crate::rpc) const SERVER: i32 = -32000;
    pub(in crate::rpc) const INTERNAL: i32 = -32603;
    pub(in crate::rpc) const EXECUTION_REVERTED: i32 = 3;
}

pub(super) type RpcResult<T> = std::result::Result<T, ErrorObjectOwned>;

pub(super) fn rpc_err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

pub(super) fn server_err(msg: impl Into<String>) -> ErrorObjectOwned {
    rpc_err(code::SERVER, msg)
}

pub(super) fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    rpc_err(code::INTERNAL, e.to_string())
}

pub(super) fn params_err(e: impl std::fmt::Display) -> ErrorObjectOwned {
    rpc_err(code::INVALID_PARAMS, format!("invalid params: {e}"))
}

/// jsonrpsee puts serde's explanation in the error's data; surface it.
pub(super) fn parse_err(e: ErrorObjectOwned) -> ErrorObjectOwned {
    match e.data() {
        Some(d) => params_err(d.get().trim_matches('"')),
        None => params_err(e.message()),
    }
}

/// The message of an `Error(string)` revert, if that is what `output` is.
pub fn revert_reason(output: &[u8]) -> Option<String> {
    if output.len() < 68 || output[..4] != [0x08, 0xc3, 0x79, 0xa0] {
        return None;
    }
    let len = U256::from_be_slice(&output[36..68]).try_into().ok()?;
    let bytes: &[u8] = output.get(68..68usize.checked_add(len)?)?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// `Error(string)`, as Solidity's `revert("...")` encodes it: clients that
/// show only revert data (ethers) then show the reason.
pub(super) fn error_string(text: &str) -> Bytes {
    use alloy_sol_types::SolError;
    alloy_sol_types::Revert::from(text).abi_encode().into()
}

/// A simulated transaction past the witness budget: code 3 like a revert,
/// the message naming the budget and what it touched, and the same text as
/// `Error(string)` revert data (clients that read only the data would
/// otherwise show "missing revert data").
pub(super) fn over_budget(footprint: &prover::Footprint) -> ErrorObjectOwned {
    let reason = format!(
        "witness budget exceeded: {footprint}. As a transaction it would fail and pay its whole gas limit. \
         Split the work over several transactions (each may touch about {} accounts or slots)",
        prover::WITNESS_BUDGET / prover::ENTRY_ALLOWANCE
    );
    // "execution reverted" leads, as for code 3 everywhere: ethers looks
    // for revert data only in errors whose message says "revert"
    let msg = format!("execution reverted: {reason}");
    ErrorObjectOwned::owned(code::EXECUTION_REVERTED, msg, Some(error_string(&reason)))
}

/// A call the EVM halted (out of gas, invalid opcode, stack error, …).
pub(super) fn halted(reason: revm::context::result::HaltReason, gas: u64) -> ErrorObjectOwned {
    use revm::context::result::{HaltReason, OutOfGasError};
    let msg = match reason {
        HaltReason::OutOfGas(e) if !matches!(e, OutOfGasError::InvalidOperand) => {
            format!(
                "gas required exceeds allowance ({gas}): raise the gas limit, or leave it out to have it estimated"
            )
        }
        other => {
            format!("execution halted: {other:?} (the contract hit an exceptional halt; no revert data)")
        }
    };
    server_err(msg)
}

/// An invalid simulated transaction, in the words of Ethereum nodes.
pub(super) fn invalid_call(reason: &str) -> String {
    if reason.contains("lack of funds") {
        format!("insufficient funds for gas * price + value: {reason}")
    } else {
        reason.to_string()
    }
}

pub(super) fn reverted(output: &Bytes) -> ErrorObjectOwned {
    let msg = match revert_reason(output) {
        Some(r) => format!("execution reverted: {r}"),
        None => "execution reverted".to_string(),
    };
    ErrorObjectOwned::owned(code::EXECUTION_REVERTED, msg, Some(output.clone()))
}
