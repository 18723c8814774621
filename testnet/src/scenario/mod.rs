//! Scenario files: a network, a workload and a timeline of faults by slot,
//! in TOML, played on either tier (`optishard scenario run FILE`). A file
//! is read whole and checked before anything starts: an unknown key, a
//! node that does not exist, a timeline out of order or a value out of
//! range is an error naming the entry, and nothing runs.
//!
//! Nodes are named `beacon`, `shardS-vK` (validator `K` of shard `S`,
//! both from 0) and `challengerN` (standalone challenger `N`); a group of
//! nodes is a list of those names or `shardS` (every validator of shard
//! `S`). See the README's scenario reference for every key.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub mod cli;
pub mod html;
pub mod invariants;
pub mod procs;
pub mod report;
pub mod sim;
pub mod sweep;
pub mod workload;

/// A scenario: what runs, what load it carries, what happens when.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A short name (reports are titled with it).
    pub name: String,
    /// What the scenario asks, for people.
    #[serde(default)]
    pub description: String,
    /// The seed a run takes unless `--seed` gives another.
    #[serde(default)]
    pub seed: u64,
    /// How many slots the run lasts.
    pub slots: u64,
    /// The network.
    pub network: NetworkSpec,
    /// The load users put on it.
    #[serde(default)]
    pub workload: WorkloadSpec,
    /// What happens, by slot, in order.
    #[serde(default)]
    pub timeline: Vec<Event>,
}

/// The network a scenario starts.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Number of shards.
    pub shards: u32,
    /// Validators in each shard.
    #[serde(default = "default_validators")]
    pub validators_per_shard: u32,
    /// Standalone challengers (each follows every shard).
    #[serde(default)]
    pub challengers: u32,
    /// Slot length in milliseconds.
    #[serde(default = "default_slot_ms")]
    pub slot_ms: u64,
    /// Slots a header can be challenged after its inclusion.
    #[serde(default = "default_window")]
    pub challenge_window_slots: u64,
    /// The dispute game's branching factor.
    #[serde(default = "default_k")]
    pub dispute_k: u64,
}

fn default_validators() -> u32 {
    2
}
fn default_slot_ms() -> u64 {
    1_000
}
fn default_window() -> u64 {
    64
}
fn default_k() -> u64 {
    4
}

/// Open-loop load: transactions arrive at `rate` a second whatever the
/// network does.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Transactions a second over the whole network.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Share of them that send a message to another shard (0 to 1).
    #[serde(default)]
    pub cross_shard: f64,
    /// Share of them that are ERC-20 transfers (0 to 1).
    #[serde(default)]
    pub erc20: f64,
    /// Share of them that are contract calls (0 to 1).
    #[serde(default)]
    pub contract_calls: f64,
    /// Funded accounts sending them, per shard.
    #[serde(default = "default_accounts")]
    pub accounts: u32,
}

fn default_rate() -> f64 {
    10.0
}
fn default_accounts() -> u32 {
    10
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec { rate: default_rate(), cross_shard: 0.0, erc20: 0.0, contract_calls: 0.0, accounts: 10 }
    }
}

/// One entry of the timeline: at slot `at`, something starts (and, with
/// `until`, stops before that slot). Each key is described in the
/// README's scenario reference.
#[allow(missing_docs)]
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Event {
    /// A node is killed (`kill -9`): it stops at once; its database stays.
    Kill { at: u64, node: String },
    /// A killed node starts again from its database.
    Restart { at: u64, node: String },
    /// No packet passes between any node of `a` and any of `b` from `at`
    /// until `until` (or the end).
    Partition {
        at: u64,
        a: Vec<String>,
        b: Vec<String>,
        #[serde(default)]
        until: Option<u64>,
    },
    /// The links between the nodes of `a` and those of `b` get latency,
    /// jitter, loss and a bandwidth limit from `at` until `until`.
    Link {
        at: u64,
        a: Vec<String>,
        b: Vec<String>,
        #[serde(default)]
        latency_ms: u64,
        #[serde(default)]
        jitter_ms: u64,
        /// Share of packets dropped (0 to 1).
        #[serde(default)]
        loss: f64,
        /// Kilobits a second each way (none: unlimited).
        #[serde(default)]
        bandwidth_kbps: Option<u64>,
        #[serde(default)]
        until: Option<u64>,
    },
    /// A validator plays a byzantine mode (`shard::Fault`'s names) on
    /// `rate_percent` of its chances, from `at` until `until`.
    Byzantine {
        at: u64,
        node: String,
        mode: String,
        #[serde(default = "hundred")]
        rate_percent: u8,
        #[serde(default)]
        until: Option<u64>,
    },
    /// A challenger (a validator's own, or a standalone one) stops
    /// watching (`on = false`) or starts again.
    Challenger { at: u64, node: String, on: bool },
    /// The beacon stops (`on = false`: crashed, nothing it had not sealed
    /// survives) or starts again from its database.
    Beacon { at: u64, on: bool },
    /// The workload's rate changes to `rate` transactions a second.
    Load { at: u64, rate: f64 },
}

