//! Each node of a process testnet in its own network namespace: a veth
//! pair from the namespace to one bridge in the root namespace, an address
//! per node, so faults are the kernel's: a partition is iptables dropping
//! the packets between two namespaces, a bandwidth limit an `htb` class
//! on the sender's interface. Needs root, `ip`, `iptables` and `tc`
//! (`scripts/setup.sh` installs them); [`NetPlan::unavailable`] says why not.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The namespaces, bridge and addresses of one testnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetPlan {
    /// The bridge in the root namespace (`ob<tag>`).
    pub bridge: String,
    /// The second octet of the testnet's `10.x.0.0/16`.
    pub octet: u8,
    /// Each node's namespace, by node index (0: the beacon).
    pub namespaces: Vec<String>,
}

fn run(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {} (scripts/setup.sh installs it)", args[0]))?;
    if !out.status.success() {
        bail!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-V").output().is_ok_and(|o| o.status.success())
        || Command::new(tool).arg("-Version").output().is_ok_and(|o| o.status.success())
}

/// Makes the kernel's ARP table hold every pair of nodes. That table is
/// one for all namespaces, and its default ceiling (`gc_thresh3`, 1,024
/// entries) is below the n² a mesh of n namespaces needs from about 32
/// nodes: past it the kernel creates no entry, and new connections between
/// namespaces (and from the runner) silently fail (`table_fulls` in
/// `/proc/net/stat/arp_cache`). The thresholds are raised, never lowered,
/// machine-wide; they stay raised after the testnet.
fn room_for_neighbours(nodes: usize) -> Result<()> {
    let need = (nodes as u64 + 1).saturating_mul(nodes as u64 + 1);
    for (name, value) in [("gc_thresh1", need), ("gc_thresh2", 2 * need), ("gc_thresh3", 4 * need)] {
        let path = format!("/proc/sys/net/ipv4/neigh/default/{name}");
        let now: u64 = std::fs::read_to_string(&path).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        if now < value {
            std::fs::write(&path, value.to_string()).with_context(|| format!("raising {path} to {value}"))?;
        }
    }
    Ok(())
}

impl NetPlan {
    /// Why namespaces cannot be used here (`None`: they can).
    pub fn unavailable() -> Option<String> {
        // SAFETY: geteuid reads the process's credentials and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Some("network namespaces need root".into());
        }
        for tool in ["ip", "iptables", "tc"] {
            if !have(tool) {
                return Some(format!("`{tool}` is not installed (scripts/setup.sh installs it)"));
            }
        }
        None
    }

    /// Makes `nodes` namespaces on a new bridge, with a subnet no other
    /// interface here uses.
    pub fn create(nodes: usize) -> Result<NetPlan> {
        if let Some(why) = Self::unavailable() {
            bail!("{why}");
        }
        anyhow::ensure!(nodes < 60_000, "{nodes} nodes do not fit one /16");
        let used = Command::new("ip").args(["-4", "-o", "addr"]).output().context("ip addr")?;
        let used = String::from_utf8_lossy(&used.stdout).to_string();
        let octet = (100u8..250)
            .find(|o| !used.contains(&format!(" 10.{o}.")))
            .context("no free 10.x.0.0/16 subnet for the testnet")?;
        let tag = format!("{:05x}", (std::process::id() as u64 * 131 + u64::from(octet)) & 0xfffff);
        let plan = NetPlan {
            bridge: format!("ob{tag}"),
            octet,
            namespaces: (0..nodes).map(|k| format!("o{tag}n{k}")).collect(),
        };
        if let Err(e) = plan.build().and_then(|()| room_for_neighbours(nodes)) {
            plan.destroy();
            return Err(e);
        }
        Ok(plan)
    }

    fn build(&self) -> Result<()> {
        let gw = format!("{}/16", self.gateway());
        run(&["ip", "link", "add", &self.bridge, "type", "bridge"])?;
        run(&["ip", "addr", "add", &gw, "dev", &self.bridge])?;
        run(&["ip", "link", "set", &self.bridge, "up"])?;
        for (k, ns) in self.namespaces.iter().enumerate() {
            let host = self.host_if(k);
            let ip = format!("{}/16", self.ip(k));
            run(&["ip", "netns", "add", ns])?;
            run(&["ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
            run(&["ip", "link", "set", &host, "master", &self.bridge, "up"])?;
            run(&["ip", "-n", ns, "addr", "add", &ip, "dev", "eth0"])?;
            run(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    fn host_if(&self, k: usize) -> String {
        format!("{}h{k}", &self.bridge[1..])
    }

    /// The bridge's address (the root namespace's way in).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 1)
    }

    /// Node `k`'s address.
    pub fn ip(&self, k: usize) -> Ipv4Addr {
        let n = k + 2;
        Ipv4Addr::new(10, self.octet, (n / 256) as u8, (n % 256) as u8)
    }

    /// The command that runs `exe` in node `k`'s namespace.
    pub fn command(&self, k: usize, exe: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.namespaces[k]]).arg(exe);
        c
    }

    /// Cuts (or heals) the link between nodes `a` and `b`: each drops
    /// what comes from and goes to the other, so TCP connections stall and
    /// time out as over a broken network.
    pub fn set_cut(&self, a: usize, b: usize, cut: bool) -> Result<()> {
        let op = if cut { "-I" } else { "-D" };
        for (x, y) in [(a, b), (b, a)] {
            let (ns, peer) = (&self.namespaces[x], self.ip(y).to_string());
            let exists = |chain: &str, dir: &str| {
                Command::new("ip")
                    .args(["netns", "exec", ns, "iptables", "-C", chain, dir, &peer, "-j", "DROP"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            };
            for (chain, dir) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
                // idempotent: cutting twice adds one rule, healing an uncut link removes none
                if exists(chain, dir) != cut {
                    run(&["ip", "netns", "exec", ns, "iptables", op, chain, dir, &peer, "-j", "DROP"])?;
                }
            }
        }
        Ok(())
    }

    /// Limits what node `a` sends to node `b` to `kbps` (`None`: no
    /// limit): an htb class on `a`'s interface for `b`'s address.
    pub fn set_bandwidth(&self, a: usize, b: usize, kbps: Option<u64>) -> Result<()> {
        let ns = &self.namespaces[a];
        let shown = Command::new("tc").args(["-n", ns, "qdisc", "show", "dev", "eth0"]).output()?;
        if !String::from_utf8_lossy(&shown.stdout).contains("htb 1:") {
            run(&[
                "tc", "-n", ns, "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb", "default",
                "1",
            ])?;
            run(&[
                "tc", "-n", ns, "class", "replace", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb",
                "rate", "10gbit",
            ])?;
        }
        let id = format!("1:{:x}", b + 16);
        let rate = kbps.map_or("10gbit".to_string(), |k| format!("{k}kbit"));
        run(&[
            "tc", "-n", ns, "class", "replace", "dev", "eth0", "parent", "1:", "classid", &id, "htb", "rate",
            &rate,
        ])?;
        // one filter per peer, at its own priority: replaced by deleting that priority's
        let prio = (b + 1).to_string();
        let _ = run(&["tc", "-n", ns, "filter", "del", "dev", "eth0", "parent", "1:", "prio", &prio]);
        let dst = format!("{}/32", self.ip(b));
        run(&[
            "tc", "-n", ns, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", &prio,
            "u32", "match", "ip", "dst", &dst, "flowid", &id,
        ])
    }

    /// Removes the namespaces (their veths go with them) and the bridge.
    pub fn destroy(&self) {
        for ns in &self.namespaces {
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = run(&["ip", "link", "del", &self.bridge]);
    }
}
