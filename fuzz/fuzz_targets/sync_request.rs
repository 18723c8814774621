#![no_main]
//! Fuzzes the `sync_request` decoder (see `prover::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| prover::fuzzing::run("sync_request", data));
