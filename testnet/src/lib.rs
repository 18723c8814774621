//! `testnet` — the `optishard` command: a beacon node, shard validators,
//! the dev node, and local multi-shard testnets (`testnet up/status/down`);
//! plus [`Testnet`], the same cluster in one process, deterministic.
//!
//! Where to start: [`Cli`] is the command line; [`run`] executes it;
//! [`cluster`] supervises a local testnet; [`Testnet::builder`] runs one in
//! memory.

pub mod cluster;
mod dashboards;
pub mod genesis;
pub mod netns;
pub mod scenario;
mod sim;

pub use cluster::{Manifest, NodeEntry, TestnetConfig};
pub use genesis::{Genesis, NetworkParams, sign_call, sign_transfer};
pub use sim::{Member, Testnet, TestnetBuilder, Turn};

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
    /// Run a shard node: a validator of a network (`--genesis`), or a
    /// single-node development chain (`--dev`).
    Shard(ShardCmd),
    /// Run the beacon node of a network.
    Beacon(BeaconCmd),
    /// A local testnet: `up`, `status`, `down`.
    #[command(subcommand)]
    Testnet(TestnetCmd),
    /// A standalone challenger: follows the shards it is given, re-executes
    /// every header, disputes the ones that do not re-execute, and plays
    /// its games (its key must be a bonded challenger in the genesis).
    Challenger(ChallengerCmd),
    /// Scenarios: a network, a workload and a timeline of faults from one
    /// TOML file (`check`, `run`).
    #[command(subcommand)]
    Scenario(ScenarioCmd),
}

/// `optishard scenario …`.
#[derive(Debug, Subcommand)]
pub enum ScenarioCmd {
    /// Reads a scenario file and says what is wrong with it, if anything.
    Check {
        /// The scenario file.
        file: PathBuf,
    },
    /// Runs a scenario, checking every invariant after every slot; exits
    /// non-zero if one breaks.
    Run(ScenarioRunArgs),
    /// Runs a scenario over a grid of its parameters (deterministic tier)
    /// and writes one report with a plot per swept figure.
    Sweep(ScenarioSweepArgs),
}

/// `optishard scenario sweep`.
#[derive(Debug, Args)]
pub struct ScenarioSweepArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// A parameter and its values, `key=v1,v2,…` (keys: shards,
    /// validators, slot_ms, window, rate, cross, accounts, slots); repeat
    /// for a grid.
    #[arg(long = "vary", value_name = "KEY=V1,V2,…", required = true)]
    pub vary: Vec<String>,
    /// Seed (default: the file's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Writes sweep.json, sweep.csv, sweep.html and each point's report
    /// under points/ here.
    #[arg(long, value_name = "DIR")]
    pub report: PathBuf,
}

/// `optishard scenario run`.
#[derive(Debug, Args)]
pub struct ScenarioRunArgs {
    /// The scenario file.
    pub file: PathBuf,
    /// Seed (default: the file's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where it runs: `sim` (one process, virtual time, reproducible) or
    /// `processes` (real nodes over real sockets).
    #[arg(long, default_value = "sim", value_parser = ["sim", "processes"])]
    pub tier: String,
    /// Writes report.json, series.csv and latency.csv here.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Data directory of the run's nodes (default: a temporary one).
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// No per-slot status line.
    #[arg(long)]
    pub quiet: bool,
    /// On the processes tier, every node on 127.0.0.1 even as root
    /// (partitions through the nodes' block lists, not the kernel).
    #[arg(long)]
    pub loopback: bool,
}

/// `optishard challenger`.
#[derive(Debug, Args)]
pub struct ChallengerCmd {
    /// The network's genesis spec.
    #[arg(long, value_name = "FILE")]
    pub genesis: PathBuf,
    /// The challenger's signing key (hex file).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Shards to follow, comma separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub shards: Vec<u32>,
    /// A shard node config (TOML) to follow with: genesis accounts, gas
    /// limit, bootnodes (any validator's `shard.toml` of the network).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (one follower database per shard under it).
    #[arg(long, value_name = "DIR", default_value = "optishard-challenger")]
    pub datadir: PathBuf,
    /// First port: follower `k` uses `base + 3k` (RPC), `+1` (metrics), `+2` (p2p).
    #[arg(long, default_value_t = 19_000)]
    pub base_port: u16,
    /// Peers to join (multiaddrs, comma separated; e.g. the beacon's).
    #[arg(long, value_delimiter = ',')]
    pub bootnodes: Vec<String>,
}

