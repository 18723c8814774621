//! The libp2p network: one swarm task per node owns gossipsub,
//! request-response, identify and kademlia over TCP and QUIC (noise,
//! yamux); the cloneable [`P2pNetwork`] handle sends it commands.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bridge::Hash;
use futures::prelude::*;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, allow_block_list, identify, identity, kad, noise, tcp, yamux,
};
use parking_lot::RwLock;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::{
    InboundId, LinkModel, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, MessageId, NetEvent, NetMetrics, Network,
    RequestId, Shaped, Shaper, Topic, Validation,
};

const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/optishard/sync/1");
const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/optishard/kad/1");
/// How long a publish waits for a subscribed peer before it is dropped.
const PUBLISH_RETRY: Duration = Duration::from_secs(10);

/// Settings of a libp2p node.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// Addresses to listen on (`/ip4/127.0.0.1/tcp/0`, `/ip4/…/udp/0/quic-v1`).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start and again whenever not connected to them.
    pub bootnodes: Vec<Multiaddr>,
    /// Ed25519 secret of the node identity (its peer id).
    pub secret: [u8; 32],
    /// The network's spec hash; topic names are scoped to it.
    pub network: Hash,
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// Topics joined before the node listens or dials, so every peer learns
    /// them in the connection's first exchange rather than from a later
    /// subscription message (which a peer connecting at the same moment can
    /// miss, leaving it publishing past this node for good).
    pub topics: Vec<Topic>,
}

impl P2pConfig {
    /// Listens on `ip`, TCP and QUIC (UDP) on `port` (0 picks free ports).
    pub fn new(secret: [u8; 32], network: Hash, ip: std::net::IpAddr, port: u16) -> Self {
        use libp2p::multiaddr::Protocol;
        P2pConfig {
            listen: vec![
                Multiaddr::from(ip).with(Protocol::Tcp(port)),
                Multiaddr::from(ip).with(Protocol::Udp(port)).with(Protocol::QuicV1),
            ],
            bootnodes: vec![],
            secret,
            network,
            heartbeat: Duration::from_millis(500),
            topics: vec![],
        }
    }

    /// Listens on `127.0.0.1` (tests, local testnets).
    pub fn local(secret: [u8; 32], network: Hash, port: u16) -> Self {
        Self::new(secret, network, [127, 0, 0, 1].into(), port)
    }
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Behaviour {
    /// Peers a scenario cut this node off from (`P2pNetwork::set_blocked`).
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// Length-prefixed byte messages, bounded on read.
#[derive(Clone, Default)]
struct SyncCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, limit: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes over limit {limit}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, data: &[u8]) -> io::Result<()> {
    io.write_all(&(data.len() as u32).to_be_bytes()).await?;
    io.write_all(data).await?;
    io.close().await
}

#[async_trait]
impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io, MAX_REQUEST_BYTES).await
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io, MAX_RESPONSE_BYTES).await
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, &req).await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()> {
        write_frame(io, &res).await
    }
}

enum Command {
    Subscribe(Topic),
    Publish { topic: Topic, data: Vec<u8>, checked: bool },
    Report(MessageId, PeerId, Validation),
    Request(PeerId, Vec<u8>, RequestId),
    Respond(InboundId, Vec<u8>),
    SetLink(PeerId, Option<LinkModel>),
    SetBlocked(PeerId, bool),
}

#[derive(Default)]
struct Shared {
    peers: HashSet<PeerId>,
    topic_peers: HashMap<Topic, HashSet<PeerId>>,
    scores: HashMap<PeerId, f64>,
    listen: Vec<Multiaddr>,
}

/// Handle on a running libp2p node. Dropping every handle stops the node.
#[derive(Clone)]
pub struct P2pNetwork {
    me: PeerId,
    cmd: mpsc::UnboundedSender<Command>,
    shared: Arc<RwLock<Shared>>,
    next_request: Arc<AtomicU64>,
}

