//! shard integration tests: the rocksdb store, the dev node through a real
//! Ethereum client library, and bad input over raw JSON-RPC.

mod bad_input;
mod client;
mod estimate;
mod js_client;
mod store;
mod support;
