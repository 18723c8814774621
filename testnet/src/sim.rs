//! The deterministic tier: a whole cluster (beacon and every validator) in
//! one process on the in-memory network and a virtual slot clock. Each
//! slot runs in a fixed order and every message is delivered in the order
//! it was sent, so one seed always yields byte-identical chains.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy_primitives::{Address, Bytes};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context, Result};
use beacon::{BeaconChain, BeaconDb, BeaconMetrics, BeaconService};
use bridge::{ChainSpec, Encode, ShardId, ValidatorKey};
use net::{MemHub, MemNetwork, NetEvent, Network, PeerId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shard::{ShardNode, Validator};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::genesis::NetworkParams;

/// Builds a [`Testnet`].
#[derive(Clone, Debug)]
pub struct TestnetBuilder {
    params: NetworkParams,
    txs_per_slot: usize,
    signers: Option<Vec<PrivateKeySigner>>,
}

impl TestnetBuilder {
    /// Number of shards.
    pub fn shards(mut self, n: u32) -> Self {
        self.params.shards = n;
        self
    }
    /// Validators per shard.
    pub fn validators_per_shard(mut self, n: u32) -> Self {
        self.params.validators_per_shard = n;
        self
    }
    /// Seed of keys, schedule and workload.
    pub fn seed(mut self, seed: u64) -> Self {
        self.params.seed = seed;
        self
    }
    /// Slots a header can be challenged after its inclusion.
    pub fn challenge_window_slots(mut self, n: u64) -> Self {
        self.params.challenge_window_slots = n;
        self
    }
    /// Every network parameter at once (a scenario's network).
    pub fn params(mut self, params: NetworkParams) -> Self {
        self.params = params;
        self
    }
    /// The accounts users send from, each funded with 10^6 ether on every
    /// shard (default: the dev mnemonic's ten).
    pub fn signers(mut self, signers: Vec<PrivateKeySigner>) -> Self {
        let balance = alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(24u64));
        self.params.accounts =
            signers.iter().map(|k| shard::GenesisAccount { address: k.address(), balance }).collect();
        self.signers = Some(signers);
        self
    }
    /// Random transfers submitted per shard per slot (to random validators).
    pub fn txs_per_slot(mut self, n: usize) -> Self {
        self.txs_per_slot = n;
        self
    }

    /// Creates the cluster with its databases under `dir`.
    pub fn build(self, dir: &Path) -> Result<Testnet> {
        // a fixed genesis time: the virtual clock starts there
        let genesis_time_ms = 1_700_000_000_000;
        let g = self.params.genesis(genesis_time_ms).map_err(anyhow::Error::msg)?;
        let hub = MemHub::with_seed(self.params.seed);
        let (beacon_net, beacon_rx) = hub.join(0);
        let db = BeaconDb::open(&dir.join("beacon"), false)?;
        let chain = Arc::new(BeaconChain::open(g.spec.clone(), db, g.beacon_key.clone())?);
        let beacon_key = g.beacon_key.clone();
        let beacon = BeaconService::new(chain, beacon_net.clone(), BeaconMetrics::default());
        let mut validators = Vec::new();
        for (i, (s, key)) in g.validators.iter().enumerate() {
            let datadir = dir.join(format!("shard{}-v{i}", s.0));
            let (net, rx) = hub.join(1 + i as u64);
            let v = SimValidator { key: key.clone(), shard: *s, datadir, net, rx, v: None };
            validators.push(v);
        }
        let signers = match self.signers {
            Some(s) => s,
            None => shard::dev_accounts().into_iter().map(|(k, _)| k).collect(),
        };
        let mut t = Testnet {
            params: self.params.clone(),
            spec: g.spec,
            hub,
            beacon,
            beacon_net,
            beacon_key,
            beacon_rx,
            validators,
            rng: ChaCha8Rng::seed_from_u64(self.params.seed),
            slot: 0,
            txs_per_slot: self.txs_per_slot,
            signers,
            nonces: Default::default(),
            faults: Default::default(),
            no_challenger: Default::default(),
            level_one_limit: bridge::MAX_STEP_BYTES,
            beacon_down: false,
        };
        for i in 0..t.validators.len() {
            t.start(i)?;
        }
        t.pump();
        Ok(t)
    }
}

