//! `net` — the libp2p service (gossipsub, request-response, identify) behind
//! a network trait with an in-memory implementation for deterministic tests.
//!
//! Not built yet: the single-node dev shard needs no network. The next issue
//! (beacon chain, multi-validator shards) fills this crate.
