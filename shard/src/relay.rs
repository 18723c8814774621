//! The relay: how a destination shard's validator gets the messages
//! addressed to it.
//!
//! - **Source headers** come from the beacon: every beacon block lists the
//!   headers it accepted, with their `outbox_root`s ([`Relay::on_beacon_block`]).
//!   Heights this node missed (a restart) are asked of the beacon
//!   ([`SyncRequest::ShardHeaders`]). Only beacon-accepted headers enter the
//!   book, so a message of a header the beacon never accepted cannot be
//!   proven, offered or imported.
//! - **Messages** are pulled per channel, by nonce: the next nonce to ask
//!   `src` for is this shard's own inbound counter (state: exactly-once in
//!   channel order is a state-transition rule, so nothing else needs
//!   persisting — after a crash, revert or proposer change the state says
//!   where to resume) or the end of what is already pending. A source
//!   validator answers from its outbox index ([`crate::ShardNode::outbox_page`]);
//!   every entry is checked against the book before it is kept. A peer that
//!   omits or withholds messages only delays them: the next request goes
//!   to another peer.
//! - **Consumption**: the proposer offers pending messages in channel order
//!   within [`INBOX_GAS_SHARE`] of the block's gas ([`Relay::offer`]);
//!   importers check every inbox entry against the same book
//!   ([`crate::check_inbox`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bridge::{Encode, Hash, InboxEntry, MessageKind, ShardId, SignedHeader, SyncRequest, decode_list};
use net::{Network, PeerId, RequestId, Topic};
use tracing::debug;

use crate::ShardNode;
use crate::import::SourceHeaders;

/// Inbox messages may use at most this share (1/`INBOX_GAS_SHARE`) of a
/// block's gas limit; the rest wait for the next block. The rest of the
/// block stays for transactions.
pub const INBOX_GAS_SHARE: u64 = 2;
/// Source headers remembered per shard (older ones are asked again).
const MAX_BOOK_PER_SHARD: usize = 8_192;
/// Verified messages waiting per channel (the highest nonces go first).
const MAX_PENDING_PER_CHANNEL: usize = 4_096;
/// Messages asked for at once.
const OUTBOX_BATCH: u32 = 256;
/// A request unanswered this many slots is given up.
const REQUEST_TIMEOUT_SLOTS: u64 = 4;

/// What the relay keeps of an accepted source header.
#[derive(Clone, Copy, Debug)]
struct Source {
    hash: Hash,
    parent_hash: Hash,
    outbox_root: Hash,
    /// The slot the source block was proposed in.
    slot: u64,
    /// The beacon slot that included it, when learnt from a beacon block.
    included: Option<u64>,
}

/// What the relay does for one destination shard.
pub struct Relay {
    shard: ShardId,
    shards: u32,
    /// Beacon-accepted source headers by height, per source.
    book: Vec<BTreeMap<u64, Source>>,
    /// Verified messages not yet consumed, by nonce, per source.
    pending: Vec<BTreeMap<u64, InboxEntry>>,
    /// Outbox requests in flight: request → (source, slot sent).
    asking: HashMap<RequestId, (ShardId, u64)>,
    /// Header requests in flight: request → (shard, first height, slot sent).
    asking_headers: HashMap<RequestId, (ShardId, u64, u64)>,
    /// Source heights seen referenced but not in the book.
    missing: BTreeSet<(ShardId, u64)>,
    /// Per source: the newest height its outbox was asked about (nothing
    /// new to ask until the book passes it).
    asked_through: Vec<u64>,
    /// Per source: recent accepted heads `(height → hash)` from signed
    /// beacon blocks.
    anchors: Vec<BTreeMap<u64, Hash>>,
    next_peer: usize,
}

impl SourceHeaders for Relay {
    fn outbox_root(&self, shard: ShardId, height: u64) -> Option<Hash> {
        self.book.get(shard.0 as usize)?.get(&height).map(|s| s.outbox_root)
    }
}

impl Relay {
    /// The relay of `shard` in a network of `shards`.
    pub fn new(shard: ShardId, shards: u32) -> Self {
        let n = shards as usize;
        Relay {
            shard,
            shards,
            book: vec![BTreeMap::new(); n],
            pending: vec![BTreeMap::new(); n],
            asking: HashMap::new(),
            asking_headers: HashMap::new(),
            missing: BTreeSet::new(),
            asked_through: vec![0; n],
            anchors: vec![BTreeMap::new(); n],
            next_peer: 0,
        }
    }

