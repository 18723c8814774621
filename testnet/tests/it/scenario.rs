//! Scenario files: every shipped scenario reads; a bad one is refused with
//! a clear error before anything starts; a run on the deterministic tier
//! is reproducible byte for byte and shows the fault it injects.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testnet::scenario::Scenario;

fn optishard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_optishard"))
}

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_scenario_reads() {
    let files = shipped();
    assert!(!files.is_empty(), "scenarios/ holds the shipped scenarios");
    for f in files {
        let out = optishard().args(["scenario", "check"]).arg(&f).output().unwrap();
        assert!(out.status.success(), "{}: {}", f.display(), String::from_utf8_lossy(&out.stderr));
    }
}

/// The CLI refuses a bad file before anything starts, naming what is wrong
/// (the full set of bad keys and values is `scenario::tests`).
#[test]
fn a_bad_scenario_file_is_a_clear_error_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("name = \"x\"\nslots = 10\n[network]\nshards = 2\nspeed = 1\n", "speed"),
        (
            "name = \"x\"\nslots = 10\n[network]\nshards = 2\n[[timeline]]\naction = \"kill\"\nat = 3\nnode = \"shard5-v0\"\n",
            "shard5-v0",
        ),
        (
            "name = \"x\"\nslots = 10\n[network]\nshards = 2\n[[timeline]]\naction = \"beacon\"\nat = 5\non = false\n[[timeline]]\naction = \"beacon\"\nat = 2\non = true\n",
            "out of order",
        ),
    ];
    for (text, expect) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let data = dir.path().join("data");
        let out = optishard()
            .args(["scenario", "run", "--quiet", "--datadir"])
            .arg(&data)
            .arg(&file)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{expect}: {err}");
        assert!(!data.exists(), "nothing started");
    }
    let out = optishard().args(["scenario", "check", "/no/such/scenario.toml"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/scenario.toml"));
}

fn run(file: &Path, seed: u64, report: &Path) -> Value {
    let data = tempfile::tempdir().unwrap();
    let out = optishard()
        .args(["scenario", "run", "--quiet", "--seed", &seed.to_string(), "--report"])
        .arg(report)
        .arg("--datadir")
        .arg(data.path())
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(report.join("report.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v["series"].is_array() && v["latencies"].is_array());
    v
}

/// The partitioned-shard scenario twice with one seed: identical reports.
/// Its partition really stops shard 1: no header of it is accepted while
/// it lasts, the others go on, and shard 1 catches up once it heals; its
/// messages are still delivered exactly once (the run checked every
/// invariant after every slot).
#[test]
fn a_partition_stalls_its_shard_until_it_heals_and_runs_reproduce_byte_for_byte() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/partitioned-shard.toml");
    let s = Scenario::load(&file).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = run(&file, 7, &a);
    run(&file, 7, &b);
    for f in ["report.json", "series.csv", "latency.csv", "report.html"] {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f} differs");
    }
    // the page stands alone: its plots inline, nothing fetched
    let html = std::fs::read_to_string(a.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 5, "five plots");
    assert!(
        html.contains("<polyline") && html.contains("partition shard1"),
        "lines and the timeline's marks"
    );
    assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("<script"), "self-contained");
    assert_eq!(first["violation"], Value::Null);
    let testnet::scenario::Event::Partition { at, until: Some(until), .. } = s.timeline[0] else {
        panic!("the scenario starts with a partition that heals")
    };
    let series = first["series"].as_array().unwrap();
    let head = |slot: u64, shard: usize| series[slot as usize - 1]["heads"][shard].as_u64().unwrap();
    // entries at `at` apply before slot at + 1 runs
    let (cut, healed) = (at + 1, until + 1);
    assert_eq!(head(until, 1), head(cut, 1), "shard 1 stalls while cut off");
    assert!(head(until, 0) >= head(cut, 0) + (until - cut) - 2, "shard 0 goes on");
    assert!(head(s.slots, 1) > head(until, 1) + 10, "shard 1 catches up once healed");
    assert!(series[healed as usize..].iter().any(|r| r["delivered"].as_u64().unwrap() > 0));
    let other = run(&file, 8, &dir.path().join("c"));
    assert_ne!(other["series"], first["series"], "another seed, another run");
}

/// The checker can fail: with every honest challenger of shard 1 off, a
/// lying proposer's header becomes final, and the run stops at the slot
/// the invariant broke, naming it, the seed and the header.
#[test]
fn an_undisputed_lie_breaks_the_run_with_its_slot_and_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("undisputed.toml");
    std::fs::write(
        &file,
        r#"
name = "a lie nobody disputes"
slots = 90
[network]
shards = 2
validators_per_shard = 3
slot_ms = 500
challenge_window_slots = 16
[workload]
rate = 20
[[timeline]]
action = "challenger"
at = 0
node = "shard1-v1"
on = false
[[timeline]]
action = "challenger"
at = 0
node = "shard1-v2"
on = false
[[timeline]]
action = "byzantine"
at = 5
node = "shard1-v0"
mode = "wrong-state-root"
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = optishard()
        .args(["scenario", "run", "--quiet", "--seed", "3", "--datadir"])
        .arg(&data)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run fails");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invariant broken at slot") && err.contains("seed 3"), "{err}");
    assert!(err.contains("no invalid header final") && err.contains("shard 1 height"), "{err}");
}

