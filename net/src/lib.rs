//! `net` — how optishard nodes talk: typed gossip topics, request-response
//! for sync, and peer scoring, behind the [`Network`] trait.
//!
//! Two implementations share the trait: [`P2pNetwork`], a libp2p swarm
//! (gossipsub, request-response, identify, kademlia discovery; TCP and QUIC
//! with noise and yamux), and [`MemNetwork`], an in-memory hub that
//! delivers in call order so a whole cluster runs deterministically in one
//! process. Node logic receives [`NetEvent`]s from a channel and answers
//! through the cloneable handle.
//!
//! Where to start: [`Topic`] lists what is gossiped and its size limit;
//! [`Network`] is everything a node may do on the network.

mod admin;
mod mem;
mod metrics;
mod node;
mod p2p;
mod shaper;

use std::fmt;

use bridge::{Hash, ShardId};
pub use libp2p::{Multiaddr, PeerId};

pub use admin::{LinkParams, admin_bind_allowed, register_link_admin};
pub use mem::{MemHub, MemNetwork, Verdicts};
pub use metrics::{
    Labels, MetricsServer, NetMetrics, RpcCounting, RpcCountingLayer, RpcMetrics, serve_metrics,
};
pub use node::{NodeTasks, load_or_create_p2p_key, now_ms, parse_bootnodes};
pub use p2p::{NetEvents, P2pConfig, P2pNetwork};
pub use prometheus_client;
pub use shaper::{LinkModel, MAX_LINK_DELAY_MS, MAX_SHAPED_PEERS, Shaped, Shaper};

/// A gossip topic. Each topic has its own size limit; anything larger is
/// rejected and its sender scored down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// Beacon blocks, from the beacon node.
    BeaconBlocks,
    /// Shard blocks (signed header and body) submitted to the beacon; only
    /// the beacon subscribes, so its subscription also tells validators
    /// which peer is the beacon.
    Submissions,
    /// Blocks of one shard.
    ShardBlocks(ShardId),
    /// Pending transactions of one shard.
    ShardTxs(ShardId),
}

impl Topic {
    /// Largest message accepted on the topic.
    pub fn max_bytes(&self) -> usize {
        match self {
            Topic::BeaconBlocks => 2 << 20,
            Topic::Submissions => 16 << 20,
            Topic::ShardBlocks(_) => 16 << 20,
            Topic::ShardTxs(_) => 128 << 10,
        }
    }

    /// Short name, used as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Topic::BeaconBlocks => "beacon_blocks",
            Topic::Submissions => "submissions",
            Topic::ShardBlocks(_) => "shard_blocks",
            Topic::ShardTxs(_) => "shard_txs",
        }
    }

    /// The wire name, scoped to one network (its [`bridge::ChainSpec`] hash)
    /// so nodes of different networks never mix messages.
    pub fn wire_name(&self, network: &Hash) -> String {
        let net = &network.to_string()[2..10];
        match self {
            Topic::ShardBlocks(s) | Topic::ShardTxs(s) => format!("/optishard/{net}/{}/{}", self.kind(), s.0),
            _ => format!("/optishard/{net}/{}", self.kind()),
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::ShardBlocks(s) | Topic::ShardTxs(s) => write!(f, "{}/{}", self.kind(), s.0),
            _ => f.write_str(self.kind()),
        }
    }
}

/// Identifies a received gossip message when reporting its validation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageId(pub Vec<u8>);

/// Identifies an outbound request; its [`NetEvent::Response`] carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Identifies an inbound request to answer with [`Network::respond`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboundId(pub u64);

/// The verdict on a gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Valid: forward it.
    Accept,
    /// Invalid: drop it and score the sender down.
    Reject,
    /// Not useful (duplicate, stale) but not the sender's fault: drop it.
    Ignore,
}

/// Something the network delivers to the node.
#[derive(Clone, Debug)]
pub enum NetEvent {
    /// A gossip message, to be judged with [`Network::report`].
    Gossip {
        /// Its topic.
        topic: Topic,
        /// The peer that forwarded it.
        from: PeerId,
        /// Its id.
        id: MessageId,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A peer asks something; answer with [`Network::respond`].
    Request {
        /// The asking peer.
        peer: PeerId,
        /// Answer with this id.
        id: InboundId,
        /// The request bytes.
        data: Vec<u8>,
    },
    /// The answer to one of our requests, or why there is none.
    Response {
        /// The peer asked.
        peer: PeerId,
        /// The id [`Network::request`] returned.
        id: RequestId,
        /// The response bytes or the failure.
        result: Result<Vec<u8>, String>,
    },
    /// A peer connected.
    PeerConnected(PeerId),
    /// A peer disconnected.
    PeerDisconnected(PeerId),
}

/// Everything a node may do on the network. Cheap to clone; all methods
/// queue work and return at once.
pub trait Network: Clone + Send + Sync + 'static {
    /// This node's peer id.
    fn local_peer(&self) -> PeerId;
    /// Starts receiving a topic.
    fn subscribe(&self, topic: Topic);
    /// Publishes to a topic (retried while no peer subscribes yet).
    fn publish(&self, topic: Topic, data: Vec<u8>);
    /// Judges a received gossip message.
    fn report(&self, id: MessageId, from: PeerId, verdict: Validation);
    /// Sends a request; the answer arrives as [`NetEvent::Response`].
    fn request(&self, peer: PeerId, data: Vec<u8>) -> RequestId;
    /// Answers an inbound request.
    fn respond(&self, id: InboundId, data: Vec<u8>);
    /// Connected peers.
    fn peers(&self) -> Vec<PeerId>;
    /// Connected peers subscribed to `topic`.
    fn topic_peers(&self, topic: Topic) -> Vec<PeerId>;
    /// This node's score of `peer` (negative after invalid messages).
    fn peer_score(&self, peer: &PeerId) -> Option<f64>;
}

/// Largest request body (a block resubmitted to the beacon, with room to spare).
pub const MAX_REQUEST_BYTES: usize = 17 << 20;
/// Largest response body.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The peer id of the node whose ed25519 identity secret is `secret`.
pub fn peer_id_of(secret: [u8; 32]) -> Result<PeerId, String> {
    libp2p::identity::Keypair::ed25519_from_bytes(secret)
        .map(|k| k.public().to_peer_id())
        .map_err(|e| e.to_string())
}
