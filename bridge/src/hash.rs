use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Decode, DecodeError, Encode};

/// A 32-byte blake3 digest; the protocol's one hash.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash, used as "nothing" (e.g. the parent of genesis).
    pub const ZERO: Hash = Hash([0; 32]);

    /// blake3 of `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(*blake3::hash(data).as_bytes())
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `0x`-prefixed or bare hex.
    pub fn from_hex(s: &str) -> Option<Hash> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Hash(out))
    }
}

/// blake3 over `domain` then each part, so hashes of different kinds never collide.
pub fn hash_domain(domain: &[u8], parts: &[&[u8]]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&(domain.len() as u32).to_be_bytes());
    h.update(domain);
    for p in parts {
        h.update(p);
    }
    Hash(*h.finalize().as_bytes())
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl From<[u8; 32]> for Hash {
    fn from(b: [u8; 32]) -> Self {
        Hash(b)
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 32-byte hex hash"))
    }
}

impl Encode for Hash {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Decode for Hash {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        <[u8; 32]>::decode(input).map(Hash)
    }
}

/// Identifies a shard chain; a shard's Ethereum chain id is a base id plus this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Encode for ShardId {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.0.encode_to(out)
    }
}

impl Decode for ShardId {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        u32::decode(input).map(ShardId)
    }
}
