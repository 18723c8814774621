//! The beacon chain's rules: which shard headers it accepts, and the block
//! it seals at the end of every slot.

use std::collections::VecDeque;

use bridge::{
    Address, BeaconBlock, ChainSpec, Hash, ShardHead, ShardId, Signature, SignedHeader, ValidatorKey,
};
use parking_lot::RwLock;
use serde::Serialize;
use tracing::{debug, info};

use crate::store::{BeaconDb, IncludedHeader};
use crate::{Error, Result};

/// Why the beacon refused a shard header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    /// The shard id is not below the spec's shard count.
    #[error("unknown shard {shard}")]
    UnknownShard {
        /// The claimed shard.
        shard: u32,
    },
    /// The signature does not recover.
    #[error("bad signature: {error}")]
    BadSignature {
        /// Why.
        error: String,
    },
    /// The header names another proposer than its signer.
    #[error("header names proposer {proposer} but is signed by {signer}")]
    ProposerMismatch {
        /// The header's proposer field.
        proposer: Address,
        /// Who signed.
        signer: Address,
    },
    /// The signer is not the validator scheduled for that shard and slot.
    #[error("signed by {signer}, but slot {slot} of shard {shard} belongs to {expected}")]
    NotScheduled {
        /// The shard.
        shard: u32,
        /// The header's slot.
        slot: u64,
        /// The scheduled proposer.
        expected: Address,
        /// Who signed.
        signer: Address,
    },
    /// The header claims a slot that has not started.
    #[error("slot {slot} is in the future (current slot {current})")]
    FutureSlot {
        /// The header's slot.
        slot: u64,
        /// The beacon's slot.
        current: u64,
    },
    /// The header does not extend the shard's last accepted header.
    #[error(
        "does not extend shard {shard}: parent {parent} at height {height}, accepted head {head} at height {head_height}"
    )]
    NotExtending {
        /// The shard.
        shard: u32,
        /// The header's height.
        height: u64,
        /// The header's parent.
        parent: Hash,
        /// The accepted head.
        head: Hash,
        /// Its height.
        head_height: u64,
    },
    /// The header's slot is not after its parent's.
    #[error("slot {slot} is not after the parent's slot {parent_slot}")]
    SlotNotAfterParent {
        /// The header's slot.
        slot: u64,
        /// The parent's slot.
        parent_slot: u64,
    },
    /// Already accepted.
    #[error("already accepted")]
    Duplicate,
}

impl Rejection {
    /// Short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::UnknownShard { .. } => "unknown_shard",
            Rejection::BadSignature { .. } => "bad_signature",
            Rejection::ProposerMismatch { .. } => "proposer_mismatch",
            Rejection::NotScheduled { .. } => "not_scheduled",
            Rejection::FutureSlot { .. } => "future_slot",
            Rejection::NotExtending { .. } => "not_extending",
            Rejection::SlotNotAfterParent { .. } => "slot_not_after_parent",
            Rejection::Duplicate => "duplicate",
        }
    }

    /// Whether the sender is at fault (its peer score should drop), as
    /// opposed to a late or duplicate but honest submission.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Rejection::UnknownShard { .. }
                | Rejection::BadSignature { .. }
                | Rejection::ProposerMismatch { .. }
                | Rejection::NotScheduled { .. }
        )
    }
}

/// What happened to an accepted submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Submitted {
    /// It extends the shard's head and goes into the next beacon block.
    Accepted,
    /// Its parent has not been accepted yet; it is held until it is.
    Pending,
}

/// A refused header, kept for the RPC.
#[derive(Clone, Debug, Serialize)]
pub struct RejectionRecord {
    /// Beacon slot when it was refused.
    pub at_slot: u64,
    /// The header's shard.
    pub shard: ShardId,
    /// The header's height.
    pub height: u64,
    /// The header's hash.
    pub hash: Hash,
    /// Why.
    #[serde(flatten)]
    pub rejection: Rejection,
    /// The reason as text.
    pub message: String,
}

struct State {
    head: Option<(u64, Hash)>,
    heads: Vec<ShardHead>,
    included: Vec<SignedHeader>,
    /// Held children: (slot received, header hash, header).
    pending: Vec<(u64, Hash, SignedHeader)>,
    rejections: VecDeque<RejectionRecord>,
}

