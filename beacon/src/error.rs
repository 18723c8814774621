use thiserror::Error;

/// Beacon node failures.
#[derive(Debug, Error)]
pub enum Error {
    /// The database failed.
    #[error("database: {0}")]
    Db(String),
    /// Stored data does not decode.
    #[error("corrupt database: {0}")]
    Corrupt(String),
    /// A setting or the genesis is unusable.
    #[error("config: {0}")]
    Config(String),
    /// The RPC server failed.
    #[error("rpc: {0}")]
    Rpc(String),
    /// The p2p network failed to start.
    #[error("network: {0}")]
    Net(String),
}

/// Result with the beacon's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
