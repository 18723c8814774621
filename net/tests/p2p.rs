//! Real libp2p nodes on 127.0.0.1: discovery from a bootnode, gossip,
//! request-response, and what happens to a peer sending bad messages.

use std::time::Duration;

use bridge::{Hash, ShardId};
use net::NetEvents;
use net::{Multiaddr, NetEvent, NetMetrics, Network, P2pConfig, P2pNetwork, Topic, Validation};

async fn node(seed: u8, boot: Vec<Multiaddr>, quic_only: bool) -> (P2pNetwork, NetEvents) {
    let mut cfg = P2pConfig::local([seed; 32], Hash::of(b"test network"), 0);
    if quic_only {
        cfg.listen.retain(|a| a.to_string().contains("quic"));
    }
    cfg.bootnodes = boot;
    P2pNetwork::start(cfg, NetMetrics::default()).await.unwrap()
}

async fn next_gossip(rx: &mut NetEvents, topic: Topic) -> (net::PeerId, net::MessageId, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(NetEvent::Gossip { topic: t, from, id, data }) = rx.recv().await
                && t == topic
            {
                return (from, id, data);
            }
        }
    })
    .await
    .expect("gossip arrives")
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_forms_from_a_bootnode_and_punishes_bad_gossip() {
    let (boot, _boot_rx) = node(1, vec![], false).await;
    let boot_addrs = boot.listen_addrs();
    let tcp: Vec<Multiaddr> =
        boot_addrs.iter().filter(|a| a.to_string().contains("/tcp/")).cloned().collect();
    let quic: Vec<Multiaddr> =
        boot_addrs.iter().filter(|a| a.to_string().contains("quic")).cloned().collect();
    assert_eq!((tcp.len(), quic.len()), (1, 1));
    let (a, mut ra) = node(2, tcp.clone(), false).await;
    let (b, mut rb) = node(3, quic, true).await;
    let topic = Topic::ShardTxs(ShardId(1));
    for n in [&boot, &a, &b] {
        n.subscribe(topic);
    }
    // a and b only know the bootnode; kademlia introduces them
    wait_until("a and b to connect", || a.peers().contains(&b.local_peer())).await;
    wait_until("b to see a's subscription", || b.topic_peers(topic).contains(&a.local_peer())).await;

    // request-response a -> b
    let rid = a.request(b.local_peer(), b"blocks please".to_vec());
    let inbound = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(NetEvent::Request { id, data, .. }) = rb.recv().await {
                return (id, data);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(inbound.1, b"blocks please");
    b.respond(inbound.0, vec![7; 100_000]);
    let resp = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(NetEvent::Response { id, result, .. }) = ra.recv().await {
                return (id, result);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(resp, (rid, Ok(vec![7; 100_000])));

    // a valid message reaches b and is forwarded
    a.publish(topic, b"valid tx".to_vec());
    let (_, id, data) = next_gossip(&mut rb, topic).await;
    assert_eq!(data, b"valid tx");
    b.report(id, a.local_peer(), Validation::Accept);

    // malformed: b rejects it and a's score at b drops below zero
    a.publish(topic, b"garbage".to_vec());
    let (from, id, _) = next_gossip(&mut rb, topic).await;
    b.report(id, from, Validation::Reject);
    wait_until("a's score at b to fall", || b.peer_score(&from).is_some_and(|s| s < 0.0)).await;

    // oversized: never reaches the application, sender scored down further
    let before = b.peer_score(&from).unwrap();
    a.publish_unchecked(topic, vec![0xAB; topic.max_bytes() + 1]);
    wait_until("oversized message to cost a", || b.peer_score(&from).is_some_and(|s| s < before)).await;
    // the network carries on: the bootnode's messages still arrive
    boot.publish(topic, b"still alive".to_vec());
    let (_, _, data) = next_gossip(&mut rb, topic).await;
    assert_eq!(data, b"still alive");
}

/// Env var that turns [`restarted_peer_child`] into a peer process.
const CHILD_ENV: &str = "OPTISHARD_NET_TEST_CHILD";

/// A peer process for [`a_peer_killed_and_restarted_is_heard_again`]: joins
/// the bootnode over QUIC on a fixed port and publishes `life-<n>-<i>`
/// every 200 ms for at most a minute. A no-op in an ordinary test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peer_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut parts = spec.split(' ');
    let (boot, port, life) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let mut cfg = P2pConfig::local([9; 32], Hash::of(b"test network"), port.parse().unwrap());
    cfg.listen.retain(|a| a.to_string().contains("quic"));
    cfg.bootnodes = vec![boot.parse().unwrap()];
    cfg.topics = vec![Topic::ShardTxs(ShardId(1))];
    let (net, _events) = P2pNetwork::start(cfg, NetMetrics::default()).await.unwrap();
    for i in 0..300 {
        net.publish(Topic::ShardTxs(ShardId(1)), format!("life-{life}-{i}").into_bytes());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A peer SIGKILLed and restarted at once (same identity, same port) used
/// to stay unheard: the bootnode still held the dead QUIC connection, so
/// gossipsub counted the new one as a second connection and never sent
/// the restarted peer its subscriptions — the peer saw no one to publish
/// to (a restarted validator's blocks missed the beacon for 10+ slots).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_and_restarted_is_heard_again() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let (boot, mut rx) = node(1, vec![], true).await;
    let topic = Topic::ShardTxs(ShardId(1));
    boot.subscribe(topic);
    let boot_addr = boot.listen_addrs().remove(0);
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spawn = |life: u32| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "restarted_peer_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{boot_addr} {port} {life}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn(1);
    let ok = heard(&boot, &mut rx, "life-1-", 20).await;
    first.kill().unwrap(); // SIGKILL: the QUIC connection is not closed
    first.wait().unwrap();
    assert!(ok, "the peer's first life was never heard");
    let mut second = spawn(2);
    // well inside QUIC's 10 s idle timeout of the dead connection
    let ok = heard(&boot, &mut rx, "life-2-", 8).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(ok, "the restarted peer's gossip never reached the bootnode");
}

/// Whether gossip starting with `prefix` reaches `net` within `secs`.
async fn heard(net: &P2pNetwork, rx: &mut NetEvents, prefix: &str, secs: u64) -> bool {
    tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            if let Some(NetEvent::Gossip { id, from, data, .. }) = rx.recv().await {
                net.report(id, from, Validation::Accept);
                if data.starts_with(prefix.as_bytes()) {
                    return;
                }
            }
        }
    })
    .await
    .is_ok()
}