/// Most pending headers held (per beacon).
const MAX_PENDING: usize = 1024;
/// Slots a pending header waits for its parent.
const PENDING_SLOTS: u64 = 64;
/// Rejections kept for the RPC.
const KEPT_REJECTIONS: usize = 1000;

/// The beacon chain: its spec, database and the state between blocks.
pub struct BeaconChain {
    key: ValidatorKey,
    spec: ChainSpec,
    spec_hash: Hash,
    db: BeaconDb,
    state: RwLock<State>,
}

impl BeaconChain {
    /// Opens the chain, resuming from the newest stored block. `key` signs
    /// beacon blocks and must be the spec's beacon key.
    pub fn open(spec: ChainSpec, db: BeaconDb, key: ValidatorKey) -> Result<Self> {
        spec.validate().map_err(Error::Config)?;
        if key.address() != spec.beacon {
            return Err(Error::Config(format!(
                "beacon key {} is not the genesis beacon {}",
                key.address(),
                spec.beacon
            )));
        }
        let mut head = None;
        let mut heads: Vec<ShardHead> = (0..spec.shards).map(|s| spec.genesis_head(ShardId(s))).collect();
        if let Some(slot) = db.head_slot()? {
            let block =
                db.block(slot)?.ok_or_else(|| Error::Corrupt(format!("head block {slot} missing")))?;
            if block.heads.len() != heads.len() {
                return Err(Error::Config("database belongs to a network with another shard count".into()));
            }
            heads = block.heads.clone();
            head = Some((slot, block.hash()));
            info!(target: "beacon", slot, "resumed beacon chain");
        }
        Ok(BeaconChain {
            key,
            spec_hash: spec.hash(),
            spec,
            db,
            state: RwLock::new(State {
                head,
                heads,
                included: vec![],
                pending: vec![],
                rejections: VecDeque::new(),
            }),
        })
    }

    /// The genesis spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The database.
    pub fn db(&self) -> &BeaconDb {
        &self.db
    }

    /// Slot and hash of the newest beacon block.
    pub fn head(&self) -> Option<(u64, Hash)> {
        self.state.read().head
    }

    /// Every shard's accepted head (including headers not yet sealed).
    pub fn heads(&self) -> Vec<ShardHead> {
        self.state.read().heads.clone()
    }

    /// Recent rejections, newest last.
    pub fn rejections(&self, limit: usize) -> Vec<RejectionRecord> {
        let s = self.state.read();
        s.rejections.iter().rev().take(limit).rev().cloned().collect()
    }

    /// Judges a submitted header at beacon slot `current`. Accepted headers
    /// go into the next sealed block; a header whose parent is not accepted
    /// yet is held, and accepted when the parent is.
    pub fn submit(&self, sh: SignedHeader, current: u64) -> Result<Submitted, Rejection> {
        let mut state = self.state.write();
        let h = &sh.header;
        let out = self.check_and_accept(&mut state, sh.clone(), current);
        match &out {
            Err(Rejection::Duplicate) => {}
            Err(r) => {
                debug!(target: "beacon", shard = %h.shard, height = h.height, reason = %r, "rejected header");
                if state.rejections.len() == KEPT_REJECTIONS {
                    state.rejections.pop_front();
                }
                state.rejections.push_back(RejectionRecord {
                    at_slot: current,
                    shard: h.shard,
                    height: h.height,
                    hash: h.hash(),
                    rejection: r.clone(),
                    message: r.to_string(),
                });
            }
            Ok(Submitted::Accepted) => {
                // children that arrived before their parent
                loop {
                    let head = state.heads[h.shard.0 as usize];
                    let Some(i) = state
                        .pending
                        .iter()
                        .position(|(_, _, p)| p.header.shard == h.shard && p.header.parent_hash == head.hash)
                    else {
                        break;
                    };
                    let (_, _, child) = state.pending.swap_remove(i);
                    let _ = self.check_and_accept(&mut state, child, current);
                }
            }
            Ok(Submitted::Pending) => {}
        }
        out
    }

