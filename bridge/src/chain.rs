//! What the chains exchange: the genesis [`ChainSpec`] with its validator
//! registry and proposer schedule, signed shard headers and blocks, and
//! the request-response requests (beacon blocks: [`crate::BeaconBlock`]).

use serde::{Deserialize, Serialize};

use crate::{
    Address, Decode, DecodeError, Encode, Hash, InboxEntry, ShardHeader, ShardId, Signature, SignatureError,
    SignedMove, ValidatorKey, decode_list, encode_list, hash_domain, merkle_root,
};

/// A registered validator: it proposes and checks blocks of one shard and
/// has a bond at stake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorInfo {
    /// The address of the validator's signing key.
    pub address: Address,
    /// The shard it validates.
    pub shard: ShardId,
    /// Its bond, in gwei.
    pub bond_gwei: u64,
}

impl Encode for ValidatorInfo {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.address.encode_to(out);
        self.shard.encode_to(out);
        self.bond_gwei.encode_to(out);
    }
}

impl Decode for ValidatorInfo {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(ValidatorInfo {
            address: Address::decode(input)?,
            shard: ShardId::decode(input)?,
            bond_gwei: u64::decode(input)?,
        })
    }
}

/// A registered challenger: a bonded identity that may dispute any shard's
/// headers (validators may too, with their validator bond).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengerInfo {
    /// The address of its signing key.
    pub address: Address,
    /// Its bond, in gwei.
    pub bond_gwei: u64,
}

impl Encode for ChallengerInfo {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.address.encode_to(out);
        self.bond_gwei.encode_to(out);
    }
}

/// The genesis every node of one network shares: time, slot length, shard
/// count and the validator registry. Its hash names the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Unix time of slot 0, in milliseconds.
    pub genesis_time_ms: u64,
    /// Slot length in milliseconds.
    pub slot_ms: u64,
    /// Number of shards (ids `0..shards`).
    pub shards: u32,
    /// Ethereum chain id of shard 0; shard `s` uses `chain_id_base + s`.
    pub chain_id_base: u64,
    /// Seed of the proposer schedule.
    pub seed: Hash,
    /// The genesis registry.
    pub validators: Vec<ValidatorInfo>,
    /// Each shard's genesis header, by shard id: the parent every first
    /// block is checked against (pre-state root, gas limit, base fee).
    pub shard_genesis: Vec<ShardHeader>,
    /// The beacon node's signing address: beacon blocks not signed by it are invalid.
    pub beacon: Address,
    /// Slots after a header's inclusion during which it can be challenged;
    /// a header is final once they have passed (and its parent and every
    /// source header it consumed messages of are final). 0 (or absent from
    /// a genesis file): one day of slots ([`ChainSpec::challenge_window`]).
    #[serde(default)]
    pub challenge_window_slots: u64,
    /// Sections per round of the dispute game (`k ≥ 2`).
    #[serde(default = "default_dispute_k")]
    pub dispute_k: u64,
    /// Each side's chess clock in one run of a dispute game, in slots (0:
    /// the longest that decides every header within two windows; see
    /// [`ChainSpec::game_clock`]).
    #[serde(default)]
    pub game_clock_slots: u64,
    /// The state-transition function every node and the single-step
    /// referee run ([`STF_VERSION`]): a node refuses a spec naming another.
    /// A spec that names none was written for version 1 (before the field).
    #[serde(default = "default_stf_version")]
    pub stf_version: u32,
    /// Bonded challengers besides the validators.
    #[serde(default)]
    pub challengers: Vec<ChallengerInfo>,
    /// Gwei each side stakes in a game (locked from its bond when the game
    /// opens; the loser's stake is slashed).
    #[serde(default = "default_dispute_stake")]
    pub dispute_stake_gwei: u64,
    /// Percent of a slashed stake paid to the winner; the rest goes to the
    /// treasury (below 100, so challenging oneself never pays).
    #[serde(default = "default_reward_percent")]
    pub slash_reward_percent: u64,
}

fn default_dispute_stake() -> u64 {
    1_000_000_000
}

fn default_reward_percent() -> u64 {
    50
}

