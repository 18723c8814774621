//! The beacon block of one slot, its state root, and the proof that it
//! included one shard header ([`HeaderInclusion`]).

use serde::{Deserialize, Serialize};

use crate::{
    Address, Decode, DecodeError, Encode, GameRecord, Hash, Invalidation, MerkleTree, ShardHead, Signature,
    SignedHeader, SignedMove, ValidatorKey, decode_list, encode_list, hash_domain, merkle_root,
};

/// Beacon block of one slot: the shard headers accepted in it and every
/// shard's accepted head after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaconBlock {
    /// Its slot.
    pub slot: u64,
    /// Hash of the previous beacon block ([`Hash::ZERO`] for the first).
    pub parent: Hash,
    /// Shard headers accepted in this slot, in acceptance order.
    pub headers: Vec<SignedHeader>,
    /// Every shard's accepted head after this block, by shard id.
    pub heads: Vec<ShardHead>,
    /// Every shard's newest final height after this block, by shard id.
    pub finalized: Vec<u64>,
    /// Dispute moves applied in this slot, in order.
    pub moves: Vec<SignedMove>,
    /// Every game opened, moved or ended in this slot, as it stands after it.
    pub games: Vec<GameRecord>,
    /// Headers discarded in this slot (proven invalid, their descendants,
    /// and the destination headers that consumed their messages).
    pub invalidated: Vec<Invalidation>,
    /// Root of the dispute state after this block ([`crate::disputes_root`]).
    pub disputes_root: Hash,
    /// Validators whose bond no longer covers a game's stake, sorted: the
    /// beacon refuses their headers, so validators neither build on their
    /// blocks nor propose while listed.
    pub unbonded: Vec<Address>,
    /// Commitment to the beacon state (see [`BeaconBlock::compute_state_root`]).
    pub state_root: Hash,
    /// The beacon's signature over [`BeaconBlock::hash`] (not part of the hash).
    pub signature: Signature,
}

impl BeaconBlock {
    /// The block's identity: every field but the signature.
    pub fn hash(&self) -> Hash {
        let mut out = Vec::new();
        self.encode_content(&mut out);
        hash_domain(b"optishard.beacon_block", &[&out])
    }

    fn encode_content(&self, out: &mut Vec<u8>) {
        self.slot.encode_to(out);
        self.parent.encode_to(out);
        encode_list(&self.headers, out);
        encode_list(&self.heads, out);
        encode_list(&self.finalized, out);
        encode_list(&self.moves, out);
        encode_list(&self.games, out);
        encode_list(&self.invalidated, out);
        self.disputes_root.encode_to(out);
        encode_list(&self.unbonded, out);
        self.state_root.encode_to(out);
    }

    /// Signs the block.
    pub fn sign(&mut self, key: &ValidatorKey) {
        self.signature = key.sign(&self.hash());
    }

    /// Whether `beacon` signed the block.
    pub fn signed_by(&self, beacon: &Address) -> bool {
        self.signature.recover(&self.hash()).is_ok_and(|a| a == *beacon)
    }

    /// Decodes an encoded block only after checking, on the raw bytes, that
    /// `beacon` signed it: hostile bytes cost one hash and one recovery,
    /// never a decode of their lists.
    pub fn decode_signed(bytes: &[u8], beacon: &Address) -> Result<BeaconBlock, DecodeError> {
        let Some(content_len) = bytes.len().checked_sub(65) else {
            return Err(DecodeError::UnexpectedEnd { what: "beacon block", needed: 65 - bytes.len() });
        };
        let (content, sig) = bytes.split_at(content_len);
        let sig = Signature(sig.try_into().expect("65 bytes"));
        let hash = hash_domain(b"optishard.beacon_block", &[content]);
        if sig.recover(&hash).ok() != Some(*beacon) {
            return Err(DecodeError::BadSignature("beacon block not signed by the genesis beacon"));
        }
        crate::decode_exact(bytes)
    }