/// The shaper on real swarms: what b hears from a waits the link's
/// latency (and only from a); a cut (block list) closes the connection and
/// refuses a new one until healed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shaped_link_delays_and_a_blocked_peer_is_cut_off_until_healed() {
    let (a, _ra) = node(21, vec![], false).await;
    let tcp: Vec<Multiaddr> =
        a.listen_addrs().into_iter().filter(|x| x.to_string().contains("/tcp/")).collect();
    let (b, mut rb) = node(22, tcp, false).await;
    let topic = Topic::ShardTxs(ShardId(3));
    a.subscribe(topic);
    b.subscribe(topic);
    wait_until("b to see a's subscription", || b.topic_peers(topic).contains(&a.local_peer())).await;
    wait_until("a to see b's subscription", || a.topic_peers(topic).contains(&b.local_peer())).await;

    // unshaped, then 400 ms of latency on what b hears from a
    let fast = time_to_hear(&a, &mut rb, topic, b"first").await;
    b.set_link(a.local_peer(), Some(net::LinkModel { latency_ms: 400, ..Default::default() }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let slow = time_to_hear(&a, &mut rb, topic, b"second").await;
    assert!(slow >= Duration::from_millis(400), "a 400 ms link delivered in {slow:?}");
    assert!(slow > fast, "unshaped {fast:?}, shaped {slow:?}");
    b.set_link(a.local_peer(), None);

    // cut: the connection closes and stays closed while blocked
    b.set_blocked(a.local_peer(), true);
    wait_until("the cut to close the connection", || !b.peers().contains(&a.local_peer())).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!b.peers().contains(&a.local_peer()), "a blocked peer got back in");
    b.set_blocked(a.local_peer(), false);
    wait_until("the healed link to reconnect", || b.peers().contains(&a.local_peer())).await;
}

async fn time_to_hear(a: &P2pNetwork, rb: &mut NetEvents, topic: Topic, payload: &[u8]) -> Duration {
    let t = std::time::Instant::now();
    a.publish(topic, payload.to_vec());
    loop {
        let (_, _, data) = next_gossip(rb, topic).await;
        if data == payload {
            return t.elapsed();
        }
    }
}
