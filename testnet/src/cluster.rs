//! `optishard testnet up/status/down`: a local cluster of separate
//! processes (one beacon, shards × validators) on 127.0.0.1, its manifest,
//! Prometheus scrape config and Grafana dashboard.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::dashboards::{grafana_dashboard, prometheus_config};
use crate::genesis::NetworkParams;

/// A local testnet's settings (TOML; every field also a flag of `up`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TestnetConfig {
    /// Where keys, databases, logs and the manifest go.
    pub datadir: PathBuf,
    /// First port; node `k` uses `base_port + 3k` (RPC), `+1` (metrics), `+2` (p2p).
    pub base_port: u16,
    /// How long after `up` slot 0 starts, in milliseconds.
    pub genesis_delay_ms: u64,
    /// Log filter for every node (`RUST_LOG` syntax).
    pub log: String,
    /// The network.
    pub network: NetworkParams,
    /// Turn off the challenger in every validator.
    pub no_challenger: bool,
    /// Byzantine validators (`[[byzantine]]`).
    pub byzantine: Vec<Byzantine>,
    /// Each node in its own network namespace on a bridge (root only;
    /// `crate::netns`), listening on its own address instead of 127.0.0.1.
    pub netns: bool,
    /// Serve the `admin_*` methods on every node's JSON-RPC (scenario runs).
    pub admin_rpc: bool,
    /// The nodes die with the process that started them (scenario runs:
    /// a runner killed outright leaves no node behind).
    #[serde(skip)]
    pub tied: bool,
}

/// A validator told to misbehave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Byzantine {
    /// Its shard.
    pub shard: u32,
    /// Its index among the shard's validators.
    pub validator: u32,
    /// What it does.
    pub fault: shard::Fault,
    /// Percent of its chances it does it.
    #[serde(default = "full_rate")]
    pub rate: u8,
}

fn full_rate() -> u8 {
    100
}

impl Byzantine {
    /// Parses `shard=S,validator=I,fault=F[,rate=R]`.
    pub fn parse(spec: &str) -> Result<Byzantine, String> {
        let (mut shard, mut validator, mut fault, mut rate) = (None, None, None, 100u8);
        for part in spec.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("'{part}' is not key=value"))?;
            match k.trim() {
                "shard" => shard = Some(v.trim().parse().map_err(|_| format!("shard '{v}'"))?),
                "validator" => validator = Some(v.trim().parse().map_err(|_| format!("validator '{v}'"))?),
                "fault" => {
                    fault = Some(shard::Fault::parse(v.trim()).ok_or_else(|| {
                        format!("fault '{v}': one of wrong-state-root, wrong-receipt, silent-defender, griefing-challenger, fabricated-message, lying-stand-in")
                    })?)
                }
                "rate" => {
                    rate = v.trim().parse().ok().filter(|r| *r <= 100).ok_or_else(|| format!("rate '{v}': 0..=100"))?
                }
                other => return Err(format!("unknown key '{other}'")),
            }
        }
        Ok(Byzantine {
            shard: shard.ok_or("shard= missing")?,
            validator: validator.ok_or("validator= missing")?,
            fault: fault.ok_or("fault= missing")?,
            rate,
        })
    }
}

impl Default for TestnetConfig {
    fn default() -> Self {
        TestnetConfig {
            datadir: PathBuf::from("optishard-testnet"),
            base_port: 18_000,
            genesis_delay_ms: 3_000,
            log: "info".into(),
            network: NetworkParams::default(),
            no_challenger: false,
            byzantine: Vec::new(),
            netns: false,
            admin_rpc: false,
            tied: false,
        }
    }
}

/// One node in the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeEntry {
    /// `beacon` or `shard{s}-v{i}`.
    pub name: String,
    /// `beacon` or `validator`.
    pub role: String,
    /// Its shard (validators).
    pub shard: Option<u32>,
    /// Its signing address.
    pub address: String,
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Prometheus metrics URL.
    pub metrics_url: String,
    /// p2p multiaddr (TCP).
    pub p2p: String,
    /// Ethereum chain id (validators).
    pub chain_id: Option<u64>,
    /// Process id.
    pub pid: u32,
    /// Log file.
    pub log: PathBuf,
    /// Data directory.
    pub datadir: PathBuf,
    /// The `optishard` arguments it runs with (to restart it by hand).
    pub args: Vec<String>,
    /// Its p2p peer ids (a standalone challenger has one per shard it follows).
    #[serde(default)]
    pub peer_ids: Vec<String>,
    /// Its index among the nodes (its namespace's, under `netns`).
    #[serde(default)]
    pub index: usize,
}

