use alloy_primitives::{Address, B256, U256};
use thiserror::Error;

/// Errors of the state layer and the state-transition function.
#[derive(Debug, Error)]
pub enum Error {
    /// The underlying store failed (I/O, corruption).
    #[error("state store: {0}")]
    Store(String),
    /// A version that was never written or has been pruned.
    #[error("state version {version} is not readable (latest {latest:?}, oldest {oldest})")]
    MissingVersion {
        /// The version asked for.
        version: u64,
        /// The newest committed version.
        latest: Option<u64>,
        /// The oldest version still readable.
        oldest: u64,
    },
    /// A stored value that does not decode.
    #[error("corrupt state value for {0}")]
    Corrupt(String),
    /// A proof that does not verify against the trusted root.
    #[error("invalid proof for {key}: {reason}")]
    InvalidProof {
        /// The key the proof is for.
        key: String,
        /// Why it failed.
        reason: String,
    },
    /// Stateless execution read an account outside its witness.
    #[error("witness is missing account {0}")]
    MissingAccount(Address),
    /// Stateless execution read a storage slot outside its witness.
    #[error("witness is missing storage slot {slot} of {address}")]
    MissingStorage {
        /// The contract.
        address: Address,
        /// The slot.
        slot: U256,
    },
    /// Stateless execution read code outside its witness.
    #[error("witness is missing code {0}")]
    MissingCode(B256),
    /// Stateless execution read a block hash outside its witness.
    #[error("witness is missing the hash of block {0}")]
    MissingBlockHash(u64),
    /// Stateless execution wrote a key whose path the witness does not open.
    #[error("witness does not open the path of written key {0}")]
    MissingPath(String),
    /// The witness is inconsistent with the commitment it claims to start from.
    #[error("witness does not match trace commitment: {0}")]
    WitnessMismatch(String),
    /// A transaction that may not be included in a block.
    #[error("invalid transaction {hash}: {reason}")]
    InvalidTransaction {
        /// The transaction hash.
        hash: B256,
        /// Why.
        reason: String,
    },
    /// The item read more than its witness may prove
    /// ([`crate::exec::WITNESS_BUDGET`]): it fails like one out of gas.
    #[error("the item's witness would exceed its budget ({used} bytes so far)")]
    WitnessBudget {
        /// Bytes charged when the budget ran out.
        used: usize,
    },
    /// A simulated transaction (an estimate) went over its witness budget:
    /// as a transaction it would fail and pay its whole gas limit.
    #[error("witness budget exceeded: {0}")]
    OverBudget(Box<crate::overlay::Footprint>),
    /// revm failed for a reason other than the transaction (a database error).
    #[error("execution failed: {0}")]
    Execution(String),
}

/// Result of the state layer and state-transition function.
pub type Result<T, E = Error> = std::result::Result<T, E>;
