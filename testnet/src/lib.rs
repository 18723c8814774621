//! `testnet` — the `optishard` command: the dev node today; local
//! multi-shard testnets, configs and fault injection as they land.
//!
//! Where to start: [`Cli`] is the command line; [`run`] executes it.

pub mod genesis;
mod sim;

pub use genesis::{Genesis, NetworkParams};
pub use sim::{Testnet, TestnetBuilder};

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use shard::{ShardConfig, dev_accounts};

/// optishard: sharded optimistic execution on your own machines.
#[derive(Debug, Parser)]
#[command(name = "optishard", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a shard node (today: `--dev`, a single-node shard).
    Shard(ShardCmd),
}

/// `optishard shard`.
#[derive(Debug, Args)]
pub struct ShardCmd {
    /// Single-node development chain: this node proposes every block and
    /// the dev mnemonic's ten accounts are funded at genesis.
    #[arg(long)]
    pub dev: bool,
    /// TOML file with [`ShardConfig`] fields; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the resolved config as TOML and exit.
    #[arg(long)]
    pub dump_config: bool,
    /// Node settings.
    #[command(flatten)]
    pub node: ShardArgs,
}

/// Node settings as flags (each overrides the config file).
#[derive(Debug, Args)]
pub struct ShardArgs {
    /// JSON-RPC listen address.
    #[arg(long, value_name = "ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    /// Data directory.
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Shard id (chain id = base + shard).
    #[arg(long)]
    pub shard: Option<u32>,
    /// Block interval in milliseconds.
    #[arg(long, value_name = "MS")]
    pub block_time_ms: Option<u64>,
    /// Block gas limit.
    #[arg(long)]
    pub block_gas_limit: Option<u64>,
    /// Mempool capacity (transactions).
    #[arg(long)]
    pub mempool_max_txs: Option<usize>,
    /// fsync every block commit.
    #[arg(long)]
    pub fsync: bool,
}

/// Resolves defaults, then the file, then flags.
pub fn resolve_config(cmd: &ShardCmd) -> Result<ShardConfig> {
    let mut cfg = match &cmd.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            toml::from_str::<ShardConfig>(&text)
                .with_context(|| format!("parsing config {}", path.display()))?
        }
        None => ShardConfig::default(),
    };
    let a = &cmd.node;
    if let Some(v) = a.rpc_addr {
        cfg.rpc_addr = v;
    }
    if let Some(v) = &a.datadir {
        cfg.datadir = v.clone();
    }
    if let Some(v) = a.shard {
        cfg.shard = bridge::ShardId(v);
    }
    if let Some(v) = a.block_time_ms {
        cfg.block_time_ms = v;
    }
    if let Some(v) = a.block_gas_limit {
        cfg.block_gas_limit = v;
    }
    if let Some(v) = a.mempool_max_txs {
        cfg.mempool_max_txs = v;
    }
    if a.fsync {
        cfg.fsync = true;
    }
    if cmd.dev && cfg.genesis.is_empty() {
        cfg.genesis = dev_accounts().into_iter().map(|(_, g)| g).collect();
    }
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(cfg)
}

/// Runs the command line until the node stops (Ctrl-C or SIGTERM).
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Shard(cmd) => {
            let cfg = resolve_config(&cmd)?;
            if cmd.dump_config {
                print!("{}", toml::to_string(&cfg).context("serialising config")?);
                return Ok(());
            }
            if !cmd.dev {
                bail!(
                    "only `optishard shard --dev` exists so far; multi-validator shards come with the testnet"
                );
            }
            let handle = shard::start(cfg.clone()).await.context("starting the shard node")?;
            println!("optishard dev node, shard {} (chain id {})", cfg.shard, cfg.chain_id());
            println!("JSON-RPC: http://{}", handle.rpc_addr);
            println!("data directory: {}", cfg.datadir.display());
            println!("\nAvailable accounts (10,000 ETH each, mnemonic \"{}\"):", shard::DEV_MNEMONIC);
            for (i, (signer, acct)) in dev_accounts().iter().enumerate() {
                println!("({i}) {}  key 0x{}", acct.address, hex_key(signer));
            }
            println!();
            wait_for_shutdown().await;
            handle.stop().await;
            Ok(())
        }
    }
}

fn hex_key(s: &alloy_signer_local::PrivateKeySigner) -> String {
    s.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

async fn wait_for_shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