/// `optishard testnet …`.
#[derive(Debug, Subcommand)]
pub enum TestnetCmd {
    /// Start a beacon and shards × validators as processes on 127.0.0.1.
    Up(UpArgs),
    /// Each shard's head, the beacon's head and each shard's lag.
    Status {
        /// The testnet's directory.
        #[arg(long, value_name = "DIR", default_value = "optishard-testnet")]
        datadir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Sends 1 ETH from shard 0 to a fresh address on the last shard through
    /// the bridge and follows the message until it is executed (and, with
    /// `--finalize`, final), printing each stage.
    Demo {
        /// The testnet's directory.
        #[arg(long, value_name = "DIR", default_value = "optishard-testnet")]
        datadir: PathBuf,
        /// Also wait for the destination block to be final (one challenge window).
        #[arg(long)]
        finalize: bool,
    },
    /// The conservation audit across all shards at the beacon's accepted
    /// heads: Σ balances + value in flight = Σ genesis − fees burned, and
    /// every shard's own identity. Exits non-zero if it does not hold.
    Audit {
        /// The testnet's directory.
        #[arg(long, value_name = "DIR", default_value = "optishard-testnet")]
        datadir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Stop every process the testnet started.
    Down {
        /// The testnet's directory.
        #[arg(long, value_name = "DIR", default_value = "optishard-testnet")]
        datadir: PathBuf,
    },
}

/// `optishard testnet up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// TOML file with [`TestnetConfig`] fields; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Number of shards.
    #[arg(long)]
    pub shards: Option<u32>,
    /// Validators per shard.
    #[arg(long)]
    pub validators_per_shard: Option<u32>,
    /// Slot length in milliseconds.
    #[arg(long, value_name = "MS")]
    pub slot_ms: Option<u64>,
    /// Directory for keys, databases, logs and the manifest.
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// First port (each node takes three).
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Seed of keys and the proposer schedule.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Slots a header can be challenged after its inclusion (default 240;
    /// 0 means one day of slots).
    #[arg(long, value_name = "N")]
    pub challenge_window_slots: Option<u64>,
    /// Standalone challenger processes (bonded in the genesis; default 1).
    #[arg(long, value_name = "N")]
    pub challengers: Option<u32>,
    /// Turn off the challenger in every validator.
    #[arg(long)]
    pub no_challenger: bool,
    /// A byzantine validator: 'shard=S,validator=I,fault=F[,rate=R]' with F
    /// one of wrong-state-root, wrong-receipt, silent-defender,
    /// griefing-challenger, fabricated-message, lying-stand-in and R a percentage (repeatable; same as
    /// `[[byzantine]]` tables in the config file).
    #[arg(long, value_name = "SPEC")]
    pub byzantine: Vec<String>,
    /// Each node in its own network namespace on a bridge, at its own
    /// 10.x address (root; `ip`, `iptables`, `tc`): what scenarios on
    /// processes use to cut and slow links in the kernel.
    #[arg(long)]
    pub netns: bool,
    /// Serve the `admin_*` methods (faults, challengers, links) on every
    /// node's JSON-RPC.
    #[arg(long)]
    pub admin_rpc: bool,
    /// Stay attached; Ctrl-C stops the whole testnet.
    #[arg(long)]
    pub foreground: bool,
    /// Print the resolved config as TOML and exit.
    #[arg(long)]
    pub dump_config: bool,
}

/// `optishard beacon`.
#[derive(Debug, Args)]
pub struct BeaconCmd {
    /// The network's genesis spec (JSON, as `testnet up` writes it).
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// The beacon's signing key (hex file).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// TOML file with [`beacon::BeaconConfig`] fields; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the resolved config as TOML and exit.
    #[arg(long)]
    pub dump_config: bool,
    /// Data directory.
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// JSON-RPC listen address.
    #[arg(long, value_name = "ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    /// Prometheus metrics listen address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// p2p port (TCP and QUIC).
    #[arg(long)]
    pub p2p_port: Option<u16>,
    /// p2p listen IP.
    #[arg(long, value_name = "IP")]
    pub p2p_ip: Option<std::net::IpAddr>,
    /// Peers to join (multiaddrs, comma separated).
    #[arg(long, value_delimiter = ',')]
    pub bootnodes: Vec<String>,
    /// Serve the `admin_*` link methods on the JSON-RPC endpoint (scenario runs).
    #[arg(long)]
    pub admin_rpc: bool,
}

/// `optishard shard`.
#[derive(Debug, Args)]
pub struct ShardCmd {
    /// Single-node development chain: this node proposes every block and
    /// the dev mnemonic's ten accounts are funded at genesis.
    #[arg(long)]
    pub dev: bool,
    /// The network's genesis spec (validator mode).
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// This validator's signing key (hex file); without it the node follows.
    #[arg(long, value_name = "FILE")]
    pub validator_key: Option<PathBuf>,
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
    /// Prometheus metrics listen address (validator mode).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// p2p port, TCP and QUIC (validator mode).
    #[arg(long)]
    pub p2p_port: Option<u16>,
    /// Peers to join, multiaddrs, comma separated (validator mode).
    #[arg(long, value_delimiter = ',')]
    pub bootnodes: Vec<String>,
}

/// Resolves defaults, then the file, then flags.
pub fn resolve_config(cmd: &ShardCmd) -> Result<ShardConfig> {
    let mut cfg: ShardConfig = read_toml(cmd.config.as_ref())?;
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
    if let Some(v) = a.metrics_addr {
        cfg.metrics_addr = v;
    }
    if let Some(v) = a.p2p_port {
        cfg.p2p_port = v;
    }
    if !a.bootnodes.is_empty() {
        cfg.bootnodes = a.bootnodes.clone();
    }
    if cmd.dev && cfg.genesis.is_empty() {
        cfg.genesis = dev_accounts().into_iter().map(|(_, g)| g).collect();
    }
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(cfg)
}

fn read_toml<T: serde::de::DeserializeOwned + Default>(path: Option<&PathBuf>) -> Result<T> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            toml::from_str::<T>(&text).with_context(|| format!("parsing config {}", path.display()))
        }
        None => Ok(T::default()),
    }
}

