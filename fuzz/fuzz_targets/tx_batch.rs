#![no_main]
//! Fuzzes the `tx_batch` decoder (see `prover::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| prover::fuzzing::run("tx_batch", data));
