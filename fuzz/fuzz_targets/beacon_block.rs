#![no_main]
//! Fuzzes the `beacon_block` decoder (see `prover::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| prover::fuzzing::run("beacon_block", data));