/// Reads a genesis spec file.
pub fn read_spec(path: &std::path::Path) -> Result<bridge::ChainSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading genesis {}", path.display()))?;
    let spec: bridge::ChainSpec =
        serde_json::from_str(&text).with_context(|| format!("parsing genesis {}", path.display()))?;
    spec.validate().map_err(|e| anyhow::anyhow!("genesis {}: {e}", path.display()))?;
    Ok(spec)
}

fn read_key(path: &std::path::Path) -> Result<bridge::ValidatorKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading key {}", path.display()))?;
    bridge::ValidatorKey::from_hex(&text).map_err(|e| anyhow::anyhow!("key {}: {e}", path.display()))
}

/// Resolves `testnet up`'s config: defaults, then the file, then flags.
pub fn resolve_testnet(a: &UpArgs) -> Result<TestnetConfig> {
    let mut cfg: TestnetConfig = read_toml(a.config.as_ref())?;
    if let Some(v) = a.shards {
        cfg.network.shards = v;
    }
    if let Some(v) = a.validators_per_shard {
        cfg.network.validators_per_shard = v;
    }
    if let Some(v) = a.slot_ms {
        cfg.network.slot_ms = v;
    }
    if let Some(v) = &a.datadir {
        cfg.datadir = v.clone();
    }
    if let Some(v) = a.base_port {
        cfg.base_port = v;
    }
    if let Some(v) = a.seed {
        cfg.network.seed = v;
    }
    if let Some(v) = a.challenge_window_slots {
        cfg.network.challenge_window_slots = v;
    }
    if let Some(v) = a.challengers {
        cfg.network.challengers = v;
    }
    if a.no_challenger {
        cfg.no_challenger = true;
    }
    cfg.netns |= a.netns;
    cfg.admin_rpc |= a.admin_rpc;
    for b in &a.byzantine {
        cfg.byzantine
            .push(cluster::Byzantine::parse(b).map_err(|e| anyhow::anyhow!("--byzantine {b}: {e}"))?);
    }
    cfg.network.validate().map_err(anyhow::Error::msg)?;
    for b in &cfg.byzantine {
        if b.shard >= cfg.network.shards || b.validator >= cfg.network.validators_per_shard {
            bail!("byzantine validator {} of shard {} does not exist", b.validator, b.shard);
        }
    }
    Ok(cfg)
}

