//! Block import as typed stages, each a wrapper that proves what was
//! checked (lighthouse's `GossipVerifiedBlock → SignatureVerifiedBlock →
//! ExecutionPendingBlock`):
//!
//! 1. [`SignedBlock::verify`] — from bytes: the fixed-size signed header is
//!    decoded first, its slot is checked against the clock and its
//!    signature against the schedule before the body is decoded at all;
//! 2. [`SignedBlock::bind_body`] → [`BoundBlock`] — the body is the one the
//!    header commits to (`items_root`, which also fixes the item count). A
//!    body that is not is the relaying peer's fault, never the proposer's;
//! 3. [`crate::ShardNode::import`] — the header is checked against its
//!    parent (`bridge::check_header`, the beacon's own rule), every inbox
//!    message against its beacon-accepted source header ([`check_inbox`]),
//!    then the block is re-executed and every root compared; only a bound body that
//!    re-executes to other roots is a mismatch, kept as evidence.
//!
//! Each stage runs its checks once; gossip is judged by [`BlockError::verdict`],
//! which names the penalty of every variant (no wildcard arm).

use bridge::{
    ChainSpec, DecodeError, Hash, HeaderFault, MismatchEvidence, ShardBlock, ShardId, SignedHeader,
    decode_exact, decode_list,
};
use net::Validation;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Why a block was not imported (at whichever stage).
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The bytes are not a block.
    #[error("malformed block: {0}")]
    Malformed(DecodeError),
    /// The block belongs to another shard.
    #[error("block of shard {0}")]
    WrongShard(ShardId),
    /// The block's slot is beyond this node's clock plus the skew allowance.
    #[error("block of slot {slot} is in the future (current slot {current})")]
    FutureSlot {
        /// The block's slot.
        slot: u64,
        /// This node's slot.
        current: u64,
    },
    /// At or below the head: nothing to do.
    #[error("block {height} is not above head {head}")]
    Old {
        /// The block's height.
        height: u64,
        /// The head's height.
        head: u64,
    },
    /// The signature does not recover, or not to the header's proposer.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// The signer was not scheduled for the slot.
    #[error("{signer} is not the proposer of slot {slot}")]
    NotScheduled {
        /// The block's slot.
        slot: u64,
        /// Who signed.
        signer: bridge::Address,
    },
    /// The body is not the one the signed header commits to: whoever sent
    /// it tampered with it (or relayed a tampered copy).
    #[error("body does not match its header: {0}")]
    BodyMismatch(HeaderFault),
    /// It does not extend the head (a fork, or a gap).
    #[error("block {height} does not extend head {head}")]
    NotNext {
        /// The block's height.
        height: u64,
        /// The head's height.
        head: u64,
    },
    /// The signed header breaks a rule checkable without execution.
    #[error("invalid header: {0}")]
    Header(HeaderFault),
    /// An inbox entry names a source header this node does not know (yet):
    /// it may be behind the beacon.
    #[error("inbox message from unknown source header {src}/{height}")]
    UnknownSource {
        /// Source shard.
        src: ShardId,
        /// Source height.
        height: u64,
    },
    /// An inbox entry is not a message of its beacon-accepted source
    /// header's outbox for this shard.
    #[error("bad inbox entry: {0}")]
    BadInbox(String),
    /// The bound body re-executes to other results than its header claims.
    #[error("root mismatch in {}", .0.field_names().join(", "))]
    Mismatch(Box<MismatchEvidence>),
    /// The node failed.
    #[error(transparent)]
    Node(#[from] Error),
}

impl From<prover::Error> for BlockError {
    fn from(e: prover::Error) -> Self {
        BlockError::Node(e.into())
    }
}

