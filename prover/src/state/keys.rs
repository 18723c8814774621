//! What the authenticated map stores and how keys and values are laid out.

use alloy_primitives::{Address, B256, U256, keccak256};
use revm::primitives::KECCAK_EMPTY;
use revm::state::AccountInfo;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A key of the authenticated state map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StateKey {
    /// An account's nonce, balance and code hash.
    Account(Address),
    /// One storage slot of a contract.
    Storage(Address, U256),
    /// Bytecode by its keccak256 hash.
    Code(B256),
}

impl StateKey {
    /// The key's bytes before hashing: a tag, then the address / slot / hash.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            StateKey::Account(a) => [&[1u8][..], a.as_slice()].concat(),
            StateKey::Storage(a, s) => [&[2u8][..], a.as_slice(), &s.to_be_bytes::<32>()[..]].concat(),
            StateKey::Code(h) => [&[3u8][..], h.as_slice()].concat(),
        }
    }

    /// The key's position in the tree: blake3 of its bytes.
    pub fn key_hash(&self) -> jmt::KeyHash {
        jmt::KeyHash(*blake3::hash(&self.to_bytes()).as_bytes())
    }
}

impl std::fmt::Display for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateKey::Account(a) => write!(f, "account {a}"),
            StateKey::Storage(a, s) => write!(f, "storage {a}[{s:#x}]"),
            StateKey::Code(h) => write!(f, "code {h}"),
        }
    }
}

/// An account as the state map stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// Transactions sent (or contracts created, for a contract).
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// keccak256 of the code, [`KECCAK_EMPTY`] for none.
    pub code_hash: B256,
}

impl Default for AccountState {
    fn default() -> Self {
        AccountState { nonce: 0, balance: U256::ZERO, code_hash: KECCAK_EMPTY }
    }
}

impl AccountState {
    /// Encoded length: nonce (8) + balance (32) + code hash (32).
    pub const ENCODED_LEN: usize = 72;

    /// revm's view of the account (code is loaded separately, by hash).
    pub fn to_info(self) -> AccountInfo {
        AccountInfo {
            balance: self.balance,
            nonce: self.nonce,
            code_hash: self.code_hash,
            ..Default::default()
        }
    }

    /// The stored fields of revm's account.
    pub fn from_info(info: &AccountInfo) -> Self {
        AccountState { nonce: info.nonce, balance: info.balance, code_hash: info.code_hash }
    }

    /// Fixed-width big-endian encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::ENCODED_LEN);
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.balance.to_be_bytes::<32>());
        out.extend_from_slice(self.code_hash.as_slice());
        out
    }

    /// Decodes [`AccountState::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != Self::ENCODED_LEN {
            return Err(Error::Corrupt(format!("account value of {} bytes", bytes.len())));
        }
        Ok(AccountState {
            nonce: u64::from_be_bytes(bytes[..8].try_into().expect("length checked")),
            balance: U256::from_be_slice(&bytes[8..40]),
            code_hash: B256::from_slice(&bytes[40..72]),
        })
    }
}

/// Encodes a non-zero storage value (zero slots are absent from the map).
pub fn encode_slot(value: U256) -> Vec<u8> {
    value.to_be_bytes::<32>().to_vec()
}

/// Decodes a stored slot value.
pub fn decode_slot(bytes: &[u8]) -> Result<U256> {
    if bytes.len() != 32 {
        return Err(Error::Corrupt(format!("storage value of {} bytes", bytes.len())));
    }
    Ok(U256::from_be_slice(bytes))
}

/// Checks that `code` is the preimage of `hash`.
pub fn code_matches(hash: &B256, code: &[u8]) -> bool {
    &keccak256(code) == hash
}
