//! A scenario's open-loop workload, the same on both tiers: arrivals at
//! `rate` a second from a seeded generator (a fractional carry between
//! slots), each a transfer, a bridge `send`, an ERC-20 transfer or a
//! `Store.sol` write, from the next seed-derived account of a random shard.

use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use bridge::BRIDGE_ADDRESS;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::WorkloadSpec;

// the workload's contracts: a minimal ERC-20 (the deployer holds the
// supply) and a store of values (testdata/contracts)
alloy_sol_types::sol! {
    function transfer(address to, uint256 value) external returns (bool);
    function set(uint256 key, uint256 value) external;
}

const TOKEN_BIN: &str = include_str!("../../../testdata/contracts/Token.bin");
const STORE_BIN: &str = include_str!("../../../testdata/contracts/Store.bin");

/// The accounts a scenario's users send from: derived from the seed.
pub fn accounts(seed: u64, n: u32) -> Vec<PrivateKeySigner> {
    (0..n)
        .map(|i| {
            let mut k = keccak256(
                [&b"optishard.scenario.account"[..], &seed.to_be_bytes(), &i.to_be_bytes()].concat(),
            );
            loop {
                if let Ok(signer) = PrivateKeySigner::from_bytes(&k) {
                    return signer;
                }
                k = keccak256(k);
            }
        })
        .collect()
}

/// One transaction a user sends (unsigned: the tier signs it with the
/// account's next nonce on its shard).
#[derive(Clone, Debug)]
pub struct Arrival {
    /// The shard it is sent to.
    pub shard: u32,
    /// The sending account's index.
    pub from: usize,
    /// Call target or create.
    pub to: TxKind,
    /// Value in wei.
    pub value: U256,
    /// Calldata or init code.
    pub data: Bytes,
    /// Gas limit.
    pub gas: u64,
}

/// The generator.
pub struct Workload {
    spec: WorkloadSpec,
    shards: u32,
    slot_ms: u64,
    /// Draws arrivals (and, on the sim tier, which validator takes each).
    pub rng: ChaCha8Rng,
    /// Arrivals a second now (the timeline's `load` changes it).
    pub rate: f64,
    carry: f64,
    next_account: Vec<usize>,
    tokens: Vec<Address>,
    store: Address,
}

impl Workload {
    /// The workload of `spec` over `shards`, seeded.
    pub fn new(spec: &WorkloadSpec, shards: u32, slot_ms: u64, seed: u64) -> Self {
        Workload {
            spec: spec.clone(),
            shards,
            slot_ms,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5ce2_a710),
            rate: spec.rate,
            carry: 0.0,
            next_account: vec![0; shards as usize],
            tokens: Vec::new(),
            store: Address::ZERO,
        }
    }

    /// The first slot's deployments, with ERC-20 or contract-call shares:
    /// every account deploys its own ERC-20 on every shard (its first
    /// nonce, so one address everywhere), and account 0 a store.
    /// `address(i)` is account `i`'s address.
    pub fn deployments(&mut self, address: impl Fn(usize) -> Address) -> Vec<Arrival> {
        let (erc20, calls) = (self.spec.erc20 > 0.0, self.spec.contract_calls > 0.0);
        let accounts = self.spec.accounts as usize;
        let code =
            |hex: &str| -> Vec<u8> { hex::decode(hex.trim()).expect("the vendored contracts are hex") };
        let mut out = Vec::new();
        for shard in 0..self.shards {
            if erc20 {
                for from in 0..accounts {
                    let supply = U256::from(10u64).pow(U256::from(30u64));
                    let init: Bytes = [code(TOKEN_BIN), supply.to_be_bytes::<32>().to_vec()].concat().into();
                    out.push(Arrival {
                        shard,
                        from,
                        to: TxKind::Create,
                        value: U256::ZERO,
                        data: init,
                        gas: 1_000_000,
                    });
                }
            }
            if calls {
                let data = code(STORE_BIN).into();
                out.push(Arrival {
                    shard,
                    from: 0,
                    to: TxKind::Create,
                    value: U256::ZERO,
                    data,
                    gas: 1_000_000,
                });
            }
        }
        if erc20 {
            self.tokens = (0..accounts).map(|a| address(a).create(0)).collect();
        }
        self.store = address(0).create(u64::from(erc20));
        out
    }

    /// The slot's arrivals.
    pub fn arrivals(&mut self) -> Vec<Arrival> {
        let due = self.rate * self.slot_ms as f64 / 1_000.0 + self.carry;
        let n = due.floor() as u64;
        self.carry = due - n as f64;
        (0..n).map(|_| self.arrival()).collect()
    }

    fn arrival(&mut self) -> Arrival {
        let accounts = self.spec.accounts as usize;
        let shard = self.rng.gen_range(0..self.shards);
        let from = self.next_account[shard as usize];
        self.next_account[shard as usize] = (from + 1) % accounts;
        let value = U256::from(self.rng.gen_range(1..1_000_000u64));
        if self.shards > 1 && self.rng.gen_bool(self.spec.cross_shard) {
            let dst = (shard + self.rng.gen_range(1..self.shards)) % self.shards;
            let to = Address::from(self.rng.r#gen::<[u8; 20]>());
            let data = prover::IBridge::sendCall { dstShard: dst, to, data: Bytes::new() }.abi_encode();
            return Arrival {
                shard,
                from,
                to: TxKind::Call(BRIDGE_ADDRESS),
                value,
                data: data.into(),
                gas: 300_000,
            };
        }
        if let Some((to, data)) = self.contract_call(from) {
            return Arrival {
                shard,
                from,
                to: TxKind::Call(to),
                value: U256::ZERO,
                data: data.into(),
                gas: 200_000,
            };
        }
        let to = Address::from(self.rng.r#gen::<[u8; 20]>());
        Arrival { shard, from, to: TxKind::Call(to), value, data: Bytes::new(), gas: 21_000 }
    }

    /// With ERC-20 or contract-call shares, whether this arrival (not a
    /// cross-shard send) is one: its target and calldata.
    fn contract_call(&mut self, from: usize) -> Option<(Address, Vec<u8>)> {
        let w = &self.spec;
        if w.erc20 + w.contract_calls <= 0.0 {
            return None;
        }
        // given it is no send, each share over what is left
        let u = self.rng.r#gen::<f64>() * (1.0 - w.cross_shard);
        let to = Address::from(self.rng.r#gen::<[u8; 20]>());
        if u < w.erc20 {
            let token = *self.tokens.get(from)?;
            Some((
                token,
                transferCall { to, value: U256::from(self.rng.gen_range(1..1_000u64)) }.abi_encode(),
            ))
        } else if u < w.erc20 + w.contract_calls {
            let key = U256::from(self.rng.gen_range(0..1_000u64));
            Some((
                self.store,
                setCall { key, value: U256::from(self.rng.gen_range(1..1_000u64)) }.abi_encode(),
            ))
        } else {
            None
        }
    }
}