struct SimValidator {
    key: ValidatorKey,
    shard: ShardId,
    datadir: PathBuf,
    net: MemNetwork,
    rx: UnboundedReceiver<NetEvent>,
    v: Option<Validator<MemNetwork>>,
}

/// Where [`Testnet::step_with`]'s hook is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Before validator `i` acts in the slot.
    Before(usize),
    /// After validator `i` acted, before what it sent is delivered.
    After(usize),
}

/// A cluster in one process, stepped slot by slot.
pub struct Testnet {
    params: NetworkParams,
    spec: ChainSpec,
    hub: MemHub,
    beacon: BeaconService<MemNetwork>,
    beacon_net: MemNetwork,
    beacon_key: ValidatorKey,
    beacon_rx: UnboundedReceiver<NetEvent>,
    validators: Vec<SimValidator>,
    rng: ChaCha8Rng,
    slot: u64,
    txs_per_slot: usize,
    signers: Vec<PrivateKeySigner>,
    nonces: std::collections::HashMap<(u32, usize), u64>,
    /// Faults validators play (kept across their restarts).
    faults: std::collections::HashMap<usize, (shard::Fault, u8)>,
    /// Validators whose challenger is off.
    no_challenger: std::collections::HashSet<usize>,
    /// Every agent's `level_one_limit` (see `shard::AgentMode`).
    level_one_limit: usize,
    /// Whether the beacon is down (crashed, not restarted yet).
    beacon_down: bool,
}

/// A member of the cluster, for cutting links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Member {
    /// The beacon.
    Beacon,
    /// Validator `i`.
    Validator(usize),
}

impl Testnet {
    /// A builder with 4 shards × 2 validators, seed 1, 20 transfers per shard per slot.
    pub fn builder() -> TestnetBuilder {
        TestnetBuilder {
            params: NetworkParams { slot_ms: 500, ..NetworkParams::default() },
            txs_per_slot: 20,
            signers: None,
        }
    }

    /// The spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The current slot.
    pub fn slot(&self) -> u64 {
        self.slot
    }

    /// The beacon chain.
    pub fn beacon(&self) -> &Arc<BeaconChain> {
        self.beacon.chain()
    }

    /// Number of validators (indexes are shard by shard).
    pub fn validator_count(&self) -> usize {
        self.validators.len()
    }

    /// Validator `i`'s shard and address.
    pub fn validator_info(&self, i: usize) -> (ShardId, bridge::Address) {
        (self.validators[i].shard, self.validators[i].key.address())
    }

    /// Validator `i`'s node, if it is running.
    pub fn node(&self, i: usize) -> Option<&Arc<ShardNode>> {
        self.validators[i].v.as_ref().map(|v| v.node())
    }

    /// Validator `i`'s signing key (tests play a byzantine validator with it).
    pub fn validator_key(&self, i: usize) -> &ValidatorKey {
        &self.validators[i].key
    }

    /// Validator `i`'s network handle (to send as that validator).
    pub fn validator_net(&self, i: usize) -> &MemNetwork {
        &self.validators[i].net
    }

    /// Validator `i`'s status (as its RPC shows it).
    pub fn validator_status(&self, i: usize) -> Option<shard::ValidatorStatus> {
        self.validators[i].v.as_ref().map(|v| v.status().read().clone())
    }

    /// The beacon's network handle.
    pub fn beacon_net(&self) -> &MemNetwork {
        &self.beacon_net
    }

    /// Validator `i`'s peer id.
    pub fn peer(&self, i: usize) -> PeerId {
        self.validators[i].net.local_peer()
    }