/// The version of the state-transition function this code runs (revm 43,
/// Osaka rules, the bridge precompile, message delivery and refunds, and
/// since version 2 each item's witness budget and the 128 KiB limit on a
/// transaction; since version 3 a receipt commits to its logs by their
/// hash chain and count, which the level-2 machine's journal keeps; since
/// version 4 the witness budget meters only what a level-2 trace does not
/// step through (messages, EIP-7702 authorization lists), and an
/// instruction naming a memory range past 128 KiB halts; since version 5
/// only a call to a precompile naming such a range halts (the level-2
/// machine takes any other long range in sub-steps), a log's hash commits
/// to its data by Keccak-256, and delivered messages, now level-2 items,
/// are no longer metered; since version 6 a call to SHA-256, RIPEMD-160
/// or identity is unbounded too, its long input absorbed in level-2
/// sub-steps).
pub const STF_VERSION: u32 = 6;

fn default_dispute_k() -> u64 {
    4
}

fn default_stf_version() -> u32 {
    1
}

/// One day of slots of `slot_ms` (the default challenge window).
pub fn one_day_of_slots(slot_ms: u64) -> u64 {
    (86_400_000 / slot_ms.max(1)).max(1)
}

impl Encode for ChainSpec {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.genesis_time_ms.encode_to(out);
        self.slot_ms.encode_to(out);
        self.shards.encode_to(out);
        self.chain_id_base.encode_to(out);
        self.seed.encode_to(out);
        encode_list(&self.validators, out);
        encode_list(&self.shard_genesis, out);
        self.beacon.encode_to(out);
        self.challenge_window_slots.encode_to(out);
        self.dispute_k.encode_to(out);
        self.game_clock_slots.encode_to(out);
        self.stf_version.encode_to(out);
        encode_list(&self.challengers, out);
        self.dispute_stake_gwei.encode_to(out);
        self.slash_reward_percent.encode_to(out);
    }
}

impl ChainSpec {
    /// The challenge window in slots (one day of slots when unset).
    pub fn challenge_window(&self) -> u64 {
        if self.challenge_window_slots == 0 {
            one_day_of_slots(self.slot_ms)
        } else {
            self.challenge_window_slots
        }
    }

    /// Each side's chess clock in one run of a dispute game. Unset, the
    /// largest that keeps every header decided within two windows
    /// ([`ChainSpec::decision_bound`]): the window over twice the most
    /// validators a shard has.
    pub fn game_clock(&self) -> u64 {
        if self.game_clock_slots == 0 {
            (self.challenge_window() / (2 * self.most_runs())).max(1)
        } else {
            self.game_clock_slots
        }
    }

    /// The most runs one game can have: the proposer's, then one per
    /// shard-mate standing in (each may once per game, and the game starts
    /// over when one loses): the most validators a shard has.
    pub fn most_runs(&self) -> u64 {
        (0..self.shards).map(|s| self.shard_validators(ShardId(s)).len() as u64).max().unwrap_or(1).max(1)
    }

    /// Live slots after its inclusion by which every accepted header is
    /// final or discarded, whatever any coalition does: a game opens by
    /// the window's end and each of its runs lasts at most both clocks,
    /// and both clocks' level-2 allowance if it descends
    /// ([`crate::game::level_two_allowance`] of the longest trace a
    /// descent may claim).
    pub fn decision_bound(&self) -> u64 {
        let allowance = crate::game::level_two_allowance(crate::game::MAX_ITEM_TRACE, self.dispute_k);
        self.level_one_bound().saturating_add(self.most_runs().saturating_mul(2).saturating_mul(allowance))
    }

    /// [`ChainSpec::decision_bound`] without the level-2 allowance: the
    /// window and every run's clocks, which must fit in two windows.
    pub fn level_one_bound(&self) -> u64 {
        self.challenge_window()
            .saturating_add(self.most_runs().saturating_mul(2).saturating_mul(self.game_clock()))
    }

    /// Turns a side may take at level 1 of a game: ⌈log_k n⌉ rounds for up
    /// to 2^20 items, the claim, and the step or the descent (level 2's
    /// turns come with their own allowance,
    /// [`crate::game::level_two_allowance`]). An honest agent takes about
    /// a slot a turn.
    pub fn level_one_turns(&self) -> u64 {
        u64::from(crate::game::Game::rounds_for(1 << 20, self.dispute_k)) + 3
    }

