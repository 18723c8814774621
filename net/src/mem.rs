//! The in-memory network: every node joins one [`MemHub`]; gossip reaches
//! every other online subscriber at once, requests reach their target, all
//! in call order, so a cluster driven from one thread is deterministic.
//!
//! Links between two nodes can be cut ([`MemHub::set_blocked`]): nothing
//! passes between them directly, as when the kernel drops their packets,
//! but gossip still floods around the cut through subscribers that reach
//! both sides (gossipsub relays), while a request between them fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use libp2p::PeerId;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::{InboundId, MessageId, NetEvent, Network, RequestId, Topic, Validation};

/// How much one rejected message lowers the sender's score.
const REJECT_PENALTY: f64 = 10.0;

struct Node {
    tx: mpsc::UnboundedSender<NetEvent>,
    topics: BTreeSet<Topic>,
    scores: HashMap<PeerId, f64>,
    /// Verdicts this node gave on gossip, by sender: accepted (relayed),
    /// ignored, rejected.
    verdicts: HashMap<PeerId, [u64; 3]>,
    online: bool,
}

#[derive(Default)]
struct Hub {
    nodes: BTreeMap<PeerId, Node>,
    order: Vec<PeerId>,
    next_id: u64,
    inbound: HashMap<u64, (PeerId, PeerId, RequestId)>,
    /// Cut links, each pair ordered.
    blocked: BTreeSet<(PeerId, PeerId)>,
}

fn pair(a: PeerId, b: PeerId) -> (PeerId, PeerId) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Hub {
    fn online(&self, p: &PeerId) -> bool {
        self.nodes.get(p).is_some_and(|n| n.online)
    }

    /// Whether `a` and `b` can exchange packets: both online, the link
    /// between them not cut.
    fn linked(&self, a: PeerId, b: PeerId) -> bool {
        self.online(&a) && self.online(&b) && !self.blocked.contains(&pair(a, b))
    }

    /// The subscribers of `topic` gossip from `from` reaches: those it
    /// links to, and on through subscribers that relay, in join order.
    fn reached(&self, from: PeerId, topic: Topic) -> Vec<PeerId> {
        let subscribed =
            |p: &PeerId| self.nodes.get(p).is_some_and(|n| n.online && n.topics.contains(&topic));
        let mut seen: BTreeSet<PeerId> = BTreeSet::from([from]);
        let mut frontier = vec![from];
        while let Some(at) = frontier.pop() {
            for p in &self.order {
                if !seen.contains(p) && subscribed(p) && self.linked(at, *p) {
                    seen.insert(*p);
                    frontier.push(*p);
                }
            }
        }
        self.order.iter().filter(|p| **p != from && seen.contains(p)).copied().collect()
    }
}

/// The shared medium of an in-memory cluster.
#[derive(Clone, Default)]
pub struct MemHub {
    inner: Arc<Mutex<Hub>>,
}

