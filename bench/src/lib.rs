//! `bench` — workloads and measurements: criterion benches (`benches/`), the
//! node-path-versus-minimal-loop comparison and the JSON-RPC load generator
//! (`optishard-bench`).
//!
//! Where to start: [`Workload`] makes signed transactions the same way for
//! every measurement, so figures compare like with like.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use bridge::ShardId;
use prover::{AccountState, AuthState, BlockParams, StateKey};
use rayon::prelude::*;

/// The compiled ERC-20 used by the token workloads (constructor takes the supply).
pub fn token_bin(supply: U256) -> Bytes {
    let hex = include_str!("../../testdata/contracts/Token.bin");
    let mut code = hex::decode(hex.trim()).expect("committed bytecode is hex");
    code.extend_from_slice(&supply.to_be_bytes::<32>());
    Bytes::from(code)
}

/// Calldata of `transfer(to, value)`.
pub fn token_transfer_call(to: Address, value: U256) -> Bytes {
    let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
    data.extend_from_slice(&[0u8; 12]);
    data.extend_from_slice(to.as_slice());
    data.extend_from_slice(&value.to_be_bytes::<32>());
    Bytes::from(data)
}

/// A fresh recipient per (sender, nonce), clear of the precompile addresses.
fn recipient(sender: usize, nonce: u64) -> Address {
    Address::left_padding_from(&(1u64 << 62 | (sender as u64) << 40 | nonce).to_be_bytes())
}

/// Signs transactions for a set of senders on one chain.
pub struct Workload {
    /// Chain id to sign for.
    pub chain_id: u64,
    /// The senders.
    pub signers: Vec<PrivateKeySigner>,
    /// Max fee per gas of every transaction.
    pub max_fee_per_gas: u128,
}

impl Workload {
    /// `n` deterministic senders (keys 1..=n).
    pub fn new(chain_id: u64, n: usize) -> Self {
        let signers = (1..=n as u64)
            .map(|i| {
                let mut k = [0u8; 32];
                k[24..].copy_from_slice(&i.to_be_bytes());
                k[0] = 0x5a;
                PrivateKeySigner::from_slice(&k).expect("valid key")
            })
            .collect();
        Workload { chain_id, signers, max_fee_per_gas: 100_000_000_000 }
    }

    /// The ten dev-mnemonic accounts as senders.
    pub fn dev(chain_id: u64) -> Self {
        let signers = shard::dev_accounts().into_iter().map(|(s, _)| s).collect();
        Workload { chain_id, signers, max_fee_per_gas: 100_000_000_000 }
    }

    /// Addresses of the senders.
    pub fn addresses(&self) -> Vec<Address> {
        self.signers.iter().map(|s| s.address()).collect()
    }

    /// One signed EIP-1559 transaction, EIP-2718 encoded.
    pub fn sign(&self, sender: usize, nonce: u64, to: TxKind, value: U256, input: Bytes, gas: u64) -> Bytes {
        let tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: 1_000_000_000,
            to,
            value,
            access_list: Default::default(),
            input,
        };
        let sig = self.signers[sender].sign_hash_sync(&tx.signature_hash()).expect("signing succeeds");
        Bytes::from(TxEnvelope::from(tx.into_signed(sig)).encoded_2718())
    }

    /// (sender, nonce) pairs, interleaved by sender.
    fn jobs(&self, per_sender: u64, first_nonce: u64) -> Vec<(usize, u64)> {
        (0..per_sender).flat_map(|k| (0..self.signers.len()).map(move |s| (s, first_nonce + k))).collect()
    }

    /// `per_sender` ETH transfers from every sender (nonces from `first_nonce`),
    /// interleaved by sender, to fresh recipients.
    pub fn transfers(&self, per_sender: u64, first_nonce: u64) -> Vec<Bytes> {
        self.jobs(per_sender, first_nonce)
            .par_iter()
            .map(|&(s, n)| {
                let to = recipient(s, n);
                self.sign(s, n, TxKind::Call(to), U256::from(1), Bytes::new(), 21_000)
            })
            .collect()
    }

    /// `per_sender` ERC-20 transfers from every sender on `token`.
    pub fn token_transfers(&self, token: Address, per_sender: u64, first_nonce: u64) -> Vec<Bytes> {
        self.jobs(per_sender, first_nonce)
            .par_iter()
            .map(|&(s, n)| {
                let to = recipient(s, n);
                self.sign(
                    s,
                    n,
                    TxKind::Call(token),
                    U256::ZERO,
                    token_transfer_call(to, U256::from(1)),
                    100_000,
                )
            })
            .collect()
    }
}

/// Block parameters every benchmark uses (chain 31337, 1 gwei base fee, no gas cap).
pub fn params(number: u64) -> BlockParams {
    BlockParams {
        shard: ShardId(0),
        shards: 1,
        chain_id: 31_337,
        number,
        timestamp: 1_700_000_000 + number,
        beneficiary: Address::repeat_byte(0xfe),
        gas_limit: u64::MAX / 2,
        base_fee: 1_000_000_000,
        prevrandao: B256::ZERO,
        fork: prover::SPEC,
    }
}

/// Commits genesis version 0 of `state`, funding `addrs` generously.
pub fn fund(state: &AuthState, addrs: &[Address]) -> prover::Result<()> {
    let mut c = prover::system_accounts();
    for a in addrs {
        let acct = AccountState { balance: U256::from(10u128.pow(30)), ..Default::default() };
        c.insert(StateKey::Account(*a), Some(acct.encode()));
    }
    state.commit(0, &c)?;
    Ok(())
}