fn hundred() -> u8 {
    100
}

impl Event {
    /// The slot it happens at.
    pub fn at(&self) -> u64 {
        match self {
            Event::Kill { at, .. }
            | Event::Restart { at, .. }
            | Event::Partition { at, .. }
            | Event::Link { at, .. }
            | Event::Byzantine { at, .. }
            | Event::Challenger { at, .. }
            | Event::Beacon { at, .. }
            | Event::Load { at, .. } => *at,
        }
    }

    /// The slot it stops at, for those that last.
    pub fn until(&self) -> Option<u64> {
        match self {
            Event::Partition { until, .. } | Event::Link { until, .. } | Event::Byzantine { until, .. } => {
                *until
            }
            _ => None,
        }
    }

    /// Its action's name, as in the file.
    pub fn action(&self) -> &'static str {
        match self {
            Event::Kill { .. } => "kill",
            Event::Restart { .. } => "restart",
            Event::Partition { .. } => "partition",
            Event::Link { .. } => "link",
            Event::Byzantine { .. } => "byzantine",
            Event::Challenger { .. } => "challenger",
            Event::Beacon { .. } => "beacon",
            Event::Load { .. } => "load",
        }
    }
}

/// A node of the network, by what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// The beacon.
    Beacon,
    /// A validator.
    Validator {
        /// Its shard (from 0).
        shard: u32,
        /// Its place among the shard's validators (from 0).
        index: u32,
    },
    /// Standalone challenger `n`.
    Challenger(u32),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Beacon => write!(f, "beacon"),
            Node::Validator { shard, index } => write!(f, "shard{shard}-v{index}"),
            Node::Challenger(n) => write!(f, "challenger{n}"),
        }
    }
}

impl NetworkSpec {
    /// Every node of the network.
    pub fn nodes(&self) -> Vec<Node> {
        let mut out = vec![Node::Beacon];
        for shard in 0..self.shards {
            out.extend((0..self.validators_per_shard).map(|index| Node::Validator { shard, index }));
        }
        out.extend((0..self.challengers).map(Node::Challenger));
        out
    }

    /// The node `name` names, if the network has it.
    pub fn node(&self, name: &str) -> Result<Node> {
        let node = parse_node(name)
            .with_context(|| format!("{name:?} is not a node name (beacon, shardS-vK, challengerN)"))?;
        if !self.nodes().contains(&node) {
            bail!(
                "no node {name:?} in this network ({} shards × {} validators, {} challengers)",
                self.shards,
                self.validators_per_shard,
                self.challengers
            );
        }
        Ok(node)
    }

    /// The nodes a group names: node names, or `shardS` for all of shard
    /// `S`'s validators.
    pub fn group(&self, names: &[String]) -> Result<BTreeSet<Node>> {
        let mut out = BTreeSet::new();
        for name in names {
            match name.strip_prefix("shard").and_then(|s| s.parse::<u32>().ok()) {
                Some(shard) if shard < self.shards => {
                    out.extend((0..self.validators_per_shard).map(|index| Node::Validator { shard, index }));
                }
                Some(shard) => bail!("no shard {shard} in this network of {} shards", self.shards),
                None => {
                    out.insert(self.node(name)?);
                }
            }
        }
        if out.is_empty() {
            bail!("an empty group of nodes");
        }
        Ok(out)
    }
}

fn parse_node(name: &str) -> Option<Node> {
    if name == "beacon" {
        return Some(Node::Beacon);
    }
    if let Some(n) = name.strip_prefix("challenger") {
        return n.parse().ok().map(Node::Challenger);
    }
    let (shard, index) = name.strip_prefix("shard")?.split_once("-v")?;
    Some(Node::Validator { shard: shard.parse().ok()?, index: index.parse().ok()? })
}

