//! The README's own examples: every `cast` command in it runs unchanged
//! (Foundry's cast 1.7.1, installed by `scripts/setup.sh`) against the
//! default testnet it describes, and does what it says.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::local_testnet::{call, optishard, text, wait_for};

/// Every `cast …` command in the README's shell blocks, continuation lines joined.
fn cast_commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_shell = false;
    let mut current: Option<String> = None;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_shell = line.trim() == "```sh";
            continue;
        }
        if !in_shell {
            continue;
        }
        let piece = line.trim();
        match current.take() {
            Some(mut cmd) => {
                cmd.push(' ');
                cmd.push_str(piece.trim_end_matches('\\').trim());
                if piece.ends_with('\\') { current = Some(cmd) } else { out.push(cmd) }
            }
            None if piece.starts_with("cast ") => {
                let cmd = piece.trim_end_matches('\\').trim().to_string();
                if piece.ends_with('\\') { current = Some(cmd) } else { out.push(cmd) }
            }
            None => {}
        }
    }
    out
}

fn cast_dir() -> PathBuf {
    let dir = std::env::var_os("OPTISHARD_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/optishard-tools")
    });
    let bin = dir.join("node_modules/@foundry-rs/cast-linux-amd64/bin");
    assert!(bin.join("cast").exists(), "cast is not installed in {}: run scripts/setup.sh", bin.display());
    bin
}

#[test]
fn the_readme_has_cast_examples() {
    let cmds = cast_commands(include_str!("../../../README.md"));
    assert!(cmds.len() >= 3, "{cmds:?}");
    assert!(cmds.iter().any(|c| c.contains("--value 1ether")));
    assert!(cmds.iter().any(|c| c.contains("--create")));
    assert!(cmds.iter().any(|c| c.contains("send(uint32,address,bytes)")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cast_line_of_the_readme_works_unchanged() {
    let _one_at_a_time = crate::timing_sensitive().await;
    let cmds = cast_commands(include_str!("../../../README.md"));
    let bin = cast_dir();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    // the README's URLs name the default ports: the default testnet, as the quick start runs it
    let up = optishard(&["testnet", "up", "--datadir", &d]);
    // a task, so that a failed assertion still reaches the cleanup below
    let result = tokio::spawn(tokio::time::timeout(Duration::from_secs(240), async move {
        assert!(up.status.success(), "{}", text(&up));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let url = "http://127.0.0.1:18003";
        let recipient = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
        let balance = |v: serde_json::Value| {
            alloy_primitives::U256::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
        };
        let before = balance(call(&http, url, "eth_getBalance", json!([recipient, "latest"])).await.unwrap());
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        for cmd in &cmds {
            let out = tokio::task::spawn_blocking({
                let (cmd, path) = (cmd.clone(), path.clone());
                move || Command::new("bash").args(["-c", &cmd]).env("PATH", path).output().unwrap()
            })
            .await
            .unwrap();
            assert!(out.status.success(), "`{cmd}` failed:\n{}", text(&out));
            if cmd.starts_with("cast send") {
                assert!(text(&out).contains("(success)"), "`{cmd}`:\n{}", text(&out));
            }
        }
        // the cross-shard transfer lands on shard 2
        wait_for("the README's cross-shard transfer to land", 30, || async {
            let now = call(
                &http,
                "http://127.0.0.1:18015",
                "eth_getBalance",
                json!(["0x000000000000000000000000000000000000dEaD", "latest"]),
            )
            .await;
            now.is_ok_and(|v| {
                balance(v) == alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(18))
            })
        })
        .await;
        wait_for("the README's transfer to land", 20, || async {
            let now = call(&http, url, "eth_getBalance", json!([recipient, "latest"])).await;
            now.is_ok_and(|v| {
                balance(v)
                    == before + alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(18))
            })
        })
        .await;
    }))
    .await;
    let down = optishard(&["testnet", "down", "--datadir", &d]);
    match result {
        Ok(in_time) => in_time.expect("the README's commands finish in time"),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
    assert!(down.status.success(), "{}", text(&down));
}