    /// Validator `i`'s score of `peer`.
    pub fn peer_score(&self, i: usize, peer: &PeerId) -> Option<f64> {
        self.validators[i].net.peer_score(peer)
    }

    /// The beacon's score of `peer`.
    pub fn beacon_peer_score(&self, peer: &PeerId) -> Option<f64> {
        self.beacon_net.peer_score(peer)
    }

    /// The hub (to add rogue peers in tests).
    pub fn hub(&self) -> &MemHub {
        &self.hub
    }

    fn start(&mut self, i: usize) -> Result<()> {
        let sv = &mut self.validators[i];
        let mut cfg = self.params.shard_config(sv.shard, self.spec.genesis_time_ms);
        cfg.datadir = sv.datadir.clone();
        let node = ShardNode::open(cfg)?;
        let (fault, rate) = self.faults.get(&i).copied().unzip();
        node.set_fault(fault, rate.unwrap_or(0));
        let mut v = Validator::new(node, sv.net.clone(), self.spec.clone(), Some(sv.key.clone()))?;
        v.set_challenger(!self.no_challenger.contains(&i));
        v.set_level_one_limit(self.level_one_limit);
        sv.v = Some(v);
        Ok(())
    }

    /// Makes validator `i` play `fault` at every chance (`None`: honest again).
    pub fn set_fault(&mut self, i: usize, fault: Option<shard::Fault>) {
        self.set_fault_rate(i, fault, 100);
    }

    /// Makes validator `i` play `fault` at `rate_percent` of its chances.
    pub fn set_fault_rate(&mut self, i: usize, fault: Option<shard::Fault>, rate_percent: u8) {
        match fault {
            Some(f) => self.faults.insert(i, (f, rate_percent)),
            None => self.faults.remove(&i),
        };
        if let Some(n) = self.node(i) {
            n.set_fault(fault, rate_percent);
        }
    }

    /// Makes every agent decide a pinned item in its own trace (level 2)
    /// when its whole-item step is over `bytes` (0: always).
    pub fn set_level_one_limit(&mut self, bytes: usize) {
        self.level_one_limit = bytes;
        for sv in &mut self.validators {
            if let Some(v) = sv.v.as_mut() {
                v.set_level_one_limit(bytes);
            }
        }
    }

    /// Turns validator `i`'s challenger on or off (it still defends).
    pub fn set_challenger(&mut self, i: usize, on: bool) {
        if on {
            self.no_challenger.remove(&i);
        } else {
            self.no_challenger.insert(i);
        }
        if let Some(v) = self.validators[i].v.as_mut() {
            v.set_challenger(on);
        }
    }

    /// The games validator `i`'s agent is playing.
    pub fn games_of(&self, i: usize) -> Vec<bridge::GameRecord> {
        self.validators[i].v.as_ref().map(|v| v.games()).unwrap_or_default()
    }

    /// Stops validator `i` as a crash would: its process state is gone, its
    /// database stays, and it is off the network.
    pub fn crash(&mut self, i: usize) {
        let peer = self.peer(i);
        self.validators[i].v = None;
        self.hub.set_online(&peer, false);
    }

