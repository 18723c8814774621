use thiserror::Error;

/// Errors of the shard node.
#[derive(Debug, Error)]
pub enum Error {
    /// rocksdb failed.
    #[error("database: {0}")]
    Db(String),
    /// Stored bytes that do not decode.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// The state layer or the state-transition function failed.
    #[error(transparent)]
    State(#[from] prover::Error),
    /// A header this node built breaks a header rule (it is not signed).
    #[error("built header refused: {0}")]
    Header(bridge::HeaderFault),
    /// A bad configuration value.
    #[error("config: {0}")]
    Config(String),
    /// The RPC server could not start.
    #[error("rpc: {0}")]
    Rpc(String),
}

/// Result of the shard node.
pub type Result<T, E = Error> = std::result::Result<T, E>;
