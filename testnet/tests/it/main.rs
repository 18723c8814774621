//! The `optishard` binary: crash safety under SIGKILL and the CLI's config handling.

mod cli;
mod crash;
mod sim;