    /// `(clock, turns)` when each side's clock is shorter than level 1's
    /// turns ([`ChainSpec::level_one_turns`]): a short custom window with
    /// many validators. Such a network runs (the test suite's short windows
    /// do; their games are short), but an honest party in a game over a
    /// block of many items can lose it on time; the beacon warns.
    pub fn clock_shortfall(&self) -> Option<(u64, u64)> {
        let (clock, turns) = (self.game_clock(), self.level_one_turns());
        (clock < turns).then_some((clock, turns))
    }

    /// Rejects a spec no network can run on.
    pub fn validate(&self) -> Result<(), String> {
        if self.stf_version != STF_VERSION {
            return Err(format!(
                "the spec runs state-transition function version {}, this node version {STF_VERSION}",
                self.stf_version
            ));
        }
        if !(2..=crate::MAX_DISPUTE_K).contains(&self.dispute_k) {
            return Err(format!("dispute_k must be between 2 and {}", crate::MAX_DISPUTE_K));
        }
        if self.slash_reward_percent >= 100 {
            return Err("slash_reward_percent must be below 100 (challenging oneself must never pay)".into());
        }
        for c in &self.challengers {
            if self.validators.iter().any(|v| v.address == c.address) {
                return Err(format!("challenger {} is also a validator", c.address));
            }
        }
        if self.slot_ms == 0 {
            return Err("slot_ms must be > 0".into());
        }
        if self.shards == 0 {
            return Err("shards must be > 0".into());
        }

        if self.shard_genesis.len() != self.shards as usize {
            return Err(format!(
                "{} shard genesis hashes for {} shards",
                self.shard_genesis.len(),
                self.shards
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for v in &self.validators {
            if v.shard.0 >= self.shards {
                return Err(format!("validator {} is on shard {} of {}", v.address, v.shard, self.shards));
            }
            if !seen.insert(v.address) {
                return Err(format!("validator {} registered twice", v.address));
            }
        }
        for (i, g) in self.shard_genesis.iter().enumerate() {
            if g.shard.0 as usize != i || g.height != 0 {
                return Err(format!("genesis header {i} is shard {} at height {}", g.shard, g.height));
            }
        }
        if self.slot_start_ms(u64::from(u32::MAX)) == u64::MAX {
            return Err("genesis_time_ms + slots * slot_ms overflows".into());
        }
        for s in 0..self.shards {
            if self.shard_validators(ShardId(s)).is_empty() {
                return Err(format!("shard {s} has no validator"));
            }
        }
        // every header is decided within two windows of its inclusion: a
        // game opens by the window's end, and its runs (one per validator
        // of the shard at most) each last at most both clocks
        if self.level_one_bound() > self.challenge_window().saturating_mul(2) {
            return Err(format!(
                "game_clock_slots {} is too long: with up to {} runs of a game (the most validators a shard has), \
                 both clocks of every run must fit in the challenge window of {} slots; use at most {}",
                self.game_clock(),
                self.most_runs(),
                self.challenge_window(),
                self.challenge_window() / (2 * self.most_runs())
            ));
        }
        // every open game locks a challenger's stake, so the games that can
        // be open at once are bounded by the bonds; that bound must fit the
        // beacon's cap, or a coalition could fill it and keep an honest
        // challenger out
        if self.dispute_stake_gwei == 0 {
            return Err("dispute_stake_gwei must be > 0".into());
        }
        let bonds: u128 = self.validators.iter().map(|v| u128::from(v.bond_gwei)).sum::<u128>()
            + self.challengers.iter().map(|c| u128::from(c.bond_gwei)).sum::<u128>();
        let games = bonds / u128::from(self.dispute_stake_gwei);
        if games > crate::MAX_OPEN_GAMES as u128 {
            return Err(format!(
                "the bonds stake {games} games at once, above the beacon's {}: raise dispute_stake_gwei to at least {}",
                crate::MAX_OPEN_GAMES,
                bonds.div_ceil(crate::MAX_OPEN_GAMES as u128)
            ));
        }
        Ok(())
    }

    /// The network's identity.
    pub fn hash(&self) -> Hash {
        hash_domain(b"optishard.chain_spec", &[&self.encode()])
    }

    /// The slot running at unix time `now_ms` (0 before genesis).
    pub fn slot_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.genesis_time_ms) / self.slot_ms
    }

    /// When `slot` starts, in unix milliseconds.
    /// Saturates at `u64::MAX` for slots no clock reaches (hostile input).
    pub fn slot_start_ms(&self, slot: u64) -> u64 {
        self.genesis_time_ms.saturating_add(slot.saturating_mul(self.slot_ms))
    }

    /// The timestamp (unix seconds) of every block of `slot`: its start.
    pub fn slot_timestamp(&self, slot: u64) -> u64 {
        self.slot_start_ms(slot) / 1000
    }

    /// Ethereum chain id of `shard`.
    pub fn chain_id(&self, shard: ShardId) -> u64 {
        self.chain_id_base + shard.0 as u64
    }

    /// The genesis head of `shard`.
    pub fn genesis_head(&self, shard: ShardId) -> ShardHead {
        ShardHead {
            shard,
            height: 0,
            hash: self.shard_genesis.get(shard.0 as usize).map(ShardHeader::hash).unwrap_or_default(),
            slot: 0,
        }
    }

    /// The validators of `shard`, in registry order.
    pub fn shard_validators(&self, shard: ShardId) -> Vec<Address> {
        self.validators.iter().filter(|v| v.shard == shard).map(|v| v.address).collect()
    }

    /// Every bonded party (validators, then challengers) with its genesis bond.
    pub fn bonded(&self) -> Vec<(Address, u64)> {
        self.validators
            .iter()
            .map(|v| (v.address, v.bond_gwei))
            .chain(self.challengers.iter().map(|c| (c.address, c.bond_gwei)))
            .collect()
    }

    /// The registered validator with this address.
    pub fn validator(&self, address: &Address) -> Option<&ValidatorInfo> {
        self.validators.iter().find(|v| v.address == *address)
    }

    /// The validator scheduled to propose `shard`'s block in `slot`: drawn
    /// from the shard's validators by a hash of the seed, shard and slot, so
    /// every node computes the same schedule and no one can steer it.
    pub fn proposer(&self, shard: ShardId, slot: u64) -> Option<Address> {
        let vals = self.shard_validators(shard);
        if vals.is_empty() {
            return None;
        }
        let h =
            hash_domain(b"optishard.proposer", &[&self.seed.0, &shard.0.to_be_bytes(), &slot.to_be_bytes()]);
        let draw = u64::from_be_bytes(h.0[..8].try_into().expect("8 bytes"));
        Some(vals[(draw % vals.len() as u64) as usize])
    }
}

/// A shard header with its proposer's signature over [`ShardHeader::hash`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHeader {
    /// The header.
    pub header: ShardHeader,
    /// The proposer's signature of the header hash.
    pub signature: Signature,
}

