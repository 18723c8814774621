//! `optishard-bench testnet`: what a running local testnet sustains — blocks
//! per second per shard, shard headers per beacon slot, included
//! transactions under an optional load, and CPU and resident memory per node.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use anyhow::{Context, Result};
use serde_json::{Value, json};
use testnet::{Manifest, NodeEntry};

use crate::{hex_u64, rpc};

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit(')').next()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields after the command: state is [0]; utime is field 14 overall = [11], stime [12]
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// Resident memory in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn metric(http: &reqwest::Client, url: &str, name: &str) -> f64 {
    let Ok(r) = http.get(url).send().await else { return 0.0 };
    let body = r.text().await.unwrap_or_default();
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0)
}

/// Cumulative bucket counts of histogram `name` with label `label` (e.g.
/// `phase="executed"`), summed over `urls`: `(upper bound, count)`.
async fn histogram(http: &reqwest::Client, urls: &[String], name: &str, label: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for url in urls {
        let Ok(r) = http.get(url).send().await else { continue };
        let body = r.text().await.unwrap_or_default();
        let prefix = format!("{name}_bucket{{");
        for l in body.lines().filter(|l| l.starts_with(&prefix) && l.contains(label)) {
            let le = l.split("le=\"").nth(1).and_then(|x| x.split('"').next()).unwrap_or("+Inf");
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            let count: f64 = l.split_whitespace().last().and_then(|c| c.parse().ok()).unwrap_or(0.0);
            match out.iter_mut().find(|(b, _)| *b == bound) {
                Some(e) => e.1 += count,
                None => out.push((bound, count)),
            }
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The bucket bound below which a share `q` of the observations between
/// two cumulative snapshots fall.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<(f64, f64)> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(b, c)| (*b, c - before.iter().find(|(x, _)| x == b).map_or(0.0, |x| x.1)))
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    delta.iter().find(|(_, c)| *c >= q * total).map(|(b, _)| (*b, total))
}

/// Sends `tps` transfers per second, spread over every validator of every
/// shard, from the dev accounts, `cross` percent of them to another shard
/// through the bridge; returns how many were accepted.
async fn load(http: reqwest::Client, m: Manifest, tps: u64, cross: u8, until: Instant) -> Result<u64> {
    use alloy_sol_types::SolCall;
    let signers: Vec<_> = shard::dev_accounts().into_iter().map(|(k, _)| k).collect();
    let vals: Vec<NodeEntry> = m.nodes.iter().filter(|n| n.role == "validator").cloned().collect();
    let mut nonces: HashMap<(u32, usize), u64> = HashMap::new();
    for v in &vals {
        let s = v.shard.unwrap_or(0);
        for (i, k) in signers.iter().enumerate() {
            if let std::collections::hash_map::Entry::Vacant(e) = nonces.entry((s, i)) {
                e.insert(hex_u64(
                    &rpc(&http, &v.rpc_url, "eth_getTransactionCount", json!([k.address(), "pending"]))
                        .await?,
                )?);
            }
        }
    }
    let tick = Duration::from_millis(100);
    let per_tick = (tps / 10).max(1) as usize;
    let mut sent = 0u64;
    let mut n = 0usize;
    let mut interval = tokio::time::interval(tick);
    while Instant::now() < until {
        interval.tick().await;
        let mut batches: HashMap<usize, Vec<Value>> = HashMap::new();
        for _ in 0..per_tick {
            let vi = n % vals.len();
            let v = &vals[vi];
            let s = v.shard.unwrap_or(0);
            let from = (n / vals.len()) % signers.len();
            let nonce = nonces.get_mut(&(s, from)).context("nonce")?;
            // every (100 / cross)-th transfer crosses, to the next shards in turn
            let crosses = m.shards > 1 && (n * cross as usize / 100) != ((n + 1) * cross as usize / 100);
            let raw = if crosses {
                let dst = (s + 1 + (n / vals.len()) as u32 % (m.shards - 1)) % m.shards;
                let call = prover::IBridge::sendCall {
                    dstShard: dst,
                    to: Address::repeat_byte(0x42),
                    data: Default::default(),
                };
                testnet::sign_call(
                    &signers[from],
                    v.chain_id.unwrap_or(0),
                    *nonce,
                    alloy_primitives::TxKind::Call(bridge::BRIDGE_ADDRESS),
                    alloy_primitives::U256::from(1),
                    call.abi_encode().into(),
                    200_000,
                )
            } else {
                testnet::sign_transfer(
                    &signers[from],
                    v.chain_id.unwrap_or(0),
                    *nonce,
                    Address::repeat_byte(0x42),
                    1,
                )
            };
            *nonce += 1;
            n += 1;
            batches.entry(vi).or_default().push(json!({
                "jsonrpc": "2.0", "id": n, "method": "eth_sendRawTransaction",
                "params": [format!("0x{}", hex::encode(&raw))]
            }));
        }
        for (vi, batch) in batches {
            if let Ok(r) = http.post(&vals[vi].rpc_url).json(&batch).send().await
                && let Ok(Value::Array(rs)) = r.json::<Value>().await
            {
                sent += rs.iter().filter(|r| r.get("result").is_some()).count() as u64;
            }
        }
    }
    Ok(sent)
}

/// Observes the testnet in `dir` for `seconds`, under `tps` transfers per
/// second (`cross` percent of them cross-shard).
pub(crate) async fn observe(dir: &Path, seconds: u64, tps: u64, cross: u8) -> Result<()> {
    let m = testnet::cluster::read_manifest(dir)?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let beacon = m.nodes.iter().find(|n| n.role == "beacon").context("no beacon in the manifest")?;
    let first_of = |s: u32| m.nodes.iter().find(|n| n.shard == Some(s));
    let slot0 = rpc(&http, &beacon.rpc_url, "beacon_head", json!([])).await?["slot"].as_u64().unwrap_or(0);
    let mut start = Vec::new();
    for s in 0..m.shards {
        let v = first_of(s).context("shard without validator")?;
        start.push((
            hex_u64(&rpc(&http, &v.rpc_url, "eth_blockNumber", json!([])).await?)?,
            metric(&http, &v.metrics_url, "optishard_shard_transactions_total").await,
        ));
    }
    let body0 = metric(&http, &beacon.metrics_url, "optishard_beacon_body_bytes_total").await;
    // message latency, observed once per shard (its first validator)
    let firsts: Vec<String> =
        (0..m.shards).filter_map(|s| first_of(s).map(|v| v.metrics_url.clone())).collect();
    let phases = ["committed", "executed", "finalized"];
    let mut lat0 = Vec::new();
    for p in phases {
        lat0.push(
            histogram(&http, &firsts, "optishard_shard_message_latency_slots", &format!("phase=\"{p}\""))
                .await,
        );
    }
    let cpu0: Vec<Option<f64>> = m.nodes.iter().map(|n| cpu_seconds(n.pid)).collect();
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(seconds);
    let loader = (tps > 0).then(|| tokio::spawn(load(http.clone(), m.clone(), tps, cross, until)));
    let mut rss_max = vec![0f64; m.nodes.len()];
    while Instant::now() < until {
        for (i, n) in m.nodes.iter().enumerate() {
            rss_max[i] = rss_max[i].max(rss_mib(n.pid).unwrap_or(0.0));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let sent = match loader {
        Some(h) => h.await??,
        None => 0,
    };
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1: Vec<Option<f64>> = m.nodes.iter().map(|n| cpu_seconds(n.pid)).collect();
    let slot1 = rpc(&http, &beacon.rpc_url, "beacon_head", json!([])).await?["slot"].as_u64().unwrap_or(0);
    let body1 = metric(&http, &beacon.metrics_url, "optishard_beacon_body_bytes_total").await;
    let mut headers = 0usize;
    let mut blocks = 0usize;
    // per shard: slots with its header, and the last slot that had one
    let mut per_shard = vec![(0usize, 0u64); m.shards as usize];
    let mut from = slot0 + 1;
    while from <= slot1 {
        let bs = rpc(&http, &beacon.rpc_url, "beacon_getBlocks", json!([from, 256])).await?;
        let bs = bs.as_array().cloned().unwrap_or_default();
        if bs.is_empty() {
            break;
        }
        for b in &bs {
            let slot = b["slot"].as_u64().unwrap_or(u64::MAX);
            if slot <= slot1 {
                blocks += 1;
                let hs = b["headers"].as_array().cloned().unwrap_or_default();
                headers += hs.len();
                let mut seen = std::collections::HashSet::new();
                for h in &hs {
                    let shard = h["header"]["shard"].as_u64().unwrap_or(u64::MAX) as usize;
                    if shard < per_shard.len() && seen.insert(shard) {
                        per_shard[shard].0 += 1;
                        per_shard[shard].1 = slot;
                    }
                }
            }
        }
        from = bs.last().and_then(|b| b["slot"].as_u64()).unwrap_or(slot1) + 1;
    }
    let slots = slot1.saturating_sub(slot0);
    println!(
        "testnet {} : {} shards, {} ms slots, observed {elapsed:.1} s ({slots} slots)",
        dir.display(),
        m.shards,
        m.slot_ms
    );
    println!(
        "beacon: {blocks} blocks, {headers} shard headers -> {:.2} headers/slot of {} possible",
        headers as f64 / slots.max(1) as f64,
        m.shards
    );
    let coverage: Vec<f64> = per_shard.iter().map(|(n, _)| *n as f64 / slots.max(1) as f64).collect();
    let worst = coverage.iter().copied().fold(f64::INFINITY, f64::min);
    let stopped: Vec<usize> = (0..per_shard.len()).filter(|s| per_shard[*s].1 + 10 < slot1).collect();
    println!(
        "per shard: header in {:.1} % of slots at worst ({} shards under 90 %), stopped shards (no header in the last 10 slots): {stopped:?}",
        100.0 * worst,
        coverage.iter().filter(|c| **c < 0.9).count()
    );
    println!(
        "availability: the beacon took {:.0} body bytes per slot ({:.0} B/s)",
        (body1 - body0) / slots.max(1) as f64,
        (body1 - body0) / elapsed
    );
    if tps > 0 {
        println!(
            "load: {tps} tx/s offered ({cross} % cross-shard), {sent} accepted by RPC ({:.0} tx/s)",
            sent as f64 / elapsed
        );
    }
    for (p, before) in phases.iter().zip(&lat0) {
        let after =
            histogram(&http, &firsts, "optishard_shard_message_latency_slots", &format!("phase=\"{p}\""))
                .await;
        match (quantile(before, &after, 0.5), quantile(before, &after, 0.99)) {
            (Some((p50, n)), Some((p99, _))) => println!(
                "messages {p:<9}: {n:.0} observed, latency from the source block p50 <= {p50} slots ({:.0} ms), p99 <= {p99} slots ({:.0} ms)",
                p50 * m.slot_ms as f64,
                p99 * m.slot_ms as f64
            ),
            _ => println!("messages {p:<9}: none observed"),
        }
    }
    for s in 0..m.shards {
        let v = first_of(s).context("shard without validator")?;
        let h1 = hex_u64(&rpc(&http, &v.rpc_url, "eth_blockNumber", json!([])).await?)?;
        let t1 = metric(&http, &v.metrics_url, "optishard_shard_transactions_total").await;
        let (h0, t0) = start[s as usize];
        println!(
            "shard {s}: {} blocks ({:.2} blocks/s), {} transactions included ({:.0} tx/s)",
            h1 - h0,
            (h1 - h0) as f64 / elapsed,
            t1 - t0,
            (t1 - t0) / elapsed
        );
    }
    println!("{:<12} {:>8} {:>10}", "node", "CPU %", "RSS MiB");
    let mut total_cpu = 0.0;
    let mut total_rss = 0.0;
    let mut included = 0.0;
    for s in 0..m.shards {
        let v = first_of(s).context("shard without validator")?;
        included +=
            metric(&http, &v.metrics_url, "optishard_shard_transactions_total").await - start[s as usize].1;
    }
    for (i, n) in m.nodes.iter().enumerate() {
        let cpu = match (cpu0[i], cpu1[i]) {
            (Some(a), Some(b)) => 100.0 * (b - a) / elapsed,
            _ => f64::NAN,
        };
        total_cpu += if cpu.is_nan() { 0.0 } else { cpu };
        total_rss += rss_max[i];
        println!("{:<12} {:>8.1} {:>10.1}", n.name, cpu, rss_max[i]);
    }
    println!(
        "{:<12} {:>8.1} {:>10.1}   (CPU in % of one core; RSS the peak sampled each second)",
        "total", total_cpu, total_rss
    );
    if included > 0.0 {
        println!(
            "CPU per included transaction, all nodes counted: {:.1} µs ({included:.0} included, {:.0} tx/s)",
            total_cpu / 100.0 * elapsed / included * 1e6,
            included / elapsed
        );
    }
    Ok(())
}
