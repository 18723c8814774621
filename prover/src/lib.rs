//! `prover` — the one state-transition function and what disputes need of it.
//!
//! - [`AuthState`]: accounts, storage and code in a blake3 Jellyfish Merkle
//!   tree, versioned by block height over a [`StateStore`] (in memory here,
//!   rocksdb in `shard`), with proofs of inclusion and absence.
//! - [`execute_items`]: executes signed Ethereum transactions with revm over
//!   any read-only database and returns receipts and per-item state diffs;
//!   proposers ([`Mode::Build`]), importers and the step verifier
//!   ([`Mode::Verify`]) all run it.
//! - [`produce_witness`] / [`execute_stateless`]: cut the witness of one item
//!   and re-run that item from the witness alone, yielding its trace
//!   commitment `c_i`.
//!
//! Where to start: [`execute_items`], then [`Execution::trace`].

mod bridge;
mod error;
mod exec;
pub mod game;
pub mod machine;
mod overlay;
pub mod ranges;
mod receipt;
mod state;
mod tx;
mod witness;

pub mod fuzzing;
pub mod store_suite;

pub use bridge::{
    IBridge, MESSAGE_SENDER_GAS, SEND_GAS, SEND_GAS_PER_BYTE, ShardPrecompiles, channel_slot, message_log,
    messages_in, system_accounts,
};
pub use error::{Error, Result};
pub use exec::{
    BlockParams, Execution, Item, ItemOutcome, MESSAGE_RECEIPT_TYPE, Mode, Rejected, SPEC, execute_items,
    execute_items_after, inbound_slot, simulate, witness_metered,
};
pub use overlay::{BalanceMoves, ENTRY_ALLOWANCE, Footprint, Overlay, WITNESS_BUDGET};
pub use receipt::Receipt;
pub use revm::context::result::ExecutionResult;
pub use state::{
    AccountState, AuthState, Blake3Hasher, ChangeSet, MemStore, PLACEHOLDER, PartialTree, PreparedVersion,
    SmtLeaf, SmtProof, SmtSibling, StateKey, StateProof, StateReader, StateStore, StateView, ViewReader,
    code_matches, decode_slot, encode_slot, value_hash,
};
pub use tx::{MAX_TX_BYTES, SignedTx, TxDecodeError, recover_all};
pub use witness::{Witness, execute_stateless, produce_invalid_witness, produce_witness};

/// jmt types a [`StateStore`] implementation handles.
pub mod jmt_types {
    pub use jmt::storage::{Node, NodeKey, StaleNodeIndex, TreeUpdateBatch};
    pub use jmt::{KeyHash, Version};
}
