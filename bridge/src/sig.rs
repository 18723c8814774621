//! Validator keys and recoverable secp256k1 signatures: a validator is
//! identified by the Ethereum-style address of its key, and every signed
//! object carries a signature the verifier recovers that address from.

use std::fmt;

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, SECP256K1, SecretKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Address, Decode, DecodeError, Encode, Hash, hash_domain};

/// A signature that does not recover to an address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The recovery id byte is not 0 or 1.
    #[error("invalid recovery id {0}")]
    RecoveryId(u8),
    /// The `r`/`s` values are not a valid signature of the message.
    #[error("invalid signature: {0}")]
    Invalid(String),
    /// A secret key that is zero or not below the curve order.
    #[error("invalid secret key")]
    SecretKey,
}

/// A 65-byte recoverable ECDSA signature `r || s || v` (`v` is 0 or 1).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 65]);

impl Default for Signature {
    fn default() -> Self {
        Signature([0; 65])
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl Signature {
    /// The address whose key signed `message`.
    pub fn recover(&self, message: &Hash) -> Result<Address, SignatureError> {
        let v = self.0[64];
        let id = RecoveryId::try_from(i32::from(v)).map_err(|_| SignatureError::RecoveryId(v))?;
        let sig = RecoverableSignature::from_compact(&self.0[..64], id)
            .map_err(|e| SignatureError::Invalid(e.to_string()))?;
        let key = SECP256K1
            .recover_ecdsa(Message::from_digest(message.0), &sig)
            .map_err(|e| SignatureError::Invalid(e.to_string()))?;
        Ok(address_of(&key))
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(self.0)))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 65];
        hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(&s), &mut out)
            .map_err(|_| serde::de::Error::custom("expected 65-byte hex signature"))?;
        Ok(Signature(out))
    }
}

impl Encode for Signature {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Decode for Signature {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        <[u8; 65]>::decode(input).map(Signature)
    }
}

fn address_of(key: &secp256k1::PublicKey) -> Address {
    let raw = key.serialize_uncompressed();
    let h = alloy_primitives::keccak256(&raw[1..]);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[12..]);
    Address(a)
}

/// A validator's secp256k1 signing key.
#[derive(Clone)]
pub struct ValidatorKey {
    secret: SecretKey,
    address: Address,
}

impl fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValidatorKey({})", self.address)
    }
}

impl ValidatorKey {
    /// The key with these 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, SignatureError> {
        let secret = SecretKey::from_byte_array(bytes).map_err(|_| SignatureError::SecretKey)?;
        let address = address_of(&secret.public_key(SECP256K1));
        Ok(ValidatorKey { secret, address })
    }

    /// Parses a 32-byte hex secret (with or without `0x`).
    pub fn from_hex(s: &str) -> Result<Self, SignatureError> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s.trim().strip_prefix("0x").unwrap_or(s.trim()), &mut b)
            .map_err(|_| SignatureError::SecretKey)?;
        Self::from_bytes(b)
    }

    /// A key derived deterministically from `seed` (testnets and tests).
    pub fn derive(seed: &[u8]) -> Self {
        (0u32..)
            .find_map(|i| {
                let b = hash_domain(b"optishard.validator_key", &[seed, &i.to_be_bytes()]);
                Self::from_bytes(b.0).ok()
            })
            .expect("some counter yields a valid key")
    }

    /// The secret as hex (for key files).
    pub fn to_hex(&self) -> String {
        hex::encode(self.secret.secret_bytes())
    }

    /// The validator's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte message hash.
    pub fn sign(&self, message: &Hash) -> Signature {
        let sig = SECP256K1.sign_ecdsa_recoverable(Message::from_digest(message.0), &self.secret);
        let (id, rs) = sig.serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&rs);
        out[64] = i32::from(id) as u8;
        Signature(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_recover_the_signer_and_nothing_else() {
        let k = ValidatorKey::derive(b"a");
        let m = Hash::of(b"message");
        let sig = k.sign(&m);
        assert_eq!(sig.recover(&m).unwrap(), k.address());
        assert_ne!(sig.recover(&Hash::of(b"other")).ok(), Some(k.address()));
        let mut bad = sig;
        bad.0[64] = 7;
        assert!(bad.recover(&m).is_err());
        assert_eq!(ValidatorKey::from_hex(&k.to_hex()).unwrap().address(), k.address());
    }

    #[test]
    fn address_matches_ethereum_derivation() {
        // key 1's address is well known
        let mut b = [0u8; 32];
        b[31] = 1;
        let k = ValidatorKey::from_bytes(b).unwrap();
        assert_eq!(k.address().to_string(), "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf");
        assert!(ValidatorKey::from_bytes([0; 32]).is_err());
    }
}