/// The slow-shard-pair scenario: messages between shards 0 and 1 wait for
/// their slow link (their p99 above every other pair's largest latency),
/// the other pairs keep one slot, and every invariant holds.
#[test]
fn a_slow_link_slows_only_its_shard_pair() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/slow-shard-pair.toml");
    let dir = tempfile::tempdir().unwrap();
    let r = run(&file, 6, dir.path());
    assert_eq!(r["violation"], Value::Null);
    let pairs = r["pair_latencies"].as_array().unwrap();
    let field = |p: &Value, k: &str| p[k].as_u64().unwrap();
    let slow = |p: &&Value| {
        let (s, d) = (field(p, "src"), field(p, "dst"));
        (s, d) == (0, 1) || (s, d) == (1, 0)
    };
    let fast_max = pairs.iter().filter(|p| !slow(p)).map(|p| field(p, "max")).max().unwrap();
    assert!(fast_max <= 2, "other pairs stay fast: {pairs:?}");
    for p in pairs.iter().filter(slow) {
        assert!(field(p, "count") > 20, "{p}");
        assert!(field(p, "p99") > fast_max, "the slow pair waits: {p} vs {fast_max}");
    }
}

/// A sweep over two parameters writes one report, and a real browser
/// (headless Chromium, installed by `scripts/setup.sh`) shows its plots:
/// the screenshot holds the plot lines' colours, a blank page's does not.
#[test]
fn a_sweeps_report_opens_in_a_browser_and_shows_its_plots() {
    let dir = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/slow-shard-pair.toml");
    let out = optishard()
        .args([
            "scenario",
            "sweep",
            "--vary",
            "shards=2,3",
            "--vary",
            "cross=0,0.5",
            "--vary",
            "slots=30",
            "--report",
        ])
        .arg(dir.path())
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sweep: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sweep.json")).unwrap()).unwrap();
    assert_eq!(sweep["points"].as_array().unwrap().len(), 4, "2 × 2 × 1 points");
    assert!(dir.path().join("points/003/report.html").exists(), "each point's own report");
    let csv = std::fs::read_to_string(dir.path().join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "a header and a row per point");
    let html = std::fs::read_to_string(dir.path().join("sweep.html")).unwrap();
    assert!(html.matches("<svg").count() >= 6, "a plot per swept figure");
    // what a browser shows: the line colours' pixels in the screenshot
    let shot = |url: String, png: &Path| {
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=840,1400",
            ])
            .arg(format!("--screenshot={}", png.display()))
            .arg(url)
            .output()
            .expect("chromium runs (scripts/setup.sh installs it)");
        assert!(png.exists(), "a screenshot: {}", String::from_utf8_lossy(&out.stderr));
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let channels = info.color_type.samples();
        // the first two lines' colours (#1f77b4, #d62728), near enough
        let near = |p: &[u8], c: [u8; 3]| p.iter().zip(c).all(|(a, b)| a.abs_diff(b) < 40);
        buf[..info.buffer_size()]
            .chunks(channels)
            .filter(|p| near(p, [0x1f, 0x77, 0xb4]) || near(p, [0xd6, 0x27, 0x28]))
            .count()
    };
    let page = format!("file://{}", dir.path().join("sweep.html").display());
    let coloured = shot(page, &dir.path().join("sweep.png"));
    let blank = shot("about:blank".into(), &dir.path().join("blank.png"));
    assert_eq!(blank, 0);
    assert!(coloured > 500, "the plots' lines and points are drawn: {coloured} pixels");
}

/// A long run shows a line per slot and stops cleanly on Ctrl-C: after
/// the slot it is in, with its report written for the slots it ran.
#[test]
fn ctrl_c_stops_a_run_after_its_slot_with_its_report() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/load-ramp.toml");
    let mut child = optishard()
        .args(["scenario", "run", "--report"])
        .arg(dir.path())
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    // the per-slot status line, up to slot 5
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("slot ")
            && line.contains("offered")
            && line.split_whitespace().nth(1) == Some("5:")
        {
            break;
        }
    }
    // SAFETY: signalling our own child
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted run is not a pass");
    assert!(rest.iter().any(|l| l.contains("interrupted after slot")), "{rest:?}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(r["interrupted"], Value::Bool(true));
    let ran = r["slots_run"].as_u64().unwrap();
    assert!((5..100).contains(&ran), "stopped early, after the slot it was in: {ran}");
    assert_eq!(r["series"].as_array().unwrap().len() as u64, ran);
}

