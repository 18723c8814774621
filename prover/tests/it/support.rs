use std::collections::BTreeMap;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use bridge::ShardId;
use prover::{AccountState, AuthState, BlockParams, Execution, Item, Mode, SignedTx, StateKey};

pub(crate) const CHAIN_ID: u64 = 7_000;
pub(crate) const BASE_FEE: u64 = 7;

pub(crate) fn store_bin() -> Bytes {
    let hex = include_str!("../../../testdata/contracts/Store.bin");
    Bytes::from(hex::decode(hex.trim()).unwrap())
}

pub(crate) fn pinger_bin() -> Bytes {
    let hex = include_str!("../../../testdata/contracts/Pinger.bin");
    Bytes::from(hex::decode(hex.trim()).unwrap())
}

pub(crate) fn signer(i: u8) -> PrivateKeySigner {
    let mut key = [0u8; 32];
    key[31] = i + 1;
    key[0] = 0x42;
    PrivateKeySigner::from_bytes(&B256::from(key)).unwrap()
}

pub(crate) fn sign_1559(
    s: &PrivateKeySigner,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas: u64,
) -> SignedTx {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 100,
        max_priority_fee_per_gas: 2,
        to,
        value,
        access_list: Default::default(),
        input,
    };
    let sig = s.sign_hash_sync(&tx.signature_hash()).unwrap();
    SignedTx::from_envelope(TxEnvelope::from(tx.into_signed(sig))).unwrap()
}

pub(crate) fn sign_legacy(s: &PrivateKeySigner, nonce: u64, to: Address, value: U256) -> SignedTx {
    let tx = TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce,
        gas_price: 50,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value,
        input: Bytes::new(),
    };
    let sig = s.sign_hash_sync(&tx.signature_hash()).unwrap();
    SignedTx::from_envelope(TxEnvelope::from(tx.into_signed(sig))).unwrap()
}

pub(crate) fn params(number: u64) -> BlockParams {
    BlockParams {
        shard: ShardId(0),
        shards: 4,
        chain_id: CHAIN_ID,
        number,
        timestamp: 1_700_000_000 + number,
        beneficiary: Address::repeat_byte(0xfe),
        gas_limit: 30_000_000,
        base_fee: BASE_FEE,
        prevrandao: B256::repeat_byte(9),
        fork: prover::SPEC,
    }
}

/// A chain over the in-memory state: genesis funds `n` signers.
pub(crate) struct Chain {
    pub(crate) state: AuthState,
    pub(crate) height: u64,
}

impl Chain {
    pub(crate) fn new(n: u8) -> Chain {
        let state = AuthState::in_memory();
        let mut c = prover::system_accounts();
        for i in 0..n {
            let a = AccountState { nonce: 0, balance: U256::from(10u128.pow(24)), ..Default::default() };
            c.insert(StateKey::Account(signer(i).address()), Some(a.encode()));
        }
        state.commit(0, &c).unwrap();
        Chain { state, height: 0 }
    }

    pub(crate) fn execute(&self, txs: Vec<SignedTx>, mode: Mode) -> Execution {
        self.execute_items(txs.into_iter().map(Item::Tx).collect(), mode).unwrap()
    }

    pub(crate) fn execute_items(&self, items: Vec<Item>, mode: Mode) -> prover::Result<Execution> {
        let reader = self.state.reader(self.height).unwrap().with_block_hashes(self.block_hashes());
        prover::execute_items(reader, &params(self.height + 1), items, mode)
    }

    pub(crate) fn block_hashes(&self) -> BTreeMap<u64, B256> {
        (0..=self.height).map(|h| (h, B256::repeat_byte(h as u8 + 1))).collect()
    }

    pub(crate) fn commit(&mut self, exec: &Execution) -> bridge::Hash {
        self.height += 1;
        self.state.commit(self.height, &exec.block_changes()).unwrap()
    }
}
