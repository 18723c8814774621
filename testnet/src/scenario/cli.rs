//! The `optishard scenario` commands: run one (a status line per slot,
//! Ctrl-C stopping after the current slot) or sweep a grid, writing the
//! reports.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::{ScenarioRunArgs, ScenarioSweepArgs};

/// `optishard scenario run`.
pub async fn run(args: ScenarioRunArgs) -> Result<()> {
    let s = super::Scenario::load(&args.file)?;
    let seed = args.seed.unwrap_or(s.seed);
    let tmp;
    let dir = match &args.datadir {
        Some(d) => d.clone(),
        None => {
            tmp = TempDir::new()?;
            tmp.path().to_path_buf()
        }
    };
    let started = std::time::Instant::now();
    let quiet = args.quiet;
    let stop = interrupt_flag();
    let status = |r: &super::report::SlotRecord| {
        if !quiet {
            eprintln!(
                "slot {:>5}: offered {:>4} included {:>4} delivered {:>4} heads {:?} final {:?} games {}{}",
                r.slot,
                r.offered,
                r.included,
                r.delivered,
                r.heads,
                r.finalized,
                r.games_open,
                if r.events.is_empty() { String::new() } else { format!("  [{}]", r.events.join("; ")) }
            );
        }
        !stop.load(std::sync::atomic::Ordering::Relaxed)
    };
    let report = if args.tier == "processes" {
        let isolation = if args.loopback {
            super::procs::Isolation::Loopback
        } else {
            let (best, why) = super::procs::Isolation::best();
            if let Some(why) = why {
                eprintln!(
                    "no network namespaces ({why}): every node on 127.0.0.1, partitions through the nodes' block lists"
                );
            }
            best
        };
        super::procs::run(&s, seed, &dir, isolation, status).await?
    } else {
        super::sim::run(&s, seed, &dir, status)?
    };
    if let Some(out) = &args.report {
        report.write(out)?;
        println!("report: {}", out.display());
    }
    let t = &report.totals;
    println!(
        "{} (seed {seed}, {}): {} slots in {:.1} s; {:.2} headers per shard per slot; {} of {} transactions included ({:.1}/s)",
        report.scenario,
        report.tier,
        report.slots_run,
        started.elapsed().as_secs_f64(),
        t.headers_per_shard_per_slot,
        t.included,
        t.offered,
        t.included_per_second
    );
    for l in &report.latencies {
        println!(
            "  {:<40} n {:>6}  p50 {:>3}  p99 {:>3}  max {:>3} slots",
            l.phase, l.count, l.p50, l.p99, l.max
        );
    }
    if report.totals.runner_lag_ms_max > report.slot_ms {
        println!(
            "  the runner started a slot's work up to {} ms late: this machine is saturated, figures are the runner's too",
            report.totals.runner_lag_ms_max
        );
    }
    for n in &report.nodes {
        println!("  {:<14} cpu {:>6.1} %  max rss {:>6.1} MB", n.node, n.cpu_percent, n.max_rss_mb);
    }
    if report.interrupted {
        bail!("interrupted after slot {} of {} (the report holds the slots run)", report.slots_run, s.slots);
    }
    match &report.violation {
        Some(v) => {
            bail!("invariant broken at slot {} (seed {seed}): {}: {}", v.slot, v.invariant, v.evidence)
        }
        None => {
            println!("every invariant held after every slot: {}", report.invariants.join(", "));
            Ok(())
        }
    }
}

/// `optishard scenario sweep`.
pub fn sweep(args: ScenarioSweepArgs) -> Result<()> {
    let s = super::Scenario::load(&args.file)?;
    let vary = args.vary.iter().map(|v| super::sweep::Vary::parse(v)).collect::<Result<Vec<_>>>()?;
    let grid = super::sweep::grid(&s, &vary)?;
    let seed = args.seed.unwrap_or(s.seed);
    let mut points = Vec::new();
    for (n, (at, point)) in grid.into_iter().enumerate() {
        let data = TempDir::new()?;
        let started = std::time::Instant::now();
        let report = super::sim::run(&point, seed, data.path(), |_| true)?;
        report.write(&args.report.join("points").join(format!("{n:03}")))?;
        let p = super::sweep::point(at, &report);
        eprintln!(
            "point {n}: {:?}: {:.1} included/s, {:.2} headers per shard per slot{} ({:.1} s)",
            p.at,
            p.included_per_second,
            p.headers_per_shard_per_slot,
            p.violation.as_ref().map(|v| format!(", INVARIANT BROKEN: {v}")).unwrap_or_default(),
            started.elapsed().as_secs_f64()
        );
        points.push(p);
    }
    let broken = points.iter().filter(|p| p.violation.is_some()).count();
    let sweep = super::sweep::Sweep {
        scenario: s.name.clone(),
        seed,
        keys: vary.iter().map(|v| v.key.clone()).collect(),
        points,
    };
    sweep.write(&args.report)?;
    println!("sweep: {} points, report {}", sweep.points.len(), args.report.join("sweep.html").display());
    if broken > 0 {
        bail!("{broken} point(s) broke an invariant (see sweep.html)");
    }
    Ok(())
}

/// Set once Ctrl-C (SIGINT) arrives: a scenario stops after its current
/// slot and still writes its report.
fn interrupt_flag() -> &'static std::sync::atomic::AtomicBool {
    static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    extern "C" fn on_sigint(_: libc::c_int) {
        STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        // a scheduler's or timeout's SIGTERM too: the run stops after its
        // slot, writes its report and takes its processes down
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
    &STOP
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let nonce =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("optishard-scenario-{}-{nonce}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
