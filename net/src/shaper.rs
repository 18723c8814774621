//! How a link behaves ([`LinkModel`]: latency, jitter, loss, bandwidth),
//! and the [`Shaper`] a libp2p node passes every message from a peer
//! through, so a scenario can slow or cut links between real processes at
//! runtime. The in-memory hub applies the same model in virtual time.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use libp2p::PeerId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a link between two nodes behaves (both directions alike).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkModel {
    /// One-way delay, milliseconds.
    pub latency_ms: u64,
    /// Up to this much more delay, uniformly drawn per message.
    pub jitter_ms: u64,
    /// Share of messages lost (0 to 1).
    pub loss: f64,
    /// Kilobits a second each way (`None`: unlimited).
    pub bandwidth_kbps: Option<u64>,
}

/// The largest latency or jitter a link takes (an hour): bounds the
/// arithmetic on values from a scenario file or an admin call.
pub const MAX_LINK_DELAY_MS: u64 = 3_600_000;

impl LinkModel {
    /// Whether the link changes nothing.
    pub fn is_instant(&self) -> bool {
        self.latency_ms == 0 && self.jitter_ms == 0 && self.loss == 0.0 && self.bandwidth_kbps.is_none()
    }

    /// Whether its values are in range (delays ≤ an hour, loss a share,
    /// bandwidth above zero).
    pub fn check(&self) -> Result<(), String> {
        if self.latency_ms > MAX_LINK_DELAY_MS || self.jitter_ms > MAX_LINK_DELAY_MS {
            return Err(format!("latency and jitter are at most {MAX_LINK_DELAY_MS} ms"));
        }
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(format!("loss {} is not a share between 0 and 1", self.loss));
        }
        if self.bandwidth_kbps == Some(0) {
            return Err("bandwidth 0 kbit/s: cut the link with a partition instead".into());
        }
        Ok(())
    }

    /// When a message of `bytes` sent at `sent` (milliseconds) arrives
    /// (`None`: lost). `busy` is when this direction of the link finishes
    /// sending what it already took: a message waits behind it at the
    /// link's bandwidth.
    pub fn crossing(&self, rng: &mut impl Rng, busy: &mut u64, sent: u64, bytes: usize) -> Option<u64> {
        if self.loss > 0.0 && rng.gen_bool(self.loss.min(1.0)) {
            return None;
        }
        let jitter = if self.jitter_ms > 0 { rng.gen_range(0..=self.jitter_ms) } else { 0 };
        let start = match self.bandwidth_kbps {
            Some(kbps) => {
                let start = sent.max(*busy);
                // kilobits a second = bits a millisecond
                *busy = start.saturating_add((bytes as u64).saturating_mul(8).div_ceil(kbps.max(1)));
                *busy
            }
            None => sent,
        };
        Some(start.saturating_add(self.latency_ms).saturating_add(jitter))
    }
}

/// Peers a shaper keeps links or blocks for (the admin RPC names peers).
pub const MAX_SHAPED_PEERS: usize = 4_096;

/// What the shaper does with a message from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shaped {
    /// Hand it to the node now.
    Now,
    /// Hold it until then.
    At(Instant),
    /// The link lost it.
    Lost,
}

/// The links of one node to its peers as it hears them: each message from
/// a shaped peer is held for the link's delay, queued behind the link's
/// bandwidth, or lost; messages from one peer keep their order, as over
/// one connection. Blocked peers are refused outright (see
/// `P2pNetwork::set_blocked`).
pub struct Shaper {
    links: HashMap<PeerId, Link>,
    blocked: HashSet<PeerId>,
    rng: ChaCha8Rng,
    epoch: Instant,
}

struct Link {
    model: LinkModel,
    busy: u64,
    last: u64,
}

impl Shaper {
    /// A shaper with no slow link, drawing jitter and loss from `seed`.
    pub fn new(seed: u64) -> Self {
        Shaper {
            links: HashMap::new(),
            blocked: HashSet::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            epoch: Instant::now(),
        }
    }

    /// Sets (or with `None` or an instant model, clears) the link to `peer`;
    /// false when it holds [`MAX_SHAPED_PEERS`] others already.
    pub fn set_link(&mut self, peer: PeerId, model: Option<LinkModel>) -> bool {
        match model.filter(|m| !m.is_instant()) {
            Some(_) if !self.links.contains_key(&peer) && self.links.len() >= MAX_SHAPED_PEERS => {
                return false;
            }
            Some(model) => {
                let link = self.links.entry(peer).or_insert(Link { model, busy: 0, last: 0 });
                link.model = model;
            }
            None => {
                self.links.remove(&peer);
            }
        }
        true
    }