fn gossipsub_config(cfg: &P2pConfig) -> Result<gossipsub::Config, String> {
    let max = [Topic::BeaconBlocks, Topic::Submissions, Topic::ShardBlocks(bridge::ShardId(0))]
        .iter()
        .map(Topic::max_bytes)
        .max()
        .unwrap_or(1 << 20);
    gossipsub::ConfigBuilder::default()
        .heartbeat_interval(cfg.heartbeat)
        // a testnet has 3-20 nodes: a smaller mesh than Ethereum's 8/6/12
        .mesh_n(4)
        .mesh_n_low(2)
        .mesh_n_high(8)
        .mesh_outbound_min(1)
        .gossip_lazy(4)
        .flood_publish(true)
        .max_transmit_size(max + (64 << 10))
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .duplicate_cache_time(Duration::from_secs(120))
        // content addressed: the same block relayed by two nodes is one message
        .message_id_fn(|m: &gossipsub::Message| {
            let h = bridge::hash_domain(b"optishard.gossip", &[m.topic.as_str().as_bytes(), &m.data]);
            gossipsub::MessageId::from(&h.0[..20])
        })
        .build()
        .map_err(|e| format!("gossipsub config: {e}"))
}

fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        // quiet topics are normal here: no penalty for under-delivery
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // one invalid message costs 10, three put the peer past the graylist
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}

impl P2pNetwork {
    /// Starts the node: listens, dials the bootnodes, and returns once every
    /// listen address is bound.
    pub async fn start(cfg: P2pConfig, metrics: NetMetrics) -> Result<(Self, NetEvents), String> {
        let key = identity::Keypair::ed25519_from_bytes(cfg.secret).map_err(|e| format!("p2p key: {e}"))?;
        let me = key.public().to_peer_id();
        let gs_cfg = gossipsub_config(&cfg)?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| format!("tcp transport: {e}"))?
            .with_quic()
            .with_behaviour(|key| {
                let mut gossipsub =
                    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gs_cfg)?;
                let params = gossipsub::PeerScoreParams {
                    // every testnet node shares 127.0.0.1
                    ip_colocation_factor_weight: 0.0,
                    ..Default::default()
                };
                let thresholds = gossipsub::PeerScoreThresholds {
                    gossip_threshold: -10.0,
                    publish_threshold: -50.0,
                    graylist_threshold: -80.0,
                    accept_px_threshold: 10.0,
                    opportunistic_graft_threshold: 1.0,
                };
                gossipsub.with_peer_score(params, thresholds)?;
                let sync = request_response::Behaviour::with_codec(
                    SyncCodec,
                    [(SYNC_PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(Duration::from_secs(15)),
                );
                // the agent version ends in a random id of this process, so
                // peers tell a restart from a second connection (reset_peer)
                let agent = format!("optishard/{}/{:016x}", env!("CARGO_PKG_VERSION"), rand::random::<u64>());
                let identify = identify::Behaviour::new(
                    identify::Config::new("/optishard/id/1".into(), key.public()).with_agent_version(agent),
                );
                let mut kad = kad::Behaviour::with_config(
                    key.public().to_peer_id(),
                    kad::store::MemoryStore::new(key.public().to_peer_id()),
                    kad::Config::new(KAD_PROTOCOL),
                );
                kad.set_mode(Some(kad::Mode::Server));
                Ok(Behaviour { blocked: Default::default(), gossipsub, sync, identify, kad })
            })
            .map_err(|e| format!("behaviour: {e}"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        let mut topics = HashMap::new();
        for topic in &cfg.topics {
            subscribe(&mut swarm, &mut topics, &cfg.network, *topic);
        }
        for addr in &cfg.listen {
            swarm.listen_on(addr.clone()).map_err(|e| format!("listen on {addr}: {e}"))?;
        }
        let mut listen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while listen.len() < cfg.listen.len() {
            match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
                Ok(SwarmEvent::NewListenAddr { address, .. }) => listen.push(address),
                Ok(SwarmEvent::ListenerError { error, .. }) => return Err(format!("listener: {error}")),
                Ok(SwarmEvent::ListenerClosed { reason: Err(e), .. }) => {
                    return Err(format!("listener: {e}"));
                }
                Ok(_) => {}
                Err(_) => return Err("timed out binding the listen addresses".into()),
            }
        }
        info!(target: "net", peer = %me, addrs = ?listen, "p2p listening");
        let shared = Arc::new(RwLock::new(Shared {
            listen: listen.iter().map(|a| a.clone().with(libp2p::multiaddr::Protocol::P2p(me))).collect(),
            ..Default::default()
        }));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let load = Arc::new(QueueLoad::default());
        let task = SwarmTask {
            swarm,
            network: cfg.network,
            bootnodes: cfg.bootnodes,
            topics,
            shared: shared.clone(),
            events: ev_tx,
            load: load.clone(),
            metrics,
            outbound: HashMap::new(),
            inbound: HashMap::new(),
            next_inbound: 0,
            retry: VecDeque::new(),
            judging: HashMap::new(),
            incarnations: HashMap::new(),
            resetting: HashSet::new(),
            shaper: Shaper::new(rand::random()),
            held: BinaryHeap::new(),
            held_events: HashMap::new(),
            next_held: 0,
            held_bytes: 0,
        };
        tokio::spawn(task.run(cmd_rx));
        let net = P2pNetwork { me, cmd: cmd_tx, shared, next_request: Arc::new(AtomicU64::new(1)) };
        Ok((net, NetEvents { rx: ev_rx, load }))
    }

    /// The bound listen addresses, each ending in `/p2p/<peer id>` (what
    /// other nodes use as a bootnode).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.shared.read().listen.clone()
    }