/// `DIR/manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The network's spec hash.
    pub network: bridge::Hash,
    /// Slot 0's unix time in milliseconds.
    pub genesis_time_ms: u64,
    /// Slot length.
    pub slot_ms: u64,
    /// Number of shards.
    pub shards: u32,
    /// The genesis spec file.
    pub genesis: PathBuf,
    /// Prometheus scrape config.
    pub prometheus_config: PathBuf,
    /// Grafana dashboard.
    pub grafana_dashboard: PathBuf,
    /// Every node.
    pub nodes: Vec<NodeEntry>,
    /// Byzantine validators it runs.
    #[serde(default)]
    pub byzantine: Vec<Byzantine>,
    /// The namespaces its nodes run in, if any.
    #[serde(default)]
    pub netns: Option<crate::netns::NetPlan>,
}

/// Removes a testnet's namespaces when `up` fails before its manifest
/// records them (disarmed once it does).
struct PlanGuard(Option<crate::netns::NetPlan>);

impl Drop for PlanGuard {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            p.destroy();
        }
    }
}

/// Writes a fresh p2p key into `dir` and returns its peer id.
fn new_p2p_key(dir: &Path) -> Result<String> {
    let secret: [u8; 32] = rand::random();
    write(&dir.join("p2p.key"), hex::encode(secret))?;
    Ok(net::peer_id_of(secret).map_err(anyhow::Error::msg)?.to_string())
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// Whether `pid` is a live `optishard` process.
pub fn alive(pid: u32) -> bool {
    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // a zombie has exited
    let zombie = stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z'));
    !zombie && String::from_utf8_lossy(&cmd).contains("optishard")
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we started and checked is alive; no memory is shared.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Reads `DIR/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no testnet in {} (reading {})", dir.display(), path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// One JSON-RPC call; an error answer is an error.
pub(crate) async fn rpc(client: &reqwest::Client, url: &str, method: &str, params: Value) -> Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp: Value = client.post(url).json(&body).send().await?.json().await?;
    if let Some(e) = resp.get("error") {
        bail!("{method}: {e}");
    }
    Ok(resp["result"].clone())
}

fn write(path: &Path, data: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

/// Starts the cluster and returns once every node answers; the processes
/// keep running after this returns.
pub async fn up(cfg: &TestnetConfig) -> Result<Manifest> {
    cfg.network.validate().map_err(anyhow::Error::msg)?;
    let dir = &cfg.datadir;
    if let Ok(m) = read_manifest(dir)
        && m.nodes.iter().any(|n| alive(n.pid))
    {
        bail!(
            "a testnet is already running in {} (stop it with `optishard testnet down --datadir {}`)",
            dir.display(),
            dir.display()
        );
    }
    let nodes_total = 1
        + cfg.network.shards as usize * cfg.network.validators_per_shard as usize
        + cfg.network.challengers as usize * cfg.network.shards as usize;
    let last_port = cfg.base_port as usize + 3 * nodes_total;
    if last_port > u16::MAX as usize {
        bail!("base_port {} leaves no room for {nodes_total} nodes", cfg.base_port);
    }
    // under namespaces each node has its own address: no port is shared
    for p in cfg.base_port..last_port as u16 {
        if !cfg.netns && !port_free(p) {
            bail!("port {p} is in use (choose another --base-port)");
        }
    }
    for sub in ["nodes", "logs"] {
        let _ = std::fs::remove_dir_all(dir.join(sub));
    }
    for sub in ["nodes", "logs", "grafana"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    let dir = std::fs::canonicalize(dir)?;
    let genesis_time_ms = net::now_ms() + cfg.genesis_delay_ms;
    let g = cfg.network.genesis(genesis_time_ms).map_err(anyhow::Error::msg)?;
    let genesis_path = dir.join("genesis.json");
    write(&genesis_path, serde_json::to_vec_pretty(&g.spec)?)?;
    let exe = std::env::current_exe().context("locating the optishard binary")?;
    let port = |k: usize, off: usize| (cfg.base_port as usize + 3 * k + off) as u16;
    let plan = if cfg.netns {
        let n = 1 + g.validators.len() + g.challengers.len();
        Some(crate::netns::NetPlan::create(n).context("making the nodes' network namespaces")?)
    } else {
        None
    };
    // any error from here on takes the namespaces down with it
    let mut guard = PlanGuard(plan.clone());
    // a node's address: its namespace's, or 127.0.0.1
    let ip = |k: usize| plan.as_ref().map_or(std::net::Ipv4Addr::LOCALHOST, |p| p.ip(k));
    let addr = |k: usize, off: usize| SocketAddr::from((ip(k), port(k, off)));

    // the beacon first: everyone bootstraps from it
    let bdir = dir.join("nodes/beacon");
    std::fs::create_dir_all(&bdir)?;
    let beacon_peer = new_p2p_key(&bdir)?;
    write(&bdir.join("beacon.key"), g.beacon_key.to_hex())?;
    let boot = format!("/ip4/{}/tcp/{}/p2p/{beacon_peer}", ip(0), port(0, 2));
    let mut procs: Vec<(NodeEntry, Vec<String>)> = Vec::new();
    procs.push((
        NodeEntry {
            name: "beacon".into(),
            role: "beacon".into(),
            shard: None,
            address: g.spec.beacon.to_string(),
            rpc_url: format!("http://{}", addr(0, 0)),
            metrics_url: format!("http://{}/metrics", addr(0, 1)),
            p2p: boot.clone(),
            chain_id: None,
            pid: 0,
            log: dir.join("logs/beacon.log"),
            datadir: bdir.clone(),
            args: vec![],
            peer_ids: vec![beacon_peer.clone()],
            index: 0,
        },
        vec![
            "beacon".into(),
            "--genesis".into(),
            genesis_path.display().to_string(),
            "--key".into(),
            bdir.join("beacon.key").display().to_string(),
            "--datadir".into(),
            bdir.display().to_string(),
            "--rpc-addr".into(),
            addr(0, 0).to_string(),
            "--metrics-addr".into(),
            addr(0, 1).to_string(),
            "--p2p-port".into(),
            port(0, 2).to_string(),
            "--p2p-ip".into(),
            ip(0).to_string(),
        ]
        .into_iter()
        .chain(cfg.admin_rpc.then(|| "--admin-rpc".to_string()))
        .collect(),
    ));
    for (k, (s, key)) in g.validators.iter().enumerate() {
        let k = k + 1;
        let i = (k - 1) % cfg.network.validators_per_shard as usize;
        let name = format!("shard{}-v{i}", s.0);
        let vdir = dir.join("nodes").join(&name);
        std::fs::create_dir_all(&vdir)?;
        write(&vdir.join("validator.key"), key.to_hex())?;
        let peer = new_p2p_key(&vdir)?;
        let mut sc = cfg.network.shard_config(*s, genesis_time_ms);
        sc.datadir = vdir.clone();
        sc.rpc_addr = addr(k, 0);
        sc.metrics_addr = addr(k, 1);
        sc.p2p_ip = ip(k).into();
        sc.p2p_port = port(k, 2);
        sc.admin_rpc = cfg.admin_rpc;
        sc.bootnodes = vec![boot.clone()];
        sc.challenger = !cfg.no_challenger;
        if let Some(b) = cfg.byzantine.iter().find(|b| b.shard == s.0 && b.validator as usize == i) {
            sc.fault = Some(b.fault);
            sc.fault_rate_percent = b.rate;
        }
        let toml_path = vdir.join("shard.toml");
        write(&toml_path, toml::to_string(&sc).context("serialising shard config")?)?;
        procs.push((
            NodeEntry {
                name: name.clone(),
                role: "validator".into(),
                shard: Some(s.0),
                address: key.address().to_string(),
                rpc_url: format!("http://{}", sc.rpc_addr),
                metrics_url: format!("http://{}/metrics", sc.metrics_addr),
                p2p: format!("/ip4/{}/tcp/{}", ip(k), sc.p2p_port),
                chain_id: Some(g.spec.chain_id(*s)),
                pid: 0,
                log: dir.join(format!("logs/{name}.log")),
                datadir: vdir.clone(),
                args: vec![],
                peer_ids: vec![peer],
                index: k,
            },
            vec![
                "shard".into(),
                "--genesis".into(),
                genesis_path.display().to_string(),
                "--validator-key".into(),
                vdir.join("validator.key").display().to_string(),
                "--config".into(),
                toml_path.display().to_string(),
            ],
        ));
    }
    // standalone challengers: a follower of every shard each, after the validators' ports
    let mut port_k = g.validators.len() + 1;
    for (c, key) in g.challengers.iter().enumerate() {
        let k = g.validators.len() + 1 + c;
        let name = format!("challenger{c}");
        let cdir = dir.join("nodes").join(&name);
        std::fs::create_dir_all(&cdir)?;
        write(&cdir.join("challenger.key"), key.to_hex())?;
        // its followers' p2p keys, one per shard, made here so their ids are known
        let mut peers = Vec::new();
        for s in 0..cfg.network.shards {
            let fdir = cdir.join(format!("shard{s}"));
            std::fs::create_dir_all(&fdir)?;
            peers.push(new_p2p_key(&fdir)?);
        }
        let template = cdir.join("challenger.toml");
        let mut tc = cfg.network.shard_config(bridge::ShardId(0), genesis_time_ms);
        tc.bootnodes = vec![boot.clone()];
        tc.p2p_ip = ip(k).into();
        tc.rpc_addr = SocketAddr::from((ip(k), 0));
        tc.admin_rpc = cfg.admin_rpc;
        write(&template, toml::to_string(&tc).context("serialising challenger config")?)?;
        let addr = |off: usize| SocketAddr::from((ip(k), port(port_k, off)));
        procs.push((
            NodeEntry {
                name: name.clone(),
                role: "challenger".into(),
                shard: None,
                address: key.address().to_string(),
                rpc_url: format!("http://{}", addr(0)),
                metrics_url: format!("http://{}/metrics", addr(1)),
                p2p: format!("/ip4/{}/tcp/{}", ip(k), port(port_k, 2)),
                chain_id: None,
                pid: 0,
                log: dir.join(format!("logs/{name}.log")),
                datadir: cdir.clone(),
                args: vec![],
                peer_ids: peers,
                index: k,
            },
            vec![
                "challenger".into(),
                "--genesis".into(),
                genesis_path.display().to_string(),
                "--key".into(),
                cdir.join("challenger.key").display().to_string(),
                "--config".into(),
                template.display().to_string(),
                "--datadir".into(),
                cdir.display().to_string(),
                "--base-port".into(),
                port(port_k, 0).to_string(),
            ],
        ));
        port_k += cfg.network.shards as usize;
    }
    let mut nodes: Vec<NodeEntry> = Vec::new();
    for (mut entry, args) in procs {
        let cmd = match &plan {
            Some(p) => p.command(entry.index, &exe),
            None => Command::new(&exe),
        };
        match spawn_node(cmd, &args, &entry.log, &cfg.log, false, cfg.tied) {
            Ok(pid) => entry.pid = pid,
            Err(e) => {
                for n in &nodes {
                    signal(n.pid, libc::SIGKILL);
                }
                return Err(e);
            }
        }
        entry.args = args;
        nodes.push(entry);
    }
    let prometheus = dir.join("prometheus.yml");
    write(&prometheus, prometheus_config(&nodes))?;
    let dashboard = dir.join("grafana/optishard-dashboard.json");
    write(&dashboard, serde_json::to_vec_pretty(&grafana_dashboard())?)?;
    let manifest = Manifest {
        network: g.spec.hash(),
        genesis_time_ms,
        slot_ms: g.spec.slot_ms,
        shards: g.spec.shards,
        genesis: genesis_path,
        prometheus_config: prometheus,
        grafana_dashboard: dashboard,
        nodes,
        byzantine: cfg.byzantine.clone(),
        netns: plan,
    };
    write(&dir.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    // the manifest holds the namespaces now: `down` removes them
    guard.0 = None;
    if let Err(e) = wait_ready(&manifest).await {
        down(&dir).await.ok();
        return Err(e);
    }
    Ok(manifest)
}

/// `kill -9` of a node the testnet started.
pub fn kill9(pid: u32) {
    if alive(pid) {
        signal(pid, libc::SIGKILL);
    }
}

/// Starts a node process (`cmd` is the binary, or `ip netns exec NS` and
/// the binary) with `args`, its output to `log` (appended to on a restart).
pub fn spawn_node(
    mut cmd: Command,
    args: &[String],
    log: &Path,
    filter: &str,
    append: bool,
    tied: bool,
) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let what = format!("{:?}", cmd.get_program());
    cmd.args(args)
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // its own process group: Ctrl-C in the shell that ran `up` does not reach it
        .process_group(0);
    if tied {
        // SAFETY: prctl(PR_SET_PDEATHSIG) between fork and exec touches no
        // memory of the parent; it asks the kernel to SIGKILL the child when
        // the thread that spawned it (the runner's main thread) exits
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let child = cmd.spawn().with_context(|| format!("starting {what} {}", args.join(" ")))?;
    Ok(child.id())
}

async fn wait_ready(m: &Manifest) -> Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    // a large testnet's processes start at once on few cores: more time
    let within = 90 + 2 * m.nodes.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(within);
    for n in &m.nodes {
        let method = if n.role == "beacon" { "beacon_head" } else { "optishard_shardInfo" };
        loop {
            if rpc(&client, &n.rpc_url, method, json!([])).await.is_ok() {
                break;
            }
            if !alive(n.pid) {
                let log = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                bail!(
                    "{} exited during start; last log lines:\n{}",
                    n.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer on {} within {within} s (log: {})",
                    n.name,
                    n.rpc_url,
                    n.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Stops every process of the testnet (those the manifest lists and any
/// restarted since): SIGTERM, then SIGKILL after 10 s. Returns how many were running.
pub async fn down(dir: &Path) -> Result<usize> {
    let m = read_manifest(dir)?;
    let mut running: Vec<u32> = m.nodes.iter().map(|n| n.pid).filter(|p| alive(*p)).collect();
    // nodes restarted by hand (or by fault injection) have other pids: find
    // every optishard process whose command line points into this testnet
    let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let needle = root.join("nodes").display().to_string();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains(&needle) && alive(pid) && pid != std::process::id() && !running.contains(&pid) {
            running.push(pid);
        }
    }
    for p in &running {
        signal(*p, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in running.iter().filter(|p| alive(**p)) {
        signal(*p, libc::SIGKILL);
    }
    while running.iter().any(|p| alive(*p)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(plan) = &m.netns {
        plan.destroy();
    }
    Ok(running.len())
}

/// Queries every node: each shard's head, the beacon's head, each shard's lag.
pub async fn status(dir: &Path) -> Result<Value> {
    let m = read_manifest(dir)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let beacon = m.nodes.iter().find(|n| n.role == "beacon").context("manifest lists no beacon")?;
    let bh = rpc(&client, &beacon.rpc_url, "beacon_head", json!([])).await.ok();
    let beacon_slot = bh.as_ref().and_then(|b| b["slot"].as_u64());
    let mut shards = Vec::new();
    for s in 0..m.shards {
        let accepted = bh.as_ref().map(|b| b["heads"][s as usize].clone()).unwrap_or(Value::Null);
        let mut validators = Vec::new();
        for n in m.nodes.iter().filter(|n| n.shard == Some(s)) {
            let info = rpc(&client, &n.rpc_url, "optishard_shardInfo", json!([])).await.ok();
            validators.push(json!({
                "name": n.name,
                "up": info.is_some(),
                "height": info.as_ref().map(|i| i["head"]["height"].clone()),
                "slot": info.as_ref().map(|i| i["head"]["slot"].clone()),
                "peers": info.as_ref().map(|i| i["validator"]["peers"].clone()),
                "mismatches": info.as_ref().map(|i| i["mismatches"].clone()),
            }));
        }
        let accepted_slot = accepted["slot"].as_u64();
        shards.push(json!({
            "shard": s,
            "head": validators.iter().filter_map(|v| v["height"].as_u64()).max(),
            "beacon_height": accepted["height"],
            "beacon_slot": accepted_slot,
            "lag_slots": match (beacon_slot, accepted_slot) { (Some(b), Some(a)) => json!(b.saturating_sub(a)), _ => Value::Null },
            "validators": validators,
        }));
    }
    let current_slot = (net::now_ms().saturating_sub(m.genesis_time_ms)) / m.slot_ms;
    let games =
        rpc(&client, &beacon.rpc_url, "beacon_games", json!([null, "open"])).await.unwrap_or(Value::Null);
    let open_games: Vec<Value> = games
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let r = &g["record"];
            json!({
                "id": r["id"], "shard": r["shard"], "height": r["height"],
                "challenger": r["challenger"], "defender": r["defender"],
                "rounds": r["game"]["rounds"], "range": [r["game"]["lo"], r["game"]["hi"]],
                "clocks": r["game"]["clocks"], "opened_slot": r["opened_slot"],
            })
        })
        .collect();
    Ok(json!({
        "network": m.network,
        "current_slot": current_slot,
        "beacon": {"up": bh.is_some(), "slot": beacon_slot, "rpc": beacon.rpc_url},
        "shards": shards,
        "open_games": open_games,
        "byzantine": m.byzantine,
    }))
}

/// A header the beacon made final although a validator's re-execution
/// refutes it: what a network without an honest challenger lets through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidFinal {
    /// Shard.
    pub shard: u32,
    /// Height.
    pub height: u64,
    /// The header's hash.
    pub hash: bridge::Hash,
    /// Who proposed it.
    pub proposer: bridge::Address,
    /// The validator whose re-execution refutes it.
    pub refuted_by: String,
    /// The first field re-execution disagrees on.
    pub field: String,
}

/// Final headers some validator's re-execution refutes (its kept mismatch
/// evidence names a header the beacon lists as final).
pub async fn invalid_final(dir: &Path) -> Result<Vec<InvalidFinal>> {
    let m = read_manifest(dir)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let beacon = m.nodes.iter().find(|n| n.role == "beacon").context("manifest lists no beacon")?;
    // every validator asked at once (a large testnet has many)
    let validators: Vec<&NodeEntry> = m.nodes.iter().filter(|n| n.role == "validator").collect();
    let lists = futures::future::join_all(
        validators.iter().map(|n| rpc(&client, &n.rpc_url, "optishard_mismatches", json!([]))),
    )
    .await;
    let mut out: Vec<InvalidFinal> = Vec::new();
    for (n, list) in validators.iter().zip(lists) {
        let Ok(list) = list else { continue };
        let list: Vec<shard::Mismatch> = serde_json::from_value(list).unwrap_or_default();
        for mm in list {
            if out.iter().any(|x| x.hash == mm.block_hash) {
                continue;
            }
            let st =
                rpc(&client, &beacon.rpc_url, "beacon_headerStatus", json!([mm.shard.0, mm.height])).await?;
            if st["status"] == "final" && st["hash"] == json!(mm.block_hash) {
                out.push(InvalidFinal {
                    shard: mm.shard.0,
                    height: mm.height,
                    hash: mm.block_hash,
                    proposer: mm.proposer,
                    refuted_by: n.name.clone(),
                    field: mm.field,
                });
            }
        }
    }
    Ok(out)
}

/// The conservation audit at the beacon's accepted heads: each shard's
/// totals (`optishard_supply`) from a validator that has its accepted head.
pub async fn audit(dir: &Path) -> Result<shard::Audit> {
    let m = read_manifest(dir)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let beacon = m.nodes.iter().find(|n| n.role == "beacon").context("manifest lists no beacon")?;
    let bh = rpc(&client, &beacon.rpc_url, "beacon_head", json!([])).await.context("beacon down")?;
    // every shard asked at once
    let one = |s: u32| {
        let (client, bh, m) = (&client, &bh, &m);
        async move {
            let height = bh["heads"][s as usize]["height"].as_u64().context("beacon head without heights")?;
            for n in m.nodes.iter().filter(|n| n.shard == Some(s)) {
                if let Ok(v) =
                    rpc(client, &n.rpc_url, "optishard_supply", json!([format!("{height:#x}")])).await
                {
                    return serde_json::from_value::<shard::Supply>(v).context("supply answer");
                }
            }
            anyhow::bail!("no validator of shard {s} has its accepted head {height}")
        }
    };
    let shards =
        futures::future::join_all((0..m.shards).map(one)).await.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(shard::Audit::of(shards))
}

/// `optishard testnet demo`: a cross-shard transfer, stage by stage.
pub async fn demo(dir: &Path, finalize: bool) -> Result<()> {
    use alloy_sol_types::SolCall;
    let m = read_manifest(dir)?;
    anyhow::ensure!(m.shards >= 2, "a cross-shard demo needs at least 2 shards");
    let spec = crate::read_spec(&m.genesis)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let (src, dst) = (0u32, m.shards - 1);
    let url = |s: u32| m.nodes.iter().find(|n| n.shard == Some(s)).map(|n| n.rpc_url.clone());
    let (src_url, dst_url) =
        (url(src).context("no validator of shard 0")?, url(dst).context("no validator")?);
    let (signer, acct) = shard::dev_accounts().remove(5);
    let to = alloy_primitives::Address::from(rand::random::<[u8; 20]>());
    let nonce = rpc(&client, &src_url, "eth_getTransactionCount", json!([acct.address, "pending"])).await?;
    let nonce = u64::from_str_radix(nonce.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)?;
    let data = prover::IBridge::sendCall { dstShard: dst, to, data: Default::default() }.abi_encode();
    let value = alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(18));
    let raw = crate::sign_call(
        &signer,
        spec.chain_id(bridge::ShardId(src)),
        nonce,
        alloy_primitives::TxKind::Call(bridge::BRIDGE_ADDRESS),
        value,
        data.into(),
        300_000,
    );
    let t0 = std::time::Instant::now();
    let hash =
        rpc(&client, &src_url, "eth_sendRawTransaction", json!([format!("0x{}", hex::encode(&raw))])).await?;
    println!(
        "sent 1 ETH from {} on shard {src} to {to} on shard {dst} (tx {})",
        acct.address,
        hash.as_str().unwrap_or("?")
    );
    let receipt = poll(
        Duration::from_secs(30),
        || rpc(&client, &src_url, "eth_getTransactionReceipt", json!([hash])),
        |r| !r.is_null(),
    )
    .await?;
    let id = receipt["logs"]
        .as_array()
        .and_then(|ls| {
            ls.iter().find(|l| {
                l["address"]
                    .as_str()
                    .is_some_and(|a| a.eq_ignore_ascii_case(&format!("{:#x}", bridge::BRIDGE_ADDRESS)))
            })
        })
        .and_then(|l| l["topics"][1].as_str())
        .context("the send emitted no MessageSent log")?
        .to_string();
    println!("message {id}");
    let stage = |name: &str, v: &Value, at: &str| {
        println!(
            "  {:>6.1}s  {name:<10} {at} block {} (slot {})",
            t0.elapsed().as_secs_f64(),
            v[at]["height"],
            v[at]["slot"]
        );
    };
    let v = poll(
        Duration::from_secs(30),
        || rpc(&client, &src_url, "optishard_getMessage", json!([id])),
        |v| !v.is_null(),
    )
    .await?;
    if v["status"] == "pending" {
        stage("pending", &v, "source");
    }
    let v = poll(
        Duration::from_secs(30),
        || rpc(&client, &src_url, "optishard_getMessage", json!([id])),
        |v| v["status"] == "committed",
    )
    .await?;
    stage("committed", &v, "source");
    let v = poll(
        Duration::from_secs(60),
        || rpc(&client, &dst_url, "optishard_getMessage", json!([id])),
        |v| v["status"] == "executed" || v["status"] == "finalized",
    )
    .await?;
    stage("executed", &v, "destination");
    let balance = rpc(&client, &dst_url, "eth_getBalance", json!([to, "latest"])).await?;
    println!(
        "balance of {to} on shard {dst}: {} wei",
        balance
            .as_str()
            .map(|b| u128::from_str_radix(b.trim_start_matches("0x"), 16).unwrap_or(0))
            .unwrap_or(0)
    );
    if finalize {
        let window = spec.challenge_window() * spec.slot_ms / 1000 + 30;
        let v = poll(
            Duration::from_secs(window),
            || rpc(&client, &dst_url, "optishard_getMessage", json!([id])),
            |v| v["status"] == "finalized",
        )
        .await?;
        stage("finalized", &v, "destination");
    } else {
        println!(
            "it is final after the challenge window ({} slots): optishard testnet demo --finalize waits for it",
            spec.challenge_window()
        );
    }
    Ok(())
}

/// Calls `f` until its answer satisfies `done`, or fails after `within`.
async fn poll<F, Fut>(within: Duration, mut f: F, done: impl Fn(&Value) -> bool) -> Result<Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Ok(v) = f().await
            && done(&v)
        {
            return Ok(v);
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "timed out after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The audit as a table.
pub fn print_audit(a: &shard::Audit) {
    let eth = |v: alloy_primitives::U256| format!("{:.6}", f64::from(v) / 1e18);
    println!(
        "{:<6} {:>8} {:>24} {:>16} {:>16} {:>14} {:>14}  holds",
        "shard", "height", "balances (ETH)", "sent out", "received", "refunds sent", "fees burned"
    );
    for (i, s) in a.shards.iter().enumerate() {
        println!(
            "{:<6} {:>8} {:>24} {:>16} {:>16} {:>14} {:>14}  {}",
            i,
            s.height,
            eth(s.balances),
            eth(s.sent_out),
            eth(s.received),
            eth(s.refunds_sent),
            eth(s.fees_burned),
            s.holds()
        );
    }
    println!("genesis      {} wei", a.genesis);
    println!("balances     {} wei", a.balances);
    println!("in flight    {} wei", a.in_flight);
    println!("fees burned  {} wei", a.fees_burned);
    println!(
        "balances + in flight + fees burned = genesis: {}",
        if a.holds { "holds" } else { "DOES NOT HOLD" }
    );
}

/// The status as a table.
pub fn print_status(s: &Value) {
    println!(
        "network {}  current slot {}  beacon head slot {}",
        s["network"].as_str().unwrap_or("?"),
        s["current_slot"],
        if s["beacon"]["up"].as_bool() == Some(true) {
            s["beacon"]["slot"].to_string()
        } else {
            "DOWN".into()
        }
    );
    println!(
        "{:<6} {:>8} {:>14} {:>12} {:>10}  validators (height)",
        "shard", "head", "beacon height", "beacon slot", "lag slots"
    );
    for sh in s["shards"].as_array().into_iter().flatten() {
        let vals: Vec<String> = sh["validators"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                if v["up"].as_bool() == Some(true) {
                    format!("{} {}", v["name"].as_str().unwrap_or("?"), v["height"])
                } else {
                    format!("{} DOWN", v["name"].as_str().unwrap_or("?"))
                }
            })
            .collect();
        println!(
            "{:<6} {:>8} {:>14} {:>12} {:>10}  {}",
            sh["shard"],
            sh["head"].to_string(),
            sh["beacon_height"].to_string(),
            sh["beacon_slot"].to_string(),
            sh["lag_slots"].to_string(),
            vals.join(", ")
        );
    }
    let games = s["open_games"].as_array().cloned().unwrap_or_default();
    println!("open dispute games: {}", games.len());
    for g in games {
        println!(
            "  game {} on shard {} height {}: round {}, range {}..{}, clocks {} (defender) / {} (challenger)",
            g["id"].as_str().unwrap_or("?"),
            g["shard"],
            g["height"],
            g["rounds"],
            g["range"][0],
            g["range"][1],
            g["clocks"][0],
            g["clocks"][1]
        );
    }
}