    fn check_and_accept(
        &self,
        state: &mut State,
        sh: SignedHeader,
        current: u64,
    ) -> Result<Submitted, Rejection> {
        let h = &sh.header;
        if h.shard.0 >= self.spec.shards {
            return Err(Rejection::UnknownShard { shard: h.shard.0 });
        }
        let signer = sh.signer().map_err(|e| Rejection::BadSignature { error: e.to_string() })?;
        if h.proposer != signer {
            return Err(Rejection::ProposerMismatch { proposer: h.proposer, signer });
        }
        if h.beacon_slot > current {
            return Err(Rejection::FutureSlot { slot: h.beacon_slot, current });
        }
        let expected =
            self.spec.proposer(h.shard, h.beacon_slot).expect("validated spec: every shard has validators");
        if expected != signer {
            return Err(Rejection::NotScheduled { shard: h.shard.0, slot: h.beacon_slot, expected, signer });
        }
        let head = state.heads[h.shard.0 as usize];
        let hash = h.hash();
        if hash == head.hash || state.pending.iter().any(|(_, h, _)| *h == hash) {
            return Err(Rejection::Duplicate);
        }
        if h.height > head.height + 1 {
            state.pending.retain(|(at, _, _)| at + PENDING_SLOTS >= current);
            if state.pending.len() < MAX_PENDING {
                state.pending.push((current, hash, sh));
            }
            return Ok(Submitted::Pending);
        }
        if h.height <= head.height || h.parent_hash != head.hash {
            return Err(Rejection::NotExtending {
                shard: h.shard.0,
                height: h.height,
                parent: h.parent_hash,
                head: head.hash,
                head_height: head.height,
            });
        }
        if h.beacon_slot <= head.slot {
            return Err(Rejection::SlotNotAfterParent { slot: h.beacon_slot, parent_slot: head.slot });
        }
        state.heads[h.shard.0 as usize] =
            ShardHead { shard: h.shard, height: h.height, hash, slot: h.beacon_slot };
        state.included.push(sh);
        Ok(Submitted::Accepted)
    }

    /// Seals and stores the block of `slot` with the headers accepted since
    /// the last one. `None` if a block at or after `slot` exists.
    pub fn seal(&self, slot: u64) -> Result<Option<BeaconBlock>> {
        let mut state = self.state.write();
        if state.head.is_some_and(|(s, _)| s >= slot) {
            return Ok(None);
        }
        let mut block = BeaconBlock {
            signature: Signature::default(),
            slot,
            parent: state.head.map_or(Hash::ZERO, |(_, h)| h),
            headers: state.included.clone(),
            heads: state.heads.clone(),
            state_root: BeaconBlock::compute_state_root(&self.spec_hash, &state.heads),
        };
        block.sign(&self.key);
        self.db.commit(&block)?;
        state.included.clear();
        state.head = Some((slot, block.hash()));
        Ok(Some(block))
    }

