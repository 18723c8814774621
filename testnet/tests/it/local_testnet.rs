//! The local testnet end to end, through the real binary and real sockets:
//! `testnet up`, transactions through every validator, a Prometheus server
//! scraping every node, SIGKILLed validators and proposers, beacon
//! rejections with reasons, `testnet down`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bridge::{ShardHeader, ShardId, SignedHeader, ValidatorKey};
use serde_json::{Value, json};
use testnet::{Manifest, NodeEntry};

pub(crate) fn optishard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_optishard")).args(args).output().unwrap()
}

pub(crate) fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub(crate) async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: Value,
) -> Result<Value, Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: Value = match http.post(url).json(&body).send().await {
        Ok(r) => r.json().await.map_err(|e| json!(e.to_string()))?,
        Err(e) => return Err(json!(e.to_string())),
    };
    match v.get("error") {
        Some(e) => Err(e.clone()),
        None => Ok(v["result"].clone()),
    }
}

pub(crate) async fn rpc(http: &reqwest::Client, url: &str, method: &str, params: Value) -> Value {
    call(http, url, method, params).await.unwrap_or_else(|e| panic!("{method} on {url}: {e}"))
}

pub(crate) async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `scenario` on a fresh testnet directory within `secs` (in a task,
/// taking turns with the other timing-sensitive tests, so a failed
/// assertion still reaches the cleanup), then stops every process the
/// testnet started and re-raises the scenario's failure.
pub(crate) async fn run_scenario<Fut>(secs: u64, scenario: impl FnOnce(std::path::PathBuf) -> Fut)
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _one_at_a_time = crate::timing_sensitive().await;
    let dir = tempfile::tempdir().unwrap();
    let fut = scenario(dir.path().to_path_buf());
    let result =
        tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(secs), fut).await }).await;
    let down = optishard(&["testnet", "down", "--datadir", dir.path().to_str().unwrap()]);
    match result {
        Ok(in_time) => in_time.expect("scenario finishes in time"),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
    assert!(down.status.success(), "{}", text(&down));
}

/// A base port with `3 * nodes` free ports above it, all in 20000..32000: below
/// the kernel's ephemeral range (32768 and up on Linux), so no outgoing
/// connection of another test or process can take one between this check and
/// the testnet binding it.
pub(crate) fn free_base_port(nodes: usize) -> u16 {
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    let start = (std::process::id() % 120) as u16 * 100;
    (0..200u16)
        .map(|i| LOW + (start + i * 337) % (SPAN - 3 * nodes as u16))
        .find(|b| {
            (*b..b + 3 * nodes as u16).all(|p| {
                std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                    && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
            })
        })
        .expect("a free port range")
}

pub(crate) fn kill9(pid: u32) {
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
}

