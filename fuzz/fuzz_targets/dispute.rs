#![no_main]
//! Fuzzes the `dispute` decoders (see `prover::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| prover::fuzzing::run("dispute", data));