    /// Publishes even past the topic's size limit. Fault injection and
    /// tests of what honest peers do with oversized messages.
    #[doc(hidden)]
    pub fn publish_unchecked(&self, topic: Topic, data: Vec<u8>) {
        let _ = self.cmd.send(Command::Publish { topic, data, checked: false });
    }

    /// Shapes what this node hears from `peer` (latency, jitter, loss,
    /// bandwidth; `None` clears it). A scenario sets both ends of a link.
    pub fn set_link(&self, peer: PeerId, model: Option<LinkModel>) {
        let _ = self.cmd.send(Command::SetLink(peer, model));
    }

    /// Cuts this node off from `peer` (its connections closed, new ones
    /// refused) or heals the cut: a partition without the kernel's help.
    pub fn set_blocked(&self, peer: PeerId, blocked: bool) {
        let _ = self.cmd.send(Command::SetBlocked(peer, blocked));
    }
}

impl Network for P2pNetwork {
    fn local_peer(&self) -> PeerId {
        self.me
    }
    fn subscribe(&self, topic: Topic) {
        let _ = self.cmd.send(Command::Subscribe(topic));
    }
    fn publish(&self, topic: Topic, data: Vec<u8>) {
        let _ = self.cmd.send(Command::Publish { topic, data, checked: true });
    }
    fn report(&self, id: MessageId, from: PeerId, verdict: Validation) {
        let _ = self.cmd.send(Command::Report(id, from, verdict));
    }
    fn request(&self, peer: PeerId, data: Vec<u8>) -> RequestId {
        let id = RequestId(self.next_request.fetch_add(1, Ordering::Relaxed));
        let _ = self.cmd.send(Command::Request(peer, data, id));
        id
    }
    fn respond(&self, id: InboundId, data: Vec<u8>) {
        let _ = self.cmd.send(Command::Respond(id, data));
    }
    fn peers(&self) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self.shared.read().peers.iter().copied().collect();
        v.sort();
        v
    }
    fn topic_peers(&self, topic: Topic) -> Vec<PeerId> {
        let s = self.shared.read();
        let mut v: Vec<PeerId> = s
            .topic_peers
            .get(&topic)
            .map(|p| p.iter().filter(|p| s.peers.contains(p)).copied().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
    fn peer_score(&self, peer: &PeerId) -> Option<f64> {
        self.shared.read().scores.get(peer).copied()
    }
}

/// Joins `topic` (idempotent) and remembers its wire hash.
fn subscribe(
    swarm: &mut Swarm<Behaviour>,
    topics: &mut HashMap<TopicHash, Topic>,
    network: &Hash,
    topic: Topic,
) {
    let t = IdentTopic::new(topic.wire_name(network));
    topics.insert(t.hash(), topic);
    let gs = &mut swarm.behaviour_mut().gossipsub;
    if let Err(e) = gs.subscribe(&t) {
        warn!(target: "net", %topic, error = %e, "subscribe failed");
    }
    let _ = gs.set_topic_params(t, topic_score_params());
}

/// Gossip messages and requests queued for the node before new ones are dropped.
const EVENT_QUEUE: usize = 16_384;
/// Bytes of gossip and requests queued for the node before new ones are dropped.
const EVENT_QUEUE_BYTES: usize = 256 << 20;

/// How much droppable data sits in the node's event queue.
#[derive(Default)]
struct QueueLoad {
    events: AtomicUsize,
    bytes: AtomicUsize,
}

/// The size an event counts for in the queue's bounds, if it is one the
/// swarm may drop (what peers choose to send).
fn droppable_bytes(ev: &NetEvent) -> Option<usize> {
    match ev {
        NetEvent::Gossip { data, .. } | NetEvent::Request { data, .. } => Some(data.len()),
        NetEvent::Response { .. } | NetEvent::PeerConnected(_) | NetEvent::PeerDisconnected(_) => None,
    }
}

/// The node's end of the p2p event queue (see `SwarmTask::emit` for its bounds).
pub struct NetEvents {
    rx: mpsc::UnboundedReceiver<NetEvent>,
    load: Arc<QueueLoad>,
}

impl NetEvents {
    /// The next event; `None` once the swarm has stopped.
    pub async fn recv(&mut self) -> Option<NetEvent> {
        let ev = self.rx.recv().await?;
        if let Some(bytes) = droppable_bytes(&ev) {
            self.load.events.fetch_sub(1, Ordering::AcqRel);
            self.load.bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
        Some(ev)
    }
}
/// Topic names (ours and those peers subscribe to) remembered.
const MAX_KNOWN_TOPICS: usize = 4_096;

struct SwarmTask {
    swarm: Swarm<Behaviour>,
    network: Hash,
    bootnodes: Vec<Multiaddr>,
    topics: HashMap<TopicHash, Topic>,
    shared: Arc<RwLock<Shared>>,
    events: mpsc::UnboundedSender<NetEvent>,
    load: Arc<QueueLoad>,
    metrics: NetMetrics,
    outbound: HashMap<request_response::OutboundRequestId, RequestId>,
    inbound: HashMap<u64, request_response::ResponseChannel<Vec<u8>>>,
    next_inbound: u64,
    retry: VecDeque<(Topic, Vec<u8>, Instant)>,
    /// Topics of messages handed to the application and not judged yet.
    judging: HashMap<Vec<u8>, Topic>,
    /// The process incarnation each connected peer announced (identify's
    /// agent version ends in a random per-process id): another one on a
    /// new connection means the peer restarted.
    incarnations: HashMap<PeerId, String>,
    /// Peers being reset: dialed again once their last connection closed.
    resetting: HashSet<PeerId>,
    /// Slow links to peers (`set_link`): what they send is held here.
    shaper: Shaper,
    /// Held events by due time, and the events themselves.
    held: BinaryHeap<Reverse<(Instant, u64)>>,
    held_events: HashMap<u64, (PeerId, NetEvent)>,
    next_held: u64,
    /// Bytes of the held events.
    held_bytes: usize,
}

/// The bytes an event takes on a link.
fn shaped_bytes(ev: &NetEvent) -> usize {
    match ev {
        NetEvent::Gossip { data, .. } | NetEvent::Request { data, .. } => data.len(),
        NetEvent::Response { result, .. } => result.as_ref().map_or(0, Vec::len),
        _ => 0,
    }
}

/// Events held by slow links before new ones are lost.
const MAX_HELD: usize = EVENT_QUEUE;

impl SwarmTask {
    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Command>) {
        self.dial_bootnodes();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut ticks = 0u64;
        loop {
            let (due, holding) = (self.next_due(), !self.held.is_empty());
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => break,
                },
                ev = self.swarm.select_next_some() => self.swarm_event(ev),
                _ = tokio::time::sleep_until(due), if holding => self.release_held(),
                _ = tick.tick() => {
                    ticks += 1;
                    self.retry_publishes();
                    if ticks.is_multiple_of(5) {
                        self.refresh_scores();
                    }
                    if ticks.is_multiple_of(25) {
                        self.dial_bootnodes();
                    }
                    if ticks.is_multiple_of(150) {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
            }
        }
        debug!(target: "net", "swarm task stopped");
    }

    /// A peer restarted (a new connection announced another incarnation)
    /// while its old connection is still open here: dead, but not yet
    /// noticed (a killed peer's QUIC connection lingers until its idle
    /// timeout, a crashed machine's TCP one longer). Gossipsub sends its subscriptions only on a peer's
    /// first connection and queues messages to any of its connections, so
    /// the restarted peer would never learn our topics and some messages
    /// would go to the dead connection. Close every connection to it and
    /// dial it again (its addresses are in kad): the new connection is a
    /// first one on both sides.
    fn reset_peer(&mut self, peer: PeerId) {
        if !self.resetting.insert(peer) {
            return;
        }
        info!(target: "net", %peer, "peer restarted while its old connection was open: resetting");
        self.metrics.peer_resets.inc();
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    /// Dials every bootnode not connected (at start, and every few
    /// seconds: a node keeps its bootnodes, e.g. the beacon, even after a
    /// reset or a restart on either side).
    fn dial_bootnodes(&mut self) {
        for addr in self.bootnodes.clone() {
            if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
                if peer == *self.swarm.local_peer_id() || self.swarm.is_connected(&peer) {
                    continue;
                }
                self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(target: "net", %addr, error = %e, "dial failed");
            }
        }
    }

    fn refresh_scores(&mut self) {
        let peers: Vec<PeerId> = self.shared.read().peers.iter().copied().collect();
        let scores: HashMap<PeerId, f64> = peers
            .into_iter()
            .filter_map(|p| self.swarm.behaviour().gossipsub.peer_score(&p).map(|s| (p, s)))
            .collect();
        self.shared.write().scores.extend(scores);
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Subscribe(topic) => subscribe(&mut self.swarm, &mut self.topics, &self.network, topic),
            Command::Publish { topic, data, checked } => {
                if checked && data.len() > topic.max_bytes() {
                    warn!(target: "net", %topic, len = data.len(), "not publishing a message over the topic limit");
                    return;
                }
                self.publish(topic, data, Instant::now() + PUBLISH_RETRY);
            }
            Command::Report(id, from, verdict) => {
                let (acceptance, result) = match verdict {
                    Validation::Accept => (MessageAcceptance::Accept, "accepted"),
                    Validation::Reject => (MessageAcceptance::Reject, "rejected"),
                    Validation::Ignore => (MessageAcceptance::Ignore, "ignored"),
                };
                if let Some(topic) = self.judging.remove(&id.0) {
                    self.metrics.gossip(topic, "in", result);
                }
                let id = gossipsub::MessageId::new(&id.0);
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &from, acceptance);
            }
            Command::Request(peer, data, id) => {
                let rid = self.swarm.behaviour_mut().sync.send_request(&peer, data);
                self.outbound.insert(rid, id);
            }
            Command::Respond(id, data) => {
                if let Some(ch) = self.inbound.remove(&id.0) {
                    let _ = self.swarm.behaviour_mut().sync.send_response(ch, data);
                }
            }
            Command::SetLink(peer, model) => {
                if self.shaper.set_link(peer, model) {
                    info!(target: "net", %peer, ?model, "link shaped");
                } else {
                    warn!(target: "net", %peer, "not shaping: too many shaped peers");
                }
            }
            Command::SetBlocked(peer, blocked) => {
                if self.shaper.set_blocked(peer, blocked) {
                    info!(target: "net", %peer, blocked, "link cut or healed");
                    let list = &mut self.swarm.behaviour_mut().blocked;
                    if blocked {
                        // closes every connection to it and refuses new ones;
                        // what it sent and a slow link still holds is lost
                        list.block_peer(peer);
                        let from_it: Vec<u64> = self
                            .held_events
                            .iter()
                            .filter(|(_, (p, _))| *p == peer)
                            .map(|(k, _)| *k)
                            .collect();
                        for k in from_it {
                            if let Some((_, ev)) = self.held_events.remove(&k) {
                                self.held_bytes = self.held_bytes.saturating_sub(shaped_bytes(&ev));
                                self.lose(ev);
                            }
                        }
                    } else {
                        list.unblock_peer(peer);
                        let _ = self.swarm.dial(peer);
                    }
                }
            }
        }
    }

    /// Hands a peer's gossip, request or answer to the node through the
    /// shaper: now, once the link's delay has passed, or never (lost).
    fn hear(&mut self, from: PeerId, ev: NetEvent) {
        let bytes = shaped_bytes(&ev);
        // what slow links hold is bounded as the node's own queue is; a
        // message past the bound is lost before the link counts it
        let full = self.held.len() >= MAX_HELD || self.held_bytes.saturating_add(bytes) > EVENT_QUEUE_BYTES;
        let shaped = if full && self.shaper.is_shaped(&from) {
            Shaped::Lost
        } else {
            self.shaper.judge(&from, bytes, Instant::now())
        };
        match shaped {
            Shaped::Now => self.emit(ev),
            Shaped::At(due) => {
                self.next_held += 1;
                self.held.push(Reverse((due, self.next_held)));
                self.held_events.insert(self.next_held, (from, ev));
                self.held_bytes += bytes;
            }
            Shaped::Lost => self.lose(ev),
        }
    }

    /// A gossip message the node never judges: ignored (not relayed,
    /// nobody penalised), counted as `result`.
    fn ignore_gossip(&mut self, topic: Topic, from: PeerId, id: &MessageId, result: &'static str) {
        self.judging.remove(&id.0);
        self.metrics.gossip(topic, "in", result);
        let id = gossipsub::MessageId::new(&id.0);
        let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
            &id,
            &from,
            MessageAcceptance::Ignore,
        );
    }

    /// What a lost message means: gossip is ignored (not relayed), a
    /// request fails at the asker, an answer fails here.
    fn lose(&mut self, ev: NetEvent) {
        self.metrics.dropped_events.inc();
        match ev {
            NetEvent::Gossip { topic, from, id, .. } => self.ignore_gossip(topic, from, &id, "lost"),
            NetEvent::Request { id, .. } => {
                self.inbound.remove(&id.0);
            }
            NetEvent::Response { peer, id, .. } => {
                self.emit(NetEvent::Response { peer, id, result: Err("lost on a shaped link".into()) })
            }
            other => self.emit(other),
        }
    }

    fn next_due(&self) -> tokio::time::Instant {
        self.held.peek().map_or_else(tokio::time::Instant::now, |Reverse((t, _))| (*t).into())
    }

    /// Hands the node every held event whose time has come.
    fn release_held(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((due, k))) = self.held.peek().copied() {
            if due > now {
                break;
            }
            self.held.pop();
            if let Some((_, ev)) = self.held_events.remove(&k) {
                self.held_bytes = self.held_bytes.saturating_sub(shaped_bytes(&ev));
                self.emit(ev);
            }
        }
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>, until: Instant) {
        let t = IdentTopic::new(topic.wire_name(&self.network));
        match self.swarm.behaviour_mut().gossipsub.publish(t, data.clone()) {
            Ok(_) => self.metrics.gossip(topic, "out", "published"),
            Err(gossipsub::PublishError::Duplicate) => {}
            Err(
                gossipsub::PublishError::NoPeersSubscribedToTopic | gossipsub::PublishError::AllQueuesFull(_),
            ) if Instant::now() < until => self.retry.push_back((topic, data, until)),
            Err(e) => {
                self.metrics.gossip(topic, "out", "failed");
                debug!(target: "net", %topic, error = %e, "publish failed");
            }
        }
    }

    fn retry_publishes(&mut self) {
        for (topic, data, until) in std::mem::take(&mut self.retry) {
            self.publish(topic, data, until);
        }
    }

    /// Hands an event to the node. What peers choose to send (gossip,
    /// inbound requests) is bounded in count and bytes while the node has
    /// not taken it: past the bounds it is dropped and counted — a dropped
    /// gossip message is ignored (not relayed, nobody penalised), a dropped
    /// request fails at the asker. Connection events and answers to this
    /// node's own requests always get through (their number is bounded by
    /// connections and by what the node asked).
    fn emit(&mut self, ev: NetEvent) {
        if let Some(bytes) = droppable_bytes(&ev) {
            let events = self.load.events.load(Ordering::Acquire);
            let queued = self.load.bytes.load(Ordering::Acquire);
            if events >= EVENT_QUEUE || queued.saturating_add(bytes) > EVENT_QUEUE_BYTES {
                self.metrics.dropped_events.inc();
                match ev {
                    NetEvent::Request { id, .. } => {
                        // dropping the channel fails the request at the asker
                        self.inbound.remove(&id.0);
                    }
                    NetEvent::Gossip { topic, from, id, .. } => {
                        self.ignore_gossip(topic, from, &id, "dropped")
                    }
                    _ => {}
                }
                return;
            }
            self.load.events.fetch_add(1, Ordering::AcqRel);
            self.load.bytes.fetch_add(bytes, Ordering::AcqRel);
        }
        let _ = self.events.send(ev);
    }

    fn swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. }
                if num_established.get() == 1 =>
            {
                let n = {
                    let mut s = self.shared.write();
                    s.peers.insert(peer_id);
                    s.peers.len()
                };
                self.metrics.peers.set(n as i64);
                self.emit(NetEvent::PeerConnected(peer_id));
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                let n = {
                    let mut s = self.shared.write();
                    s.peers.remove(&peer_id);
                    s.peers.len()
                };
                self.metrics.peers.set(n as i64);
                self.emit(NetEvent::PeerDisconnected(peer_id));
                self.incarnations.remove(&peer_id);
                if self.resetting.remove(&peer_id) {
                    // a fresh first connection: gossipsub exchanges
                    // subscriptions again on it
                    if let Err(e) = self.swarm.dial(peer_id) {
                        debug!(target: "net", peer = %peer_id, error = %e, "redial after reset failed");
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.gossip_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.sync_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let incarnation = info.agent_version.rsplit('/').next().unwrap_or_default().to_string();
                let kad = &mut self.swarm.behaviour_mut().kad;
                for addr in info.listen_addrs {
                    kad.add_address(&peer_id, addr);
                }
                match self.incarnations.insert(peer_id, incarnation.clone()) {
                    Some(before) if before != incarnation => self.reset_peer(peer_id),
                    _ => {}
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }))
                if !self.swarm.is_connected(&peer) =>
            {
                let _ = self.swarm.dial(peer);
            }
            _ => {}
        }
    }

    fn gossip_event(&mut self, ev: gossipsub::Event) {
        match ev {
            gossipsub::Event::Message { propagation_source, message_id, message } => {
                let Some(&topic) = self.topics.get(&message.topic) else {
                    let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Ignore,
                    );
                    return;
                };
                if message.data.len() > topic.max_bytes() {
                    self.metrics.gossip(topic, "in", "oversized");
                    debug!(target: "net", %topic, len = message.data.len(), peer = %propagation_source, "rejecting oversized message");
                    self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Reject,
                    );
                    return;
                }
                if self.judging.len() > 100_000 {
                    // the application judges every message; this only bounds a leak
                    self.judging.clear();
                }
                self.judging.insert(message_id.0.clone(), topic);
                self.hear(
                    propagation_source,
                    NetEvent::Gossip {
                        topic,
                        from: propagation_source,
                        id: MessageId(message_id.0),
                        data: message.data,
                    },
                );
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                let known = self.topics.get(&topic).copied();
                if let Some(t) = known.or_else(|| self.known_topic(&topic)) {
                    self.shared.write().topic_peers.entry(t).or_default().insert(peer_id);
                }
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                if let Some(&t) = self.topics.get(&topic) {
                    self.shared.write().topic_peers.entry(t).or_default().remove(&peer_id);
                }
            }
            _ => {}
        }
    }

    /// A topic a peer subscribes to that this node does not: still worth
    /// knowing who serves which shard (sync requests go to those peers) and
    /// who takes submissions (the beacon).
    fn known_topic(&mut self, hash: &TopicHash) -> Option<Topic> {
        let name = hash.as_str();
        let prefix = Topic::BeaconBlocks.wire_name(&self.network);
        let prefix = prefix.trim_end_matches("beacon_blocks");
        let rest = name.strip_prefix(prefix)?;
        let (topic, fixed) = match rest.split_once('/') {
            None if rest == "submissions" => (Topic::Submissions, true),
            None if rest == "beacon_blocks" => (Topic::BeaconBlocks, true),
            None => return None,
            Some((kind, shard)) => {
                let id: u32 = shard.parse().ok()?;
                // one spelling per shard ("07", "+7" are not shard 7)
                if id.to_string() != shard {
                    return None;
                }
                let shard = bridge::ShardId(id);
                match kind {
                    "shard_blocks" => (Topic::ShardBlocks(shard), false),
                    "shard_txs" => (Topic::ShardTxs(shard), false),
                    _ => return None,
                }
            }
        };
        // peers choose topic names: remember a bounded number of them (the
        // network's fixed topics always, so a flood of shard names cannot
        // hide the beacon's)
        if fixed || self.topics.len() < MAX_KNOWN_TOPICS {
            self.topics.insert(hash.clone(), topic);
            Some(topic)
        } else {
            None
        }
    }

    fn sync_event(&mut self, ev: request_response::Event<Vec<u8>, Vec<u8>>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.next_inbound += 1;
                    self.inbound.insert(self.next_inbound, channel);
                    self.hear(
                        peer,
                        NetEvent::Request { peer, id: InboundId(self.next_inbound), data: request },
                    );
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(id) = self.outbound.remove(&request_id) {
                        self.hear(peer, NetEvent::Response { peer, id, result: Ok(response) });
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(id) = self.outbound.remove(&request_id) {
                    self.emit(NetEvent::Response { peer, id, result: Err(error.to_string()) });
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(target: "net", %peer, %error, "inbound request failed");
            }
            _ => {}
        }
    }
}