pub(crate) fn restart(n: &NodeEntry) -> u32 {
    let log = std::fs::OpenOptions::new().append(true).open(&n.log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_optishard"))
        .args(&n.args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
        .id()
}

pub(crate) async fn current_slot(http: &reqwest::Client, beacon: &str) -> u64 {
    rpc(http, beacon, "beacon_head", json!([])).await["current_slot"].as_u64().unwrap()
}

pub(crate) async fn height(http: &reqwest::Client, url: &str) -> Option<u64> {
    let v = call(http, url, "eth_blockNumber", json!([])).await.ok()?;
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}

/// Slots of `shard`'s headers the beacon accepted from height `from` on.
pub(crate) async fn accepted_slots(http: &reqwest::Client, beacon: &str, shard: u32, from: u64) -> Vec<u64> {
    let hs = rpc(http, beacon, "beacon_shardHeaders", json!([shard, from, 256])).await;
    hs.as_array().unwrap().iter().map(|h| h["header"]["beacon_slot"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_testnet_end_to_end() {
    let _one_at_a_time = crate::timing_sensitive().await;
    let dir = tempfile::tempdir().unwrap();
    // a task, so that a failed assertion still reaches the cleanup below
    let path = dir.path().to_path_buf();
    let result =
        tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(300), scenario(&path)).await })
            .await;
    // whatever happened, leave no process behind
    let down = optishard(&["testnet", "down", "--datadir", dir.path().to_str().unwrap()]);
    if let Ok(m) = testnet::cluster::read_manifest(dir.path()) {
        for n in &m.nodes {
            assert!(!testnet::cluster::alive(n.pid), "{} still running after down", n.name);
        }
    }
    // the restarted validator too: nothing points into the testnet any more
    let root = std::fs::canonicalize(dir.path()).unwrap().display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&root) && c.contains("optishard"))
        .collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    match result {
        Ok(in_time) => in_time.expect("scenario finishes in time"),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
    assert!(down.status.success(), "{}", text(&down));
}

async fn scenario(dir: &Path) {
    let d = dir.to_str().unwrap();
    let base = free_base_port(7).to_string();
    let up = optishard(&[
        "testnet",
        "up",
        "--shards",
        "2",
        "--validators-per-shard",
        "3",
        "--slot-ms",
        "700",
        "--datadir",
        d,
        "--base-port",
        &base,
    ]);
    assert!(up.status.success(), "{}", text(&up));
    let m: Manifest = testnet::cluster::read_manifest(dir).unwrap();
    // the beacon, 3 × 2 validators and the default standalone challenger
    assert_eq!(m.nodes.len(), 8);
    assert_eq!(m.nodes.iter().filter(|n| n.role == "challenger").count(), 1);
    let again = optishard(&["testnet", "up", "--datadir", d, "--base-port", &base]);
    assert!(!again.status.success() && text(&again).contains("already running"), "{}", text(&again));
    let bad = optishard(&["testnet", "up", "--shards", "0", "--datadir", d]);
    assert!(!bad.status.success() && text(&bad).contains("shards"), "{}", text(&bad));

    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let beacon = m.nodes.iter().find(|n| n.role == "beacon").unwrap().rpc_url.clone();
    let vals: Vec<&NodeEntry> = m.nodes.iter().filter(|n| n.role == "validator").collect();

    // every shard advances, its headers on the beacon
    let genesis_slot = current_slot(&http, &beacon).await;
    wait_for("8 shard blocks on every shard", 60, || async {
        let st = optishard(&["testnet", "status", "--datadir", d, "--json"]);
        let s: Value = serde_json::from_slice(&st.stdout).unwrap_or(Value::Null);
        s["shards"]
            .as_array()
            .is_some_and(|a| a.iter().all(|sh| sh["beacon_height"].as_u64().unwrap_or(0) >= 8))
    })
    .await;
    let status = optishard(&["testnet", "status", "--datadir", d]);
    assert!(status.status.success() && text(&status).contains("beacon head slot"), "{}", text(&status));
    for s in 0..2 {
        let slots = accepted_slots(&http, &beacon, s, 1).await;
        let span = slots.last().unwrap() - slots.first().unwrap() + 1;
        assert!(
            slots.len() as u64 * 10 >= span * 8,
            "shard {s}: headers in {} of {span} slots since slot {genesis_slot}",
            slots.len()
        );
    }

    // transactions through every validator reach the proposers
    let signers: Vec<_> = shard::dev_accounts().into_iter().map(|(k, _)| k).collect();
    let mut sent = Vec::new();
    for (i, v) in vals.iter().enumerate() {
        let shard = v.shard.unwrap();
        let raw = testnet::sign_transfer(
            &signers[i],
            v.chain_id.unwrap(),
            0,
            alloy_primitives::Address::repeat_byte(0xAA),
            1_000 + i as u64,
        );
        let hash =
            rpc(&http, &v.rpc_url, "eth_sendRawTransaction", json!([format!("0x{}", hex::encode(&raw))]))
                .await;
        sent.push((shard, hash));
    }
    for (shard, hash) in &sent {
        for v in vals.iter().filter(|v| v.shard == Some(*shard)) {
            wait_for("the receipt on every validator of the shard", 30, || async {
                call(&http, &v.rpc_url, "eth_getTransactionReceipt", json!([hash]))
                    .await
                    .is_ok_and(|r| r["status"] == "0x1")
            })
            .await;
        }
    }

    // a validator's estimate is enough in the block the transaction lands
    // in: a write whose gas depends on `block.timestamp` having moved since
    // the last one, estimated right after it, succeeds a slot later
    estimates_hold_in_the_next_slot(&http, vals.iter().find(|v| v.shard == Some(1)).unwrap(), &signers[7])
        .await;

    // Prometheus scrapes every node from the generated config
    prometheus_scrapes_every_node(&http, &m).await;

    // a header signed by a validator not scheduled for its slot, and one not
    // extending the chain, are refused with a reason
    let slot = current_slot(&http, &beacon).await;
    let spec: bridge::ChainSpec = serde_json::from_slice(&std::fs::read(&m.genesis).unwrap()).unwrap();
    let proposer = spec.proposer(ShardId(0), slot).unwrap();
    let other = vals
        .iter()
        .filter(|v| v.shard == Some(0) && v.address != proposer.to_string())
        .map(|v| {
            ValidatorKey::from_hex(&std::fs::read_to_string(v.datadir.join("validator.key")).unwrap())
                .unwrap()
        })
        .next()
        .unwrap();
    let head = &rpc(&http, &beacon, "beacon_head", json!([])).await["heads"][0];
    let parent: bridge::Hash = serde_json::from_value(head["hash"].clone()).unwrap();
    let h = ShardHeader {
        shard: ShardId(0),
        height: head["height"].as_u64().unwrap() + 1,
        parent_hash: parent,
        beacon_slot: slot,
        proposer: other.address(),
        ..Default::default()
    };
    let submit = |h: ShardHeader| json!([{ "header": SignedHeader::sign(h, &other), "txs": [] }]);
    let e = call(&http, &beacon, "beacon_submitBlock", submit(h.clone())).await.unwrap_err();
    assert_eq!(e["code"], beacon::REJECTED_CODE);
    assert_eq!(e["data"]["reason"], "not_scheduled", "{e}");
    let stale = ShardHeader { height: 1, parent_hash: bridge::Hash::of(b"nowhere"), ..h };
    let e = call(&http, &beacon, "beacon_submitBlock", submit(stale)).await.unwrap_err();
    assert!(["not_extending", "not_scheduled"].contains(&e["data"]["reason"].as_str().unwrap()), "{e}");
    let rej = rpc(&http, &beacon, "beacon_rejections", json!([10])).await;
    assert!(rej.as_array().unwrap().iter().any(|r| r["reason"] == "not_scheduled"));

    // SIGKILL a validator, let the shard move on, restart it: it catches up
    // and agrees with its peers on every block and root
    let victim = vals.iter().find(|v| v.shard == Some(0)).unwrap();
    let witness = vals.iter().rfind(|v| v.shard == Some(0)).unwrap();
    kill9(victim.pid);
    let at_kill = height(&http, &witness.rpc_url).await.unwrap();
    wait_for("shard 0 to advance without the victim", 30, || async {
        height(&http, &witness.rpc_url).await.is_some_and(|h| h >= at_kill + 6)
    })
    .await;
    let pid = restart(victim);
    wait_for("the restarted validator to catch up", 60, || async {
        match (height(&http, &victim.rpc_url).await, height(&http, &witness.rpc_url).await) {
            (Some(a), Some(b)) => a + 1 >= b && a > at_kill + 6,
            _ => false,
        }
    })
    .await;
    let top = height(&http, &victim.rpc_url).await.unwrap() - 1;
    for n in 1..=top {
        let a = rpc(&http, &victim.rpc_url, "eth_getBlockByNumber", json!([format!("0x{n:x}"), false])).await;
        let b =
            rpc(&http, &witness.rpc_url, "eth_getBlockByNumber", json!([format!("0x{n:x}"), false])).await;
        assert_eq!((&a["hash"], &a["stateRoot"]), (&b["hash"], &b["stateRoot"]), "block {n}");
    }

    // SIGKILL shard 1's next proposer: only its slots go missing
    // the victim is not proposing now or next: it dies before its slot, not
    // halfway through gossiping a block (that would be the data-availability
    // gap the note names, not a missed slot)
    let now = current_slot(&http, &beacon).await;
    let busy = [spec.proposer(ShardId(1), now).unwrap(), spec.proposer(ShardId(1), now + 1).unwrap()];
    let (slot, target) = (now + 2..)
        .find_map(|s| {
            let p = spec.proposer(ShardId(1), s).unwrap();
            (!busy.contains(&p))
                .then(|| {
                    vals.iter().find(|v| v.address == p.to_string() && v.shard == Some(1)).map(|v| (s, *v))
                })
                .flatten()
        })
        .unwrap();
    kill9(target.pid);
    let from_height =
        rpc(&http, &beacon, "beacon_head", json!([])).await["heads"][1]["height"].as_u64().unwrap() + 1;
    wait_for("8 more slots", 30, || async { current_slot(&http, &beacon).await >= slot + 9 }).await;
    let slots = accepted_slots(&http, &beacon, 1, from_height).await;
    let theirs: Vec<u64> = (slot..slot + 8)
        .filter(|s| spec.proposer(ShardId(1), *s).unwrap().to_string() == target.address)
        .collect();
    let others: Vec<u64> = (slot..slot + 8).filter(|s| !theirs.contains(s)).collect();
    assert!(
        slots.iter().all(|s| !theirs.contains(s)),
        "a dead proposer's slot has a header: {slots:?} vs {theirs:?}"
    );
    let kept = others.iter().filter(|s| slots.contains(s)).count();
    assert!(kept * 10 >= others.len() * 7, "shard 1 continued in {kept} of {} other slots", others.len());

    // metrics are served by every live node
    for n in m.nodes.iter().filter(|n| n.pid != target.pid) {
        let body = http.get(&n.metrics_url).send().await.unwrap().text().await.unwrap();
        let want =
            if n.role == "beacon" { "optishard_beacon_head_slot" } else { "optishard_shard_head_height" };
        assert!(body.contains(want) && body.contains("optishard_net_peers"), "{}: {body}", n.name);
        // the beacon consumes shard blocks without relaying them (ignored, not accepted)
        let (gossip_in, verdict) =
            if n.role == "beacon" { ("shard_blocks", "ignored") } else { ("beacon_blocks", "accepted") };
        assert!(
            body.contains(&format!(r#"optishard_net_gossip_messages_total{{topic="{gossip_in}",direction="in",result="{verdict}"}}"#)),
            "{}: {body}",
            n.name
        );
        assert!(body.contains("optishard_rpc_requests_total"), "{}: {body}", n.name);
    }
    let _ = pid;
}

/// The receipt of `hash` on `url`, looked for every 20 ms.
async fn receipt(http: &reqwest::Client, url: &str, hash: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = call(http, url, "eth_getTransactionReceipt", json!([hash])).await
            && !r.is_null()
        {
            return r;
        }
        assert!(Instant::now() < deadline, "no receipt for {hash}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `testdata/contracts/Clock.sol`: `poke()` writes four more slots when
/// `block.timestamp` moved since the last poke. Each round pokes, then at
/// once estimates the next poke and sends it with that estimate; with 700
/// ms slots the next block is often in a later second than the write's.
async fn estimates_hold_in_the_next_slot(
    http: &reqwest::Client,
    v: &NodeEntry,
    signer: &alloy_signer_local::PrivateKeySigner,
) {
    let code = include_str!("../../../testdata/contracts/Clock.bin").trim();
    let chain = v.chain_id.unwrap();
    let send = |nonce: u64, kind: alloy_primitives::TxKind, input: Vec<u8>, gas: u64| {
        let raw =
            testnet::sign_call(signer, chain, nonce, kind, alloy_primitives::U256::ZERO, input.into(), gas);
        let url = v.rpc_url.clone();
        async move { rpc(http, &url, "eth_sendRawTransaction", json!([format!("0x{}", hex::encode(&raw))])).await }
    };
    let create = alloy_primitives::TxKind::Create;
    let deployed =
        receipt(http, &v.rpc_url, &send(0, create, hex::decode(code).unwrap(), 500_000).await).await;
    assert_eq!(deployed["status"], "0x1");
    let clock: alloy_primitives::Address =
        serde_json::from_value(deployed["contractAddress"].clone()).unwrap();
    let poke = alloy_primitives::keccak256(b"poke()")[..4].to_vec();
    let mut nonce = 1;
    let mut later = 0;
    for round in 0..6 {
        let first = receipt(http, &v.rpc_url, &send(nonce, clock.into(), poke.clone(), 300_000).await).await;
        assert_eq!(first["status"], "0x1", "round {round}");
        let req =
            json!([{ "from": signer.address(), "to": clock, "data": format!("0x{}", hex::encode(&poke)) }]);
        let estimate = rpc(http, &v.rpc_url, "eth_estimateGas", req).await;
        let gas = u64::from_str_radix(estimate.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        let second = receipt(http, &v.rpc_url, &send(nonce + 1, clock.into(), poke.clone(), gas).await).await;
        nonce += 2;
        assert_eq!(
            second["status"], "0x1",
            "round {round}: a poke sent with the validator's estimate {gas} failed"
        );
        let ts = |r: &Value| {
            let b = r["blockNumber"].clone();
            let http = http.clone();
            let url = v.rpc_url.clone();
            async move {
                let block = rpc(&http, &url, "eth_getBlockByNumber", json!([b, false])).await;
                u64::from_str_radix(block["timestamp"].as_str().unwrap().trim_start_matches("0x"), 16)
                    .unwrap()
            }
        };
        later += usize::from(ts(&second).await > ts(&first).await);
    }
    assert!(later > 0, "no round landed in a later second than its write");
}

async fn prometheus_scrapes_every_node(http: &reqwest::Client, m: &Manifest) {
    if Command::new("prometheus").arg("--version").output().is_err() {
        eprintln!("prometheus is not installed (scripts/setup.sh installs it): skipping the scrape check");
        return;
    }
    let port = free_base_port(1);
    let tsdb = tempfile::tempdir().unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", m.prometheus_config.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.path().display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let outcome = tokio::time::timeout(Duration::from_secs(45), async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Ok(r) = http.get(format!("{api}/query?query=optishard_shard_head_height")).send().await
            else {
                continue;
            };
            let Ok(v) = r.json::<Value>().await else { continue };
            let series = v["data"]["result"].as_array().map_or(0, |a| a.len());
            let targets: Value = match http.get(format!("{api}/targets")).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => continue,
            };
            let up = targets["data"]["activeTargets"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|t| t["health"] == "up").count());
            if up == m.nodes.len() && series == m.nodes.len() - 1 {
                return;
            }
        }
    })
    .await;
    let _ = prom.kill();
    let _ = prom.wait();
    outcome.expect("Prometheus scrapes every node (all targets up, a head height per validator)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_testnet_stops_everything_on_ctrl_c() {
    let _one_at_a_time = crate::timing_sensitive().await;
    let dir = tempfile::tempdir().unwrap();
    let base = free_base_port(3).to_string();
    let mut up = Command::new(env!("CARGO_BIN_EXE_optishard"))
        .args([
            "testnet",
            "up",
            "--foreground",
            "--shards",
            "1",
            "--validators-per-shard",
            "2",
            "--base-port",
            &base,
        ])
        .arg("--datadir")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = up.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // keep reading to the end so `up` can still print when it stops
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Ctrl-C stops the testnet") {
                let _ = tx.send(());
            }
        }
    });
    let ready = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(90)).is_ok());
    assert!(ready.await.unwrap(), "up reports it is running");
    let m = testnet::cluster::read_manifest(dir.path()).unwrap();
    assert!(m.nodes.iter().all(|n| testnet::cluster::alive(n.pid)));
    assert!(Command::new("kill").args(["-INT", &up.id().to_string()]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || up.wait().unwrap()).await.unwrap();
    assert!(status.success(), "up exits cleanly after Ctrl-C");
    for n in &m.nodes {
        assert!(!testnet::cluster::alive(n.pid), "{} survived Ctrl-C", n.name);
    }
}
