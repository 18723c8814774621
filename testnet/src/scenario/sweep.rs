//! A sweep: one scenario run over a grid of its parameters
//! (`--vary shards=4,8,16 --vary cross=0,0.5`), one report per point and
//! one over all of them, with a plot per swept figure.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::Scenario;
use super::report::Report;

/// One swept parameter and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Vary {
    /// The key, as given.
    pub key: String,
    /// Its values.
    pub values: Vec<f64>,
}

/// The keys a sweep may vary, with what each sets.
const KEYS: [(&str, &str); 8] = [
    ("shards", "network.shards"),
    ("validators", "network.validators_per_shard"),
    ("slot_ms", "network.slot_ms"),
    ("window", "network.challenge_window_slots"),
    ("rate", "workload.rate"),
    ("cross", "workload.cross_shard"),
    ("accounts", "workload.accounts"),
    ("slots", "slots"),
];

impl Vary {
    /// Parses `key=v1,v2,…`.
    pub fn parse(text: &str) -> Result<Vary> {
        let (key, values) = text.split_once('=').context("--vary takes key=v1,v2,…")?;
        let key = key.trim();
        if !KEYS.iter().any(|(k, _)| *k == key) {
            bail!(
                "--vary {key}: not a key a sweep varies (one of: {})",
                KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            );
        }
        let values = values
            .split(',')
            .map(|v| v.trim().parse::<f64>().with_context(|| format!("--vary {key}: {v:?} is not a number")))
            .collect::<Result<Vec<f64>>>()?;
        if values.is_empty() || values.len() > 32 {
            bail!("--vary {key}: 1 to 32 values");
        }
        Ok(Vary { key: key.to_string(), values })
    }
}

/// `s` with `key` set to `value`.
fn set(s: &Scenario, key: &str, value: f64) -> Result<Scenario> {
    let mut s = s.clone();
    let whole = |v: f64| -> Result<u64> {
        if v.fract() != 0.0 || v < 0.0 {
            bail!("{key} takes whole numbers, not {v}");
        }
        Ok(v as u64)
    };
    match key {
        "shards" => s.network.shards = u32::try_from(whole(value)?)?,
        "validators" => s.network.validators_per_shard = u32::try_from(whole(value)?)?,
        "slot_ms" => s.network.slot_ms = whole(value)?,
        "window" => s.network.challenge_window_slots = whole(value)?,
        "rate" => s.workload.rate = value,
        "cross" => s.workload.cross_shard = value,
        "accounts" => s.workload.accounts = u32::try_from(whole(value)?)?,
        "slots" => s.slots = whole(value)?,
        _ => bail!("--vary {key}: not a key a sweep varies"),
    }
    Ok(s)
}

/// One point of the grid and what its run measured.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Point {
    /// The varied keys' values, in `--vary` order.
    pub at: At,
    /// Transactions included per second.
    pub included_per_second: f64,
    /// Headers accepted per shard per slot.
    pub headers_per_shard_per_slot: f64,
    /// Per phase: (name, p50, p99) in milliseconds.
    pub latency_ms: Vec<(String, f64, f64)>,
    /// The invariant broken, if one was.
    pub violation: Option<String>,
}

/// A whole sweep.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Sweep {
    /// The scenario's name.
    pub scenario: String,
    /// The seed every point ran with.
    pub seed: u64,
    /// The varied keys, in order.
    pub keys: Vec<String>,
    /// Every point, the first key varying slowest.
    pub points: Vec<Point>,
}

/// The varied keys' values at one point of a grid, in `--vary` order.
pub type At = Vec<(String, f64)>;

/// Every point of the grid, checked before any runs.
pub fn grid(s: &Scenario, vary: &[Vary]) -> Result<Vec<(At, Scenario)>> {
    if vary.is_empty() {
        bail!("a sweep needs at least one --vary");
    }
    let mut out = vec![(Vec::new(), s.clone())];
    for v in vary {
        let mut next = Vec::new();
        for (at, s) in &out {
            for value in &v.values {
                let mut at = at.clone();
                at.push((v.key.clone(), *value));
                let point = set(s, &v.key, *value)?;
                point.check().with_context(|| format!("the point {at:?}"))?;
                next.push((at, point));
            }
        }
        out = next;
    }
    if out.len() > 256 {
        bail!("a grid of {} points (at most 256)", out.len());
    }
    Ok(out)
}

