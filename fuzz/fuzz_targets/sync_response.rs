#![no_main]
//! Fuzzes the `sync_response` decoder (see `prover::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| prover::fuzzing::run("sync_response", data));
