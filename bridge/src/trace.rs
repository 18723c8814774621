//! Trace commitments `c_0 … c_n` of the dispute game (DESIGN.md, Disputes).

use serde::{Deserialize, Serialize};

use crate::{Decode, DecodeError, Encode, Frontier, Hash, hash_domain};

/// What a block commits to after each item: the state root, the Merkle
/// roots of the messages emitted and the receipts produced so far, and the
/// gas used so far.
///
/// The roots are those of append-only trees ([`Frontier`]): `c_n`'s are
/// the header's very `outbox_root` and `receipts_root`, so a correct trace
/// implies correct header roots, and a message or receipt still has an
/// ordinary inclusion proof against them. A single step gets the two
/// frontiers in its witness ([`TraceState`]), checks them against `c_{i-1}`
/// and appends the item's messages and receipt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceCommitment {
    /// State root after the item.
    pub state_root: Hash,
    /// Merkle root of the outbox messages' ids emitted so far in the block.
    pub outbox_root: Hash,
    /// Merkle root of the receipts so far in the block.
    pub receipts_root: Hash,
    /// Gas used by the block's items so far (so a step sees the block's
    /// gas limit being crossed).
    pub gas_used: u64,
}

/// `T_0` of an item's level-2 trace (its instructions): its start, from
/// `c_{i-1}`'s hash and the item's leaf hash, both fixed by level 1.
pub fn item_start(pre: &Hash, item: &Hash) -> Hash {
    hash_domain(b"optishard.item_start", &[&pre.0, &item.0])
}

impl TraceCommitment {
    /// `c_0` of a block: the parent's state root, empty outbox and
    /// receipts, no gas used.
    pub fn start(pre_state_root: Hash) -> Self {
        TraceState::start().commitment(pre_state_root)
    }

    /// The single hash the dispute game bisects over.
    pub fn hash(&self) -> Hash {
        hash_domain(
            b"optishard.trace",
            &[&self.state_root.0, &self.outbox_root.0, &self.receipts_root.0, &self.gas_used.to_be_bytes()],
        )
    }
}

/// The running part of a trace besides the state: the outbox and receipts
/// frontiers and the gas used. A proposer and a single step extend it the
/// same way, item by item.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceState {
    /// Ids of the messages emitted so far.
    pub outbox: Frontier,
    /// Hashes of the receipts so far.
    pub receipts: Frontier,
    /// Gas used so far.
    pub gas_used: u64,
}

impl TraceState {
    /// Before the first item.
    pub fn start() -> Self {
        Self::default()
    }

    /// Appends one item's effects: the ids of the messages it emitted, its
    /// receipt's hash and its gas.
    pub fn push(&mut self, messages: impl IntoIterator<Item = Hash>, receipt: &Hash, gas: u64) {
        for id in messages {
            self.outbox.push(&id);
        }
        self.receipts.push(receipt);
        self.gas_used = self.gas_used.saturating_add(gas);
    }

    /// The commitment with state root `state_root`.
    pub fn commitment(&self, state_root: Hash) -> TraceCommitment {
        TraceCommitment {
            state_root,
            outbox_root: self.outbox.root(),
            receipts_root: self.receipts.root(),
            gas_used: self.gas_used,
        }
    }

    /// Whether this state is the one `c` commits to (besides the state root).
    pub fn matches(&self, c: &TraceCommitment) -> bool {
        self.outbox.is_well_formed()
            && self.receipts.is_well_formed()
            && self.outbox.root() == c.outbox_root
            && self.receipts.root() == c.receipts_root
            && self.gas_used == c.gas_used
    }
}

impl crate::ShardHeader {
    /// The trace commitment the header's execution fields make: what its
    /// `trace_root` must be the hash of.
    pub fn last_commitment(&self) -> TraceCommitment {
        TraceCommitment {
            state_root: self.post_state_root,
            outbox_root: self.outbox_root,
            receipts_root: self.receipts_root,
            gas_used: self.gas_used,
        }
    }
}

impl Encode for TraceCommitment {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.state_root.encode_to(out);
        self.outbox_root.encode_to(out);
        self.receipts_root.encode_to(out);
        self.gas_used.encode_to(out);
    }
}

impl Decode for TraceCommitment {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(TraceCommitment {
            state_root: Hash::decode(input)?,
            outbox_root: Hash::decode(input)?,
            receipts_root: Hash::decode(input)?,
            gas_used: u64::decode(input)?,
        })
    }
}

impl Encode for TraceState {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.outbox.encode_to(out);
        self.receipts.encode_to(out);
        self.gas_used.encode_to(out);
    }
}

impl Decode for TraceState {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(TraceState {
            outbox: Frontier::decode(input)?,
            receipts: Frontier::decode(input)?,
            gas_used: u64::decode(input)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_exact, merkle_root};

    #[test]
    fn a_frontier_with_the_wrong_peaks_matches_nothing() {
        let mut t = TraceState::start();
        for i in 0..6u8 {
            t.push([Hash::of(&[i])], &Hash::of(&[i, 1]), 1);
        }
        let c = t.commitment(Hash::ZERO);
        // same root, other shape: one peak for a length of 6 (two set bits)
        let mut json = serde_json::to_value(&t).unwrap();
        let peaks = json["outbox"]["peaks"].as_array().unwrap().clone();
        json["outbox"]["peaks"] = serde_json::json!([peaks[0]]);
        let bad: TraceState = serde_json::from_value(json).unwrap();
        assert!(!bad.outbox.is_well_formed());
        assert!(!bad.matches(&c));
        assert!(t.matches(&c));
    }

    #[test]
    fn the_last_commitment_carries_the_header_roots() {
        let ids: Vec<Hash> = (0..5u8).map(|i| Hash::of(&[i])).collect();
        let receipts: Vec<Hash> = (0..3u8).map(|i| Hash::of(&[100 + i])).collect();
        let mut t = TraceState::start();
        t.push(ids[..2].iter().copied(), &receipts[0], 21_000);
        t.push([], &receipts[1], 30_000);
        t.push(ids[2..].iter().copied(), &receipts[2], 50_000);
        let c = t.commitment(Hash::of(b"post"));
        assert_eq!(c.outbox_root, merkle_root(&ids));
        assert_eq!(c.receipts_root, merkle_root(&receipts));
        assert_eq!(c.gas_used, 101_000);
        assert!(t.matches(&c));
        assert_eq!(decode_exact::<TraceState>(&t.encode()).unwrap(), t);
        assert_eq!(decode_exact::<TraceCommitment>(&c.encode()).unwrap(), c);
        let mut other = c;
        other.gas_used += 1;
        assert_ne!(other.hash(), c.hash());
        assert!(!t.matches(&other));
    }
}
