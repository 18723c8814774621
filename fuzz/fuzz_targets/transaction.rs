#![no_main]
//! Fuzzes the `transaction` decoder (see `prover::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| prover::fuzzing::run("transaction", data));