    /// The beacon state root: the spec (registry), every shard head with
    /// its final height, the dispute state (games, bonds, invalidations),
    /// and the Merkle root of the shard headers the block includes (so one
    /// header's inclusion is provable: [`HeaderInclusion`]).
    pub fn compute_state_root(
        spec: &Hash,
        heads: &[ShardHead],
        finalized: &[u64],
        disputes_root: &Hash,
        headers_root: &Hash,
    ) -> Hash {
        Self::state_root_of(spec, &Self::heads_root(heads, finalized), disputes_root, headers_root)
    }

    fn state_root_of(spec: &Hash, heads_root: &Hash, disputes_root: &Hash, headers_root: &Hash) -> Hash {
        hash_domain(b"optishard.beacon_state", &[&spec.0, &heads_root.0, &disputes_root.0, &headers_root.0])
    }

    fn heads_root(heads: &[ShardHead], finalized: &[u64]) -> Hash {
        let leaves: Vec<Hash> = heads
            .iter()
            .zip(finalized.iter().chain(std::iter::repeat(&0)))
            .map(|(h, f)| hash_domain(b"optishard.shard_head", &[&h.encode(), &f.to_be_bytes()]))
            .collect();
        merkle_root(&leaves)
    }

    /// Merkle root of the included shard headers' hashes, in order.
    pub fn headers_root(&self) -> Hash {
        merkle_root(&self.headers.iter().map(|h| h.header.hash()).collect::<Vec<_>>())
    }

    /// Whether `state_root` is the one this block's content gives.
    pub fn state_root_matches(&self, spec: &Hash) -> bool {
        self.state_root
            == Self::compute_state_root(
                spec,
                &self.heads,
                &self.finalized,
                &self.disputes_root,
                &self.headers_root(),
            )
    }

    /// The proof that header `index` of this block was included in it.
    pub fn header_inclusion(&self, spec: &Hash, index: usize) -> Option<HeaderInclusion> {
        let tree = MerkleTree::new(&self.headers.iter().map(|h| h.header.hash()).collect::<Vec<_>>());
        Some(HeaderInclusion {
            slot: self.slot,
            spec: *spec,
            heads_root: Self::heads_root(&self.heads, &self.finalized),
            disputes_root: self.disputes_root,
            proof: tree.proof(index)?,
        })
    }
}

/// A proof that a beacon block whose state root is known included a shard
/// header: the header hash's Merkle proof against the block's headers root,
/// and the other parts of its state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderInclusion {
    /// The beacon block's slot.
    pub slot: u64,
    /// The spec hash (part of the state root).
    pub spec: Hash,
    /// The heads-and-finality part of the state root.
    pub heads_root: Hash,
    /// The dispute part of the state root.
    pub disputes_root: Hash,
    /// The header hash's proof against the headers root.
    pub proof: crate::MerkleProof,
}

impl HeaderInclusion {
    /// Checks that the block with `state_root` included `header_hash`.
    pub fn verify(&self, state_root: &Hash, header_hash: &Hash) -> bool {
        self.proof.compute_root(header_hash).is_ok_and(|headers_root| {
            BeaconBlock::state_root_of(&self.spec, &self.heads_root, &self.disputes_root, &headers_root)
                == *state_root
        })
    }
}

impl Encode for BeaconBlock {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.encode_content(out);
        self.signature.encode_to(out);
    }
}

impl Decode for BeaconBlock {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(BeaconBlock {
            slot: u64::decode(input)?,
            parent: Hash::decode(input)?,
            headers: decode_list(input)?,
            heads: decode_list(input)?,
            finalized: decode_list(input)?,
            moves: decode_list(input)?,
            games: decode_list(input)?,
            invalidated: decode_list(input)?,
            disputes_root: Hash::decode(input)?,
            unbonded: decode_list(input)?,
            state_root: Hash::decode(input)?,
            signature: Signature::decode(input)?,
        })
    }
}
