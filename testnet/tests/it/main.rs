//! The `optishard` binary: crash safety under SIGKILL, the CLI's config
//! handling, the local testnet end to end; and the deterministic tier.

mod cli;
mod crash;
mod local_testnet;
mod sim;
