//! prover integration tests: the state tree, the state-transition function,
//! witnesses and stateless re-execution, and Ethereum's state tests through
//! the state-transition function.

mod budget;
mod fuzz_corpus;
mod game;
mod machine;
mod machine_bridge;
mod machine_create;
mod machine_frames;
mod machine_game;
mod machine_item;
mod machine_journal;
mod machine_messages;
mod machine_parts;
mod machine_settle;
mod messages;
mod smt;
mod state_tests;
mod stf;
mod support;