impl MemHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node whose peer id derives from `seed`; returns its handle
    /// and its event stream.
    pub fn join(&self, seed: u64) -> (MemNetwork, mpsc::UnboundedReceiver<NetEvent>) {
        let mut secret = [0u8; 32];
        secret[..8].copy_from_slice(&seed.to_be_bytes());
        secret[8] = 1;
        let key =
            libp2p::identity::Keypair::ed25519_from_bytes(secret).expect("32 bytes is an ed25519 secret");
        let peer = key.public().to_peer_id();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut hub = self.inner.lock();
        for other in hub.order.clone() {
            if let Some(n) = hub.nodes.get(&other)
                && n.online
                && !hub.blocked.contains(&pair(peer, other))
            {
                let _ = n.tx.send(NetEvent::PeerConnected(peer));
                let _ = tx.send(NetEvent::PeerConnected(other));
            }
        }
        hub.nodes.insert(
            peer,
            Node {
                tx,
                topics: BTreeSet::new(),
                scores: HashMap::new(),
                verdicts: HashMap::new(),
                online: true,
            },
        );
        hub.order.push(peer);
        (MemNetwork { hub: self.inner.clone(), me: peer }, rx)
    }

    /// Takes a node off the network (it neither sends nor receives) or
    /// brings it back.
    pub fn set_online(&self, peer: &PeerId, online: bool) {
        let mut hub = self.inner.lock();
        if let Some(n) = hub.nodes.get_mut(peer) {
            n.online = online;
        }
        let event = if online { NetEvent::PeerConnected(*peer) } else { NetEvent::PeerDisconnected(*peer) };
        for (p, n) in &hub.nodes {
            if p != peer && n.online && !hub.blocked.contains(&pair(*p, *peer)) {
                let _ = n.tx.send(event.clone());
            }
        }
    }

    /// Cuts the link between `a` and `b` (nothing passes between them
    /// directly) or restores it; each side hears the other go or come back.
    pub fn set_blocked(&self, a: &PeerId, b: &PeerId, blocked: bool) {
        let mut hub = self.inner.lock();
        if a == b {
            return;
        }
        let changed =
            if blocked { hub.blocked.insert(pair(*a, *b)) } else { hub.blocked.remove(&pair(*a, *b)) };
        if !changed || !hub.online(a) || !hub.online(b) {
            return;
        }
        for (me, other) in [(a, b), (b, a)] {
            let event =
                if blocked { NetEvent::PeerDisconnected(*other) } else { NetEvent::PeerConnected(*other) };
            let _ = hub.nodes[me].tx.send(event);
        }
    }

    /// Replaces a node's event stream (a restarted node keeps its peer id).
    pub fn reconnect(&self, peer: &PeerId) -> Option<mpsc::UnboundedReceiver<NetEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut hub = self.inner.lock();
        let n = hub.nodes.get_mut(peer)?;
        n.tx = tx;
        n.topics.clear();
        Some(rx)
    }
}

/// How a node judged the gossip one peer sent it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// Accepted, hence relayed.
    pub accepted: u64,
    /// Ignored: dropped, not relayed, no penalty.
    pub ignored: u64,
    /// Rejected: dropped and the sender penalised.
    pub rejected: u64,
}

impl MemNetwork {
    /// How this node judged the gossip `from` sent it (tests check what a
    /// node relays: only accepted messages).
    pub fn verdicts_from(&self, from: &PeerId) -> Verdicts {
        let hub = self.hub.lock();
        let c = hub.nodes.get(&self.me).and_then(|n| n.verdicts.get(from).copied()).unwrap_or_default();
        Verdicts { accepted: c[0], ignored: c[1], rejected: c[2] }
    }
}

/// One node's handle on a [`MemHub`].
#[derive(Clone)]
pub struct MemNetwork {
    hub: Arc<Mutex<Hub>>,
    me: PeerId,
}

impl Network for MemNetwork {
    fn local_peer(&self) -> PeerId {
        self.me
    }

    fn subscribe(&self, topic: Topic) {
        if let Some(n) = self.hub.lock().nodes.get_mut(&self.me) {
            n.topics.insert(topic);
        }
    }

    fn publish(&self, topic: Topic, data: Vec<u8>) {
        let mut hub = self.hub.lock();
        if !hub.nodes.get(&self.me).is_some_and(|n| n.online) {
            return;
        }
        hub.next_id += 1;
        let id = MessageId(hub.next_id.to_be_bytes().to_vec());
        for p in hub.reached(self.me, topic) {
            let ev = NetEvent::Gossip { topic, from: self.me, id: id.clone(), data: data.clone() };
            if data.len() > topic.max_bytes() {
                // the transport drops it; the sender pays as for an invalid message
                let n = hub.nodes.get_mut(&p).expect("listed");
                *n.scores.entry(self.me).or_default() -= REJECT_PENALTY;
                continue;
            }
            let _ = hub.nodes[&p].tx.send(ev);
        }
    }