    /// The slot a source block was proposed in and the beacon slot that
    /// included it (if known): where a message's latency starts.
    pub fn source_slots(&self, shard: ShardId, height: u64) -> Option<(u64, Option<u64>)> {
        self.book.get(shard.0 as usize)?.get(&height).map(|s| (s.slot, s.included))
    }

    /// Records the headers a (signature-checked) beacon block of slot
    /// `included` accepted, and the shards' heads it names (anchors that
    /// headers asked of the beacon later must chain to).
    pub fn on_headers(&mut self, headers: &[SignedHeader], included: Option<u64>) {
        for sh in headers {
            self.record(sh, included);
        }
    }

    /// Records every shard's accepted head from a beacon block: a trusted
    /// `(height, hash)` that an answer to a header request must chain to.
    pub fn on_heads(&mut self, heads: &[bridge::ShardHead]) {
        for h in heads {
            if let Some(a) = self.anchors.get_mut(h.shard.0 as usize) {
                a.insert(h.height, h.hash);
                while a.len() > 64 {
                    a.pop_first();
                }
            }
        }
    }

    /// A dispute discarded `src`'s headers from `height` up: they leave
    /// the book (new headers will take those heights), and their messages
    /// leave the pending queues (they are void).
    pub fn on_invalidated(&mut self, src: ShardId, height: u64) {
        let i = src.0 as usize;
        let (Some(book), Some(anchors)) = (self.book.get_mut(i), self.anchors.get_mut(i)) else { return };
        book.retain(|h, _| *h < height);
        anchors.retain(|h, _| *h < height);
        if let Some(p) = self.pending.get_mut(i) {
            p.retain(|_, e| e.height < height);
        }
        if let Some(a) = self.asked_through.get_mut(i) {
            *a = (*a).min(height.saturating_sub(1));
        }
        self.missing.retain(|(s, h)| !(*s == src && *h >= height));
    }

    fn record(&mut self, sh: &SignedHeader, included: Option<u64>) {
        let h = &sh.header;
        let Some(book) = self.book.get_mut(h.shard.0 as usize) else { return };
        if h.shard == self.shard {
            return;
        }
        // a beacon block's word is final; an entry is never overwritten
        book.entry(h.height).or_insert(Source {
            hash: h.hash(),
            parent_hash: h.parent_hash,
            outbox_root: h.outbox_root,
            slot: h.beacon_slot,
            included,
        });
        self.missing.remove(&(h.shard, h.height));
        while book.len() > MAX_BOOK_PER_SHARD {
            book.pop_first();
        }
    }

    /// Takes an answer to a header request only where it is part of the
    /// accepted chain: consecutive heights of the shard asked, each the
    /// parent of the next, the last one the parent of a header (or the
    /// head) this node learnt from a signed beacon block. Whoever answered
    /// (any peer can claim the beacon's topic) cannot plant a header.
    /// Returns how many were taken.
    pub fn accept_headers(&mut self, shard: ShardId, from: u64, headers: &[SignedHeader]) -> usize {
        let Some(book) = self.book.get(shard.0 as usize) else { return 0 };
        let anchors = &self.anchors[shard.0 as usize];
        let mut trusted: Option<Hash> = None;
        let mut taken = Vec::new();
        // walk down from the top: the top must hang off a trusted header
        for (i, sh) in headers.iter().enumerate().rev() {
            let h = &sh.header;
            if h.shard != shard || h.height != from + i as u64 {
                return 0;
            }
            let hash = h.hash();
            let ok = match trusted {
                Some(parent) => parent == hash,
                None => {
                    book.get(&(h.height + 1)).is_some_and(|child| child.parent_hash == hash)
                        || book.get(&h.height).is_some_and(|s| s.hash == hash)
                        || anchors.get(&h.height) == Some(&hash)
                }
            };
            if !ok {
                return 0;
            }
            trusted = Some(h.parent_hash);
            taken.push(sh.clone());
        }
        let n = taken.len();
        for sh in taken {
            self.record(&sh, None);
        }
        n
    }

    /// A block referred to a source header this node does not know.
    pub fn want_header(&mut self, src: ShardId, height: u64) {
        if src.0 < self.shards && self.missing.len() < 1_024 {
            self.missing.insert((src, height));
        }
    }

    /// Whether `id` is one of the relay's requests.
    pub fn owns(&self, id: RequestId) -> bool {
        self.asking.contains_key(&id) || self.asking_headers.contains_key(&id)
    }

