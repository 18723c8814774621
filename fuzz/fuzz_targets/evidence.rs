#![no_main]
//! Fuzzes the `evidence` decoder (see `prover::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| prover::fuzzing::run("evidence", data));