impl BlockError {
    /// What gossip does with a block that failed this way: `Reject` (the
    /// sending peer's score drops, not relayed) for anything a correct peer
    /// would never send; `Ignore` for old, out-of-order or local failures.
    pub fn verdict(&self) -> Validation {
        match self {
            BlockError::Malformed(_)
            | BlockError::WrongShard(_)
            | BlockError::FutureSlot { .. }
            | BlockError::BadSignature(_)
            | BlockError::NotScheduled { .. }
            | BlockError::BodyMismatch(_)
            | BlockError::Header(_)
            | BlockError::BadInbox(_)
            | BlockError::Mismatch(_) => Validation::Reject,
            BlockError::Old { .. }
            | BlockError::NotNext { .. }
            | BlockError::UnknownSource { .. }
            | BlockError::Node(_) => Validation::Ignore,
        }
    }

    /// Whether the block's sender is at fault.
    pub fn is_fault(&self) -> bool {
        self.verdict() == Validation::Reject
    }
}

/// Where a node looks up the beacon-accepted source headers its inbox
/// entries refer to.
pub trait SourceHeaders {
    /// The `outbox_root` of the beacon-accepted header of `shard` at
    /// `height`, if this node knows it.
    fn outbox_root(&self, shard: ShardId, height: u64) -> Option<Hash>;
}

/// A node that knows no source headers (the dev chain, which consumes no
/// messages): any inbox entry is from an unknown source.
pub struct NoSources;

impl SourceHeaders for NoSources {
    fn outbox_root(&self, _: ShardId, _: u64) -> Option<Hash> {
        None
    }
}

/// Checks every inbox entry of `block` (shard `shard` of `shards`): a
/// message to this shard from another existing one, proven against the
/// `outbox_root` of its beacon-accepted source header. Channel order is
/// the state-transition function's rule (re-execution checks it).
pub fn check_inbox(block: &ShardBlock, shards: u32, sources: &dyn SourceHeaders) -> Result<(), BlockError> {
    let shard = block.header.header.shard;
    for e in &block.inbox {
        let m = &e.message;
        if m.dst != shard || m.src == shard || m.src.0 >= shards {
            return Err(BlockError::BadInbox(format!(
                "message {} -> {} in a block of shard {shard}",
                m.src, m.dst
            )));
        }
        let root = sources
            .outbox_root(m.src, e.height)
            .ok_or(BlockError::UnknownSource { src: m.src, height: e.height })?;
        e.verify(&root).map_err(|err| BlockError::BadInbox(format!("message {}: {err}", m.id())))?;
    }
    Ok(())
}

/// What a node expects of the next block it is shown: its shard, and the
/// node's head height and clock slot (the spec gives the schedule).
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The network's spec (proposer schedule, slot times).
    pub spec: &'a ChainSpec,
    /// The node's shard.
    pub shard: ShardId,
    /// The node's head height: blocks at or below it are `Old`.
    pub head_height: u64,
    /// The node's current slot by its clock.
    pub current: u64,
}

/// Stage 1: a block whose header is signed by the proposer scheduled for
/// its slot, and whose slot is not ahead of this node's clock.
#[derive(Clone, Debug)]
pub struct SignedBlock {
    block: ShardBlock,
    hash: Hash,
}

impl SignedBlock {
    /// Checks an encoded block, decoding the body only once the header's
    /// signature is good. Old blocks are dropped before the signature, as
    /// they cost nothing to drop.
    pub fn verify(bytes: &[u8], expected: &Expected<'_>) -> Result<Self, BlockError> {
        let (header, body) = SignedHeader::decode_block_prefix(bytes).map_err(BlockError::Malformed)?;
        expected.check(&header)?;
        let mut input = body;
        let inbox = decode_list(&mut input).map_err(BlockError::Malformed)?;
        let txs = decode_list::<Vec<u8>>(&mut input).map_err(BlockError::Malformed)?;
        if !input.is_empty() {
            return Err(BlockError::Malformed(DecodeError::TrailingBytes(input.len())));
        }
        let hash = header.header.hash();
        Ok(SignedBlock { block: ShardBlock { header, inbox, txs }, hash })
    }

