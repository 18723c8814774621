use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Decode, DecodeError, Encode, Hash, ShardId, hash_domain};

/// A 20-byte Ethereum account address.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 20];
        hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(&s), &mut out)
            .map_err(|_| serde::de::Error::custom("expected 20-byte hex address"))?;
        Ok(Address(out))
    }
}

impl Encode for Address {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Decode for Address {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        <[u8; 20]>::decode(input).map(Address)
    }
}

/// The header of shard block `(shard, height)`: everything the beacon orders
/// and a dispute can be opened against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHeader {
    /// The shard this block belongs to.
    pub shard: ShardId,
    /// Height; genesis is 0.
    pub height: u64,
    /// Hash of the parent header ([`Hash::ZERO`] for genesis).
    pub parent_hash: Hash,
    /// The beacon slot this block builds on.
    pub beacon_slot: u64,
    /// Unix time in seconds.
    pub timestamp: u64,
    /// The account that proposed the block and receives its fees.
    pub proposer: Address,
    /// State root before the first item (the parent's `post_state_root`).
    pub pre_state_root: Hash,
    /// Merkle root of the block's items (inbox messages, then transactions).
    pub items_root: Hash,
    /// State root after the last item.
    pub post_state_root: Hash,
    /// Merkle root of the messages this block sends to other shards.
    pub outbox_root: Hash,
    /// Merkle root of the items' receipts.
    pub receipts_root: Hash,
    /// The trace commitment `c_n` after the last item (see [`crate::TraceCommitment`]).
    pub trace_root: Hash,
    /// Gas used by all items.
    pub gas_used: u64,
    /// Gas limit of the block.
    pub gas_limit: u64,
    /// EIP-1559 base fee per gas, in wei.
    pub base_fee: u64,
}

impl ShardHeader {
    /// The header's identity: blake3 of its canonical encoding.
    pub fn hash(&self) -> Hash {
        hash_domain(b"optishard.shard_header", &[&self.encode()])
    }
}

impl Encode for ShardHeader {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.shard.encode_to(out);
        self.height.encode_to(out);
        self.parent_hash.encode_to(out);
        self.beacon_slot.encode_to(out);
        self.timestamp.encode_to(out);
        self.proposer.encode_to(out);
        self.pre_state_root.encode_to(out);
        self.items_root.encode_to(out);
        self.post_state_root.encode_to(out);
        self.outbox_root.encode_to(out);
        self.receipts_root.encode_to(out);
        self.trace_root.encode_to(out);
        self.gas_used.encode_to(out);
        self.gas_limit.encode_to(out);
        self.base_fee.encode_to(out);
    }
}

impl Decode for ShardHeader {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(ShardHeader {
            shard: ShardId::decode(input)?,
            height: u64::decode(input)?,
            parent_hash: Hash::decode(input)?,
            beacon_slot: u64::decode(input)?,
            timestamp: u64::decode(input)?,
            proposer: Address::decode(input)?,
            pre_state_root: Hash::decode(input)?,
            items_root: Hash::decode(input)?,
            post_state_root: Hash::decode(input)?,
            outbox_root: Hash::decode(input)?,
            receipts_root: Hash::decode(input)?,
            trace_root: Hash::decode(input)?,
            gas_used: u64::decode(input)?,
            gas_limit: u64::decode(input)?,
            base_fee: u64::decode(input)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_exact;

    #[test]
    fn header_round_trips_and_every_field_changes_the_hash() {
        let h = ShardHeader {
            shard: ShardId(3),
            height: 9,
            parent_hash: Hash::of(b"p"),
            beacon_slot: 4,
            timestamp: 1_700_000_000,
            proposer: Address([7; 20]),
            pre_state_root: Hash::of(b"a"),
            items_root: Hash::of(b"b"),
            post_state_root: Hash::of(b"c"),
            outbox_root: Hash::of(b"d"),
            receipts_root: Hash::of(b"e"),
            trace_root: Hash::of(b"f"),
            gas_used: 21_000,
            gas_limit: 30_000_000,
            base_fee: 7,
        };
        assert_eq!(decode_exact::<ShardHeader>(&h.encode()).unwrap(), h);
        let mut g = h.clone();
        g.trace_root = Hash::of(b"g");
        assert_ne!(g.hash(), h.hash());
        let mut g = h.clone();
        g.shard = ShardId(4);
        assert_ne!(g.hash(), h.hash());
    }
}
