//! Signed Ethereum transactions: decoding, signer recovery, and the mapping
//! to revm's transaction environment.

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, B256, Bytes};
use rayon::prelude::*;
use revm::context::TxEnv;
use thiserror::Error;

/// Why raw bytes are not an acceptable signed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TxDecodeError {
    /// Not a valid EIP-2718 envelope.
    #[error("rlp: {0}")]
    Rlp(String),
    /// Bytes after the transaction.
    #[error("rlp: {0} trailing bytes after transaction")]
    Trailing(usize),
    /// A type the shard does not execute (blob and set-code transactions).
    #[error(
        "transaction type {0} not supported: shards execute legacy (EIP-155), EIP-2930 and EIP-1559 transactions"
    )]
    UnsupportedType(u8),
    /// A legacy transaction without EIP-155 replay protection.
    #[error("only replay-protected (EIP-155) transactions allowed over RPC: sign with the shard's chain id")]
    NotReplayProtected,
    /// The signature does not recover to a signer.
    #[error("invalid sender: {0}")]
    BadSignature(String),
    /// Longer than [`MAX_TX_BYTES`].
    #[error("transaction of {0} bytes exceeds the limit of {MAX_TX_BYTES}")]
    TooLarge(usize),
}

/// The largest encoded transaction a shard admits or executes (what its
/// gossip topic carries). Together with [`crate::exec::WITNESS_BUDGET`] it
/// bounds every single step, so an honest defender can always post one.
pub const MAX_TX_BYTES: usize = 128 << 10;

/// A transaction with its recovered signer, hash and original bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// The decoded envelope.
    pub envelope: TxEnvelope,
    /// The recovered signer.
    pub sender: Address,
    /// keccak256 of the EIP-2718 encoding (the Ethereum transaction hash).
    pub hash: B256,
    /// The EIP-2718 encoding as received.
    pub raw: Bytes,
}

impl SignedTx {
    /// Decodes EIP-2718 bytes and recovers the signer.
    pub fn decode(raw: &[u8]) -> Result<Self, TxDecodeError> {
        if raw.len() > MAX_TX_BYTES {
            return Err(TxDecodeError::TooLarge(raw.len()));
        }
        let mut buf = raw;
        let envelope = TxEnvelope::decode_2718(&mut buf).map_err(|e| TxDecodeError::Rlp(e.to_string()))?;
        if !buf.is_empty() {
            return Err(TxDecodeError::Trailing(buf.len()));
        }
        Self::check_type(&envelope)?;
        let sender = envelope.recover_signer().map_err(|e| TxDecodeError::BadSignature(e.to_string()))?;
        // the hash of the canonical encoding we just decoded is the hash of `raw`
        let hash = alloy_primitives::keccak256(raw);
        Ok(SignedTx { envelope, sender, hash, raw: Bytes::copy_from_slice(raw) })
    }

    fn check_type(envelope: &TxEnvelope) -> Result<(), TxDecodeError> {
        match envelope {
            TxEnvelope::Legacy(tx) if tx.tx().chain_id.is_none() => Err(TxDecodeError::NotReplayProtected),
            TxEnvelope::Legacy(_) | TxEnvelope::Eip2930(_) | TxEnvelope::Eip1559(_) => Ok(()),
            other => Err(TxDecodeError::UnsupportedType(other.tx_type() as u8)),
        }
    }

    /// Recovers the signer of an already decoded envelope.
    pub fn from_envelope(envelope: TxEnvelope) -> Result<Self, TxDecodeError> {
        Self::check_type(&envelope)?;
        let raw = Bytes::from(envelope.encoded_2718());
        if raw.len() > MAX_TX_BYTES {
            return Err(TxDecodeError::TooLarge(raw.len()));
        }
        let sender = envelope.recover_signer().map_err(|e| TxDecodeError::BadSignature(e.to_string()))?;
        let hash = *envelope.tx_hash();
        Ok(SignedTx { envelope, sender, hash, raw })
    }

    /// revm's view of the transaction.
    pub fn tx_env(&self) -> TxEnv {
        let tx = &self.envelope;
        TxEnv {
            tx_type: tx.tx_type() as u8,
            caller: self.sender,
            gas_limit: tx.gas_limit(),
            gas_price: tx.max_fee_per_gas(),
            kind: tx.kind(),
            value: tx.value(),
            data: tx.input().clone(),
            nonce: tx.nonce(),
            chain_id: tx.chain_id(),
            access_list: tx.access_list().cloned().unwrap_or_default(),
            gas_priority_fee: tx.max_priority_fee_per_gas(),
            ..Default::default()
        }
    }

    /// Leaf hash of this item in the block's items tree.
    pub fn item_hash(&self) -> bridge::Hash {
        bridge::tx_item_hash(&self.raw)
    }
}

/// Decodes and recovers many transactions in parallel (recovery dominates
/// a transfer's cost), keeping their order.
pub fn recover_all(raws: &[Bytes]) -> Vec<Result<SignedTx, TxDecodeError>> {
    raws.par_iter().map(|r| SignedTx::decode(r)).collect()
}
