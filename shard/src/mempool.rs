//! Pending transactions, per sender in nonce order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alloy_consensus::Transaction;
use alloy_primitives::{Address, B256};
use prover::SignedTx;
use thiserror::Error;

/// Why the pool refused a transaction (messages as Ethereum nodes word them).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolError {
    /// The same transaction is already pending.
    #[error("already known")]
    AlreadyKnown,
    /// Same sender and nonce as a pending transaction, without a 10% fee bump.
    #[error(
        "replacement transaction underpriced: raise both fees by at least 10% to replace the pending one"
    )]
    ReplacementUnderpriced,
    /// The pool holds its maximum number of transactions.
    #[error("txpool is full: send again after the next blocks")]
    Full,
}

struct Entry {
    tx: Arc<SignedTx>,
    seq: u64,
}

/// The pool. Not synchronised: the node wraps it in a lock.
pub struct Mempool {
    by_sender: HashMap<Address, BTreeMap<u64, Entry>>,
    by_hash: HashMap<B256, (Address, u64)>,
    max_txs: usize,
    next_seq: u64,
}

impl Mempool {
    /// An empty pool holding at most `max_txs`.
    pub fn new(max_txs: usize) -> Self {
        Mempool { by_sender: HashMap::new(), by_hash: HashMap::new(), max_txs, next_seq: 0 }
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// A pending transaction by hash.
    pub fn get(&self, hash: &B256) -> Option<Arc<SignedTx>> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender.get(sender)?.get(nonce).map(|e| e.tx.clone())
    }

    /// Adds `tx` (already checked against the state by the caller).
    pub fn add(&mut self, tx: SignedTx) -> Result<(), PoolError> {
        if self.by_hash.contains_key(&tx.hash) {
            return Err(PoolError::AlreadyKnown);
        }
        let nonce = tx.envelope.nonce();
        let queue = self.by_sender.entry(tx.sender).or_default();
        if let Some(old) = queue.get(&nonce) {
            let old_fee = old.tx.envelope.max_fee_per_gas();
            let old_tip = old.tx.envelope.max_priority_fee_per_gas().unwrap_or(old_fee);
            let new_fee = tx.envelope.max_fee_per_gas();
            let new_tip = tx.envelope.max_priority_fee_per_gas().unwrap_or(new_fee);
            // fees are the sender's numbers: saturate rather than wrap
            let bumped = |new: u128, old: u128| new.saturating_mul(10) >= old.saturating_mul(11);
            if !bumped(new_fee, old_fee) || !bumped(new_tip, old_tip) {
                return Err(PoolError::ReplacementUnderpriced);
            }
            self.by_hash.remove(&old.tx.hash);
        } else if self.by_hash.len() >= self.max_txs {
            return Err(PoolError::Full);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_hash.insert(tx.hash, (tx.sender, nonce));
        queue.insert(nonce, Entry { tx: Arc::new(tx), seq });
        Ok(())
    }

    /// The nonce after `sender`'s gap-free run of pending transactions
    /// starting at `state_nonce` (`eth_getTransactionCount(.., "pending")`).
    pub fn pending_nonce(&self, sender: &Address, state_nonce: u64) -> u64 {
        let mut n = state_nonce;
        if let Some(q) = self.by_sender.get(sender) {
            while q.contains_key(&n) {
                n += 1;
            }
        }
        n
    }

    /// Transactions ready to execute, oldest sender first, each sender's in
    /// nonce order from its state nonce, up to `max_gas` of gas limits.
    pub fn select(
        &self,
        state_nonce: impl Fn(&Address) -> u64,
        max_gas: u64,
        max_txs: usize,
    ) -> Vec<Arc<SignedTx>> {
        let mut senders: Vec<(u64, &Address)> = self
            .by_sender
            .iter()
            .filter_map(|(a, q)| q.values().map(|e| e.seq).min().map(|s| (s, a)))
            .collect();
        senders.sort_unstable();
        let mut out = Vec::new();
        let mut gas = 0u64;
        for (_, sender) in senders {
            let q = &self.by_sender[sender];
            let mut n = state_nonce(sender);
            while let Some(e) = q.get(&n) {
                let g = e.tx.envelope.gas_limit();
                if gas.saturating_add(g) > max_gas || out.len() >= max_txs {
                    return out;
                }
                gas += g;
                out.push(e.tx.clone());
                n += 1;
            }
        }
        out
    }

    /// Drops `hash` from the pool.
    pub fn remove(&mut self, hash: &B256) {
        if let Some((sender, nonce)) = self.by_hash.remove(hash)
            && let Some(q) = self.by_sender.get_mut(&sender)
        {
            q.remove(&nonce);
            if q.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
    }

    /// Drops every transaction of `sender` below `state_nonce` (mined or replaced).
    pub fn prune_sender(&mut self, sender: &Address, state_nonce: u64) {
        if let Some(q) = self.by_sender.get_mut(sender) {
            let keep = q.split_off(&state_nonce);
            for e in q.values() {
                self.by_hash.remove(&e.tx.hash);
            }
            *q = keep;
            if q.is_empty() {
                self.by_sender.remove(sender);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_primitives::{Address, Bytes, TxKind, U256};
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;

    use super::*;

    fn tx(s: &PrivateKeySigner, nonce: u64, fee: u128) -> SignedTx {
        let t = TxEip1559 {
            chain_id: 1,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: fee,
            max_priority_fee_per_gas: fee / 2,
            to: TxKind::Call(Address::ZERO),
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::new(),
        };
        let sig = s.sign_hash_sync(&t.signature_hash()).unwrap();
        SignedTx::from_envelope(TxEnvelope::from(t.into_signed(sig))).unwrap()
    }

    #[test]
    fn selects_gap_free_runs_in_nonce_order_and_handles_replacement() {
        let (a, b) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let mut pool = Mempool::new(10);
        pool.add(tx(&a, 1, 100)).unwrap();
        pool.add(tx(&b, 0, 100)).unwrap();
        pool.add(tx(&a, 0, 100)).unwrap();
        pool.add(tx(&a, 3, 100)).unwrap(); // gap at 2
        assert_eq!(pool.add(tx(&a, 0, 100)), Err(PoolError::AlreadyKnown));
        assert_eq!(pool.add(tx(&a, 0, 105)), Err(PoolError::ReplacementUnderpriced));
        assert_eq!(pool.pending_nonce(&a.address(), 0), 2);
        let picked: Vec<(Address, u64)> =
            pool.select(|_| 0, u64::MAX, 100).iter().map(|t| (t.sender, t.envelope.nonce())).collect();
        // a's first transaction arrived first; the gapped nonce 3 waits
        assert_eq!(picked, vec![(a.address(), 0), (a.address(), 1), (b.address(), 0)]);
        assert_eq!(pool.select(|_| 0, 42_000, 100).len(), 2, "gas budget respected");
        pool.add(tx(&a, 0, 200)).unwrap(); // a 10%+ bump replaces
        assert_eq!(pool.len(), 4);
        pool.prune_sender(&a.address(), 2);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.pending_nonce(&a.address(), 2), 2);
    }

    #[test]
    fn full_pool_refuses() {
        let a = PrivateKeySigner::random();
        let mut pool = Mempool::new(2);
        pool.add(tx(&a, 0, 1)).unwrap();
        pool.add(tx(&a, 1, 1)).unwrap();
        assert_eq!(pool.add(tx(&a, 2, 1)), Err(PoolError::Full));
    }
}