/// Largest network a scenario may ask for (the process tier's ports and
/// the machine bound it far below).
const MAX_SHARDS: u32 = 1_024;
const MAX_VALIDATORS: u32 = 64;
const MAX_SLOTS: u64 = 1_000_000;

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    /// Parses and checks a scenario's text.
    pub fn parse(text: &str) -> Result<Scenario> {
        let s: Scenario = toml::from_str(text)?;
        s.check()?;
        Ok(s)
    }

    /// Every rule a scenario must meet before it runs.
    pub fn check(&self) -> Result<()> {
        let n = &self.network;
        if n.shards == 0 || n.shards > MAX_SHARDS {
            bail!("network.shards must be 1 to {MAX_SHARDS}, not {}", n.shards);
        }
        if n.validators_per_shard == 0 || n.validators_per_shard > MAX_VALIDATORS {
            bail!(
                "network.validators_per_shard must be 1 to {MAX_VALIDATORS}, not {}",
                n.validators_per_shard
            );
        }
        if n.slot_ms < 50 {
            bail!("network.slot_ms must be at least 50, not {}", n.slot_ms);
        }
        if n.challenge_window_slots < 4 {
            bail!("network.challenge_window_slots must be at least 4, not {}", n.challenge_window_slots);
        }
        if !(2..=64).contains(&n.dispute_k) {
            bail!("network.dispute_k must be 2 to 64, not {}", n.dispute_k);
        }
        if self.slots == 0 || self.slots > MAX_SLOTS {
            bail!("slots must be 1 to {MAX_SLOTS}, not {}", self.slots);
        }
        let w = &self.workload;
        check_rate("workload.rate", w.rate)?;
        for (key, share) in
            [("cross_shard", w.cross_shard), ("erc20", w.erc20), ("contract_calls", w.contract_calls)]
        {
            if !(0.0..=1.0).contains(&share) {
                bail!("workload.{key} is a share from 0 to 1, not {share}");
            }
        }
        if w.cross_shard + w.erc20 + w.contract_calls > 1.0 + 1e-9 {
            bail!("workload.cross_shard + erc20 + contract_calls add up to more than 1");
        }
        if w.cross_shard > 0.0 && n.shards < 2 {
            bail!("workload.cross_shard needs at least 2 shards");
        }
        if w.accounts == 0 || w.accounts > 10_000 {
            bail!("workload.accounts must be 1 to 10000, not {}", w.accounts);
        }
        let mut last = 0;
        for (i, e) in self.timeline.iter().enumerate() {
            let entry = || format!("timeline entry {} ({} at slot {})", i + 1, e.action(), e.at());
            if e.at() < last {
                bail!("{}: the timeline is out of order (the entry before is at slot {last})", entry());
            }
            last = e.at();
            if e.at() >= self.slots {
                bail!("{}: past the run's end (slots = {})", entry(), self.slots);
            }
            if let Some(until) = e.until()
                && until <= e.at()
            {
                bail!("{}: until = {until} must come after at", entry());
            }
            self.check_event(e).with_context(entry)?;
        }
        Ok(())
    }

    fn check_event(&self, e: &Event) -> Result<()> {
        let n = &self.network;
        match e {
            Event::Kill { node, .. } | Event::Restart { node, .. } => {
                n.node(node)?;
            }
            Event::Partition { a, b, .. } | Event::Link { a, b, .. } => {
                let (a, b) = (n.group(a)?, n.group(b)?);
                if let Some(both) = a.intersection(&b).next() {
                    bail!("{both} is on both sides");
                }
            }
            Event::Byzantine { node, mode, rate_percent, .. } => {
                if !matches!(n.node(node)?, Node::Validator { .. }) {
                    bail!("only a validator plays a byzantine mode, not {node}");
                }
                if shard::Fault::parse(mode).is_none() {
                    bail!("unknown byzantine mode {mode:?} (one of: {})", shard::Fault::names().join(", "));
                }
                if *rate_percent == 0 || *rate_percent > 100 {
                    bail!("rate_percent must be 1 to 100, not {rate_percent}");
                }
            }
            Event::Challenger { node, .. } => {
                if matches!(n.node(node)?, Node::Beacon) {
                    bail!("the beacon has no challenger");
                }
            }
            Event::Beacon { .. } => {}
            Event::Load { rate, .. } => check_rate("rate", *rate)?,
        }
        if let Event::Link { latency_ms, jitter_ms, loss, bandwidth_kbps, .. } = e {
            if *latency_ms > 60_000 || *jitter_ms > 60_000 {
                bail!("latency_ms and jitter_ms must be at most 60000");
            }
            if !(0.0..=1.0).contains(loss) {
                bail!("loss is a share from 0 to 1, not {loss}");
            }
            if *bandwidth_kbps == Some(0) {
                bail!("bandwidth_kbps must be above 0 (a partition stops every packet)");
            }
        }
        Ok(())
    }
}

