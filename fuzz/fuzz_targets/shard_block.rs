#![no_main]
//! Fuzzes the `shard_block` decoder (see `prover::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| prover::fuzzing::run("shard_block", data));