impl SignedHeader {
    /// Signs `header` with `key`.
    pub fn sign(header: ShardHeader, key: &ValidatorKey) -> Self {
        let signature = key.sign(&header.hash());
        SignedHeader { header, signature }
    }

    /// The address that signed the header.
    pub fn signer(&self) -> Result<Address, SignatureError> {
        self.signature.recover(&self.header.hash())
    }
}

impl Encode for SignedHeader {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.header.encode_to(out);
        self.signature.encode_to(out);
    }
}

impl Decode for SignedHeader {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(SignedHeader { header: ShardHeader::decode(input)?, signature: Signature::decode(input)? })
    }
}

/// A shard block as gossiped and synced: the signed header, the inbox
/// messages it consumes (with their inclusion proofs) and the raw
/// (EIP-2718) transactions; its items are the messages, then the
/// transactions, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardBlock {
    /// The signed header.
    pub header: SignedHeader,
    /// Inbox messages, first, in the order executed.
    pub inbox: Vec<InboxEntry>,
    /// Raw transactions.
    pub txs: Vec<Vec<u8>>,
}

impl ShardBlock {
    /// Leaves of the items tree: messages' then transactions'.
    pub fn item_hashes(&self) -> Vec<Hash> {
        self.inbox
            .iter()
            .map(|e| message_item_hash(&e.message.id()))
            .chain(self.txs.iter().map(|t| tx_item_hash(t)))
            .collect()
    }