/// The mixed-load scenario: ERC-20 transfers and contract calls beside
/// transfers and cross-shard sends, every one included, none failing (a
/// call to a token or store that did not exist, or a revert, would count).
#[test]
fn a_mixed_workload_of_tokens_and_contract_calls_all_succeeds() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/mixed-load.toml");
    let dir = tempfile::tempdir().unwrap();
    let r = run(&file, 7, dir.path());
    let t = &r["totals"];
    assert_eq!(r["violation"], Value::Null);
    assert!(t["offered"].as_u64().unwrap() > 2_400, "{t}");
    assert_eq!(t["included"], t["offered"], "{t}");
    assert_eq!(t["failed"].as_u64(), Some(0), "{t}");
    assert!(t["delivered"].as_u64().unwrap() > 300, "{t}");
}

/// A scenario on real processes: a slow link, shard 1 cut off from
/// everyone for 12 slots, a validator killed and restarted. Under namespaces (root) the kernel drops the packets; on
/// loopback the nodes' block lists refuse the connections. Either way the
/// shard's head stops while cut and catches up once healed, messages to
/// it wait and are then delivered, and every invariant holds.
#[test]
fn on_processes_a_partition_stops_the_shard_until_it_heals() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cut.toml");
    std::fs::write(
        &file,
        r#"
name = "cut on processes"
slots = 44
[network]
shards = 2
validators_per_shard = 2
slot_ms = 500
challenge_window_slots = 16
[workload]
rate = 16
cross_shard = 0.4
accounts = 16
[[timeline]]
action = "link"
at = 4
a = ["shard0"]
b = ["beacon"]
latency_ms = 150
jitter_ms = 50
until = 10
[[timeline]]
action = "partition"
at = 12
a = ["shard1"]
b = ["beacon", "shard0"]
until = 24
[[timeline]]
action = "kill"
at = 28
node = "shard0-v1"
[[timeline]]
action = "restart"
at = 31
node = "shard0-v1"
"#,
    )
    .unwrap();
    let mut modes = vec![("loopback", true)];
    if testnet::netns::NetPlan::unavailable().is_none() {
        modes.push(("namespaces", false));
    }
    for (mode, loopback) in modes {
        let out = dir.path().join(mode);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_optishard"));
        cmd.args(["scenario", "run", "--tier", "processes", "--quiet", "--report"])
            .arg(out.join("report"))
            .arg("--datadir")
            .arg(out.join("data"))
            .arg(&file);
        if loopback {
            cmd.arg("--loopback");
        }
        let o = cmd.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "{mode}: {text}");
        let r: Value =
            serde_json::from_slice(&std::fs::read(out.join("report/report.json")).unwrap()).unwrap();
        assert_eq!(r["isolation"], mode);
        assert_eq!(r["violation"], Value::Null, "{mode}");
        let series = r["series"].as_array().unwrap();
        let head = |slot: usize, shard: usize| series[slot - 1]["heads"][shard].as_u64().unwrap();
        // cut before slot 13 runs, healed before slot 25; a header already
        // on its way may land just after the cut
        assert!(head(24, 1) <= head(14, 1) + 1, "{mode}: shard 1 goes on while cut off: {series:?}");
        assert!(head(24, 0) >= head(13, 0) + 8, "{mode}: shard 0 stalls too");
        assert!(head(44, 1) >= head(24, 1) + 10, "{mode}: shard 1 does not catch up");
        assert!(
            series[25..].iter().any(|s| s["delivered"].as_u64().unwrap() > 0),
            "{mode}: no message delivered after the heal"
        );
        // the checks over RPC ran, not skipped: every final block's inbox,
        // final holders against the beacon, the supply audit most slots
        let t = &r["totals"];
        assert!(t["inbox_heights_checked"].as_u64().unwrap() >= 10, "{mode}: {t}");
        assert!(t["final_heights_checked"].as_u64().unwrap() >= 5, "{mode}: {t}");
        assert!(t["audits_skipped"].as_u64().unwrap() < 10, "{mode}: {t}");
        // shard 0 goes on through the slow link and its validator's restart
        assert!(head(44, 0) >= head(26, 0) + 10, "{mode}: shard 0 stopped after the restart");
        // every node process measured
        let nodes = r["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 5, "{mode}");
        assert!(nodes.iter().all(|n| n["max_rss_mb"].as_f64().unwrap() > 1.0));
        // the namespaces and bridge are gone
        if !loopback {
            let ns = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
            let m: Value =
                serde_json::from_slice(&std::fs::read(out.join("data/manifest.json")).unwrap()).unwrap();
            let plan = &m["netns"]["namespaces"];
            for n in plan.as_array().unwrap() {
                assert!(
                    !String::from_utf8_lossy(&ns.stdout).contains(n.as_str().unwrap()),
                    "{n} left behind"
                );
            }
            let bridge = m["netns"]["bridge"].as_str().unwrap();
            let link = std::process::Command::new("ip").args(["link", "show", bridge]).output().unwrap();
            assert!(!link.status.success(), "bridge {bridge} left behind");
        }
    }
}