    /// Restarts a crashed validator from its database.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        let peer = self.peer(i);
        self.validators[i].rx = self.hub.reconnect(&peer).context("known peer")?;
        self.hub.set_online(&peer, true);
        self.start(i)?;
        self.pump();
        Ok(())
    }

    /// Cuts validator `i` off the network (it keeps running and proposing
    /// into the void) or reconnects it.
    pub fn set_partitioned(&mut self, i: usize, partitioned: bool) {
        let peer = self.peer(i);
        self.hub.set_online(&peer, !partitioned);
        self.pump();
    }

    /// Cuts the link between two members (nothing passes between them
    /// directly; gossip still floods around the cut through others) or
    /// restores it.
    pub fn set_link_cut(&mut self, a: Member, b: Member, cut: bool) {
        let peer = |m: Member| match m {
            Member::Beacon => self.beacon_net.local_peer(),
            Member::Validator(i) => self.peer(i),
        };
        self.hub.set_blocked(&peer(a), &peer(b), cut);
        self.pump();
    }

    /// Makes the link between two members slow (latency, jitter, loss,
    /// bandwidth on the virtual clock) or instant again (`None`).
    pub fn set_link_model(&mut self, a: Member, b: Member, model: Option<net::LinkModel>) {
        let peer = |m: Member| match m {
            Member::Beacon => self.beacon_net.local_peer(),
            Member::Validator(i) => self.peer(i),
        };
        self.hub.set_link(&peer(a), &peer(b), model);
    }

    /// Stops the beacon as a crash would (`down`: it neither hears nor
    /// seals; what it had not sealed is gone), or starts it again from its
    /// database.
    pub fn set_beacon_down(&mut self, down: bool) -> Result<()> {
        if down == self.beacon_down {
            return Ok(());
        }
        let peer = self.beacon_net.local_peer();
        self.beacon_down = down;
        if down {
            self.hub.set_online(&peer, false);
            while self.beacon_rx.try_recv().is_ok() {}
            return Ok(());
        }
        self.beacon_rx = self.hub.reconnect(&peer).context("the beacon's peer")?;
        self.hub.set_online(&peer, true);
        self.restart_beacon()
    }

    /// Whether the beacon is down.
    pub fn beacon_down(&self) -> bool {
        self.beacon_down
    }

    /// Restarts the beacon from its database, as after a crash: what it had
    /// accepted but not sealed is gone; validators resubmit it.
    pub fn restart_beacon(&mut self) -> Result<()> {
        let chain = self.beacon.chain().clone();
        let spec = chain.spec().clone();
        let db = chain.db().clone();
        drop(chain);
        let key = self.beacon_key.clone();
        let chain = Arc::new(BeaconChain::open(spec, db, key)?);
        self.beacon = BeaconService::new(chain, self.beacon_net.clone(), BeaconMetrics::default());
        self.pump();
        Ok(())
    }

    /// Nothing runs for `n` slots (the beacon down, or every machine
    /// suspended): the slot clock jumps by `n`, and no node acts or hears
    /// anything meanwhile.
    pub fn skip_slots(&mut self, n: u64) {
        self.slot += n;
    }

    /// Submits a transaction to validator `i`'s RPC path.
    pub fn submit(&self, i: usize, raw: &[u8]) -> Result<(), shard::TxRejected> {
        match &self.validators[i].v {
            Some(v) => v.node().submit_user_tx(raw).map(|_| ()),
            None => {
                Err(shard::TxRejected { message: "validator down".into(), malformed: false, unfunded: false })
            }
        }
    }

    /// A signed transfer of `value` wei from dev account `from` on `shard`.
    pub fn transfer(&mut self, shard: ShardId, from: usize, to: Address, value: u64) -> Bytes {
        let nonce = self.nonces.entry((shard.0, from)).or_insert(0);
        let raw =
            crate::genesis::sign_transfer(&self.signers[from], self.spec.chain_id(shard), *nonce, to, value);
        *nonce += 1;
        raw
    }

    /// A signed call from dev account `from` on `shard` (its next nonce).
    pub fn call(
        &mut self,
        shard: ShardId,
        from: usize,
        to: alloy_primitives::TxKind,
        value: alloy_primitives::U256,
        input: Bytes,
        gas_limit: u64,
    ) -> Bytes {
        let nonce = self.nonces.entry((shard.0, from)).or_insert(0);
        let raw = crate::genesis::sign_call(
            &self.signers[from],
            self.spec.chain_id(shard),
            *nonce,
            to,
            value,
            input,
            gas_limit,
        );
        *nonce += 1;
        raw
    }

    /// Gives back the nonce the last transaction signed for account
    /// `from` on `shard` took (nobody took the transaction).
    pub fn unsend(&mut self, shard: ShardId, from: usize) {
        if let Some(n) = self.nonces.get_mut(&(shard.0, from)) {
            *n = n.saturating_sub(1);
        }
    }

    /// The address of dev account `i`.
    pub fn account(&self, i: usize) -> Address {
        self.signers[i].address()
    }

    /// Delivers every queued message, in order, until the network is quiet.
    pub fn pump(&mut self) {
        loop {
            let mut progressed = false;
            let current = self.slot;
            while let Ok(ev) = self.beacon_rx.try_recv() {
                if !self.beacon_down {
                    self.beacon.on_event(ev, current);
                }
                progressed = true;
            }
            for sv in &mut self.validators {
                while let Ok(ev) = sv.rx.try_recv() {
                    progressed = true;
                    if let Some(v) = &mut sv.v {
                        v.on_event(ev);
                    }
                }
            }
            if !progressed {
                break;
            }
        }
    }

    /// Runs one slot: users submit transfers, validators gossip them and
    /// the scheduled proposers build, the beacon seals the slot's block.
    pub fn step(&mut self) {
        self.step_with(|_, _| {});
    }

    /// [`Testnet::step`] with a hook called around every validator's turn
    /// (before it acts, and after it acted but before anything it sent is
    /// delivered): tests crash, cut off or impersonate nodes mid-slot.
    pub fn step_with(&mut self, mut hook: impl FnMut(&mut Testnet, Turn)) {
        self.slot += 1;
        let slot = self.slot;
        // the virtual clock: what slow links held arrives by the slot's start
        let start_ms = slot.saturating_mul(self.params.slot_ms);
        self.hub.advance_to(start_ms);
        for s in 0..self.params.shards {
            let shard_validators: Vec<usize> =
                (0..self.validators.len()).filter(|i| self.validators[*i].shard.0 == s).collect();
            for _ in 0..self.txs_per_slot {
                let from = self.rng.gen_range(0..self.signers.len());
                let to = Address::from(self.rng.r#gen::<[u8; 20]>());
                let value = self.rng.gen_range(1..1_000_000u64);
                let via = shard_validators[self.rng.gen_range(0..shard_validators.len())];
                let raw = self.transfer(ShardId(s), from, to, value);
                if self.submit(via, &raw).is_err() {
                    // a down validator: the nonce was not used
                    *self.nonces.get_mut(&(s, from)).expect("just used") -= 1;
                }
            }
        }
        for sv in &self.validators {
            if let Some(v) = &sv.v {
                v.flush_txs();
            }
        }
        self.pump();
        for i in 0..self.validators.len() {
            hook(self, Turn::Before(i));
            if let Some(v) = &mut self.validators[i].v {
                v.on_slot(slot);
            }
            hook(self, Turn::After(i));
            self.pump();
        }
        // what slow links deliver before the slot ends (the nodes answer at
        // once); the rest arrives in later slots
        let end_ms = start_ms.saturating_add(self.params.slot_ms);
        while let Some(at) = self.hub.next_due().filter(|at| *at < end_ms) {
            self.hub.advance_to(at);
            self.pump();
        }
        if !self.beacon_down
            && let Err(e) = self.beacon.on_slot_end(slot)
        {
            tracing::warn!(error = %e, "beacon seal failed");
        }
        self.pump();
    }

    /// Runs `n` slots.
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }

    /// Every beacon block, encoded, in slot order.
    pub fn beacon_chain_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for b in self.beacon().db().blocks_from(0, usize::MAX).unwrap_or_default() {
            out.extend(b.encode());
        }
        out
    }

    /// Validator `i`'s chain: every header and body, encoded.
    pub fn shard_chain_bytes(&self, i: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(node) = self.node(i) else { return out };
        for h in 0..=node.head().header.height {
            if let Ok(Some(b)) = node.block(h) {
                out.extend(b.encode());
            }
        }
        out
    }
}