    fn report(&self, _id: MessageId, from: PeerId, verdict: Validation) {
        let mut hub = self.hub.lock();
        let Some(n) = hub.nodes.get_mut(&self.me) else { return };
        let counts = n.verdicts.entry(from).or_default();
        match verdict {
            Validation::Accept => counts[0] += 1,
            Validation::Ignore => counts[1] += 1,
            Validation::Reject => {
                counts[2] += 1;
                *n.scores.entry(from).or_default() -= REJECT_PENALTY;
            }
        }
    }

    fn request(&self, peer: PeerId, data: Vec<u8>) -> RequestId {
        let mut hub = self.hub.lock();
        hub.next_id += 1;
        let rid = RequestId(hub.next_id);
        if !hub.linked(self.me, peer) || peer == self.me {
            if let Some(n) = hub.nodes.get(&self.me) {
                let _ =
                    n.tx.send(NetEvent::Response { peer, id: rid, result: Err("peer unreachable".into()) });
            }
            return rid;
        }
        hub.next_id += 1;
        let inbound = hub.next_id;
        hub.inbound.insert(inbound, (peer, self.me, rid));
        let _ = hub.nodes[&peer].tx.send(NetEvent::Request { peer: self.me, id: InboundId(inbound), data });
        rid
    }

    fn respond(&self, id: InboundId, data: Vec<u8>) {
        let mut hub = self.hub.lock();
        let Some((responder, asker, rid)) = hub.inbound.remove(&id.0) else { return };
        if responder != self.me {
            return;
        }
        // a link cut meanwhile loses the answer: the asker hears it failed
        let result = if hub.linked(self.me, asker) { Ok(data) } else { Err("peer unreachable".into()) };
        if let Some(n) = hub.nodes.get(&asker)
            && n.online
        {
            let _ = n.tx.send(NetEvent::Response { peer: self.me, id: rid, result });
        }
    }

    fn peers(&self) -> Vec<PeerId> {
        let hub = self.hub.lock();
        hub.order.iter().filter(|p| **p != self.me && hub.linked(self.me, **p)).copied().collect()
    }

    fn topic_peers(&self, topic: Topic) -> Vec<PeerId> {
        let hub = self.hub.lock();
        hub.order
            .iter()
            .filter(|p| **p != self.me && hub.linked(self.me, **p) && hub.nodes[*p].topics.contains(&topic))
            .copied()
            .collect()
    }