    /// Stage 1 for a block already decoded (a sync response's elements).
    pub fn verify_decoded(block: ShardBlock, expected: &Expected<'_>) -> Result<Self, BlockError> {
        expected.check(&block.header)?;
        let hash = block.header.header.hash();
        Ok(SignedBlock { block, hash })
    }

    /// Stage 2: checks the body against the header's `items_root`.
    pub fn bind_body(self) -> Result<BoundBlock, BlockError> {
        bridge::check_body(&self.block).map_err(BlockError::BodyMismatch)?;
        Ok(BoundBlock { block: self.block, hash: self.hash })
    }
}

impl Expected<'_> {
    fn check(&self, sh: &SignedHeader) -> Result<(), BlockError> {
        let h = &sh.header;
        if h.shard != self.shard {
            return Err(BlockError::WrongShard(h.shard));
        }
        if bridge::is_future(h.beacon_slot, self.current) {
            return Err(BlockError::FutureSlot { slot: h.beacon_slot, current: self.current });
        }
        if h.height <= self.head_height {
            return Err(BlockError::Old { height: h.height, head: self.head_height });
        }
        let signer = sh.signer().map_err(|e| BlockError::BadSignature(e.to_string()))?;
        if signer != h.proposer {
            return Err(BlockError::BadSignature(format!("signed by {signer}, header names {}", h.proposer)));
        }
        if self.spec.proposer(h.shard, h.beacon_slot) != Some(signer) {
            return Err(BlockError::NotScheduled { slot: h.beacon_slot, signer });
        }
        Ok(())
    }
}

/// Stage 2: a signed block whose body is the one its header commits to.
/// Anything wrong with it from here on is the proposer's doing.
#[derive(Clone, Debug)]
pub struct BoundBlock {
    pub(crate) block: ShardBlock,
    pub(crate) hash: Hash,
}

impl BoundBlock {
    /// Runs stages 1 and 2 on an encoded block.
    pub fn from_bytes(bytes: &[u8], expected: &Expected<'_>) -> Result<Self, BlockError> {
        SignedBlock::verify(bytes, expected)?.bind_body()
    }

    /// Runs stages 1 and 2 on a decoded block.
    pub fn from_block(block: ShardBlock, expected: &Expected<'_>) -> Result<Self, BlockError> {
        SignedBlock::verify_decoded(block, expected)?.bind_body()
    }

    /// The block.
    pub fn block(&self) -> &ShardBlock {
        &self.block
    }

    /// Its header hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Its height.
    pub fn height(&self) -> u64 {
        self.block.header.header.height
    }

    /// Its slot.
    pub fn slot(&self) -> u64 {
        self.block.header.header.beacon_slot
    }

    /// Encoded size of the body.
    pub fn body_bytes(&self) -> usize {
        self.block.body_bytes()
    }
}

/// Decodes a stored evidence record.
pub(crate) fn decode_evidence(bytes: &[u8]) -> Result<MismatchEvidence, DecodeError> {
    decode_exact(bytes)
}

/// Most mismatch evidence records kept (each holds a whole block).
pub const MAX_EVIDENCE: usize = 32;

/// A block whose re-execution disagrees with its header (the RPC's summary
/// of a [`MismatchEvidence`] record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The shard.
    pub shard: ShardId,
    /// Block height.
    pub height: u64,
    /// Its beacon slot.
    pub slot: u64,
    /// The block's header hash.
    pub block_hash: Hash,
    /// Who proposed (and signed) it.
    pub proposer: bridge::Address,
    /// The first field that differs.
    pub field: String,
    /// What the header claims.
    pub claimed: String,
    /// What re-execution computed.
    pub computed: String,
}

impl Mismatch {
    /// The summary of an evidence record: its first differing field.
    pub fn from_evidence(ev: &MismatchEvidence) -> Self {
        let h = &ev.block.header.header;
        let (field, claimed, computed) = ev.first_difference();
        Mismatch {
            shard: h.shard,
            height: h.height,
            slot: h.beacon_slot,
            block_hash: h.hash(),
            proposer: h.proposer,
            field,
            claimed,
            computed,
        }
    }
}