    /// Once a slot: asks for missing source headers (the beacon) and for
    /// new messages of every source whose accepted chain moved.
    pub fn on_slot<N: Network>(&mut self, node: &ShardNode, net: &N, slot: u64) {
        self.asking.retain(|_, (_, at)| *at + REQUEST_TIMEOUT_SLOTS >= slot);
        self.asking_headers.retain(|_, (_, _, at)| *at + REQUEST_TIMEOUT_SLOTS >= slot);
        let beacons = net.topic_peers(Topic::Submissions);
        if let (Some(&(src, from)), Some(beacon)) = (self.missing.first(), beacons.first())
            && self.asking_headers.is_empty()
        {
            // up to the lowest header above it this node already trusts: the
            // answer must chain to it
            let above = self.book[src.0 as usize]
                .range(from + 1..)
                .next()
                .map(|(h, _)| *h)
                .into_iter()
                .chain(self.anchors[src.0 as usize].range(from..).next().map(|(h, _)| *h + 1))
                .min();
            if let Some(above) = above {
                let count = (above - from).min(64) as u32;
                // ask for the run right below the anchor
                let start = above - count as u64;
                let req = SyncRequest::ShardHeaders { shard: src, from: start, count };
                let id = net.request(*beacon, req.encode());
                self.asking_headers.insert(id, (src, start, slot));
            }
        }
        for s in 0..self.shards {
            let src = ShardId(s);
            if src == self.shard || self.asking.values().any(|(x, _)| *x == src) {
                continue;
            }
            let newest = self.book[s as usize].last_key_value().map_or(0, |(h, _)| *h);
            if newest <= self.asked_through[s as usize] {
                continue;
            }
            let peers: Vec<PeerId> = net
                .topic_peers(Topic::ShardBlocks(src))
                .into_iter()
                .filter(|p| !beacons.contains(p))
                .collect();
            if peers.is_empty() {
                continue;
            }
            let Ok(next) = self.next_nonce(node, src) else { continue };
            let peer = peers[self.next_peer % peers.len()];
            self.next_peer += 1;
            let req = SyncRequest::Outbox { src, dst: self.shard, from: next, count: OUTBOX_BATCH };
            let id = net.request(peer, req.encode());
            self.asking.insert(id, (src, slot));
            self.asked_through[s as usize] = newest;
        }
    }

    /// The next nonce of channel `src → here` not consumed or pending.
    fn next_nonce(&self, node: &ShardNode, src: ShardId) -> crate::Result<u64> {
        let mut next = node.inbound_next(src)?;
        let pending = &self.pending[src.0 as usize];
        while pending.contains_key(&next) {
            next += 1;
        }
        Ok(next)
    }

    /// An answer to one of the relay's requests.
    pub fn on_response(&mut self, node: &ShardNode, id: RequestId, peer: PeerId, data: &[u8]) {
        if let Some((shard, from, _)) = self.asking_headers.remove(&id) {
            let mut input = data;
            if let Ok(headers) = decode_list::<SignedHeader>(&mut input)
                && self.accept_headers(shard, from, &headers) == 0
                && !headers.is_empty()
            {
                node.metrics().messages_refused.inc();
                debug!(target: "relay", %peer, %shard, from, "header answer does not chain to an accepted header");
            }
            return;
        }
        let Some((src, _)) = self.asking.remove(&id) else { return };
        let Ok(entries) = bridge::decode_outbox_answer(data) else {
            debug!(target: "relay", %peer, %src, "malformed outbox answer");
            return;
        };
        let Ok(mut next) = self.next_nonce(node, src) else { return };
        let mut kept = 0;
        for e in entries {
            let m = &e.message;
            if m.nonce < next {
                continue;
            }
            if m.src != src || m.dst != self.shard || m.nonce != next {
                node.metrics().messages_refused.inc();
                debug!(target: "relay", %peer, %src, nonce = m.nonce, "outbox answer out of channel order");
                break;
            }
            if matches!(m.kind, MessageKind::Refund { .. }) && m.gas_limit != 0 {
                node.metrics().messages_refused.inc();
                break;
            }
            let Some(root) = self.outbox_root(src, e.height) else {
                // not accepted by the beacon yet, or a header this node missed
                if self.book[src.0 as usize].last_key_value().is_some_and(|(h, _)| *h > e.height) {
                    self.want_header(src, e.height);
                }
                // ask again once the book moves
                self.asked_through[src.0 as usize] = 0;
                break;
            };
            if e.verify(&root).is_err() {
                // the peer's block at that height is not the accepted one
                node.metrics().messages_refused.inc();
                debug!(target: "relay", %peer, %src, height = e.height, "outbox entry does not prove");
                break;
            }
            let pending = &mut self.pending[src.0 as usize];
            pending.insert(m.nonce, e);
            while pending.len() > MAX_PENDING_PER_CHANNEL {
                pending.pop_last();
            }
            next += 1;
            kept += 1;
        }
        if kept == OUTBOX_BATCH as usize {
            // there may be more: ask again next slot
            self.asked_through[src.0 as usize] = 0;
        }
        if kept > 0 {
            debug!(target: "relay", %src, kept, "messages relayed");
        }
    }