/// Resolves the beacon's config: defaults, then the file, then flags.
pub fn resolve_beacon(c: &BeaconCmd) -> Result<beacon::BeaconConfig> {
    let mut cfg: beacon::BeaconConfig = read_toml(c.config.as_ref())?;
    if let Some(v) = &c.datadir {
        cfg.datadir = v.clone();
    }
    if let Some(v) = c.rpc_addr {
        cfg.rpc_addr = v;
    }
    if let Some(v) = c.metrics_addr {
        cfg.metrics_addr = v;
    }
    if let Some(v) = c.p2p_port {
        cfg.p2p_port = v;
    }
    if let Some(v) = c.p2p_ip {
        cfg.p2p_ip = v;
    }
    if !c.bootnodes.is_empty() {
        cfg.bootnodes = c.bootnodes.clone();
    }
    cfg.admin_rpc |= c.admin_rpc;
    net::parse_bootnodes(&cfg.bootnodes).map_err(anyhow::Error::msg)?;
    Ok(cfg)
}

/// Runs the command line until the node stops (Ctrl-C or SIGTERM).
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Shard(cmd) => run_shard(cmd).await,
        Command::Beacon(cmd) => {
            let cfg = resolve_beacon(&cmd)?;
            if cmd.dump_config {
                print!("{}", toml::to_string(&cfg).context("serialising config")?);
                return Ok(());
            }
            let spec = read_spec(cmd.genesis.as_deref().context("--genesis FILE is required")?)?;
            let key = read_key(cmd.key.as_deref().context("--key FILE is required")?)?;
            let handle = beacon::start(spec, key, cfg).await.context("starting the beacon node")?;
            println!("optishard beacon node");
            println!("JSON-RPC: http://{}", handle.rpc_addr);
            println!("metrics: http://{}/metrics", handle.metrics_addr);
            for a in &handle.p2p_addrs {
                println!("p2p: {a}");
            }
            wait_for_shutdown().await;
            handle.stop().await;
            Ok(())
        }
        Command::Testnet(TestnetCmd::Up(args)) => {
            let cfg = resolve_testnet(&args)?;
            if args.dump_config {
                print!("{}", toml::to_string(&cfg).context("serialising config")?);
                return Ok(());
            }
            let m = cluster::up(&cfg).await?;
            let dir = cfg.datadir.display();
            println!(
                "optishard testnet: {} shards x {} validators, {} ms slots, network {}",
                cfg.network.shards, cfg.network.validators_per_shard, cfg.network.slot_ms, m.network
            );
            for n in &m.nodes {
                println!("  {:<12} {:<28} metrics {:<36} pid {}", n.name, n.rpc_url, n.metrics_url, n.pid);
            }
            println!(
                "manifest: {dir}/manifest.json   prometheus: {}   grafana: {}",
                m.prometheus_config.display(),
                m.grafana_dashboard.display()
            );
            println!("dev accounts (mnemonic \"{}\") are funded on every shard", shard::DEV_MNEMONIC);
            if args.foreground {
                println!("running in the foreground; Ctrl-C stops the testnet");
                wait_for_shutdown().await;
                let n = cluster::down(&cfg.datadir).await?;
                // stdout may be gone by now (a closed pipe): that must not stop the cleanup report
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout(), "stopped {n} processes");
            } else {
                println!(
                    "status: optishard testnet status --datadir {dir}\nstop:   optishard testnet down --datadir {dir}"
                );
            }
            Ok(())
        }
        Command::Testnet(TestnetCmd::Status { datadir, json }) => {
            let s = cluster::status(&datadir).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                cluster::print_status(&s);
            }
            Ok(())
        }
        Command::Testnet(TestnetCmd::Demo { datadir, finalize }) => cluster::demo(&datadir, finalize).await,
        Command::Testnet(TestnetCmd::Audit { datadir, json }) => {
            let a = cluster::audit(&datadir).await?;
            let bad = cluster::invalid_final(&datadir).await?;
            if json {
                let mut v = serde_json::to_value(&a)?;
                v["invalid_final"] = serde_json::to_value(&bad)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                cluster::print_audit(&a);
                for b in &bad {
                    println!(
                        "INVALID FINAL HEADER: shard {} height {} ({}) by {}: {} refutes its {}",
                        b.shard, b.height, b.hash, b.proposer, b.refuted_by, b.field
                    );
                }
                if bad.is_empty() {
                    println!("no final header is refuted by any validator's re-execution");
                }
            }
            if !a.holds {
                bail!("the conservation audit does not hold");
            }
            if !bad.is_empty() {
                bail!("{} invalid header(s) became final (no honest challenger disputed them)", bad.len());
            }
            Ok(())
        }
        Command::Challenger(cmd) => run_challenger(cmd).await,
        Command::Scenario(ScenarioCmd::Check { file }) => {
            let s = scenario::Scenario::load(&file)?;
            println!(
                "{}: {} slots, {} shards × {} validators, {} timeline entries",
                s.name,
                s.slots,
                s.network.shards,
                s.network.validators_per_shard,
                s.timeline.len()
            );
            Ok(())
        }
        Command::Scenario(ScenarioCmd::Run(args)) => scenario::cli::run(args).await,
        Command::Scenario(ScenarioCmd::Sweep(args)) => scenario::cli::sweep(args),
        Command::Testnet(TestnetCmd::Down { datadir }) => {
            let n = cluster::down(&datadir).await?;
            println!("stopped {n} processes");
            Ok(())
        }
    }
}

