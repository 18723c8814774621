//! `shard` — a shard node: authenticated state and chain data in rocksdb, a
//! mempool, block production through `prover`'s state-transition function,
//! an Ethereum JSON-RPC server, and a network validator ([`Validator`]) with
//! its cross-shard relay ([`Relay`]) and supply accounting ([`Supply`]).
//!
//! Where to start: [`start`] opens a dev node and serves it;
//! [`start_validator`] runs a validator of a network; [`ShardNode`] is what
//! block production, import and RPC share; [`ShardDb`] is the persistence.

mod byzantine;
mod config;
mod dispute;
mod error;
mod fault;
mod future;
mod import;
mod mempool;
mod metrics;
mod node;
mod pending;
mod process;
mod relay;
mod rpc;
mod store;
mod supply;
mod validator;

pub use byzantine::Byzantine;
pub use config::{
    DEFAULT_CHAIN_ID_BASE, DEV_MNEMONIC, GenesisAccount, ShardConfig, dev_accounts, genesis_header,
};
pub use dispute::{AgentMode, DisputeAgent, Reexecution, reexecute};
pub use error::{Error, Result};
pub use fault::{FABRICATED_RECIPIENT, Fault, RevertedFrom};
pub use import::{
    BlockError, BoundBlock, Expected, MAX_EVIDENCE, Mismatch, NoSources, SignedBlock, SourceHeaders,
    check_inbox,
};
pub use mempool::{Mempool, PoolError};
pub use metrics::ShardMetrics;
pub use node::{Head, NodeHandle, ShardNode, TxListener, TxRejected, start};
pub use process::{ValidatorHandle, start_node, start_validator};
pub use relay::{INBOX_GAS_SHARE, Relay};
pub use rpc::{ProofResponse, revert_reason};
pub use store::{SHARD_SCHEMA, ShardDb, StoredBlock, StoredBody, TxLocation};
pub use supply::{Audit, Supply};
pub use validator::{Validator, ValidatorStatus};
