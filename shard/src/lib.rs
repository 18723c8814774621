//! `shard` — a shard node: authenticated state and chain data in rocksdb, a
//! mempool, block production through `prover`'s state-transition function,
//! and an Ethereum JSON-RPC server.
//!
//! Where to start: [`start`] opens a node and serves it; [`ShardNode`] is
//! what block production and RPC share; [`ShardDb`] is the persistence.

mod error;
mod mempool;
mod node;
mod rpc;
mod store;

pub use error::{Error, Result};
pub use mempool::{Mempool, PoolError};
pub use node::{
    DEFAULT_CHAIN_ID_BASE, DEV_MNEMONIC, GenesisAccount, Head, NodeHandle, ShardConfig, ShardNode,
    dev_accounts, start,
};
pub use rpc::{ProofResponse, revert_reason};
pub use store::{ShardDb, StoredBody, TxLocation};