    /// The inbox of the next block: pending messages of every channel in
    /// nonce order from the state's counter, while their gas fits
    /// `gas_limit / INBOX_GAS_SHARE`. Channels take turns going first
    /// (`turn`), so one busy channel cannot starve the others.
    pub fn offer(&self, node: &ShardNode, gas_limit: u64, turn: u64) -> Vec<InboxEntry> {
        let budget = gas_limit / INBOX_GAS_SHARE;
        let mut used = 0u64;
        let mut out = Vec::new();
        for k in 0..self.shards {
            let src = ShardId(((turn + k as u64) % self.shards as u64) as u32);
            if src == self.shard {
                continue;
            }
            let Ok(mut next) = node.inbound_next(src) else { continue };
            while let Some(e) = self.pending[src.0 as usize].get(&next) {
                let gas = match e.message.kind {
                    MessageKind::Call => e.message.gas_limit,
                    MessageKind::Refund { .. } => 0,
                };
                // a message bigger than the share still goes first in a
                // block of its own (else its channel would stall for good)
                if used.saturating_add(gas) > budget && !(out.is_empty() && gas <= gas_limit) {
                    return out;
                }
                used += gas;
                out.push(e.clone());
                next += 1;
            }
        }
        out
    }

    /// Drops pending messages the chain consumed.
    pub fn prune(&mut self, node: &ShardNode) {
        for s in 0..self.shards {
            if s == self.shard.0 {
                continue;
            }
            if let Ok(next) = node.inbound_next(ShardId(s)) {
                let pending = &mut self.pending[s as usize];
                *pending = pending.split_off(&next);
            }
        }
    }

    /// After a revert the state's inbound counters went back: ask every
    /// source again without waiting for its chain to move.
    pub fn after_revert(&mut self) {
        self.asked_through.iter_mut().for_each(|a| *a = 0);
    }

    /// Messages verified and waiting, over all channels.
    pub fn backlog(&self) -> usize {
        self.pending.iter().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge::{ShardHeader, ValidatorKey};

    /// Headers 1..=n of shard 1, each the parent of the next.
    fn chain(n: u64, salt: &[u8]) -> Vec<SignedHeader> {
        let key = ValidatorKey::derive(b"k");
        let mut parent = Hash::ZERO;
        (1..=n)
            .map(|height| {
                let h = ShardHeader {
                    shard: ShardId(1),
                    height,
                    parent_hash: parent,
                    outbox_root: Hash::of(&[salt, &height.to_be_bytes()[..]].concat()),
                    ..Default::default()
                };
                parent = h.hash();
                SignedHeader::sign(h, &key)
            })
            .collect()
    }

    #[test]
    fn headers_from_a_peer_are_taken_only_when_they_chain_to_the_beacons() {
        let real = chain(10, b"real");
        let mut relay = Relay::new(ShardId(0), 2);
        // a signed beacon block told us about header 10
        relay.on_headers(&real[9..], Some(20));
        // a forged run that does not chain to it is refused whole
        let forged = chain(9, b"forged");
        assert_eq!(relay.accept_headers(ShardId(1), 1, &forged), 0);
        assert_eq!(relay.outbox_root(ShardId(1), 5), None);
        // wrong shard or heights that do not match the request: refused
        assert_eq!(relay.accept_headers(ShardId(1), 2, &real[..9]), 0);
        assert_eq!(relay.accept_headers(ShardId(0), 1, &real[..9]), 0);
        // the real run is taken
        assert_eq!(relay.accept_headers(ShardId(1), 1, &real[..9]), 9);
        assert_eq!(relay.outbox_root(ShardId(1), 5), Some(real[4].header.outbox_root));
        // nothing overwrites an entry
        relay.on_headers(&forged[4..5], None);
        assert_eq!(relay.outbox_root(ShardId(1), 5), Some(real[4].header.outbox_root));
        // a head named by a beacon block anchors a run too
        let mut relay = Relay::new(ShardId(0), 2);
        relay.on_heads(&[bridge::ShardHead {
            shard: ShardId(1),
            height: 10,
            hash: real[9].header.hash(),
            slot: 20,
        }]);
        assert_eq!(relay.accept_headers(ShardId(1), 8, &real[7..10]), 3);
        assert_eq!(relay.accept_headers(ShardId(1), 1, &forged[..3]), 0);
    }
}