    /// Merkle root of the body's items, as the header's `items_root` must be.
    pub fn items_root(&self) -> Hash {
        merkle_root(&self.item_hashes())
    }

    /// Encoded size of the body (what a peer sends us for it).
    pub fn body_bytes(&self) -> usize {
        let inbox: usize =
            self.inbox.iter().map(|e| e.message.data.len() + 200 + 32 * e.proof.siblings.len()).sum();
        inbox + self.txs.iter().map(|t| t.len() + 4).sum::<usize>() + 8
    }
}

/// Leaf of a block's items tree for an inbox message (by its id).
pub fn message_item_hash(id: &Hash) -> Hash {
    hash_domain(b"optishard.item.message", &[&id.0])
}

/// Leaf of a block's items tree for a raw (EIP-2718) transaction.
pub fn tx_item_hash(raw: &[u8]) -> Hash {
    hash_domain(b"optishard.item.tx", &[raw])
}

impl Encode for ShardBlock {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.header.encode_to(out);
        encode_list(&self.inbox, out);
        encode_list(&self.txs, out);
    }
}

impl Decode for ShardBlock {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(ShardBlock {
            header: SignedHeader::decode(input)?,
            inbox: decode_list(input)?,
            txs: decode_list(input)?,
        })
    }
}

impl SignedHeader {
    /// Decodes only the signed header at the front of an encoded
    /// [`ShardBlock`] (fixed size, cheap), so its signature can be checked
    /// before the body is decoded. Returns the header and the body bytes.
    pub fn decode_block_prefix(bytes: &[u8]) -> Result<(SignedHeader, &[u8]), DecodeError> {
        let mut input = bytes;
        let sh = SignedHeader::decode(&mut input)?;
        Ok((sh, input))
    }
}

/// A shard's head as the beacon last accepted it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHead {
    /// The shard.
    pub shard: ShardId,
    /// Height of the accepted header.
    pub height: u64,
    /// Its hash.
    pub hash: Hash,
    /// The slot it was proposed in.
    pub slot: u64,
}

impl Encode for ShardHead {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.shard.encode_to(out);
        self.height.encode_to(out);
        self.hash.encode_to(out);
        self.slot.encode_to(out);
    }
}

impl Decode for ShardHead {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(ShardHead {
            shard: ShardId::decode(input)?,
            height: u64::decode(input)?,
            hash: Hash::decode(input)?,
            slot: u64::decode(input)?,
        })
    }
}

/// A request-response request. Block requests are answered with a list of
/// blocks; a header submission with a status string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncRequest {
    /// Beacon blocks from slot `from` on (missing slots skipped).
    BeaconBlocks {
        /// First slot.
        from: u64,
        /// Most blocks.
        count: u32,
    },
    /// Blocks of `shard` from height `from` on.
    ShardBlocks {
        /// The shard.
        shard: ShardId,
        /// First height.
        from: u64,
        /// Most blocks.
        count: u32,
    },
    /// A shard block for the beacon, sent directly (a resubmission the
    /// gossip layer would drop as already seen). The beacon takes a header
    /// only with its body, so the body stays retrievable from it.
    SubmitBlock(ShardBlock),
    /// The beacon-accepted signed headers of `shard` from height `from` on
    /// (asked of the beacon: where a destination learns source headers it
    /// missed, e.g. after a restart). Answer: a list of [`SignedHeader`].
    ShardHeaders {
        /// The shard.
        shard: ShardId,
        /// First height.
        from: u64,
        /// Most headers.
        count: u32,
    },
    /// A dispute move for the beacon (answered with a status string).
    SubmitMove(SignedMove),
    /// The games open against `shard`'s headers, asked of the beacon by an
    /// agent that (re)starts. Answer: a list of [`GameRecord`].
    OpenGames {
        /// The shard.
        shard: ShardId,
    },
    /// The messages of channel `src → dst` from nonce `from` on, asked of
    /// `src`'s validators. Answer: a list of [`InboxEntry`] (each with the
    /// source height and its proof against that block's `outbox_root`),
    /// contiguous in nonce from `from`.
    Outbox {
        /// Source shard.
        src: ShardId,
        /// Destination shard.
        dst: ShardId,
        /// First nonce.
        from: u64,
        /// Most messages.
        count: u32,
    },
}