fn check_rate(key: &str, rate: f64) -> Result<()> {
    if !rate.is_finite() || !(0.0..=100_000.0).contains(&rate) {
        bail!("{key} must be 0 to 100000 transactions a second, not {rate}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "partitioned shard"
slots = 100

[network]
shards = 4
validators_per_shard = 2
challengers = 1

[workload]
rate = 20
cross_shard = 0.5

[[timeline]]
action = "partition"
at = 10
a = ["shard1"]
b = ["beacon"]
until = 40

[[timeline]]
action = "byzantine"
at = 20
node = "shard2-v0"
mode = "wrong-state-root"
rate_percent = 10

[[timeline]]
action = "link"
at = 30
a = ["shard0"]
b = ["shard1"]
latency_ms = 200
jitter_ms = 20
loss = 0.01
bandwidth_kbps = 1000

[[timeline]]
action = "challenger"
at = 30
node = "challenger0"
on = false

[[timeline]]
action = "beacon"
at = 50
on = false
"#;

    #[test]
    fn a_good_file_reads_whole() {
        let s = Scenario::parse(GOOD).unwrap();
        assert_eq!(s.network.shards, 4);
        assert_eq!(s.network.slot_ms, 1_000, "defaults fill what is left out");
        assert_eq!(s.timeline.len(), 5);
        assert_eq!(s.timeline[0].until(), Some(40));
        let Event::Partition { a, b, .. } = &s.timeline[0] else { panic!("a partition") };
        assert_eq!(s.network.group(a).unwrap().len(), 2, "shard1 is its two validators");
        assert_eq!(s.network.group(b).unwrap().into_iter().collect::<Vec<_>>(), vec![Node::Beacon]);
    }

    /// Each bad file is refused with an error naming what is wrong.
    #[test]
    fn bad_files_are_clear_errors() {
        let cases: &[(&str, &str, &str)] = &[
            ("an unknown top-level key", "name = \"x\"\nslots = 100\n", "speed = 3\n"),
            ("an unknown network key", "", "[network]\nshards = 2\nsharding = true\n"),
            ("an unknown action", "", "[[timeline]]\naction = \"explode\"\nat = 3\n"),
            (
                "an unknown key in an entry",
                "",
                "[[timeline]]\naction = \"kill\"\nat = 3\nnode = \"shard0-v0\"\nsignal = 9\n",
            ),
            (
                "a node that does not exist",
                "",
                "[[timeline]]\naction = \"kill\"\nat = 3\nnode = \"shard9-v0\"\n",
            ),
            (
                "a validator past the shard's",
                "",
                "[[timeline]]\naction = \"kill\"\nat = 3\nnode = \"shard0-v7\"\n",
            ),
            ("not a node name", "", "[[timeline]]\naction = \"kill\"\nat = 3\nnode = \"validator-3\"\n"),
            (
                "out of order",
                "",
                "[[timeline]]\naction = \"kill\"\nat = 30\nnode = \"shard0-v0\"\n[[timeline]]\naction = \"restart\"\nat = 20\nnode = \"shard0-v0\"\n",
            ),
            ("past the end", "", "[[timeline]]\naction = \"beacon\"\nat = 500\non = false\n"),
            (
                "until before at",
                "",
                "[[timeline]]\naction = \"partition\"\nat = 30\nuntil = 20\na = [\"shard0\"]\nb = [\"beacon\"]\n",
            ),
            (
                "a node on both sides",
                "",
                "[[timeline]]\naction = \"partition\"\nat = 3\na = [\"shard0\"]\nb = [\"shard0-v1\"]\n",
            ),
            (
                "an unknown mode",
                "",
                "[[timeline]]\naction = \"byzantine\"\nat = 3\nnode = \"shard0-v0\"\nmode = \"evil\"\n",
            ),
            (
                "a loss past 1",
                "",
                "[[timeline]]\naction = \"link\"\nat = 3\na = [\"shard0\"]\nb = [\"shard1\"]\nloss = 1.5\n",
            ),
            ("a share past 1", "", "[workload]\ncross_shard = 2.0\n"),
            ("no shards", "", "[network]\nshards = 0\n"),
            ("a string for a number", "", "[network]\nshards = \"four\"\n"),
        ];
        let expect = [
            "speed",
            "sharding",
            "explode",
            "signal",
            "shard9-v0",
            "shard0-v7",
            "validator-3",
            "out of order",
            "past the run's end",
            "until = 20",
            "on both sides",
            "evil",
            "loss",
            "cross_shard",
            "network.shards",
            "shards",
        ];
        for ((what, head, tail), expect) in cases.iter().zip(expect) {
            let head = if head.is_empty() { "name = \"x\"\nslots = 100\n" } else { head };
            // a network table unless the case brings its own
            let network = if tail.contains("[network]") { "" } else { "[network]\nshards = 2\n" };
            let text = format!("{head}{network}{tail}");
            let err = format!("{:#}", Scenario::parse(&text).expect_err(what));
            assert!(err.contains(expect), "{what}: {err}");
        }
    }
}
