#![no_main]
//! Fuzzes the `message` decoders (see `prover::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| prover::fuzzing::run("message", data));
