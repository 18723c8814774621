//! Trace commitments `c_0 … c_n` of the dispute game (DESIGN.md, Disputes).

use serde::{Deserialize, Serialize};

use crate::{Decode, DecodeError, Encode, Hash, hash_domain};

/// What a block commits to after each item: the state root, and hash-chain
/// accumulators over the outbox messages and receipts produced so far.
///
/// The accumulators are hash chains, so their "frontier" in a witness is the
/// previous value itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceCommitment {
    /// State root after the item.
    pub state_root: Hash,
    /// Accumulator over outbox messages emitted so far in the block.
    pub outbox_acc: Hash,
    /// Accumulator over receipts produced so far in the block.
    pub receipts_acc: Hash,
}

impl TraceCommitment {
    /// `c_0` of a block: the parent's state root and empty accumulators.
    pub fn start(pre_state_root: Hash) -> Self {
        TraceCommitment { state_root: pre_state_root, outbox_acc: Hash::ZERO, receipts_acc: Hash::ZERO }
    }

    /// The single hash the dispute game bisects over.
    pub fn hash(&self) -> Hash {
        hash_domain(b"optishard.trace", &[&self.state_root.0, &self.outbox_acc.0, &self.receipts_acc.0])
    }
}

/// Extends a hash-chain accumulator with one element.
pub fn accumulate(acc: &Hash, element: &Hash) -> Hash {
    hash_domain(b"optishard.acc", &[&acc.0, &element.0])
}

impl Encode for TraceCommitment {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.state_root.encode_to(out);
        self.outbox_acc.encode_to(out);
        self.receipts_acc.encode_to(out);
    }
}

impl Decode for TraceCommitment {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(TraceCommitment {
            state_root: Hash::decode(input)?,
            outbox_acc: Hash::decode(input)?,
            receipts_acc: Hash::decode(input)?,
        })
    }
}
