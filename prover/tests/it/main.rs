//! prover integration tests: the state tree, the state-transition function,
//! witnesses and stateless re-execution.

mod budget;
mod fuzz_corpus;
mod game;
mod messages;
mod smt;
mod stf;
mod support;
