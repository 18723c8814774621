//! The `optishard` binary: parse, run, map errors to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = testnet::Cli::parse();
    // a scenario prints its own per-slot line; its nodes' logs are noise
    // unless asked for (RUST_LOG)
    let default = if matches!(cli.command, testnet::Command::Scenario(_)) { "error" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(testnet::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