/// Most headers one [`SyncRequest::ShardHeaders`] answer holds.
pub const MAX_HEADERS_PER_REQUEST: u32 = 512;
/// Most messages one [`SyncRequest::Outbox`] answer holds.
pub const MAX_MESSAGES_PER_REQUEST: u32 = 1024;

/// Decodes an answer to [`SyncRequest::Outbox`].
pub fn decode_outbox_answer(mut bytes: &[u8]) -> Result<Vec<InboxEntry>, DecodeError> {
    let entries = decode_list(&mut bytes)?;
    if !bytes.is_empty() {
        return Err(DecodeError::TrailingBytes(bytes.len()));
    }
    Ok(entries)
}

impl Encode for SyncRequest {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            SyncRequest::BeaconBlocks { from, count } => {
                0u8.encode_to(out);
                from.encode_to(out);
                count.encode_to(out);
            }
            SyncRequest::ShardBlocks { shard, from, count } => {
                1u8.encode_to(out);
                shard.encode_to(out);
                from.encode_to(out);
                count.encode_to(out);
            }
            SyncRequest::SubmitBlock(b) => {
                2u8.encode_to(out);
                b.encode_to(out);
            }
            SyncRequest::ShardHeaders { shard, from, count } => {
                3u8.encode_to(out);
                shard.encode_to(out);
                from.encode_to(out);
                count.encode_to(out);
            }
            SyncRequest::SubmitMove(m) => {
                5u8.encode_to(out);
                m.encode_to(out);
            }
            SyncRequest::OpenGames { shard } => {
                6u8.encode_to(out);
                shard.encode_to(out);
            }
            SyncRequest::Outbox { src, dst, from, count } => {
                4u8.encode_to(out);
                src.encode_to(out);
                dst.encode_to(out);
                from.encode_to(out);
                count.encode_to(out);
            }
        }
    }
}

