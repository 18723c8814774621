//! The in-memory network: every node joins one [`MemHub`]; gossip reaches
//! every other online subscriber at once, requests reach their target, all
//! in call order, so a cluster driven from one thread is deterministic.
//!
//! Links between two nodes can be cut ([`MemHub::set_blocked`]): nothing
//! passes between them directly, as when the kernel drops their packets,
//! but gossip still floods around the cut through subscribers that reach
//! both sides (gossipsub relays), while a request between them fails.
//!
//! A link can also be slow ([`MemHub::set_link`]: latency, jitter, loss,
//! bandwidth) on a virtual clock the driver moves ([`MemHub::advance_to`]):
//! what crosses such a link waits in the hub until its arrival time, each
//! direction sending one message after another at the link's bandwidth.
//! Gossip reaches each subscriber at the earliest time any relay path
//! gives; a lost request comes back failed after the latency, as a
//! timeout would. Jitter and loss draw from a seeded generator, so a run
//! stays reproducible. With no slow link every delivery is immediate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use libp2p::PeerId;
use parking_lot::Mutex;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

use crate::{InboundId, LinkModel, MessageId, NetEvent, Network, RequestId, Topic, Validation};

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

struct Hub {
    nodes: BTreeMap<PeerId, Node>,
    order: Vec<PeerId>,
    next_id: u64,
    inbound: HashMap<u64, (PeerId, PeerId, RequestId)>,
    /// Cut links, each pair ordered.
    blocked: BTreeSet<(PeerId, PeerId)>,
    /// Slow links, each pair ordered.
    links: BTreeMap<(PeerId, PeerId), LinkModel>,
    /// Per direction of a slow link: when it is free to send again.
    busy_until: HashMap<(PeerId, PeerId), u64>,
    /// The virtual clock, milliseconds.
    now_ms: u64,
    /// Messages on their way: arrival time and sequence, recipient, event.
    queue: BTreeMap<(u64, u64), (PeerId, NetEvent)>,
    seq: u64,
    rng: ChaCha8Rng,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            nodes: BTreeMap::new(),
            order: Vec::new(),
            next_id: 0,
            inbound: HashMap::new(),
            blocked: BTreeSet::new(),
            links: BTreeMap::new(),
            busy_until: HashMap::new(),
            now_ms: 0,
            queue: BTreeMap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }
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

    /// When a message of `bytes` sent now from `a` arrives at `b` over
    /// their link (`None`: lost); a slow link's direction is busy while
    /// it sends.
    fn crossing(&mut self, a: PeerId, b: PeerId, sent: u64, bytes: usize) -> Option<u64> {
        let Some(link) = self.links.get(&pair(a, b)).copied().filter(|l| !l.is_instant()) else {
            return Some(sent);
        };
        let busy = self.busy_until.entry((a, b)).or_insert(0);
        link.crossing(&mut self.rng, busy, sent, bytes)
    }

    /// The subscribers of `topic` gossip of `bytes` from `from` reaches,
    /// with when: over every uncut link, on through subscribers that relay,
    /// each at the earliest time a path gives (in join order on ties).
    fn reached(&mut self, from: PeerId, topic: Topic, bytes: usize) -> Vec<(PeerId, u64)> {
        let subscribed =
            |h: &Hub, p: &PeerId| h.nodes.get(p).is_some_and(|n| n.online && n.topics.contains(&topic));
        if self.blocked.is_empty() && self.links.is_empty() {
            // every link instant and up: every online subscriber, now
            let now = self.now_ms;
            return self
                .order
                .iter()
                .filter(|p| **p != from && subscribed(self, p))
                .map(|p| (*p, now))
                .collect();
        }
        let mut arrival: BTreeMap<PeerId, u64> = BTreeMap::from([(from, self.now_ms)]);
        let mut settled: BTreeSet<PeerId> = BTreeSet::new();
        let position: HashMap<PeerId, usize> = self.order.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        // the unsettled node reached earliest (join order on ties), in turn
        while let Some((at, time)) = arrival
            .iter()
            .filter(|(p, _)| !settled.contains(*p))
            .min_by_key(|(p, t)| (**t, position.get(*p).copied().unwrap_or(usize::MAX)))
            .map(|(p, t)| (*p, *t))
        {
            settled.insert(at);
            for p in self.order.clone() {
                if settled.contains(&p) || !subscribed(self, &p) || !self.linked(at, p) {
                    continue;
                }
                if let Some(t) = self.crossing(at, p, time, bytes)
                    && arrival.get(&p).is_none_or(|old| t < *old)
                {
                    arrival.insert(p, t);
                }
            }
        }
        let mut out: Vec<(PeerId, u64)> =
            arrival.into_iter().filter(|(p, _)| *p != from && settled.contains(p)).collect();
        out.sort_by_key(|(p, t)| (*t, position.get(p).copied().unwrap_or(usize::MAX)));
        out
    }

    /// Hands `event` to `to` at `at`: now if due, else when the clock
    /// reaches it.
    fn deliver(&mut self, to: PeerId, at: u64, event: NetEvent) {
        if at <= self.now_ms {
            if let Some(n) = self.nodes.get(&to) {
                let _ = n.tx.send(event);
            }
        } else {
            self.seq += 1;
            self.queue.insert((at, self.seq), (to, event));
        }
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

    /// An empty hub whose slow links draw jitter and loss from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        let hub = Self::default();
        hub.inner.lock().rng = ChaCha8Rng::seed_from_u64(seed);
        hub
    }

    /// Makes the link between `a` and `b` slow (`None`: instant again).
    pub fn set_link(&self, a: &PeerId, b: &PeerId, model: Option<LinkModel>) {
        let mut hub = self.inner.lock();
        match model.filter(|m| !m.is_instant()) {
            Some(m) => hub.links.insert(pair(*a, *b), m),
            None => hub.links.remove(&pair(*a, *b)),
        };
    }

    /// Moves the virtual clock to `ms` (never back), handing over every
    /// message due by then, in arrival order.
    pub fn advance_to(&self, ms: u64) {
        let mut hub = self.inner.lock();
        hub.now_ms = hub.now_ms.max(ms);
        let now = hub.now_ms;
        while let Some(entry) = hub.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (to, event) = entry.remove();
            // a recipient gone offline meanwhile never hears it
            if let Some(n) = hub.nodes.get(&to).filter(|n| n.online) {
                let _ = n.tx.send(event);
            }
        }
    }

    /// When the next message on its way arrives, if any.
    pub fn next_due(&self) -> Option<u64> {
        self.inner.lock().queue.keys().next().map(|(t, _)| *t)
    }

    /// The virtual clock.
    pub fn now_ms(&self) -> u64 {
        self.inner.lock().now_ms
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
        for (p, at) in hub.reached(self.me, topic, data.len()) {
            let ev = NetEvent::Gossip { topic, from: self.me, id: id.clone(), data: data.clone() };
            if data.len() > topic.max_bytes() {
                // the transport drops it; the sender pays as for an invalid message
                let n = hub.nodes.get_mut(&p).expect("listed");
                *n.scores.entry(self.me).or_default() -= REJECT_PENALTY;
                continue;
            }
            hub.deliver(p, at, ev);
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
        let now = hub.now_ms;
        match hub.crossing(self.me, peer, now, data.len()) {
            Some(at) => {
                hub.inbound.insert(inbound, (peer, self.me, rid));
                hub.deliver(peer, at, NetEvent::Request { peer: self.me, id: InboundId(inbound), data });
            }
            None => {
                // lost: the asker hears it failed after the link's delay, as
                // a timeout would tell it
                let link = hub.links.get(&pair(self.me, peer)).copied().unwrap_or_default();
                let failed = NetEvent::Response { peer, id: rid, result: Err("request lost".into()) };
                hub.deliver(self.me, now + 2 * link.latency_ms + 1, failed);
            }
        }
        rid
    }

    fn respond(&self, id: InboundId, data: Vec<u8>) {
        let mut hub = self.hub.lock();
        let Some((responder, asker, rid)) = hub.inbound.remove(&id.0) else { return };
        if responder != self.me {
            return;
        }
        // a link cut meanwhile, or a lost answer: the asker hears it failed
        let now = hub.now_ms;
        let (at, result) =
            match hub.linked(self.me, asker).then(|| hub.crossing(self.me, asker, now, data.len())) {
                Some(Some(at)) => (at, Ok(data)),
                _ => (now, Err("peer unreachable".into())),
            };
        if hub.online(&asker) {
            hub.deliver(asker, at, NetEvent::Response { peer: self.me, id: rid, result });
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

    /// A slow link holds what crosses it until the clock reaches its
    /// arrival: latency, then a queue at the link's bandwidth; loss drops
    /// a share (the same share for the same seed); gossip takes the
    /// fastest relay path.
    #[test]
    fn a_slow_link_delays_queues_and_drops_on_the_virtual_clock() {
        let hub = MemHub::with_seed(9);
        let (a, _ra) = hub.join(1);
        let (b, mut rb) = hub.join(2);
        let (c, mut rc) = hub.join(3);
        let t = Topic::ShardTxs(ShardId(0));
        for n in [&a, &b, &c] {
            n.subscribe(t);
        }
        let gossips = |r: &mut mpsc::UnboundedReceiver<NetEvent>| {
            std::iter::from_fn(|| r.try_recv().ok()).filter(|e| matches!(e, NetEvent::Gossip { .. })).count()
        };
        let slow = LinkModel { latency_ms: 200, ..Default::default() };
        hub.set_link(&a.local_peer(), &b.local_peer(), Some(slow));
        hub.set_link(&a.local_peer(), &c.local_peer(), Some(slow));
        a.publish(t, vec![1; 100]);
        assert_eq!((gossips(&mut rb), gossips(&mut rc)), (0, 0), "on its way");
        assert_eq!(hub.next_due(), Some(200));
        hub.advance_to(199);
        assert_eq!(gossips(&mut rb), 0);
        hub.advance_to(200);
        assert_eq!((gossips(&mut rb), gossips(&mut rc)), (1, 1), "arrived after the latency");
        // b–c instant, a–c fast: b hears it through c first
        hub.set_link(
            &a.local_peer(),
            &c.local_peer(),
            Some(LinkModel { latency_ms: 10, ..Default::default() }),
        );
        a.publish(t, vec![2; 100]);
        hub.advance_to(210);
        assert_eq!(gossips(&mut rb), 1, "relayed by c, not the slow direct link");
        // 80 kbit/s: a 1,000-byte message takes 100 ms to send; a second
        // one waits for the first
        hub.set_link(&a.local_peer(), &c.local_peer(), None);
        hub.set_blocked(&b.local_peer(), &c.local_peer(), true);
        hub.set_link(
            &a.local_peer(),
            &b.local_peer(),
            Some(LinkModel { bandwidth_kbps: Some(80), ..Default::default() }),
        );
        let rid1 = a.request(b.local_peer(), vec![0; 1_000]);
        let rid2 = a.request(b.local_peer(), vec![0; 1_000]);
        assert_ne!(rid1, rid2);
        assert_eq!(hub.next_due(), Some(210 + 100));
        hub.advance_to(310);
        let got = |r: &mut mpsc::UnboundedReceiver<NetEvent>| {
            std::iter::from_fn(|| r.try_recv().ok()).filter(|e| matches!(e, NetEvent::Request { .. })).count()
        };
        assert_eq!(got(&mut rb), 1, "the first after its 100 ms");
        hub.advance_to(410);
        assert_eq!(got(&mut rb), 1, "the second after the first");
        // loss: about the share asked, and the same for the same seed
        let lost = |seed: u64| {
            let hub = MemHub::with_seed(seed);
            let (a, _ra) = hub.join(1);
            let (b, mut rb) = hub.join(2);
            b.subscribe(t);
            hub.set_link(
                &a.local_peer(),
                &b.local_peer(),
                Some(LinkModel { loss: 0.3, ..Default::default() }),
            );
            for _ in 0..1_000 {
                a.publish(t, vec![3]);
            }
            1_000 - gossips(&mut rb)
        };
        let n = lost(4);
        assert!((220..380).contains(&n), "{n} of 1,000 lost at 30 %");
        assert_eq!(lost(4), n, "the same seed loses the same messages");
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