/// What a point's report says, for the sweep.
pub fn point(at: At, r: &Report) -> Point {
    let ms = r.slot_ms as f64;
    Point {
        at,
        included_per_second: r.totals.included_per_second,
        headers_per_shard_per_slot: r.totals.headers_per_shard_per_slot,
        latency_ms: r
            .latencies
            .iter()
            .map(|l| (l.phase.to_string(), l.p50 as f64 * ms, l.p99 as f64 * ms))
            .collect(),
        violation: r.violation.as_ref().map(|v| format!("slot {}: {}: {}", v.slot, v.invariant, v.evidence)),
    }
}

impl Sweep {
    /// Writes `sweep.json`, `sweep.csv` and `sweep.html` under `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("sweep.json"), serde_json::to_string_pretty(self)?)?;
        let mut csv = self.keys.join(",");
        csv += ",included_per_second,headers_per_shard_per_slot";
        if let Some(p) = self.points.first() {
            for (phase, ..) in &p.latency_ms {
                csv += &format!(",{phase} p50 ms,{phase} p99 ms");
            }
        }
        csv += ",violation\n";
        for p in &self.points {
            let vals: Vec<String> = p.at.iter().map(|(_, v)| v.to_string()).collect();
            csv += &vals.join(",");
            csv += &format!(",{:.2},{:.3}", p.included_per_second, p.headers_per_shard_per_slot);
            for (_, p50, p99) in &p.latency_ms {
                csv += &format!(",{p50},{p99}");
            }
            csv += &format!(",\"{}\"\n", p.violation.clone().unwrap_or_default().replace('"', "'"));
        }
        std::fs::write(dir.join("sweep.csv"), csv)?;
        std::fs::write(dir.join("sweep.html"), self.html())?;
        Ok(())
    }

    /// A plot per figure against the first key, a line per value of the
    /// second (if any).
    fn html(&self) -> String {
        let x_key = &self.keys[0];
        let series = |value: &dyn Fn(&Point) -> f64| -> Vec<super::html::Series> {
            let mut groups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
            for p in &self.points {
                let label =
                    p.at.iter().skip(1).map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
                let x = p.at[0].1;
                match groups.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, pts)) => pts.push((x, value(p))),
                    None => groups.push((label, vec![(x, value(p))])),
                }
            }
            groups
                .into_iter()
                .map(|(label, points)| super::html::Series {
                    name: if label.is_empty() { "all".into() } else { label },
                    points,
                })
                .collect()
        };
        let mut html = super::html::page_head(&format!("sweep: {}", self.scenario));
        let _ = write!(
            html,
            "<h1>Sweep: {}</h1><p>Seed {}; varied: {}; {} points.</p>",
            super::html::escape(&self.scenario),
            self.seed,
            super::html::escape(&self.keys.join(", ")),
            self.points.len()
        );
        for p in self.points.iter().filter(|p| p.violation.is_some()) {
            let _ = write!(
                html,
                "<p class=\"bad\">{:?}: {}</p>",
                p.at,
                super::html::escape(p.violation.as_deref().unwrap_or_default())
            );
        }
        html += &super::html::plot_series(
            "Included transactions per second",
            x_key,
            "per second",
            &series(&|p| p.included_per_second),
        );
        html += &super::html::plot_series(
            "Headers accepted per shard per slot",
            x_key,
            "headers",
            &series(&|p| p.headers_per_shard_per_slot),
        );
        let phases: Vec<String> = self
            .points
            .first()
            .map(|p| p.latency_ms.iter().map(|l| l.0.clone()).collect())
            .unwrap_or_default();
        for (i, phase) in phases.iter().enumerate() {
            let get = move |p: &Point| p.latency_ms.get(i).map_or(0.0, |l| l.2);
            html += &super::html::plot_series(&format!("p99 {phase}"), x_key, "milliseconds", &series(&get));
        }
        html += "</body></html>\n";
        html
    }
}