    fn peer_score(&self, peer: &PeerId) -> Option<f64> {
        let hub = self.hub.lock();
        let n = hub.nodes.get(&self.me)?;
        hub.nodes.contains_key(peer).then(|| n.scores.get(peer).copied().unwrap_or(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge::ShardId;

    #[test]
    fn gossip_reaches_subscribers_and_rejects_score_down() {
        let hub = MemHub::new();
        let (a, mut ra) = hub.join(1);
        let (b, mut rb) = hub.join(2);
        let (_c, mut rc) = hub.join(3);
        let t = Topic::ShardTxs(ShardId(0));
        b.subscribe(t);
        a.publish(t, vec![1, 2, 3]);
        while let Ok(ev) = ra.try_recv() {
            assert!(matches!(ev, NetEvent::PeerConnected(_)));
        }
        let mut got = None;
        while let Ok(ev) = rb.try_recv() {
            if let NetEvent::Gossip { from, id, data, .. } = ev {
                got = Some((from, id, data));
            }
        }
        let (from, id, data) = got.expect("b is subscribed");
        assert_eq!((from, data), (a.local_peer(), vec![1, 2, 3]));
        assert!(!std::iter::from_fn(|| rc.try_recv().ok()).any(|e| matches!(e, NetEvent::Gossip { .. })));
        assert_eq!(b.peer_score(&a.local_peer()), Some(0.0));
        b.report(id, from, Validation::Reject);
        assert!(b.peer_score(&a.local_peer()).unwrap() < 0.0);
        // oversized: never delivered, sender scored down
        a.publish(t, vec![0; t.max_bytes() + 1]);
        assert!(!std::iter::from_fn(|| rb.try_recv().ok()).any(|e| matches!(e, NetEvent::Gossip { .. })));
        assert!(b.peer_score(&a.local_peer()).unwrap() < -REJECT_PENALTY);
    }

    /// A cut link: requests across it fail; gossip goes around it through
    /// a subscriber linked to both sides, and stops when none is left.
    #[test]
    fn a_cut_link_stops_direct_traffic_and_gossip_floods_around_it() {
        let hub = MemHub::new();
        let (a, mut ra) = hub.join(1);
        let (b, mut rb) = hub.join(2);
        let (c, mut rc) = hub.join(3);
        let t = Topic::ShardTxs(ShardId(0));
        for n in [&a, &b, &c] {
            n.subscribe(t);
        }
        let drain = |r: &mut mpsc::UnboundedReceiver<NetEvent>| {
            std::iter::from_fn(|| r.try_recv().ok()).collect::<Vec<_>>()
        };
        let gossips = |evs: &[NetEvent]| evs.iter().filter(|e| matches!(e, NetEvent::Gossip { .. })).count();
        drain(&mut ra);
        drain(&mut rb);
        drain(&mut rc);
        hub.set_blocked(&a.local_peer(), &b.local_peer(), true);
        assert!(
            drain(&mut ra).iter().any(|e| matches!(e, NetEvent::PeerDisconnected(p) if *p == b.local_peer()))
        );
        assert!(!a.peers().contains(&b.local_peer()));
        let rid = a.request(b.local_peer(), vec![1]);
        assert!(
            drain(&mut ra)
                .iter()
                .any(|e| matches!(e, NetEvent::Response { id, result: Err(_), .. } if *id == rid))
        );
        assert!(
            !drain(&mut rb).iter().any(|e| matches!(e, NetEvent::Request { .. })),
            "nothing crossed the cut"
        );
        a.publish(t, vec![7]);
        assert_eq!(gossips(&drain(&mut rb)), 1, "relayed through c");
        assert_eq!(gossips(&drain(&mut rc)), 1);
        hub.set_blocked(&a.local_peer(), &c.local_peer(), true);
        a.publish(t, vec![8]);
        assert_eq!(gossips(&drain(&mut rb)), 0, "a is cut off from both");
        hub.set_blocked(&a.local_peer(), &b.local_peer(), false);
        a.publish(t, vec![9]);
        assert_eq!(gossips(&drain(&mut rb)), 1, "healed");
        assert_eq!(gossips(&drain(&mut rc)), 1, "through b");
    }

    #[test]
    fn requests_are_answered_and_offline_peers_fail() {
        let hub = MemHub::new();
        let (a, mut ra) = hub.join(1);
        let (b, mut rb) = hub.join(2);
        let rid = a.request(b.local_peer(), b"ping".to_vec());
        let inbound = std::iter::from_fn(|| rb.try_recv().ok())
            .find_map(|e| match e {
                NetEvent::Request { id, data, .. } => Some((id, data)),
                _ => None,
            })
            .unwrap();
        assert_eq!(inbound.1, b"ping");
        b.respond(inbound.0, b"pong".to_vec());
        let resp = std::iter::from_fn(|| ra.try_recv().ok())
            .find_map(|e| match e {
                NetEvent::Response { id, result, .. } => Some((id, result)),
                _ => None,
            })
            .unwrap();
        assert_eq!(resp, (rid, Ok(b"pong".to_vec())));
        hub.set_online(&b.local_peer(), false);
        let rid = a.request(b.local_peer(), vec![]);
        let failed = std::iter::from_fn(|| ra.try_recv().ok())
            .any(|e| matches!(e, NetEvent::Response { id, result: Err(_), .. } if id == rid));
        assert!(failed);
    }
}