async fn run_shard(cmd: ShardCmd) -> Result<()> {
    let cfg = resolve_config(&cmd)?;
    if cmd.dump_config {
        print!("{}", toml::to_string(&cfg).context("serialising config")?);
        return Ok(());
    }
    if !cmd.dev {
        let Some(genesis) = &cmd.genesis else {
            bail!("give --genesis FILE to join a network, or --dev for a single-node development chain");
        };
        let spec = read_spec(genesis)?;
        let key = cmd.validator_key.as_deref().map(read_key).transpose()?;
        let handle =
            shard::start_validator(spec, key, cfg.clone()).await.context("starting the validator")?;
        println!("optishard shard {} validator (chain id {})", cfg.shard, cfg.chain_id());
        println!("JSON-RPC: http://{}", handle.rpc_addr);
        println!("metrics: http://{}/metrics", handle.metrics_addr);
        wait_for_shutdown().await;
        handle.stop().await;
        return Ok(());
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

async fn run_challenger(cmd: ChallengerCmd) -> Result<()> {
    let spec = read_spec(&cmd.genesis)?;
    let key = read_key(&cmd.key)?;
    if spec.challengers.iter().all(|c| c.address != key.address()) {
        bail!("{} is not a bonded challenger in {}", key.address(), cmd.genesis.display());
    }
    let template: ShardConfig = read_toml(cmd.config.as_ref())?;
    let shards: Vec<u32> =
        if cmd.shards.is_empty() { (0..spec.shards).collect() } else { cmd.shards.clone() };
    let mut handles = Vec::new();
    for (k, s) in shards.iter().enumerate() {
        if *s >= spec.shards {
            bail!("the network has no shard {s}");
        }
        let port = |off: usize| -> Result<u16> {
            u16::try_from(cmd.base_port as usize + 3 * k + off).context("--base-port leaves no room")
        };
        let mut cfg = template.clone();
        cfg.shard = bridge::ShardId(*s);
        cfg.datadir = cmd.datadir.join(format!("shard{s}"));
        // on the template's address (127.0.0.1, or the challenger's namespace's)
        cfg.rpc_addr = std::net::SocketAddr::new(template.rpc_addr.ip(), port(0)?);
        cfg.metrics_addr = std::net::SocketAddr::new(template.rpc_addr.ip(), port(1)?);
        cfg.p2p_port = port(2)?;
        cfg.fault = None;
        if !cmd.bootnodes.is_empty() {
            cfg.bootnodes = cmd.bootnodes.clone();
        }
        cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let h = shard::start_node(spec.clone(), None, Some(key.clone()), cfg)
            .await
            .with_context(|| format!("following shard {s}"))?;
        println!("challenger {} follows shard {s}: JSON-RPC http://{}", key.address(), h.rpc_addr);
        handles.push(h);
    }
    wait_for_shutdown().await;
    for h in handles {
        h.stop().await;
    }
    Ok(())
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