impl Decode for SyncRequest {
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match u8::decode(input)? {
            0 => Ok(SyncRequest::BeaconBlocks { from: u64::decode(input)?, count: u32::decode(input)? }),
            1 => Ok(SyncRequest::ShardBlocks {
                shard: ShardId::decode(input)?,
                from: u64::decode(input)?,
                count: u32::decode(input)?,
            }),
            2 => Ok(SyncRequest::SubmitBlock(ShardBlock::decode(input)?)),
            3 => Ok(SyncRequest::ShardHeaders {
                shard: ShardId::decode(input)?,
                from: u64::decode(input)?,
                count: u32::decode(input)?,
            }),
            4 => Ok(SyncRequest::Outbox {
                src: ShardId::decode(input)?,
                dst: ShardId::decode(input)?,
                from: u64::decode(input)?,
                count: u32::decode(input)?,
            }),
            5 => Ok(SyncRequest::SubmitMove(SignedMove::decode(input)?)),
            6 => Ok(SyncRequest::OpenGames { shard: ShardId::decode(input)? }),
            tag => Err(DecodeError::InvalidTag { what: "sync request", tag }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BeaconBlock;
    use crate::decode_exact;

    fn spec(per_shard: u32) -> (ChainSpec, Vec<ValidatorKey>) {
        let keys: Vec<ValidatorKey> =
            (0..2 * per_shard).map(|i| ValidatorKey::derive(&i.to_be_bytes())).collect();
        let validators = keys
            .iter()
            .enumerate()
            .map(|(i, k)| ValidatorInfo { address: k.address(), shard: ShardId(i as u32 % 2), bond_gwei: 1 })
            .collect();
        let spec = ChainSpec {
            genesis_time_ms: 1000,
            slot_ms: 500,
            shards: 2,
            chain_id_base: 1,
            seed: Hash::of(b"s"),
            validators,
            shard_genesis: (0..2).map(|s| ShardHeader { shard: ShardId(s), ..Default::default() }).collect(),
            beacon: Address::default(),
            challenge_window_slots: 16,
            dispute_k: 4,
            game_clock_slots: 0,
            stf_version: crate::STF_VERSION,
            challengers: vec![],
            dispute_stake_gwei: 1,
            slash_reward_percent: 50,
        };
        (spec, keys)
    }

    #[test]
    fn one_header_inclusion_is_provable_against_the_state_root() {
        let (spec, keys) = spec(1);
        let headers: Vec<SignedHeader> = (1..=5u64)
            .map(|h| SignedHeader::sign(ShardHeader { height: h, ..Default::default() }, &keys[0]))
            .collect();
        let heads = vec![ShardHead::default(); 2];
        let mut b = BeaconBlock {
            slot: 9,
            parent: Hash::ZERO,
            headers: headers.clone(),
            heads: heads.clone(),
            finalized: vec![0, 0],
            moves: vec![],
            games: vec![],
            invalidated: vec![],
            disputes_root: Hash::of(b"disputes"),
            unbonded: vec![],
            state_root: Hash::ZERO,
            signature: Signature::default(),
        };
        b.state_root = BeaconBlock::compute_state_root(
            &spec.hash(),
            &heads,
            &b.finalized,
            &b.disputes_root,
            &b.headers_root(),
        );
        assert!(b.state_root_matches(&spec.hash()));
        for (i, h) in headers.iter().enumerate() {
            let p = b.header_inclusion(&spec.hash(), i).unwrap();
            assert!(p.verify(&b.state_root, &h.header.hash()));
            assert!(!p.verify(&b.state_root, &headers[(i + 1) % 5].header.hash()), "another header");
            assert!(!p.verify(&Hash::of(b"other block"), &h.header.hash()), "another block");
        }
        assert!(b.header_inclusion(&spec.hash(), 5).is_none());
        // a block whose state root does not commit to its headers
        b.headers.pop();
        assert!(!b.state_root_matches(&spec.hash()));
    }

    #[test]
    fn a_spec_names_its_game_and_state_transition_function() {
        let spec_with = spec;
        let (spec, _) = spec(1);
        assert!(spec.validate().is_ok());
        assert_eq!(spec.game_clock(), 8, "one validator a shard: one run, half the window");
        let (two, _) = spec_with(2);
        assert_eq!(two.most_runs(), 2);
        assert_eq!(two.game_clock(), 4, "two runs: a quarter of the window");
        assert_eq!(two.level_one_bound(), 32, "two windows");
        // k = 4: 10 rounds for 2^20 items, the claim, the step or descent;
        // a descent adds 20 rounds for a 2^40-step trace and 2 to each
        // clock of each of the 2 runs
        let spec4 = ChainSpec { dispute_k: 4, ..two.clone() };
        assert_eq!(spec4.level_one_turns(), 13);
        assert_eq!(spec4.decision_bound(), 32 + 2 * 2 * 22);
        assert_eq!(ChainSpec { game_clock_slots: 8, ..spec4.clone() }.clock_shortfall(), Some((8, 13)));
        assert_eq!(ChainSpec { game_clock_slots: 13, ..spec4 }.clock_shortfall(), None);
        // every header decided within two windows: the runs' clocks fit in one
        assert!(ChainSpec { game_clock_slots: 4, ..two.clone() }.validate().is_ok());
        let slow = ChainSpec { game_clock_slots: 5, ..two.clone() }.validate().unwrap_err();
        assert!(slow.contains("too long") && slow.contains("at most 4"), "{slow}");
        assert_eq!(spec.challenge_window(), 16);
        let other = ChainSpec { stf_version: STF_VERSION + 1, ..spec.clone() };
        assert!(other.validate().unwrap_err().contains("state-transition function"));
        assert!(ChainSpec { dispute_k: 1, ..spec.clone() }.validate().is_err());
        assert!(ChainSpec { game_clock_slots: 8, ..spec.clone() }.validate().is_ok());
        assert!(ChainSpec { game_clock_slots: 9, ..spec.clone() }.validate().is_err());
        // the bonds may not stake more games at once than the beacon holds
        // (else colluders could fill it): bounded by stakes, not by counts
        assert!(ChainSpec { dispute_stake_gwei: 0, ..spec.clone() }.validate().is_err());
        let mut rich = spec.clone();
        for v in &mut rich.validators {
            v.bond_gwei = crate::MAX_OPEN_GAMES as u64;
        }
        let err = rich.validate().unwrap_err();
        assert!(err.contains("raise dispute_stake_gwei"), "{err}");
        let n = rich.validators.len() as u64;
        assert!(ChainSpec { dispute_stake_gwei: n, ..rich }.validate().is_ok());
        // every field is part of the network's identity
        assert_ne!(ChainSpec { dispute_k: 8, ..spec.clone() }.hash(), spec.hash());
        assert_ne!(ChainSpec { game_clock_slots: 9, ..spec.clone() }.hash(), spec.hash());
        // a genesis file without them gets the defaults (one day of slots);
        // one naming no state-transition function was written for the
        // first, which this build refuses
        let mut json = serde_json::to_value(&spec).unwrap();
        for f in ["dispute_k", "game_clock_slots", "stf_version", "challenge_window_slots"] {
            json.as_object_mut().unwrap().remove(f);
        }
        let back: ChainSpec = serde_json::from_value(json).unwrap();
        assert_eq!((back.dispute_k, back.stf_version), (4, 1));
        assert_eq!(back.challenge_window(), 86_400_000 / 500);
        assert!(back.validate().unwrap_err().contains("state-transition function"));
    }

    #[test]
    fn schedule_is_deterministic_and_uses_every_validator() {
        let (spec, _) = spec(3);
        spec.validate().unwrap();
        let mut seen = std::collections::HashSet::new();
        for slot in 0..200 {
            let p = spec.proposer(ShardId(1), slot).unwrap();
            assert_eq!(spec.validator(&p).unwrap().shard, ShardId(1));
            assert_eq!(Some(p), spec.proposer(ShardId(1), slot));
            seen.insert(p);
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(spec.slot_at(999), 0);
        assert_eq!(spec.slot_at(1000 + 1499), 2);
        assert_eq!(spec.slot_start_ms(2), 2000);
    }

    #[test]
    fn spec_validation_catches_empty_shards_and_duplicates() {
        let (mut s, _) = spec(1);
        s.validators.pop();
        assert!(s.validate().unwrap_err().contains("no validator"));
        let (mut s, _) = spec(1);
        s.validators[1].address = s.validators[0].address;
        assert!(s.validate().is_err());
    }

    #[test]
    fn signed_blocks_round_trip_and_name_their_signer() {
        let (_, keys) = spec(1);
        let h = ShardHeader { height: 3, ..Default::default() };
        let sh = SignedHeader::sign(h, &keys[0]);
        assert_eq!(sh.signer().unwrap(), keys[0].address());
        let b = ShardBlock { header: sh.clone(), inbox: vec![], txs: vec![vec![1, 2], vec![]] };
        assert_eq!(decode_exact::<ShardBlock>(&b.encode()).unwrap(), b);
        let mut tampered = sh;
        tampered.header.height = 4;
        assert_ne!(tampered.signer().unwrap(), keys[0].address());
        let mut bb = BeaconBlock {
            slot: 1,
            parent: Hash::ZERO,
            headers: vec![],
            heads: vec![ShardHead::default()],
            finalized: vec![0],
            moves: vec![],
            games: vec![],
            invalidated: vec![],
            disputes_root: Hash::ZERO,
            unbonded: vec![],
            state_root: Hash::ZERO,
            signature: Signature::default(),
        };
        let unsigned = bb.hash();
        bb.sign(&keys[1]);
        assert_eq!(bb.hash(), unsigned, "the signature is not part of the identity");
        assert!(bb.signed_by(&keys[1].address()) && !bb.signed_by(&keys[0].address()));
        assert_eq!(decode_exact::<BeaconBlock>(&bb.encode()).unwrap(), bb);
    }
}