    /// The accepted header chain of `shard`: up to `limit` headers from `from`.
    pub fn shard_headers(&self, shard: ShardId, from: u64, limit: usize) -> Result<Vec<IncludedHeader>> {
        let mut out = Vec::new();
        for height in from.max(1)..from.max(1) + limit as u64 {
            match self.db.shard_header(shard, height)? {
                Some(h) => out.push(h),
                None => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge::{ShardHeader, ValidatorInfo, ValidatorKey};

    fn beacon_key() -> ValidatorKey {
        ValidatorKey::derive(b"beacon")
    }

    fn setup() -> (ChainSpec, Vec<ValidatorKey>) {
        let keys: Vec<ValidatorKey> = (0..4u32).map(|i| ValidatorKey::derive(&i.to_be_bytes())).collect();
        let spec = ChainSpec {
            genesis_time_ms: 0,
            slot_ms: 100,
            shards: 2,
            chain_id_base: 1,
            seed: Hash::of(b"seed"),
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, k)| ValidatorInfo {
                    address: k.address(),
                    shard: ShardId(i as u32 / 2),
                    bond_gwei: 32,
                })
                .collect(),
            shard_genesis: vec![Hash::of(b"g0"), Hash::of(b"g1")],
            beacon: beacon_key().address(),
        };
        (spec, keys)
    }

    fn key_for<'a>(spec: &ChainSpec, keys: &'a [ValidatorKey], shard: u32, slot: u64) -> &'a ValidatorKey {
        let p = spec.proposer(ShardId(shard), slot).unwrap();
        keys.iter().find(|k| k.address() == p).unwrap()
    }

    fn other_key<'a>(spec: &ChainSpec, keys: &'a [ValidatorKey], shard: u32, slot: u64) -> &'a ValidatorKey {
        let p = spec.proposer(ShardId(shard), slot).unwrap();
        keys.iter()
            .find(|k| k.address() != p && spec.validator(&k.address()).unwrap().shard == ShardId(shard))
            .unwrap()
    }

    fn header(shard: u32, height: u64, parent: Hash, slot: u64, key: &ValidatorKey) -> SignedHeader {
        let h = ShardHeader {
            shard: ShardId(shard),
            height,
            parent_hash: parent,
            beacon_slot: slot,
            proposer: key.address(),
            ..Default::default()
        };
        SignedHeader::sign(h, key)
    }

    #[test]
    fn accepts_only_the_scheduled_proposer_extending_the_chain() {
        let (spec, keys) = setup();
        let dir = tempfile::tempdir().unwrap();
        let chain = BeaconChain::open(spec.clone(), BeaconDb::open(dir.path(), false).unwrap(), beacon_key())
            .unwrap();
        let g0 = spec.shard_genesis[0];

        let wrong = header(0, 1, g0, 1, other_key(&spec, &keys, 0, 1));
        assert!(matches!(chain.submit(wrong, 1), Err(Rejection::NotScheduled { slot: 1, .. })));
        let mut mismatched = header(0, 1, g0, 1, key_for(&spec, &keys, 0, 1));
        mismatched.header.proposer = keys[3].address();
        assert!(matches!(chain.submit(mismatched, 1), Err(Rejection::ProposerMismatch { .. })));
        let mut bad_sig = header(0, 1, g0, 1, key_for(&spec, &keys, 0, 1));
        bad_sig.signature.0[64] = 9;
        assert!(matches!(chain.submit(bad_sig, 1), Err(Rejection::BadSignature { .. })));
        let future = header(0, 1, g0, 5, key_for(&spec, &keys, 0, 5));
        assert!(matches!(chain.submit(future, 1), Err(Rejection::FutureSlot { slot: 5, current: 1 })));
        let off_chain = header(0, 1, Hash::of(b"elsewhere"), 1, key_for(&spec, &keys, 0, 1));
        assert!(matches!(chain.submit(off_chain, 1), Err(Rejection::NotExtending { .. })));

        let h1 = header(0, 1, g0, 1, key_for(&spec, &keys, 0, 1));
        assert_eq!(chain.submit(h1.clone(), 1), Ok(Submitted::Accepted));
        assert_eq!(chain.submit(h1.clone(), 1), Err(Rejection::Duplicate));
        // a second block at the same height conflicts with the accepted one
        let fork = header(0, 1, g0, 2, key_for(&spec, &keys, 0, 2));
        assert!(matches!(chain.submit(fork, 2), Err(Rejection::NotExtending { .. })));
        let block = chain.seal(1).unwrap().unwrap();
        assert_eq!(block.headers, vec![h1.clone()]);
        assert_eq!(block.heads[0].height, 1);
        assert_eq!(block.heads[1], spec.genesis_head(ShardId(1)));
        assert!(block.signed_by(&spec.beacon));
        assert!(chain.seal(1).unwrap().is_none(), "one block per slot");
        assert_eq!(chain.rejections(100).len(), 6, "every refusal but the duplicate is kept");

        // a child arriving before its parent waits for it
        let h2 = header(0, 2, h1.header.hash(), 2, key_for(&spec, &keys, 0, 2));
        let h3 = header(0, 3, h2.header.hash(), 3, key_for(&spec, &keys, 0, 3));
        assert_eq!(chain.submit(h3.clone(), 3), Ok(Submitted::Pending));
        assert_eq!(chain.submit(h2.clone(), 3), Ok(Submitted::Accepted));
        assert_eq!(chain.heads()[0].height, 3);
        let block = chain.seal(3).unwrap().unwrap();
        assert_eq!(block.headers, vec![h2, h3.clone()]);
        assert_eq!(chain.shard_headers(ShardId(0), 1, 10).unwrap().len(), 3);

        // reopening resumes from the stored head
        drop(chain);
        let chain = BeaconChain::open(spec.clone(), BeaconDb::open(dir.path(), false).unwrap(), beacon_key())
            .unwrap();
        assert_eq!(chain.head().unwrap().0, 3);
        assert_eq!(chain.heads()[0].hash, h3.header.hash());
        assert_eq!(chain.seal(4).unwrap().unwrap().parent, block.hash());
    }
}
