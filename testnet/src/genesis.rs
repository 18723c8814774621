//! A network's genesis from a handful of parameters: validator and beacon
//! keys derived from a seed, the chain spec with each shard's genesis
//! header hash, and the shard node settings every validator shares.

use std::path::PathBuf;

use bridge::{ChainSpec, ShardId, ValidatorInfo, ValidatorKey};
use serde::{Deserialize, Serialize};
use shard::{GenesisAccount, ShardConfig, dev_accounts};

/// What a network is made of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkParams {
    /// Number of shards.
    pub shards: u32,
    /// Validators per shard.
    pub validators_per_shard: u32,
    /// Slot length in milliseconds.
    pub slot_ms: u64,
    /// Seed of keys and the proposer schedule.
    pub seed: u64,
    /// Chain id of shard 0.
    pub chain_id_base: u64,
    /// Gas limit of every shard block.
    pub block_gas_limit: u64,
    /// Bond of every genesis validator, in gwei.
    pub bond_gwei: u64,
    /// Accounts funded on every shard (the dev mnemonic's ten when empty).
    pub accounts: Vec<GenesisAccount>,
    /// Challenge window in slots (0: one day of slots).
    pub challenge_window_slots: u64,
    /// Standalone bonded challengers in the genesis registry.
    pub challengers: u32,
    /// Sections per dispute round (`k`).
    pub dispute_k: u64,
    /// Each side's chess clock in one run of a game, in slots (0: the window over twice the validators a shard has).
    pub game_clock_slots: u64,
}

impl Default for NetworkParams {
    fn default() -> Self {
        NetworkParams {
            shards: 4,
            validators_per_shard: 2,
            slot_ms: 500,
            seed: 1,
            chain_id_base: shard::DEFAULT_CHAIN_ID_BASE,
            block_gas_limit: 100_000_000,
            bond_gwei: 32_000_000_000,
            accounts: Vec::new(),
            challenge_window_slots: 240,
            challengers: 1,
            dispute_k: 4,
            game_clock_slots: 0,
        }
    }
}

/// A generated genesis.
pub struct Genesis {
    /// The spec every node loads.
    pub spec: ChainSpec,
    /// The beacon's key.
    pub beacon_key: ValidatorKey,
    /// Every validator's key with its shard, shard by shard.
    pub validators: Vec<(ShardId, ValidatorKey)>,
    /// Every standalone challenger's key.
    pub challengers: Vec<ValidatorKey>,
}

impl NetworkParams {
    /// Rejects parameters no network can run with.
    pub fn validate(&self) -> Result<(), String> {
        if self.shards == 0 || self.shards > 64 {
            return Err("shards must be 1..=64".into());
        }
        if self.validators_per_shard == 0 || self.validators_per_shard > 32 {
            return Err("validators_per_shard must be 1..=32".into());
        }
        if self.challengers > 64 {
            return Err("challengers must be at most 64".into());
        }
        if !(2..=bridge::MAX_DISPUTE_K).contains(&self.dispute_k) {
            return Err(format!("dispute_k must be 2..={}", bridge::MAX_DISPUTE_K));
        }
        if self.slot_ms < 50 {
            return Err("slot_ms must be at least 50".into());
        }
        if self.block_gas_limit < 21_000 {
            return Err("block_gas_limit must be at least 21000".into());
        }
        if self.shards > 1 && self.block_gas_limit < bridge::MAX_MESSAGE_GAS {
            return Err(format!(
                "block_gas_limit must be at least {} (a message's largest destination gas) when shards exchange messages",
                bridge::MAX_MESSAGE_GAS
            ));
        }
        Ok(())
    }

    /// The shard settings every validator of `shard` shares (genesis
    /// accounts, time and gas limit decide the genesis header).
    pub fn shard_config(&self, shard: ShardId, genesis_time_ms: u64) -> ShardConfig {
        ShardConfig {
            shard,
            chain_id_base: self.chain_id_base,
            shards: self.shards,
            block_gas_limit: self.block_gas_limit,
            genesis: self.funded_accounts(),
            genesis_timestamp: Some(genesis_time_ms / 1000),
            datadir: PathBuf::new(),
            ..ShardConfig::default()
        }
    }

    fn funded_accounts(&self) -> Vec<GenesisAccount> {
        if self.accounts.is_empty() {
            dev_accounts().into_iter().map(|(_, a)| a).collect()
        } else {
            self.accounts.clone()
        }
    }

    /// Derives keys and computes the spec (starting at `genesis_time_ms`).
    pub fn genesis(&self, genesis_time_ms: u64) -> Result<Genesis, String> {
        self.validate()?;
        let seed = self.seed.to_be_bytes();
        let beacon_key = ValidatorKey::derive(&[&b"beacon"[..], &seed].concat());
        let mut validators = Vec::new();
        for s in 0..self.shards {
            for i in 0..self.validators_per_shard {
                let k = ValidatorKey::derive(
                    &[&b"validator"[..], &seed, &s.to_be_bytes(), &i.to_be_bytes()].concat(),
                );
                validators.push((ShardId(s), k));
            }
        }
        let challengers: Vec<ValidatorKey> = (0..self.challengers)
            .map(|i| ValidatorKey::derive(&[&b"challenger"[..], &seed, &i.to_be_bytes()].concat()))
            .collect();
        let shard_genesis = (0..self.shards)
            .map(|s| {
                shard::genesis_header(&self.shard_config(ShardId(s), genesis_time_ms))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, String>>()?;
        let spec = ChainSpec {
            genesis_time_ms,
            slot_ms: self.slot_ms,
            shards: self.shards,
            chain_id_base: self.chain_id_base,
            seed: bridge::hash_domain(b"optishard.schedule_seed", &[&seed]),
            validators: validators
                .iter()
                .map(|(s, k)| ValidatorInfo { address: k.address(), shard: *s, bond_gwei: self.bond_gwei })
                .collect(),
            shard_genesis,
            beacon: beacon_key.address(),
            challenge_window_slots: self.challenge_window_slots,
            dispute_k: self.dispute_k,
            game_clock_slots: self.game_clock_slots,
            stf_version: bridge::STF_VERSION,
            challengers: challengers
                .iter()
                .map(|k| bridge::ChallengerInfo { address: k.address(), bond_gwei: self.bond_gwei })
                .collect(),
            dispute_stake_gwei: self.bond_gwei / 4,
            slash_reward_percent: 50,
        };
        spec.validate()?;
        Ok(Genesis { spec, beacon_key, validators, challengers })
    }
}

/// A signed EIP-1559 transfer of `value` wei (what demos and tests send).
pub fn sign_transfer(
    signer: &alloy_signer_local::PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    to: alloy_primitives::Address,
    value: u64,
) -> alloy_primitives::Bytes {
    sign_call(
        signer,
        chain_id,
        nonce,
        alloy_primitives::TxKind::Call(to),
        alloy_primitives::U256::from(value),
        alloy_primitives::Bytes::new(),
        21_000,
    )
}

/// A signed EIP-1559 transaction: a call (or a creation) with `value` wei
/// and `input`, at most `gas_limit` gas, paying up to 20 gwei per gas.
pub fn sign_call(
    signer: &alloy_signer_local::PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    to: alloy_primitives::TxKind,
    value: alloy_primitives::U256,
    input: alloy_primitives::Bytes,
    gas_limit: u64,
) -> alloy_primitives::Bytes {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_signer::SignerSync;
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        value,
        access_list: Default::default(),
        input,
    };
    let sig = signer.sign_hash_sync(&tx.signature_hash()).expect("signing succeeds");
    TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into()
}