    /// Marks `peer` blocked or not; returns whether that changed anything
    /// (a new block past [`MAX_SHAPED_PEERS`] changes nothing).
    pub fn set_blocked(&mut self, peer: PeerId, blocked: bool) -> bool {
        if blocked && self.blocked.len() >= MAX_SHAPED_PEERS {
            return false;
        }
        if blocked { self.blocked.insert(peer) } else { self.blocked.remove(&peer) }
    }

    /// Whether messages from `peer` are shaped.
    pub fn is_shaped(&self, peer: &PeerId) -> bool {
        self.links.contains_key(peer)
    }

    /// Whether `peer` is blocked.
    pub fn is_blocked(&self, peer: &PeerId) -> bool {
        self.blocked.contains(peer)
    }

    /// The links set, for status answers.
    pub fn links(&self) -> Vec<(PeerId, LinkModel)> {
        let mut v: Vec<(PeerId, LinkModel)> = self.links.iter().map(|(p, l)| (*p, l.model)).collect();
        v.sort_by_key(|(p, _)| *p);
        v
    }

    /// What to do with a message of `bytes` from `peer` heard at `now`.
    pub fn judge(&mut self, peer: &PeerId, bytes: usize, now: Instant) -> Shaped {
        let Some(link) = self.links.get_mut(peer) else { return Shaped::Now };
        let sent = now.saturating_duration_since(self.epoch).as_millis() as u64;
        let Some(due) = link.model.crossing(&mut self.rng, &mut link.busy, sent, bytes) else {
            return Shaped::Lost;
        };
        // one connection delivers in order
        let due = due.max(link.last);
        link.last = due;
        if due <= sent { Shaped::Now } else { Shaped::At(self.epoch + std::time::Duration::from_millis(due)) }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_slow_link_delays_in_order_and_others_pass() {
        let mut s = Shaper::new(7);
        let (slow, fast) = (PeerId::random(), PeerId::random());
        s.set_link(slow, Some(LinkModel { latency_ms: 200, jitter_ms: 50, ..Default::default() }));
        let now = Instant::now();
        assert_eq!(s.judge(&fast, 100, now), Shaped::Now);
        let mut last = now;
        for _ in 0..50 {
            match s.judge(&slow, 100, now) {
                Shaped::At(t) => {
                    let d = t.duration_since(now);
                    assert!(d >= Duration::from_millis(199) && d <= Duration::from_millis(251), "{d:?}");
                    assert!(t >= last, "a peer's messages keep their order");
                    last = t;
                }
                other => panic!("{other:?}"),
            }
        }
        s.set_link(slow, None);
        assert_eq!(s.judge(&slow, 100, now), Shaped::Now);
    }

    #[test]
    fn bandwidth_queues_and_loss_drops_about_its_share() {
        let mut s = Shaper::new(1);
        let p = PeerId::random();
        // 80 kbit/s: 1,000 bytes take 100 ms each
        s.set_link(p, Some(LinkModel { bandwidth_kbps: Some(80), ..Default::default() }));
        let now = Instant::now();
        let t: Vec<Duration> = (0..3)
            .map(|_| match s.judge(&p, 1_000, now) {
                Shaped::At(t) => t.duration_since(now),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(t[0] >= Duration::from_millis(99) && t[2] >= Duration::from_millis(299), "{t:?}");
        s.set_link(p, Some(LinkModel { loss: 0.3, ..Default::default() }));
        let lost = (0..2_000).filter(|_| s.judge(&p, 10, now) == Shaped::Lost).count();
        assert!((450..750).contains(&lost), "{lost} of 2000 lost at 30 %");
    }

    #[test]
    fn models_out_of_range_are_refused() {
        assert!(LinkModel { loss: 1.5, ..Default::default() }.check().is_err());
        assert!(LinkModel { bandwidth_kbps: Some(0), ..Default::default() }.check().is_err());
        assert!(LinkModel { latency_ms: u64::MAX, ..Default::default() }.check().is_err());
        assert!(LinkModel { latency_ms: 100, loss: 0.1, ..Default::default() }.check().is_ok());
    }
}
